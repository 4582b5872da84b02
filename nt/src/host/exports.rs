//! `MmGetSystemRoutineAddress` and `RtlGetVersion`: which optional exports the emulated kernel has
//! and which Windows it says it is, so that the fallbacks of `crate::optional` run on the host too.
//!
//! By default the emulation is Windows 10 version 2004 (10.0.19041), the first with every export it
//! resolves. A test pretends to be an older Windows with [`control::set_version`] (an export
//! introduced later is then missing, and `NonPagedPoolNx` is refused before Windows 8), or removes
//! single exports with [`control::hide`] (a kernel like Wine 8's, which claims Windows 10 yet
//! lacks both). A new session restores the defaults and forgets what the driver resolved, as a
//! fresh image load would.

use super::verifier::{Rule, violation};
use super::{clock, irql, pool};
use crate::types::*;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The routines `MmGetSystemRoutineAddress` resolves, each with the Windows version (major, minor,
/// build) that introduced it (the "Minimum supported client" of its documentation). Names the
/// emulation does not list resolve to NULL, as a missing export does (invented: the real routine
/// resolves every export; no code here looks up any other).
const ROUTINES: &[(&str, (ULONG, ULONG, ULONG))] = &[
    ("ExAllocatePool2", (10, 0, 19041)),
    ("KeQueryInterruptTimePrecise", (6, 3, 9600)),
];

/// The version the emulation reports by default: Windows 10 version 2004.
const DEFAULT_VERSION: (ULONG, ULONG, ULONG) = (10, 0, 19041);

/// `VER_PLATFORM_WIN32_NT`.
const VER_PLATFORM_WIN32_NT: ULONG = 2;

/// The first Windows with `NonPagedPoolNx`: Windows 8 (6.2).
const NX_POOL_SINCE: (ULONG, ULONG) = (6, 2);

struct State {
    version: (ULONG, ULONG, ULONG),
    hidden: Vec<String>,
    /// The kernel plays Wine 8.0's ntoskrnl.exe ([`control::set_wine8_kernel`]).
    wine: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    version: DEFAULT_VERSION,
    hidden: Vec::new(),
    wine: false,
});

/// Whether the emulated kernel plays Wine 8.0's ntoskrnl.exe.
pub(super) fn wine8_kernel() -> bool {
    state().wine
}

/// What Wine's ntoskrnl.exe exports and Windows does not: how a driver tells it is under Wine.
extern "system" fn wine_ntoskrnl_main_loop() {}

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The address of the emulated routine `name`.
fn routine(name: &str) -> Option<PVOID> {
    type Pool2 = unsafe extern "system" fn(POOL_FLAGS, SIZE_T, ULONG) -> PVOID;
    type Precise = unsafe extern "system" fn(*mut ULONG64) -> ULONG64;
    match name {
        "ExAllocatePool2" => Some(pool::ExAllocatePool2 as Pool2 as PVOID),
        "KeQueryInterruptTimePrecise" => Some(clock::KeQueryInterruptTimePrecise as Precise as PVOID),
        _ => None,
    }
}

/// Whether the emulated kernel accepts `NonPagedPoolNx` (it reports Windows 8 or later).
pub(super) fn nx_pool_exists() -> bool {
    let (major, minor, _) = state().version;
    (major, minor) >= NX_POOL_SINCE
}

/// `MmGetSystemRoutineAddress`: the address of an emulated export, or NULL if the emulated kernel
/// does not export it (introduced after the version it reports, or hidden). PASSIVE_LEVEL; the name
/// must be a well-formed `UNICODE_STRING` (even `Length` no larger than `MaximumLength`, a buffer).
///
/// # Safety
/// `SystemRoutineName` points to a `UNICODE_STRING` whose buffer holds `Length` readable bytes.
pub unsafe extern "system" fn MmGetSystemRoutineAddress(SystemRoutineName: *mut UNICODE_STRING) -> PVOID {
    if !irql::require_max("MmGetSystemRoutineAddress", PASSIVE_LEVEL) {
        return core::ptr::null_mut();
    }
    if SystemRoutineName.is_null() {
        violation(Rule::InvalidParameter, &"MmGetSystemRoutineAddress(NULL)", None);
        return core::ptr::null_mut();
    }
    // SAFETY: non-null, and valid by the caller's contract.
    let name = unsafe { &*SystemRoutineName };
    if name.Buffer.is_null() || name.Length % 2 != 0 || name.Length > name.MaximumLength {
        violation(
            Rule::InvalidParameter,
            &format_args!(
                "MmGetSystemRoutineAddress of a malformed UNICODE_STRING (Length {}, MaximumLength {}, Buffer {:p})",
                name.Length, name.MaximumLength, name.Buffer
            ),
            None,
        );
        return core::ptr::null_mut();
    }
    // SAFETY: `Length` bytes (an even count) of the buffer are readable (the caller's contract).
    let units = unsafe { std::slice::from_raw_parts(name.Buffer, usize::from(name.Length) / 2) };
    let Ok(name) = String::from_utf16(units) else {
        return core::ptr::null_mut();
    };
    let state = state();
    if name == "wine_ntoskrnl_main_loop" {
        return if state.wine {
            wine_ntoskrnl_main_loop as extern "system" fn() as PVOID
        } else {
            core::ptr::null_mut()
        };
    }
    let Some(&(_, since)) = ROUTINES.iter().find(|(n, _)| *n == name) else {
        return core::ptr::null_mut();
    };
    if state.version < since || state.hidden.contains(&name) {
        return core::ptr::null_mut();
    }
    routine(&name).unwrap_or(core::ptr::null_mut())
}

/// `RtlGetVersion`: fills the major, minor and build numbers and the platform of the version the
/// emulation reports (10.0.19041 unless a test set another), with an empty service-pack string.
/// PASSIVE_LEVEL. `dwOSVersionInfoSize` must be the size of `RTL_OSVERSIONINFOW` or of
/// `RTL_OSVERSIONINFOEXW` (284 bytes; the emulation leaves its extra fields as they are); another
/// size fails with `STATUS_INVALID_PARAMETER` (invented: the documentation only says the routine
/// returns `STATUS_SUCCESS`).
///
/// # Safety
/// `lpVersionInformation` points to a writable structure of the size it states.
pub unsafe extern "system" fn RtlGetVersion(lpVersionInformation: *mut RTL_OSVERSIONINFOW) -> NTSTATUS {
    const EX_SIZE: ULONG = 284;
    if !irql::require_max("RtlGetVersion", PASSIVE_LEVEL) {
        return STATUS_INVALID_DEVICE_STATE;
    }
    if lpVersionInformation.is_null() {
        violation(Rule::InvalidParameter, &"RtlGetVersion(NULL)", None);
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: non-null; the caller's contract makes at least the size field readable.
    let size = unsafe { (*lpVersionInformation).dwOSVersionInfoSize };
    if size != size_of::<RTL_OSVERSIONINFOW>() as ULONG && size != EX_SIZE {
        return STATUS_INVALID_PARAMETER;
    }
    let (major, minor, build) = state().version;
    // SAFETY: the structure is at least an RTL_OSVERSIONINFOW (its size field says so) and writable.
    unsafe {
        let info = &mut *lpVersionInformation;
        info.dwMajorVersion = major;
        info.dwMinorVersion = minor;
        info.dwBuildNumber = build;
        info.dwPlatformId = VER_PLATFORM_WIN32_NT;
        info.szCSDVersion = [0; 128];
    }
    STATUS_SUCCESS
}

/// Back to the defaults, and the driver's resolutions forgotten (a new session).
pub(super) fn reset() {
    let mut state = state();
    state.version = DEFAULT_VERSION;
    state.hidden.clear();
    state.wine = false;
    drop(state);
    crate::optional::reset();
}

/// What the emulated kernel exports and which Windows it says it is.
pub mod control {
    use super::state;
    use crate::types::ULONG;

    /// From now on, `MmGetSystemRoutineAddress(name)` returns NULL, as on a kernel without that
    /// export, until the session ends.
    pub fn hide(name: &str) {
        let mut state = state();
        if !state.hidden.iter().any(|h| h == name) {
            state.hidden.push(name.to_string());
        }
    }

    /// The emulated kernel plays Wine 8.0's ntoskrnl.exe (measured), until the session ends: it
    /// reports Windows 7 SP1 (6.1.7601), exports neither `ExAllocatePool2` nor
    /// `KeQueryInterruptTimePrecise`, exports `wine_ntoskrnl_main_loop`, and its
    /// `IoSetCompletionRoutineEx` is an unimplemented stub: calling it is reported as a violation
    /// (under Wine it aborts the process).
    pub fn set_wine8_kernel() {
        let mut state = state();
        state.version = (6, 1, 7601);
        state.wine = true;
        for name in ["ExAllocatePool2", "KeQueryInterruptTimePrecise"] {
            if !state.hidden.iter().any(|h| h == name) {
                state.hidden.push(name.to_string());
            }
        }
    }

    /// The emulated kernel reports Windows `major.minor.build` (e.g. `6, 1, 7601` for Windows 7
    /// SP1): `RtlGetVersion` says so, exports introduced later are missing, and
    /// `ExAllocatePoolWithTag` refuses `NonPagedPoolNx` before 6.2. Until the session ends.
    pub fn set_version(major: ULONG, minor: ULONG, build: ULONG) {
        state().version = (major, minor, build);
    }
}

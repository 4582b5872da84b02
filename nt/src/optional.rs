//! Kernel exports newer than the oldest Windows the crates support, resolved at run time instead of
//! imported.
//!
//! An image whose import table names an export the running kernel lacks does not load at all (the
//! loader refuses the whole image; measured under Wine, whose ntoskrnl.exe 8.0 has neither export
//! below, and true of every Windows before 10 version 2004). So `ExAllocatePool2` (Windows 10
//! version 2004) and `KeQueryInterruptTimePrecise` (Windows 8.1, according to its DDI page) are
//! never imported; `samples/echo-driver/kernel-exports.txt` lists the version of every import.
//! [`resolve_optional_exports`] looks them up with `MmGetSystemRoutineAddress` (Windows 2000,
//! PASSIVE_LEVEL) at DriverEntry, and the functions of the same names and signatures in this module
//! call the routine found, or else a fallback built only from exports every Windows since 2000 has:
//!
//! | export | fallback |
//! |---|---|
//! | `ExAllocatePool2` | `ExAllocatePoolWithTag` with the matching `POOL_TYPE`, then zeroing unless `POOL_FLAG_UNINITIALIZED` |
//! | `KeQueryInterruptTimePrecise` | `KeQueryPerformanceCounter` (HAL.dll), scaled to 100 ns by its frequency |
//!
//! # Before resolution
//!
//! A call made before [`resolve_optional_exports`] (or without it) is safe: it uses the fallback.
//! The pool fallback then asks for `NonPagedPool`, which every Windows accepts (only resolution
//! learns whether `NonPagedPoolNx`, Windows 8 and later, exists). The clock is chosen once per image
//! load, by whichever comes first of resolution and the first reading: a clock read before
//! resolution stays on the performance counter for good, so two readings are always of one clock
//! and their difference means something. Resolution is idempotent.
//!
//! # Why the performance counter, not `KeQueryInterruptTime` or `KUSER_SHARED_DATA`
//!
//! * `KeQueryPerformanceCounter` is documented since Windows 2000, callable at any IRQL, monotonic,
//!   and precise (< 1 µs); its frequency is fixed at boot. Scaled by that frequency it counts 100 ns
//!   units like interrupt time, which is all the executor needs: it only ever compares two readings
//!   and arms timers with relative due times. Its zero is not interrupt time's zero, and it may not
//!   count time spent asleep the way interrupt time does; nothing here mixes it with interrupt time.
//!   Wine's hal.dll implements it with `NtQueryPerformanceCounter` (10 MHz, monotonic).
//! * `KeQueryInterruptTime` is right on Windows but returns milliseconds under Wine 8 (it calls
//!   `NtGetTickCount`; measured), which would make every timeout 10,000 times too long there.
//! * `KUSER_SHARED_DATA.InterruptTime` (what `wdm.h`'s x64 `KeQueryInterruptTime` macro reads) is
//!   only emulated under Wine, by decoding the faulting instruction: a plain `mov` works, a load the
//!   compiler folds into a `cmp` page-faults (measured). Rust gives no guarantee about which
//!   instruction a volatile read becomes, so a driver cannot rely on it there.

use crate::types::*;
use core::ffi::c_void;
use core::fmt;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering};

/// Set by [`resolve_optional_exports`] on Wine's ntoskrnl.exe (recognised by its own export
/// `wine_ntoskrnl_main_loop`), whose `IoSetCompletionRoutineEx` is an unimplemented stub that aborts
/// the process when called (measured under Wine 8.0). [`IoSetCompletionRoutineEx`] then fails at once,
/// as it may on Windows for lack of pool, and callers fall back to `IoSetCompletionRoutine`.
static EX_IS_A_STUB: AtomicBool = AtomicBool::new(false);

/// `ExAllocatePool2` as found by [`resolve_optional_exports`]; null: not resolved, or not exported.
static POOL2: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());

/// The `POOL_TYPE` the fallback asks for when the caller passes `POOL_FLAG_NON_PAGED`:
/// `NonPagedPool` until resolution has seen Windows 8 or later, then `NonPagedPoolNx`.
static NON_PAGED_TYPE: AtomicI32 = AtomicI32::new(NonPagedPool);

/// The clock in use: [`CLOCK_UNDECIDED`], [`CLOCK_COUNTER`] (the performance-counter fallback,
/// chosen for good), or the address of `KeQueryInterruptTimePrecise`. One atomic, so that a
/// reader and resolution agree on one clock with a single compare-exchange.
static CLOCK: AtomicPtr<c_void> = AtomicPtr::new(CLOCK_UNDECIDED);
const CLOCK_UNDECIDED: *mut c_void = ptr::null_mut();
/// Never a function's address: code is not mapped at address 1.
const CLOCK_COUNTER: *mut c_void = ptr::without_provenance_mut(1);

type ExAllocatePool2Fn = unsafe extern "system" fn(POOL_FLAGS, SIZE_T, ULONG) -> PVOID;
type KeQueryInterruptTimePreciseFn = unsafe extern "system" fn(*mut ULONG64) -> ULONG64;

/// 100 ns units per second.
const UNITS_PER_SECOND: u64 = 10_000_000;

/// The first Windows whose kernel has `NonPagedPoolNx`: 6.2 (Windows 8).
const NX_POOL_SINCE: (ULONG, ULONG) = (6, 2);

/// What [`resolve_optional_exports`] found, for the driver's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionalExports {
    /// `ExAllocatePool2` is exported and used.
    pub pool2: bool,
    /// `KeQueryInterruptTimePrecise` is exported and is the clock.
    pub precise_clock: bool,
    /// The clock had already been read (and so stays on the performance counter) when resolution
    /// found `KeQueryInterruptTimePrecise`.
    pub clock_fixed_before: bool,
    /// The fallback allocates `POOL_FLAG_NON_PAGED` from `NonPagedPoolNx` (Windows 8 and later).
    pub nx_pool: bool,
    /// `RtlGetVersion`'s major, minor and build numbers (zeros if it was not called: not
    /// PASSIVE_LEVEL).
    pub version: (ULONG, ULONG, ULONG),
    /// The kernel is Wine's ntoskrnl.exe: [`IoSetCompletionRoutineEx`] is a stub there, so it is
    /// not called.
    pub wine: bool,
}

impl fmt::Display for OptionalExports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor, build) = self.version;
        write!(f, "kernel {major}.{minor}.{build}; ")?;
        if self.pool2 {
            f.write_str("ExAllocatePool2 found")?;
        } else {
            let pool = if self.nx_pool { "NonPagedPoolNx" } else { "NonPagedPool" };
            write!(f, "ExAllocatePool2 missing (ExAllocatePoolWithTag {pool} + zeroing)")?;
        }
        if self.precise_clock {
            f.write_str(", KeQueryInterruptTimePrecise found")?;
        } else if self.clock_fixed_before {
            f.write_str(
                ", KeQueryInterruptTimePrecise not used (clock read before resolution; KeQueryPerformanceCounter)",
            )?;
        } else {
            f.write_str(", KeQueryInterruptTimePrecise missing (KeQueryPerformanceCounter)")?;
        }
        if self.wine {
            f.write_str("; Wine's ntoskrnl: IoSetCompletionRoutineEx is a stub, IoSetCompletionRoutine is used")?;
        }
        Ok(())
    }
}

/// Looks up `ExAllocatePool2` and `KeQueryInterruptTimePrecise` with `MmGetSystemRoutineAddress`
/// and asks `RtlGetVersion` whether `NonPagedPoolNx` exists, so that [`ExAllocatePool2`] and
/// [`KeQueryInterruptTimePrecise`] call the real routines where the kernel exports them. Call it at
/// the start of DriverEntry. Idempotent. Above PASSIVE_LEVEL (where both lookups are not allowed)
/// it resolves nothing and the fallbacks stay in use.
pub fn resolve_optional_exports() -> OptionalExports {
    let mut found = OptionalExports {
        pool2: false,
        precise_clock: false,
        clock_fixed_before: false,
        nx_pool: false,
        version: (0, 0, 0),
        wine: false,
    };
    if crate::KeGetCurrentIrql() != PASSIVE_LEVEL {
        return found;
    }
    let mut info = RTL_OSVERSIONINFOW {
        dwOSVersionInfoSize: size_of::<RTL_OSVERSIONINFOW>() as ULONG,
        dwMajorVersion: 0,
        dwMinorVersion: 0,
        dwBuildNumber: 0,
        dwPlatformId: 0,
        szCSDVersion: [0; 128],
    };
    // SAFETY: PASSIVE_LEVEL (checked above); `info` is a writable RTL_OSVERSIONINFOW whose size
    // field says so.
    if NT_SUCCESS(unsafe { crate::RtlGetVersion(&mut info) }) {
        found.version = (info.dwMajorVersion, info.dwMinorVersion, info.dwBuildNumber);
        if (info.dwMajorVersion, info.dwMinorVersion) >= NX_POOL_SINCE {
            NON_PAGED_TYPE.store(NonPagedPoolNx, Ordering::Relaxed);
        }
    }
    found.nx_pool = NON_PAGED_TYPE.load(Ordering::Relaxed) == NonPagedPoolNx;

    found.wine = !system_routine(&utf16(b"wine_ntoskrnl_main_loop")).is_null();
    EX_IS_A_STUB.store(found.wine, Ordering::Relaxed);

    let pool2 = system_routine(&utf16(b"ExAllocatePool2"));
    POOL2.store(pool2, Ordering::Release);
    found.pool2 = !pool2.is_null();

    let precise = system_routine(&utf16(b"KeQueryInterruptTimePrecise"));
    if !precise.is_null() {
        match CLOCK.compare_exchange(CLOCK_UNDECIDED, precise, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => found.precise_clock = true,
            // Resolved before (the routine is the clock: its address need not compare equal,
            // Rust does not promise that), or the counter was fixed by an earlier reading.
            Err(current) => {
                found.precise_clock = current != CLOCK_COUNTER;
                found.clock_fixed_before = current == CLOCK_COUNTER;
            }
        }
    }
    found
}

/// `MmGetSystemRoutineAddress` for an ASCII name given as UTF-16 code units. PASSIVE_LEVEL.
fn system_routine(name: &[u16]) -> PVOID {
    let mut buffer = [0u16; 64];
    let len = name.len().min(buffer.len());
    buffer[..len].copy_from_slice(&name[..len]);
    let bytes = (len * 2) as USHORT;
    let mut name = UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: buffer.as_mut_ptr(),
    };
    // SAFETY: PASSIVE_LEVEL (every caller checks); `name` describes `len` valid UTF-16 code units
    // in a local buffer that outlives the call.
    unsafe { crate::MmGetSystemRoutineAddress(&mut name) }
}

/// An ASCII name as UTF-16 code units, at compile time.
const fn utf16<const N: usize>(ascii: &[u8; N]) -> [u16; N] {
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        out[i] = ascii[i] as u16;
        i += 1;
    }
    out
}

/// `IoSetCompletionRoutineEx` (imported: every Windows since XP has it), except on a kernel where
/// [`resolve_optional_exports`] found it to be a stub (Wine's), where it returns
/// `STATUS_NOT_IMPLEMENTED` at once and leaves the IRP as it was, as the real routine does when it
/// fails. Call [`resolve_optional_exports`] in DriverEntry before any use: under Wine, a call before
/// it reaches the stub, which ends the process.
///
/// # Safety
/// As for the kernel's routine: `Irp` is a live IRP the caller owns, with a next stack location, and
/// `DeviceObject` a device object of the caller's driver. IRQL <= DISPATCH_LEVEL.
pub unsafe extern "system" fn IoSetCompletionRoutineEx(
    DeviceObject: PDEVICE_OBJECT,
    Irp: PIRP,
    CompletionRoutine: PIO_COMPLETION_ROUTINE,
    Context: PVOID,
    InvokeOnSuccess: BOOLEAN,
    InvokeOnError: BOOLEAN,
    InvokeOnCancel: BOOLEAN,
) -> NTSTATUS {
    if EX_IS_A_STUB.load(Ordering::Relaxed) {
        return STATUS_NOT_IMPLEMENTED;
    }
    #[cfg(not(target_os = "windows"))]
    use crate::host::api::IoSetCompletionRoutineEx as kernel_routine;
    #[cfg(target_os = "windows")]
    use crate::windows::IoSetCompletionRoutineEx as kernel_routine;
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        kernel_routine(
            DeviceObject,
            Irp,
            CompletionRoutine,
            Context,
            InvokeOnSuccess,
            InvokeOnError,
            InvokeOnCancel,
        )
    }
}

/// `ExAllocatePool2`: the kernel's own where it exports it (after [`resolve_optional_exports`]),
/// otherwise `ExAllocatePoolWithTag` with the `POOL_TYPE` matching `Flags`, zeroed unless
/// `POOL_FLAG_UNINITIALIZED`. The fallback honours `POOL_FLAG_NON_PAGED` (`NonPagedPoolNx` on
/// Windows 8 and later, `NonPagedPool` before), `POOL_FLAG_NON_PAGED_EXECUTE`, `POOL_FLAG_PAGED`,
/// `POOL_FLAG_CACHE_ALIGNED` and `POOL_FLAG_UNINITIALIZED`; it returns NULL for any other flag
/// (`POOL_FLAG_USE_QUOTA` and `POOL_FLAG_RAISE_ON_FAILURE` need routines it does not import) and
/// for anything but exactly one pool type.
///
/// # Safety
/// The kernel's contract: IRQL <= DISPATCH_LEVEL for nonpaged pool, <= APC_LEVEL for paged pool.
pub unsafe extern "system" fn ExAllocatePool2(Flags: POOL_FLAGS, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID {
    let resolved = POOL2.load(Ordering::Acquire);
    if !resolved.is_null() {
        // SAFETY: a non-null POOL2 is what MmGetSystemRoutineAddress returned for
        // "ExAllocatePool2", whose documented signature this is; the caller keeps its contract.
        let pool2 = unsafe { core::mem::transmute::<*mut c_void, ExAllocatePool2Fn>(resolved) };
        // SAFETY: as above.
        return unsafe { pool2(Flags, NumberOfBytes, Tag) };
    }
    let Some(pool_type) = fallback_pool_type(Flags, NON_PAGED_TYPE.load(Ordering::Relaxed)) else {
        return ptr::null_mut();
    };
    // SAFETY: a POOL_TYPE every supported Windows accepts (NonPagedPoolNx only once RtlGetVersion
    // said Windows 8 or later); the IRQL is the caller's contract, the same for both routines.
    let p = unsafe { crate::ExAllocatePoolWithTag(pool_type, NumberOfBytes, Tag) };
    if !p.is_null() && Flags & POOL_FLAG_UNINITIALIZED == 0 {
        // SAFETY: a fresh block of at least `NumberOfBytes` writable bytes, resident at the
        // caller's IRQL (the pool type matches the IRQL the caller may allocate it at).
        unsafe { ptr::write_bytes(p.cast::<u8>(), 0, NumberOfBytes) };
    }
    p
}

/// The `POOL_TYPE` of `ExAllocatePoolWithTag` that gives what `ExAllocatePool2(Flags, ..)` gives
/// (apart from zeroing), with `non_paged` standing for `POOL_FLAG_NON_PAGED`; `None` for flags it
/// cannot honour.
pub(crate) fn fallback_pool_type(flags: POOL_FLAGS, non_paged: POOL_TYPE) -> Option<POOL_TYPE> {
    const HONOURED: POOL_FLAGS = POOL_FLAG_NON_PAGED
        | POOL_FLAG_NON_PAGED_EXECUTE
        | POOL_FLAG_PAGED
        | POOL_FLAG_CACHE_ALIGNED
        | POOL_FLAG_UNINITIALIZED;
    if flags & !HONOURED != 0 {
        return None;
    }
    let base = match flags & (POOL_FLAG_NON_PAGED | POOL_FLAG_NON_PAGED_EXECUTE | POOL_FLAG_PAGED) {
        POOL_FLAG_NON_PAGED => non_paged,
        POOL_FLAG_NON_PAGED_EXECUTE => NonPagedPoolExecute,
        POOL_FLAG_PAGED => PagedPool,
        _ => return None,
    };
    if flags & POOL_FLAG_CACHE_ALIGNED == 0 {
        return Some(base);
    }
    // The cache-aligned variant of each type is the type + 4 (`wdm.h`).
    Some(match base {
        NonPagedPoolNx => NonPagedPoolNxCacheAligned,
        PagedPool => PagedPoolCacheAligned,
        _ => NonPagedPoolCacheAligned,
    })
}

/// `KeQueryInterruptTimePrecise`: the kernel's own where it exports it and resolution came before
/// the first reading, otherwise the performance counter scaled to 100 ns units (see the module
/// documentation). Either way a monotonic count of 100 ns units; `*QpcTimeStamp` receives the
/// performance-counter value the result was computed from. Callable at any IRQL.
///
/// # Safety
/// `QpcTimeStamp` is null or valid for a write.
pub unsafe extern "system" fn KeQueryInterruptTimePrecise(QpcTimeStamp: *mut ULONG64) -> ULONG64 {
    let mut clock = CLOCK.load(Ordering::Acquire);
    if clock == CLOCK_UNDECIDED {
        // The first reading before resolution fixes the fallback (or finds that resolution just
        // chose the precise routine).
        clock = match CLOCK.compare_exchange(CLOCK_UNDECIDED, CLOCK_COUNTER, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => CLOCK_COUNTER,
            Err(current) => current,
        };
    }
    if clock != CLOCK_COUNTER && clock != CLOCK_UNDECIDED {
        // SAFETY: any other value of CLOCK is what MmGetSystemRoutineAddress returned for
        // "KeQueryInterruptTimePrecise", whose documented signature this is.
        let precise = unsafe { core::mem::transmute::<*mut c_void, KeQueryInterruptTimePreciseFn>(clock) };
        let mut qpc = 0;
        // SAFETY: the out-parameter is a valid local (the routine does not accept NULL).
        let units = unsafe { precise(&mut qpc) };
        if !QpcTimeStamp.is_null() {
            // SAFETY: the caller's contract.
            unsafe { QpcTimeStamp.write(qpc) };
        }
        return units;
    }
    let mut frequency = LARGE_INTEGER::default();
    // SAFETY: callable at any IRQL; the out-parameter is a valid local.
    let counter = unsafe { crate::KeQueryPerformanceCounter(&mut frequency) };
    if !QpcTimeStamp.is_null() {
        // SAFETY: the caller's contract.
        unsafe { QpcTimeStamp.write(counter.QuadPart as ULONG64) };
    }
    counter_to_100ns(counter.QuadPart, frequency.QuadPart)
}

/// A performance-counter value in 100 ns units: `floor(counter * 10^7 / frequency)`, exactly (the
/// whole seconds and the remainder are scaled separately, the remainder in 128 bits), so it is
/// monotonic in `counter`. Zero for a non-positive frequency or counter, which Windows XP and later
/// never report.
pub(crate) fn counter_to_100ns(counter: i64, frequency: i64) -> u64 {
    if counter <= 0 || frequency <= 0 {
        return 0;
    }
    let (counter, frequency) = (counter as u64, frequency as u64);
    let seconds = counter / frequency;
    let rest = counter % frequency;
    // rest < frequency, so rest * 10^7 / frequency < 10^7: no overflow in 128 bits, and it fits u64.
    let fraction = ((rest as u128 * UNITS_PER_SECOND as u128) / frequency as u128) as u64;
    seconds.saturating_mul(UNITS_PER_SECOND).saturating_add(fraction)
}

/// Forgets what resolution found, as a fresh image load would (a new emulation session).
#[cfg(not(target_os = "windows"))]
pub(crate) fn reset() {
    POOL2.store(ptr::null_mut(), Ordering::Release);
    EX_IS_A_STUB.store(false, Ordering::Relaxed);
    NON_PAGED_TYPE.store(NonPagedPool, Ordering::Relaxed);
    CLOCK.store(CLOCK_UNDECIDED, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_is_scaled_exactly_to_100ns_units() {
        assert_eq!(counter_to_100ns(10_000_000, 10_000_000), 10_000_000);
        assert_eq!(counter_to_100ns(3_579_545, 3_579_545), 10_000_000);
        assert_eq!(counter_to_100ns(1, 3_579_545), 2); // 2.79 units, floored
        // A TSC-rate counter after a year: no overflow, exact whole seconds.
        let hz = 3_500_000_000i64;
        let year = 365 * 24 * 3600;
        assert_eq!(counter_to_100ns(hz * year, hz), year as u64 * 10_000_000);
        assert_eq!(
            counter_to_100ns(hz * year + hz / 2, hz),
            year as u64 * 10_000_000 + 5_000_000
        );
        assert_eq!(counter_to_100ns(0, hz), 0);
        assert_eq!(counter_to_100ns(5, 0), 0);
    }

    #[test]
    fn the_scaled_counter_never_goes_backwards() {
        // Miri runs this a thousand times slower.
        let steps = if cfg!(miri) { 200 } else { 200_000 };
        for hz in [1_000, 3_579_545, 10_000_000, 14_318_180, 2_400_000_000i64] {
            let mut last = 0;
            for counter in (0..steps).map(|i| i * 7 + hz * 1_000) {
                let t = counter_to_100ns(counter, hz);
                assert!(t >= last, "{counter} at {hz} Hz gave {t} < {last}");
                last = t;
            }
        }
    }

    #[test]
    fn each_honoured_flag_combination_maps_to_its_pool_type() {
        let nx = NonPagedPoolNx;
        assert_eq!(fallback_pool_type(POOL_FLAG_NON_PAGED, nx), Some(NonPagedPoolNx));
        assert_eq!(
            fallback_pool_type(POOL_FLAG_NON_PAGED, NonPagedPool),
            Some(NonPagedPool)
        );
        assert_eq!(
            fallback_pool_type(POOL_FLAG_NON_PAGED | POOL_FLAG_CACHE_ALIGNED, nx),
            Some(NonPagedPoolNxCacheAligned)
        );
        assert_eq!(
            fallback_pool_type(POOL_FLAG_NON_PAGED | POOL_FLAG_CACHE_ALIGNED, NonPagedPool),
            Some(NonPagedPoolCacheAligned)
        );
        assert_eq!(
            fallback_pool_type(POOL_FLAG_NON_PAGED_EXECUTE, nx),
            Some(NonPagedPoolExecute)
        );
        assert_eq!(
            fallback_pool_type(POOL_FLAG_PAGED | POOL_FLAG_UNINITIALIZED, nx),
            Some(PagedPool)
        );
        assert_eq!(
            fallback_pool_type(POOL_FLAG_PAGED | POOL_FLAG_CACHE_ALIGNED, nx),
            Some(PagedPoolCacheAligned)
        );
    }

    #[test]
    fn flags_the_fallback_cannot_honour_are_refused() {
        let nx = NonPagedPoolNx;
        assert_eq!(fallback_pool_type(0, nx), None);
        assert_eq!(fallback_pool_type(POOL_FLAG_NON_PAGED | POOL_FLAG_PAGED, nx), None);
        assert_eq!(fallback_pool_type(POOL_FLAG_NON_PAGED | POOL_FLAG_USE_QUOTA, nx), None);
        assert_eq!(
            fallback_pool_type(POOL_FLAG_NON_PAGED | POOL_FLAG_RAISE_ON_FAILURE, nx),
            None
        );
        assert_eq!(fallback_pool_type(POOL_FLAG_NON_PAGED | 0x1000, nx), None);
    }

    #[test]
    fn names_become_utf16() {
        assert_eq!(utf16(b"Ke"), [b'K' as u16, b'e' as u16]);
    }
}

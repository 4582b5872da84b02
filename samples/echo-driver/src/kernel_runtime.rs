//! What a `no_std` kernel-mode PE needs from the driver itself (Windows target only): the panic
//! handler and `_fltused`. The C runtime functions core calls are imported from ntoskrnl.exe by `nt`.

use core::panic::PanicInfo;

/// The linker looks for `_fltused` in any image that uses floating point (core's formatting does);
/// the CRT that normally defines it is not linked (/NODEFAULTLIB).
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)] // the CRT's name
pub static _fltused: i32 = 0;

/// The bug check code of a panic in this driver (a Rust panic is a driver bug: nothing in the
/// driver's paths panics on input, so reaching this means a broken invariant). A driver-defined
/// code, none of Microsoft's documented ones, so a crash dump names this driver's panic at once; the
/// low half is the echo port (0x9C47 = 40007).
pub const ECHO_DRIVER_PANIC: u32 = 0xE0C4_9C47;

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    /// Brings the system down with a bug check; never returns.
    fn KeBugCheckEx(
        BugCheckCode: u32,
        BugCheckParameter1: usize,
        BugCheckParameter2: usize,
        BugCheckParameter3: usize,
        BugCheckParameter4: usize,
    ) -> !;
}

/// A panic in the kernel is a bug check (release builds use `panic = "abort"`, so there is no
/// unwinding). Parameter 1 is the source line, 2 the address of the file name's bytes, 3 its length:
/// enough for a crash dump to point at the panic.
#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let (line, file, len) = match info.location() {
        Some(location) => (
            location.line() as usize,
            location.file().as_ptr() as usize,
            location.file().len(),
        ),
        None => (0, 0, 0),
    };
    // SAFETY: KeBugCheckEx may be called at any IRQL and does not return.
    unsafe { KeBugCheckEx(ECHO_DRIVER_PANIC, line, file, len, 0) }
}

/// `ExceptionContinueSearch` of `EXCEPTION_DISPOSITION`.
const EXCEPTION_CONTINUE_SEARCH: i32 = 1;

/// The MSVC C++ exception personality routine, which the precompiled `core` names in its unwind
/// tables (it is built with `panic = "unwind"`). This driver never unwinds (`panic = "abort"`, and
/// the panic handler bug checks), so the only way the kernel's exception dispatcher could reach it is
/// a structured exception passing through a `core` frame; the answer is then the truth — no handler
/// in this frame — and the search continues to the next frame (ultimately a bug check).
#[unsafe(no_mangle)]
pub extern "C" fn __CxxFrameHandler3(
    _exception_record: *mut core::ffi::c_void,
    _establisher_frame: *mut core::ffi::c_void,
    _context: *mut core::ffi::c_void,
    _dispatcher_context: *mut core::ffi::c_void,
) -> i32 {
    EXCEPTION_CONTINUE_SEARCH
}

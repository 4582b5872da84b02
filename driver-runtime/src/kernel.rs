//! The kernel-mode items (Windows target only): the panic handler, `_fltused` and the personality
//! routine stub.

use crate::PANIC_BUG_CHECK_CODE;
use core::panic::PanicInfo;

/// The linker looks for `_fltused` in any image that uses floating point (core's formatting does);
/// the CRT that normally defines it is not linked (`/NODEFAULTLIB`).
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)] // the CRT's name
pub static _fltused: i32 = 0;

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

unsafe extern "C" {
    /// The first byte of this image (its DOS header), defined by the linker (lld-link and link.exe).
    static __ImageBase: u8;
}

/// A panic in the kernel is a bug check (release builds use `panic = "abort"`, so there is no
/// unwinding). The parameters are those [`PANIC_BUG_CHECK_CODE`] documents: enough for a crash dump
/// to point at the panic and the driver.
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
    // Only the address is taken; the byte is never read.
    let image_base = &raw const __ImageBase as usize;
    // SAFETY: KeBugCheckEx may be called at any IRQL and does not return.
    unsafe { KeBugCheckEx(PANIC_BUG_CHECK_CODE, line, file, len, image_base) }
}

/// `ExceptionContinueSearch` of `EXCEPTION_DISPOSITION`.
const EXCEPTION_CONTINUE_SEARCH: i32 = 1;

/// The MSVC C++ exception personality routine, which the precompiled `core` names in its unwind
/// tables (it is built with `panic = "unwind"`). A driver on this runtime never unwinds (`panic =
/// "abort"`, and the panic handler bug checks), so the only way the kernel's exception dispatcher
/// could reach it is a structured exception passing through a `core` frame; the answer is then the
/// truth — no handler in this frame — and the search continues to the next frame (ultimately a bug
/// check).
#[unsafe(no_mangle)]
pub extern "C" fn __CxxFrameHandler3(
    _exception_record: *mut core::ffi::c_void,
    _establisher_frame: *mut core::ffi::c_void,
    _context: *mut core::ffi::c_void,
    _dispatcher_context: *mut core::ffi::c_void,
) -> i32 {
    EXCEPTION_CONTINUE_SEARCH
}

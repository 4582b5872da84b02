//! Debug output through `DbgPrintEx`.

use crate::types::{DPFLTR_IHVDRIVER_ID, ULONG};

/// Prints one line to the kernel debugger at `level` (`DPFLTR_*_LEVEL`) for the IHV driver component.
/// The message needs no NUL terminator: it is passed as a counted `%.*s` argument, so a `%` inside it
/// is never interpreted. Callable at any IRQL <= DISPATCH_LEVEL.
pub fn debug_print(level: ULONG, message: &str) {
    let len = message.len().min(i32::MAX as usize) as i32;
    // SAFETY: the format string is a NUL-terminated literal that consumes exactly the two variadic
    // arguments passed (an int precision and a pointer to `len` readable bytes).
    unsafe {
        super::DbgPrintEx(
            DPFLTR_IHVDRIVER_ID,
            level,
            c"%.*s\n".as_ptr().cast(),
            len,
            message.as_ptr(),
        )
    };
}

//! `DbgPrintEx` on the host. The kernel's is C-variadic and cannot be defined in stable Rust, so the
//! host (and the Windows twin next to the imports) offers `debug_print(level, message)` instead.

use crate::types::*;

/// Prints `message` at a `DPFLTR_*_LEVEL`, through the `log` crate (error / warn / trace / info; other levels: debug).
/// Never fails, like `DbgPrintEx`: where the line goes is the logger's business, and a logger must
/// not panic when its output is gone (the echo driver's host program drops the line).
pub fn debug_print(level: ULONG, message: &str) {
    let level = match level {
        DPFLTR_ERROR_LEVEL => log::Level::Error,
        DPFLTR_WARNING_LEVEL => log::Level::Warn,
        DPFLTR_TRACE_LEVEL => log::Level::Trace,
        DPFLTR_INFO_LEVEL => log::Level::Info,
        _ => log::Level::Debug,
    };
    log::log!(target: "nt", level, "{message}");
}

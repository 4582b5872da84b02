//! The real kernel: imports from ntoskrnl.exe and the IRQL intrinsics.

mod imports;
mod irql;

pub use imports::*;
pub use irql::*;

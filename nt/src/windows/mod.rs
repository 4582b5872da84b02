//! The real kernel: imports from ntoskrnl.exe and the IRQL intrinsics.

mod crt;
mod debug;
mod fallbacks;
mod imports;
mod irql;
mod netio;

pub use crt::*;
pub use debug::*;
pub use fallbacks::*;
pub use imports::*;
pub use irql::*;
pub use netio::*;

//! The real kernel: imports from ntoskrnl.exe and the IRQL intrinsics.

mod crt;
mod debug;
mod fallbacks;
mod imports;
// IRQL is per architecture: CR8 on x64, kernel calls on ARM64.
#[cfg(target_arch = "x86_64")]
mod irql;
#[cfg(target_arch = "aarch64")]
#[path = "irql_arm64.rs"]
mod irql;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("the nt crate's IRQL routines are written for x86_64 and aarch64 Windows only");
mod netio;

pub use crt::*;
pub use debug::*;
pub use fallbacks::*;
pub use imports::*;
pub use irql::*;
pub use netio::*;

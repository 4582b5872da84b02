//! What every `no_std` Windows kernel driver written in Rust needs from a runtime, in one crate:
//!
//! * a **panic handler** that bug checks ([`PANIC_BUG_CHECK_CODE`]): a panic in the kernel is a
//!   driver bug, and there is nothing to unwind to;
//! * **`_fltused`**, which the linker wants in any image that uses floating point (core's formatting
//!   does) and which the C runtime would define;
//! * **`__CxxFrameHandler3`**, the MSVC personality routine the precompiled `core` names in its unwind
//!   tables, as a stub that never handles anything;
//! * the **link arguments** of a kernel-mode PE (`/DRIVER`, `/SUBSYSTEM:NATIVE`,
//!   `/ENTRY:DriverEntry`, ...), emitted by one call, [`link_driver`], from the driver's build script
//!   (with the `build` feature).
//!
//! The C runtime functions `core` calls (`memcpy`, `memset`, ...) are not here: the `nt` crate
//! imports them from ntoskrnl.exe, as a WDK-built C driver does.
//!
//! # Use
//!
//! ```toml
//! [dependencies]
//! wdm-async-driver-runtime = "0.1"
//!
//! [build-dependencies]
//! wdm-async-driver-runtime = { version = "0.1", features = ["build"] }
//! ```
//!
//! ```ignore
//! // build.rs
//! fn main() {
//!     wdm_driver_runtime::link_driver();
//! }
//! ```
//!
//! ```ignore
//! // src/lib.rs: links the runtime in (a dependency that no code names is not linked at all).
//! #[cfg(not(test))]
//! use wdm_driver_runtime as _;
//! ```
//!
//! On any target other than Windows, and with the `build` feature, the kernel-mode items are left
//! out, so the same driver crate also builds as an ordinary host library (for example on an
//! emulation of the kernel).
#![no_std]
#![warn(missing_docs)]

// The build-script half needs std; it is also compiled for the documentation.
#[cfg(any(feature = "build", doc))]
extern crate std;

#[cfg(any(feature = "build", doc))]
mod build;
#[cfg(any(feature = "build", doc))]
pub use build::{LINK_ARGS, link_args, link_driver};

// Not in a unit-test build (std's panic handler is there), in the build script's copy of this
// crate (the `build` feature: compiled for the host, with std), nor in the documentation's.
#[cfg(all(target_os = "windows", not(test), not(doc), not(feature = "build")))]
mod kernel;

/// The bug check code of a Rust panic in a driver built on this crate: driver-defined, none of
/// Microsoft's documented codes, so a crash dump names a Rust panic at once. The parameters:
///
/// 1. the source line of the panic;
/// 2. the address of the source file's name (UTF-8 bytes, not NUL-terminated), inside the driver's
///    image;
/// 3. the length of that name in bytes;
/// 4. the base address of the driver's image (`__ImageBase`), which tells which driver panicked
///    when several are built on this crate.
pub const PANIC_BUG_CHECK_CODE: u32 = 0xE0C4_5253;

//! `#[repr(C)]` declarations of the NT types this project uses, identical on every target.
//!
//! The host emulation stores its state in these very structures (an IRP's stack locations, an MDL's
//! mapped address, a KEVENT's signal state), so code written against them behaves the same under the
//! emulation as in the kernel. Every x64 offset the project relies on is pinned by a `const`
//! assertion in [`layout`], and cross-checked against the mingw-w64 DDK headers by a test.

mod basic;
mod driver;
mod irp;
mod ke;
mod layout;
pub(crate) use layout::lookup as layout_lookup;
pub use layout::{CONSTANT_TABLE, LAYOUT};
mod mdl;
mod status;

pub use basic::*;
pub use driver::*;
pub use irp::*;
pub use ke::*;
pub use mdl::*;
pub use status::*;

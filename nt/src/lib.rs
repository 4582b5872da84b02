//! The NT kernel ABI this project is written against.
//!
//! * On `target_os = "windows"`: `#[repr(C)]` declarations, `raw-dylib` imports of ntoskrnl.exe and
//!   netio.sys, and the `FORCEINLINE` helpers of `wdm.h` rewritten in Rust. `no_std`.
//! * Everywhere else: the same names, implemented by a host emulation of the kernel that checks the
//!   rules a real kernel (with Driver Verifier) enforces, and stops the test that breaks one with a
//!   message naming the rule, the object and where it was created. The module `emu` controls it
//!   from tests.
//!
//! Names follow the WDK exactly (`IoAllocateIrp`, `KEVENT`, `STATUS_PENDING`), so code written
//! against this crate reads like the C a driver developer already knows.
//!
//! # Contract
//!
//! The functions have the WDK's IRQL and ownership rules; the unsafe ones state theirs in a
//! `# Safety` section or on the WDK page of the same name. The emulation reports a broken rule as a
//! bug check would, so a test fails where a driver would crash.
//!
//! # One crate, two APIs
//!
//! The public API depends on the target. On Windows it is the kernel's: the types, constants,
//! imports and inline helpers a driver calls. Elsewhere it is the same names, with the same
//! signatures, plus the module `emu`: sessions, leak reports, the recording mode of negative tests,
//! and the WSK provider's transports. Driver code names `emu` only under
//! `#[cfg(not(target_os = "windows"))]`. docs.rs documents both builds (pick the target there);
//! locally, `cargo doc -p wdm-async-nt` documents the host build and
//! `cargo doc -p wdm-async-nt --target x86_64-pc-windows-msvc` the kernel one.
//!
#![cfg_attr(
    not(target_os = "windows"),
    doc = "This is the host build: see [`emu`] for the emulation's controls."
)]
#![cfg_attr(
    target_os = "windows",
    doc = "This is the Windows build: the kernel's API, without the host emulation's `emu`."
)]
#![cfg_attr(target_os = "windows", no_std)]
#![warn(missing_docs)]
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    clippy::upper_case_acronyms
)]

mod inline_helpers;
mod optional;
mod print;
mod types;
mod wsk;

pub use inline_helpers::*;
pub use optional::{
    ExAllocatePool2, IoSetCompletionRoutineEx, KeQueryInterruptTimePrecise, OptionalExports, resolve_optional_exports,
};
pub use print::LineBuffer;
pub use types::*;
pub use wsk::*;

#[cfg(target_os = "windows")]
mod windows;
#[cfg(target_os = "windows")]
pub use windows::*;

#[cfg(not(target_os = "windows"))]
mod host;
#[cfg(not(target_os = "windows"))]
pub use host::api::*;
#[cfg(not(target_os = "windows"))]
pub use host::emu;

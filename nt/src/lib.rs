//! The NT kernel ABI this project is written against.
//!
//! * On `target_os = "windows"`: `#[repr(C)]` declarations, `raw-dylib` imports of ntoskrnl.exe and
//!   netio.sys, and the `FORCEINLINE` helpers of `wdm.h` rewritten in Rust. `no_std`.
//! * Everywhere else: the same names, implemented by a host emulation of the kernel that checks the
//!   rules a real kernel (with Driver Verifier) enforces, and stops the test that breaks one with a
//!   message naming the rule, the object and where it was created. See [`emu`].
//!
//! Names follow the WDK exactly (`IoAllocateIrp`, `KEVENT`, `STATUS_PENDING`), so code written
//! against this crate reads like the C a driver developer already knows.
#![cfg_attr(target_os = "windows", no_std)]
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

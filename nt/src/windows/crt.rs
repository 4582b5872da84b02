//! The C runtime symbols `core` and `compiler_builtins` call on MSVC targets. A driver links with
//! `/NODEFAULTLIB`, so no CRT is there; ntoskrnl.exe exports these, and importing them from it is what
//! a C driver built with the WDK does too. Declaring them here (in a crate every driver links) puts
//! them in the generated import library, so the linker resolves core's references to them.

use core::ffi::{c_int, c_void};

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// The C runtime's `memcpy`, from ntoskrnl.exe (`core` calls it).
    pub fn memcpy(dest: *mut c_void, src: *const c_void, count: usize) -> *mut c_void;
    /// The C runtime's `memmove`, from ntoskrnl.exe (`core` calls it).
    pub fn memmove(dest: *mut c_void, src: *const c_void, count: usize) -> *mut c_void;
    /// The C runtime's `memset`, from ntoskrnl.exe (`core` calls it).
    pub fn memset(dest: *mut c_void, c: c_int, count: usize) -> *mut c_void;
    /// The C runtime's `memcmp`, from ntoskrnl.exe (`core` calls it).
    pub fn memcmp(a: *const c_void, b: *const c_void, count: usize) -> c_int;
    /// The C runtime's `strlen`, from ntoskrnl.exe.
    pub fn strlen(s: *const u8) -> usize;
}

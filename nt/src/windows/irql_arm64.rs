//! IRQL on ARM64: there is no CR8. The current IRQL is a byte of the processor control region
//! (KPCR), and raising or lowering it is a call into the kernel, which does more than store that
//! byte. This module imports the three routines, as a driver built with the WDK for ARM64 does.
//!
//! What the ARM64 `wdm.h` declares, and where each fact comes from (Microsoft's ARM64 `wdm.h`
//! itself is not public text that could be read here):
//!
//! * `KeGetCurrentIrql`, `KfRaiseIrql` and `KfLowerIrql` are imported functions, not
//!   `FORCEINLINE` code; `KeRaiseIrql(a, b)` is the macro `*(b) = KfRaiseIrql(a)` and
//!   `KeLowerIrql(a)` the macro `KfLowerIrql(a)`:
//!   - ReactOS `sdk/include/xdk/arm64/ke.h` declares exactly these, `NTHALAPI`, with the note that
//!     Windows does the same on ARM64;
//!   - Microsoft's usersim (issues 214 and PR 215, 2024) had to add `KfLowerIrql` because "when
//!     building against arm64 ... KfLowerIrql is not inlined and is instead expected to be a
//!     function";
//!   - windows-drivers-rs's `PAGED_CODE!` calls the bindgen-generated `KeGetCurrentIrql`
//!     declaration on every target, aarch64 included, and bindgen binds no inline functions.
//! * The module is HAL.dll: Wine's `dlls/hal/hal.spec` exports `KeGetCurrentIrql`, `KfRaiseIrql`
//!   and `KfLowerIrql` from hal.dll for `arm`, `arm64` and `i386` (and none of them from hal.dll on
//!   x86_64); mingw-w64's `libarm32/hal.def` lists the same three in HAL.dll for 32-bit ARM Windows,
//!   whose ntoskrnl.def does not have them; ReactOS's `NTHALAPI` says the same.
//! * What the kernel does (OSR community thread "How's IRQL implemented in ARM64?", a disassembly of
//!   Windows ARM64): `nt!KeGetCurrentIrql` is one byte load, `ldrb w0, [x18, #0x38]` (x18 holds the
//!   KPCR in kernel mode, `CurrentIrql` is at offset 0x38); `nt!KfRaiseIrql` stores the new byte
//!   and then, when `KiIrqlFlags` is set, does further per-processor work. So a driver must not
//!   write that byte itself, and this module does not read it either: it calls the kernel.
//!
//! Not verified here: the text of Microsoft's ARM64 `wdm.h`; the export table of a real ARM64
//! hal.dll (the disassembly names the code `nt!`, so hal.dll's entries are presumably forwarders to
//! ntoskrnl.exe, which the loader resolves like any export); and any of this at run time — there is
//! no ARM64 Windows here.
//!
//! The compiler never touches x18 (LLVM reserves it on Windows targets, where it is the platform
//! register); `check-sys.sh --target aarch64-pc-windows-msvc` checks that no instruction of the image
//! names it.

use crate::types::KIRQL;

// On ARM64 there is one calling convention; "system" is it.
#[link(name = "HAL.dll", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    #[link_name = "KeGetCurrentIrql"]
    fn hal_KeGetCurrentIrql() -> KIRQL;
    fn KfRaiseIrql(NewIrql: KIRQL) -> KIRQL;
    fn KfLowerIrql(NewIrql: KIRQL);
}

/// `KeGetCurrentIrql`.
#[inline(always)]
pub fn KeGetCurrentIrql() -> KIRQL {
    // SAFETY: KeGetCurrentIrql may be called at any IRQL and only reads the current processor's IRQL.
    unsafe { hal_KeGetCurrentIrql() }
}

/// `KeRaiseIrql`: raises to `new_irql` (which must not be lower than the current IRQL) and stores the
/// previous IRQL in `old_irql`. On ARM64 `wdm.h` makes it `*old_irql = KfRaiseIrql(new_irql)`.
///
/// # Safety
/// `new_irql >= KeGetCurrentIrql()`; the caller lowers back with [`KeLowerIrql`].
#[inline(always)]
pub unsafe fn KeRaiseIrql(new_irql: KIRQL, old_irql: &mut KIRQL) {
    // SAFETY: the caller guarantees the raise is monotonic. The call is opaque to the compiler, so no
    // memory access the raise protects is moved before it.
    *old_irql = unsafe { KfRaiseIrql(new_irql) };
}

/// `KeLowerIrql`: back to an IRQL previously returned by [`KeRaiseIrql`]. On ARM64 `wdm.h` makes it
/// `KfLowerIrql(new_irql)`.
///
/// # Safety
/// `new_irql <= KeGetCurrentIrql()` and was the IRQL before the matching raise.
#[inline(always)]
pub unsafe fn KeLowerIrql(new_irql: KIRQL) {
    // SAFETY: the caller restores an IRQL it saved. The call is opaque to the compiler, so no access
    // made at the raised IRQL is moved after it.
    unsafe { KfLowerIrql(new_irql) }
}

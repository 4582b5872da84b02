//! IRQL on x64: the current IRQL is the task-priority register CR8, which `wdm.h` reads and writes
//! inline (`KeGetCurrentIrql`, `KfRaiseIrql`, `KeLowerIrql` are FORCEINLINE there). ARM64 has its own
//! module, `irql_arm64.rs`.

use crate::types::KIRQL;

/// `KeGetCurrentIrql`.
#[inline(always)]
pub fn KeGetCurrentIrql() -> KIRQL {
    let irql: u64;
    // SAFETY: reading CR8 is allowed at CPL 0, where kernel drivers run; it has no side effects.
    unsafe { core::arch::asm!("mov {}, cr8", out(reg) irql, options(nomem, nostack, preserves_flags)) };
    irql as KIRQL
}

/// `KeRaiseIrql`: raises to `new_irql` (which must not be lower than the current IRQL) and stores the
/// previous IRQL in `old_irql`.
///
/// # Safety
/// `new_irql >= KeGetCurrentIrql()`; the caller lowers back with [`KeLowerIrql`].
#[inline(always)]
pub unsafe fn KeRaiseIrql(new_irql: KIRQL, old_irql: &mut KIRQL) {
    *old_irql = KeGetCurrentIrql();
    // SAFETY: the caller guarantees the raise is monotonic; writing CR8 is how wdm.h raises IRQL on x64.
    // No `nomem`: the write is a compiler barrier, so no memory access the raise protects is moved
    // before it (MSVC treats `__writecr8` the same way).
    unsafe { core::arch::asm!("mov cr8, {}", in(reg) new_irql as u64, options(nostack, preserves_flags)) };
}

/// `KeLowerIrql`: back to an IRQL previously returned by [`KeRaiseIrql`].
///
/// # Safety
/// `new_irql <= KeGetCurrentIrql()` and was the IRQL before the matching raise.
#[inline(always)]
pub unsafe fn KeLowerIrql(new_irql: KIRQL) {
    // SAFETY: the caller restores an IRQL it saved; writing CR8 is how wdm.h lowers IRQL on x64.
    // No `nomem`: a compiler barrier, so no access made at the raised IRQL is moved after it.
    unsafe { core::arch::asm!("mov cr8, {}", in(reg) new_irql as u64, options(nostack, preserves_flags)) };
}

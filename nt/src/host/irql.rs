//! Emulated IRQL: one value per host thread, standing for the IRQL of the CPU the thread runs on.
//!
//! On x64 Windows the IRQL is CR8, read and written inline by `KeGetCurrentIrql` / `KeRaiseIrql` /
//! `KeLowerIrql`; here it is a thread-local, and every emulated function checks it against the
//! maximum its documentation allows.

use super::verifier::{Rule, violation};
use crate::types::*;
use std::cell::Cell;

thread_local! {
    static CURRENT: Cell<KIRQL> = const { Cell::new(PASSIVE_LEVEL) };
}

/// The current thread's emulated IRQL.
pub fn current() -> KIRQL {
    CURRENT.with(Cell::get)
}

/// Sets the current thread's emulated IRQL without checks (the emulation's own transitions).
pub(super) fn set(irql: KIRQL) {
    CURRENT.with(|c| c.set(irql));
}

/// `PASSIVE_LEVEL`, `APC_LEVEL`, `DISPATCH_LEVEL` or the number.
pub fn name(irql: KIRQL) -> String {
    match irql {
        PASSIVE_LEVEL => "PASSIVE_LEVEL".into(),
        APC_LEVEL => "APC_LEVEL".into(),
        DISPATCH_LEVEL => "DISPATCH_LEVEL".into(),
        other => format!("{other}"),
    }
}

/// Checks that the current IRQL is at most `max` for a call to `function`; reports
/// [`Rule::IrqlTooHigh`] otherwise. Returns whether the check passed (in recording mode the caller
/// makes its call harmless when it did not).
pub fn require_max(function: &str, max: KIRQL) -> bool {
    let now = current();
    if now <= max {
        return true;
    }
    violation(
        Rule::IrqlTooHigh,
        &format_args!("{function} called at {} (maximum {})", name(now), name(max)),
        None,
    );
    false
}

/// `KeGetCurrentIrql`.
pub fn KeGetCurrentIrql() -> KIRQL {
    current()
}

/// `KeRaiseIrql`: raises to `new_irql` and stores the previous IRQL in `old_irql`. Raising to a lower
/// IRQL is a violation ([`Rule::IrqlMismatch`]); in recording mode the IRQL is left unchanged.
///
/// # Safety
/// Same contract as on Windows: `new_irql >= KeGetCurrentIrql()`, lowered back with [`KeLowerIrql`].
/// (Nothing here is memory-unsafe; the signature matches the kernel's.)
pub unsafe fn KeRaiseIrql(new_irql: KIRQL, old_irql: &mut KIRQL) {
    let now = current();
    *old_irql = now;
    if new_irql < now {
        violation(
            Rule::IrqlMismatch,
            &format_args!("KeRaiseIrql to {} from the higher {}", name(new_irql), name(now)),
            None,
        );
        return;
    }
    set(new_irql);
}

/// `KeLowerIrql`: lowering to a higher IRQL is a violation ([`Rule::IrqlMismatch`]).
///
/// # Safety
/// Same contract as on Windows: `new_irql <= KeGetCurrentIrql()` and was the IRQL before the
/// matching raise.
pub unsafe fn KeLowerIrql(new_irql: KIRQL) {
    let now = current();
    if new_irql > now {
        violation(
            Rule::IrqlMismatch,
            &format_args!("KeLowerIrql to {} from the lower {}", name(new_irql), name(now)),
            None,
        );
        return;
    }
    set(new_irql);
}

/// Runs `f` with the current thread raised to DISPATCH_LEVEL, the way the kernel calls completion
/// routines from a DPC and DPC routines themselves, then restores the previous IRQL. Entering above
/// DISPATCH_LEVEL, or `f` returning at another IRQL, is a [`Rule::IrqlMismatch`].
pub fn at_dispatch<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(KIRQL);
    impl Drop for Restore {
        fn drop(&mut self) {
            set(self.0);
        }
    }
    let before = current();
    if before > DISPATCH_LEVEL {
        violation(
            Rule::IrqlMismatch,
            &format_args!("at_dispatch entered at {}, above DISPATCH_LEVEL", name(before)),
            None,
        );
    }
    let restore = Restore(before);
    set(DISPATCH_LEVEL);
    let result = f();
    let after = current();
    if after != DISPATCH_LEVEL {
        violation(
            Rule::IrqlMismatch,
            &format_args!("routine entered at DISPATCH_LEVEL returned at {}", name(after)),
            None,
        );
    }
    drop(restore);
    result
}

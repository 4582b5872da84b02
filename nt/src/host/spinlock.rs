//! `KeAcquireSpinLockRaiseToDpc` / `KeReleaseSpinLock`: a real spin lock in the caller's `KSPIN_LOCK`
//! word, which holds the owner's emulated thread id while held (like a checked kernel's owner
//! tracking), so recursion and releases by a non-owner are detected.

use super::verifier::{Rule, violation};
use super::{irql, thread_id};
use crate::types::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Views a `KSPIN_LOCK` as the atomic word the kernel treats it as.
///
/// # Safety
/// `lock` points to a live, aligned `usize` that is only accessed atomically while shared.
unsafe fn word<'a>(lock: *mut usize) -> &'a AtomicUsize {
    // SAFETY: `AtomicUsize` has the size and alignment of `usize`; forwarded from the caller.
    unsafe { AtomicUsize::from_ptr(lock) }
}

/// Spins until `lock` is acquired by the current thread; reports recursion ([`Rule::SpinLockRecursion`])
/// instead of deadlocking and then returns `false` without acquiring.
pub(super) fn acquire(lock: &AtomicUsize, what: &dyn std::fmt::Display) -> bool {
    let me = thread_id::current();
    if lock.load(Ordering::Relaxed) == me {
        violation(
            Rule::SpinLockRecursion,
            &format_args!("{what} acquired again by its owner"),
            None,
        );
        return false;
    }
    while lock
        .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
        // Host threads are preemptible and may outnumber CPUs: let the owner run.
        std::thread::yield_now();
    }
    true
}

/// Releases `lock` if the current thread holds it; reports [`Rule::SpinLockNotHeld`] and returns
/// `false` otherwise.
pub(super) fn release(lock: &AtomicUsize, what: &dyn std::fmt::Display) -> bool {
    let me = thread_id::current();
    match lock.compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed) {
        Ok(_) => true,
        Err(owner) => {
            let owner = if owner == 0 {
                "nobody".to_string()
            } else {
                format!("emulated thread #{owner}")
            };
            violation(
                Rule::SpinLockNotHeld,
                &format_args!("{what} released, held by {owner}"),
                None,
            );
            false
        }
    }
}

/// Whether the current thread holds `lock`.
pub(super) fn held_by_me(lock: &AtomicUsize) -> bool {
    lock.load(Ordering::Relaxed) == thread_id::current()
}

/// Checks that the current IRQL is DISPATCH_LEVEL, as it must be while a spin lock is held.
pub(super) fn require_dispatch(function: &str) -> bool {
    let now = irql::current();
    if now == DISPATCH_LEVEL {
        return true;
    }
    violation(
        Rule::IrqlMismatch,
        &format_args!(
            "{function} at {}, but a held spin lock means DISPATCH_LEVEL",
            irql::name(now)
        ),
        None,
    );
    false
}

/// `KeAcquireSpinLockRaiseToDpc`: IRQL <= DISPATCH_LEVEL; raises to DISPATCH_LEVEL, spins, returns the
/// previous IRQL.
///
/// # Safety
/// `SpinLock` points to a live, initialised (zero) `KSPIN_LOCK`.
pub unsafe extern "system" fn KeAcquireSpinLockRaiseToDpc(SpinLock: *mut usize) -> KIRQL {
    let old = irql::current();
    if !irql::require_max("KeAcquireSpinLockRaiseToDpc", DISPATCH_LEVEL) {
        return old;
    }
    // SAFETY: forwarded from the caller's contract.
    let lock = unsafe { word(SpinLock) };
    if acquire(lock, &format_args!("spin lock {SpinLock:p}")) {
        irql::set(DISPATCH_LEVEL);
    }
    old
}

/// `KeReleaseSpinLock`: must be called at DISPATCH_LEVEL by the holder; lowers to `NewIrql`.
///
/// # Safety
/// `SpinLock` points to a live `KSPIN_LOCK`.
pub unsafe extern "system" fn KeReleaseSpinLock(SpinLock: *mut usize, NewIrql: KIRQL) {
    if !require_dispatch("KeReleaseSpinLock") {
        return;
    }
    // SAFETY: forwarded from the caller's contract.
    let lock = unsafe { word(SpinLock) };
    if !release(lock, &format_args!("spin lock {SpinLock:p}")) {
        return;
    }
    if NewIrql > DISPATCH_LEVEL {
        violation(
            Rule::IrqlMismatch,
            &format_args!("KeReleaseSpinLock to {}, above DISPATCH_LEVEL", irql::name(NewIrql)),
            None,
        );
        return;
    }
    irql::set(NewIrql);
}

//! The state word of one operation slot: who may touch the slot's IRP and result, who is to be woken,
//! and who disposes of a result nobody will read.
//!
//! # The operation state machine
//!
//! One `AtomicU32` per [`Op`](crate::op::Op), changed only by the read-modify-writes below.
//!
//! ```text
//!                1 claim                      2 submit
//!   ┌──────┐ ──────────────► ┌────────┐ ──────────────────► ┌─────────────────┐
//!   │ idle │                 │ FUTURE │                     │ FUTURE | KERNEL │
//!   └──────┘ ◄────────────── └────────┘ ◄──────┐            └───┬─────────┬───┘
//!      ▲ ▲      5 release        ▲             │ 4 consume      │         │ 6 future dropped
//!      │ │                       │  ┌──────────┴────────┐  3    │         ▼   (cancel requested)
//!      │ │                       │  │ FUTURE | COMPLETE │ ◄─────┘     ┌────────┐
//!      │ │                       │  └───────────────────┘ complete    │ KERNEL │
//!      │ │                       │ 1' attach (a new future waits      └───┬────┘
//!      │ │                       │    for the kernel to finish)           │ 3 complete
//!      │ │                       └────────────────────────────────────────┤ (nobody to wake)
//!      │ └── 1 claim (stale result disposed first) ◄── ┌──────────┐ ◄──────┘
//!      │                                               │ COMPLETE │  result unread: "stale"
//!      └────────────────────────────────────────────── └──────────┘
//! ```
//!
//! `ORPHANED` is or-ed in when the socket handle that owns the slot is gone, so that no future can
//! ever claim the slot again; whoever then finds an unread result that is a *socket* (accept, socket
//! creation) must close that socket (see `Op::dispose_unread`). A slot that has no IRP (a listener's
//! send slot) is `ORPHANED` from the start ([`OpState::new_unusable`]): nobody can ever own it.
//!
//! Numbered transitions and the function that makes each:
//!
//! 1. A future takes an idle slot (a stale result left by an earlier, dropped future is disposed of
//!    by the claimer before it reuses the slot) — [`OpState::claim`], PASSIVE_LEVEL.
//!    1'. If the kernel still owns the slot's IRP (a dropped future's cancelled operation), the claim
//!    *attaches*: the future sets `FUTURE` and is woken by 3 like the original owner would have been.
//! 2. The owning future lends the IRP to the kernel: `KERNEL` is set *before* the WSK call, because the
//!    completion routine may run inside that call — [`OpState::submit`].
//! 3. The completion routine (any CPU, IRQL <= DISPATCH_LEVEL) clears `KERNEL` and sets `COMPLETE` in
//!    one RMW. The result is the IRP's `IoStatus`, which the provider stored before it completed the
//!    IRP on the routine's thread, so this RMW (Release) publishes it to whoever observes `COMPLETE`
//!    with Acquire. If `FUTURE` was set in the value it replaced, it wakes the future —
//!    [`OpState::complete`]. The slot's memory stays alive after this RMW because it is
//!    part of a socket context whose own reference count the routine releases only afterwards.
//! 4. The future reads the result (only after observing `COMPLETE` with `KERNEL` clear, with Acquire
//!    ordering pairing with 3's Release) — [`OpState::consume`].
//! 5. The future lets go of the slot — [`OpState::release`].
//! 6. A future dropped while `KERNEL` is set first requests cancellation, then clears `FUTURE`
//!    ([`OpState::release`] again); the value it replaced says whether the kernel is still to finish
//!    (then 3 finds nobody to wake) or already finished (then the dropper disposes of the result).
//!
//! A result is therefore read or disposed of exactly once: by the future if it observed `COMPLETE`
//! while holding `FUTURE`, otherwise by the next claimer (1) or by the orphan disposal.

use crate::sync::{AtomicU32, Ordering};

/// A future holds the slot (owns its result and wants to be woken).
pub(crate) const FUTURE: u32 = 1 << 0;
/// The kernel owns the slot's IRP (submitted, completion routine not yet run).
pub(crate) const KERNEL: u32 = 1 << 1;
/// The slot's IRP completed (its `IoStatus`, stored by the provider, holds the result) and the result
/// has not been read or disposed of yet.
pub(crate) const COMPLETE: u32 = 1 << 2;
/// The socket handle owning the slot is gone: no future will claim it again.
pub(crate) const ORPHANED: u32 = 1 << 3;
/// The completion routine has run for the IRP submitted last (set by its first action, cleared
/// before each submission). Read by the submitter right after the WSK call: a call that returned a
/// non-pending status without this bit set left its IRP uncompleted, breaking the IRP contract.
pub(crate) const DELIVERED: u32 = 1 << 4;

/// What [`OpState::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The slot is ours; `stale` says an unread result from a dropped future must be disposed of.
    Owned { stale: bool },
    /// The kernel still owns the IRP of an earlier, dropped operation; we are attached and will be
    /// woken when it completes (transition 1').
    Attached,
    /// Another future holds the slot, or it is orphaned (its handle is gone, or it has no IRP).
    InUse,
}

/// What the completion routine must do after [`OpState::complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completed {
    /// A future holds the slot: wake it.
    Wake,
    /// Nobody holds the slot and the handle is gone: the result must be disposed of by the routine.
    Orphan,
    /// Nobody holds the slot; the result stays for the next claimer or the handle's drop.
    Idle,
}

/// The state word.
pub(crate) struct OpState(AtomicU32);

impl OpState {
    pub(crate) fn new() -> Self {
        Self(AtomicU32::new(0))
    }

    /// The state of a slot nobody may ever own (it has no IRP): `ORPHANED` from the start, so
    /// [`claim`](Self::claim) refuses it and `orphan_slots` skips it.
    pub(crate) fn new_unusable() -> Self {
        Self(AtomicU32::new(ORPHANED))
    }

    /// Transitions 1 and 1'.
    pub(crate) fn claim(&self) -> Claim {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            if current & (FUTURE | ORPHANED) != 0 {
                return Claim::InUse;
            }
            match self
                .0
                .compare_exchange(current, current | FUTURE, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if current & KERNEL != 0 => return Claim::Attached,
                Ok(_) => {
                    return Claim::Owned {
                        stale: current & COMPLETE != 0,
                    };
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Whether the kernel still owns the IRP (for an attached or submitted future).
    pub(crate) fn kernel_owned(&self) -> bool {
        self.0.load(Ordering::Acquire) & KERNEL != 0
    }

    /// Whether a result is ready to be read: `COMPLETE` with `KERNEL` clear (Acquire: pairs with the
    /// completion routine's Release RMW, which comes after the provider's store of the IRP's
    /// `IoStatus` on the same thread, so that store is visible).
    pub(crate) fn is_complete(&self) -> bool {
        self.0.load(Ordering::Acquire) & (COMPLETE | KERNEL) == COMPLETE
    }

    /// Transition 2: clears a consumed or disposed `COMPLETE` and sets `KERNEL`. The caller holds
    /// `FUTURE` (or is the sole owner of an orphaned slot) and `KERNEL` is clear.
    pub(crate) fn submit(&self) {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            debug_assert!(current & KERNEL == 0);
            let next = (current & !COMPLETE) | KERNEL;
            match self
                .0
                .compare_exchange(current, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Transition 3, by the completion routine: one RMW that clears `KERNEL` and sets `COMPLETE`
    /// (`KERNEL` is set and `COMPLETE` clear on entry, so xor flips exactly those two bits).
    pub(crate) fn complete(&self) -> Completed {
        let previous = self.0.fetch_xor(KERNEL | COMPLETE, Ordering::AcqRel);
        debug_assert!(previous & KERNEL != 0 && previous & COMPLETE == 0);
        if previous & FUTURE != 0 {
            Completed::Wake
        } else if previous & ORPHANED != 0 {
            Completed::Orphan
        } else {
            Completed::Idle
        }
    }

    /// Transition 3 for an operation whose result must not be left unread (a produced socket), by the
    /// completion routine: makes it only if a future holds the slot (returns true: wake it).
    /// Otherwise it changes nothing and returns false: the slot stays `KERNEL`-owned and the routine
    /// hands it to the deferred closer, which owns it until its own operation's completion makes
    /// transition 3. A future that claims the slot meanwhile attaches (1') and is woken by that one;
    /// a handle dropped meanwhile leaves the slot to it too (`KERNEL` is set).
    pub(crate) fn complete_if_held(&self) -> bool {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            debug_assert!(current & KERNEL != 0 && current & COMPLETE == 0);
            if current & FUTURE == 0 {
                return false;
            }
            match self.0.compare_exchange_weak(
                current,
                current ^ (KERNEL | COMPLETE),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Clears [`DELIVERED`] before a submission (the submitter owns the IRP, so no routine can run).
    pub(crate) fn clear_delivered(&self) {
        self.0.fetch_and(!DELIVERED, Ordering::Relaxed);
    }

    /// The completion routine's first action: marks the IRP's completion as delivered (Release:
    /// the submitter's Acquire load in [`delivered`](Self::delivered) sees it once the provider's
    /// non-pending return, which follows the completion, is observed).
    pub(crate) fn mark_delivered(&self) {
        self.0.fetch_or(DELIVERED, Ordering::Release);
    }

    /// Whether the completion routine has run since the last [`clear_delivered`](Self::clear_delivered).
    pub(crate) fn delivered(&self) -> bool {
        self.0.load(Ordering::Acquire) & DELIVERED != 0
    }

    /// Transition 4: the owning future has read the result.
    pub(crate) fn consume(&self) {
        self.0.fetch_and(!COMPLETE, Ordering::AcqRel);
    }

    /// Transitions 5 and 6: the future lets go. Returns the state it replaced.
    pub(crate) fn release(&self) -> u32 {
        self.0.fetch_and(!FUTURE, Ordering::AcqRel)
    }

    /// The handle owning the slot is gone. Returns the state it replaced: if `KERNEL` was set the
    /// completion routine disposes of an unread socket (it sees `ORPHANED`), otherwise the caller does.
    pub(crate) fn orphan(&self) -> u32 {
        self.0.fetch_or(ORPHANED, Ordering::AcqRel)
    }

    /// The raw word, for debugging and tests.
    #[allow(dead_code)]
    pub(crate) fn load(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }
}

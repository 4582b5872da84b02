//! Completions the schedule ([`super::schedule`]) moved out of the WSK call that made them: queued
//! here, in the order they were decided, and delivered later on some thread at DISPATCH_LEVEL, as a
//! provider completes from a DPC on any CPU.
//!
//! Who delivers: the TCP transport's event-loop thread (woken by a [`Kick`]), any driver thread when
//! it is about to wait (`KeWaitForSingleObject`, `KeDelayExecutionThread`: the CPU it would give up
//! runs the provider's DPC first), `WskDeregister` before it waits, a test with
//! [`settle`](super::control::settle), and the end of a session. The in-memory network has no thread,
//! so its deferred completions are delivered only by those, deterministically, on the thread that
//! waits or settles.

use super::irp::{self, Completions, Done};
use super::registration::Registration;
use crate::types::DISPATCH_LEVEL;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

/// A deferred completion; `closes`: the IRP is a `WskCloseSocket`'s, whose socket counts as open for
/// its registration (`WskDeregister` waits for it) until the close completes.
struct Later {
    done: Done,
    closes: Option<Arc<Registration>>,
}

static QUEUE: Mutex<VecDeque<Later>> = Mutex::new(VecDeque::new());

fn queue() -> MutexGuard<'static, VecDeque<Later>> {
    QUEUE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A provider thread that delivers deferred completions when told to (the TCP event loop).
pub(crate) trait Kick: Send + Sync {
    fn kick(&self);
}

static KICKERS: Mutex<Vec<Weak<dyn Kick>>> = Mutex::new(Vec::new());

/// Registers a provider thread to wake whenever a completion is deferred (until it is dropped).
pub(crate) fn add_kicker(kicker: Weak<dyn Kick>) {
    let mut kickers = KICKERS.lock().unwrap_or_else(PoisonError::into_inner);
    kickers.retain(|k| k.strong_count() > 0);
    kickers.push(kicker);
}

/// Defers `done`; see [`Later`] for `closes`.
pub(crate) fn push(done: Done, closes: Option<Arc<Registration>>) {
    queue().push_back(Later { done, closes });
    kick();
}

/// Wakes the provider threads that deliver deferred completions (a completion or a resolution
/// ([`super::resolve`]) is waiting).
pub(crate) fn kick() {
    let kickers: Vec<Arc<dyn Kick>> = KICKERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for kicker in kickers {
        kicker.kick();
    }
}

/// Whether a completion waits here.
pub(crate) fn any() -> bool {
    !queue().is_empty() || super::resolve::any()
}

/// Delivers every pending resolution ([`super::resolve`]) and every deferred completion, oldest first (and those their completion routines' effects
/// deferred meanwhile), on the calling thread at DISPATCH_LEVEL; returns how many. No provider lock
/// is held, as for every completion.
pub(crate) fn deliver() -> usize {
    let mut count = 0;
    loop {
        count += super::resolve::deliver();
        let Some(later) = queue().pop_front() else {
            if super::resolve::any() {
                continue;
            }
            return count;
        };
        count += 1;
        crate::emu::at_dispatch(|| {
            if let Some(registration) = later.closes {
                registration.socket_closed();
            }
            irp::complete_all(Completions::one(later.done));
        });
    }
}

/// The hook of the emulated waits: a thread below DISPATCH_LEVEL that is about to wait delivers
/// what is deferred first (a thread at DISPATCH_LEVEL is itself the DPC, and may only poll).
pub(crate) fn deliver_before_wait() {
    if crate::host::irql::current() < DISPATCH_LEVEL && any() {
        deliver();
    }
}

/// A failed test's session end, while it unwinds: forgets every deferred completion without
/// running its completion routine (whose context is the test's, being dropped). A forgotten close
/// still counts its socket closed, so that a `WskDeregister` the unwinding makes later does not wait
/// out its bound for it.
pub(crate) fn forget() {
    let forgotten: Vec<Later> = queue().drain(..).collect();
    for later in forgotten {
        if let Some(registration) = later.closes {
            registration.socket_closed();
        }
    }
}

/// A fresh session: what a failed test left deferred is forgotten (its IRPs belong to the ended
/// session, whose leak report names them).
pub(crate) fn reset() {
    queue().clear();
}

//! The crate-wide count of completion routines running right now, so that deregistration (and so
//! driver unload) can wait until no CPU is still executing this crate's code in a completion routine.
//!
//! # Why a count, and what it does not cover
//!
//! A completion routine of this crate ([`op_completion`](crate::op::op_completion), the only one it
//! sets) keeps running after the moment [`Registration::deregister`](crate::Registration::deregister)
//! can observe "no socket left": the routine that frees the last socket context still wakes the
//! deregistering task, releases the registration's memory reference and returns through its own
//! frames. Memory stays valid (the routine holds a reference while it touches the registration), but
//! *code* does not: once `DriverUnload` returns, the image may be unmapped under that CPU.
//!
//! So every completion routine increments [`ACTIVE`] on entry and decrements it as its very last
//! action, and deregistration, after the last socket is gone, waits at PASSIVE_LEVEL until the count
//! reads zero ([`wait_idle`]). Every routine that touched one of the registration's sockets entered
//! (incremented) before that socket's context was freed, and the context's last release
//! happens-before the deregistering thread's observation of "no socket left", so reading zero
//! afterwards means each of those routines has executed its final decrement.
//!
//! **Residual window:** the instructions after the final decrement — loading the return status and
//! the routine's epilogue and `ret` — still execute in the image after the count can read zero
//! (what runs after the `ret` is the I/O manager's, in ntoskrnl). They touch no memory of this
//! driver, but they are its code: if `DriverUnload` returned and the image were unmapped within those
//! few instructions, that CPU would fault. No counter inside the routine can cover its own `ret`;
//! the remaining race is a handful of instructions against everything `WskDeregister` and the rest
//! of the unload do after the count read zero. It is narrowed, not closed.
//!
//! `IoSetCompletionRoutineEx` would close that window (it takes a reference on a device object of the
//! driver, which keeps the image loaded until the routine has returned), but it needs a
//! `DEVICE_OBJECT` (this crate is usable by drivers that create none) and it allocates a context on
//! every call, which can fail: every send and receive would allocate, and the completion path this
//! crate guarantees allocation-free and infallible would no longer be.
//!
//! The count is crate-wide, not per registration (a per-registration count would have to live in
//! memory the last routine may be freeing): with several registrations, one deregistering while
//! another has traffic waits until a moment with no routine running at all — routines are short
//! and never block, so such moments are frequent; the wait is bounded anyway ([`IDLE_WAIT_BOUND`]).

use core::sync::atomic::{AtomicUsize, Ordering};
use nt::*;

/// Completion routines of this crate currently running (any CPU).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// The poll step of [`wait_idle`], in 100 ns units (negative: relative): 1 ms.
const POLL_STEP_100NS: i64 = -10_000;

/// How many 1 ms steps [`wait_idle`] polls before it gives up (10 s): far beyond any real routine,
/// which never blocks; reached only if other registrations' routines never leave a gap.
pub(crate) const IDLE_WAIT_BOUND: u32 = 10_000;

/// First action of a completion routine. Any IRQL <= DISPATCH_LEVEL.
pub(crate) fn enter() {
    // SeqCst pairs with `wait_idle`'s load (see the module documentation for why a plain
    // happens-before chain already suffices; SeqCst costs nothing more than AcqRel on x64).
    ACTIVE.fetch_add(1, Ordering::SeqCst);
}

/// Very last action of a completion routine: nothing of the driver may be touched afterwards.
pub(crate) fn leave() {
    ACTIVE.fetch_sub(1, Ordering::SeqCst);
}

/// Completion routines of this crate running right now.
pub(crate) fn active() -> usize {
    ACTIVE.load(Ordering::SeqCst)
}

/// Waits at PASSIVE_LEVEL (`KeDelayExecutionThread`, 1 ms steps, at most [`IDLE_WAIT_BOUND`] steps)
/// until no completion routine of this crate is running. Returns false if the bound elapsed (then
/// it logs, and the caller goes on: a routine that never ends is impossible, a busy other
/// registration is the only way to get there). Call it only after the registration's last socket
/// context is gone, at PASSIVE_LEVEL.
pub(crate) fn wait_idle() -> bool {
    for _ in 0..IDLE_WAIT_BOUND {
        if active() == 0 {
            return true;
        }
        let mut step = LARGE_INTEGER {
            QuadPart: POLL_STEP_100NS,
        };
        // SAFETY: PASSIVE_LEVEL (caller's contract); `step` is a valid relative interval.
        unsafe { KeDelayExecutionThread(KernelMode, FALSE, &mut step) };
    }
    let idle = active() == 0;
    if !idle {
        nt::kdprint!(
            DPFLTR_WARNING_LEVEL,
            "wsk-async: completion routines still running after 10 s; deregistering anyway"
        );
    }
    idle
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// `wait_idle` returns only once the routine that was running has made its final decrement.
    #[test]
    fn wait_idle_waits_for_the_last_leave() {
        enter();
        let left = std::sync::Arc::new(core::sync::atomic::AtomicBool::new(false));
        let waiter = {
            let left = left.clone();
            std::thread::spawn(move || {
                let idle = wait_idle();
                (idle, left.load(Ordering::SeqCst))
            })
        };
        left.store(true, Ordering::SeqCst);
        leave();
        assert_eq!(waiter.join().unwrap(), (true, true), "returned before the routine left");
        assert_eq!(active(), 0);
    }
}

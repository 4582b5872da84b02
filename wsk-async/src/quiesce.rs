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
//! `IoSetCompletionRoutineEx` closes that window, and this crate uses it (`op.rs`,
//! `arm_completion`): the I/O manager's wrapper holds a reference on the driver's device object until
//! our routine has returned. But it allocates a small context on every call and can fail for lack
//! of pool; the operation is then submitted with `IoSetCompletionRoutine` instead (closes and aborts
//! from drops cannot fail). This count is what still covers those routines: under pool exhaustion,
//! and only then, the window of the final instructions is narrowed rather than closed.
//!
//! The count is crate-wide, not per registration (a per-registration count would have to live in
//! memory the last routine may be freeing): with several registrations, one deregistering while
//! another has traffic waits until a moment with no routine running at all — routines are short
//! and never block, so such moments are frequent; the wait is bounded anyway ([`IDLE_WAIT_BOUND`]).

use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use nt::*;

/// Completion routines of this crate currently running (any CPU).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// The poll step of [`wait_idle`], in 100 ns units (negative: relative): 1 ms.
const POLL_STEP_100NS: i64 = -10_000;

/// How long [`wait_idle`] polls before it gives up: far beyond any real routine, which never blocks;
/// reached only if other registrations' routines never leave a gap. Measured on the interrupt-time
/// clock, not by counting steps: a 1 ms delay lasts at least one clock tick (15.6 ms by default),
/// so 10,000 steps would be minutes, not seconds.
pub(crate) const IDLE_WAIT_BOUND: Duration = Duration::from_secs(10);

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

/// Waits at PASSIVE_LEVEL (`KeDelayExecutionThread`, 1 ms steps, for at most [`IDLE_WAIT_BOUND`] of
/// interrupt time) until no completion routine of this crate is running. Returns false if the bound
/// elapsed (then it logs, and the caller goes on: a routine that never ends is impossible, a busy
/// other registration is the only way to get there). Call it only after the registration's last
/// socket context is gone, at PASSIVE_LEVEL.
pub(crate) fn wait_idle() -> bool {
    wait_idle_for(IDLE_WAIT_BOUND)
}

/// The interrupt time, in 100 ns units (any IRQL).
fn interrupt_time() -> u64 {
    let mut qpc = 0;
    // SAFETY: the out-parameter is a valid local; the function has no other precondition.
    unsafe { KeQueryInterruptTimePrecise(&mut qpc) }
}

/// [`wait_idle`] with a bound of `bound`.
fn wait_idle_for(bound: Duration) -> bool {
    let bound_100ns = u64::try_from(bound.as_nanos() / 100).unwrap_or(u64::MAX);
    let deadline = interrupt_time().saturating_add(bound_100ns);
    loop {
        if active() == 0 {
            return true;
        }
        if interrupt_time() >= deadline {
            break;
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
            "wsk-async: completion routines still running after {:?}; deregistering anyway",
            bound
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
        // The session serialises this test with the one that pauses the clock, and resets it.
        let _session = nt::emu::session();
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

    /// The bound is interrupt time, not a count of 1 ms steps: with the emulated clock paused, every
    /// step lasts until the test advances the clock, so a step-counting wait would need 10,000
    /// advances; this one returns once the clock is past the bound.
    #[test]
    fn wait_idle_bound_is_clock_time_not_a_step_count() {
        let _session = nt::emu::session();
        nt::emu::clock::pause();
        enter();
        let (done, finished) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let idle = wait_idle();
            done.send(idle).unwrap();
        });
        let mut result = None;
        // 30 advances of one second each: three times the bound. Each round waits (boundedly) for
        // the waiter's answer; a step-counting wait would still be at its 30th step or so.
        for _ in 0..30 {
            nt::emu::clock::advance(Duration::from_secs(1));
            if let Ok(idle) = finished.recv_timeout(std::time::Duration::from_millis(50)) {
                result = Some(idle);
                break;
            }
        }
        leave();
        if result.is_none() {
            // Let a step-counting waiter finish before reporting, so the session can end cleanly.
            nt::emu::clock::resume();
        }
        waiter.join().unwrap();
        assert_eq!(
            result,
            Some(false),
            "wait_idle did not give up once the clock passed its 10 s bound"
        );
    }
}

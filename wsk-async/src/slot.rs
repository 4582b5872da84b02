//! [`SlotUse`]: how a future uses one operation slot — acquire it (claiming it, or attaching to and
//! waiting out an earlier dropped operation, disposing of any unread result), submit the IRP, wait
//! for the completion, and give the slot back, including when the future is dropped.

use crate::error::{Result, WskError};
use crate::op::Op;
use crate::op_state::Claim;
use core::task::{Context, Poll};
use nt::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not holding the slot.
    Idle,
    /// Holding `FUTURE` while the kernel finishes an earlier operation on the slot.
    Waiting,
    /// Holding the slot exclusively, nothing submitted.
    Ready,
    /// Our IRP is with the kernel (or completed and not yet read).
    Submitted,
}

/// A future's use of one slot. See the module documentation.
#[derive(Debug)]
pub(crate) struct SlotUse {
    phase: Phase,
    /// This operation returned `Pending` at least once (for the cooperative budget).
    waited: bool,
}

impl SlotUse {
    pub(crate) const fn new() -> Self {
        Self {
            phase: Phase::Idle,
            waited: false,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Polls until the slot is exclusively ours with no unread result (PASSIVE_LEVEL). Fails with
    /// `STATUS_INVALID_DEVICE_STATE` if another future holds it or it can no longer be owned
    /// (orphaned; a slot without an IRP is orphaned from the start, so `Ok` implies an IRP).
    ///
    /// # The cooperative budget
    ///
    /// WSK completes an operation inline when it can (data already received, window open), and then
    /// a loop of `.await`s never returns `Pending`: one task would hold the executor thread for as
    /// long as its peer keeps it busy, starving every other task (an accept loop, other
    /// connections). So before a new operation starts, a socket whose last
    /// [`COOP_BUDGET`](crate::ctx::COOP_BUDGET) operations all completed without waiting yields
    /// once: it wakes its own task and returns `Pending`, as `tokio`'s budget does. This works with
    /// any executor that honours `wake_by_ref` (a yield).
    pub(crate) fn poll_acquire(&mut self, op: &Op, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.phase == Phase::Idle && op.ctx().take_spent_budget() {
            self.waited = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let polled = self.poll_acquire_slot(op, cx);
        if polled.is_pending() {
            self.waited = true;
        }
        polled
    }

    fn poll_acquire_slot(&mut self, op: &Op, cx: &mut Context<'_>) -> Poll<Result<()>> {
        loop {
            match self.phase {
                Phase::Idle => {
                    let claim = op.state.claim();
                    if claim == Claim::InUse {
                        return Poll::Ready(Err(WskError::INVALID_STATE));
                    }
                    self.claimed(op, claim);
                }
                Phase::Waiting => {
                    // Register before looking, so a completion in between still wakes us.
                    op.waker.register(cx.waker());
                    if op.state.kernel_owned() {
                        return Poll::Pending;
                    }
                    // SAFETY: FUTURE held and KERNEL clear: exclusively ours. A disposal that closes
                    // an unread socket keeps us waiting for that close.
                    if unsafe { !op.dispose_unread() } {
                        self.phase = Phase::Ready;
                    }
                }
                Phase::Ready => return Poll::Ready(Ok(())),
                Phase::Submitted => return Poll::Ready(Err(WskError::INVALID_STATE)),
            }
        }
    }

    /// [`poll_acquire`](Self::poll_acquire) over interchangeable slots (a connection's send slots):
    /// claims the first of `ops` that no other future holds, sets `which` to its index, and from then
    /// on polls that one. Fails with `STATUS_INVALID_DEVICE_STATE` when every one is held (as many
    /// operations of the kind in flight as there are slots). `which` must be left alone by the caller
    /// while the slot is held.
    pub(crate) fn poll_acquire_one_of(
        &mut self,
        ops: &[&Op],
        which: &mut usize,
        cx: &mut Context<'_>,
    ) -> Poll<Result<()>> {
        if self.phase == Phase::Idle {
            if ops.first().is_some_and(|op| op.ctx().take_spent_budget()) {
                self.waited = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // Claim, in order, the first slot nobody holds: each claim is one RMW on that slot's own
            // word, so two futures racing here can never both hold one slot.
            let Some((index, claim)) = ops
                .iter()
                .enumerate()
                .map(|(i, op)| (i, op.state.claim()))
                .find(|&(_, claim)| claim != Claim::InUse)
            else {
                return Poll::Ready(Err(WskError::INVALID_STATE));
            };
            *which = index;
            self.claimed(ops[index], claim);
        }
        let Some(op) = ops.get(*which) else {
            return Poll::Ready(Err(WskError::INVALID_STATE));
        };
        self.poll_acquire(op, cx)
    }

    /// The claim of an idle slot succeeded (`claim` is not `InUse`): on to `Waiting` (attached to a
    /// dropped operation the kernel still owns, or disposing of a stale result that needs a close)
    /// or `Ready`.
    fn claimed(&mut self, op: &Op, claim: Claim) {
        self.phase = match claim {
            Claim::Attached => Phase::Waiting,
            // SAFETY: claimed with KERNEL clear: exclusively ours.
            Claim::Owned { stale } if stale && unsafe { op.dispose_unread() } => Phase::Waiting,
            Claim::Owned { .. } => Phase::Ready,
            Claim::InUse => Phase::Idle,
        };
    }

    /// [`poll_acquire`](Self::poll_acquire) for a slot whose operations return a status only (no
    /// socket, no buffer: the abort slot), handing the caller the unread result of an earlier
    /// operation on the slot — one whose future was dropped, or one started without a future
    /// (`SocketCtx::abort_in_background`) — instead of discarding it. If that operation is still
    /// with the kernel, waits for it first. `Ok(Some(result))`: there was one, read now (the slot is
    /// ours, ready for another `start`); `Ok(None)`: there was none.
    pub(crate) fn poll_acquire_unread(
        &mut self,
        op: &Op,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<IO_STATUS_BLOCK>>> {
        let earlier = match self.phase {
            Phase::Idle => match op.state.claim() {
                Claim::InUse => return Poll::Ready(Err(WskError::INVALID_STATE)),
                Claim::Attached => {
                    self.phase = Phase::Waiting;
                    false
                }
                Claim::Owned { stale } => {
                    self.phase = Phase::Ready;
                    stale
                }
            },
            Phase::Waiting => false,
            Phase::Ready => return Poll::Ready(Ok(None)),
            Phase::Submitted => return Poll::Ready(Err(WskError::INVALID_STATE)),
        };
        if self.phase == Phase::Waiting {
            // Register before looking, so a completion in between still wakes us.
            op.waker.register(cx.waker());
            if op.state.kernel_owned() {
                self.waited = true;
                return Poll::Pending;
            }
            self.phase = Phase::Ready;
        } else if !earlier {
            return Poll::Ready(Ok(None));
        }
        if !op.state.is_complete() {
            return Poll::Ready(Ok(None));
        }
        // SAFETY: FUTURE held, KERNEL clear and the completion observed: the result is ours to read,
        // then to dispose of as `poll_acquire` would (we are not a completion routine).
        let (iosb, closing) = unsafe { (op.iosb(), op.dispose_unread()) };
        // A status-only slot has no unread socket to close (the caller's contract).
        debug_assert!(!closing, "poll_acquire_unread on a socket-producing slot");
        Poll::Ready(Ok(Some(iosb)))
    }

    /// Submits the slot's IRP through `call` (see [`Op::start`]).
    ///
    /// # Safety
    /// The slot was acquired ([`poll_acquire`](Self::poll_acquire) returned `Ok`), and `call` passes the
    /// IRP to at most one WSK function.
    pub(crate) unsafe fn start(&mut self, op: &Op, call: impl FnOnce(PIRP) -> Option<NTSTATUS>) {
        debug_assert_eq!(self.phase, Phase::Ready);
        // SAFETY: forwarded from the caller's contract.
        unsafe { op.start(call) };
        self.phase = Phase::Submitted;
    }

    /// Polls for the completion of our IRP; returns its IO_STATUS_BLOCK. The slot is still ours
    /// afterwards (for [`release`](Self::release) or another `start`).
    ///
    /// Looks before registering the waker, and registers only if it must wait: a completed
    /// operation (every one that WSK completed inline, and every one whose completion woke the task)
    /// needs no waker, and registering one costs two atomic exchanges. Then looks again, so that a
    /// completion between the first look and the registration still wakes the task.
    pub(crate) fn poll_complete(&mut self, op: &Op, cx: &mut Context<'_>) -> Poll<IO_STATUS_BLOCK> {
        if !op.state.is_complete() {
            op.waker.register(cx.waker());
            if !op.state.is_complete() {
                self.waited = true;
                return Poll::Pending;
            }
        }
        op.state.consume();
        self.phase = Phase::Ready;
        op.ctx().note_operation(core::mem::take(&mut self.waited));
        // SAFETY: FUTURE held and the completion observed.
        Poll::Ready(unsafe { op.iosb() })
    }

    /// Whether our submitted IRP has completed (the result not yet read).
    pub(crate) fn completed(&self, op: &Op) -> bool {
        self.phase == Phase::Submitted && op.state.is_complete()
    }

    /// Gives the slot back (after reading the result, or when dropped). Returns the state word it
    /// replaced, or `None` if the slot was not held. Drops our waker so a late wake finds none.
    pub(crate) fn release(&mut self, op: &Op) -> Option<u32> {
        if self.phase == Phase::Idle {
            return None;
        }
        self.phase = Phase::Idle;
        drop(op.waker.take());
        Some(op.state.release())
    }
}

/// The futures hold their buffer from construction until they return it, exactly once. Polling a
/// future again after it returned `Ready` breaks the `Future` contract; these futures then stay
/// `Pending` forever (no panic in kernel code, no busy loop).
macro_rules! give_back {
    ($buf:expr, $result:expr) => {
        match $buf {
            Some(buf) => Poll::Ready(($result, buf)),
            None => Poll::Pending,
        }
    };
}
pub(crate) use give_back;

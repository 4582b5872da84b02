//! Queuing an IRP-based operation: the transport's policy for it (the in-memory transport lets a test
//! hold or fail it), arming its cancel routine, and the inline attempt. Returns what the WSK function
//! returns: the final status if the IRP already completed (its completion routine has then already
//! run), STATUS_PENDING otherwise.

use super::irp::{Completions, Done, ProviderIrp, arm};
use super::socket::{Op, Pending, SocketCore, SocketState};
use super::transport::{OpKind, Policy};
use crate::IoSetCancelRoutine;
use crate::types::*;
use std::sync::Arc;

impl SocketCore {
    /// Queues `op` for the IRP the provider has just taken, and makes what progress it can.
    pub(crate) fn submit(self: &Arc<Self>, irp: ProviderIrp, op: Op) -> NTSTATUS {
        let kind = op.kind();
        let policy = self.registration.policy(kind, &self.me);
        let mut out = Completions::new();
        {
            let mut st = self.lock();
            // Checked under the lock that queues the accept, so that two threads racing two
            // accepts cannot both pass ([`super::listen::one_accept_at_a_time`]).
            let refused = kind == OpKind::Accept && !super::listen::one_accept_at_a_time(self, &st);
            match policy {
                _ if refused => out.push(Done::new(irp, STATUS_INVALID_DEVICE_STATE, 0)),
                Policy::Fail(status) => out.push(Done::new(irp, status, 0)),
                Policy::Unfinished(status) => {
                    // SAFETY: the provider owns the IRP it just took and gives it up untouched.
                    unsafe { crate::emu::irp::forget(irp.0) };
                    return status;
                }
                Policy::Hold(id) => {
                    if arm(irp, self) {
                        st.held.push((id, Pending { irp, op }));
                    } else {
                        out.push(Done::new(irp, STATUS_CANCELLED, 0));
                        st.reset_after_cancel(&op);
                    }
                }
                Policy::HoldPastCancel(id) => {
                    if arm(irp, self) {
                        // Past the point of cancellation: disarm the routine again (a provider that
                        // is finishing an operation does so), keeping it to re-arm on release.
                        // If IoCancelIrp won in between, its cancel routine finds the IRP in `held`.
                        // SAFETY: the provider owns the pending IRP; an interlocked exchange.
                        if let Some(routine) = unsafe { IoSetCancelRoutine(irp.0, None) } {
                            st.past_cancel.push((irp, Some(routine)));
                        }
                        st.held.push((id, Pending { irp, op }));
                    } else {
                        out.push(Done::new(irp, STATUS_CANCELLED, 0));
                        st.reset_after_cancel(&op);
                    }
                }
                Policy::Natural => {
                    if super::schedule::eager()
                        && let Some(wire) = st.wire.as_mut()
                    {
                        // The `inline` schedule: ask the host even if no event reported new data.
                        wire.mark_ready();
                    }
                    let queue = match kind {
                        OpKind::Accept => &mut st.accepts,
                        OpKind::Connect => &mut st.connects,
                        OpKind::Receive | OpKind::ReceiveFrom => &mut st.receives,
                        // Decided operations never come here (`decided.rs`).
                        _ => &mut st.sends,
                    };
                    queue.push_back(Pending { irp, op });
                    if !arm(irp, self) {
                        out.push(Done::new(irp, STATUS_CANCELLED, 0));
                        if let Some(cancelled) = st.remove(irp) {
                            st.reset_after_cancel(&cancelled.op);
                        }
                    }
                    self.pump(&mut st, &mut out);
                }
            }
            if !out.iter().any(|d| d.irp == irp) {
                // It stays queued: the call returns STATUS_PENDING (see `conclude`).
                super::irp::mark_pending(irp);
            }
        }
        super::call::conclude(self, irp, out)
    }

    /// The in-memory transport's test releases a held operation: back to natural progress, or
    /// completed with `status`; with `information`, that count is reported instead of the
    /// operation's (back to natural progress: only if it completes in this release).
    pub(crate) fn release_held(
        self: &Arc<Self>,
        id: u64,
        status: Option<NTSTATUS>,
        information: Option<ULONG_PTR>,
    ) -> bool {
        let mut out = Completions::new();
        let found;
        {
            let mut st = self.lock();
            let index = st.held.iter().position(|(held, _)| *held == id);
            found = index.is_some();
            if let Some(index) = index {
                let (_, pending) = st.held.remove(index);
                let past_cancel = st.take_past_cancel(pending.irp);
                if let Op::Decided(decided) = pending.op {
                    self.complete_decided(&mut st, pending.irp, decided, status, &mut out);
                    drop(st);
                    self.settle(out);
                    return true;
                }
                match status {
                    Some(status) => {
                        if past_cancel.is_some() || super::irp::claim(pending.irp) {
                            out.push(Done::new(
                                pending.irp,
                                status,
                                information.unwrap_or(pending.op.progress()),
                            ));
                        } else {
                            st.held.push((id, pending));
                        }
                    }
                    None => {
                        let irp = pending.irp;
                        if let Some(routine) = past_cancel {
                            // Back to natural progress: re-arm without looking at `Cancel` (a cancel
                            // requested meanwhile was refused); if the operation must wait again,
                            // `arm` sees the request and cancels it then.
                            // SAFETY: the provider owns the IRP outright (no routine armed).
                            unsafe { IoSetCancelRoutine(pending.irp.0, routine) };
                        }
                        st.requeue(pending);
                        if !st.closed {
                            self.pump(&mut st, &mut out);
                        }
                        // A test's count replaces the one the operation reported, if it completed.
                        if let Some(information) = information
                            && let Some(mut done) = out.take(irp)
                        {
                            done.information = information;
                            out.push(done);
                        }
                    }
                }
            }
        }
        self.settle(out);
        found
    }

    /// Before a close: operations held past the point of cancellation go back to natural progress,
    /// so that one the network can finish now (an accept with a queued connection) completes with its
    /// result, as a provider that had already committed to it would; the close flushes the rest.
    pub(crate) fn progress_past_cancel(self: &Arc<Self>, st: &mut SocketState, out: &mut Completions) {
        while let Some(&(irp, routine)) = st.past_cancel.first() {
            st.past_cancel.remove(0);
            let Some(index) = st.held.iter().position(|(_, p)| p.irp == irp) else {
                continue;
            };
            let (_, pending) = st.held.remove(index);
            if let Op::Decided(decided) = pending.op {
                self.complete_decided(st, irp, decided, None, out);
                continue;
            }
            // SAFETY: the provider owns the IRP outright (no routine armed); see `release_held`.
            unsafe { IoSetCancelRoutine(irp.0, routine) };
            st.requeue(pending);
        }
        if !st.closed {
            self.pump(st, out);
        }
    }
}

impl SocketState {
    /// Puts a pending operation back in the queue of its kind (natural progress).
    fn requeue(&mut self, pending: Pending) {
        match pending.op.kind() {
            OpKind::Accept => self.accepts.push_back(pending),
            OpKind::Connect => self.connects.push_back(pending),
            OpKind::Receive | OpKind::ReceiveFrom => self.receives.push_back(pending),
            OpKind::Send | OpKind::Disconnect | OpKind::SendTo => self.sends.push_back(pending),
            // Never requeued: a decided operation completes when released (`complete_decided`).
            OpKind::Close | OpKind::Socket | OpKind::Bind | OpKind::Control | OpKind::GetAddress => {}
        }
    }
}

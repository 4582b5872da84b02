//! The send path: `WskSend` and the graceful `WskDisconnect` behind the sends, and when their IRPs
//! complete.
//!
//! WSK has no send buffering. A send IRP stays pending until the transport is done with its data;
//! Microsoft defines the "ideal send backlog" as the amount of send data "passed to the WSK subsystem
//! but not yet completed" needed to keep the stream full (SIO_WSK_QUERY_IDEAL_SEND_BACKLOG). So:
//!
//! * a send first hands its bytes to the transport, in submission order, as fast as the transport
//!   takes them (partial writes continue on the next pump); a send never completes before every one
//!   of its bytes was handed over;
//! * it then waits in [`SocketState::acks`] with the stream position it ends at, and completes (with
//!   all its bytes in `Information`) once the transport has acknowledged that position
//!   ([`Wire::acknowledged`]): over TCP, when the peer's TCP has acknowledged the bytes (they left
//!   the host socket's send queue); on the in-memory network, when the peer has read them. The
//!   sends after it are handed over meanwhile, so several sends can be in flight;
//! * a graceful disconnect (WSK documentation: the subsystem "waits for all outstanding transmit
//!   data to be sent" before disconnecting, and the IRP completes once the transport has completely
//!   finished the disconnect) is queued behind the sends, hands over its final buffer and then FIN,
//!   and completes once FIN is acknowledged, hence after every send before it;
//! * an abortive disconnect or a close completes every send still pending, acknowledged or not,
//!   with the statuses of [`super::disconnect`] and [`super::close`]; a connection failure (reset,
//!   forced close) completes them with its status.
//!
//! Invented: a send cancelled after all its bytes were handed over completes with STATUS_CANCELLED
//! and all its bytes in `Information` (Microsoft does not say what a cancelled send reports); like
//! every cancelled send it resets the connection ([`SocketState::reset_after_cancel`]), so whether
//! its bytes reach the peer before the RST is not promised.

use super::irp::{Completions, Done, arm, claim};
use super::socket::{Op, Pending, SocketCore, SocketState};
use super::transport::{Wire, WriteOutcome};
use crate::types::*;
use std::sync::Arc;

/// What the head of the send queue needs next.
enum Step {
    Complete(NTSTATUS, usize),
    /// All handed to the transport, up to this stream position: wait for its acknowledgement.
    Handed(u64),
    Wait,
}

impl SocketCore {
    /// Hands queued sends to the transport, then completes those the transport acknowledged.
    pub(crate) fn pump_sends(self: &Arc<Self>, st: &mut SocketState, out: &mut Completions) {
        while let Some(cancelled) = self.hand_over(st, out) {
            // A send found cancelled: the connection is reset, the sends behind it fail.
            st.reset_after_cancel(&cancelled);
        }
        complete_acknowledged(st, out);
    }

    /// Runs the send queue in order until the transport cannot take more, with the claim/arm protocol
    /// around each IRP (one being cancelled is left for its cancel routine; one that waits, here or in
    /// `acks`, keeps its cancel routine armed). Stops at a send a cancel reached meanwhile, completed
    /// with STATUS_CANCELLED, and returns its operation.
    fn hand_over(self: &Arc<Self>, st: &mut SocketState, out: &mut Completions) -> Option<Op> {
        let SocketState {
            sends,
            acks,
            wire,
            failure,
            fin_sent,
            connector,
            ..
        } = st;
        let connecting = connector.is_some();
        while let Some(front) = sends.front_mut() {
            let irp = front.irp;
            if !claim(irp) {
                return None;
            }
            let step = match (*failure, wire.as_mut()) {
                (Some(status), _) => Step::Complete(status, front.op.progress()),
                (None, None) if connecting => Step::Wait,
                (None, None) => Step::Complete(STATUS_INVALID_DEVICE_STATE, 0),
                (None, Some(wire)) => step(wire.as_mut(), &mut front.op, failure, fin_sent),
            };
            match step {
                Step::Complete(status, information) => {
                    sends.pop_front();
                    out.push(Done::new(irp, status, information));
                }
                Step::Handed(end) => {
                    let pending = sends.pop_front()?;
                    if arm(irp, self) {
                        acks.push_back((end, pending));
                    } else {
                        out.push(Done::new(irp, STATUS_CANCELLED, pending.op.progress()));
                        return Some(pending.op);
                    }
                }
                Step::Wait => {
                    if arm(irp, self) {
                        return None;
                    }
                    let progress = front.op.progress();
                    let cancelled = sends.pop_front().map(|p| p.op);
                    out.push(Done::new(irp, STATUS_CANCELLED, progress));
                    return cancelled;
                }
            }
        }
        None
    }
}

/// Hands one send, or the graceful disconnect, to `wire`.
fn step(wire: &mut dyn Wire, op: &mut Op, failure: &mut Option<NTSTATUS>, fin_sent: &mut bool) -> Step {
    // SAFETY: the client keeps its WSK_BUF valid until the IRP completes (see `mdl.rs`).
    let reread = match op {
        Op::Send { buf, .. } => unsafe { buf.reread("WskSend") },
        Op::Disconnect { buf: Some(buf), .. } => unsafe { buf.reread("WskDisconnect") },
        _ => Ok(()),
    };
    if let Err(status) = reread {
        return Step::Complete(status, op.progress());
    }
    match op {
        Op::Send { buf, done, nodelay } => match write_all(wire, buf, done, *nodelay) {
            Ok(true) => Step::Handed(wire.handed()),
            Ok(false) => Step::Wait,
            Err(status) => {
                *failure = Some(status);
                Step::Complete(status, *done)
            }
        },
        Op::Disconnect { buf, done } => {
            if let Some(buf) = buf {
                match write_all(wire, buf, done, true) {
                    Ok(true) => {}
                    Ok(false) => return Step::Wait,
                    Err(status) => {
                        *failure = Some(status);
                        return Step::Complete(status, 0);
                    }
                }
            }
            match wire.shutdown_write() {
                Ok(()) => {
                    *fin_sent = true;
                    Step::Handed(wire.handed())
                }
                Err(status) => Step::Complete(status, 0),
            }
        }
        _ => Step::Complete(STATUS_INVALID_DEVICE_REQUEST, 0),
    }
}

/// Completes, in order, the handed-over sends whose end the transport has acknowledged; all of them
/// with the connection's status once it failed.
fn complete_acknowledged(st: &mut SocketState, out: &mut Completions) {
    if st.acks.is_empty() {
        return;
    }
    let acknowledged = match (st.failure, st.wire.as_mut()) {
        (None, Some(wire)) => wire.acknowledged(),
        (Some(status), _) => Err(status),
        (None, None) => Err(STATUS_INVALID_DEVICE_STATE),
    };
    let acknowledged = match acknowledged {
        Ok(position) => position,
        Err(status) => {
            st.failure.get_or_insert(status);
            // Any IRP its cancel routine is already working on stays for it.
            st.acks.retain(|(_, p)| {
                if !claim(p.irp) {
                    return true;
                }
                out.push(Done::new(p.irp, status, p.op.progress()));
                false
            });
            return;
        }
    };
    while let Some(&(end, Pending { irp, ref op })) = st.acks.front() {
        if end > acknowledged || !claim(irp) {
            return;
        }
        // Read once more as the IRP completes (see `mdl.rs`).
        // SAFETY: the client keeps its WSK_BUF valid until the IRP completes.
        let (information, reread) = match op {
            Op::Send { done, buf, .. } => (*done, unsafe { buf.reread("WskSend") }),
            Op::Disconnect { buf: Some(buf), .. } => (0, unsafe { buf.reread("WskDisconnect") }),
            _ => (0, Ok(())),
        };
        st.acks.pop_front();
        out.push(Done::new(irp, reread.err().unwrap_or(STATUS_SUCCESS), information));
    }
}

/// Writes the rest of `buf` from `done`; Ok(true) when all of it was written, Ok(false) when the
/// transport cannot take more now.
fn write_all(wire: &mut dyn Wire, buf: &super::mdl::Buf, done: &mut usize, nodelay: bool) -> Result<bool, NTSTATUS> {
    loop {
        // SAFETY: validated when queued; the MDLs stay live until the IRP completes.
        let Some((ptr, len)) = (unsafe { buf.segment(*done) }) else {
            return Ok(true);
        };
        // SAFETY: inside the client's buffer, which it does not modify while the send pends.
        let source = unsafe { core::slice::from_raw_parts(ptr as *const u8, len) };
        match wire.write(source, nodelay) {
            WriteOutcome::Wrote(n) => *done += n,
            WriteOutcome::WouldBlock => return Ok(false),
            WriteOutcome::Failed(status) => return Err(status),
        }
    }
}

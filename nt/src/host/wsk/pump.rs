//! Progress: moves a socket's pending operations forward as far as its transport allows, and
//! collects the IRPs that finished. Both transports call it: inline from the WSK call that queued an
//! operation (so a call that can finish at once completes before it returns, and returns its final
//! status), from the TCP event loop at DISPATCH_LEVEL, and from the in-memory network when a test acts.
//!
//! Behaviours emulated here (WSK documentation):
//! * `WskReceive` completes with the bytes available (> 0), like TCP, unless `WSK_FLAG_WAITALL`;
//!   after the peer's FIN it completes with STATUS_SUCCESS and 0 bytes.
//! * `WskSend` and a graceful `WskDisconnect`: see [`super::send`] (they complete once the transport
//!   has acknowledged their bytes and FIN).
//! * `WskAccept` / `WskConnect` complete when a connection arrives / is established.

use super::irp::{self, Completions, Done, ProviderIrp, arm, claim};
use super::socket::{self, Category, Op, Pending, SocketCore, SocketState};
use super::transport::{AcceptOutcome, ConnectOutcome, ReadOutcome, Wire};
use crate::types::*;
use crate::wsk::PWSK_SOCKET;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What one pending operation needs next.
pub(crate) enum Step {
    Complete(NTSTATUS, usize),
    Wait,
}

impl SocketCore {
    /// Locks the socket, makes progress, unlocks, and completes what finished.
    pub(crate) fn pump_and_complete(self: &Arc<Self>) {
        self.pump_after_event(false);
    }

    /// As [`Self::pump_and_complete`], for the transport's event loop after an event on the socket's
    /// host socket; `readable`: the event says a read may find something, which the wire learns first.
    pub(crate) fn pump_after_event(self: &Arc<Self>, readable: bool) {
        let mut out = Completions::new();
        {
            let mut st = self.lock();
            if readable && let Some(wire) = st.wire.as_mut() {
                wire.mark_ready();
            }
            if !st.closed {
                self.pump(&mut st, &mut out);
            }
        }
        self.settle(out);
    }

    /// Completes `out` (no lock held) and destroys a `WskSocketConnect` socket that failed.
    pub(crate) fn settle(self: &Arc<Self>, out: Completions) {
        irp::complete_all(out);
        if self.category == Category::Datagram
            && let Some(transport) = self.registration.transport()
        {
            transport.wake_datagram_receivers();
        }
        if self.discard.swap(false, Ordering::AcqRel) {
            socket::retire(self);
        }
    }

    /// The cancel routine's work: removes `irp` from the queues, completes it with STATUS_CANCELLED.
    /// Invented: a cancelled send or receive resets the connection (see
    /// [`SocketState::reset_after_cancel`]); a cancelled accept leaves the listener usable.
    pub(crate) fn cancel(self: &Arc<Self>, irp: ProviderIrp) {
        let mut out = Completions::new();
        {
            let mut st = self.lock();
            if let Some(p) = st.remove(irp) {
                if let Op::Connect { returns_socket: true } = p.op {
                    self.abandon(&mut st);
                }
                st.reset_after_cancel(&p.op);
                out.push(Done::ended(irp, STATUS_CANCELLED, p.op.progress()));
            }
            if !st.closed {
                self.pump(&mut st, &mut out);
            }
        }
        self.settle(out);
    }

    /// A `WskSocketConnect` socket whose connect failed or was cancelled is destroyed by the provider.
    fn abandon(&self, st: &mut SocketState) {
        st.connector = None;
        if let Some(mut wire) = st.wire.take() {
            wire.abort();
        }
        st.closed = true;
        self.discard.store(true, Ordering::Release);
    }

    /// Moves every queue forward; appends finished IRPs to `out`.
    pub(crate) fn pump(self: &Arc<Self>, st: &mut SocketState, out: &mut Completions) {
        if self.category == Category::Datagram {
            super::datagram::pump(self, st, out);
            return;
        }
        let failed = st.failure.is_some();
        self.pump_connect(st, out);
        self.pump_accepts(st, out);
        self.pump_receives(st, out);
        self.pump_sends(st, out);
        if !failed && st.failure.is_some() {
            // The connection failed during this pump (a send's failure, a cancelled send): the
            // receives pumped before must not wait for an event that will never come.
            self.pump_receives(st, out);
            self.pump_sends(st, out);
        }
    }

    fn pump_connect(self: &Arc<Self>, st: &mut SocketState, out: &mut Completions) {
        let Some(connector) = st.connector.as_mut() else { return };
        if st.connects.is_empty() {
            // No connect operation waits for the outcome yet: the transport's event can arrive
            // between the connector being stored and the operation being queued (the TCP event
            // loop pumps the socket as soon as it is registered), or while the operation is held.
            // Polling now would consume the outcome (the host socket's SO_ERROR, the in-memory
            // connector's decision) with nobody to give it to, and the connect would never
            // complete; the pump that follows the queueing polls instead.
            return;
        }
        let status = match connector.poll() {
            ConnectOutcome::WouldBlock => return,
            ConnectOutcome::Connected(mut wire) => {
                wire.attach(self.me.clone());
                st.wire = Some(wire);
                STATUS_SUCCESS
            }
            ConnectOutcome::Failed(status) => status,
        };
        st.connector = None;
        let mut abandon = false;
        let header = self.header;
        st.connects.retain(|p| {
            if !claim(p.irp) {
                return true;
            }
            let returns_socket = matches!(p.op, Op::Connect { returns_socket: true });
            abandon |= returns_socket && status != STATUS_SUCCESS;
            let information = if returns_socket && status == STATUS_SUCCESS {
                header
            } else {
                0
            };
            out.push(Done::new(p.irp, status, information));
            false
        });
        if abandon {
            self.abandon(st);
        }
    }

    fn pump_accepts(self: &Arc<Self>, st: &mut SocketState, out: &mut Completions) {
        while let Some(front) = st.accepts.front() {
            let irp = front.irp;
            let Some(listener) = st.listener.as_mut() else { return };
            if !claim(irp) {
                return;
            }
            match listener.accept() {
                AcceptOutcome::WouldBlock => {
                    if !arm(irp, self) {
                        st.accepts.pop_front();
                        out.push(Done::new(irp, STATUS_CANCELLED, 0));
                        continue;
                    }
                    return;
                }
                AcceptOutcome::Failed(status) => {
                    st.accepts.pop_front();
                    out.push(Done::new(irp, status, 0));
                }
                AcceptOutcome::Accepted(wire) => {
                    let Some(Pending {
                        op: Op::Accept { local_out, remote_out },
                        ..
                    }) = st.accepts.pop_front()
                    else {
                        continue;
                    };
                    let (local, remote) = (wire.local_addr(), wire.peer_addr());
                    let accepted = self.adopt(wire);
                    // SAFETY: the address buffers were passed to WskAccept with this IRP and stay valid
                    // until it completes (WSK contract); NULL ones are skipped.
                    unsafe {
                        super::addr::write(local_out.0, local);
                        super::addr::write(remote_out.0, remote);
                    }
                    out.push(Done::new(irp, STATUS_SUCCESS, accepted.expose_provenance()));
                }
            }
        }
    }

    /// Wraps an accepted connection in a new connection-oriented socket.
    fn adopt(&self, mut wire: Box<dyn Wire>) -> PWSK_SOCKET {
        let family = super::addr::family(&wire.local_addr());
        // A listening socket accepts connection-oriented sockets; a stream socket, stream sockets.
        let category = if self.category == Category::Stream {
            Category::Stream
        } else {
            Category::Connection
        };
        let (socket, core) = socket::create(&self.registration, category, family);
        wire.attach(core.me.clone());
        core.lock().wire = Some(wire);
        socket
    }

    fn pump_receives(self: &Arc<Self>, st: &mut SocketState, out: &mut Completions) {
        let SocketState {
            receives,
            wire,
            peer_fin,
            failure,
            connector,
            ..
        } = st;
        // Invented: a receive (or send) queued while the socket connects waits for the connect.
        let connecting = connector.is_some();
        let cancelled = drive(self, receives, out, |op| {
            let Op::Receive { buf, done, waitall } = op else {
                return Step::Complete(STATUS_INVALID_DEVICE_REQUEST, 0);
            };
            // SAFETY: the client keeps its WSK_BUF valid until the IRP completes (see `mdl.rs`).
            if let Err(status) = unsafe { buf.reread("WskReceive") } {
                return Step::Complete(status, *done);
            }
            if let Some(status) = *failure {
                return Step::Complete(status, *done);
            }
            // Invented: a 0-byte receive completes with STATUS_SUCCESS and 0 bytes.
            if buf.len() == 0 {
                return Step::Complete(STATUS_SUCCESS, 0);
            }
            let Some(wire) = wire.as_mut() else {
                return if connecting {
                    Step::Wait
                } else {
                    Step::Complete(STATUS_INVALID_DEVICE_STATE, 0)
                };
            };
            loop {
                if *peer_fin {
                    return Step::Complete(STATUS_SUCCESS, *done);
                }
                // SAFETY: the buffer was validated when the receive was queued and its MDLs stay live
                // until the IRP completes.
                let Some((ptr, len)) = (unsafe { buf.segment(*done) }) else {
                    return Step::Complete(STATUS_SUCCESS, *done);
                };
                // SAFETY: `ptr..ptr+len` lies inside the client's locked buffer, which the client does
                // not touch while the receive pends.
                let target = unsafe { core::slice::from_raw_parts_mut(ptr, len) };
                match wire.read(target) {
                    ReadOutcome::Data(n) => {
                        *done += n;
                        if *done == buf.len() || (n < len && !*waitall) {
                            return Step::Complete(STATUS_SUCCESS, *done);
                        }
                    }
                    ReadOutcome::WouldBlock => {
                        return if *done > 0 && !*waitall {
                            Step::Complete(STATUS_SUCCESS, *done)
                        } else {
                            Step::Wait
                        };
                    }
                    ReadOutcome::Eof => *peer_fin = true,
                    ReadOutcome::Failed(status) => {
                        *failure = Some(status);
                        return Step::Complete(status, *done);
                    }
                }
            }
        });
        if let Some(op) = cancelled {
            st.reset_after_cancel(&op);
        }
    }
}

/// Runs `step` on the head of `queue` until one must wait, with the claim/arm protocol around it: an
/// IRP being cancelled is left for its cancel routine; one that must wait is re-armed, or completed
/// with STATUS_CANCELLED if a cancel came meanwhile (then its operation is returned, for
/// [`SocketState::reset_after_cancel`]).
pub(crate) fn drive(
    core: &Arc<SocketCore>,
    queue: &mut VecDeque<Pending>,
    out: &mut Completions,
    mut step: impl FnMut(&mut Op) -> Step,
) -> Option<Op> {
    while let Some(front) = queue.front_mut() {
        let irp = front.irp;
        if !claim(irp) {
            return None;
        }
        match step(&mut front.op) {
            Step::Complete(status, information) => {
                queue.pop_front();
                out.push(Done::new(irp, status, information));
            }
            Step::Wait => {
                if arm(irp, core) {
                    return None;
                }
                let progress = front.op.progress();
                let cancelled = queue.pop_front().map(|p| p.op);
                out.push(Done::new(irp, STATUS_CANCELLED, progress));
                return cancelled;
            }
        }
    }
    None
}

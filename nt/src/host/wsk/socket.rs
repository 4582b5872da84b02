//! The provider's side of a socket ([`SocketCore`]): its category, its state (transport objects,
//! queues of pending IRP-based operations, connection flags) and the calls in progress on it.
//!
//! Each socket is a heap object beginning with a `WSK_SOCKET` header whose `Dispatch` points to the
//! table of its category (basic, listen, connection, stream); the client only ever holds a pointer
//! to that header, and the provider finds the core through the socket table (`table.rs`).

use super::gate::CallGate;
use super::irp::{Completions, Done, ProviderIrp};
use super::mdl::Buf;
use super::registration::Registration;
use super::transport::{Connector, Listener, OpKind, Port, Wire};
use crate::types::*;
use crate::wsk::*;
use std::backtrace::Backtrace;
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

pub(crate) use super::table::{
    check_close, create, enter, forget_all, lookup, open_cores, purge, retire, retire_closing,
};

/// The socket categories of `WskSocket`'s `Flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    Basic,
    Listen,
    Connection,
    /// `WSK_FLAG_STREAM_SOCKET`: becomes a listener (`WskListen`) or a connection (`WskConnect`).
    Stream,
    /// `WSK_FLAG_DATAGRAM_SOCKET` (UDP): `WskBind`, then `WskSendTo` / `WskReceiveFrom`.
    Datagram,
}

/// The categories whose table has the connection functions.
pub(crate) const CONNECTED: &[Category] = &[Category::Connection, Category::Stream];
/// The categories whose table has `WskAccept`.
pub(crate) const LISTENING: &[Category] = &[Category::Listen, Category::Stream];

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Category::Basic => "basic",
            Category::Listen => "listening",
            Category::Connection => "connection-oriented",
            Category::Stream => "stream",
            Category::Datagram => "datagram",
        })
    }
}

/// An IRP-based operation waiting in a socket's queues, with its progress.
pub(crate) struct Pending {
    pub irp: ProviderIrp,
    pub op: Op,
}

pub(crate) enum Op {
    /// `WskAccept`: the optional address buffers are filled in at completion.
    Accept {
        local_out: OutAddr,
        remote_out: OutAddr,
    },
    /// `WskConnect`, or `WskSocketConnect` (`returns_socket`: the socket goes in `Information`).
    Connect {
        returns_socket: bool,
    },
    Send {
        buf: Buf,
        done: usize,
        nodelay: bool,
    },
    Receive {
        buf: Buf,
        done: usize,
        waitall: bool,
    },
    /// A graceful `WskDisconnect`, queued behind the sends, with its optional final buffer.
    Disconnect {
        buf: Option<Buf>,
        done: usize,
    },
    /// `WskSendTo`: one datagram to the address at `to`, read when it is sent (see `datagram.rs`).
    SendTo {
        buf: Buf,
        to: InAddr,
    },
    /// `WskReceiveFrom`, with its optional outputs, written at completion.
    ReceiveFrom {
        buf: Buf,
        from_out: OutAddr,
        control_length: OutUlong,
        control_flags: OutUlong,
    },
    /// An operation already carried out whose completion a test holds (socket creation, bind,
    /// control, address query, close: see `decided.rs`).
    Decided(Decided),
}

/// The decided result of an [`Op::Decided`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decided {
    pub kind: OpKind,
    pub status: NTSTATUS,
    pub information: usize,
    /// A `WskCloseSocket`: its socket counts as open for the registration until it completes.
    pub closes: bool,
    /// A `WskSocket` (the socket is this one): completed with a failure, it is destroyed.
    pub creates: bool,
}

impl Op {
    pub(crate) fn kind(&self) -> OpKind {
        match self {
            Op::Accept { .. } => OpKind::Accept,
            Op::Connect { .. } => OpKind::Connect,
            Op::Send { .. } => OpKind::Send,
            Op::Receive { .. } => OpKind::Receive,
            Op::Disconnect { .. } => OpKind::Disconnect,
            Op::SendTo { .. } => OpKind::SendTo,
            Op::ReceiveFrom { .. } => OpKind::ReceiveFrom,
            Op::Decided(decided) => decided.kind,
        }
    }

    /// Bytes already transferred (reported in `Information` when the IRP is cancelled). Invented: a
    /// cancelled or failed transfer reports the bytes already moved, which are consumed.
    pub(crate) fn progress(&self) -> usize {
        match self {
            Op::Send { done, .. } | Op::Receive { done, .. } | Op::Disconnect { done, .. } => *done,
            Op::Accept { .. } | Op::Connect { .. } | Op::Decided(_) => 0,
            // A datagram moves whole or not at all.
            Op::SendTo { .. } | Op::ReceiveFrom { .. } => 0,
        }
    }
}

/// The mutable state of a socket, behind its lock.
#[derive(Default)]
pub(crate) struct SocketState {
    pub closed: bool,
    /// `IPV6_V6ONLY`; Windows defaults it to TRUE for AF_INET6 sockets.
    pub v6only: bool,
    /// `SO_EXCLUSIVEADDRUSE`, set before the bind (see `options.rs`).
    pub exclusive: bool,
    /// `TCP_NODELAY` and `SO_KEEPALIVE` as the client set them (off by default, as on Windows).
    pub nodelay: bool,
    pub keepalive: bool,
    pub bound: Option<SocketAddr>,
    pub listener: Option<Box<dyn Listener>>,
    pub connector: Option<Box<dyn Connector>>,
    pub wire: Option<Box<dyn Wire>>,
    /// A datagram socket's bound port.
    pub port: Option<Box<dyn Port>>,
    pub accepts: VecDeque<Pending>,
    pub connects: VecDeque<Pending>,
    pub receives: VecDeque<Pending>,
    /// Sends and then, if requested, the graceful disconnect: FIN follows the queued data.
    pub sends: VecDeque<Pending>,
    /// Sends (and the graceful disconnect) whose bytes (and FIN) are all handed to the transport,
    /// in stream order, each with the stream position it ends at: they complete once the transport
    /// has acknowledged that position (see [`super::send`]).
    pub acks: VecDeque<(u64, Pending)>,
    /// Operations a test holds on the in-memory transport, by id.
    pub held: Vec<(u64, Pending)>,
    /// Held IRPs past the point of cancellation (`Completion::IgnoreCancel`): their cancel routine is
    /// disarmed (so `IoCancelIrp` finds none and returns FALSE) and kept here to re-arm it when the
    /// test releases them.
    pub past_cancel: Vec<(ProviderIrp, PDRIVER_CANCEL)>,
    /// A graceful disconnect has been requested (no further sends).
    pub disconnect_requested: bool,
    /// The peer's FIN was received.
    pub peer_fin: bool,
    /// Our FIN was sent.
    pub fin_sent: bool,
    /// The connection failed (reset, aborted, forced close): the status of every further data operation.
    /// Invented: every later data operation fails with the status of the first failure.
    pub failure: Option<NTSTATUS>,
}

impl SocketState {
    /// Removes the pending IRP `irp` from whichever queue holds it.
    pub(crate) fn remove(&mut self, irp: ProviderIrp) -> Option<Pending> {
        for queue in [
            &mut self.accepts,
            &mut self.connects,
            &mut self.receives,
            &mut self.sends,
        ] {
            if let Some(i) = queue.iter().position(|p| p.irp == irp) {
                return queue.remove(i);
            }
        }
        if let Some(i) = self.acks.iter().position(|(_, p)| p.irp == irp) {
            return self.acks.remove(i).map(|(_, p)| p);
        }
        let i = self.held.iter().position(|(_, p)| p.irp == irp)?;
        self.take_past_cancel(irp);
        Some(self.held.remove(i).1)
    }

    /// If `irp` is held past the point of cancellation, forgets that and returns its disarmed cancel
    /// routine: the provider owns the IRP outright (nobody else can complete it).
    pub(crate) fn take_past_cancel(&mut self, irp: ProviderIrp) -> Option<PDRIVER_CANCEL> {
        let i = self.past_cancel.iter().position(|(p, _)| *p == irp)?;
        Some(self.past_cancel.remove(i).1)
    }

    /// Completes every pending IRP whose cancel routine can still be disarmed with `status` (the
    /// others are being cancelled and stay queued for their cancel routine).
    pub(crate) fn flush(&mut self, status: NTSTATUS, out: &mut Completions) {
        let past_cancel = &mut self.past_cancel;
        let mut finish = |p: &Pending| {
            // An IRP held past the point of cancellation has no cancel routine to disarm: the
            // provider owns it outright.
            let owned = match past_cancel.iter().position(|(irp, _)| *irp == p.irp) {
                Some(i) => {
                    past_cancel.remove(i);
                    true
                }
                None => super::irp::claim(p.irp),
            };
            if owned {
                out.push(Done::ended(p.irp, status, p.op.progress()));
            }
            !owned
        };
        for queue in [
            &mut self.accepts,
            &mut self.connects,
            &mut self.receives,
            &mut self.sends,
        ] {
            queue.retain(&mut finish);
        }
        self.acks.retain(|(_, p)| finish(p));
        self.held.retain(|(_, p)| finish(p));
    }

    /// A send or receive of this connection ended by cancellation (`op`): the connection is reset.
    /// Invented: WSK does not say whether a connection survives a cancelled send or receive. The
    /// Winsock SPI says only a close is safe on a socket after a cancelled operation (other than an
    /// accept), and that a provider must reset a stream whose integrity a cancel compromised; the
    /// harsher reading is taken for every cancelled send or receive, partial or not: RST to the
    /// peer, and every later data operation (and those still pending) fails with
    /// STATUS_CONNECTION_ABORTED, as after an abortive disconnect. Close and disconnect stay legal.
    pub(crate) fn reset_after_cancel(&mut self, op: &Op) {
        if !matches!(op, Op::Send { .. } | Op::Receive { .. }) {
            return;
        }
        if let Some(mut wire) = self.wire.take() {
            wire.abort();
        }
        self.failure.get_or_insert(STATUS_CONNECTION_ABORTED);
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.accepts.len()
            + self.connects.len()
            + self.receives.len()
            + self.sends.len()
            + self.acks.len()
            + self.held.len()
    }
}

/// The provider's side of one socket.
pub(crate) struct SocketCore {
    /// Address of the client-visible `WSK_SOCKET` header.
    pub header: usize,
    pub category: Category,
    pub family: ADDRESS_FAMILY,
    pub registration: Arc<Registration>,
    pub state: Mutex<SocketState>,
    pub me: Weak<SocketCore>,
    /// Threads currently inside a provider function for this socket (the emulation's thread ids).
    pub(crate) calls: Mutex<Vec<usize>>,
    pub(crate) gate: Mutex<Option<Arc<CallGate>>>,
    /// Whether `gate` holds a gate: lets every call skip the gate's lock when no test set one.
    pub(crate) gated: AtomicBool,
    /// Set when a `WskSocketConnect` socket failed to connect: it is destroyed, never handed out.
    pub discard: AtomicBool,
    pub created_at: Option<Backtrace>,
}

impl fmt::Display for SocketCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WSK {} socket {:#x}", self.category, self.header)
    }
}

impl SocketCore {
    pub(crate) fn lock(&self) -> MutexGuard<'_, SocketState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Threads inside a provider call on this socket, other than the current one.
    pub(crate) fn calls_on_other_threads(&self) -> usize {
        let me = crate::host::thread_id::current();
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|&&t| t != me)
            .count()
    }

    pub(crate) fn set_gate(&self, gate: Arc<CallGate>) {
        let mut slot = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = Some(gate);
        // Under the gate's lock, as the call that takes the gate clears it.
        self.gated.store(true, Ordering::Release);
    }
}

/// An address of the client that the provider reads when it carries an operation out (`WskSendTo`'s
/// `RemoteAddress`), not only in the call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InAddr(pub PSOCKADDR);

// SAFETY: the client keeps the address valid and unchanged until the IRP completes; the provider
// only reads it, on whichever thread carries the operation out.
unsafe impl Send for InAddr {}

/// An address buffer of the client that the provider fills in when an operation completes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OutAddr(pub PSOCKADDR);

// SAFETY: the client keeps the buffer valid, and does not touch it, until the IRP completes; the
// provider writes it exactly once, on whichever thread completes the IRP.
unsafe impl Send for OutAddr {}

/// A `ULONG` of the client that the provider writes when an operation completes (`WskReceiveFrom`'s
/// optional `ControlLength` and `ControlFlags`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct OutUlong(pub *mut ULONG);

// SAFETY: as for `OutAddr`.
unsafe impl Send for OutUlong {}

impl OutUlong {
    /// Writes `value` unless the pointer is NULL.
    ///
    /// # Safety
    /// The pointer is NULL or valid for a write until the operation's IRP completes.
    pub(crate) unsafe fn write(self, value: ULONG) {
        if !self.0.is_null() {
            // SAFETY: forwarded from the caller's contract; unaligned, as for addresses.
            unsafe { self.0.write_unaligned(value) };
        }
    }
}

/// Operations queued when a socket is torn down without a close (deregister): for the report.
pub(crate) fn describe_pending(st: &SocketState) -> String {
    let n = st.pending_count();
    if n == 0 {
        String::from("no pending IRP")
    } else {
        format!("{n} pending IRP(s)")
    }
}

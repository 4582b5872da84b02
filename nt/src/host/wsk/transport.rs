//! The interface between the provider's socket logic and a transport (real host TCP, or the
//! in-memory network). A transport moves bytes and reports connection events; every WSK rule (which
//! IRP completes when, with which status) lives in the socket logic above it, shared by both.

use super::socket::SocketCore;
use crate::types::NTSTATUS;
use std::net::SocketAddr;
use std::sync::Weak;

/// What a non-blocking read from a connection produced.
pub(crate) enum ReadOutcome {
    Data(usize),
    WouldBlock,
    /// The peer sent FIN and every byte before it was read.
    Eof,
    Failed(NTSTATUS),
}

/// What a non-blocking write to a connection produced.
pub(crate) enum WriteOutcome {
    Wrote(usize),
    WouldBlock,
    Failed(NTSTATUS),
}

/// One established connection. Every call is non-blocking; when a call returns `WouldBlock`, the
/// transport later pumps the socket it is attached to (see [`SocketCore::pump`]).
pub(crate) trait Wire: Send {
    /// Tells the transport which socket to pump when the connection becomes readable or writable.
    fn attach(&mut self, owner: Weak<SocketCore>);
    fn read(&mut self, buf: &mut [u8]) -> ReadOutcome;
    /// The transport saw an event on the connection (new data, FIN, reset): the next `read` must ask
    /// the host again even if the last one found nothing. Called under the socket lock, before the
    /// pump that follows the event.
    fn mark_ready(&mut self) {}
    fn write(&mut self, buf: &[u8], nodelay: bool) -> WriteOutcome;
    /// Whether the peer's FIN has arrived with no unread data before it (the transport knows, even if
    /// no receive has seen it yet).
    fn peer_finished(&mut self) -> bool;
    /// Sends FIN after the data already written.
    fn shutdown_write(&mut self) -> Result<(), NTSTATUS>;
    /// Stream position after everything handed to the transport so far: bytes written, plus one for
    /// FIN once `shutdown_write` succeeded (FIN takes a sequence number, as in TCP).
    fn handed(&self) -> u64;
    /// Stream position up to which the transport is done with the data (see [`super::send`]): the
    /// peer's TCP acknowledged it (TCP), or the peer read it (in-memory). Never above
    /// [`handed`](Self::handed). An error if the connection failed meanwhile.
    fn acknowledged(&mut self) -> Result<u64, NTSTATUS>;
    /// Resets the connection (RST) and releases it.
    fn abort(&mut self);
    /// Releases a connection that is disconnected both ways.
    fn close(&mut self);
    fn local_addr(&self) -> SocketAddr;
    fn peer_addr(&self) -> SocketAddr;
    /// Applies a connection option (`HostOption::NoDelay` or `HostOption::KeepAlive`) to the host
    /// socket (TCP), or records it (in-memory).
    fn set_option(&mut self, option: HostOption, on: bool) -> Result<(), NTSTATUS>;
    /// The option as the transport has it (TCP: read back from the host socket with getsockopt).
    fn option(&self, option: HostOption) -> Option<bool>;
    /// The ideal send backlog in bytes (`SIO_WSK_QUERY_IDEAL_SEND_BACKLOG`, see `backlog.rs`): TCP
    /// derives it from the host socket, the in-memory network from the test's script or the peer's
    /// window. An error if the connection failed.
    fn ideal_send_backlog(&self) -> Result<usize, NTSTATUS>;
}

/// What a non-blocking datagram receive produced.
pub(crate) enum DatagramOutcome {
    /// One datagram: `copied` bytes of its `length` went into the buffer (`copied < length`: it was
    /// truncated, the rest is lost), sent from `from`.
    Received {
        copied: usize,
        length: usize,
        from: SocketAddr,
    },
    WouldBlock,
    Failed(NTSTATUS),
}

/// A bound datagram (UDP) port. Every call is non-blocking; when one returns `WouldBlock`, the
/// transport later pumps the socket that bound it.
pub(crate) trait Port: Send {
    /// Sends one datagram of `data` to `to`.
    fn send_to(&mut self, data: &[u8], to: SocketAddr) -> WriteOutcome;
    /// Takes the next datagram that arrived, copying what fits into `buf`.
    fn receive_from(&mut self, buf: &mut [u8]) -> DatagramOutcome;
    /// The bound address, with the port the transport chose for port 0.
    fn local_addr(&self) -> SocketAddr;
    /// Unbinds the port; datagrams that arrived and were not received are lost.
    fn close(&mut self);
}

/// What a non-blocking accept produced.
pub(crate) enum AcceptOutcome {
    Accepted(Box<dyn Wire>),
    WouldBlock,
    Failed(NTSTATUS),
}

/// A bound, listening socket.
pub(crate) trait Listener: Send {
    fn accept(&mut self) -> AcceptOutcome;
    fn local_addr(&self) -> SocketAddr;
    fn close(&mut self);
    /// The option as the transport has it (`HostOption::ExclusiveAddressUse`; TCP: read back from
    /// the host socket).
    fn option(&self, option: HostOption) -> Option<bool>;
}

/// What polling an outgoing connection produced.
pub(crate) enum ConnectOutcome {
    Connected(Box<dyn Wire>),
    WouldBlock,
    Failed(NTSTATUS),
}

/// An outgoing connection being established.
pub(crate) trait Connector: Send {
    fn poll(&mut self) -> ConnectOutcome;
}

/// The socket options the transports carry (see `options.rs` for the WSK rules around them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostOption {
    /// `TCP_NODELAY` of a connection.
    NoDelay,
    /// `SO_KEEPALIVE` of a connection.
    KeepAlive,
    /// `SO_EXCLUSIVEADDRUSE` of a listener, given at `listen`.
    ExclusiveAddressUse,
}

/// The operations a test can script on the in-memory transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `WskAccept`.
    Accept,
    /// `WskConnect`.
    Connect,
    /// `WskSend`.
    Send,
    /// `WskReceive`.
    Receive,
    /// `WskDisconnect`.
    Disconnect,
    /// `WskCloseSocket`.
    Close,
    /// `WskSocket`.
    Socket,
    /// `WskBind`.
    Bind,
    /// `WskControlSocket` with an IRP.
    Control,
    /// `WskGetLocalAddress` and `WskGetRemoteAddress`.
    GetAddress,
    /// `WskSendTo`.
    SendTo,
    /// `WskReceiveFrom`.
    ReceiveFrom,
}

/// How the transport wants the next operation of a kind handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Complete as soon as the network allows (inline when it already can).
    Natural,
    /// Pend, identified by this id, until the test releases it (or it is cancelled / closed).
    Hold(u64),
    /// Like `Hold`, but past the point of cancellation: no cancel routine stays armed, so
    /// `IoCancelIrp` cannot complete it; only the test's release or the socket's close ends it.
    HoldPastCancel(u64),
    /// Complete at once with this status.
    Fail(NTSTATUS),
    /// Return this status without ever completing the IRP: a provider that breaks the IRP contract.
    Unfinished(NTSTATUS),
}

/// A transport: creates listeners and outgoing connections, and decides operation policies.
pub(crate) trait Transport: Send + Sync {
    /// `exclusive`: `SO_EXCLUSIVEADDRUSE` was set before the bind.
    fn listen(
        &self,
        addr: SocketAddr,
        v6only: bool,
        exclusive: bool,
        owner: Weak<SocketCore>,
    ) -> Result<Box<dyn Listener>, NTSTATUS>;
    fn connect(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        owner: Weak<SocketCore>,
    ) -> Result<Box<dyn Connector>, NTSTATUS>;
    /// Binds a datagram port at `addr` (port 0: the transport picks one) for the datagram socket
    /// `owner`; an AF_INET6 port with `v6only` false receives IPv4 datagrams too.
    fn bind_datagram(&self, addr: SocketAddr, v6only: bool, owner: Weak<SocketCore>)
    -> Result<Box<dyn Port>, NTSTATUS>;
    /// After a pump of a datagram socket, with no socket lock held: wakes the datagram sockets that
    /// the pump's sends delivered to (a transport that delivers between the driver's own sockets
    /// cannot pump the receiver under the sender's lock).
    fn wake_datagram_receivers(&self) {}
    fn policy(&self, kind: OpKind, owner: &Weak<SocketCore>) -> Policy;
    /// For operations that complete at once whatever the network does (an abortive disconnect):
    /// if the next scripted completion of `kind` is `Unfinished`, takes it and returns its status.
    fn take_unfinished(&self, kind: OpKind) -> Option<NTSTATUS> {
        let _ = kind;
        None
    }
}

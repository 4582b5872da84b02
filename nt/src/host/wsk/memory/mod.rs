//! Transport two: a deterministic in-memory network. It has no thread of its own and runs under
//! Miri. The test holds a [`MemoryNetwork`] (installed before `WskRegister`; registrations made
//! while it is installed use it) and decides:
//!
//! * per operation kind, how the next operations complete ([`MemoryNetwork::script`]): naturally
//!   (inline when possible, else when the network allows), held until the test releases or completes
//!   them ([`MemoryNetwork::held`], [`MemoryNetwork::release`], [`MemoryNetwork::complete`]), held
//!   past the point of cancellation (`IoCancelIrp` cannot end them: [`Completion::IgnoreCancel`]),
//!   never (only cancellation, close or an abortive disconnect ends them), or at once with a status;
//! * what the remote hosts do, through [`Peer`]s: connect to the driver's listeners
//!   ([`MemoryNetwork::connect`]), accept the driver's connects ([`MemoryNetwork::listen`]), send data,
//!   read (which opens the window and acknowledges the bytes read: a driver's send completes when
//!   the peer has read all of it), FIN, RST, and force-close the driver's socket;
//! * what remote UDP hosts do, through [`UdpPeer`]s ([`MemoryNetwork::bind_udp`]): send datagrams to
//!   the driver's datagram sockets and receive theirs.
//!
//! Every completion a test action causes happens on the test's thread at DISPATCH_LEVEL, before the
//! action returns.

mod datagram;
mod pipe;

pub use datagram::UdpPeer;
pub use pipe::Peer;

use super::socket::SocketCore;
use super::transport::*;
use crate::types::*;
use pipe::{MemWire, Pipe};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

/// How the next operation of a kind completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// As soon as the network allows (inline when it already can).
    Natural,
    /// Pends until the test calls [`MemoryNetwork::release`] or [`MemoryNetwork::complete`].
    Hold,
    /// Pends until cancelled, closed, or (data operations) ended by an abortive disconnect.
    Never,
    /// Pends like [`Hold`](Self::Hold), but past the point of cancellation, as a real provider may
    /// be when it has already committed to finishing the operation: `IoCancelIrp` finds no cancel
    /// routine (it returns FALSE and the IRP stays pending). It ends when the test releases it
    /// (natural progress: an accept then takes the next queued connection, a connect connects) or
    /// completes it, or when its socket is closed: the close first lets it progress naturally (so an
    /// accept with a queued connection still completes with that socket), then completes what is
    /// left with STATUS_CANCELLED.
    IgnoreCancel,
    /// Completes at once with this status.
    Fail(NTSTATUS),
    /// The WSK function returns this status and the provider never completes the IRP, nor touches it
    /// again. That breaks the IRP contract (a non-pending return means the IRP was completed), and
    /// Wine 8's netio does it (measured): its WskDisconnect, WskControlSocket and address queries
    /// are stubs that return STATUS_NOT_IMPLEMENTED. A client must survive it.
    Unfinished(NTSTATUS),
}

/// When the peers of a network acknowledge the bytes the driver sends, which completes its sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Acknowledgement {
    /// When the peer reads them (the default). Invented, and harsher than TCP: a send to a peer that
    /// does not read never completes, however large its window.
    #[default]
    OnRead,
    /// When they arrive in the peer's window, before it reads them, as a real TCP peer acknowledges
    /// what fits in its receive buffer: a send completes once all its bytes are handed over.
    OnArrival,
}

/// An operation a test holds, as listed by [`MemoryNetwork::held`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldOp {
    /// The operation's id, to pass back to the network to complete it.
    pub id: u64,
    /// What the operation is.
    pub kind: OpKind,
}

struct ListenEntry {
    v6only: bool,
    owner: Weak<SocketCore>,
    backlog: VecDeque<Arc<Pipe>>,
}

struct NetState {
    listeners: BTreeMap<SocketAddr, ListenEntry>,
    peer_listeners: BTreeMap<SocketAddr, VecDeque<Arc<Pipe>>>,
    scripts: HashMap<OpKind, VecDeque<Completion>>,
    held: BTreeMap<u64, (OpKind, Weak<SocketCore>)>,
    next_id: u64,
    next_port: u16,
    window: usize,
    acknowledgement: Acknowledgement,
    /// Bound datagram addresses, the driver's and the peers' (see `datagram.rs`).
    udp: BTreeMap<SocketAddr, datagram::UdpEntry>,
    /// Driver datagram sockets that the driver's own sends delivered to, to pump after the sender's.
    wake: Vec<Weak<SocketCore>>,
    ideal_send_backlog: Option<usize>,
}

pub(crate) struct MemNet {
    state: Mutex<NetState>,
    me: Weak<MemNet>,
}

impl MemNet {
    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl NetState {
    /// Invented: ephemeral ports from 49152 and loopback addresses for the in-memory network.
    fn ephemeral_port(&mut self) -> u16 {
        self.next_port = self.next_port.checked_add(1).unwrap_or(49152);
        self.next_port
    }

    /// The listener that accepts a connection to `target`, as a host stack routes it: exact address,
    /// or a wildcard of the same family, or an IPv6 wildcard without IPV6_V6ONLY for IPv4 targets.
    fn listener_for(&self, target: SocketAddr) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(addr, entry)| {
                addr.port() == target.port()
                    && (addr.ip() == target.ip()
                        || (addr.ip().is_unspecified() && addr.is_ipv4() == target.is_ipv4())
                        || (addr.ip().is_unspecified() && addr.is_ipv6() && target.is_ipv4() && !entry.v6only))
            })
            .map(|(addr, _)| *addr)
    }
}

/// `target` as seen from a listener of `listener`'s family (IPv4 seen by IPv6 is IPv4-mapped).
fn as_seen_by(listener: SocketAddr, target: SocketAddr) -> SocketAddr {
    match (listener, target.ip()) {
        (SocketAddr::V6(_), IpAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), target.port()),
        _ => target,
    }
}

fn loopback_like(addr: SocketAddr, port: u16) -> SocketAddr {
    match addr.ip() {
        ip if !ip.is_unspecified() => SocketAddr::new(ip, port),
        IpAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], port)),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
    }
}

impl Transport for MemNet {
    fn listen(
        &self,
        addr: SocketAddr,
        v6only: bool,
        exclusive: bool,
        owner: Weak<SocketCore>,
    ) -> Result<Box<dyn Listener>, NTSTATUS> {
        let mut st = self.lock();
        let port = if addr.port() == 0 {
            st.ephemeral_port()
        } else {
            addr.port()
        };
        let addr = SocketAddr::new(addr.ip(), port);
        // Refused as the TCP transport refuses (see its `AddrInUse` mapping): the same address, and
        // any binding that overlaps a listening one of the same port (a wildcard and an address of
        // its family, a dual-stack IPv6 wildcard and an IPv4 address). Windows refuses the overlap
        // when either socket set SO_EXCLUSIVEADDRUSE, and a second wildcard always; Invented: the
        // refusal also where Windows lets a specific address be bound beside a wildcard (neither
        // exclusive; see Microsoft's "Using SO_EXCLUSIVEADDRUSE" table): without it a connection
        // went to whichever listener came first in `listener_for`'s walk.
        if st
            .listeners
            .iter()
            .any(|(bound, entry)| datagram::overlaps((addr, v6only), (*bound, entry.v6only)))
        {
            return Err(STATUS_ADDRESS_ALREADY_ASSOCIATED);
        }
        st.listeners.insert(
            addr,
            ListenEntry {
                v6only,
                owner,
                backlog: VecDeque::new(),
            },
        );
        let net = self.me.upgrade().ok_or(STATUS_DEVICE_NOT_READY)?;
        Ok(Box::new(MemListener { net, addr, exclusive }))
    }

    fn connect(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        _owner: Weak<SocketCore>,
    ) -> Result<Box<dyn Connector>, NTSTATUS> {
        let mut st = self.lock();
        let port = if local.port() == 0 {
            st.ephemeral_port()
        } else {
            local.port()
        };
        let (window, acknowledgement, isb) = (st.window, st.acknowledgement, st.ideal_send_backlog);
        let outcome = match st.peer_listeners.get_mut(&remote) {
            Some(queue) => {
                let pipe = Pipe::new(loopback_like(local, port), remote, window, acknowledgement, isb);
                queue.push_back(pipe.clone());
                Ok(pipe)
            }
            None => Err(STATUS_CONNECTION_REFUSED),
        };
        Ok(Box::new(MemConnector { outcome: Some(outcome) }))
    }

    fn bind_datagram(
        &self,
        addr: SocketAddr,
        v6only: bool,
        owner: Weak<SocketCore>,
    ) -> Result<Box<dyn Port>, NTSTATUS> {
        let addr = self.bind_udp(addr, v6only, owner)?;
        let net = self.me.upgrade().ok_or(STATUS_DEVICE_NOT_READY)?;
        Ok(Box::new(datagram::MemPort { net, addr }))
    }

    fn wake_datagram_receivers(&self) {
        self.wake_receivers();
    }

    fn take_unfinished(&self, kind: OpKind) -> Option<NTSTATUS> {
        let mut st = self.lock();
        let scripts = st.scripts.get_mut(&kind)?;
        match scripts.front() {
            Some(&Completion::Unfinished(status)) => {
                scripts.pop_front();
                Some(status)
            }
            _ => None,
        }
    }

    fn policy(&self, kind: OpKind, owner: &Weak<SocketCore>) -> Policy {
        let mut st = self.lock();
        let next = st
            .scripts
            .get_mut(&kind)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Completion::Natural);
        match next {
            Completion::Natural => Policy::Natural,
            Completion::Fail(status) => Policy::Fail(status),
            Completion::Unfinished(status) => Policy::Unfinished(status),
            Completion::Hold | Completion::Never => {
                st.next_id += 1;
                let id = st.next_id;
                if next == Completion::Hold {
                    st.held.insert(id, (kind, owner.clone()));
                }
                Policy::Hold(id)
            }
            Completion::IgnoreCancel => {
                st.next_id += 1;
                let id = st.next_id;
                st.held.insert(id, (kind, owner.clone()));
                Policy::HoldPastCancel(id)
            }
        }
    }
}

struct MemListener {
    net: Arc<MemNet>,
    addr: SocketAddr,
    /// `SO_EXCLUSIVEADDRUSE`, recorded only: no address is ever shared on the in-memory network
    /// (a second listener on an address is refused whatever the option says).
    exclusive: bool,
}

impl Listener for MemListener {
    fn accept(&mut self) -> AcceptOutcome {
        let pipe = self
            .net
            .lock()
            .listeners
            .get_mut(&self.addr)
            .and_then(|e| e.backlog.pop_front());
        match pipe {
            Some(pipe) => AcceptOutcome::Accepted(Box::new(MemWire::new(pipe))),
            None => AcceptOutcome::WouldBlock,
        }
    }

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn close(&mut self) {
        let entry = self.net.lock().listeners.remove(&self.addr);
        // Invented: closing a listener resets the connections waiting in its backlog.
        for pipe in entry.into_iter().flat_map(|e| e.backlog) {
            pipe.refuse();
        }
    }

    fn option(&self, option: HostOption) -> Option<bool> {
        (option == HostOption::ExclusiveAddressUse).then_some(self.exclusive)
    }
}

struct MemConnector {
    outcome: Option<Result<Arc<Pipe>, NTSTATUS>>,
}

impl Connector for MemConnector {
    fn poll(&mut self) -> ConnectOutcome {
        match self.outcome.take() {
            Some(Ok(pipe)) => ConnectOutcome::Connected(Box::new(MemWire::new(pipe))),
            Some(Err(status)) => ConnectOutcome::Failed(status),
            None => ConnectOutcome::Failed(STATUS_CONNECTION_ABORTED),
        }
    }
}

impl Drop for MemConnector {
    /// A connect given up before the driver took its outcome (its IRP cancelled, its socket
    /// closed): the connection the peer already has at its listener is reset, as a TCP stack resets
    /// a connection whose socket is gone, rather than left open with nobody on the driver's side.
    fn drop(&mut self) {
        if let Some(Ok(pipe)) = self.outcome.take() {
            MemWire::new(pipe).abort();
        }
    }
}

static INSTALLED: Mutex<Option<Arc<MemNet>>> = Mutex::new(None);

/// Uninstalls whatever network is installed (session reset).
pub(crate) fn uninstall() {
    INSTALLED.lock().unwrap_or_else(PoisonError::into_inner).take();
}

/// The network registrations made now should use, if a test installed one.
pub(crate) fn installed() -> Option<Arc<dyn Transport>> {
    let installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    installed.as_ref().map(|net| net.clone() as Arc<dyn Transport>)
}

/// The test's handle on the in-memory network. While it is installed (from [`install`](Self::install)
/// until it is dropped), `WskRegister` gives new registrations this network instead of real TCP.
pub struct MemoryNetwork {
    net: Arc<MemNet>,
}

/// The default peer receive window (bytes the driver may send before the peer reads).
pub const DEFAULT_WINDOW: usize = 64 * 1024;

impl MemoryNetwork {
    /// Installs a new, empty network.
    pub fn install() -> Self {
        let net = Arc::new_cyclic(|me| MemNet {
            me: me.clone(),
            state: Mutex::new(NetState {
                listeners: BTreeMap::new(),
                peer_listeners: BTreeMap::new(),
                scripts: HashMap::new(),
                held: BTreeMap::new(),
                next_id: 0,
                next_port: 49151,
                window: DEFAULT_WINDOW,
                acknowledgement: Acknowledgement::OnRead,
                udp: BTreeMap::new(),
                wake: Vec::new(),
                ideal_send_backlog: None,
            }),
        });
        *INSTALLED.lock().unwrap_or_else(PoisonError::into_inner) = Some(net.clone());
        Self { net }
    }

    /// The receive window of peers of connections made from now on: how many bytes the driver may
    /// hand over that the peer has not read. It bounds the bytes in flight, not when a send completes
    /// (always when the peer has read it).
    pub fn set_default_window(&self, bytes: usize) {
        self.net.lock().window = bytes;
    }

    /// When the peers of connections made from now on acknowledge the driver's bytes.
    pub fn set_default_acknowledgement(&self, acknowledgement: Acknowledgement) {
        self.net.lock().acknowledgement = acknowledgement;
    }

    /// The ideal send backlog (`SIO_WSK_QUERY_IDEAL_SEND_BACKLOG`) of connections made from now on;
    /// None (the default) for each connection's current peer window. A connection's own setting is
    /// [`Peer::set_ideal_send_backlog`].
    pub fn set_default_ideal_send_backlog(&self, bytes: Option<usize>) {
        self.net.lock().ideal_send_backlog = bytes;
    }

    /// Queues how the next operation of `kind` (on any socket of this network) completes; operations
    /// beyond the queued ones complete naturally.
    pub fn script(&self, kind: OpKind, completion: Completion) {
        self.net.lock().scripts.entry(kind).or_default().push_back(completion);
    }

    /// A remote host connects to `addr`; the driver's listener accepts it (completing a pending
    /// `WskAccept` now, or the next one inline). STATUS_CONNECTION_REFUSED if nothing listens there.
    pub fn connect(&self, addr: SocketAddr) -> Result<Peer, NTSTATUS> {
        let (pipe, owner) = {
            let mut st = self.net.lock();
            let listen_addr = st.listener_for(addr).ok_or(STATUS_CONNECTION_REFUSED)?;
            let port = st.ephemeral_port();
            let (window, acknowledgement, isb) = (st.window, st.acknowledgement, st.ideal_send_backlog);
            let driver_side = as_seen_by(listen_addr, addr);
            let peer_side = as_seen_by(listen_addr, loopback_like(addr, port));
            let pipe = Pipe::new(driver_side, peer_side, window, acknowledgement, isb);
            let entry = st.listeners.get_mut(&listen_addr).ok_or(STATUS_CONNECTION_REFUSED)?;
            // Invented: the backlog is unbounded (WSK documents none; TCP's is 128 here).
            entry.backlog.push_back(pipe.clone());
            (pipe, entry.owner.upgrade())
        };
        if let Some(core) = owner {
            crate::emu::at_dispatch(|| core.pump_and_complete());
        }
        Ok(Peer::new(pipe))
    }

    /// A remote host binds a UDP socket at `addr` (port 0: an ephemeral port), to exchange datagrams
    /// with the driver's datagram sockets. STATUS_ADDRESS_ALREADY_ASSOCIATED if the address is bound.
    pub fn bind_udp(&self, addr: SocketAddr) -> Result<UdpPeer, NTSTATUS> {
        let addr = self.net.bind_udp(addr, false, Weak::new())?;
        Ok(UdpPeer::new(self.net.clone(), addr))
    }

    /// A remote host listens on `addr` for the driver's `WskConnect` / `WskSocketConnect`.
    pub fn listen(&self, addr: SocketAddr) -> PeerListener {
        self.net.lock().peer_listeners.entry(addr).or_default();
        PeerListener {
            net: self.net.clone(),
            addr,
        }
    }

    /// Operations currently held (scripted [`Completion::Hold`] or [`Completion::IgnoreCancel`]),
    /// oldest first.
    pub fn held(&self) -> Vec<HeldOp> {
        let held: Vec<(u64, OpKind, Weak<SocketCore>)> = self
            .net
            .lock()
            .held
            .iter()
            .map(|(&id, (kind, owner))| (id, *kind, owner.clone()))
            .collect();
        held.into_iter()
            .filter(|(id, _, owner)| {
                owner
                    .upgrade()
                    .is_some_and(|core| core.lock().held.iter().any(|(h, _)| h == id))
            })
            .map(|(id, kind, _)| HeldOp { id, kind })
            .collect()
    }

    /// Lets a held operation proceed naturally (it completes now if the network allows). False if it
    /// is no longer held (cancelled or closed meanwhile).
    pub fn release(&self, op: HeldOp) -> bool {
        self.finish(op, None, None)
    }

    /// Completes a held operation now with `status` (0 bytes). False if it is no longer held.
    pub fn complete(&self, op: HeldOp, status: NTSTATUS) -> bool {
        self.finish(op, Some(status), None)
    }

    /// Completes a held operation now with `status` and `IoStatus.Information` = `information`,
    /// whatever the operation moved: a provider's result a client must not trust (more bytes than
    /// it was given, a "negative" count). Outputs other than the IRP's status block (a receive's
    /// data and sender address) are left as they were. False if it is no longer held.
    pub fn complete_with_information(&self, op: HeldOp, status: NTSTATUS, information: ULONG_PTR) -> bool {
        self.finish(op, Some(status), Some(information))
    }

    /// Lets a held operation proceed naturally, as [`release`](Self::release), and if it completes
    /// now (a receive with a datagram waiting), reports `information` in `IoStatus.Information`
    /// instead of the bytes it moved: its outputs (data, sender address, flags) are real, only the
    /// count is the provider's lie. False if it is no longer held.
    pub fn release_with_information(&self, op: HeldOp, information: ULONG_PTR) -> bool {
        self.finish(op, None, Some(information))
    }

    fn finish(&self, op: HeldOp, status: Option<NTSTATUS>, information: Option<ULONG_PTR>) -> bool {
        let owner = self
            .net
            .lock()
            .held
            .remove(&op.id)
            .and_then(|(_, owner)| owner.upgrade());
        match owner {
            Some(core) => crate::emu::at_dispatch(|| core.release_held(op.id, status, information)),
            None => false,
        }
    }
}

impl Drop for MemoryNetwork {
    fn drop(&mut self) {
        let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
        if installed.as_ref().is_some_and(|net| Arc::ptr_eq(net, &self.net)) {
            *installed = None;
        }
    }
}

/// A remote host's listening socket, for the driver's outgoing connections.
pub struct PeerListener {
    net: Arc<MemNet>,
    addr: SocketAddr,
}

impl PeerListener {
    /// The next connection the driver made to this address, if any.
    pub fn accept(&self) -> Option<Peer> {
        let pipe = self
            .net
            .lock()
            .peer_listeners
            .get_mut(&self.addr)
            .and_then(VecDeque::pop_front)?;
        Some(Peer::new(pipe))
    }
}

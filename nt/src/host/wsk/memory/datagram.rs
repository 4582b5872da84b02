//! Datagrams on the in-memory network: the driver's bound ports ([`MemPort`], behind its WSK
//! datagram sockets) and the test's ([`UdpPeer`], playing remote hosts), in one table of bound
//! addresses with a queue of arrived datagrams each.
//!
//! A datagram is delivered to the port bound at its destination (exact address, else a wildcard of
//! the same family, else an IPv6 wildcard without IPV6_V6ONLY for an IPv4 destination, which then
//! sees the sender IPv4-mapped), or dropped if there is none. Arrival at a driver port pumps its
//! socket at DISPATCH_LEVEL: at once when a peer sent it (on the test's thread, before `send_to`
//! returns), after the sending socket's pump when the driver sent it to one of its own sockets
//! (never under the sender's lock).
//!
//! Invented: queues are unbounded (a real stack drops datagrams when its receive buffer is full),
//! and nothing is ever lost or reordered.

use super::super::socket::SocketCore;
use super::super::transport::*;
use super::{MemNet, as_seen_by, loopback_like};
use crate::types::*;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Weak};

/// One bound address.
pub(super) struct UdpEntry {
    v6only: bool,
    /// The driver's socket behind a [`MemPort`]; empty for a test's [`UdpPeer`].
    owner: Weak<SocketCore>,
    queue: VecDeque<(SocketAddr, Vec<u8>)>,
}

impl MemNet {
    /// Binds `addr` (port 0: an ephemeral port); STATUS_ADDRESS_ALREADY_ASSOCIATED if it is taken.
    ///
    /// Invented: "taken" includes an overlapping binding of the same port (a wildcard and an address
    /// of its family, an IPv6 wildcard without IPV6_V6ONLY and any IPv4 address), as a host stack
    /// refuses without `SO_REUSEADDR`; Windows may let a specific address be bound beside a
    /// wildcard, which the harsher choice refuses. Without it a datagram to such a port went to
    /// whichever binding came first in the table.
    pub(super) fn bind_udp(
        &self,
        addr: SocketAddr,
        v6only: bool,
        owner: Weak<SocketCore>,
    ) -> Result<SocketAddr, NTSTATUS> {
        let mut st = self.lock();
        let port = if addr.port() == 0 {
            st.ephemeral_port()
        } else {
            addr.port()
        };
        let addr = SocketAddr::new(addr.ip(), port);
        if st
            .udp
            .iter()
            .any(|(bound, entry)| overlaps((addr, v6only), (*bound, entry.v6only)))
        {
            return Err(STATUS_ADDRESS_ALREADY_ASSOCIATED);
        }
        st.udp.insert(
            addr,
            UdpEntry {
                v6only,
                owner,
                queue: VecDeque::new(),
            },
        );
        Ok(addr)
    }

    /// Queues a datagram from `from` (a bound address) to `to`; returns the driver socket to pump,
    /// if one received it.
    fn deliver(&self, from: SocketAddr, to: SocketAddr, data: &[u8]) -> Option<Arc<SocketCore>> {
        // A dual-stack socket reaches IPv4 hosts through IPv4-mapped addresses, and sends from
        // IPv4 loopback then.
        let to = unmapped(to);
        let mut source = unmapped(loopback_like(from, from.port()));
        if to.is_ipv4() && source.is_ipv6() {
            source = SocketAddr::from((Ipv4Addr::LOCALHOST, source.port()));
        }
        let mut st = self.lock();
        let target = st.udp.iter().find_map(|(addr, entry)| {
            let routed = addr.port() == to.port()
                && (addr.ip() == to.ip()
                    || (addr.ip().is_unspecified() && addr.is_ipv4() == to.is_ipv4())
                    || (addr.ip().is_unspecified() && addr.is_ipv6() && to.is_ipv4() && !entry.v6only));
            routed.then_some(*addr)
        })?;
        let sender = as_seen_by(target, source);
        let entry = st.udp.get_mut(&target)?;
        entry.queue.push_back((sender, data.to_vec()));
        entry.owner.upgrade()
    }

    fn take_datagram(&self, addr: SocketAddr) -> Option<(SocketAddr, Vec<u8>)> {
        self.lock().udp.get_mut(&addr)?.queue.pop_front()
    }

    fn unbind_udp(&self, addr: SocketAddr) {
        self.lock().udp.remove(&addr);
    }

    /// Pumps the driver sockets that the driver's own sends delivered to (see the module
    /// documentation).
    pub(super) fn wake_receivers(&self) {
        loop {
            let next = self.lock().wake.pop();
            let Some(owner) = next else { return };
            if let Some(core) = owner.upgrade() {
                crate::emu::at_dispatch(|| core.pump_and_complete());
            }
        }
    }
}

/// Whether two bindings (address, IPV6_V6ONLY) claim a datagram (or, for listeners, a connection)
/// to some common address: the same
/// port and the same address, or a wildcard and an address of its family, or an IPv6 wildcard
/// without IPV6_V6ONLY and an IPv4 address.
pub(super) fn overlaps((a, a_v6only): (SocketAddr, bool), (b, b_v6only): (SocketAddr, bool)) -> bool {
    let dual_stack_covers = |(w, w_v6only): (SocketAddr, bool), other: SocketAddr| {
        w.is_ipv6() && w.ip().is_unspecified() && !w_v6only && other.is_ipv4()
    };
    a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified()))
            || dual_stack_covers((a, a_v6only), b)
            || dual_stack_covers((b, b_v6only), a))
}

/// `addr`, with an IPv4-mapped IPv6 address turned back into IPv4.
fn unmapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// The driver's bound port (a datagram socket's).
pub(super) struct MemPort {
    pub(super) net: Arc<MemNet>,
    pub(super) addr: SocketAddr,
}

impl Port for MemPort {
    fn send_to(&mut self, data: &[u8], to: SocketAddr) -> WriteOutcome {
        if let Some(core) = self.net.deliver(self.addr, to, data) {
            // Pumped after the sender's pump, outside its lock (`wake_datagram_receivers`).
            self.net.lock().wake.push(core.me.clone());
        }
        WriteOutcome::Wrote(data.len())
    }

    fn receive_from(&mut self, buf: &mut [u8]) -> DatagramOutcome {
        match self.net.take_datagram(self.addr) {
            Some((from, data)) => {
                let copied = data.len().min(buf.len());
                buf[..copied].copy_from_slice(&data[..copied]);
                DatagramOutcome::Received {
                    copied,
                    length: data.len(),
                    from,
                }
            }
            None => DatagramOutcome::WouldBlock,
        }
    }

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn close(&mut self) {
        self.net.unbind_udp(self.addr);
    }
}

/// A remote host's UDP socket on the in-memory network, from
/// [`MemoryNetwork::bind_udp`](super::MemoryNetwork::bind_udp). Dropping it unbinds its address.
pub struct UdpPeer {
    net: Arc<MemNet>,
    addr: SocketAddr,
}

impl UdpPeer {
    pub(super) fn new(net: Arc<MemNet>, addr: SocketAddr) -> Self {
        Self { net, addr }
    }

    /// The bound address (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `data` as one datagram to `to`. A driver socket bound there has it at once: a pending
    /// `WskReceiveFrom` completes before this returns. Nothing bound there: the datagram is dropped.
    pub fn send_to(&self, data: &[u8], to: SocketAddr) {
        if let Some(core) = self.net.deliver(self.addr, to, data) {
            crate::emu::at_dispatch(|| core.pump_and_complete());
        }
    }

    /// The next datagram that arrived, with its sender, if any.
    pub fn receive_from(&self) -> Option<(Vec<u8>, SocketAddr)> {
        self.net.take_datagram(self.addr).map(|(from, data)| (data, from))
    }
}

impl Drop for UdpPeer {
    fn drop(&mut self) {
        self.net.unbind_udp(self.addr);
    }
}

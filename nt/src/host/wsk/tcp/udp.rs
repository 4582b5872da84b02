//! Host UDP sockets behind the transport interface ([`UdpPort`]): a non-blocking
//! `mio::net::UdpSocket` registered with the event loop like the TCP sockets, so a datagram's
//! arrival pumps the WSK datagram socket that bound it.
//!
//! A receive reads one datagram with `MSG_TRUNC` (Linux), which returns its full length even when
//! the buffer is shorter: that is how a truncated datagram is told apart from one that fit.

use super::super::socket::SocketCore;
use super::super::transport::*;
use super::event_loop::Shared;
use super::stream::status_of;
use crate::types::*;
use mio::Token;
use mio::net::UdpSocket;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

/// A bound host UDP socket.
pub(crate) struct UdpPort {
    socket: Option<UdpSocket>,
    token: Option<Token>,
    shared: Arc<Shared>,
    local: SocketAddr,
}

impl UdpPort {
    /// Binds `addr` (an AF_INET6 socket with `v6only` false also receives IPv4 datagrams, their
    /// senders IPv4-mapped) and registers it for `owner`.
    pub(crate) fn bind(
        shared: Arc<Shared>,
        addr: SocketAddr,
        v6only: bool,
        owner: Weak<SocketCore>,
    ) -> Result<Self, NTSTATUS> {
        let status = |e: io::Error| status_of(&e);
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(status)?;
        if addr.is_ipv6() {
            socket.set_only_v6(v6only).map_err(status)?;
        }
        socket.set_nonblocking(true).map_err(status)?;
        socket.bind(&addr.into()).map_err(status)?;
        let mut udp = UdpSocket::from_std(socket.into());
        let local = udp.local_addr().map_err(status)?;
        let token = shared.register(&mut udp, owner).map_err(status)?;
        Ok(Self {
            socket: Some(udp),
            token: Some(token),
            shared,
            local,
        })
    }
}

impl Port for UdpPort {
    fn send_to(&mut self, data: &[u8], to: SocketAddr) -> WriteOutcome {
        let Some(socket) = self.socket.as_ref() else {
            return WriteOutcome::Failed(STATUS_INVALID_DEVICE_STATE);
        };
        loop {
            return match socket.send_to(data, to) {
                Ok(n) => WriteOutcome::Wrote(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => WriteOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => WriteOutcome::Failed(status_of(&e)),
            };
        }
    }

    fn receive_from(&mut self, buf: &mut [u8]) -> DatagramOutcome {
        let Some(socket) = self.socket.as_ref() else {
            return DatagramOutcome::Failed(STATUS_INVALID_DEVICE_STATE);
        };
        // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and the host writes only
        // initialised bytes into it.
        let uninit = unsafe { &mut *(std::ptr::from_mut::<[u8]>(buf) as *mut [MaybeUninit<u8>]) };
        loop {
            return match SockRef::from(socket).recv_from_with_flags(uninit, libc::MSG_TRUNC) {
                Ok((length, from)) => match from.as_socket() {
                    Some(from) => DatagramOutcome::Received {
                        copied: length.min(buf.len()),
                        length,
                        from,
                    },
                    None => DatagramOutcome::Failed(STATUS_INVALID_ADDRESS),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => DatagramOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => DatagramOutcome::Failed(status_of(&e)),
            };
        }
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn close(&mut self) {
        if let Some(mut socket) = self.socket.take()
            && let Some(token) = self.token.take()
        {
            self.shared.deregister(&mut socket, token);
        }
    }
}

impl Drop for UdpPort {
    fn drop(&mut self) {
        self.close();
    }
}

//! Transport one: real host TCP sockets driven by one event-loop thread ([`event_loop`]), so real
//! clients (std `TcpStream`, `nc`) talk to the driver and see FIN and RST on the wire; and real host
//! UDP sockets for the datagram sockets ([`udp`]), on the same loop.

mod ack;
mod event_loop;
mod isb;
mod stream;
mod udp;

use super::socket::SocketCore;
use super::transport::*;
use crate::types::*;
use event_loop::EventLoop;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// The loop shared by every TCP registration of the session, started on first use.
static SHARED_LOOP: Mutex<Weak<EventLoop>> = Mutex::new(Weak::new());

/// The real-TCP transport of one registration; holds the event loop alive while it is used.
#[derive(Default)]
pub(crate) struct TcpTransport {
    event_loop: Mutex<Option<Arc<EventLoop>>>,
}

impl TcpTransport {
    fn event_loop(&self) -> Result<Arc<EventLoop>, NTSTATUS> {
        let mut mine = self.event_loop.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = mine.as_ref() {
            return Ok(running.clone());
        }
        let mut shared = SHARED_LOOP.lock().unwrap_or_else(PoisonError::into_inner);
        let running = match shared.upgrade() {
            Some(running) => running,
            None => {
                let started = Arc::new(EventLoop::start().map_err(|e| stream::status_of(&e))?);
                *shared = Arc::downgrade(&started);
                started
            }
        };
        *mine = Some(running.clone());
        Ok(running)
    }
}

impl Transport for TcpTransport {
    fn listen(
        &self,
        addr: SocketAddr,
        v6only: bool,
        exclusive: bool,
        owner: Weak<SocketCore>,
    ) -> Result<Box<dyn Listener>, NTSTATUS> {
        let event_loop = self.event_loop()?;
        Ok(Box::new(stream::TcpListen::bind(
            event_loop.shared.clone(),
            addr,
            v6only,
            exclusive,
            owner,
        )?))
    }

    fn connect(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        owner: Weak<SocketCore>,
    ) -> Result<Box<dyn Connector>, NTSTATUS> {
        let event_loop = self.event_loop()?;
        Ok(Box::new(stream::TcpConnect::start(
            event_loop.shared.clone(),
            local,
            remote,
            owner,
        )?))
    }

    fn bind_datagram(
        &self,
        addr: SocketAddr,
        v6only: bool,
        owner: Weak<SocketCore>,
    ) -> Result<Box<dyn Port>, NTSTATUS> {
        let event_loop = self.event_loop()?;
        Ok(Box::new(udp::UdpPort::bind(
            event_loop.shared.clone(),
            addr,
            v6only,
            owner,
        )?))
    }

    fn policy(&self, _kind: OpKind, _owner: &Weak<SocketCore>) -> Policy {
        Policy::Natural
    }
}

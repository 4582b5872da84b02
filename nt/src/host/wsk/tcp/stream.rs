//! Host TCP sockets behind the transport interface: connections (non-blocking `mio::net::TcpStream`),
//! listeners and outgoing connects.
//!
//! * graceful disconnect: `shutdown(Write)` once the queued data is written, so the peer reads every
//!   byte and then EOF (FIN on the wire);
//! * abortive disconnect / close of a connection not disconnected both ways: `SO_LINGER` 0 then close,
//!   so the peer sees RST;
//! * sends complete when the peer's TCP has acknowledged their bytes ([`super::ack`]); each
//!   connection's host send buffer is kept small ([`SEND_BUFFER`]);
//! * a dual-stack listener is an AF_INET6 socket with `IPV6_V6ONLY` 0 and accepts IPv4 clients (their
//!   addresses appear IPv4-mapped, as on Windows).

use super::super::socket::SocketCore;
use super::super::transport::*;
use super::event_loop::Shared;
use crate::types::*;
use mio::Token;
use mio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The NTSTATUS a host socket error maps to. Invented: the map (Windows documents none; Wine's
/// netio maps some errors differently); tests assert only success or failure, not these values.
pub(crate) fn status_of(error: &io::Error) -> NTSTATUS {
    match error.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => STATUS_CONNECTION_RESET,
        io::ErrorKind::ConnectionAborted => STATUS_CONNECTION_ABORTED,
        io::ErrorKind::ConnectionRefused => STATUS_CONNECTION_REFUSED,
        // What Windows answered to a `WskBind` on a port in use in Wine's netio test (which also runs
        // on Windows); the WSK documentation names no status. Clients should accept either code
        // (`wsk_async::WskError::is_address_in_use`).
        io::ErrorKind::AddrInUse => STATUS_ADDRESS_ALREADY_ASSOCIATED,
        io::ErrorKind::AddrNotAvailable => STATUS_INVALID_ADDRESS,
        io::ErrorKind::TimedOut => STATUS_IO_TIMEOUT,
        io::ErrorKind::NetworkUnreachable => STATUS_NETWORK_UNREACHABLE,
        io::ErrorKind::HostUnreachable => STATUS_HOST_UNREACHABLE,
        _ => STATUS_UNSUCCESSFUL,
    }
}

/// `SO_SNDBUF` of every connection (Linux doubles it for its bookkeeping), fixed, instead of Linux's
/// autotuning up to megabytes. WSK has no send buffer: a send pends until acknowledged, so this only
/// bounds the bytes handed over but not yet acknowledged. Not smaller: below two loopback segments
/// (MSS about 64 KiB) Nagle's algorithm holds each partial segment until the peer's delayed ACK,
/// which stalls a stream for tens of milliseconds at a time (measured: 2 s for 4 MiB at 16 KiB).
/// Invented: the size (Windows has no such buffer to copy).
pub(crate) const SEND_BUFFER: usize = 64 * 1024;

/// An established host connection.
pub(crate) struct TcpWire {
    stream: Option<TcpStream>,
    token: Option<Token>,
    shared: Arc<Shared>,
    local: SocketAddr,
    peer: SocketAddr,
    /// False once a read found nothing (EAGAIN), until the event loop reports the socket readable
    /// ([`Wire::mark_ready`]): pumps meanwhile (a send's inline attempt, a writable event) skip a
    /// `recv` that would only fail again. Sound because the socket is registered edge-triggered, so
    /// every arrival (data, FIN, RST) after the EAGAIN brings an event, and this flag and the reads
    /// are only touched under the socket lock (the event loop marks the wire under it before it
    /// pumps). A short read does not clear it: it may have stopped at a FIN, whose EOF only the next
    /// read returns, and no event would follow.
    readable: bool,
    /// `TCP_NODELAY` is already set (it stays set: only the first `WSK_FLAG_NODELAY` send needs the
    /// system call).
    nodelay: bool,
    /// Stream position after everything written, FIN counting one ([`Wire::handed`]).
    handed: u64,
}

impl TcpWire {
    fn new(stream: TcpStream, token: Option<Token>, shared: Arc<Shared>) -> io::Result<Self> {
        let local = stream.local_addr()?;
        let peer = stream.peer_addr()?;
        SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER)?;
        // Without it the event loop's timer alone notices acknowledgements.
        super::ack::notify_acknowledgements(stream.as_raw_fd());
        Ok(Self {
            stream: Some(stream),
            token,
            shared,
            local,
            peer,
            readable: true,
            nodelay: false,
            handed: 0,
        })
    }

    fn release(&mut self, abortive: bool) {
        if let Some(mut stream) = self.stream.take() {
            if abortive {
                // SO_LINGER with a zero timeout: close() sends RST instead of FIN.
                let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            }
            if let Some(token) = self.token.take() {
                self.shared.deregister(&mut stream, token);
            }
        }
    }
}

impl Wire for TcpWire {
    fn attach(&mut self, owner: Weak<SocketCore>) {
        let Some(stream) = self.stream.as_mut() else { return };
        match self.token {
            Some(token) => self.shared.set_owner(token, owner),
            None => self.token = self.shared.register(stream, owner).ok(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> ReadOutcome {
        let Some(stream) = self.stream.as_mut() else {
            return ReadOutcome::Failed(STATUS_CONNECTION_ABORTED);
        };
        if !self.readable {
            return ReadOutcome::WouldBlock;
        }
        loop {
            return match stream.read(buf) {
                Ok(0) => ReadOutcome::Eof,
                Ok(n) => ReadOutcome::Data(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    ReadOutcome::WouldBlock
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => ReadOutcome::Failed(status_of(&e)),
            };
        }
    }

    fn mark_ready(&mut self) {
        self.readable = true;
    }

    fn write(&mut self, buf: &[u8], nodelay: bool) -> WriteOutcome {
        let Some(stream) = self.stream.as_mut() else {
            return WriteOutcome::Failed(STATUS_CONNECTION_ABORTED);
        };
        if nodelay && !self.nodelay {
            self.nodelay = stream.set_nodelay(true).is_ok();
        }
        loop {
            return match stream.write(buf) {
                Ok(n) => {
                    self.handed += n as u64;
                    WriteOutcome::Wrote(n)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => WriteOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => WriteOutcome::Failed(status_of(&e)),
            };
        }
    }

    fn peer_finished(&mut self) -> bool {
        let mut probe = [0u8; 1];
        self.stream
            .as_ref()
            .is_some_and(|stream| matches!(stream.peek(&mut probe), Ok(0)))
    }

    fn shutdown_write(&mut self) -> Result<(), NTSTATUS> {
        let stream = self.stream.as_ref().ok_or(STATUS_CONNECTION_ABORTED)?;
        stream.shutdown(Shutdown::Write).map_err(|e| status_of(&e))?;
        self.handed += 1;
        Ok(())
    }

    fn handed(&self) -> u64 {
        self.handed
    }

    fn acknowledged(&mut self) -> Result<u64, NTSTATUS> {
        let stream = self.stream.as_ref().ok_or(STATUS_CONNECTION_ABORTED)?;
        let outstanding = super::ack::unacknowledged(stream.as_raw_fd()).map_err(|e| status_of(&e))?;
        if outstanding > 0 {
            // A reset leaves the unacknowledged bytes counted forever: look for the error.
            if let Some(error) = stream.take_error().map_err(|e| status_of(&e))? {
                return Err(status_of(&error));
            }
            if let Some(token) = self.token {
                self.shared.await_acknowledgement(token);
            }
        }
        Ok(self.handed.saturating_sub(outstanding))
    }

    fn abort(&mut self) {
        self.release(true);
    }

    fn close(&mut self) {
        self.release(false);
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    fn set_option(&mut self, option: HostOption, on: bool) -> Result<(), NTSTATUS> {
        let stream = self.stream.as_ref().ok_or(STATUS_CONNECTION_ABORTED)?;
        let socket = SockRef::from(stream);
        match option {
            HostOption::NoDelay => {
                socket.set_nodelay(on).map_err(|e| status_of(&e))?;
                self.nodelay = on;
            }
            HostOption::KeepAlive => socket.set_keepalive(on).map_err(|e| status_of(&e))?,
            HostOption::ExclusiveAddressUse => return Err(STATUS_NOT_SUPPORTED),
        }
        Ok(())
    }

    fn option(&self, option: HostOption) -> Option<bool> {
        let socket = SockRef::from(self.stream.as_ref()?);
        match option {
            HostOption::NoDelay => socket.nodelay().ok(),
            HostOption::KeepAlive => socket.keepalive().ok(),
            HostOption::ExclusiveAddressUse => None,
        }
    }

    fn ideal_send_backlog(&self) -> Result<usize, NTSTATUS> {
        let stream = self.stream.as_ref().ok_or(STATUS_CONNECTION_ABORTED)?;
        let send_buffer = SockRef::from(stream).send_buffer_size().map_err(|e| status_of(&e))?;
        super::isb::ideal_send_backlog(stream.as_raw_fd(), send_buffer).map_err(|e| status_of(&e))
    }
}

impl Drop for TcpWire {
    fn drop(&mut self) {
        self.release(true);
    }
}

/// A listening host socket.
pub(crate) struct TcpListen {
    listener: Option<TcpListener>,
    token: Option<Token>,
    shared: Arc<Shared>,
    local: SocketAddr,
    /// `SO_EXCLUSIVEADDRUSE` (the host socket then has no SO_REUSEADDR, see `bind`).
    exclusive: bool,
}

impl TcpListen {
    pub(crate) fn bind(
        shared: Arc<Shared>,
        addr: SocketAddr,
        v6only: bool,
        exclusive: bool,
        owner: Weak<SocketCore>,
    ) -> Result<Self, NTSTATUS> {
        let status = |e: io::Error| status_of(&e);
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(status)?;
        if addr.is_ipv6() {
            socket.set_only_v6(v6only).map_err(status)?;
        }
        socket.set_nonblocking(true).map_err(status)?;
        // The host socket's SO_REUSEADDR, Linux semantics: the bind ignores connections of an
        // earlier listener on this port that linger in TIME_WAIT (after a crash with clients
        // connected, for about 60 s), so the program restarts on its port at once. Linux applies it
        // only when both the lingering sockets and the new one carry the flag, hence on every
        // listener. It never admits a second listener: a bind next to a live listener still fails
        // with EADDRINUSE (STATUS_ADDRESS_ALREADY_ASSOCIATED below); only SO_REUSEPORT, which is never
        // set, would allow that.
        //
        // This is not the WSK option of the same name. On Windows, SO_REUSEADDR (Winsock and WSK
        // alike) lets a socket bind a port that another socket holds, even a listening one, which is
        // why SO_EXCLUSIVEADDRUSE exists; the emulation does not offer WSK's SO_REUSEADDR. Microsoft does
        // not document whether a WSK bind fails while connections of an earlier socket linger in
        // TIME_WAIT on its port: that it succeeds here is invented. Elsewhere than Linux (BSD
        // semantics let two listeners share a port on different addresses) the flag stays off.
        // This is the kinder choice: no test may rely on it.
        //
        // A listener with SO_EXCLUSIVEADDRUSE goes without it: Windows then refuses to bind the port
        // again until the connections the listener accepted are no longer active (Microsoft's
        // "Using SO_REUSEADDR and SO_EXCLUSIVEADDRUSE"), which is what Linux does to a bind while
        // connections without the flag linger in TIME_WAIT.
        #[cfg(target_os = "linux")]
        socket.set_reuse_address(!exclusive).map_err(status)?;
        socket.bind(&addr.into()).map_err(status)?;
        // Invented: the accept backlog (128 here, unbounded on the in-memory network); WSK documents none.
        socket.listen(128).map_err(status)?;
        let mut listener = TcpListener::from_std(socket.into());
        let local = listener.local_addr().map_err(status)?;
        let token = shared.register(&mut listener, owner).map_err(status)?;
        Ok(Self {
            listener: Some(listener),
            token: Some(token),
            shared,
            local,
            exclusive,
        })
    }
}

impl Listener for TcpListen {
    fn accept(&mut self) -> AcceptOutcome {
        let Some(listener) = self.listener.as_ref() else {
            return AcceptOutcome::Failed(STATUS_INVALID_DEVICE_STATE);
        };
        loop {
            return match listener.accept() {
                Ok((stream, _)) => match TcpWire::new(stream, None, self.shared.clone()) {
                    Ok(wire) => AcceptOutcome::Accepted(Box::new(wire)),
                    // Reset before we could look at it: take the next one. Invented: such a connection
                    // is skipped (Windows may instead hand it out and fail its first operation).
                    Err(_) => continue,
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => AcceptOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => AcceptOutcome::Failed(status_of(&e)),
            };
        }
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn close(&mut self) {
        if let (Some(mut listener), Some(token)) = (self.listener.take(), self.token.take()) {
            self.shared.deregister(&mut listener, token);
        }
    }

    fn option(&self, option: HostOption) -> Option<bool> {
        if option != HostOption::ExclusiveAddressUse {
            return None;
        }
        // Linux: read back from the host socket (exclusive = no SO_REUSEADDR); elsewhere the flag is
        // never set, so only the recorded value says anything.
        if cfg!(target_os = "linux") {
            let listener = self.listener.as_ref()?;
            SockRef::from(listener).reuse_address().ok().map(|reuse| !reuse)
        } else {
            Some(self.exclusive)
        }
    }
}

impl Drop for TcpListen {
    fn drop(&mut self) {
        self.close();
    }
}

/// An outgoing host connection in progress (non-blocking connect).
pub(crate) struct TcpConnect {
    stream: Option<TcpStream>,
    token: Option<Token>,
    shared: Arc<Shared>,
}

impl TcpConnect {
    pub(crate) fn start(
        shared: Arc<Shared>,
        local: SocketAddr,
        remote: SocketAddr,
        owner: Weak<SocketCore>,
    ) -> Result<Self, NTSTATUS> {
        let status = |e: io::Error| status_of(&e);
        let socket = Socket::new(Domain::for_address(remote), Type::STREAM, Some(Protocol::TCP)).map_err(status)?;
        socket.set_nonblocking(true).map_err(status)?;
        socket.bind(&local.into()).map_err(status)?;
        match socket.connect(&remote.into()) {
            Ok(()) => {}
            // EINPROGRESS: the connect goes on; the event loop reports when it is done.
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(status_of(&e)),
        }
        let mut stream = TcpStream::from_std(socket.into());
        let token = shared.register(&mut stream, owner).map_err(status)?;
        Ok(Self {
            stream: Some(stream),
            token: Some(token),
            shared,
        })
    }
}

impl Connector for TcpConnect {
    fn poll(&mut self) -> ConnectOutcome {
        let Some(stream) = self.stream.as_ref() else {
            return ConnectOutcome::Failed(STATUS_CONNECTION_ABORTED);
        };
        match stream.take_error() {
            Ok(Some(e)) | Err(e) => return ConnectOutcome::Failed(status_of(&e)),
            Ok(None) => {}
        }
        match stream.peer_addr() {
            Ok(_) => {
                let stream = self.stream.take().expect("checked above");
                match TcpWire::new(stream, self.token.take(), self.shared.clone()) {
                    Ok(wire) => ConnectOutcome::Connected(Box::new(wire)),
                    Err(e) => ConnectOutcome::Failed(status_of(&e)),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => ConnectOutcome::WouldBlock,
            Err(e) => ConnectOutcome::Failed(status_of(&e)),
        }
    }
}

impl Drop for TcpConnect {
    fn drop(&mut self) {
        if let (Some(mut stream), Some(token)) = (self.stream.take(), self.token.take()) {
            self.shared.deregister(&mut stream, token);
        }
    }
}

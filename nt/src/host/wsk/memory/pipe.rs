//! One in-memory TCP connection: a byte queue each way, FIN and RST flags, a flow-control window on
//! the driver-to-peer direction, and the two ends: [`MemWire`] (the driver's WSK socket) and
//! [`Peer`] (held by the test, which plays the remote host).
//!
//! The send model (see `super::super::send`): the window is how many bytes the driver may hand over
//! that the peer has not read yet (the network and the peer's receive buffer in one); a send
//! completes only when the peer has read its last byte, and a graceful disconnect when the peer has
//! read everything before the FIN. Invented: a real TCP peer acknowledges bytes when they arrive in
//! its receive buffer, before its application reads them; here, by default, nothing is acknowledged
//! before it is read, the harsher order, so a driver's send to a peer that does not read never
//! completes. A test can ask for TCP's order instead ([`Acknowledgement::OnArrival`]).
//!
//! Nothing here runs on its own: each [`Peer`] action updates the connection and then pumps the
//! driver's socket on the test's thread at emulated DISPATCH_LEVEL, which completes whatever the
//! action made possible. So a test decides exactly when each IRP completes.

use super::super::socket::SocketCore;
use super::super::transport::*;
use super::Acknowledgement;
use crate::types::*;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

#[derive(Default)]
struct PipeState {
    to_driver: VecDeque<u8>,
    to_peer: VecDeque<u8>,
    /// Bytes the driver handed over (written into `to_peer`) since the connection opened.
    handed: u64,
    /// Bytes of those the peer has read: the acknowledged stream position (see [`Wire::acknowledged`]).
    read: u64,
    /// How many bytes the peer buffers before the driver's sends must wait (its receive window).
    window: usize,
    acknowledgement: Acknowledgement,
    /// The ideal send backlog the driver's socket reports; None: the window (see
    /// [`Wire::ideal_send_backlog`]).
    ideal_send_backlog: Option<usize>,
    driver_fin: bool,
    peer_fin: bool,
    /// The driver reset the connection: the peer's reads and writes fail with ConnectionReset.
    driver_reset: bool,
    /// The peer reset the connection: the driver's operations fail with STATUS_CONNECTION_RESET.
    peer_reset: bool,
    /// The local stack force-closed the connection: STATUS_FILE_FORCED_CLOSED for the driver.
    forced: bool,
    driver_closed: bool,
    /// Peers blocked in [`Peer::wait_unread`]: the driver's hand-overs wake them only if there are
    /// any, so that a network nobody waits on makes no wake-up calls.
    waiters: usize,
}

pub(crate) struct Pipe {
    state: Mutex<PipeState>,
    /// Signalled when the driver hands bytes over, sends FIN or resets, while a peer waits.
    handed_over: Condvar,
    driver: Mutex<Weak<SocketCore>>,
    driver_addr: SocketAddr,
    peer_addr: SocketAddr,
}

impl Pipe {
    pub(crate) fn new(
        driver_addr: SocketAddr,
        peer_addr: SocketAddr,
        window: usize,
        acknowledgement: Acknowledgement,
        ideal_send_backlog: Option<usize>,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(PipeState {
                window,
                acknowledgement,
                ideal_send_backlog,
                ..PipeState::default()
            }),
            handed_over: Condvar::new(),
            driver: Mutex::new(Weak::new()),
            driver_addr,
            peer_addr,
        })
    }

    fn lock(&self) -> MutexGuard<'_, PipeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Releases the lock, then wakes the peer waiting in [`Peer::wait_unread`], if one is (after the
    /// release, so that it does not wake to a lock still held).
    fn unlock_and_wake(&self, st: MutexGuard<'_, PipeState>) {
        let waiting = st.waiters > 0;
        drop(st);
        if waiting {
            self.handed_over.notify_all();
        }
    }

    /// Pumps the driver's socket (if any) at DISPATCH_LEVEL on the calling thread.
    fn notify_driver(&self) {
        let driver = self.driver.lock().unwrap_or_else(PoisonError::into_inner).upgrade();
        if let Some(core) = driver {
            crate::emu::at_dispatch(|| core.pump_and_complete());
        }
    }

    /// The connection was refused before the driver accepted it (listener closed).
    pub(crate) fn refuse(&self) {
        self.lock().driver_reset = true;
    }
}

/// The driver's end.
pub(crate) struct MemWire {
    pub(crate) pipe: Arc<Pipe>,
    /// `TCP_NODELAY` and `SO_KEEPALIVE`, recorded only: the in-memory network has neither Nagle's
    /// algorithm nor idle connections to probe.
    nodelay: bool,
    keepalive: bool,
}

impl MemWire {
    pub(crate) fn new(pipe: Arc<Pipe>) -> Self {
        Self {
            pipe,
            nodelay: false,
            keepalive: false,
        }
    }
}

impl Wire for MemWire {
    fn attach(&mut self, owner: Weak<SocketCore>) {
        *self.pipe.driver.lock().unwrap_or_else(PoisonError::into_inner) = owner;
    }

    fn read(&mut self, buf: &mut [u8]) -> ReadOutcome {
        let mut st = self.pipe.lock();
        if st.forced {
            return ReadOutcome::Failed(STATUS_FILE_FORCED_CLOSED);
        }
        if st.peer_reset {
            return ReadOutcome::Failed(STATUS_CONNECTION_RESET);
        }
        if st.to_driver.is_empty() {
            return if st.peer_fin {
                ReadOutcome::Eof
            } else {
                ReadOutcome::WouldBlock
            };
        }
        let n = buf.len().min(st.to_driver.len());
        for (slot, byte) in buf.iter_mut().zip(st.to_driver.drain(..n)) {
            *slot = byte;
        }
        ReadOutcome::Data(n)
    }

    fn write(&mut self, buf: &[u8], _nodelay: bool) -> WriteOutcome {
        let mut st = self.pipe.lock();
        if st.forced {
            return WriteOutcome::Failed(STATUS_FILE_FORCED_CLOSED);
        }
        if st.peer_reset {
            return WriteOutcome::Failed(STATUS_CONNECTION_RESET);
        }
        let room = st.window.saturating_sub(st.to_peer.len());
        if room == 0 {
            return WriteOutcome::WouldBlock;
        }
        let n = room.min(buf.len());
        st.to_peer.extend(&buf[..n]);
        st.handed += n as u64;
        self.pipe.unlock_and_wake(st);
        WriteOutcome::Wrote(n)
    }

    fn peer_finished(&mut self) -> bool {
        let st = self.pipe.lock();
        st.peer_fin && st.to_driver.is_empty()
    }

    fn shutdown_write(&mut self) -> Result<(), NTSTATUS> {
        let mut st = self.pipe.lock();
        if st.forced {
            return Err(STATUS_FILE_FORCED_CLOSED);
        }
        if st.peer_reset {
            return Err(STATUS_CONNECTION_RESET);
        }
        st.driver_fin = true;
        self.pipe.unlock_and_wake(st);
        Ok(())
    }

    fn handed(&self) -> u64 {
        let st = self.pipe.lock();
        st.handed + u64::from(st.driver_fin)
    }

    fn acknowledged(&mut self) -> Result<u64, NTSTATUS> {
        let st = self.pipe.lock();
        if st.forced {
            return Err(STATUS_FILE_FORCED_CLOSED);
        }
        if st.peer_reset {
            return Err(STATUS_CONNECTION_RESET);
        }
        if st.acknowledgement == Acknowledgement::OnArrival {
            return Ok(st.handed + u64::from(st.driver_fin));
        }
        // Invented: the peer acknowledges FIN as soon as it has read every byte before it (its stack
        // acknowledges FIN on arrival, and here data only when read).
        Ok(st.read + u64::from(st.driver_fin && st.to_peer.is_empty()))
    }

    fn abort(&mut self) {
        let mut st = self.pipe.lock();
        st.driver_reset = true;
        st.driver_closed = true;
        st.to_peer.clear();
        self.pipe.unlock_and_wake(st);
    }

    fn close(&mut self) {
        self.pipe.lock().driver_closed = true;
    }

    fn local_addr(&self) -> SocketAddr {
        self.pipe.driver_addr
    }

    fn set_option(&mut self, option: HostOption, on: bool) -> Result<(), NTSTATUS> {
        match option {
            HostOption::NoDelay => self.nodelay = on,
            HostOption::KeepAlive => self.keepalive = on,
            HostOption::ExclusiveAddressUse => return Err(STATUS_NOT_SUPPORTED),
        }
        Ok(())
    }

    fn option(&self, option: HostOption) -> Option<bool> {
        match option {
            HostOption::NoDelay => Some(self.nodelay),
            HostOption::KeepAlive => Some(self.keepalive),
            HostOption::ExclusiveAddressUse => None,
        }
    }

    fn peer_addr(&self) -> SocketAddr {
        self.pipe.peer_addr
    }

    /// Invented: unless the test scripted a value ([`Peer::set_ideal_send_backlog`]), the peer's
    /// current receive window. It is this network's bandwidth-delay product: the bytes the driver may
    /// hand over before the peer reads, and a send completes only once read (by default), so that
    /// many bytes outstanding keep the connection busy and more only wait in the provider. A peer
    /// that stopped reading (window 0) makes it 0.
    fn ideal_send_backlog(&self) -> Result<usize, NTSTATUS> {
        let st = self.pipe.lock();
        if st.forced {
            return Err(STATUS_FILE_FORCED_CLOSED);
        }
        if st.peer_reset {
            return Err(STATUS_CONNECTION_RESET);
        }
        Ok(st.ideal_send_backlog.unwrap_or(st.window))
    }
}

/// The remote host's end of an in-memory connection, driven by the test. Reads and writes never
/// block: they follow the conventions of a non-blocking std socket.
pub struct Peer {
    pipe: Arc<Pipe>,
}

impl Peer {
    pub(crate) fn new(pipe: Arc<Pipe>) -> Self {
        Self { pipe }
    }

    /// Sends `data` to the driver (the driver's receive buffer is unbounded); completes pending
    /// receives. Fails with ConnectionReset after the driver reset the connection, BrokenPipe after
    /// this peer's FIN.
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        {
            let mut st = self.pipe.lock();
            if st.driver_reset || st.forced {
                return Err(io::ErrorKind::ConnectionReset.into());
            }
            if st.peer_fin || st.peer_reset {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            st.to_driver.extend(data);
        }
        self.pipe.notify_driver();
        Ok(())
    }

    /// Reads up to `max` bytes the driver sent, opening the window (which may complete pending sends
    /// and a graceful disconnect). `Ok(empty)` is EOF: the driver's FIN after every byte;
    /// `WouldBlock` means nothing is there yet; ConnectionReset after the driver's RST.
    pub fn read(&self, max: usize) -> io::Result<Vec<u8>> {
        let data = {
            let mut st = self.pipe.lock();
            if st.driver_reset {
                return Err(io::ErrorKind::ConnectionReset.into());
            }
            if st.to_peer.is_empty() {
                return if st.driver_fin {
                    Ok(Vec::new())
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let n = max.min(st.to_peer.len());
            st.read += n as u64;
            st.to_peer.drain(..n).collect::<Vec<u8>>()
        };
        self.pipe.notify_driver();
        Ok(data)
    }

    /// Bytes the driver sent that the peer has not read yet.
    pub fn unread(&self) -> usize {
        self.pipe.lock().to_peer.len()
    }

    /// Blocks until at least `bytes` bytes the driver sent are unread, or the driver sent FIN or
    /// reset the connection, at most `bound`; returns whether `bytes` are there. For a test or a
    /// benchmark whose driver runs on a thread of its own (an executor's): a peer otherwise polls
    /// [`read`](Self::read), and a poll loop's cost and count depend on thread timing.
    pub fn wait_unread(&self, bytes: usize, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        let mut st = self.pipe.lock();
        st.waiters += 1;
        while st.to_peer.len() < bytes && !st.driver_fin && !st.driver_reset {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self
                .pipe
                .handed_over
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st.waiters -= 1;
        st.to_peer.len() >= bytes
    }

    /// Sets the peer's receive window: how many unread bytes it buffers before the driver's sends
    /// wait. 0 means the peer stopped reading entirely.
    pub fn set_window(&self, bytes: usize) {
        self.pipe.lock().window = bytes;
        self.pipe.notify_driver();
    }

    /// Scripts the ideal send backlog the driver's socket reports from now on
    /// (`SIO_WSK_QUERY_IDEAL_SEND_BACKLOG`); None goes back to the default, the peer's window.
    pub fn set_ideal_send_backlog(&self, bytes: Option<usize>) {
        self.pipe.lock().ideal_send_backlog = bytes;
    }

    /// Graceful close of the peer's sending direction (FIN): the driver's receives complete with 0
    /// bytes once it has read everything before it.
    pub fn shutdown(&self) {
        self.pipe.lock().peer_fin = true;
        self.pipe.notify_driver();
    }

    /// Abortive close by the peer (RST): the driver's pending and later operations fail with
    /// STATUS_CONNECTION_RESET.
    pub fn reset(&self) {
        {
            let mut st = self.pipe.lock();
            st.peer_reset = true;
            st.to_driver.clear();
        }
        self.pipe.notify_driver();
    }

    /// The local stack tears the connection down under the driver (e.g. the interface went away):
    /// its pending and later operations fail with STATUS_FILE_FORCED_CLOSED, which tells the WSK
    /// client to close the socket as soon as possible.
    pub fn force_close(&self) {
        self.pipe.lock().forced = true;
        self.pipe.notify_driver();
    }

    /// Whether the driver reset the connection (RST seen by the peer).
    pub fn was_reset(&self) -> bool {
        self.pipe.lock().driver_reset
    }

    /// Whether the driver sent FIN.
    pub fn got_fin(&self) -> bool {
        self.pipe.lock().driver_fin
    }

    /// Whether the driver released its socket.
    pub fn driver_closed(&self) -> bool {
        self.pipe.lock().driver_closed
    }

    /// The driver socket's address, and this peer's.
    pub fn driver_addr(&self) -> SocketAddr {
        self.pipe.driver_addr
    }

    /// This peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.pipe.peer_addr
    }
}

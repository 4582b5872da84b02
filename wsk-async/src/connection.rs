//! [`Connection`]: a connected TCP socket (from [`Listener::accept`](crate::Listener::accept) or
//! [`Registration::connect`](crate::Registration::connect)).

use crate::backlog::IdealSendBacklog;
use crate::buffer::{Buffer, Slice};
use crate::close::Close;
use crate::ctx::{Handle, SEND_SLOTS, SocketCtx, StreamSlot};
use crate::disconnect::{Abort, Disconnect, DisconnectWith};
use crate::error::{Result, WskError};
use crate::op::{Op, OpIo};
use crate::option::SetOption;
use crate::slot::{Phase, SlotUse, give_back};
use core::future::Future;
use core::net::SocketAddr;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll, ready};
use nt::*;

/// A connected stream socket.
///
/// Operations take `&self`, so one task can receive while another sends, and a connection can have
/// one receive and up to [`Connection::MAX_SENDS_IN_FLIGHT`] sends in flight at once (see
/// [`send`](Self::send)); one more of a kind is refused with [`WskError::is_invalid_state`].
///
/// Every operation is a future driven by its own IRP (receive, send and close IRPs come with the
/// connection; the graceful-disconnect and abort IRPs with the first [`disconnect`](Self::disconnect)
/// or [`abort`](Self::abort)), and every future is safe to drop at any point:
///
/// | dropped while pending | effect |
/// |---|---|
/// | [`receive`](Self::receive), [`send`](Self::send), [`send_all`](Self::send_all) | `IoCancelIrp`; the stream is then in an unknown state (bytes may have been consumed or sent): further receives, sends and graceful disconnects fail with [`WskError::is_invalid_state`]; only [`abort`](Self::abort) and [`close`](Self::close) remain ([`disconnect_or_abort`](Self::disconnect_or_abort) aborts at once) |
/// | [`disconnect`](Self::disconnect), [`disconnect_with`](Self::disconnect_with) | an abortive disconnect (RST) is issued with a second IRP, which forces the graceful one to complete |
/// | [`abort`](Self::abort), [`close`](Self::close) | nothing: they complete on their own |
/// | the `Connection` itself (not closed) | `WskCloseSocket` with a preallocated IRP: abortive (RST) unless the connection was already disconnected both ways |
///
/// A buffer lent to the kernel by a dropped future goes back to its pool when the IRP completes.
///
/// An echo, on the emulation's in-memory network (a test-controlled peer):
///
/// ```
/// # let _session = nt::emu::session();
/// # use wsk_async::{BufferPool, Registration};
/// # let net = nt::emu::wsk::MemoryNetwork::install();
/// # // The peer reads only after block_on: its TCP acknowledges on arrival, so sends complete.
/// # net.set_default_acknowledgement(nt::emu::wsk::Acknowledgement::OnArrival);
/// # executor::block_on(async {
/// # let _test_device = nt::emu::driver::TestDevice::create();
/// # let device = unsafe { wsk_async::Device::from_raw(_test_device.device()) }.unwrap();
/// # let registration = Registration::register(&device).await?;
/// # let pool = BufferPool::new(2, 1024)?;
/// # let listener = registration.listen("127.0.0.1:0".parse().unwrap()).await?;
/// # let peer = net.connect(listener.local_addr().unwrap()).unwrap();
/// # peer.write(b"hi").unwrap();
/// let conn = listener.accept().await?;
/// let (n, buf) = conn.receive(pool.take()?).await;
/// let n = n?;
/// let (sent, buf) = conn.send_all(buf.slice(..n)).await;
/// assert_eq!(sent?, n);
/// conn.disconnect().await?; // graceful: the peer reads everything, then EOF
/// # assert_eq!(peer.read(10).unwrap(), b"hi");
/// # assert!(peer.got_fin() && !peer.was_reset());
/// conn.close().await?;
/// # drop(buf);
/// # listener.close().await?;
/// # registration.deregister().await;
/// # Ok::<(), wsk_async::WskError>(())
/// # }).unwrap().unwrap();
/// ```
///
/// Dropping a graceful disconnect that has not completed (here the in-memory network holds it, as a
/// peer that never acknowledges would) aborts the connection:
///
/// ```
/// # let _session = nt::emu::session();
/// # use wsk_async::Registration;
/// # use nt::emu::wsk::{Completion, MemoryNetwork, OpKind};
/// # use std::{future::Future, pin::pin, task::{Context, Waker}};
/// # let net = MemoryNetwork::install();
/// # let _test_device = nt::emu::driver::TestDevice::create();
/// # let device = unsafe { wsk_async::Device::from_raw(_test_device.device()) }.unwrap();
/// # let registration = Registration::register_blocking(&device, std::time::Duration::from_secs(1)).unwrap();
/// # let listener = executor::block_on(registration.listen("127.0.0.1:0".parse().unwrap())).unwrap().unwrap();
/// # let peer = net.connect(listener.local_addr().unwrap()).unwrap();
/// # let conn = executor::block_on(listener.accept()).unwrap().unwrap();
/// net.script(OpKind::Disconnect, Completion::Hold);
/// {
///     let mut graceful = pin!(conn.disconnect());
///     assert!(graceful.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
/// } // dropped while pending
/// assert!(peer.was_reset());
/// # drop(conn);
/// # drop(listener);
/// # executor::block_on(registration.deregister()).unwrap();
/// ```
pub struct Connection {
    handle: Handle,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
}

impl Connection {
    pub(crate) fn new(handle: Handle, local: Option<SocketAddr>, peer: Option<SocketAddr>) -> Self {
        Self { handle, local, peer }
    }

    pub(crate) fn ctx(&self) -> &SocketCtx {
        self.handle.ctx()
    }

    /// The local address, when the provider reported it (accepted connections).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Receives into `buf` (its whole capacity; `WskReceive`), returning the number of bytes received
    /// and the buffer with `len()` set to it. `Ok(0)` means the peer disconnected gracefully (FIN).
    pub fn receive(&self, buf: Buffer) -> Receive<'_> {
        Receive {
            conn: self,
            buf: Some(buf),
            slot: SlotUse::new(),
        }
    }

    /// How many sends (and [`ideal_send_backlog`](Self::ideal_send_backlog) queries) a connection
    /// can have in flight at once: each has a send slot with its own preallocated IRP, and every open
    /// connection holds them (368 bytes each on x64, used or not). Two is what a driver with two
    /// buffers per connection can use: it receives into one while the other is sent, and sends the
    /// one just received without waiting for the previous send to complete.
    pub const MAX_SENDS_IN_FLIGHT: usize = SEND_SLOTS;

    /// Sends the bytes of `buf` (a [`Buffer`] or a [`Slice`] of one; `WskSend`), returning the number
    /// of bytes sent and the buffer.
    ///
    /// Up to [`MAX_SENDS_IN_FLIGHT`](Self::MAX_SENDS_IN_FLIGHT) sends may be in flight at once; one
    /// more fails at once with [`WskError::is_invalid_state`] (a send future takes its slot when
    /// first polled, and gives it back when it returns its result or is dropped). A send's bytes are
    /// submitted to WSK when its future is first polled, so the stream carries them in the order
    /// the futures were first polled. WSK completes the sends of a socket in that order; each future
    /// reports its own IRP's result, so should a provider complete them out of order, the futures
    /// become ready out of order, each with its own byte count — nothing is held back or reordered
    /// here.
    ///
    /// A send that completes with fewer bytes than it was given while a later send is in flight
    /// leaves a gap in the stream that no retry can fill (the later bytes went first): a caller that
    /// keeps several sends in flight should treat it as a failure (abort). WSK completes a stream
    /// send only when all its bytes are sent or with an error, so this does not happen on Windows.
    pub fn send(&self, buf: impl Into<Slice>) -> Send<'_> {
        Send {
            conn: self,
            buf: Some(buf.into()),
            slot: SlotUse::new(),
            which: 0,
            nodelay: false,
        }
    }

    /// The connection's ideal send backlog (`SIO_WSK_QUERY_IDEAL_SEND_BACKLOG`): how many bytes of
    /// sends to keep passed to WSK and not yet completed to keep the stream full (it changes with
    /// the connection's round-trip time and window). `Ok(None)` when the provider does not
    /// implement the query (STATUS_NOT_SUPPORTED, STATUS_NOT_IMPLEMENTED — Wine 8's stub — or
    /// STATUS_INVALID_DEVICE_REQUEST): callers then keep their own default. The query uses one of
    /// the send slots while it runs (so it counts against
    /// [`MAX_SENDS_IN_FLIGHT`](Self::MAX_SENDS_IN_FLIGHT)); dropping it while pending cancels it and
    /// leaves the stream as it was.
    pub fn ideal_send_backlog(&self) -> IdealSendBacklog<'_> {
        IdealSendBacklog::new(self)
    }

    /// Turns Nagle's coalescing off (`true`) or back on for this connection (`TCP_NODELAY` through
    /// `WskControlSocket`). Like [`ideal_send_backlog`](Self::ideal_send_backlog) it uses one of the
    /// send slots while it runs, and dropping it while pending cancels it (the option may be set
    /// anyway). A provider without the option answers [`WskError::is_unsupported`] (Wine 8's
    /// `WskControlSocket` is a stub); the connection is unaffected.
    pub fn set_nodelay(&self, on: bool) -> SetOption<'_> {
        SetOption::new(self, IPPROTO_TCP, TCP_NODELAY, on)
    }

    /// Turns TCP keep-alive probes on or off for this connection (`SO_KEEPALIVE` through
    /// `WskControlSocket`; off by default). As [`set_nodelay`](Self::set_nodelay) otherwise.
    pub fn set_keepalive(&self, on: bool) -> SetOption<'_> {
        SetOption::new(self, SOL_SOCKET, SO_KEEPALIVE, on)
    }

    /// Sends all bytes of `buf`, with as many `WskSend`s as it takes; returns the total and the buffer.
    /// On error the total sent before it is lost with the stream's state; the error is returned.
    pub async fn send_all(&self, buf: impl Into<Slice>) -> (Result<usize>, Buffer) {
        let slice = buf.into();
        let (mut begin, end) = (slice.begin(), slice.end());
        let mut buf = slice.into_inner();
        let mut total = 0;
        while begin < end {
            let (result, returned) = self.send(buf.slice(begin..end)).await;
            buf = returned;
            match result {
                Ok(0) => return (Err(WskError::from_status(STATUS_CONNECTION_DISCONNECTED)), buf),
                Ok(n) => {
                    begin += n;
                    total += n;
                }
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(total), buf)
    }

    /// Graceful disconnect (`WskDisconnect`, no flags): the peer receives all data sent so far, then
    /// EOF. Completes when the provider has sent the FIN. Dropping the future while it is pending
    /// aborts the connection (see the type's documentation).
    ///
    /// The first disconnect or abort on a connection allocates the operation slots and IRPs the
    /// connection's end needs (an open connection does not hold them); if that fails it returns an
    /// [`is_out_of_resources`](WskError::is_out_of_resources) error having done nothing, and dropping
    /// the connection still closes it (abortively) with its preallocated close IRP.
    pub fn disconnect(&self) -> Disconnect<'_> {
        Disconnect::new(self, None)
    }

    /// Sends `buf` as the final data, then disconnects gracefully (`WskDisconnect` with a buffer).
    /// Returns the buffer. Dropping it while pending aborts, like [`disconnect`](Self::disconnect),
    /// and like it the first one may fail with [`is_out_of_resources`](WskError::is_out_of_resources)
    /// (the buffer comes back).
    pub fn disconnect_with(&self, buf: impl Into<Slice>) -> DisconnectWith<'_> {
        DisconnectWith::new(self, buf.into())
    }

    /// Abortive disconnect (`WskDisconnect` with `WSK_FLAG_ABORTIVE`): the peer sees a reset; pending
    /// receives and sends complete with an error. Like [`disconnect`](Self::disconnect), the first
    /// one may fail with [`is_out_of_resources`](WskError::is_out_of_resources). `Ok(())` means the
    /// connection was aborted: after an earlier abortive disconnect whose result was not read (the
    /// one a dropped pending `disconnect()` issues), it reports that one if it succeeded instead of
    /// issuing another (see [`Abort`]).
    pub fn abort(&self) -> Abort<'_> {
        Abort::new(self)
    }

    /// A graceful disconnect that falls back to an abortive one if the graceful IRP has not completed
    /// within `timeout` (the WskDisconnect documentation warns it may never complete, e.g. when the
    /// peer does not read). Uses the executor's timers. Returns `Ok(())` on a graceful disconnect, or
    /// the abort's result after the fallback.
    #[cfg(not(loom))] // the executor's timers are not built for the loom model
    pub async fn disconnect_or_abort(&self, timeout: core::time::Duration) -> Result<()> {
        if self.is_stream_unknown() {
            // A graceful end is impossible after a dropped receive or send: abort right away.
            return self.abort().await;
        }
        let mut graceful = core::pin::pin!(self.disconnect());
        match executor::timeout(timeout, graceful.as_mut()).await {
            Ok(result) => result,
            Err(executor::Elapsed) => {
                let aborted = self.abort().await;
                // The abort forces the graceful IRP to complete; reap it (dropping it after a second
                // timeout would just issue another abort).
                let _ = executor::timeout(timeout, graceful).await;
                aborted
            }
        }
    }

    /// Closes the socket (`WskCloseSocket`) and waits for the close to complete. Consumes the
    /// connection, so no other call on it can be in progress. Abortive unless the connection was
    /// already disconnected both ways (disconnect first for a graceful close).
    pub fn close(self) -> Close {
        Close::new(self.handle)
    }

    /// Whether a dropped receive or send left the stream in an unknown state.
    pub fn is_stream_unknown(&self) -> bool {
        self.ctx().stream_unknown()
    }
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// The future of [`Connection::receive`].
pub struct Receive<'a> {
    conn: &'a Connection,
    buf: Option<Buffer>,
    slot: SlotUse,
}

impl Future for Receive<'_> {
    type Output = (Result<usize>, Buffer);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let ctx = this.conn.ctx();
        let op = ctx.slot(StreamSlot::Receive.index());
        if this.slot.phase() != Phase::Submitted {
            if this.slot.phase() == Phase::Idle && ctx.stream_unknown() {
                return give_back!(this.buf.take(), Err(WskError::INVALID_STATE));
            }
            if let Err(e) = ready!(this.slot.poll_acquire(op, cx)) {
                return give_back!(this.buf.take(), Err(e));
            }
            let Some(buf) = this.buf.as_mut() else {
                return give_back!(this.buf.take(), Err(WskError::INVALID_STATE));
            };
            let socket = ctx.socket();
            let receive = ctx.connection_dispatch().WskReceive;
            // SAFETY: the slot is ours (acquired); the MDL covers the buffer's whole capacity and the
            // buffer stays alive (in this future, or moved into the slot if the future is dropped)
            // until the IRP completes; the WSK_BUF lives in the slot.
            unsafe {
                let io = OpIo::exclusive(ctx.stream_io(StreamSlot::Receive));
                io.wsk_buf = WSK_BUF {
                    Mdl: buf.mdl(),
                    Offset: 0,
                    Length: buf.capacity(),
                };
                let wsk_buf = ptr::addr_of_mut!(io.wsk_buf);
                this.slot.start(op, |irp| receive.map(|f| f(socket, wsk_buf, 0, irp)));
            }
        }
        let iosb = ready!(this.slot.poll_complete(op, cx));
        this.slot.release(op);
        let Some(mut buf) = this.buf.take() else {
            return Poll::Pending;
        };
        let result = WskError::check(iosb.Status).map(|()| iosb.Information.min(buf.capacity()));
        buf.set_received(*result.as_ref().unwrap_or(&0));
        Poll::Ready((result, buf))
    }
}

impl Drop for Receive<'_> {
    fn drop(&mut self) {
        let ctx = self.conn.ctx();
        abandon_stream_op(ctx, StreamSlot::Receive, &mut self.slot, self.buf.take());
    }
}

/// The future of [`Connection::send`]. It takes one of the connection's send slots when first
/// polled (see [`Connection::send`] for how many and in what order).
pub struct Send<'a> {
    conn: &'a Connection,
    buf: Option<Slice>,
    slot: SlotUse,
    /// Which send slot (`StreamSlot::send`) the future holds while it holds one.
    which: u8,
    /// `WSK_FLAG_NODELAY` ([`Send::nodelay`]).
    nodelay: bool,
}

impl Send<'_> {
    /// Sends these bytes without waiting to coalesce them with later ones (`WskSend` with
    /// `WSK_FLAG_NODELAY`: Nagle's algorithm does not hold this send back), whatever
    /// [`Connection::set_nodelay`] says; for a last small message of a burst. Call before the first
    /// poll: `conn.send(buf).nodelay().await`.
    pub fn nodelay(mut self) -> Self {
        self.nodelay = true;
        self
    }

    fn stream(&self) -> StreamSlot {
        StreamSlot::send(usize::from(self.which))
    }
}

impl Future for Send<'_> {
    type Output = (Result<usize>, Buffer);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let ctx = this.conn.ctx();
        if this.slot.phase() != Phase::Submitted {
            if this.slot.phase() == Phase::Idle && ctx.stream_unknown() {
                return give_back!(this.buf.take().map(Slice::into_inner), Err(WskError::INVALID_STATE));
            }
            let ops: [&Op; SEND_SLOTS] = core::array::from_fn(|n| ctx.slot(StreamSlot::send(n).index()));
            let mut which = usize::from(this.which);
            let acquired = this.slot.poll_acquire_one_of(&ops, &mut which, cx);
            // `which < SEND_SLOTS`, a small constant.
            this.which = which as u8;
            if let Err(e) = ready!(acquired) {
                return give_back!(this.buf.take().map(Slice::into_inner), Err(e));
            }
            let Some(slice) = this.buf.as_ref() else {
                return give_back!(this.buf.take().map(Slice::into_inner), Err(WskError::INVALID_STATE));
            };
            let op = ctx.slot(this.stream().index());
            let socket = ctx.socket();
            let send = ctx.connection_dispatch().WskSend;
            // SAFETY: as for Receive: slot ours (acquired), MDL and buffer alive until completion; the
            // cell is this slot's own.
            unsafe {
                let io = OpIo::exclusive(ctx.stream_io(this.stream()));
                io.wsk_buf = WSK_BUF {
                    Mdl: slice.buffer().mdl(),
                    Offset: slice.begin() as ULONG,
                    Length: slice.end() - slice.begin(),
                };
                let wsk_buf = ptr::addr_of_mut!(io.wsk_buf);
                let flags = if this.nodelay { WSK_FLAG_NODELAY } else { 0 };
                this.slot.start(op, |irp| send.map(|f| f(socket, wsk_buf, flags, irp)));
            }
        }
        let op = ctx.slot(this.stream().index());
        let iosb = ready!(this.slot.poll_complete(op, cx));
        this.slot.release(op);
        // The provider's count is not trusted beyond the send: a caller slices with it.
        let length = this.buf.as_ref().map_or(0, |slice| slice.end() - slice.begin());
        give_back!(
            this.buf.take().map(Slice::into_inner),
            WskError::check(iosb.Status).map(|()| iosb.Information.min(length))
        )
    }
}

impl Drop for Send<'_> {
    fn drop(&mut self) {
        let ctx = self.conn.ctx();
        let stream = self.stream();
        abandon_stream_op(ctx, stream, &mut self.slot, self.buf.take().map(Slice::into_inner));
    }
}

/// Drop of a receive or send: mark the stream unknown if it was submitted (bytes may have been
/// consumed or sent), then [`abandon_lent_buffer`].
fn abandon_stream_op(ctx: &SocketCtx, stream: StreamSlot, slot: &mut SlotUse, buf: Option<Buffer>) {
    if slot.phase() == Phase::Submitted {
        ctx.mark_stream_unknown();
    }
    abandon_lent_buffer(ctx, stream, slot, buf);
}

/// Drop of an operation that lent the kernel a buffer (stream or datagram): cancel a pending IRP,
/// and leave the buffer with the slot until it completes.
pub(crate) fn abandon_lent_buffer(ctx: &SocketCtx, stream: StreamSlot, slot: &mut SlotUse, buf: Option<Buffer>) {
    let op = ctx.slot(stream.index());
    if slot.phase() == Phase::Submitted {
        if !slot.completed(op) {
            // SAFETY: the IRP is alive (the connection holds the context); cancelling an IRP that
            // completes concurrently is harmless (no cancel routine is left, IoCancelIrp returns FALSE).
            unsafe { IoCancelIrp(op.irp()) };
        }
        if slot.completed(op) {
            // Completed (maybe by the cancel) but never read: the slot is still ours and the kernel
            // is done with the buffer, which goes back to its pool now.
            op.state.consume();
            drop(buf);
        } else {
            // SAFETY: FUTURE is still held, and the completion routine never touches `io` while a
            // future holds the slot. The kernel may still write through the MDL, so the buffer must
            // not go back to its pool before the completion: the slot keeps it until then.
            unsafe { OpIo::keep_buffer(ctx.stream_io(stream), buf) };
        }
    }
    slot.release(op);
}

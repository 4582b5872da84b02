//! [`DatagramSocket`]: a bound UDP socket (`WSK_FLAG_DATAGRAM_SOCKET`), the future that creates it
//! ([`Registration::bind_datagram`]) and its operations, [`DatagramSocket::send_to`] and
//! [`DatagramSocket::receive_from`].
//!
//! It reuses the connection machinery: a socket context of [`Kind::Datagram`] whose receive slot
//! creates, binds and then receives, whose first send slot sends (the only send slot with an IRP),
//! and whose close slot closes a dropped socket; the addresses WSK reads and writes live in the
//! context's [`Addresses`](crate::ctx::Addresses) block, split between the two slots.

use crate::addr;
use crate::buffer::{Buffer, Slice};
use crate::close::Close;
use crate::connection::abandon_lent_buffer;
use crate::creating::Creating;
use crate::ctx::{Handle, Kind, RECEIVE, SocketCtx, StreamSlot};
use crate::error::{Result, WskError};
use crate::op::OpIo;
use crate::registration::Registration;
use crate::setup::{self, Done};
use crate::slot::{Phase, SlotUse, give_back};
use core::future::Future;
use core::net::{IpAddr, SocketAddr};
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll, ready};
use nt::*;

/// A bound datagram (UDP) socket. Created by [`Registration::bind_datagram`].
///
/// One [`send_to`](Self::send_to) and one [`receive_from`](Self::receive_from) may be in flight at
/// once (each has its own preallocated IRP); a second of a kind fails at once with
/// [`WskError::is_invalid_state`]. Operations take `&self`, so one task can receive while another
/// sends.
///
/// Every future is safe to drop at any point:
///
/// | dropped while pending | effect |
/// |---|---|
/// | [`receive_from`](Self::receive_from), [`send_to`](Self::send_to) | `IoCancelIrp`; the buffer goes back to its pool only once the IRP has completed. The socket stays usable: a datagram socket has no stream a cancel could leave half-done, so a receive with a timeout can simply be dropped and issued again |
/// | [`close`](Self::close) | nothing: it completes on its own |
/// | the `DatagramSocket` itself (not closed) | `WskCloseSocket` with a preallocated IRP, which completes pending operations with `STATUS_CANCELLED` |
///
/// A round trip on the emulation's in-memory network, with the test playing the remote host:
///
/// ```
/// # let _session = nt::emu::session();
/// # use wsk_async::{BufferPool, Registration};
/// # let net = nt::emu::wsk::MemoryNetwork::install();
/// # executor::block_on(async {
/// # let _test_device = nt::emu::driver::TestDevice::create();
/// # let device = unsafe { wsk_async::Device::from_raw(_test_device.device()) }.unwrap();
/// # let registration = Registration::register(&device).await?;
/// let pool = BufferPool::new(2, 1500)?;
/// let socket = registration.bind_datagram("127.0.0.1:0".parse().unwrap()).await?;
/// # let peer = net.bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
/// # peer.send_to(b"query", socket.local_addr().unwrap());
/// let (received, buf) = socket.receive_from(pool.take()?).await;
/// let received = received?; // how many bytes, from whom, truncated or not
/// assert_eq!(&buf[..], b"query");
/// let (sent, buf) = socket.send_to(buf, received.from).await;
/// assert_eq!(sent?, 5);
/// # assert_eq!(peer.receive_from().unwrap().0, b"query");
/// # drop(buf);
/// socket.close().await?;
/// # registration.deregister().await;
/// # Ok::<(), wsk_async::WskError>(())
/// # }).unwrap().unwrap();
/// ```
pub struct DatagramSocket {
    handle: Handle,
    local: Option<SocketAddr>,
}

/// What [`DatagramSocket::receive_from`] received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedFrom {
    /// Bytes received (the buffer's `len()` is set to it).
    pub len: usize,
    /// The sender's address.
    pub from: SocketAddr,
    /// The datagram was longer than the buffer: `len` is the buffer's capacity and the rest of the
    /// datagram is lost. WSK says so with `MSG_TRUNC` in `ControlFlags`; some providers may instead
    /// (or also) complete with STATUS_BUFFER_OVERFLOW, which is taken the same way, as is a provider's
    /// `IoStatus.Information` beyond the buffer (`len` is then clamped to the capacity).
    pub truncated: bool,
}

impl DatagramSocket {
    pub(crate) fn ctx(&self) -> &SocketCtx {
        self.handle.ctx()
    }

    /// The address the socket is bound to, as the provider reports it (with the actual port when
    /// bound to port 0); `None` if the provider could not say (then, with a named port, the address
    /// asked for is reported instead).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// Sends the bytes of `buf` (a [`Buffer`] or a [`Slice`] of one) as one datagram to `remote`
    /// (`WskSendTo`), returning the number of bytes sent and the buffer. WSK completes it once the
    /// datagram is sent, not when anyone received it. On an IPv6 socket an IPv4 `remote` is sent to
    /// as IPv4-mapped (`::ffff:a.b.c.d`), which a dual-stack socket (bound to `[::]`) reaches; on an
    /// IPv4 socket an IPv4-mapped `remote` is sent to as the IPv4 address, and any other IPv6
    /// `remote` fails with STATUS_INVALID_PARAMETER without a call to WSK.
    pub fn send_to(&self, buf: impl Into<Slice>, remote: SocketAddr) -> SendTo<'_> {
        SendTo {
            socket: self,
            buf: Some(buf.into()),
            remote,
            slot: SlotUse::new(),
        }
    }

    /// Receives one datagram into `buf` (its whole capacity; `WskReceiveFrom`), returning what was
    /// received ([`ReceivedFrom`]: length, sender, truncation) and the buffer with `len()` set to
    /// the bytes received.
    pub fn receive_from(&self, buf: Buffer) -> ReceiveFrom<'_> {
        ReceiveFrom {
            socket: self,
            buf: Some(buf),
            slot: SlotUse::new(),
        }
    }

    /// Closes the socket (`WskCloseSocket`) and waits for the close to complete. Consumes the
    /// socket, so no other call on it can be in progress.
    pub fn close(self) -> Close {
        Close::new(self.handle)
    }
}

impl core::fmt::Debug for DatagramSocket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DatagramSocket")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// The future of [`DatagramSocket::send_to`].
pub struct SendTo<'a> {
    socket: &'a DatagramSocket,
    buf: Option<Slice>,
    remote: SocketAddr,
    slot: SlotUse,
}

/// `remote` in the socket's family, which `WskSendTo` requires: an IPv4 address becomes
/// IPv4-mapped for an IPv6 socket, an IPv4-mapped one becomes IPv4 for an IPv4 socket; any other
/// IPv6 address has no IPv4 form (`None`). A socket whose family is unknown gets `remote` as is.
fn in_family(remote: SocketAddr, local: Option<SocketAddr>) -> Option<SocketAddr> {
    match (remote, local) {
        (SocketAddr::V4(v4), Some(SocketAddr::V6(_))) => {
            Some(SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()))
        }
        (SocketAddr::V6(v6), Some(SocketAddr::V4(_))) => v6
            .ip()
            .to_ipv4_mapped()
            .map(|v4| SocketAddr::new(IpAddr::V4(v4), v6.port())),
        _ => Some(remote),
    }
}

impl Future for SendTo<'_> {
    type Output = (Result<usize>, Buffer);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let ctx = this.socket.ctx();
        let stream = StreamSlot::send(0);
        let op = ctx.slot(stream.index());
        if this.slot.phase() != Phase::Submitted {
            if let Err(e) = ready!(this.slot.poll_acquire(op, cx)) {
                return give_back!(this.buf.take().map(Slice::into_inner), Err(e));
            }
            let addresses = ctx.addresses_ptr();
            let Some(slice) = this.buf.as_ref().filter(|_| !addresses.is_null()) else {
                this.slot.release(op);
                return give_back!(this.buf.take().map(Slice::into_inner), Err(WskError::INVALID_STATE));
            };
            let Some(remote) = in_family(this.remote, this.socket.local) else {
                this.slot.release(op);
                return give_back!(
                    this.buf.take().map(Slice::into_inner),
                    Err(WskError::from_status(STATUS_INVALID_PARAMETER))
                );
            };
            let socket = ctx.socket();
            let send_to = ctx.datagram_dispatch().WskSendTo;
            // SAFETY: the send slot is ours (acquired), and with it its `OpIo` and the `local` field
            // of the addresses (see `Addresses`), written through a raw field pointer; the MDL and
            // buffer stay alive until the completion (in this future, or kept by the slot if it is
            // dropped).
            unsafe {
                let to = ptr::addr_of_mut!((*addresses).local);
                to.write(addr::to_storage(&remote));
                let io = OpIo::exclusive(ctx.stream_io(stream));
                io.wsk_buf = WSK_BUF {
                    Mdl: slice.buffer().mdl(),
                    Offset: slice.begin() as ULONG,
                    Length: slice.end() - slice.begin(),
                };
                let wsk_buf = ptr::addr_of_mut!(io.wsk_buf);
                let to = to.cast::<SOCKADDR>();
                this.slot.start(op, |irp| {
                    send_to.map(|f| f(socket, wsk_buf, 0, to, 0, ptr::null_mut(), irp))
                });
            }
        }
        let iosb = ready!(this.slot.poll_complete(op, cx));
        this.slot.release(op);
        // The provider's count is not trusted beyond the datagram: a caller slices with it.
        let length = this.buf.as_ref().map_or(0, |slice| slice.end() - slice.begin());
        give_back!(
            this.buf.take().map(Slice::into_inner),
            WskError::check(iosb.Status).map(|()| iosb.Information.min(length))
        )
    }
}

impl Drop for SendTo<'_> {
    fn drop(&mut self) {
        let ctx = self.socket.ctx();
        let buf = self.buf.take().map(Slice::into_inner);
        abandon_lent_buffer(ctx, StreamSlot::send(0), &mut self.slot, buf);
    }
}

/// The future of [`DatagramSocket::receive_from`].
pub struct ReceiveFrom<'a> {
    socket: &'a DatagramSocket,
    buf: Option<Buffer>,
    slot: SlotUse,
}

impl Future for ReceiveFrom<'_> {
    type Output = (Result<ReceivedFrom>, Buffer);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let ctx = this.socket.ctx();
        let op = ctx.slot(StreamSlot::Receive.index());
        let addresses = ctx.addresses_ptr();
        if this.slot.phase() != Phase::Submitted {
            if let Err(e) = ready!(this.slot.poll_acquire(op, cx)) {
                return give_back!(this.buf.take(), Err(e));
            }
            let Some(buf) = this.buf.as_mut().filter(|_| !addresses.is_null()) else {
                this.slot.release(op);
                return give_back!(this.buf.take(), Err(WskError::INVALID_STATE));
            };
            let socket = ctx.socket();
            let receive_from = ctx.datagram_dispatch().WskReceiveFrom;
            // SAFETY: the receive slot is ours (acquired), and with it its `OpIo` and the `remote`
            // and `option` fields of the addresses (see `Addresses`), written through raw field
            // pointers; the MDL covers the buffer's whole capacity and the buffer stays alive until
            // the completion.
            unsafe {
                let from = ptr::addr_of_mut!((*addresses).remote);
                from.write(SOCKADDR_STORAGE::default());
                let flags = ptr::addr_of_mut!((*addresses).option);
                flags.write(0);
                let io = OpIo::exclusive(ctx.stream_io(StreamSlot::Receive));
                io.wsk_buf = WSK_BUF {
                    Mdl: buf.mdl(),
                    Offset: 0,
                    Length: buf.capacity(),
                };
                let wsk_buf = ptr::addr_of_mut!(io.wsk_buf);
                let from = from.cast::<SOCKADDR>();
                this.slot.start(op, |irp| {
                    receive_from.map(|f| f(socket, wsk_buf, 0, from, ptr::null_mut(), ptr::null_mut(), flags, irp))
                });
            }
        }
        let iosb = ready!(this.slot.poll_complete(op, cx));
        // SAFETY: the slot is still ours after the completion, so the kernel is done with the fields
        // it owns; read through raw field pointers (the send slot may be using `local`).
        let (from, flags) = unsafe {
            (
                addr::from_storage(&*ptr::addr_of!((*addresses).remote)),
                ptr::addr_of!((*addresses).option).read(),
            )
        };
        this.slot.release(op);
        let Some(mut buf) = this.buf.take() else {
            return Poll::Pending;
        };
        // A truncated datagram: documented as MSG_TRUNC in ControlFlags; a provider may also complete
        // it with STATUS_BUFFER_OVERFLOW (a warning, not NT_SUCCESS) and the bytes it copied.
        let overflow = iosb.Status == STATUS_BUFFER_OVERFLOW;
        let status = if overflow { STATUS_SUCCESS } else { iosb.Status };
        // A count beyond the buffer is truncation or a provider's defect: either way the buffer holds
        // no more than its capacity, and the datagram's rest is not there.
        let beyond = iosb.Information > buf.capacity();
        let result = WskError::check(status).and_then(|()| {
            let len = iosb.Information.min(buf.capacity());
            let from = from.ok_or(WskError::from_status(STATUS_INVALID_ADDRESS))?;
            Ok(ReceivedFrom {
                len,
                from,
                truncated: overflow || beyond || flags & MSG_TRUNC != 0,
            })
        });
        buf.set_received(result.as_ref().map_or(0, |r| r.len));
        Poll::Ready((result, buf))
    }
}

impl Drop for ReceiveFrom<'_> {
    fn drop(&mut self) {
        let ctx = self.socket.ctx();
        abandon_lent_buffer(ctx, StreamSlot::Receive, &mut self.slot, self.buf.take());
    }
}

/// The future of [`Registration::bind_datagram`].
pub struct BindDatagram<'a> {
    registration: &'a Registration,
    addr: SocketAddr,
    creating: Creating,
    step: BindStep,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BindStep {
    Socket,
    DualStack,
    Bind,
    LocalAddress,
}

impl Registration {
    /// Creates a datagram (UDP) socket bound to `local` (`WskSocket` with
    /// `WSK_FLAG_DATAGRAM_SOCKET`, then for IPv6 `IPV6_V6ONLY` = 0 for dual stack, then `WskBind`,
    /// then `WskGetLocalAddress`). Port 0 picks a free port; read it back with
    /// [`DatagramSocket::local_addr`]. An IPv6 address gives a dual-stack socket: IPv4 peers reach
    /// it and are seen as `::ffff:a.b.c.d`. If the local-address query fails and `local` names its
    /// port, the socket is kept and reports `local`. Dropping the future at any point closes
    /// whatever was created.
    pub fn bind_datagram(&self, local: SocketAddr) -> BindDatagram<'_> {
        BindDatagram {
            registration: self,
            addr: local,
            creating: Creating::new(Kind::Datagram, RECEIVE),
            step: BindStep::Socket,
        }
    }
}

impl Future for BindDatagram<'_> {
    type Output = Result<DatagramSocket>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<DatagramSocket>> {
        let this = self.get_mut();
        let registration = this.registration.inner();
        registration.drain_orphans();
        let (ctx, slot) = this.creating.ensure(registration)?;
        let op = ctx.slot(RECEIVE);
        loop {
            if slot.phase() != Phase::Submitted {
                // SAFETY: the receive slot is the socket-producing one, and the socket is not shared.
                let io = ready!(unsafe { setup::poll_acquire(slot, op, ctx, cx) })?;
                // SAFETY: the slot is ours; every pointer passed lives in the context's block or the
                // registration until the completion; the socket, for the steps that name it, was
                // set by the `Socket` step, and the dispatch table is its own.
                unsafe {
                    match this.step {
                        BindStep::Socket => {
                            let family = addr::family(&this.addr);
                            setup::start_socket(slot, op, registration, ctx, family, setup::DATAGRAM);
                        }
                        BindStep::DualStack => {
                            let control = ctx.datagram_dispatch().Basic.WskControlSocket;
                            setup::start_set_option(slot, op, control, ctx.socket(), io, setup::DUAL_STACK);
                        }
                        BindStep::Bind => {
                            io.local = addr::to_storage(&this.addr);
                            let local = ptr::addr_of_mut!(io.local).cast::<SOCKADDR>();
                            setup::start_bind(slot, op, ctx.datagram_dispatch().WskBind, ctx.socket(), local);
                        }
                        BindStep::LocalAddress => {
                            let get = ctx.datagram_dispatch().WskGetLocalAddress;
                            setup::start_local_address(slot, op, get, ctx.socket(), io);
                        }
                    }
                }
            }
            let iosb = ready!(slot.poll_complete(op, cx));
            let done = match this.step {
                BindStep::Socket => Done::Creation,
                BindStep::DualStack | BindStep::Bind => Done::Other,
                BindStep::LocalAddress => Done::LocalAddress(this.addr),
            };
            // SAFETY: the slot is still ours after the completion; the context is not shared yet.
            let local = match unsafe { setup::completed(op, ctx, iosb, done) } {
                Ok(local) => local,
                Err(e) => {
                    slot.release(op);
                    // Dropping `creating` (with the future) closes a created socket.
                    return Poll::Ready(Err(e));
                }
            };
            this.step = match this.step {
                BindStep::Socket if matches!(this.addr, SocketAddr::V6(_)) => BindStep::DualStack,
                BindStep::Socket | BindStep::DualStack => BindStep::Bind,
                BindStep::Bind => BindStep::LocalAddress,
                BindStep::LocalAddress => {
                    slot.release(op);
                    return Poll::Ready(this.creating.finish().map(|handle| DatagramSocket { handle, local }));
                }
            };
        }
    }
}

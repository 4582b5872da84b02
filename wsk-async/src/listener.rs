//! [`Listener`]: a listening TCP socket, and the futures that create it and accept connections.

use crate::addr;
use crate::close::Close;
use crate::connection::Connection;
use crate::creating::Creating;
use crate::ctx::{ACCEPT, Handle, Kind, SocketCtx};
use crate::error::{Result, WskError};
use crate::op::produced_socket;
use crate::registration::Registration;
use crate::setup::{self, Done};
use crate::slot::{Phase, SlotUse};
use core::future::Future;
use core::net::SocketAddr;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll, ready};
use nt::*;

/// A listening socket bound to a local address. Created by [`Registration::listen`].
///
/// An IPv6 address gives a dual-stack listener (`IPV6_V6ONLY` = 0: IPv4 clients are accepted too,
/// as `::ffff:a.b.c.d`); an IPv4 address an IPv4-only one.
///
/// Accept with [`accept`](Self::accept) or as a [`Stream`](futures_core::Stream) with
/// [`incoming`](Self::incoming). One accept at a time per listener (a second concurrent one fails
/// with [`WskError::is_invalid_state`]).
///
/// Dropping an accept future while it is pending cancels its IRP (`IoCancelIrp`). If the accept
/// completes anyway with a connection, that connection is closed (abortively) at PASSIVE_LEVEL by
/// the next `accept()` on this listener, by closing or dropping the listener, or — if the listener is
/// already gone — by the registration's deferred closer (see [`Registration`]); a completion
/// routine never calls WSK itself. Dropping the listener closes its socket (`WskCloseSocket` with a
/// preallocated IRP), which cancels a pending accept.
///
/// ```
/// # let _session = nt::emu::session();
/// # use wsk_async::Registration;
/// use futures_core::Stream;
/// use std::{future::poll_fn, pin::pin};
/// # let net = nt::emu::wsk::MemoryNetwork::install();
/// # executor::block_on(async {
/// # let _test_device = nt::emu::driver::TestDevice::create();
/// # let device = unsafe { wsk_async::Device::from_raw(_test_device.device()) }.unwrap();
/// # let registration = Registration::register(&device).await?;
/// let listener = registration.listen("[::]:0".parse().unwrap()).await?; // dual stack
/// let port = listener.local_addr().unwrap().port();
/// # let _peer = net.connect(([127, 0, 0, 1], port).into()).unwrap();
/// {
///     let mut incoming = pin!(listener.incoming());
///     let conn = poll_fn(|cx| incoming.as_mut().poll_next(cx)).await.unwrap()?;
///     assert!(conn.peer_addr().is_some());
///     drop(conn); // not closed: closed abortively in the background
/// }
/// listener.close().await?;
/// # registration.deregister().await;
/// # Ok::<(), wsk_async::WskError>(())
/// # }).unwrap().unwrap();
/// ```
pub struct Listener {
    handle: Handle,
    local: Option<SocketAddr>,
}

impl Listener {
    /// The address the listener is bound to, as the provider reports it (with the actual port when
    /// bound to port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// Accepts one connection (`WskAccept`).
    pub fn accept(&self) -> Accept<'_> {
        Accept {
            listener: self,
            slot: SlotUse::new(),
            connection: None,
        }
    }

    /// The accepted connections as a [`Stream`](futures_core::Stream) (never ends by itself; an error
    /// item does not end it either — stop on [`WskError::is_forced_close`]).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            listener: self,
            accept: None,
        }
    }

    /// Closes the listening socket (`WskCloseSocket`), cancelling a pending accept, and waits for
    /// the close to complete.
    pub fn close(self) -> Close {
        Close::new(self.handle)
    }

    pub(crate) fn ctx(&self) -> &SocketCtx {
        self.handle.ctx()
    }
}

impl core::fmt::Debug for Listener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Listener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// The future of [`Listener::accept`].
pub struct Accept<'a> {
    listener: &'a Listener,
    slot: SlotUse,
    /// The accepted connection's context, allocated before the WskAccept so that nothing can fail
    /// after the kernel produced a socket. Its socket is set only once the accept completed, so
    /// dropping it before just frees it.
    connection: Option<Handle>,
}

impl Future for Accept<'_> {
    type Output = Result<Connection>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Connection>> {
        let this = self.get_mut();
        let listener = this.listener.ctx();
        let op = listener.slot(ACCEPT);
        if this.slot.phase() != Phase::Submitted {
            listener.registration().drain_orphans();
            // A stale accept (dropped future) is waited out and its unread connection closed here.
            ready!(this.slot.poll_acquire(op, cx))?;
            if this.connection.is_none() {
                match SocketCtx::allocate(listener.registration(), Kind::Accepted) {
                    Ok(ctx) => this.connection = Some(Handle::new(ctx)),
                    Err(e) => {
                        this.slot.release(op);
                        return Poll::Ready(Err(e));
                    }
                }
            }
            let socket = listener.socket();
            let accept = listener.listen_dispatch().WskAccept;
            // SAFETY: the accept slot (the listener's socket-producing slot) is ours; the address
            // buffers live in the listener's block until it is freed, after the completion.
            unsafe {
                let Some(addresses) = listener.addresses() else {
                    this.slot.release(op);
                    return Poll::Ready(Err(WskError::INVALID_STATE));
                };
                op.set_produces_socket(true);
                let local = ptr::addr_of_mut!(addresses.local).cast::<SOCKADDR>();
                let remote = ptr::addr_of_mut!(addresses.remote).cast::<SOCKADDR>();
                this.slot.start(op, |irp| {
                    accept.map(|f| f(socket, 0, ptr::null_mut(), ptr::null(), local, remote, irp))
                });
            }
        }
        let iosb = ready!(this.slot.poll_complete(op, cx));
        // SAFETY: the slot is still ours after the completion.
        let (local, remote) = unsafe {
            op.set_produces_socket(false);
            match listener.addresses() {
                Some(addresses) => (
                    addr::from_storage(&addresses.local),
                    addr::from_storage(&addresses.remote),
                ),
                None => (None, None),
            }
        };
        this.slot.release(op);
        let socket = produced_socket(iosb)?;
        let Some(handle) = this.connection.take() else {
            return Poll::Ready(Err(WskError::INVALID_STATE));
        };
        // SAFETY: the context was never shared; this is its socket from now on.
        unsafe { handle.ctx().set_socket(socket) };
        Poll::Ready(Ok(Connection::new(handle, local, remote)))
    }
}

impl Drop for Accept<'_> {
    fn drop(&mut self) {
        let op = self.listener.ctx().slot(ACCEPT);
        if self.slot.phase() == Phase::Submitted {
            if self.slot.completed(op) {
                // Completed but not read: close the connection it produced, with the slot's IRP.
                // SAFETY: the slot is still ours; PASSIVE_LEVEL.
                unsafe { op.dispose_unread() };
            } else {
                // SAFETY: the IRP is alive (the listener holds the context).
                unsafe { IoCancelIrp(op.irp()) };
            }
        }
        self.slot.release(op);
        // `connection` (never given a socket) is freed by its own drop.
    }
}

/// The [`Stream`](futures_core::Stream) of [`Listener::incoming`].
pub struct Incoming<'a> {
    listener: &'a Listener,
    accept: Option<Accept<'a>>,
}

impl futures_core::Stream for Incoming<'_> {
    type Item = Result<Connection>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let listener = this.listener;
        let accept = this.accept.get_or_insert_with(|| listener.accept());
        // `Accept` is Unpin (no self-references).
        let result = ready!(Pin::new(accept).poll(cx));
        this.accept = None;
        Poll::Ready(Some(result))
    }
}

/// The future of [`Registration::listen`].
pub struct Listen<'a> {
    registration: &'a Registration,
    addr: SocketAddr,
    creating: Creating,
    step: ListenStep,
    /// `SO_EXCLUSIVEADDRUSE` is set before the bind ([`Listen::exclusive`]).
    exclusive: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ListenStep {
    Socket,
    DualStack,
    Exclusive,
    Bind,
    LocalAddress,
}

impl Registration {
    /// Creates a listening socket bound to `addr` (`WskSocket` with `WSK_FLAG_LISTEN_SOCKET`, then
    /// for IPv6 `IPV6_V6ONLY` = 0 for dual stack, then `SO_EXCLUSIVEADDRUSE` if asked for with
    /// [`Listen::exclusive`], then `WskBind`, which starts listening, then
    /// `WskGetLocalAddress`). Port 0 picks a free port; read it back with
    /// [`Listener::local_addr`]. If the local-address query fails and `addr` names its port, the
    /// listener is kept and reports `addr`. Dropping the future at any point closes whatever was
    /// created.
    pub fn listen(&self, addr: SocketAddr) -> Listen<'_> {
        Listen {
            registration: self,
            addr,
            creating: Creating::new(Kind::Listener, ACCEPT),
            step: ListenStep::Socket,
            exclusive: false,
        }
    }
}

impl Listen<'_> {
    /// Reserves the address for this listener alone (`SO_EXCLUSIVEADDRUSE`, set before the bind):
    /// no other socket may bind it, even with `SO_REUSEADDR`, and once the listener is closed the
    /// port cannot be bound again until the connections it accepted are gone. Call before the
    /// first poll: `registration.listen(addr).exclusive().await`. A provider without the option
    /// fails the listen with [`WskError::is_unsupported`] (Wine 8's `WskControlSocket` is a stub);
    /// listen again without it to go on.
    pub fn exclusive(mut self) -> Self {
        self.exclusive = true;
        self
    }
}

impl Future for Listen<'_> {
    type Output = Result<Listener>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Listener>> {
        let this = self.get_mut();
        let registration = this.registration.inner();
        registration.drain_orphans();
        let (ctx, slot) = this.creating.ensure(registration)?;
        let op = ctx.slot(ACCEPT);
        loop {
            if slot.phase() != Phase::Submitted {
                // SAFETY: the accept slot is the socket-producing one, and the socket is not shared.
                let io = ready!(unsafe { setup::poll_acquire(slot, op, ctx, cx) })?;
                // SAFETY: the slot is ours; every pointer passed lives in the context's block or the
                // registration until the completion; the socket, for the steps that name it, was
                // set by the `Socket` step, and the dispatch table is its own.
                unsafe {
                    match this.step {
                        ListenStep::Socket => {
                            let family = addr::family(&this.addr);
                            setup::start_socket(slot, op, registration, ctx, family, setup::LISTEN);
                        }
                        ListenStep::DualStack => {
                            let control = ctx.listen_dispatch().Basic.WskControlSocket;
                            setup::start_set_option(slot, op, control, ctx.socket(), io, setup::DUAL_STACK);
                        }
                        ListenStep::Exclusive => {
                            let control = ctx.listen_dispatch().Basic.WskControlSocket;
                            setup::start_set_option(slot, op, control, ctx.socket(), io, setup::EXCLUSIVE);
                        }
                        ListenStep::Bind => {
                            io.local = addr::to_storage(&this.addr);
                            let local = ptr::addr_of_mut!(io.local).cast::<SOCKADDR>();
                            setup::start_bind(slot, op, ctx.listen_dispatch().WskBind, ctx.socket(), local);
                        }
                        ListenStep::LocalAddress => {
                            let get = ctx.listen_dispatch().WskGetLocalAddress;
                            setup::start_local_address(slot, op, get, ctx.socket(), io);
                        }
                    }
                }
            }
            let iosb = ready!(slot.poll_complete(op, cx));
            let done = match this.step {
                ListenStep::Socket => Done::Creation,
                ListenStep::DualStack | ListenStep::Exclusive | ListenStep::Bind => Done::Other,
                ListenStep::LocalAddress => Done::LocalAddress(this.addr),
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
                ListenStep::Socket if matches!(this.addr, SocketAddr::V6(_)) => ListenStep::DualStack,
                ListenStep::Socket | ListenStep::DualStack if this.exclusive => ListenStep::Exclusive,
                ListenStep::Socket | ListenStep::DualStack | ListenStep::Exclusive => ListenStep::Bind,
                ListenStep::Bind => ListenStep::LocalAddress,
                ListenStep::LocalAddress => {
                    slot.release(op);
                    return Poll::Ready(this.creating.finish().map(|handle| Listener { handle, local }));
                }
            };
        }
    }
}

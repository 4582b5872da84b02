//! [`Registration::connect`]: an outgoing connection with `WskSocketConnect`, or, where the provider
//! only stubs that (Wine 8's netio.sys returns STATUS_NOT_IMPLEMENTED and never completes the IRP),
//! with `WskSocket` (`WSK_FLAG_CONNECTION_SOCKET`) + `WskBind` + `WskConnect`, the three steps
//! `WskSocketConnect` stands for.

use crate::addr;
use crate::connection::Connection;
use crate::creating::Creating;
use crate::ctx::{Kind, SEND};
use crate::error::{Result, WskError};
use crate::registration::Registration;
use crate::setup::{self, Done};
use crate::slot::Phase;
use core::future::Future;
use core::net::SocketAddr;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll, ready};
use nt::*;

/// The future of [`Registration::connect`].
pub struct Connect<'a> {
    registration: &'a Registration,
    /// The local address to bind to; `None`: the wildcard address of the remote's family.
    local: Option<SocketAddr>,
    remote: SocketAddr,
    creating: Creating,
    /// The step whose IRP is (or is next) on the send slot. Every step uses the one slot, and the
    /// socket, once created, is the context's: dropping the future at any step is `Creating`'s drop
    /// (cancel, orphan the slot, close the socket if there is one).
    step: Step,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `WskSocketConnect`: all in one IRP.
    SocketConnect,
    /// The fallback: `WskSocket` with `WSK_FLAG_CONNECTION_SOCKET`...
    Socket,
    /// ... `WskBind` to the local address (the documentation requires a bound socket for
    /// `WskConnect`; Wine and Windows both fail an unbound one with STATUS_INVALID_DEVICE_STATE)...
    Bind,
    /// ... and `WskConnect`.
    Connect,
}

/// Whether a `WskSocketConnect` that failed with `status` is missing rather than refused: only
/// STATUS_NOT_IMPLEMENTED, Wine 8's stub. STATUS_NOT_SUPPORTED is not: Wine maps an unsupported
/// family, type or protocol to it (and Windows answers a wrong type or protocol with it), which the
/// three-step path would only be refused again.
fn missing(status: NTSTATUS) -> bool {
    status == STATUS_NOT_IMPLEMENTED
}

impl Registration {
    /// Connects to `remote` (`WskSocketConnect`: creates, binds to the wildcard address of the same
    /// family and connects, with one IRP). Dropping the future while it is pending cancels the IRP;
    /// a connection that completes anyway is closed by the registration's deferred closer.
    ///
    /// A provider whose `WskSocketConnect` is a stub (STATUS_NOT_IMPLEMENTED: Wine 8's netio.sys)
    /// gets the same three steps as separate calls, `WskSocket` (`WSK_FLAG_CONNECTION_SOCKET`),
    /// `WskBind` and `WskConnect`, on this future and, remembered by the registration, on every
    /// later one. Dropping the future at any of them closes the socket it created; a pending IRP is
    /// cancelled, and one the provider cannot cancel (Wine's `WskConnect`) is ended by that close.
    pub fn connect(&self, remote: SocketAddr) -> Connect<'_> {
        self.connect_with(None, remote)
    }

    /// Connects to `remote` from `local` (`WskSocketConnect` with that local address instead of the
    /// wildcard of the remote's family): a chosen source address, port or both (port 0 lets the
    /// transport pick one). Both addresses must be of the same family (otherwise it fails with
    /// STATUS_INVALID_PARAMETER without calling the provider). A local address already in use
    /// fails with an error for which [`WskError::is_address_in_use`] is true; otherwise as
    /// [`connect`](Self::connect), including the fallback and what dropping the future does.
    pub fn connect_from(&self, local: SocketAddr, remote: SocketAddr) -> Connect<'_> {
        self.connect_with(Some(local), remote)
    }

    fn connect_with(&self, local: Option<SocketAddr>, remote: SocketAddr) -> Connect<'_> {
        let step = if self.inner().socket_connect_missing() {
            Step::Socket
        } else {
            Step::SocketConnect
        };
        Connect {
            registration: self,
            local,
            remote,
            creating: Creating::new(Kind::Connecting, SEND),
            step,
        }
    }
}

impl Future for Connect<'_> {
    type Output = Result<Connection>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Connection>> {
        let this = self.get_mut();
        // WskSocketConnect requires both addresses of the family of the socket it creates.
        if this
            .local
            .is_some_and(|local| addr::family(&local) != addr::family(&this.remote))
        {
            return Poll::Ready(Err(WskError::from_status(STATUS_INVALID_PARAMETER)));
        }
        let registration = this.registration.inner();
        registration.drain_orphans();
        let (ctx, slot) = this.creating.ensure(registration)?;
        let op = ctx.slot(SEND);
        loop {
            if slot.phase() != Phase::Submitted {
                // SAFETY: the send slot is this context's socket-producing slot, and the socket is
                // not shared.
                let addresses = ready!(unsafe { setup::poll_acquire(slot, op, ctx, cx) })?;
                // SAFETY: the slot is ours; the addresses live in the context's block until it is
                // freed, after the completion; the socket, for the steps that name it, was set by the
                // `Socket` step.
                unsafe {
                    addresses.local =
                        addr::to_storage(&this.local.unwrap_or_else(|| addr::wildcard_like(&this.remote)));
                    addresses.remote = addr::to_storage(&this.remote);
                    let local = ptr::addr_of_mut!(addresses.local).cast::<SOCKADDR>();
                    let remote = ptr::addr_of_mut!(addresses.remote).cast::<SOCKADDR>();
                    match this.step {
                        Step::SocketConnect => {
                            let connect = registration.dispatch().WskSocketConnect;
                            let client = registration.provider().Client;
                            let context = ptr::from_ref(ctx).cast_mut().cast();
                            op.set_produces_socket(true);
                            slot.start(op, |irp| {
                                connect.map(|f| {
                                    f(
                                        client,
                                        SOCK_STREAM,
                                        IPPROTO_TCP,
                                        local,
                                        remote,
                                        0,
                                        context,
                                        ptr::null(),
                                        ptr::null_mut(),
                                        ptr::null_mut(),
                                        ptr::null_mut(),
                                        irp,
                                    )
                                })
                            });
                        }
                        Step::Socket => {
                            let family = addr::family(&this.remote);
                            setup::start_socket(slot, op, registration, ctx, family, setup::CONNECTION);
                        }
                        Step::Bind => {
                            setup::start_bind(slot, op, ctx.connection_dispatch().WskBind, ctx.socket(), local);
                        }
                        Step::Connect => {
                            let connect = ctx.connection_dispatch().WskConnect;
                            let socket = ctx.socket();
                            slot.start(op, |irp| connect.map(|f| f(socket, remote, 0, irp)));
                        }
                    }
                }
            }
            let iosb = ready!(slot.poll_complete(op, cx));
            let done = match this.step {
                Step::SocketConnect | Step::Socket => Done::Creation,
                Step::Bind | Step::Connect => Done::Other,
            };
            // SAFETY: the slot is still ours after the completion; the context is not shared yet.
            let result = unsafe { setup::completed(op, ctx, iosb, done) };
            if this.step == Step::SocketConnect && missing(iosb.Status) {
                // The slot is ours and idle (a stub touched nothing; a provider that completed the
                // IRP produced no socket): go on with the fallback on it.
                registration.set_socket_connect_missing();
                this.step = Step::Socket;
                continue;
            }
            if let Err(e) = result {
                slot.release(op);
                // Dropping `creating` (with the future) closes a created socket.
                return Poll::Ready(Err(e));
            }
            this.step = match this.step {
                Step::Socket => Step::Bind,
                Step::Bind => Step::Connect,
                Step::SocketConnect | Step::Connect => {
                    slot.release(op);
                    return Poll::Ready(
                        this.creating
                            .finish()
                            .map(|handle| Connection::new(handle, None, Some(this.remote))),
                    );
                }
            };
        }
    }
}

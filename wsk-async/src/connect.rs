//! [`Registration::connect`]: an outgoing connection with `WskSocketConnect`.

use crate::addr;
use crate::connection::Connection;
use crate::creating::Creating;
use crate::ctx::{Kind, SEND};
use crate::error::{Result, WskError};
use crate::op::produced_socket;
use crate::registration::Registration;
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
}

impl Registration {
    /// Connects to `remote` (`WskSocketConnect`: creates, binds to the wildcard address of the same
    /// family and connects, with one IRP). Dropping the future while it is pending cancels the IRP;
    /// a connection that completes anyway is closed by the registration's deferred closer.
    pub fn connect(&self, remote: SocketAddr) -> Connect<'_> {
        Connect {
            registration: self,
            local: None,
            remote,
            creating: Creating::new(Kind::Connecting, SEND),
        }
    }

    /// Connects to `remote` from `local` (`WskSocketConnect` with that local address instead of the
    /// wildcard of the remote's family): a chosen source address, port or both (port 0 lets the
    /// transport pick one). Both addresses must be of the same family (otherwise it fails with
    /// STATUS_INVALID_PARAMETER without calling the provider). A local address already in use
    /// fails with an error for which [`WskError::is_address_in_use`] is true; otherwise as
    /// [`connect`](Self::connect), including what dropping the future does.
    pub fn connect_from(&self, local: SocketAddr, remote: SocketAddr) -> Connect<'_> {
        Connect {
            registration: self,
            local: Some(local),
            remote,
            creating: Creating::new(Kind::Connecting, SEND),
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
        if slot.phase() != Phase::Submitted {
            ready!(slot.poll_acquire(op, cx))?;
            let connect = registration.dispatch().WskSocketConnect;
            let client = registration.provider().Client;
            // SAFETY: the send slot (this context's socket-producing slot) is ours; the addresses live
            // in the context's block until it is freed, after the completion.
            unsafe {
                let Some(addresses) = ctx.addresses() else {
                    slot.release(op);
                    return Poll::Ready(Err(WskError::INVALID_STATE));
                };
                op.set_produces_socket(true);
                addresses.local = addr::to_storage(&this.local.unwrap_or_else(|| addr::wildcard_like(&this.remote)));
                addresses.remote = addr::to_storage(&this.remote);
                let local = ptr::addr_of_mut!(addresses.local).cast::<SOCKADDR>();
                let remote = ptr::addr_of_mut!(addresses.remote).cast::<SOCKADDR>();
                let context = ptr::from_ref(ctx).cast_mut().cast();
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
        }
        let iosb = ready!(slot.poll_complete(op, cx));
        // SAFETY: the slot is still ours after the completion.
        unsafe { op.set_produces_socket(false) };
        slot.release(op);
        let socket = produced_socket(iosb)?;
        // SAFETY: the context is not shared yet.
        unsafe { ctx.set_socket(socket) };
        let creating = core::mem::replace(&mut this.creating, Creating::new(Kind::Connecting, SEND));
        match creating.into_handle() {
            Some(handle) => Poll::Ready(Ok(Connection::new(handle, None, Some(this.remote)))),
            None => Poll::Ready(Err(WskError::INVALID_STATE)),
        }
    }
}

//! [`Close`]: the future of `Listener::close` and `Connection::close`.

use crate::ctx::{CLOSE, Handle, SocketCtx, call_close};
use crate::error::{Result, WskError};
use crate::slot::{Phase, SlotUse};
use core::future::Future;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll, ready};

/// Closes a socket (`WskCloseSocket`) and completes when the close has. It owns the socket (the
/// `close(self)` methods consume it), so no other call can be in progress on it. Dropping it before
/// its first poll closes the socket in the background, like dropping the socket; dropping it after
/// lets the close finish on its own (a close is never cancelled).
pub struct Close {
    /// Carries the handle reference while the future is alive.
    ctx: Option<NonNull<SocketCtx>>,
    slot: SlotUse,
}

// SAFETY: like `Handle`, which this future took over.
unsafe impl Send for Close {}

impl Close {
    pub(crate) fn new(handle: Handle) -> Self {
        Self {
            ctx: Some(handle.into_raw()),
            slot: SlotUse::new(),
        }
    }
}

impl Future for Close {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let Some(ctx_ptr) = this.ctx else {
            return Poll::Pending;
        };
        // SAFETY: the future holds the handle reference.
        let ctx = unsafe { ctx_ptr.as_ref() };
        let op = ctx.slot(CLOSE);
        if this.slot.phase() != Phase::Submitted {
            // Close unread sockets of other slots (a stale accept) and keep anyone from claiming them.
            // SAFETY: the future owns the handle; the close slot is left alone.
            unsafe { crate::ctx::orphan_slots(ctx, Some(CLOSE)) };
            ready!(this.slot.poll_acquire(op, cx))?;
            let socket = ctx.socket();
            // SAFETY: slot ours; nothing else can call on the socket (we own it).
            unsafe { this.slot.start(op, |irp| call_close(socket, irp)) };
        }
        let iosb = ready!(this.slot.poll_complete(op, cx));
        this.slot.release(op);
        this.ctx = None;
        // SAFETY: give up the handle reference; the close completed, so no IRP can need the socket.
        unsafe { SocketCtx::release(ctx_ptr.as_ptr()) };
        Poll::Ready(WskError::check(iosb.Status))
    }
}

impl Drop for Close {
    fn drop(&mut self) {
        let Some(ctx) = self.ctx.take() else { return };
        // SAFETY: we hold the handle reference.
        let op = unsafe { ctx.as_ref() }.slot(CLOSE);
        match self.slot.phase() {
            Phase::Submitted => {
                // The close is in flight: let it finish on its own (it holds its own reference).
                self.slot.release(op);
                // SAFETY: give up the handle reference.
                unsafe { SocketCtx::release(ctx.as_ptr()) };
            }
            _ => {
                self.slot.release(op);
                // SAFETY: never closed: close in the background, exactly as dropping the socket does.
                unsafe { Handle::abandon(ctx, true) };
            }
        }
    }
}

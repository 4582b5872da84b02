//! The futures that end a connection: graceful [`Disconnect`] (optionally with a final buffer,
//! [`DisconnectWith`]) and abortive [`Abort`].

use crate::buffer::{Buffer, Slice};
use crate::connection::Connection;
use crate::error::{Result, WskError};
use crate::op::OpIo;
use crate::slot::{Phase, SlotUse, give_back};
use core::future::Future;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll, ready};
use nt::*;

/// The future of [`Connection::disconnect`].
pub struct Disconnect<'a> {
    conn: &'a Connection,
    buf: Option<Slice>,
    slot: SlotUse,
}

impl<'a> Disconnect<'a> {
    pub(crate) fn new(conn: &'a Connection, buf: Option<Slice>) -> Self {
        Self {
            conn,
            buf,
            slot: SlotUse::new(),
        }
    }
}

impl Disconnect<'_> {
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let ctx = self.conn.ctx();
        if self.slot.phase() == Phase::Idle && ctx.stream_unknown() {
            return Poll::Ready(Err(WskError::INVALID_STATE));
        }
        // This slot and the abort slot (with their IRPs) exist before anything is submitted: a drop
        // of the pending graceful disconnect must be able to abort, and cannot allocate or fail.
        let end = match ctx.ensure_end_slots() {
            Ok(end) => end,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let op = &end.disconnect;
        if self.slot.phase() != Phase::Submitted {
            ready!(self.slot.poll_acquire(op, cx))?;
            let socket = ctx.socket();
            let disconnect = ctx.connection_dispatch().WskDisconnect;
            // SAFETY: slot ours, with an IRP; `disconnect_io` is this slot's cell; a final buffer stays
            // alive (here, or in the cell after a drop) until the completion.
            unsafe {
                let io = OpIo::exclusive(&end.disconnect_io);
                let wsk_buf = match &self.buf {
                    Some(slice) => {
                        io.wsk_buf = WSK_BUF {
                            Mdl: slice.buffer().mdl(),
                            Offset: slice.begin() as ULONG,
                            Length: slice.end() - slice.begin(),
                        };
                        ptr::addr_of_mut!(io.wsk_buf)
                    }
                    None => ptr::null_mut(),
                };
                self.slot
                    .start(op, |irp| disconnect.map(|f| f(socket, wsk_buf, 0, irp)));
            }
        }
        let iosb = ready!(self.slot.poll_complete(op, cx));
        self.slot.release(op);
        Poll::Ready(WskError::check(iosb.Status))
    }
}

impl Future for Disconnect<'_> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_inner(cx)
    }
}

impl Drop for Disconnect<'_> {
    fn drop(&mut self) {
        let ctx = self.conn.ctx();
        // No end slots: never polled far enough to hold one, nothing to undo.
        let Some(end) = ctx.end_slots() else { return };
        let op = &end.disconnect;
        if self.slot.phase() == Phase::Submitted && !self.slot.completed(op) {
            // A graceful disconnect cannot be cancelled and may never complete: abort instead, with
            // the abort slot's own IRP; that forces this IRP to complete.
            ctx.abort_in_background();
            if self.slot.completed(op) {
                op.state.consume();
            } else {
                // SAFETY: FUTURE still held; the completion routine does not touch `io` while it is.
                unsafe { OpIo::keep_buffer(&end.disconnect_io, self.buf.take().map(Slice::into_inner)) };
            }
        }
        self.slot.release(op);
    }
}

/// The future of [`Connection::disconnect_with`]: the graceful disconnect's result and the buffer.
pub struct DisconnectWith<'a> {
    inner: Disconnect<'a>,
}

impl<'a> DisconnectWith<'a> {
    pub(crate) fn new(conn: &'a Connection, buf: Slice) -> Self {
        Self {
            inner: Disconnect::new(conn, Some(buf)),
        }
    }
}

impl Future for DisconnectWith<'_> {
    type Output = (Result<()>, Buffer);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.get_mut().inner;
        let result = ready!(inner.poll_inner(cx));
        give_back!(inner.buf.take().map(Slice::into_inner), result)
    }
}

/// The future of [`Connection::abort`].
pub struct Abort<'a> {
    conn: &'a Connection,
    slot: SlotUse,
}

impl<'a> Abort<'a> {
    pub(crate) fn new(conn: &'a Connection) -> Self {
        Self {
            conn,
            slot: SlotUse::new(),
        }
    }
}

impl Future for Abort<'_> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let ctx = this.conn.ctx();
        let end = match ctx.ensure_end_slots() {
            Ok(end) => end,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let op = &end.abort;
        if this.slot.phase() != Phase::Submitted {
            ready!(this.slot.poll_acquire(op, cx))?;
            let socket = ctx.socket();
            let disconnect = ctx.connection_dispatch().WskDisconnect;
            // SAFETY: slot ours, with an IRP; an abortive disconnect takes no buffer.
            unsafe {
                this.slot.start(op, |irp| {
                    disconnect.map(|f| f(socket, ptr::null_mut(), WSK_FLAG_ABORTIVE, irp))
                });
            }
        }
        let iosb = ready!(this.slot.poll_complete(op, cx));
        this.slot.release(op);
        Poll::Ready(WskError::check(iosb.Status))
    }
}

impl Drop for Abort<'_> {
    fn drop(&mut self) {
        // An abort is never cancelled: it completes on its own and the completion routine finds no
        // future to wake.
        // No end slots: never polled far enough to hold one.
        let Some(end) = self.conn.ctx().end_slots() else { return };
        self.slot.release(&end.abort);
    }
}

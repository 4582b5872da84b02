//! [`IdealSendBacklog`]: `SIO_WSK_QUERY_IDEAL_SEND_BACKLOG`, how many bytes of sends a connection
//! should keep passed to WSK and not yet completed to keep its stream full.
//!
//! The query borrows one of the connection's send slots, its IRP, and the `Length` field of that
//! slot's `WSK_BUF` (a `SIZE_T`, in the context's nonpaged block) as the output buffer the provider
//! writes: no memory of its own, and the output outlives a dropped future until the IRP completes,
//! like a send's buffer. While it runs it counts as one of the sends in flight.

use crate::connection::Connection;
use crate::ctx::{SEND_SLOTS, StreamSlot};
use crate::error::{Result, WskError};
use crate::op::{Op, OpIo};
use crate::slot::{Phase, SlotUse};
use core::future::Future;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll, ready};
use nt::*;

/// The future of [`Connection::ideal_send_backlog`].
pub struct IdealSendBacklog<'a> {
    conn: &'a Connection,
    slot: SlotUse,
    /// Which send slot the query holds while it holds one.
    which: u8,
}

impl<'a> IdealSendBacklog<'a> {
    pub(crate) fn new(conn: &'a Connection) -> Self {
        Self {
            conn,
            slot: SlotUse::new(),
            which: 0,
        }
    }

    fn stream(&self) -> StreamSlot {
        StreamSlot::send(usize::from(self.which))
    }
}

impl Future for IdealSendBacklog<'_> {
    type Output = Result<Option<usize>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let ctx = this.conn.ctx();
        if this.slot.phase() != Phase::Submitted {
            let ops: [&Op; SEND_SLOTS] = core::array::from_fn(|n| ctx.slot(StreamSlot::send(n).index()));
            let mut which = usize::from(this.which);
            let acquired = this.slot.poll_acquire_one_of(&ops, &mut which, cx);
            // `which < SEND_SLOTS`, a small constant.
            this.which = which as u8;
            ready!(acquired)?;
            let op = ctx.slot(this.stream().index());
            let socket = ctx.socket();
            let control = ctx.connection_dispatch().Basic.WskControlSocket;
            // SAFETY: the slot is ours (acquired) and the cell is its own; the output field lives in
            // the context, which the IRP's reference keeps alive until the completion, whatever
            // happens to this future.
            unsafe {
                let io = OpIo::exclusive(ctx.stream_io(this.stream()));
                io.wsk_buf.Length = 0;
                let out = ptr::addr_of_mut!(io.wsk_buf.Length).cast::<core::ffi::c_void>();
                this.slot.start(op, |irp| {
                    control.map(|f| {
                        f(
                            socket,
                            WskIoctl,
                            SIO_WSK_QUERY_IDEAL_SEND_BACKLOG,
                            0,
                            0,
                            ptr::null_mut(),
                            size_of::<SIZE_T>(),
                            out,
                            ptr::null_mut(),
                            irp,
                        )
                    })
                });
            }
        }
        let op = ctx.slot(this.stream().index());
        let iosb = ready!(this.slot.poll_complete(op, cx));
        // SAFETY: the slot is still ours and its IRP completed: the provider is done with the output.
        let backlog = unsafe { OpIo::exclusive(ctx.stream_io(this.stream())).wsk_buf.Length };
        this.slot.release(op);
        Poll::Ready(match WskError::check(iosb.Status) {
            Ok(()) => Ok(Some(backlog)),
            // A provider without the query: Windows before it existed, this project's emulation,
            // Wine 8's stub `WskControlSocket` (without completing the IRP: see `Op::start`).
            Err(e) if e.is_unsupported() => Ok(None),
            Err(e) => Err(e),
        })
    }
}

impl Drop for IdealSendBacklog<'_> {
    /// A pending query is cancelled; unlike a dropped send it leaves the stream as it was (it moves
    /// no bytes). Its slot comes back when the IRP completes.
    fn drop(&mut self) {
        let op = self.conn.ctx().slot(self.stream().index());
        if self.slot.phase() == Phase::Submitted {
            if !self.slot.completed(op) {
                // SAFETY: the IRP is alive (the connection holds the context); cancelling one that
                // completes concurrently is harmless.
                unsafe { IoCancelIrp(op.irp()) };
            }
            if self.slot.completed(op) {
                op.state.consume();
            }
        }
        self.slot.release(op);
    }
}

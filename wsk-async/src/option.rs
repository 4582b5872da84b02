//! [`SetOption`]: a connection option (`TCP_NODELAY`, `SO_KEEPALIVE`) set with
//! `WskControlSocket(WskSetOption)`.
//!
//! Like the backlog query ([`crate::IdealSendBacklog`]), it borrows one of the connection's send
//! slots, its IRP, and the `Length` field of that slot's `WSK_BUF` (in the context's nonpaged block)
//! as the ULONG input buffer: no memory of its own, and the input outlives a dropped future until
//! the IRP completes. While it runs it counts as one of the sends in flight.

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

/// The future of [`Connection::set_nodelay`] and [`Connection::set_keepalive`].
pub struct SetOption<'a> {
    conn: &'a Connection,
    slot: SlotUse,
    /// Which send slot the call holds while it holds one.
    which: u8,
    level: ULONG,
    code: ULONG,
    value: ULONG,
}

impl<'a> SetOption<'a> {
    pub(crate) fn new(conn: &'a Connection, level: ULONG, code: ULONG, on: bool) -> Self {
        Self {
            conn,
            slot: SlotUse::new(),
            which: 0,
            level,
            code,
            value: on.into(),
        }
    }

    fn stream(&self) -> StreamSlot {
        StreamSlot::send(usize::from(self.which))
    }
}

impl Future for SetOption<'_> {
    type Output = Result<()>;

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
            let (level, code, value) = (this.level, this.code, this.value);
            // SAFETY: the slot is ours (acquired) and the cell is its own; the input field lives in
            // the context, which the IRP's reference keeps alive until the completion, whatever
            // happens to this future. A SIZE_T field is aligned for the ULONG written at its start.
            unsafe {
                let io = OpIo::exclusive(ctx.stream_io(this.stream()));
                io.wsk_buf.Length = 0;
                let input = ptr::addr_of_mut!(io.wsk_buf.Length).cast::<ULONG>();
                input.write(value);
                this.slot.start(op, |irp| {
                    control.map(|f| {
                        f(
                            socket,
                            WskSetOption,
                            code,
                            level,
                            size_of::<ULONG>(),
                            input.cast(),
                            0,
                            ptr::null_mut(),
                            ptr::null_mut(),
                            irp,
                        )
                    })
                });
            }
        }
        let op = ctx.slot(this.stream().index());
        let iosb = ready!(this.slot.poll_complete(op, cx));
        this.slot.release(op);
        Poll::Ready(WskError::check(iosb.Status))
    }
}

impl Drop for SetOption<'_> {
    /// A pending call is cancelled (the provider may have applied the option already: WSK does not
    /// say). Its slot comes back when the IRP completes.
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

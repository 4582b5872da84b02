//! [`SendSlotControl`]: one `WskControlSocket` call made on a connection's send slot, the machinery
//! the backlog query ([`crate::IdealSendBacklog`]) and the option setters ([`crate::SetOption`])
//! share.
//!
//! The call borrows one of the connection's send slots, its IRP, and the `Length` field of that
//! slot's `WSK_BUF` (a `SIZE_T`, in the context's nonpaged block) as its one input or output
//! buffer: no memory of its own, and the buffer outlives a dropped future until the IRP completes,
//! like a send's buffer. While it runs it counts as one of the sends in flight.

use crate::connection::Connection;
use crate::ctx::{SEND_SLOTS, StreamSlot};
use crate::error::Result;
use crate::op::{Op, OpIo};
use crate::slot::{Phase, SlotUse};
use core::ptr;
use core::task::{Context, Poll, ready};
use nt::*;

/// What the borrowed `SIZE_T` field is to the provider.
#[derive(Clone, Copy)]
pub(crate) enum Field {
    /// The input buffer: this ULONG, written at the field's start (a SIZE_T field is aligned for it).
    Input(ULONG),
    /// The output buffer, `size_of::<SIZE_T>()` bytes, read back after the completion.
    Output,
}

/// The request: `WskControlSocket(socket, kind, code, level, ...)` with the field as [`Field`] says.
#[derive(Clone, Copy)]
pub(crate) struct Request {
    pub(crate) kind: WSK_CONTROL_SOCKET_TYPE,
    pub(crate) code: ULONG,
    pub(crate) level: ULONG,
    pub(crate) field: Field,
}

/// The call's state: the connection, the slot use, and which send slot it holds.
pub(crate) struct SendSlotControl<'a> {
    conn: &'a Connection,
    slot: SlotUse,
    /// Which send slot the call holds while it holds one.
    which: u8,
}

impl<'a> SendSlotControl<'a> {
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

    /// Acquires a send slot and issues `request` (first polls), then waits for the IRP. Ready with
    /// the completion's status and the field's value after it (the output, for [`Field::Output`]).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, request: Request) -> Poll<Result<(NTSTATUS, SIZE_T)>> {
        let ctx = self.conn.ctx();
        if self.slot.phase() != Phase::Submitted {
            let ops: [&Op; SEND_SLOTS] = core::array::from_fn(|n| ctx.slot(StreamSlot::send(n).index()));
            let mut which = usize::from(self.which);
            let acquired = self.slot.poll_acquire_one_of(&ops, &mut which, cx);
            // `which < SEND_SLOTS`, a small constant.
            self.which = which as u8;
            ready!(acquired)?;
            let op = ctx.slot(self.stream().index());
            let socket = ctx.socket();
            let control = ctx.connection_dispatch().Basic.WskControlSocket;
            // SAFETY: the slot is ours (acquired) and the cell is its own; the field lives in the
            // context, which the IRP's reference keeps alive until the completion, whatever happens
            // to the future that owns this call.
            unsafe {
                let io = OpIo::exclusive(ctx.stream_io(self.stream()));
                io.wsk_buf.Length = 0;
                let field = ptr::addr_of_mut!(io.wsk_buf.Length);
                let (input_size, input, output_size, output) = match request.field {
                    Field::Input(value) => {
                        field.cast::<ULONG>().write(value);
                        (size_of::<ULONG>(), field.cast(), 0, ptr::null_mut())
                    }
                    Field::Output => (0, ptr::null_mut(), size_of::<SIZE_T>(), field.cast()),
                };
                self.slot.start(op, |irp| {
                    control.map(|f| {
                        f(
                            socket,
                            request.kind,
                            request.code,
                            request.level,
                            input_size,
                            input,
                            output_size,
                            output,
                            ptr::null_mut(),
                            irp,
                        )
                    })
                });
            }
        }
        let op = ctx.slot(self.stream().index());
        let iosb = ready!(self.slot.poll_complete(op, cx));
        // SAFETY: the slot is still ours and its IRP completed: the provider is done with the field.
        let field = unsafe { OpIo::exclusive(ctx.stream_io(self.stream())).wsk_buf.Length };
        self.slot.release(op);
        Poll::Ready(Ok((iosb.Status, field)))
    }
}

impl Drop for SendSlotControl<'_> {
    /// A pending call is cancelled (it moves no bytes: the stream stays as it was). Its slot comes
    /// back when the IRP completes.
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

//! [`IdealSendBacklog`]: `SIO_WSK_QUERY_IDEAL_SEND_BACKLOG`, how many bytes of sends a connection
//! should keep passed to WSK and not yet completed to keep its stream full.
//!
//! The query is a [`SendSlotControl`] call: it borrows one of the connection's send slots and uses
//! the `Length` field of that slot's `WSK_BUF` as the output buffer the provider writes. While it
//! runs it counts as one of the sends in flight.

use crate::connection::Connection;
use crate::error::{Result, WskError};
use crate::send_slot_control::{Field, Request, SendSlotControl};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use nt::*;

/// The future of [`Connection::ideal_send_backlog`]. Dropping it while pending cancels the query;
/// unlike a dropped send it leaves the stream as it was (it moves no bytes). Its slot comes back
/// when the IRP completes.
pub struct IdealSendBacklog<'a> {
    call: SendSlotControl<'a>,
}

impl<'a> IdealSendBacklog<'a> {
    pub(crate) fn new(conn: &'a Connection) -> Self {
        Self {
            call: SendSlotControl::new(conn),
        }
    }
}

const QUERY: Request = Request {
    kind: WskIoctl,
    code: SIO_WSK_QUERY_IDEAL_SEND_BACKLOG,
    level: 0,
    field: Field::Output,
};

impl Future for IdealSendBacklog<'_> {
    type Output = Result<Option<usize>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (status, backlog) = ready!(self.get_mut().call.poll(cx, QUERY))?;
        Poll::Ready(match WskError::check(status) {
            Ok(()) => Ok(Some(backlog)),
            // A provider without the query: the emulation switched off
            // (`nt::emu::wsk::set_ideal_send_backlog_answered`), Wine 8's stub `WskControlSocket`
            // (without completing the IRP: see `Op::start`).
            Err(e) if e.is_unsupported() => Ok(None),
            Err(e) => Err(e),
        })
    }
}

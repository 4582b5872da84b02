//! [`SetOption`]: a connection option (`TCP_NODELAY`, `SO_KEEPALIVE`) set with
//! `WskControlSocket(WskSetOption)`.
//!
//! Like the backlog query ([`crate::IdealSendBacklog`]), it is a [`SendSlotControl`] call: it
//! borrows one of the connection's send slots and uses the `Length` field of that slot's `WSK_BUF`
//! as the ULONG input buffer. While it runs it counts as one of the sends in flight. Dropped while
//! pending, it is cancelled (the provider may have applied the option already: WSK does not say).

use crate::connection::Connection;
use crate::error::{Result, WskError};
use crate::send_slot_control::{Field, Request, SendSlotControl};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use nt::*;

/// The future of [`Connection::set_nodelay`] and [`Connection::set_keepalive`].
pub struct SetOption<'a> {
    call: SendSlotControl<'a>,
    level: ULONG,
    code: ULONG,
    value: ULONG,
}

impl<'a> SetOption<'a> {
    pub(crate) fn new(conn: &'a Connection, level: ULONG, code: ULONG, on: bool) -> Self {
        Self {
            call: SendSlotControl::new(conn),
            level,
            code,
            value: on.into(),
        }
    }
}

impl Future for SetOption<'_> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let request = Request {
            kind: WskSetOption,
            code: this.code,
            level: this.level,
            field: Field::Input(this.value),
        };
        let (status, _) = ready!(this.call.poll(cx, request))?;
        Poll::Ready(WskError::check(status))
    }
}

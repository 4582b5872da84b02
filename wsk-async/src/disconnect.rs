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
///
/// # After an earlier abort
///
/// A connection can already have an abortive `WskDisconnect` behind it that nobody has read the
/// result of: the one a dropped pending [`disconnect`](Connection::disconnect) issues, or one of an
/// `abort()` dropped before it completed. Both use the connection's one abort IRP. `abort()` then
/// reports *that* abort, waiting for it if it is still pending:
///
/// * it succeeded: the connection was aborted; `abort()` returns `Ok(())` and makes no call. A
///   second abortive `WskDisconnect` on a connection that is already reset is not what the caller
///   asked for, and its outcome is not documented: a failure would make `abort()` report an error
///   for a connection that was in fact aborted, a success would only echo the first;
/// * it failed: the connection may not have been aborted; `abort()` issues its own and returns that
///   one's result.
///
/// An earlier result is reported once: an `abort()` after one whose result was returned issues a
/// new `WskDisconnect`. So `Ok(())` always means that an abortive disconnect of this connection
/// succeeded.
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
            // An earlier abort nobody read (see the type's documentation): its success is ours.
            let earlier = ready!(this.slot.poll_acquire_unread(op, cx))?;
            if earlier.is_some_and(|iosb| NT_SUCCESS(iosb.Status)) {
                this.slot.release(op);
                return Poll::Ready(Ok(()));
            }
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

/// What `abort()` reports after an earlier abortive disconnect, on the in-memory network. That
/// network completes every abortive `WskDisconnect` at once with success, whatever is scripted, so
/// an earlier abort that fails or pends is played by the test acting as the provider for the abort
/// slot's IRP (`nt::emu::irp::enter_provider`), as a dropped `abort()` future leaves it.
#[cfg(all(test, not(loom), not(target_os = "windows")))]
mod tests {
    use crate::test_support::{Accepted, abort_left_pending, accepted, now, poll_once};
    use core::pin::pin;
    use core::task::Poll;
    use core::time::Duration;
    use nt::emu::wsk::{Completion, OpKind};
    use nt::*;

    /// How long the test waits for an `abort()` on another thread that should finish at once.
    const BOUND: Duration = Duration::from_secs(10);

    impl Accepted {
        fn finish(self) {
            let Accepted {
                net,
                listener,
                conn,
                peer,
                registration,
                ..
            } = self;
            now(conn.close()).expect("close");
            now(listener.close()).expect("listener close");
            now(registration.deregister());
            drop((peer, net));
        }
    }

    /// Whether `abort()` on another thread calls into the provider: the socket's next call stops
    /// there until released. Returns the abort's result and whether it made a call. The test waits
    /// for what it expects (`expect_call`: the call entering the provider; otherwise the abort
    /// finishing), so the bound runs out only when the expectation is wrong.
    fn abort_and_watch_calls(a: &Accepted, expect_call: bool) -> (crate::Result<()>, bool) {
        let paused = nt::emu::wsk::pause_next_call(a.conn.ctx().socket()).expect("open socket");
        std::thread::scope(|scope| {
            let (done, finished) = std::sync::mpsc::channel();
            let conn = &a.conn;
            let aborting = scope.spawn(move || {
                let result = now(conn.abort());
                let _ = done.send(());
                result
            });
            let called = if expect_call {
                paused.wait_entered(BOUND)
            } else {
                let _ = finished.recv_timeout(BOUND);
                paused.wait_entered(Duration::ZERO)
            };
            paused.release();
            (aborting.join().expect("abort thread"), called)
        })
    }

    /// The drop of a pending graceful disconnect aborted the connection (RST) with the abort slot's
    /// IRP, and that abort succeeded. A later `abort()` reports that abort: success, without a
    /// second abortive `WskDisconnect` on a connection that is already reset (its outcome is not
    /// documented, and whatever it says, the connection was aborted by the first).
    #[test]
    fn abort_after_a_dropped_graceful_disconnect_reports_the_abort_the_drop_made() {
        let _session = nt::emu::session();
        let a = accepted();
        a.net.script(OpKind::Disconnect, Completion::Hold);
        {
            let mut graceful = pin!(a.conn.disconnect());
            assert!(poll_once(graceful.as_mut()).is_pending());
        }
        assert!(a.peer.was_reset(), "the drop aborted");
        let (result, called) = abort_and_watch_calls(&a, false);
        assert!(!called, "abort() issued a second abortive WskDisconnect");
        result.expect("the drop's abort succeeded");
        // Reported once: a further abort() has no earlier result left and issues its own.
        let (result, called) = abort_and_watch_calls(&a, true);
        assert!(called);
        result.expect("the emulation completes an abortive disconnect with success");
        a.finish();
    }

    /// The earlier abort, played by the test, is left pending as a dropped `abort()` leaves it.
    /// Returns its IRP (the test owns it as the provider).
    fn earlier_abort_pending(a: &Accepted) -> PIRP {
        abort_left_pending(&a.conn)
    }

    /// Completes the played earlier abort with `status` (at DISPATCH_LEVEL, as a provider does).
    fn complete(irp: PIRP, status: NTSTATUS) {
        nt::emu::at_dispatch(|| {
            // SAFETY: the test owns the pending IRP as its provider; it completes it once.
            unsafe {
                (*irp).IoStatus = IO_STATUS_BLOCK::new(status, 0);
                IofCompleteRequest(irp, 0);
            }
        });
    }

    /// `abort()` while the earlier abort is still pending waits for it and reports its success. The
    /// played provider did not reset anything, so a peer that saw no reset proves that `abort()`
    /// made no call of its own.
    #[test]
    fn abort_waits_for_a_pending_earlier_abort_and_reports_its_success() {
        let _session = nt::emu::session();
        let a = accepted();
        let earlier = earlier_abort_pending(&a);
        {
            let mut abort = pin!(a.conn.abort());
            assert!(poll_once(abort.as_mut()).is_pending(), "waits for the earlier abort");
            complete(earlier, STATUS_SUCCESS);
            assert!(matches!(poll_once(abort.as_mut()), Poll::Ready(Ok(()))));
        }
        assert!(!a.peer.was_reset(), "no abortive WskDisconnect of its own");
        a.finish();
    }

    /// An earlier abort that failed did not abort the connection: `abort()` issues its own and
    /// reports that one's result — whether the earlier one was still pending or had completed.
    #[test]
    fn abort_after_an_earlier_abort_that_failed_issues_its_own() {
        let _session = nt::emu::session();
        let a = accepted();
        let earlier = earlier_abort_pending(&a);
        {
            let mut abort = pin!(a.conn.abort());
            assert!(poll_once(abort.as_mut()).is_pending());
            complete(earlier, STATUS_INSUFFICIENT_RESOURCES);
            // Its own abortive WskDisconnect may pend (completion schedules): `now` lets it finish.
            assert!(matches!(now(abort.as_mut()), Ok(())));
        }
        assert!(
            a.peer.was_reset(),
            "its own abortive WskDisconnect reset the connection"
        );
        a.finish();

        let a = accepted();
        let earlier = earlier_abort_pending(&a);
        complete(earlier, STATUS_INSUFFICIENT_RESOURCES);
        now(a.conn.abort()).expect("its own abort");
        assert!(a.peer.was_reset());
        a.finish();
    }
}

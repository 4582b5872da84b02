//! Several sends in flight on one connection (`Connection::MAX_SENDS_IN_FLIGHT`), on the in-memory
//! network (runs under Miri): order, the bound, every drop, and the connection's end with sends in
//! flight; and the ideal-send-backlog query.
//!
//! Sends are kept pending deterministically by holding them (`Completion::Hold`); a released send
//! completes once its bytes are taken, so each test releases a send and then has the peer read before
//! it expects the send's completion. That holds whether the provider completes a send when its bytes
//! are handed to the transport or only when the peer has read them.
//!
//! Every test ends with `Setup::finish` and the session guard, which fails the test if any IRP, MDL,
//! pool block or socket is left (empty leak report).
#![cfg(all(not(target_os = "windows"), not(loom)))]

mod common;

use common::*;
use nt::emu::wsk::{Completion, HeldOp, OpKind};
use std::pin::pin;
use std::task::Poll;
use wsk_async::{Buffer, Connection};

fn filled(s: &Setup, data: &[u8]) -> Buffer {
    let mut b = s.pool.take().unwrap();
    b.extend_from_slice(data);
    b
}

/// Holds the next `n` sends.
fn hold_sends(s: &Setup, n: usize) {
    for _ in 0..n {
        s.net.script(OpKind::Send, Completion::Hold);
    }
}

/// The held sends, oldest first.
fn held_sends(s: &Setup) -> Vec<HeldOp> {
    s.net.held().into_iter().filter(|op| op.kind == OpKind::Send).collect()
}

#[test]
fn the_bound_is_two() {
    assert_eq!(Connection::MAX_SENDS_IN_FLIGHT, 2);
}

/// Two sends are in flight at once, a third is refused as a value, and the peer receives the bytes
/// in the order the sends were first polled; each future reports its own byte count.
#[test]
fn two_sends_in_flight_reach_the_peer_in_the_order_submitted() {
    let _session = nt::emu::session();
    let s = setup();
    hold_sends(&s, 2);
    let (wa, wb) = (Wakes::new(), Wakes::new());
    {
        let mut a = pin!(s.conn.send(filled(&s, b"first,")));
        let mut b = pin!(s.conn.send(filled(&s, b"second")));
        assert!(wa.poll(a.as_mut()).is_pending());
        assert!(wb.poll(b.as_mut()).is_pending());
        assert_eq!(held_sends(&s).len(), 2, "both sends are with the provider");
        let (third, _buf) = ready(s.conn.send(filled(&s, b"third")));
        assert!(third.unwrap_err().is_invalid_state(), "a third send is refused");
        let held = held_sends(&s);
        assert!(s.net.release(held[0]));
        assert!(s.net.release(held[1]));
        assert_eq!(s.peer.read(100).unwrap(), b"first,second");
        let (n, _a) = wa.ready(a.as_mut());
        assert_eq!(n.unwrap(), 6);
        let (n, _b) = wb.ready(b.as_mut());
        assert_eq!(n.unwrap(), 6);
    }
    assert!(!s.conn.is_stream_unknown());
    assert_eq!(s.pool.available(), 4);
    // The slots are free again: the next send goes through (once the peer has read it).
    let ((n, _b), read) = ready_while_reading(&s.peer, s.conn.send(filled(&s, b"again")));
    assert_eq!(n.unwrap(), 5);
    assert_eq!(read, b"again");
    s.finish();
}

/// A completed send's slot is taken by the next send while the other send is still in flight.
#[test]
fn a_slot_freed_by_a_completion_is_reused_while_the_other_send_is_pending() {
    let _session = nt::emu::session();
    let s = setup();
    hold_sends(&s, 3);
    {
        let (wa, wb, wc) = (Wakes::new(), Wakes::new(), Wakes::new());
        let mut a = pin!(s.conn.send(filled(&s, b"a")));
        let mut b = pin!(s.conn.send(filled(&s, b"b")));
        assert!(wa.poll(a.as_mut()).is_pending());
        assert!(wb.poll(b.as_mut()).is_pending());
        let first = held_sends(&s)[0];
        assert!(s.net.release(first));
        assert_eq!(s.peer.read(1).unwrap(), b"a");
        let (n, _a) = wa.ready(a.as_mut());
        assert_eq!(n.unwrap(), 1);
        let mut c = pin!(s.conn.send(filled(&s, b"c")));
        assert!(wc.poll(c.as_mut()).is_pending(), "the third send took the freed slot");
        for op in held_sends(&s) {
            assert!(s.net.release(op));
        }
        assert_eq!(s.peer.read(10).unwrap(), b"bc");
        assert_eq!(wb.ready(b.as_mut()).0.unwrap(), 1);
        assert_eq!(wc.ready(c.as_mut()).0.unwrap(), 1);
    }
    s.finish();
}

/// A provider that completes the later send first (WSK does not; the emulation's test hook does):
/// each future reports its own IRP's result when that IRP completes; nothing waits for the earlier
/// one or is reordered.
#[test]
fn out_of_order_completions_are_reported_by_each_future_as_they_come() {
    let _session = nt::emu::session();
    let s = setup();
    hold_sends(&s, 2);
    {
        let (wa, wb) = (Wakes::new(), Wakes::new());
        let mut a = pin!(s.conn.send(filled(&s, b"aaaa")));
        let mut b = pin!(s.conn.send(filled(&s, b"bb")));
        assert!(wa.poll(a.as_mut()).is_pending());
        assert!(wb.poll(b.as_mut()).is_pending());
        let held = held_sends(&s);
        assert!(s.net.complete(held[1], nt::STATUS_CONNECTION_RESET));
        let Poll::Ready((r, _b)) = wb.poll(b.as_mut()) else {
            panic!("the later send completed first and is ready")
        };
        assert_eq!(r.unwrap_err().status(), nt::STATUS_CONNECTION_RESET);
        assert!(wa.poll(a.as_mut()).is_pending(), "the earlier one is still pending");
        assert!(s.net.release(held[0]));
        assert_eq!(s.peer.read(10).unwrap(), b"aaaa");
        assert_eq!(wa.ready(a.as_mut()).0.unwrap(), 4);
    }
    s.finish();
}

/// Drops one of two pending sends (`first`: the earlier one, else the later one): its IRP is
/// cancelled and its buffer comes back when the IRP completes, the stream becomes unknown (new sends
/// are refused), and the other send still completes with its own result.
fn drop_one_of_two(first: bool) {
    let _session = nt::emu::session();
    // Pins `realistic`: the buffer is back at once only because the cancelled IRP completes inside
    // IoCancelIrp (a legal order Windows may take); when it completes later (`pending`, `random`) the
    // slot keeps the buffer until the connection is released (see
    // `a_late_cancelled_receive_keeps_its_buffer_until_the_connection_is_released`).
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Realistic);
    let s = setup();
    hold_sends(&s, 2);
    let (wa, wb) = (Wakes::new(), Wakes::new());
    let mut kept: Option<std::pin::Pin<Box<wsk_async::Send<'_>>>> = None;
    {
        let mut a = Box::pin(s.conn.send(filled(&s, b"one")));
        let mut b = Box::pin(s.conn.send(filled(&s, b"two")));
        assert!(wa.poll(a.as_mut()).is_pending());
        assert!(wb.poll(b.as_mut()).is_pending());
        if first {
            drop(a);
            kept.replace(b);
        } else {
            drop(b);
            kept.replace(a);
        }
    }
    let mut kept = kept.unwrap();
    assert_eq!(held_sends(&s).len(), 1, "the dropped send's IRP was cancelled");
    assert_eq!(s.pool.available(), 3, "its buffer is back; the other is still lent");
    assert!(s.conn.is_stream_unknown());
    let (r, buf) = ready(s.conn.send(filled(&s, b"x")));
    assert!(r.unwrap_err().is_invalid_state(), "no new send after a dropped one");
    drop(buf);
    let survivor = held_sends(&s)[0];
    assert!(s.net.release(survivor));
    let expected: &[u8] = if first { b"two" } else { b"one" };
    let read = s.peer.read(10);
    let waker = if first { &wb } else { &wa };
    let (n, buf) = waker.ready(kept.as_mut());
    // The other send completes with its own result: its bytes, or a failure if the provider reset
    // the connection when it cancelled the dropped send (the emulation does: invented).
    match n {
        Ok(n) => {
            assert_eq!(n, 3);
            assert_eq!(read.unwrap(), expected);
        }
        Err(_) => assert!(s.peer.was_reset()),
    }
    drop(buf);
    drop(kept);
    assert_eq!(s.pool.available(), 4);
    ready(s.conn.abort()).unwrap();
    assert!(s.peer.was_reset());
    s.finish();
}

#[test]
fn dropping_the_earlier_of_two_pending_sends() {
    drop_one_of_two(true);
}

#[test]
fn dropping_the_later_of_two_pending_sends() {
    drop_one_of_two(false);
}

/// Both pending sends dropped, the later first (out of order): both IRPs cancelled, both buffers
/// back, both slots usable by nothing but abort and close.
#[test]
fn dropping_both_pending_sends_later_first() {
    let _session = nt::emu::session();
    // Pins `realistic`: the buffer is back at once only because the cancelled IRP completes inside
    // IoCancelIrp (a legal order Windows may take); when it completes later (`pending`, `random`) the
    // slot keeps the buffer until the connection is released (see
    // `a_late_cancelled_receive_keeps_its_buffer_until_the_connection_is_released`).
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Realistic);
    let s = setup();
    hold_sends(&s, 2);
    let (wa, wb) = (Wakes::new(), Wakes::new());
    let mut a = Box::pin(s.conn.send(filled(&s, b"one")));
    let mut b = Box::pin(s.conn.send(filled(&s, b"two")));
    assert!(wa.poll(a.as_mut()).is_pending());
    assert!(wb.poll(b.as_mut()).is_pending());
    drop(b);
    assert_eq!(s.pool.available(), 3);
    drop(a);
    assert_eq!(s.pool.available(), 4);
    assert!(held_sends(&s).is_empty());
    assert!(wa.count() <= 1 && wb.count() <= 1);
    assert_eq!(s.peer.unread(), 0, "nothing was sent");
    assert!(s.conn.is_stream_unknown());
    s.finish();
}

/// A pending send dropped after its IRP completed (result unread): the buffer comes back at once and
/// the slot is free for the next claimer; the other send is unaffected.
#[test]
fn a_send_completed_then_dropped_unread_next_to_a_pending_one() {
    let _session = nt::emu::session();
    let s = setup();
    hold_sends(&s, 2);
    let (wa, wb) = (Wakes::new(), Wakes::new());
    let mut a = Box::pin(s.conn.send(filled(&s, b"one")));
    let mut b = Box::pin(s.conn.send(filled(&s, b"two")));
    assert!(wa.poll(a.as_mut()).is_pending());
    assert!(wb.poll(b.as_mut()).is_pending());
    let held = held_sends(&s);
    assert!(s.net.release(held[0]));
    assert_eq!(s.peer.read(10).unwrap(), b"one");
    assert_eq!(wa.count(), 1, "completed: woken");
    drop(a);
    assert_eq!(s.pool.available(), 3);
    assert!(s.net.release(held[1]));
    assert_eq!(s.peer.read(10).unwrap(), b"two");
    assert_eq!(wb.ready(b.as_mut()).0.unwrap(), 3);
    drop(b);
    assert_eq!(s.pool.available(), 4);
    s.finish();
}

/// An abort while two sends are pending completes both with an error; buffers come back.
#[test]
fn abort_with_two_sends_in_flight_fails_both() {
    let _session = nt::emu::session();
    let s = setup();
    s.peer.set_window(0);
    let (wa, wb) = (Wakes::new(), Wakes::new());
    {
        let mut a = pin!(s.conn.send(filled(&s, b"one")));
        let mut b = pin!(s.conn.send(filled(&s, b"two")));
        assert!(wa.poll(a.as_mut()).is_pending(), "the peer's window is closed");
        assert!(wb.poll(b.as_mut()).is_pending());
        ready(s.conn.abort()).unwrap();
        assert!(wa.ready(a.as_mut()).0.is_err());
        assert!(wb.ready(b.as_mut()).0.is_err());
    }
    assert_eq!(s.pool.available(), 4);
    assert!(s.peer.was_reset());
    s.finish();
}

/// Two dropped sends whose IRPs the provider has committed to (cancellation cannot end them) are
/// still in flight when the connection is closed: the close ends them, their buffers come back, and
/// nothing leaks. `close` (a future) and a plain drop of the connection both.
#[test]
fn close_with_two_sends_in_flight_past_cancellation() {
    for drop_instead_of_close in [false, true] {
        let _session = nt::emu::session();
        let s = setup();
        s.net.script(OpKind::Send, Completion::IgnoreCancel);
        s.net.script(OpKind::Send, Completion::IgnoreCancel);
        {
            let mut a = pin!(s.conn.send(filled(&s, b"one")));
            let mut b = pin!(s.conn.send(filled(&s, b"two")));
            assert!(Wakes::new().poll(a.as_mut()).is_pending());
            assert!(Wakes::new().poll(b.as_mut()).is_pending());
        }
        assert_eq!(held_sends(&s).len(), 2, "cancellation did not end them");
        assert_eq!(s.pool.available(), 2, "their buffers stay lent");
        let Setup {
            net,
            pool,
            listener,
            conn,
            peer,
            registration,
            ..
        } = s;
        if drop_instead_of_close {
            drop(conn);
        } else {
            ready(conn.close()).unwrap();
        }
        // A drop closes in the background: that close, and with it the end of both sends, may be
        // delivered later (completion schedules).
        nt::emu::wsk::settle();
        assert_eq!(pool.available(), 4, "the close ended both sends");
        assert!(peer.was_reset() || peer.driver_closed());
        ready(listener.close()).unwrap();
        drop(pool);
        ready(registration.deregister());
        drop((peer, net));
    }
}

/// The provider answers with the connection's ideal send backlog: on the in-memory network the
/// peer's window unless the test scripted a value; the query moves no bytes and frees its slot.
#[test]
fn ideal_send_backlog_is_the_providers_answer() {
    let _session = nt::emu::session();
    let s = setup();
    assert_eq!(
        ready(s.conn.ideal_send_backlog()).unwrap(),
        Some(nt::emu::wsk::DEFAULT_WINDOW)
    );
    s.peer.set_ideal_send_backlog(Some(4096));
    assert_eq!(ready(s.conn.ideal_send_backlog()).unwrap(), Some(4096));
    s.peer.set_ideal_send_backlog(None);
    s.peer.set_window(1500);
    assert_eq!(ready(s.conn.ideal_send_backlog()).unwrap(), Some(1500));
    let ((n, _b), read) = ready_while_reading(&s.peer, s.conn.send(filled(&s, b"after")));
    assert_eq!(n.unwrap(), 5);
    assert_eq!(read, b"after");
    assert!(!s.conn.is_stream_unknown(), "the query moves no bytes");
    s.finish();
}

/// A provider that does not answer the query (STATUS_NOT_SUPPORTED, the emulation switched off),
/// and Wine 8's stub `WskControlSocket`, which returns STATUS_NOT_IMPLEMENTED without completing the
/// IRP: both read as "not implemented here", `Ok(None)`, and the slot is free afterwards.
#[test]
fn ideal_send_backlog_degrades_when_the_provider_does_not_answer() {
    let _session = nt::emu::session();
    let s = setup();
    nt::emu::wsk::set_ideal_send_backlog_answered(false);
    assert_eq!(ready(s.conn.ideal_send_backlog()).unwrap(), None);
    nt::emu::wsk::set_ideal_send_backlog_answered(true);
    nt::emu::wsk::set_wine8_netio(true);
    assert_eq!(ready(s.conn.ideal_send_backlog()).unwrap(), None);
    nt::emu::wsk::set_wine8_netio(false);
    let ((n, _b), read) = ready_while_reading(&s.peer, s.conn.send(filled(&s, b"after")));
    assert_eq!(n.unwrap(), 5);
    assert_eq!(read, b"after");
    assert!(!s.conn.is_stream_unknown(), "the query moves no bytes");
    s.finish();
}

/// A query on a connection the peer reset fails with the reset (not `Ok(None)`).
#[test]
fn ideal_send_backlog_fails_on_a_reset_connection() {
    let _session = nt::emu::session();
    let s = setup();
    s.peer.reset();
    assert!(ready(s.conn.ideal_send_backlog()).unwrap_err().is_reset());
    s.finish();
}

/// The query takes a send slot while it runs: with two sends in flight it is refused.
#[test]
fn ideal_send_backlog_counts_against_the_sends_in_flight() {
    let _session = nt::emu::session();
    let s = setup();
    hold_sends(&s, 2);
    {
        let (wa, wb) = (Wakes::new(), Wakes::new());
        let mut a = pin!(s.conn.send(filled(&s, b"a")));
        let mut b = pin!(s.conn.send(filled(&s, b"b")));
        assert!(wa.poll(a.as_mut()).is_pending());
        assert!(wb.poll(b.as_mut()).is_pending());
        assert!(ready(s.conn.ideal_send_backlog()).unwrap_err().is_invalid_state());
        for op in held_sends(&s) {
            assert!(s.net.release(op));
        }
        assert_eq!(s.peer.read(10).unwrap(), b"ab");
        assert_eq!(wa.ready(a.as_mut()).0.unwrap(), 1);
        assert_eq!(wb.ready(b.as_mut()).0.unwrap(), 1);
    }
    s.finish();
}

/// A provider that reports more bytes sent than the send had (a "negative" ULONG_PTR, or just too
/// many): the count returned is at most the send's length, so a caller that slices with it cannot
/// panic.
#[test]
fn a_send_count_beyond_the_send_is_not_trusted() {
    let _session = nt::emu::session();
    let s = setup();
    let wakes = Wakes::new();
    for information in [usize::MAX, 6] {
        hold_sends(&s, 1);
        let mut send = pin!(s.conn.send(filled(&s, b"12345")));
        assert!(wakes.poll(send.as_mut()).is_pending());
        nt::emu::wsk::settle();
        let held = held_sends(&s);
        assert_eq!(held.len(), 1);
        assert!(
            s.net
                .complete_with_information(held[0], nt::STATUS_SUCCESS, information)
        );
        let (sent, buf) = wakes.ready(send.as_mut());
        assert_eq!(sent.unwrap(), 5, "Information {information:#x}");
        drop(buf);
    }
    s.finish();
}

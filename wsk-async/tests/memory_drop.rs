//! Dropping every operation's future at every point, on the deterministic in-memory network (runs
//! under Miri): before the first poll, while its IRP is pending, and racing its completion in both
//! orders — the completion first (the routine wakes the future, which is then dropped without
//! reading the result), or the drop first (the drop's cancellation, abortive disconnect or close ends
//! the IRP; a test action that would have completed it afterwards finds nothing left).
//!
//! Every test ends with `Setup::finish` and the session guard, which fails the test if any IRP, MDL,
//! pool block or socket is left (empty leak report); the emulation aborts on a double free, a double
//! completion or a reuse of a pending IRP. Wake counts are checked: never more than one per
//! completion. (The interleaving where the completion routine runs between the future's drop and the
//! kernel's release is explored exhaustively by the loom model of the slot state machine.)
#![cfg(all(not(target_os = "windows"), not(loom)))]

mod common;

use common::*;
use nt::emu::wsk::{Completion, OpKind};
use std::pin::pin;
use std::task::Poll;

// ---------------------------------------------------------------------------------------- receive

#[test]
fn receive_dropped_before_first_poll_has_no_effect() {
    let _session = nt::emu::session();
    let s = setup();
    drop(s.conn.receive(s.pool.take().unwrap()));
    assert_eq!(s.pool.available(), 4);
    assert!(!s.conn.is_stream_unknown());
    s.peer.write(b"abc").unwrap();
    let (n, _b) = ready(s.conn.receive(s.pool.take().unwrap()));
    assert_eq!(n.unwrap(), 3);
    s.finish();
}

#[test]
fn receive_dropped_while_pending_is_cancelled_and_poisons_the_stream() {
    let _session = nt::emu::session();
    // Pins `realistic`: the buffer is back at once only because the cancelled IRP completes inside
    // IoCancelIrp (a legal order Windows may take); when it completes later (`pending`, `random`) the
    // slot keeps the buffer until the connection is released (see
    // `a_late_cancelled_receive_keeps_its_buffer_until_the_connection_is_released`).
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Realistic);
    let s = setup();
    let wakes = Wakes::new();
    {
        let mut receive = pin!(s.conn.receive(s.pool.take().unwrap()));
        assert!(wakes.poll(receive.as_mut()).is_pending());
    }
    assert!(wakes.count() <= 1);
    assert_eq!(
        s.pool.available(),
        4,
        "the buffer is back once the cancelled IRP completed"
    );
    assert!(s.conn.is_stream_unknown());
    let (r, _b) = ready(s.conn.receive(s.pool.take().unwrap()));
    assert!(r.unwrap_err().is_invalid_state());
    let (r, _b) = ready(s.conn.send(s.pool.take().unwrap()));
    assert!(r.unwrap_err().is_invalid_state());
    ready(s.conn.abort()).unwrap();
    assert!(s.peer.was_reset());
    s.finish();
}

#[test]
fn receive_completed_then_dropped_unread() {
    let _session = nt::emu::session();
    let s = setup();
    let wakes = Wakes::new();
    {
        let mut receive = pin!(s.conn.receive(s.pool.take().unwrap()));
        assert!(wakes.poll(receive.as_mut()).is_pending());
        s.peer.write(b"lost").unwrap();
        assert_eq!(wakes.count(), 1);
    }
    assert_eq!(wakes.count(), 1, "no second wake");
    assert_eq!(s.pool.available(), 4);
    assert!(
        s.conn.is_stream_unknown(),
        "the received bytes were consumed and dropped"
    );
    s.finish();
}

/// The harsh order: the cancelled receive completes after `IoCancelIrp` returned. Its buffer stays
/// with the slot (the kernel may still write through the MDL until the completion) and goes back to
/// the pool when the connection is released.
#[test]
fn a_late_cancelled_receive_keeps_its_buffer_until_the_connection_is_released() {
    let _session = nt::emu::session();
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Pending);
    let Setup {
        net,
        registration,
        pool,
        listener,
        conn,
        peer,
        ..
    } = setup();
    let wakes = Wakes::new();
    {
        let mut receive = pin!(conn.receive(pool.take().unwrap()));
        assert!(wakes.poll(receive.as_mut()).is_pending());
    }
    assert_eq!(pool.available(), 3, "the cancelled IRP has not completed yet");
    assert!(nt::emu::wsk::settle() >= 1);
    assert!(conn.is_stream_unknown());
    ready(conn.close()).unwrap();
    assert_eq!(pool.available(), 4, "back with the connection's release");
    ready(listener.close()).ok();
    drop(pool);
    ready(registration.deregister());
    drop((peer, net));
}

#[test]
fn receive_dropped_then_completion_finds_nothing() {
    let _session = nt::emu::session();
    // Pins `realistic`: the buffer is back at once only because the cancelled IRP completes inside
    // IoCancelIrp (a legal order Windows may take); when it completes later (`pending`, `random`) the
    // slot keeps the buffer until the connection is released (see
    // `a_late_cancelled_receive_keeps_its_buffer_until_the_connection_is_released`).
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Realistic);
    let s = setup();
    s.net.script(OpKind::Receive, Completion::Hold);
    let wakes = Wakes::new();
    {
        let mut receive = pin!(s.conn.receive(s.pool.take().unwrap()));
        assert!(wakes.poll(receive.as_mut()).is_pending());
        assert_eq!(s.net.held().len(), 1);
    }
    let held = s.net.held();
    assert!(held.is_empty(), "the drop cancelled the held receive");
    // Fails if the provider reset the connection when it cancelled the receive (the emulation does).
    let _ = s.peer.write(b"late");
    assert!(wakes.count() <= 1);
    assert_eq!(s.pool.available(), 4);
    assert!(s.conn.is_stream_unknown());
    s.finish();
}

// ------------------------------------------------------------------------------------------- send

fn filled(s: &Setup, data: &[u8]) -> wsk_async::Buffer {
    let mut b = s.pool.take().unwrap();
    b.extend_from_slice(data);
    b
}

#[test]
fn send_dropped_before_first_poll_has_no_effect() {
    let _session = nt::emu::session();
    let s = setup();
    drop(s.conn.send(filled(&s, b"never")));
    assert_eq!(s.peer.unread(), 0);
    let ((n, _b), read) = ready_while_reading(&s.peer, s.conn.send(filled(&s, b"ok")));
    assert_eq!(n.unwrap(), 2);
    assert_eq!(read, b"ok");
    s.finish();
}

#[test]
fn send_dropped_while_pending_is_cancelled_and_poisons_the_stream() {
    let _session = nt::emu::session();
    // Pins `realistic`: the buffer is back at once only because the cancelled IRP completes inside
    // IoCancelIrp (a legal order Windows may take); when it completes later (`pending`, `random`) the
    // slot keeps the buffer until the connection is released (see
    // `a_late_cancelled_receive_keeps_its_buffer_until_the_connection_is_released`).
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Realistic);
    let s = setup();
    s.peer.set_window(0);
    let wakes = Wakes::new();
    {
        let mut send = pin!(s.conn.send(filled(&s, b"stuck")));
        assert!(wakes.poll(send.as_mut()).is_pending());
    }
    assert!(wakes.count() <= 1);
    assert_eq!(s.pool.available(), 4);
    assert!(s.conn.is_stream_unknown());
    let (r, _b) = ready(s.conn.send(filled(&s, b"x")));
    assert!(r.unwrap_err().is_invalid_state());
    s.finish();
    // Closing the connection without disconnecting resets it (checked in `finish` via close).
}

#[test]
fn send_completed_then_dropped_unread() {
    let _session = nt::emu::session();
    let s = setup();
    s.peer.set_window(0);
    let wakes = Wakes::new();
    {
        let mut send = pin!(s.conn.send(filled(&s, b"late")));
        assert!(wakes.poll(send.as_mut()).is_pending());
        s.peer.set_window(1024);
        assert_eq!(wakes.count(), 0, "handed over, not yet read: still pending");
        assert_eq!(s.peer.read(10).unwrap(), b"late", "the send itself went through");
        assert_eq!(wakes.count(), 1);
    }
    assert_eq!(wakes.count(), 1);
    assert_eq!(s.pool.available(), 4);
    assert!(s.conn.is_stream_unknown(), "the caller never learned how much was sent");
    s.finish();
}

#[test]
fn send_dropped_then_completion_finds_nothing() {
    let _session = nt::emu::session();
    // Pins `realistic`: the buffer is back at once only because the cancelled IRP completes inside
    // IoCancelIrp (a legal order Windows may take); when it completes later (`pending`, `random`) the
    // slot keeps the buffer until the connection is released (see
    // `a_late_cancelled_receive_keeps_its_buffer_until_the_connection_is_released`).
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Realistic);
    let s = setup();
    s.net.script(OpKind::Send, Completion::Hold);
    let wakes = Wakes::new();
    {
        let mut send = pin!(s.conn.send(filled(&s, b"held")));
        assert!(wakes.poll(send.as_mut()).is_pending());
        assert_eq!(s.net.held().len(), 1);
    }
    assert!(s.net.held().is_empty());
    assert_eq!(s.peer.unread(), 0, "a cancelled send sent nothing");
    assert!(wakes.count() <= 1);
    assert_eq!(s.pool.available(), 4);
    s.finish();
}

#[test]
fn send_all_dropped_midway_poisons_the_stream() {
    let _session = nt::emu::session();
    // Pins `realistic`: the buffer is back at once only because the cancelled IRP completes inside
    // IoCancelIrp (a legal order Windows may take); when it completes later (`pending`, `random`) the
    // slot keeps the buffer until the connection is released (see
    // `a_late_cancelled_receive_keeps_its_buffer_until_the_connection_is_released`).
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Realistic);
    let s = setup();
    s.peer.set_window(3);
    let wakes = Wakes::new();
    {
        let mut all = pin!(s.conn.send_all(filled(&s, b"abcdef")));
        assert!(wakes.poll(all.as_mut()).is_pending());
    }
    // Part of the data went out before the drop, unless the provider reset the connection when it
    // cancelled the send (the emulation does: a reset discards the peer's unread data).
    match s.peer.read(10) {
        Ok(data) => assert_eq!(data, b"abc"),
        Err(_) => assert!(s.peer.was_reset()),
    }
    assert!(s.conn.is_stream_unknown());
    assert_eq!(s.pool.available(), 4);
    s.finish();
}

// ----------------------------------------------------------------------------------------- accept

#[test]
fn accept_dropped_before_first_poll_has_no_effect() {
    let _session = nt::emu::session();
    let s = setup();
    drop(s.listener.accept());
    let peer2 = s.net.connect(s.addr()).unwrap();
    let conn2 = ready(s.listener.accept()).unwrap();
    ready(conn2.close()).unwrap();
    assert!(peer2.driver_closed());
    s.finish();
}

#[test]
fn accept_dropped_while_pending_is_cancelled_and_the_next_accept_works() {
    let _session = nt::emu::session();
    let s = setup();
    let wakes = Wakes::new();
    {
        let mut accept = pin!(s.listener.accept());
        assert!(wakes.poll(accept.as_mut()).is_pending());
    }
    assert!(wakes.count() <= 1);
    let peer2 = s.net.connect(s.addr()).unwrap();
    assert!(!peer2.driver_closed(), "nobody accepted it yet");
    let conn2 = ready(s.listener.accept()).unwrap();
    ready(conn2.close()).unwrap();
    s.finish();
}

#[test]
fn accept_completed_then_dropped_closes_the_connection() {
    let _session = nt::emu::session();
    let s = setup();
    let wakes = Wakes::new();
    let peer2;
    {
        let mut accept = pin!(s.listener.accept());
        assert!(wakes.poll(accept.as_mut()).is_pending());
        peer2 = s.net.connect(s.addr()).unwrap();
        assert_eq!(wakes.count(), 1);
    }
    assert_eq!(wakes.count(), 1);
    assert!(peer2.driver_closed(), "the unread accepted socket was closed");
    assert!(peer2.was_reset());
    // The listener still works.
    let peer3 = s.net.connect(s.addr()).unwrap();
    let conn3 = ready(s.listener.accept()).unwrap();
    drop(conn3);
    assert!(peer3.was_reset());
    s.finish();
}

#[test]
fn accept_dropped_then_connection_arrives_for_the_next_accept() {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(OpKind::Accept, Completion::Hold);
    let wakes = Wakes::new();
    {
        let mut accept = pin!(s.listener.accept());
        assert!(wakes.poll(accept.as_mut()).is_pending());
        assert_eq!(s.net.held().len(), 1);
    }
    assert!(s.net.held().is_empty());
    let peer2 = s.net.connect(s.addr()).unwrap();
    assert!(wakes.count() <= 1);
    let conn2 = ready(s.listener.accept()).unwrap();
    drop(conn2);
    assert!(peer2.was_reset());
    s.finish();
}

#[test]
fn listener_dropped_with_connections_in_backlog() {
    let _session = nt::emu::session();
    let s = setup();
    let peer2 = s.net.connect(s.addr()).unwrap();
    let Setup {
        net,
        registration,
        pool,
        listener,
        conn,
        peer,
        ..
    } = s;
    drop(listener);
    assert!(
        peer2.was_reset(),
        "a connection still in the backlog is refused when the listener closes"
    );
    drop(conn);
    assert!(peer.was_reset());
    drop(pool);
    ready(registration.deregister());
    drop(net);
}

// ---------------------------------------------------------------------------------------- connect

#[test]
fn connect_dropped_before_first_poll_allocates_nothing() {
    let _session = nt::emu::session();
    let s = setup();
    drop(s.registration.connect("10.0.0.1:80".parse().unwrap()));
    assert_eq!(s.registration.live_sockets(), 2, "listener and connection only");
    s.finish();
}

#[test]
fn connect_dropped_while_pending_is_cancelled() {
    let _session = nt::emu::session();
    let s = setup();
    let remote = "10.0.0.1:80".parse().unwrap();
    let _peer_listener = s.net.listen(remote);
    s.net.script(OpKind::Connect, Completion::Hold);
    let wakes = Wakes::new();
    {
        let mut connect = pin!(s.registration.connect(remote));
        assert!(wakes.poll(connect.as_mut()).is_pending());
        assert_eq!(s.net.held().len(), 1);
    }
    assert!(s.net.held().is_empty());
    assert!(wakes.count() <= 1);
    nt::emu::wsk::settle(); // cancelled IRPs may complete later (`pending`, `random`)
    assert_eq!(s.registration.live_sockets(), 2);
    s.finish();
}

#[test]
fn connect_completed_then_dropped_closes_the_connection() {
    let _session = nt::emu::session();
    let s = setup();
    let remote = "10.0.0.1:80".parse().unwrap();
    let peer_listener = s.net.listen(remote);
    s.net.script(OpKind::Connect, Completion::Hold);
    let wakes = Wakes::new();
    {
        let mut connect = pin!(s.registration.connect(remote));
        assert!(wakes.poll(connect.as_mut()).is_pending());
        let held = s.net.held();
        assert!(s.net.release(held[0]));
        assert_eq!(wakes.count(), 1);
    }
    assert_eq!(wakes.count(), 1);
    let peer = peer_listener.accept().expect("the peer saw the connection");
    assert!(peer.driver_closed(), "the unread connected socket was closed");
    // Its close may pend (completion schedules): the provider completes it.
    nt::emu::wsk::settle();
    assert_eq!(s.registration.live_sockets(), 2);
    s.finish();
}

#[test]
fn connect_dropped_then_completion_finds_nothing() {
    let _session = nt::emu::session();
    let s = setup();
    let remote = "10.0.0.1:80".parse().unwrap();
    let _peer_listener = s.net.listen(remote);
    s.net.script(OpKind::Connect, Completion::Hold);
    let wakes = Wakes::new();
    let held;
    {
        let mut connect = pin!(s.registration.connect(remote));
        assert!(wakes.poll(connect.as_mut()).is_pending());
        held = s.net.held()[0];
    }
    assert!(!s.net.release(held), "already completed by the cancellation");
    assert!(wakes.count() <= 1);
    s.finish();
}

// ------------------------------------------------------------------------------------- disconnect

#[test]
fn disconnect_dropped_before_first_poll_has_no_effect() {
    let _session = nt::emu::session();
    let s = setup();
    drop(s.conn.disconnect());
    assert!(!s.peer.got_fin() && !s.peer.was_reset());
    let ((n, _b), read) = ready_while_reading(&s.peer, s.conn.send(filled(&s, b"still open")));
    assert_eq!(n.unwrap(), 10);
    assert_eq!(read, b"still open");
    s.finish();
}

#[test]
fn disconnect_dropped_while_pending_aborts() {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(OpKind::Disconnect, Completion::Hold);
    let wakes = Wakes::new();
    {
        let mut disconnect = pin!(s.conn.disconnect());
        assert!(wakes.poll(disconnect.as_mut()).is_pending());
    }
    assert!(s.peer.was_reset(), "dropping a pending graceful disconnect aborts");
    assert!(s.net.held().is_empty(), "the abort forced the graceful IRP to complete");
    assert!(wakes.count() <= 1);
    s.finish();
}

#[test]
fn disconnect_completed_then_dropped_stays_graceful() {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(OpKind::Disconnect, Completion::Hold);
    let wakes = Wakes::new();
    {
        let mut disconnect = pin!(s.conn.disconnect());
        assert!(wakes.poll(disconnect.as_mut()).is_pending());
        assert!(s.net.release(s.net.held()[0]));
        assert_eq!(wakes.count(), 1);
    }
    assert_eq!(wakes.count(), 1);
    assert!(s.peer.got_fin());
    assert!(
        !s.peer.was_reset(),
        "a completed graceful disconnect is not turned into an abort"
    );
    s.finish();
}

#[test]
fn disconnect_dropped_then_completion_finds_nothing() {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(OpKind::Disconnect, Completion::Never);
    let wakes = Wakes::new();
    {
        let mut disconnect = pin!(s.conn.disconnect());
        assert!(wakes.poll(disconnect.as_mut()).is_pending());
    }
    assert!(s.peer.was_reset());
    assert!(wakes.count() <= 1);
    s.finish();
}

#[test]
fn disconnect_with_dropped_while_pending_aborts_and_returns_the_buffer() {
    let _session = nt::emu::session();
    // Pins `realistic`: the buffer is back at once only because the cancelled IRP completes inside
    // IoCancelIrp (a legal order Windows may take); when it completes later (`pending`, `random`) the
    // slot keeps the buffer until the connection is released (see
    // `a_late_cancelled_receive_keeps_its_buffer_until_the_connection_is_released`).
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Realistic);
    let s = setup();
    s.peer.set_window(0);
    let wakes = Wakes::new();
    {
        let mut disconnect = pin!(s.conn.disconnect_with(filled(&s, b"final")));
        assert!(wakes.poll(disconnect.as_mut()).is_pending());
    }
    assert!(s.peer.was_reset());
    assert_eq!(s.pool.available(), 4);
    s.finish();
}

#[test]
fn disconnect_with_completed_then_dropped() {
    let _session = nt::emu::session();
    let s = setup();
    s.peer.set_window(0);
    let wakes = Wakes::new();
    {
        let mut disconnect = pin!(s.conn.disconnect_with(filled(&s, b"final")));
        assert!(wakes.poll(disconnect.as_mut()).is_pending());
        s.peer.set_window(1024);
        assert_eq!(wakes.count(), 0, "FIN sent, not yet acknowledged: still pending");
        assert_eq!(s.peer.read(10).unwrap(), b"final");
        assert_eq!(wakes.count(), 1);
    }
    assert_eq!(s.peer.read(10).unwrap(), b"");
    assert!(!s.peer.was_reset());
    assert_eq!(s.pool.available(), 4);
    s.finish();
}

// ----------------------------------------------------------------------------------- abort, close

#[test]
fn abort_dropped_before_first_poll_has_no_effect() {
    let _session = nt::emu::session();
    let s = setup();
    drop(s.conn.abort());
    assert!(!s.peer.was_reset());
    s.finish();
}

#[test]
fn abort_completes_inline_and_resets() {
    let _session = nt::emu::session();
    // Depends on the `realistic` schedule: it checks what an abort that completes inline does.
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Realistic);
    let s = setup();
    let wakes = Wakes::new();
    {
        let mut abort = pin!(s.conn.abort());
        assert!(matches!(wakes.poll(abort.as_mut()), Poll::Ready(Ok(()))));
    }
    assert_eq!(wakes.count(), 0, "an inline completion wakes nothing and is taken once");
    assert!(s.peer.was_reset());
    s.finish();
}

#[test]
fn close_dropped_before_first_poll_closes_in_the_background() {
    let _session = nt::emu::session();
    let s = setup();
    let Setup {
        net,
        registration,
        pool,
        listener,
        conn,
        peer,
        ..
    } = s;
    drop(conn.close());
    assert!(peer.driver_closed());
    assert!(peer.was_reset(), "closed without disconnecting: abortive");
    drop(listener);
    drop(pool);
    ready(registration.deregister());
    drop(net);
}

#[test]
fn dropping_an_unclosed_connection_resets_it() {
    let _session = nt::emu::session();
    let s = setup();
    let Setup {
        net,
        registration,
        pool,
        listener,
        conn,
        peer,
        ..
    } = s;
    drop(conn);
    assert!(peer.was_reset());
    assert!(peer.driver_closed());
    ready(listener.close()).unwrap();
    drop(pool);
    ready(registration.deregister());
    drop(net);
}

#[test]
fn dropping_a_connection_with_pending_operations() {
    let _session = nt::emu::session();
    let s = setup();
    let Setup {
        net,
        registration,
        pool,
        listener,
        conn,
        peer,
        ..
    } = s;
    let wakes = Wakes::new();
    {
        let mut receive = pin!(conn.receive(pool.take().unwrap()));
        assert!(wakes.poll(receive.as_mut()).is_pending());
    }
    drop(conn);
    assert!(peer.was_reset());
    drop(listener);
    nt::emu::wsk::settle(); // cancelled IRPs may complete later (`pending`, `random`)
    assert_eq!(pool.available(), 4);
    drop(pool);
    ready(registration.deregister());
    drop(net);
}

// ------------------------------------------------------------------------------- listen, register

#[test]
fn listen_dropped_before_first_poll_allocates_nothing() {
    let _session = nt::emu::session();
    let s = setup();
    drop(s.registration.listen(LOCAL.parse().unwrap()));
    assert_eq!(s.registration.live_sockets(), 2);
    s.finish();
}

#[test]
fn listen_on_a_taken_port_fails_and_leaks_nothing() {
    let _session = nt::emu::session();
    let s = setup();
    let e = ready(s.registration.listen(s.addr())).unwrap_err();
    assert!(e.is_address_in_use(), "{e}");
    // The failed listener's close may pend (completion schedules): the provider completes it.
    nt::emu::wsk::settle();
    assert_eq!(s.registration.live_sockets(), 2);
    s.finish();
}

#[test]
fn deregister_waits_for_sockets_to_close() {
    let _session = nt::emu::session();
    let s = setup();
    let Setup {
        net,
        registration,
        pool,
        listener,
        conn,
        peer,
        ..
    } = s;
    let wakes = Wakes::new();
    let mut deregister = pin!(registration.deregister());
    assert!(wakes.poll(deregister.as_mut()).is_pending());
    drop(listener);
    assert!(wakes.poll(deregister.as_mut()).is_pending());
    drop(conn);
    // The closes may pend (completion schedules): the provider completes them, waking the task.
    nt::emu::wsk::settle();
    assert!(wakes.count() >= 1);
    assert!(wakes.poll(deregister.as_mut()).is_ready());
    drop((pool, peer, net));
}

#[test]
fn socket_context_allocation_failure_is_an_error() {
    let _session = nt::emu::session();
    let s = setup();
    nt::emu::pool::fail_tag(wsk_async::TAG_SOCKET, 1);
    let e = ready(s.listener.accept()).unwrap_err();
    assert!(e.is_out_of_resources());
    let peer2 = s.net.connect(s.addr()).unwrap();
    let conn2 = ready(s.listener.accept()).unwrap();
    drop(conn2);
    assert!(peer2.was_reset());
    s.finish();
}

#[test]
fn after_a_dropped_receive_only_abort_and_close_remain() {
    let _session = nt::emu::session();
    let s = setup();
    {
        let wakes = Wakes::new();
        let mut receive = pin!(s.conn.receive(s.pool.take().unwrap()));
        assert!(wakes.poll(receive.as_mut()).is_pending());
    }
    assert!(ready(s.conn.disconnect()).unwrap_err().is_invalid_state());
    let (r, _b) = ready(s.conn.disconnect_with(filled(&s, b"x")));
    assert!(r.unwrap_err().is_invalid_state());
    // No FIN went out (the provider may have reset the connection on the cancel: the emulation does).
    assert!(!s.peer.got_fin());
    ready(s.conn.abort()).unwrap();
    assert!(s.peer.was_reset());
    s.finish();
}

/// The futures are `Send` (a task owning them may move between threads), as are the sockets.
#[test]
fn futures_and_sockets_are_send() {
    fn send<T: Send>(_: &T) {}
    fn sync<T: Sync>() {}
    sync::<wsk_async::Connection>();
    sync::<wsk_async::Listener>();
    sync::<wsk_async::Registration>();
    sync::<wsk_async::BufferPool>();
    let _session = nt::emu::session();
    let s = setup();
    send(&s.conn.receive(s.pool.take().unwrap()));
    send(&s.conn.send(s.pool.take().unwrap()));
    send(&s.conn.send_all(s.pool.take().unwrap()));
    send(&s.conn.disconnect());
    send(&s.conn.abort());
    send(&s.conn.disconnect_or_abort(std::time::Duration::from_secs(1)));
    send(&s.listener.accept());
    send(&s.registration.connect("10.0.0.1:1".parse().unwrap()));
    send(&s.registration.listen(LOCAL.parse().unwrap()));
    s.finish();
}

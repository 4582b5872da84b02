//! The basic flows on the emulation's deterministic in-memory network (runs under Miri).
#![cfg(all(not(target_os = "windows"), not(loom)))]

mod common;

use common::*;
use nt::emu::wsk::MemoryNetwork;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;
use wsk_async::Registration;

#[test]
fn echo_round_trip_then_graceful_close() {
    let _session = nt::emu::session();
    let s = setup();
    s.peer.write(b"hello").unwrap();
    let (n, buf) = ready(s.conn.receive(s.pool.take().unwrap()));
    assert_eq!(n.unwrap(), 5);
    assert_eq!(&buf[..], b"hello");
    let ((sent, buf), read) = ready_while_reading(&s.peer, s.conn.send_all(buf.slice(1..4)));
    assert_eq!(sent.unwrap(), 3);
    assert_eq!(read, b"ell");
    ready(s.conn.disconnect()).unwrap();
    assert!(s.peer.got_fin());
    s.peer.shutdown();
    let (eof, buf) = ready(s.conn.receive(buf));
    assert_eq!(eof.unwrap(), 0);
    drop(buf);
    assert_eq!(s.pool.available(), 4);
    s.finish();
}

#[test]
fn steady_state_receive_and_send_allocate_nothing() {
    let _session = nt::emu::session();
    let s = setup();
    let mut buf = s.pool.take().unwrap();
    // Warm up once, then count pool blocks and IRPs across many round trips.
    let live = || {
        (
            nt::emu::pool::live_blocks(wsk_async::TAG_SOCKET),
            nt::emu::pool::live_blocks(wsk_async::TAG_BUFFER),
            nt::emu::irp::live_count(),
        )
    };
    let before = live();
    for i in 0..50u8 {
        s.peer.write(&[i; 7]).unwrap();
        let (n, b) = ready(s.conn.receive(buf));
        assert_eq!(n.unwrap(), 7);
        let ((sent, b), read) = ready_while_reading(&s.peer, s.conn.send_all(b));
        assert_eq!(sent.unwrap(), 7);
        assert_eq!(read, vec![i; 7]);
        buf = b;
        assert_eq!(live(), before);
    }
    drop(buf);
    s.finish();
}

#[test]
fn disconnect_with_sends_final_buffer_then_fin() {
    let _session = nt::emu::session();
    let s = setup();
    let mut buf = s.pool.take().unwrap();
    buf.extend_from_slice(b"bye");
    let ((r, buf), read) = ready_while_reading(&s.peer, s.conn.disconnect_with(buf));
    r.unwrap();
    assert_eq!(read, b"bye", "the final buffer, then EOF");
    assert_eq!(s.peer.read(10).unwrap(), b"", "EOF after the final buffer");
    drop(buf);
    s.finish();
}

#[test]
fn abort_resets_and_fails_pending_receive() {
    let _session = nt::emu::session();
    let s = setup();
    {
        let wakes = Wakes::new();
        let mut receive = pin!(s.conn.receive(s.pool.take().unwrap()));
        assert!(wakes.poll(receive.as_mut()).is_pending());
        ready(s.conn.abort()).unwrap();
        assert!(s.peer.was_reset());
        // The receive the abort ended may complete after the abort did (completion schedules).
        nt::emu::wsk::settle();
        assert_eq!(wakes.count(), 1);
        let Poll::Ready((r, _buf)) = wakes.poll(receive.as_mut()) else {
            panic!("receive still pending")
        };
        assert!(r.unwrap_err().is_reset());
    }
    s.finish();
}

#[test]
fn peer_reset_and_forced_close_are_reported() {
    let _session = nt::emu::session();
    let s = setup();
    s.peer.force_close();
    let (r, buf) = ready(s.conn.receive(s.pool.take().unwrap()));
    let e = r.unwrap_err();
    assert!(e.is_forced_close(), "{e:?}");
    drop(buf);
    s.finish();
}

#[test]
fn dual_stack_listener_accepts_ipv4_peer() {
    let _session = nt::emu::session();
    let net = MemoryNetwork::install();
    let driver = TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, Duration::from_secs(1)).unwrap();
    let listener = ready(registration.listen("[::]:0".parse().unwrap())).unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = net.connect(([127, 0, 0, 1], port).into()).unwrap();
    let conn = ready(listener.accept()).unwrap();
    assert!(
        conn.peer_addr().unwrap().is_ipv6(),
        "IPv4 peer seen as IPv4-mapped IPv6"
    );
    ready(conn.close()).unwrap();
    ready(listener.close()).unwrap();
    ready(registration.deregister());
    drop(peer);
}

#[test]
fn connect_to_peer_listener() {
    let _session = nt::emu::session();
    let net = MemoryNetwork::install();
    let driver = TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, Duration::from_secs(1)).unwrap();
    let remote: std::net::SocketAddr = "10.0.0.1:80".parse().unwrap();
    let peer_listener = net.listen(remote);
    let conn = ready(registration.connect(remote)).unwrap();
    let peer = peer_listener.accept().unwrap();
    peer.write(b"x").unwrap();
    let pool = wsk_async::BufferPool::new(1, 16).unwrap();
    let (n, _buf) = ready(conn.receive(pool.take().unwrap()));
    assert_eq!(n.unwrap(), 1);
    assert!(
        ready(registration.connect("10.0.0.2:80".parse().unwrap()))
            .unwrap_err()
            .is_refused()
    );
    ready(conn.close()).unwrap();
    ready(registration.deregister());
}

/// `connect_from` binds the chosen local address: the remote peer sees it as the connection's source.
#[test]
fn connect_from_uses_the_chosen_local_address() {
    let _session = nt::emu::session();
    let net = MemoryNetwork::install();
    let driver = TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, Duration::from_secs(1)).unwrap();
    let remote: std::net::SocketAddr = "10.0.0.1:80".parse().unwrap();
    let local: std::net::SocketAddr = "10.0.0.9:4321".parse().unwrap();
    let peer_listener = net.listen(remote);
    let conn = ready(registration.connect_from(local, remote)).unwrap();
    let peer = peer_listener.accept().unwrap();
    assert_eq!(peer.driver_addr(), local);
    ready(conn.close()).unwrap();
    drop(peer);
    ready(registration.deregister());
}

/// `connect_from` with a local and a remote address of two families fails with
/// STATUS_INVALID_PARAMETER before anything reaches the provider (`WskSocketConnect` requires both
/// of the family of the socket it creates; the emulation reports a call that breaks that).
#[test]
fn connect_from_with_addresses_of_two_families_fails_without_calling_the_provider() {
    let _session = nt::emu::session();
    nt::emu::expect_violations();
    let net = MemoryNetwork::install();
    let driver = TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, Duration::from_secs(1)).unwrap();
    let remote: std::net::SocketAddr = "[::1]:80".parse().unwrap();
    let _peer_listener = net.listen(remote);
    for local in ["127.0.0.1:0", "10.0.0.9:4321"] {
        let error = ready(registration.connect_from(local.parse().unwrap(), remote)).unwrap_err();
        assert_eq!(error.status(), nt::STATUS_INVALID_PARAMETER, "{local}");
    }
    assert_eq!(registration.live_sockets(), 0);
    ready(registration.deregister());
    let violations: Vec<String> = nt::emu::take_violations()
        .iter()
        .map(|v| v.message().to_owned())
        .collect();
    assert_eq!(violations, Vec::<String>::new());
}

#[test]
fn concurrent_same_kind_operation_is_refused() {
    let _session = nt::emu::session();
    let s = setup();
    {
        let wakes = Wakes::new();
        let mut first = pin!(s.conn.receive(s.pool.take().unwrap()));
        assert!(wakes.poll(first.as_mut()).is_pending());
        let (r, _b) = ready(s.conn.receive(s.pool.take().unwrap()));
        assert!(r.unwrap_err().is_invalid_state());
        s.peer.write(b"a").unwrap();
        let Poll::Ready((r, _b)) = wakes.poll(first.as_mut()) else {
            panic!("receive still pending")
        };
        assert_eq!(r.unwrap(), 1);
    }
    s.finish();
}

#[test]
fn incoming_stream_yields_connections() {
    use futures_core::Stream;
    let _session = nt::emu::session();
    let s = setup();
    {
        let wakes = Wakes::new();
        let mut incoming = pin!(s.listener.incoming());
        let mut next = pin!(std::future::poll_fn(|cx| incoming.as_mut().poll_next(cx)));
        assert!(wakes.poll(next.as_mut()).is_pending());
        let peer2 = s.net.connect(s.addr()).unwrap();
        assert_eq!(wakes.count(), 1);
        let second = wakes.ready(next.as_mut()).unwrap().unwrap();
        drop(second);
        assert!(peer2.was_reset(), "dropping an unclosed connection resets it");
    }
    s.finish();
}

#[test]
fn pool_exhaustion_is_an_error_value() {
    let _session = nt::emu::session();
    nt::emu::pool::fail_next(1);
    let Err(err) = wsk_async::BufferPool::new(2, 64) else {
        panic!("allocation failure not reported")
    };
    assert!(err.is_out_of_resources());
}

#[test]
fn register_retries_until_provider_ready() {
    let _session = nt::emu::session();
    nt::emu::wsk::set_provider_ready(false);
    let driver = TestDriver::new();
    let Err(e) = Registration::register_blocking(&driver.device, Duration::from_millis(1)) else {
        panic!("registered")
    };
    assert_eq!(e.status(), nt::STATUS_DEVICE_NOT_READY);
    nt::emu::wsk::set_provider_ready(true);
    let driver = TestDriver::new();
    let r = Registration::register_blocking(&driver.device, Duration::from_millis(1)).unwrap();
    ready(r.deregister());
}

#[test]
fn async_register_retries_with_backoff_until_the_provider_is_ready() {
    let _session = nt::emu::session();
    nt::emu::clock::pause();
    nt::emu::wsk::set_provider_ready(false);
    let wakes = Wakes::new();
    let driver = TestDriver::new();
    let mut register = pin!(Registration::register(&driver.device));
    assert!(
        wakes.poll(register.as_mut()).is_pending(),
        "not ready: waits on a timer"
    );
    // A KTIMER expires on the first clock tick at or after its due time: one tick past the backoff.
    nt::emu::clock::advance(Duration::from_millis(10) + nt::emu::clock::TICK);
    assert!(wakes.count() >= 1, "the backoff timer woke the task");
    assert!(
        wakes.poll(register.as_mut()).is_pending(),
        "still not ready: a longer backoff"
    );
    nt::emu::wsk::set_provider_ready(true);
    nt::emu::clock::advance(Duration::from_millis(20) + nt::emu::clock::TICK);
    let Poll::Ready(registration) = wakes.poll(register.as_mut()) else {
        panic!("not registered")
    };
    ready(registration.unwrap().deregister());
}

#[test]
fn async_register_gives_up_after_its_bound() {
    let _session = nt::emu::session();
    nt::emu::clock::pause();
    nt::emu::wsk::set_provider_ready(false);
    let wakes = Wakes::new();
    let driver = TestDriver::new();
    let mut register = pin!(Registration::register(&driver.device));
    let mut result = None;
    for _ in 0..200 {
        if let Poll::Ready(r) = wakes.poll(register.as_mut()) {
            result = Some(r);
            break;
        }
        nt::emu::clock::advance(Duration::from_millis(500));
    }
    let Some(Err(e)) = result else {
        panic!("register did not give up")
    };
    assert_eq!(e.status(), nt::STATUS_DEVICE_NOT_READY);
}

/// An open connection holds one pool block (its context) and four IRPs (receive, two sends, close); its
/// first graceful disconnect allocates the end slots (one block, the graceful IRP and the abort IRP
/// its drop may need); closing frees all of it.
#[test]
fn an_open_connection_holds_four_irps_and_its_end_allocates_the_rest() {
    let _session = nt::emu::session();
    let s = setup();
    let live = || {
        (
            nt::emu::pool::live_blocks(wsk_async::TAG_SOCKET),
            nt::emu::irp::live_count(),
        )
    };
    let (blocks, irps) = live();
    let peer = s.net.connect(s.addr()).unwrap();
    let conn = ready(s.listener.accept()).unwrap();
    assert_eq!(live(), (blocks + 1, irps + 4), "the context; receive, two sends, close");
    ready(conn.disconnect()).unwrap();
    assert_eq!(
        live(),
        (blocks + 2, irps + 6),
        "+ the end slots, graceful disconnect and abort"
    );
    ready(conn.abort()).unwrap();
    assert_eq!(live(), (blocks + 2, irps + 6), "the abort slot was already there");
    ready(conn.close()).unwrap();
    assert_eq!(live(), (blocks, irps));
    assert!(peer.got_fin());
    s.finish();
}

/// If the slots and IRPs a connection's end needs cannot be allocated (each injection fails the first
/// of the three allocations), disconnect and abort fail as values having done nothing and leaving
/// nothing allocated; a retry works.
#[test]
fn disconnect_and_abort_irp_allocation_failures_are_error_values() {
    let _session = nt::emu::session();
    let s = setup();
    nt::emu::pool::fail_next(1);
    assert!(ready(s.conn.disconnect()).unwrap_err().is_out_of_resources());
    nt::emu::pool::fail_next(1);
    assert!(ready(s.conn.abort()).unwrap_err().is_out_of_resources());
    // Both IRPs allocated, then the block fails: the IRPs go back.
    let irps = nt::emu::irp::live_count();
    nt::emu::pool::fail_tag(wsk_async::TAG_SOCKET, 1);
    assert!(ready(s.conn.abort()).unwrap_err().is_out_of_resources());
    assert_eq!(nt::emu::irp::live_count(), irps);
    assert!(!s.peer.got_fin() && !s.peer.was_reset(), "nothing was sent");
    ready(s.conn.disconnect()).unwrap();
    assert!(s.peer.got_fin() && !s.peer.was_reset());
    s.finish();
}

/// Both end IRPs fail (`fail_next(2)`), then the first one alone: each failure leaves the IRP and
/// socket-block counts exactly as they were, not only at the session's final leak check; a retry
/// works. (First IRP allocated and second failed is `end_slots.rs`'s unit test: the emulation's
/// injection fails only the *next* allocations.)
#[test]
fn end_slot_failures_leave_nothing_allocated_then_abort_works() {
    let _session = nt::emu::session();
    let s = setup();
    let irps = nt::emu::irp::live_count();
    let blocks = nt::emu::pool::live_blocks(wsk_async::TAG_SOCKET);
    nt::emu::pool::fail_next(2);
    assert!(ready(s.conn.abort()).unwrap_err().is_out_of_resources());
    assert_eq!(nt::emu::irp::live_count(), irps);
    assert_eq!(nt::emu::pool::live_blocks(wsk_async::TAG_SOCKET), blocks);
    nt::emu::pool::fail_next(1);
    assert!(ready(s.conn.disconnect()).unwrap_err().is_out_of_resources());
    assert_eq!(nt::emu::irp::live_count(), irps);
    assert_eq!(nt::emu::pool::live_blocks(wsk_async::TAG_SOCKET), blocks);
    nt::emu::pool::clear_failures();
    ready(s.conn.abort()).unwrap();
    assert!(s.peer.was_reset());
    s.finish();
}

/// Dropping a connection whose abort IRP was never allocated still closes it (with the preallocated
/// close IRP), abortively.
#[test]
fn a_connection_that_never_disconnected_closes_on_drop() {
    let _session = nt::emu::session();
    let s = setup();
    let peer = s.net.connect(s.addr()).unwrap();
    let conn = ready(s.listener.accept()).unwrap();
    drop(conn);
    assert!(peer.was_reset());
    s.finish();
}

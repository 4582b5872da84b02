//! `Registration::connect` / `connect_from` on a provider whose `WskSocketConnect` is a stub (the
//! emulation's Wine 8.0 mode: STATUS_NOT_IMPLEMENTED, the IRP never completed): the fallback to
//! `WskSocket` + `WskBind` + `WskConnect` on the same future, remembered by the registration, and
//! dropping the future at each of its steps, on the deterministic in-memory network (runs under Miri:
//! `MIRIFLAGS="-Zmiri-permissive-provenance" cargo +nightly miri test -p wdm-async-wsk --test
//! memory_connect_fallback`).
//!
//! Every test ends with `Setup::finish` and the session guard, which fails the test if any IRP, MDL,
//! pool block or socket is left; every test passes under each completion schedule.
#![cfg(all(not(target_os = "windows"), not(loom)))]

mod common;

use common::*;
use nt::emu::wsk::{Completion, OpKind, PeerListener};
use nt::*;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};

const REMOTE: &str = "10.0.0.1:80";

/// The common setup (a listener and one accepted connection: two live sockets), then the Wine 8.0
/// provider. (Set afterwards: Wine's stub `WskGetLocalAddress` would fail the setup's listen on port
/// 0.)
fn wine8() -> Setup {
    let s = setup();
    nt::emu::wsk::set_wine8_netio(true);
    s
}

/// Polls `future` until an operation of `kind` is held (letting the provider deliver what its
/// schedule deferred between polls).
fn poll_until_held<F: Future + ?Sized>(s: &Setup, wakes: &Wakes, mut future: Pin<&mut F>, kind: OpKind) {
    for _ in 0..16 {
        assert!(wakes.poll(future.as_mut()).is_pending(), "held before {kind:?}");
        if s.net.held().iter().any(|op| op.kind == kind) {
            return;
        }
        nt::emu::wsk::settle();
    }
    panic!("no {kind:?} held after 16 polls");
}

/// The socket the dropped future created, if it got that far, was closed: a connection the peer saw
/// is closed from the driver's side, and only the setup's two sockets are left.
fn nothing_left(s: &Setup, peer_listener: &PeerListener) {
    assert!(wait_until(BOUND, || s.registration.live_sockets() == 2));
    while let Some(peer) = peer_listener.accept() {
        assert!(peer.driver_closed(), "a connection the dropped future made was closed");
    }
}

/// The prelude of the drop tests: a peer listens at [`REMOTE`], the provider's next `kind` call is
/// scripted to `completion`, and a connect to [`REMOTE`] is polled until that call is held; then
/// `before_drop` runs (with the call still held) and the future is dropped. Returns the peer's
/// listener and the wakes the future was polled with (kept for the test's checks).
fn connect_dropped_at(
    s: &Setup,
    kind: OpKind,
    completion: Completion,
    before_drop: impl FnOnce(),
) -> (PeerListener, Wakes) {
    let remote: SocketAddr = REMOTE.parse().unwrap();
    let peer_listener = s.net.listen(remote);
    s.net.script(kind, completion);
    let wakes = Wakes::new();
    {
        let mut connect = pin!(s.registration.connect(remote));
        poll_until_held(s, &wakes, connect.as_mut(), kind);
        before_drop();
    }
    (peer_listener, wakes)
}

#[test]
fn connect_falls_back_to_socket_bind_connect_and_the_connection_works() {
    let _session = nt::emu::session();
    let s = wine8();
    let remote: SocketAddr = REMOTE.parse().unwrap();
    let peer_listener = s.net.listen(remote);
    let conn = ready(s.registration.connect(remote)).expect("connect through the fallback");
    assert_eq!(conn.peer_addr(), Some(remote));
    let peer = peer_listener.accept().expect("the peer saw the connection");
    peer.write(b"ping").unwrap();
    let (n, buf) = ready(conn.receive(s.pool.take().unwrap()));
    assert_eq!(n.expect("receive"), 4);
    assert_eq!(&buf[..4], b"ping");
    drop(buf);
    ready(conn.close()).expect("close");
    s.finish();
}

#[test]
fn connect_from_binds_the_chosen_local_address_in_the_fallback() {
    let _session = nt::emu::session();
    let s = wine8();
    let remote: SocketAddr = REMOTE.parse().unwrap();
    let local: SocketAddr = "127.0.0.1:40123".parse().unwrap();
    let peer_listener = s.net.listen(remote);
    let conn = ready(s.registration.connect_from(local, remote)).expect("connect_from through the fallback");
    let peer = peer_listener.accept().expect("the peer saw the connection");
    assert_eq!(peer.driver_addr().port(), local.port(), "bound to the chosen port");
    ready(conn.close()).expect("close");
    s.finish();
}

/// Once `WskSocketConnect` answered STATUS_NOT_IMPLEMENTED, later connects start with `WskSocket`.
/// Shown by turning the Wine mode off again: a connect that still tried `WskSocketConnect` would now
/// succeed with it, and never hold the scripted `WskSocket`.
#[test]
fn the_registration_remembers_the_fallback() {
    let _session = nt::emu::session();
    let s = wine8();
    let remote: SocketAddr = REMOTE.parse().unwrap();
    let peer_listener = s.net.listen(remote);
    let first = ready(s.registration.connect(remote)).expect("first connect");
    nt::emu::wsk::set_wine8_netio(false);
    s.net.script(OpKind::Socket, Completion::Hold);
    let wakes = Wakes::new();
    let mut second = pin!(s.registration.connect(remote));
    assert!(wakes.poll(second.as_mut()).is_pending());
    let held = s.net.held();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].kind, OpKind::Socket, "went straight to WskSocket");
    assert!(s.net.release(held[0]));
    let second = wakes.ready(second.as_mut()).expect("second connect");
    assert!(peer_listener.accept().is_some());
    assert!(peer_listener.accept().is_some());
    ready(first.close()).expect("close");
    ready(second.close()).expect("close");
    s.finish();
}

#[test]
fn a_refused_connect_in_the_fallback_reports_the_refusal_and_closes_its_socket() {
    let _session = nt::emu::session();
    let s = wine8();
    // Nothing listens there.
    let error = ready(s.registration.connect(REMOTE.parse().unwrap())).unwrap_err();
    assert!(error.is_refused(), "{error:?}");
    assert_eq!(error.status(), STATUS_CONNECTION_REFUSED);
    assert!(wait_until(BOUND, || s.registration.live_sockets() == 2));
    s.finish();
}

/// Wine 8 cannot bind AF_INET6: the fallback fails at the bind, and closes the socket it created (a
/// client then moves on to an IPv4 address of the name it resolved).
#[test]
fn an_ipv6_connect_fails_at_the_bind_and_closes_its_socket() {
    let _session = nt::emu::session();
    let s = wine8();
    let remote: SocketAddr = "[::1]:80".parse().unwrap();
    let _peer_listener = s.net.listen(remote);
    let error = ready(s.registration.connect(remote)).unwrap_err();
    assert_eq!(error.status(), STATUS_INVALID_PARAMETER);
    assert!(wait_until(BOUND, || s.registration.live_sockets() == 2));
    s.finish();
}

/// Dropped while `WskSocket` pends, and the provider creates the socket anyway (the emulation's
/// `WskSocket` cannot be cancelled once called, see nt's `decided.rs`): the completion finds the slot
/// orphaned and the deferred closer closes the socket.
#[test]
fn dropped_while_the_socket_is_being_created() {
    let _session = nt::emu::session();
    let s = wine8();
    let (peer_listener, wakes) = connect_dropped_at(&s, OpKind::Socket, Completion::Hold, || {});
    let held = s.net.held();
    assert_eq!(held.len(), 1, "the creation cannot be cancelled");
    assert!(s.net.release(held[0]), "the socket is created after the drop");
    nt::emu::wsk::settle();
    nothing_left(&s, &peer_listener);
    assert!(wakes.count() <= 1);
    s.finish();
}

/// Dropped while `WskBind` pends: the created socket is closed.
#[test]
fn dropped_while_binding() {
    let _session = nt::emu::session();
    let s = wine8();
    let (peer_listener, _wakes) = connect_dropped_at(&s, OpKind::Bind, Completion::IgnoreCancel, || {});
    nt::emu::wsk::settle();
    nothing_left(&s, &peer_listener);
    assert!(s.net.held().is_empty(), "the close ended the bind");
    s.finish();
}

/// Dropped while `WskConnect` pends (held: a peer that does not answer). Wine's `WskConnect` arms
/// no cancel routine (the emulation's Wine 8 mode refuses the drop's `IoCancelIrp`): only the close
/// of the created socket ends it, with STATUS_CANCELLED, and the connection the peer saw is reset.
#[test]
fn dropped_while_connecting() {
    let _session = nt::emu::session();
    let s = wine8();
    let (peer_listener, _wakes) = connect_dropped_at(&s, OpKind::Connect, Completion::Hold, || {});
    nt::emu::wsk::settle();
    nothing_left(&s, &peer_listener);
    assert!(s.net.held().is_empty(), "the close ended the connect");
    s.finish();
}

/// Dropped after `WskConnect` completed but before the future read it: the connection is closed.
#[test]
fn dropped_after_connecting_unread() {
    let _session = nt::emu::session();
    let s = wine8();
    let (peer_listener, _wakes) = connect_dropped_at(&s, OpKind::Connect, Completion::Hold, || {
        let held = s.net.held();
        assert!(s.net.release(held[0]));
        nt::emu::wsk::settle();
    });
    nt::emu::wsk::settle();
    let peer = peer_listener.accept().expect("the peer saw the connection");
    assert!(peer.driver_closed(), "closed");
    nothing_left(&s, &peer_listener);
    s.finish();
}

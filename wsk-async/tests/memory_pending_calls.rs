//! Drop points opened by the calls that the provider may complete later even though it carries them
//! out at once: socket creation, bind, control, address query and close (`WskSocket`, `WskBind`,
//! `WskControlSocket`, `WskGetLocalAddress`, `WskCloseSocket`). The in-memory network holds each
//! one's completion (`Completion::Hold`), the test drops whatever waits for it, then releases it.
//! A held completion cannot be cancelled (`IoCancelIrp` finds no cancel routine), as a provider
//! past the point of cancellation. Every test ends with the session guard, which fails the test if
//! any IRP, pool block or socket is left (empty leak report).
#![cfg(all(not(target_os = "windows"), not(loom)))]

mod common;

use common::*;
use nt::emu::wsk::{Completion, HeldOp, MemoryNetwork, OpKind};
use std::pin::pin;
use std::task::Poll;

/// The only held operation, of `kind`.
fn held_one(net: &MemoryNetwork, kind: OpKind) -> HeldOp {
    let held = net.held();
    assert_eq!(held.len(), 1, "one held operation: {held:?}");
    assert_eq!(held[0].kind, kind);
    held[0]
}

/// A listen future dropped while its `WskSocket` pends: the socket arrives afterwards, in a
/// completion routine, which must not call WSK; the registration's work item closes it, promptly.
#[test]
fn a_listen_dropped_while_its_socket_creation_pends_has_the_late_socket_closed_by_the_work_item() {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(OpKind::Socket, Completion::Hold);
    {
        let mut listen = pin!(s.registration.listen(LOCAL.parse().unwrap()));
        assert!(Wakes::new().poll(listen.as_mut()).is_pending());
    } // dropped: the cancel finds no cancel routine, the IRP stays with the provider
    assert_eq!(
        s.registration.live_sockets(),
        3,
        "the dropped listen's context waits for its IRP"
    );
    {
        let _held = nt::emu::work_items::hold();
        assert!(
            s.net.release(held_one(&s.net, OpKind::Socket)),
            "completes now, with a socket"
        );
        assert_eq!(
            s.registration.live_sockets(),
            3,
            "the completion routine closed nothing (it must not call WSK)"
        );
    } // the work item runs now
    assert!(
        wait_until(BOUND, || s.registration.live_sockets() == 2),
        "the late socket was not closed"
    );
    s.finish();
}

/// The same when the socket creation's completion is released only after the listen future is
/// gone *and* the test deregisters: the deregistration waits for it and closes it.
#[test]
fn deregistration_waits_for_a_pending_socket_creation_and_closes_its_socket() {
    let _session = nt::emu::session();
    let _held = nt::emu::work_items::hold();
    let s = setup();
    s.net.script(OpKind::Socket, Completion::Hold);
    {
        let mut listen = pin!(s.registration.listen(LOCAL.parse().unwrap()));
        assert!(Wakes::new().poll(listen.as_mut()).is_pending());
    }
    let op = held_one(&s.net, OpKind::Socket);
    let Setup {
        net,
        registration,
        pool,
        listener,
        conn,
        peer,
        ..
    } = s;
    ready(conn.close()).unwrap();
    ready(listener.close()).unwrap();
    drop(pool);
    let wakes = Wakes::new();
    let mut deregister = pin!(registration.deregister());
    assert!(
        wakes.poll(deregister.as_mut()).is_pending(),
        "the socket creation still pends"
    );
    assert!(net.release(op));
    assert!(
        wakes.count() >= 1,
        "the late socket's orphan push woke the deregistration"
    );
    // The next poll closes the late socket itself (the work item is held); that close may pend.
    let mut done = false;
    for _ in 0..4 {
        if wakes.poll(deregister.as_mut()).is_ready() {
            done = true;
            break;
        }
        nt::emu::wsk::settle();
    }
    assert!(done, "the deregistration did not finish");
    drop((peer, net));
}

/// A listen future dropped while its `WskBind` pends: its socket is closed (the close completes the
/// bind first), nothing is left.
#[test]
fn a_listen_dropped_while_its_bind_pends_closes_its_socket() {
    dropped_listen_while(OpKind::Bind, "127.0.0.1:0");
}

/// The same while the dual-stack `WskControlSocket` (IPV6_V6ONLY) pends.
#[test]
fn a_listen_dropped_while_its_control_pends_closes_its_socket() {
    dropped_listen_while(OpKind::Control, "[::]:0");
}

/// The same while `WskGetLocalAddress` pends.
#[test]
fn a_listen_dropped_while_its_address_query_pends_closes_its_socket() {
    dropped_listen_while(OpKind::GetAddress, "127.0.0.1:0");
}

fn dropped_listen_while(kind: OpKind, addr: &str) {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(kind, Completion::Hold);
    {
        let mut listen = pin!(s.registration.listen(addr.parse().unwrap()));
        let wakes = Wakes::new();
        // Earlier steps may pend under a completion schedule: settle until the held one is reached.
        for _ in 0..8 {
            assert!(wakes.poll(listen.as_mut()).is_pending());
            if !s.net.held().is_empty() {
                break;
            }
            nt::emu::wsk::settle();
        }
        held_one(&s.net, kind);
    } // dropped: the held IRP cannot be cancelled; the socket is closed in the background
    assert!(s.net.held().is_empty(), "the close completed the held {kind:?} first");
    assert!(
        wait_until(BOUND, || s.registration.live_sockets() == 2),
        "the dropped listen's socket is still open"
    );
    s.finish();
}

/// A listener dropped while its close pends: its context lives until the close completes.
#[test]
fn a_listener_whose_close_pends_is_freed_when_the_close_completes() {
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
    net.script(OpKind::Close, Completion::Hold);
    drop(listener);
    let op = held_one(&net, OpKind::Close);
    assert_eq!(
        registration.live_sockets(),
        2,
        "the listener's context waits for its close"
    );
    assert!(net.release(op));
    assert_eq!(registration.live_sockets(), 1);
    ready(conn.close()).unwrap();
    drop(pool);
    ready(registration.deregister());
    drop((peer, net));
}

/// A connection's `close()` future dropped while the close pends: the close finishes on its own.
#[test]
fn a_close_future_dropped_while_the_close_pends_lets_it_finish() {
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
    net.script(OpKind::Close, Completion::Hold);
    {
        let mut close = pin!(conn.close());
        assert!(Wakes::new().poll(close.as_mut()).is_pending());
    }
    assert!(peer.was_reset(), "closed (abortively) at the call");
    let op = held_one(&net, OpKind::Close);
    assert_eq!(registration.live_sockets(), 2);
    assert!(net.release(op));
    assert_eq!(registration.live_sockets(), 1);
    ready(listener.close()).unwrap();
    drop(pool);
    ready(registration.deregister());
    drop((peer, net));
}

/// `deregister()` waits for a pending close (the provider counts the socket open until then).
#[test]
fn deregister_waits_for_a_pending_close() {
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
    net.script(OpKind::Close, Completion::Hold);
    drop(conn);
    let op = held_one(&net, OpKind::Close);
    ready(listener.close()).unwrap();
    drop(pool);
    let wakes = Wakes::new();
    let mut deregister = pin!(registration.deregister());
    assert!(wakes.poll(deregister.as_mut()).is_pending(), "the close still pends");
    assert!(net.release(op));
    assert!(wakes.count() >= 1, "the close's completion woke the deregistration");
    assert_eq!(wakes.poll(deregister.as_mut()), Poll::Ready(()));
    drop((peer, net));
}

/// Dropping the registration blocks until a pending close completes (from another CPU, here a
/// thread that releases it once the drop sleeps on its event).
#[test]
fn dropping_the_registration_waits_for_a_pending_close() {
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
    net.script(OpKind::Close, Completion::Hold);
    drop(conn);
    let op = held_one(&net, OpKind::Close);
    ready(listener.close()).unwrap();
    drop(pool);
    assert_eq!(
        registration.live_sockets(),
        1,
        "the connection's context waits for its close"
    );
    let event = registration.blocking_drop_event().expose_provenance();
    std::thread::scope(|scope| {
        let provider = scope.spawn(|| {
            let start = std::time::Instant::now();
            while nt::emu::sync::waiters(std::ptr::with_exposed_provenance(event)) == 0 {
                assert!(start.elapsed() < BOUND, "the drop never waited on its event");
                std::thread::yield_now();
            }
            net.release(op)
        });
        drop(registration);
        assert!(provider.join().unwrap(), "the close was still held");
    });
    drop((peer, net));
}

/// A connection and its listener dropped with both closes pending, released in reverse order:
/// nothing is left.
#[test]
fn closes_released_in_reverse_order_leave_nothing() {
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
    net.script(OpKind::Close, Completion::Hold);
    net.script(OpKind::Close, Completion::Hold);
    drop(conn);
    drop(listener);
    let held = net.held();
    assert_eq!(held.len(), 2);
    assert!(net.release(held[1]));
    assert!(net.release(held[0]));
    drop(pool);
    assert_eq!(registration.live_sockets(), 0);
    ready(registration.deregister());
    drop((peer, net));
}

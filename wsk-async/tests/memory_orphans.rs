//! The deferred closer on the deterministic in-memory network (runs under Miri): operations that
//! produce a socket and complete *with* it after whoever would have used it is gone.
//!
//! `IoCancelIrp` normally ends a dropped accept or connect with STATUS_CANCELLED; a real provider may
//! refuse because the operation is past the point of cancellation and complete it with a socket
//! later. The in-memory network's `Completion::IgnoreCancel` does exactly that, so each test can
//! decide when that late socket arrives. Every test ends with the session guard, which fails the test
//! if any IRP, pool block or socket is left (empty leak report).
#![cfg(all(not(target_os = "windows"), not(loom)))]

mod common;

use common::*;
use nt::emu::wsk::{Completion, OpKind};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;
use wsk_async::BufferPool;

/// How long a test waits for another thread before failing.
const BOUND: Duration = Duration::from_secs(10);

#[test]
fn accept_completing_with_a_socket_after_its_listener_is_gone_is_closed_by_deregister() {
    let _session = nt::emu::session();
    // The deferred closer's work item is held: this test is about the drain that does not need it.
    let _held = nt::emu::work_items::hold();
    let s = setup();
    s.net.script(OpKind::Accept, Completion::IgnoreCancel);
    let wakes = Wakes::new();
    {
        let mut accept = pin!(s.listener.accept());
        assert!(wakes.poll(accept.as_mut()).is_pending());
    } // dropped: IoCancelIrp is refused, the IRP stays with the provider
    assert_eq!(s.net.held().len(), 1, "the cancel request was refused");
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
    let deregistering = Wakes::new();
    let mut deregister = pin!(registration.deregister());
    assert!(deregistering.poll(deregister.as_mut()).is_pending());
    // Dropping the listener orphans its accept slot and closes its socket; the provider finishes the
    // accept first, with peer2's connection: the completion routine finds the slot orphaned and
    // hands the accepted socket to the deferred closer, waking the deregistering task.
    drop(listener);
    assert!(net.held().is_empty());
    assert!(
        deregistering.count() >= 1,
        "the orphan push woke the deregistering task"
    );
    assert!(
        !peer2.driver_closed() && !peer2.was_reset(),
        "accepted; nothing closed it yet (a completion routine must not call WSK)"
    );
    // The next poll drains the orphan list: the accepted socket is closed (abortively).
    assert!(
        deregistering.poll(deregister.as_mut()).is_pending(),
        "the connection is still open"
    );
    assert!(peer2.driver_closed(), "the orphaned socket was closed");
    assert!(peer2.was_reset());
    drop(conn);
    assert!(peer.was_reset());
    // The closes may pend (completion schedules): the provider completes them.
    nt::emu::wsk::settle();
    assert_eq!(deregistering.poll(deregister.as_mut()), Poll::Ready(()));
    drop((pool, peer, net));
}

#[test]
fn connect_completing_with_a_socket_after_its_future_is_dropped_is_closed_by_the_next_accept() {
    let _session = nt::emu::session();
    // The work item is held (slow system workers): the next accept drains the list by itself.
    let _held = nt::emu::work_items::hold();
    let s = setup();
    let remote = "10.0.0.1:80".parse().unwrap();
    let peer_listener = s.net.listen(remote);
    s.net.script(OpKind::Connect, Completion::IgnoreCancel);
    let wakes = Wakes::new();
    {
        let mut connect = pin!(s.registration.connect(remote));
        assert!(wakes.poll(connect.as_mut()).is_pending());
    } // dropped: cancellation refused, the socket context stays with the kernel's reference
    assert_eq!(
        s.registration.live_sockets(),
        3,
        "listener, connection, the dropped connect"
    );
    let held = s.net.held();
    assert_eq!(held.len(), 1);
    assert!(s.net.release(held[0]), "the connect completes now, with a socket");
    assert!(wakes.count() <= 1, "the dropped future is not woken");
    let peer = peer_listener.accept().expect("the peer saw the connection");
    assert!(!peer.driver_closed(), "waiting in the orphan list");
    // Any accept/listen/connect poll drains the list.
    {
        let mut accept = pin!(s.listener.accept());
        assert!(Wakes::new().poll(accept.as_mut()).is_pending());
    }
    assert!(peer.driver_closed(), "the orphaned connection was closed");
    assert!(peer.was_reset());
    // Its close may pend (completion schedules): the provider completes it.
    nt::emu::wsk::settle();
    assert_eq!(s.registration.live_sockets(), 2);
    s.finish();
}

#[test]
fn dropping_the_registration_waits_for_a_late_orphan_and_closes_it() {
    let _session = nt::emu::session();
    // The work item is held: the blocking drop closes the late orphan by itself.
    let _held = nt::emu::work_items::hold();
    let s = setup();
    let remote = "10.0.0.1:80".parse().unwrap();
    let peer_listener = s.net.listen(remote);
    s.net.script(OpKind::Connect, Completion::IgnoreCancel);
    {
        let mut connect = pin!(s.registration.connect(remote));
        assert!(Wakes::new().poll(connect.as_mut()).is_pending());
    }
    let held = s.net.held()[0];
    let Setup {
        net,
        registration,
        pool,
        listener,
        conn,
        peer,
        ..
    } = s;
    drop((listener, conn, pool));
    // Their closes may pend (completion schedules): the provider completes them.
    nt::emu::wsk::settle();
    assert_eq!(registration.live_sockets(), 1, "only the dropped connect's context");
    // The drop blocks until that socket is gone. The provider completes the connect from another CPU
    // only once the drop has drained (finding nothing) and sleeps on its event: the orphan arrives
    // late, its push signals the event, the drop drains it, closes the socket and deregisters.
    let event = registration.blocking_drop_event().expose_provenance();
    std::thread::scope(|scope| {
        let provider = scope.spawn(|| {
            let start = std::time::Instant::now();
            while nt::emu::sync::waiters(std::ptr::with_exposed_provenance(event)) == 0 {
                assert!(start.elapsed() < BOUND, "the drop never waited on its event");
                std::thread::yield_now();
            }
            net.release(held)
        });
        drop(registration);
        assert!(provider.join().unwrap(), "the connect was still held");
    });
    let peer2 = peer_listener.accept().expect("the peer saw the connection");
    assert!(peer2.driver_closed() && peer2.was_reset(), "the late orphan was closed");
    drop((peer, net));
}

#[test]
fn a_socket_producing_success_without_a_socket_is_an_error() {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(OpKind::Accept, Completion::Hold);
    let wakes = Wakes::new();
    {
        let mut accept = pin!(s.listener.accept());
        assert!(wakes.poll(accept.as_mut()).is_pending());
        // The provider reports success with IoStatus.Information == 0.
        assert!(s.net.complete(s.net.held()[0], nt::STATUS_SUCCESS));
        assert_eq!(wakes.count(), 1);
        match wakes.poll(accept.as_mut()) {
            Poll::Ready(Err(e)) => assert_eq!(e.status(), nt::STATUS_UNSUCCESSFUL),
            Poll::Ready(Ok(conn)) => panic!("a connection without a socket: {conn:?}"),
            Poll::Pending => panic!("still pending after its completion"),
        }
    }
    assert_eq!(s.registration.live_sockets(), 2, "the connection's context was freed");
    // The listener still works.
    let peer2 = s.net.connect(s.addr()).unwrap();
    let conn2 = ready(s.listener.accept()).unwrap();
    drop(conn2);
    assert!(peer2.was_reset());
    s.finish();
}

#[test]
fn a_buffer_pool_whose_descriptor_size_overflows_is_an_error() {
    let _session = nt::emu::session();
    // count * size fits; the MDL pointer array (count * 8 bytes) does not. (On 64-bit targets the
    // count is also above the `u32::MAX` buffers a 32-bit index can name, which is checked first;
    // the checked descriptor arithmetic still guards targets where it is not.)
    match BufferPool::new(usize::MAX / 4, 1) {
        Err(e) => assert_eq!(e.status(), nt::STATUS_INVALID_PARAMETER),
        Ok(_) => panic!("an overflowing pool was created"),
    }
}

#[test]
fn a_buffer_pool_with_more_buffers_than_a_32_bit_index_is_an_error() {
    let _session = nt::emu::session();
    if let Some(count) = (u32::MAX as usize).checked_add(1) {
        match BufferPool::new(count, 1) {
            Err(e) => assert_eq!(e.status(), nt::STATUS_INVALID_PARAMETER),
            Ok(_) => panic!("a pool a Buffer cannot index was created"),
        }
    }
}

/// Three orphans from three different contexts in the orphan list at once (each context has one
/// link: two dropped connects and a dropped listener's accept, all completing with a socket after
/// their owner is gone), drained by one accept poll: every socket is closed, nothing leaks.
#[test]
fn three_orphans_from_three_contexts_in_the_list_at_once() {
    let _session = nt::emu::session();
    // The work item is held, so that all three are in the list at once.
    let _held = nt::emu::work_items::hold();
    let s = setup();
    let remote = "10.0.0.1:80".parse().unwrap();
    let peer_listener = s.net.listen(remote);
    s.net.script(OpKind::Connect, Completion::IgnoreCancel);
    s.net.script(OpKind::Connect, Completion::IgnoreCancel);
    for _ in 0..2 {
        let mut connect = pin!(s.registration.connect(remote));
        assert!(Wakes::new().poll(connect.as_mut()).is_pending());
    } // dropped: the cancel is refused, the connects stay with the provider
    // A second listener whose accept is held past cancel, then dropped.
    let l2 = ready(s.registration.listen(LOCAL.parse().unwrap())).unwrap();
    s.net.script(OpKind::Accept, Completion::IgnoreCancel);
    {
        let mut accept = pin!(l2.accept());
        assert!(Wakes::new().poll(accept.as_mut()).is_pending());
    }
    let held = s.net.held();
    assert_eq!(held.len(), 3);
    // The two connects complete with their sockets: two orphans pushed.
    assert!(s.net.release(held[0]));
    assert!(s.net.release(held[1]));
    let p1 = peer_listener.accept().unwrap();
    let p2 = peer_listener.accept().unwrap();
    assert!(
        !p1.driver_closed() && !p2.driver_closed(),
        "a completion routine closes nothing"
    );
    // A connection arrives for l2; dropping l2 lets its accept finish with it: the third orphan.
    let p3 = s.net.connect(l2.local_addr().unwrap()).unwrap();
    drop(l2);
    assert!(!p3.driver_closed());
    {
        let mut accept = pin!(s.listener.accept());
        assert!(Wakes::new().poll(accept.as_mut()).is_pending());
    }
    assert!(
        p1.driver_closed() && p2.driver_closed() && p3.driver_closed(),
        "one drain closed all three"
    );
    s.finish();
}

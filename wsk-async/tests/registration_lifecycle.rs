//! The registration's life at its edges, on the in-memory network: a `register()` dropped between
//! retries, a registration dropped above PASSIVE_LEVEL, and sockets that nobody will use closed at
//! once by the deferred closer's work item rather than at the next accept or at deregistration.
#![cfg(all(not(target_os = "windows"), not(loom)))]

mod common;

use common::*;
use nt::emu::wsk::{Completion, OpKind};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;
use wsk_async::{Registration, TAG_REGISTRATION};

/// A `register()` future dropped while it waits between two `WskCaptureProviderNPI` attempts has
/// registered but never captured: its drop deregisters and releases nothing (the emulation reports
/// a `WskReleaseProviderNPI` without a capture).
#[test]
fn register_dropped_between_retries_releases_no_provider_npi() {
    let _session = nt::emu::session();
    let _net = nt::emu::wsk::MemoryNetwork::install();
    let driver = TestDriver::new();
    nt::emu::clock::pause();
    nt::emu::wsk::set_provider_ready(false);
    nt::emu::expect_violations();
    {
        let mut register = pin!(Registration::register(&driver.device));
        assert!(
            Wakes::new().poll(register.as_mut()).is_pending(),
            "waits on its backoff timer"
        );
    }
    let violations = nt::emu::take_violations();
    assert!(violations.is_empty(), "the drop broke a kernel rule: {violations:?}");
    assert_eq!(nt::emu::pool::live_blocks(TAG_REGISTRATION), 0, "the state was freed");
}

/// Dropped at DISPATCH_LEVEL with a listener still open, a registration neither waits nor calls WSK
/// there: its teardown work item finishes the job at PASSIVE_LEVEL once the listener is gone.
#[test]
fn registration_dropped_at_dispatch_level_deregisters_from_a_work_item() {
    let _session = nt::emu::session();
    let _net = nt::emu::wsk::MemoryNetwork::install();
    let driver = TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, Duration::from_secs(1)).unwrap();
    let listener = ready(registration.listen(LOCAL.parse().unwrap())).unwrap();
    nt::emu::expect_violations();
    let mut old = 0;
    // SAFETY: raised and lowered on this thread around the drop.
    unsafe { nt::KeRaiseIrql(nt::DISPATCH_LEVEL, &mut old) };
    drop(registration);
    // SAFETY: back to the IRQL this thread had.
    unsafe { nt::KeLowerIrql(old) };
    let violations = nt::emu::take_violations();
    assert!(
        violations.is_empty(),
        "the drop waited or called WSK at DISPATCH_LEVEL: {violations:?}"
    );
    assert_eq!(
        nt::emu::pool::live_blocks(TAG_REGISTRATION),
        1,
        "still registered: a socket is open"
    );
    drop(listener);
    assert!(
        wait_until(BOUND, || nt::emu::pool::live_blocks(TAG_REGISTRATION) == 0),
        "the work item never deregistered"
    );
}

/// A connect that completes with a socket after its future was dropped: the connection is closed
/// by the drain work item without any further call on the registration.
#[test]
fn a_late_connect_is_closed_at_once_by_the_work_item() {
    let _session = nt::emu::session();
    let s = setup();
    let remote = "10.0.0.1:80".parse().unwrap();
    let peer_listener = s.net.listen(remote);
    s.net.script(OpKind::Connect, Completion::IgnoreCancel);
    {
        let mut connect = pin!(s.registration.connect(remote));
        assert!(Wakes::new().poll(connect.as_mut()).is_pending());
    } // dropped: cancellation refused
    let held = s.net.held();
    assert_eq!(held.len(), 1);
    assert!(s.net.release(held[0]), "the connect completes now, with a socket");
    let peer = peer_listener.accept().expect("the peer saw the connection");
    assert!(
        wait_until(BOUND, || peer.driver_closed()),
        "the late connection is still open: nothing closed it without another call"
    );
    assert!(peer.was_reset(), "closed abortively");
    assert!(wait_until(BOUND, || s.registration.live_sockets() == 2));
    s.finish();
}

/// An accept whose future was dropped while pending, completing with a connection while the
/// listener is still open: closed by the work item, not at the listener's next `accept()`.
#[test]
fn a_late_accept_on_a_live_listener_is_closed_at_once_by_the_work_item() {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(OpKind::Accept, Completion::IgnoreCancel);
    {
        let mut accept = pin!(s.listener.accept());
        assert!(Wakes::new().poll(accept.as_mut()).is_pending());
    } // dropped: cancellation refused, the IRP stays with the provider
    let peer2 = s.net.connect(s.addr()).unwrap();
    let held = s.net.held();
    assert_eq!(held.len(), 1);
    assert!(
        s.net.release(held[0]),
        "the accept completes now, with peer2's connection"
    );
    assert!(
        wait_until(BOUND, || peer2.driver_closed()),
        "the connection accepted for a dropped future is still open"
    );
    assert!(peer2.was_reset());
    // The listener still works: the next accept attaches to the slot until the work item's close
    // completes (on the work item's thread), then accepts.
    let peer3 = s.net.connect(s.addr()).unwrap();
    {
        let mut accept = pin!(s.listener.accept());
        let wakes = Wakes::new();
        let mut accepted = None;
        assert!(
            wait_until(BOUND, || {
                accepted = match wakes.poll(accept.as_mut()) {
                    Poll::Ready(result) => Some(result),
                    Poll::Pending => None,
                };
                accepted.is_some()
            }),
            "the listener did not accept again"
        );
        drop(accepted.unwrap().expect("the listener accepts again"));
    }
    assert!(peer3.was_reset());
    s.finish();
}

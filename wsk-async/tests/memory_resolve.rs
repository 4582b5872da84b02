//! `Registration::resolve` on the emulated provider (no network): `localhost`, numeric IPv4 and IPv6
//! literals, unknown names, rejected host strings, and dropping a resolution at every stage; the
//! session's leak check proves every list was freed. Runs under Miri and every schedule.

mod common;

use common::{TestDriver, Wakes, ready};
use nt::emu::wsk::MemoryNetwork;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;
use wsk_async::{MAX_HOST_NAME, Registration};

/// Every test's prelude: an in-memory network installed, a test driver, and a registration of it.
/// The test keeps all three (dropped in reverse order: registration, driver, network).
fn registered() -> (MemoryNetwork, TestDriver, Registration) {
    let net = MemoryNetwork::install();
    let driver = TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, Duration::from_secs(1)).unwrap();
    (net, driver, registration)
}

#[test]
fn localhost_resolves_to_both_loopback_addresses() {
    let _session = nt::emu::session();
    let (_net, _driver, registration) = registered();
    let addrs = ready(registration.resolve("localhost", 8080)).unwrap();
    assert_eq!(addrs.len(), 2);
    let got: HashSet<SocketAddr> = addrs.into_iter().collect();
    let expected: HashSet<SocketAddr> = ["127.0.0.1:8080", "[::1]:8080"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(got, expected);
    assert_eq!(addrs.first(), addrs.iter().next());
    ready(registration.deregister());
}

#[test]
fn numeric_addresses_resolve_to_themselves() {
    let _session = nt::emu::session();
    let (_net, _driver, registration) = registered();
    for (host, expected) in [
        ("10.1.2.3", "10.1.2.3:0"),
        ("fe80::1", "[fe80::1]:0"),
        ("::1", "[::1]:0"),
    ] {
        let addrs = ready(registration.resolve(host, 0)).unwrap();
        assert_eq!(
            addrs.iter().collect::<Vec<_>>(),
            vec![expected.parse::<SocketAddr>().unwrap()],
            "{host}"
        );
    }
    let addrs = ready(registration.resolve("192.0.2.7", 65535)).unwrap();
    assert_eq!(addrs.first(), Some("192.0.2.7:65535".parse().unwrap()));
    ready(registration.deregister());
}

#[test]
fn an_unknown_name_fails_with_the_providers_status() {
    let _session = nt::emu::session();
    let (_net, _driver, registration) = registered();
    let error = ready(registration.resolve("dead.beef", 80)).unwrap_err();
    assert_eq!(error.status(), nt::STATUS_NOT_FOUND);
    ready(registration.deregister());
}

/// Empty, NUL-carrying and oversized host strings fail before anything reaches the provider: no
/// context, no IRP, no pool block is left, and the future is ready at its first poll.
#[test]
fn bad_host_strings_fail_without_calling_the_provider() {
    let _session = nt::emu::session();
    let (_net, _driver, registration) = registered();
    let long = "a".repeat(MAX_HOST_NAME + 1);
    let longest = "a".repeat(MAX_HOST_NAME);
    for (host, status) in [
        ("", nt::STATUS_INVALID_PARAMETER),
        ("local\0host", nt::STATUS_INVALID_PARAMETER),
        (long.as_str(), nt::STATUS_NAME_TOO_LONG),
    ] {
        let mut future = pin!(registration.resolve(host, 1));
        assert_eq!(registration.live_sockets(), 0, "nothing allocated for {host:?}");
        match Wakes::new().poll(future.as_mut()) {
            Poll::Ready(Err(e)) => assert_eq!(e.status(), status, "{host:?}"),
            other => panic!("{host:?}: {other:?}"),
        }
    }
    // The longest accepted name reaches the provider (and is unknown there).
    let error = ready(registration.resolve(&longest, 1)).unwrap_err();
    assert_eq!(error.status(), nt::STATUS_NOT_FOUND);
    ready(registration.deregister());
}

/// Dropped while its IRP pends: the IRP is cancelled (or, if the schedule completed it in the call,
/// its list is freed by the drop); the registration then has nothing left, and the session's leak
/// check finds no list.
#[test]
fn dropping_a_pending_resolution_cancels_it_and_leaks_nothing() {
    let _session = nt::emu::session();
    let (_net, _driver, registration) = registered();
    {
        let mut future = pin!(registration.resolve("localhost", 1));
        let _ = Wakes::new().poll(future.as_mut());
    }
    nt::emu::wsk::settle();
    assert!(common::wait_until(common::BOUND, || registration.live_sockets() == 0));
    ready(registration.deregister());
}

/// Dropped after the provider completed it and before it read the list: the drop frees the list.
#[test]
fn dropping_a_completed_unread_resolution_frees_its_list() {
    let _session = nt::emu::session();
    let (_net, _driver, registration) = registered();
    {
        let mut future = pin!(registration.resolve("127.0.0.1", 1));
        let wakes = Wakes::new();
        if wakes.poll(future.as_mut()).is_pending() {
            nt::emu::wsk::settle();
            assert_eq!(wakes.count(), 1, "the completion woke the future");
        }
    }
    assert!(common::wait_until(common::BOUND, || registration.live_sockets() == 0));
    ready(registration.deregister());
}

/// Under `pending`, the IRP pends for sure and the drop's cancel ends it with no list.
#[test]
fn under_the_pending_schedule_the_drop_cancels_the_irp() {
    let _session = nt::emu::session();
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Pending);
    let (_net, _driver, registration) = registered();
    {
        let mut future = pin!(registration.resolve("localhost", 1));
        assert!(Wakes::new().poll(future.as_mut()).is_pending());
        assert_eq!(registration.live_sockets(), 1);
    }
    nt::emu::wsk::settle();
    assert!(common::wait_until(common::BOUND, || registration.live_sockets() == 0));
    // A resolution after that works as before.
    assert_eq!(ready(registration.resolve("::1", 2)).unwrap().len(), 1);
    ready(registration.deregister());
}

/// The provider refuses the cancel (`IoCancelIrp` returns FALSE) and completes the dropped
/// resolution with a list: the completion routine hands the slot to the registration's deferred
/// closer, which frees the list, once (a second free is a violation, a missing one a leak in the
/// session's report).
#[test]
fn a_list_that_arrives_after_the_drop_is_freed_by_the_deferred_closer() {
    let _session = nt::emu::session();
    // The IRP must still pend when the future is dropped.
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Pending);
    nt::emu::wsk::set_resolution_past_cancel(true);
    let (_net, _driver, registration) = registered();
    {
        let mut future = pin!(registration.resolve("localhost", 1));
        assert!(Wakes::new().poll(future.as_mut()).is_pending());
    }
    assert_eq!(registration.live_sockets(), 1, "the IRP is still with the provider");
    nt::emu::wsk::settle();
    assert!(common::wait_until(common::BOUND, || registration.live_sockets() == 0));
    ready(registration.deregister());
}

/// Wine 8's netio resolves (on a thread pool, so it pends) without a cancel routine: a dropped
/// resolution still delivers its list, which the deferred closer frees.
#[test]
fn under_wine8_netio_a_dropped_resolution_still_frees_its_list() {
    let _session = nt::emu::session();
    nt::emu::wsk::set_wine8_netio(true);
    let (_net, _driver, registration) = registered();
    assert_eq!(ready(registration.resolve("127.0.0.1", 9)).unwrap().len(), 1);
    {
        let mut future = pin!(registration.resolve("localhost", 9));
        let _ = Wakes::new().poll(future.as_mut());
    }
    nt::emu::wsk::settle();
    assert!(common::wait_until(common::BOUND, || registration.live_sockets() == 0));
    ready(registration.deregister());
}

/// The violations a test run in recording mode saw (none expected).
fn violations() -> Vec<String> {
    nt::emu::take_violations()
        .iter()
        .map(|v| v.message().to_owned())
        .collect()
}

/// A completed, unread resolution dropped at DISPATCH_LEVEL (a drop under a spin lock): the drop may
/// not call `WskFreeAddressInfo` (PASSIVE_LEVEL only, and the list may be paged), so it hands the
/// list to the registration's deferred closer, whose work item frees it at PASSIVE_LEVEL.
#[test]
fn a_completed_unread_resolution_dropped_at_dispatch_frees_its_list_at_passive() {
    let _session = nt::emu::session();
    nt::emu::expect_violations();
    // The IRP must pend, so that the drop comes after its completion and before the read.
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Pending);
    let (_net, _driver, registration) = registered();
    let mut future = Box::pin(registration.resolve("localhost", 1));
    let wakes = Wakes::new();
    assert!(wakes.poll(future.as_mut()).is_pending());
    nt::emu::wsk::settle();
    assert_eq!(wakes.count(), 1, "the completion woke the future");
    nt::emu::at_dispatch(|| drop(future));
    assert!(common::wait_until(common::BOUND, || registration.live_sockets() == 0));
    ready(registration.deregister());
    assert_eq!(violations(), Vec::<String>::new());
}

/// A list that arrived after its resolution was dropped waits in the orphan list; a poll that
/// drains that list at DISPATCH_LEVEL (here a `bind_datagram`'s) must leave it to the work item,
/// which frees it at PASSIVE_LEVEL.
#[test]
fn a_drain_at_dispatch_leaves_a_late_list_to_the_work_item() {
    let _session = nt::emu::session();
    nt::emu::expect_violations();
    // The IRP must still pend when the future is dropped.
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Pending);
    nt::emu::wsk::set_resolution_past_cancel(true);
    let (_net, _driver, registration) = registered();
    let held = nt::emu::work_items::hold();
    {
        let mut future = pin!(registration.resolve("localhost", 1));
        assert!(Wakes::new().poll(future.as_mut()).is_pending());
    }
    nt::emu::wsk::settle();
    assert_eq!(
        registration.live_sockets(),
        1,
        "the late list waits for the deferred closer"
    );
    nt::emu::at_dispatch(|| {
        let mut bind = Box::pin(registration.bind_datagram("127.0.0.1:0".parse().unwrap()));
        let _ = Wakes::new().poll(bind.as_mut());
        drop(bind);
    });
    drop(held);
    assert!(common::wait_until(common::BOUND, || registration.live_sockets() == 0));
    ready(registration.deregister());
    assert_eq!(violations(), Vec::<String>::new());
}

/// `WskGetAddressInfo` requires PASSIVE_LEVEL: a resolution polled above it fails without calling
/// the provider, and one polled above it after its IRP was submitted fails too, without reading
/// the list there (the deferred closer frees it at PASSIVE_LEVEL).
#[test]
fn a_resolution_polled_at_dispatch_fails_without_calling_the_provider_at_dispatch() {
    let _session = nt::emu::session();
    nt::emu::expect_violations();
    let (_net, _driver, registration) = registered();
    let mut future = Box::pin(registration.resolve("localhost", 1));
    let polled = nt::emu::at_dispatch(|| Wakes::new().poll(future.as_mut()));
    match polled {
        Poll::Ready(Err(e)) => assert!(e.is_invalid_state(), "{e:?}"),
        other => panic!("{other:?}"),
    }
    drop(future);
    assert_eq!(registration.live_sockets(), 0);
    // Submitted at PASSIVE_LEVEL, completed, then polled at DISPATCH_LEVEL.
    let mut future = Box::pin(registration.resolve("localhost", 1));
    let wakes = Wakes::new();
    if wakes.poll(future.as_mut()).is_pending() {
        nt::emu::wsk::settle();
        assert_eq!(wakes.count(), 1, "the completion woke the future");
        let polled = nt::emu::at_dispatch(|| wakes.poll(future.as_mut()));
        match polled {
            Poll::Ready(Err(e)) => assert!(e.is_invalid_state(), "{e:?}"),
            other => panic!("{other:?}"),
        }
    }
    drop(future);
    assert!(common::wait_until(common::BOUND, || registration.live_sockets() == 0));
    ready(registration.deregister());
    assert_eq!(violations(), Vec::<String>::new());
}

/// An entry the provider got wrong is skipped, never read beyond what it holds nor taken for an
/// address: an `ai_addrlen` too short for its family's socket address, a NULL `ai_addr`, a family
/// that is not IP. The rest of the list is still used, and the list is still freed.
#[test]
fn malformed_entries_of_the_providers_list_are_skipped() {
    use nt::emu::wsk::ListDefect;
    for defect in [
        ListDefect::ShortAddrlen,
        ListDefect::NullAddr,
        ListDefect::UnknownFamily,
    ] {
        let _session = nt::emu::session();
        nt::emu::wsk::set_resolution_list_defect(Some(defect));
        let (_net, _driver, registration) = registered();
        // `localhost`: [::1] (the defective first entry), then 127.0.0.1.
        let addrs = ready(registration.resolve("localhost", 7)).unwrap();
        assert_eq!(
            addrs.iter().collect::<Vec<_>>(),
            vec!["127.0.0.1:7".parse::<SocketAddr>().unwrap()],
            "{defect:?}"
        );
        ready(registration.deregister());
    }
}

/// A list whose every entry is skipped (here the one entry of a numeric address, made defective) is
/// a failure with STATUS_NOT_FOUND, never an empty success a caller could take `first()` of; the
/// list is still freed.
#[test]
fn a_list_with_no_usable_entry_fails_with_not_found() {
    use nt::emu::wsk::ListDefect;
    for defect in [
        ListDefect::ShortAddrlen,
        ListDefect::NullAddr,
        ListDefect::UnknownFamily,
    ] {
        let _session = nt::emu::session();
        nt::emu::wsk::set_resolution_list_defect(Some(defect));
        let (_net, _driver, registration) = registered();
        let error = ready(registration.resolve("127.0.0.1", 7)).unwrap_err();
        assert_eq!(error.status(), nt::STATUS_NOT_FOUND, "{defect:?}");
        ready(registration.deregister());
    }
}

/// A broken provider's cyclic list in which no entry is usable: the walk stops after
/// `wsk_async::MAX_LIST_ENTRIES` entries and the resolution fails with STATUS_NOT_FOUND, rather
/// than spinning for ever at PASSIVE_LEVEL; the list is still freed. The resolution runs on another
/// thread so that a walk that does not end fails the test after a bound instead of hanging it.
#[test]
fn a_cyclic_list_is_walked_a_bounded_number_of_entries() {
    let _session = nt::emu::session();
    nt::emu::wsk::set_resolution_list_defect(Some(nt::emu::wsk::ListDefect::Cycle));
    let (_net, _driver, registration) = registered();
    let (tx, rx) = std::sync::mpsc::channel();
    let resolver = std::thread::spawn(move || {
        let result = ready(registration.resolve("localhost", 7)).map(|addrs| addrs.len());
        let _ = tx.send(result);
        registration
    });
    let result = rx.recv_timeout(common::BOUND).expect("the walk of a cyclic list ends");
    assert_eq!(result.unwrap_err().status(), nt::STATUS_NOT_FOUND);
    let registration = resolver.join().unwrap();
    ready(registration.deregister());
}

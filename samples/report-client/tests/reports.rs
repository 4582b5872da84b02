//! The report client against real TCP servers on loopback (std listeners in the test): reports in
//! order, reconnection with backoff after the server closes, and after connections are refused.
//!
//! The emulation's clock is paused in each test: the interval and the backoff waits pass only when
//! the test advances it (`nt::emu::clock::advance`), so the tests measure every wait on that clock
//! and never sleep.
#![cfg(not(target_os = "windows"))]

mod common;

use common::*;
use report_client::Phase;
use std::io::{BufReader, Write};
use std::time::Duration;

#[test]
fn reports_arrive_in_order_with_increasing_sequence_numbers_and_replies_are_read() {
    let server = listener();
    let port = server.local_addr().unwrap().port();
    let (client, ()) = Client::start_with(config(port), nt::emu::clock::pause);
    let stream = accept(&server);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);

    // A send completes when TCP has acknowledged it, in real time; the reports are timed on the
    // paused clock, moved until five were sent.
    advance_until("five reports sent", |c| c.reports_sent >= 5);
    for expected in 0..5 {
        let report = read_report(&mut reader);
        assert_eq!(report.sequence, expected, "{report:?}");
        assert_eq!(
            (report.connects, report.reconnects, report.failures),
            (1, 0, 0),
            "{report:?}"
        );
        // Every report carries the reports sent before it (completed sends: acknowledged by TCP).
        assert!(report.sent <= expected, "{report:?}");
        // The server may answer; the client reads and counts it.
        writer.write_all(b"ok\n").unwrap();
    }
    let counters = wait_for_counters("five answers read", |c| c.bytes_received == 15);
    assert_eq!(
        (counters.connects, counters.failures, counters.phase),
        (1, 0, Phase::Connected)
    );
    client.finish();
}

/// On the in-memory network a send completes when the peer reads it, with no real time involved:
/// the reports are one interval apart on the emulation's clock, one per interval.
#[test]
fn reports_are_one_interval_apart() {
    const PORT: u16 = 7070;
    let (client, (net, peers)) = Client::start_with(config(PORT), || {
        nt::emu::clock::pause();
        let net = nt::emu::wsk::MemoryNetwork::install();
        let peers = net.listen((std::net::Ipv4Addr::LOCALHOST, PORT).into());
        (net, peers)
    });
    let mut peer = None;
    wait_until("the client connects", || {
        peer = peers.accept();
        peer.is_some()
    });
    let peer = peer.unwrap();
    let mut pending = Vec::new();
    // The clock has not moved since the connection: the first report is due now, report k an
    // interval k times later (timed from when each was due, not from when its send completed).
    let first_due = nt::emu::clock::now();
    for expected in 0..5u64 {
        if expected > 0 {
            step_clock_until("the next report", || peer.unread() > 0);
            let since_first = Duration::from_nanos((nt::emu::clock::now() - first_due) * 100);
            let due = INTERVAL * expected as u32;
            assert!(
                since_first >= due,
                "report {expected} came {since_first:?} after the first"
            );
        }
        let report = read_peer_report(&peer, &mut pending);
        assert!(pending.is_empty(), "more than one report per interval");
        assert_eq!((report.sequence, report.sent), (expected, expected), "{report:?}");
        // Read, hence acknowledged: its send completes.
        wait_for_counters("the report's send completed", |c| c.reports_sent == expected + 1);
    }
    client.finish();
    drop(net);
}

#[test]
fn the_server_closing_makes_the_client_reconnect_after_the_minimum_backoff() {
    let server = listener();
    let port = server.local_addr().unwrap().port();
    let (client, ()) = Client::start_with(config(port), nt::emu::clock::pause);

    let mut last_sequence = None;
    for round in 1..=3u64 {
        let mut reader = BufReader::new(accept(&server));
        let report = read_report(&mut reader);
        assert_eq!(
            (report.connects, report.reconnects, report.failures),
            (round, round - 1, round - 1),
            "{report:?}"
        );
        // The sequence goes on across connections.
        assert!(
            last_sequence.is_none_or(|last| report.sequence > last),
            "{report:?} after {last_sequence:?}"
        );
        last_sequence = Some(report.sequence);

        drop(reader); // the server closes
        let counters = wait_for_counters("the client backs off after the server closed", |c| {
            c.phase == Phase::BackingOff && c.backoffs == round
        });
        // Each connection resets the backoff: always the minimum after a closed connection.
        assert_eq!(counters.last_backoff_ms, BACKOFF_MIN.as_millis() as u64);
        assert_eq!(counters.failures, round);
        let retry_at = counters.retry_at.expect("a backoff has an end");
        assert!(retry_at <= EmuInstant::now() + BACKOFF_MIN, "{counters:?}");
        let (_, seen_at) = advance_until("the client reconnects", |c| c.connects == round + 1);
        assert!(
            seen_at >= retry_at,
            "reconnected at {seen_at:?}, before the backoff ended at {retry_at:?}"
        );
    }
    accept(&server);
    wait_for_counters("the fourth connection", |c| c.connects == 4 && c.reconnects == 3);
    client.finish();
}

#[test]
fn refused_connections_back_off_exponentially_until_a_listener_appears() {
    let closed = ClosedPort::new();
    let (client, ()) = Client::start_with(config(closed.port()), nt::emu::clock::pause);

    // 100, 200, 400, 800, 800 ms: doubling to the cap.
    let expected_waits = [100, 200, 400, 800, 800];
    let mut counters = wait_for_counters("the client backs off after a refused connect", |c| {
        c.phase == Phase::BackingOff && c.backoffs == 1
    });
    for (i, &wait) in expected_waits.iter().enumerate() {
        assert_eq!(counters.last_backoff_ms, wait, "wait {i}: {counters:?}");
        assert_eq!((counters.connects, counters.failures), (0, i as u64 + 1));
        let retry_at = counters.retry_at.expect("a backoff has an end");
        assert!(
            retry_at <= EmuInstant::now() + Duration::from_millis(wait),
            "wait {i}: {counters:?}"
        );
        if i + 1 == expected_waits.len() {
            break;
        }
        // The next attempt begins when the wait ends, not before.
        let (_, seen_at) = advance_until("the next attempt", |c| {
            c.backoffs == i as u64 + 2 || c.phase != Phase::BackingOff
        });
        assert!(
            seen_at >= retry_at,
            "wait {i}: tried again at {seen_at:?}, before {retry_at:?}"
        );
        counters = wait_for_counters("the next refused attempt", |c| {
            c.phase == Phase::BackingOff && c.backoffs == i as u64 + 2
        });
    }
    // The server comes up during the last wait; the client connects when it ends.
    let retry_at = counters.retry_at.expect("a backoff has an end");
    let server = closed.listen();
    let (_, seen_at) = advance_until("the client connects", |c| c.connects == 1);
    assert!(
        seen_at >= retry_at,
        "connected at {seen_at:?}, before the backoff ended at {retry_at:?}"
    );
    let mut reader = BufReader::new(accept(&server));
    let report = read_report(&mut reader);
    assert_eq!(
        (report.connects, report.reconnects, report.failures),
        (1, 0, 5),
        "{report:?}"
    );
    client.finish();
}

#[test]
fn a_name_that_does_not_resolve_is_a_failure_followed_by_backoff() {
    let config = report_client::Config {
        host: "no-such-host.invalid",
        // The name never resolves: no connection is attempted, the port does not matter.
        ..config(9)
    };
    let (client, ()) = Client::start_with(config, nt::emu::clock::pause);
    let counters = wait_for_counters("the client backs off after the resolution failed", |c| {
        c.phase == Phase::BackingOff && c.backoffs == 1
    });
    assert_eq!(
        (counters.connects, counters.failures, counters.last_backoff_ms),
        (0, 1, 100)
    );
    let retry_at = counters.retry_at.expect("a backoff has an end");
    let (_, seen_at) = advance_until("the next attempt", |c| c.backoffs == 2 || c.phase != Phase::BackingOff);
    assert!(seen_at >= retry_at, "tried again at {seen_at:?}, before {retry_at:?}");
    let counters = wait_for_counters("the second backoff", |c| {
        c.phase == Phase::BackingOff && c.backoffs == 2
    });
    assert_eq!((counters.failures, counters.last_backoff_ms), (2, 200));
    client.finish();
}

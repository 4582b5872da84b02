//! DriverUnload at any point of the client's life: while it resolves the server's name, while its
//! connect is pending, while a report's send cannot complete, while it backs off, and right after
//! DriverEntry (wherever the first attempt is). Each ends with DriverUnload returning within the bound, the image unloaded, an empty leak
//! report (no IRP, socket, timer, work item or pool block left) and no kernel rule broken.
#![cfg(not(target_os = "windows"))]

mod common;

use common::*;
use nt::emu::wsk::{Completion, MemoryNetwork, OpKind};
use report_client::Phase;
use std::net::{Ipv4Addr, SocketAddr};

/// The in-memory server's address.
const SERVER: (Ipv4Addr, u16) = (Ipv4Addr::LOCALHOST, 7070);

#[test]
fn unload_while_resolving() {
    let (mut client, ()) = Client::start_with(config(SERVER.1), || {
        // The name service never answers: only the unload's cancel ends the resolution.
        nt::emu::wsk::set_resolution_held(true);
    });
    wait_until("the resolution is held by the provider", || {
        nt::emu::wsk::pending_resolutions() == 1
    });
    assert_eq!(report_client::counters().phase, Phase::Resolving);
    client.unload();
    assert_eq!(
        nt::emu::wsk::pending_resolutions(),
        0,
        "the held resolution was cancelled"
    );
    let counters = report_client::counters();
    assert_eq!((counters.connects, counters.failures), (0, 0));
    client.finish();
}

#[test]
fn unload_while_the_connect_is_pending() {
    let (mut client, net) = Client::start_with(config(SERVER.1), || {
        let net = MemoryNetwork::install();
        // The server's side never answers the connect: only the unload's cancel ends it.
        net.script(OpKind::Connect, Completion::Hold);
        net
    });
    wait_until("the connect is held by the provider", || net.held().len() == 1);
    assert_eq!(report_client::counters().phase, Phase::Connecting);
    client.unload();
    assert!(net.held().is_empty(), "the held connect was cancelled");
    let counters = report_client::counters();
    assert_eq!((counters.connects, counters.reports_sent), (0, 0));
    client.finish();
    drop(net);
}

#[test]
fn unload_while_a_report_cannot_be_sent() {
    let (mut client, (net, peers)) = Client::start_with(config(SERVER.1), || {
        let net = MemoryNetwork::install();
        let peers = net.listen(SocketAddr::from(SERVER));
        (net, peers)
    });
    let mut peer = None;
    wait_until("the client connects", || {
        peer = peers.accept();
        peer.is_some()
    });
    let peer = peer.unwrap();
    // The server never reads: the report arrives, but its send completes only when read.
    wait_until("the first report arrives", || peer.unread() > 0);
    let counters = report_client::counters();
    assert_eq!((counters.phase, counters.reports_sent), (Phase::Connected, 0));
    client.unload();
    assert!(peer.was_reset(), "unload closes the connection abortively");
    assert_eq!(report_client::counters().reports_sent, 0);
    client.finish();
    drop(net);
}

#[test]
fn unload_while_backing_off() {
    let closed = ClosedPort::new();
    let (mut client, ()) = Client::start_with(config(closed.port()), nt::emu::clock::pause);
    wait_for_counters("the client backs off after a refused connect", |c| {
        c.phase == Phase::BackingOff && c.backoffs == 1
    });
    // The clock is paused: the backoff never ends by itself.
    client.unload();
    let counters = report_client::counters();
    assert_eq!(
        (counters.connects, counters.failures, counters.phase),
        (0, 1, Phase::Idle)
    );
    client.finish();
}

/// Unload as soon as the task has begun, wherever its first attempt is then: resolving (the emulated
/// `WskGetAddressInfo` pends under `realistic` and `pending`, as on Windows, until the provider's
/// next delivery), connecting (to `::1`, refused, or to `127.0.0.1`), or already reporting. It does
/// not hold the resolution (`unload_while_resolving` does), so which phases it hits depends on the
/// schedule and the timing; it prints them.
#[test]
fn unload_as_soon_as_the_first_attempt_begins() {
    let server = listener();
    let port = server.local_addr().unwrap().port();
    let mut phases = Vec::new();
    for _ in 0..20 {
        let (client, ()) = Client::start_with(config(port), || ());
        // The task has begun (it resolves first).
        let started = wait_for_counters("the task starts", |c| c.phase != Phase::Idle);
        phases.push(started.phase);
        client.finish();
        // Whatever connected is gone by now (reset); drain the backlog for the next round.
        while has_pending_connection(&server) {}
    }
    eprintln!("unloaded in these phases: {phases:?}");
}

//! What the client's completion routine sees of how its IRP completed, per completion schedule
//! (in-memory transport, Miri-clean): `Irp->PendingReturned` (TRUE exactly when the WSK function
//! returned STATUS_PENDING: the provider marked the IRP pending) and the IRQL (an inline completion
//! runs at DISPATCH_LEVEL under `inline`, and under `random` by its seeded choice, as when the
//! provider completes while holding a spin lock; `realistic` keeps the caller's IRQL).
#![cfg(not(target_os = "windows"))]

mod wsk_support;

use nt::emu::wsk::{MemoryNetwork, Peer, Schedule, set_schedule, settle};
use nt::emu::{self};
use nt::*;
use std::net::{Ipv4Addr, SocketAddr};
use wsk_support::*;

/// A connected socket on the in-memory network, with its listener and peer.
fn connect(net: &MemoryNetwork, client: &Client) -> (PWSK_SOCKET, PWSK_SOCKET, Peer) {
    let listener = dual_stack_listener(client, 0);
    let port = local_address(listener).port();
    let peer = net
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .expect("connect");
    let op = IrpOp::new();
    let remote = Addr::empty();
    accept(listener, &remote, &op);
    let (status, socket) = op.wait();
    assert_eq!(status, STATUS_SUCCESS);
    (listener, socket as PWSK_SOCKET, peer)
}

/// A receive on `socket` with data already there; returns what the call returned.
fn receive_waiting_data(socket: PWSK_SOCKET, peer: &Peer, op: &IrpOp) -> NTSTATUS {
    peer.write(b"data").unwrap();
    let buf = PoolBuf::new(16);
    let returned = receive(socket, &buf, 0, 16, 0, op);
    assert_eq!(op.wait(), (STATUS_SUCCESS, 4));
    returned
}

#[test]
fn a_pended_receive_sees_pending_returned_and_an_inline_one_does_not() {
    let _session = emu::session();
    // Pins `realistic`: the second receive must complete inline, at the caller's IRQL.
    set_schedule(Schedule::Realistic);
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, peer) = connect(&net, &client);
    let op = IrpOp::new();
    let buf = PoolBuf::new(16);
    assert_eq!(receive(socket, &buf, 0, 16, 0, &op), STATUS_PENDING);
    peer.write(b"late").unwrap();
    assert_eq!(op.wait(), (STATUS_SUCCESS, 4));
    assert!(
        op.pending_returned(),
        "STATUS_PENDING was returned: the IRP was marked pending"
    );
    assert_eq!(receive_waiting_data(socket, &peer, &op), STATUS_SUCCESS);
    assert!(!op.pending_returned(), "completed inline: not marked pending");
    assert_eq!(op.completed_at(), PASSIVE_LEVEL, "realistic: the caller's IRQL");
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn under_pending_deferred_completions_see_pending_returned() {
    let _session = emu::session();
    set_schedule(Schedule::Pending);
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, peer) = connect(&net, &client);
    let op = IrpOp::new();
    // Data already there, but `pending` defers the completion.
    peer.write(b"data").unwrap();
    let buf = PoolBuf::new(16);
    assert_eq!(receive(socket, &buf, 0, 16, 0, &op), STATUS_PENDING);
    assert!(!op.is_done());
    settle();
    assert_eq!(op.result(), (STATUS_SUCCESS, 4));
    assert!(op.pending_returned());
    // A call carried out at once (the close) and completed later.
    let f = basic(socket).WskCloseSocket.expect("WskCloseSocket");
    // SAFETY: valid socket; the IRP is fresh.
    assert_eq!(unsafe { f(socket, op.start()) }, STATUS_PENDING);
    assert_eq!(op.wait(), (STATUS_SUCCESS, 0));
    assert!(op.pending_returned());
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn under_inline_an_inline_completion_runs_at_dispatch_level() {
    let _session = emu::session();
    set_schedule(Schedule::Inline);
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, peer) = connect(&net, &client);
    let op = IrpOp::new();
    assert_eq!(receive_waiting_data(socket, &peer, &op), STATUS_SUCCESS);
    assert_eq!(op.completed_at(), DISPATCH_LEVEL, "as under the provider's spin lock");
    assert!(!op.pending_returned());
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn under_random_the_seed_chooses_the_irql_of_inline_completions() {
    let mut irqls = Vec::new();
    for seed in 0..32 {
        let _session = emu::session();
        set_schedule(Schedule::Random(seed));
        let net = MemoryNetwork::install();
        let client = Client::register();
        let (listener, socket, peer) = connect(&net, &client);
        let op = IrpOp::new();
        let returned = receive_waiting_data(socket, &peer, &op);
        assert_eq!(op.pending_returned(), returned == STATUS_PENDING);
        if returned == STATUS_SUCCESS {
            irqls.push(op.completed_at());
        }
        assert_eq!(close(socket), STATUS_SUCCESS);
        assert_eq!(close(listener), STATUS_SUCCESS);
        client.deregister();
    }
    assert!(
        irqls.contains(&DISPATCH_LEVEL) && irqls.contains(&PASSIVE_LEVEL),
        "{irqls:?}"
    );
}

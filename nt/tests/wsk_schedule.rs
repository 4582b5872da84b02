//! The completion schedules and the calls that are carried out at once but may complete later
//! (`WskSocket`, `WskBind`, `WskCloseSocket`), on the in-memory transport (Miri-clean).
#![cfg(not(target_os = "windows"))]

mod wsk_support;

use nt::emu::wsk::{Completion, MemoryNetwork, OpKind, Schedule, set_schedule, settle};
use nt::emu::{self};
use nt::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::ptr;
use wsk_support::*;

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// `WskBind` on `op`; returns what the call returned.
fn bind_on(socket: PWSK_SOCKET, local: &Addr, op: &IrpOp) -> NTSTATUS {
    let f = listen(socket).WskBind.expect("WskBind");
    // SAFETY: valid socket and address, both outliving the IRP.
    unsafe { f(socket, local.ptr(), 0, op.start()) }
}

/// `WskCloseSocket` on `op`; returns what the call returned.
fn close_on(socket: PWSK_SOCKET, op: &IrpOp) -> NTSTATUS {
    let f = basic(socket).WskCloseSocket.expect("WskCloseSocket");
    // SAFETY: valid socket, fresh IRP.
    unsafe { f(socket, op.start()) }
}

#[test]
fn pending_defers_every_completion_until_the_provider_delivers_it() {
    let _session = emu::session();
    set_schedule(Schedule::Pending);
    assert_eq!(emu::wsk::schedule(), Schedule::Pending);
    let net = MemoryNetwork::install();
    let client = Client::register();
    let listener = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    let local = Addr::new(loopback());
    let op = IrpOp::new();
    assert_eq!(bind_on(listener, &local, &op), STATUS_PENDING);
    assert!(!op.is_done(), "deferred: nothing completes it before the provider does");
    assert!(!op.cancel(), "a deferred completion is past the point of cancellation");
    assert_eq!(settle(), 1);
    assert_eq!(op.result(), (STATUS_SUCCESS, 0));
    assert_eq!(op.completed_at(), DISPATCH_LEVEL, "delivered as from a DPC");
    let close = IrpOp::new();
    assert_eq!(close_on(listener, &close), STATUS_PENDING);
    // A driver thread about to wait delivers it first (`wait` is KeWaitForSingleObject).
    assert_eq!(close.wait(), (STATUS_SUCCESS, 0));
    client.deregister();
    drop(net);
}

#[test]
fn a_random_seed_replays_the_same_choices() {
    let run = |seed| {
        let _session = emu::session();
        set_schedule(Schedule::Random(seed));
        let net = MemoryNetwork::install();
        let client = Client::register();
        let listener = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
        let mut returned = Vec::new();
        for _ in 0..16 {
            let op = IrpOp::new();
            let local = Addr::new(loopback());
            // The second bind on the socket fails: only whether it completes inline matters here.
            returned.push(bind_on(listener, &local, &op) == STATUS_PENDING);
            op.wait();
        }
        assert_eq!(close(listener), STATUS_SUCCESS);
        client.deregister();
        drop(net);
        returned
    };
    let first = run(7);
    assert_eq!(run(7), first);
    assert!(first.contains(&true) && first.contains(&false), "{first:?}");
}

#[test]
fn a_held_socket_creation_completes_with_its_socket_when_released() {
    let _session = emu::session();
    set_schedule(Schedule::Realistic);
    let net = MemoryNetwork::install();
    let client = Client::register();
    net.script(OpKind::Socket, Completion::Hold);
    let op = IrpOp::new();
    // SAFETY: the dispatch table of a captured provider NPI.
    let f = unsafe { &*client.npi.Dispatch }.WskSocket.expect("WskSocket");
    // SAFETY: valid client handle and a fresh IRP.
    let returned = unsafe {
        f(
            client.npi.Client,
            AF_INET,
            SOCK_STREAM,
            IPPROTO_TCP,
            WSK_FLAG_LISTEN_SOCKET,
            ptr::null_mut(),
            ptr::null(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            op.start(),
        )
    };
    assert_eq!(returned, STATUS_PENDING);
    let held = net.held();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].kind, OpKind::Socket);
    assert!(!op.cancel(), "cannot be cancelled");
    assert!(net.release(held[0]));
    let (status, information) = op.result();
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(
        close(ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information)),
        STATUS_SUCCESS
    );
    client.deregister();
    drop(net);
}

#[test]
fn a_held_close_completes_when_released() {
    let _session = emu::session();
    set_schedule(Schedule::Realistic);
    let net = MemoryNetwork::install();
    let client = Client::register();
    let listener = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    net.script(OpKind::Close, Completion::Hold);
    let op = IrpOp::new();
    assert_eq!(close_on(listener, &op), STATUS_PENDING);
    let held = net.held();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].kind, OpKind::Close);
    assert!(!op.is_done());
    assert!(net.release(held[0]));
    assert_eq!(op.result(), (STATUS_SUCCESS, 0));
    client.deregister();
    drop(net);
}

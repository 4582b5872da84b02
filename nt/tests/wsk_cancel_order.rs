//! The order in which the IRPs a cancel, a close or an abortive disconnect ends complete, per
//! completion schedule (in-memory transport, Miri-clean). Windows documents no order: a cancelled
//! IRP may complete after `IoCancelIrp` returned, and a close or an abort may complete before the
//! IRPs it ended. `pending` always takes that harsh order, `random` by its seeded choice;
//! `realistic` and `inline` keep the kind one (invented, marked in `schedule.rs`).
#![cfg(not(target_os = "windows"))]

mod wsk_support;

use nt::emu::wsk::{MemoryNetwork, Schedule, set_schedule, settle};
use nt::emu::{self};
use nt::*;
use std::sync::atomic::{AtomicU8, Ordering};
use wsk_support::*;

/// A connected socket on the in-memory network (kept alive with its peer and listener).
struct Conn {
    _net: MemoryNetwork,
    client: Client,
    listener: PWSK_SOCKET,
    socket: PWSK_SOCKET,
    peer: emu::wsk::Peer,
}

fn connect() -> Conn {
    let net = MemoryNetwork::install();
    let client = Client::register();
    let listener = dual_stack_listener(&client, 0);
    let port = local_address(listener).port();
    let peer = net
        .connect(std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)))
        .expect("connect");
    let op = IrpOp::new();
    let remote = Addr::empty();
    accept(listener, &remote, &op);
    let (status, socket) = op.wait();
    assert_eq!(status, STATUS_SUCCESS);
    Conn {
        _net: net,
        client,
        listener,
        socket: socket as PWSK_SOCKET,
        peer,
    }
}

impl Conn {
    fn finish(self) {
        assert_eq!(close(self.listener), STATUS_SUCCESS);
        self.client.deregister();
    }
}

/// What an observing completion routine saw: whether `other` had completed when it ran.
struct Observer {
    other: *const IrpOp,
    /// 0: not run yet; 1: `other` was still pending; 2: `other` had completed.
    saw: AtomicU8,
}

unsafe extern "system" fn observe(_device: PDEVICE_OBJECT, _irp: PIRP, context: PVOID) -> NTSTATUS {
    // SAFETY: `context` is an Observer that outlives the IRP's completion, and its `other` IrpOp
    // outlives it too (both live on the test's stack until after `settle`).
    let observer = unsafe { &*(context as *const Observer) };
    // SAFETY: as above.
    let done = unsafe { (*observer.other).is_done() };
    observer.saw.store(if done { 2 } else { 1 }, Ordering::Release);
    // The IRP is the test's (driver-allocated): the I/O manager must not complete it further.
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Runs `call` with `op`'s IRP, whose completion routine records whether `other` had completed.
fn observed(op: &IrpOp, observer: &Observer, call: impl FnOnce(PIRP) -> NTSTATUS) -> NTSTATUS {
    let irp = op.start();
    // SAFETY: the IRP is ours and not yet passed on; `observer` outlives its completion.
    unsafe {
        IoSetCompletionRoutine(
            irp,
            Some(observe),
            observer as *const Observer as PVOID,
            true,
            true,
            true,
        )
    };
    call(irp)
}

/// Closes `conn.socket` while a receive pends; returns whether the receive had completed when the
/// close IRP's completion routine ran.
fn close_with_a_pending_receive(conn: &Conn) -> bool {
    let (recv_op, close_op) = (IrpOp::new(), IrpOp::new());
    let buf = PoolBuf::new(16);
    assert_eq!(receive(conn.socket, &buf, 0, 16, 0, &recv_op), STATUS_PENDING);
    let observer = Observer {
        other: &recv_op,
        saw: AtomicU8::new(0),
    };
    let f = basic(conn.socket).WskCloseSocket.expect("WskCloseSocket");
    // SAFETY: valid socket; the IRP is fresh.
    observed(&close_op, &observer, |irp| unsafe { f(conn.socket, irp) });
    settle();
    assert_eq!(recv_op.wait(), (STATUS_CANCELLED, 0));
    let saw = observer.saw.load(Ordering::Acquire);
    assert_ne!(saw, 0, "the close completed");
    saw == 2
}

#[test]
fn under_pending_a_cancelled_receive_completes_after_io_cancel_irp_returned() {
    let _session = emu::session();
    set_schedule(Schedule::Pending);
    let conn = connect();
    let op = IrpOp::new();
    let buf = PoolBuf::new(16);
    assert_eq!(receive(conn.socket, &buf, 0, 16, 0, &op), STATUS_PENDING);
    assert!(op.cancel(), "the cancel routine ran");
    assert!(!op.is_done(), "but the IRP completes later, as on another CPU");
    assert_eq!(settle(), 1);
    assert_eq!(op.result(), (STATUS_CANCELLED, 0));
    assert_eq!(op.completed_at(), DISPATCH_LEVEL);
    assert_eq!(close(conn.socket), STATUS_SUCCESS);
    conn.finish();
}

#[test]
fn under_pending_a_close_completes_before_the_receive_it_cancelled() {
    let _session = emu::session();
    set_schedule(Schedule::Pending);
    let conn = connect();
    assert!(!close_with_a_pending_receive(&conn));
    conn.finish();
}

#[test]
fn under_pending_an_abort_completes_before_the_receive_it_ended() {
    let _session = emu::session();
    set_schedule(Schedule::Pending);
    let c = connect();
    let (recv_op, abort_op) = (IrpOp::new(), IrpOp::new());
    let buf = PoolBuf::new(16);
    assert_eq!(receive(c.socket, &buf, 0, 16, 0, &recv_op), STATUS_PENDING);
    let observer = Observer {
        other: &recv_op,
        saw: AtomicU8::new(0),
    };
    let f = conn(c.socket).WskDisconnect.expect("WskDisconnect");
    // SAFETY: valid socket, NULL buffer (abortive), fresh IRP.
    let returned = observed(&abort_op, &observer, |irp| unsafe {
        f(c.socket, std::ptr::null_mut(), WSK_FLAG_ABORTIVE, irp)
    });
    assert_eq!(returned, STATUS_PENDING);
    assert!(c.peer.was_reset());
    settle();
    assert_eq!(observer.saw.load(Ordering::Acquire), 1, "the receive was still pending");
    assert_eq!(recv_op.result(), (STATUS_CONNECTION_ABORTED, 0));
    assert_eq!(close(c.socket), STATUS_SUCCESS);
    c.finish();
}

#[test]
fn under_realistic_a_close_completes_the_receive_it_cancelled_first() {
    let _session = emu::session();
    // Pins `realistic`: it checks the kind order this schedule keeps (invented, see `schedule.rs`).
    set_schedule(Schedule::Realistic);
    let conn = connect();
    assert!(close_with_a_pending_receive(&conn));
    conn.finish();
}

#[test]
fn under_random_the_seed_chooses_the_order() {
    let mut orders = Vec::new();
    for seed in 0..16 {
        let _session = emu::session();
        set_schedule(Schedule::Random(seed));
        let conn = connect();
        orders.push(close_with_a_pending_receive(&conn));
        conn.finish();
    }
    assert!(orders.contains(&true) && orders.contains(&false), "{orders:?}");
}

//! Slot-protocol cases that the in-memory transport cannot produce by itself, made deterministic by
//! letting the test play the lower driver for one IRP (`nt::emu::irp::enter_provider`, then
//! `IofCompleteRequest` at DISPATCH_LEVEL), while everything else runs the real code on the real
//! in-memory provider. They run under Miri too, which checks that nothing touches freed memory.
//!
//! Why the transport alone cannot: an abortive `WskDisconnect` completes at once whatever is
//! scripted, and a `WskCloseSocket` completes every operation it holds before it completes itself,
//! so the close IRP (or the handle) always makes a connection's last release. On real WSK an end-slot
//! IRP can make it: its completion routine on one CPU, the close's completion and the handle's drop
//! on another.

use crate::ctx::{SEND, StreamSlot};
use crate::op_state::Claim;
use crate::slot::SlotUse;
use crate::test_support::{Accepted, abort_left_pending, accepted, now};
use core::task::{Context, Poll, Waker};
use nt::*;

/// T4: the abort IRP's completion routine makes the context's last release, which frees the end
/// slots — the very `Op` the routine runs on — and `IoFreeIrp`s the routine's own IRP. Sound because
/// `complete_op` touches nothing of the slot after `SocketCtx::release`, and an IRP whose routine
/// returns `STATUS_MORE_PROCESSING_REQUIRED` is the driver's to free.
#[test]
fn end_slots_freed_from_inside_their_own_irps_completion_routine() {
    let _session = nt::emu::session();
    // `registration` bound first, so that it drops last if the test fails.
    let Accepted {
        registration,
        net,
        listener,
        conn,
        peer,
        ..
    } = accepted();
    let held = abort_left_pending(&conn);
    let irps = nt::emu::irp::live_count();
    // The handle closes the socket with the close slot and drops its reference; once the close has
    // completed (it may pend under a completion schedule: settled here), the pending abort IRP holds
    // the context's only reference.
    drop(conn);
    nt::emu::wsk::settle();
    assert!(peer.driver_closed());
    assert_eq!(
        registration.live_sockets(),
        2,
        "the listener and the connection's context"
    );
    assert_eq!(nt::emu::irp::live_count(), irps);
    nt::emu::at_dispatch(|| {
        // SAFETY: the test owns the pending IRP as its provider; it completes it once.
        unsafe {
            (*held).IoStatus = IO_STATUS_BLOCK::new(STATUS_SUCCESS, 0);
            IofCompleteRequest(held, 0);
        }
    });
    assert_eq!(
        registration.live_sockets(),
        1,
        "the routine's release freed the context"
    );
    assert_eq!(
        nt::emu::irp::live_count(),
        irps - 6,
        "receive, two sends, close, disconnect and abort (its own) IRPs freed"
    );
    now(listener.close()).expect("listener close");
    now(registration.deregister());
    drop(net);
}

/// M2: a listener's send slot has no IRP; it is orphaned from birth, so nobody can own (and so start)
/// it: a claim is refused and `poll_acquire` fails with an error value.
#[test]
fn a_listeners_send_slot_without_an_irp_cannot_be_acquired() {
    let _session = nt::emu::session();
    let s = accepted();
    let op = s.listener.ctx().slot(SEND);
    assert!(op.irp().is_null());
    assert_eq!(op.state.claim(), Claim::InUse);
    let mut slot = SlotUse::new();
    let acquired = slot.poll_acquire(op, &mut Context::from_waker(Waker::noop()));
    assert!(matches!(acquired, Poll::Ready(Err(e)) if e.is_invalid_state()));
    assert_eq!(slot.release(op), None, "nothing was held");
    // A connection's stream slots have their IRPs and their cells.
    let ctx = s.conn.ctx();
    for stream in [StreamSlot::Receive, StreamSlot::send(0), StreamSlot::send(1)] {
        assert!(!ctx.slot(stream.index()).irp().is_null());
    }
    // `registration` bound first, so that it drops last if the test fails.
    let Accepted {
        registration,
        net,
        listener,
        conn,
        peer,
        ..
    } = s;
    now(conn.close()).expect("close");
    now(listener.close()).expect("listener close");
    now(registration.deregister());
    drop((peer, net));
}

//! Shared by this crate's unit tests that play the lower driver for one IRP (`slot_edge_tests.rs`,
//! the abort tests in `disconnect.rs`): one accepted connection on the emulation's in-memory
//! network, and polling until ready (the provider delivers deferred completions between polls).

use crate::op_state::Claim;
use crate::{Connection, Device, Listener, Registration};
use core::future::Future;
use core::pin::{Pin, pin};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use nt::emu::wsk::{MemoryNetwork, Peer};
use nt::{PIRP, STATUS_PENDING};

/// Polls `future` once with a waker that does nothing.
pub(crate) fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// Polls `future` until ready, letting the provider deliver what its completion schedule deferred
/// between polls: on the in-memory network nothing else completes anything.
pub(crate) fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    for _ in 0..16 {
        if let Poll::Ready(output) = poll_once(future.as_mut()) {
            return output;
        }
        nt::emu::wsk::settle();
    }
    panic!("pending on the in-memory network")
}

/// A registration, a listener and one accepted connection with its remote peer.
pub(crate) struct Accepted {
    pub(crate) net: MemoryNetwork,
    pub(crate) listener: Listener,
    pub(crate) conn: Connection,
    pub(crate) peer: Peer,
    /// After the sockets: its blocking drop waits for them (a failing test must not hang).
    pub(crate) registration: Registration,
    /// Last: the registration references the device; the test driver deletes it.
    pub(crate) _device: Device,
    pub(crate) _object: nt::emu::driver::TestDevice,
}

/// Installs an in-memory network, registers, listens and accepts one connection from a peer.
pub(crate) fn accepted() -> Accepted {
    let net = MemoryNetwork::install();
    let object = nt::emu::driver::TestDevice::create();
    // SAFETY: a live device object of the emulated test driver.
    let device = unsafe { Device::from_raw(object.device()) }.expect("a device object");
    let registration = Registration::register_blocking(&device, Duration::from_secs(1)).expect("register");
    let listener = now(registration.listen("127.0.0.1:0".parse().unwrap())).expect("listen");
    let peer = net.connect(listener.local_addr().unwrap()).expect("peer connects");
    let conn = now(listener.accept()).expect("accept");
    Accepted {
        net,
        listener,
        conn,
        peer,
        registration,
        _device: device,
        _object: object,
    }
}

/// Starts an abortive disconnect on `conn`'s abort slot with the test acting as the provider: it
/// takes the IRP and leaves it pending, and the future lets go, as a dropped `abort()` leaves it.
/// Returns the IRP (the test owns it as the provider).
pub(crate) fn abort_left_pending(conn: &Connection) -> PIRP {
    let end = conn.ctx().ensure_end_slots().expect("end slots");
    let op = &end.abort;
    assert_eq!(op.state.claim(), Claim::Owned { stale: false });
    let mut held: PIRP = core::ptr::null_mut();
    // SAFETY: the abort slot is ours (claimed, KERNEL clear) and has an IRP; the "call" is the test
    // acting as the provider: it takes the IRP and leaves it pending.
    unsafe {
        op.start(|irp| {
            assert!(nt::emu::irp::enter_provider(irp));
            held = irp;
            Some(STATUS_PENDING)
        })
    };
    // The future is gone (an `Abort` is never cancelled); the kernel still owns the IRP.
    op.state.release();
    held
}

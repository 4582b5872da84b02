//! A provider that behaves like Wine 8.0's netio.sys where it falls short of Windows (measured by
//! loading the echo driver's `.sys` under Wine 8.0; see the Wine issue of this project), so that a
//! driver's degraded paths are tested on the host as well:
//!
//! * `WskSocketConnect`, `WskDisconnect` (graceful and abortive), `WskControlSocket`,
//!   `WskGetLocalAddress` and `WskGetRemoteAddress` are stubs: they log a FIXME, return
//!   STATUS_NOT_IMPLEMENTED and never complete, nor touch, the IRP (not even a NULL one is checked).
//!   That breaks the IRP contract (a non-pending return means the IRP was completed). An outgoing
//!   connection takes `WskSocket` (`WSK_FLAG_CONNECTION_SOCKET`), `WskBind`, then `WskConnect`, which
//!   Wine implements (`ConnectEx` on a thread pool; an unbound socket fails with
//!   STATUS_INVALID_DEVICE_STATE, as on Windows).
//! * `WskConnect` arms no cancel routine: `IoCancelIrp` returns FALSE and leaves a pending connect
//!   pending; only `WskCloseSocket` ends it, with STATUS_CANCELLED.
//! * An AF_INET6 bind fails (Wine passes a 16-byte address length to the host's bind).
//! * `WskSocket` creates listening and connection-oriented sockets only: a datagram socket fails
//!   with STATUS_NOT_IMPLEMENTED (the IRP is completed with it), so Wine 8 has no UDP.
//! * `WskGetAddressInfo` is implemented (`GetAddrInfoExW` on a thread pool: it pends) but arms no
//!   cancel routine: `IoCancelIrp` cannot end it, and a dropped resolution's list still arrives. (It
//!   also passes the node name's buffer on as a NUL-terminated string, which the emulation does not
//!   check: wsk-async terminates it.)
//!
//! Off by default; [`set`] turns it on for the rest of the session.

use crate::types::*;
use std::sync::atomic::{AtomicBool, Ordering};

static ON: AtomicBool = AtomicBool::new(false);

/// Turns the Wine 8.0 behaviour on or off.
pub fn set(on: bool) {
    ON.store(on, Ordering::SeqCst);
}

/// Whether it is on.
pub(crate) fn on() -> bool {
    ON.load(Ordering::SeqCst)
}

/// The status a Wine 8.0 stub returns, if `function` is one of them and the behaviour is on: the
/// caller returns it at once, leaving its IRP untouched.
pub(crate) fn stub(function: &str) -> Option<NTSTATUS> {
    let stubbed = matches!(
        function,
        "WskSocketConnect" | "WskDisconnect" | "WskControlSocket" | "WskGetLocalAddress" | "WskGetRemoteAddress"
    );
    (stubbed && on()).then(|| {
        log::warn!("{function}: stub (the Wine 8.0 netio behaviour)");
        STATUS_NOT_IMPLEMENTED
    })
}

pub(super) fn reset() {
    set(false);
}

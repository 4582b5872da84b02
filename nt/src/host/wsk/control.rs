//! Emulation controls for tests (`nt::emu::wsk`): the in-memory network, provider availability, the
//! `WskDeregister` bound, a hook to hold a call "in progress", the harsh order for cancellations, and
//! the completion schedule.

pub use super::memory::{
    Acknowledgement, Completion, DEFAULT_WINDOW, HeldOp, MemoryNetwork, Peer, PeerListener, UdpPeer,
};
pub use super::transport::{HostOption, OpKind};

use super::gate::CallGate;
use super::socket;
use crate::wsk::PWSK_SOCKET;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Makes the provider behave like Wine 8.0's netio.sys (stub WskSocketConnect, WskDisconnect,
/// WskControlSocket and address queries that never complete their IRP; no AF_INET6 bind; no datagram
/// sockets; a pending WskConnect or WskGetAddressInfo that `IoCancelIrp` cannot end) for the rest of
/// the session.
pub fn set_wine8_netio(on: bool) {
    super::wine8::set(on);
}

/// Makes the provider answer `SIO_WSK_QUERY_IDEAL_SEND_BACKLOG` (the default) or not, for the rest
/// of the session: when it does not, the query fails with STATUS_NOT_SUPPORTED on every socket (the
/// IRP is completed), as from a provider without it, so a client's path without the value stays
/// tested. Wine 8's stub, which never completes the IRP, is [`set_wine8_netio`].
pub fn set_ideal_send_backlog_answered(on: bool) {
    super::backlog::set_answered(on);
}

/// Makes the provider NPI available or not: while it is not, `WskCaptureProviderNPI` waits up to its
/// timeout and fails with STATUS_DEVICE_NOT_READY (at once with `WSK_NO_WAIT`). Available by default.
pub fn set_provider_ready(ready: bool) {
    super::registration::set_ready(ready);
}

/// How long `WskDeregister` waits for sockets to be closed and captures released before it reports
/// them (default 10 s; the kernel waits forever).
pub fn set_deregister_timeout(bound: Duration) {
    super::registration::set_deregister_timeout(bound);
}

/// A call paused inside the provider by [`pause_next_call`]. Dropping it releases the call.
pub struct PausedCall {
    gate: Arc<CallGate>,
}

impl PausedCall {
    /// Waits until the call is inside the provider (and so "in progress"); false after `bound`.
    pub fn wait_entered(&self, bound: Duration) -> bool {
        self.gate.wait_entered(bound)
    }

    /// Lets the call go on.
    pub fn release(&self) {
        self.gate.release();
    }
}

impl Drop for PausedCall {
    fn drop(&mut self) {
        self.gate.release();
    }
}

/// `option` as the transport under `socket` has it: over TCP, read back from the host socket
/// (`getsockopt`; `SO_EXCLUSIVEADDRUSE` is the absence of the host's SO_REUSEADDR on Linux, see
/// the TCP listener); on the in-memory network, what was recorded. None if `socket` is not open or
/// has no connection (`NoDelay`, `KeepAlive`) or listener (`ExclusiveAddressUse`).
pub fn host_option(socket: PWSK_SOCKET, option: HostOption) -> Option<bool> {
    let core = socket::lookup(socket)?;
    super::options::host(&core, option)
}

/// [`host_option`] of the open socket found by its addresses, for a client that does not hold the
/// socket pointer (a wrapping library): the connection from `local` to `peer`, or with `peer` None
/// the listener bound to `local`. None if there is no such socket.
pub fn host_option_at(local: SocketAddr, peer: Option<SocketAddr>, option: HostOption) -> Option<bool> {
    socket::open_cores().iter().find_map(|core| {
        let st = core.lock();
        let found = match peer {
            Some(peer) => st
                .wire
                .as_ref()
                .is_some_and(|w| w.local_addr() == local && w.peer_addr() == peer),
            None => st.listener.as_ref().is_some_and(|l| l.local_addr() == local),
        };
        drop(st);
        found.then(|| super::options::host(core, option)).flatten()
    })
}

/// Makes the next WSK call on `socket` stop inside the provider, after it has been counted as in
/// progress, until the returned handle releases it. None if `socket` is not an open socket.
pub fn pause_next_call(socket: PWSK_SOCKET) -> Option<PausedCall> {
    let core = socket::lookup(socket)?;
    let gate = Arc::new(CallGate::default());
    core.set_gate(gate.clone());
    Some(PausedCall { gate })
}

/// The harsh completion order for cancellations, for the rest of the session or until turned off:
/// every IRP the provider completes with STATUS_CANCELLED (`IoCancelIrp`, `WskCloseSocket`,
/// `WskDeregister`) is parked instead, and completed only by [`deliver_cancelled`], on the calling
/// thread at DISPATCH_LEVEL, as another CPU would complete it. So `IoCancelIrp` returns with the IRP
/// still pending, and a close completes before the IRPs it cancelled (an order Windows does not
/// document: invented, see the module `deferred`). Turning it off delivers what is parked.
pub fn set_defer_cancelled(on: bool) {
    super::deferred::set(on);
}

/// Completes every cancellation parked by [`set_defer_cancelled`], oldest first; returns how many.
pub fn deliver_cancelled() -> usize {
    super::deferred::deliver()
}

/// Waits until at least `count` cancellations are parked; false after `bound`.
pub fn wait_cancelled_parked(count: usize, bound: Duration) -> bool {
    super::deferred::wait_parked(count, bound)
}

/// While on (for the rest of the session), a pending `WskGetAddressInfo` cannot be cancelled: it
/// completes with its list when the provider delivers it, even after its client gave up on it.
pub fn set_resolution_past_cancel(on: bool) {
    super::resolve::set_past_cancel(on);
}

/// While on (for the rest of the session, or until turned off), every `WskGetAddressInfo` pends,
/// whatever the schedule, and is not resolved: it stays pending, with its cancel routine armed, so
/// that only `IoCancelIrp` (STATUS_CANCELLED, no list) ends it, as a name service that does not
/// answer. Turning it off lets the provider resolve what it held at its next delivery.
pub fn set_resolution_held(on: bool) {
    super::resolve::set_held(on);
}

/// How many `WskGetAddressInfo` calls pend in the provider (held by [`set_resolution_held`] or not
/// yet delivered).
pub fn pending_resolutions() -> usize {
    super::resolve::pending()
}

pub use super::resolve::ListDefect;

/// For the rest of the session (or until `None`), the first entry of every list `WskGetAddressInfo`
/// returns carries `defect`: what a client must not trust in a provider's list.
pub fn set_resolution_list_defect(defect: Option<ListDefect>) {
    super::resolve::set_defect(defect);
}

pub use super::schedule::{ENV as SCHEDULE_ENV, Schedule};

/// Sets the completion schedule for the rest of the session (a new session starts with the one
/// [`SCHEDULE_ENV`] names, `realistic` if unset). See [`Schedule`]. A test that depends on one
/// schedule sets it, and says why.
pub fn set_schedule(schedule: Schedule) {
    super::schedule::set(schedule);
}

/// The completion schedule in force.
pub fn schedule() -> Schedule {
    super::schedule::current()
}

/// Delivers every completion the schedule deferred, oldest first, on the calling thread at
/// DISPATCH_LEVEL, as the provider would from another CPU; returns how many. A driver thread that
/// waits does this itself; a test that polls futures by hand calls it where time would pass.
/// Completions parked by [`set_defer_cancelled`] stay parked (a deferred cancellation is parked when
/// it is delivered here).
pub fn settle() -> usize {
    super::later::deliver()
}

//! The operations the provider carries out during the WSK call itself — `WskSocket`, `WskBind`,
//! `WskControlSocket`, `WskGetLocalAddress` / `WskGetRemoteAddress`, `WskCloseSocket` — and whose
//! completion may still come later: deferred by the completion schedule ([`super::schedule`]), or
//! held by the in-memory transport's script ([`OpKind::Close`] and the others, with
//! `Completion::Hold`) until the test releases it. Windows documents each of them as IRP-based, so
//! each may return STATUS_PENDING; a client must survive every one pending and being dropped then.
//!
//! Invented: the effect happens at the call (the socket exists, the address is bound and written,
//! the option set, the connection reset and the socket gone for its client) and only the
//! completion is late; and a pending one cannot be cancelled (`IoCancelIrp` finds no cancel
//! routine). Windows documents neither; both are the harsher side for the client: its buffers are
//! written while it may have given up on the call, and a socket it no longer waits for still
//! arrives. A held close keeps its socket counted open, so `WskDeregister` waits for it.
//!
//! Invented (kind): under the `realistic` and `inline` schedules these complete inline; Wine's netio
//! test, run on Windows, saw WskSocket, WskBind and WskCloseSocket return STATUS_PENDING. The
//! schedules `pending` and `random` pend them.

use super::call::finish;
use super::irp::{Completions, Done, ProviderIrp};
use super::socket::{Decided, Op, Pending, SocketCore, SocketState};
use super::transport::{OpKind, Policy};
use crate::types::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What the transport's script says about the next operation of a kind.
pub(crate) enum Script {
    /// Carry it out; hold its completion under this id if there is one.
    Go(Option<u64>),
    /// Complete at once with this status, without carrying it out.
    Fail(NTSTATUS),
    /// Return this status and never complete the IRP (a provider that breaks the contract).
    Unfinished(NTSTATUS),
}

/// The script for the next operation of `kind` on `core`.
pub(crate) fn script(core: &Arc<SocketCore>, kind: OpKind) -> Script {
    match core.registration.policy(kind, &core.me) {
        Policy::Natural => Script::Go(None),
        Policy::Hold(id) | Policy::HoldPastCancel(id) => Script::Go(Some(id)),
        Policy::Fail(status) => Script::Fail(status),
        Policy::Unfinished(status) => Script::Unfinished(status),
    }
}

impl Decided {
    pub(crate) fn new(kind: OpKind, status: NTSTATUS, information: usize) -> Self {
        Self {
            kind,
            status,
            information,
            closes: false,
            creates: false,
        }
    }
}

impl SocketCore {
    /// The end of a decided operation's call: held under `hold` (STATUS_PENDING), else completed
    /// inline or later as the schedule decides.
    pub(crate) fn conclude_decided(
        self: &Arc<Self>,
        irp: ProviderIrp,
        hold: Option<u64>,
        decided: Decided,
    ) -> NTSTATUS {
        let Some(id) = hold else {
            return finish(irp, decided.status, decided.information);
        };
        let mut st = self.lock();
        super::irp::mark_pending(irp);
        st.held.push((
            id,
            Pending {
                irp,
                op: Op::Decided(decided),
            },
        ));
        // No cancel routine is ever armed: the provider owns the IRP outright (see `flush`).
        st.past_cancel.push((irp, None));
        STATUS_PENDING
    }

    /// A held decided operation ends: with its decided result (`status` None), or with `status`
    /// (a success keeps the decided `Information`). A close then counts its socket closed; a socket
    /// creation that fails destroys its socket, which is never handed out.
    pub(crate) fn complete_decided(
        &self,
        st: &mut SocketState,
        irp: ProviderIrp,
        decided: Decided,
        status: Option<NTSTATUS>,
        out: &mut Completions,
    ) {
        let (status, information) = match status {
            None => (decided.status, decided.information),
            Some(status) if NT_SUCCESS(status) => (status, decided.information),
            Some(status) => (status, 0),
        };
        if decided.closes {
            self.registration.socket_closed();
        }
        if decided.creates && !NT_SUCCESS(status) {
            st.closed = true;
            self.discard.store(true, Ordering::Release);
        }
        out.push(Done::new(irp, status, information));
    }
}

/// A decided operation of `kind` on `core`: the script first (a scripted failure skips `effect`),
/// then `effect` (the operation itself, returning its status and `Information`), then the end of
/// the call ([`SocketCore::conclude_decided`]).
pub(crate) fn run(
    core: &Arc<SocketCore>,
    irp: ProviderIrp,
    kind: OpKind,
    effect: impl FnOnce() -> (NTSTATUS, usize),
) -> NTSTATUS {
    match script(core, kind) {
        Script::Fail(status) => finish(irp, status, 0),
        Script::Unfinished(status) => {
            // SAFETY: the provider owns the IRP it just took and gives it up untouched.
            unsafe { crate::emu::irp::forget(irp.0) };
            status
        }
        Script::Go(hold) => {
            let (status, information) = effect();
            core.conclude_decided(irp, hold, Decided::new(kind, status, information))
        }
    }
}

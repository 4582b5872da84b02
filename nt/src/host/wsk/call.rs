//! The common prologue of every socket function: the socket checks (call after close, unknown
//! socket), the in-progress mark `WskCloseSocket` checks against, and taking the IRP (a NULL one is
//! reported: [`null_irp`]).

use super::irp::{self, Completions, Done, ProviderIrp};
use super::socket::{self, Category, SocketCore};
use super::{later, schedule};
use crate::emu::{Rule, violation};
use crate::types::*;
use crate::wsk::PWSK_SOCKET;
use std::sync::Arc;

/// Runs `body` for a call on `socket` of one of `categories`, with its IRP taken. A rejected call
/// (checked violation in recording mode, or a function of another category) completes its IRP with
/// the failure status, as the harmless outcome.
///
/// # Safety
/// `irp` is NULL or a live IRP the caller hands over.
pub(crate) unsafe fn with_socket(
    socket: PWSK_SOCKET,
    irp: PIRP,
    function: &str,
    categories: &[Category],
    body: impl FnOnce(&Arc<SocketCore>, ProviderIrp) -> NTSTATUS,
) -> NTSTATUS {
    let guard = match socket::enter(socket, function) {
        Ok(guard) => guard,
        // SAFETY: forwarded from the caller's contract.
        Err(status) => return unsafe { irp::fail(irp, status) },
    };
    // Invented: a function outside the socket's category fails with STATUS_INVALID_DEVICE_REQUEST (on
    // Windows it is a call through a wrong table).
    if !categories.contains(&guard.core.category) {
        // SAFETY: forwarded from the caller's contract.
        return unsafe { irp::fail(irp, STATUS_INVALID_DEVICE_REQUEST) };
    }
    if irp.is_null() {
        null_irp(function);
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: forwarded from the caller's contract.
    if !unsafe { irp::take(irp) } {
        return STATUS_INVALID_PARAMETER;
    }
    body(&guard.core, ProviderIrp(irp))
}

/// A NULL IRP passed to a WSK function that requires one. Windows returns STATUS_INVALID_PARAMETER
/// for WskSocket and WskGetAddressInfo (Wine's netio test, which also runs on Windows, checks it),
/// and those return it without a report. Invented: for every other function that requires an IRP,
/// what Windows does is neither documented nor observed, so the harsher outcome is taken: a
/// [`Rule::InvalidParameter`] (then STATUS_INVALID_PARAMETER in recording mode).
pub(crate) fn null_irp(function: &str) {
    violation(
        Rule::InvalidParameter,
        &format_args!("{function} with a NULL Irp (the IRP is required)"),
        None,
    );
}

/// Completes `irp`, whose result is decided, and returns `status`: inline, or later if the schedule
/// says so (then STATUS_PENDING).
pub(crate) fn finish(irp: ProviderIrp, status: NTSTATUS, information: usize) -> NTSTATUS {
    let done = Done::new(irp, status, information);
    if schedule::defer() {
        irp::mark_pending(irp);
        later::push(done, None);
        return STATUS_PENDING;
    }
    irp::complete_all(Completions::one(done));
    status
}

/// The end of a WSK call on `core` that collected `out`: if the call's own `irp` is among them, the
/// schedule decides whether it completes inline (the function returns its status) or later
/// (STATUS_PENDING, as when it must wait); then `out` is completed.
pub(crate) fn conclude(core: &Arc<SocketCore>, irp: ProviderIrp, mut out: Completions) -> NTSTATUS {
    let own = out.iter().find(|d| d.irp == irp).map(|d| d.status);
    let status = match own {
        Some(status) if !schedule::defer() => status,
        Some(_) => {
            if let Some(done) = out.take(irp) {
                irp::mark_pending(irp);
                later::push(done, None);
            }
            STATUS_PENDING
        }
        // Still queued: marked pending by the caller while it held the socket lock.
        None => STATUS_PENDING,
    };
    core.settle(out);
    status
}

//! The common prologue of every socket function: the socket checks (call after close, unknown
//! socket), the in-progress mark `WskCloseSocket` checks against, and taking the IRP (a NULL one is
//! reported: [`null_irp`]).

use super::irp::{self, Completions, Done, ProviderIrp};
use super::socket::{self, Category, SocketCore};
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

/// Completes `irp` now and returns `status` (an operation that finishes inline).
pub(crate) fn finish(irp: ProviderIrp, status: NTSTATUS, information: usize) -> NTSTATUS {
    irp::complete_all(Completions::one(Done::new(irp, status, information)));
    status
}

/// Same as [`finish`] for a `Result` whose success value is `Information`.
pub(crate) fn finish_with(irp: ProviderIrp, result: Result<usize, NTSTATUS>) -> NTSTATUS {
    match result {
        Ok(information) => finish(irp, STATUS_SUCCESS, information),
        Err(status) => finish(irp, status, 0),
    }
}

//! `SIO_WSK_QUERY_IDEAL_SEND_BACKLOG`: `WskControlSocket(WskIoctl)` on a connected
//! connection-oriented socket writes the ideal send backlog (ISB), a `SIZE_T`, to its output buffer:
//! how many bytes of sends to keep passed to WSK and not yet completed to keep the stream full. The
//! transport says how much that is ([`Wire::ideal_send_backlog`](super::transport::Wire)): over TCP,
//! derived from the host socket's congestion window; on the in-memory network, what the test
//! scripted or the peer's window.
//!
//! Documented (the IOCTL's page and `WskControlSocket`'s): the IOCTL applies only to
//! connection-oriented sockets, and only once connected; `Level` is ignored; `InputSize` 0 and
//! `InputBuffer` NULL; `OutputSize` `sizeof(SIZE_T)`; `OutputSizeReturned` NULL; the IRP is
//! required (a NULL one is a [`Rule::InvalidParameter`](crate::emu::Rule), see
//! [`super::call::null_irp`]); on success `IoStatus.Information` is the number of bytes written to
//! the output buffer.
//!
//! Invented (Windows documents no status for any of these; each is a failure, the harsher side):
//! * a listening or basic socket, or a stream socket that listens: STATUS_NOT_SUPPORTED, as for a
//!   socket option where it does not apply (`options.rs`);
//! * before the connection exists, and once the client disconnected it (gracefully or not):
//!   STATUS_INVALID_DEVICE_STATE (Windows may well still answer after a graceful disconnect);
//!   after a connection failure (reset, forced close), the failure's status;
//! * an output buffer that is NULL or shorter than a `SIZE_T`: STATUS_BUFFER_TOO_SMALL;
//! * a longer output buffer, any input, or an `OutputSizeReturned`: STATUS_INVALID_PARAMETER (the
//!   documentation gives exact values);
//! * the query can be switched off for a session ([`set_answered`]): it then fails with
//!   STATUS_NOT_SUPPORTED everywhere, as from a provider without it, so that a client's degraded
//!   path stays tested (Wine 8's netio, whose `WskControlSocket` is a stub, is `wine8.rs`).

use super::socket::{Category, SocketCore};
use crate::types::*;
use crate::wsk::*;
use std::sync::atomic::{AtomicBool, Ordering};

static ANSWERED: AtomicBool = AtomicBool::new(true);

/// Whether the provider answers the query (on by default, reset by every session).
pub(crate) fn set_answered(on: bool) {
    ANSWERED.store(on, Ordering::SeqCst);
}

pub(super) fn reset() {
    set_answered(true);
}

/// Whether this `WskControlSocket` call is the query (`Level` is ignored for `WskIoctl`).
pub(crate) fn is_query(request: WSK_CONTROL_SOCKET_TYPE, code: ULONG) -> bool {
    request == WskIoctl && code == SIO_WSK_QUERY_IDEAL_SEND_BACKLOG
}

/// The query on `core`: (status, `IoStatus.Information`). The ISB is written to the output buffer
/// on success only.
///
/// # Safety
/// The buffers are valid for their sizes (the caller's contract with `WskControlSocket`).
pub(crate) unsafe fn query(
    core: &SocketCore,
    input: (SIZE_T, PVOID),
    output: (SIZE_T, PVOID, *mut SIZE_T),
) -> (NTSTATUS, usize) {
    if !ANSWERED.load(Ordering::SeqCst) {
        return (STATUS_NOT_SUPPORTED, 0);
    }
    if !matches!(core.category, Category::Connection | Category::Stream) {
        return (STATUS_NOT_SUPPORTED, 0);
    }
    let (in_size, in_buffer) = input;
    let (out_size, out_buffer, returned) = output;
    if out_buffer.is_null() || out_size < size_of::<SIZE_T>() {
        return (STATUS_BUFFER_TOO_SMALL, 0);
    }
    if out_size != size_of::<SIZE_T>() || in_size != 0 || !in_buffer.is_null() || !returned.is_null() {
        return (STATUS_INVALID_PARAMETER, 0);
    }
    let st = core.lock();
    if st.listener.is_some() {
        // A stream socket that became a listener.
        return (STATUS_NOT_SUPPORTED, 0);
    }
    if let Some(failure) = st.failure {
        return (failure, 0);
    }
    if st.disconnect_requested || st.fin_sent {
        return (STATUS_INVALID_DEVICE_STATE, 0);
    }
    let Some(wire) = st.wire.as_ref() else {
        return (STATUS_INVALID_DEVICE_STATE, 0);
    };
    let backlog = match wire.ideal_send_backlog() {
        Ok(backlog) => backlog,
        Err(status) => return (status, 0),
    };
    drop(st);
    // SAFETY: `out_buffer` holds a SIZE_T (checked above) per the caller's contract; it may be
    // unaligned.
    unsafe { out_buffer.cast::<SIZE_T>().write_unaligned(backlog) };
    (STATUS_SUCCESS, size_of::<SIZE_T>())
}

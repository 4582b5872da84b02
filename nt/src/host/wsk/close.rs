//! `WskCloseSocket` and `WskControlSocket` (the basic functions of every socket).
//!
//! `WskCloseSocket` (WSK documentation): no other call on the socket may be in progress (checked:
//! [`Rule::CloseWhileCallInProgress`](crate::emu::Rule)); pending IRPs are allowed and are cancelled
//! and completed (STATUS_CANCELLED) before the close completes; a connection is reset (abortive)
//! unless it is already disconnected both ways; the socket object is freed (here: quarantined, so a
//! later call through it is reported as a call after close).

use super::call::{finish, with_socket};
use super::decided::{self, Script};
use super::irp::{Completions, Done};
use super::socket::{self, Category, Decided};
use super::transport::OpKind;
use super::{later, schedule};
use crate::types::*;
use crate::wsk::*;

const ALL: [Category; 5] = [
    Category::Basic,
    Category::Listen,
    Category::Connection,
    Category::Stream,
    Category::Datagram,
];

/// `WskCloseSocket`. Completes with STATUS_SUCCESS, inline or later as the schedule decides.
///
/// # Safety
/// `Irp` is a live IRP the caller hands over.
pub(crate) unsafe extern "system" fn WskCloseSocket(Socket: PWSK_SOCKET, Irp: PIRP) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        with_socket(Socket, Irp, "WskCloseSocket", &ALL, |core, irp| {
            if !socket::check_close(core) {
                // Recording mode: the socket stays open; the close fails harmlessly.
                return finish(irp, STATUS_INVALID_DEVICE_STATE, 0);
            }
            let hold = match decided::script(core, OpKind::Close) {
                Script::Go(hold) => hold,
                // A scripted failure: the socket stays open.
                Script::Fail(status) => return finish(irp, status, 0),
                Script::Unfinished(status) => {
                    crate::emu::irp::forget(irp.0);
                    return status;
                }
            };
            let mut out = Completions::new();
            {
                let mut st = core.lock();
                // Operations past the point of cancellation finish with their natural result first.
                core.progress_past_cancel(&mut st, &mut out);
                st.closed = true;
                st.flush(STATUS_CANCELLED, &mut out);
                if let Some(mut wire) = st.wire.take() {
                    let both_ways = st.fin_sent && (st.peer_fin || wire.peer_finished());
                    if both_ways { wire.close() } else { wire.abort() }
                }
                if let Some(mut listener) = st.listener.take() {
                    listener.close();
                }
                if let Some(mut port) = st.port.take() {
                    port.close();
                }
                st.connector = None;
            }
            let done = Done::new(irp, STATUS_SUCCESS, 0);
            if let Some(id) = hold {
                // Held by the test: counted open for the registration until released.
                socket::retire_closing(core);
                let decided = Decided {
                    closes: true,
                    ..Decided::new(OpKind::Close, STATUS_SUCCESS, 0)
                };
                core.settle(out);
                return core.conclude_decided(irp, Some(id), decided);
            }
            if schedule::defer() {
                // The socket is gone for its client, but open for the registration until the close
                // IRP completes.
                socket::retire_closing(core);
                super::irp::mark_pending(irp);
                later::push(done, Some(core.registration.clone()));
                core.settle(out);
                return STATUS_PENDING;
            }
            socket::retire(core);
            out.push(done);
            core.settle(out);
            STATUS_SUCCESS
        })
    }
}

/// `WskControlSocket`: the socket options of `options.rs` (`IPV6_V6ONLY`, `SO_EXCLUSIVEADDRUSE`,
/// `SO_KEEPALIVE`, `TCP_NODELAY`) can be set and read back, and `SIO_WSK_QUERY_IDEAL_SEND_BACKLOG`
/// answered (`backlog.rs`); every other option or IOCTL is STATUS_NOT_SUPPORTED. The IRP is
/// optional for `IPV6_V6ONLY` and required for the others; when given it is completed with the
/// result, inline, later (schedule) or when the test's script releases it.
///
pub(crate) unsafe extern "system" fn WskControlSocket(
    Socket: PWSK_SOCKET,
    RequestType: WSK_CONTROL_SOCKET_TYPE,
    ControlCode: ULONG,
    Level: ULONG,
    InputSize: SIZE_T,
    InputBuffer: PVOID,
    OutputSize: SIZE_T,
    OutputBuffer: PVOID,
    OutputSizeReturned: *mut SIZE_T,
    Irp: PIRP,
) -> NTSTATUS {
    if let Some(status) = super::wine8::stub("WskControlSocket") {
        return status;
    }
    let guard = match socket::enter(Socket, "WskControlSocket") {
        Ok(guard) => guard,
        // SAFETY: forwarded from the caller's contract.
        Err(status) => return unsafe { super::irp::fail(Irp, status) },
    };
    let query = super::backlog::is_query(RequestType, ControlCode);
    if Irp.is_null() && (query || super::options::requires_irp(RequestType, Level, ControlCode)) {
        super::call::null_irp("WskControlSocket");
        return STATUS_INVALID_PARAMETER;
    }
    let input = (InputSize, InputBuffer);
    let output = (OutputSize, OutputBuffer, OutputSizeReturned);
    // SAFETY: the buffers are valid for their sizes per the caller's contract.
    let (status, information) = unsafe {
        if query {
            super::backlog::query(&guard.core, input, output)
        } else {
            super::options::control(&guard.core, RequestType, ControlCode, Level, input, output)
        }
    };
    if Irp.is_null() {
        return status;
    }
    // SAFETY: forwarded from the caller's contract.
    if !unsafe { super::irp::take(Irp) } {
        return STATUS_INVALID_PARAMETER;
    }
    // Invented, as for every decided operation: the option is set (or read) even when the test's
    // script then fails or holds the IRP (see `decided.rs`).
    let irp = super::irp::ProviderIrp(Irp);
    let status = decided::run(&guard.core, irp, OpKind::Control, || (status, information));
    drop(guard);
    status
}

//! `WskDisconnect`.
//!
//! * Graceful (no flag): queued behind the pending sends; sends the optional final buffer, then FIN,
//!   and completes once the FIN is acknowledged, hence after every send before it (see
//!   [`super::send`]). If the peer stops reading, it stays pending.
//! * Abortive (`WSK_FLAG_ABORTIVE`, buffer must be NULL): resets the connection (RST) at once and
//!   completes with STATUS_SUCCESS. As the WSK documentation describes, this forces a pending graceful
//!   disconnect to complete; it and every pending send/receive complete with
//!   STATUS_CONNECTION_ABORTED, as does every later data operation.

use super::call::{finish, with_socket};
use super::connection::read_buf;
use super::irp::{Completions, Done};
use super::socket::{CONNECTED, Op};
use crate::types::*;
use crate::wsk::*;

/// `WskDisconnect`.
///
/// # Safety
/// `Buffer` is NULL or describes live MDLs valid until the IRP completes; `Irp` is a live IRP the
/// caller hands over.
pub(crate) unsafe extern "system" fn WskDisconnect(
    Socket: PWSK_SOCKET,
    Buffer: PWSK_BUF,
    Flags: ULONG,
    Irp: PIRP,
) -> NTSTATUS {
    if let Some(status) = super::wine8::stub("WskDisconnect") {
        return status;
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        with_socket(Socket, Irp, "WskDisconnect", CONNECTED, |core, irp| {
            if Flags & WSK_FLAG_ABORTIVE != 0 {
                if !Buffer.is_null() {
                    return finish(irp, STATUS_INVALID_PARAMETER, 0);
                }
                if let Some(status) = core.registration.take_unfinished(super::transport::OpKind::Disconnect) {
                    // A scripted broken provider (Wine's stub): the IRP is given back untouched.
                    crate::emu::irp::forget(irp.0);
                    return status;
                }
                let mut out = Completions::new();
                {
                    let mut st = core.lock();
                    if let Some(mut wire) = st.wire.take() {
                        wire.abort();
                    }
                    st.connector = None;
                    // Invented: the status (STATUS_CONNECTION_ABORTED) of the IRPs an abortive
                    // disconnect ends and of later data operations; their order relative to the abort
                    // IRP is the schedule's (`schedule::late_ended`).
                    st.failure = Some(STATUS_CONNECTION_ABORTED);
                    st.flush(STATUS_CONNECTION_ABORTED, &mut out);
                }
                out.push(Done::new(irp, STATUS_SUCCESS, 0));
                return super::call::conclude(core, irp, out);
            }
            let buf = if Buffer.is_null() {
                None
            } else {
                match read_buf(Buffer) {
                    Ok(buf) => Some(buf),
                    Err(status) => return finish(irp, status, 0),
                }
            };
            {
                let mut st = core.lock();
                // Invented: STATUS_INVALID_DEVICE_STATE for a second graceful disconnect, or one on a
                // socket never connected.
                if st.disconnect_requested || st.wire.is_none() && st.connector.is_none() && st.failure.is_none() {
                    return finish(irp, STATUS_INVALID_DEVICE_STATE, 0);
                }
                st.disconnect_requested = true;
            }
            core.submit(irp, Op::Disconnect { buf, done: 0 })
        })
    }
}

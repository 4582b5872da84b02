//! Connection-oriented sockets: `WskConnect`, `WskSend`, `WskReceive`, `WskGetRemoteAddress`, and the
//! functions this provider does not emulate (`WskRelease`: no data indications are ever made;
//! `WskConnectEx`, `WskSendEx`, `WskReceiveEx`).

use super::call::{finish, with_socket};
use super::irp;
use super::mdl::Buf;
use super::socket::{CONNECTED, Op, SocketCore};
use crate::types::*;
use crate::wsk::*;
use std::net::SocketAddr;
use std::sync::Arc;

/// Starts the transport's connect for `core`; the `Connect` operation then waits for it.
pub(crate) fn start_connect(core: &Arc<SocketCore>, local: SocketAddr, remote: SocketAddr) -> Result<(), NTSTATUS> {
    let transport = core.registration.transport().ok_or(STATUS_DEVICE_NOT_READY)?;
    let connector = transport.connect(local, remote, core.me.clone())?;
    core.lock().connector = Some(connector);
    Ok(())
}

/// `WskConnect`: the socket must be bound (`WskBind`) and not yet connected. Pends until the
/// connection is established; fails with the transport's status (e.g. STATUS_CONNECTION_REFUSED).
///
/// # Safety
/// `RemoteAddress` is a valid socket address; `Irp` is a live IRP the caller hands over.
pub(crate) unsafe extern "system" fn WskConnect(
    Socket: PWSK_SOCKET,
    RemoteAddress: PSOCKADDR,
    _Flags: ULONG,
    Irp: PIRP,
) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        with_socket(Socket, Irp, "WskConnect", CONNECTED, |core, irp| {
            let remote = match super::addr::read(RemoteAddress) {
                Ok(remote) => remote,
                Err(status) => return finish(irp, status, 0),
            };
            let local = {
                let st = core.lock();
                if st.wire.is_some() || st.connector.is_some() || st.listener.is_some() {
                    return finish(irp, STATUS_INVALID_DEVICE_STATE, 0);
                }
                match st.bound {
                    Some(local) => local,
                    None => return finish(irp, STATUS_INVALID_DEVICE_STATE, 0),
                }
            };
            if super::wine8::on() {
                // Wine's WskConnect arms no cancel routine: only the close of the socket ends it.
                irp::refuse_cancel(irp);
            }
            match start_connect(core, local, remote) {
                Ok(()) => core.submit(irp, Op::Connect { returns_socket: false }),
                Err(status) => finish(irp, status, 0),
            }
        })
    }
}

/// Copies and validates the caller's `WSK_BUF`.
///
/// # Safety
/// `buffer` is NULL or points to a `WSK_BUF` describing live MDLs.
pub(crate) unsafe fn read_buf(buffer: PWSK_BUF) -> Result<Buf, NTSTATUS> {
    if buffer.is_null() {
        return Err(STATUS_INVALID_PARAMETER);
    }
    // SAFETY: forwarded from the caller's contract.
    let buf = Buf(unsafe { buffer.read() }, buffer);
    // SAFETY: forwarded from the caller's contract.
    unsafe { buf.validate()? };
    Ok(buf)
}

/// `WskSend`: completes once the transport has acknowledged every byte (WSK has no send buffering;
/// see [`super::send`]), with the byte count in `IoStatus.Information`. `WSK_FLAG_NODELAY` disables
/// coalescing for the connection.
///
/// # Safety
/// `Buffer` describes live MDLs that stay valid until the IRP completes; `Irp` is a live IRP the
/// caller hands over.
pub(crate) unsafe extern "system" fn WskSend(
    Socket: PWSK_SOCKET,
    Buffer: PWSK_BUF,
    Flags: ULONG,
    Irp: PIRP,
) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        with_socket(Socket, Irp, "WskSend", CONNECTED, |core, irp| {
            let buf = match read_buf(Buffer) {
                Ok(buf) => buf,
                Err(status) => return finish(irp, status, 0),
            };
            if core.lock().disconnect_requested {
                // Invented: the status of a send after a graceful disconnect (WSK: no more sends).
                return finish(irp, STATUS_INVALID_DEVICE_STATE, 0);
            }
            let op = Op::Send {
                buf,
                done: 0,
                nodelay: Flags & WSK_FLAG_NODELAY != 0,
            };
            core.submit(irp, op)
        })
    }
}

/// `WskReceive`: completes with the bytes available (at least one), all of them with
/// `WSK_FLAG_WAITALL`, or 0 bytes with STATUS_SUCCESS once the peer has disconnected gracefully;
/// STATUS_CONNECTION_RESET after a reset.
///
/// # Safety
/// `Buffer` describes live MDLs that stay valid until the IRP completes; `Irp` is a live IRP the
/// caller hands over.
pub(crate) unsafe extern "system" fn WskReceive(
    Socket: PWSK_SOCKET,
    Buffer: PWSK_BUF,
    Flags: ULONG,
    Irp: PIRP,
) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        with_socket(Socket, Irp, "WskReceive", CONNECTED, |core, irp| {
            let buf = match read_buf(Buffer) {
                Ok(buf) => buf,
                Err(status) => return finish(irp, status, 0),
            };
            let op = Op::Receive {
                buf,
                done: 0,
                waitall: Flags & WSK_FLAG_WAITALL != 0,
            };
            core.submit(irp, op)
        })
    }
}

/// `WskGetRemoteAddress`: the connected peer's address.
///
/// # Safety
/// `RemoteAddress` is valid for a write of the socket family's address; `Irp` is a live IRP the
/// caller hands over.
pub(crate) unsafe extern "system" fn WskGetRemoteAddress(
    Socket: PWSK_SOCKET,
    RemoteAddress: PSOCKADDR,
    Irp: PIRP,
) -> NTSTATUS {
    if let Some(status) = super::wine8::stub("WskGetRemoteAddress") {
        return status;
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        with_socket(Socket, Irp, "WskGetRemoteAddress", CONNECTED, |core, irp| {
            super::decided::run(core, irp, super::transport::OpKind::GetAddress, || {
                let remote = core.lock().wire.as_ref().map(|w| w.peer_addr());
                match remote {
                    Some(remote) => {
                        // SAFETY: forwarded from the caller's contract.
                        super::addr::write(RemoteAddress, remote);
                        (STATUS_SUCCESS, 0)
                    }
                    None => (STATUS_INVALID_DEVICE_STATE, 0),
                }
            })
        })
    }
}

/// `WskRelease`: this provider never indicates data (no receive event callback), so there is nothing
/// a client could release.
///
/// # Safety
/// None.
pub(crate) unsafe extern "system" fn WskRelease(
    _Socket: PWSK_SOCKET,
    _DataIndication: PWSK_DATA_INDICATION,
) -> NTSTATUS {
    STATUS_NOT_SUPPORTED
}

/// `WskConnectEx`: not emulated.
///
/// # Safety
/// `Irp` is a live IRP the caller hands over.
pub(crate) unsafe extern "system" fn WskConnectEx(
    _Socket: PWSK_SOCKET,
    _RemoteAddress: PSOCKADDR,
    _Buffer: PWSK_BUF,
    _Flags: ULONG,
    Irp: PIRP,
) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe { irp::fail(Irp, STATUS_NOT_SUPPORTED) }
}

/// `WskSendEx` (reserved for system use): not emulated.
///
/// # Safety
/// `Irp` is a live IRP the caller hands over.
pub(crate) unsafe extern "system" fn WskSendEx(
    _Socket: PWSK_SOCKET,
    _Buffer: PWSK_BUF,
    _Flags: ULONG,
    _ControlInfoLength: ULONG,
    _ControlInfo: PVOID,
    Irp: PIRP,
) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe { irp::fail(Irp, STATUS_NOT_SUPPORTED) }
}

/// `WskReceiveEx` (reserved for system use): not emulated.
///
/// # Safety
/// `Irp` is a live IRP the caller hands over.
pub(crate) unsafe extern "system" fn WskReceiveEx(
    _Socket: PWSK_SOCKET,
    _Buffer: PWSK_BUF,
    _Flags: ULONG,
    _ControlInfoLength: *mut ULONG,
    _ControlInfo: PVOID,
    _ControlFlags: *mut ULONG,
    Irp: PIRP,
) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe { irp::fail(Irp, STATUS_NOT_SUPPORTED) }
}

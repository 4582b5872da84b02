//! Listening sockets: `WskBind` (which for a WSK listening socket also starts listening), `WskAccept`
//! (IRP-based; completes with the new connection-oriented socket in `IoStatus.Information` and fills
//! the optional address buffers), `WskGetLocalAddress`, `WskInspectComplete` (conditional accept is
//! not emulated).

use super::call::{finish, with_socket};
use super::decided;
use super::socket::{Category, LISTENING, Op, OutAddr, SocketCore, SocketState};
use super::transport::OpKind;
use crate::emu::{Rule, violation};
use crate::types::*;
use crate::wsk::*;

/// `WskBind` for listening, connection-oriented, stream and datagram sockets. A listening socket is
/// bound and starts listening (honouring `IPV6_V6ONLY` and `SO_EXCLUSIVEADDRUSE`); a datagram socket
/// binds its port (honouring `IPV6_V6ONLY`); the others record their local address for the
/// following `WskConnect` or (stream sockets) `WskListen`. Done at the call; completes inline, later
/// (schedule) or when the in-memory transport's script releases it (see `decided.rs`).
///
/// # Safety
/// `LocalAddress` points to a valid socket address; `Irp` is a live IRP the caller hands over.
pub(crate) unsafe extern "system" fn WskBind(
    Socket: PWSK_SOCKET,
    LocalAddress: PSOCKADDR,
    _Flags: ULONG,
    Irp: PIRP,
) -> NTSTATUS {
    let categories = [
        Category::Listen,
        Category::Connection,
        Category::Stream,
        Category::Datagram,
    ];
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        with_socket(Socket, Irp, "WskBind", &categories, |core, irp| {
            decided::run(core, irp, OpKind::Bind, || {
                // SAFETY: forwarded from the caller's contract.
                let local = match super::addr::read(LocalAddress) {
                    Ok(local) => local,
                    Err(status) => return (status, 0),
                };
                if super::addr::family(&local) != core.family {
                    return (STATUS_INVALID_ADDRESS, 0);
                }
                if super::wine8::on() && local.is_ipv6() {
                    // Wine 8.0 binds with a 16-byte address length: the host refuses it.
                    return (STATUS_INVALID_PARAMETER, 0);
                }
                let mut st = core.lock();
                if st.bound.is_some() {
                    // Invented: the documentation names no status for binding a bound socket again.
                    return (STATUS_ADDRESS_ALREADY_ASSOCIATED, 0);
                }
                if core.category == Category::Listen {
                    let Some(transport) = core.registration.transport() else {
                        return (STATUS_DEVICE_NOT_READY, 0);
                    };
                    match transport.listen(local, st.v6only, st.exclusive, core.me.clone()) {
                        Ok(listener) => {
                            st.bound = Some(listener.local_addr());
                            st.listener = Some(listener);
                        }
                        Err(status) => return (status, 0),
                    }
                } else if core.category == Category::Datagram {
                    let Some(transport) = core.registration.transport() else {
                        return (STATUS_DEVICE_NOT_READY, 0);
                    };
                    match transport.bind_datagram(local, st.v6only, core.me.clone()) {
                        Ok(port) => {
                            st.bound = Some(port.local_addr());
                            st.port = Some(port);
                        }
                        Err(status) => return (status, 0),
                    }
                } else {
                    st.bound = Some(local);
                }
                drop(st);
                (STATUS_SUCCESS, 0)
            })
        })
    }
}

/// `WskListen` (stream sockets): starts listening on the address `WskBind` gave the socket, honouring
/// `IPV6_V6ONLY`. Completes inline.
///
/// # Safety
/// `Irp` is a live IRP the caller hands over.
pub(crate) unsafe extern "system" fn WskListen(Socket: PWSK_SOCKET, Irp: PIRP) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        with_socket(Socket, Irp, "WskListen", &[Category::Stream], |core, irp| {
            let mut st = core.lock();
            let Some(local) = st.bound else {
                return finish(irp, STATUS_INVALID_DEVICE_STATE, 0);
            };
            if st.listener.is_some() || st.wire.is_some() || st.connector.is_some() {
                return finish(irp, STATUS_INVALID_DEVICE_STATE, 0);
            }
            let Some(transport) = core.registration.transport() else {
                return finish(irp, STATUS_DEVICE_NOT_READY, 0);
            };
            match transport.listen(local, st.v6only, st.exclusive, core.me.clone()) {
                Ok(listener) => {
                    st.bound = Some(listener.local_addr());
                    st.listener = Some(listener);
                    drop(st);
                    finish(irp, STATUS_SUCCESS, 0)
                }
                Err(status) => finish(irp, status, 0),
            }
        })
    }
}

/// `WskAccept`: pends until a connection arrives (completing inline if one is already waiting). One
/// accept at a time per listening socket ([`one_accept_at_a_time`]).
///
/// # Safety
/// The optional address buffers stay valid until the IRP completes; `Irp` is a live IRP the caller
/// hands over.
pub(crate) unsafe extern "system" fn WskAccept(
    ListenSocket: PWSK_SOCKET,
    _Flags: ULONG,
    _AcceptSocketContext: PVOID,
    _AcceptSocketDispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    LocalAddress: PSOCKADDR,
    RemoteAddress: PSOCKADDR,
    Irp: PIRP,
) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        with_socket(ListenSocket, Irp, "WskAccept", LISTENING, |core, irp| {
            if core.lock().listener.is_none() {
                return finish(irp, STATUS_INVALID_DEVICE_STATE, 0);
            }
            let op = Op::Accept {
                local_out: OutAddr(LocalAddress),
                remote_out: OutAddr(RemoteAddress),
            };
            core.submit(irp, op)
        })
    }
}

/// A second `WskAccept` while one is pending on the same listening socket hangs Windows (Wine's
/// netio test, which also runs on Windows, says so): a [`Rule::AcceptAlreadyPending`]. Returns false
/// after reporting it (recording mode: the caller fails the call). `st` is `core`'s state, locked by
/// the caller, which queues the accept under the same lock if this returns true.
pub(super) fn one_accept_at_a_time(core: &SocketCore, st: &SocketState) -> bool {
    let pending = st.accepts.len() + st.held.iter().filter(|(_, p)| p.op.kind() == OpKind::Accept).count();
    if pending == 0 {
        return true;
    }
    violation(
        Rule::AcceptAlreadyPending,
        &format_args!("WskAccept on {core}, which already has an accept pending"),
        core.created_at.as_ref(),
    );
    false
}

/// `WskInspectComplete`: conditional accept is not emulated.
///
/// # Safety
/// `Irp` is a live IRP the caller hands over.
pub(crate) unsafe extern "system" fn WskInspectComplete(
    ListenSocket: PWSK_SOCKET,
    _InspectID: PWSK_INSPECT_ID,
    _Action: WSK_INSPECT_ACTION,
    Irp: PIRP,
) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        with_socket(ListenSocket, Irp, "WskInspectComplete", LISTENING, |_, irp| {
            finish(irp, STATUS_NOT_SUPPORTED, 0)
        })
    }
}

/// `WskGetLocalAddress` (listening and connection-oriented sockets): the bound address, with the
/// port the transport chose for port 0.
///
/// # Safety
/// `LocalAddress` is valid for a write of the socket family's address; `Irp` is a live IRP the caller
/// hands over.
pub(crate) unsafe extern "system" fn WskGetLocalAddress(
    Socket: PWSK_SOCKET,
    LocalAddress: PSOCKADDR,
    Irp: PIRP,
) -> NTSTATUS {
    if let Some(status) = super::wine8::stub("WskGetLocalAddress") {
        return status;
    }
    let categories = [
        Category::Listen,
        Category::Connection,
        Category::Stream,
        Category::Datagram,
    ];
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        with_socket(Socket, Irp, "WskGetLocalAddress", &categories, |core, irp| {
            decided::run(core, irp, OpKind::GetAddress, || {
                let st = core.lock();
                let local = st.wire.as_ref().map(|w| w.local_addr()).or(st.bound);
                drop(st);
                match local {
                    Some(local) => {
                        // SAFETY: forwarded from the caller's contract.
                        super::addr::write(LocalAddress, local);
                        (STATUS_SUCCESS, 0)
                    }
                    None => (STATUS_INVALID_DEVICE_STATE, 0),
                }
            })
        })
    }
}

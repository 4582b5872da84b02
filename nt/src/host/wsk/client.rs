//! The provider's client-level functions (`WSK_PROVIDER_DISPATCH`): `WskSocket`, `WskSocketConnect`,
//! `WskControlClient`, which this provider does not support, and the entry points of name resolution
//! (`resolve.rs`).

use super::decided::{self, Script};
use super::irp::{self, Completions, Done, ProviderIrp};
use super::registration::{self, Registration};
use super::socket::{self, Category, Decided, Op};
use super::transport::OpKind;
use crate::emu::{Rule, violation};
use crate::types::*;
use crate::wsk::*;
use core::ffi::c_void;
use std::sync::Arc;

/// Finds the registration behind a client handle, reporting an unknown one.
pub(super) fn client(client: PWSK_CLIENT, function: &str) -> Result<Arc<Registration>, NTSTATUS> {
    match registration::by_client(client) {
        // Invented: client functions fail with STATUS_DEVICE_NOT_READY once WskDeregister has started.
        Some(registration) if registration.is_deregistering() => Err(STATUS_DEVICE_NOT_READY),
        Some(registration) => Ok(registration),
        None => {
            violation(
                Rule::Other("WSK client function called with a client handle no capture returned"),
                &format_args!("{function}({client:p})"),
                None,
            );
            Err(STATUS_INVALID_HANDLE)
        }
    }
}

/// `WskSocket`: creates a basic, listening, connection-oriented or stream TCP socket, or a datagram
/// UDP socket (`SOCK_DGRAM`, `IPPROTO_UDP`). Completes with the new `PWSK_SOCKET` in
/// `IoStatus.Information`: inline, later (schedule) or when the test's script releases it (the
/// socket exists from the call on, see `decided.rs`). Any other type or protocol for the category
/// is STATUS_NOT_SUPPORTED.
///
/// # Safety
/// `Client` comes from `WskCaptureProviderNPI`; `Irp` is a live IRP the caller hands over.
pub(crate) unsafe extern "system" fn WskSocket(
    Client: PWSK_CLIENT,
    AddressFamily: ADDRESS_FAMILY,
    SocketType: USHORT,
    Protocol: ULONG,
    Flags: ULONG,
    _SocketContext: PVOID,
    _Dispatch: *const c_void,
    _OwningProcess: PEPROCESS,
    _OwningThread: PETHREAD,
    _SecurityDescriptor: PSECURITY_DESCRIPTOR,
    Irp: PIRP,
) -> NTSTATUS {
    // A NULL IRP: STATUS_INVALID_PARAMETER, checked before the client (Wine's netio test, run on
    // Windows, gets it with a NULL client too, and STATUS_INVALID_HANDLE once an IRP is given).
    // SAFETY: forwarded from the caller's contract.
    if !unsafe { irp::take(Irp) } {
        return STATUS_INVALID_PARAMETER;
    }
    let result = client(Client, "WskSocket").and_then(|registration| {
        if AddressFamily != AF_INET && AddressFamily != AF_INET6 {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let category = match Flags {
            WSK_FLAG_BASIC_SOCKET => Category::Basic,
            WSK_FLAG_LISTEN_SOCKET => Category::Listen,
            WSK_FLAG_CONNECTION_SOCKET => Category::Connection,
            WSK_FLAG_STREAM_SOCKET => Category::Stream,
            // Wine 8.0's WskSocket creates listening and connection-oriented sockets only.
            WSK_FLAG_DATAGRAM_SOCKET if super::wine8::on() => return Err(STATUS_NOT_IMPLEMENTED),
            WSK_FLAG_DATAGRAM_SOCKET => Category::Datagram,
            _ => return Err(STATUS_NOT_SUPPORTED),
        };
        let (socket_type, protocol) = match category {
            Category::Datagram => (SOCK_DGRAM, IPPROTO_UDP),
            _ => (SOCK_STREAM, IPPROTO_TCP),
        };
        if category != Category::Basic && (SocketType != socket_type || Protocol != protocol) {
            return Err(STATUS_NOT_SUPPORTED);
        }
        Ok(socket::create(&registration, category, AddressFamily).1)
    });
    let irp = ProviderIrp(Irp);
    let core = match result {
        Ok(core) => core,
        Err(status) => return super::call::finish(irp, status, 0),
    };
    let hold = match decided::script(&core, OpKind::Socket) {
        Script::Go(hold) => hold,
        // A scripted failure: the socket is destroyed, never handed out.
        Script::Fail(status) => {
            destroy(&core);
            return super::call::finish(irp, status, 0);
        }
        Script::Unfinished(status) => {
            destroy(&core);
            // SAFETY: the provider owns the IRP it took and gives it up untouched.
            unsafe { crate::emu::irp::forget(Irp) };
            return status;
        }
    };
    // The socket travels in `Information` (a ULONG_PTR), as in the kernel.
    let decided = Decided {
        creates: true,
        ..Decided::new(OpKind::Socket, STATUS_SUCCESS, core.header)
    };
    core.conclude_decided(irp, hold, decided)
}

/// Destroys a socket the client never saw.
fn destroy(core: &super::socket::SocketCore) {
    core.lock().closed = true;
    socket::retire(core);
}

/// `WskSocketConnect`: creates a connection-oriented socket, binds it to `LocalAddress` and connects
/// it to `RemoteAddress`; completes when connected, with the socket in `IoStatus.Information`. On
/// failure (or cancellation) the socket is destroyed and never handed out.
///
/// # Safety
/// `Client` comes from `WskCaptureProviderNPI`; the addresses are valid `SOCKADDR_IN`/`SOCKADDR_IN6`;
/// `Irp` is a live IRP the caller hands over.
pub(crate) unsafe extern "system" fn WskSocketConnect(
    Client: PWSK_CLIENT,
    SocketType: USHORT,
    Protocol: ULONG,
    LocalAddress: PSOCKADDR,
    RemoteAddress: PSOCKADDR,
    _Flags: ULONG,
    _SocketContext: PVOID,
    _Dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    _OwningProcess: PEPROCESS,
    _OwningThread: PETHREAD,
    _SecurityDescriptor: PSECURITY_DESCRIPTOR,
    Irp: PIRP,
) -> NTSTATUS {
    // Wine 8.0's stub looks at nothing, not even the IRP.
    if let Some(status) = super::wine8::stub("WskSocketConnect") {
        return status;
    }
    if Irp.is_null() {
        super::call::null_irp("WskSocketConnect");
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: forwarded from the caller's contract.
    if !unsafe { irp::take(Irp) } {
        return STATUS_INVALID_PARAMETER;
    }
    let prepared = client(Client, "WskSocketConnect").and_then(|registration| {
        if SocketType != SOCK_STREAM || Protocol != IPPROTO_TCP {
            return Err(STATUS_NOT_SUPPORTED);
        }
        // SAFETY: forwarded from the caller's contract.
        let (local, remote) = unsafe { (super::addr::read(LocalAddress)?, super::addr::read(RemoteAddress)?) };
        // Both must be of the family of the socket being created (WskSocketConnect's
        // documentation), which is the local address's here.
        if super::addr::family(&local) != super::addr::family(&remote) {
            violation(
                Rule::InvalidParameter,
                &format_args!("WskSocketConnect from {local} to {remote}, an address of another family"),
                None,
            );
            return Err(STATUS_INVALID_PARAMETER);
        }
        Ok((registration, local, remote))
    });
    let (registration, local, remote) = match prepared {
        Ok(prepared) => prepared,
        Err(status) => {
            irp::complete_all(Completions::one(Done::new(ProviderIrp(Irp), status, 0)));
            return status;
        }
    };
    let (_, core) = socket::create(&registration, Category::Connection, super::addr::family(&local));
    core.lock().bound = Some(local);
    match super::connection::start_connect(&core, local, remote) {
        Ok(()) => core.submit(ProviderIrp(Irp), Op::Connect { returns_socket: true }),
        Err(status) => {
            core.lock().closed = true;
            socket::retire(&core);
            irp::complete_all(Completions::one(Done::new(ProviderIrp(Irp), status, 0)));
            status
        }
    }
}

/// Completes an optional IRP with `status` and returns it (functions this provider does not support).
unsafe fn unsupported(irp: PIRP) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe { irp::fail(irp, STATUS_NOT_SUPPORTED) }
}

/// `WskControlClient`: no client-level control is emulated.
///
/// # Safety
/// `Irp` is NULL or a live IRP the caller hands over.
pub(crate) unsafe extern "system" fn WskControlClient(
    _Client: PWSK_CLIENT,
    _ControlCode: ULONG,
    _InputSize: SIZE_T,
    _InputBuffer: PVOID,
    _OutputSize: SIZE_T,
    _OutputBuffer: PVOID,
    _OutputSizeReturned: *mut SIZE_T,
    Irp: PIRP,
) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe { unsupported(Irp) }
}

/// `WskGetAddressInfo`: `localhost` and numeric names, without a network (see `resolve.rs`).
///
/// # Safety
/// `Irp` is NULL or a live IRP the caller hands over; the strings and `Hints` (an `ADDRINFOEXW`)
/// are null or valid, and `Result` valid for a write, until the IRP completes.
pub(crate) unsafe extern "system" fn WskGetAddressInfo(
    Client: PWSK_CLIENT,
    NodeName: *mut UNICODE_STRING,
    ServiceName: *mut UNICODE_STRING,
    _NameSpace: ULONG,
    _Provider: PVOID,
    Hints: PVOID,
    Result: *mut PVOID,
    _OwningProcess: PEPROCESS,
    _OwningThread: PETHREAD,
    Irp: PIRP,
) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe { super::resolve::get_address_info(Client, NodeName, ServiceName, Hints.cast(), Result, Irp) }
}

/// `WskFreeAddressInfo`: frees a list `WskGetAddressInfo` returned (see `resolve.rs`).
///
/// # Safety
/// `AddrInfo` is such a list, not yet freed (checked).
pub(crate) unsafe extern "system" fn WskFreeAddressInfo(Client: PWSK_CLIENT, AddrInfo: PVOID) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { super::resolve::free_address_info(Client, AddrInfo) }
}

/// `WskGetNameInfo`: name resolution is not emulated. A NULL IRP is reported ([`super::call::null_irp`]).
///
/// # Safety
/// `Irp` is NULL or a live IRP the caller hands over.
pub(crate) unsafe extern "system" fn WskGetNameInfo(
    _Client: PWSK_CLIENT,
    _SockAddr: PSOCKADDR,
    _SockAddrLength: ULONG,
    _NodeName: *mut UNICODE_STRING,
    _ServiceName: *mut UNICODE_STRING,
    _Flags: ULONG,
    _OwningProcess: PEPROCESS,
    _OwningThread: PETHREAD,
    Irp: PIRP,
) -> NTSTATUS {
    if Irp.is_null() {
        super::call::null_irp("WskGetNameInfo");
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe { unsupported(Irp) }
}

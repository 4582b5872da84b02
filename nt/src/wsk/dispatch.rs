//! `WSK_SOCKET`, `WSK_BUF`, the provider's socket dispatch tables, the client's event dispatch tables,
//! and every `PFN_WSK_*` function type (`wsk.h`). All are `extern "system"` (`WSKAPI` = `NTAPI`).
//!
//! A socket's functions are reached through `(*socket).Dispatch`, which the client casts to the table
//! of the socket's category: [`WSK_PROVIDER_BASIC_DISPATCH`], [`WSK_PROVIDER_LISTEN_DISPATCH`],
//! [`WSK_PROVIDER_DATAGRAM_DISPATCH`], [`WSK_PROVIDER_CONNECTION_DISPATCH`] or
//! [`WSK_PROVIDER_STREAM_DISPATCH`]. Every table begins with
//! the basic one (C embeds it as an unnamed member; here it is the field `Basic`).

use super::constants::{ADDRESS_FAMILY, WSK_CONTROL_SOCKET_TYPE, WSK_INSPECT_ACTION};
use super::sockaddr::PSOCKADDR;
use crate::types::*;
use core::ffi::c_void;

/// `PEPROCESS`: an opaque process object; WSK clients of this project pass NULL.
pub type PEPROCESS = PVOID;
/// `PSECURITY_DESCRIPTOR`: opaque; WSK clients of this project pass NULL.
pub type PSECURITY_DESCRIPTOR = PVOID;
/// `PWSK_CLIENT`: the provider's opaque client handle, from `WSK_PROVIDER_NPI::Client`.
pub type PWSK_CLIENT = PVOID;

/// `WSK_SOCKET`: the header of every socket object. `Dispatch` points to the provider's function
/// table for the socket's category. The provider allocates the object and frees it in
/// `WskCloseSocket`.
#[repr(C)]
#[derive(Debug)]
pub struct WSK_SOCKET {
    /// The provider's function table of the socket's category.
    pub Dispatch: *const c_void,
}
/// Pointer to [`WSK_SOCKET`].
pub type PWSK_SOCKET = *mut WSK_SOCKET;

/// `WSK_BUF`: `Length` bytes starting `Offset` bytes into the buffer the MDL chain `Mdl` describes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_BUF {
    /// The first MDL of the chain describing the buffer.
    pub Mdl: PMDL,
    /// Offset of the data in the first MDL's buffer.
    pub Offset: ULONG,
    /// Length of the data in bytes, across the chain.
    pub Length: SIZE_T,
}
/// Pointer to [`WSK_BUF`].
pub type PWSK_BUF = *mut WSK_BUF;

/// `WSK_DATA_INDICATION`: data passed to `WskReceiveEvent`.
#[repr(C)]
#[derive(Debug)]
pub struct WSK_DATA_INDICATION {
    /// The next indication of the list, or NULL.
    pub Next: *mut WSK_DATA_INDICATION,
    /// The indicated data.
    pub Buffer: WSK_BUF,
}
/// Pointer to [`WSK_DATA_INDICATION`].
pub type PWSK_DATA_INDICATION = *mut WSK_DATA_INDICATION;

/// `WSK_DATAGRAM_INDICATION`: a datagram passed to `WskReceiveFromEvent` (which this project does
/// not use; the type is here for [`PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST`]).
#[repr(C)]
#[derive(Debug)]
pub struct WSK_DATAGRAM_INDICATION {
    /// The next indication of the list, or NULL.
    pub Next: *mut WSK_DATAGRAM_INDICATION,
    /// The datagram.
    pub Buffer: WSK_BUF,
    /// Its control information (`PCMSGHDR`), or NULL.
    pub ControlInfo: PVOID,
    /// Bytes of `ControlInfo`; 0 when there is none.
    pub ControlInfoLength: ULONG,
    /// The address the datagram came from (the socket family's `SOCKADDR_*`).
    pub RemoteAddress: PSOCKADDR,
}
/// Pointer to [`WSK_DATAGRAM_INDICATION`].
pub type PWSK_DATAGRAM_INDICATION = *mut WSK_DATAGRAM_INDICATION;

/// `WSK_INSPECT_ID`: identifies an incoming connection under conditional accept.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_INSPECT_ID {
    /// Identifies the connection request, with `SerialNumber`.
    pub Key: ULONG_PTR,
    /// Identifies the connection request, with `Key`.
    pub SerialNumber: ULONG,
}
/// Pointer to [`WSK_INSPECT_ID`].
pub type PWSK_INSPECT_ID = *mut WSK_INSPECT_ID;

// ---- Provider functions reached through WSK_PROVIDER_DISPATCH (the client-level table). ----

/// `PFN_WSK_SOCKET`: the signature of `WskSocket`, the provider's function.
pub type PFN_WSK_SOCKET = Option<
    unsafe extern "system" fn(
        Client: PWSK_CLIENT,
        AddressFamily: ADDRESS_FAMILY,
        SocketType: USHORT,
        Protocol: ULONG,
        Flags: ULONG,
        SocketContext: PVOID,
        Dispatch: *const c_void,
        OwningProcess: PEPROCESS,
        OwningThread: PETHREAD,
        SecurityDescriptor: PSECURITY_DESCRIPTOR,
        Irp: PIRP,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_SOCKET_CONNECT`: the signature of `WskSocketConnect`, the provider's function.
pub type PFN_WSK_SOCKET_CONNECT = Option<
    unsafe extern "system" fn(
        Client: PWSK_CLIENT,
        SocketType: USHORT,
        Protocol: ULONG,
        LocalAddress: PSOCKADDR,
        RemoteAddress: PSOCKADDR,
        Flags: ULONG,
        SocketContext: PVOID,
        Dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
        OwningProcess: PEPROCESS,
        OwningThread: PETHREAD,
        SecurityDescriptor: PSECURITY_DESCRIPTOR,
        Irp: PIRP,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_CONTROL_CLIENT`: the signature of `WskControlClient`, the provider's function.
pub type PFN_WSK_CONTROL_CLIENT = Option<
    unsafe extern "system" fn(
        Client: PWSK_CLIENT,
        ControlCode: ULONG,
        InputSize: SIZE_T,
        InputBuffer: PVOID,
        OutputSize: SIZE_T,
        OutputBuffer: PVOID,
        OutputSizeReturned: *mut SIZE_T,
        Irp: PIRP,
    ) -> NTSTATUS,
>;

/// `NodeName`/`ServiceName` are `PUNICODE_STRING`, `Provider` a `GUID*`, `Hints`/`Result` `ADDRINFOEXW`.
pub type PFN_WSK_GET_ADDRESS_INFO = Option<
    unsafe extern "system" fn(
        Client: PWSK_CLIENT,
        NodeName: *mut UNICODE_STRING,
        ServiceName: *mut UNICODE_STRING,
        NameSpace: ULONG,
        Provider: PVOID,
        Hints: PVOID,
        Result: *mut PVOID,
        OwningProcess: PEPROCESS,
        OwningThread: PETHREAD,
        Irp: PIRP,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_FREE_ADDRESS_INFO`: the signature of `WskFreeAddressInfo`, the provider's function.
pub type PFN_WSK_FREE_ADDRESS_INFO = Option<unsafe extern "system" fn(Client: PWSK_CLIENT, AddrInfo: PVOID)>;

/// `PFN_WSK_GET_NAME_INFO`: the signature of `WskGetNameInfo`, the provider's function.
pub type PFN_WSK_GET_NAME_INFO = Option<
    unsafe extern "system" fn(
        Client: PWSK_CLIENT,
        SockAddr: PSOCKADDR,
        SockAddrLength: ULONG,
        NodeName: *mut UNICODE_STRING,
        ServiceName: *mut UNICODE_STRING,
        Flags: ULONG,
        OwningProcess: PEPROCESS,
        OwningThread: PETHREAD,
        Irp: PIRP,
    ) -> NTSTATUS,
>;

// ---- Socket functions. ----

/// `PFN_WSK_CONTROL_SOCKET`: the signature of `WskControlSocket`, the provider's function.
pub type PFN_WSK_CONTROL_SOCKET = Option<
    unsafe extern "system" fn(
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
    ) -> NTSTATUS,
>;

/// `PFN_WSK_CLOSE_SOCKET`: the signature of `WskCloseSocket`, the provider's function.
pub type PFN_WSK_CLOSE_SOCKET = Option<unsafe extern "system" fn(Socket: PWSK_SOCKET, Irp: PIRP) -> NTSTATUS>;

/// `PFN_WSK_BIND`: the signature of `WskBind`, the provider's function.
pub type PFN_WSK_BIND = Option<
    unsafe extern "system" fn(Socket: PWSK_SOCKET, LocalAddress: PSOCKADDR, Flags: ULONG, Irp: PIRP) -> NTSTATUS,
>;

/// `PFN_WSK_ACCEPT`: the signature of `WskAccept`, the provider's function.
pub type PFN_WSK_ACCEPT = Option<
    unsafe extern "system" fn(
        ListenSocket: PWSK_SOCKET,
        Flags: ULONG,
        AcceptSocketContext: PVOID,
        AcceptSocketDispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
        LocalAddress: PSOCKADDR,
        RemoteAddress: PSOCKADDR,
        Irp: PIRP,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_INSPECT_COMPLETE`: the signature of `WskInspectComplete`, the provider's function.
pub type PFN_WSK_INSPECT_COMPLETE = Option<
    unsafe extern "system" fn(
        ListenSocket: PWSK_SOCKET,
        InspectID: PWSK_INSPECT_ID,
        Action: WSK_INSPECT_ACTION,
        Irp: PIRP,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_GET_LOCAL_ADDRESS`: the signature of `WskGetLocalAddress`, the provider's function.
pub type PFN_WSK_GET_LOCAL_ADDRESS =
    Option<unsafe extern "system" fn(Socket: PWSK_SOCKET, LocalAddress: PSOCKADDR, Irp: PIRP) -> NTSTATUS>;

/// `PFN_WSK_GET_REMOTE_ADDRESS`: the signature of `WskGetRemoteAddress`, the provider's function.
pub type PFN_WSK_GET_REMOTE_ADDRESS =
    Option<unsafe extern "system" fn(Socket: PWSK_SOCKET, RemoteAddress: PSOCKADDR, Irp: PIRP) -> NTSTATUS>;

/// `PFN_WSK_CONNECT`: the signature of `WskConnect`, the provider's function.
pub type PFN_WSK_CONNECT = Option<
    unsafe extern "system" fn(Socket: PWSK_SOCKET, RemoteAddress: PSOCKADDR, Flags: ULONG, Irp: PIRP) -> NTSTATUS,
>;

/// `PFN_WSK_CONNECT_EX`: the signature of `WskConnectEx`, the provider's function.
pub type PFN_WSK_CONNECT_EX = Option<
    unsafe extern "system" fn(
        Socket: PWSK_SOCKET,
        RemoteAddress: PSOCKADDR,
        Buffer: PWSK_BUF,
        Flags: ULONG,
        Irp: PIRP,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_LISTEN`: the signature of `WskListen`, the provider's function.
pub type PFN_WSK_LISTEN = Option<unsafe extern "system" fn(Socket: PWSK_SOCKET, Irp: PIRP) -> NTSTATUS>;

/// `PFN_WSK_SEND`: the signature of `WskSend`, the provider's function.
pub type PFN_WSK_SEND =
    Option<unsafe extern "system" fn(Socket: PWSK_SOCKET, Buffer: PWSK_BUF, Flags: ULONG, Irp: PIRP) -> NTSTATUS>;

/// `PFN_WSK_RECEIVE`: the signature of `WskReceive`, the provider's function.
pub type PFN_WSK_RECEIVE =
    Option<unsafe extern "system" fn(Socket: PWSK_SOCKET, Buffer: PWSK_BUF, Flags: ULONG, Irp: PIRP) -> NTSTATUS>;

/// `Buffer` is optional (NULL, or NULL required with `WSK_FLAG_ABORTIVE`).
pub type PFN_WSK_DISCONNECT =
    Option<unsafe extern "system" fn(Socket: PWSK_SOCKET, Buffer: PWSK_BUF, Flags: ULONG, Irp: PIRP) -> NTSTATUS>;

/// `PFN_WSK_RELEASE_DATA_INDICATION_LIST`: the signature of `WskRelease`, the provider's function.
pub type PFN_WSK_RELEASE_DATA_INDICATION_LIST =
    Option<unsafe extern "system" fn(Socket: PWSK_SOCKET, DataIndication: PWSK_DATA_INDICATION) -> NTSTATUS>;

/// `PFN_WSK_SEND_TO`: the signature of `WskSendTo`, the provider's function. `Flags` is reserved
/// (0); `RemoteAddress` may be NULL only if the socket has a fixed remote address
/// (`SIO_WSK_SET_REMOTE_ADDRESS`); `ControlInfo` is a `PCMSGHDR` of `ControlInfoLength` bytes, or NULL.
pub type PFN_WSK_SEND_TO = Option<
    unsafe extern "system" fn(
        Socket: PWSK_SOCKET,
        Buffer: PWSK_BUF,
        Flags: ULONG,
        RemoteAddress: PSOCKADDR,
        ControlInfoLength: ULONG,
        ControlInfo: PVOID,
        Irp: PIRP,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_RECEIVE_FROM`: the signature of `WskReceiveFrom`, the provider's function. `Flags` is
/// reserved (0). Every other pointer is optional: `RemoteAddress` receives the sender's address,
/// `ControlLength` (in: size of `ControlInfo`, a `PCMSGHDR` buffer; out: bytes of control
/// information), `ControlFlags` the `MSG_*` flags of the datagram ([`MSG_TRUNC`](super::MSG_TRUNC), ...).
pub type PFN_WSK_RECEIVE_FROM = Option<
    unsafe extern "system" fn(
        Socket: PWSK_SOCKET,
        Buffer: PWSK_BUF,
        Flags: ULONG,
        RemoteAddress: PSOCKADDR,
        ControlLength: *mut ULONG,
        ControlInfo: PVOID,
        ControlFlags: *mut ULONG,
        Irp: PIRP,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST`: the signature of a datagram socket's `WskRelease`.
pub type PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST =
    Option<unsafe extern "system" fn(Socket: PWSK_SOCKET, DatagramIndication: PWSK_DATAGRAM_INDICATION) -> NTSTATUS>;

/// Reserved for system use (`ControlInfo` is a `PCMSGHDR`).
pub type PFN_WSK_SEND_EX = Option<
    unsafe extern "system" fn(
        Socket: PWSK_SOCKET,
        Buffer: PWSK_BUF,
        Flags: ULONG,
        ControlInfoLength: ULONG,
        ControlInfo: PVOID,
        Irp: PIRP,
    ) -> NTSTATUS,
>;

/// Reserved for system use (`ControlInfo` is a `PCMSGHDR`).
pub type PFN_WSK_RECEIVE_EX = Option<
    unsafe extern "system" fn(
        Socket: PWSK_SOCKET,
        Buffer: PWSK_BUF,
        Flags: ULONG,
        ControlInfoLength: *mut ULONG,
        ControlInfo: PVOID,
        ControlFlags: *mut ULONG,
        Irp: PIRP,
    ) -> NTSTATUS,
>;

/// `WSK_PROVIDER_BASIC_DISPATCH`: the functions of every socket.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_PROVIDER_BASIC_DISPATCH {
    /// `WskControlSocket` ([`PFN_WSK_CONTROL_SOCKET`]).
    pub WskControlSocket: PFN_WSK_CONTROL_SOCKET,
    /// `WskCloseSocket` ([`PFN_WSK_CLOSE_SOCKET`]).
    pub WskCloseSocket: PFN_WSK_CLOSE_SOCKET,
}
/// Pointer to [`WSK_PROVIDER_BASIC_DISPATCH`].
pub type PWSK_PROVIDER_BASIC_DISPATCH = *const WSK_PROVIDER_BASIC_DISPATCH;

/// `WSK_PROVIDER_LISTEN_DISPATCH`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_PROVIDER_LISTEN_DISPATCH {
    /// The functions of every socket.
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    /// `WskBind` ([`PFN_WSK_BIND`]).
    pub WskBind: PFN_WSK_BIND,
    /// `WskAccept` ([`PFN_WSK_ACCEPT`]).
    pub WskAccept: PFN_WSK_ACCEPT,
    /// `WskInspectComplete` ([`PFN_WSK_INSPECT_COMPLETE`]).
    pub WskInspectComplete: PFN_WSK_INSPECT_COMPLETE,
    /// `WskGetLocalAddress` ([`PFN_WSK_GET_LOCAL_ADDRESS`]).
    pub WskGetLocalAddress: PFN_WSK_GET_LOCAL_ADDRESS,
}
/// Pointer to [`WSK_PROVIDER_LISTEN_DISPATCH`].
pub type PWSK_PROVIDER_LISTEN_DISPATCH = *const WSK_PROVIDER_LISTEN_DISPATCH;

/// `WSK_PROVIDER_DATAGRAM_DISPATCH`: the functions of a datagram socket (`WSK_FLAG_DATAGRAM_SOCKET`).
///
/// Windows 10 1703 (`NTDDI_WIN10_RS2`) appends `WskSendMessages`; this declaration stops before it,
/// since nothing in this project calls or emulates it (a client reading only these members works
/// with either table).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_PROVIDER_DATAGRAM_DISPATCH {
    /// The functions of every socket.
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    /// `WskBind` ([`PFN_WSK_BIND`]).
    pub WskBind: PFN_WSK_BIND,
    /// `WskSendTo` ([`PFN_WSK_SEND_TO`]).
    pub WskSendTo: PFN_WSK_SEND_TO,
    /// `WskReceiveFrom` ([`PFN_WSK_RECEIVE_FROM`]).
    pub WskReceiveFrom: PFN_WSK_RECEIVE_FROM,
    /// `WskRelease` ([`PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST`]).
    pub WskRelease: PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST,
    /// `WskGetLocalAddress` ([`PFN_WSK_GET_LOCAL_ADDRESS`]).
    pub WskGetLocalAddress: PFN_WSK_GET_LOCAL_ADDRESS,
}
/// Pointer to [`WSK_PROVIDER_DATAGRAM_DISPATCH`].
pub type PWSK_PROVIDER_DATAGRAM_DISPATCH = *const WSK_PROVIDER_DATAGRAM_DISPATCH;

/// `WSK_PROVIDER_CONNECTION_DISPATCH` (with the Windows 10 1703 `Ex` members).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_PROVIDER_CONNECTION_DISPATCH {
    /// The functions of every socket.
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    /// `WskBind` ([`PFN_WSK_BIND`]).
    pub WskBind: PFN_WSK_BIND,
    /// `WskConnect` ([`PFN_WSK_CONNECT`]).
    pub WskConnect: PFN_WSK_CONNECT,
    /// `WskGetLocalAddress` ([`PFN_WSK_GET_LOCAL_ADDRESS`]).
    pub WskGetLocalAddress: PFN_WSK_GET_LOCAL_ADDRESS,
    /// `WskGetRemoteAddress` ([`PFN_WSK_GET_REMOTE_ADDRESS`]).
    pub WskGetRemoteAddress: PFN_WSK_GET_REMOTE_ADDRESS,
    /// `WskSend` ([`PFN_WSK_SEND`]).
    pub WskSend: PFN_WSK_SEND,
    /// `WskReceive` ([`PFN_WSK_RECEIVE`]).
    pub WskReceive: PFN_WSK_RECEIVE,
    /// `WskDisconnect` ([`PFN_WSK_DISCONNECT`]).
    pub WskDisconnect: PFN_WSK_DISCONNECT,
    /// `WskRelease` ([`PFN_WSK_RELEASE_DATA_INDICATION_LIST`]).
    pub WskRelease: PFN_WSK_RELEASE_DATA_INDICATION_LIST,
    /// `WskConnectEx` ([`PFN_WSK_CONNECT_EX`]).
    pub WskConnectEx: PFN_WSK_CONNECT_EX,
    /// `WskSendEx` ([`PFN_WSK_SEND_EX`]).
    pub WskSendEx: PFN_WSK_SEND_EX,
    /// `WskReceiveEx` ([`PFN_WSK_RECEIVE_EX`]).
    pub WskReceiveEx: PFN_WSK_RECEIVE_EX,
}
/// Pointer to [`WSK_PROVIDER_CONNECTION_DISPATCH`].
pub type PWSK_PROVIDER_CONNECTION_DISPATCH = *const WSK_PROVIDER_CONNECTION_DISPATCH;

/// `WSK_PROVIDER_STREAM_DISPATCH` (Windows 10 1703): a socket that can listen or connect.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_PROVIDER_STREAM_DISPATCH {
    /// The functions of every socket.
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    /// `WskBind` ([`PFN_WSK_BIND`]).
    pub WskBind: PFN_WSK_BIND,
    /// `WskAccept` ([`PFN_WSK_ACCEPT`]).
    pub WskAccept: PFN_WSK_ACCEPT,
    /// `WskConnect` ([`PFN_WSK_CONNECT`]).
    pub WskConnect: PFN_WSK_CONNECT,
    /// `WskListen` ([`PFN_WSK_LISTEN`]).
    pub WskListen: PFN_WSK_LISTEN,
    /// `WskSend` ([`PFN_WSK_SEND`]).
    pub WskSend: PFN_WSK_SEND,
    /// `WskReceive` ([`PFN_WSK_RECEIVE`]).
    pub WskReceive: PFN_WSK_RECEIVE,
    /// `WskDisconnect` ([`PFN_WSK_DISCONNECT`]).
    pub WskDisconnect: PFN_WSK_DISCONNECT,
    /// `WskRelease` ([`PFN_WSK_RELEASE_DATA_INDICATION_LIST`]).
    pub WskRelease: PFN_WSK_RELEASE_DATA_INDICATION_LIST,
    /// `WskGetLocalAddress` ([`PFN_WSK_GET_LOCAL_ADDRESS`]).
    pub WskGetLocalAddress: PFN_WSK_GET_LOCAL_ADDRESS,
    /// `WskGetRemoteAddress` ([`PFN_WSK_GET_REMOTE_ADDRESS`]).
    pub WskGetRemoteAddress: PFN_WSK_GET_REMOTE_ADDRESS,
    /// `WskConnectEx` ([`PFN_WSK_CONNECT_EX`]).
    pub WskConnectEx: PFN_WSK_CONNECT_EX,
    /// `WskSendEx` ([`PFN_WSK_SEND_EX`]).
    pub WskSendEx: PFN_WSK_SEND_EX,
    /// `WskReceiveEx` ([`PFN_WSK_RECEIVE_EX`]).
    pub WskReceiveEx: PFN_WSK_RECEIVE_EX,
}
/// Pointer to [`WSK_PROVIDER_STREAM_DISPATCH`].
pub type PWSK_PROVIDER_STREAM_DISPATCH = *const WSK_PROVIDER_STREAM_DISPATCH;

// ---- Client event callbacks (the client's tables, passed to WskSocket / WskAccept). ----

/// `PFN_WSK_RECEIVE_EVENT`: the signature of `WskReceiveEvent`, the client's callback.
pub type PFN_WSK_RECEIVE_EVENT = Option<
    unsafe extern "system" fn(
        SocketContext: PVOID,
        Flags: ULONG,
        DataIndication: PWSK_DATA_INDICATION,
        BytesIndicated: SIZE_T,
        BytesAccepted: *mut SIZE_T,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_DISCONNECT_EVENT`: the signature of `WskDisconnectEvent`, the client's callback.
pub type PFN_WSK_DISCONNECT_EVENT = Option<unsafe extern "system" fn(SocketContext: PVOID, Flags: ULONG) -> NTSTATUS>;

/// `PFN_WSK_SEND_BACKLOG_EVENT`: the signature of `WskSendBacklogEvent`, the client's callback.
pub type PFN_WSK_SEND_BACKLOG_EVENT =
    Option<unsafe extern "system" fn(SocketContext: PVOID, IdealBacklogSize: SIZE_T) -> NTSTATUS>;

/// `PFN_WSK_ACCEPT_EVENT`: the signature of `WskAcceptEvent`, the client's callback.
pub type PFN_WSK_ACCEPT_EVENT = Option<
    unsafe extern "system" fn(
        SocketContext: PVOID,
        Flags: ULONG,
        LocalAddress: PSOCKADDR,
        RemoteAddress: PSOCKADDR,
        AcceptSocket: PWSK_SOCKET,
        AcceptSocketContext: *mut PVOID,
        AcceptSocketDispatch: *mut *const WSK_CLIENT_CONNECTION_DISPATCH,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_INSPECT_EVENT`: the signature of `WskInspectEvent`, the client's callback.
pub type PFN_WSK_INSPECT_EVENT = Option<
    unsafe extern "system" fn(
        SocketContext: PVOID,
        LocalAddress: PSOCKADDR,
        RemoteAddress: PSOCKADDR,
        InspectID: PWSK_INSPECT_ID,
    ) -> WSK_INSPECT_ACTION,
>;

/// `PFN_WSK_ABORT_EVENT`: the signature of `WskAbortEvent`, the client's callback.
pub type PFN_WSK_ABORT_EVENT =
    Option<unsafe extern "system" fn(SocketContext: PVOID, InspectID: PWSK_INSPECT_ID) -> NTSTATUS>;

/// `WSK_CLIENT_CONNECTION_DISPATCH`: event callbacks of a connection-oriented socket.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_CLIENT_CONNECTION_DISPATCH {
    /// `WskReceiveEvent` ([`PFN_WSK_RECEIVE_EVENT`]), or `None` if the client does not use it.
    pub WskReceiveEvent: PFN_WSK_RECEIVE_EVENT,
    /// `WskDisconnectEvent` ([`PFN_WSK_DISCONNECT_EVENT`]), or `None` if the client does not use it.
    pub WskDisconnectEvent: PFN_WSK_DISCONNECT_EVENT,
    /// `WskSendBacklogEvent` ([`PFN_WSK_SEND_BACKLOG_EVENT`]), or `None` if the client does not use it.
    pub WskSendBacklogEvent: PFN_WSK_SEND_BACKLOG_EVENT,
}

/// `WSK_CLIENT_LISTEN_DISPATCH`: event callbacks of a listening socket.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_CLIENT_LISTEN_DISPATCH {
    /// `WskAcceptEvent` ([`PFN_WSK_ACCEPT_EVENT`]), or `None` if the client does not use it.
    pub WskAcceptEvent: PFN_WSK_ACCEPT_EVENT,
    /// `WskInspectEvent` ([`PFN_WSK_INSPECT_EVENT`]), or `None` if the client does not use it.
    pub WskInspectEvent: PFN_WSK_INSPECT_EVENT,
    /// `WskAbortEvent` ([`PFN_WSK_ABORT_EVENT`]), or `None` if the client does not use it.
    pub WskAbortEvent: PFN_WSK_ABORT_EVENT,
}

/// `WSK_CLIENT_STREAM_DISPATCH` (Windows 10 1703).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_CLIENT_STREAM_DISPATCH {
    /// The callbacks while the socket listens.
    pub Listen: *const WSK_CLIENT_LISTEN_DISPATCH,
    /// The callbacks once the socket is connected.
    pub Connect: *const WSK_CLIENT_CONNECTION_DISPATCH,
}

//! `wsk.h` constants: versions, socket categories, call flags, control codes, and the socket-option
//! constants (`ws2def.h`, `ws2ipdef.h`) this project passes to `WskControlSocket`.

use crate::types::{UCHAR, ULONG, USHORT};

/// `MAKE_WSK_VERSION(Mj, Mn)`: major version in the high byte, minor in the low byte.
pub const fn MAKE_WSK_VERSION(major: u8, minor: u8) -> USHORT {
    ((major as USHORT) << 8) | minor as USHORT
}

/// `WSK_MAJOR_VERSION(V)`.
pub const fn WSK_MAJOR_VERSION(version: USHORT) -> UCHAR {
    (version >> 8) as UCHAR
}

/// `WSK_MINOR_VERSION(V)`.
pub const fn WSK_MINOR_VERSION(version: USHORT) -> UCHAR {
    version as UCHAR
}

/// Version 1.0, the version every WSK client of this project asks for.
pub const WSK_FIRST_VERSION: USHORT = MAKE_WSK_VERSION(1, 0);

/// `WskCaptureProviderNPI` timeouts (milliseconds otherwise).
pub const WSK_NO_WAIT: ULONG = 0;
/// Wait until the provider is available.
pub const WSK_INFINITE_WAIT: ULONG = 0xFFFF_FFFF;

/// `WskSocket` flags: the socket category (and so the dispatch table `WSK_SOCKET::Dispatch` points to).
pub const WSK_FLAG_BASIC_SOCKET: ULONG = 0x0000_0000;
/// `WskSocket`: a listening socket.
pub const WSK_FLAG_LISTEN_SOCKET: ULONG = 0x0000_0001;
/// `WskSocket`: a connection-oriented socket.
pub const WSK_FLAG_CONNECTION_SOCKET: ULONG = 0x0000_0002;
/// `WskSocket`: a datagram socket.
pub const WSK_FLAG_DATAGRAM_SOCKET: ULONG = 0x0000_0004;
/// Windows 10 1703 and later.
pub const WSK_FLAG_STREAM_SOCKET: ULONG = 0x0000_0008;

/// `WskDisconnect`: abortive disconnect (RST); the buffer must then be NULL.
pub const WSK_FLAG_ABORTIVE: ULONG = 0x0000_0001;
/// `WskSend`: send without waiting to coalesce (disables Nagle for this send).
pub const WSK_FLAG_NODELAY: ULONG = 0x0000_0002;
/// `WskReceive`: complete only when the whole buffer is filled (or the connection ends).
pub const WSK_FLAG_WAITALL: ULONG = 0x0000_0002;
/// `WskReceive`: discard the data instead of copying it.
pub const WSK_FLAG_DRAIN: ULONG = 0x0000_0004;
/// Event callbacks: the data indication may be held by the client (`WskRelease`).
pub const WSK_FLAG_RELEASE_ASAP: ULONG = 0x0000_0002;
/// Event callbacks: the indication holds a whole message.
pub const WSK_FLAG_ENTIRE_MESSAGE: ULONG = 0x0000_0004;
/// Event callbacks: the callback runs at DISPATCH_LEVEL.
pub const WSK_FLAG_AT_DISPATCH_LEVEL: ULONG = 0x0000_0008;

/// `WskReceiveFrom`'s `ControlFlags` (`mswsock.h`): the datagram was longer than the buffer and was
/// truncated to it.
pub const MSG_TRUNC: ULONG = 0x0100;
/// `WskReceiveFrom`'s `ControlFlags`: the control information was truncated to its buffer.
pub const MSG_CTRUNC: ULONG = 0x0200;
/// `WskReceiveFrom`'s `ControlFlags`: the datagram was a link-layer or broadcast-address broadcast.
pub const MSG_BCAST: ULONG = 0x0400;
/// `WskReceiveFrom`'s `ControlFlags`: the datagram was sent to a multicast address.
pub const MSG_MCAST: ULONG = 0x0800;

/// `WSK_CONTROL_SOCKET_TYPE`.
pub type WSK_CONTROL_SOCKET_TYPE = i32;
/// Set a socket option.
pub const WskSetOption: WSK_CONTROL_SOCKET_TYPE = 0;
/// Read a socket option.
pub const WskGetOption: WSK_CONTROL_SOCKET_TYPE = 1;
/// Issue an I/O control code.
pub const WskIoctl: WSK_CONTROL_SOCKET_TYPE = 2;

/// `IOC_WSK` (`wsk.h`, `ws2def.h`): WSK's own socket IOCTLs are Winsock 2 codes (`IOC_WS2`,
/// 0x08000000) with the top three bits of the vendor field set (`IOC_WS2 | 0x07000000`).
pub const IOC_WSK: ULONG = 0x0800_0000 | 0x0700_0000;
/// `SIO_WSK_QUERY_IDEAL_SEND_BACKLOG` (`wsk.h`: `_WSAIOR(IOC_WSK, 0x3)`, i.e. `IOC_OUT` 0x40000000 |
/// `IOC_WSK` | 3): `WskControlSocket(WskIoctl)` on a connected stream socket writes the ideal send
/// backlog, a `SIZE_T`, to its output buffer: how many bytes of sends to keep passed to WSK and not
/// yet completed to keep the stream full. mingw-w64 has no `wsk.h`; `nt/tests/header_facts` checks
/// the value against its `_WSAIOR` and `IOC_WS2`.
pub const SIO_WSK_QUERY_IDEAL_SEND_BACKLOG: ULONG = 0x4000_0000 | IOC_WSK | 0x3;
const _: () = assert!(SIO_WSK_QUERY_IDEAL_SEND_BACKLOG == 0x4F00_0003);

/// `WSK_INSPECT_ACTION`.
pub type WSK_INSPECT_ACTION = i32;
/// Reject the incoming connection.
pub const WskInspectReject: WSK_INSPECT_ACTION = 0;
/// Accept the incoming connection.
pub const WskInspectAccept: WSK_INSPECT_ACTION = 1;
/// Decide later, with `WskInspectComplete`.
pub const WskInspectPend: WSK_INSPECT_ACTION = 2;

/// Event callback masks for `SO_WSK_EVENT_CALLBACK`.
pub const WSK_EVENT_ACCEPT: ULONG = 0x0000_0200;
/// Enable `WskReceiveEvent`.
pub const WSK_EVENT_RECEIVE: ULONG = 0x0000_0040;
/// Enable `WskDisconnectEvent`.
pub const WSK_EVENT_DISCONNECT: ULONG = 0x0000_0080;
/// Enable `WskSendBacklogEvent`.
pub const WSK_EVENT_SEND_BACKLOG: ULONG = 0x0000_0010;
/// Disable the callbacks named with it.
pub const WSK_EVENT_DISABLE: ULONG = 0x8000_0000;

/// `ADDRESS_FAMILY` values (`ws2def.h`). Note `AF_INET6` is 23 on Windows (10 on Linux).
pub type ADDRESS_FAMILY = USHORT;
/// Unspecified.
pub const AF_UNSPEC: ADDRESS_FAMILY = 0;
/// IPv4.
pub const AF_INET: ADDRESS_FAMILY = 2;
/// IPv6 (23 on Windows).
pub const AF_INET6: ADDRESS_FAMILY = 23;

/// Socket types and protocols.
pub const SOCK_STREAM: USHORT = 1;
/// Datagram sockets.
pub const SOCK_DGRAM: USHORT = 2;
/// TCP.
pub const IPPROTO_TCP: ULONG = 6;
/// UDP.
pub const IPPROTO_UDP: ULONG = 17;
/// `TCP_NODELAY` (level `IPPROTO_TCP`, `ws2def.h`/`winsock2.h`): a ULONG, nonzero = send without
/// Nagle's coalescing.
pub const TCP_NODELAY: ULONG = 0x0001;

/// Option levels and options for `WskControlSocket(WskSetOption/WskGetOption, ...)`.
pub const SOL_SOCKET: ULONG = 0xFFFF;
/// The IPv6 option level.
pub const IPPROTO_IPV6: ULONG = 41;
/// `IPV6_V6ONLY` (`ws2ipdef.h`): a ULONG, nonzero (the Windows default) = IPv6 only. A dual-stack
/// listener sets it to 0 before `WskBind`.
pub const IPV6_V6ONLY: ULONG = 27;
/// `SO_REUSEADDR`: allow binding an address in use.
pub const SO_REUSEADDR: ULONG = 0x0004;
/// `SO_KEEPALIVE`: send keep-alive probes on an idle connection.
pub const SO_KEEPALIVE: ULONG = 0x0008;
/// `SO_EXCLUSIVEADDRUSE`: no other socket may bind the address.
pub const SO_EXCLUSIVEADDRUSE: ULONG = !SO_REUSEADDR;

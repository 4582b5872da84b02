//! x64 layouts of the WSK ABI pinned at compile time, from `wsk.h`, `netioddk.h`, `ws2def.h` and
//! `ws2ipdef.h`. Members are named by their C path (the unnamed basic dispatch table embedded in the
//! listen/connection/stream tables contributes its members directly, as in C).
//!
//! Exported as [`WSK_LAYOUT`], in the same `(C type, C member or "" for sizeof, value)` form as
//! `nt::LAYOUT`, so a header cross-check can generate its probe from it. Debian's mingw-w64 ships no
//! `wsk.h`/`netioddk.h`; the socket address rows can be checked against its `ws2def.h`/`ws2ipdef.h`.

use super::*;
use core::mem::{offset_of, size_of};

const BASIC: usize = offset_of!(WSK_PROVIDER_LISTEN_DISPATCH, Basic);

/// `(C type, C member path or "" for sizeof, value)` for every checked WSK size and offset.
pub const WSK_LAYOUT: &[(&str, &str, usize)] = &[
    ("WSK_SOCKET", "", size_of::<WSK_SOCKET>()),
    ("WSK_SOCKET", "Dispatch", offset_of!(WSK_SOCKET, Dispatch)),
    ("WSK_BUF", "", size_of::<WSK_BUF>()),
    ("WSK_BUF", "Mdl", offset_of!(WSK_BUF, Mdl)),
    ("WSK_BUF", "Offset", offset_of!(WSK_BUF, Offset)),
    ("WSK_BUF", "Length", offset_of!(WSK_BUF, Length)),
    ("WSK_DATA_INDICATION", "", size_of::<WSK_DATA_INDICATION>()),
    ("WSK_DATA_INDICATION", "Buffer", offset_of!(WSK_DATA_INDICATION, Buffer)),
    ("WSK_INSPECT_ID", "", size_of::<WSK_INSPECT_ID>()),
    (
        "WSK_INSPECT_ID",
        "SerialNumber",
        offset_of!(WSK_INSPECT_ID, SerialNumber),
    ),
    ("WSK_CLIENT_DISPATCH", "", size_of::<WSK_CLIENT_DISPATCH>()),
    (
        "WSK_CLIENT_DISPATCH",
        "Version",
        offset_of!(WSK_CLIENT_DISPATCH, Version),
    ),
    (
        "WSK_CLIENT_DISPATCH",
        "Reserved",
        offset_of!(WSK_CLIENT_DISPATCH, Reserved),
    ),
    (
        "WSK_CLIENT_DISPATCH",
        "WskClientEvent",
        offset_of!(WSK_CLIENT_DISPATCH, WskClientEvent),
    ),
    ("WSK_CLIENT_NPI", "", size_of::<WSK_CLIENT_NPI>()),
    (
        "WSK_CLIENT_NPI",
        "ClientContext",
        offset_of!(WSK_CLIENT_NPI, ClientContext),
    ),
    ("WSK_CLIENT_NPI", "Dispatch", offset_of!(WSK_CLIENT_NPI, Dispatch)),
    ("WSK_REGISTRATION", "", size_of::<WSK_REGISTRATION>()),
    (
        "WSK_REGISTRATION",
        "ReservedRegistrationContext",
        offset_of!(WSK_REGISTRATION, ReservedRegistrationContext),
    ),
    (
        "WSK_REGISTRATION",
        "ReservedRegistrationLock",
        offset_of!(WSK_REGISTRATION, ReservedRegistrationLock),
    ),
    ("WSK_PROVIDER_NPI", "", size_of::<WSK_PROVIDER_NPI>()),
    ("WSK_PROVIDER_NPI", "Client", offset_of!(WSK_PROVIDER_NPI, Client)),
    ("WSK_PROVIDER_NPI", "Dispatch", offset_of!(WSK_PROVIDER_NPI, Dispatch)),
    ("WSK_PROVIDER_DISPATCH", "", size_of::<WSK_PROVIDER_DISPATCH>()),
    (
        "WSK_PROVIDER_DISPATCH",
        "WskSocket",
        offset_of!(WSK_PROVIDER_DISPATCH, WskSocket),
    ),
    (
        "WSK_PROVIDER_DISPATCH",
        "WskSocketConnect",
        offset_of!(WSK_PROVIDER_DISPATCH, WskSocketConnect),
    ),
    (
        "WSK_PROVIDER_DISPATCH",
        "WskControlClient",
        offset_of!(WSK_PROVIDER_DISPATCH, WskControlClient),
    ),
    (
        "WSK_PROVIDER_DISPATCH",
        "WskGetAddressInfo",
        offset_of!(WSK_PROVIDER_DISPATCH, WskGetAddressInfo),
    ),
    (
        "WSK_PROVIDER_DISPATCH",
        "WskFreeAddressInfo",
        offset_of!(WSK_PROVIDER_DISPATCH, WskFreeAddressInfo),
    ),
    (
        "WSK_PROVIDER_DISPATCH",
        "WskGetNameInfo",
        offset_of!(WSK_PROVIDER_DISPATCH, WskGetNameInfo),
    ),
    (
        "WSK_PROVIDER_BASIC_DISPATCH",
        "",
        size_of::<WSK_PROVIDER_BASIC_DISPATCH>(),
    ),
    (
        "WSK_PROVIDER_BASIC_DISPATCH",
        "WskControlSocket",
        offset_of!(WSK_PROVIDER_BASIC_DISPATCH, WskControlSocket),
    ),
    (
        "WSK_PROVIDER_BASIC_DISPATCH",
        "WskCloseSocket",
        offset_of!(WSK_PROVIDER_BASIC_DISPATCH, WskCloseSocket),
    ),
    (
        "WSK_PROVIDER_LISTEN_DISPATCH",
        "",
        size_of::<WSK_PROVIDER_LISTEN_DISPATCH>(),
    ),
    (
        "WSK_PROVIDER_LISTEN_DISPATCH",
        "WskCloseSocket",
        BASIC + offset_of!(WSK_PROVIDER_BASIC_DISPATCH, WskCloseSocket),
    ),
    (
        "WSK_PROVIDER_LISTEN_DISPATCH",
        "WskBind",
        offset_of!(WSK_PROVIDER_LISTEN_DISPATCH, WskBind),
    ),
    (
        "WSK_PROVIDER_LISTEN_DISPATCH",
        "WskAccept",
        offset_of!(WSK_PROVIDER_LISTEN_DISPATCH, WskAccept),
    ),
    (
        "WSK_PROVIDER_LISTEN_DISPATCH",
        "WskInspectComplete",
        offset_of!(WSK_PROVIDER_LISTEN_DISPATCH, WskInspectComplete),
    ),
    (
        "WSK_PROVIDER_LISTEN_DISPATCH",
        "WskGetLocalAddress",
        offset_of!(WSK_PROVIDER_LISTEN_DISPATCH, WskGetLocalAddress),
    ),
    ("WSK_DATAGRAM_INDICATION", "", size_of::<WSK_DATAGRAM_INDICATION>()),
    (
        "WSK_DATAGRAM_INDICATION",
        "Buffer",
        offset_of!(WSK_DATAGRAM_INDICATION, Buffer),
    ),
    (
        "WSK_DATAGRAM_INDICATION",
        "ControlInfo",
        offset_of!(WSK_DATAGRAM_INDICATION, ControlInfo),
    ),
    (
        "WSK_DATAGRAM_INDICATION",
        "ControlInfoLength",
        offset_of!(WSK_DATAGRAM_INDICATION, ControlInfoLength),
    ),
    (
        "WSK_DATAGRAM_INDICATION",
        "RemoteAddress",
        offset_of!(WSK_DATAGRAM_INDICATION, RemoteAddress),
    ),
    (
        "WSK_PROVIDER_DATAGRAM_DISPATCH",
        "",
        size_of::<WSK_PROVIDER_DATAGRAM_DISPATCH>(),
    ),
    (
        "WSK_PROVIDER_DATAGRAM_DISPATCH",
        "WskCloseSocket",
        offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, Basic) + offset_of!(WSK_PROVIDER_BASIC_DISPATCH, WskCloseSocket),
    ),
    (
        "WSK_PROVIDER_DATAGRAM_DISPATCH",
        "WskBind",
        offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskBind),
    ),
    (
        "WSK_PROVIDER_DATAGRAM_DISPATCH",
        "WskSendTo",
        offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskSendTo),
    ),
    (
        "WSK_PROVIDER_DATAGRAM_DISPATCH",
        "WskReceiveFrom",
        offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskReceiveFrom),
    ),
    (
        "WSK_PROVIDER_DATAGRAM_DISPATCH",
        "WskRelease",
        offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskRelease),
    ),
    (
        "WSK_PROVIDER_DATAGRAM_DISPATCH",
        "WskGetLocalAddress",
        offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskGetLocalAddress),
    ),
    (
        "WSK_PROVIDER_CONNECTION_DISPATCH",
        "",
        size_of::<WSK_PROVIDER_CONNECTION_DISPATCH>(),
    ),
    (
        "WSK_PROVIDER_CONNECTION_DISPATCH",
        "WskBind",
        offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskBind),
    ),
    (
        "WSK_PROVIDER_CONNECTION_DISPATCH",
        "WskConnect",
        offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskConnect),
    ),
    (
        "WSK_PROVIDER_CONNECTION_DISPATCH",
        "WskGetLocalAddress",
        offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskGetLocalAddress),
    ),
    (
        "WSK_PROVIDER_CONNECTION_DISPATCH",
        "WskGetRemoteAddress",
        offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskGetRemoteAddress),
    ),
    (
        "WSK_PROVIDER_CONNECTION_DISPATCH",
        "WskSend",
        offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskSend),
    ),
    (
        "WSK_PROVIDER_CONNECTION_DISPATCH",
        "WskReceive",
        offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskReceive),
    ),
    (
        "WSK_PROVIDER_CONNECTION_DISPATCH",
        "WskDisconnect",
        offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskDisconnect),
    ),
    (
        "WSK_PROVIDER_CONNECTION_DISPATCH",
        "WskRelease",
        offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskRelease),
    ),
    (
        "WSK_PROVIDER_CONNECTION_DISPATCH",
        "WskConnectEx",
        offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskConnectEx),
    ),
    (
        "WSK_PROVIDER_CONNECTION_DISPATCH",
        "WskReceiveEx",
        offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskReceiveEx),
    ),
    (
        "WSK_PROVIDER_STREAM_DISPATCH",
        "",
        size_of::<WSK_PROVIDER_STREAM_DISPATCH>(),
    ),
    (
        "WSK_PROVIDER_STREAM_DISPATCH",
        "WskAccept",
        offset_of!(WSK_PROVIDER_STREAM_DISPATCH, WskAccept),
    ),
    (
        "WSK_PROVIDER_STREAM_DISPATCH",
        "WskListen",
        offset_of!(WSK_PROVIDER_STREAM_DISPATCH, WskListen),
    ),
    (
        "WSK_PROVIDER_STREAM_DISPATCH",
        "WskSend",
        offset_of!(WSK_PROVIDER_STREAM_DISPATCH, WskSend),
    ),
    (
        "WSK_PROVIDER_STREAM_DISPATCH",
        "WskDisconnect",
        offset_of!(WSK_PROVIDER_STREAM_DISPATCH, WskDisconnect),
    ),
    (
        "WSK_PROVIDER_STREAM_DISPATCH",
        "WskGetRemoteAddress",
        offset_of!(WSK_PROVIDER_STREAM_DISPATCH, WskGetRemoteAddress),
    ),
    (
        "WSK_PROVIDER_STREAM_DISPATCH",
        "WskReceiveEx",
        offset_of!(WSK_PROVIDER_STREAM_DISPATCH, WskReceiveEx),
    ),
    (
        "WSK_CLIENT_CONNECTION_DISPATCH",
        "",
        size_of::<WSK_CLIENT_CONNECTION_DISPATCH>(),
    ),
    (
        "WSK_CLIENT_CONNECTION_DISPATCH",
        "WskSendBacklogEvent",
        offset_of!(WSK_CLIENT_CONNECTION_DISPATCH, WskSendBacklogEvent),
    ),
    (
        "WSK_CLIENT_LISTEN_DISPATCH",
        "",
        size_of::<WSK_CLIENT_LISTEN_DISPATCH>(),
    ),
    (
        "WSK_CLIENT_STREAM_DISPATCH",
        "",
        size_of::<WSK_CLIENT_STREAM_DISPATCH>(),
    ),
    ("SOCKADDR", "", size_of::<SOCKADDR>()),
    ("SOCKADDR", "sa_data", offset_of!(SOCKADDR, sa_data)),
    ("SOCKADDR_IN", "", size_of::<SOCKADDR_IN>()),
    ("SOCKADDR_IN", "sin_port", offset_of!(SOCKADDR_IN, sin_port)),
    ("SOCKADDR_IN", "sin_addr", offset_of!(SOCKADDR_IN, sin_addr)),
    ("SOCKADDR_IN", "sin_zero", offset_of!(SOCKADDR_IN, sin_zero)),
    ("SOCKADDR_IN6", "", size_of::<SOCKADDR_IN6>()),
    ("SOCKADDR_IN6", "sin6_port", offset_of!(SOCKADDR_IN6, sin6_port)),
    ("SOCKADDR_IN6", "sin6_flowinfo", offset_of!(SOCKADDR_IN6, sin6_flowinfo)),
    ("SOCKADDR_IN6", "sin6_addr", offset_of!(SOCKADDR_IN6, sin6_addr)),
    ("SOCKADDR_IN6", "sin6_scope_id", offset_of!(SOCKADDR_IN6, sin6_scope_id)),
    ("SOCKADDR_STORAGE", "", size_of::<SOCKADDR_STORAGE>()),
    ("ADDRINFOEXW", "", size_of::<ADDRINFOEXW>()),
    ("ADDRINFOEXW", "ai_addrlen", offset_of!(ADDRINFOEXW, ai_addrlen)),
    ("ADDRINFOEXW", "ai_canonname", offset_of!(ADDRINFOEXW, ai_canonname)),
    ("ADDRINFOEXW", "ai_addr", offset_of!(ADDRINFOEXW, ai_addr)),
    ("ADDRINFOEXW", "ai_blob", offset_of!(ADDRINFOEXW, ai_blob)),
    ("ADDRINFOEXW", "ai_bloblen", offset_of!(ADDRINFOEXW, ai_bloblen)),
    ("ADDRINFOEXW", "ai_provider", offset_of!(ADDRINFOEXW, ai_provider)),
    ("ADDRINFOEXW", "ai_next", offset_of!(ADDRINFOEXW, ai_next)),
];

/// Looks a value up in [`WSK_LAYOUT`] at compile time.
const fn layout(ty: &str, member: &str) -> usize {
    crate::types::layout_lookup(WSK_LAYOUT, ty, member)
}

/// The documented x64 values (64-bit targets only, as for `nt::LAYOUT`).
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(layout("WSK_SOCKET", "") == 0x08);
    assert!(layout("WSK_BUF", "") == 0x18);
    assert!(layout("WSK_BUF", "Offset") == 0x08);
    assert!(layout("WSK_BUF", "Length") == 0x10);
    assert!(layout("WSK_DATA_INDICATION", "") == 0x20);
    assert!(layout("WSK_DATA_INDICATION", "Buffer") == 0x08);
    assert!(layout("WSK_INSPECT_ID", "") == 0x10);
    assert!(layout("WSK_CLIENT_DISPATCH", "") == 0x10);
    assert!(layout("WSK_CLIENT_DISPATCH", "Reserved") == 0x02);
    assert!(layout("WSK_CLIENT_DISPATCH", "WskClientEvent") == 0x08);
    assert!(layout("WSK_CLIENT_NPI", "") == 0x10);
    assert!(layout("WSK_CLIENT_NPI", "Dispatch") == 0x08);
    assert!(layout("WSK_REGISTRATION", "") == 0x18);
    assert!(layout("WSK_REGISTRATION", "ReservedRegistrationContext") == 0x08);
    assert!(layout("WSK_REGISTRATION", "ReservedRegistrationLock") == 0x10);
    assert!(layout("WSK_PROVIDER_NPI", "") == 0x10);
    assert!(layout("WSK_PROVIDER_NPI", "Dispatch") == 0x08);
    assert!(layout("WSK_PROVIDER_DISPATCH", "") == 0x38);
    assert!(layout("WSK_PROVIDER_DISPATCH", "WskSocket") == 0x08);
    assert!(layout("WSK_PROVIDER_DISPATCH", "WskSocketConnect") == 0x10);
    assert!(layout("WSK_PROVIDER_DISPATCH", "WskControlClient") == 0x18);
    assert!(layout("WSK_PROVIDER_DISPATCH", "WskGetNameInfo") == 0x30);
    assert!(layout("WSK_PROVIDER_BASIC_DISPATCH", "") == 0x10);
    assert!(layout("WSK_PROVIDER_BASIC_DISPATCH", "WskCloseSocket") == 0x08);
    assert!(layout("WSK_PROVIDER_LISTEN_DISPATCH", "") == 0x30);
    assert!(layout("WSK_PROVIDER_LISTEN_DISPATCH", "WskCloseSocket") == 0x08);
    assert!(layout("WSK_PROVIDER_LISTEN_DISPATCH", "WskBind") == 0x10);
    assert!(layout("WSK_PROVIDER_LISTEN_DISPATCH", "WskAccept") == 0x18);
    assert!(layout("WSK_PROVIDER_LISTEN_DISPATCH", "WskGetLocalAddress") == 0x28);
    // mingw-w64 has no wsk.h: these follow Microsoft's documented declarations of
    // WSK_DATAGRAM_INDICATION (Next, Buffer, ControlInfo, ControlInfoLength, RemoteAddress) and
    // WSK_PROVIDER_DATAGRAM_DISPATCH (Basic, WskBind, WskSendTo, WskReceiveFrom, WskRelease,
    // WskGetLocalAddress; WskSendMessages, Windows 10 1703, left out), every pointer 8 bytes and
    // aligned to 8, so ControlInfoLength (a ULONG) is followed by 4 bytes of padding.
    assert!(layout("WSK_DATAGRAM_INDICATION", "") == 0x38);
    assert!(layout("WSK_DATAGRAM_INDICATION", "Buffer") == 0x08);
    assert!(layout("WSK_DATAGRAM_INDICATION", "ControlInfo") == 0x20);
    assert!(layout("WSK_DATAGRAM_INDICATION", "ControlInfoLength") == 0x28);
    assert!(layout("WSK_DATAGRAM_INDICATION", "RemoteAddress") == 0x30);
    assert!(layout("WSK_PROVIDER_DATAGRAM_DISPATCH", "") == 0x38);
    assert!(layout("WSK_PROVIDER_DATAGRAM_DISPATCH", "WskCloseSocket") == 0x08);
    assert!(layout("WSK_PROVIDER_DATAGRAM_DISPATCH", "WskBind") == 0x10);
    assert!(layout("WSK_PROVIDER_DATAGRAM_DISPATCH", "WskSendTo") == 0x18);
    assert!(layout("WSK_PROVIDER_DATAGRAM_DISPATCH", "WskReceiveFrom") == 0x20);
    assert!(layout("WSK_PROVIDER_DATAGRAM_DISPATCH", "WskRelease") == 0x28);
    assert!(layout("WSK_PROVIDER_DATAGRAM_DISPATCH", "WskGetLocalAddress") == 0x30);
    assert!(layout("WSK_PROVIDER_CONNECTION_DISPATCH", "") == 0x68);
    assert!(layout("WSK_PROVIDER_CONNECTION_DISPATCH", "WskConnect") == 0x18);
    assert!(layout("WSK_PROVIDER_CONNECTION_DISPATCH", "WskGetRemoteAddress") == 0x28);
    assert!(layout("WSK_PROVIDER_CONNECTION_DISPATCH", "WskSend") == 0x30);
    assert!(layout("WSK_PROVIDER_CONNECTION_DISPATCH", "WskReceive") == 0x38);
    assert!(layout("WSK_PROVIDER_CONNECTION_DISPATCH", "WskDisconnect") == 0x40);
    assert!(layout("WSK_PROVIDER_CONNECTION_DISPATCH", "WskRelease") == 0x48);
    assert!(layout("WSK_PROVIDER_CONNECTION_DISPATCH", "WskReceiveEx") == 0x60);
    assert!(layout("WSK_PROVIDER_STREAM_DISPATCH", "") == 0x78);
    assert!(layout("WSK_PROVIDER_STREAM_DISPATCH", "WskListen") == 0x28);
    assert!(layout("WSK_PROVIDER_STREAM_DISPATCH", "WskSend") == 0x30);
    assert!(layout("WSK_PROVIDER_STREAM_DISPATCH", "WskGetRemoteAddress") == 0x58);
    assert!(layout("WSK_PROVIDER_STREAM_DISPATCH", "WskReceiveEx") == 0x70);
    assert!(layout("WSK_CLIENT_CONNECTION_DISPATCH", "") == 0x18);
    assert!(layout("WSK_CLIENT_LISTEN_DISPATCH", "") == 0x18);
    assert!(layout("WSK_CLIENT_STREAM_DISPATCH", "") == 0x10);
    assert!(layout("SOCKADDR", "") == 0x10);
    assert!(layout("SOCKADDR_IN", "") == 0x10);
    assert!(layout("SOCKADDR_IN", "sin_addr") == 0x04);
    assert!(layout("SOCKADDR_IN6", "") == 0x1C);
    assert!(layout("SOCKADDR_IN6", "sin6_addr") == 0x08);
    assert!(layout("SOCKADDR_IN6", "sin6_scope_id") == 0x18);
    assert!(layout("SOCKADDR_STORAGE", "") == 0x80);
    assert!(layout("ADDRINFOEXW", "") == 0x48);
    assert!(layout("ADDRINFOEXW", "ai_addr") == 0x20);
    assert!(layout("ADDRINFOEXW", "ai_next") == 0x40);
};

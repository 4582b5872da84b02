//! Socket options through `WskControlSocket`, over the raw ABI: `TCP_NODELAY` and `SO_KEEPALIVE` on
//! connections, `SO_EXCLUSIVEADDRUSE` on listeners before the bind. Each is read back through WSK
//! (`WskGetOption`) and from the transport: recorded on the in-memory network, and from the host
//! socket (`getsockopt`) over real TCP. Plus the refusals: an option where it does not apply, at the
//! wrong time, with a short buffer, or without the IRP.
#![cfg(not(target_os = "windows"))]

mod wsk_support;

use core::ptr;
use nt::emu::wsk::{Completion, HostOption, MemoryNetwork, OpKind};
use nt::emu::{self, Rule};
use nt::*;
use std::net::{Ipv4Addr, SocketAddr};
use wsk_support::*;

/// `WskControlSocket(WskSetOption)` with an IRP: (returned, final status).
fn set_option(socket: PWSK_SOCKET, level: ULONG, code: ULONG, value: ULONG) -> (NTSTATUS, NTSTATUS) {
    let f = basic(socket).WskControlSocket.expect("WskControlSocket");
    let (returned, status, _) = call(|irp| {
        // SAFETY: the value outlives the call, which `call` waits for.
        unsafe {
            f(
                socket,
                WskSetOption,
                code,
                level,
                size_of::<ULONG>(),
                &value as *const ULONG as PVOID,
                0,
                ptr::null_mut(),
                ptr::null_mut(),
                irp,
            )
        }
    });
    assert!(
        returned == status || returned == STATUS_PENDING,
        "returned {returned:#x}"
    );
    (returned, status)
}

/// Sets an option and asserts it succeeded.
fn set_ok(socket: PWSK_SOCKET, level: ULONG, code: ULONG, value: ULONG) {
    assert_eq!(
        set_option(socket, level, code, value).1,
        STATUS_SUCCESS,
        "set {level:#x}/{code:#x}"
    );
}

/// `WskControlSocket(WskGetOption)` with an IRP: the final status and the ULONG read back.
fn get_option(socket: PWSK_SOCKET, level: ULONG, code: ULONG) -> (NTSTATUS, ULONG) {
    let f = basic(socket).WskControlSocket.expect("WskControlSocket");
    let value = Box::new(core::cell::UnsafeCell::new(ULONG::MAX));
    let out = value.get();
    let (_, status, information) = call(|irp| {
        // SAFETY: the output outlives the call, which `call` waits for.
        unsafe {
            f(
                socket,
                WskGetOption,
                code,
                level,
                0,
                ptr::null_mut(),
                size_of::<ULONG>(),
                out.cast(),
                ptr::null_mut(),
                irp,
            )
        }
    });
    // Documented: Information is the number of bytes returned in the output buffer.
    let expected = if status == STATUS_SUCCESS {
        size_of::<ULONG>()
    } else {
        0
    };
    assert_eq!(information, expected, "Information of WskGetOption");
    (status, value.into_inner())
}

/// Both connection options, through WSK and on the transport, are `value`.
fn assert_connection_options(socket: PWSK_SOCKET, value: bool) {
    for (level, code, option) in [
        (IPPROTO_TCP, TCP_NODELAY, HostOption::NoDelay),
        (SOL_SOCKET, SO_KEEPALIVE, HostOption::KeepAlive),
    ] {
        assert_eq!(
            get_option(socket, level, code),
            (STATUS_SUCCESS, value.into()),
            "{option:?}"
        );
        assert_eq!(
            emu::wsk::host_option(socket, option),
            Some(value),
            "{option:?} on the transport"
        );
    }
}

/// Both connection options start off (Windows documents keep-alive off), are turned on
/// (`SO_KEEPALIVE` with `keepalive_on`: any nonzero ULONG is on), then off again; each time read
/// back through WSK and from the transport.
fn toggle_connection_options(socket: PWSK_SOCKET, keepalive_on: ULONG) {
    assert_connection_options(socket, false);
    set_ok(socket, IPPROTO_TCP, TCP_NODELAY, 1);
    set_ok(socket, SOL_SOCKET, SO_KEEPALIVE, keepalive_on);
    assert_connection_options(socket, true);
    set_ok(socket, IPPROTO_TCP, TCP_NODELAY, 0);
    set_ok(socket, SOL_SOCKET, SO_KEEPALIVE, 0);
    assert_connection_options(socket, false);
}

#[test]
fn nodelay_and_keepalive_are_set_on_a_memory_connection_and_read_back() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, _peer) = connected(&client, &net);
    toggle_connection_options(socket, 7);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn exclusive_address_use_is_set_before_the_bind_and_refused_after_it() {
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let client = Client::register();
    let listener = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    assert_eq!(
        get_option(listener, SOL_SOCKET, SO_EXCLUSIVEADDRUSE),
        (STATUS_SUCCESS, 0)
    );
    set_ok(listener, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1);
    bind(listener, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    assert_eq!(
        get_option(listener, SOL_SOCKET, SO_EXCLUSIVEADDRUSE),
        (STATUS_SUCCESS, 1)
    );
    assert_eq!(
        emu::wsk::host_option(listener, HostOption::ExclusiveAddressUse),
        Some(true)
    );
    // Documented: set before the bind. After it, refused (invented status) and unchanged.
    let (_, status) = set_option(listener, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 0);
    assert_eq!(status, STATUS_INVALID_DEVICE_STATE);
    assert_eq!(
        get_option(listener, SOL_SOCKET, SO_EXCLUSIVEADDRUSE),
        (STATUS_SUCCESS, 1)
    );
    // A listener without it records it off.
    let other = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    bind(other, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    assert_eq!(
        emu::wsk::host_option(other, HostOption::ExclusiveAddressUse),
        Some(false)
    );
    assert_eq!(close(other), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn options_are_refused_where_they_do_not_apply() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, _peer) = connected(&client, &net);
    // Not emulated: keep-alive on a listener, exclusive use on a connection.
    assert_eq!(
        set_option(listener, SOL_SOCKET, SO_KEEPALIVE, 1).1,
        STATUS_NOT_SUPPORTED
    );
    assert_eq!(
        set_option(listener, IPPROTO_TCP, TCP_NODELAY, 1).1,
        STATUS_NOT_SUPPORTED
    );
    assert_eq!(
        set_option(socket, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1).1,
        STATUS_NOT_SUPPORTED
    );
    // Unknown option.
    assert_eq!(set_option(socket, SOL_SOCKET, SO_REUSEADDR, 1).1, STATUS_NOT_SUPPORTED);
    // A connection-oriented socket not yet connected: no connection to apply it to.
    let unconnected = client.socket(AF_INET, WSK_FLAG_CONNECTION_SOCKET);
    assert_eq!(
        set_option(unconnected, IPPROTO_TCP, TCP_NODELAY, 1).1,
        STATUS_INVALID_DEVICE_STATE
    );
    assert_eq!(
        set_option(unconnected, SOL_SOCKET, SO_KEEPALIVE, 1).1,
        STATUS_INVALID_DEVICE_STATE
    );
    assert_eq!(get_option(unconnected, IPPROTO_TCP, TCP_NODELAY), (STATUS_SUCCESS, 0));
    // A short input buffer.
    let f = basic(socket).WskControlSocket.expect("WskControlSocket");
    let value: u16 = 1;
    // SAFETY: the value outlives the call, which `call` waits for.
    let (_, status, _) = call(|irp| unsafe {
        f(
            socket,
            WskSetOption,
            TCP_NODELAY,
            IPPROTO_TCP,
            size_of::<u16>(),
            &value as *const u16 as PVOID,
            0,
            ptr::null_mut(),
            ptr::null_mut(),
            irp,
        )
    });
    assert_eq!(status, STATUS_INVALID_PARAMETER);
    assert_eq!(emu::wsk::host_option(socket, HostOption::NoDelay), Some(false));
    for s in [unconnected, socket, listener] {
        assert_eq!(close(s), STATUS_SUCCESS);
    }
    client.deregister();
}

#[test]
fn an_option_set_without_an_irp_is_reported() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, _peer) = connected(&client, &net);
    emu::expect_violations();
    let f = basic(socket).WskControlSocket.expect("WskControlSocket");
    let value: ULONG = 1;
    // SAFETY: valid socket and input; no IRP (the violation under test).
    let returned = unsafe {
        f(
            socket,
            WskSetOption,
            SO_KEEPALIVE,
            SOL_SOCKET,
            size_of::<ULONG>(),
            &value as *const ULONG as PVOID,
            0,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    assert_eq!(returned, STATUS_INVALID_PARAMETER);
    let taken = emu::take_violations();
    assert_eq!(taken.len(), 1, "{taken:#?}");
    assert_eq!(taken[0].rule, Rule::InvalidParameter);
    assert!(taken[0].message().contains("WskControlSocket"), "{}", taken[0]);
    // Not applied.
    assert_eq!(emu::wsk::host_option(socket, HostOption::KeepAlive), Some(false));
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn a_held_option_set_completes_on_release() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, _peer) = connected(&client, &net);
    net.script(OpKind::Control, Completion::Hold);
    let f = basic(socket).WskControlSocket.expect("WskControlSocket");
    let value: ULONG = 1;
    let op = IrpOp::new();
    // SAFETY: the value and the IRP outlive the call (waited for below).
    let returned = unsafe {
        f(
            socket,
            WskSetOption,
            TCP_NODELAY,
            IPPROTO_TCP,
            size_of::<ULONG>(),
            &value as *const ULONG as PVOID,
            0,
            ptr::null_mut(),
            ptr::null_mut(),
            op.start(),
        )
    };
    assert_eq!(returned, STATUS_PENDING);
    assert!(!op.is_done());
    let held = net.held();
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(net.release(held.into_iter().next().unwrap()));
    assert_eq!(op.wait().0, STATUS_SUCCESS);
    assert_eq!(emu::wsk::host_option(socket, HostOption::NoDelay), Some(true));
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

/// Over real TCP: the options reach the host sockets.
#[cfg(all(target_os = "linux", not(miri)))]
mod tcp {
    use super::*;

    #[test]
    fn nodelay_and_keepalive_reach_the_host_socket() {
        let _session = emu::session();
        let client = Client::register();
        let (listener, socket, _peer) = connected_over_tcp(&client);
        toggle_connection_options(socket, 1);
        assert_eq!(close(socket), STATUS_SUCCESS);
        assert_eq!(close(listener), STATUS_SUCCESS);
        client.deregister();
    }

    #[test]
    fn an_exclusive_listener_has_no_host_reuse_address() {
        let _session = emu::session();
        let client = Client::register();
        let exclusive = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
        set_ok(exclusive, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1);
        bind(exclusive, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        assert_eq!(
            emu::wsk::host_option(exclusive, HostOption::ExclusiveAddressUse),
            Some(true)
        );
        let shared = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
        bind(shared, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        assert_eq!(
            emu::wsk::host_option(shared, HostOption::ExclusiveAddressUse),
            Some(false)
        );
        assert_eq!(close(exclusive), STATUS_SUCCESS);
        assert_eq!(close(shared), STATUS_SUCCESS);
        client.deregister();
    }
}

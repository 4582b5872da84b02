//! Listening again on a port right after the previous listener is gone, over the real-TCP
//! transport: a connection of the earlier listener lingering in TIME_WAIT does not block the new
//! bind (the host socket's SO_REUSEADDR, Linux semantics), and a second live listener on a port is
//! still refused with STATUS_ADDRESS_ALREADY_ASSOCIATED.
#![cfg(all(target_os = "linux", not(miri)))]

mod wsk_support;

use nt::emu;
use nt::*;
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use wsk_support::*;

/// `WskBind` of `addr`; returns the final status (the shared `bind` helper asserts success).
fn try_bind(socket: PWSK_SOCKET, addr: SocketAddr) -> NTSTATUS {
    let local = Addr::new(addr);
    let f = listen(socket).WskBind.expect("WskBind");
    // SAFETY: valid socket and address; the IRP is fresh and `call` waits for it.
    let (returned, status, _) = call(|irp| unsafe { f(socket, local.ptr(), 0, irp) });
    assert!(
        returned == status || returned == STATUS_PENDING,
        "WskBind returned {returned:#x}"
    );
    status
}

/// A dual-stack listening socket, not yet bound.
fn unbound_dual_stack_listener(client: &Client) -> PWSK_SOCKET {
    let socket = client.socket(AF_INET6, WSK_FLAG_LISTEN_SOCKET);
    set_v6only(socket, false);
    socket
}

/// Whether the host has a TCP connection in TIME_WAIT whose local port is `port` (read from
/// `/proc/net/tcp` and `/proc/net/tcp6`: state `06`).
fn time_wait_on(port: u16) -> bool {
    let local_port = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.len() > 3 && fields[1].ends_with(&local_port) && fields[3] == "06"
            })
    })
}

#[test]
fn a_port_whose_last_connection_lingers_in_time_wait_is_listened_on_again_at_once() {
    let _session = emu::session();
    let client = Client::register();
    let first = dual_stack_listener(&client, 0);
    let port = local_address(first).port();

    // One connection where the driver's side closes first, so that side ends in TIME_WAIT: a
    // graceful disconnect (FIN), the client's EOF and then its own FIN, which the driver reads as
    // a 0-byte receive.
    let mut peer = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    peer.set_read_timeout(Some(BOUND)).unwrap();
    let socket = accept_one(first);
    let op = IrpOp::new();
    disconnect(socket, None, &op);
    assert_eq!(op.wait().0, STATUS_SUCCESS, "graceful WskDisconnect");
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).expect("EOF from the driver's FIN");
    assert!(rest.is_empty());
    drop(peer);
    let buf = PoolBuf::new(16);
    receive(socket, &buf, 0, 16, 0, &op);
    assert_eq!(op.wait(), (STATUS_SUCCESS, 0), "the client's FIN");
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(first), STATUS_SUCCESS);
    assert!(
        time_wait_on(port),
        "precondition: the driver's side of the connection lingers in TIME_WAIT on port {port}"
    );

    // The port is listened on again at once, and serves.
    let second = unbound_dual_stack_listener(&client);
    assert_eq!(
        try_bind(second, SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))),
        STATUS_SUCCESS,
        "a connection in TIME_WAIT must not block a new listener on port {port}"
    );
    let _peer = TcpStream::connect((Ipv6Addr::LOCALHOST, port)).expect("connect to the new listener");
    let socket = accept_one(second);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(second), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn a_second_listener_on_a_port_already_listened_on_is_refused() {
    let _session = emu::session();
    let client = Client::register();
    let first = dual_stack_listener(&client, 0);
    let port = local_address(first).port();

    // Another dual-stack listener, and an IPv4 one (the first one covers IPv4 too).
    let second = unbound_dual_stack_listener(&client);
    assert_eq!(
        try_bind(second, SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))),
        STATUS_ADDRESS_ALREADY_ASSOCIATED
    );
    let third = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    assert_eq!(
        try_bind(third, SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        STATUS_ADDRESS_ALREADY_ASSOCIATED
    );
    assert_eq!(close(first), STATUS_SUCCESS);

    // A listener of another program (std's TcpListener sets SO_REUSEADDR as well) keeps its port.
    let other = TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0)).unwrap();
    let other_port = other.local_addr().unwrap().port();
    assert_eq!(
        try_bind(second, SocketAddr::from((Ipv6Addr::UNSPECIFIED, other_port))),
        STATUS_ADDRESS_ALREADY_ASSOCIATED
    );
    // The refused binds left the sockets unbound: they can still bind elsewhere.
    assert_eq!(
        try_bind(second, SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))),
        STATUS_SUCCESS
    );
    assert_eq!(close(second), STATUS_SUCCESS);
    assert_eq!(close(third), STATUS_SUCCESS);
    client.deregister();
}

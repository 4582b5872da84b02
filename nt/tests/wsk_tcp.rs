//! The WSK provider over real loopback TCP, driven through the raw WSK ABI as a C driver would use
//! it, against std `TcpStream` clients: echo, graceful and abortive disconnects, close semantics,
//! cancellation, outgoing connects.
#![cfg(all(not(target_os = "windows"), not(miri)))]

mod wsk_support;

use nt::emu;
use nt::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use wsk_support::*;

/// Accepts one connection on `listener`; returns the socket and the remote address WSK reported.
fn accept_one(listener: PWSK_SOCKET) -> (PWSK_SOCKET, SocketAddr) {
    let op = IrpOp::new();
    let remote = Addr::empty();
    accept(listener, &remote, &op);
    let (status, information) = op.wait();
    assert_eq!(status, STATUS_SUCCESS, "WskAccept");
    (
        std::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information),
        remote.get(),
    )
}

fn connect_client(port: u16, ip: std::net::IpAddr) -> TcpStream {
    let stream = TcpStream::connect((ip, port)).expect("connect");
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream.set_write_timeout(Some(BOUND)).unwrap();
    stream
}

/// The driver side of an echo: receive, send back, until the peer's FIN (a 0-byte receive); then a
/// graceful disconnect and close. Returns the bytes echoed.
fn echo_until_fin(socket: PWSK_SOCKET) -> usize {
    let op = IrpOp::new();
    let buf = PoolBuf::new(64 * 1024);
    let mut total = 0;
    loop {
        receive(socket, &buf, 0, 64 * 1024, 0, &op);
        let (status, n) = op.wait();
        assert_eq!(status, STATUS_SUCCESS, "WskReceive");
        if n == 0 {
            break;
        }
        send(socket, &buf, 0, n, &op);
        assert_eq!(op.wait(), (STATUS_SUCCESS, n), "WskSend");
        total += n;
    }
    disconnect(socket, None, &op);
    assert_eq!(op.wait().0, STATUS_SUCCESS, "graceful WskDisconnect");
    assert_eq!(close(socket), STATUS_SUCCESS);
    total
}

/// A client that writes `data` (from a second thread), then FIN, and reads the echo to EOF.
fn echo_client(port: u16, ip: std::net::IpAddr, data: Vec<u8>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut stream = connect_client(port, ip);
        let mut writer = stream.try_clone().unwrap();
        let sender = thread::spawn(move || {
            writer.write_all(&data).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut echoed = Vec::new();
        stream.read_to_end(&mut echoed).expect("read the echo to EOF");
        sender.join().unwrap();
        echoed
    })
}

#[test]
fn echo_of_1_mib_for_an_ipv4_and_an_ipv6_client_on_one_dual_stack_listener() {
    let _session = emu::session();
    let client = Client::register();
    let listener = dual_stack_listener(&client, 0);
    let local = local_address(listener);
    assert!(local.is_ipv6() && local.port() != 0, "{local}");

    for (ip, seed) in [(Ipv4Addr::LOCALHOST.into(), 1), (Ipv6Addr::LOCALHOST.into(), 2)] {
        let data = pattern(1 << 20, seed);
        let peer = echo_client(local.port(), ip, data.clone());
        let (socket, remote) = accept_one(listener);
        // A dual-stack socket reports IPv4 peers as IPv4-mapped IPv6 addresses, as on Windows.
        let expected_ip = match ip {
            std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            std::net::IpAddr::V6(v6) => v6,
        };
        assert_eq!(remote.ip(), std::net::IpAddr::V6(expected_ip));
        assert_eq!(remote_address(socket), remote);
        assert_eq!(echo_until_fin(socket), data.len());
        let echoed = peer.join().unwrap();
        assert!(echoed == data, "echo differs ({} bytes back)", echoed.len());
    }
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

/// Listener on 127.0.0.1:0 plus a connected client and the accepted socket.
fn connected_pair(client: &Client) -> (PWSK_SOCKET, PWSK_SOCKET, TcpStream) {
    let listener = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    bind(listener, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let port = local_address(listener).port();
    let stream = connect_client(port, Ipv4Addr::LOCALHOST.into());
    let (socket, remote) = accept_one(listener);
    assert_eq!(remote, stream.local_addr().unwrap());
    (listener, socket, stream)
}

#[test]
fn graceful_disconnect_with_a_final_buffer_delivers_every_byte_then_eof() {
    let _session = emu::session();
    let client = Client::register();
    let (listener, socket, mut stream) = connected_pair(&client);
    let data = pattern(300 * 1024, 7);
    let last = PoolBuf::with(&data);
    let op = IrpOp::new();
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("read to EOF");
        got
    });
    disconnect(socket, Some(&last), &op);
    assert_eq!(op.wait().0, STATUS_SUCCESS);
    assert!(
        reader.join().unwrap() == data,
        "the client must read every byte, then EOF"
    );
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

/// Reads until the stream fails; returns the error kind (the data before it is discarded).
fn read_until_error(stream: &mut TcpStream) -> ErrorKind {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return ErrorKind::UnexpectedEof,
            Ok(_) => {}
            Err(e) => return e.kind(),
        }
    }
}

#[test]
fn abortive_disconnect_resets_the_connection() {
    let _session = emu::session();
    let client = Client::register();
    let (listener, socket, mut stream) = connected_pair(&client);
    assert_eq!(abort(socket), STATUS_SUCCESS);
    assert_eq!(read_until_error(&mut stream), ErrorKind::ConnectionReset);
    // Data operations after an abortive disconnect fail.
    let op = IrpOp::new();
    let buf = PoolBuf::new(16);
    let returned = receive(socket, &buf, 0, 16, 0, &op);
    assert!(returned == STATUS_CONNECTION_ABORTED || returned == STATUS_PENDING);
    assert_eq!(op.wait(), (STATUS_CONNECTION_ABORTED, 0));
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn close_without_disconnect_resets_the_connection() {
    let _session = emu::session();
    let client = Client::register();
    let (listener, socket, mut stream) = connected_pair(&client);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(read_until_error(&mut stream), ErrorKind::ConnectionReset);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn close_after_disconnecting_both_ways_is_not_a_reset() {
    let _session = emu::session();
    let client = Client::register();
    let (listener, socket, mut stream) = connected_pair(&client);
    stream.shutdown(Shutdown::Write).unwrap();
    let op = IrpOp::new();
    let buf = PoolBuf::new(16);
    receive(socket, &buf, 0, 16, 0, &op);
    assert_eq!(op.wait(), (STATUS_SUCCESS, 0), "the peer's FIN is a 0-byte receive");
    disconnect(socket, Some(&PoolBuf::with(b"bye")), &op);
    assert_eq!(op.wait().0, STATUS_SUCCESS);
    assert_eq!(close(socket), STATUS_SUCCESS);
    let mut got = Vec::new();
    stream.read_to_end(&mut got).expect("orderly EOF, no reset");
    assert_eq!(got, b"bye");
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn a_graceful_disconnect_stuck_on_a_full_window_completes_when_an_abortive_one_is_issued() {
    let _session = emu::session();
    let client = Client::register();
    let (listener, socket, mut stream) = connected_pair(&client);
    // Far more than the loopback socket buffers hold: with the client not reading, the final buffer
    // can never be fully sent, so the graceful disconnect cannot complete.
    let last = PoolBuf::new(32 << 20);
    let op = IrpOp::new();
    assert_eq!(disconnect(socket, Some(&last), &op), STATUS_PENDING);
    assert!(!op.is_done());
    assert_eq!(abort(socket), STATUS_SUCCESS);
    assert_eq!(
        op.wait().0,
        STATUS_CONNECTION_ABORTED,
        "the abortive disconnect forces the graceful one to complete"
    );
    assert_eq!(read_until_error(&mut stream), ErrorKind::ConnectionReset);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn close_completes_a_pending_receive_with_a_cancellation_status() {
    let _session = emu::session();
    let client = Client::register();
    let (listener, socket, _stream) = connected_pair(&client);
    let op = IrpOp::new();
    let buf = PoolBuf::new(1024);
    assert_eq!(receive(socket, &buf, 0, 1024, 0, &op), STATUS_PENDING);
    assert_eq!(close(socket), STATUS_SUCCESS);
    // Before or after the close IRP: Windows documents no order (see `wsk_cancel_order.rs`).
    assert_eq!(op.wait(), (STATUS_CANCELLED, 0));
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn io_cancel_irp_cancels_a_pending_receive_and_accept() {
    let _session = emu::session();
    // Depends on the `realistic` schedule: it checks that a receive whose data is already there
    // completes inline, on the caller's thread at the caller's IRQL, which no other schedule promises.
    emu::wsk::set_schedule(emu::wsk::Schedule::Realistic);
    let client = Client::register();
    let (listener, socket, mut stream) = connected_pair(&client);
    let op = IrpOp::new();
    let buf = PoolBuf::new(1024);
    let remote = Addr::empty();
    assert_eq!(accept(listener, &remote, &op), STATUS_PENDING);
    assert!(op.cancel());
    assert_eq!(op.wait(), (STATUS_CANCELLED, 0));
    // A receive that pends completes on the provider's event-loop thread at DISPATCH_LEVEL, like a
    // real provider completing from a DPC.
    assert_eq!(receive(socket, &buf, 0, 4, 0, &op), STATUS_PENDING);
    stream.write_all(b"pingpong").unwrap();
    assert_eq!(op.wait(), (STATUS_SUCCESS, 4));
    assert_eq!(op.completed_at(), DISPATCH_LEVEL);
    assert_eq!(&buf.bytes()[..4], b"ping");
    // The rest of that one loopback segment is already there: the next receive completes inline, on
    // the caller's thread at the caller's IRQL, before the call returns its final status.
    assert_eq!(receive(socket, &buf, 0, 1024, 0, &op), STATUS_SUCCESS);
    assert_eq!(op.result(), (STATUS_SUCCESS, 4));
    assert_eq!(op.completed_at(), PASSIVE_LEVEL);
    assert_eq!(&buf.bytes()[..4], b"pong");
    // A cancelled receive resets the connection (invented, the harsher reading of the Winsock SPI:
    // only a close is safe after a cancel): the peer sees the RST, later receives fail.
    assert_eq!(receive(socket, &buf, 0, 1024, 0, &op), STATUS_PENDING);
    assert!(op.cancel());
    assert_eq!(op.wait(), (STATUS_CANCELLED, 0));
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        stream.read(&mut byte).map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionReset)
    );
    receive(socket, &buf, 0, 1024, 0, &op);
    assert_eq!(op.wait(), (STATUS_CONNECTION_ABORTED, 0));
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn a_peer_reset_fails_a_pending_receive_with_connection_reset() {
    let _session = emu::session();
    let client = Client::register();
    let (listener, socket, stream) = connected_pair(&client);
    let op = IrpOp::new();
    let buf = PoolBuf::new(1024);
    assert_eq!(receive(socket, &buf, 0, 1024, 0, &op), STATUS_PENDING);
    // Unread data in the client's receive queue makes its close a reset (RFC 2525), with no SO_LINGER.
    let op_send = IrpOp::new();
    let hello = PoolBuf::with(b"unread");
    send(socket, &hello, 0, 6, &op_send);
    assert_eq!(op_send.wait().0, STATUS_SUCCESS);
    wait_until_readable(&stream);
    drop(stream);
    assert_eq!(op.wait(), (STATUS_CONNECTION_RESET, 0));
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

/// Blocks (bounded) until `stream` has data queued, without consuming it.
fn wait_until_readable(stream: &TcpStream) {
    let mut byte = [0u8; 1];
    let n = stream.peek(&mut byte).expect("peek");
    assert_eq!(n, 1);
}

#[test]
fn socket_connect_and_connect_reach_a_std_listener() {
    let _session = emu::session();
    let client = Client::register();
    let server = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let target = Addr::new(server.local_addr().unwrap());
    let any = Addr::new(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));

    // WskSocketConnect: the connected socket comes back in Information.
    let op = IrpOp::new();
    client.socket_connect(&any, &target, &op);
    let (status, information) = op.wait();
    assert_eq!(status, STATUS_SUCCESS);
    let first = std::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information);
    let (mut accepted, _) = server.accept().unwrap();
    accepted.set_read_timeout(Some(BOUND)).unwrap();
    assert_eq!(remote_address(first), server.local_addr().unwrap());
    disconnect(first, Some(&PoolBuf::with(b"via WskSocketConnect")), &op);
    assert_eq!(op.wait().0, STATUS_SUCCESS);
    let mut got = Vec::new();
    accepted.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"via WskSocketConnect");
    assert_eq!(close(first), STATUS_SUCCESS);

    // WskSocket + WskBind + WskConnect.
    let second = client.socket(AF_INET, WSK_FLAG_CONNECTION_SOCKET);
    bind(second, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let connect = conn(second).WskConnect.expect("WskConnect");
    // SAFETY: valid socket; the address and the IRP outlive the operation.
    unsafe { connect(second, target.ptr(), 0, op.start()) };
    assert_eq!(op.wait().0, STATUS_SUCCESS);
    let (mut accepted, _) = server.accept().unwrap();
    accepted.set_read_timeout(Some(BOUND)).unwrap();
    accepted.write_all(b"pong").unwrap();
    let buf = PoolBuf::new(16);
    receive(second, &buf, 0, 16, WSK_FLAG_WAITALL, &op);
    // WAITALL: completes only with 16 bytes or at the peer's FIN.
    accepted.shutdown(Shutdown::Write).unwrap();
    assert_eq!(op.wait(), (STATUS_SUCCESS, 4));
    assert_eq!(&buf.bytes()[..4], b"pong");
    assert_eq!(close(second), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    let _session = emu::session();
    let client = Client::register();
    let closed_port = {
        let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        probe.local_addr().unwrap()
    };
    let target = Addr::new(closed_port);
    let any = Addr::new(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let op = IrpOp::new();
    client.socket_connect(&any, &target, &op);
    assert_eq!(op.wait(), (STATUS_CONNECTION_REFUSED, 0));
    client.deregister();
}

/// Wine's netio test, run on Windows: WskCloseSocket on a listening socket with an accept pending
/// completes the accept with STATUS_CANCELLED and Information 0, and the close itself with
/// STATUS_SUCCESS and Information 0.
#[test]
fn wsk_close_socket_completes_a_pending_accept_with_status_cancelled() {
    let _session = emu::session();
    let client = Client::register();
    let listener = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    bind(listener, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let op = IrpOp::new();
    let remote = Addr::empty();
    assert_eq!(accept(listener, &remote, &op), STATUS_PENDING);
    let f = basic(listener).WskCloseSocket.expect("WskCloseSocket");
    // SAFETY: valid socket, fresh IRP; the pending accept is not a call in progress.
    let (_, status, information) = call(|irp| unsafe { f(listener, irp) });
    assert_eq!((status, information), (STATUS_SUCCESS, 0));
    assert_eq!(op.wait(), (STATUS_CANCELLED, 0));
    client.deregister();
}

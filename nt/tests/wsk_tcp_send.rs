//! WSK's send model over real loopback TCP, through the raw WSK ABI: WSK has no send buffer, so a
//! `WskSend` stays pending until the peer's TCP has acknowledged its bytes, and a graceful
//! `WskDisconnect` until its FIN is. Clients are std `TcpStream`s, some with a small receive buffer
//! (set before they connect, which pins the window they advertise).
#![cfg(all(not(target_os = "windows"), not(miri)))]

mod wsk_support;

use nt::emu;
use nt::*;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use wsk_support::*;

/// A listener on 127.0.0.1, a client connected to it whose receive buffer is `receive_buffer` bytes
/// when given, and the accepted socket.
fn pair(client: &Client, receive_buffer: Option<usize>) -> (PWSK_SOCKET, PWSK_SOCKET, TcpStream) {
    let listener = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    bind(listener, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let port = local_address(listener).port();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    if let Some(bytes) = receive_buffer {
        socket.set_recv_buffer_size(bytes).unwrap();
    }
    socket
        .connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())
        .unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let op = IrpOp::new();
    let remote = Addr::empty();
    accept(listener, &remote, &op);
    let (status, information) = op.wait();
    assert_eq!(status, STATUS_SUCCESS, "WskAccept");
    (
        listener,
        std::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information),
        stream,
    )
}

fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut got = vec![0u8; len];
    stream.read_exact(&mut got).expect("read");
    got
}

#[test]
fn a_small_send_completes_once_acknowledged_although_the_peer_does_not_read() {
    let _session = emu::session();
    let client = Client::register();
    let (listener, socket, mut stream) = pair(&client, None);
    let buf = PoolBuf::with(b"acknowledged, not read");
    let op = IrpOp::new();
    send(socket, &buf, 0, 22, &op);
    // The peer's TCP acknowledges what fits in its receive buffer without the application reading.
    assert_eq!(op.wait(), (STATUS_SUCCESS, 22));
    assert_eq!(read_exactly(&mut stream, 22), b"acknowledged, not read");
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn a_send_larger_than_the_peer_window_and_the_send_buffer_pends_until_the_peer_reads() {
    let _session = emu::session();
    let client = Client::register();
    let (listener, socket, mut stream) = pair(&client, None);
    // Far more than the host's send buffer and the client's receive buffer together.
    let data = pattern(4 << 20, 9);
    let buf = PoolBuf::with(&data);
    let op = IrpOp::new();
    assert_eq!(send(socket, &buf, 0, data.len(), &op), STATUS_PENDING);
    assert!(!op.is_done(), "the peer has not read: its window is closed");
    let reader = thread::spawn(move || read_exactly(&mut stream, 4 << 20));
    assert_eq!(
        op.wait(),
        (STATUS_SUCCESS, data.len()),
        "completes once the peer read it all"
    );
    assert!(reader.join().unwrap() == data);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn a_send_the_host_socket_took_whole_still_pends_until_the_peer_acknowledges_it() {
    let _session = emu::session();
    let client = Client::register();
    // A client window of a few KiB: the 12 KiB fit in the host socket's send buffer (one write takes
    // them all), but the client's TCP cannot acknowledge them before it reads. Under a model where
    // a send completes when written, this send would complete inline.
    let (listener, socket, mut stream) = pair(&client, Some(2048));
    let data = pattern(12 * 1024, 10);
    let buf = PoolBuf::with(&data);
    let op = IrpOp::new();
    assert_eq!(send(socket, &buf, 0, data.len(), &op), STATUS_PENDING);
    assert!(!op.is_done());
    let reader = thread::spawn(move || read_exactly(&mut stream, 12 * 1024));
    assert_eq!(op.wait(), (STATUS_SUCCESS, data.len()));
    assert_eq!(op.completed_at(), DISPATCH_LEVEL, "from the provider's event loop");
    assert!(reader.join().unwrap() == data);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn a_graceful_disconnect_completes_after_the_send_before_it_once_the_peer_has_read_everything() {
    let _session = emu::session();
    let client = Client::register();
    let (listener, socket, mut stream) = pair(&client, None);
    let data = pattern(4 << 20, 11);
    let buf = PoolBuf::with(&data);
    let (send_op, disconnect_op) = (IrpOp::new(), IrpOp::new());
    assert_eq!(send(socket, &buf, 0, data.len(), &send_op), STATUS_PENDING);
    assert_eq!(disconnect(socket, None, &disconnect_op), STATUS_PENDING);
    assert!(!send_op.is_done() && !disconnect_op.is_done());
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("read to EOF");
        got
    });
    assert_eq!(disconnect_op.wait(), (STATUS_SUCCESS, 0));
    assert!(send_op.is_done(), "the send before the FIN completed first");
    assert_eq!(send_op.result(), (STATUS_SUCCESS, data.len()));
    assert!(reader.join().unwrap() == data, "every byte, then EOF");
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn an_abortive_disconnect_completes_a_send_waiting_for_acknowledgement() {
    let _session = emu::session();
    let client = Client::register();
    let (listener, socket, _stream) = pair(&client, Some(2048));
    let data = pattern(12 * 1024, 12);
    let buf = PoolBuf::with(&data);
    let op = IrpOp::new();
    assert_eq!(send(socket, &buf, 0, data.len(), &op), STATUS_PENDING);
    assert_eq!(abort(socket), STATUS_SUCCESS);
    assert!(op.is_done(), "completed before the abortive disconnect returned");
    assert_eq!(op.result().0, STATUS_CONNECTION_ABORTED);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

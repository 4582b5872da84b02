//! The WSK provider over the deterministic in-memory transport, driven through the raw WSK ABI: the
//! same behaviours as over real TCP (echo, graceful and abortive disconnects, close semantics,
//! cancellation), plus what only a scripted network can show: operations completed inline, later on
//! demand, never, or with a chosen status; peer FIN, peer RST and forced close injected at exact
//! points. Single-threaded and Miri-clean (`cargo +nightly miri test -p wdm-async-nt --test wsk_memory`).
#![cfg(not(target_os = "windows"))]

mod wsk_support;

use nt::emu::wsk::{Completion, MemoryNetwork, OpKind, Peer};
use nt::emu::{self};
use nt::*;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use wsk_support::*;

/// Echo size: 1 MiB natively, less under Miri (interpreted, so much slower).
const ECHO_LEN: usize = if cfg!(miri) { 16 * 1024 } else { 1 << 20 };

struct Setup {
    net: MemoryNetwork,
    client: Client,
    listener: PWSK_SOCKET,
    port: u16,
}

/// Installs a network, registers, and listens dual-stack on an ephemeral port.
fn setup() -> Setup {
    // Depends on the `realistic` schedule: these tests pin which calls the provider completes
    // inline (returning the final status) and which pend, as Windows does when the data or the
    // connection is already there; the other schedules change exactly that.
    emu::wsk::set_schedule(emu::wsk::Schedule::Realistic);
    let net = MemoryNetwork::install();
    let client = Client::register();
    let listener = dual_stack_listener(&client, 0);
    let port = local_address(listener).port();
    assert_ne!(port, 0);
    Setup {
        net,
        client,
        listener,
        port,
    }
}

impl Setup {
    fn v4(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// A peer connects; the driver accepts it (inline: the connection is already queued).
    fn accept_peer(&self, target: SocketAddr) -> (PWSK_SOCKET, Peer) {
        let peer = self.net.connect(target).expect("connect");
        let op = IrpOp::new();
        let remote = Addr::empty();
        assert_eq!(
            accept(self.listener, &remote, &op),
            STATUS_SUCCESS,
            "a queued connection is accepted inline"
        );
        let (status, information) = op.result();
        assert_eq!(status, STATUS_SUCCESS);
        assert_eq!(remote.get(), peer.peer_addr());
        (std::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information), peer)
    }

    fn finish(self) {
        assert_eq!(close(self.listener), STATUS_SUCCESS);
        self.client.deregister();
        drop(self.net);
    }
}

/// Reads everything the driver sent so far.
fn drain(peer: &Peer) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        match peer.read(usize::MAX) {
            Ok(data) if data.is_empty() => return all,
            Ok(data) => all.extend(data),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return all,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

#[test]
fn echo_for_an_ipv4_and_an_ipv6_peer_on_one_dual_stack_listener() {
    let _session = emu::session();
    let s = setup();
    for (target, seed) in [(s.v4(), 3), (SocketAddr::from((Ipv6Addr::LOCALHOST, s.port)), 4)] {
        let (socket, peer) = s.accept_peer(target);
        let data = pattern(ECHO_LEN, seed);
        let (recv_op, send_op) = (IrpOp::new(), IrpOp::new());
        let buf = PoolBuf::new(16 * 1024);
        let mut echoed = Vec::new();
        let mut sent = 0;
        // The driver keeps one receive pending; each chunk the peer writes completes it on the
        // peer's call (the test thread, at DISPATCH_LEVEL); the driver echoes and re-arms.
        assert_eq!(receive(socket, &buf, 0, 16 * 1024, 0, &recv_op), STATUS_PENDING);
        while sent < data.len() {
            let chunk = &data[sent..(sent + 8 * 1024).min(data.len())];
            peer.write(chunk).unwrap();
            sent += chunk.len();
            assert!(recv_op.is_done());
            let (status, n) = recv_op.result();
            assert_eq!((status, n), (STATUS_SUCCESS, chunk.len()));
            assert_eq!(
                recv_op.completed_at(),
                DISPATCH_LEVEL,
                "completed by the peer's write, at DISPATCH_LEVEL"
            );
            assert_eq!(
                send(socket, &buf, 0, n, &send_op),
                STATUS_PENDING,
                "no send buffering: pending until the peer has read the bytes"
            );
            echoed.extend(drain(&peer));
            assert_eq!(send_op.result(), (STATUS_SUCCESS, n));
            assert_eq!(
                send_op.completed_at(),
                DISPATCH_LEVEL,
                "completed by the peer's read, at DISPATCH_LEVEL"
            );
            assert_eq!(receive(socket, &buf, 0, 16 * 1024, 0, &recv_op), STATUS_PENDING);
        }
        peer.shutdown();
        assert_eq!(
            recv_op.result(),
            (STATUS_SUCCESS, 0),
            "the peer's FIN completes the receive with 0 bytes"
        );
        assert_eq!(disconnect(socket, None, &send_op), STATUS_SUCCESS);
        assert_eq!(close(socket), STATUS_SUCCESS);
        assert!(echoed == data);
        assert_eq!(peer.read(16).unwrap(), b"", "EOF after the driver's FIN");
        assert!(!peer.was_reset() && peer.driver_closed());
    }
    s.finish();
}

#[test]
fn graceful_disconnect_with_a_final_buffer_delivers_every_byte_then_eof() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    let data = pattern(200 * 1024, 9);
    let last = PoolBuf::with(&data);
    let op = IrpOp::new();
    // The window (64 KiB) is smaller than the final buffer: the disconnect waits for the peer.
    assert_eq!(disconnect(socket, Some(&last), &op), STATUS_PENDING);
    let mut got = Vec::new();
    while !op.is_done() {
        let chunk = peer.read(10_000).unwrap();
        assert!(!chunk.is_empty(), "no EOF before every byte");
        got.extend(chunk);
    }
    assert_eq!(op.result().0, STATUS_SUCCESS);
    got.extend(drain(&peer));
    assert!(got == data);
    assert_eq!(peer.read(1).unwrap(), b"", "then EOF");
    assert!(peer.got_fin());
    assert_eq!(close(socket), STATUS_SUCCESS);
    s.finish();
}

#[test]
fn abortive_disconnect_resets_the_connection() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    assert_eq!(abort(socket), STATUS_SUCCESS);
    assert_eq!(peer.read(1).unwrap_err().kind(), ErrorKind::ConnectionReset);
    assert_eq!(peer.write(b"x").unwrap_err().kind(), ErrorKind::ConnectionReset);
    assert_eq!(close(socket), STATUS_SUCCESS);
    s.finish();
}

#[test]
fn close_without_disconnect_resets_the_connection() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert!(peer.was_reset());
    assert_eq!(peer.read(1).unwrap_err().kind(), ErrorKind::ConnectionReset);
    s.finish();
}

#[test]
fn close_after_disconnecting_both_ways_is_not_a_reset() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    peer.shutdown();
    let op = IrpOp::new();
    assert_eq!(disconnect(socket, None, &op), STATUS_SUCCESS);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert!(!peer.was_reset());
    assert_eq!(peer.read(1).unwrap(), b"");
    s.finish();
}

#[test]
fn a_graceful_disconnect_stuck_on_a_full_window_completes_when_an_abortive_one_is_issued() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    peer.set_window(0); // the peer stops reading
    let (send_op, disconnect_op) = (IrpOp::new(), IrpOp::new());
    let data = PoolBuf::with(&pattern(1000, 1));
    assert_eq!(send(socket, &data, 0, 1000, &send_op), STATUS_PENDING);
    assert_eq!(disconnect(socket, Some(&data), &disconnect_op), STATUS_PENDING);
    assert!(!send_op.is_done() && !disconnect_op.is_done());
    assert_eq!(abort(socket), STATUS_SUCCESS);
    assert_eq!(send_op.result(), (STATUS_CONNECTION_ABORTED, 0));
    assert_eq!(disconnect_op.result().0, STATUS_CONNECTION_ABORTED);
    assert!(peer.was_reset());
    assert_eq!(close(socket), STATUS_SUCCESS);
    s.finish();
}

#[test]
fn close_completes_pending_irps_with_a_cancellation_status() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    peer.set_window(0);
    let (recv_op, send_op) = (IrpOp::new(), IrpOp::new());
    let buf = PoolBuf::new(64);
    assert_eq!(receive(socket, &buf, 0, 64, 0, &recv_op), STATUS_PENDING);
    assert_eq!(send(socket, &buf, 0, 64, &send_op), STATUS_PENDING);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(recv_op.result(), (STATUS_CANCELLED, 0));
    assert_eq!(send_op.result(), (STATUS_CANCELLED, 0));
    assert!(peer.was_reset());
    // A pending accept is cancelled by closing the listener too.
    let accept_op = IrpOp::new();
    let remote = Addr::empty();
    assert_eq!(accept(s.listener, &remote, &accept_op), STATUS_PENDING);
    let Setup {
        net, client, listener, ..
    } = s;
    assert_eq!(close(listener), STATUS_SUCCESS);
    assert_eq!(accept_op.result(), (STATUS_CANCELLED, 0));
    client.deregister();
    drop(net);
}

#[test]
fn io_cancel_irp_completes_a_pending_receive_with_status_cancelled_and_resets_the_connection() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    let op = IrpOp::new();
    let buf = PoolBuf::new(64);
    assert_eq!(receive(socket, &buf, 0, 64, 0, &op), STATUS_PENDING);
    assert!(op.cancel());
    // The cancelled IRP may complete after IoCancelIrp returned (schedules `pending`, `random`).
    assert_eq!(op.wait(), (STATUS_CANCELLED, 0));
    // Invented (the harsher reading of the Winsock SPI): the cancel reset the connection.
    assert!(peer.was_reset());
    receive(socket, &buf, 0, 64, 0, &op);
    assert_eq!(op.wait(), (STATUS_CONNECTION_ABORTED, 0));
    send(socket, &buf, 0, 8, &op);
    assert_eq!(op.wait(), (STATUS_CONNECTION_ABORTED, 0));
    // Close (and an abortive disconnect) stay legal.
    assert_eq!(abort(socket), STATUS_SUCCESS);
    assert_eq!(close(socket), STATUS_SUCCESS);
    s.finish();
}

#[test]
fn a_cancelled_send_resets_the_connection_and_fails_the_operations_still_pending() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    peer.set_window(4);
    let (send_op, recv_op, next_op) = (IrpOp::new(), IrpOp::new(), IrpOp::new());
    let (out, inb) = (PoolBuf::with(b"half-sent"), PoolBuf::new(64));
    assert_eq!(receive(socket, &inb, 0, 64, 0, &recv_op), STATUS_PENDING);
    assert_eq!(send(socket, &out, 0, 9, &send_op), STATUS_PENDING);
    assert_eq!(send(socket, &out, 0, 9, &next_op), STATUS_PENDING);
    assert!(send_op.cancel());
    // Part of the send was written: the rest of the stream would be corrupt, so it is reset.
    assert_eq!(send_op.wait(), (STATUS_CANCELLED, 4));
    assert!(peer.was_reset());
    assert_eq!(recv_op.wait(), (STATUS_CONNECTION_ABORTED, 0));
    assert_eq!(next_op.wait(), (STATUS_CONNECTION_ABORTED, 0));
    assert_eq!(close(socket), STATUS_SUCCESS);
    s.finish();
}

#[test]
fn with_cancellations_deferred_a_cancelled_receive_completes_after_the_close_when_delivered() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    peer.set_window(0);
    emu::wsk::set_defer_cancelled(true);
    let (recv_op, send_op) = (IrpOp::new(), IrpOp::new());
    let buf = PoolBuf::new(64);
    assert_eq!(receive(socket, &buf, 0, 64, 0, &recv_op), STATUS_PENDING);
    assert_eq!(send(socket, &buf, 0, 64, &send_op), STATUS_PENDING);
    // The close completes before the IRPs it cancelled (the invented harsh order).
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert!(peer.was_reset());
    assert!(!recv_op.is_done() && !send_op.is_done());
    assert!(emu::wsk::wait_cancelled_parked(2, std::time::Duration::ZERO));
    assert_eq!(emu::wsk::deliver_cancelled(), 2);
    assert_eq!(recv_op.result(), (STATUS_CANCELLED, 0));
    assert_eq!(send_op.result(), (STATUS_CANCELLED, 0));
    assert_eq!(recv_op.completed_at(), DISPATCH_LEVEL, "delivered at DISPATCH_LEVEL");
    // Turning the knob off delivers what is parked (here the listener's accept, cancelled by IoCancelIrp).
    let accept_op = IrpOp::new();
    let remote = Addr::empty();
    assert_eq!(accept(s.listener, &remote, &accept_op), STATUS_PENDING);
    // The cancel routine ran (TRUE), but the IRP completes later, as on another CPU.
    assert!(accept_op.cancel());
    assert!(
        !accept_op.is_done(),
        "IoCancelIrp returned before the cancelled IRP completed"
    );
    emu::wsk::set_defer_cancelled(false);
    assert_eq!(accept_op.result(), (STATUS_CANCELLED, 0));
    assert_eq!(emu::wsk::deliver_cancelled(), 0);
    s.finish();
}

#[test]
fn a_held_receive_completes_when_the_test_releases_it() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    peer.write(b"ready").unwrap();
    s.net.script(OpKind::Receive, Completion::Hold);
    let op = IrpOp::new();
    let buf = PoolBuf::new(64);
    assert_eq!(
        receive(socket, &buf, 0, 64, 0, &op),
        STATUS_PENDING,
        "held although data is there"
    );
    let held = s.net.held();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].kind, OpKind::Receive);
    assert!(!op.is_done());
    assert!(s.net.release(held[0]));
    assert_eq!(op.result(), (STATUS_SUCCESS, 5));
    assert!(s.net.held().is_empty());
    assert_eq!(close(socket), STATUS_SUCCESS);
    s.finish();
}

#[test]
fn a_held_send_completes_later_with_the_status_the_test_chooses() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    s.net.script(OpKind::Send, Completion::Hold);
    let op = IrpOp::new();
    let buf = PoolBuf::with(b"data");
    assert_eq!(send(socket, &buf, 0, 4, &op), STATUS_PENDING);
    let held = s.net.held();
    assert!(s.net.complete(held[0], STATUS_CONNECTION_RESET));
    assert_eq!(op.result(), (STATUS_CONNECTION_RESET, 0));
    assert_eq!(peer.unread(), 0, "a failed send sends nothing");
    assert_eq!(close(socket), STATUS_SUCCESS);
    s.finish();
}

#[test]
fn scripted_failures_complete_inline_and_never_ends_only_by_cancellation() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    s.net
        .script(OpKind::Send, Completion::Fail(STATUS_INSUFFICIENT_RESOURCES));
    s.net.script(OpKind::Receive, Completion::Never);
    let (send_op, recv_op) = (IrpOp::new(), IrpOp::new());
    let buf = PoolBuf::with(b"data");
    assert_eq!(send(socket, &buf, 0, 4, &send_op), STATUS_INSUFFICIENT_RESOURCES);
    assert_eq!(
        send_op.result().0,
        STATUS_INSUFFICIENT_RESOURCES,
        "the completion routine ran too"
    );
    // Unscripted operations complete naturally again: the send once the peer has read it.
    assert_eq!(send(socket, &buf, 0, 4, &send_op), STATUS_PENDING);
    assert_eq!(peer.read(64).unwrap(), b"data");
    assert_eq!(send_op.wait(), (STATUS_SUCCESS, 4));
    assert_eq!(receive(socket, &buf, 0, 4, 0, &recv_op), STATUS_PENDING);
    peer.write(b"ignored").unwrap();
    assert!(!recv_op.is_done(), "never completes by itself");
    assert!(
        s.net.held().is_empty(),
        "a never-completing operation cannot be released"
    );
    assert!(recv_op.cancel());
    assert_eq!(recv_op.wait(), (STATUS_CANCELLED, 0));
    // The cancelled receive reset the connection (invented, see `io_cancel_irp_...`).
    assert!(peer.was_reset());
    assert_eq!(close(socket), STATUS_SUCCESS);
    s.finish();
}

#[test]
fn a_peer_reset_fails_pending_and_later_operations_with_connection_reset() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    let op = IrpOp::new();
    let buf = PoolBuf::new(64);
    assert_eq!(receive(socket, &buf, 0, 64, 0, &op), STATUS_PENDING);
    peer.reset();
    assert_eq!(op.result(), (STATUS_CONNECTION_RESET, 0));
    assert_eq!(send(socket, &buf, 0, 8, &op), STATUS_CONNECTION_RESET);
    assert_eq!(close(socket), STATUS_SUCCESS);
    s.finish();
}

#[test]
fn a_forced_close_fails_operations_with_file_forced_closed() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    let op = IrpOp::new();
    let buf = PoolBuf::new(64);
    assert_eq!(receive(socket, &buf, 0, 64, 0, &op), STATUS_PENDING);
    peer.force_close();
    assert_eq!(op.result(), (STATUS_FILE_FORCED_CLOSED, 0));
    assert_eq!(disconnect(socket, None, &op), STATUS_FILE_FORCED_CLOSED);
    assert_eq!(close(socket), STATUS_SUCCESS);
    s.finish();
}

#[test]
fn waitall_receive_waits_for_the_whole_buffer_or_fin() {
    let _session = emu::session();
    let s = setup();
    let (socket, peer) = s.accept_peer(s.v4());
    let op = IrpOp::new();
    let buf = PoolBuf::new(8);
    assert_eq!(receive(socket, &buf, 0, 8, WSK_FLAG_WAITALL, &op), STATUS_PENDING);
    peer.write(b"abc").unwrap();
    assert!(!op.is_done());
    peer.write(b"defghij").unwrap();
    assert_eq!(op.result(), (STATUS_SUCCESS, 8));
    assert_eq!(buf.bytes(), b"abcdefgh");
    assert_eq!(receive(socket, &buf, 0, 8, WSK_FLAG_WAITALL, &op), STATUS_PENDING);
    peer.shutdown();
    assert_eq!(op.result(), (STATUS_SUCCESS, 2));
    assert_eq!(&buf.bytes()[..2], b"ij");
    assert_eq!(close(socket), STATUS_SUCCESS);
    s.finish();
}

#[test]
fn the_driver_connects_to_a_listening_peer() {
    let _session = emu::session();
    // Depends on the `realistic` schedule, as every test here (see `setup`).
    emu::wsk::set_schedule(emu::wsk::Schedule::Realistic);
    let net = MemoryNetwork::install();
    let client = Client::register();
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, 7000));
    let peers = net.listen(server);
    let any = Addr::new(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let op = IrpOp::new();
    assert_eq!(client.socket_connect(&any, &Addr::new(server), &op), STATUS_SUCCESS);
    let socket = std::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(op.result().1);
    let peer = peers.accept().expect("the driver's connection");
    assert_eq!(remote_address(socket), server);
    assert_eq!(local_address(socket), peer.peer_addr());
    let buf = PoolBuf::with(b"hello");
    assert_eq!(send(socket, &buf, 0, 5, &op), STATUS_PENDING, "until the peer reads");
    assert_eq!(peer.read(64).unwrap(), b"hello");
    assert_eq!(op.result(), (STATUS_SUCCESS, 5));
    assert_eq!(close(socket), STATUS_SUCCESS);

    // Nothing listens there: refused.
    let elsewhere = Addr::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 7001)));
    assert_eq!(client.socket_connect(&any, &elsewhere, &op), STATUS_CONNECTION_REFUSED);
    client.deregister();
}

#[test]
fn a_held_accept_completes_when_released() {
    let _session = emu::session();
    let s = setup();
    s.net.script(OpKind::Accept, Completion::Hold);
    let op = IrpOp::new();
    let remote = Addr::empty();
    assert_eq!(accept(s.listener, &remote, &op), STATUS_PENDING);
    let peer = s.net.connect(s.v4()).unwrap();
    assert!(!op.is_done(), "held although a connection is queued");
    let held = s.net.held();
    assert!(s.net.release(held[0]));
    let (status, information) = op.result();
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(remote.get(), peer.peer_addr());
    assert_eq!(
        close(std::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information)),
        STATUS_SUCCESS
    );
    s.finish();
}

#[test]
fn an_operation_past_the_point_of_cancellation_ignores_io_cancel_irp_and_completes_when_released() {
    let _session = emu::session();
    let s = setup();
    s.net.script(OpKind::Accept, Completion::IgnoreCancel);
    let op = IrpOp::new();
    let remote = Addr::empty();
    assert_eq!(accept(s.listener, &remote, &op), STATUS_PENDING);
    assert!(!op.cancel(), "no cancel routine armed: IoCancelIrp returns FALSE");
    assert!(!op.is_done(), "the cancel request was refused");
    let peer = s.net.connect(s.v4()).unwrap();
    assert!(!op.is_done(), "still held although a connection is queued");
    let held = s.net.held();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].kind, OpKind::Accept);
    assert!(s.net.release(held[0]));
    let (status, information) = op.result();
    assert_eq!(
        status, STATUS_SUCCESS,
        "completed with its result despite the cancel request"
    );
    assert_ne!(information, 0, "with the accepted socket");
    assert_eq!(remote.get(), peer.peer_addr());
    assert_eq!(
        close(std::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information)),
        STATUS_SUCCESS
    );
    assert!(peer.was_reset());
    // `complete` ends one with the chosen status instead.
    s.net.script(OpKind::Accept, Completion::IgnoreCancel);
    assert_eq!(accept(s.listener, &remote, &op), STATUS_PENDING);
    assert!(!op.cancel());
    assert!(s.net.complete(s.net.held()[0], STATUS_CONNECTION_ABORTED));
    assert_eq!(op.result(), (STATUS_CONNECTION_ABORTED, 0));
    s.finish();
}

#[test]
fn closing_a_socket_finishes_its_operations_past_the_point_of_cancellation_first() {
    let _session = emu::session();
    let s = setup();
    // One with a connection to take: the close lets it finish with that connection.
    s.net.script(OpKind::Accept, Completion::IgnoreCancel);
    let op = IrpOp::new();
    let remote = Addr::empty();
    assert_eq!(accept(s.listener, &remote, &op), STATUS_PENDING);
    assert!(!op.cancel());
    let peer = s.net.connect(s.v4()).unwrap();
    let Setup {
        net, client, listener, ..
    } = s;
    assert_eq!(close(listener), STATUS_SUCCESS);
    let (status, information) = op.result();
    assert_eq!(status, STATUS_SUCCESS);
    assert_ne!(information, 0);
    assert!(!peer.was_reset(), "accepted, not refused");
    assert_eq!(
        close(std::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information)),
        STATUS_SUCCESS
    );
    assert!(peer.was_reset());
    assert!(net.held().is_empty());
    // One with nothing to take: the close completes it cancelled.
    let listener = dual_stack_listener(&client, 0);
    net.script(OpKind::Accept, Completion::IgnoreCancel);
    assert_eq!(accept(listener, &remote, &op), STATUS_PENDING);
    assert!(!op.cancel());
    assert_eq!(close(listener), STATUS_SUCCESS);
    assert_eq!(op.result(), (STATUS_CANCELLED, 0));
    client.deregister();
    drop(net);
}

#[test]
fn stream_sockets_listen_accept_and_connect() {
    let _session = emu::session();
    // Depends on the `realistic` schedule, as every test here (see `setup`).
    emu::wsk::set_schedule(emu::wsk::Schedule::Realistic);
    let net = MemoryNetwork::install();
    let client = Client::register();
    // A stream socket becomes a listener: WskBind, then WskListen.
    let listener = client.socket(AF_INET, WSK_FLAG_STREAM_SOCKET);
    bind(listener, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let table = stream(listener);
    let listen = table.WskListen.expect("WskListen");
    // SAFETY: valid socket, fresh IRP.
    let (returned, status, _) = call(|irp| unsafe { listen(listener, irp) });
    assert_eq!((returned, status), (STATUS_SUCCESS, STATUS_SUCCESS));
    let port = get_local_address(table.WskGetLocalAddress, listener).port();
    let peer = net.connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).unwrap();
    let op = IrpOp::new();
    let remote = Addr::empty();
    let accept_fn = table.WskAccept.expect("WskAccept");
    // SAFETY: valid socket; `remote` and the IRP outlive the operation.
    let returned = unsafe {
        accept_fn(
            listener,
            0,
            core::ptr::null_mut(),
            core::ptr::null(),
            core::ptr::null_mut(),
            remote.ptr(),
            op.start(),
        )
    };
    assert_eq!(returned, STATUS_SUCCESS);
    // The accepted socket is a stream socket too: its table is WSK_PROVIDER_STREAM_DISPATCH.
    let accepted = std::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(op.result().1);
    let buf = PoolBuf::with(b"stream");
    let mut wsk = buf.wsk(0, 6);
    let send_fn = stream(accepted).WskSend.expect("WskSend");
    // SAFETY: valid socket; the buffer and IRP outlive the operation.
    assert_eq!(unsafe { send_fn(accepted, &mut wsk, 0, op.start()) }, STATUS_PENDING);
    assert_eq!(peer.read(64).unwrap(), b"stream");
    assert_eq!(op.result(), (STATUS_SUCCESS, 6), "completed by the peer's read");
    assert_eq!(close(accepted), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);

    // A stream socket becomes a connection: WskBind, then WskConnect.
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, 9000));
    let peers = net.listen(server);
    let connector = client.socket(AF_INET, WSK_FLAG_STREAM_SOCKET);
    bind(connector, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let target = Addr::new(server);
    let connect_fn = stream(connector).WskConnect.expect("WskConnect");
    // SAFETY: valid socket; the address and IRP outlive the operation.
    assert_eq!(
        unsafe { connect_fn(connector, target.ptr(), 0, op.start()) },
        STATUS_SUCCESS
    );
    assert!(peers.accept().is_some());
    assert_eq!(close(connector), STATUS_SUCCESS);
    client.deregister();
}

/// `WskBind` of a listening socket at `addr` (IPV6_V6ONLY as given for IPv6): the final status, and
/// the socket (close it).
fn try_listen(client: &Client, addr: SocketAddr, v6only: bool) -> (NTSTATUS, PWSK_SOCKET) {
    let family = if addr.is_ipv4() { AF_INET } else { AF_INET6 };
    let socket = client.socket(family, WSK_FLAG_LISTEN_SOCKET);
    if addr.is_ipv6() {
        set_v6only(socket, v6only);
    }
    let local = Addr::new(addr);
    let f = listen(socket).WskBind.expect("WskBind");
    // SAFETY: valid socket and address; the IRP is fresh and `call` waits for it.
    let (_, status, _) = call(|irp| unsafe { f(socket, local.ptr(), 0, irp) });
    (status, socket)
}

/// The in-memory network refuses a listening binding that overlaps a listening one of the same
/// port (invented where Windows would allow it: see `MemNet::listen`): a wildcard and an address it
/// covers, in either order, and a dual-stack IPv6 wildcard and any IPv4 address; other families or
/// an IPV6_V6ONLY wildcard are free. Without it a connection went to whichever came first.
#[test]
fn an_overlapping_listening_binding_is_refused() {
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let client = Client::register();
    let (status, wildcard) = try_listen(&client, "0.0.0.0:0".parse().unwrap(), true);
    assert_eq!(status, STATUS_SUCCESS);
    let port = local_address(wildcard).port();
    let at = |ip: &str| SocketAddr::new(ip.parse().unwrap(), port);
    let mut open = vec![wildcard];
    let mut expect = |addr: SocketAddr, v6only: bool, want: NTSTATUS| {
        let (status, socket) = try_listen(&client, addr, v6only);
        assert_eq!(status, want, "{addr} (v6only {v6only})");
        if status == STATUS_SUCCESS {
            open.push(socket);
        } else {
            assert_eq!(close(socket), STATUS_SUCCESS);
        }
    };
    expect(at("127.0.0.1"), true, STATUS_ADDRESS_ALREADY_ASSOCIATED);
    expect(at("0.0.0.0"), true, STATUS_ADDRESS_ALREADY_ASSOCIATED);
    expect(at("::"), false, STATUS_ADDRESS_ALREADY_ASSOCIATED);
    expect(at("::"), true, STATUS_SUCCESS);
    expect(at("::1"), true, STATUS_ADDRESS_ALREADY_ASSOCIATED);
    for socket in open.drain(..) {
        assert_eq!(close(socket), STATUS_SUCCESS);
    }
    // A specific address first: the wildcard that would cover it is refused.
    let (status, specific) = try_listen(&client, at("127.0.0.1"), true);
    assert_eq!(status, STATUS_SUCCESS);
    let (status, dual) = try_listen(&client, at("::"), false);
    assert_eq!(status, STATUS_ADDRESS_ALREADY_ASSOCIATED);
    assert_eq!(close(dual), STATUS_SUCCESS);
    assert_eq!(close(specific), STATUS_SUCCESS);
    client.deregister();
}

/// Wine 8.0's `WskSocketConnect` is a stub: it returns STATUS_NOT_IMPLEMENTED without completing or
/// even looking at the IRP (a NULL one included), and creates nothing. An outgoing connection then
/// takes `WskSocket` + `WskBind` + `WskConnect`, which Wine implements.
#[test]
fn a_provider_like_wine8_stubs_socket_connect_but_connects_a_bound_connection_socket() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    emu::wsk::set_wine8_netio(true);
    let client = Client::register();
    let target: SocketAddr = (Ipv4Addr::new(10, 0, 0, 1), 80).into();
    let peer_listener = net.listen(target);
    let any = Addr::new((Ipv4Addr::UNSPECIFIED, 0).into());
    let remote = Addr::new(target);

    let op = IrpOp::new();
    assert_eq!(client.socket_connect(&any, &remote, &op), STATUS_NOT_IMPLEMENTED);
    emu::wsk::settle();
    assert!(!op.is_done(), "the stub never completes the IRP");
    assert!(peer_listener.accept().is_none(), "nothing connected");
    // The IRP was never taken: a NULL one is not even noticed (no violation is recorded).
    // SAFETY: captured; the provider's table is static.
    let f = unsafe { &*client.npi.Dispatch }
        .WskSocketConnect
        .expect("WskSocketConnect");
    // SAFETY: valid client handle; the stub reads nothing.
    let returned = unsafe {
        f(
            client.npi.Client,
            SOCK_STREAM,
            IPPROTO_TCP,
            any.ptr(),
            remote.ptr(),
            0,
            core::ptr::null_mut(),
            core::ptr::null(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    };
    assert_eq!(returned, STATUS_NOT_IMPLEMENTED);

    // The way Wine connects out: create, bind (WskConnect on an unbound socket fails), connect.
    let socket = client.socket(AF_INET, WSK_FLAG_CONNECTION_SOCKET);
    let connect = conn(socket).WskConnect.expect("WskConnect");
    // SAFETY: valid socket; the address and the IRP outlive the operation.
    unsafe { connect(socket, remote.ptr(), 0, op.start()) };
    assert_eq!(op.wait().0, STATUS_INVALID_DEVICE_STATE, "unbound");
    bind(socket, (Ipv4Addr::UNSPECIFIED, 0).into());
    // SAFETY: as above.
    unsafe { connect(socket, remote.ptr(), 0, op.start()) };
    assert_eq!(op.wait().0, STATUS_SUCCESS);
    assert!(peer_listener.accept().is_some(), "the peer saw the connection");
    assert_eq!(close(socket), STATUS_SUCCESS);
    client.deregister();
    drop(net);
}

/// Wine 8's `WskConnect` arms no cancel routine: `IoCancelIrp` returns FALSE and leaves the connect
/// pending (held here, as a peer that does not answer), and only the close of its socket ends it,
/// with STATUS_CANCELLED. Outside that mode the same connect is cancelled. Any schedule.
#[test]
fn a_provider_like_wine8_refuses_to_cancel_a_pending_connect_and_the_close_ends_it() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let target: SocketAddr = (Ipv4Addr::new(10, 0, 0, 1), 80).into();
    let peer_listener = net.listen(target);
    let remote = Addr::new(target);
    for wine8 in [true, false] {
        emu::wsk::set_wine8_netio(wine8);
        net.script(OpKind::Connect, Completion::Hold);
        let socket = client.socket(AF_INET, WSK_FLAG_CONNECTION_SOCKET);
        bind(socket, (Ipv4Addr::UNSPECIFIED, 0).into());
        let connect = conn(socket).WskConnect.expect("WskConnect");
        let op = IrpOp::new();
        // SAFETY: valid socket; the address and the IRP outlive the operation.
        assert_eq!(unsafe { connect(socket, remote.ptr(), 0, op.start()) }, STATUS_PENDING);
        assert_eq!(net.held().len(), 1);
        if wine8 {
            assert!(!op.cancel(), "no cancel routine armed: IoCancelIrp returns FALSE");
            emu::wsk::settle();
            assert!(!op.is_done(), "the refused cancel leaves the connect pending");
            assert_eq!(net.held().len(), 1);
            assert_eq!(close(socket), STATUS_SUCCESS);
            assert_eq!(op.wait(), (STATUS_CANCELLED, 0), "the close ends the connect");
        } else {
            assert!(op.cancel(), "a cancel routine is armed");
            assert_eq!(op.wait(), (STATUS_CANCELLED, 0));
            assert_eq!(close(socket), STATUS_SUCCESS);
        }
        assert!(net.held().is_empty());
        // The peer saw the connection (the hold delays only the connect's completion); given up,
        // it is reset.
        let peer = peer_listener.accept().expect("the peer saw the connection");
        assert!(peer.was_reset() && peer.driver_closed());
    }
    client.deregister();
    drop(net);
}

//! WSK's send model on the deterministic in-memory network, through the raw WSK ABI: a `WskSend`
//! stays pending until the peer has read every one of its bytes (the network's default
//! acknowledgement), several sends can be in flight and complete in order, a graceful
//! `WskDisconnect` completes after them, and an abortive disconnect, a close or a cancellation ends
//! sends still waiting. Single-threaded and Miri-clean.
#![cfg(not(target_os = "windows"))]

mod wsk_support;

use nt::emu;
use nt::emu::wsk::{Acknowledgement, Completion, MemoryNetwork, OpKind, Peer};
use nt::*;
use std::net::{Ipv4Addr, SocketAddr};
use wsk_support::*;

/// A network, a registration, a listener, and one accepted connection with its peer.
struct Conn {
    net: MemoryNetwork,
    client: Client,
    listener: PWSK_SOCKET,
    socket: PWSK_SOCKET,
    peer: Peer,
}

fn connect(configure: impl FnOnce(&MemoryNetwork)) -> Conn {
    // Depends on the `realistic` schedule: these tests pin when a send completes relative to the
    // peer's reads, as the function that causes it returns; the other schedules may deliver any
    // completion later, which `wsk_schedule.rs` covers.
    emu::wsk::set_schedule(emu::wsk::Schedule::Realistic);
    let net = MemoryNetwork::install();
    configure(&net);
    let client = Client::register();
    let listener = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    bind(listener, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let peer = net.connect(local_address(listener)).expect("connect");
    let op = IrpOp::new();
    let remote = Addr::empty();
    assert_eq!(accept(listener, &remote, &op), STATUS_SUCCESS);
    let socket = std::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(op.result().1);
    Conn {
        net,
        client,
        listener,
        socket,
        peer,
    }
}

impl Conn {
    fn finish(self) {
        assert_eq!(close(self.socket), STATUS_SUCCESS);
        assert_eq!(close(self.listener), STATUS_SUCCESS);
        self.client.deregister();
        drop(self.net);
    }
}

#[test]
fn a_send_to_a_peer_that_does_not_read_stays_pending_until_it_has_read_every_byte() {
    let _session = emu::session();
    let c = connect(|_| {});
    let buf = PoolBuf::with(b"0123456789");
    let op = IrpOp::new();
    assert_eq!(send(c.socket, &buf, 0, 10, &op), STATUS_PENDING);
    assert_eq!(c.peer.unread(), 10, "every byte handed over, room in the window");
    assert!(!op.is_done(), "handed over is not acknowledged: no send buffering");
    assert_eq!(c.peer.read(6).unwrap(), b"012345");
    assert!(!op.is_done(), "four bytes still unread");
    assert_eq!(c.peer.read(6).unwrap(), b"6789");
    assert_eq!(op.result(), (STATUS_SUCCESS, 10));
    assert_eq!(op.completed_at(), DISPATCH_LEVEL, "completed by the peer's read");
    c.finish();
}

#[test]
fn sends_in_flight_complete_in_order_as_the_peer_reads_them() {
    let _session = emu::session();
    let c = connect(|_| {});
    let (first, second) = (PoolBuf::with(b"abc"), PoolBuf::with(b"defg"));
    let (op1, op2) = (IrpOp::new(), IrpOp::new());
    assert_eq!(send(c.socket, &first, 0, 3, &op1), STATUS_PENDING);
    assert_eq!(send(c.socket, &second, 0, 4, &op2), STATUS_PENDING);
    assert_eq!(c.peer.unread(), 7, "the second is handed over while the first waits");
    assert_eq!(c.peer.read(4).unwrap(), b"abcd");
    assert_eq!(op1.result(), (STATUS_SUCCESS, 3));
    assert!(!op2.is_done());
    assert_eq!(c.peer.read(4).unwrap(), b"efg");
    assert_eq!(op2.result(), (STATUS_SUCCESS, 4));
    c.finish();
}

#[test]
fn a_send_larger_than_the_window_is_handed_over_as_the_peer_reads() {
    let _session = emu::session();
    let c = connect(|net| net.set_default_window(4));
    let buf = PoolBuf::with(b"0123456789");
    let op = IrpOp::new();
    assert_eq!(send(c.socket, &buf, 0, 10, &op), STATUS_PENDING);
    let mut read = Vec::new();
    while !op.is_done() {
        assert!(c.peer.unread() <= 4, "never more than the window in flight");
        let chunk = c.peer.read(usize::MAX).unwrap();
        assert!(!chunk.is_empty(), "the send stalled");
        read.extend(chunk);
    }
    assert_eq!(read, b"0123456789");
    assert_eq!(op.result(), (STATUS_SUCCESS, 10));
    c.finish();
}

#[test]
fn a_graceful_disconnect_completes_after_the_sends_before_it_once_the_peer_has_read_them() {
    let _session = emu::session();
    let c = connect(|_| {});
    let buf = PoolBuf::with(b"last words");
    let (send_op, disconnect_op) = (IrpOp::new(), IrpOp::new());
    assert_eq!(send(c.socket, &buf, 0, 10, &send_op), STATUS_PENDING);
    assert_eq!(disconnect(c.socket, None, &disconnect_op), STATUS_PENDING);
    assert!(c.peer.got_fin(), "FIN follows the data handed over");
    assert!(!disconnect_op.is_done(), "the peer has not read up to the FIN");
    assert_eq!(c.peer.read(4).unwrap(), b"last");
    assert!(!send_op.is_done() && !disconnect_op.is_done());
    assert_eq!(c.peer.read(64).unwrap(), b" words");
    assert_eq!(send_op.result(), (STATUS_SUCCESS, 10));
    assert_eq!(disconnect_op.result(), (STATUS_SUCCESS, 0));
    assert_eq!(c.peer.read(64).unwrap(), b"", "EOF");
    c.finish();
}

#[test]
fn a_peer_acknowledging_on_arrival_completes_a_send_once_it_is_handed_over() {
    let _session = emu::session();
    let c = connect(|net| net.set_default_acknowledgement(Acknowledgement::OnArrival));
    let buf = PoolBuf::with(b"in the window");
    let op = IrpOp::new();
    assert_eq!(
        send(c.socket, &buf, 0, 13, &op),
        STATUS_SUCCESS,
        "TCP's order: acknowledged on arrival, inline"
    );
    assert_eq!(op.result(), (STATUS_SUCCESS, 13));
    assert_eq!(c.peer.unread(), 13);
    c.finish();
}

#[test]
fn an_abortive_disconnect_and_a_close_end_sends_waiting_for_the_peer() {
    let _session = emu::session();
    let c = connect(|_| {});
    let buf = PoolBuf::with(b"unread");
    let op = IrpOp::new();
    assert_eq!(send(c.socket, &buf, 0, 6, &op), STATUS_PENDING);
    assert_eq!(abort(c.socket), STATUS_SUCCESS);
    assert_eq!(op.result().0, STATUS_CONNECTION_ABORTED);
    assert!(c.peer.was_reset());
    assert_eq!(close(c.socket), STATUS_SUCCESS);

    let d = connect(|_| {});
    assert_eq!(send(d.socket, &buf, 0, 6, &op), STATUS_PENDING);
    assert_eq!(close(d.socket), STATUS_SUCCESS);
    assert!(
        op.is_done(),
        "WskCloseSocket completes pending IRPs before it completes"
    );
    assert_eq!(op.result().0, STATUS_CANCELLED);
    assert_eq!(close(d.listener), STATUS_SUCCESS);
    d.client.deregister();
    assert_eq!(close(c.listener), STATUS_SUCCESS);
    c.client.deregister();
    drop((c.net, d.net));
}

#[test]
fn a_send_waiting_for_the_peer_can_be_cancelled() {
    let _session = emu::session();
    let c = connect(|_| {});
    let buf = PoolBuf::with(b"cancelled");
    let op = IrpOp::new();
    assert_eq!(send(c.socket, &buf, 0, 9, &op), STATUS_PENDING);
    assert!(op.cancel());
    // What the cancelled send leaves on the connection is invented (see the provider's send
    // module), so not asserted here.
    assert_eq!(op.result().0, STATUS_CANCELLED);
    c.finish();
}

#[test]
fn a_scripted_send_still_completes_as_the_test_says() {
    let _session = emu::session();
    let c = connect(|_| {});
    c.net.script(OpKind::Send, Completion::Hold);
    let buf = PoolBuf::with(b"held");
    let op = IrpOp::new();
    assert_eq!(send(c.socket, &buf, 0, 4, &op), STATUS_PENDING);
    assert_eq!(c.peer.unread(), 0, "held before anything is handed over");
    assert!(c.net.release(c.net.held()[0]));
    assert_eq!(c.peer.unread(), 4, "released: handed over");
    assert!(!op.is_done(), "and, like any send, waits for the peer");
    assert_eq!(c.peer.read(64).unwrap(), b"held");
    assert_eq!(op.result(), (STATUS_SUCCESS, 4));
    c.finish();
}

/// `Peer::wait_unread`, for a load generator whose driver sends from a thread of its own: it returns
/// once the bytes are handed over, whichever of the two threads comes first, and gives up after its
/// bound, or at once after the driver's FIN, when they never come.
#[test]
fn a_peer_waits_for_the_bytes_a_send_on_another_thread_hands_over() {
    let _session = emu::session();
    let c = connect(|_| {});
    let buf = PoolBuf::with(b"0123456789");
    let op = IrpOp::new();
    let bound = std::time::Duration::from_secs(10);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| c.peer.wait_unread(10, bound));
        assert_eq!(send(c.socket, &buf, 0, 10, &op), STATUS_PENDING);
        assert!(waiter.join().unwrap(), "woken by the hand-over");
    });
    assert!(!op.is_done(), "waiting reads nothing: the send is not acknowledged");
    assert!(
        !c.peer.wait_unread(11, std::time::Duration::from_millis(1)),
        "the eleventh byte never comes: the bound ends the wait"
    );
    assert_eq!(c.peer.read(10).unwrap(), b"0123456789");
    assert_eq!(op.result(), (STATUS_SUCCESS, 10));
    let fin = IrpOp::new();
    let _ = disconnect(c.socket, None, &fin);
    assert!(
        !c.peer.wait_unread(1, bound),
        "the driver's FIN ends the wait with nothing to read"
    );
    assert!(c.peer.got_fin());
    c.finish();
}

//! Real loopback UDP through the emulated provider, with std `UdpSocket` peers: round trips with the
//! sender's address over IPv4 and IPv6, a dual-stack socket, truncation, a receive with a timeout
//! that is dropped and issued again, and a socket dropped with a receive pending. Not under Miri
//! (real sockets and threads).
#![cfg(all(not(target_os = "windows"), not(miri), not(loom)))]

mod common;

use std::future::{Future, poll_fn};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;
use wsk_async::{BufferPool, DatagramSocket, Registration};

/// Bound on every blocking step, so a broken test fails instead of hanging.
const BOUND: Duration = Duration::from_secs(20);

fn block_on<F: Future>(f: F) -> F::Output {
    executor::block_on(f).expect("block_on at PASSIVE_LEVEL")
}

fn peer(addr: &str) -> UdpSocket {
    let peer = UdpSocket::bind(addr).expect("bind the peer");
    peer.set_read_timeout(Some(BOUND)).unwrap();
    peer
}

fn bind(registration: &Registration, addr: &str) -> (DatagramSocket, SocketAddr) {
    let socket = block_on(registration.bind_datagram(addr.parse().unwrap())).expect("bind_datagram");
    let local = socket.local_addr().expect("local address");
    assert_ne!(local.port(), 0);
    (socket, local)
}

fn round_trip(local: &str, peer_addr: &str) {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let pool = BufferPool::new(2, 1500).unwrap();
    let (socket, local) = bind(&registration, local);
    let peer = peer(peer_addr);
    let peer_addr = peer.local_addr().unwrap();
    peer.send_to(b"hello", (local.ip(), local.port())).unwrap();
    block_on(async {
        let (received, buf) = socket.receive_from(pool.take().unwrap()).await;
        let received = received.unwrap();
        assert_eq!((received.len, received.from, received.truncated), (5, peer_addr, false));
        assert_eq!(&buf[..], b"hello");
        let (sent, _buf) = socket.send_to(buf, received.from).await;
        assert_eq!(sent.unwrap(), 5);
    });
    let mut got = [0u8; 16];
    let (n, from) = peer.recv_from(&mut got).unwrap();
    assert_eq!((&got[..n], from), (&b"hello"[..], local));
    block_on(socket.close()).unwrap();
    drop(pool);
    block_on(registration.deregister());
}

#[test]
fn ipv4_round_trip_with_a_std_peer() {
    round_trip("127.0.0.1:0", "127.0.0.1:0");
}

#[test]
fn ipv6_round_trip_with_a_std_peer() {
    round_trip("[::1]:0", "[::1]:0");
}

#[test]
fn a_dual_stack_socket_answers_an_ipv4_peer() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let pool = BufferPool::new(1, 1500).unwrap();
    let (socket, local) = bind(&registration, "[::]:0");
    let peer = peer("127.0.0.1:0");
    let peer_addr = peer.local_addr().unwrap();
    peer.send_to(b"v4", (Ipv4Addr::LOCALHOST, local.port())).unwrap();
    block_on(async {
        let (received, buf) = socket.receive_from(pool.take().unwrap()).await;
        let from = received.unwrap().from;
        assert_eq!(
            from,
            SocketAddr::new(Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(), peer_addr.port())
        );
        // Answered at the plain IPv4 address: sent as IPv4-mapped.
        let (sent, _buf) = socket.send_to(buf, peer_addr).await;
        assert_eq!(sent.unwrap(), 2);
    });
    let mut got = [0u8; 4];
    let (n, from) = peer.recv_from(&mut got).unwrap();
    assert_eq!(
        (&got[..n], from),
        (&b"v4"[..], SocketAddr::from((Ipv4Addr::LOCALHOST, local.port())))
    );
    block_on(socket.close()).unwrap();
    drop(pool);
    block_on(registration.deregister());
}

#[test]
fn a_datagram_longer_than_the_buffer_is_truncated() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let pool = BufferPool::new(1, 16).unwrap();
    let (socket, local) = bind(&registration, "127.0.0.1:0");
    let peer = peer("127.0.0.1:0");
    peer.send_to(&[9; 100], local).unwrap();
    peer.send_to(b"next", local).unwrap();
    block_on(async {
        let (received, buf) = socket.receive_from(pool.take().unwrap()).await;
        let received = received.unwrap();
        assert_eq!((received.len, received.truncated), (16, true));
        assert_eq!(&buf[..], &[9; 16][..]);
        let (received, buf) = socket.receive_from(buf).await;
        assert_eq!((received.unwrap().truncated, &buf[..]), (false, &b"next"[..]));
    });
    block_on(socket.close()).unwrap();
    drop(pool);
    block_on(registration.deregister());
}

/// A receive with a timeout: the timeout drops the pending receive (its IRP is cancelled and its
/// buffer comes back once the IRP completed), and the next receive gets the datagram sent after.
#[test]
fn a_receive_dropped_by_a_timeout_is_cancelled_and_the_next_one_receives() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let pool = BufferPool::new(2, 64).unwrap();
    let (socket, local) = bind(&registration, "[::1]:0");
    let peer = peer("[::1]:0");
    block_on(async {
        let timed_out = executor::timeout(Duration::from_millis(50), socket.receive_from(pool.take().unwrap())).await;
        assert!(timed_out.is_err(), "nothing was sent");
    });
    // The dropped receive's buffer stays lent until its IRP completes (then its slot's next use
    // frees it); the pool's other buffer serves the next receive.
    assert!(pool.available() >= 1);
    peer.send_to(b"after", local).unwrap();
    block_on(async {
        let (received, buf) = socket.receive_from(pool.take().unwrap()).await;
        assert_eq!(received.unwrap().len, 5);
        assert_eq!(&buf[..], b"after");
    });
    block_on(socket.close()).unwrap();
    assert_eq!(pool.available(), 2, "every buffer is back once the socket is gone");
    drop(pool);
    block_on(registration.deregister());
}

/// A receive dropped while pending, then the socket dropped (under the `pending` and `random`
/// schedules the cancelled IRP is still pending then): everything is closed, the buffer comes back,
/// and the port can be bound again.
#[test]
fn dropping_the_socket_after_a_pending_receive_releases_everything() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let pool = BufferPool::new(1, 64).unwrap();
    let (socket, local) = bind(&registration, "127.0.0.1:0");
    let live = registration.live_sockets();
    block_on(async {
        let mut receive = pin!(socket.receive_from(pool.take().unwrap()));
        poll_fn(|cx| {
            assert!(receive.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
    });
    drop(socket);
    assert!(common::wait_until(BOUND, || registration.live_sockets() == live - 1));
    assert_eq!(pool.available(), 1);
    let (again, _) = bind(&registration, &local.to_string());
    block_on(again.close()).unwrap();
    drop(pool);
    block_on(registration.deregister());
}

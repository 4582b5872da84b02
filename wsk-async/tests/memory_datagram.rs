//! Datagram sockets on the emulation's deterministic in-memory network, with the test playing the
//! remote UDP hosts (`UdpPeer`): round trips, the sender's address, truncation, IPv6 dual stack, and
//! the drop semantics (a dropped pending receive or send is cancelled and its buffer comes back only
//! once its IRP has completed; a dropped socket is closed with its preallocated IRP). Runs under
//! Miri and under every completion schedule.
#![cfg(all(not(target_os = "windows"), not(loom)))]

mod common;

use common::*;
use nt::emu::wsk::{Completion, MemoryNetwork, OpKind, UdpPeer};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::pin;
use std::time::Duration;
use wsk_async::{BufferPool, DatagramSocket, Registration};

/// Fields drop in declaration order: the socket before the registration (whose blocking drop waits
/// for every socket), as in `common::Setup`.
struct Udp {
    net: MemoryNetwork,
    pool: BufferPool,
    socket: DatagramSocket,
    peer: UdpPeer,
    registration: Registration,
    _driver: TestDriver,
}

fn setup_at(local: SocketAddr) -> Udp {
    let net = MemoryNetwork::install();
    let driver = TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, Duration::from_secs(1)).expect("register");
    let pool = BufferPool::new(4, 64).expect("pool");
    let socket = ready(registration.bind_datagram(local)).expect("bind_datagram");
    let peer = net.bind_udp("127.0.0.1:0".parse().unwrap()).expect("peer");
    Udp {
        net,
        pool,
        socket,
        peer,
        registration,
        _driver: driver,
    }
}

fn setup() -> Udp {
    setup_at("127.0.0.1:0".parse().unwrap())
}

impl Udp {
    fn local(&self) -> SocketAddr {
        self.socket.local_addr().expect("local address")
    }

    /// Closes everything and deregisters; the session then checks for leaks.
    fn finish(self) {
        let Udp {
            net,
            pool,
            socket,
            peer,
            registration,
            ..
        } = self;
        ready(socket.close()).unwrap();
        drop(pool);
        ready(registration.deregister());
        drop((peer, net));
    }
}

#[test]
fn round_trip_with_the_senders_address() {
    let _session = nt::emu::session();
    let s = setup();
    let local = s.local();
    assert_eq!(local.ip(), Ipv4Addr::LOCALHOST);
    assert_ne!(local.port(), 0);
    s.peer.send_to(b"query", local);
    let (received, buf) = ready(s.socket.receive_from(s.pool.take().unwrap()));
    let received = received.unwrap();
    assert_eq!(
        (received.len, received.from, received.truncated),
        (5, s.peer.local_addr(), false)
    );
    assert_eq!(&buf[..], b"query");
    let (sent, buf) = ready(s.socket.send_to(buf.slice(1..4), received.from));
    assert_eq!(sent.unwrap(), 3);
    assert_eq!(s.peer.receive_from(), Some((b"uer".to_vec(), local)));
    drop(buf);
    assert_eq!(s.pool.available(), 4);
    s.finish();
}

#[test]
fn a_receive_waits_for_the_datagram() {
    let _session = nt::emu::session();
    let s = setup();
    let wakes = Wakes::new();
    {
        let mut receive = pin!(s.socket.receive_from(s.pool.take().unwrap()));
        assert!(wakes.poll(receive.as_mut()).is_pending());
        s.peer.send_to(b"late", s.local());
        let (received, buf) = wakes.ready(receive.as_mut());
        assert!(wakes.count() >= 1, "the completion woke the task");
        assert_eq!(received.unwrap().len, 4);
        assert_eq!(&buf[..], b"late");
    }
    s.finish();
}

#[test]
fn a_datagram_longer_than_the_buffer_is_truncated() {
    let _session = nt::emu::session();
    let s = setup();
    s.peer.send_to(&[7; 100], s.local());
    s.peer.send_to(b"next", s.local());
    let (received, buf) = ready(s.socket.receive_from(s.pool.take().unwrap()));
    let received = received.unwrap();
    assert_eq!((received.len, received.truncated), (64, true));
    assert_eq!(&buf[..], &[7; 64][..]);
    let (received, buf) = ready(s.socket.receive_from(buf));
    let received = received.unwrap();
    assert_eq!(
        (received.len, received.truncated),
        (4, false),
        "the rest of the first is gone"
    );
    assert_eq!(&buf[..], b"next");
    drop(buf);
    s.finish();
}

#[test]
fn a_dual_stack_socket_talks_to_ipv4_and_ipv6_peers() {
    let _session = nt::emu::session();
    let s = setup_at("[::]:0".parse().unwrap());
    let port = s.local().port();
    let v6_peer = s.net.bind_udp("[::1]:0".parse().unwrap()).unwrap();
    s.peer.send_to(b"v4", SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    v6_peer.send_to(b"v6", SocketAddr::from((Ipv6Addr::LOCALHOST, port)));
    let (first, buf) = ready(s.socket.receive_from(s.pool.take().unwrap()));
    let mapped = SocketAddr::new(Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(), s.peer.local_addr().port());
    assert_eq!(first.unwrap().from, mapped);
    let (second, buf) = ready(s.socket.receive_from(buf));
    assert_eq!(second.unwrap().from, v6_peer.local_addr());
    // An IPv4 destination is sent to as IPv4-mapped.
    let (sent, buf) = ready(s.socket.send_to(buf, s.peer.local_addr()));
    assert_eq!(sent.unwrap(), 2);
    assert_eq!(s.peer.receive_from().map(|(d, _)| d), Some(b"v6".to_vec()));
    drop((buf, v6_peer));
    s.finish();
}

#[test]
fn one_receive_and_one_send_in_flight_a_second_is_refused() {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(OpKind::SendTo, Completion::Hold);
    let wakes = Wakes::new();
    {
        let mut receive = pin!(s.socket.receive_from(s.pool.take().unwrap()));
        assert!(wakes.poll(receive.as_mut()).is_pending());
        let (second, buf) = ready(s.socket.receive_from(s.pool.take().unwrap()));
        assert!(second.unwrap_err().is_invalid_state());
        drop(buf);
        let mut send = pin!(s.socket.send_to(s.pool.take().unwrap(), s.peer.local_addr()));
        assert!(wakes.poll(send.as_mut()).is_pending());
        let (second, buf) = ready(s.socket.send_to(s.pool.take().unwrap(), s.peer.local_addr()));
        assert!(second.unwrap_err().is_invalid_state());
        drop(buf);
        for held in s.net.held() {
            s.net.release(held);
        }
        assert_eq!(wakes.ready(send.as_mut()).0.unwrap(), 0, "an empty datagram");
        s.peer.send_to(b"x", s.local());
        assert_eq!(wakes.ready(receive.as_mut()).0.unwrap().len, 1);
    }
    s.finish();
}

/// Dropping a pending receive cancels its IRP; the buffer goes back to its pool only once the IRP
/// has completed (under `pending` and `random` the cancelled IRP completes later, and the slot keeps
/// the buffer until its next use or the socket's release); the socket stays usable.
#[test]
fn a_dropped_pending_receive_is_cancelled_and_the_socket_still_receives() {
    let _session = nt::emu::session();
    let s = setup();
    let wakes = Wakes::new();
    {
        let mut receive = pin!(s.socket.receive_from(s.pool.take().unwrap()));
        assert!(wakes.poll(receive.as_mut()).is_pending());
        assert_eq!(s.pool.available(), 3);
    }
    // The cancelled IRP's buffer is with the slot or (completed) already back.
    assert!(s.pool.available() >= 3);
    nt::emu::wsk::settle();
    s.peer.send_to(b"after", s.local());
    let (received, buf) = ready(s.socket.receive_from(s.pool.take().unwrap()));
    assert_eq!(received.unwrap().len, 5);
    assert_eq!(&buf[..], b"after");
    drop(buf);
    // The next owner of the slot dropped the cancelled receive's buffer: all are back.
    assert_eq!(s.pool.available(), 4);
    s.finish();
}

/// The harsh order, pinned (`pending`): the cancelled receive completes after `IoCancelIrp`
/// returned, so its buffer must stay lent until then.
#[test]
fn a_late_cancelled_receive_keeps_its_buffer_until_the_irp_completes() {
    let _session = nt::emu::session();
    nt::emu::wsk::set_schedule(nt::emu::wsk::Schedule::Pending);
    let s = setup();
    let wakes = Wakes::new();
    {
        let mut receive = pin!(s.socket.receive_from(s.pool.take().unwrap()));
        assert!(wakes.poll(receive.as_mut()).is_pending());
    }
    assert_eq!(s.pool.available(), 3, "the cancelled IRP has not completed yet");
    assert!(nt::emu::wsk::settle() >= 1);
    ready(s.socket.close()).unwrap();
    // `finish` needs the socket; release the rest by hand.
    let Udp {
        net,
        pool,
        peer,
        registration,
        ..
    } = s;
    assert_eq!(pool.available(), 4, "back with the socket's release");
    drop(pool);
    ready(registration.deregister());
    drop((peer, net));
}

/// A held send dropped while pending is cancelled: the datagram never leaves and the socket sends
/// the next one.
#[test]
fn a_dropped_pending_send_is_cancelled_and_the_next_send_goes() {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(OpKind::SendTo, Completion::Hold);
    let wakes = Wakes::new();
    {
        let mut buf = s.pool.take().unwrap();
        buf.extend_from_slice(b"never");
        let mut send = pin!(s.socket.send_to(buf, s.peer.local_addr()));
        assert!(wakes.poll(send.as_mut()).is_pending());
    }
    nt::emu::wsk::settle();
    assert!(s.net.held().is_empty(), "the drop cancelled the held send");
    let mut buf = s.pool.take().unwrap();
    buf.extend_from_slice(b"sent");
    let (sent, buf) = ready(s.socket.send_to(buf, s.peer.local_addr()));
    assert_eq!(sent.unwrap(), 4);
    assert_eq!(s.peer.receive_from().map(|(d, _)| d), Some(b"sent".to_vec()));
    assert_eq!(s.peer.receive_from(), None);
    drop(buf);
    s.finish();
}

/// Dropping the socket while a receive IRP is still pending (its future was dropped, but the
/// provider is past the point of cancellation, so `IoCancelIrp` could not end it) closes the socket
/// with the preallocated close IRP, which completes the receive; the buffer stays lent until then,
/// and the context is freed by whoever drops the last reference.
#[test]
fn dropping_the_socket_with_a_pending_receive_closes_it() {
    let _session = nt::emu::session();
    let s = setup();
    let local = s.local();
    let wakes = Wakes::new();
    let live_sockets = s.registration.live_sockets();
    s.net.script(OpKind::ReceiveFrom, Completion::IgnoreCancel);
    {
        let mut receive = pin!(s.socket.receive_from(s.pool.take().unwrap()));
        assert!(wakes.poll(receive.as_mut()).is_pending());
    }
    nt::emu::wsk::settle();
    assert_eq!(s.net.held().len(), 1, "the cancel could not end the receive");
    assert_eq!(s.pool.available(), 3, "its buffer stays lent while the IRP pends");
    let Udp {
        net,
        pool,
        socket,
        peer,
        registration,
        ..
    } = s;
    drop(socket);
    assert!(wait_until(BOUND, || registration.live_sockets() == live_sockets - 1));
    assert_eq!(pool.available(), 4, "back once the close completed the receive");
    // The port is free again.
    let again = ready(registration.bind_datagram(local)).expect("the address is free again");
    ready(again.close()).unwrap();
    drop(pool);
    ready(registration.deregister());
    drop((peer, net));
}

#[test]
fn bind_datagram_dropped_midway_closes_the_socket_it_created() {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(OpKind::Bind, Completion::Hold);
    let wakes = Wakes::new();
    let before = s.registration.live_sockets();
    {
        let mut bind = pin!(s.registration.bind_datagram("127.0.0.1:0".parse().unwrap()));
        for _ in 0..4 {
            assert!(wakes.poll(bind.as_mut()).is_pending());
            nt::emu::wsk::settle();
        }
        assert_eq!(s.net.held().len(), 1, "the bind is held");
    }
    assert!(wait_until(BOUND, || s.registration.live_sockets() == before));
    s.finish();
}

/// On a provider like Wine 8.0's (no datagram sockets), `bind_datagram` fails with an
/// `is_unsupported` error and leaves nothing open.
#[test]
fn bind_datagram_on_a_provider_without_datagram_sockets_is_unsupported() {
    let _session = nt::emu::session();
    nt::emu::wsk::set_wine8_netio(true);
    let net = MemoryNetwork::install();
    let driver = TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, Duration::from_secs(1)).expect("register");
    let error = ready(registration.bind_datagram("127.0.0.1:0".parse().unwrap())).unwrap_err();
    assert!(error.is_unsupported(), "{error:?}");
    assert_eq!(registration.live_sockets(), 0);
    ready(registration.deregister());
    drop(net);
}

/// A provider that reports more bytes sent than the datagram had (a "negative" ULONG_PTR, or just
/// too many): the count returned is at most the datagram's length, so a caller that slices with it
/// cannot panic.
#[test]
fn a_send_count_beyond_the_datagram_is_not_trusted() {
    let _session = nt::emu::session();
    let s = setup();
    let wakes = Wakes::new();
    for information in [usize::MAX, 6] {
        s.net.script(OpKind::SendTo, Completion::Hold);
        let mut buf = s.pool.take().unwrap();
        buf.extend_from_slice(b"12345");
        let mut send = pin!(s.socket.send_to(buf, s.peer.local_addr()));
        assert!(wakes.poll(send.as_mut()).is_pending());
        nt::emu::wsk::settle();
        let held = s.net.held();
        assert_eq!(held.len(), 1);
        assert!(
            s.net
                .complete_with_information(held[0], nt::STATUS_SUCCESS, information)
        );
        let (sent, buf) = wakes.ready(send.as_mut());
        assert_eq!(sent.unwrap(), 5, "Information {information:#x}");
        drop(buf);
    }
    s.finish();
}

/// `WskSendTo` requires a remote address of the socket's family: on an IPv4 socket an IPv6
/// destination fails with STATUS_INVALID_PARAMETER before anything reaches the provider, and an
/// IPv4-mapped one is sent to as the IPv4 address it stands for.
#[test]
fn a_send_to_an_address_of_another_family_fails_without_calling_the_provider() {
    let _session = nt::emu::session();
    nt::emu::expect_violations();
    let s = setup();
    let (sent, buf) = ready(s.socket.send_to(s.pool.take().unwrap(), "[::1]:9".parse().unwrap()));
    assert_eq!(sent.unwrap_err().status(), nt::STATUS_INVALID_PARAMETER);
    let mut buf = buf;
    buf.extend_from_slice(b"v4");
    let mapped = SocketAddr::new(Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(), s.peer.local_addr().port());
    let (sent, buf) = ready(s.socket.send_to(buf, mapped));
    assert_eq!(sent.unwrap(), 2);
    assert_eq!(s.peer.receive_from().map(|(d, _)| d), Some(b"v4".to_vec()));
    drop(buf);
    s.finish();
    let violations: Vec<String> = nt::emu::take_violations()
        .iter()
        .map(|v| v.message().to_owned())
        .collect();
    assert_eq!(violations, Vec::<String>::new());
}

/// A provider that reports more bytes received than the buffer holds, with neither MSG_TRUNC nor
/// STATUS_BUFFER_OVERFLOW: the length is clamped to the buffer and the datagram reported truncated
/// (a count beyond the buffer is truncation or a defect; either way the rest is not there).
#[test]
fn a_receive_count_beyond_the_buffer_is_clamped_and_reported_truncated() {
    let _session = nt::emu::session();
    let s = setup();
    let wakes = Wakes::new();
    for information in [65, usize::MAX] {
        s.net.script(OpKind::ReceiveFrom, Completion::Hold);
        let mut receive = pin!(s.socket.receive_from(s.pool.take().unwrap()));
        assert!(wakes.poll(receive.as_mut()).is_pending());
        nt::emu::wsk::settle();
        s.peer.send_to(b"hello", s.local());
        let held = s.net.held();
        assert_eq!(held.len(), 1);
        assert!(s.net.release_with_information(held[0], information));
        let (received, buf) = wakes.ready(receive.as_mut());
        let received = received.unwrap();
        assert_eq!(
            (received.len, received.from, received.truncated),
            (64, s.peer.local_addr(), true),
            "Information {information:#x}"
        );
        assert_eq!(buf.len(), 64);
        drop(buf);
    }
    s.finish();
}

//! `Registration::connect_from` and `Registration::resolve` over real loopback TCP: the peer sees the
//! chosen local address, a local address already in use is an `is_address_in_use` error, and a
//! resolved address connects. Not under Miri (real sockets).
#![cfg(all(not(target_os = "windows"), not(miri), not(loom)))]

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;
use wsk_async::Registration;

const BOUND: Duration = Duration::from_secs(20);

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    executor::block_on(f).expect("block_on at PASSIVE_LEVEL")
}

/// A loopback port that was free a moment ago (bound by a std socket, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_peer_sees_the_chosen_local_address() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let remote = server.local_addr().unwrap();
    // Another process may take the port between its release and the connect: try a few.
    let (conn, local) = (0..5)
        .find_map(|_| {
            let local = SocketAddr::from(([127, 0, 0, 1], free_port()));
            match block_on(registration.connect_from(local, remote)) {
                Ok(conn) => Some((conn, local)),
                Err(e) if e.is_address_in_use() => None,
                Err(e) => panic!("connect_from {local}: {e:?}"),
            }
        })
        .expect("a free local port within five tries");
    let (_stream, peer) = server.accept().unwrap();
    assert_eq!(peer, local, "the accepted peer is the chosen local address");
    assert_eq!(conn.peer_addr(), Some(remote));
    block_on(conn.close()).unwrap();
    block_on(registration.deregister());
}

#[test]
fn a_local_address_in_use_is_an_address_in_use_error() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let error = block_on(registration.connect_from(taken.local_addr().unwrap(), server.local_addr().unwrap()))
        .expect_err("the local address is taken by a listener");
    assert!(error.is_address_in_use(), "{error:?}");
    block_on(registration.deregister());
}

/// Resolution on a registration over the real TCP transport (completions delivered by its event
/// loop or before the executor waits), then a connection to the resolved IPv4 address.
#[test]
fn resolve_then_connect_over_loopback() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let addrs = block_on(registration.resolve("localhost", port)).unwrap();
    let v4 = addrs
        .iter()
        .find(SocketAddr::is_ipv4)
        .expect("an IPv4 address for localhost");
    assert_eq!(v4, SocketAddr::from(([127, 0, 0, 1], port)));
    assert!(
        addrs
            .iter()
            .any(|a| a == SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)))
    );
    let conn = block_on(registration.connect(v4)).unwrap();
    let (_stream, peer) = server.accept().unwrap();
    assert!(peer.ip().is_loopback());
    assert_eq!(conn.peer_addr(), Some(v4));
    for (host, expected) in [("127.0.0.1", "127.0.0.1:7"), ("::1", "[::1]:7")] {
        let addrs = block_on(registration.resolve(host, 7)).unwrap();
        assert_eq!(addrs.first(), Some(expected.parse().unwrap()), "{host}");
        assert_eq!(addrs.len(), 1);
    }
    let error = block_on(registration.resolve("no.such.host.invalid", 7)).unwrap_err();
    assert_eq!(error.status(), nt::STATUS_NOT_FOUND);
    block_on(conn.close()).unwrap();
    block_on(registration.deregister());
}

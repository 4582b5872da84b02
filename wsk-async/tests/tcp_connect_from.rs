//! `Registration::connect_from` over real loopback TCP: the peer sees the chosen local address, and
//! a local address already in use is an `is_address_in_use` error. Not under Miri (real sockets).
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

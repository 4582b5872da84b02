//! Socket options over real loopback TCP: `set_nodelay` and `set_keepalive` reach the host socket
//! (read back with `getsockopt` through the emulation), and an exclusive listener's host socket has
//! no SO_REUSEADDR. Not under Miri (real sockets).
#![cfg(all(target_os = "linux", not(miri), not(loom)))]

mod common;

use nt::emu::wsk::{HostOption, host_option_at};
use std::future::Future;
use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;
use wsk_async::{BufferPool, Connection, Registration};

const BOUND: Duration = Duration::from_secs(20);

fn block_on<F: Future>(f: F) -> F::Output {
    executor::block_on(f).expect("block_on at PASSIVE_LEVEL")
}

fn host(conn: &Connection, option: HostOption) -> Option<bool> {
    host_option_at(conn.local_addr().unwrap(), conn.peer_addr(), option)
}

#[test]
fn nodelay_and_keepalive_reach_the_host_socket() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let listener = block_on(registration.listen("127.0.0.1:0".parse().unwrap())).unwrap();
    let local = listener.local_addr().unwrap();
    assert_eq!(
        host_option_at(local, None, HostOption::ExclusiveAddressUse),
        Some(false)
    );
    let _client = TcpStream::connect(local).unwrap();
    let conn = block_on(listener.accept()).unwrap();
    assert_eq!(host(&conn, HostOption::NoDelay), Some(false));
    assert_eq!(host(&conn, HostOption::KeepAlive), Some(false));
    block_on(conn.set_nodelay(true)).unwrap();
    block_on(conn.set_keepalive(true)).unwrap();
    assert_eq!(host(&conn, HostOption::NoDelay), Some(true));
    assert_eq!(host(&conn, HostOption::KeepAlive), Some(true));
    block_on(conn.set_keepalive(false)).unwrap();
    assert_eq!(host(&conn, HostOption::KeepAlive), Some(false));
    block_on(conn.close()).unwrap();
    block_on(listener.close()).unwrap();
    block_on(registration.deregister());
}

#[test]
fn an_exclusive_listener_has_no_host_reuse_address() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    for addr in ["127.0.0.1:0", "[::]:0"] {
        let listener = block_on(registration.listen(addr.parse().unwrap()).exclusive()).unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(
            host_option_at(local, None, HostOption::ExclusiveAddressUse),
            Some(true),
            "{addr}"
        );
        block_on(listener.close()).unwrap();
    }
    block_on(registration.deregister());
}

/// `Send::nodelay` passes WSK_FLAG_NODELAY: the emulation honours it by turning the host socket's
/// TCP_NODELAY on (a plain send before it leaves it off).
#[test]
fn a_nodelay_send_reaches_the_provider_with_its_flag() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let pool = BufferPool::new(2, 64).unwrap();
    let listener = block_on(registration.listen("127.0.0.1:0".parse().unwrap())).unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client.set_read_timeout(Some(BOUND)).unwrap();
    let conn = block_on(listener.accept()).unwrap();
    let mut got = [0u8; 5];
    for (data, nodelay) in [(b"plain", false), (b"quick", true)] {
        let mut buf = pool.take().unwrap();
        buf.extend_from_slice(data);
        let send = conn.send(buf);
        let (n, _buf) = block_on(if nodelay { send.nodelay() } else { send });
        assert_eq!(n.unwrap(), 5);
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, data);
        assert_eq!(
            host(&conn, HostOption::NoDelay),
            Some(nodelay),
            "after the {nodelay} send"
        );
    }
    block_on(conn.close()).unwrap();
    block_on(listener.close()).unwrap();
    drop(pool);
    block_on(registration.deregister());
}

/// The ideal send backlog of a loopback connection comes from the host socket (see the emulation's
/// `tcp/isb.rs`): at least the smallest IPv4 MSS, at most what Linux reports for the host send
/// buffer; switched off, the provider does not answer and the query reads `Ok(None)`.
#[test]
fn ideal_send_backlog_comes_from_the_host_socket() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let listener = block_on(registration.listen("127.0.0.1:0".parse().unwrap())).unwrap();
    let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let conn = block_on(listener.accept()).unwrap();
    let isb = block_on(conn.ideal_send_backlog())
        .unwrap()
        .expect("the emulation answers");
    assert!((536..=128 * 1024).contains(&isb), "ISB {isb}");
    nt::emu::wsk::set_ideal_send_backlog_answered(false);
    assert_eq!(block_on(conn.ideal_send_backlog()).unwrap(), None);
    block_on(conn.close()).unwrap();
    block_on(listener.close()).unwrap();
    block_on(registration.deregister());
}

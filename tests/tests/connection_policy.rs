//! What the echo driver does with one connection: echo until the peer's FIN then close gracefully,
//! refuse the connection over the limit at once, abort an idle one.
#![cfg(not(target_os = "windows"))]

use e2e_tests::{BOUND, EchoServer, echo_stream, is_reset, ping, wait_for_end};
use echo_driver::Config;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

#[test]
fn a_half_closing_client_receives_everything_it_sent_then_eof() {
    let server = EchoServer::start(EchoServer::config());
    for (seed, ipv6) in [(1, false), (2, true)] {
        // echo_stream half-closes after the last write and requires EOF after exactly every byte.
        echo_stream(server.connect(ipv6), seed, 300_000, 10_000).unwrap();
    }
    // Written in full before reading anything: the FIN arrives while the echo is still under way.
    let mut client = server.connect(false);
    let message: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    client.write_all(&message).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut echoed = Vec::new();
    client.read_to_end(&mut echoed).expect("EOF, not a reset");
    assert!(echoed == message, "the echo differs from what was sent");
    let counters = echo_driver::counters();
    assert_eq!((counters.accepted, counters.idle_aborts), (3, 0));
    server.finish();
}

#[test]
fn the_connection_over_the_limit_is_reset_at_once_while_the_others_keep_working() {
    const LIMIT: usize = 4;
    let server = EchoServer::start(Config {
        connection_limit: LIMIT,
        ..EchoServer::config()
    });
    let mut served: Vec<_> = (0..LIMIT).map(|i| server.connect(i % 2 == 1)).collect();
    for client in &mut served {
        // An echo proves the connection has its task (and so counts against the limit).
        ping(client, b"before").unwrap();
    }
    for ipv6 in [false, true] {
        // The reset comes at once (it may even beat `connect`); a connection queued instead would
        // hit the read timeout (BOUND).
        match server.try_connect(ipv6) {
            Ok(mut over) => {
                let end = wait_for_end(&mut over).expect("reset, not a timeout");
                assert!(end, "expected a reset, got EOF");
            }
            Err(e) => assert!(is_reset(&e), "connect failed with {e}, not a reset"),
        }
    }
    for client in &mut served {
        ping(client, b"after").unwrap();
    }
    let counters = echo_driver::counters();
    assert_eq!(
        (counters.accepted, counters.refused, counters.active),
        (LIMIT as u64, 2, LIMIT)
    );

    // A place freed by a client that leaves is available again.
    let leaving = served.pop().unwrap();
    leaving.shutdown(Shutdown::Write).unwrap();
    let mut leaving = leaving;
    assert!(!wait_for_end(&mut leaving).unwrap(), "graceful end");
    let deadline = Instant::now() + BOUND;
    while echo_driver::counters().active == LIMIT {
        assert!(Instant::now() < deadline, "the connection's task did not end");
        std::thread::yield_now();
    }
    let mut next = server.connect(true);
    ping(&mut next, b"welcome").unwrap();
    drop((served, next));
    server.finish();
}

#[test]
fn an_idle_client_is_reset_after_the_idle_timeout_and_a_busy_one_is_not() {
    const IDLE: Duration = Duration::from_millis(400);
    let server = EchoServer::start(Config {
        idle_timeout: IDLE,
        ..EchoServer::config()
    });
    let mut idle = server.connect(false);
    ping(&mut idle, b"hello").unwrap();
    let quiet_since = Instant::now();
    let mut busy = server.connect(true);
    // Traffic every IDLE / 4 for 3 * IDLE: each completed receive restarts the idle timer.
    let busy_until = Instant::now() + 3 * IDLE;
    while Instant::now() < busy_until {
        ping(&mut busy, b"still here").unwrap();
        std::thread::sleep(IDLE / 4);
    }
    let reset = wait_for_end(&mut idle).expect("reset, not a read timeout");
    assert!(reset, "an idle connection is aborted (RST), not closed gracefully");
    assert!(quiet_since.elapsed() >= IDLE, "reset before the idle timeout");
    ping(&mut busy, b"and now").unwrap();
    assert_eq!(echo_driver::counters().idle_aborts, 1);
    // Idle from now on too: reset as well.
    let reset = wait_for_end(&mut busy).expect("reset, not a read timeout");
    assert!(reset);
    assert_eq!(echo_driver::counters().idle_aborts, 2);
    server.finish();
}

#[test]
fn a_client_that_resets_mid_echo_costs_the_driver_nothing() {
    let server = EchoServer::start(EchoServer::config());
    let mut client = server.connect(false);
    ping(&mut client, b"x").unwrap();
    // SO_LINGER 0 + close: the client sends RST.
    let socket = client.try_clone().unwrap();
    set_linger_zero(&socket);
    drop((client, socket));
    let deadline = Instant::now() + BOUND;
    while echo_driver::counters().active != 0 {
        assert!(
            Instant::now() < deadline,
            "the connection's task did not end after the peer's reset"
        );
        std::thread::yield_now();
    }
    let mut again = server.connect(true);
    ping(&mut again, b"y").unwrap();
    drop(again);
    server.finish();
}

fn set_linger_zero(stream: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

#[test]
fn a_client_quiet_for_less_than_the_idle_timeout_is_still_served() {
    // 50 ms of silence (the default idle timeout is 60 s): no reset, and the next write is echoed.
    let server = EchoServer::start(EchoServer::config());
    let mut client = server.connect(false);
    client.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0; 1];
    let err = client.read(&mut buf).unwrap_err();
    assert!(!is_reset(&err), "no reset while idle time is left: {err}");
    client.set_read_timeout(Some(BOUND)).unwrap();
    ping(&mut client, b"late").unwrap();
    drop(client);
    server.finish();
}

//! The echo driver's admission against its buffer pool (one buffer per place under the limit) when a
//! cancelled receive gives its buffer back late: after the idle timeout has dropped the receive, the
//! connection's task has aborted and closed the socket and given its place back, but the kernel has
//! not yet completed the cancelled receive, so the buffer is still lent to it. A connection arriving
//! then is under the limit: it must be served, with that buffer once it is back.
//!
//! On Windows that happens when the cancelled IRP completes on another CPU after the close has
//! completed; the emulation produces that order on demand (`nt::emu::wsk::set_defer_cancelled`).
#![cfg(not(target_os = "windows"))]

use e2e_tests::{BOUND, EchoServer, ping, wait_for_end};
use echo_driver::{Config, CounterSnapshot};
use std::time::{Duration, Instant};

/// Waits until the driver's counters satisfy `done`; fails the test after [`BOUND`].
fn wait_counters(what: &str, done: impl Fn(&CounterSnapshot) -> bool) -> CounterSnapshot {
    let deadline = Instant::now() + BOUND;
    loop {
        let counters = echo_driver::counters();
        if done(&counters) {
            return counters;
        }
        assert!(Instant::now() < deadline, "{what}: not within {BOUND:?} ({counters})");
        std::thread::yield_now();
    }
}

#[test]
fn a_connection_arriving_while_a_cancelled_receive_holds_the_only_buffer_waits_for_it_and_is_served() {
    let server = EchoServer::start(Config {
        connection_limit: 1,
        idle_timeout: Duration::from_millis(200),
        ..EchoServer::config()
    });
    let mut first = server.connect(false);
    ping(&mut first, b"hello").unwrap();
    // From here on, an IRP completed with STATUS_CANCELLED stays pending until delivered below.
    nt::emu::wsk::set_defer_cancelled(true);

    // The first connection goes idle: its task drops the pending receive (IoCancelIrp: the IRP stays
    // pending, with the buffer), aborts, closes, and ends, giving its place back.
    assert!(
        wait_for_end(&mut first).expect("reset, not a read timeout"),
        "idle: RST"
    );
    let counters = wait_counters("the idle connection's task ends", |c| {
        c.idle_aborts == 1 && c.active == 0
    });
    assert_eq!((counters.accepted, counters.refused), (1, 0));
    assert!(
        nt::emu::wsk::wait_cancelled_parked(1, BOUND),
        "the idle timeout cancelled the pending receive"
    );

    // The window: no connection is served, but the only buffer is still lent to the cancelled
    // receive. A connection arriving now is under the limit: it takes the place and waits for the
    // buffer (before the fix it was reset for want of one).
    let mut second = server.connect(false);
    let counters = wait_counters("the second connection waits for the buffer", |c| c.buffer_waits == 1);
    assert_eq!(
        (counters.accepted, counters.refused, counters.active),
        (1, 0, 1),
        "admitted, not yet served: {counters}"
    );

    // The kernel completes the cancelled receive (as another CPU would): the buffer is back, and the
    // waiting connection is served with it.
    assert_eq!(
        nt::emu::wsk::deliver_cancelled(),
        1,
        "exactly the cancelled receive was pending"
    );
    ping(&mut second, b"welcome").unwrap();
    let counters = echo_driver::counters();
    assert_eq!(
        (
            counters.accepted,
            counters.refused,
            counters.active,
            counters.buffer_waits
        ),
        (2, 0, 1, 1),
        "{counters}"
    );

    // Unload cancels the accept: back to the ordinary order first.
    nt::emu::wsk::set_defer_cancelled(false);
    drop(second);
    server.finish();
}

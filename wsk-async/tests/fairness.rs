//! Fairness when the provider completes everything inline, as WSK does when the data is already
//! there and the peer's TCP acknowledges sends at once: one busy connection must not keep the others (or the
//! accept loop) from being served. On the in-memory network, where every operation that can
//! complete completes inline, the test plays the executor: two tasks, each polled in turn until it
//! returns `Pending`, as a run queue polls the tasks that woke.
#![cfg(all(not(target_os = "windows"), not(loom)))]

mod common;

use common::*;
use nt::emu::wsk::{Acknowledgement, Schedule};
use std::cell::Cell;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;
use wsk_async::{BufferPool, COOP_BUDGET, Registration};

/// Bytes the flooding peer has queued before the test starts: 4,096 messages of the pool's 256-byte
/// buffers, far more than a budget (Miri: 64 messages, still four budgets' worth).
const FLOOD: usize = if cfg!(miri) { 16 << 10 } else { 1 << 20 };

#[test]
fn a_flooding_connection_cannot_keep_another_from_being_served() {
    let _session = nt::emu::session();
    // Depends on the `inline` schedule: the starvation it guards against needs a provider that
    // completes every operation inline (under another schedule the tasks yield on their own).
    nt::emu::wsk::set_schedule(Schedule::Inline);
    let net = nt::emu::wsk::MemoryNetwork::install();
    // The peers never read during the test: their stacks acknowledge what arrives in the window
    // (TCP's order, not the network's default of acknowledging on read), and the window holds
    // everything echoed to them, so every send completes inline too.
    net.set_default_window(4 * FLOOD);
    net.set_default_acknowledgement(Acknowledgement::OnArrival);
    let driver = TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, Duration::from_secs(1)).unwrap();
    let pool = BufferPool::new(4, 256).unwrap();
    let listener = ready(registration.listen(LOCAL.parse().unwrap())).unwrap();
    let addr = listener.local_addr().unwrap();
    let flooder = net.connect(addr).unwrap();
    let conn_a = ready(listener.accept()).unwrap();
    let quiet = net.connect(addr).unwrap();
    let conn_b = ready(listener.accept()).unwrap();
    flooder.write(&vec![0xAA; FLOOD]).unwrap();
    flooder.shutdown();
    quiet.write(b"ping").unwrap();

    let echoed_by_a = Cell::new(0usize);
    let (a_done, b_served_after) = {
        let echo_a = async {
            let mut buf = pool.take().unwrap();
            loop {
                let (n, b) = conn_a.receive(buf).await;
                let n = n.unwrap();
                if n == 0 {
                    break;
                }
                let (sent, b) = conn_a.send_all(b.slice(..n)).await;
                sent.unwrap();
                buf = b;
                echoed_by_a.set(echoed_by_a.get() + 1);
            }
        };
        let echo_b = async {
            let buf = pool.take().unwrap();
            let (n, b) = conn_b.receive(buf).await;
            let n = n.unwrap();
            let (sent, _) = conn_b.send_all(b.slice(..n)).await;
            sent.unwrap();
            echoed_by_a.get()
        };
        let mut echo_a = pin!(echo_a);
        let mut echo_b = pin!(echo_b);
        let (wakes_a, wakes_b) = (Wakes::new(), Wakes::new());
        let (mut a_done, mut b_served_after) = (false, None);
        // Round-robin, bounded: every round polls each unfinished task once.
        for _ in 0..100_000 {
            if !a_done {
                a_done = wakes_a.poll(echo_a.as_mut()).is_ready();
            }
            if b_served_after.is_none()
                && let Poll::Ready(count) = wakes_b.poll(echo_b.as_mut())
            {
                b_served_after = Some(count);
            }
            if a_done && b_served_after.is_some() {
                break;
            }
        }
        (a_done, b_served_after)
    };
    let served_after = b_served_after.expect("the quiet connection was never served");
    assert!(a_done, "the flooding connection did not finish");
    assert_eq!(echoed_by_a.get(), FLOOD / 256);
    // Each echoed message is two operations (receive, send): the flooder yields after at most
    // COOP_BUDGET of them, i.e. COOP_BUDGET / 2 messages.
    assert!(
        served_after <= COOP_BUDGET as usize / 2,
        "the quiet connection was served only after {served_after} of the flooder's messages"
    );
    assert_eq!(quiet.read(16).unwrap(), b"ping");
    assert_eq!(flooder.unread(), FLOOD);
    drop((conn_a, conn_b, listener, pool));
    ready(registration.deregister());
    drop((flooder, quiet, net));
}

/// The same for accepting: a connection whose data is always there does not hold off the accept
/// of a new one.
#[test]
fn a_flooding_connection_cannot_keep_the_accept_loop_from_accepting() {
    let _session = nt::emu::session();
    // Depends on the `inline` schedule: the starvation it guards against needs a provider that
    // completes every operation inline (under another schedule the tasks yield on their own).
    nt::emu::wsk::set_schedule(Schedule::Inline);
    let net = nt::emu::wsk::MemoryNetwork::install();
    net.set_default_window(4 * FLOOD);
    net.set_default_acknowledgement(Acknowledgement::OnArrival);
    let driver = TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, Duration::from_secs(1)).unwrap();
    let pool = BufferPool::new(4, 256).unwrap();
    let listener = ready(registration.listen(LOCAL.parse().unwrap())).unwrap();
    let addr = listener.local_addr().unwrap();
    let flooder = net.connect(addr).unwrap();
    let conn_a = ready(listener.accept()).unwrap();
    flooder.write(&vec![0x55; FLOOD]).unwrap();
    flooder.shutdown();
    let _late = net.connect(addr).unwrap();

    let echoed_by_a = Cell::new(0usize);
    let accepted = {
        let echo_a = async {
            let mut buf = pool.take().unwrap();
            loop {
                let (n, b) = conn_a.receive(buf).await;
                let n = n.unwrap();
                if n == 0 {
                    break;
                }
                let (sent, b) = conn_a.send_all(b.slice(..n)).await;
                sent.unwrap();
                buf = b;
                echoed_by_a.set(echoed_by_a.get() + 1);
            }
        };
        let accept = async {
            let conn = listener.accept().await.unwrap();
            (conn, echoed_by_a.get())
        };
        let mut echo_a = pin!(echo_a);
        let mut accept = pin!(accept);
        let (wakes_a, wakes_b) = (Wakes::new(), Wakes::new());
        let (mut a_done, mut accepted) = (false, None);
        for _ in 0..100_000 {
            if !a_done {
                a_done = wakes_a.poll(echo_a.as_mut()).is_ready();
            }
            if accepted.is_none()
                && let Poll::Ready(result) = wakes_b.poll(accept.as_mut())
            {
                accepted = Some(result);
            }
            if a_done && accepted.is_some() {
                break;
            }
        }
        accepted
    };
    let (conn, accepted_after) = accepted.expect("the new connection was never accepted");
    assert!(
        accepted_after <= COOP_BUDGET as usize / 2,
        "accepted only after {accepted_after} of the flooder's messages"
    );
    drop((conn, conn_a, listener, pool));
    ready(registration.deregister());
    drop((flooder, net));
}

//! 200 concurrent clients, IPv4 and IPv6 together, each echoing 1 MiB of random data in random-sized
//! writes, every byte checked, against the echo driver on the host emulation.
#![cfg(not(target_os = "windows"))]

use e2e_tests::{EchoServer, echo_stream};
use std::thread;

const CLIENTS: usize = 200;
const BYTES_PER_CLIENT: usize = 1 << 20;
const MAX_WRITE: usize = 48 * 1024;

#[test]
fn two_hundred_clients_echo_a_mebibyte_each_over_ipv4_and_ipv6() {
    let server = EchoServer::start(EchoServer::config());
    let started = std::time::Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let ipv6 = i % 2 == 1;
            let stream = server.connect(ipv6);
            thread::spawn(move || echo_stream(stream, i as u64, BYTES_PER_CLIENT, MAX_WRITE))
        })
        .collect();
    let failures: Vec<String> = clients
        .into_iter()
        .enumerate()
        .filter_map(|(i, client)| match client.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("client {i}: {e}")),
            Err(_) => Some(format!("client {i} panicked")),
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} clients failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{CLIENTS} clients x {BYTES_PER_CLIENT} bytes echoed in {:?}",
        started.elapsed()
    );
    let counters = echo_driver::counters();
    assert_eq!(counters.accepted, CLIENTS as u64);
    assert_eq!(counters.refused, 0);
    assert_eq!(counters.bytes_echoed, (CLIENTS * BYTES_PER_CLIENT) as u64);
    server.finish();
}

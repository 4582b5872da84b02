//! `bench echo-cost`: instructions per echoed message, the echo driver against the C-style driver
//! ([`raw_driver`](super::raw_driver)), counted by callgrind on the emulation's in-memory network
//! (no host sockets, no event-loop thread: every byte moves when the load generator acts, on its
//! own thread). Wall-clock figures on a shared machine swing with its load; these counts do not.
//!
//! One run (`bench echo-cost-count <ours|cstyle> <K> <R>`, what callgrind runs) loads one driver,
//! connects `K` in-memory peers, warms up with one message each, then does `R` rounds: every peer
//! writes a 64-byte message, then every peer waits (blocking, see `Peer::wait_unread`) for its
//! echo and reads it, which acknowledges it (the network's default: a send completes when the peer
//! has read it). Then the peers close and the driver is unloaded. Instructions per message are
//! (count of 2R rounds - count of R rounds) / (R * K), whole process: the driver, the executor or
//! worker thread, the completion routines, the emulated provider and network, and the load
//! generator's own part, which is the same code for both drivers.

use crate::callgrind::{self, Count};
use crate::figures::{Figure, median, ratio};
use echo_driver::Config;
use nt::emu::wsk::{MemoryNetwork, Peer, Schedule};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::raw_driver::RawEchoDriver;
use super::servers::EchoDriver;

/// Bytes per message: a small one, where what a message costs is the drivers' own machinery rather
/// than copying.
const MESSAGE: usize = 64;
/// Bytes per connection buffer, for both drivers (the echo driver's default, echosrv's).
const BUFFER: usize = 2048;
/// Connections of the two cases.
const CONNECTIONS: [usize; 2] = [1, 64];
/// Messages of the smaller run (the larger echoes twice as many): rounds = this / K.
const MESSAGES: usize = 2048;
/// Each count is the median of this many runs: the two threads' interleaving (when the driver's
/// thread is woken, how many completions it finds at once) varies a little from run to run.
const REPEATS: usize = 3;
/// How long a peer waits for its echo before the run fails.
const ECHO_BOUND: Duration = Duration::from_secs(30);

/// The two drivers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Driver {
    Ours,
    CStyle,
}

impl Driver {
    fn name(self) -> &'static str {
        match self {
            Driver::Ours => "ours",
            Driver::CStyle => "cstyle",
        }
    }
}

/// Instructions per message.
#[derive(Clone, Copy)]
struct PerMessage {
    /// Whole process, without the spinning of contended std mutexes (how long one thread spins on
    /// a lock the other holds depends on when the host switched between them: the one part of the
    /// count that varies from run to run).
    total: f64,
    /// Of those, outside the emulation (see [`Count::outside_emulation`]).
    outside_emulation: f64,
}

fn per_message(driver: Driver, k: usize) -> PerMessage {
    let rounds = MESSAGES / k;
    let count = |r: usize| -> (f64, f64) {
        let counts: Vec<Count> = (0..REPEATS)
            .map(|_| callgrind::count(&["echo-cost-count", driver.name(), &k.to_string(), &r.to_string()]))
            .collect();
        (
            median(counts.iter().map(|c| (c.total - c.lock_spinning) as f64).collect()),
            median(counts.iter().map(|c| c.outside_emulation as f64).collect()),
        )
    };
    let (small, large) = (count(rounds), count(2 * rounds));
    let messages = (rounds * k) as f64;
    PerMessage {
        total: (large.0 - small.0) / messages,
        outside_emulation: (large.1 - small.1) / messages,
    }
}

/// Runs the benchmark (callgrind), prints its table, returns its figures.
pub fn run() -> Vec<Figure> {
    if !callgrind::available() {
        println!("Echo cost: skipped, valgrind or callgrind_annotate is not installed");
        return Vec::new();
    }
    println!(
        "Echo cost: instructions per {MESSAGE}-byte message on the in-memory network (callgrind, {MESSAGES} vs {} messages, median of {REPEATS} runs)",
        2 * MESSAGES
    );
    println!(
        "{:<6} {:>12} {:>12} {:>8} {:>14} {:>14} {:>8}",
        "conns", "ours", "C-style", "ratio", "ours w/o emu", "C w/o emu", "ratio"
    );
    let mut figures = Vec::new();
    for k in CONNECTIONS {
        let ours = per_message(Driver::Ours, k);
        let c = per_message(Driver::CStyle, k);
        println!(
            "{:<6} {:>12.0} {:>12.0} {:>8.3} {:>14.0} {:>14.0} {:>8.3}",
            k,
            ours.total,
            c.total,
            ratio(ours.total, c.total),
            ours.outside_emulation,
            c.outside_emulation,
            ratio(ours.outside_emulation, c.outside_emulation)
        );
        let unit = "instructions/message";
        figures.push(Figure::value(
            format!("echo_instructions_per_message_ours_k{k}"),
            ours.total,
            unit,
        ));
        figures.push(Figure::value(
            format!("echo_instructions_per_message_c_style_k{k}"),
            c.total,
            unit,
        ));
        figures.push(Figure::ratio(
            format!("echo_instructions_per_message_vs_c_style_k{k}"),
            ratio(ours.total, c.total),
        ));
        figures.push(Figure::value(
            format!("echo_instructions_per_message_outside_emulation_ours_k{k}"),
            ours.outside_emulation,
            unit,
        ));
        figures.push(Figure::value(
            format!("echo_instructions_per_message_outside_emulation_c_style_k{k}"),
            c.outside_emulation,
            unit,
        ));
        figures.push(Figure::ratio(
            format!("echo_instructions_per_message_outside_emulation_vs_c_style_k{k}"),
            ratio(ours.outside_emulation, c.outside_emulation),
        ));
    }
    println!("w/o emu: without the emulation's functions (kernel, WSK provider, network, std locks, libc)");
    figures
}

/// `bench echo-cost-count <ours|cstyle> <K> <R>`: `R` rounds of one message per connection over `K`
/// in-memory connections, for callgrind.
pub fn count(args: &[String]) {
    let usage = "usage: bench echo-cost-count <ours|cstyle> <connections> <rounds>";
    let driver = match args.first().map(String::as_str) {
        Some("ours") => Driver::Ours,
        Some("cstyle") => Driver::CStyle,
        _ => panic!("{usage}"),
    };
    let k: usize = args.get(1).and_then(|s| s.parse().ok()).expect(usage);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).expect(usage);
    let session = nt::emu::session();
    nt::emu::set_backtraces(false);
    // The figures are for the default schedule (inline when the data is there, as Windows does),
    // whatever NT_EMU_SCHEDULE says.
    nt::emu::wsk::set_schedule(Schedule::Realistic);
    let net = MemoryNetwork::install();
    match driver {
        Driver::Ours => {
            let server = EchoDriver::start_with(Config {
                port: 0,
                buffer_size: BUFFER,
                connection_limit: k,
                ..Config::DEFAULT
            });
            echo(&net, server.port, k, rounds);
            server.wait_idle();
        }
        Driver::CStyle => {
            let server = RawEchoDriver::start(BUFFER);
            echo(&net, server.port, k, rounds);
            server.wait_idle();
        }
    }
    drop(net);
    drop(session);
}

/// Waits until the driver's thread (the executor's, the C-style worker) has done everything the
/// last step made possible and blocks again: so each step's work is the same in every run, whatever
/// the threads' interleaving.
fn quiesce() {
    assert!(
        nt::emu::sync::wait_until_blocked(1, ECHO_BOUND),
        "the driver's thread did not become idle within {ECHO_BOUND:?}"
    );
}

/// Connects `k` peers to the driver on `port`, echoes one message each to warm up, then `rounds`
/// rounds; then closes them and waits until the driver closed each.
fn echo(net: &MemoryNetwork, port: u16, k: usize, rounds: usize) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let peers: Vec<Peer> = (0..k).map(|_| net.connect(addr).expect("connect")).collect();
    let messages: Vec<Vec<u8>> = (0..k)
        .map(|p| (0..MESSAGE).map(|i| (i.wrapping_mul(31) ^ p) as u8).collect())
        .collect();
    for _ in 0..=rounds {
        for (peer, message) in peers.iter().zip(&messages) {
            peer.write(message).expect("write");
            quiesce();
            assert!(peer.wait_unread(MESSAGE, ECHO_BOUND), "no echo within {ECHO_BOUND:?}");
            assert_eq!(&peer.read(MESSAGE).expect("read"), message, "the echo differs");
            quiesce();
        }
    }
    for peer in &peers {
        peer.shutdown();
    }
    for peer in &peers {
        // The driver's FIN (after its last send completed) or its reset.
        peer.wait_unread(usize::MAX, ECHO_BOUND);
        assert!(
            peer.got_fin() || peer.was_reset(),
            "the driver did not end the connection"
        );
    }
}

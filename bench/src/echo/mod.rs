//! `bench echo`: echo throughput and latency on loopback TCP. The echo driver (on the host
//! emulation: its executor thread, and the emulated WSK provider's event-loop thread) against a
//! C-style echo driver on the same emulation ([`raw_driver`]: echosrv's completion routine plus
//! worker thread design), and against tokio echo servers on a current_thread runtime and on a
//! multi_thread runtime with 2 workers, with the same load generator ([`load`]), in the same run:
//! 1, 64 and 512 connections, 64 B and 16 KiB messages, closed loop. Every (case, server) pair is measured `ROUNDS` times, round-robin with
//! the server order rotated each round; the medians are reported. Then the bulk case ([`bulk`]): one
//! connection moving 1 GiB one way and back, `BULK_ROUNDS` times per server.

mod bulk;
pub mod cost;
mod load;
mod raw_driver;
mod servers;

use crate::figures::{Figure, median, ratio, spread};
use load::{CaseResult, LoadGenerator};
use raw_driver::RawEchoDriver;
use servers::{EchoDriver, Kind, TokioServer};
use std::time::Duration;

const CONNECTIONS: [usize; 3] = [1, 64, 512];
const SIZES: [usize; 2] = [64, 16 * 1024];
const ROUNDS: usize = 5;
const WARMUP: Duration = Duration::from_millis(200);
const MEASURE: Duration = Duration::from_millis(800);
const BULK_ROUNDS: usize = 3;

fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

/// Runs the benchmark, prints its tables, returns its figures.
pub fn run() -> Vec<Figure> {
    let cases: Vec<(usize, usize)> = CONNECTIONS
        .iter()
        .flat_map(|&c| SIZES.iter().map(move |&s| (c, s)))
        .collect();
    // samples[case][server] = one CaseResult per round
    let mut samples: Vec<[Vec<CaseResult>; 4]> = cases.iter().map(|_| Default::default()).collect();
    {
        let session = nt::emu::session();
        nt::emu::set_backtraces(false);
        let ours = EchoDriver::start();
        let cstyle = RawEchoDriver::start(servers::BUFFER);
        let tokio_ct = TokioServer::start(false);
        let tokio_mt = TokioServer::start(true);
        let load = LoadGenerator::new();
        let port = |kind: Kind| match kind {
            Kind::Ours => ours.port,
            Kind::CStyle => cstyle.port,
            Kind::TokioCurrentThread => tokio_ct.port,
            Kind::TokioMultiThread => tokio_mt.port,
        };
        for round in 0..ROUNDS {
            for (c, &(conns, size)) in cases.iter().enumerate() {
                for k in 0..Kind::ALL.len() {
                    let kind = Kind::ALL[(k + round) % Kind::ALL.len()];
                    let result = load.run(port(kind), conns, size, WARMUP, MEASURE);
                    match kind {
                        Kind::Ours => ours.wait_idle(),
                        Kind::CStyle => cstyle.wait_idle(),
                        _ => {}
                    }
                    samples[c][kind as usize].push(result);
                }
            }
        }
        drop((ours, cstyle));
        drop(session);
    }

    println!("Echo on loopback TCP: closed loop, {ROUNDS} rounds of {MEASURE:?} (after {WARMUP:?} warm-up), medians");
    println!(
        "{:<6} {:<7} {:<22} {:>12} {:>10} {:>10} {:>10} {:>9} {:>11} {:>11} {:>10}",
        "conns",
        "message",
        "server",
        "messages/s",
        "MB/s",
        "p50 us",
        "p99 us",
        "spread",
        "conn spread",
        "thru ratio",
        "p99 ratio"
    );
    let mut figures = Vec::new();
    for (c, &(conns, size)) in cases.iter().enumerate() {
        let pick = |kind: Kind, f: fn(&CaseResult) -> f64| -> (f64, f64) {
            let values: Vec<f64> = samples[c][kind as usize].iter().map(f).collect();
            (median(values.clone()), spread(&values))
        };
        let (ours_thru, _) = pick(Kind::Ours, |r| r.messages_per_s);
        let (ours_p99, _) = pick(Kind::Ours, |r| r.p99_us);
        for kind in Kind::ALL {
            let (thru, thru_spread) = pick(kind, |r| r.messages_per_s);
            let (mb, _) = pick(kind, |r| r.mb_per_s);
            let (p50, _) = pick(kind, |r| r.p50_us);
            let (p99, _) = pick(kind, |r| r.p99_us);
            let (conn_spread, _) = pick(kind, |r| r.conn_spread);
            let (thru_ratio, p99_ratio) = if kind == Kind::Ours {
                ("".to_string(), "".to_string())
            } else {
                (
                    format!("{:.3}", ratio(ours_thru, thru)),
                    format!("{:.3}", ratio(ours_p99, p99)),
                )
            };
            println!(
                "{:<6} {:<7} {:<22} {:>12.0} {:>10.2} {:>10.1} {:>10.1} {:>8.0}% {:>10.0}% {:>11} {:>10}",
                conns,
                size_name(size),
                kind.name(),
                thru,
                mb,
                p50,
                p99,
                thru_spread * 100.0,
                conn_spread * 100.0,
                thru_ratio,
                p99_ratio
            );
            let case = format!("echo_{}_c{conns}_{}", kind.short(), size_name(size));
            figures.push(Figure::value(format!("{case}_messages"), thru.round(), "messages/s"));
            figures.push(Figure::value(format!("{case}_p99"), p99, "us"));
            if kind != Kind::Ours {
                let vs = format!("c{conns}_{}_vs_{}", size_name(size), kind.short());
                figures.push(Figure::ratio(format!("echo_throughput_{vs}"), ratio(ours_thru, thru)));
                figures.push(Figure::ratio(format!("echo_p99_{vs}"), ratio(ours_p99, p99)));
            }
        }
    }
    println!("spread: (max - min) / median of messages/s over the rounds; conn spread: (max - min) / median of");
    println!(
        "the round trips each connection completed in a round (median over the rounds); ratios: ours / that server"
    );
    println!();
    figures.extend(run_bulk());
    figures
}

/// The bulk case alone (`bench echo-bulk`): one connection, 1 GiB one way and back, per server.
pub fn run_bulk() -> Vec<Figure> {
    // bulk[server] = MB/s per round
    let mut bulk: [Vec<f64>; 4] = Default::default();
    {
        let session = nt::emu::session();
        nt::emu::set_backtraces(false);
        let ours = EchoDriver::start();
        let cstyle = RawEchoDriver::start(servers::BUFFER);
        let tokio_ct = TokioServer::start(false);
        let tokio_mt = TokioServer::start(true);
        let load = LoadGenerator::new();
        let port = |kind: Kind| match kind {
            Kind::Ours => ours.port,
            Kind::CStyle => cstyle.port,
            Kind::TokioCurrentThread => tokio_ct.port,
            Kind::TokioMultiThread => tokio_mt.port,
        };
        for round in 0..BULK_ROUNDS {
            for k in 0..Kind::ALL.len() {
                let kind = Kind::ALL[(k + round) % Kind::ALL.len()];
                bulk[kind as usize].push(load.bulk(port(kind), bulk::bulk_bytes()));
                match kind {
                    Kind::Ours => ours.wait_idle(),
                    Kind::CStyle => cstyle.wait_idle(),
                    _ => {}
                }
            }
        }
        drop((ours, cstyle));
        drop(session);
    }
    let mut figures = Vec::new();
    println!();
    println!(
        "Bulk: one connection, {} MiB one way and back (written and read at once), {BULK_ROUNDS} rounds, medians",
        bulk::bulk_bytes() >> 20
    );
    println!("{:<22} {:>10} {:>9} {:>11}", "server", "MB/s", "spread", "ours/this");
    let ours_bulk = median(bulk[Kind::Ours as usize].clone());
    for kind in Kind::ALL {
        let values = &bulk[kind as usize];
        let mb = median(values.clone());
        let versus = if kind == Kind::Ours {
            String::new()
        } else {
            format!("{:.3}", ratio(ours_bulk, mb))
        };
        println!(
            "{:<22} {:>10.1} {:>8.0}% {:>11}",
            kind.name(),
            mb,
            spread(values) * 100.0,
            versus
        );
        figures.push(Figure::value(
            format!("echo_bulk_{}_mb_per_s", kind.short()),
            mb,
            "MB/s",
        ));
        if kind != Kind::Ours {
            figures.push(Figure::ratio(
                format!("echo_bulk_throughput_vs_{}", kind.short()),
                ratio(ours_bulk, mb),
            ));
        }
    }
    figures
}

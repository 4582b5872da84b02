//! The load generator, the same for every server: `conns` TCP connections, each a closed loop on a
//! tokio task (send one message, wait for all of its echo, record the round trip, repeat), on a
//! client runtime of its own (multi_thread, 2 workers) created once for the whole benchmark.

use crate::figures::spread;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What one case measured.
#[derive(Clone, Copy, Debug)]
pub struct CaseResult {
    pub messages_per_s: f64,
    /// Payload echoed per second, in 10^6 bytes (one direction).
    pub mb_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// How unevenly the connections were served: (max - min) / median of the round trips each
    /// connection completed in the window. A server that keeps serving the connections that are
    /// ready at once, while others wait, shows it here before it shows in the p99.
    pub conn_spread: f64,
}

pub struct LoadGenerator {
    runtime: tokio::runtime::Runtime,
}

impl LoadGenerator {
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("client runtime");
        Self { runtime }
    }

    /// The client runtime (for the other cases, e.g. [`bulk`](super::bulk)).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// Connects `conns` clients to `127.0.0.1:port`, runs them for `warmup` then `measure`, and
    /// counts the round trips that started after the warm-up and ended within the measured window.
    pub fn run(&self, port: u16, conns: usize, size: usize, warmup: Duration, measure: Duration) -> CaseResult {
        self.runtime.block_on(async move {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let mut streams = Vec::with_capacity(conns);
            for _ in 0..conns {
                let stream = TcpStream::connect(addr).await.expect("connect");
                stream.set_nodelay(true).expect("TCP_NODELAY");
                streams.push(stream);
            }
            let warm_until = Instant::now() + warmup;
            let stop_at = warm_until + measure;
            let tasks: Vec<_> = streams
                .into_iter()
                .enumerate()
                .map(|(i, stream)| tokio::spawn(client(stream, size, i, warm_until, stop_at)))
                .collect();
            let mut rtts: Vec<u64> = Vec::new();
            let mut per_connection: Vec<f64> = Vec::with_capacity(conns);
            for task in tasks {
                let connection = task.await.expect("client task");
                per_connection.push(connection.len() as f64);
                rtts.extend(connection);
            }
            assert!(!rtts.is_empty(), "no round trip completed in the measured window");
            rtts.sort_unstable();
            let messages_per_s = rtts.len() as f64 / measure.as_secs_f64();
            let percentile = |p: usize| rtts[(rtts.len() * p / 100).min(rtts.len() - 1)] as f64 / 1000.0;
            CaseResult {
                messages_per_s,
                mb_per_s: messages_per_s * size as f64 / 1e6,
                p50_us: percentile(50),
                p99_us: percentile(99),
                conn_spread: spread(&per_connection),
            }
        })
    }
}

/// One closed-loop client; returns the round-trip times (ns) measured inside the window. Checks
/// every echoed byte.
async fn client(mut stream: TcpStream, size: usize, seed: usize, warm_until: Instant, stop_at: Instant) -> Vec<u64> {
    let message: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(31) ^ seed) as u8).collect();
    let mut echo = vec![0u8; size];
    let mut rtts = Vec::with_capacity(4096);
    loop {
        let start = Instant::now();
        if start >= stop_at {
            break;
        }
        stream.write_all(&message).await.expect("send");
        quick_ack(&stream);
        stream.read_exact(&mut echo).await.expect("receive the echo");
        let end = Instant::now();
        assert!(echo == message, "the echo differs from the message");
        if start >= warm_until && end <= stop_at {
            rtts.push((end - start).as_nanos() as u64);
        }
    }
    rtts
}

/// Asks Linux to acknowledge the echo's segments at once instead of after the delayed-ACK timer
/// (40 ms). The servers all send with Nagle's algorithm on (WSK's default, and the default of a
/// tokio socket): their second 4 KiB send of a 16 KiB echo waits for the ACK of the first, so with
/// delayed ACKs every 16 KiB round trip would take 40 ms whatever the server, and the benchmark
/// would measure the timer. The flag is not sticky, so it is set again before every receive.
pub(super) fn quick_ack(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a pointer to an int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "TCP_QUICKACK");
}

//! The bulk case of `bench echo`: one connection moves [`bulk_bytes`] to the server and reads the
//! same bytes back, writing and reading at once (so the server's pipelining, not the client's
//! turn-taking, sets the pace). Every byte of the echo is checked against the pattern sent.

use super::load::LoadGenerator;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes moved each way: 1 GiB, or `BENCH_BULK_MIB` MiB.
pub fn bulk_bytes() -> u64 {
    std::env::var("BENCH_BULK_MIB")
        .ok()
        .and_then(|mib| mib.parse::<u64>().ok())
        .map_or(1 << 30, |mib| mib << 20)
}

/// Bytes per client write and read.
const CHUNK: usize = 64 * 1024;

/// The byte at stream offset `i`: a period (251) that no chunk size divides, so a chunk echoed in
/// the wrong place or twice is caught.
fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

impl LoadGenerator {
    /// Sends `total` bytes to `127.0.0.1:port` and reads them back; returns the payload rate in
    /// 10^6 bytes per second, one direction, from connect to the last byte echoed.
    pub fn bulk(&self, port: u16, total: u64) -> f64 {
        self.runtime().block_on(async move {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let stream = TcpStream::connect(addr).await.expect("connect");
            let start = Instant::now();
            let (mut reader, mut writer) = stream.into_split();
            let send = tokio::spawn(async move {
                let mut chunk = vec![0u8; CHUNK];
                let mut sent = 0u64;
                while sent < total {
                    let n = CHUNK.min((total - sent) as usize);
                    for (k, byte) in chunk[..n].iter_mut().enumerate() {
                        *byte = pattern(sent + k as u64);
                    }
                    writer.write_all(&chunk[..n]).await.expect("send");
                    sent += n as u64;
                }
                // Half-close: the echo servers answer with FIN after the last echoed byte.
                writer.shutdown().await.expect("FIN");
            });
            let mut buf = vec![0u8; CHUNK];
            let mut received = 0u64;
            while received < total {
                // As the closed-loop cases do: acknowledge at once, not after the delayed-ACK timer.
                // Under WSK's send model a server's send completes only on acknowledgement, so a
                // client that delays its ACKs would set the pace of every server that keeps little
                // data in flight.
                super::load::quick_ack(reader.as_ref());
                let n = reader.read(&mut buf).await.expect("receive the echo");
                assert!(n > 0, "the server closed after {received} of {total} bytes");
                for (k, &byte) in buf[..n].iter().enumerate() {
                    assert_eq!(byte, pattern(received + k as u64), "echo byte {}", received + k as u64);
                }
                received += n as u64;
            }
            let elapsed = start.elapsed();
            send.await.expect("sender");
            total as f64 / elapsed.as_secs_f64() / 1e6
        })
    }
}

//! The echo servers under test: the echo driver on the host emulation, and tokio echo servers
//! (current_thread and multi_thread) written the way a tokio user writes one. The two echo drivers
//! (ours and the C-style one) have two [`BUFFER`]-byte buffers per connection and pipeline them
//! (receive into one while the other is sent); a tokio server has one, since the host socket's own
//! buffers pipeline for it. All use default socket options (Nagle's algorithm on, as WSK's
//! `WskSend` without `WSK_FLAG_NODELAY`).

use echo_driver::Config;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes per connection buffer, for every server: the largest message, so that an echo is one
/// receive and one send. With a smaller buffer (the driver's default is 4 KiB) a 16 KiB echo is
/// several sends, and on Linux loopback Nagle's algorithm then holds each send after the first
/// until the client's delayed ACK (40 ms): every server measured the same 40 ms per message.
pub const BUFFER: usize = 16 * 1024;

/// Which server.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Ours,
    CStyle,
    TokioCurrentThread,
    TokioMultiThread,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Ours,
        Kind::CStyle,
        Kind::TokioCurrentThread,
        Kind::TokioMultiThread,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "echo driver (ours)",
            Kind::CStyle => "C-style WSK driver",
            Kind::TokioCurrentThread => "tokio current_thread",
            Kind::TokioMultiThread => "tokio multi_thread(2)",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::CStyle => "cstyle",
            Kind::TokioCurrentThread => "tokio_ct",
            Kind::TokioMultiThread => "tokio_mt",
        }
    }
}

/// The echo driver, loaded on the emulation for the whole benchmark (DriverEntry with port 0).
/// The caller holds the emulation session for its whole life.
pub struct EchoDriver {
    driver: Option<nt::emu::driver::LoadedDriver>,
    pub port: u16,
}

impl EchoDriver {
    pub fn start() -> Self {
        Self::start_with(Config {
            port: 0,
            buffer_size: BUFFER,
            ..Config::DEFAULT
        })
    }

    /// Loads the driver with `config` (its port 0 for a free one).
    pub fn start_with(config: Config) -> Self {
        // SAFETY: PASSIVE_LEVEL on this thread, in a fresh session, the loader's driver object.
        let driver =
            nt::emu::driver::load_with(|driver, _registry_path| unsafe { echo_driver::start(driver, &config) })
                .unwrap_or_else(|status| panic!("DriverEntry failed: {status:#x}"));
        let port = echo_driver::local_addr().expect("listening").port();
        Self {
            driver: Some(driver),
            port,
        }
    }

    /// Waits (bounded) until every connection of the previous case has ended.
    pub fn wait_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while echo_driver::counters().active != 0 {
            assert!(
                Instant::now() < deadline,
                "connections still active: {}",
                echo_driver::counters()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for EchoDriver {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            driver.unload();
        }
    }
}

/// A tokio echo server on its own runtime.
pub struct TokioServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokioServer {
    /// `multi_thread`: a multi-thread runtime with 2 workers (this machine's cores); otherwise a
    /// current-thread runtime on a dedicated thread.
    pub fn start(multi_thread: bool) -> Self {
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("local addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let runtime = if multi_thread {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_io()
                        .build()
                } else {
                    tokio::runtime::Builder::new_current_thread().enable_io().build()
                }
                .expect("tokio runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        tokio::spawn(serve(stream));
                    }
                });
                // Dropping the runtime drops every connection task (their sockets close).
                runtime.shutdown_background();
            })
        };
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

async fn serve(mut stream: tokio::net::TcpStream) {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for TokioServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)));
        if let Some(thread) = self.thread.take() {
            thread.join().expect("tokio server thread");
        }
    }
}

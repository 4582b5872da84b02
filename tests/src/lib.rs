//! End-to-end tests across crates live in `tests/`: real TCP clients (std `TcpStream`, on threads)
//! against the echo driver running in this process on the `nt` host emulation. This library holds
//! what they share: the driver under test ([`EchoServer`]), a seeded byte stream ([`ByteStream`]) and
//! the echo client ([`echo_stream`]).
#![cfg(not(target_os = "windows"))]

pub mod cases;

use echo_driver::Config;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// How long any single wait of a test may take before the test fails (real time).
pub const BOUND: Duration = Duration::from_secs(30);

/// SplitMix64: a small deterministic generator, so every run sends the same bytes in the same chunks.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `low..=high`.
    pub fn range(&mut self, low: usize, high: usize) -> usize {
        low + (self.next_u64() % (high - low + 1) as u64) as usize
    }
}

/// The bytes a client sends: a pseudo-random stream, the same for the same seed however it is cut
/// into chunks, so the receiving side can check every byte without keeping a copy.
#[derive(Clone)]
pub struct ByteStream {
    rng: Rng,
    word: [u8; 8],
    used: usize,
}

impl ByteStream {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed ^ 0xD1B5_4A32_D192_ED03),
            word: [0; 8],
            used: 8,
        }
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            if self.used == 8 {
                self.word = self.rng.next_u64().to_le_bytes();
                self.used = 0;
            }
            *byte = self.word[self.used];
            self.used += 1;
        }
    }
}

/// The driver under test, loaded in an emulation session: DriverEntry on construction, DriverUnload
/// by [`unload`](Self::unload) (or on drop, so a failing test does not leave it loaded for the next).
pub struct EchoServer {
    /// Loaded through the emulation's loader (a real driver object); taken by unload.
    driver: Option<nt::emu::driver::LoadedDriver>,
    port: u16,
    // Last: the session ends (and checks for leaks) after the driver is unloaded.
    session: Option<nt::emu::Session>,
}

impl EchoServer {
    /// Starts a session and runs DriverEntry with `config`; panics (fails the test) if it fails.
    pub fn start(config: Config) -> Self {
        Self::start_with(config, || {})
    }

    /// [`start`](Self::start), with `prepare` run in the new session before DriverEntry (to set up
    /// the emulated provider, e.g. `nt::emu::wsk::set_wine8_netio`).
    pub fn start_with(config: Config, prepare: impl FnOnce()) -> Self {
        let session = nt::emu::session();
        prepare();
        // SAFETY: PASSIVE_LEVEL (fresh session on this thread), the driver object the loader made.
        let driver =
            nt::emu::driver::load_with(|driver, _registry_path| unsafe { echo_driver::start(driver, &config) })
                .unwrap_or_else(|status| panic!("DriverEntry failed: {status:#x}"));
        // SAFETY: the loader's driver object lives until the session ends.
        assert!(
            unsafe { (*driver.object()).DriverUnload.is_some() },
            "DriverEntry must set DriverUnload"
        );
        let port = echo_driver::local_addr().expect("listening").port();
        Self {
            driver: Some(driver),
            port,
            session: Some(session),
        }
    }

    /// A test configuration: a free port, otherwise the defaults.
    pub fn config() -> Config {
        Config {
            port: 0,
            ..Config::DEFAULT
        }
    }

    /// A test configuration on a port that was free a moment ago, for providers that cannot report
    /// the port they picked (a failed local-address query, as under Wine 8: port 0 cannot work).
    pub fn config_on_port() -> Config {
        let port = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Config {
            port,
            ..Config::DEFAULT
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The driver's address for an IPv4 (`127.0.0.1`) or IPv6 (`::1`) client.
    pub fn addr(&self, ipv6: bool) -> SocketAddr {
        if ipv6 {
            (Ipv6Addr::LOCALHOST, self.port).into()
        } else {
            (Ipv4Addr::LOCALHOST, self.port).into()
        }
    }

    /// Connects a client with read and write timeouts of [`BOUND`].
    pub fn connect(&self, ipv6: bool) -> TcpStream {
        self.try_connect(ipv6).expect("connect")
    }

    /// Connects a client with read and write timeouts of [`BOUND`]; a connection the driver resets
    /// at once may already fail here (the reset can arrive before `connect` returns).
    pub fn try_connect(&self, ipv6: bool) -> io::Result<TcpStream> {
        let stream = TcpStream::connect_timeout(&self.addr(ipv6), BOUND)?;
        stream.set_read_timeout(Some(BOUND))?;
        stream.set_write_timeout(Some(BOUND))?;
        Ok(stream)
    }

    /// Runs DriverUnload (through the pointer DriverEntry set, as the I/O manager does) on a
    /// thread of its own, and returns how long it took; fails the test if it has not returned, or
    /// the image has not unloaded, within [`BOUND`].
    pub fn unload(&mut self) -> Duration {
        self.driver
            .take()
            .map_or(Duration::ZERO, |driver| driver.unload_within(BOUND))
    }

    /// Unloads if still loaded, then asserts that the emulation's leak report is empty and that no
    /// kernel rule was broken.
    pub fn finish(mut self) {
        self.unload();
        self.session.take().expect("session").finish();
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.unload();
    }
}

/// Sends `total` bytes of the stream `seed` in writes of random sizes (1..=`max_write` bytes),
/// then half-closes (FIN).
pub fn send_stream(mut stream: TcpStream, seed: u64, total: usize, max_write: usize) -> io::Result<()> {
    let mut data = ByteStream::new(seed);
    let mut sizes = Rng::new(seed);
    let mut chunk = vec![0; max_write];
    let mut sent = 0;
    while sent < total {
        let n = sizes.range(1, max_write).min(total - sent);
        data.fill(&mut chunk[..n]);
        stream.write_all(&chunk[..n])?;
        sent += n;
    }
    stream.shutdown(Shutdown::Write)
}

/// Reads until EOF, checking every byte against the stream `seed`; returns the number of bytes.
/// Fails (with a description) on a mismatch, an error or a timeout.
pub fn receive_stream(stream: &mut TcpStream, seed: u64) -> Result<usize, String> {
    let mut expected = ByteStream::new(seed);
    let mut buf = vec![0; 64 * 1024];
    let mut want = vec![0; 64 * 1024];
    let mut total = 0;
    loop {
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("read after {total} bytes: {e}"))?;
        if n == 0 {
            return Ok(total);
        }
        expected.fill(&mut want[..n]);
        if let Some(i) = (0..n).find(|&i| buf[i] != want[i]) {
            return Err(format!(
                "byte {} differs: got {:#04x}, sent {:#04x}",
                total + i,
                buf[i],
                want[i]
            ));
        }
        total += n;
    }
}

/// One echo client: sends `total` random bytes in random-sized writes from a writer thread while
/// this thread reads and checks the echo, then expects EOF after exactly `total` bytes.
pub fn echo_stream(mut stream: TcpStream, seed: u64, total: usize, max_write: usize) -> Result<(), String> {
    let writer = stream.try_clone().map_err(|e| e.to_string())?;
    let sender = std::thread::spawn(move || send_stream(writer, seed, total, max_write));
    let received = receive_stream(&mut stream, seed);
    let sent = sender.join().map_err(|_| "writer panicked".to_string())?;
    sent.map_err(|e| format!("write: {e}"))?;
    match received? {
        n if n == total => Ok(()),
        n => Err(format!("EOF after {n} of {total} bytes")),
    }
}

/// Whether an error means the peer reset (or aborted, or refused) the connection.
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionRefused
    )
}

/// Reads until the connection ends, returning `Ok(true)` for a reset, `Ok(false)` for EOF, and an
/// error for a timeout (nothing happened within the stream's read timeout).
pub fn wait_for_end(stream: &mut TcpStream) -> io::Result<bool> {
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(false),
            Ok(_) => continue,
            Err(e) if is_reset(&e) => return Ok(true),
            Err(e) => return Err(e),
        }
    }
}

/// One request/reply on an open connection.
pub fn ping(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    stream.write_all(message)?;
    let mut reply = vec![0; message.len()];
    stream.read_exact(&mut reply)?;
    if reply == message {
        Ok(())
    } else {
        Err(io::Error::other("echo differs"))
    }
}

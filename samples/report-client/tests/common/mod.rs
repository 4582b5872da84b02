//! What the report client's end-to-end tests share: the driver under test in an emulation session
//! ([`Client`]), bounded waits, and the report lines a server reads.
#![allow(dead_code)] // each test file uses part of it

pub use executor::Instant as EmuInstant;
use report_client::{Config, CounterSnapshot};
use std::io::{self, BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long any single wait of a test may take before the test fails (real time).
pub const BOUND: Duration = Duration::from_secs(30);

/// The backoff bounds of the tests: 100 ms doubling to 800 ms.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_millis(800);

/// The interval between reports in the tests.
pub const INTERVAL: Duration = Duration::from_millis(50);

/// A test configuration for `localhost:port`. The emulation resolves `localhost` to `::1` first,
/// then `127.0.0.1`, where the tests' servers listen: every connection also proves that the client
/// tries the next address after a refused one.
pub fn config(port: u16) -> Config {
    Config {
        host: "localhost",
        port,
        interval: INTERVAL,
        backoff_min: BACKOFF_MIN,
        backoff_max: BACKOFF_MAX,
        ..Config::DEFAULT
    }
}

/// The driver under test, loaded in an emulation session: DriverEntry on construction, DriverUnload
/// by [`unload`](Self::unload) (or on drop, so a failing test does not leave it loaded for the next).
pub struct Client {
    driver: Option<nt::emu::driver::LoadedDriver>,
    // Last: the session ends (and checks for leaks) after the driver is unloaded.
    session: Option<nt::emu::Session>,
}

impl Client {
    /// Starts a session, runs `prepare` in it (to pause the clock, install the in-memory network,
    /// ...), then DriverEntry with `config`; panics (fails the test) if it fails. Returns what
    /// `prepare` returned, to keep alive for the test.
    pub fn start_with<T>(config: Config, prepare: impl FnOnce() -> T) -> (Self, T) {
        let session = nt::emu::session();
        log_to_test_output();
        let prepared = prepare();
        // SAFETY: PASSIVE_LEVEL (fresh session on this thread), the driver object the loader made.
        let driver =
            nt::emu::driver::load_with(|driver, _registry_path| unsafe { report_client::start(driver, &config) })
                .unwrap_or_else(|status| panic!("DriverEntry failed: {status:#x}"));
        // SAFETY: the loader's driver object lives until the session ends.
        assert!(
            unsafe { (*driver.object()).DriverUnload.is_some() },
            "DriverEntry must set DriverUnload"
        );
        let client = Self {
            driver: Some(driver),
            session: Some(session),
        };
        (client, prepared)
    }

    /// Runs DriverUnload (through the pointer DriverEntry set, as the I/O manager does) on a thread
    /// of its own and waits until the image is unloaded; fails the test if either takes more than
    /// [`BOUND`]. Returns how long it took.
    pub fn unload(&mut self) -> Duration {
        let Some(driver) = self.driver.take() else {
            return Duration::ZERO;
        };
        // DriverUnload runs while time passes, as in a kernel: with the clock paused, a bounded wait
        // of the unload (wsk-async's wait for completion routines still running, in 1 ms
        // KeDelayExecutionThread steps) would never end. Only with a driver to unload, hence inside
        // this test's session: `Drop` calls this again after `finish` has ended the session, when
        // the clock (global) may already be the next test's, paused by it.
        nt::emu::clock::resume();
        driver.unload_within(BOUND)
    }

    /// Unloads if still loaded, then asserts that the emulation's leak report is empty (no IRP,
    /// socket, timer, work item, thread or pool block left) and that no kernel rule was broken.
    pub fn finish(mut self) {
        self.unload();
        self.session.take().expect("session").finish();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.unload();
    }
}

/// Waits until `condition` holds; fails the test, saying `what`, after [`BOUND`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {BOUND:?}: {what}");
        std::thread::yield_now();
    }
}

/// Waits until the counters satisfy `condition`; returns them.
pub fn wait_for_counters(what: &str, mut condition: impl FnMut(&CounterSnapshot) -> bool) -> CounterSnapshot {
    let deadline = Instant::now() + BOUND;
    loop {
        let seen = report_client::counters();
        if condition(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "not within {BOUND:?}: {what}; counters: {seen:?}"
        );
        std::thread::yield_now();
    }
}

/// A loopback listener on a free port.
pub fn listener() -> TcpListener {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback listener");
    listener.set_nonblocking(true).unwrap();
    listener
}

/// A loopback port on which nothing listens, held by the test so that no other process can listen
/// there meanwhile: TCP sockets bound to `127.0.0.1:port` and `[::1]:port` that do not listen, so a
/// connection to either is refused (RST).
pub struct ClosedPort {
    v4: OwnedFd,
    _v6: OwnedFd,
    port: u16,
}

impl ClosedPort {
    pub fn new() -> Self {
        loop {
            let v4 = bound_socket(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind 127.0.0.1:0");
            let port = local_port(&v4);
            // The same port on ::1 (the emulation resolves `localhost` to both); another if taken.
            if let Ok(v6) = bound_socket(SocketAddr::from((Ipv6Addr::LOCALHOST, port))) {
                return Self { v4, _v6: v6, port };
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server comes up: `127.0.0.1:port` starts listening (nonblocking listener).
    pub fn listen(self) -> TcpListener {
        // SAFETY: listen(2) on a bound socket this value owns.
        assert_eq!(unsafe { libc::listen(self.v4.as_raw_fd(), 128) }, 0, "listen");
        let listener = TcpListener::from(self.v4);
        listener.set_nonblocking(true).unwrap();
        listener
    }
}

/// A TCP socket bound to `addr`, not listening.
fn bound_socket(addr: SocketAddr) -> io::Result<OwnedFd> {
    let (family, storage, len) = sockaddr(addr);
    // SAFETY: plain socket creation; the descriptor is owned by the OwnedFd at once.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `storage` holds a valid socket address of `len` bytes.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), (&raw const storage).cast(), len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn sockaddr(addr: SocketAddr) -> (libc::c_int, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in>().write(sin) };
            (
                libc::AF_INET,
                storage,
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in6>().write(sin6) };
            (
                libc::AF_INET6,
                storage,
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

fn local_port(fd: &OwnedFd) -> u16 {
    // SAFETY: all-zero is a valid sockaddr_in; getsockname writes at most `len` bytes.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: as above; `fd` is an open socket.
    let rc = unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut sin).cast(), &mut len) };
    assert_eq!(rc, 0, "getsockname");
    u16::from_be(sin.sin_port)
}

/// The next connection to `listener` (nonblocking), within [`BOUND`].
pub fn accept(listener: &TcpListener) -> TcpStream {
    let mut accepted = None;
    wait_until("the client connects", || match listener.accept() {
        Ok((stream, _)) => {
            accepted = Some(stream);
            true
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    });
    let stream = accepted.unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream.set_write_timeout(Some(BOUND)).unwrap();
    stream
}

/// Whether a connection is waiting to be accepted on `listener` (nonblocking); accepts and drops it.
pub fn has_pending_connection(listener: &TcpListener) -> bool {
    match listener.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    }
}

/// One report line as the server reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub sequence: u64,
    pub connects: u64,
    pub reconnects: u64,
    pub sent: u64,
    pub failures: u64,
}

impl Report {
    /// Parses `report SEQ connects=N reconnects=N sent=N failures=N`.
    pub fn parse(line: &str) -> Report {
        let fields: Vec<&str> = line.trim_end().split(' ').collect();
        let value = |i: usize, name: &str| -> u64 {
            let field = fields.get(i).unwrap_or_else(|| panic!("{line:?}: no field {i}"));
            let text = field
                .strip_prefix(name)
                .and_then(|f| f.strip_prefix('='))
                .unwrap_or_else(|| panic!("{line:?}: field {i} is not {name}=N"));
            text.parse()
                .unwrap_or_else(|_| panic!("{line:?}: {name} is not a number"))
        };
        assert_eq!(fields.first(), Some(&"report"), "{line:?}");
        assert_eq!(fields.len(), 6, "{line:?}");
        Report {
            sequence: fields[1]
                .parse()
                .unwrap_or_else(|_| panic!("{line:?}: no sequence number")),
            connects: value(2, "connects"),
            reconnects: value(3, "reconnects"),
            sent: value(4, "sent"),
            failures: value(5, "failures"),
        }
    }
}

/// Reads the next report line, within the stream's read timeout.
pub fn read_report(reader: &mut BufReader<TcpStream>) -> Report {
    let mut line = String::new();
    let n = reader.read_line(&mut line).expect("a report line");
    assert!(n > 0, "the client closed the connection instead of reporting");
    Report::parse(&line)
}

/// Advances the paused emulation clock 1 ms at a time until `condition` holds; returns how far the
/// clock moved. Step by step rather than by the expected wait at once: the executor arms its KTIMER
/// with a relative due time read from the clock when it arms it, so a single jump made just before
/// the arming would leave the timer waiting for another jump.
pub fn step_clock_until(what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let deadline = Instant::now() + BOUND;
    let mut moved = Duration::ZERO;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "not within {BOUND:?}: {what}; counters: {:?}",
            report_client::counters()
        );
        nt::emu::clock::advance(Duration::from_millis(1));
        moved += Duration::from_millis(1);
        std::thread::yield_now();
    }
    moved
}

/// [`step_clock_until`] the counters satisfy `condition`; returns them and the emulated time at
/// which the test first saw them so (what it saw happened at that time or before).
pub fn advance_until(what: &str, mut condition: impl FnMut(&CounterSnapshot) -> bool) -> (CounterSnapshot, EmuInstant) {
    let mut seen = report_client::counters();
    step_clock_until(what, || {
        seen = report_client::counters();
        condition(&seen)
    });
    (seen, EmuInstant::now())
}

/// Reads the next report line the driver sent to an in-memory peer, within [`BOUND`]. `pending`
/// keeps what was read past the line.
pub fn read_peer_report(peer: &nt::emu::wsk::Peer, pending: &mut Vec<u8>) -> Report {
    let mut line = None;
    wait_until("a report line from the client", || {
        if let Some(end) = pending.iter().position(|&b| b == b'\n') {
            line = Some(pending.drain(..=end).collect::<Vec<u8>>());
            return true;
        }
        match peer.read(4096) {
            Ok(data) if data.is_empty() => panic!("the client closed the connection instead of reporting"),
            Ok(data) => pending.extend(data),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
        false
    });
    Report::parse(std::str::from_utf8(&line.unwrap()).expect("a UTF-8 line"))
}

/// The driver's `kdprint!` lines (and the emulation's) in the test's output, which the harness
/// shows for a failing test.
fn log_to_test_output() {
    struct TestLogger;
    impl log::Log for TestLogger {
        fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
            metadata.level() <= log::Level::Info
        }
        fn log(&self, record: &log::Record<'_>) {
            if self.enabled(record.metadata()) {
                eprintln!("[{:?} {}] {}", nt::emu::clock::now(), record.level(), record.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: TestLogger = TestLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

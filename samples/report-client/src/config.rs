//! The client's settings. The kernel build uses [`Config::DEFAULT`] (DriverEntry does not read the
//! registry); the host program and the tests pass their own.

use core::time::Duration;

/// The port the kernel build reports to by default: the echo sample's, so the two samples can be
/// tried together.
pub const DEFAULT_PORT: u16 = 40007;

/// The longest host name the client accepts, in bytes (a DNS name is at most 253 characters;
/// wsk-async's resolver takes up to `wsk_async::MAX_HOST_NAME` UTF-16 units).
pub const MAX_HOST_LEN: usize = 253;

/// The report client's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The server's name or numeric address, resolved before every connection attempt.
    pub host: &'static str,
    /// The server's TCP port (1..=65535).
    pub port: u16,
    /// Time between two reports on a connection (the first is sent as soon as it is connected).
    pub interval: Duration,
    /// The first wait after a failure; each further failure without a connection in between
    /// doubles it, up to [`backoff_max`](Self::backoff_max). A connection resets it.
    pub backoff_min: Duration,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
    /// How long DriverEntry waits for the WSK subsystem (`WskCaptureProviderNPI`).
    pub register_timeout: Duration,
    /// After the server's FIN, how long the client's own graceful disconnect may take before it
    /// becomes abortive.
    pub disconnect_timeout: Duration,
}

impl Config {
    /// The defaults: `localhost:40007`, a report every second, backoff from 100 ms doubling to 30 s,
    /// 5 s to wait for WSK, 1 s for a disconnect.
    pub const DEFAULT: Config = Config {
        host: "localhost",
        port: DEFAULT_PORT,
        interval: Duration::from_secs(1),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_secs(30),
        register_timeout: Duration::from_secs(5),
        disconnect_timeout: Duration::from_secs(1),
    };

    /// Whether the values are usable: a host name of 1..=[`MAX_HOST_LEN`] bytes, a non-zero port, a
    /// non-zero interval, `0 < backoff_min <= backoff_max`, a non-zero disconnect timeout.
    pub fn is_valid(&self) -> bool {
        (1..=MAX_HOST_LEN).contains(&self.host.len())
            && self.port != 0
            && !self.interval.is_zero()
            && !self.backoff_min.is_zero()
            && self.backoff_min <= self.backoff_max
            && !self.disconnect_timeout.is_zero()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

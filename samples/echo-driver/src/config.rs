//! The driver's settings. The kernel build uses [`Config::default`] (DriverEntry does not read the
//! registry); the host program and the tests pass their own.

use core::time::Duration;

/// The most connections the driver can serve at once: the size of the static task pool. The
/// run-time limit ([`Config::connection_limit`]) may be lower, never higher.
pub const MAX_CONNECTIONS: usize = 1024;

/// The port Microsoft's WSK echo sample (echosrv) listens on.
pub const DEFAULT_PORT: u16 = 40007;

/// Buffers per connection: one is received into while the other is being sent (the pipelined echo,
/// as in Microsoft's echosrv). All of them, [`Config::connection_limit`] times this, are allocated
/// at DriverEntry.
pub const BUFFERS_PER_CONNECTION: usize = 2;

/// How long a connection admitted under the limit waits for its buffers when every buffer is still
/// lent to operations that ended connections' idle timeouts cancelled. Windows completes a cancelled
/// IRP promptly, so the wait is short; the bound is for a provider that breaks that contract, and
/// the connection is then reset and counted as refused. The accept loop does not accept meanwhile
/// (new connections wait in the listener's backlog).
pub const BUFFER_RETURN_BOUND: Duration = Duration::from_secs(1);

/// The echo server's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The TCP port, on every IPv6 and IPv4 address (`[::]`, dual stack). 0 picks a free port; read
    /// it back with [`local_addr`](crate::local_addr).
    pub port: u16,
    /// Connections served at once, 1..=[`MAX_CONNECTIONS`]. One more is accepted and reset at once
    /// (never queued), and counted as refused. A connection admitted under the limit always gets its
    /// buffers: when one it is owed is still lent to an operation that an idle timeout cancelled
    /// (its IRP not yet completed by the kernel), it waits for it, at most
    /// [`BUFFER_RETURN_BOUND`](crate::BUFFER_RETURN_BOUND).
    pub connection_limit: usize,
    /// A connection with no completed receive or send for this long is aborted (RST).
    pub idle_timeout: Duration,
    /// After the peer's FIN, how long the graceful disconnect may take before it becomes abortive
    /// (a peer that does not read its echo would otherwise hold it forever).
    pub disconnect_timeout: Duration,
    /// Bytes per buffer ([`BUFFERS_PER_CONNECTION`] buffers per connection, all allocated at
    /// DriverEntry).
    pub buffer_size: usize,
    /// How long DriverEntry waits for the WSK subsystem (`WskCaptureProviderNPI`).
    pub register_timeout: Duration,
}

impl Config {
    /// The defaults: port 40007, 1024 connections, 60 s idle timeout, 5 s disconnect timeout,
    /// two 2 KiB buffers per connection, as echosrv (4 MiB of nonpaged pool at the full limit), 5 s
    /// to wait for WSK.
    pub const DEFAULT: Config = Config {
        port: DEFAULT_PORT,
        connection_limit: MAX_CONNECTIONS,
        idle_timeout: Duration::from_secs(60),
        disconnect_timeout: Duration::from_secs(5),
        buffer_size: 2048,
        register_timeout: Duration::from_secs(5),
    };

    /// Whether the values are usable: a limit in 1..=[`MAX_CONNECTIONS`], a buffer of 1 byte to
    /// 1 MiB, non-zero timeouts.
    pub fn is_valid(&self) -> bool {
        (1..=MAX_CONNECTIONS).contains(&self.connection_limit)
            && (1..=1 << 20).contains(&self.buffer_size)
            && !self.idle_timeout.is_zero()
            && !self.disconnect_timeout.is_zero()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

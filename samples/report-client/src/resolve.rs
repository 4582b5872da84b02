//! The server's addresses from its configured name: the one place the client resolves names.

use core::net::{IpAddr, SocketAddr};
use nt::STATUS_INVALID_PARAMETER;
use wsk_async::{Registration, WskError};

/// The most addresses kept from one resolution (a name with more is tried on its first ones).
pub(crate) const MAX_ADDRS: usize = 4;

/// The addresses of the server, copied out of the resolver's answer, in the resolver's order: the
/// client tries each in turn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerAddrs {
    addrs: [Option<SocketAddr>; MAX_ADDRS],
}

impl ServerAddrs {
    fn new() -> Self {
        Self {
            addrs: [None; MAX_ADDRS],
        }
    }

    /// Appends `addr` if there is room; false when full.
    fn push(&mut self, addr: SocketAddr) -> bool {
        match self.addrs.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => {
                *slot = Some(addr);
                true
            }
            None => false,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.addrs.iter().map_while(|addr| *addr)
    }
}

/// Resolves `host` to the addresses of `host:port`.
///
/// TEMPORARY: numeric names only (`127.0.0.1`, `::1`), parsed here with `core::net`, until
/// wsk-async's `Registration::resolve` (`WskGetAddressInfo`) is available; this function then calls
/// it and copies its addresses, and the default host becomes `localhost`. `registration` is unused
/// until then. Any other name fails with `STATUS_INVALID_PARAMETER`, a failure like any other: the
/// client backs off and tries again.
pub(crate) async fn resolve_server(
    registration: &Registration,
    host: &str,
    port: u16,
) -> wsk_async::Result<ServerAddrs> {
    let _ = registration;
    let ip: IpAddr = host
        .parse()
        .map_err(|_| WskError::from_status(STATUS_INVALID_PARAMETER))?;
    let mut addrs = ServerAddrs::new();
    addrs.push(SocketAddr::new(ip, port));
    Ok(addrs)
}

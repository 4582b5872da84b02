//! The server's addresses from its configured name: the one place the client resolves names.

use wsk_async::{Registration, ResolvedAddrs};

/// Resolves `host` (a name, or a numeric IPv4/IPv6 address) to the addresses of `host:port`, in the
/// resolver's order (`WskGetAddressInfo`): the client tries each in turn, so a server that listens
/// on only one of the addresses of `localhost` (`::1`, `127.0.0.1`) is still reached. A name that
/// does not resolve is a failure like any other: the client backs off and tries again.
///
/// Dropping the future while the resolution is pending (an unload) cancels its IRP; a list the
/// provider returns anyway is freed by the registration.
pub(crate) async fn resolve_server(
    registration: &Registration,
    host: &str,
    port: u16,
) -> wsk_async::Result<ResolvedAddrs> {
    registration.resolve(host, port).await
}

//! Conversions between the WSK socket addresses (`SOCKADDR_IN`, `SOCKADDR_IN6`, with Windows'
//! `AF_INET6 = 23`) and `std::net::SocketAddr`.

use crate::types::*;
use crate::wsk::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Reads the address `sa` points to.
///
/// # Safety
/// `sa` is NULL or points to a `SOCKADDR_IN` / `SOCKADDR_IN6` as its family says.
pub(crate) unsafe fn read(sa: PSOCKADDR) -> Result<SocketAddr, NTSTATUS> {
    if sa.is_null() {
        return Err(STATUS_INVALID_PARAMETER);
    }
    // SAFETY: forwarded from the caller's contract; read unaligned since the client's storage may be
    // a byte array.
    unsafe {
        match (*sa).sa_family {
            AF_INET => {
                let v4 = (sa as *const SOCKADDR_IN).read_unaligned();
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(v4.sin_addr.s_addr),
                    v4.port(),
                )))
            }
            AF_INET6 => {
                let v6 = (sa as *const SOCKADDR_IN6).read_unaligned();
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(v6.sin6_addr.s6_addr),
                    v6.port(),
                    u32::from_be(v6.sin6_flowinfo),
                    v6.sin6_scope_id,
                )))
            }
            _ => Err(STATUS_INVALID_ADDRESS),
        }
    }
}

/// Writes `addr` to `sa` in the WSK layout of its family (IPv4-mapped IPv6 addresses stay IPv6, as
/// on a Windows dual-stack socket).
///
/// # Safety
/// `sa` is NULL (nothing is written) or valid for a write of the family's structure.
pub(crate) unsafe fn write(sa: PSOCKADDR, addr: SocketAddr) {
    if sa.is_null() {
        return;
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        match addr {
            SocketAddr::V4(v4) => {
                (sa as *mut SOCKADDR_IN).write_unaligned(SOCKADDR_IN::new(v4.ip().octets(), v4.port()))
            }
            SocketAddr::V6(v6) => {
                let mut out = SOCKADDR_IN6::new(v6.ip().octets(), v6.port());
                out.sin6_flowinfo = v6.flowinfo().to_be();
                out.sin6_scope_id = v6.scope_id();
                (sa as *mut SOCKADDR_IN6).write_unaligned(out)
            }
        }
    }
}

/// The WSK family of `addr`.
pub(crate) fn family(addr: &SocketAddr) -> ADDRESS_FAMILY {
    if addr.is_ipv4() { AF_INET } else { AF_INET6 }
}

//! Conversions between `core::net::SocketAddr` and the WSK socket address structures.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use core::ptr;
use nt::*;

/// Writes `addr` as a `SOCKADDR_IN` or `SOCKADDR_IN6` into `storage`.
pub(crate) fn to_storage(addr: &SocketAddr) -> SOCKADDR_STORAGE {
    let mut storage = SOCKADDR_STORAGE::default();
    let p = ptr::addr_of_mut!(storage).cast::<u8>();
    match addr {
        SocketAddr::V4(v4) => {
            let sin = SOCKADDR_IN::new(v4.ip().octets(), v4.port());
            // SAFETY: SOCKADDR_STORAGE (128 bytes, 8-aligned) has room and alignment for SOCKADDR_IN.
            unsafe { p.cast::<SOCKADDR_IN>().write(sin) };
        }
        SocketAddr::V6(v6) => {
            let mut sin6 = SOCKADDR_IN6::new(v6.ip().octets(), v6.port());
            sin6.sin6_flowinfo = v6.flowinfo().to_be();
            sin6.sin6_scope_id = v6.scope_id();
            // SAFETY: as above, for SOCKADDR_IN6 (28 bytes).
            unsafe { p.cast::<SOCKADDR_IN6>().write(sin6) };
        }
    }
    storage
}

/// Reads a `SOCKADDR_IN` / `SOCKADDR_IN6` written by WSK; `None` for another family.
pub(crate) fn from_storage(storage: &SOCKADDR_STORAGE) -> Option<SocketAddr> {
    let p = ptr::from_ref(storage).cast::<u8>();
    match storage.ss_family {
        AF_INET => {
            // SAFETY: the family says the storage holds a SOCKADDR_IN; the storage is large enough
            // and aligned.
            let sin = unsafe { p.cast::<SOCKADDR_IN>().read() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr),
                sin.port(),
            )))
        }
        AF_INET6 => {
            // SAFETY: as above, for SOCKADDR_IN6.
            let sin6 = unsafe { p.cast::<SOCKADDR_IN6>().read() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                sin6.port(),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The wildcard address of `addr`'s family, port 0 (the local address of an outgoing connection).
pub(crate) fn wildcard_like(addr: &SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0)),
    }
}

/// The WSK address family of `addr`.
pub(crate) fn family(addr: &SocketAddr) -> ADDRESS_FAMILY {
    match addr {
        SocketAddr::V4(_) => AF_INET,
        SocketAddr::V6(_) => AF_INET6,
    }
}

//! Socket addresses as WSK passes them (`ws2def.h`, `ws2ipdef.h`): ports and IPv4 addresses in
//! network byte order, `sin6_scope_id` in host order.

use super::constants::{ADDRESS_FAMILY, AF_INET, AF_INET6};
use crate::types::{ULONG, USHORT};

/// `SOCKADDR`: the generic header every `PSOCKADDR` parameter points to (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SOCKADDR {
    /// The address family, `AF_*`.
    pub sa_family: ADDRESS_FAMILY,
    /// The family-specific address.
    pub sa_data: [u8; 14],
}
/// Pointer to [`SOCKADDR`].
pub type PSOCKADDR = *mut SOCKADDR;

/// `IN_ADDR` (4 bytes, network byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IN_ADDR {
    /// The address bytes, most significant first.
    pub s_addr: [u8; 4],
}

/// `IN6_ADDR` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IN6_ADDR {
    /// The address bytes, most significant first.
    pub s6_addr: [u8; 16],
}

/// `SOCKADDR_IN` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SOCKADDR_IN {
    /// [`AF_INET`].
    pub sin_family: ADDRESS_FAMILY,
    /// Network byte order.
    pub sin_port: USHORT,
    /// The IPv4 address.
    pub sin_addr: IN_ADDR,
    /// Zero.
    pub sin_zero: [u8; 8],
}

/// `SOCKADDR_IN6` (28 bytes). `sin6_scope_id` is the `ULONG` view of the `SCOPE_ID` union.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SOCKADDR_IN6 {
    /// [`AF_INET6`].
    pub sin6_family: ADDRESS_FAMILY,
    /// Network byte order.
    pub sin6_port: USHORT,
    /// Network byte order.
    pub sin6_flowinfo: ULONG,
    /// The IPv6 address.
    pub sin6_addr: IN6_ADDR,
    /// The scope (interface) of a link-local address, or 0.
    pub sin6_scope_id: ULONG,
}

/// `SOCKADDR_STORAGE` (128 bytes, 8-aligned): room for any address a WSK call writes back.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SOCKADDR_STORAGE {
    /// The address family, `AF_*`.
    pub ss_family: ADDRESS_FAMILY,
    /// The family-specific address and padding.
    pub __ss_pad: [u8; 126],
}

impl Default for SOCKADDR_STORAGE {
    fn default() -> Self {
        Self {
            ss_family: 0,
            __ss_pad: [0; 126],
        }
    }
}

impl SOCKADDR_IN {
    /// An IPv4 address and a port, both given in host order.
    pub const fn new(addr: [u8; 4], port: u16) -> Self {
        Self {
            sin_family: AF_INET,
            sin_port: port.to_be(),
            sin_addr: IN_ADDR { s_addr: addr },
            sin_zero: [0; 8],
        }
    }

    /// The port in host order.
    pub const fn port(&self) -> u16 {
        u16::from_be(self.sin_port)
    }
}

impl SOCKADDR_IN6 {
    /// An IPv6 address and a port (host order); flow info and scope zero.
    pub const fn new(addr: [u8; 16], port: u16) -> Self {
        Self {
            sin6_family: AF_INET6,
            sin6_port: port.to_be(),
            sin6_flowinfo: 0,
            sin6_addr: IN6_ADDR { s6_addr: addr },
            sin6_scope_id: 0,
        }
    }

    /// `in6addr_any` (`::`), the wildcard a dual-stack listener binds to.
    pub const fn any(port: u16) -> Self {
        Self::new([0; 16], port)
    }

    /// The port in host order.
    pub const fn port(&self) -> u16 {
        u16::from_be(self.sin6_port)
    }
}

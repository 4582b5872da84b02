//! `ADDRINFOEXW` (`ws2def.h`): one entry of the list `WskGetAddressInfo` returns and
//! `WskFreeAddressInfo` frees, and the hints a caller passes to it.

use super::sockaddr::PSOCKADDR;
use crate::types::SIZE_T;
use core::ffi::c_void;

/// `NS_ALL`: every namespace provider (`WskGetAddressInfo`'s `NameSpace`).
pub const NS_ALL: u32 = 0;

/// `ADDRINFOEXW` (72 bytes on x64; pinned in `layout.rs`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ADDRINFOEXW {
    /// `AI_*` flags.
    pub ai_flags: i32,
    /// `AF_*` (`AF_UNSPEC` in hints: any family).
    pub ai_family: i32,
    /// `SOCK_*`.
    pub ai_socktype: i32,
    /// `IPPROTO_*`.
    pub ai_protocol: i32,
    /// Bytes at `ai_addr`.
    pub ai_addrlen: SIZE_T,
    /// The canonical name, if asked for (`AI_CANONNAME`).
    pub ai_canonname: *mut u16,
    /// The address (`SOCKADDR_IN` / `SOCKADDR_IN6`).
    pub ai_addr: PSOCKADDR,
    /// Provider-specific data.
    pub ai_blob: *mut c_void,
    /// Bytes at `ai_blob`.
    pub ai_bloblen: SIZE_T,
    /// The namespace provider (`GUID*`).
    pub ai_provider: *mut c_void,
    /// The next entry, or null.
    pub ai_next: *mut ADDRINFOEXW,
}

/// Pointer to [`ADDRINFOEXW`].
pub type PADDRINFOEXW = *mut ADDRINFOEXW;

impl ADDRINFOEXW {
    /// All zero: no flags, any family, type and protocol, no pointers.
    pub const fn zeroed() -> Self {
        Self {
            ai_flags: 0,
            ai_family: 0,
            ai_socktype: 0,
            ai_protocol: 0,
            ai_addrlen: 0,
            ai_canonname: core::ptr::null_mut(),
            ai_addr: core::ptr::null_mut(),
            ai_blob: core::ptr::null_mut(),
            ai_bloblen: 0,
            ai_provider: core::ptr::null_mut(),
            ai_next: core::ptr::null_mut(),
        }
    }
}

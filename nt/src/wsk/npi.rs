//! Registration and the network programming interfaces (NPIs) exchanged with the WSK subsystem:
//! the client's (`WSK_CLIENT_NPI`) and the provider's (`WSK_PROVIDER_NPI`, `WSK_PROVIDER_DISPATCH`).

use super::dispatch::*;
use crate::types::*;

/// `PFN_WSK_CLIENT_EVENT`: a client-level event (none is defined yet; clients pass NULL).
pub type PFN_WSK_CLIENT_EVENT = Option<
    unsafe extern "system" fn(
        ClientContext: PVOID,
        EventType: ULONG,
        Information: PVOID,
        InformationLength: SIZE_T,
    ) -> NTSTATUS,
>;

/// `WSK_CLIENT_DISPATCH`: the version the client wants (`MAKE_WSK_VERSION(1, 0)`) and its client-level
/// event callback.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_CLIENT_DISPATCH {
    /// The WSK version, [`MAKE_WSK_VERSION`](crate::MAKE_WSK_VERSION).
    pub Version: USHORT,
    /// Reserved: 0.
    pub Reserved: USHORT,
    /// The client-level event callback, or `None`.
    pub WskClientEvent: PFN_WSK_CLIENT_EVENT,
}

/// `WSK_CLIENT_NPI`: passed to `WskRegister`. `Dispatch` must stay valid until `WskDeregister`
/// returns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_CLIENT_NPI {
    /// The client's context, passed to `WskClientEvent`.
    pub ClientContext: PVOID,
    /// The client's dispatch table.
    pub Dispatch: *const WSK_CLIENT_DISPATCH,
}
/// Pointer to [`WSK_CLIENT_NPI`].
pub type PWSK_CLIENT_NPI = *mut WSK_CLIENT_NPI;

/// `WSK_REGISTRATION`: opaque client-allocated storage that `WskRegister` initialises and every other
/// registration call identifies the client by. Nonpaged, alive until `WskDeregister` returns.
#[repr(C)]
#[derive(Debug)]
pub struct WSK_REGISTRATION {
    /// Owned by WSK.
    pub ReservedRegistrationState: ULONG64,
    /// Owned by WSK.
    pub ReservedRegistrationContext: PVOID,
    /// `KSPIN_LOCK`.
    pub ReservedRegistrationLock: ULONG_PTR,
}
/// Pointer to [`WSK_REGISTRATION`].
pub type PWSK_REGISTRATION = *mut WSK_REGISTRATION;

impl WSK_REGISTRATION {
    /// Zeroed storage, as a driver declares it (`static WSK_REGISTRATION Registration;`).
    pub const fn zeroed() -> Self {
        Self {
            ReservedRegistrationState: 0,
            ReservedRegistrationContext: core::ptr::null_mut(),
            ReservedRegistrationLock: 0,
        }
    }
}

/// `WSK_PROVIDER_DISPATCH`: the provider's client-level functions.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_PROVIDER_DISPATCH {
    /// The WSK version, [`MAKE_WSK_VERSION`](crate::MAKE_WSK_VERSION).
    pub Version: USHORT,
    /// Reserved: 0.
    pub Reserved: USHORT,
    /// `WskSocket` ([`PFN_WSK_SOCKET`]).
    pub WskSocket: PFN_WSK_SOCKET,
    /// `WskSocketConnect` ([`PFN_WSK_SOCKET_CONNECT`]).
    pub WskSocketConnect: PFN_WSK_SOCKET_CONNECT,
    /// `WskControlClient` ([`PFN_WSK_CONTROL_CLIENT`]).
    pub WskControlClient: PFN_WSK_CONTROL_CLIENT,
    /// `WskGetAddressInfo` ([`PFN_WSK_GET_ADDRESS_INFO`]).
    pub WskGetAddressInfo: PFN_WSK_GET_ADDRESS_INFO,
    /// `WskFreeAddressInfo` ([`PFN_WSK_FREE_ADDRESS_INFO`]).
    pub WskFreeAddressInfo: PFN_WSK_FREE_ADDRESS_INFO,
    /// `WskGetNameInfo` ([`PFN_WSK_GET_NAME_INFO`]).
    pub WskGetNameInfo: PFN_WSK_GET_NAME_INFO,
}

/// `WSK_PROVIDER_NPI`: filled in by `WskCaptureProviderNPI`. `Client` is passed back to
/// `WskSocket` / `WskSocketConnect` / `WskControlClient`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_PROVIDER_NPI {
    /// The client handle to pass to the client-level functions.
    pub Client: PWSK_CLIENT,
    /// The provider's client-level functions.
    pub Dispatch: *const WSK_PROVIDER_DISPATCH,
}
/// Pointer to [`WSK_PROVIDER_NPI`].
pub type PWSK_PROVIDER_NPI = *mut WSK_PROVIDER_NPI;

impl WSK_PROVIDER_NPI {
    /// Empty storage for `WskCaptureProviderNPI` to fill in.
    pub const fn zeroed() -> Self {
        Self {
            Client: core::ptr::null_mut(),
            Dispatch: core::ptr::null(),
        }
    }
}

/// `WSK_PROVIDER_CHARACTERISTICS` (`WskQueryProviderCharacteristics`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct WSK_PROVIDER_CHARACTERISTICS {
    /// The highest WSK version the provider supports.
    pub HighestVersion: USHORT,
    /// The lowest WSK version the provider supports.
    pub LowestVersion: USHORT,
}

//! `raw-dylib` imports from netio.sys: the four WSK registration functions (`wsk.h`). Every other
//! WSK function is reached through the dispatch tables these hand out. `+verbatim` keeps the module
//! name as written (NETIO.SYS, not NETIO.SYS.dll).

use crate::types::*;
use crate::wsk::*;

#[link(name = "netio.sys", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    /// Registers a WSK client. `WskRegistration` must stay valid (nonpaged) until `WskDeregister`
    /// returns. IRQL = PASSIVE_LEVEL.
    pub fn WskRegister(WskClientNpi: PWSK_CLIENT_NPI, WskRegistration: PWSK_REGISTRATION) -> NTSTATUS;
    /// Captures the provider NPI, waiting up to `WaitTimeout` ms (`WSK_NO_WAIT`, `WSK_INFINITE_WAIT`).
    /// IRQL = PASSIVE_LEVEL unless `WaitTimeout == WSK_NO_WAIT` (then <= DISPATCH_LEVEL).
    pub fn WskCaptureProviderNPI(
        WskRegistration: PWSK_REGISTRATION,
        WaitTimeout: ULONG,
        WskProviderNpi: PWSK_PROVIDER_NPI,
    ) -> NTSTATUS;
    /// Releases one successful capture. IRQL <= DISPATCH_LEVEL.
    pub fn WskReleaseProviderNPI(WskRegistration: PWSK_REGISTRATION);
    /// Deregisters; blocks until every socket is closed and every captured NPI released.
    /// IRQL = PASSIVE_LEVEL.
    pub fn WskDeregister(WskRegistration: PWSK_REGISTRATION);
}

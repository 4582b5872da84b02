//! `WskRegister`, `WskCaptureProviderNPI`, `WskReleaseProviderNPI`, `WskDeregister`: the four netio.sys
//! exports, and the registration they manage.
//!
//! Emulated behaviours (WSK documentation):
//! * the client's `WSK_CLIENT_DISPATCH::Version` must have major version 1, else capture fails with
//!   STATUS_NOINTERFACE;
//! * capture waits up to `WaitTimeout` ms for the provider NPI (`WSK_NO_WAIT`: not at all,
//!   `WSK_INFINITE_WAIT`: forever) and fails with STATUS_DEVICE_NOT_READY if it is not available, or
//!   once `WskDeregister` was called (a test makes the provider unavailable with
//!   [`set_provider_ready`](super::control::set_provider_ready));
//! * `WskDeregister` blocks until every socket is closed and every capture released. The host bounds
//!   the wait ([`set_deregister_timeout`](super::control::set_deregister_timeout)): what is still
//!   open then is reported (a violation naming each socket and its pending IRPs) and force-closed.

use super::socket::{self, SocketCore};
use super::transport::{OpKind, Policy, Transport};
use crate::emu::{Rule, violation};
use crate::types::*;
use crate::wsk::*;
use std::backtrace::Backtrace;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Counts {
    captures: usize,
    sockets: usize,
    deregistering: bool,
}

/// One `WskRegister` of a client.
pub(crate) struct Registration {
    /// Address of the client's `WSK_REGISTRATION`.
    storage: usize,
    version: USHORT,
    transport: Mutex<Option<Arc<dyn Transport>>>,
    counts: Mutex<Counts>,
    changed: Condvar,
    created_at: Option<Backtrace>,
}

impl fmt::Display for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WSK registration {:#x} (client version {:#06x})",
            self.storage, self.version
        )
    }
}

impl Registration {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn transport(&self) -> Option<Arc<dyn Transport>> {
        self.transport.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn policy(&self, kind: OpKind, owner: &Weak<SocketCore>) -> Policy {
        self.transport()
            .map_or(Policy::Fail(STATUS_DEVICE_NOT_READY), |t| t.policy(kind, owner))
    }

    pub(crate) fn take_unfinished(&self, kind: OpKind) -> Option<NTSTATUS> {
        self.transport().and_then(|t| t.take_unfinished(kind))
    }

    pub(crate) fn socket_opened(&self) {
        self.counts().sockets += 1;
    }

    pub(crate) fn socket_closed(&self) {
        let mut counts = self.counts();
        counts.sockets = counts.sockets.saturating_sub(1);
        self.changed.notify_all();
    }

    pub(crate) fn is_deregistering(&self) -> bool {
        self.counts().deregistering
    }
}

static REGISTRATIONS: Mutex<Vec<Arc<Registration>>> = Mutex::new(Vec::new());

fn registrations() -> MutexGuard<'static, Vec<Arc<Registration>>> {
    REGISTRATIONS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The registration whose client handle (`WSK_PROVIDER_NPI::Client`) is `client`.
pub(crate) fn by_client(client: PWSK_CLIENT) -> Option<Arc<Registration>> {
    registrations()
        .iter()
        .find(|r| Arc::as_ptr(r) as PWSK_CLIENT == client)
        .cloned()
}

fn by_storage(storage: PWSK_REGISTRATION, function: &str) -> Option<Arc<Registration>> {
    let found = registrations().iter().find(|r| r.storage == storage.addr()).cloned();
    if found.is_none() {
        violation(
            Rule::Other("WSK registration function called with storage WskRegister did not initialise"),
            &format_args!("{function}({storage:p})"),
            None,
        );
    }
    found
}

/// Whether the provider NPI is available, and the condition capture waits on.
static READY: Mutex<bool> = Mutex::new(true);
static READY_CHANGED: Condvar = Condvar::new();
/// Invented: the 10 s bound (Windows waits forever); what is still open then is reported.
pub(crate) const DEFAULT_DEREGISTER_TIMEOUT: Duration = Duration::from_secs(10);
static DEREGISTER_TIMEOUT: Mutex<Duration> = Mutex::new(DEFAULT_DEREGISTER_TIMEOUT);

pub(crate) fn set_ready(ready: bool) {
    *READY.lock().unwrap_or_else(PoisonError::into_inner) = ready;
    READY_CHANGED.notify_all();
}

pub(crate) fn set_deregister_timeout(bound: Duration) {
    *DEREGISTER_TIMEOUT.lock().unwrap_or_else(PoisonError::into_inner) = bound;
}

const TRACK_KIND: &str = "WSK registration";

/// Drops every registration (session reset after a test that did not deregister).
pub(crate) fn forget_all() {
    let all = std::mem::take(&mut *registrations());
    for registration in &all {
        registration
            .transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

static PROVIDER_DISPATCH: WSK_PROVIDER_DISPATCH = WSK_PROVIDER_DISPATCH {
    Version: WSK_FIRST_VERSION,
    Reserved: 0,
    WskSocket: Some(super::client::WskSocket),
    WskSocketConnect: Some(super::client::WskSocketConnect),
    WskControlClient: Some(super::client::WskControlClient),
    WskGetAddressInfo: Some(super::client::WskGetAddressInfo),
    WskFreeAddressInfo: Some(super::client::WskFreeAddressInfo),
    WskGetNameInfo: Some(super::client::WskGetNameInfo),
};

/// `WskRegister`. IRQL = PASSIVE_LEVEL.
///
/// # Safety
/// `WskClientNpi` points to a valid `WSK_CLIENT_NPI` whose dispatch table outlives the registration;
/// `WskRegistration` points to storage that stays valid until `WskDeregister` returns.
pub unsafe extern "system" fn WskRegister(
    WskClientNpi: PWSK_CLIENT_NPI,
    WskRegistration: PWSK_REGISTRATION,
) -> NTSTATUS {
    if !crate::emu::irql::require_max("WskRegister", PASSIVE_LEVEL) {
        return STATUS_INVALID_DEVICE_STATE;
    }
    if WskClientNpi.is_null() || WskRegistration.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: non-NULL and valid per the caller's contract.
    let dispatch = unsafe { (*WskClientNpi).Dispatch };
    if dispatch.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    if registrations().iter().any(|r| r.storage == WskRegistration.addr()) {
        violation(
            Rule::Other("WskRegister on a WSK_REGISTRATION that is already registered"),
            &format_args!("WSK_REGISTRATION {WskRegistration:p}"),
            None,
        );
        return STATUS_INVALID_PARAMETER;
    }
    let transport: Arc<dyn Transport> = match super::memory::installed() {
        Some(memory) => memory,
        None => Arc::new(super::tcp::TcpTransport::default()),
    };
    let registration = Arc::new(Registration {
        storage: WskRegistration.addr(),
        // SAFETY: `dispatch` is non-NULL and valid per the caller's contract.
        version: unsafe { (*dispatch).Version },
        transport: Mutex::new(Some(transport)),
        counts: Mutex::new(Counts::default()),
        changed: Condvar::new(),
        created_at: crate::emu::creation_site(),
    });
    crate::emu::tracking::track(TRACK_KIND, WskRegistration.addr(), registration.to_string());
    // SAFETY: the storage is the client's and ours to initialise.
    unsafe {
        (*WskRegistration).ReservedRegistrationState = 1;
        (*WskRegistration).ReservedRegistrationContext = Arc::as_ptr(&registration) as PVOID;
        (*WskRegistration).ReservedRegistrationLock = 0;
    }
    registrations().push(registration);
    STATUS_SUCCESS
}

/// `WskCaptureProviderNPI`. IRQL = PASSIVE_LEVEL, or <= DISPATCH_LEVEL with `WSK_NO_WAIT`.
///
/// # Safety
/// `WskRegistration` was initialised by `WskRegister`; `WskProviderNpi` is valid for a write.
pub unsafe extern "system" fn WskCaptureProviderNPI(
    WskRegistration: PWSK_REGISTRATION,
    WaitTimeout: ULONG,
    WskProviderNpi: PWSK_PROVIDER_NPI,
) -> NTSTATUS {
    let max = if WaitTimeout == WSK_NO_WAIT {
        DISPATCH_LEVEL
    } else {
        PASSIVE_LEVEL
    };
    if !crate::emu::irql::require_max("WskCaptureProviderNPI", max) {
        return STATUS_INVALID_DEVICE_STATE;
    }
    let Some(registration) = by_storage(WskRegistration, "WskCaptureProviderNPI") else {
        return STATUS_INVALID_PARAMETER;
    };
    if WSK_MAJOR_VERSION(registration.version) != 1 {
        return STATUS_NOINTERFACE;
    }
    let deadline = match WaitTimeout {
        WSK_INFINITE_WAIT => None,
        ms => Some(Instant::now() + Duration::from_millis(ms.into())),
    };
    let mut ready = READY.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if registration.is_deregistering() {
            return STATUS_DEVICE_NOT_READY;
        }
        if *ready {
            break;
        }
        let wait = match deadline {
            None => Duration::from_millis(50),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return STATUS_DEVICE_NOT_READY;
                }
                (deadline - now).min(Duration::from_millis(50))
            }
        };
        // Woken when readiness changes; the short slices re-check deregistration.
        ready = READY_CHANGED
            .wait_timeout(ready, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    drop(ready);
    registration.counts().captures += 1;
    // SAFETY: valid for a write per the caller's contract.
    unsafe {
        WskProviderNpi.write(WSK_PROVIDER_NPI {
            Client: Arc::as_ptr(&registration) as PWSK_CLIENT,
            Dispatch: &PROVIDER_DISPATCH,
        })
    };
    STATUS_SUCCESS
}

/// `WskReleaseProviderNPI`: one per successful capture. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `WskRegistration` was initialised by `WskRegister`.
pub unsafe extern "system" fn WskReleaseProviderNPI(WskRegistration: PWSK_REGISTRATION) {
    if !crate::emu::irql::require_max("WskReleaseProviderNPI", DISPATCH_LEVEL) {
        return;
    }
    let Some(registration) = by_storage(WskRegistration, "WskReleaseProviderNPI") else {
        return;
    };
    let mut counts = registration.counts();
    if counts.captures == 0 {
        drop(counts);
        violation(
            Rule::Other("WskReleaseProviderNPI without a matching successful WskCaptureProviderNPI"),
            &*registration,
            registration.created_at.as_ref(),
        );
        return;
    }
    counts.captures -= 1;
    registration.changed.notify_all();
}

/// `WskDeregister`. IRQL = PASSIVE_LEVEL. Waits (bounded on the host) for every socket to be closed
/// and every capture released, then stops the transport (the TCP event-loop thread ends here).
///
/// # Safety
/// `WskRegistration` was initialised by `WskRegister`.
pub unsafe extern "system" fn WskDeregister(WskRegistration: PWSK_REGISTRATION) {
    if !crate::emu::irql::require_max("WskDeregister", PASSIVE_LEVEL) {
        return;
    }
    let Some(registration) = by_storage(WskRegistration, "WskDeregister") else {
        return;
    };
    let bound = *DEREGISTER_TIMEOUT.lock().unwrap_or_else(PoisonError::into_inner);
    // Completions the schedule deferred are the provider's to deliver before it waits for sockets.
    super::later::deliver_before_wait();
    let captures = {
        let mut counts = registration.counts();
        counts.deregistering = true;
        READY_CHANGED.notify_all();
        let (counts, _) = registration
            .changed
            .wait_timeout_while(counts, bound, |c| c.sockets > 0 || c.captures > 0)
            .unwrap_or_else(PoisonError::into_inner);
        counts.captures
    };
    for core in socket::purge(&registration) {
        force_close(&core);
    }
    if captures > 0 {
        violation(
            Rule::Other("provider NPI still captured at WskDeregister (WskReleaseProviderNPI missing)"),
            &format_args!("{registration}: {captures} capture(s) not released"),
            registration.created_at.as_ref(),
        );
    }
    registrations().retain(|r| !Arc::ptr_eq(r, &registration));
    crate::emu::tracking::untrack(TRACK_KIND, WskRegistration.addr());
    // Dropping the transport stops the TCP event loop if no other registration uses it.
    let transport = registration
        .transport
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    drop(transport);
    // SAFETY: the storage is the client's; WskRegister initialised it and it is valid until we return.
    unsafe {
        (*WskRegistration).ReservedRegistrationState = 0;
        (*WskRegistration).ReservedRegistrationContext = core::ptr::null_mut();
    }
}

/// A socket still open at `WskDeregister`: reported, then closed abortively with its pending IRPs
/// cancelled, so that nothing outlives the registration.
fn force_close(core: &Arc<SocketCore>) {
    let mut out = super::irp::Completions::new();
    let pending = {
        let mut st = core.lock();
        let pending = socket::describe_pending(&st);
        st.flush(STATUS_CANCELLED, &mut out);
        if let Some(mut wire) = st.wire.take() {
            wire.abort();
        }
        if let Some(mut listener) = st.listener.take() {
            listener.close();
        }
        st.connector = None;
        st.closed = true;
        pending
    };
    violation(
        Rule::Other("WSK socket still open at WskDeregister (WskCloseSocket missing)"),
        &format_args!("{core} with {pending}"),
        core.created_at.as_ref(),
    );
    crate::emu::tracking::untrack("WSK socket", core.header);
    super::irp::complete_all(out);
    // What the schedule deferred (the cancelled IRPs among them) completes before WskDeregister
    // returns: nothing may outlive the registration.
    super::later::deliver();
}

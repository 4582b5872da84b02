//! The socket options `WskControlSocket` sets and reads: which ones exist, on which sockets, in which
//! state, and how each reaches the transport.
//!
//! | option | level | sockets | when it may be set |
//! |---|---|---|---|
//! | `IPV6_V6ONLY` | `IPPROTO_IPV6` | AF_INET6 | before `WskBind` |
//! | `SO_EXCLUSIVEADDRUSE` | `SOL_SOCKET` | listening, stream | before `WskBind` (documented) |
//! | `SO_KEEPALIVE` | `SOL_SOCKET` | connection-oriented, stream | once connected |
//! | `TCP_NODELAY` | `IPPROTO_TCP` | connection-oriented, stream | once connected |
//!
//! Every value is a ULONG (nonzero = on), as Microsoft documents for `SO_EXCLUSIVEADDRUSE` and
//! `SO_KEEPALIVE`. A read (`WskGetOption`) returns what the client set (all off by default: Windows
//! documents that keep-alive is off, and an AF_INET6 socket's `IPV6_V6ONLY` reads back as set only
//! once the client set it here). Every other option or IOCTL is STATUS_NOT_SUPPORTED.
//!
//! Invented (each the harsher side):
//! * `TCP_NODELAY`: WSK documents no page for it; it is taken as Winsock's (`IPPROTO_TCP`, 1, a
//!   ULONG);
//! * `SO_KEEPALIVE` and `TCP_NODELAY` only on a connected socket: before the connection exists (or
//!   once it failed) STATUS_INVALID_DEVICE_STATE (Windows documents neither; a Winsock socket takes
//!   them at any time);
//! * `SO_KEEPALIVE` on a listening socket (documented, for the connections it accepts) and
//!   `SO_EXCLUSIVEADDRUSE` on a connection-oriented one (documented) are not emulated:
//!   STATUS_NOT_SUPPORTED;
//! * `SO_EXCLUSIVEADDRUSE` after the bind fails with STATUS_INVALID_DEVICE_STATE (the documentation
//!   says it "must" be set before, and names no status);
//! * the IRP is required for the three options above (documented for `SO_KEEPALIVE` only): a NULL
//!   one is a [`Rule::InvalidParameter`](crate::emu::Rule);
//! * the statuses of an unsupported option, of a wrong state and of a short buffer.

use super::socket::{Category, SocketCore};
use super::transport::HostOption;
use crate::types::*;
use crate::wsk::*;

/// The options this provider knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    V6Only,
    Host(HostOption),
}

fn known(level: ULONG, code: ULONG) -> Option<Known> {
    match (level, code) {
        (IPPROTO_IPV6, IPV6_V6ONLY) => Some(Known::V6Only),
        (SOL_SOCKET, SO_EXCLUSIVEADDRUSE) => Some(Known::Host(HostOption::ExclusiveAddressUse)),
        (SOL_SOCKET, SO_KEEPALIVE) => Some(Known::Host(HostOption::KeepAlive)),
        (IPPROTO_TCP, TCP_NODELAY) => Some(Known::Host(HostOption::NoDelay)),
        _ => None,
    }
}

/// Whether a set or read of this option requires an IRP (see the module's notes).
pub(crate) fn requires_irp(request: WSK_CONTROL_SOCKET_TYPE, level: ULONG, code: ULONG) -> bool {
    matches!(request, WskSetOption | WskGetOption) && matches!(known(level, code), Some(Known::Host(_)))
}

/// Whether `core`'s category has `option` at all.
fn applies(core: &SocketCore, option: Known) -> bool {
    match option {
        Known::V6Only => core.family == AF_INET6,
        Known::Host(HostOption::ExclusiveAddressUse) => matches!(core.category, Category::Listen | Category::Stream),
        Known::Host(HostOption::KeepAlive | HostOption::NoDelay) => {
            matches!(core.category, Category::Connection | Category::Stream)
        }
    }
}

/// `WskControlSocket` for an option: carries out the set or read, returns its status and
/// `IoStatus.Information` (documented: the bytes written to the output buffer, a ULONG for a read).
///
/// # Safety
/// The buffers are valid for their sizes (the caller's contract with `WskControlSocket`).
pub(crate) unsafe fn control(
    core: &SocketCore,
    request: WSK_CONTROL_SOCKET_TYPE,
    code: ULONG,
    level: ULONG,
    input: (SIZE_T, PVOID),
    output: (SIZE_T, PVOID, *mut SIZE_T),
) -> (NTSTATUS, usize) {
    let Some(option) = known(level, code).filter(|&o| applies(core, o)) else {
        return (STATUS_NOT_SUPPORTED, 0);
    };
    match request {
        WskSetOption => {
            let (size, buffer) = input;
            if buffer.is_null() || size < size_of::<ULONG>() {
                return (STATUS_INVALID_PARAMETER, 0);
            }
            // SAFETY: `buffer` holds at least a ULONG per the caller's contract.
            let on = unsafe { buffer.cast::<ULONG>().read_unaligned() } != 0;
            (set(core, option, on), 0)
        }
        WskGetOption => {
            let (size, buffer, returned) = output;
            if buffer.is_null() || size < size_of::<ULONG>() {
                return (STATUS_BUFFER_TOO_SMALL, 0);
            }
            let st = core.lock();
            let value = match option {
                Known::V6Only => st.v6only,
                Known::Host(HostOption::ExclusiveAddressUse) => st.exclusive,
                Known::Host(HostOption::KeepAlive) => st.keepalive,
                Known::Host(HostOption::NoDelay) => st.nodelay,
            };
            drop(st);
            // SAFETY: the output buffers are valid for their sizes per the caller's contract.
            unsafe {
                buffer.cast::<ULONG>().write_unaligned(ULONG::from(value));
                if !returned.is_null() {
                    returned.write(size_of::<ULONG>());
                }
            }
            (STATUS_SUCCESS, size_of::<ULONG>())
        }
        _ => (STATUS_NOT_SUPPORTED, 0),
    }
}

fn set(core: &SocketCore, option: Known, on: bool) -> NTSTATUS {
    let mut st = core.lock();
    let unbound = st.bound.is_none() && st.listener.is_none() && st.wire.is_none() && st.connector.is_none();
    match option {
        Known::V6Only => {
            if st.listener.is_some() || st.wire.is_some() {
                return STATUS_INVALID_DEVICE_STATE;
            }
            st.v6only = on;
        }
        Known::Host(HostOption::ExclusiveAddressUse) => {
            if !unbound {
                return STATUS_INVALID_DEVICE_STATE;
            }
            // Applied by the transport when the bind (or `WskListen`) creates the listener.
            st.exclusive = on;
        }
        Known::Host(host @ (HostOption::KeepAlive | HostOption::NoDelay)) => {
            if let Some(failure) = st.failure {
                return failure;
            }
            let Some(wire) = st.wire.as_mut() else {
                return STATUS_INVALID_DEVICE_STATE;
            };
            if let Err(status) = wire.set_option(host, on) {
                return status;
            }
            match host {
                HostOption::KeepAlive => st.keepalive = on,
                _ => st.nodelay = on,
            }
        }
    }
    STATUS_SUCCESS
}

/// The option as the transport under `core` has it (for tests: `nt::emu::wsk::host_option`).
pub(crate) fn host(core: &SocketCore, option: HostOption) -> Option<bool> {
    let st = core.lock();
    match option {
        HostOption::ExclusiveAddressUse => st.listener.as_ref()?.option(option),
        HostOption::KeepAlive | HostOption::NoDelay => st.wire.as_ref()?.option(option),
    }
}

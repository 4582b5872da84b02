//! [`WskError`]: a failed WSK operation, keeping the raw `NTSTATUS`.

use core::fmt;
use nt::*;

/// A failed WSK operation. The raw [`NTSTATUS`] is kept, so nothing the kernel said is lost; the
/// predicates name the statuses a driver has to react to.
///
/// The one that matters most is [`is_forced_close`](Self::is_forced_close): the WSK subsystem is
/// going away (e.g. the network stack is being unloaded) and the socket **must be closed now** —
/// finish with [`Connection::close`](crate::Connection::close) or by dropping it.
///
/// ```
/// use wsk_async::WskError;
/// let e = WskError::from_status(nt::STATUS_FILE_FORCED_CLOSED);
/// assert!(e.is_forced_close());
/// assert_eq!(e.status(), nt::STATUS_FILE_FORCED_CLOSED);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WskError {
    status: NTSTATUS,
}

/// `Result<T, WskError>`.
pub type Result<T> = core::result::Result<T, WskError>;

impl WskError {
    /// Wraps a failure status. A success status (`NT_SUCCESS`) is not an error; it is mapped to
    /// `STATUS_UNSUCCESSFUL` so that an `Err` always carries a failure code.
    pub const fn from_status(status: NTSTATUS) -> Self {
        if NT_SUCCESS(status) {
            Self {
                status: STATUS_UNSUCCESSFUL,
            }
        } else {
            Self { status }
        }
    }

    /// `Ok(())` for a success status, the error otherwise.
    pub const fn check(status: NTSTATUS) -> Result<()> {
        if NT_SUCCESS(status) {
            Ok(())
        } else {
            Err(Self { status })
        }
    }

    /// The raw `NTSTATUS`.
    pub const fn status(&self) -> NTSTATUS {
        self.status
    }

    /// `STATUS_FILE_FORCED_CLOSED`: the WSK subsystem forced the socket closed — **close it now**
    /// (call `close()` or drop it); no other call on it can succeed.
    pub const fn is_forced_close(&self) -> bool {
        self.status == STATUS_FILE_FORCED_CLOSED
    }

    /// The peer reset the connection (`STATUS_CONNECTION_RESET`), or it was aborted locally
    /// (`STATUS_CONNECTION_ABORTED`, e.g. by an abortive disconnect).
    pub const fn is_reset(&self) -> bool {
        self.status == STATUS_CONNECTION_RESET || self.status == STATUS_CONNECTION_ABORTED
    }

    /// The connection is no longer usable for this direction because it was disconnected
    /// (`STATUS_CONNECTION_DISCONNECTED`, `STATUS_GRACEFUL_DISCONNECT`, `STATUS_LOCAL_DISCONNECT`,
    /// `STATUS_REMOTE_DISCONNECT`).
    pub const fn is_disconnected(&self) -> bool {
        matches!(
            self.status,
            STATUS_CONNECTION_DISCONNECTED
                | STATUS_GRACEFUL_DISCONNECT
                | STATUS_LOCAL_DISCONNECT
                | STATUS_REMOTE_DISCONNECT
        )
    }

    /// The operation was cancelled (`STATUS_CANCELLED`).
    pub const fn is_cancelled(&self) -> bool {
        self.status == STATUS_CANCELLED
    }

    /// The local address is taken: another socket is bound or listening on it, or (an earlier
    /// socket's connections still linger on the port) the provider will not reuse it yet. The WSK
    /// documentation names no status for this: Windows answered `STATUS_ADDRESS_ALREADY_ASSOCIATED`
    /// to a `WskBind` on a port in use in Wine's netio test (which also runs on Windows);
    /// `STATUS_ADDRESS_ALREADY_EXISTS` names the same condition. A driver should accept either.
    ///
    /// ```
    /// use wsk_async::WskError;
    /// assert!(WskError::from_status(nt::STATUS_ADDRESS_ALREADY_ASSOCIATED).is_address_in_use());
    /// assert!(WskError::from_status(nt::STATUS_ADDRESS_ALREADY_EXISTS).is_address_in_use());
    /// assert!(!WskError::from_status(nt::STATUS_INVALID_PARAMETER).is_address_in_use());
    /// ```
    pub const fn is_address_in_use(&self) -> bool {
        self.status == STATUS_ADDRESS_ALREADY_ASSOCIATED || self.status == STATUS_ADDRESS_ALREADY_EXISTS
    }

    /// The connection attempt was refused (`STATUS_CONNECTION_REFUSED`).
    pub const fn is_refused(&self) -> bool {
        self.status == STATUS_CONNECTION_REFUSED
    }

    /// A pool allocation or another kernel resource ran out (`STATUS_INSUFFICIENT_RESOURCES`,
    /// `STATUS_NO_MEMORY`); this includes an empty [`BufferPool`](crate::BufferPool).
    pub const fn is_out_of_resources(&self) -> bool {
        self.status == STATUS_INSUFFICIENT_RESOURCES || self.status == STATUS_NO_MEMORY
    }

    /// The operation was refused because of the socket's state (`STATUS_INVALID_DEVICE_STATE`): the
    /// same kind of operation is already in progress on it, or an earlier receive or send future was
    /// dropped while pending, leaving the byte stream in an unknown state (only `abort()` and
    /// `close()` remain allowed then).
    pub const fn is_invalid_state(&self) -> bool {
        self.status == STATUS_INVALID_DEVICE_STATE
    }

    /// The provider does not implement the request (`STATUS_NOT_SUPPORTED`,
    /// `STATUS_NOT_IMPLEMENTED` — Wine 8's stub `WskControlSocket` — or
    /// `STATUS_INVALID_DEVICE_REQUEST`): a socket option or query it lacks. The socket is unaffected.
    ///
    /// ```
    /// use wsk_async::WskError;
    /// assert!(WskError::from_status(nt::STATUS_NOT_IMPLEMENTED).is_unsupported());
    /// assert!(!WskError::from_status(nt::STATUS_INVALID_PARAMETER).is_unsupported());
    /// ```
    pub const fn is_unsupported(&self) -> bool {
        matches!(
            self.status,
            STATUS_NOT_SUPPORTED | STATUS_NOT_IMPLEMENTED | STATUS_INVALID_DEVICE_REQUEST
        )
    }

    pub(crate) const INVALID_STATE: Self = Self {
        status: STATUS_INVALID_DEVICE_STATE,
    };
    pub(crate) const NO_RESOURCES: Self = Self {
        status: STATUS_INSUFFICIENT_RESOURCES,
    };
    /// A socket-producing call (accept, socket creation, connect) reported success without a socket
    /// in `IoStatus.Information`: a provider bug, surfaced as `STATUS_UNSUCCESSFUL`, never as a null
    /// socket.
    pub(crate) const NO_SOCKET: Self = Self {
        status: STATUS_UNSUCCESSFUL,
    };
}

impl fmt::Debug for WskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WskError({:#010x}", self.status as u32)?;
        if let Some(name) = status_name(self.status) {
            write!(f, " {name}")?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for WskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match status_name(self.status) {
            Some(name) => write!(f, "WSK operation failed: {name} ({:#010x})", self.status as u32),
            None => write!(f, "WSK operation failed: NTSTATUS {:#010x}", self.status as u32),
        }
    }
}

impl core::error::Error for WskError {}

/// The name of a status this crate knows, for messages.
fn status_name(status: NTSTATUS) -> Option<&'static str> {
    STATUS_TABLE.iter().find(|(_, s)| *s == status).map(|(name, _)| *name)
}

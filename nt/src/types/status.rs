//! `NTSTATUS` and the status codes this project produces or handles.

/// `NTSTATUS`: negative is an error, 0 and other non-negative values are success; see [`NT_SUCCESS`].
pub type NTSTATUS = i32;

/// `NT_SUCCESS`: success and informational codes are non-negative.
#[inline(always)]
pub const fn NT_SUCCESS(status: NTSTATUS) -> bool {
    status >= 0
}

/// Declares each status constant and lists it in [`STATUS_TABLE`], so the DDK cross-check test can
/// compare every value with `ntstatus.h`.
macro_rules! statuses {
    ($($name:ident = $value:literal,)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "` (`", stringify!($value), "`).")]
            pub const $name: NTSTATUS = $value as u32 as NTSTATUS;
        )*
        /// `(name, value)` of every status constant this crate defines.
        pub const STATUS_TABLE: &[(&str, NTSTATUS)] = &[$((stringify!($name), $name)),*];
    };
}

statuses! {
    STATUS_SUCCESS = 0,
    STATUS_WAIT_0 = 0,
    STATUS_TIMEOUT = 0x0000_0102,
    STATUS_PENDING = 0x0000_0103,
    STATUS_BUFFER_OVERFLOW = 0x8000_0005,
    STATUS_UNSUCCESSFUL = 0xC000_0001,
    STATUS_NOT_IMPLEMENTED = 0xC000_0002,
    STATUS_INVALID_HANDLE = 0xC000_0008,
    STATUS_INVALID_PARAMETER = 0xC000_000D,
    STATUS_MORE_PROCESSING_REQUIRED = 0xC000_0016,
    STATUS_NO_MEMORY = 0xC000_0017,
    STATUS_ACCESS_DENIED = 0xC000_0022,
    STATUS_BUFFER_TOO_SMALL = 0xC000_0023,
    STATUS_OBJECT_NAME_NOT_FOUND = 0xC000_0034,
    STATUS_INSUFFICIENT_RESOURCES = 0xC000_009A,
    STATUS_DEVICE_NOT_READY = 0xC000_00A3,
    STATUS_NOT_SUPPORTED = 0xC000_00BB,
    STATUS_INVALID_DEVICE_REQUEST = 0xC000_0010,
    STATUS_CANCELLED = 0xC000_0120,
    STATUS_FILE_CLOSED = 0xC000_0128,
    STATUS_LOCAL_DISCONNECT = 0xC000_013B,
    STATUS_REMOTE_DISCONNECT = 0xC000_013C,
    STATUS_INVALID_DEVICE_STATE = 0xC000_0184,
    STATUS_INVALID_ADDRESS = 0xC000_0141,
    STATUS_ADDRESS_ALREADY_EXISTS = 0xC000_020A,
    STATUS_INVALID_BUFFER_SIZE = 0xC000_0206,
    STATUS_ADDRESS_ALREADY_ASSOCIATED = 0xC000_0238,
    STATUS_CONNECTION_DISCONNECTED = 0xC000_020C,
    STATUS_CONNECTION_RESET = 0xC000_020D,
    STATUS_CONNECTION_REFUSED = 0xC000_0236,
    STATUS_GRACEFUL_DISCONNECT = 0xC000_0237,
    STATUS_CONNECTION_ABORTED = 0xC000_0241,
    STATUS_NETWORK_UNREACHABLE = 0xC000_023C,
    STATUS_HOST_UNREACHABLE = 0xC000_023D,
    STATUS_IO_TIMEOUT = 0xC000_00B5,
    STATUS_FILE_FORCED_CLOSED = 0xC000_00B6,
    STATUS_DELETE_PENDING = 0xC000_0056,
    STATUS_NOINTERFACE = 0xC000_02B9,
    STATUS_NOT_FOUND = 0xC000_0225,
    STATUS_NO_MATCH = 0xC000_0272,
    STATUS_NAME_TOO_LONG = 0xC000_0106,
}

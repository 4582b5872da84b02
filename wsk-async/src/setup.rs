//! The steps that set up a socket a future is creating ([`Registration::listen`],
//! [`Registration::bind_datagram`], [`Registration::connect`]): each future runs them one after the
//! other on its context's socket-producing slot, with its own step enum saying which comes next. This
//! module starts each kind of step and reads what a completed one left.
//!
//! [`Registration::listen`]: crate::Registration::listen
//! [`Registration::bind_datagram`]: crate::Registration::bind_datagram
//! [`Registration::connect`]: crate::Registration::connect

use crate::addr;
use crate::ctx::{Addresses, SocketCtx};
use crate::error::{Result, WskError};
use crate::op::{Op, produced_socket};
use crate::registration::RegInner;
use crate::slot::SlotUse;
use core::net::SocketAddr;
use core::ptr;
use core::task::{Context, Poll, ready};
use nt::*;

/// Acquires the slot for the next step and returns the context's addresses, the buffers the steps
/// lend WSK. A context without them fails with [`WskError::INVALID_STATE`], the slot released.
///
/// # Safety
/// `op` is `ctx`'s socket-producing slot, used by this future alone while the socket is not shared:
/// once the slot is acquired nothing else touches the addresses until the future releases it. The
/// caller holds no other reference to them (as for [`SocketCtx::addresses`]).
#[allow(clippy::mut_from_ref)]
pub(crate) unsafe fn poll_acquire<'c>(
    slot: &mut SlotUse,
    op: &Op,
    ctx: &'c SocketCtx,
    cx: &mut Context<'_>,
) -> Poll<Result<&'c mut Addresses>> {
    ready!(slot.poll_acquire(op, cx))?;
    // SAFETY: the slot is ours (caller's contract: so are the addresses).
    match unsafe { ctx.addresses() } {
        Some(io) => Poll::Ready(Ok(io)),
        None => {
            slot.release(op);
            Poll::Ready(Err(WskError::INVALID_STATE))
        }
    }
}

/// What `WskSocket` creates: its `SocketType`, `Protocol` and `Flags`.
#[derive(Clone, Copy)]
pub(crate) struct NewSocket {
    socket_type: USHORT,
    protocol: ULONG,
    flags: ULONG,
}

/// A listening TCP socket.
pub(crate) const LISTEN: NewSocket = NewSocket {
    socket_type: SOCK_STREAM,
    protocol: IPPROTO_TCP,
    flags: WSK_FLAG_LISTEN_SOCKET,
};

/// A UDP socket.
pub(crate) const DATAGRAM: NewSocket = NewSocket {
    socket_type: SOCK_DGRAM,
    protocol: IPPROTO_UDP,
    flags: WSK_FLAG_DATAGRAM_SOCKET,
};

/// A TCP connection socket.
pub(crate) const CONNECTION: NewSocket = NewSocket {
    socket_type: SOCK_STREAM,
    protocol: IPPROTO_TCP,
    flags: WSK_FLAG_CONNECTION_SOCKET,
};

/// Starts `WskSocket`: a socket of `family` and `new`'s kind whose socket context is `ctx`. The slot
/// is marked as producing a socket, so that a result nobody reads closes it.
///
/// # Safety
/// The slot was acquired and is `ctx`'s socket-producing slot; `ctx` lives as long as the socket it
/// is the context of.
pub(crate) unsafe fn start_socket(
    slot: &mut SlotUse,
    op: &Op,
    registration: &RegInner,
    ctx: &SocketCtx,
    family: ADDRESS_FAMILY,
    new: NewSocket,
) {
    let socket = registration.dispatch().WskSocket;
    let client = registration.provider().Client;
    let context = ptr::from_ref(ctx).cast_mut().cast();
    // SAFETY: the slot is ours and acquired (caller's contract); the IRP goes to one call.
    unsafe {
        op.set_produces_socket(true);
        slot.start(op, |irp| {
            socket.map(|f| {
                f(
                    client,
                    family,
                    new.socket_type,
                    new.protocol,
                    new.flags,
                    context,
                    ptr::null(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    irp,
                )
            })
        });
    }
}

/// A `ULONG` socket option to set: its `Level`, `ControlCode` and value.
#[derive(Clone, Copy)]
pub(crate) struct SetOption {
    level: ULONG,
    code: ULONG,
    value: ULONG,
}

/// `IPV6_V6ONLY` = 0: an IPv6 socket that IPv4 peers reach too (dual stack).
pub(crate) const DUAL_STACK: SetOption = SetOption {
    level: IPPROTO_IPV6,
    code: IPV6_V6ONLY,
    value: 0,
};

/// `SO_EXCLUSIVEADDRUSE` = 1: nobody else may bind the address.
pub(crate) const EXCLUSIVE: SetOption = SetOption {
    level: SOL_SOCKET,
    code: SO_EXCLUSIVEADDRUSE,
    value: 1,
};

/// Starts `WskControlSocket(WskSetOption)` on `socket` with `option`; the value lives in `io`.
///
/// # Safety
/// The slot was acquired; `control` is `socket`'s own `WskControlSocket`; `io` belongs to the slot
/// and lives until the completion.
pub(crate) unsafe fn start_set_option(
    slot: &mut SlotUse,
    op: &Op,
    control: PFN_WSK_CONTROL_SOCKET,
    socket: PWSK_SOCKET,
    io: &mut Addresses,
    option: SetOption,
) {
    io.option = option.value;
    let value = ptr::addr_of_mut!(io.option).cast();
    // SAFETY: the slot is ours and acquired (caller's contract); the IRP goes to one call.
    unsafe {
        slot.start(op, |irp| {
            control.map(|f| {
                f(
                    socket,
                    WskSetOption,
                    option.code,
                    option.level,
                    size_of::<ULONG>(),
                    value,
                    0,
                    ptr::null_mut(),
                    ptr::null_mut(),
                    irp,
                )
            })
        });
    }
}

/// Starts `WskBind` of `socket` to `local`.
///
/// # Safety
/// The slot was acquired; `bind` is `socket`'s own `WskBind`; `local` points to an address that lives
/// until the completion.
pub(crate) unsafe fn start_bind(
    slot: &mut SlotUse,
    op: &Op,
    bind: PFN_WSK_BIND,
    socket: PWSK_SOCKET,
    local: *mut SOCKADDR,
) {
    // SAFETY: the slot is ours and acquired (caller's contract); the IRP goes to one call.
    unsafe { slot.start(op, |irp| bind.map(|f| f(socket, local, 0, irp))) };
}

/// Starts `WskGetLocalAddress` of `socket`, into `io.local` (cleared first).
///
/// # Safety
/// As for [`start_bind`], with `get` `socket`'s own `WskGetLocalAddress` and `io` the slot's.
pub(crate) unsafe fn start_local_address(
    slot: &mut SlotUse,
    op: &Op,
    get: PFN_WSK_GET_LOCAL_ADDRESS,
    socket: PWSK_SOCKET,
    io: &mut Addresses,
) {
    io.local = SOCKADDR_STORAGE::default();
    let local = ptr::addr_of_mut!(io.local).cast::<SOCKADDR>();
    // SAFETY: the slot is ours and acquired (caller's contract); the IRP goes to one call.
    unsafe { slot.start(op, |irp| get.map(|f| f(socket, local, irp))) };
}

/// What the step that completed was, for [`completed`].
#[derive(Clone, Copy)]
pub(crate) enum Done {
    /// The step that created the socket (`WskSocket`, `WskSocketConnect`).
    Creation,
    /// `WskGetLocalAddress` of a socket bound to this address.
    LocalAddress(SocketAddr),
    /// Any other step: only its status matters.
    Other,
}

/// The outcome of the step that completed with `iosb`: the error that ends the future, or, after
/// [`Done::LocalAddress`], the address the socket reports. The socket a [`Done::Creation`] step
/// produced becomes the context's (so that dropping the future closes it).
///
/// The local-address query only tells the port the provider picked: when the caller named the port,
/// its failure (a provider that does not implement the query) is not fatal, and the socket reports
/// the address it asked for.
///
/// # Safety
/// The slot is still this future's after the completion, `ctx` is not shared yet, and the caller
/// holds no reference to its addresses.
pub(crate) unsafe fn completed(
    op: &Op,
    ctx: &SocketCtx,
    iosb: IO_STATUS_BLOCK,
    done: Done,
) -> Result<Option<SocketAddr>> {
    let result = WskError::check(iosb.Status);
    match done {
        Done::Creation => {
            // SAFETY: the slot is ours, and the context not shared (caller's contract).
            unsafe {
                op.set_produces_socket(false);
                ctx.set_socket(produced_socket(iosb)?);
            }
            Ok(None)
        }
        Done::LocalAddress(asked) => match result {
            // SAFETY: the slot, and so the addresses, are still ours (caller's contract).
            Ok(()) => Ok(unsafe { ctx.addresses() }.and_then(|io| addr::from_storage(&io.local))),
            Err(e) if asked.port() == 0 => Err(e),
            Err(_) => Ok(Some(asked)),
        },
        Done::Other => result.map(|()| None),
    }
}

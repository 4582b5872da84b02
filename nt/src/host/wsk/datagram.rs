//! Datagram (UDP) sockets: `WskSendTo`, `WskReceiveFrom`, their progress ([`pump`]), and the
//! datagram table's `WskRelease`. `WskBind`, `WskGetLocalAddress` and the basic functions are
//! shared with the other categories (`listen.rs`, `close.rs`).
//!
//! Behaviours emulated (WSK documentation):
//! * `WskSendTo` completes once the datagram is handed to the transport whole ("the WSK subsystem
//!   does not perform any buffering"), with its length in `IoStatus.Information`. `Flags` is
//!   reserved and must be 0; `RemoteAddress` must be of the socket's family, and may be NULL only
//!   on a socket with a fixed remote address (`SIO_WSK_SET_REMOTE_ADDRESS`, not emulated, so never
//!   here). Each is a checked [`Rule::InvalidParameter`].
//! * `WskReceiveFrom` completes with one datagram, its length in `IoStatus.Information`, the
//!   sender's address in the optional `RemoteAddress`, 0 in the optional `ControlLength` (no control
//!   information is emulated) and the datagram's `MSG_*` flags in the optional `ControlFlags`: a
//!   datagram longer than the buffer is truncated to it and flagged [`MSG_TRUNC`] (documented).
//! * Pending receives are served in the order they were queued; `WskCloseSocket` and `IoCancelIrp`
//!   complete pending ones with STATUS_CANCELLED (`close.rs`, `pump.rs`).
//!
//! Invented:
//! * the completion status of a truncated datagram: Microsoft documents only the `MSG_TRUNC` flag
//!   (always set here). The status is either STATUS_BUFFER_OVERFLOW (a warning status, so
//!   `NT_SUCCESS` is false; it is what Winsock's WSAEMSGSIZE maps from) or STATUS_SUCCESS, as the
//!   completion schedule decides ([`super::schedule::truncation_overflows`]), with the bytes copied
//!   in `Information` either way: a client must take both as a truncated datagram.
//! * `WskSendTo` and `WskReceiveFrom` on a socket not yet bound fail with
//!   STATUS_INVALID_DEVICE_STATE (Winsock would bind it implicitly; WSK asks for `WskBind` first).
//! * a datagram larger than UDP allows (65507 bytes over IPv4, 65527 over IPv6) fails with
//!   STATUS_INVALID_BUFFER_SIZE; control information to send (`ControlInfoLength` != 0) with
//!   STATUS_NOT_SUPPORTED.
//! * a cancelled `WskSendTo` or `WskReceiveFrom` leaves the socket usable (unlike a cancelled stream
//!   operation, see `SocketState::reset_after_cancel`): a datagram socket has no stream whose
//!   integrity a cancel could break, and a cancelled receive had no datagram yet (one that has
//!   completes, and is no longer cancellable).
//! * a datagram to an address where nothing is bound is dropped silently and its send succeeds;
//!   an ICMP port-unreachable is never reported to a later call.
//! * both read their `WSK_BUF` again when they move the datagram (see `mdl.rs`).
//! * `WskSendTo`'s `RemoteAddress` is checked in the call and read again when the datagram is
//!   sent, which may be after the call returned: a client must keep it valid and unchanged until
//!   the IRP completes (Windows documents nothing; this catches one that reuses or frees it early).

use super::call::{finish, with_socket};
use super::connection::read_buf;
use super::irp::Completions;
use super::pump::{Step, drive};
use super::socket::{Category, InAddr, Op, OutAddr, OutUlong, SocketCore, SocketState};
use super::transport::{DatagramOutcome, WriteOutcome};
use crate::emu::{Rule, violation};
use crate::types::*;
use crate::wsk::*;
use std::sync::Arc;

const DATAGRAM: &[Category] = &[Category::Datagram];

/// The largest UDP payload of `family` (65535 minus the IP and UDP headers; IPv6's header is not
/// counted in its payload length).
fn max_datagram(family: ADDRESS_FAMILY) -> usize {
    if family == AF_INET6 { 65527 } else { 65507 }
}

/// A reserved `Flags` that is not 0: a [`Rule::InvalidParameter`]; the call then fails with
/// STATUS_INVALID_PARAMETER (recording mode).
fn reserved_flags(function: &str, core: &SocketCore, flags: ULONG) {
    violation(
        Rule::InvalidParameter,
        &format_args!("{function} on {core} with Flags {flags:#x} (reserved: must be 0)"),
        core.created_at.as_ref(),
    );
}

/// `WskSendTo`: sends one datagram to `RemoteAddress`. See the module documentation.
///
/// # Safety
/// `Buffer` describes live MDLs and `RemoteAddress` a valid socket address, both valid until the IRP
/// completes; `Irp` is a live IRP the caller hands over.
pub(crate) unsafe extern "system" fn WskSendTo(
    Socket: PWSK_SOCKET,
    Buffer: PWSK_BUF,
    Flags: ULONG,
    RemoteAddress: PSOCKADDR,
    ControlInfoLength: ULONG,
    _ControlInfo: PVOID,
    Irp: PIRP,
) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        with_socket(Socket, Irp, "WskSendTo", DATAGRAM, |core, irp| {
            if Flags != 0 {
                reserved_flags("WskSendTo", core, Flags);
                return finish(irp, STATUS_INVALID_PARAMETER, 0);
            }
            let buf = match read_buf(Buffer) {
                Ok(buf) => buf,
                Err(status) => return finish(irp, status, 0),
            };
            if RemoteAddress.is_null() {
                violation(
                    Rule::InvalidParameter,
                    &format_args!("WskSendTo on {core} with a NULL RemoteAddress and no fixed remote address"),
                    core.created_at.as_ref(),
                );
                return finish(irp, STATUS_INVALID_PARAMETER, 0);
            }
            let to = match super::addr::read(RemoteAddress) {
                Ok(to) => to,
                Err(status) => return finish(irp, status, 0),
            };
            if super::addr::family(&to) != core.family {
                violation(
                    Rule::InvalidParameter,
                    &format_args!("WskSendTo on {core} to {to}, an address of another family than the socket's"),
                    core.created_at.as_ref(),
                );
                return finish(irp, STATUS_INVALID_PARAMETER, 0);
            }
            if ControlInfoLength != 0 {
                return finish(irp, STATUS_NOT_SUPPORTED, 0);
            }
            if buf.len() > max_datagram(core.family) {
                return finish(irp, STATUS_INVALID_BUFFER_SIZE, 0);
            }
            if core.lock().port.is_none() {
                return finish(irp, STATUS_INVALID_DEVICE_STATE, 0);
            }
            core.submit(
                irp,
                Op::SendTo {
                    buf,
                    to: InAddr(RemoteAddress),
                },
            )
        })
    }
}

/// `WskReceiveFrom`: receives one datagram. See the module documentation.
///
/// # Safety
/// `Buffer` describes live MDLs; the optional `RemoteAddress`, `ControlLength` and `ControlFlags`
/// are NULL or valid for writes; all stay valid until the IRP completes. `Irp` is a live IRP the
/// caller hands over.
pub(crate) unsafe extern "system" fn WskReceiveFrom(
    Socket: PWSK_SOCKET,
    Buffer: PWSK_BUF,
    Flags: ULONG,
    RemoteAddress: PSOCKADDR,
    ControlLength: *mut ULONG,
    _ControlInfo: PVOID,
    ControlFlags: *mut ULONG,
    Irp: PIRP,
) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        with_socket(Socket, Irp, "WskReceiveFrom", DATAGRAM, |core, irp| {
            if Flags != 0 {
                reserved_flags("WskReceiveFrom", core, Flags);
                return finish(irp, STATUS_INVALID_PARAMETER, 0);
            }
            let buf = match read_buf(Buffer) {
                Ok(buf) => buf,
                Err(status) => return finish(irp, status, 0),
            };
            if core.lock().port.is_none() {
                return finish(irp, STATUS_INVALID_DEVICE_STATE, 0);
            }
            let op = Op::ReceiveFrom {
                buf,
                from_out: OutAddr(RemoteAddress),
                control_length: OutUlong(ControlLength),
                control_flags: OutUlong(ControlFlags),
            };
            core.submit(irp, op)
        })
    }
}

/// `WskRelease` of a datagram socket: this provider never indicates datagrams (no
/// `WskReceiveFromEvent`), so there is nothing a client could release.
///
/// # Safety
/// None.
pub(crate) unsafe extern "system" fn WskReleaseDatagrams(
    _Socket: PWSK_SOCKET,
    _DatagramIndication: PWSK_DATAGRAM_INDICATION,
) -> NTSTATUS {
    STATUS_NOT_SUPPORTED
}

/// Moves a datagram socket's receives and sends forward; appends finished IRPs to `out`. A
/// cancelled one leaves the socket usable (see the module documentation).
pub(super) fn pump(core: &Arc<SocketCore>, st: &mut SocketState, out: &mut Completions) {
    let SocketState {
        receives, sends, port, ..
    } = st;
    drive(core, receives, out, |op| {
        let Op::ReceiveFrom {
            buf,
            from_out,
            control_length,
            control_flags,
        } = op
        else {
            return Step::Complete(STATUS_INVALID_DEVICE_REQUEST, 0);
        };
        // SAFETY: the client keeps its WSK_BUF valid until the IRP completes (see `mdl.rs`).
        if let Err(status) = unsafe { buf.reread("WskReceiveFrom") } {
            return Step::Complete(status, 0);
        }
        let Some(port) = port.as_mut() else {
            return Step::Complete(STATUS_INVALID_DEVICE_STATE, 0);
        };
        let mut data = vec![0; buf.len()];
        match port.receive_from(&mut data) {
            DatagramOutcome::WouldBlock => Step::Wait,
            DatagramOutcome::Failed(status) => Step::Complete(status, 0),
            DatagramOutcome::Received { copied, length, from } => {
                let truncated = copied < length;
                // SAFETY: the buffer was validated when the receive was queued and its MDLs, like the
                // optional outputs, stay valid until the IRP completes (WSK contract); NULL outputs
                // are skipped.
                unsafe {
                    buf.scatter(&data[..copied]);
                    super::addr::write(from_out.0, from);
                    control_length.write(0);
                    control_flags.write(if truncated { MSG_TRUNC } else { 0 });
                }
                let status = if truncated && super::schedule::truncation_overflows() {
                    STATUS_BUFFER_OVERFLOW
                } else {
                    STATUS_SUCCESS
                };
                Step::Complete(status, copied)
            }
        }
    });
    drive(core, sends, out, |op| {
        let Op::SendTo { buf, to } = op else {
            return Step::Complete(STATUS_INVALID_DEVICE_REQUEST, 0);
        };
        // SAFETY: as for the receive's.
        if let Err(status) = unsafe { buf.reread("WskSendTo") } {
            return Step::Complete(status, 0);
        }
        let Some(port) = port.as_mut() else {
            return Step::Complete(STATUS_INVALID_DEVICE_STATE, 0);
        };
        // SAFETY: the client keeps `RemoteAddress` valid until the IRP completes (WSK contract;
        // checked non-null and of the socket's family in the call).
        let to = match unsafe { super::addr::read(to.0) } {
            Ok(to) if super::addr::family(&to) == core.family => to,
            Ok(_) => return Step::Complete(STATUS_INVALID_PARAMETER, 0),
            Err(status) => return Step::Complete(status, 0),
        };
        // SAFETY: validated when queued; the MDLs stay live until the IRP completes.
        let data = unsafe { buf.gather() };
        match port.send_to(&data, to) {
            WriteOutcome::Wrote(n) => Step::Complete(STATUS_SUCCESS, n),
            WriteOutcome::WouldBlock => Step::Wait,
            WriteOutcome::Failed(status) => Step::Complete(status, 0),
        }
    });
}

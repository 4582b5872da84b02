//! What the host TCP has acknowledged, for WSK's send model (`super::super::send`: a send completes
//! when the peer's TCP has acknowledged its bytes).
//!
//! Linux: `ioctl(SIOCOUTQ)` gives the bytes written but not yet acknowledged (FIN counts one, as it
//! takes a sequence number), so the acknowledged stream position is what was written minus that.
//! Linux raises no readiness event when an acknowledgement arrives, so each connection asks for one:
//! `SO_TIMESTAMPING` with `SOF_TIMESTAMPING_TX_ACK` queues a notification on the socket's error queue
//! when the last byte of each write is acknowledged, which wakes the event loop (EPOLLERR). The
//! notifications carry nothing we need and are drained. They can be dropped (the error queue shares
//! the receive buffer's budget, full while the driver leaves received data unread), so the event loop
//! also re-checks every connection waiting for an acknowledgement on a short timer
//! ([`super::event_loop::RECHECK`]), only while one waits.
//!
//! Elsewhere than Linux there is no SIOCOUTQ: acknowledgement is taken to happen when the bytes are
//! written, the older, kinder model (a limit of the emulation off Linux).

use std::io;
use std::os::fd::RawFd;

/// Asks the kernel to notify (on the error queue) when each write is acknowledged. False if the
/// kernel refuses: the event loop's timer still re-checks.
#[cfg(target_os = "linux")]
pub(super) fn notify_acknowledgements(fd: RawFd) -> bool {
    // Not in every libc release: the value of the asm-generic socket.h (x86, arm, riscv...).
    const SO_TIMESTAMPING: libc::c_int = 37;
    let flags: libc::c_uint = libc::SOF_TIMESTAMPING_TX_ACK
        | libc::SOF_TIMESTAMPING_SOFTWARE
        | libc::SOF_TIMESTAMPING_OPT_ID
        | libc::SOF_TIMESTAMPING_OPT_TSONLY;
    // SAFETY: `fd` is an open socket owned by the caller; the option value is a c_uint of that size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_TIMESTAMPING,
            (&flags as *const libc::c_uint).cast(),
            size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
pub(super) fn notify_acknowledgements(_fd: RawFd) -> bool {
    false
}

/// Bytes written to the socket (FIN included) that the peer has not acknowledged yet.
#[cfg(target_os = "linux")]
pub(super) fn unacknowledged(fd: RawFd) -> io::Result<u64> {
    drain_notifications(fd);
    let mut queued: libc::c_int = 0;
    // SAFETY: `fd` is an open TCP socket; SIOCOUTQ (== TIOCOUTQ) writes one c_int.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued as *mut libc::c_int) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(queued).unwrap_or(0))
}

#[cfg(not(target_os = "linux"))]
pub(super) fn unacknowledged(_fd: RawFd) -> io::Result<u64> {
    Ok(0)
}

/// Empties the socket's error queue of acknowledgement notifications (bounded: what is left, the next
/// call takes).
#[cfg(target_os = "linux")]
fn drain_notifications(fd: RawFd) {
    let mut control = [0u64; 32];
    for _ in 0..64 {
        // SAFETY: an all-zero msghdr is valid (no name, no iovec); `control` outlives the call and
        // its length is given in bytes.
        let rc = unsafe {
            let mut msg: libc::msghdr = core::mem::zeroed();
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of_val(&control) as _;
            libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT)
        };
        if rc < 0 {
            return;
        }
    }
}

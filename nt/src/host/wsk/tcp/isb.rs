//! The ideal send backlog of a host TCP connection (`SIO_WSK_QUERY_IDEAL_SEND_BACKLOG`, see
//! `super::super::backlog`).
//!
//! Windows' TCP computes the ISB from its estimate of the connection's bandwidth-delay product, and
//! Linux does not expose one. Invented: the mapping, on Linux the congestion window in bytes
//! (`TCP_INFO`: `tcpi_snd_cwnd` segments of `tcpi_snd_mss` bytes), at least one segment and at most
//! the host socket's `SO_SNDBUF` as `getsockopt` reports it. A fair stand-in: the congestion window
//! is how many bytes TCP lets be sent and not yet acknowledged, which is what the ISB asks a client
//! to keep outstanding (under WSK's send model a send completes on acknowledgement); it grows and
//! shrinks with the path as Windows' ISB does. The upper bound is the host send buffer: this
//! emulation hands a send's bytes to that buffer and no further, so a larger backlog would only
//! queue inside the emulation. On loopback the window is large (an MSS of about 64 KiB), so the
//! answer is that bound. Elsewhere than Linux, `SO_SNDBUF` alone.

use std::io;
use std::os::fd::RawFd;

/// The ISB of the connected TCP socket `fd`, in bytes.
#[cfg(target_os = "linux")]
pub(super) fn ideal_send_backlog(fd: RawFd, send_buffer: usize) -> io::Result<usize> {
    // SAFETY: an all-zero tcp_info is valid (plain integers).
    let mut info: libc::tcp_info = unsafe { core::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `fd` is an open TCP socket owned by the caller; the kernel writes at most `len` bytes
    // of `info` and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let mss = usize::try_from(info.tcpi_snd_mss).unwrap_or(usize::MAX).max(1);
    let cwnd = usize::try_from(info.tcpi_snd_cwnd).unwrap_or(usize::MAX);
    Ok(cwnd.saturating_mul(mss).clamp(mss, send_buffer.max(mss)))
}

#[cfg(not(target_os = "linux"))]
pub(super) fn ideal_send_backlog(_fd: RawFd, send_buffer: usize) -> io::Result<usize> {
    Ok(send_buffer.max(1))
}

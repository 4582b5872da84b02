//! Datagram-socket helpers of the raw-ABI client: `WskSocket` for UDP, the datagram dispatch table,
//! `WskSendTo` and `WskReceiveFrom` with their optional outputs kept alive until completion.

use super::*;

/// The datagram dispatch table of `socket`.
pub fn dgram(socket: PWSK_SOCKET) -> &'static WSK_PROVIDER_DATAGRAM_DISPATCH {
    // SAFETY: the socket was created as a datagram socket; its table is static.
    unsafe { &*((*socket).Dispatch as *const WSK_PROVIDER_DATAGRAM_DISPATCH) }
}

/// `WskSocket(family, socket_type, protocol, WSK_FLAG_DATAGRAM_SOCKET)`, waited for: the final
/// status and the socket (null on failure).
pub fn try_udp_socket(
    client: &Client,
    family: ADDRESS_FAMILY,
    socket_type: USHORT,
    protocol: ULONG,
) -> (NTSTATUS, PWSK_SOCKET) {
    // SAFETY: captured; the provider's table is static.
    let f = unsafe { &*client.npi.Dispatch }.WskSocket.expect("WskSocket");
    let (returned, status, information) = call(|irp| {
        // SAFETY: valid client handle and a fresh IRP with our completion routine.
        unsafe {
            f(
                client.npi.Client,
                family,
                socket_type,
                protocol,
                WSK_FLAG_DATAGRAM_SOCKET,
                ptr::null_mut(),
                ptr::null(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                irp,
            )
        }
    });
    assert!(
        returned == status || returned == STATUS_PENDING,
        "WskSocket returned {returned:#x}"
    );
    (status, std::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information))
}

/// A UDP datagram socket of `family`, bound to `addr` (with `IPV6_V6ONLY` = `v6only` first for
/// AF_INET6), and its bound address.
pub fn udp_socket(client: &Client, addr: SocketAddr, v6only: bool) -> (PWSK_SOCKET, SocketAddr) {
    let family = if addr.is_ipv4() { AF_INET } else { AF_INET6 };
    let (status, socket) = try_udp_socket(client, family, SOCK_DGRAM, IPPROTO_UDP);
    assert_eq!(status, STATUS_SUCCESS, "WskSocket(datagram)");
    if addr.is_ipv6() && !v6only {
        set_v6only(socket, false);
    }
    // WskBind is right after the basic table in every table that has it.
    bind(socket, addr);
    let local = get_local_address(dgram(socket).WskGetLocalAddress, socket);
    (socket, local)
}

/// `WskSendTo` of `buf[..len]` to `to` on `op`; returns what the call returned.
pub fn send_to(socket: PWSK_SOCKET, buf: &PoolBuf, len: usize, to: &Addr, op: &IrpOp) -> NTSTATUS {
    let wsk = op.lend(buf.wsk(0, len));
    let f = dgram(socket).WskSendTo.expect("WskSendTo");
    // SAFETY: valid socket; the buffer, its WSK_BUF (kept by `op`), address and IRP outlive the
    // operation.
    unsafe { f(socket, wsk, 0, to.ptr(), 0, ptr::null_mut(), op.start()) }
}

/// `WskSendTo` waited for: (returned, final status, bytes sent).
pub fn send_to_wait(socket: PWSK_SOCKET, data: &[u8], to: SocketAddr) -> (NTSTATUS, NTSTATUS, usize) {
    let buf = PoolBuf::with(data);
    let to = Addr::new(to);
    let op = IrpOp::new();
    let returned = send_to(socket, &buf, data.len(), &to, &op);
    let (status, sent) = op.wait();
    (returned, status, sent)
}

/// The optional outputs of one `WskReceiveFrom`, which must stay valid until its IRP completes.
pub struct ReceiveOut {
    pub from: Addr,
    control_length: UnsafeCell<ULONG>,
    control_flags: UnsafeCell<ULONG>,
}

impl ReceiveOut {
    pub fn new() -> Box<ReceiveOut> {
        Box::new(ReceiveOut {
            from: Addr::empty(),
            control_length: UnsafeCell::new(0xAAAA),
            control_flags: UnsafeCell::new(0xAAAA),
        })
    }

    /// `ControlLength` as the provider left it.
    pub fn control_length(&self) -> ULONG {
        // SAFETY: read once the IRP completed, when the provider no longer writes it.
        unsafe { *self.control_length.get() }
    }

    /// `ControlFlags` as the provider left it.
    pub fn control_flags(&self) -> ULONG {
        // SAFETY: as above.
        unsafe { *self.control_flags.get() }
    }
}

/// `WskReceiveFrom` into `buf[..len]` on `op`, with every optional output; returns what the call
/// returned.
pub fn receive_from(socket: PWSK_SOCKET, buf: &PoolBuf, len: usize, out: &ReceiveOut, op: &IrpOp) -> NTSTATUS {
    let wsk = op.lend(buf.wsk(0, len));
    let f = dgram(socket).WskReceiveFrom.expect("WskReceiveFrom");
    // SAFETY: valid socket; the buffer, its WSK_BUF (kept by `op`), the outputs and the IRP outlive
    // the operation.
    unsafe {
        f(
            socket,
            wsk,
            0,
            out.from.ptr(),
            out.control_length.get(),
            ptr::null_mut(),
            out.control_flags.get(),
            op.start(),
        )
    }
}

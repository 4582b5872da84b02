//! Datagram (UDP) sockets of the WSK provider on the deterministic in-memory network, driven through
//! the raw ABI: `WskSocket(WSK_FLAG_DATAGRAM_SOCKET)`, `WskBind`, `WskSendTo`, `WskReceiveFrom`,
//! `WskGetLocalAddress`, close and cancellation, with the test playing the remote hosts
//! ([`UdpPeer`]); and a negative test for every rule the provider enforces on these calls. Every
//! test passes under each completion schedule (results are waited for, never assumed inline), and
//! under Miri (`cargo +nightly miri test -p wdm-async-nt --test wsk_datagram`).
#![cfg(not(target_os = "windows"))]

mod wsk_support;

use nt::emu::wsk::{Completion, MemoryNetwork, OpKind, UdpPeer};
use nt::emu::{self, Rule};
use nt::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use wsk_support::datagram::*;
use wsk_support::*;

const V4: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// A network, a registration, one driver datagram socket bound to 127.0.0.1:0 and one peer.
fn setup() -> (MemoryNetwork, Client, PWSK_SOCKET, SocketAddr, UdpPeer) {
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (socket, local) = udp_socket(&client, V4, true);
    assert_eq!(local.ip(), Ipv4Addr::LOCALHOST);
    assert_ne!(local.port(), 0, "port 0 binds an ephemeral port");
    let peer = net.bind_udp(V4).expect("peer bind");
    (net, client, socket, local, peer)
}

/// A pending-or-final return of a call whose result is read from its IRP.
fn pending_or(returned: NTSTATUS, status: NTSTATUS) {
    assert!(
        returned == status || returned == STATUS_PENDING,
        "returned {returned:#x}, completed with {status:#x}"
    );
}

#[test]
fn a_datagram_goes_to_the_peer_and_one_comes_back_with_its_sender() {
    let _session = emu::session();
    let (_net, client, socket, local, peer) = setup();
    let (returned, status, sent) = send_to_wait(socket, b"ping", peer.local_addr());
    pending_or(returned, status);
    assert_eq!((status, sent), (STATUS_SUCCESS, 4));
    assert_eq!(peer.receive_from(), Some((b"ping".to_vec(), local)));
    assert_eq!(peer.receive_from(), None, "one datagram, delivered once");

    // A receive waiting for a datagram completes when the peer sends one.
    let buf = PoolBuf::new(64);
    let out = ReceiveOut::new();
    let op = IrpOp::new();
    assert_eq!(receive_from(socket, &buf, 64, &out, &op), STATUS_PENDING);
    assert!(!op.is_done());
    peer.send_to(b"pong!", local);
    assert_eq!(op.wait(), (STATUS_SUCCESS, 5));
    assert_eq!(&buf.bytes()[..5], b"pong!");
    assert_eq!(out.from.get(), peer.local_addr());
    assert_eq!(out.control_length(), 0, "no control information");
    assert_eq!(out.control_flags(), 0, "not truncated");

    // A datagram already there is received by the next call (inline or not, as scheduled).
    peer.send_to(b"again", local);
    let returned = receive_from(socket, &buf, 64, &out, &op);
    let (status, n) = op.wait();
    pending_or(returned, status);
    assert_eq!((status, n), (STATUS_SUCCESS, 5));
    assert_eq!(close(socket), STATUS_SUCCESS);
    client.deregister();
}

/// Datagrams keep their boundaries and order; pending receives are served in the order queued.
#[test]
fn datagrams_keep_their_boundaries_and_pending_receives_complete_in_order() {
    let _session = emu::session();
    let (_net, client, socket, local, peer) = setup();
    let (a, b) = (PoolBuf::new(16), PoolBuf::new(16));
    let (out_a, out_b) = (ReceiveOut::new(), ReceiveOut::new());
    let (op_a, op_b) = (IrpOp::new(), IrpOp::new());
    assert_eq!(receive_from(socket, &a, 16, &out_a, &op_a), STATUS_PENDING);
    assert_eq!(receive_from(socket, &b, 16, &out_b, &op_b), STATUS_PENDING);
    peer.send_to(b"one", local);
    peer.send_to(b"second", local);
    assert_eq!(op_a.wait(), (STATUS_SUCCESS, 3));
    assert_eq!(op_b.wait(), (STATUS_SUCCESS, 6));
    assert_eq!(&a.bytes()[..3], b"one");
    assert_eq!(&b.bytes()[..6], b"second");
    assert_eq!(close(socket), STATUS_SUCCESS);
    client.deregister();
}

/// A datagram longer than the buffer is truncated to it and flagged MSG_TRUNC (documented),
/// completed with STATUS_BUFFER_OVERFLOW or STATUS_SUCCESS (invented, see `datagram.rs`); the rest
/// is lost.
#[test]
fn a_datagram_longer_than_the_buffer_is_truncated_and_flagged() {
    let _session = emu::session();
    let (_net, client, socket, local, peer) = setup();
    peer.send_to(b"0123456789", local);
    peer.send_to(b"xy", local);
    let buf = PoolBuf::new(8);
    let out = ReceiveOut::new();
    let op = IrpOp::new();
    let returned = receive_from(socket, &buf, 4, &out, &op);
    let (status, n) = op.wait();
    pending_or(returned, status);
    // Either status, as the schedule decides (invented, see `datagram.rs`); the flag always.
    assert!(
        status == STATUS_BUFFER_OVERFLOW || status == STATUS_SUCCESS,
        "{status:#x}"
    );
    assert_eq!(n, 4);
    assert_eq!(&buf.bytes()[..4], b"0123");
    assert_eq!(&buf.bytes()[4..], &[0; 4], "nothing past the WSK_BUF's length");
    assert_eq!(out.control_flags() & MSG_TRUNC, MSG_TRUNC);
    let returned = receive_from(socket, &buf, 8, &out, &op);
    let (status, n) = op.wait();
    pending_or(returned, status);
    assert_eq!((status, n), (STATUS_SUCCESS, 2), "the truncated rest is gone");
    assert_eq!(&buf.bytes()[..2], b"xy");
    assert_eq!(out.control_flags(), 0);
    assert_eq!(close(socket), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn an_ipv6_socket_without_v6only_receives_ipv4_datagrams_from_mapped_senders() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (socket, local) = udp_socket(&client, SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)), false);
    let v4_peer = net.bind_udp(V4).unwrap();
    let v6_peer = net.bind_udp(SocketAddr::from((Ipv6Addr::LOCALHOST, 0))).unwrap();
    v4_peer.send_to(b"four", SocketAddr::from((Ipv4Addr::LOCALHOST, local.port())));
    v6_peer.send_to(b"six", SocketAddr::from((Ipv6Addr::LOCALHOST, local.port())));
    let buf = PoolBuf::new(16);
    let out = ReceiveOut::new();
    let op = IrpOp::new();
    for (data, from) in [
        (
            &b"four"[..],
            SocketAddr::new(Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(), v4_peer.local_addr().port()),
        ),
        (&b"six"[..], v6_peer.local_addr()),
    ] {
        let returned = receive_from(socket, &buf, 16, &out, &op);
        let (status, n) = op.wait();
        pending_or(returned, status);
        assert_eq!((status, &buf.bytes()[..n]), (STATUS_SUCCESS, data));
        assert_eq!(out.from.get(), from);
    }
    // And back to the IPv6 peer.
    let (_, status, _) = send_to_wait(socket, b"back", v6_peer.local_addr());
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(v6_peer.receive_from().map(|(d, _)| d), Some(b"back".to_vec()));
    // And to the IPv4 peer through its IPv4-mapped address, sent from IPv4 loopback.
    let mapped = SocketAddr::new(Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(), v4_peer.local_addr().port());
    let (_, status, _) = send_to_wait(socket, b"mapped", mapped);
    assert_eq!(status, STATUS_SUCCESS);
    let from = SocketAddr::from((Ipv4Addr::LOCALHOST, local.port()));
    assert_eq!(v4_peer.receive_from(), Some((b"mapped".to_vec(), from)));
    assert_eq!(close(socket), STATUS_SUCCESS);
    client.deregister();
}

/// One driver socket sends to another: the receiver's pending receive completes (after the
/// sender's pump, never under its lock).
#[test]
fn a_datagram_between_two_driver_sockets_completes_the_pending_receive() {
    let _session = emu::session();
    let (_net, client, a, _, _peer) = setup();
    let (b, b_addr) = udp_socket(&client, V4, true);
    let buf = PoolBuf::new(16);
    let out = ReceiveOut::new();
    let op = IrpOp::new();
    assert_eq!(receive_from(b, &buf, 16, &out, &op), STATUS_PENDING);
    let (_, status, _) = send_to_wait(a, b"hop", b_addr);
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(op.wait(), (STATUS_SUCCESS, 3));
    assert_eq!(close(a), STATUS_SUCCESS);
    assert_eq!(close(b), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn close_completes_a_pending_receive_with_status_cancelled() {
    let _session = emu::session();
    let (_net, client, socket, local, peer) = setup();
    let buf = PoolBuf::new(16);
    let out = ReceiveOut::new();
    let op = IrpOp::new();
    assert_eq!(receive_from(socket, &buf, 16, &out, &op), STATUS_PENDING);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(op.wait(), (STATUS_CANCELLED, 0));
    // The port is unbound: a datagram to it is dropped, and the address can be bound again.
    peer.send_to(b"late", local);
    let (again, _) = udp_socket(&client, local, true);
    assert_eq!(close(again), STATUS_SUCCESS);
    client.deregister();
}

/// Invented (see `datagram.rs`): a cancelled receive leaves a datagram socket usable.
#[test]
fn io_cancel_irp_completes_a_pending_receive_and_the_socket_still_receives() {
    let _session = emu::session();
    let (_net, client, socket, local, peer) = setup();
    let buf = PoolBuf::new(16);
    let out = ReceiveOut::new();
    let op = IrpOp::new();
    assert_eq!(receive_from(socket, &buf, 16, &out, &op), STATUS_PENDING);
    assert!(op.cancel(), "a cancel routine was armed");
    assert_eq!(op.wait(), (STATUS_CANCELLED, 0));
    peer.send_to(b"after", local);
    let returned = receive_from(socket, &buf, 16, &out, &op);
    let (status, n) = op.wait();
    pending_or(returned, status);
    assert_eq!((status, n), (STATUS_SUCCESS, 5));
    assert_eq!(close(socket), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn held_datagram_operations_complete_when_the_test_releases_them() {
    let _session = emu::session();
    let (net, client, socket, local, peer) = setup();
    net.script(OpKind::SendTo, Completion::Hold);
    net.script(OpKind::ReceiveFrom, Completion::Hold);
    let data = PoolBuf::with(b"held");
    let to = Addr::new(peer.local_addr());
    let send_op = IrpOp::new();
    assert_eq!(send_to(socket, &data, 4, &to, &send_op), STATUS_PENDING);
    let buf = PoolBuf::new(16);
    let out = ReceiveOut::new();
    let op = IrpOp::new();
    assert_eq!(receive_from(socket, &buf, 16, &out, &op), STATUS_PENDING);
    peer.send_to(b"waits", local);
    assert!(!op.is_done() && !send_op.is_done(), "both held");
    assert_eq!(peer.receive_from(), None, "a held send has not gone out");
    for held in net.held() {
        assert!(net.release(held));
    }
    assert_eq!(send_op.wait(), (STATUS_SUCCESS, 4));
    assert_eq!(peer.receive_from().map(|(d, _)| d), Some(b"held".to_vec()));
    assert_eq!(op.wait(), (STATUS_SUCCESS, 5));
    assert_eq!(close(socket), STATUS_SUCCESS);
    client.deregister();
}

/// `WskSendTo` reads `RemoteAddress` again when it sends the datagram (invented, the harsher
/// reading): a client must keep it unchanged until the IRP completes, and a held send that the
/// client readdressed meanwhile goes to the new address.
#[test]
fn a_send_to_reads_its_remote_address_when_it_sends() {
    let _session = emu::session();
    let (net, client, socket, _local, peer) = setup();
    let other = net.bind_udp(V4).expect("second peer");
    net.script(OpKind::SendTo, Completion::Hold);
    let data = PoolBuf::with(b"moved");
    let to = Addr::new(peer.local_addr());
    let op = IrpOp::new();
    assert_eq!(send_to(socket, &data, 5, &to, &op), STATUS_PENDING);
    let moved = Addr::new(other.local_addr());
    // SAFETY: both are whole SOCKADDR_STORAGEs; written through the pointer the provider holds.
    unsafe {
        std::ptr::copy_nonoverlapping(
            moved.ptr().cast::<u8>(),
            to.ptr().cast::<u8>(),
            size_of::<SOCKADDR_STORAGE>(),
        )
    };
    for held in net.held() {
        assert!(net.release(held));
    }
    assert_eq!(op.wait(), (STATUS_SUCCESS, 5));
    assert_eq!(other.receive_from().map(|(d, _)| d), Some(b"moved".to_vec()));
    assert_eq!(peer.receive_from(), None);
    assert_eq!(close(socket), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn a_datagram_socket_needs_sock_dgram_and_ipproto_udp() {
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let client = Client::register();
    for (socket_type, protocol) in [(SOCK_STREAM, IPPROTO_UDP), (SOCK_DGRAM, IPPROTO_TCP)] {
        let (status, socket) = try_udp_socket(&client, AF_INET, socket_type, protocol);
        assert_eq!(status, STATUS_NOT_SUPPORTED);
        assert!(socket.is_null());
    }
    client.deregister();
}

// ---- Negative tests: each rule enforced on the datagram calls fires. ----

/// The one violation recorded since the last call, which must be of `rule`.
fn take_one(rule: Rule) -> emu::Violation {
    let mut taken = emu::take_violations();
    assert_eq!(taken.len(), 1, "{taken:#?}");
    assert_eq!(taken[0].rule, rule, "{}", taken[0]);
    taken.remove(0)
}

/// `Flags` of WskSendTo and WskReceiveFrom is reserved: nonzero is a [`Rule::InvalidParameter`].
#[test]
fn a_nonzero_reserved_flags_is_reported() {
    let _session = emu::session();
    let (_net, client, socket, _, peer) = setup();
    emu::expect_violations();
    let buf = PoolBuf::new(8);
    let mut wsk = buf.wsk(0, 8);
    let to = Addr::new(peer.local_addr());
    let out = ReceiveOut::new();
    let op = IrpOp::new();
    // SAFETY: valid socket, buffer, address and IRP, all outliving the call (waited for).
    let returned =
        unsafe { dgram(socket).WskSendTo.unwrap()(socket, &mut wsk, 1, to.ptr(), 0, std::ptr::null_mut(), op.start()) };
    pending_or(returned, STATUS_INVALID_PARAMETER);
    assert_eq!(op.wait(), (STATUS_INVALID_PARAMETER, 0));
    assert!(take_one(Rule::InvalidParameter).message().contains("WskSendTo"));
    // SAFETY: as above.
    let returned = unsafe {
        dgram(socket).WskReceiveFrom.unwrap()(
            socket,
            &mut wsk,
            WSK_FLAG_WAITALL,
            out.from.ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            op.start(),
        )
    };
    pending_or(returned, STATUS_INVALID_PARAMETER);
    assert_eq!(op.wait(), (STATUS_INVALID_PARAMETER, 0));
    assert!(take_one(Rule::InvalidParameter).message().contains("WskReceiveFrom"));
    assert_eq!(peer.receive_from(), None, "nothing was sent");
    assert_eq!(close(socket), STATUS_SUCCESS);
    client.deregister();
}

/// WskSendTo without a remote address (no fixed one can be set here), or to an address of the other
/// family: a [`Rule::InvalidParameter`].
#[test]
fn a_send_to_without_an_address_or_to_another_family_is_reported() {
    let _session = emu::session();
    let (_net, client, socket, _, peer) = setup();
    emu::expect_violations();
    let buf = PoolBuf::with(b"x");
    let mut wsk = buf.wsk(0, 1);
    let op = IrpOp::new();
    // SAFETY: valid socket, buffer and IRP; the NULL address is what is checked.
    let returned = unsafe {
        dgram(socket).WskSendTo.unwrap()(
            socket,
            &mut wsk,
            0,
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
            op.start(),
        )
    };
    pending_or(returned, STATUS_INVALID_PARAMETER);
    assert_eq!(op.wait(), (STATUS_INVALID_PARAMETER, 0));
    assert!(
        take_one(Rule::InvalidParameter)
            .message()
            .contains("NULL RemoteAddress")
    );
    let v6 = Addr::new(SocketAddr::from((Ipv6Addr::LOCALHOST, peer.local_addr().port())));
    let returned = send_to(socket, &buf, 1, &v6, &op);
    pending_or(returned, STATUS_INVALID_PARAMETER);
    assert_eq!(op.wait(), (STATUS_INVALID_PARAMETER, 0));
    assert!(take_one(Rule::InvalidParameter).message().contains("another family"));
    assert_eq!(close(socket), STATUS_SUCCESS);
    client.deregister();
}

/// A WSK_BUF past its MDL chain ([`Rule::WskBufBeyondMdl`]) and a NULL IRP
/// ([`Rule::InvalidParameter`]) are reported for the datagram calls as for the stream ones.
#[test]
fn a_buffer_past_its_mdl_and_a_null_irp_are_reported_for_datagram_calls() {
    let _session = emu::session();
    let (_net, client, socket, _, peer) = setup();
    emu::expect_violations();
    let buf = PoolBuf::new(8);
    let mut wsk = buf.wsk(0, 8);
    wsk.Length = 9;
    let to = Addr::new(peer.local_addr());
    let out = ReceiveOut::new();
    let op = IrpOp::new();
    let table = dgram(socket);
    let null = std::ptr::null_mut();
    // SAFETY (each call): valid socket, buffer and addresses; the provider must not touch the MDL's
    // memory past its end, and rejects the NULL IRP before queuing anything.
    unsafe {
        let returned = table.WskSendTo.unwrap()(socket, &mut wsk, 0, to.ptr(), 0, null, op.start());
        pending_or(returned, STATUS_INVALID_PARAMETER);
        assert_eq!(op.wait(), (STATUS_INVALID_PARAMETER, 0));
        take_one(Rule::WskBufBeyondMdl);
        let returned = table.WskReceiveFrom.unwrap()(
            socket,
            &mut wsk,
            0,
            out.from.ptr(),
            null.cast(),
            null,
            null.cast(),
            op.start(),
        );
        pending_or(returned, STATUS_INVALID_PARAMETER);
        assert_eq!(op.wait(), (STATUS_INVALID_PARAMETER, 0));
        take_one(Rule::WskBufBeyondMdl);
        wsk.Length = 8;
        assert_eq!(
            table.WskSendTo.unwrap()(socket, &mut wsk, 0, to.ptr(), 0, null, null.cast()),
            STATUS_INVALID_PARAMETER
        );
        assert!(
            take_one(Rule::InvalidParameter)
                .message()
                .contains("WskSendTo with a NULL Irp")
        );
        let returned = table.WskReceiveFrom.unwrap()(
            socket,
            &mut wsk,
            0,
            null.cast(),
            null.cast(),
            null,
            null.cast(),
            null.cast(),
        );
        assert_eq!(returned, STATUS_INVALID_PARAMETER);
        assert!(
            take_one(Rule::InvalidParameter)
                .message()
                .contains("WskReceiveFrom with a NULL Irp")
        );
    }
    assert_eq!(peer.receive_from(), None);
    assert_eq!(close(socket), STATUS_SUCCESS);
    client.deregister();
}

/// A call on a closed datagram socket is a [`Rule::CallAfterClose`].
#[test]
fn a_datagram_call_after_close_is_reported() {
    let _session = emu::session();
    let (_net, client, socket, _, peer) = setup();
    assert_eq!(close(socket), STATUS_SUCCESS);
    emu::expect_violations();
    let (_, status, _) = send_to_wait(socket, b"x", peer.local_addr());
    assert_ne!(status, STATUS_SUCCESS);
    assert!(take_one(Rule::CallAfterClose).message().contains("WskSendTo"));
    client.deregister();
}

/// Invented statuses (see `datagram.rs`): sending or receiving before `WskBind`, a datagram larger
/// than UDP allows, control information to send.
#[test]
fn an_unbound_socket_and_an_oversized_datagram_fail() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let peer = net.bind_udp(V4).unwrap();
    let (status, unbound) = try_udp_socket(&client, AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    assert_eq!(status, STATUS_SUCCESS);
    let (_, status, _) = send_to_wait(unbound, b"x", peer.local_addr());
    assert_eq!(status, STATUS_INVALID_DEVICE_STATE);
    let buf = PoolBuf::new(8);
    let out = ReceiveOut::new();
    let op = IrpOp::new();
    let returned = receive_from(unbound, &buf, 8, &out, &op);
    pending_or(returned, STATUS_INVALID_DEVICE_STATE);
    assert_eq!(op.wait(), (STATUS_INVALID_DEVICE_STATE, 0));
    assert_eq!(close(unbound), STATUS_SUCCESS);

    let (socket, _) = udp_socket(&client, V4, true);
    let big = PoolBuf::new(65508);
    let to = Addr::new(peer.local_addr());
    let returned = send_to(socket, &big, 65508, &to, &op);
    pending_or(returned, STATUS_INVALID_BUFFER_SIZE);
    assert_eq!(op.wait(), (STATUS_INVALID_BUFFER_SIZE, 0));
    let returned = send_to(socket, &big, 65507, &to, &op);
    let (status, sent) = op.wait();
    pending_or(returned, status);
    assert_eq!(
        (status, sent),
        (STATUS_SUCCESS, 65507),
        "the largest IPv4 datagram goes"
    );
    assert_eq!(peer.receive_from().map(|(d, _)| d.len()), Some(65507));
    // Control information to send is not emulated.
    let mut wsk = big.wsk(0, 1);
    let mut control = [0u8; 16];
    // SAFETY: valid socket, buffer, address, control buffer and IRP, all outliving the call.
    let returned = unsafe {
        dgram(socket).WskSendTo.unwrap()(
            socket,
            &mut wsk,
            0,
            to.ptr(),
            16,
            control.as_mut_ptr().cast(),
            op.start(),
        )
    };
    pending_or(returned, STATUS_NOT_SUPPORTED);
    assert_eq!(op.wait(), (STATUS_NOT_SUPPORTED, 0));
    assert_eq!(peer.receive_from(), None);
    assert_eq!(close(socket), STATUS_SUCCESS);
    client.deregister();
}

/// A datagram socket left open at `WskDeregister` is in the leak report, with its pending receive.
#[test]
fn an_open_datagram_socket_at_deregister_is_reported() {
    let _session = emu::session();
    let (_net, client, socket, _, _peer) = setup();
    let buf = PoolBuf::new(8);
    let out = ReceiveOut::new();
    let op = IrpOp::new();
    assert_eq!(receive_from(socket, &buf, 8, &out, &op), STATUS_PENDING);
    emu::expect_violations();
    nt::emu::wsk::set_deregister_timeout(std::time::Duration::ZERO);
    client.deregister();
    let taken = emu::take_violations();
    assert_eq!(taken.len(), 1, "{taken:#?}");
    assert!(taken[0].message().contains("datagram"), "{}", taken[0]);
    assert!(taken[0].message().contains("1 pending IRP"), "{}", taken[0]);
    assert_eq!(op.result().0, STATUS_CANCELLED);
}

/// Wine 8.0's netio creates no datagram sockets: `WskSocket` completes the IRP with
/// STATUS_NOT_IMPLEMENTED.
#[test]
fn a_provider_like_wine8_refuses_datagram_sockets() {
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    emu::wsk::set_wine8_netio(true);
    let client = Client::register();
    let (status, socket) = try_udp_socket(&client, AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    assert_eq!(status, STATUS_NOT_IMPLEMENTED);
    assert!(socket.is_null());
    client.deregister();
}

/// The in-memory network refuses a binding that overlaps a bound one of the same port (invented,
/// as a host stack without SO_REUSEADDR): a wildcard and an address it covers, in either order, and
/// a dual-stack IPv6 wildcard and an IPv4 address; other families or ports are free.
#[test]
fn an_overlapping_datagram_binding_is_refused() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let wildcard = net.bind_udp("0.0.0.0:0".parse().unwrap()).unwrap();
    let port = wildcard.local_addr().port();
    let at = |ip: &str| SocketAddr::new(ip.parse().unwrap(), port);
    assert_eq!(
        net.bind_udp(at("127.0.0.1")).err(),
        Some(STATUS_ADDRESS_ALREADY_ASSOCIATED)
    );
    assert_eq!(
        net.bind_udp(at("0.0.0.0")).err(),
        Some(STATUS_ADDRESS_ALREADY_ASSOCIATED)
    );
    // A peer's IPv6 wildcard is dual-stack: it would take IPv4 datagrams too.
    assert_eq!(net.bind_udp(at("::")).err(), Some(STATUS_ADDRESS_ALREADY_ASSOCIATED));
    let v6 = net.bind_udp(at("::1")).expect("another family");
    drop(wildcard);
    let specific = net.bind_udp(at("127.0.0.1")).expect("free again");
    assert_eq!(
        net.bind_udp(at("0.0.0.0")).err(),
        Some(STATUS_ADDRESS_ALREADY_ASSOCIATED)
    );
    drop((specific, v6));
}

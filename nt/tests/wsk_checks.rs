//! The WSK provider's checks, each with a negative test (recording mode), and registration/capture
//! semantics. Runs on the in-memory transport, so it is Miri-clean too.
#![cfg(not(target_os = "windows"))]

mod wsk_support;

use nt::emu::wsk::{MemoryNetwork, set_deregister_timeout, set_provider_ready, settle};
use nt::emu::{self, Rule};
use nt::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use wsk_support::datagram::{ReceiveOut, receive_from, udp_socket};
use wsk_support::*;

/// A connected socket on a fresh in-memory network (the peer stays connected).
fn connected(client: &Client, net: &MemoryNetwork) -> (PWSK_SOCKET, PWSK_SOCKET, nt::emu::wsk::Peer) {
    let listener = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    bind(listener, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let peer = net.connect(local_address(listener)).unwrap();
    let op = IrpOp::new();
    let remote = Addr::empty();
    // Inline, or later under a schedule that defers completions.
    let returned = accept(listener, &remote, &op);
    assert!(returned == STATUS_SUCCESS || returned == STATUS_PENDING);
    let (status, information) = op.wait();
    assert_eq!(status, STATUS_SUCCESS);
    (
        listener,
        std::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information),
        peer,
    )
}

#[test]
fn a_call_on_a_socket_after_wsk_close_socket_is_reported() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, _peer) = connected(&client, &net);
    assert_eq!(close(socket), STATUS_SUCCESS);
    emu::expect_violations();
    let op = IrpOp::new();
    let buf = PoolBuf::new(8);
    // Harmless outcome in recording mode: the IRP completes with STATUS_INVALID_DEVICE_STATE.
    assert_eq!(receive(socket, &buf, 0, 8, 0, &op), STATUS_INVALID_DEVICE_STATE);
    assert_eq!(op.result().0, STATUS_INVALID_DEVICE_STATE);
    let taken = emu::take_violations();
    assert_eq!(taken.len(), 1, "{taken:#?}");
    assert_eq!(taken[0].rule, Rule::CallAfterClose);
    assert!(taken[0].message().contains("WskReceive"), "{}", taken[0]);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn wsk_close_socket_while_another_call_is_in_progress_is_reported() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, _peer) = connected(&client, &net);
    emu::expect_violations();
    let paused = nt::emu::wsk::pause_next_call(socket).expect("open socket");
    let in_progress = SendSocket(socket);
    let other = std::thread::spawn(move || {
        let socket = in_progress;
        // Stops inside the provider until released: "in progress" for the close below.
        remote_address(socket.0)
    });
    assert!(paused.wait_entered(BOUND), "the other call never entered the provider");
    // Harmless outcome: the close fails and the socket stays open.
    assert_eq!(close(socket), STATUS_INVALID_DEVICE_STATE);
    let taken = emu::take_violations();
    assert_eq!(taken.len(), 1, "{taken:#?}");
    assert_eq!(taken[0].rule, Rule::CloseWhileCallInProgress);
    paused.release();
    other.join().unwrap();
    // Pending IRPs are not "calls in progress": close cancels them.
    let op = IrpOp::new();
    let buf = PoolBuf::new(8);
    assert_eq!(receive(socket, &buf, 0, 8, 0, &op), STATUS_PENDING);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(op.result().0, STATUS_CANCELLED);
    assert!(emu::take_violations().is_empty());
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

/// A socket pointer moved to the thread that makes the concurrent call.
struct SendSocket(PWSK_SOCKET);
// SAFETY: WSK sockets may be used from any thread; the test joins the thread before closing it.
unsafe impl Send for SendSocket {}

/// An IRP and an address buffer lent to a racing thread by pointer: moving the IrpOp itself would
/// move its event while the completion routine may be using it.
struct Lent(*const IrpOp, *const Addr);
// SAFETY: the test owns both, does not move them until the thread is joined and the IRP completed,
// and the thread only calls `&self` methods (IRPs and events are usable from any thread).
unsafe impl Send for Lent {}

#[test]
fn a_socket_and_its_pending_irp_still_open_at_wsk_deregister_are_reported() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, peer) = connected(&client, &net);
    assert_eq!(close(listener), STATUS_SUCCESS);
    let op = IrpOp::new();
    let buf = PoolBuf::new(8);
    assert_eq!(receive(socket, &buf, 0, 8, 0, &op), STATUS_PENDING);
    emu::expect_violations();
    set_deregister_timeout(Duration::ZERO);
    client.deregister();
    let taken = emu::take_violations();
    assert_eq!(taken.len(), 1, "{taken:#?}");
    assert!(matches!(taken[0].rule, Rule::Other(text) if text.contains("still open at WskDeregister")));
    assert!(taken[0].message().contains("1 pending IRP"), "{}", taken[0]);
    // The provider then force-closed it: the pending IRP was cancelled, the peer reset.
    assert_eq!(op.result().0, STATUS_CANCELLED);
    assert!(peer.was_reset());
}

#[test]
fn an_open_socket_without_deregister_is_in_the_leak_report() {
    let session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let socket = client.socket(AF_INET, WSK_FLAG_CONNECTION_SOCKET);
    let report = session.leak_report();
    assert_eq!(report.count("WSK socket"), 1, "{report}");
    assert_eq!(report.count("WSK registration"), 1, "{report}");
    assert_eq!(close(socket), STATUS_SUCCESS);
    client.deregister();
    drop(net);
    assert!(session.leak_report().is_empty());
}

#[test]
fn capture_honours_wsk_no_wait_and_timeouts() {
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let mut client = Client::register_only();
    set_provider_ready(false);
    assert_eq!(client.capture(WSK_NO_WAIT), STATUS_DEVICE_NOT_READY);
    assert_eq!(client.capture(1), STATUS_DEVICE_NOT_READY, "times out after 1 ms");
    set_provider_ready(true);
    assert_eq!(client.capture(WSK_INFINITE_WAIT), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn a_waiting_capture_succeeds_when_the_provider_becomes_ready() {
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let client = Client::register_only();
    set_provider_ready(false);
    let waiter = std::thread::spawn(move || {
        let mut client = client;
        let status = client.capture(WSK_INFINITE_WAIT);
        (client, status)
    });
    set_provider_ready(true);
    let (client, status) = waiter.join().unwrap();
    assert_eq!(status, STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn a_client_asking_for_another_major_version_gets_no_interface() {
    static V2: WSK_CLIENT_DISPATCH = WSK_CLIENT_DISPATCH {
        Version: MAKE_WSK_VERSION(2, 0),
        Reserved: 0,
        WskClientEvent: None,
    };
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let mut client_npi = WSK_CLIENT_NPI {
        ClientContext: core::ptr::null_mut(),
        Dispatch: &V2,
    };
    let mut registration = WSK_REGISTRATION::zeroed();
    let mut npi = WSK_PROVIDER_NPI::zeroed();
    // SAFETY: the structures outlive the registration, which ends before they go.
    unsafe {
        assert_eq!(WskRegister(&mut client_npi, &mut registration), STATUS_SUCCESS);
        assert_eq!(
            WskCaptureProviderNPI(&mut registration, WSK_NO_WAIT, &mut npi),
            STATUS_NOINTERFACE
        );
        WskDeregister(&mut registration);
    }
}

#[test]
fn release_without_capture_and_a_capture_left_at_deregister_are_reported() {
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let mut client = Client::register_only();
    emu::expect_violations();
    // SAFETY: registered storage.
    unsafe { WskReleaseProviderNPI(client.registration()) };
    assert_eq!(emu::take_violations().len(), 1);
    assert_eq!(client.capture(WSK_NO_WAIT), STATUS_SUCCESS);
    set_deregister_timeout(Duration::ZERO);
    // SAFETY: registered storage; the capture is deliberately not released.
    unsafe { WskDeregister(client.registration()) };
    let taken = emu::take_violations();
    assert_eq!(taken.len(), 1, "{taken:#?}");
    assert!(taken[0].message().contains("capture"), "{}", taken[0]);
    drop(client);
}

/// The one violation recorded since the last call, which must be of `rule`.
fn take_one(rule: Rule) -> emu::Violation {
    let mut taken = emu::take_violations();
    assert_eq!(taken.len(), 1, "{taken:#?}");
    assert_eq!(taken[0].rule, rule, "{}", taken[0]);
    taken.remove(0)
}

/// Negative test of [`Rule::WskBufBeyondMdl`]. Wine's netio test (which also runs on Windows)
/// notes that a send whose WSK_BUF Length exceeds its MDL blue-screens Windows.
#[test]
fn a_wsk_buf_running_past_its_mdl_is_reported() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, _peer) = connected(&client, &net);
    emu::expect_violations();
    let buf = PoolBuf::new(16);
    let op = IrpOp::new();
    for (offset, length) in [(0, 32), (8, 9), (16, 1)] {
        let mut wsk = buf.wsk(0, 16);
        wsk.Offset = offset;
        wsk.Length = length;
        let send = conn(socket).WskSend.expect("WskSend");
        // SAFETY: valid socket and IRP; the MDL is live (the provider must not touch it past its end).
        let returned = unsafe { send(socket, &mut wsk, 0, op.start()) };
        // Harmless outcome in recording mode: the IRP fails with STATUS_INVALID_PARAMETER (inline,
        // or later as the completion schedule decides).
        assert!(
            returned == STATUS_INVALID_PARAMETER || returned == STATUS_PENDING,
            "{returned:#x}"
        );
        assert_eq!(op.wait(), (STATUS_INVALID_PARAMETER, 0));
        let v = take_one(Rule::WskBufBeyondMdl);
        assert!(v.message().contains("describes 16"), "{v}");
        let receive = conn(socket).WskReceive.expect("WskReceive");
        // SAFETY: as above.
        let returned = unsafe { receive(socket, &mut wsk, 0, op.start()) };
        assert!(
            returned == STATUS_INVALID_PARAMETER || returned == STATUS_PENDING,
            "{returned:#x}"
        );
        assert_eq!(op.wait(), (STATUS_INVALID_PARAMETER, 0));
        take_one(Rule::WskBufBeyondMdl);
    }
    // Exactly the MDL's length is fine.
    let status = send(socket, &buf, 8, 8, &op);
    assert!(status == STATUS_SUCCESS || status == STATUS_PENDING, "{status:#x}");
    assert!(emu::take_violations().is_empty());
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

/// Negative test of [`Rule::AcceptAlreadyPending`]. Wine's netio test (which also runs on Windows)
/// notes that queuing a second WskAccept with another IRP hangs Windows.
#[test]
fn a_second_accept_pending_on_one_listening_socket_is_reported() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let listener = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    bind(listener, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let (first, second) = (IrpOp::new(), IrpOp::new());
    let remote = Addr::empty();
    assert_eq!(accept(listener, &remote, &first), STATUS_PENDING);
    emu::expect_violations();
    // Harmless outcome in recording mode: the second accept fails (inline, or later as the
    // completion schedule decides).
    let returned = accept(listener, &remote, &second);
    assert!(
        returned == STATUS_INVALID_DEVICE_STATE || returned == STATUS_PENDING,
        "{returned:#x}"
    );
    assert_eq!(second.wait(), (STATUS_INVALID_DEVICE_STATE, 0));
    take_one(Rule::AcceptAlreadyPending);
    // The first one is unaffected; once it has completed, the next accept is fine.
    let _peer = net.connect(local_address(listener)).unwrap();
    let (status, socket) = first.wait();
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(accept(listener, &remote, &second), STATUS_PENDING);
    assert!(emu::take_violations().is_empty());
    assert_eq!(close(std::ptr::with_exposed_provenance_mut(socket)), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    assert_eq!(second.wait(), (STATUS_CANCELLED, 0));
    client.deregister();
}

/// [`Rule::AcceptAlreadyPending`] across threads: of two `WskAccept` calls racing on one listening
/// socket, one is queued and the other reported, in every round. The check and the queueing are one
/// step under the socket's lock; when they were two, both racers could pass the check before either
/// was queued. That window was a few instructions wide: this test did not hit it in 900 rounds of
/// the old code, so it guards the property under load rather than proving the old race.
#[test]
fn of_two_accepts_racing_on_two_threads_one_is_queued_and_the_other_reported() {
    const ROUNDS: usize = if cfg!(miri) { 4 } else { 300 };
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let client = Client::register();
    let listener = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    bind(listener, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    emu::expect_violations();
    for round in 0..ROUNDS {
        // Owned here and not moved until both threads are joined and the IRPs completed: the
        // completion routine holds a pointer into each IrpOp.
        let ops = [IrpOp::new(), IrpOp::new()];
        let remotes = [Addr::empty(), Addr::empty()];
        let barrier = std::sync::Barrier::new(2);
        let returned: Vec<NTSTATUS> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..2)
                .map(|i| {
                    let lent = Lent(&ops[i], &remotes[i]);
                    let (barrier, socket) = (&barrier, SendSocket(listener));
                    scope.spawn(move || {
                        let (lent, socket) = (lent, socket);
                        barrier.wait();
                        // SAFETY: the IrpOp and Addr outlive this scope and are only read.
                        unsafe { accept(socket.0, &*lent.1, &*lent.0) }
                    })
                })
                .collect();
            racers.into_iter().map(|racer| racer.join().unwrap()).collect()
        });
        take_one(Rule::AcceptAlreadyPending);
        // The refused one failed (inline, or later as the schedule decides: `settle` delivers it);
        // the other one pends until cancelled.
        settle();
        let refused = ops
            .iter()
            .position(IrpOp::is_done)
            .unwrap_or_else(|| panic!("round {round}: neither accept was refused"));
        assert_eq!(ops[refused].result(), (STATUS_INVALID_DEVICE_STATE, 0), "round {round}");
        let queued = 1 - refused;
        assert!(!ops[queued].is_done(), "round {round}: both accepts ended");
        assert_eq!(returned[queued], STATUS_PENDING, "round {round}");
        assert!(ops[queued].cancel(), "round {round}: the queued accept is pending");
        assert_eq!(ops[queued].wait(), (STATUS_CANCELLED, 0), "round {round}");
        assert!(emu::take_violations().is_empty(), "round {round}");
    }
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

/// What Wine's netio test observes on Windows: WskSocket and WskGetAddressInfo return
/// STATUS_INVALID_PARAMETER for a NULL IRP (WskSocket before it looks at the client handle).
#[test]
fn a_null_irp_to_wsk_socket_or_wsk_get_address_info_gives_invalid_parameter() {
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let client = Client::register();
    // Recording mode only so that a report would fail an assertion here instead of aborting.
    emu::expect_violations();
    // SAFETY: the provider's static table.
    let dispatch = unsafe { &*client.npi.Dispatch };
    let socket = dispatch.WskSocket.expect("WskSocket");
    for handle in [client.npi.Client, std::ptr::null_mut()] {
        // SAFETY: a NULL IRP is rejected before anything else is used.
        let returned = unsafe {
            socket(
                handle,
                AF_INET,
                SOCK_STREAM,
                IPPROTO_TCP,
                WSK_FLAG_LISTEN_SOCKET,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(returned, STATUS_INVALID_PARAMETER);
    }
    let resolve = dispatch.WskGetAddressInfo.expect("WskGetAddressInfo");
    let mut result = std::ptr::null_mut();
    // SAFETY: as above; `result` is valid for a write.
    let returned = unsafe {
        resolve(
            client.npi.Client,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut result,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(returned, STATUS_INVALID_PARAMETER);
    let taken = emu::take_violations();
    assert!(taken.is_empty(), "{taken:#?}");
    client.deregister();
}

/// Negative test: a NULL IRP to a socket function that requires one is a [`Rule::InvalidParameter`]
/// (invented: what Windows does is not documented; then STATUS_INVALID_PARAMETER in recording mode).
#[test]
fn a_null_irp_to_a_socket_function_is_reported() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, _peer) = connected(&client, &net);
    emu::expect_violations();
    let null: PIRP = std::ptr::null_mut();
    let buf = PoolBuf::new(8);
    let mut wsk = buf.wsk(0, 8);
    let remote = Addr::empty();
    let wsk: *mut WSK_BUF = &mut wsk;
    // SAFETY (each call): valid sockets and buffers; the NULL IRP is rejected before anything is
    // queued.
    let calls: [(&str, &dyn Fn() -> NTSTATUS); 5] = [
        ("WskSend", &|| unsafe {
            conn(socket).WskSend.unwrap()(socket, wsk, 0, null)
        }),
        ("WskReceive", &|| unsafe {
            conn(socket).WskReceive.unwrap()(socket, wsk, 0, null)
        }),
        ("WskAccept", &|| unsafe {
            listen(listener).WskAccept.unwrap()(
                listener,
                0,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null_mut(),
                remote.ptr(),
                null,
            )
        }),
        ("WskGetRemoteAddress", &|| unsafe {
            conn(socket).WskGetRemoteAddress.unwrap()(socket, remote.ptr(), null)
        }),
        ("WskCloseSocket", &|| unsafe {
            basic(socket).WskCloseSocket.unwrap()(socket, null)
        }),
    ];
    for (function, call) in calls {
        assert_eq!(call(), STATUS_INVALID_PARAMETER, "{function}");
        let v = take_one(Rule::InvalidParameter);
        assert!(
            v.message().contains(function) && v.message().contains("NULL Irp"),
            "{v}"
        );
    }
    // Nothing happened: the socket is still open.
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

/// Negative test of the family check of `WskSocketConnect` ([`Rule::InvalidParameter`]): its local
/// and remote addresses must both be of the family of the socket it creates; the call then fails
/// with STATUS_INVALID_PARAMETER (recording mode) instead of connecting.
#[test]
fn wsk_socket_connect_with_addresses_of_two_families_is_reported() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let _listener = net.listen("[::1]:4711".parse().unwrap());
    let client = Client::register();
    emu::expect_violations();
    let local = Addr::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let remote = Addr::new("[::1]:4711".parse().unwrap());
    let op = IrpOp::new();
    assert_eq!(client.socket_connect(&local, &remote, &op), STATUS_INVALID_PARAMETER);
    assert_eq!(op.wait(), (STATUS_INVALID_PARAMETER, 0));
    take_one(Rule::InvalidParameter);
    client.deregister();
}

/// `WskReceive` (or `WskSend`) of `buf[..len]` with the caller's own `WSK_BUF` at `wsk` (kept by
/// the test, not by `op`, so that it can be changed or freed while the IRP pends).
fn receive_with(socket: PWSK_SOCKET, wsk: PWSK_BUF, op: &IrpOp) -> NTSTATUS {
    let f = conn(socket).WskReceive.expect("WskReceive");
    // SAFETY: valid socket and IRP; `wsk` is readable during the call (what happens to it later is
    // the test's point).
    unsafe { f(socket, wsk, 0, op.start()) }
}

fn send_with(socket: PWSK_SOCKET, wsk: PWSK_BUF, op: &IrpOp) -> NTSTATUS {
    let f = conn(socket).WskSend.expect("WskSend");
    // SAFETY: as for `receive_with`.
    unsafe { f(socket, wsk, 0, op.start()) }
}

/// Negative test of [`Rule::WskBufChangedWhilePending`]: the provider may read a send's or a
/// receive's `WSK_BUF` until the IRP completes (the emulation reads it again when it moves data and
/// when the send completes), so a client that reuses it meanwhile (here: overwrites it, as a stack
/// frame left and reused would) is reported, and in recording mode the operation fails with
/// STATUS_INVALID_PARAMETER, moving nothing through the changed structure.
#[test]
fn a_wsk_buf_overwritten_while_its_operation_pends_is_reported() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, peer) = connected(&client, &net);
    emu::expect_violations();
    let buf = PoolBuf::new(16);
    let other = PoolBuf::new(16);
    let op = IrpOp::new();
    let mut wsk = Box::new(buf.wsk(0, 16));
    let at: PWSK_BUF = &raw mut *wsk;
    // A receive pends (nothing to read); its WSK_BUF is overwritten; data arrives.
    assert_eq!(receive_with(socket, at, &op), STATUS_PENDING);
    // SAFETY: the box is live; written through the pointer the provider holds.
    unsafe { at.write(other.wsk(0, 8)) };
    peer.write(b"data").unwrap();
    settle();
    assert_eq!(op.wait(), (STATUS_INVALID_PARAMETER, 0));
    let v = take_one(Rule::WskBufChangedWhilePending);
    assert!(v.message().contains("WskReceive"), "{v}");
    // A send is handed over (now or later) and completes once the peer read it; its WSK_BUF is
    // overwritten before that.
    // SAFETY: as above; no operation uses the box now.
    unsafe { at.write(buf.wsk(0, 4)) };
    let returned = send_with(socket, at, &op);
    assert!(returned == STATUS_PENDING, "{returned:#x}");
    // SAFETY: as above.
    unsafe { at.write(other.wsk(0, 4)) };
    settle();
    let _ = peer.read(64);
    settle();
    assert_eq!(op.wait().0, STATUS_INVALID_PARAMETER);
    let v = take_one(Rule::WskBufChangedWhilePending);
    assert!(v.message().contains("WskSend"), "{v}");
    drop(wsk);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

/// A `WskReceiveFrom` whose `WSK_BUF` is overwritten while it pends: as for a stream receive.
#[test]
fn a_datagram_wsk_buf_overwritten_while_its_receive_pends_is_reported() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (socket, local) = udp_socket(&client, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), true);
    let peer = net.bind_udp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    emu::expect_violations();
    let buf = PoolBuf::new(16);
    let other = PoolBuf::new(16);
    let out = ReceiveOut::new();
    let op = IrpOp::new();
    assert_eq!(receive_from(socket, &buf, 16, &out, &op), STATUS_PENDING);
    // The WSK_BUF `receive_from` lent through `op`, overwritten through the IRP's own cell.
    // SAFETY: `op` keeps the cell alive; nothing else touches it while the receive pends.
    unsafe { op.lend_in_flight().write(other.wsk(0, 8)) };
    peer.send_to(b"datagram", local);
    settle();
    assert_eq!(op.wait(), (STATUS_INVALID_PARAMETER, 0));
    let v = take_one(Rule::WskBufChangedWhilePending);
    assert!(v.message().contains("WskReceiveFrom"), "{v}");
    assert_eq!(close(socket), STATUS_SUCCESS);
    client.deregister();
}

/// A `WSK_BUF` in nonpaged pool freed while its receive pends: the provider's late read is a
/// [`Rule::UseAfterFree`] (the freed block is still quarantined, so the read itself is harmless here).
#[test]
fn a_wsk_buf_in_pool_freed_while_its_receive_pends_is_a_use_after_free() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, peer) = connected(&client, &net);
    emu::expect_violations();
    let buf = PoolBuf::new(16);
    const TAG: ULONG = u32::from_le_bytes(*b"WbUf");
    // SAFETY: a plain allocation at PASSIVE_LEVEL.
    let at = unsafe { ExAllocatePoolWithTag(NonPagedPool, size_of::<WSK_BUF>(), TAG) }.cast::<WSK_BUF>();
    assert!(!at.is_null());
    // SAFETY: a fresh block of the size of a WSK_BUF (pool blocks are aligned for it).
    unsafe { at.write(buf.wsk(0, 16)) };
    let op = IrpOp::new();
    assert_eq!(receive_with(socket, at, &op), STATUS_PENDING);
    // SAFETY: ours; the pending receive still points to it, which is the test's point.
    unsafe { ExFreePoolWithTag(at.cast(), TAG) };
    peer.write(b"data").unwrap();
    settle();
    assert_eq!(op.wait(), (STATUS_INVALID_PARAMETER, 0));
    let v = take_one(Rule::UseAfterFree);
    assert!(v.message().contains("WSK_BUF"), "{v}");
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

/// What Miri sees of a client that frees its `WSK_BUF` (on the host heap, which the emulation
/// cannot check) while the receive pends: the provider's late read is a use after free. Ignored:
/// it is undefined behaviour by design. `.ci/run` runs it under Miri and requires the report
/// (`cargo +nightly miri test -p wdm-async-nt --test wsk_checks -- --ignored a_wsk_buf_freed`).
#[test]
#[ignore = "undefined behaviour on purpose: run under Miri to see its use-after-free report"]
fn a_wsk_buf_freed_while_its_receive_pends_is_undefined_behaviour() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (_listener, socket, peer) = connected(&client, &net);
    emu::expect_violations();
    let buf = PoolBuf::new(16);
    let op = IrpOp::new();
    let wsk = Box::into_raw(Box::new(buf.wsk(0, 16)));
    assert_eq!(receive_with(socket, wsk, &op), STATUS_PENDING);
    // SAFETY: ours; the pending receive still points to it, which is the test's point.
    drop(unsafe { Box::from_raw(wsk) });
    peer.write(b"data").unwrap();
    settle();
    op.wait();
}

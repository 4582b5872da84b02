//! The WSK provider's checks, each with a negative test (recording mode), and registration/capture
//! semantics. Runs on the in-memory transport, so it is Miri-clean too.
#![cfg(not(target_os = "windows"))]

mod wsk_support;

use nt::emu::wsk::{MemoryNetwork, set_deregister_timeout, set_provider_ready};
use nt::emu::{self, Rule};
use nt::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
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

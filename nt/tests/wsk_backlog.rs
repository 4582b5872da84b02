//! `SIO_WSK_QUERY_IDEAL_SEND_BACKLOG` through `WskControlSocket(WskIoctl)`, over the raw ABI: the
//! value on an in-memory connection (the peer's window, or what the test scripted) and on a real
//! loopback TCP connection (from the host socket), and the refusals: a buffer of the wrong size, a
//! socket of the wrong kind or state, a missing IRP, and the provider switched to not answering.
#![cfg(not(target_os = "windows"))]

mod wsk_support;

use core::cell::UnsafeCell;
use core::ptr;
use nt::emu::wsk::{DEFAULT_WINDOW, MemoryNetwork};
use nt::emu::{self, Rule};
use nt::*;
use std::net::{Ipv4Addr, SocketAddr};
use wsk_support::*;

/// What the output buffer holds before the call: a value no answer has.
const UNTOUCHED: SIZE_T = SIZE_T::MAX;

/// The raw call's arguments that the refusals vary.
#[derive(Clone, Copy)]
struct Args {
    level: ULONG,
    input_size: SIZE_T,
    input: PVOID,
    output_size: SIZE_T,
    null_output: bool,
    returned: *mut SIZE_T,
}

/// The documented arguments: Level 0, no input, a SIZE_T output, no OutputSizeReturned.
const DOCUMENTED: Args = Args {
    level: 0,
    input_size: 0,
    input: ptr::null_mut(),
    output_size: size_of::<SIZE_T>(),
    null_output: false,
    returned: ptr::null_mut(),
};

/// The query with an IRP: (final status, Information, the output buffer's first SIZE_T after it).
fn query_with(socket: PWSK_SOCKET, args: Args) -> (NTSTATUS, usize, SIZE_T) {
    let f = basic(socket).WskControlSocket.expect("WskControlSocket");
    // Two SIZE_Ts, so that an oversized OutputSize still describes memory the test owns.
    let out = Box::new(UnsafeCell::new([UNTOUCHED; 2]));
    let buffer = if args.null_output {
        ptr::null_mut()
    } else {
        out.get().cast::<core::ffi::c_void>()
    };
    let (returned, status, information) = call(|irp| {
        // SAFETY: the output (two SIZE_Ts, at least `output_size` bytes in every call here) outlives
        // the call, which `call` waits for.
        unsafe {
            f(
                socket,
                WskIoctl,
                SIO_WSK_QUERY_IDEAL_SEND_BACKLOG,
                args.level,
                args.input_size,
                args.input,
                args.output_size,
                buffer,
                args.returned,
                irp,
            )
        }
    });
    // Inline, or later under a schedule that defers completions (then STATUS_PENDING).
    assert!(
        returned == status || returned == STATUS_PENDING,
        "returned {returned:#x}"
    );
    (status, information, out.into_inner()[0])
}

/// The documented query; the ISB, or the failure status.
fn query(socket: PWSK_SOCKET) -> Result<SIZE_T, NTSTATUS> {
    match query_with(socket, DOCUMENTED) {
        (STATUS_SUCCESS, information, isb) => {
            assert_eq!(information, size_of::<SIZE_T>(), "Information: the bytes written");
            assert_ne!(isb, UNTOUCHED, "the output was written");
            Ok(isb)
        }
        (status, information, isb) => {
            assert_eq!(information, 0);
            assert_eq!(isb, UNTOUCHED, "a failed query leaves the output alone");
            Err(status)
        }
    }
}

#[test]
fn a_memory_connection_answers_its_peer_window_or_the_scripted_value() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, peer) = connected(&client, &net);
    // The default: the peer's receive window, as it is now.
    assert_eq!(query(socket), Ok(DEFAULT_WINDOW));
    peer.set_window(3000);
    assert_eq!(query(socket), Ok(3000));
    // Documented: Level is ignored for WskIoctl.
    let (status, _, isb) = query_with(
        socket,
        Args {
            level: SOL_SOCKET,
            ..DOCUMENTED
        },
    );
    assert_eq!((status, isb), (STATUS_SUCCESS, 3000));
    // Scripted per connection, and back to the default.
    peer.set_ideal_send_backlog(Some(5000));
    assert_eq!(query(socket), Ok(5000));
    peer.set_ideal_send_backlog(None);
    assert_eq!(query(socket), Ok(3000));
    // Scripted for the connections made from now on; the earlier one keeps its own.
    net.set_default_ideal_send_backlog(Some(7));
    let (listener2, socket2, _peer2) = connected(&client, &net);
    assert_eq!(query(socket2), Ok(7));
    assert_eq!(query(socket), Ok(3000));
    for s in [socket2, listener2, socket, listener] {
        assert_eq!(close(s), STATUS_SUCCESS);
    }
    client.deregister();
}

#[test]
fn an_output_buffer_of_the_wrong_size_or_extra_arguments_are_refused() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, _peer) = connected(&client, &net);
    let too_small = |args: Args| {
        assert_eq!(query_with(socket, args), (STATUS_BUFFER_TOO_SMALL, 0, UNTOUCHED));
    };
    too_small(Args {
        output_size: size_of::<ULONG>(),
        ..DOCUMENTED
    });
    too_small(Args {
        output_size: 0,
        ..DOCUMENTED
    });
    too_small(Args {
        null_output: true,
        ..DOCUMENTED
    });
    let invalid = |args: Args| {
        assert_eq!(query_with(socket, args), (STATUS_INVALID_PARAMETER, 0, UNTOUCHED));
    };
    invalid(Args {
        output_size: 2 * size_of::<SIZE_T>(),
        ..DOCUMENTED
    });
    let input: ULONG = 1;
    invalid(Args {
        input_size: size_of::<ULONG>(),
        input: &input as *const ULONG as PVOID,
        ..DOCUMENTED
    });
    let mut returned: SIZE_T = 0;
    invalid(Args {
        returned: &mut returned,
        ..DOCUMENTED
    });
    assert_eq!(returned, 0, "OutputSizeReturned untouched");
    // The socket is unaffected.
    assert_eq!(query(socket), Ok(DEFAULT_WINDOW));
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn the_query_is_refused_on_sockets_that_are_not_connected_connections() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, peer) = connected(&client, &net);
    // Not a connection-oriented socket.
    assert_eq!(query(listener), Err(STATUS_NOT_SUPPORTED));
    let basic_socket = client.socket(AF_INET, 0);
    assert_eq!(query(basic_socket), Err(STATUS_NOT_SUPPORTED));
    // Not connected yet (documented: only after the connect).
    let unconnected = client.socket(AF_INET, WSK_FLAG_CONNECTION_SOCKET);
    assert_eq!(query(unconnected), Err(STATUS_INVALID_DEVICE_STATE));
    let stream_socket = client.socket(AF_INET, WSK_FLAG_STREAM_SOCKET);
    assert_eq!(query(stream_socket), Err(STATUS_INVALID_DEVICE_STATE));
    // A stream socket that listens is a listening socket.
    bind(stream_socket, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let listen = stream(stream_socket).WskListen.expect("WskListen");
    // SAFETY: valid socket, fresh IRP.
    let (_, status, _) = call(|irp| unsafe { listen(stream_socket, irp) });
    assert_eq!(status, STATUS_SUCCESS, "WskListen");
    assert_eq!(query(stream_socket), Err(STATUS_NOT_SUPPORTED));
    // After the client's graceful disconnect.
    let op = IrpOp::new();
    disconnect(socket, None, &op);
    assert_eq!(query(socket), Err(STATUS_INVALID_DEVICE_STATE));
    assert_eq!(peer.read(16).unwrap(), b"", "FIN");
    assert_eq!(op.wait().0, STATUS_SUCCESS);
    assert_eq!(query(socket), Err(STATUS_INVALID_DEVICE_STATE));
    // After an abortive disconnect, and after the peer's reset: the connection's failure.
    let (listener2, aborted, _peer2) = connected(&client, &net);
    assert_eq!(abort(aborted), STATUS_SUCCESS);
    assert_eq!(query(aborted), Err(STATUS_CONNECTION_ABORTED));
    let (listener3, reset, peer3) = connected(&client, &net);
    peer3.reset();
    assert_eq!(query(reset), Err(STATUS_CONNECTION_RESET));
    for s in [
        reset,
        listener3,
        aborted,
        listener2,
        stream_socket,
        unconnected,
        basic_socket,
        socket,
        listener,
    ] {
        assert_eq!(close(s), STATUS_SUCCESS);
    }
    client.deregister();
}

/// Switched off, the provider answers as one without the query: STATUS_NOT_SUPPORTED, the IRP
/// completed; the next session answers again.
#[test]
fn a_provider_switched_off_does_not_answer() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, _peer) = connected(&client, &net);
    emu::wsk::set_ideal_send_backlog_answered(false);
    assert_eq!(query(socket), Err(STATUS_NOT_SUPPORTED));
    emu::wsk::set_ideal_send_backlog_answered(true);
    assert_eq!(query(socket), Ok(DEFAULT_WINDOW));
    emu::wsk::set_ideal_send_backlog_answered(false);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
    drop(_session);
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, _peer) = connected(&client, &net);
    assert_eq!(query(socket), Ok(DEFAULT_WINDOW), "a new session answers");
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

#[test]
fn a_query_without_an_irp_is_reported() {
    let _session = emu::session();
    let net = MemoryNetwork::install();
    let client = Client::register();
    let (listener, socket, _peer) = connected(&client, &net);
    emu::expect_violations();
    let f = basic(socket).WskControlSocket.expect("WskControlSocket");
    let mut out: SIZE_T = UNTOUCHED;
    // SAFETY: valid socket and output; no IRP (the violation under test).
    let returned = unsafe {
        f(
            socket,
            WskIoctl,
            SIO_WSK_QUERY_IDEAL_SEND_BACKLOG,
            0,
            0,
            ptr::null_mut(),
            size_of::<SIZE_T>(),
            (&mut out as *mut SIZE_T).cast(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    assert_eq!(returned, STATUS_INVALID_PARAMETER);
    assert_eq!(out, UNTOUCHED);
    let taken = emu::take_violations();
    assert_eq!(taken.len(), 1, "{taken:#?}");
    assert_eq!(taken[0].rule, Rule::InvalidParameter);
    assert!(taken[0].message().contains("WskControlSocket"), "{}", taken[0]);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    client.deregister();
}

/// Over real TCP: the value comes from the host socket.
#[cfg(all(target_os = "linux", not(miri)))]
mod tcp {
    use super::*;

    /// Loopback's MSS is about 64 KiB and its congestion window ten segments or more, so the answer
    /// is the host send buffer's bound; whatever the host, it is at least the smallest IPv4 MSS and
    /// at most what Linux reports for the 64 KiB `SO_SNDBUF` the emulation sets (doubled).
    #[test]
    fn a_loopback_connection_answers_from_the_host_socket() {
        let _session = emu::session();
        let client = Client::register();
        let (listener, socket, peer) = connected_over_tcp(&client);
        let isb = query(socket).expect("the query succeeds");
        assert!((536..=128 * 1024).contains(&isb), "ISB {isb}");
        // Not a connection.
        assert_eq!(query(listener), Err(STATUS_NOT_SUPPORTED));
        assert_eq!(abort(socket), STATUS_SUCCESS);
        assert_eq!(query(socket), Err(STATUS_CONNECTION_ABORTED));
        drop(peer);
        assert_eq!(close(socket), STATUS_SUCCESS);
        assert_eq!(close(listener), STATUS_SUCCESS);
        client.deregister();
    }
}

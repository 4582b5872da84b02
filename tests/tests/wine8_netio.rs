//! The echo driver on a kernel and provider that behave like Wine 8.0's ntoskrnl.exe and netio.sys
//! (the emulation's `set_wine8_kernel` and `set_wine8_netio`): Windows 7 without ExAllocatePool2 or
//! KeQueryInterruptTimePrecise, an IoSetCompletionRoutineEx that is an unimplemented stub; stub
//! WskDisconnect, WskControlSocket and address queries that return STATUS_NOT_IMPLEMENTED without
//! completing their IRP, and no AF_INET6 bind. The driver must load (falling back to an IPv4
//! listener and to plain completion routines), echo, end connections without a graceful disconnect,
//! and unload with nothing left behind, as the real `.sys` must under Wine.
#![cfg(not(target_os = "windows"))]

use e2e_tests::{EchoServer, ping};
use std::io::Read;
use std::net::SocketAddr;

fn wine8() -> EchoServer {
    EchoServer::start_with(EchoServer::config_on_port(), || {
        nt::emu::exports::set_wine8_kernel();
        nt::emu::wsk::set_wine8_netio(true);
    })
}

#[test]
fn the_listener_falls_back_to_ipv4_and_echoes() {
    let server = wine8();
    assert!(
        matches!(echo_driver::local_addr(), Some(SocketAddr::V4(_))),
        "expected an IPv4-only listener, got {:?}",
        echo_driver::local_addr()
    );
    let mut client = server.connect(false);
    ping(&mut client, &[0x5a; 64 << 10]).unwrap();
    drop(client);
    server.finish();
}

#[test]
fn a_graceful_close_by_the_client_ends_the_connection_without_a_graceful_disconnect() {
    let server = wine8();
    let mut client = server.connect(false);
    ping(&mut client, b"before the FIN").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    // The driver's graceful WskDisconnect is a stub that fails at once: it closes the socket
    // (abortively) instead of hanging on an IRP that never completes.
    let mut rest = Vec::new();
    let end = client.read_to_end(&mut rest);
    assert!(rest.is_empty(), "no data after the echo");
    assert!(
        end.is_ok()
            || end
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{end:?}"
    );
    server.finish();
}

#[test]
fn unload_with_clients_connected_completes() {
    let mut server = wine8();
    let mut clients: Vec<_> = (0..4).map(|_| server.connect(false)).collect();
    for client in &mut clients {
        ping(client, b"hello").unwrap();
    }
    // The abortive disconnects of the unload are stubs too: the closes must still end every socket.
    server.unload();
    drop(clients);
    server.finish();
}

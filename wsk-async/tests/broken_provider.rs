//! A provider that breaks the IRP contract: the WSK function returns a non-pending status and never
//! completes the IRP. Wine 8's netio does this for WskDisconnect, WskControlSocket and the address
//! queries (they are stubs returning STATUS_NOT_IMPLEMENTED). The operation must fail with the
//! returned status: no hang, no leaked IRP, no double completion, and the socket still closes.
#![cfg(all(not(target_os = "windows"), not(loom)))]

mod common;

use common::*;
use nt::emu::wsk::{Completion, OpKind};

#[test]
fn a_disconnect_the_provider_never_completes_fails_with_the_returned_status() {
    let _session = nt::emu::session();
    let s = setup();
    s.net
        .script(OpKind::Disconnect, Completion::Unfinished(nt::STATUS_NOT_IMPLEMENTED));
    let result = ready(s.conn.disconnect());
    assert_eq!(result.map_err(|e| e.status()), Err(nt::STATUS_NOT_IMPLEMENTED));
    // The connection still works, and its end is still possible: an abort goes through.
    s.peer.write(b"after").unwrap();
    let buf = s.pool.take().unwrap();
    let (n, _buf) = ready(s.conn.receive(buf));
    assert_eq!(n.unwrap(), 5);
    ready(s.conn.abort()).unwrap();
    assert!(s.peer.was_reset());
    s.finish();
}

#[test]
fn an_abort_the_provider_never_completes_fails_and_the_close_still_resets() {
    let _session = nt::emu::session();
    let s = setup();
    s.net
        .script(OpKind::Disconnect, Completion::Unfinished(nt::STATUS_NOT_IMPLEMENTED));
    let result = ready(s.conn.abort());
    assert_eq!(result.map_err(|e| e.status()), Err(nt::STATUS_NOT_IMPLEMENTED));
    assert!(!s.peer.was_reset(), "nothing happened on the wire");
    s.finish(); // closes the connection: the peer sees the reset now
}

#[test]
fn a_receive_the_provider_never_completes_fails_with_the_returned_status() {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(
        OpKind::Receive,
        Completion::Unfinished(nt::STATUS_INVALID_DEVICE_REQUEST),
    );
    let buf = s.pool.take().unwrap();
    let (n, buf) = ready(s.conn.receive(buf));
    assert_eq!(n.map_err(|e| e.status()), Err(nt::STATUS_INVALID_DEVICE_REQUEST));
    // The next receive, on a conforming provider, works: the slot and its IRP were given back.
    s.peer.write(b"ok").unwrap();
    let (n, _buf) = ready(s.conn.receive(buf));
    assert_eq!(n.unwrap(), 2);
    s.finish();
}

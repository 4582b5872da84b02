//! Socket options on the in-memory network: `Connection::set_nodelay` / `set_keepalive` and
//! `Registration::listen(..).exclusive()` reach the transport, degrade to an error the caller can
//! recognise where the provider lacks `WskControlSocket` (Wine 8), and are safe to drop while their
//! IRP is held (`Completion::Hold` for `OpKind::Control`). Every test ends with the session guard,
//! which fails it if any IRP, pool block or socket is left (empty leak report).
#![cfg(all(not(target_os = "windows"), not(loom)))]

mod common;

use common::*;
use nt::emu::wsk::{Completion, HostOption, OpKind, host_option_at};
use std::pin::pin;
use wsk_async::Connection;

fn option(conn: &Connection, option: HostOption) -> Option<bool> {
    host_option_at(conn.local_addr().unwrap(), conn.peer_addr(), option)
}

#[test]
fn nodelay_and_keepalive_reach_the_transport() {
    let _session = nt::emu::session();
    let s = setup();
    assert_eq!(option(&s.conn, HostOption::NoDelay), Some(false));
    assert_eq!(option(&s.conn, HostOption::KeepAlive), Some(false));
    ready(s.conn.set_nodelay(true)).unwrap();
    ready(s.conn.set_keepalive(true)).unwrap();
    assert_eq!(option(&s.conn, HostOption::NoDelay), Some(true));
    assert_eq!(option(&s.conn, HostOption::KeepAlive), Some(true));
    ready(s.conn.set_nodelay(false)).unwrap();
    ready(s.conn.set_keepalive(false)).unwrap();
    assert_eq!(option(&s.conn, HostOption::NoDelay), Some(false));
    assert_eq!(option(&s.conn, HostOption::KeepAlive), Some(false));
    // The stream is untouched: a send still goes through.
    let ((n, _b), read) = ready_while_reading(&s.peer, s.conn.send(filled(&s, b"after")));
    assert_eq!(n.unwrap(), 5);
    assert_eq!(read, b"after");
    s.finish();
}

fn filled(s: &Setup, data: &[u8]) -> wsk_async::Buffer {
    let mut buf = s.pool.take().unwrap();
    buf.extend_from_slice(data);
    buf
}

/// Dropped while its IRP is held (a held control cannot be cancelled): the send slot it borrowed
/// comes back when the IRP completes, and the next option call works.
#[test]
fn a_set_option_dropped_while_pending_gives_its_slot_back_on_completion() {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(OpKind::Control, Completion::Hold);
    {
        let mut set = pin!(s.conn.set_nodelay(true));
        assert!(Wakes::new().poll(set.as_mut()).is_pending());
    }
    let held = s.net.held();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].kind, OpKind::Control);
    assert!(s.net.release(held[0]));
    nt::emu::wsk::settle();
    ready(s.conn.set_keepalive(true)).unwrap();
    assert_eq!(option(&s.conn, HostOption::KeepAlive), Some(true));
    s.finish();
}

/// Dropped while held, then the connection is closed: the close completes the held IRP first.
#[test]
fn a_set_option_dropped_while_pending_then_closed_leaves_nothing() {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(OpKind::Control, Completion::Hold);
    {
        let mut set = pin!(s.conn.set_keepalive(true));
        assert!(Wakes::new().poll(set.as_mut()).is_pending());
    }
    assert_eq!(s.net.held().len(), 1);
    s.finish();
}

/// Wine 8's `WskControlSocket` returns STATUS_NOT_IMPLEMENTED without completing the IRP: the
/// option calls fail with `is_unsupported` (no hang), and the connection goes on.
#[test]
fn options_fail_recognisably_when_the_provider_lacks_them() {
    let _session = nt::emu::session();
    let s = setup();
    nt::emu::wsk::set_wine8_netio(true);
    assert!(ready(s.conn.set_nodelay(true)).unwrap_err().is_unsupported());
    assert!(ready(s.conn.set_keepalive(true)).unwrap_err().is_unsupported());
    let listen = ready(s.registration.listen(LOCAL.parse().unwrap()).exclusive());
    assert!(listen.unwrap_err().is_unsupported());
    nt::emu::wsk::set_wine8_netio(false);
    let ((n, _b), read) = ready_while_reading(&s.peer, s.conn.send(filled(&s, b"still")));
    assert_eq!(n.unwrap(), 5);
    assert_eq!(read, b"still");
    assert!(
        wait_until(BOUND, || s.registration.live_sockets() == 2),
        "the failed listen's socket is still open"
    );
    s.finish();
}

#[test]
fn an_exclusive_listener_has_the_option_and_accepts() {
    let _session = nt::emu::session();
    let s = setup();
    for addr in ["127.0.0.1:0", "[::]:0"] {
        let listener = ready(s.registration.listen(addr.parse().unwrap()).exclusive()).unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(
            host_option_at(local, None, HostOption::ExclusiveAddressUse),
            Some(true),
            "{addr}"
        );
        let _peer = s.net.connect(local).unwrap();
        let conn = ready(listener.accept()).unwrap();
        ready(conn.close()).unwrap();
        ready(listener.close()).unwrap();
    }
    // The setup's listener did not ask for it.
    assert_eq!(
        host_option_at(s.addr(), None, HostOption::ExclusiveAddressUse),
        Some(false)
    );
    s.finish();
}

/// A listen dropped while its `SO_EXCLUSIVEADDRUSE` control pends: its socket is closed.
#[test]
fn an_exclusive_listen_dropped_while_its_option_pends_closes_its_socket() {
    let _session = nt::emu::session();
    let s = setup();
    s.net.script(OpKind::Control, Completion::Hold);
    {
        let mut listen = pin!(s.registration.listen(LOCAL.parse().unwrap()).exclusive());
        let wakes = Wakes::new();
        // Earlier steps may pend under a completion schedule: settle until the held one is reached.
        for _ in 0..8 {
            assert!(wakes.poll(listen.as_mut()).is_pending());
            if !s.net.held().is_empty() {
                break;
            }
            nt::emu::wsk::settle();
        }
        assert_eq!(s.net.held().len(), 1);
    }
    assert!(
        wait_until(BOUND, || s.registration.live_sockets() == 2),
        "the dropped listen's socket is still open"
    );
    s.finish();
}

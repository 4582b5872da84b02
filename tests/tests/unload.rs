//! DriverUnload while 200 clients are in the middle of transfers: it never waits on a peer. Every
//! client sees EOF or a reset, DriverUnload returns, and nothing is left behind.
#![cfg(not(target_os = "windows"))]

use e2e_tests::{BOUND, EchoServer, is_reset};
use std::io::{Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

const CLIENTS: usize = 200;

/// How a client's connection ended.
#[derive(Debug, PartialEq)]
enum End {
    Eof,
    Reset,
}

#[test]
fn unload_with_two_hundred_clients_mid_transfer_ends_every_connection_and_leaks_nothing() {
    let mut server = EchoServer::start(EchoServer::config());
    // Every client has had an echo before the unload starts.
    let all_echoing = Arc::new(Barrier::new(CLIENTS + 1));
    let (ended, ends) = mpsc::channel();
    for i in 0..CLIENTS {
        let mut reader = server.connect(i % 2 == 1);
        let mut writer = reader.try_clone().unwrap();
        let all_echoing = all_echoing.clone();
        let ended = ended.clone();
        thread::spawn(move || {
            // Writes until the connection breaks (it never half-closes: the transfer is endless).
            let sender = thread::spawn(move || {
                let chunk = vec![i as u8; 16 * 1024];
                while writer.write_all(&chunk).is_ok() {}
            });
            let mut buf = vec![0; 64 * 1024];
            let mut first = true;
            let end = loop {
                match reader.read(&mut buf) {
                    Ok(0) => break Ok(End::Eof),
                    Ok(_) => {
                        if std::mem::take(&mut first) {
                            all_echoing.wait();
                        }
                    }
                    Err(e) if is_reset(&e) => break Ok(End::Reset),
                    Err(e) => break Err(e.to_string()),
                }
            };
            if first {
                // Never echoed to: still release the test so that it fails on `end`, not hangs.
                all_echoing.wait();
            }
            drop(reader);
            let _ = sender.join();
            let _ = ended.send((i, end));
        });
    }
    drop(ended);
    all_echoing.wait();
    assert_eq!(echo_driver::counters().active, CLIENTS);

    // Bounded: `unload` fails the test if DriverUnload has not returned within BOUND. None of the
    // clients stops sending or closes: an unload that waited on a peer would never return.
    let took = server.unload();
    eprintln!("DriverUnload returned after {took:?} with {CLIENTS} clients mid-transfer");

    let mut resets = 0;
    for _ in 0..CLIENTS {
        let (i, end) = ends.recv_timeout(BOUND).expect("every client sees its connection end");
        match end {
            Ok(End::Reset) => resets += 1,
            Ok(End::Eof) => {}
            Err(e) => panic!("client {i}: {e} (neither EOF nor reset within the read timeout)"),
        }
    }
    eprintln!("{resets} of {CLIENTS} clients saw a reset, the others EOF");
    let counters = echo_driver::counters();
    assert_eq!(counters.accepted, CLIENTS as u64);
    assert_eq!(counters.active, 0, "every connection task was dropped");
    server.finish();
}

#[test]
fn unload_does_not_wait_for_quiet_or_stalled_peers() {
    let mut server = EchoServer::start(EchoServer::config());
    // Quiet: served once, then silent (the driver waits in a receive; the idle timeout is 60 s).
    let mut quiet = server.connect(false);
    e2e_tests::ping(&mut quiet, b"hello").unwrap();
    // Stalled: sends without ever reading, so the echo fills its receive window and the driver's
    // send cannot complete.
    let stalled = server.connect(true);
    let mut stalled_writer = stalled.try_clone().unwrap();
    stalled_writer
        .set_write_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let chunk = vec![7u8; 64 * 1024];
    // Writes until the write times out: both directions are then full.
    while stalled_writer.write_all(&chunk).is_ok() {}
    // Half-closed without reading: the driver has the FIN queued behind data it cannot echo.
    let half = server.connect(false);
    let mut half_writer = half.try_clone().unwrap();
    half_writer
        .set_write_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    while half_writer.write_all(&chunk).is_ok() {}
    let _ = half_writer.shutdown(std::net::Shutdown::Write);
    assert_eq!(echo_driver::counters().active, 3);

    let took = server.unload();
    eprintln!("DriverUnload returned after {took:?} with a quiet, a stalled and a half-closed peer");
    for (name, mut client) in [("quiet", quiet), ("stalled", stalled), ("half-closed", half)] {
        client.set_read_timeout(Some(BOUND)).unwrap();
        e2e_tests::wait_for_end(&mut client).unwrap_or_else(|e| panic!("{name}: no EOF or reset: {e}"));
    }
    assert_eq!(echo_driver::counters().active, 0);
    server.finish();
}

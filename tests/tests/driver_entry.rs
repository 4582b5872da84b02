//! DriverEntry failures: each returns an error status and leaves nothing behind (no pool block,
//! socket, IRP, thread or timer in the leak report), and the driver can be loaded afterwards.
#![cfg(not(target_os = "windows"))]

use e2e_tests::{EchoServer, ping};
use echo_driver::{Config, TAG_DRIVER};
use std::net::TcpListener;
use std::time::Duration;
use wsk_async::{TAG_BUFFER, TAG_REGISTRATION, TAG_SOCKET};

/// Runs DriverEntry with `config` in a fresh session after `inject` (a fault injection), expects it
/// to fail with `expected`, and checks that the session ends with nothing alive.
fn entry_fails(config: Config, inject: impl FnOnce(), expected: nt::NTSTATUS) {
    let session = nt::emu::session();
    inject();
    let mut unload_set = false;
    let result = nt::emu::driver::load_with(|driver, _registry_path| {
        // SAFETY: PASSIVE_LEVEL, the loader's driver object.
        let status = unsafe { echo_driver::start(driver, &config) };
        // SAFETY: as above.
        unload_set = unsafe { (*driver).DriverUnload.is_some() };
        status
    });
    nt::emu::pool::clear_failures();
    let status = result.expect_err("DriverEntry succeeded");
    assert_eq!(
        status, expected,
        "DriverEntry returned {status:#x}, expected {expected:#x}"
    );
    assert!(!unload_set, "a failed DriverEntry must not set DriverUnload");
    assert_eq!(echo_driver::local_addr(), None);
    let report = session.leak_report();
    assert!(report.is_empty(), "{report}");
    drop(session);
}

fn free_port_config() -> Config {
    EchoServer::config()
}

#[test]
fn a_port_in_use_fails_with_address_already_associated_and_leaves_nothing() {
    let taken = TcpListener::bind("[::]:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    entry_fails(
        Config {
            port,
            ..free_port_config()
        },
        || {},
        nt::STATUS_ADDRESS_ALREADY_ASSOCIATED,
    );
    drop(taken);
    // Loadable afterwards (the failed attempt left the driver unloaded).
    let server = EchoServer::start(Config {
        port,
        ..free_port_config()
    });
    let mut client = server.connect(true);
    ping(&mut client, b"after a failed load").unwrap();
    drop(client);
    server.finish();
}

#[test]
fn pool_exhaustion_at_each_step_fails_cleanly() {
    // The driver's state, the registration, the connection buffers, the listening socket.
    for tag in [TAG_DRIVER, TAG_REGISTRATION, TAG_BUFFER, TAG_SOCKET] {
        entry_fails(
            free_port_config(),
            || nt::emu::pool::fail_tag(tag, usize::MAX),
            nt::STATUS_INSUFFICIENT_RESOURCES,
        );
    }
    // The first allocation of all (any tag).
    entry_fails(
        free_port_config(),
        || nt::emu::pool::fail_next(1),
        nt::STATUS_INSUFFICIENT_RESOURCES,
    );
}

#[test]
fn an_invalid_configuration_is_refused() {
    for config in [
        Config {
            connection_limit: 0,
            ..free_port_config()
        },
        Config {
            connection_limit: echo_driver::MAX_CONNECTIONS + 1,
            ..free_port_config()
        },
        Config {
            idle_timeout: Duration::ZERO,
            ..free_port_config()
        },
        Config {
            buffer_size: 0,
            ..free_port_config()
        },
    ] {
        entry_fails(config, || {}, nt::STATUS_INVALID_PARAMETER);
    }
}

#[test]
fn a_second_load_is_refused_and_the_first_keeps_serving() {
    let server = EchoServer::start(free_port_config());
    // SAFETY: PASSIVE_LEVEL, the loader's driver object.
    let second =
        nt::emu::driver::load_with(|driver, _registry_path| unsafe { echo_driver::start(driver, &free_port_config()) });
    assert_eq!(second.unwrap_err(), nt::STATUS_INVALID_DEVICE_STATE);
    let mut client = server.connect(false);
    ping(&mut client, b"still the first").unwrap();
    drop(client);
    server.finish();
}

#[test]
fn load_and_unload_repeatedly() {
    for round in 0..3u8 {
        let server = EchoServer::start(free_port_config());
        let mut client = server.connect(round % 2 == 0);
        ping(&mut client, &[round; 100]).unwrap();
        drop(client);
        server.finish();
    }
}

//! Cross-checks the WSK ABI against independent sources where one exists on Debian: the socket
//! address layouts of `nt::WSK_LAYOUT` and the winsock constants against mingw-w64's
//! `ws2def.h`/`ws2ipdef.h`, and the four netio.sys imports against the exports of mingw-w64's
//! `libnetio.a`. mingw-w64 ships no `wsk.h`/`netioddk.h`: the WSK structures themselves are pinned
//! only by the `const` assertions in `nt/src/wsk/layout.rs` (from the WDK documentation).
//!
//! What the headers and the import library give is checked in as `header_facts/winsock.txt` and
//! `header_facts/netio.txt`, so this test needs only Rust. `.ci/run` regenerates both with clang
//! and llvm-nm and fails if they differ (`cargo run -p wdm-async-nt --example header-facts -- --check`).
#![cfg(not(miri))] // no unsafe code here: Miri would only slow CI down

mod header_facts;

use header_facts::{NETIO_IMPORTS, WINSOCK_CONSTANTS, socket_address_rows, verify, verify_table, winsock_facts};

#[test]
fn socket_addresses_and_constants_match_the_mingw_winsock_headers() {
    let table = header_facts::winsock();
    let rows = socket_address_rows(nt::WSK_LAYOUT).len();
    assert!(rows >= 10, "only {rows} SOCKADDR rows in nt::WSK_LAYOUT");
    assert_eq!(table.facts.len(), rows + WINSOCK_CONSTANTS.len());
    if let Err(message) = verify_table(&table) {
        panic!("{message}");
    }
}

/// Proves the comparison can fail: a wrong socket-address offset is reported by name.
#[test]
fn a_wrong_socket_address_offset_is_reported() {
    let table = header_facts::winsock();
    let mut layout = nt::WSK_LAYOUT.to_vec();
    let row = layout
        .iter_mut()
        .find(|(ty, member, _)| (*ty, *member) == ("SOCKADDR_IN6", "sin6_addr"))
        .unwrap();
    row.2 = 4;
    let facts = winsock_facts(&layout, WINSOCK_CONSTANTS);
    let message = verify(table.crate_side, &facts, table.file, table.recorded).unwrap_err();
    assert!(message.starts_with("1 mismatch(es)"), "{message}");
    assert!(message.contains("`offsetof(SOCKADDR_IN6, sin6_addr)`:"), "{message}");
    assert!(message.contains("the crate has 0x4, winsock.txt has 0x8"), "{message}");
}

/// A wrong winsock constant (Linux's `AF_INET6` is 10) is reported by name.
#[test]
fn a_wrong_winsock_constant_is_reported() {
    let table = header_facts::winsock();
    let mut constants = WINSOCK_CONSTANTS.to_vec();
    constants.iter_mut().find(|(name, _)| *name == "AF_INET6").unwrap().1 = 10;
    let facts = winsock_facts(nt::WSK_LAYOUT, &constants);
    let message = verify(table.crate_side, &facts, table.file, table.recorded).unwrap_err();
    assert!(message.starts_with("1 mismatch(es)"), "{message}");
    assert!(message.contains("`AF_INET6`:"), "{message}");
    assert!(message.contains("the crate has 0xa, winsock.txt has 0x17"), "{message}");
}

#[test]
fn the_netio_imports_are_exported_by_libnetio() {
    let table = header_facts::netio();
    assert_eq!(table.facts.len(), NETIO_IMPORTS.len());
    if let Err(message) = verify_table(&table) {
        panic!("{message}");
    }
}

/// An import the library does not export (its fact reads 0x0) is reported by name.
#[test]
fn an_import_missing_from_libnetio_is_reported() {
    let table = header_facts::netio();
    let doctored = table.recorded.replace(
        "export WskCaptureProviderNPI = 0x1",
        "export WskCaptureProviderNPI = 0x0",
    );
    assert_ne!(doctored, table.recorded);
    let message = verify(table.crate_side, &table.facts, table.file, &doctored).unwrap_err();
    assert!(message.starts_with("1 mismatch(es)"), "{message}");
    assert!(message.contains("`export WskCaptureProviderNPI`:"), "{message}");
    assert!(message.contains("the crate has 0x1, netio.txt has 0x0"), "{message}");
}

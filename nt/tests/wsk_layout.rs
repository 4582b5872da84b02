//! Cross-checks the WSK ABI against independent sources where one exists on Debian: the socket
//! address layouts and constants of `nt::WSK_LAYOUT` against mingw-w64's `ws2def.h`/`ws2ipdef.h`
//! (compiled with clang for `x86_64-w64-windows-gnu`), and the four netio.sys imports against the
//! exports of mingw-w64's `libnetio.a`. mingw-w64 ships no `wsk.h`/`netioddk.h`: the WSK structures
//! themselves are pinned only by the `const` assertions in `nt/src/wsk/layout.rs` (from the WDK
//! documentation).
//!
//! Needs `clang`, `llvm-nm`, `mingw-w64-common` and `mingw-w64-x86-64-dev` (`.ci/run` installs them).
#![cfg(all(not(target_os = "windows"), not(miri)))]

mod clang_probe;

use clang_probe::{INCLUDE_ROOT, clang_errors, layout_asserts};
use std::fmt::Write as _;
use std::process::Command;

const LIBNETIO: &str = "/usr/x86_64-w64-mingw32/lib/libnetio.a";

/// The rows of `nt::WSK_LAYOUT` that `ws2def.h`/`ws2ipdef.h` define.
fn socket_address_rows() -> Vec<(&'static str, &'static str, usize)> {
    nt::WSK_LAYOUT
        .iter()
        .copied()
        .filter(|(ty, _, _)| ty.starts_with("SOCKADDR"))
        .collect()
}

fn probe(extra: &str) -> Vec<String> {
    let mut c = String::from("#include <winsock2.h>\n#include <ws2ipdef.h>\n#include <stddef.h>\n");
    c.push_str(&layout_asserts(&socket_address_rows()));
    let constants: [(&str, i64); 8] = [
        ("AF_INET", nt::AF_INET.into()),
        ("AF_INET6", nt::AF_INET6.into()),
        ("SOCK_STREAM", nt::SOCK_STREAM.into()),
        ("IPPROTO_TCP", nt::IPPROTO_TCP.into()),
        ("IPPROTO_IPV6", nt::IPPROTO_IPV6.into()),
        ("IPV6_V6ONLY", nt::IPV6_V6ONLY.into()),
        ("SOL_SOCKET", nt::SOL_SOCKET.into()),
        ("SO_REUSEADDR", nt::SO_REUSEADDR.into()),
    ];
    for (name, value) in constants {
        writeln!(c, "_Static_assert(({name}) == {value}, \"{name} != {value}\");").unwrap();
    }
    c.push_str(extra);
    clang_errors(&c, &format!("wsk-{}", extra.len()), &[])
}

#[test]
fn socket_addresses_and_constants_match_the_mingw_winsock_headers() {
    assert!(
        std::path::Path::new(INCLUDE_ROOT).join("ws2ipdef.h").exists(),
        "mingw-w64 headers missing: install mingw-w64-common; .ci/run does"
    );
    assert!(socket_address_rows().len() >= 10);
    let errors = probe("");
    assert!(
        errors.is_empty(),
        "WSK_LAYOUT disagrees with ws2def.h/ws2ipdef.h:\n{}",
        errors.join("\n")
    );
}

/// Proves the probe can fail.
#[test]
fn a_wrong_socket_address_offset_is_reported() {
    let errors = probe("_Static_assert(offsetof(SOCKADDR_IN6, sin6_addr) == 4, \"sin6_addr != 4\");\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("sin6_addr != 4"), "{errors:?}");
}

#[test]
fn the_netio_imports_are_exported_by_libnetio() {
    let output = Command::new("llvm-nm")
        .arg(LIBNETIO)
        .output()
        .expect("llvm-nm is not installed: install Debian's llvm package; .ci/run does");
    assert!(
        output.status.success(),
        "llvm-nm {LIBNETIO} failed (install mingw-w64-x86-64-dev)"
    );
    let symbols = String::from_utf8_lossy(&output.stdout);
    for name in [
        "WskRegister",
        "WskDeregister",
        "WskCaptureProviderNPI",
        "WskReleaseProviderNPI",
    ] {
        let import = format!("__imp_{name}");
        assert!(
            symbols.lines().any(|l| l.ends_with(&format!(" {import}"))),
            "{name} is not exported by NETIO.SYS"
        );
    }
}

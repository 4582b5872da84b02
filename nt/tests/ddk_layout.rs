//! Cross-checks every x64 size, offset and constant the `nt` crate relies on against an independent
//! source: the DDK headers of Debian's mingw-w64 (`ddk/wdm.h`, `ntstatus.h`), compiled with clang for
//! `x86_64-w64-windows-gnu`. The probe is generated from the same tables the crate asserts at compile
//! time (`nt::LAYOUT`, `nt::CONSTANT_TABLE`, `nt::STATUS_TABLE`), so nothing is listed twice.
//!
//! Needs `clang` and `mingw-w64-common` (`.ci/run` installs both). Without them the test fails with
//! that message rather than passing silently.
#![cfg(not(miri))]

mod clang_probe;

use clang_probe::{INCLUDE_ROOT, clang_errors, layout_asserts};
use std::fmt::Write as _;
use std::path::Path;

/// Builds the C probe: one `_Static_assert` per checked value, each with a message naming it.
fn probe_source(extra: &str) -> String {
    let mut c = String::from("#include <ntddk.h>\n#include <stddef.h>\n");
    c.push_str(&layout_asserts(nt::LAYOUT));
    for &(name, value) in nt::CONSTANT_TABLE {
        writeln!(c, "_Static_assert(({name}) == {value}LL, \"{name} != {value}\");").unwrap();
    }
    for &(name, value) in nt::STATUS_TABLE {
        let bits = value as u32;
        writeln!(
            c,
            "_Static_assert((ULONG)({name}) == {bits:#x}UL, \"{name} != {bits:#x}\");"
        )
        .unwrap();
    }
    c.push_str(extra);
    c
}

/// Compiles a probe against `ddk/wdm.h` (the kernel-mode headers need `_AMD64_`).
fn ddk_errors(source: &str, name: &str) -> Vec<String> {
    let ddk = Path::new(INCLUDE_ROOT).join("ddk/wdm.h");
    assert!(
        ddk.exists(),
        "{} is missing: install Debian's mingw-w64-common (and clang); .ci/run does",
        ddk.display()
    );
    clang_errors(source, name, &["-D_AMD64_", &format!("-I{INCLUDE_ROOT}/ddk")])
}

#[test]
fn every_layout_and_constant_matches_the_mingw_ddk_headers() {
    let checks = nt::LAYOUT.len() + nt::CONSTANT_TABLE.len() + nt::STATUS_TABLE.len();
    let errors = ddk_errors(&probe_source(""), "ddk-all");
    assert!(
        errors.is_empty(),
        "{} of {checks} checks disagree with wdm.h:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

/// Proves the probe can fail: a deliberately wrong offset must be reported by name.
#[test]
fn a_wrong_offset_is_reported() {
    let wrong = "_Static_assert(offsetof(IRP, IoStatus) == 0x28, \"offsetof(IRP, IoStatus) != 0x28\");\n";
    let errors = ddk_errors(&probe_source(wrong), "ddk-wrong");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("offsetof(IRP, IoStatus) != 0x28"), "{errors:?}");
}

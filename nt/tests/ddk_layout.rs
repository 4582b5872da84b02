//! Cross-checks every x64 size, offset and constant the `nt` crate relies on against an independent
//! source: the DDK headers of Debian's mingw-w64 (`ddk/wdm.h`, `ntstatus.h`), compiled with clang for
//! `x86_64-w64-windows-gnu`. The probe is generated from the same tables the crate asserts at compile
//! time (`nt::LAYOUT`, `nt::CONSTANT_TABLE`, `nt::STATUS_TABLE`), so nothing is listed twice.
//!
//! Needs `clang` and `mingw-w64-common` (`.ci/run` installs both). Without them the test fails with
//! that message rather than passing silently.
#![cfg(not(miri))]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const INCLUDE_ROOT: &str = "/usr/share/mingw-w64/include";

/// Builds the C probe: one `_Static_assert` per checked value, each with a message naming it.
fn probe_source(extra: &str) -> String {
    let mut c = String::from("#include <ntddk.h>\n#include <stddef.h>\n");
    for &(ty, member, value) in nt::LAYOUT {
        let expr = if member.is_empty() {
            format!("sizeof({ty})")
        } else {
            format!("offsetof({ty}, {member})")
        };
        writeln!(c, "_Static_assert({expr} == {value:#x}, \"{expr} != {value:#x}\");").unwrap();
    }
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

/// Runs clang in syntax-only mode on `source`; returns clang's error lines, empty when it compiled.
fn clang_errors(source: &str, name: &str) -> Vec<String> {
    let ddk = Path::new(INCLUDE_ROOT).join("ddk/wdm.h");
    assert!(
        ddk.exists(),
        "{} is missing: install Debian's mingw-w64-common (and clang); .ci/run does",
        ddk.display()
    );
    let file: PathBuf = std::env::temp_dir().join(format!("nt-ddk-probe-{}-{name}.c", std::process::id()));
    std::fs::write(&file, source).unwrap();
    let output = Command::new("clang")
        .args(["-target", "x86_64-w64-windows-gnu", "-fsyntax-only", "-w", "-D_AMD64_"])
        .arg(format!("-I{INCLUDE_ROOT}"))
        .arg(format!("-I{INCLUDE_ROOT}/ddk"))
        .arg(&file)
        .output()
        .expect("clang is not installed: install Debian's clang package; .ci/run does");
    let _ = std::fs::remove_file(&file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<String> = stderr
        .lines()
        .filter(|l| l.contains(": error:"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        errors.is_empty(),
        output.status.success(),
        "clang output not understood:\n{stderr}"
    );
    errors
}

#[test]
fn every_layout_and_constant_matches_the_mingw_ddk_headers() {
    let checks = nt::LAYOUT.len() + nt::CONSTANT_TABLE.len() + nt::STATUS_TABLE.len();
    let errors = clang_errors(&probe_source(""), "all");
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
    let errors = clang_errors(&probe_source(wrong), "wrong");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("offsetof(IRP, IoStatus) != 0x28"), "{errors:?}");
}

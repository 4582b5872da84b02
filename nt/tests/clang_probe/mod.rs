//! Shared by the header cross-check tests (`ddk_layout.rs`, `wsk_layout.rs`): turning a layout table
//! into C `_Static_assert`s, and compiling a probe with clang for `x86_64-w64-windows-gnu` against
//! Debian's mingw-w64 headers. A probe either compiles (every value agrees) or clang names each
//! value that does not.

use std::fmt::Write as _;
use std::process::Command;

/// Where Debian's `mingw-w64-common` puts the Windows headers (`ddk/` holds `wdm.h`).
pub const INCLUDE_ROOT: &str = "/usr/share/mingw-w64/include";

/// One `_Static_assert` per `(C type, member path or "" for sizeof, value)` row, each with a
/// message naming the expression and the expected value.
pub fn layout_asserts<'a>(rows: impl IntoIterator<Item = &'a (&'a str, &'a str, usize)>) -> String {
    let mut c = String::new();
    for &(ty, member, value) in rows {
        let expr = if member.is_empty() {
            format!("sizeof({ty})")
        } else {
            format!("offsetof({ty}, {member})")
        };
        writeln!(c, "_Static_assert({expr} == {value:#x}, \"{expr} != {value:#x}\");").unwrap();
    }
    c
}

/// Runs clang in syntax-only mode on `source` with `extra_args` (include paths, defines); returns
/// clang's error lines, empty when the probe compiled. `name` keeps concurrent probes apart.
pub fn clang_errors(source: &str, name: &str, extra_args: &[&str]) -> Vec<String> {
    let file = std::env::temp_dir().join(format!("nt-probe-{}-{name}.c", std::process::id()));
    std::fs::write(&file, source).unwrap();
    let output = Command::new("clang")
        .args(["-target", "x86_64-w64-windows-gnu", "-fsyntax-only", "-w"])
        .arg(format!("-I{INCLUDE_ROOT}"))
        .args(extra_args)
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

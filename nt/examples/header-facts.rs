//! Regenerates, or checks, the header facts under `nt/tests/header_facts/` from the real sources:
//! mingw-w64's headers, evaluated by clang for `x86_64-w64-windows-gnu`, and its `libnetio.a`, listed
//! by llvm-nm. The tests compare the crate's `const` tables with those files and need only Rust; this
//! program is the link between the files and the headers.
//!
//! ```text
//! cargo run -p wdm-async-nt --example header-facts -- --write   # rewrite the files from the headers
//! cargo run -p wdm-async-nt --example header-facts -- --check   # fail if the files differ from the headers
//! ```
//!
//! Needs clang, llvm, mingw-w64-common and mingw-w64-x86-64-dev (`.ci/run` installs them and runs
//! `--check`). Creates no temporary files: clang reads the C source from stdin and writes LLVM IR
//! to stdout.
//!
//! How a value is read: for each fact, the C source defines
//! `const unsigned long long fact_N = (unsigned long long)(EXPR);` and clang's IR for it reads
//! `@fact_N = ... constant i64 VALUE`. `--check` also compiles the crate's own values as
//! `_Static_assert`s against the headers (they must all hold) and one deliberately wrong value per
//! header table (clang must reject exactly that one), so the cross-check is shown to have teeth.

#[path = "../tests/header_facts/mod.rs"]
mod header_facts;

use header_facts::{INCLUDE_ROOT, Probe, REGENERATE, Source, Table};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

const TARGET: &str = "x86_64-w64-windows-gnu";

/// One deliberately wrong value per header table, for the negative `_Static_assert` probe.
const WRONG: &[(&str, &str, u64)] = &[
    ("ddk.txt", "offsetof(IRP, IoStatus)", 0x28),
    ("winsock.txt", "offsetof(SOCKADDR_IN6, sin6_addr)", 0x4),
];

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Write,
    Check,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--write"] => Mode::Write,
        ["--check"] => Mode::Check,
        _ => {
            eprintln!("usage: {REGENERATE}   (or --check instead of --write)");
            return ExitCode::from(2);
        }
    };
    match run(mode) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("header-facts: {message}");
            ExitCode::from(2)
        }
    }
}

/// Returns whether every check passed; `Err` when a tool could not be run.
fn run(mode: Mode) -> Result<bool, String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/header_facts");
    let mut ok = true;
    for table in header_facts::all() {
        let Evaluated { provenance, values } = evaluate(&table)?;
        let path = dir.join(table.file);
        let text = header_facts::render(&table, &provenance, &values);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        match mode {
            Mode::Write => {
                if on_disk == text {
                    println!("{}: unchanged ({} facts)", table.file, values.len());
                } else {
                    std::fs::write(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    println!("{}: written ({} facts)", table.file, values.len());
                }
            }
            Mode::Check => ok &= check_file(&table, &values, &text, &on_disk),
        }
    }
    if mode == Mode::Check {
        for table in header_facts::all() {
            ok &= static_asserts_have_teeth(&table)?;
        }
        ok &= exports_have_teeth()?;
        if !ok {
            eprintln!("header-facts: FAILED");
        }
    }
    Ok(ok)
}

/// Compares what the headers give with the file as checked in.
fn check_file(table: &Table, values: &[(String, u64)], text: &str, on_disk: &str) -> bool {
    let file = table.file;
    let parsed = match header_facts::parse(file, on_disk) {
        Ok(parsed) => parsed,
        Err(errors) => {
            eprintln!("{file}: FAIL: cannot be parsed:\n  {}", errors.join("\n  "));
            return false;
        }
    };
    let errors = header_facts::compare("mingw-w64", values, file, &parsed.facts);
    if !errors.is_empty() {
        eprintln!(
            "{file}: FAIL: {} difference(s) from the headers:\n  {}\n\
             Run `{REGENERATE}`, review the diff and commit it.",
            errors.len(),
            errors.join("\n  ")
        );
        return false;
    }
    println!("{file}: ok: {} facts agree with mingw-w64", values.len());
    // The `#` lines name the tool and package versions that wrote the file; another machine may
    // have other versions that give the same facts, so a difference there is only reported.
    let here: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    let checked_in: Vec<&str> = parsed.comments.iter().map(String::as_str).collect();
    if here != checked_in {
        println!("{file}: note: the facts agree, but the file was written with other versions:");
        checked_in
            .iter()
            .filter(|l| !here.contains(l))
            .for_each(|l| println!("  checked in: {l}"));
        here.iter()
            .filter(|l| !checked_in.contains(l))
            .for_each(|l| println!("  here:       {l}"));
    }
    true
}

/// What a table's source gives.
struct Evaluated {
    /// The lines of the file's header that say where the facts come from.
    provenance: Vec<String>,
    /// `(key, value)` in the table's order.
    values: Vec<(String, u64)>,
}

/// Evaluates every fact of `table` from its source.
fn evaluate(table: &Table) -> Result<Evaluated, String> {
    match table.source {
        Source::Headers { prelude, args, package } => {
            let exprs: Vec<&str> = table
                .facts
                .iter()
                .map(|fact| match &fact.probe {
                    Probe::C(expr) => Ok(expr.as_str()),
                    Probe::Export(_) => Err(format!("{}: an export fact in a header table", table.file)),
                })
                .collect::<Result<_, _>>()?;
            let values = evaluate_c(prelude, args, &exprs)?;
            let provenance = vec![
                format!(
                    "Headers: {} from {package} {} ({INCLUDE_ROOT}{}{})",
                    prelude
                        .lines()
                        .map(|l| l.trim_start_matches("#include "))
                        .collect::<Vec<_>>()
                        .join(" "),
                    package_version(package),
                    if args.is_empty() { "" } else { ", " },
                    args.join(" ")
                ),
                format!("Evaluated by: {}, -target {TARGET}", tool_version("clang")?),
            ];
            let keyed = table.facts.iter().map(|f| f.key.clone()).zip(values).collect();
            Ok(Evaluated {
                provenance,
                values: keyed,
            })
        }
        Source::ImportLibrary { path, package } => {
            let symbols = import_symbols(path)?;
            let values = table
                .facts
                .iter()
                .map(|fact| match &fact.probe {
                    Probe::Export(name) => {
                        Ok((fact.key.clone(), u64::from(symbols.contains(&format!("__imp_{name}")))))
                    }
                    Probe::C(_) => Err(format!("{}: a C fact in an import-library table", table.file)),
                })
                .collect::<Result<_, String>>()?;
            let provenance = vec![
                format!("Library: {path} from {package} {}", package_version(package)),
                format!("Listed by: llvm-nm, {}", tool_version("llvm-nm")?),
            ];
            Ok(Evaluated { provenance, values })
        }
    }
}

/// Runs clang for [`TARGET`] on `source` (given on stdin) with the mingw-w64 include root and
/// `args`; returns its stdout, its stderr and whether it succeeded.
fn clang(args: &[&str], extra: &[&str], source: &str) -> Result<(String, String, bool), String> {
    let mut child = Command::new("clang")
        .args(["-target", TARGET, "-w"])
        .arg(format!("-I{INCLUDE_ROOT}"))
        .args(args)
        .args(extra)
        .args(["-x", "c", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run clang ({e}): install Debian's clang; .ci/run does"))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // Written from a second thread so that neither side can block the other on a full pipe.
    let output = std::thread::scope(|s| {
        let writer = s.spawn(move || stdin.write_all(source.as_bytes()));
        let output = child.wait_with_output();
        (writer.join(), output)
    });
    let (written, output) = output;
    let out = output.map_err(|e| format!("waiting for clang failed: {e}"))?;
    // A clang that stopped early (on a bad argument) may have closed its input before reading it
    // all; its own diagnostics then say more than the broken pipe would.
    if out.status.success() {
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("cannot write clang's input: {e}")),
            Err(_) => return Err("the thread writing clang's input panicked".to_owned()),
        }
    }
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    ))
}

/// Evaluates each expression as a 64-bit unsigned constant; in the order given.
fn evaluate_c(prelude: &str, args: &[&str], exprs: &[&str]) -> Result<Vec<u64>, String> {
    let mut source = prelude.to_owned();
    for (n, expr) in exprs.iter().enumerate() {
        writeln!(
            source,
            "const unsigned long long fact_{n} = (unsigned long long)({expr});"
        )
        .unwrap();
    }
    let (ir, stderr, success) = clang(args, &["-S", "-emit-llvm", "-o", "-"], &source)?;
    if !success {
        return Err(format!("clang could not evaluate the facts:\n{stderr}"));
    }
    // `@fact_12 = dso_local constant i64 48, align 8`
    let mut found = BTreeMap::new();
    for line in ir.lines() {
        let Some(rest) = line.strip_prefix("@fact_") else {
            continue;
        };
        let parsed = rest.split_once(" = ").and_then(|(n, def)| {
            let n: usize = n.parse().ok()?;
            let value = def.split_once("constant i64 ")?.1;
            let value: i64 = value.split(',').next()?.trim().parse().ok()?;
            Some((n, value as u64))
        });
        let (n, value) = parsed.ok_or_else(|| format!("clang's IR not understood: {line}"))?;
        if found.insert(n, value).is_some() {
            return Err(format!("clang's IR defines fact_{n} twice"));
        }
    }
    (0..exprs.len())
        .map(|n| {
            found
                .get(&n)
                .copied()
                .ok_or_else(|| format!("clang's IR has no value for `{}`", exprs[n]))
        })
        .collect()
}

/// The symbols an import library defines (llvm-nm output, third column of defined symbols).
fn import_symbols(path: &str) -> Result<Vec<String>, String> {
    let output = Command::new("llvm-nm")
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run llvm-nm ({e}): install Debian's llvm; .ci/run does"))?;
    if !output.status.success() {
        return Err(format!(
            "llvm-nm {path} failed (install mingw-w64-x86-64-dev):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| match line.split_whitespace().collect::<Vec<_>>()[..] {
            [_, kind, name] if kind != "U" => Some(name.to_owned()),
            _ => None,
        })
        .collect())
}

/// `--check`: the crate's own values hold as `_Static_assert`s against the headers, and clang
/// rejects exactly the one deliberately wrong value of [`WRONG`].
fn static_asserts_have_teeth(table: &Table) -> Result<bool, String> {
    let Source::Headers { prelude, args, .. } = table.source else {
        return Ok(true);
    };
    let asserts = |wrong: Option<(&str, u64)>| {
        let mut c = prelude.to_owned();
        for fact in &table.facts {
            let Probe::C(expr) = &fact.probe else { continue };
            let value = match wrong {
                Some((key, value)) if key == fact.key => value,
                _ => fact.value,
            };
            let key = &fact.key;
            writeln!(
                c,
                "_Static_assert((unsigned long long)({expr}) == {value:#x}ULL, \"{key} != {value:#x}\");"
            )
            .unwrap();
        }
        c
    };
    let errors = |source: &str| -> Result<Vec<String>, String> {
        let (_, stderr, success) = clang(args, &["-fsyntax-only"], source)?;
        let errors: Vec<String> = stderr
            .lines()
            .filter(|l| l.contains(": error:"))
            .map(str::to_owned)
            .collect();
        if errors.is_empty() != success {
            return Err(format!("clang's output not understood:\n{stderr}"));
        }
        Ok(errors)
    };
    let file = table.file;
    let right = errors(&asserts(None))?;
    if !right.is_empty() {
        eprintln!(
            "{file}: FAIL: the crate's values disagree with the headers:\n  {}",
            right.join("\n  ")
        );
        return Ok(false);
    }
    let &(_, key, value) = WRONG
        .iter()
        .find(|(f, _, _)| *f == file)
        .ok_or_else(|| format!("{file}: no deliberately wrong value listed for it"))?;
    if !table.facts.iter().any(|f| f.key == key) {
        return Err(format!(
            "{file}: the deliberately wrong `{key}` is not one of its facts"
        ));
    }
    let wrong = errors(&asserts(Some((key, value))))?;
    let named = format!("{key} != {value:#x}");
    if wrong.len() != 1 || !wrong[0].contains(&named) {
        eprintln!(
            "{file}: FAIL: clang should reject exactly `{named}`, it said:\n  {}",
            wrong.join("\n  ")
        );
        return Ok(false);
    }
    println!(
        "{file}: ok: the crate's {} values hold as _Static_asserts; clang rejects `{named}`",
        table.facts.len()
    );
    Ok(true)
}

/// `--check`: through the same path as `netio.txt`, a name the import library does not define
/// reads as not exported and one it defines as exported.
fn exports_have_teeth() -> Result<bool, String> {
    let mut table = header_facts::netio();
    table.facts = header_facts::netio_facts(&["WskRegister", "WskNoSuchFunction"]);
    let values = evaluate(&table)?.values;
    let expected = [("export WskRegister", 1), ("export WskNoSuchFunction", 0)];
    let got: Vec<(&str, u64)> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    if got != expected {
        eprintln!("netio.txt: FAIL: expected {expected:?} from llvm-nm's listing, got {got:?}");
        return Ok(false);
    }
    println!("netio.txt: ok: an absent name (WskNoSuchFunction) reads as not exported (0x0)");
    Ok(true)
}

/// The version of a Debian package, or a note that it is unknown (not a Debian system).
fn package_version(package: &str) -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .ok()
        .filter(|o| o.status.success() && !o.stdout.is_empty())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|| "(version unknown)".to_owned())
}

/// The line of `tool --version` that names the version.
fn tool_version(tool: &str) -> Result<String, String> {
    let output = Command::new(tool)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {tool} ({e}): .ci/run installs it"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .find(|l| l.contains("version"))
        .unwrap_or("(version unknown)")
        .trim()
        .to_owned())
}

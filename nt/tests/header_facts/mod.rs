//! The facts that independent sources give for the values the `nt` crate pins, checked in as plain
//! text next to this file, and their comparison with the crate's `const` tables.
//!
//! - `ddk.txt`: every row of `nt::LAYOUT`, `nt::CONSTANT_TABLE` and `nt::STATUS_TABLE`, as mingw-w64's
//!   DDK headers (`ddk/wdm.h`, `ntstatus.h`) give it;
//! - `winsock.txt`: the socket-address and `ADDRINFOEXW` rows of `nt::WSK_LAYOUT` and the winsock constants below, as
//!   `ws2def.h`/`ws2ipdef.h` give them;
//! - `netio.txt`: whether mingw-w64's `libnetio.a` exports each netio.sys function `nt` imports.
//!
//! The tests (`ddk_layout.rs`, `wsk_layout.rs`) need only Rust: they compare the crate's tables with
//! these files. The files are written, and checked against the headers, by the regenerator
//! `nt/examples/header-facts.rs`, the only part that runs clang and llvm-nm; `.ci/run` runs it.
//!
//! Format: `#` lines say where the facts come from; then one `key = value` line per fact, the value
//! in lower-case hex. A key is the C expression that was evaluated (`offsetof(IRP, IoStatus)`,
//! `IRP_MJ_MAXIMUM_FUNCTION + 1`), a status name (evaluated as `(ULONG)(name)`), or `export NAME`
//! (0x1 when the import library defines `__imp_NAME`, 0x0 when it does not).
#![allow(dead_code)] // each test uses part of this; the regenerator uses all of it

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The command that rewrites the facts files from the headers.
pub const REGENERATE: &str = "cargo run -p wdm-async-nt --example header-facts -- --write";

/// Where Debian's `mingw-w64-common` puts the Windows headers (`ddk/` holds `wdm.h`).
pub const INCLUDE_ROOT: &str = "/usr/share/mingw-w64/include";

/// The winsock constants `nt` defines that `ws2def.h`/`ws2ipdef.h` also define.
pub const WINSOCK_CONSTANTS: &[(&str, u64)] = &[
    ("AF_INET", nt::AF_INET as u64),
    ("AF_INET6", nt::AF_INET6 as u64),
    ("SOCK_STREAM", nt::SOCK_STREAM as u64),
    ("SOCK_DGRAM", nt::SOCK_DGRAM as u64),
    ("IPPROTO_TCP", nt::IPPROTO_TCP as u64),
    ("IPPROTO_UDP", nt::IPPROTO_UDP as u64),
    ("IPPROTO_IPV6", nt::IPPROTO_IPV6 as u64),
    ("IPV6_V6ONLY", nt::IPV6_V6ONLY as u64),
    ("SOL_SOCKET", nt::SOL_SOCKET as u64),
    ("SO_REUSEADDR", nt::SO_REUSEADDR as u64),
    ("SO_KEEPALIVE", nt::SO_KEEPALIVE as u64),
    // `((int)(~SO_REUSEADDR))` in winsock2.h; WSK passes it as a ULONG control code.
    ("(ULONG)SO_EXCLUSIVEADDRUSE", nt::SO_EXCLUSIVEADDRUSE as u64),
    ("TCP_NODELAY", nt::TCP_NODELAY as u64),
    ("NS_ALL", nt::NS_ALL as u64),
    // mswsock.h: the ControlFlags of WskReceiveFrom.
    ("MSG_TRUNC", nt::MSG_TRUNC as u64),
    ("MSG_CTRUNC", nt::MSG_CTRUNC as u64),
    // wsk.h's definition, with its IOC_WSK spelled out (mingw-w64 has no wsk.h).
    (
        "_WSAIOR(IOC_WS2|0x07000000,0x3)",
        nt::SIO_WSK_QUERY_IDEAL_SEND_BACKLOG as u64,
    ),
];

/// The functions `nt/src/windows/netio.rs` imports from NETIO.SYS.
pub const NETIO_IMPORTS: &[&str] = &[
    "WskRegister",
    "WskDeregister",
    "WskCaptureProviderNPI",
    "WskReleaseProviderNPI",
];

/// How the regenerator finds a fact's value.
#[derive(Clone, Debug)]
pub enum Probe {
    /// A C expression, evaluated by clang after the table's `#include`s.
    C(String),
    /// Whether the table's import library defines `__imp_` + this name.
    Export(String),
}

/// One fact: its key in the file, how to find it, and the value the crate has for it.
#[derive(Clone, Debug)]
pub struct Fact {
    pub key: String,
    pub probe: Probe,
    pub value: u64,
}

/// Where a table's facts come from.
pub enum Source {
    /// C headers: the source text that includes them and clang's extra arguments.
    Headers {
        prelude: &'static str,
        args: &'static [&'static str],
        package: &'static str,
    },
    /// An import library's symbols.
    ImportLibrary { path: &'static str, package: &'static str },
}

/// One facts file and the crate's view of it.
pub struct Table {
    /// File name under `nt/tests/header_facts/`.
    pub file: &'static str,
    /// The file as checked in (compiled into the tests, so they read no file at run time).
    pub recorded: &'static str,
    /// The crate's tables the facts are for, for messages and the file's header.
    pub crate_side: &'static str,
    /// The test (under `nt/tests/`) that compares them with the crate.
    pub test: &'static str,
    pub source: Source,
    /// The facts in the crate's order, with the crate's values.
    pub facts: Vec<Fact>,
}

fn layout_fact(&(ty, member, value): &(&str, &str, usize)) -> Fact {
    let key = if member.is_empty() {
        format!("sizeof({ty})")
    } else {
        format!("offsetof({ty}, {member})")
    };
    Fact {
        probe: Probe::C(key.clone()),
        key,
        value: value as u64,
    }
}

/// The facts `ddk.txt` must hold for these tables (the crate's, or a doctored copy in a test).
pub fn ddk_facts(layout: &[(&str, &str, usize)], constants: &[(&str, i64)], statuses: &[(&str, i32)]) -> Vec<Fact> {
    let mut facts: Vec<Fact> = layout.iter().map(layout_fact).collect();
    facts.extend(constants.iter().map(|&(expr, value)| Fact {
        key: expr.to_owned(),
        probe: Probe::C(expr.to_owned()),
        value: value as u64,
    }));
    facts.extend(statuses.iter().map(|&(name, value)| Fact {
        key: name.to_owned(),
        probe: Probe::C(format!("(ULONG)({name})")),
        value: u64::from(value as u32),
    }));
    facts
}

/// The rows of a WSK layout table that `ws2def.h`/`ws2ipdef.h` define: the socket addresses.
pub fn socket_address_rows<'a>(layout: &[(&'a str, &'a str, usize)]) -> Vec<(&'a str, &'a str, usize)> {
    layout
        .iter()
        .copied()
        .filter(|(ty, _, _)| ty.starts_with("SOCKADDR") || *ty == "ADDRINFOEXW")
        .collect()
}

/// The facts `winsock.txt` must hold.
pub fn winsock_facts(wsk_layout: &[(&str, &str, usize)], constants: &[(&str, u64)]) -> Vec<Fact> {
    let mut facts: Vec<Fact> = socket_address_rows(wsk_layout).iter().map(layout_fact).collect();
    facts.extend(constants.iter().map(|&(name, value)| Fact {
        key: name.to_owned(),
        probe: Probe::C(name.to_owned()),
        value,
    }));
    facts
}

/// The facts `netio.txt` must hold: every import is exported.
pub fn netio_facts(imports: &[&str]) -> Vec<Fact> {
    imports
        .iter()
        .map(|&name| Fact {
            key: format!("export {name}"),
            probe: Probe::Export(name.to_owned()),
            value: 1,
        })
        .collect()
}

pub fn ddk() -> Table {
    Table {
        file: "ddk.txt",
        test: "ddk_layout.rs",
        recorded: include_str!("ddk.txt"),
        crate_side: "nt::LAYOUT, nt::CONSTANT_TABLE and nt::STATUS_TABLE",
        source: Source::Headers {
            prelude: "#include <ntddk.h>\n#include <stddef.h>\n",
            // The kernel-mode headers need `_AMD64_` and `ddk/` on the include path.
            args: &["-D_AMD64_", "-I/usr/share/mingw-w64/include/ddk"],
            package: "mingw-w64-common",
        },
        facts: ddk_facts(nt::LAYOUT, nt::CONSTANT_TABLE, nt::STATUS_TABLE),
    }
}

pub fn winsock() -> Table {
    Table {
        file: "winsock.txt",
        test: "wsk_layout.rs",
        recorded: include_str!("winsock.txt"),
        crate_side: "the SOCKADDR and ADDRINFOEXW rows of nt::WSK_LAYOUT and nt's winsock constants",
        source: Source::Headers {
            prelude: "#include <winsock2.h>\n#include <ws2ipdef.h>\n#include <ws2tcpip.h>\n#include <mswsock.h>\n#include <stddef.h>\n",
            args: &[],
            package: "mingw-w64-common",
        },
        facts: winsock_facts(nt::WSK_LAYOUT, WINSOCK_CONSTANTS),
    }
}

pub fn netio() -> Table {
    Table {
        file: "netio.txt",
        test: "wsk_layout.rs",
        recorded: include_str!("netio.txt"),
        crate_side: "nt's NETIO.SYS imports",
        source: Source::ImportLibrary {
            path: "/usr/x86_64-w64-mingw32/lib/libnetio.a",
            package: "mingw-w64-x86-64-dev",
        },
        facts: netio_facts(NETIO_IMPORTS),
    }
}

pub fn all() -> [Table; 3] {
    [ddk(), winsock(), netio()]
}

/// A facts file split into its `#` lines and its facts, in file order.
pub struct Parsed {
    pub comments: Vec<String>,
    pub facts: Vec<(String, u64)>,
}

/// Parses a facts file; every malformed line is an error naming its line number.
pub fn parse(file: &str, text: &str) -> Result<Parsed, Vec<String>> {
    let mut parsed = Parsed {
        comments: Vec::new(),
        facts: Vec::new(),
    };
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            parsed.comments.push(line.to_owned());
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let value = line
            .rsplit_once(" = ")
            .and_then(|(key, value)| Some((key, value.strip_prefix("0x")?)))
            .filter(|(key, digits)| {
                !key.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
            .and_then(|(key, digits)| Some((key, u64::from_str_radix(digits, 16).ok()?)));
        match value {
            Some((key, value)) => parsed.facts.push((key.to_owned(), value)),
            None => errors.push(format!(
                "{file}:{}: not `key = 0xVALUE` (lower-case hex): {line:?}",
                n + 1
            )),
        }
    }
    if errors.is_empty() { Ok(parsed) } else { Err(errors) }
}

/// Renders a facts file: the header, then one line per fact in the given order.
pub fn render(table: &Table, provenance: &[String], values: &[(String, u64)]) -> String {
    let mut text = String::new();
    let what = match table.source {
        Source::Headers { .. } => "What mingw-w64's headers give for",
        Source::ImportLibrary { .. } => "Whether mingw-w64's import library exports (0x1) or not (0x0)",
    };
    writeln!(
        text,
        "# {what} {}; compared with the crate by nt/tests/{}.\n\
         # Written by `{REGENERATE}`; do not edit by hand.",
        table.crate_side, table.test
    )
    .unwrap();
    for line in provenance {
        writeln!(text, "# {line}").unwrap();
    }
    for (key, value) in values {
        writeln!(text, "{key} = {value:#x}").unwrap();
    }
    text
}

/// Compares two lists of facts by key; one message per key that is missing on either side, has a
/// different value, or appears twice. Empty when they agree.
pub fn compare(left_name: &str, left: &[(String, u64)], right_name: &str, right: &[(String, u64)]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut index = |name: &str, facts: &[(String, u64)]| {
        let mut map = BTreeMap::new();
        for (key, value) in facts {
            if map.insert(key.clone(), *value).is_some() {
                errors.push(format!("`{key}`: listed twice in {name}"));
            }
        }
        map
    };
    let left_map = index(left_name, left);
    let right_map = index(right_name, right);
    for (key, value) in left {
        match right_map.get(key) {
            None => errors.push(format!(
                "`{key}`: {left_name} has {value:#x}, {right_name} has no such fact"
            )),
            Some(other) if other != value => errors.push(format!(
                "`{key}`: {left_name} has {value:#x}, {right_name} has {other:#x}"
            )),
            Some(_) => {}
        }
    }
    for (key, value) in right {
        if !left_map.contains_key(key) {
            errors.push(format!(
                "`{key}`: {right_name} has {value:#x}, {left_name} has no such row (a stale fact)"
            ));
        }
    }
    errors.dedup();
    errors
}

/// Compares the crate's `facts` with the `recorded` text of `file`. The error message lists every
/// mismatch and says how to regenerate the file.
pub fn verify(crate_side: &str, facts: &[Fact], file: &str, recorded: &str) -> Result<(), String> {
    let errors = match parse(file, recorded) {
        Ok(parsed) => {
            let expected: Vec<(String, u64)> = facts.iter().map(|f| (f.key.clone(), f.value)).collect();
            compare("the crate", &expected, file, &parsed.facts)
        }
        Err(errors) => errors,
    };
    if errors.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} mismatch(es) between {crate_side} and nt/tests/header_facts/{file}:\n  {}\n\
         If a table of the crate gained, lost or renamed a row, regenerate the facts from the \
         headers with `{REGENERATE}` (needs clang, llvm, mingw-w64-common and \
         mingw-w64-x86-64-dev; `.ci/run` checks them with --check) and review the diff. If a value \
         differs, the crate disagrees with the headers (unless the file was edited by hand: \
         `--check` instead of `--write` tells).",
        errors.len(),
        errors.join("\n  ")
    ))
}

/// [`verify`] for a whole table.
pub fn verify_table(table: &Table) -> Result<(), String> {
    verify(table.crate_side, &table.facts, table.file, table.recorded)
}

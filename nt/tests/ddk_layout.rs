//! Cross-checks every x64 size, offset and constant the `nt` crate relies on against an independent
//! source: the DDK headers of Debian's mingw-w64 (`ddk/wdm.h`, `ntstatus.h`). The values those
//! headers give are checked in as `header_facts/ddk.txt`, one per row of the tables the crate
//! asserts at compile time (`nt::LAYOUT`, `nt::CONSTANT_TABLE`, `nt::STATUS_TABLE`), so this test
//! needs only Rust. `.ci/run` regenerates the file from the headers with clang and fails if it
//! differs (`cargo run -p wdm-async-nt --example header-facts -- --check`).
#![cfg(not(miri))] // no unsafe code here: Miri would only slow CI down

mod header_facts;

use header_facts::{REGENERATE, ddk_facts, verify, verify_table};

#[test]
fn every_layout_and_constant_matches_the_mingw_ddk_headers() {
    let table = header_facts::ddk();
    assert_eq!(
        table.facts.len(),
        nt::LAYOUT.len() + nt::CONSTANT_TABLE.len() + nt::STATUS_TABLE.len()
    );
    if let Err(message) = verify_table(&table) {
        panic!("{message}");
    }
}

/// Checks a doctored copy of the crate's tables against the checked-in facts; returns the message.
fn mismatch(layout: &[(&str, &str, usize)], constants: &[(&str, i64)], statuses: &[(&str, i32)]) -> String {
    let table = header_facts::ddk();
    let facts = ddk_facts(layout, constants, statuses);
    verify(table.crate_side, &facts, table.file, table.recorded).expect_err("a mismatch must be reported")
}

/// Proves the comparison can fail: a wrong offset is reported by name, with both values.
#[test]
fn a_wrong_offset_is_reported() {
    let mut layout = nt::LAYOUT.to_vec();
    let row = layout
        .iter_mut()
        .find(|(ty, member, _)| (*ty, *member) == ("IRP", "IoStatus"))
        .unwrap();
    row.2 = 0x28;
    let message = mismatch(&layout, nt::CONSTANT_TABLE, nt::STATUS_TABLE);
    assert!(message.starts_with("1 mismatch(es)"), "{message}");
    assert!(
        message.contains("`offsetof(IRP, IoStatus)`: the crate has 0x28, ddk.txt has 0x30"),
        "{message}"
    );
}

#[test]
fn a_wrong_status_value_is_reported() {
    let mut statuses = nt::STATUS_TABLE.to_vec();
    let row = statuses
        .iter_mut()
        .find(|(name, _)| *name == "STATUS_CANCELLED")
        .unwrap();
    row.1 = 0xC000_0121_u32 as i32;
    let message = mismatch(nt::LAYOUT, nt::CONSTANT_TABLE, &statuses);
    assert!(message.starts_with("1 mismatch(es)"), "{message}");
    assert!(message.contains("`STATUS_CANCELLED`:"), "{message}");
    assert!(
        message.contains("the crate has 0xc0000121, ddk.txt has 0xc0000120"),
        "{message}"
    );
}

/// A row added to a table without regenerating the facts fails, and says how to regenerate.
#[test]
fn a_row_without_a_fact_is_reported_with_how_to_regenerate() {
    let mut constants = nt::CONSTANT_TABLE.to_vec();
    constants.push(("IO_TYPE_FILE", 5));
    let message = mismatch(nt::LAYOUT, &constants, nt::STATUS_TABLE);
    assert!(message.starts_with("1 mismatch(es)"), "{message}");
    assert!(message.contains("`IO_TYPE_FILE`:"), "{message}");
    assert!(message.contains("ddk.txt has no such fact"), "{message}");
    assert!(message.contains(REGENERATE), "{message}");
}

/// A fact whose row left the crate's tables is stale, and fails too.
#[test]
fn a_stale_fact_is_reported() {
    let layout: Vec<_> = nt::LAYOUT
        .iter()
        .copied()
        .filter(|&(ty, member, _)| (ty, member) != ("KDPC", "DpcData"))
        .collect();
    assert_eq!(layout.len() + 1, nt::LAYOUT.len());
    let message = mismatch(&layout, nt::CONSTANT_TABLE, nt::STATUS_TABLE);
    assert!(message.starts_with("1 mismatch(es)"), "{message}");
    assert!(
        message.contains("`offsetof(KDPC, DpcData)`: ddk.txt has 0x38, the crate has no such row"),
        "{message}"
    );
    assert!(message.contains("a stale fact"), "{message}");
    assert!(message.contains(REGENERATE), "{message}");
}

/// A hand-edited file that is not in the format, or lists a fact twice, is reported by line.
#[test]
fn a_malformed_or_duplicated_line_is_reported() {
    let table = header_facts::ddk();
    let malformed = table.recorded.replace("sizeof(IRP) = 0xd0", "sizeof(IRP) = 208");
    let message = verify(table.crate_side, &table.facts, table.file, &malformed).unwrap_err();
    assert!(message.contains("ddk.txt:"), "{message}");
    assert!(message.contains("\"sizeof(IRP) = 208\""), "{message}");

    let duplicated = format!("{}sizeof(IRP) = 0xd0\n", table.recorded);
    let message = verify(table.crate_side, &table.facts, table.file, &duplicated).unwrap_err();
    assert!(message.starts_with("1 mismatch(es)"), "{message}");
    assert!(message.contains("`sizeof(IRP)`: listed twice in ddk.txt"), "{message}");
}

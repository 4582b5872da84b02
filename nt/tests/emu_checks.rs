//! What the checker keeps in memory (`emu::set_checks`): a bounded setting still checks every rule.
//! A double free within its smaller quarantine is a double free; one of a block that has left the
//! quarantine is still refused, as a pointer no allocator handed out; without backtraces the
//! reports say so instead of naming sites.
//!
//! The setting is process-wide: each test changes it only while it holds a session (so tests run
//! one at a time) and sets it back to the full checks before the session ends.
#![cfg(not(target_os = "windows"))]

mod common;
mod wsk_support;

use common::{TAG, take_one};
use nt::emu::{self, Checks, Rule};
use nt::*;

/// Allocates and frees `n` 32-byte nonpaged blocks; returns their addresses, oldest first.
fn churn(n: usize) -> Vec<PVOID> {
    (0..n)
        .map(|_| {
            // SAFETY: a fresh block, freed once with its own tag.
            unsafe {
                let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 32, TAG);
                assert!(!p.is_null());
                ExFreePoolWithTag(p, TAG);
                p
            }
        })
        .collect()
}

/// Frees `p` again and returns the one violation that must be reported.
fn free_again(p: PVOID, rule: Rule) -> emu::Violation {
    // SAFETY: recording mode: the emulation refuses the free without touching `p`'s memory.
    unsafe { ExFreePoolWithTag(p, TAG) };
    take_one(rule)
}

#[test]
fn a_bounded_quarantine_keeps_the_checks_and_gives_back_its_oldest_blocks() {
    // The block limit: after four more frees the first block has left a quarantine of four.
    {
        let _session = emu::session();
        let defaults = emu::checks();
        assert_eq!(
            (
                defaults.quarantine_blocks,
                defaults.quarantine_bytes,
                defaults.closed_sockets
            ),
            (4096, 64 << 20, 1024),
            "tests get the full checks by default"
        );
        emu::set_checks(Checks {
            quarantine_blocks: 4,
            quarantine_bytes: 1 << 20,
            ..Checks::BOUNDED
        });
        emu::expect_violations();
        let first = churn(1)[0];
        let v = free_again(first, Rule::DoubleFree);
        assert!(v.to_string().contains("freed at: <no backtrace captured>"), "{v}");
        assert!(v.to_string().contains("created at: <no backtrace captured>"), "{v}");
        let later = churn(4);
        free_again(first, Rule::UnknownObject);
        for &p in &later {
            free_again(p, Rule::DoubleFree);
        }
        emu::set_checks(Checks::FULL);
    }

    // The byte limit: two 32-byte blocks do not fit in 48 bytes.
    {
        let _session = emu::session();
        emu::set_checks(Checks {
            quarantine_bytes: 48,
            ..Checks::BOUNDED
        });
        emu::expect_violations();
        let blocks = churn(2);
        free_again(blocks[0], Rule::UnknownObject);
        free_again(blocks[1], Rule::DoubleFree);
        emu::set_checks(Checks::FULL);
    }

    // Shrinking the quarantine gives its oldest blocks back at once; the full setting names sites.
    {
        let _session = emu::session();
        emu::set_checks(Checks::FULL);
        // Miri cannot capture backtraces: the setting stays off there.
        let full = Checks {
            backtraces: !cfg!(miri),
            ..Checks::FULL
        };
        assert_eq!(emu::checks(), full);
        emu::expect_violations();
        let blocks = churn(10);
        emu::set_checks(Checks::BOUNDED);
        assert_eq!(emu::checks(), Checks::BOUNDED);
        emu::set_checks(Checks {
            quarantine_blocks: 2,
            ..Checks::FULL
        });
        for &p in &blocks[..8] {
            free_again(p, Rule::UnknownObject);
        }
        let v = free_again(blocks[9], Rule::DoubleFree);
        if !cfg!(miri) {
            assert!(!v.to_string().contains("<no backtrace captured>"), "{v}");
            assert!(v.to_string().contains("freed at:\n"), "{v}");
            assert!(v.to_string().contains("object created at:\n"), "{v}");
        }
        emu::set_checks(Checks::FULL);
    }
}

#[test]
fn a_call_after_close_is_still_reported_with_a_small_closed_socket_quarantine() {
    {
        let _session = emu::session();
        emu::set_checks(Checks {
            closed_sockets: 2,
            ..Checks::BOUNDED
        });
        let client = wsk_support::Client::register();
        // Five closes through a quarantine of two: the three oldest headers are given back.
        let sockets: Vec<PWSK_SOCKET> = (0..5).map(|_| client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET)).collect();
        for &socket in &sockets {
            assert_eq!(wsk_support::close(socket), STATUS_SUCCESS);
        }
        emu::expect_violations();
        for &socket in &sockets[3..] {
            assert_ne!(wsk_support::close(socket), STATUS_SUCCESS);
            take_one(Rule::CallAfterClose);
        }
        client.deregister();
        emu::set_checks(Checks::FULL);
    }
}

//! The use-after-free check for kernel objects that live in the driver's own memory (`KEVENT`,
//! `KTIMER`, `KDPC`): calling `KeSetEvent` on an event inside a pool block that was freed is a
//! [`Rule::UseAfterFree`], reported with the function, the object, and where the block was
//! allocated and freed.
//!
//! Objects may also live in statics or on a stack, which the heap does not know, and `KeSetEvent`
//! is on the hot path of every executor wake, so the check must cost next to nothing when the
//! object is fine. It keys on the fill the heap writes over freed memory: a dispatcher header in
//! freed memory has [`FREED_FILL`] in every byte of its `Lock` word, which `KeInitialize*` never
//! writes (the type and size bytes are never `0xDD`) and no other emulated call changes. Only then
//! is the quarantine consulted (an O(log n) range lookup under the heap lock), and only a hit there
//! is reported, so an object that happens to hold the pattern outside the heap is never reported.
//!
//! Blind spot: an object whose `Lock` word the driver overwrote after the free, or whose block has
//! already left the bounded quarantine (its size: [`Checks`](crate::emu::Checks)).

use super::dispatcher;
use super::heap::{FREED_FILL, heap};
use super::verifier::{Rule, violation};
use crate::types::*;

/// The `Lock` word of a dispatcher header in freed memory.
const FREED_LOCK_WORD: i32 = i32::from_ne_bytes([FREED_FILL; 4]);
/// `KDPC::TargetInfoAsUlong` of a DPC in freed memory.
const FREED_DPC_WORD: ULONG = ULONG::from_ne_bytes([FREED_FILL; 4]);

/// Whether the dispatcher object whose header is at `header` lies in freed pool: if so, reports a
/// [`Rule::UseAfterFree`] of `object` (e.g. "KEVENT") by `function`, and the caller must make the call
/// harmless (in recording mode). One relaxed load when the object is fine.
///
/// # Safety
/// `header` points to a dispatcher header: live, or in memory the heap still quarantines.
pub(super) unsafe fn header_is_freed(header: *mut DISPATCHER_HEADER, function: &str, object: &str) -> bool {
    // SAFETY: forwarded from the caller's contract.
    let word = unsafe { dispatcher::lock_word(header) };
    word == FREED_LOCK_WORD && report_if_freed(header.addr(), function, object)
}

/// As [`header_is_freed`], for a `KDPC`.
///
/// # Safety
/// `dpc` points to a `KDPC` (live, or in quarantined memory) that no other thread writes meanwhile
/// (the kernel's contract for the functions that take one).
pub(super) unsafe fn dpc_is_freed(dpc: PKDPC, function: &str) -> bool {
    // SAFETY: forwarded from the caller's contract; a read of one aligned field, no reference made.
    let word = unsafe { core::ptr::addr_of!((*dpc).TargetInfoAsUlong).read() };
    word == FREED_DPC_WORD && report_if_freed(dpc.addr(), function, "KDPC")
}

/// For the `KeInitialize*` functions: whether the storage at `addr` lies in freed pool (reported as
/// for [`header_is_freed`]). Storage handed to an initialiser may legitimately be uninitialised
/// (`MaybeUninit` statics, fresh pool), so it is never read: the quarantine is consulted directly.
/// Initialisation is rare, so the range lookup under the heap lock costs nothing that matters.
pub(super) fn storage_is_freed(addr: usize, function: &str, object: &str) -> bool {
    report_if_freed(addr, function, object)
}

/// The slow path: reports if `addr` lies in a quarantined block.
#[cold]
fn report_if_freed(addr: usize, function: &str, object: &str) -> bool {
    let heap = heap();
    let Some(freed) = heap.freed_containing(addr) else {
        return false;
    };
    violation(
        Rule::UseAfterFree,
        &format_args!(
            "{function} on the {object} {addr:#x}, at offset {} in the freed {}{}",
            addr - freed.base,
            freed,
            freed.freed_site()
        ),
        freed.created,
    );
    true
}

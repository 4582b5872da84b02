//! `ExAllocatePool2` / `ExAllocatePoolWithTag` / `ExFreePoolWithTag`, with the checks of Driver Verifier's pool tracking and
//! fault injection.

use super::heap::{Access, Class, Describe, Kind, TagName, UNINITIALIZED_FILL, heap};
use super::verifier::{Rule, creation_site, violation};
use super::{dispatcher, exports, irql, pool_stats, timer};
use crate::types::*;
use core::ptr;

/// Alignment of pool blocks on x64 (`POOL_FLAG_CACHE_ALIGNED`: a cache line).
const POOL_ALIGNMENT: usize = 16;
const CACHE_LINE: usize = 64;

const POOL_TYPE_FLAGS: POOL_FLAGS = POOL_FLAG_NON_PAGED | POOL_FLAG_NON_PAGED_EXECUTE | POOL_FLAG_PAGED;

/// The highest IRQL at which memory of this pool type may be allocated, freed or touched.
fn max_irql(flags: POOL_FLAGS) -> KIRQL {
    if flags & POOL_FLAG_PAGED != 0 {
        APC_LEVEL
    } else {
        DISPATCH_LEVEL
    }
}

/// `ExAllocatePool2`: zeroed memory unless `POOL_FLAG_UNINITIALIZED` (then filled with `0xCD`), 16-byte
/// aligned (64 with `POOL_FLAG_CACHE_ALIGNED`). Exactly one pool type flag and a non-zero tag are
/// required. Nonpaged pool at IRQL <= DISPATCH_LEVEL, paged pool at IRQL <= APC_LEVEL. Returns NULL
/// when a failure is injected ([`crate::emu::pool::fail_next`], [`crate::emu::pool::fail_tag`]).
/// `POOL_FLAG_RAISE_ON_FAILURE` cannot raise a structured exception here; it returns NULL too.
///
/// Not exported under this name: `nt::ExAllocatePool2` is the wrapper of `crate::optional`, which
/// reaches this routine through the emulated `MmGetSystemRoutineAddress`, as a driver does in the
/// kernel.
///
/// # Safety
/// None beyond the kernel's contract; the signature matches the kernel's.
pub unsafe extern "system" fn ExAllocatePool2(Flags: POOL_FLAGS, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID {
    pool_stats::count_call(Class::Pool);
    let pool_types = Flags & POOL_TYPE_FLAGS;
    if pool_types.count_ones() != 1 {
        violation(
            Rule::InvalidParameter,
            &format_args!(
                "ExAllocatePool2 flags {Flags:#x} name {} pool types",
                pool_types.count_ones()
            ),
            None,
        );
        return ptr::null_mut();
    }
    let fill = (Flags & POOL_FLAG_UNINITIALIZED != 0).then_some(UNINITIALIZED_FILL);
    allocate("ExAllocatePool2", Flags, NumberOfBytes, Tag, fill)
}

/// `ExAllocatePoolWithTag`: memory of `PoolType`, never zeroed (filled with `0xCD`), 16-byte aligned
/// (64 for the cache-aligned types). The pool types of `wdm.h` the emulation knows are
/// `NonPagedPool`, `PagedPool`, their cache-aligned variants, and `NonPagedPoolNx` (and its
/// cache-aligned variant) when the emulated kernel reports Windows 8 or later; any other type is an
/// invalid parameter (`BAD_POOL_CALLER` on Windows; invented for `NonPagedPoolNx` before Windows 8,
/// whose behaviour with it Microsoft does not document). The tag must be non-zero (its
/// documentation asks for a non-zero character literal). IRQL limits and fault injection as for
/// `ExAllocatePool2`.
///
/// # Safety
/// None beyond the kernel's contract; the signature matches the kernel's.
pub unsafe extern "system" fn ExAllocatePoolWithTag(PoolType: POOL_TYPE, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID {
    pool_stats::count_call(Class::Pool);
    let flags = match PoolType {
        NonPagedPool => POOL_FLAG_NON_PAGED_EXECUTE,
        NonPagedPoolCacheAligned => POOL_FLAG_NON_PAGED_EXECUTE | POOL_FLAG_CACHE_ALIGNED,
        PagedPool => POOL_FLAG_PAGED,
        PagedPoolCacheAligned => POOL_FLAG_PAGED | POOL_FLAG_CACHE_ALIGNED,
        NonPagedPoolNx if exports::nx_pool_exists() => POOL_FLAG_NON_PAGED,
        NonPagedPoolNxCacheAligned if exports::nx_pool_exists() => POOL_FLAG_NON_PAGED | POOL_FLAG_CACHE_ALIGNED,
        _ => {
            violation(
                Rule::InvalidParameter,
                &format_args!("ExAllocatePoolWithTag with pool type {PoolType}, which this kernel does not have"),
                None,
            );
            return ptr::null_mut();
        }
    };
    allocate(
        "ExAllocatePoolWithTag",
        flags | POOL_FLAG_UNINITIALIZED,
        NumberOfBytes,
        Tag,
        Some(UNINITIALIZED_FILL),
    )
}

/// What both allocators share once the pool type is known (`flags` has exactly one pool type).
fn allocate(function: &str, flags: POOL_FLAGS, size: SIZE_T, tag: ULONG, fill: Option<u8>) -> PVOID {
    if tag == 0 {
        violation(Rule::InvalidParameter, &format_args!("{function} with tag 0"), None);
        return ptr::null_mut();
    }
    if !irql::require_max(function, max_irql(flags)) {
        return ptr::null_mut();
    }
    let align = if flags & POOL_FLAG_CACHE_ALIGNED != 0 {
        CACHE_LINE
    } else {
        POOL_ALIGNMENT
    };
    let created = creation_site();
    let mut heap = heap();
    if heap.inject_failure(Some(tag)) {
        return ptr::null_mut();
    }
    match heap.allocate(size, align, fill, Kind::Pool { tag, flags }, created) {
        Some(p) => p.as_ptr().cast(),
        None => ptr::null_mut(),
    }
}

/// `ExFreePoolWithTag`: the pointer must be a live pool block allocated with the same tag, freed at
/// an IRQL its pool type allows, and must not contain an armed timer, a queued DPC
/// ([`Rule::FreeWithActiveTimer`]) or an object a thread is blocked waiting on
/// ([`Rule::FreeWithWaiter`]). The block is filled with `0xDD` and quarantined, with the site of the
/// free for later use-after-free reports.
///
/// # Safety
/// `P` was returned by `ExAllocatePool2` or `ExAllocatePoolWithTag` and is not used after this call (both are checked as far as
/// the emulation can).
pub unsafe extern "system" fn ExFreePoolWithTag(P: PVOID, Tag: ULONG) {
    let addr = P.addr();
    // Captured before taking the heap lock: a stack walk is slow.
    let freed_at = creation_site();
    let size = {
        let mut heap = heap();
        let Some(block) = heap.find(addr, Class::Pool, "ExFreePoolWithTag", Access::Free) else {
            return;
        };
        let Kind::Pool { tag, flags } = block.kind else { return };
        if tag != Tag {
            violation(
                Rule::PoolTagMismatch,
                &format_args!(
                    "ExFreePoolWithTag(tag '{}') of {}",
                    TagName(Tag),
                    Describe {
                        addr,
                        size: block.size,
                        kind: &block.kind
                    }
                ),
                block.created.as_ref(),
            );
            return;
        }
        if !irql::require_max("ExFreePoolWithTag", max_irql(flags)) {
            return;
        }
        block.size
    };
    // Under the dispatcher lock from the check to the release, so that no timer is armed and no
    // wait starts in the block in between (a wait that starts after the release sees freed memory).
    let dispatcher = dispatcher::lock();
    let conflict = timer::active_in_range(&dispatcher, addr, size)
        .map(|active| (Rule::FreeWithActiveTimer, active))
        .or_else(|| dispatcher::waited_in_range(&dispatcher, addr, size).map(|waited| (Rule::FreeWithWaiter, waited)));
    let mut heap = heap();
    if let Some((rule, what)) = conflict {
        let created = heap.get(addr).and_then(|b| b.created.as_ref());
        violation(
            rule,
            &format_args!("ExFreePoolWithTag of the pool block {addr:#x} ({size} bytes) containing {what}"),
            created,
        );
        return;
    }
    // Checked again: another thread may have freed the block since (a double free).
    if heap
        .find(addr, Class::Pool, "ExFreePoolWithTag", Access::Free)
        .is_some()
    {
        heap.release(addr, freed_at);
    }
    drop(heap);
    drop(dispatcher);
}

/// Fault injection and inspection of the emulated pool.
pub mod control {
    use super::super::heap::{Kind, heap};
    use crate::types::ULONG;

    /// The next `n` allocations (`ExAllocatePool2`, `ExAllocatePoolWithTag`, `IoAllocateIrp`, `IoAllocateMdl`) fail.
    pub fn fail_next(n: usize) {
        heap().set_fail_next(n);
    }

    /// The next `n` `ExAllocatePool2` or `ExAllocatePoolWithTag` calls with pool tag `tag` fail (`usize::MAX`: all of them until
    /// the session ends). Tag-specific injections are consumed before [`fail_next`]'s.
    pub fn fail_tag(tag: ULONG, n: usize) {
        heap().set_fail_tag(tag, n);
    }

    /// Cancels every pending failure injection.
    pub fn clear_failures() {
        let mut heap = heap();
        heap.set_fail_next(0);
        heap.reset_fail_tags();
    }

    /// The number of live pool blocks with pool tag `tag`.
    pub fn live_blocks(tag: ULONG) -> usize {
        heap()
            .live_blocks()
            .filter(|(_, b)| matches!(b.kind, Kind::Pool { tag: t, .. } if t == tag))
            .count()
    }
}

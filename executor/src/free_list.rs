//! A pool's list of free slots: a lock-free stack of slot indices with O(1) claim and release.
//!
//! The head is one `AtomicU64`: the first free slot in the low 32 bits and a generation tag in
//! the high 32 bits, bumped by every successful change. The tag defeats ABA: a claimer that read
//! `head = (i, t)` and `next(i) = j` cannot install `j` if, meanwhile, `i` was claimed and released
//! again (the tag is no longer `t`), even if `i` is on top once more.
//! The tag has 32 bits, so it only fails if a claimer stalls between its read of the head and its
//! compare-exchange while exactly a multiple of 2^32 (about 4e9) changes are made to this pool's
//! list: minutes of nothing but spawning, during one preemption. Accepted (a known limit, like
//! every tagged-pointer stack's; a 64-bit tag would need a 128-bit compare-exchange). What it would
//! do: the stalled claimer installs a link it read while the slot was in use, so any 32-bit value
//! (a run-queue pointer cut to 32 bits, say). `pop` checks every index it takes from the head
//! against the capacity, so such a value never makes it read or hand out memory outside the pool
//! (it takes such a head for the end of the list); an in-range value could still hand one slot out
//! twice.
//! Each slot's "next free" link lives in the slot itself (see `Header::link`), read atomically
//! because a slow claimer may read it while the slot is already in use (its value is then
//! discarded by the failing compare-exchange).
//!
//! Slots that were never used are not linked at all: `fresh` counts how many have been handed out,
//! so the list grows as slots are released. Slot `i` is stored as `i + 1` in the head and in the
//! links, so that 0 means "no slot": a new list is all zero bytes, and so is a new `TaskPool`,
//! which lets a `static` pool go to the image's zero-fill `.bss` instead of being stored in the file.

use crate::sync::{AtomicU64, Ordering};

/// "No slot", in the low half of the head word and in a link.
const NONE: u32 = 0;

/// The largest capacity a list supports. Slot indices go up to `capacity - 1`, so their encoding
/// (`index + 1`) fits in 32 bits; and `u32::MAX`, which [`NONE`] decodes to, is never an index, so
/// `pop`'s single bounds check also recognises an empty list.
pub(crate) const MAX_CAPACITY: u32 = u32::MAX;

/// A slot index as the head and the links store it (never [`NONE`]).
#[inline(always)]
const fn encode(index: u32) -> u32 {
    index + 1
}

const fn pack(tag: u64, link: u32) -> u64 {
    (tag << 32) | link as u64
}

/// The free slots of one pool of `capacity` slots. All zero bytes when new (no padding: `fresh` is
/// 64-bit so that the struct is two full words).
#[repr(C)]
pub(crate) struct FreeList {
    head: AtomicU64,
    fresh: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<FreeList>() == 16 || cfg!(loom));

impl FreeList {
    /// Every slot free, none ever used.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            head: AtomicU64::new(pack(0, NONE)),
            fresh: AtomicU64::new(0),
        }
    }

    /// Every slot free, none ever used.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            head: AtomicU64::new(pack(0, NONE)),
            fresh: AtomicU64::new(0),
        }
    }

    /// How many slots have ever been handed out (slots at this index and above were never used).
    pub(crate) fn used(&self) -> u32 {
        // Never above the capacity (`pop` checks it), which is a `u32`.
        self.fresh.load(Ordering::Acquire) as u32
    }

    /// Claims a free slot (transition 1), or returns `None` if all `capacity` slots are in use.
    /// `next_of(i)` reads slot `i`'s link, as `push` stored it (any value if the slot is in use).
    /// `capacity` is at most [`MAX_CAPACITY`].
    #[inline(always)]
    pub(crate) fn pop(&self, capacity: u32, next_of: impl Fn(u32) -> u32) -> Option<u32> {
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            // One compare for an empty list (NONE decodes to u32::MAX, which no capacity exceeds)
            // and for a head that is not a slot of this pool: the latter can only be the garbage a
            // tag wraparound installs (see the module documentation). `next_of` is never called,
            // nor a slot read, outside the pool; the claim goes on with the never-used slots (a
            // spurious `PoolFull` once they are gone), which are free whatever the head says.
            let index = (head as u32).wrapping_sub(1);
            if index >= capacity {
                break;
            }
            let next = next_of(index);
            let new = pack((head >> 32).wrapping_add(1), next);
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return Some(index),
                Err(now) => head = now,
            }
        }
        let mut fresh = self.fresh.load(Ordering::Relaxed);
        loop {
            if fresh >= u64::from(capacity) {
                return None;
            }
            match self
                .fresh
                .compare_exchange_weak(fresh, fresh + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                // `fresh < capacity <= u32::MAX`.
                Ok(_) => return Some(fresh as u32),
                Err(now) => fresh = now,
            }
        }
    }

    /// Returns slot `index` to the list (transition 8). `set_next(i, link)` stores slot `i`'s link
    /// (an opaque value for `pop`'s `next_of`). The caller owns the slot and no longer touches it
    /// afterwards.
    #[inline(always)]
    pub(crate) fn push(&self, index: u32, set_next: impl Fn(u32, u32)) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            set_next(index, head as u32);
            let new = pack((head >> 32).wrapping_add(1), encode(index));
            // Release publishes the link and the slot's last use to the next claimer.
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A head whose index is outside the pool (what a tag wraparound could install) is taken for
    /// the end of the list: no link is read outside the pool, the never-used slots are still handed
    /// out, then the pool reports full; slots released on top of it are claimed as usual.
    #[test]
    fn a_head_outside_the_pool_is_never_followed() {
        const CAPACITY: u32 = 2;
        let list = FreeList::new();
        list.head.store(pack(7, encode(1_000)), Ordering::Relaxed);
        let links = [core::cell::Cell::new(NONE), core::cell::Cell::new(NONE)];
        let next_of = |i: u32| {
            assert!(i < CAPACITY, "link of slot {i} read, outside the pool");
            links[i as usize].get()
        };
        assert_eq!(list.pop(CAPACITY, next_of), Some(0));
        assert_eq!(list.pop(CAPACITY, next_of), Some(1));
        assert_eq!(list.pop(CAPACITY, next_of), None);
        list.push(1, |i, next| links[i as usize].set(next));
        assert_eq!(list.pop(CAPACITY, next_of), Some(1));
        assert_eq!(list.pop(CAPACITY, next_of), None);
    }
}

//! A pool's list of free slots: a lock-free stack of slot indices with O(1) claim and release.
//!
//! The head is one `AtomicU64`: the index of the first free slot in the low 32 bits and a
//! generation tag in the high 32 bits, bumped by every successful change. The tag defeats ABA: a
//! claimer that read `head = (i, t)` and `next(i) = j` cannot install `j` if, meanwhile, `i` was
//! claimed and released again (the tag is no longer `t`), even if `i` is on top once more.
//! The tag has 32 bits, so it only fails if a claimer stalls between its read of the head and its
//! compare-exchange while exactly a multiple of 2^32 (about 4e9) changes are made to this pool's
//! list: minutes of nothing but spawning, during one preemption. Accepted (a known limit, like
//! every tagged-pointer stack's; a 64-bit tag would need a 128-bit compare-exchange).
//! Each slot's "next free" index lives in the slot itself (see `Header::link`), read atomically
//! because a slow claimer may read it while the slot is already in use (its value is then
//! discarded by the failing compare-exchange).
//!
//! Slots that were never used are not linked at all: `fresh` counts how many have been handed out,
//! so a pool can be built by a `const fn` and the list grows as slots are released.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// "No slot" in the low half of the head word.
pub(crate) const NIL: u32 = u32::MAX;

const fn pack(tag: u64, index: u32) -> u64 {
    (tag << 32) | index as u64
}

/// The free slots of one pool of `capacity` slots.
pub(crate) struct FreeList {
    head: AtomicU64,
    fresh: AtomicU32,
}

impl FreeList {
    /// Every slot free, none ever used.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            head: AtomicU64::new(pack(0, NIL)),
            fresh: AtomicU32::new(0),
        }
    }

    /// Every slot free, none ever used.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            head: AtomicU64::new(pack(0, NIL)),
            fresh: AtomicU32::new(0),
        }
    }

    /// How many slots have ever been handed out (slots at this index and above were never used).
    pub(crate) fn used(&self) -> u32 {
        self.fresh.load(Ordering::Acquire)
    }

    /// Claims a free slot (transition 1), or returns `None` if all `capacity` slots are in use.
    /// `next_of(i)` reads slot `i`'s next-free index (any value if the slot is in use).
    #[inline(always)]
    pub(crate) fn pop(&self, capacity: u32, next_of: impl Fn(u32) -> u32) -> Option<u32> {
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            let index = head as u32;
            if index == NIL {
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
            if fresh >= capacity {
                return None;
            }
            match self
                .fresh
                .compare_exchange_weak(fresh, fresh + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(fresh),
                Err(now) => fresh = now,
            }
        }
    }

    /// Returns slot `index` to the list (transition 8). `set_next(i, next)` stores slot `i`'s
    /// next-free index. The caller owns the slot and no longer touches it afterwards.
    #[inline(always)]
    pub(crate) fn push(&self, index: u32, set_next: impl Fn(u32, u32)) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            set_next(index, head as u32);
            let new = pack((head >> 32).wrapping_add(1), index);
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

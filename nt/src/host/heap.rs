//! The tracked allocator behind every emulated kernel allocation: pool blocks, IRPs and MDLs.
//!
//! Like Driver Verifier's special pool and I/O verification, it knows every live block (kind, size,
//! tag, creation site), fills new and freed memory with patterns, and keeps freed blocks in a bounded
//! quarantine instead of returning them to the host allocator at once, so that a double free or a
//! use after free of a recent block is recognised by its address rather than corrupting a new block.

use super::pool_stats::Live;
use super::verifier::{Rule, trim_backtrace, violation};
use crate::types::*;
use std::alloc::{self, Layout};
use std::backtrace::Backtrace;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Byte pattern of `POOL_FLAG_UNINITIALIZED` allocations (like the CRT debug heap's "clean memory").
pub const UNINITIALIZED_FILL: u8 = 0xCD;
/// Byte pattern written over freed memory (like the CRT debug heap's "dead memory").
pub const FREED_FILL: u8 = 0xDD;

/// Freed blocks kept back from the host allocator by default: at most this many...
pub const QUARANTINE_BLOCKS: usize = 4096;
/// ...and at most this many bytes (see [`Heap::set_quarantine_limits`]).
pub const QUARANTINE_BYTES: usize = 64 << 20;

/// What a tracked block is.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `ExAllocatePool2`.
    Pool { tag: ULONG, flags: POOL_FLAGS },
    /// `IoAllocateIrp`. `pending`: a lower driver (the emulated provider) owns it.
    Irp { pending: bool },
    /// `IoAllocateMdl`.
    Mdl,
    /// A `DEVICE_OBJECT` (and its extension) made by `IoCreateDevice`.
    Device,
    /// An `IO_WORKITEM` made by `IoAllocateWorkItem`.
    WorkItem,
    /// The context `IoSetCompletionRoutineEx` allocates (freed after the driver's routine returned).
    CompletionContext,
}

impl Kind {
    /// Which of the three allocators made the block.
    pub fn class(&self) -> Class {
        match self {
            Kind::Pool { .. } => Class::Pool,
            Kind::Irp { .. } => Class::Irp,
            Kind::Mdl => Class::Mdl,
            Kind::Device => Class::Device,
            Kind::WorkItem => Class::WorkItem,
            Kind::CompletionContext => Class::CompletionContext,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Kind::Pool { .. } => "pool block",
            Kind::Irp { .. } => "IRP",
            Kind::Mdl => "MDL",
            Kind::Device => "device object",
            Kind::WorkItem => "work item",
            Kind::CompletionContext => "IoSetCompletionRoutineEx context",
        }
    }
}

/// A pool tag as poolmon shows it: the four bytes in memory order.
pub struct TagName(pub ULONG);

impl fmt::Display for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.to_le_bytes() {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// An owning pointer to host memory, moved between threads only under the heap lock.
struct Owned(NonNull<u8>);
// SAFETY: `Owned` is a plain allocation handle; the memory it points to is only deallocated or
// filled by the thread holding the heap mutex, and the emulated kernel API is callable from any thread.
unsafe impl Send for Owned {}

/// A live block.
pub struct Block {
    memory: Owned,
    layout: Layout,
    pub size: usize,
    pub kind: Kind,
    pub created: Option<Backtrace>,
}

/// A freed block waiting in quarantine.
struct Freed {
    memory: Owned,
    layout: Layout,
    kind: Kind,
    size: usize,
    created: Option<Backtrace>,
    freed_at: Option<Backtrace>,
}

/// A quarantined block, as reports describe it.
pub struct FreedBlock<'a> {
    pub base: usize,
    pub describe: Describe<'a>,
    pub created: Option<&'a Backtrace>,
    pub freed_at: Option<&'a Backtrace>,
}

impl fmt::Display for FreedBlock<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.describe.fmt(f)
    }
}

impl FreedBlock<'_> {
    /// Where the block was freed, as a report line to append to the object's description.
    pub fn freed_site(&self) -> String {
        match self.freed_at {
            Some(site) => format!("\n    freed at:\n{}", trim_backtrace(site)),
            None => "\n    freed at: <no backtrace captured>".to_string(),
        }
    }
}

/// Describes a block for reports.
pub struct Describe<'a> {
    pub addr: usize,
    pub size: usize,
    pub kind: &'a Kind,
}

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Pool { tag, flags } => {
                let pool = if flags & POOL_FLAG_PAGED != 0 {
                    "paged"
                } else {
                    "nonpaged"
                };
                write!(
                    f,
                    "pool block {:#x} tag '{}' ({} bytes, {pool})",
                    self.addr,
                    TagName(*tag),
                    self.size
                )
            }
            Kind::Irp { pending } => write!(
                f,
                "IRP {:#x} ({} bytes, {})",
                self.addr,
                self.size,
                if *pending {
                    "pending in a lower driver"
                } else {
                    "owned by the driver"
                }
            ),
            Kind::Mdl | Kind::Device | Kind::WorkItem | Kind::CompletionContext => {
                write!(f, "{} {:#x} ({} bytes)", self.kind.name(), self.addr, self.size)
            }
        }
    }
}

/// A [`Kind`] without its details: what a function expects to be given ([`Heap::find`]), and the
/// index of the heap's live totals.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Class {
    Pool = 0,
    Irp = 1,
    Mdl = 2,
    Device = 3,
    WorkItem = 4,
    CompletionContext = 5,
}

/// The number of [`Class`]es.
const CLASSES: usize = 6;

impl Class {
    /// As [`Kind::name`].
    fn name(self) -> &'static str {
        match self {
            Class::Pool => "pool block",
            Class::Irp => "IRP",
            Class::Mdl => "MDL",
            Class::Device => "device object",
            Class::WorkItem => "work item",
            Class::CompletionContext => "IoSetCompletionRoutineEx context",
        }
    }
}

/// What an operation intends to do with the block it looks up: decides how a freed or unknown
/// pointer is reported.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Free,
    Use,
}

pub struct Heap {
    live: BTreeMap<usize, Block>,
    freed: BTreeMap<usize, Freed>,
    quarantine_order: VecDeque<usize>,
    quarantine_bytes: usize,
    /// The quarantine's limits: process-wide, kept by a new session.
    max_quarantine_blocks: usize,
    max_quarantine_bytes: usize,
    fail_next: usize,
    fail_tags: BTreeMap<ULONG, usize>,
    /// Blocks of an earlier session that ended with leaks: never returned to the host allocator (a
    /// thread of that session may still touch them), but kept reachable.
    abandoned: Vec<Owned>,
    /// Live blocks and bytes per [`Class`], kept as blocks come and go.
    totals: [Live; CLASSES],
}

static HEAP: Mutex<Heap> = Mutex::new(Heap {
    live: BTreeMap::new(),
    freed: BTreeMap::new(),
    quarantine_order: VecDeque::new(),
    quarantine_bytes: 0,
    max_quarantine_blocks: QUARANTINE_BLOCKS,
    max_quarantine_bytes: QUARANTINE_BYTES,
    fail_next: 0,
    fail_tags: BTreeMap::new(),
    abandoned: Vec::new(),
    totals: [Live { bytes: 0, blocks: 0 }; CLASSES],
});

/// The heap lock. Lock order: dispatcher, then heap, then tracking, then the violation list.
pub fn heap() -> MutexGuard<'static, Heap> {
    HEAP.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Heap {
    /// Whether fault injection says the next allocation (with pool tag `tag`, if any) fails.
    /// Consumes one count of the matching injection.
    pub fn inject_failure(&mut self, tag: Option<ULONG>) -> bool {
        if let Some(tag) = tag
            && let Some(left) = self.fail_tags.get_mut(&tag)
            && *left > 0
        {
            *left -= 1;
            return true;
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return true;
        }
        false
    }

    pub fn set_fail_next(&mut self, n: usize) {
        self.fail_next = n;
    }

    pub fn set_fail_tag(&mut self, tag: ULONG, n: usize) {
        self.fail_tags.insert(tag, n);
    }

    pub fn reset_fail_tags(&mut self) {
        self.fail_tags.clear();
    }

    /// Allocates and tracks a block of `size` bytes. `fill`: `None` for zeroed memory, or a pattern.
    pub fn allocate(
        &mut self,
        size: usize,
        align: usize,
        fill: Option<u8>,
        kind: Kind,
        created: Option<Backtrace>,
    ) -> Option<NonNull<u8>> {
        let layout = Layout::from_size_align(size.max(1), align).ok()?;
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe {
            if fill.is_none() {
                alloc::alloc_zeroed(layout)
            } else {
                alloc::alloc(layout)
            }
        };
        let ptr = NonNull::new(raw)?;
        let total = &mut self.totals[kind.class() as usize];
        total.bytes += size;
        total.blocks += 1;
        if let Some(pattern) = fill {
            // SAFETY: `ptr` was just allocated with `layout.size()` writable bytes.
            unsafe { ptr.as_ptr().write_bytes(pattern, layout.size()) };
        }
        self.live.insert(
            ptr.as_ptr().addr(),
            Block {
                memory: Owned(ptr),
                layout,
                size,
                kind,
                created,
            },
        );
        Some(ptr)
    }

    /// Looks up the live block of kind `expected` at exactly `addr`, reporting a double free, use
    /// after free or unknown pointer for `function` otherwise.
    pub fn find(&mut self, addr: usize, expected: Class, function: &str, access: Access) -> Option<&mut Block> {
        // Every IRP call makes this check: compare classes, not names.
        if self.live.get(&addr).is_some_and(|b| b.kind.class() == expected) {
            return self.live.get_mut(&addr);
        }
        let expected = expected.name();
        if let Some(block) = self.live.get(&addr) {
            violation(
                Rule::UnknownObject,
                &format_args!(
                    "{function} expects {expected} but got {}",
                    Describe {
                        addr,
                        size: block.size,
                        kind: &block.kind
                    }
                ),
                block.created.as_ref(),
            );
            return None;
        }
        if let Some(freed) = self.freed_containing(addr).filter(|f| f.base == addr) {
            let rule = if access == Access::Free {
                Rule::DoubleFree
            } else {
                Rule::UseAfterFree
            };
            let what = match freed.describe.kind {
                Kind::Pool { tag, .. } => format!(" tag '{}'", TagName(*tag)),
                _ => String::new(),
            };
            violation(
                rule,
                &format_args!(
                    "{function} on freed {} {addr:#x}{what} ({} bytes){}",
                    freed.describe.kind.name(),
                    freed.describe.size,
                    freed.freed_site()
                ),
                freed.created,
            );
            return None;
        }
        violation(
            Rule::UnknownObject,
            &format_args!("{function} on {addr:#x}, which is no live {expected}"),
            None,
        );
        None
    }

    pub fn get(&self, addr: usize) -> Option<&Block> {
        self.live.get(&addr)
    }

    /// The live block containing `[start, start + len)`, if one does.
    pub fn containing(&self, start: usize, len: usize) -> Option<(usize, &Block)> {
        let (&base, block) = self.live.range(..=start).next_back()?;
        let end = start.checked_add(len)?;
        (end <= base + block.size.max(1)).then_some((base, block))
    }

    /// The quarantined (freed) block `addr` lies in, if any: a lookup in the address-ordered
    /// quarantine, O(log n).
    pub fn freed_containing(&self, addr: usize) -> Option<FreedBlock<'_>> {
        let (&base, freed) = self.freed.range(..=addr).next_back()?;
        (addr < base + freed.size.max(1)).then_some(FreedBlock {
            base,
            describe: Describe {
                addr: base,
                size: freed.size,
                kind: &freed.kind,
            },
            created: freed.created.as_ref(),
            freed_at: freed.freed_at.as_ref(),
        })
    }

    /// Frees the live block at `addr` (already validated with [`Heap::find`]): fills it with
    /// [`FREED_FILL`] and moves it to the quarantine, remembering where it was freed (`freed_at`, for
    /// use-after-free reports).
    pub fn release(&mut self, addr: usize, freed_at: Option<Backtrace>) {
        let Some(block) = self.live.remove(&addr) else { return };
        let total = &mut self.totals[block.kind.class() as usize];
        total.bytes -= block.size;
        total.blocks -= 1;
        // SAFETY: the block is live (just removed from the live set) and spans `layout.size()` bytes.
        unsafe { block.memory.0.as_ptr().write_bytes(FREED_FILL, block.layout.size()) };
        self.quarantine_bytes += block.layout.size();
        self.quarantine_order.push_back(addr);
        self.freed.insert(
            addr,
            Freed {
                memory: block.memory,
                layout: block.layout,
                kind: block.kind,
                size: block.size,
                created: block.created,
                freed_at,
            },
        );
        self.evict_over_limits();
    }

    /// The quarantine's limits: at most `blocks` freed blocks and `bytes` bytes are kept back from
    /// the host allocator; the oldest go back first, and at once if the quarantine is over the new
    /// limits. A smaller quarantine bounds the memory it holds, at the price of recognising a use
    /// after free or a double free of fewer recent blocks (an older one goes unreported, as a
    /// block that left Driver Verifier's special pool does). Zero blocks turns the quarantine off.
    pub fn set_quarantine_limits(&mut self, blocks: usize, bytes: usize) {
        self.max_quarantine_blocks = blocks;
        self.max_quarantine_bytes = bytes;
        self.evict_over_limits();
    }

    /// The limits [`set_quarantine_limits`](Self::set_quarantine_limits) set: (blocks, bytes).
    pub fn quarantine_limits(&self) -> (usize, usize) {
        (self.max_quarantine_blocks, self.max_quarantine_bytes)
    }

    /// Returns the oldest quarantined blocks to the host allocator until the quarantine is within
    /// its limits.
    fn evict_over_limits(&mut self) {
        while self.quarantine_order.len() > self.max_quarantine_blocks
            || self.quarantine_bytes > self.max_quarantine_bytes
        {
            let Some(oldest) = self.quarantine_order.pop_front() else {
                break;
            };
            if let Some(freed) = self.freed.remove(&oldest) {
                self.quarantine_bytes -= freed.layout.size();
                // SAFETY: allocated with this layout by `allocate`, no longer live, and removed from
                // every table, so nothing in the emulation refers to it any more.
                unsafe { alloc::dealloc(freed.memory.0.as_ptr(), freed.layout) };
            }
        }
    }

    /// Returns the whole quarantine to the host allocator (at the clean end of a session, when no
    /// emulated thread can still hold a stale pointer).
    pub fn flush_quarantine(&mut self) {
        for (_, freed) in std::mem::take(&mut self.freed) {
            // SAFETY: as in `release`: allocated with this layout, no longer referenced by any table.
            unsafe { alloc::dealloc(freed.memory.0.as_ptr(), freed.layout) };
        }
        self.quarantine_order.clear();
        self.quarantine_bytes = 0;
    }

    /// The live blocks of `class` and their bytes.
    pub fn live_total(&self, class: Class) -> Live {
        self.totals[class as usize]
    }

    /// Every live block, in address order, for the leak report.
    pub fn live_blocks(&self) -> impl Iterator<Item = (usize, &Block)> {
        self.live.iter().map(|(&a, b)| (a, b))
    }

    /// Forgets all state of an earlier session. Its blocks are abandoned rather than freed: a thread
    /// of that session may still touch them.
    pub fn reset(&mut self) {
        let live = std::mem::take(&mut self.live);
        self.abandoned.extend(live.into_values().map(|b| b.memory));
        let freed = std::mem::take(&mut self.freed);
        self.abandoned.extend(freed.into_values().map(|f| f.memory));
        self.quarantine_order.clear();
        self.quarantine_bytes = 0;
        self.totals = [Live::default(); CLASSES];
        self.fail_next = 0;
        self.fail_tags.clear();
    }
}

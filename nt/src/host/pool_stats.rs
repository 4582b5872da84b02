//! Pool accounting for benchmarks and tests (`nt::emu::pool::stats`): what is live now (pool
//! blocks, IRPs, MDLs, and apart from them the kernel's own `IoSetCompletionRoutineEx` contexts and
//! work items, with the sizes the kernel would use) and how many allocation calls were made
//! since the process started, so that a caller can count exactly the allocations an operation makes
//! (take the difference of two snapshots) and the bytes a connection holds.

use super::heap::{Class, heap};
use std::sync::atomic::{AtomicU64, Ordering};

/// Live blocks of one kind, and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Live {
    /// Bytes in the live blocks.
    pub bytes: usize,
    /// The number of live blocks.
    pub blocks: usize,
}

/// A snapshot of the emulated pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// `ExAllocatePool2` blocks, `NumberOfBytes` each.
    pub pool: Live,
    /// IRPs, `IoSizeOfIrp(StackSize)` bytes each.
    pub irps: Live,
    /// MDLs, `MmSizeOfMdl(VirtualAddress, Length)` bytes each (header and PFN array).
    pub mdls: Live,
    /// `ExAllocatePool2` calls since the process started (failed ones included). Never reset, not
    /// even by a new session: take differences.
    pub pool_allocations: u64,
    /// `IoAllocateIrp` calls since the process started (failed ones included).
    pub irp_allocations: u64,
    /// `IoAllocateMdl` calls since the process started (failed ones included).
    pub mdl_allocations: u64,
    /// The contexts `IoSetCompletionRoutineEx` holds (from nonpaged pool on Windows too, but
    /// allocated by the kernel on the driver's behalf; kept apart from `pool`, which is the driver's
    /// own `ExAllocatePool2` blocks). Their size is invented (Windows does not document it).
    pub completion_contexts: Live,
    /// `IoSetCompletionRoutineEx` calls since the process started (failed ones included): each
    /// allocates a context.
    pub completion_context_allocations: u64,
    /// Live `IO_WORKITEM`s (`IoAllocateWorkItem`; invented size).
    pub work_items: Live,
    /// `IoAllocateWorkItem` calls since the process started (failed ones included).
    pub work_item_allocations: u64,
}

static POOL_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static IRP_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static MDL_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static WORK_ITEM_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static COMPLETION_CONTEXT_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Counts one call of an allocating function, whatever its outcome (device objects are not counted).
pub(super) fn count_call(class: Class) {
    let counter = match class {
        Class::Pool => &POOL_ALLOCATIONS,
        Class::Irp => &IRP_ALLOCATIONS,
        Class::Mdl => &MDL_ALLOCATIONS,
        Class::Device => return,
        Class::WorkItem => &WORK_ITEM_ALLOCATIONS,
        Class::CompletionContext => &COMPLETION_CONTEXT_ALLOCATIONS,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The live pool, IRPs and MDLs of this session, and the allocation calls so far. O(1): the heap
/// keeps the totals as it allocates and frees.
pub fn stats() -> PoolStats {
    let heap = heap();
    PoolStats {
        pool: heap.live_total(Class::Pool),
        irps: heap.live_total(Class::Irp),
        mdls: heap.live_total(Class::Mdl),
        pool_allocations: POOL_ALLOCATIONS.load(Ordering::Relaxed),
        irp_allocations: IRP_ALLOCATIONS.load(Ordering::Relaxed),
        mdl_allocations: MDL_ALLOCATIONS.load(Ordering::Relaxed),
        completion_contexts: heap.live_total(Class::CompletionContext),
        completion_context_allocations: COMPLETION_CONTEXT_ALLOCATIONS.load(Ordering::Relaxed),
        work_items: heap.live_total(Class::WorkItem),
        work_item_allocations: WORK_ITEM_ALLOCATIONS.load(Ordering::Relaxed),
    }
}

//! `nt::emu::pool::stats`: live bytes and blocks of pool, IRPs and MDLs at the sizes the kernel
//! uses, and the allocation-call counters a benchmark takes differences of.
#![cfg(not(target_os = "windows"))]

mod common;

use common::TAG;
use core::ptr;
use nt::emu;
use nt::emu::pool::{Live, PoolStats, stats};
use nt::*;

/// `MmSizeOfMdl` for a buffer of `length` bytes starting `offset` bytes into a page.
fn mdl_size(offset: usize, length: usize) -> usize {
    size_of::<MDL>() + (offset + length).div_ceil(PAGE_SIZE) * size_of::<usize>()
}

/// `after - before`, field by field (live figures may go down, so signed).
fn delta(before: &PoolStats, after: &PoolStats) -> [i64; 9] {
    let live = |l: &Live| [l.bytes as i64, l.blocks as i64];
    let [pb, pn] = live(&before.pool);
    let [ib, inn] = live(&before.irps);
    let [mb, mn] = live(&before.mdls);
    let [pb2, pn2] = live(&after.pool);
    let [ib2, in2] = live(&after.irps);
    let [mb2, mn2] = live(&after.mdls);
    [
        pb2 - pb,
        pn2 - pn,
        ib2 - ib,
        in2 - inn,
        mb2 - mb,
        mn2 - mn,
        (after.pool_allocations - before.pool_allocations) as i64,
        (after.irp_allocations - before.irp_allocations) as i64,
        (after.mdl_allocations - before.mdl_allocations) as i64,
    ]
}

unsafe extern "system" fn more_processing(_device: PDEVICE_OBJECT, _irp: PIRP, _context: PVOID) -> NTSTATUS {
    STATUS_MORE_PROCESSING_REQUIRED
}

#[test]
fn live_figures_follow_allocations_and_frees_and_counters_only_grow() {
    let _session = emu::session();
    let start = stats();
    assert_eq!(start.pool, Live::default(), "a new session starts with an empty pool");
    // SAFETY: every object is used within its size and freed once, at PASSIVE_LEVEL; the IRP is
    // handed to the emulated lower driver and completed before it is reused and freed.
    unsafe {
        let block = ExAllocatePool2(POOL_FLAG_NON_PAGED, 3000, TAG);
        assert!(!block.is_null());
        let irp = IoAllocateIrp(2, FALSE);
        assert!(!irp.is_null());
        let offset = block.addr() % PAGE_SIZE;
        let mdl = IoAllocateMdl(block, 3000, FALSE, FALSE, ptr::null_mut());
        assert!(!mdl.is_null());
        let allocated = stats();
        assert_eq!(
            delta(&start, &allocated),
            [
                3000,
                1,
                IoSizeOfIrp(2) as i64,
                1,
                mdl_size(offset, 3000) as i64,
                1,
                1,
                1,
                1
            ]
        );
        assert_eq!(IoSizeOfIrp(2), 0xD0 + 2 * 0x48);

        // An IRP round trip (reuse, hand-over, completion) allocates nothing.
        IoReuseIrp(irp, STATUS_SUCCESS);
        IoSetCompletionRoutine(irp, Some(more_processing), ptr::null_mut(), true, true, true);
        assert!(emu::irp::enter_provider(irp));
        (*irp).IoStatus.Status = STATUS_SUCCESS;
        IofCompleteRequest(irp, IO_NO_INCREMENT);
        assert_eq!(stats(), allocated);

        // A failed allocation is a call, not a block.
        emu::pool::fail_next(1);
        assert!(ExAllocatePool2(POOL_FLAG_NON_PAGED, 64, TAG).is_null());
        let failed = stats();
        assert_eq!(delta(&allocated, &failed), [0, 0, 0, 0, 0, 0, 1, 0, 0]);

        IoFreeMdl(mdl);
        IoFreeIrp(irp);
        ExFreePoolWithTag(block, TAG);
    }
    let freed = stats();
    assert_eq!(
        (freed.pool, freed.irps, freed.mdls),
        (start.pool, start.irps, start.mdls)
    );
    assert_eq!(delta(&start, &freed), [0, 0, 0, 0, 0, 0, 2, 1, 1]);
}

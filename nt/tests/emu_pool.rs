//! Pool and MDLs on the host emulation.
#![cfg(not(target_os = "windows"))]

mod common;

use common::{TAG, take_one};
use nt::emu::{self, Rule};
use nt::*;

const OTHER_TAG: ULONG = u32::from_le_bytes(*b"Othr");

/// Reads the bytes of a block the emulation still holds (live, or quarantined after a free).
///
/// # Safety
/// `p` points to `len` bytes allocated by the emulation and not yet returned to the host.
unsafe fn bytes(p: PVOID, len: usize) -> Vec<u8> {
    // SAFETY: forwarded from the caller's contract.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }.to_vec()
}

#[test]
fn pool_is_zeroed_unless_uninitialized_and_filled_when_freed() {
    let _session = emu::session();
    // SAFETY: the blocks are used within their sizes and freed once; the freed block is read while
    // it sits in the emulation's quarantine (still allocated on the host).
    unsafe {
        let zeroed = ExAllocatePool2(POOL_FLAG_NON_PAGED, 100, TAG);
        assert!(!zeroed.is_null());
        assert_eq!(zeroed.addr() % 16, 0);
        assert!(bytes(zeroed, 100).iter().all(|&b| b == 0));
        let raw = ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_UNINITIALIZED, 64, TAG);
        assert!(bytes(raw, 64).iter().all(|&b| b == emu::pool::UNINITIALIZED_FILL));
        let aligned = ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_CACHE_ALIGNED, 8, TAG);
        assert_eq!(aligned.addr() % 64, 0);
        assert_eq!(emu::pool::live_blocks(TAG), 3);
        ExFreePoolWithTag(zeroed, TAG);
        assert!(bytes(zeroed, 100).iter().all(|&b| b == emu::pool::FREED_FILL));
        ExFreePoolWithTag(raw, TAG);
        ExFreePoolWithTag(aligned, TAG);
        assert_eq!(emu::pool::live_blocks(TAG), 0);
    }
}

#[test]
fn tag_mismatch_is_reported_and_the_block_stays_live() {
    let _session = emu::session();
    emu::expect_violations();
    // SAFETY: the mismatched free is made harmless; the block is then freed correctly.
    unsafe {
        let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 32, TAG);
        ExFreePoolWithTag(p, OTHER_TAG);
        let v = take_one(Rule::PoolTagMismatch);
        assert!(v.to_string().contains("tag 'Test'"), "{v}");
        assert!(v.to_string().contains("'Othr'"), "{v}");
        assert_eq!(emu::pool::live_blocks(TAG), 1);
        ExFreePoolWithTag(p, TAG);
    }
}

#[test]
fn double_free_and_unknown_pointer_are_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let mut not_pool = [0u8; 16];
    // SAFETY: the invalid frees are made harmless by the emulation.
    unsafe {
        let p = ExAllocatePool2(POOL_FLAG_PAGED, 32, TAG);
        ExFreePoolWithTag(p, TAG);
        ExFreePoolWithTag(p, TAG);
        take_one(Rule::DoubleFree);
        ExFreePoolWithTag(not_pool.as_mut_ptr().cast(), TAG);
        take_one(Rule::UnknownObject);
        // An IRP is not a pool block.
        let irp = IoAllocateIrp(1, FALSE);
        ExFreePoolWithTag(irp.cast(), TAG);
        take_one(Rule::UnknownObject);
        IoFreeIrp(irp);
    }
}

#[test]
fn failures_can_be_injected_by_count_and_by_tag() {
    let _session = emu::session();
    // SAFETY: plain allocations, each freed.
    unsafe {
        emu::pool::fail_next(2);
        assert!(ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, TAG).is_null());
        assert!(ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, OTHER_TAG).is_null());
        let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, TAG);
        assert!(!p.is_null());
        ExFreePoolWithTag(p, TAG);

        emu::pool::fail_tag(OTHER_TAG, usize::MAX);
        assert!(ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, OTHER_TAG).is_null());
        assert!(ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, OTHER_TAG).is_null());
        let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, TAG);
        assert!(!p.is_null());
        ExFreePoolWithTag(p, TAG);
        emu::pool::clear_failures();
        let q = ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, OTHER_TAG);
        assert!(!q.is_null());
        ExFreePoolWithTag(q, OTHER_TAG);
    }
}

#[test]
fn pool_irql_limits_are_enforced() {
    let _session = emu::session();
    // The emulated ExAllocatePool2 itself, not the fallback used before resolution.
    assert!(resolve_optional_exports().pool2);
    emu::expect_violations();
    emu::at_dispatch(|| {
        // SAFETY: plain allocations; the paged one is rejected at DISPATCH_LEVEL.
        unsafe {
            let nonpaged = ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, TAG);
            assert!(!nonpaged.is_null());
            ExFreePoolWithTag(nonpaged, TAG);
            assert!(ExAllocatePool2(POOL_FLAG_PAGED, 8, TAG).is_null());
        }
    });
    let v = take_one(Rule::IrqlTooHigh);
    assert!(
        v.to_string()
            .contains("ExAllocatePool2 called at DISPATCH_LEVEL (maximum APC_LEVEL)"),
        "{v}"
    );
}

#[test]
fn invalid_pool_parameters_are_rejected() {
    let _session = emu::session();
    // The emulated ExAllocatePool2 itself, not the fallback used before resolution.
    assert!(resolve_optional_exports().pool2);
    emu::expect_violations();
    // SAFETY: rejected allocations return NULL.
    unsafe {
        assert!(ExAllocatePool2(0, 8, TAG).is_null());
        take_one(Rule::InvalidParameter);
        assert!(ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_PAGED, 8, TAG).is_null());
        take_one(Rule::InvalidParameter);
        assert!(ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, 0).is_null());
        take_one(Rule::InvalidParameter);
    }
}

#[test]
fn mdl_for_nonpaged_pool_maps_the_buffer() {
    let _session = emu::session();
    // SAFETY: the MDL describes a sub-range of a live nonpaged block; everything is freed in order.
    unsafe {
        let buffer = ExAllocatePool2(POOL_FLAG_NON_PAGED, 3 * PAGE_SIZE, TAG).cast::<u8>();
        let va = buffer.add(100);
        let irp = IoAllocateIrp(1, FALSE);
        let mdl = IoAllocateMdl(va.cast(), 5000, FALSE, FALSE, irp);
        assert!(!mdl.is_null());
        assert_eq!((*irp).MdlAddress, mdl);
        assert_eq!((*mdl).ByteCount, 5000);
        assert_eq!((*mdl).StartVa.addr(), va.addr() & !(PAGE_SIZE - 1));
        assert_eq!((*mdl).ByteOffset as usize, va.addr() & (PAGE_SIZE - 1));
        assert_eq!(MmGetSystemAddressForNonPagedMdl(mdl), core::ptr::null_mut());
        MmBuildMdlForNonPagedPool(mdl);
        assert_ne!((*mdl).MdlFlags & MDL_SOURCE_IS_NONPAGED_POOL, 0);
        let mapped = MmGetSystemAddressForNonPagedMdl(mdl).cast::<u8>();
        assert_eq!(mapped, va);
        mapped.write(0x5A);
        assert_eq!(va.read(), 0x5A);
        IoFreeMdl(mdl);
        IoFreeIrp(irp);
        ExFreePoolWithTag(buffer.cast(), TAG);
    }
}

#[test]
fn mdl_outside_nonpaged_pool_is_reported() {
    let _session = emu::session();
    emu::expect_violations();
    let mut stack_buffer = [0u8; 64];
    // SAFETY: each MDL describes memory that is alive during the call; the build is rejected.
    unsafe {
        let mdl = IoAllocateMdl(
            stack_buffer.as_mut_ptr().cast(),
            64,
            FALSE,
            FALSE,
            core::ptr::null_mut(),
        );
        MmBuildMdlForNonPagedPool(mdl);
        take_one(Rule::MdlNotNonPagedPool);
        assert!((*mdl).MappedSystemVa.is_null());
        IoFreeMdl(mdl);

        let paged = ExAllocatePool2(POOL_FLAG_PAGED, 64, TAG);
        let mdl = IoAllocateMdl(paged, 64, FALSE, FALSE, core::ptr::null_mut());
        MmBuildMdlForNonPagedPool(mdl);
        let v = take_one(Rule::MdlNotNonPagedPool);
        assert!(v.to_string().contains("not nonpaged pool"), "{v}");
        IoFreeMdl(mdl);
        ExFreePoolWithTag(paged, TAG);

        // Longer than the block it starts in.
        let small = ExAllocatePool2(POOL_FLAG_NON_PAGED, 64, TAG);
        let mdl = IoAllocateMdl(small, 65, FALSE, FALSE, core::ptr::null_mut());
        MmBuildMdlForNonPagedPool(mdl);
        take_one(Rule::MdlNotNonPagedPool);
        IoFreeMdl(mdl);
        IoFreeMdl(mdl);
        take_one(Rule::DoubleFree);
        ExFreePoolWithTag(small, TAG);
    }
}

//! MDLs: `IoAllocateMdl`, `MmBuildMdlForNonPagedPool`, `IoFreeMdl`.

use super::heap::{Access, Class, Kind, heap};
use super::irql;
use super::verifier::{Rule, creation_site, violation};
use crate::types::*;
use core::mem::size_of;
use core::ptr;

/// `ADDRESS_AND_SIZE_TO_SPAN_PAGES`.
fn span_pages(va: usize, length: usize) -> usize {
    ((va & (PAGE_SIZE - 1)) + length).div_ceil(PAGE_SIZE)
}

/// `IoAllocateMdl`: IRQL <= DISPATCH_LEVEL. Allocates a tracked MDL with room for the page frame
/// numbers of `[VirtualAddress, VirtualAddress + Length)`, initialised like `MmInitializeMdl`
/// (`StartVa` page-aligned, `ByteOffset`, `ByteCount`, `Size`). With an `Irp`, the MDL becomes
/// `Irp->MdlAddress` (or, with `SecondaryBuffer`, is appended to its chain). Returns NULL when a
/// failure is injected or the MDL would not fit a `CSHORT` size.
///
/// # Safety
/// `Irp` is NULL or a live IRP the caller owns.
pub unsafe extern "system" fn IoAllocateMdl(
    VirtualAddress: PVOID,
    Length: ULONG,
    SecondaryBuffer: BOOLEAN,
    ChargeQuota: BOOLEAN,
    Irp: PIRP,
) -> PMDL {
    let _ = ChargeQuota;
    super::pool_stats::count_call(Class::Mdl);
    if !irql::require_max("IoAllocateMdl", DISPATCH_LEVEL) {
        return ptr::null_mut();
    }
    let va = VirtualAddress.addr();
    let size = size_of::<MDL>() + span_pages(va, Length as usize) * size_of::<usize>();
    let Ok(size_field) = CSHORT::try_from(size) else {
        return ptr::null_mut();
    };
    let created = creation_site();
    let mdl = {
        let mut heap = heap();
        if !Irp.is_null()
            && heap
                .find(Irp.addr(), Class::Irp, "IoAllocateMdl", Access::Use)
                .is_none()
        {
            return ptr::null_mut();
        }
        if heap.inject_failure(None) {
            return ptr::null_mut();
        }
        match heap.allocate(size, 16, None, Kind::Mdl, created) {
            Some(p) => p.as_ptr().cast::<MDL>(),
            None => return ptr::null_mut(),
        }
    };
    // SAFETY: `mdl` was just allocated (zeroed) with `size` bytes; `Irp` was checked live and is owned
    // by the caller.
    unsafe {
        (*mdl).Size = size_field;
        // `map_addr` keeps the buffer's provenance, so `MappedSystemVa` derived from it stays usable.
        (*mdl).StartVa = VirtualAddress.map_addr(|a| a & !(PAGE_SIZE - 1));
        (*mdl).ByteOffset = (va & (PAGE_SIZE - 1)) as ULONG;
        (*mdl).ByteCount = Length;
        if !Irp.is_null() {
            if SecondaryBuffer == FALSE || (*Irp).MdlAddress.is_null() {
                (*Irp).MdlAddress = mdl;
            } else {
                let mut last = (*Irp).MdlAddress;
                while !(*last).Next.is_null() {
                    last = (*last).Next;
                }
                (*last).Next = mdl;
            }
        }
    }
    mdl
}

/// `MmBuildMdlForNonPagedPool`: IRQL <= DISPATCH_LEVEL. The described range must lie inside one live
/// nonpaged pool block ([`Rule::MdlNotNonPagedPool`] otherwise). Fills the page frame numbers, sets
/// `MappedSystemVa` and `MDL_SOURCE_IS_NONPAGED_POOL`.
///
/// # Safety
/// `MemoryDescriptorList` is a live MDL the caller owns.
pub unsafe extern "system" fn MmBuildMdlForNonPagedPool(MemoryDescriptorList: PMDL) {
    let mdl = MemoryDescriptorList;
    if !irql::require_max("MmBuildMdlForNonPagedPool", DISPATCH_LEVEL) {
        return;
    }
    let heap_guard = {
        let mut heap = heap();
        if heap
            .find(mdl.addr(), Class::Mdl, "MmBuildMdlForNonPagedPool", Access::Use)
            .is_none()
        {
            return;
        }
        heap
    };
    // SAFETY: the MDL is live (checked above) and owned by the caller; the PFN array lies inside its
    // allocation (`Size` bytes, sized by IoAllocateMdl for this range).
    unsafe {
        let start_va = (*mdl).StartVa;
        let va = start_va.wrapping_byte_add((*mdl).ByteOffset as usize);
        let length = (*mdl).ByteCount as usize;
        let in_nonpaged_pool = heap_guard
            .containing(va.addr(), length)
            .is_some_and(|(_, block)| matches!(block.kind, Kind::Pool { flags, .. } if flags & POOL_FLAG_PAGED == 0));
        if !in_nonpaged_pool {
            let what = match heap_guard.containing(va.addr(), length) {
                Some((_, block)) => format!("a {} that is not nonpaged pool", block.kind.name()),
                None => match heap_guard.freed_containing(va.addr()) {
                    Some(freed) => format!("freed memory ({freed})"),
                    None => "memory that is not one live pool block".to_string(),
                },
            };
            let created = heap_guard.get(mdl.addr()).and_then(|b| b.created.as_ref());
            violation(
                Rule::MdlNotNonPagedPool,
                &format_args!("MDL {mdl:p} describes {va:p}+{length:#x}, {what}"),
                created,
            );
            return;
        }
        let pages = span_pages(va.addr(), length);
        let pfns = mdl.cast::<u8>().add(size_of::<MDL>()).cast::<usize>();
        for page in 0..pages {
            pfns.add(page).write((start_va.addr() / PAGE_SIZE) + page);
        }
        (*mdl).MappedSystemVa = va;
        (*mdl).MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL;
    }
}

/// `IoFreeMdl`: IRQL <= DISPATCH_LEVEL; a second free is a [`Rule::DoubleFree`].
///
/// # Safety
/// `Mdl` is a live MDL the caller owns, not used after this call.
pub unsafe extern "system" fn IoFreeMdl(Mdl: PMDL) {
    if !irql::require_max("IoFreeMdl", DISPATCH_LEVEL) {
        return;
    }
    // Captured before taking the heap lock: a stack walk is slow.
    let freed_at = creation_site();
    let mut heap = heap();
    if heap.find(Mdl.addr(), Class::Mdl, "IoFreeMdl", Access::Free).is_some() {
        heap.release(Mdl.addr(), freed_at);
    }
}

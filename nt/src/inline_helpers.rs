//! The `FORCEINLINE` helpers of `wdm.h`, rewritten in Rust. They only touch structure fields, so
//! the same code serves the kernel and the host emulation.

use crate::types::*;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// `IoGetCurrentIrpStackLocation`.
///
/// # Safety
/// `irp` points to a live IRP.
#[inline(always)]
pub unsafe fn IoGetCurrentIrpStackLocation(irp: PIRP) -> PIO_STACK_LOCATION {
    // SAFETY: the caller guarantees `irp` is live; `Tail.Overlay` is the active union member for
    // every IRP the I/O manager or IoAllocateIrp initialised.
    unsafe { (*irp).Tail.Overlay.CurrentStackLocation }
}

/// `IoGetNextIrpStackLocation`: the location the next-lower driver (here: the WSK provider) sees.
///
/// # Safety
/// `irp` points to a live IRP with `CurrentLocation > 1`.
#[inline(always)]
pub unsafe fn IoGetNextIrpStackLocation(irp: PIRP) -> PIO_STACK_LOCATION {
    // SAFETY: `CurrentStackLocation - 1` stays inside the IRP's stack array while CurrentLocation > 1.
    unsafe { (*irp).Tail.Overlay.CurrentStackLocation.sub(1) }
}

/// `IoSetNextIrpStackLocation`: what `IoCallDriver` does before handing an IRP down.
///
/// # Safety
/// `irp` points to a live IRP with `CurrentLocation > 1`.
#[inline(always)]
pub unsafe fn IoSetNextIrpStackLocation(irp: PIRP) {
    // SAFETY: as for IoGetNextIrpStackLocation; the caller owns the IRP.
    unsafe {
        (*irp).CurrentLocation -= 1;
        (*irp).Tail.Overlay.CurrentStackLocation = (*irp).Tail.Overlay.CurrentStackLocation.sub(1);
    }
}

/// `IoSkipCurrentIrpStackLocation`.
///
/// # Safety
/// `irp` points to a live IRP the caller owns.
#[inline(always)]
pub unsafe fn IoSkipCurrentIrpStackLocation(irp: PIRP) {
    // SAFETY: the caller owns the IRP; moving one location up stays within the allocation
    // (one past the last location is the documented initial position).
    unsafe {
        (*irp).CurrentLocation += 1;
        (*irp).Tail.Overlay.CurrentStackLocation = (*irp).Tail.Overlay.CurrentStackLocation.add(1);
    }
}

/// `IoSetCompletionRoutine`: stores `routine` and `context` in the next stack location, with the
/// `SL_INVOKE_ON_*` bits for the outcomes on which it must run.
///
/// # Safety
/// `irp` points to a live IRP the caller owns, with `CurrentLocation > 1`.
#[inline(always)]
pub unsafe fn IoSetCompletionRoutine(
    irp: PIRP,
    routine: PIO_COMPLETION_ROUTINE,
    context: PVOID,
    invoke_on_success: bool,
    invoke_on_error: bool,
    invoke_on_cancel: bool,
) {
    let mut control = 0;
    if invoke_on_success {
        control |= SL_INVOKE_ON_SUCCESS;
    }
    if invoke_on_error {
        control |= SL_INVOKE_ON_ERROR;
    }
    if invoke_on_cancel {
        control |= SL_INVOKE_ON_CANCEL;
    }
    // SAFETY: forwarded from the caller's contract; fields are written through the raw pointer so no
    // reference to memory the kernel may also touch is created.
    unsafe {
        let next = IoGetNextIrpStackLocation(irp);
        (*next).CompletionRoutine = routine;
        (*next).Context = context;
        (*next).Control = control;
    }
}

/// `IoSetCancelRoutine`: an interlocked exchange of `Irp->CancelRoutine`, returning the previous one.
///
/// # Safety
/// `irp` points to a live IRP.
#[inline(always)]
pub unsafe fn IoSetCancelRoutine(irp: PIRP, routine: PDRIVER_CANCEL) -> PDRIVER_CANCEL {
    // SAFETY: `PDRIVER_CANCEL` is `Option<fn>`, pointer-sized with None = NULL, so the field can be
    // viewed as an `AtomicPtr`; the kernel and IoCancelIrp access it only with interlocked operations.
    unsafe {
        let slot = &*(ptr::addr_of_mut!((*irp).CancelRoutine) as *const AtomicPtr<()>);
        let new = match routine {
            Some(f) => f as *mut (),
            None => ptr::null_mut(),
        };
        let old = slot.swap(new, Ordering::AcqRel);
        if old.is_null() {
            None
        } else {
            Some(core::mem::transmute::<
                *mut (),
                unsafe extern "system" fn(PDEVICE_OBJECT, PIRP),
            >(old))
        }
    }
}

/// `IoMarkIrpPending`.
///
/// # Safety
/// `irp` points to a live IRP the caller owns.
#[inline(always)]
pub unsafe fn IoMarkIrpPending(irp: PIRP) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { (*IoGetCurrentIrpStackLocation(irp)).Control |= SL_PENDING_RETURNED };
}

/// `IoSizeOfIrp`: the bytes an IRP with `stack_size` locations occupies.
#[inline(always)]
pub const fn IoSizeOfIrp(stack_size: CCHAR) -> usize {
    core::mem::size_of::<IRP>() + stack_size as usize * core::mem::size_of::<IO_STACK_LOCATION>()
}

/// `MmGetSystemAddressForMdlSafe` for MDLs built by `MmBuildMdlForNonPagedPool`, the only kind this
/// project creates: their system address is already mapped. Returns NULL for any other MDL, which
/// callers treat as an insufficient-resources failure.
///
/// # Safety
/// `mdl` points to a live MDL.
#[inline(always)]
pub unsafe fn MmGetSystemAddressForNonPagedMdl(mdl: PMDL) -> PVOID {
    // SAFETY: forwarded from the caller's contract.
    let mdl = unsafe { &*mdl };
    if mdl.MdlFlags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
        mdl.MappedSystemVa
    } else {
        ptr::null_mut()
    }
}

/// `InitializeObjectAttributes` with no name, for kernel handles.
pub const fn kernel_handle_attributes() -> OBJECT_ATTRIBUTES {
    OBJECT_ATTRIBUTES {
        Length: core::mem::size_of::<OBJECT_ATTRIBUTES>() as ULONG,
        RootDirectory: ptr::null_mut(),
        ObjectName: ptr::null_mut(),
        Attributes: OBJ_KERNEL_HANDLE,
        SecurityDescriptor: ptr::null_mut(),
        SecurityQualityOfService: ptr::null_mut(),
    }
}

/// Reads `Irp->Cancel`. `IoCancelIrp` sets it on another CPU while the IRP is in flight, so it is read
/// with an atomic load (what the `volatile` read in C code amounts to on x64), never a plain read.
///
/// # Safety
/// `irp` points to a live IRP.
#[inline(always)]
pub unsafe fn IoIsIrpCancelRequested(irp: PIRP) -> bool {
    // SAFETY: `Cancel` is a byte inside a live IRP; every writer (IoCancelIrp) stores to it atomically,
    // so viewing it as an `AtomicU8` for this load is sound.
    unsafe { core::sync::atomic::AtomicU8::from_ptr(ptr::addr_of_mut!((*irp).Cancel)).load(Ordering::Acquire) != 0 }
}

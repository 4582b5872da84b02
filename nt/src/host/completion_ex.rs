//! `IoSetCompletionRoutineEx`: a completion routine that keeps the driver's image loaded until it has
//! returned.
//!
//! As on Windows, the I/O manager allocates a small context from nonpaged pool (the call fails with
//! `STATUS_INSUFFICIENT_RESOURCES` when that allocation does, as documented), takes a reference on
//! the device object, and sets its own routine in the next stack location. That routine calls the
//! driver's routine with the driver's context, and only after the driver's routine has returned
//! frees the context and drops the device reference: the device object, hence the driver object,
//! hence the image, outlives the driver's code on that CPU. The context's size and tag are invented
//! (Windows documents neither); it is counted apart from the driver's pool
//! ([`crate::emu::pool::PoolStats::completion_contexts`]).

use super::driver::{self, Owner, enter_routine, registry};
use super::heap::{Access, Class, Kind, heap};
use super::verifier::{Rule, creation_site, violation};
use super::{irql, pool_stats};
use crate::inline_helpers::IoSetCompletionRoutine;
use crate::types::*;

/// What the I/O manager keeps for one `IoSetCompletionRoutineEx` call.
#[repr(C)]
struct UnloadSafeContext {
    /// The referenced device object (an address: the registry finds it again by address).
    device: usize,
    /// The session that made it: a routine completing after a session reset touches nothing.
    generation: u64,
    routine: unsafe extern "system" fn(PDEVICE_OBJECT, PIRP, PVOID) -> NTSTATUS,
    context: PVOID,
}

/// Whether a stack location's completion context is one `IoSetCompletionRoutineEx` allocated, i.e.
/// its routine is the emulation's. (Told by the context, a live block only this module makes:
/// function pointers are not reliably comparable in Rust, and are not under Miri.)
pub(super) fn is_ex_context(context: PVOID) -> bool {
    heap()
        .get(context.addr())
        .is_some_and(|b| matches!(b.kind, Kind::CompletionContext))
}

/// `IoSetCompletionRoutineEx`: IRQL <= DISPATCH_LEVEL. Allocates the context (fails with
/// `STATUS_INSUFFICIENT_RESOURCES` under pool fault injection, [`crate::emu::pool::fail_next`],
/// leaving the IRP's next stack location untouched), references `DeviceObject`, and sets the next
/// stack location's completion routine like `IoSetCompletionRoutine`, to a routine of the emulation
/// that calls `CompletionRoutine(DeviceObject, Irp, Context)` and then releases both.
///
/// `DeviceObject` must be a device object of this session ([`Rule::UnknownObject`] or
/// [`Rule::UseAfterFree`] otherwise), `Irp` a live IRP the caller owns with a next stack location
/// ([`Rule::IrpNoStackLocation`]), `CompletionRoutine` not NULL ([`Rule::InvalidParameter`]); after
/// such a violation (recording mode) it returns `STATUS_INVALID_PARAMETER` (invented) and sets
/// nothing.
///
/// # Safety
/// `Irp` is a live IRP the caller owns; `CompletionRoutine` may be called with `Context` on any
/// thread at IRQL <= DISPATCH_LEVEL.
pub unsafe extern "system" fn IoSetCompletionRoutineEx(
    DeviceObject: PDEVICE_OBJECT,
    Irp: PIRP,
    CompletionRoutine: PIO_COMPLETION_ROUTINE,
    Context: PVOID,
    InvokeOnSuccess: BOOLEAN,
    InvokeOnError: BOOLEAN,
    InvokeOnCancel: BOOLEAN,
) -> NTSTATUS {
    if super::exports::wine8_kernel() {
        violation(
            Rule::Other("a call to a Wine 8.0 stub (IoSetCompletionRoutineEx is unimplemented: the process aborts)"),
            &format_args!("IoSetCompletionRoutineEx(IRP {Irp:p})"),
            None,
        );
        return STATUS_NOT_IMPLEMENTED;
    }
    pool_stats::count_call(Class::CompletionContext);
    if !irql::require_max("IoSetCompletionRoutineEx", DISPATCH_LEVEL) {
        return STATUS_INVALID_PARAMETER;
    }
    let Some(routine) = CompletionRoutine else {
        violation(
            Rule::InvalidParameter,
            &"IoSetCompletionRoutineEx with a NULL CompletionRoutine",
            None,
        );
        return STATUS_INVALID_PARAMETER;
    };
    let created = creation_site();
    let mut registry = registry();
    let device = DeviceObject.addr();
    if !registry.is_device(device) {
        registry.report_not_device(device, "IoSetCompletionRoutineEx");
        return STATUS_INVALID_PARAMETER;
    }
    let context = {
        let mut heap = heap();
        let Some(block) = heap.find(Irp.addr(), Class::Irp, "IoSetCompletionRoutineEx", Access::Use) else {
            return STATUS_INVALID_PARAMETER;
        };
        // SAFETY: the IRP is live (checked, under the heap lock) and owned by the caller.
        if unsafe { (*Irp).CurrentLocation } <= 1 {
            violation(
                Rule::IrpNoStackLocation,
                &format_args!("IoSetCompletionRoutineEx on IRP {Irp:p}, which has no next stack location"),
                block.created.as_ref(),
            );
            return STATUS_INVALID_PARAMETER;
        }
        if heap.inject_failure(None) {
            drop(heap);
            driver::note_ex_failed(&mut registry, Irp);
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        match heap.allocate(
            size_of::<UnloadSafeContext>(),
            16,
            None,
            Kind::CompletionContext,
            created,
        ) {
            Some(p) => p.as_ptr().cast::<UnloadSafeContext>(),
            None => {
                drop(heap);
                driver::note_ex_failed(&mut registry, Irp);
                return STATUS_INSUFFICIENT_RESOURCES;
            }
        }
    };
    registry.reference_device(device);
    driver::forget_ex_failed(&mut registry, Irp);
    let generation = registry.generation();
    drop(registry);
    // SAFETY: `context` was just allocated with room for an `UnloadSafeContext` and is not shared
    // yet; the IRP is the caller's and has a next stack location (checked above).
    unsafe {
        context.write(UnloadSafeContext {
            device,
            generation,
            routine,
            context: Context,
        });
        IoSetCompletionRoutine(
            Irp,
            Some(unload_safe_completion),
            context.cast(),
            InvokeOnSuccess != FALSE,
            InvokeOnError != FALSE,
            InvokeOnCancel != FALSE,
        );
    }
    STATUS_SUCCESS
}

/// The routine `IoSetCompletionRoutineEx` sets: calls the driver's routine, and only after it has
/// returned frees the context and drops the device reference (which may unload the image), then
/// returns the driver's status.
///
/// # Safety
/// Called by `IofCompleteRequest` with the context `IoSetCompletionRoutineEx` allocated.
unsafe extern "system" fn unload_safe_completion(DeviceObject: PDEVICE_OBJECT, Irp: PIRP, Context: PVOID) -> NTSTATUS {
    let context = Context.cast::<UnloadSafeContext>();
    // SAFETY: the context was written by IoSetCompletionRoutineEx and is freed only below, after
    // this single read.
    let UnloadSafeContext {
        device,
        generation,
        routine,
        context: driver_context,
    } = unsafe { context.read() };
    let guard = enter_routine(
        "completion routine (set with IoSetCompletionRoutineEx)",
        Owner::Device(device),
    );
    // SAFETY: the driver's routine with the driver's context, as IoSetCompletionRoutineEx promised;
    // the device reference keeps its image loaded until after it returns.
    let status = unsafe { routine(DeviceObject, Irp, driver_context) };
    drop(guard);
    let mut registry = registry();
    if registry.generation() == generation {
        {
            let mut heap = heap();
            if heap
                .find(
                    Context.addr(),
                    Class::CompletionContext,
                    "IoSetCompletionRoutineEx's completion",
                    Access::Free,
                )
                .is_some()
            {
                heap.release(Context.addr(), None);
            }
        }
        // Always succeeds: IoSetCompletionRoutineEx took this reference.
        let _ = registry.dereference_device(device);
    }
    drop(registry);
    status
}

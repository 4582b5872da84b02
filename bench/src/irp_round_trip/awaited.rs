//! (b) The same round trip as an awaited future on the executor.
//!
//! wsk-async's operation slot (`Op`, `OpState`, `AtomicWaker`, `SlotUse` in `wsk-async/src/`) is
//! crate-private, so this is a faithful minimal copy of its per-operation path, step for step:
//! claim the slot (CAS), `IoReuseIrp` + `IoSetCompletionRoutine`, take the kernel's reference on the
//! context, submit (CAS), call the provider; register the waker and check for completion; the
//! completion routine makes transition 3 with one `fetch_xor`, wakes the task through the
//! three-state waker cell and drops the kernel's reference; the future then reads the result from
//! the IRP's own `IoStatus` (wsk-async keeps no copy), consumes it and releases the slot. What it leaves out is what the round trip never
//! exercises: cancellation on drop, orphaned results, stale-result disposal, the WSK_BUF.
//! The real wsk-async path, with a real WSK provider, is measured end to end by `bench echo`.

use super::provider::Provider;
use nt::*;
use std::cell::UnsafeCell;
use std::future::Future;
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

const FUTURE: u32 = 1 << 0;
const KERNEL: u32 = 1 << 1;
const COMPLETE: u32 = 1 << 2;

/// wsk-async's `AtomicWaker`: register at PASSIVE_LEVEL, wake at DISPATCH_LEVEL from any CPU.
struct AtomicWaker {
    state: AtomicU32,
    waker: UnsafeCell<Option<Waker>>,
}

const IDLE: u32 = 0;
const REGISTERING: u32 = 1;
const WAKING: u32 = 2;

impl AtomicWaker {
    fn new() -> Self {
        Self {
            state: AtomicU32::new(IDLE),
            waker: UnsafeCell::new(None),
        }
    }

    fn register(&self, waker: &Waker) {
        match self
            .state
            .compare_exchange(IDLE, REGISTERING, Ordering::Acquire, Ordering::Acquire)
        {
            Ok(_) => {
                // SAFETY: REGISTERING is held: nobody else touches the cell.
                let slot = unsafe { &mut *self.waker.get() };
                match slot {
                    Some(old) if old.will_wake(waker) => {}
                    _ => *slot = Some(waker.clone()),
                }
                if self
                    .state
                    .compare_exchange(REGISTERING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    // SAFETY: still exclusive: the waking side saw REGISTERING and backed off.
                    let taken = unsafe { (*self.waker.get()).take() };
                    self.state.swap(IDLE, Ordering::AcqRel);
                    if let Some(w) = taken {
                        w.wake();
                    }
                }
            }
            Err(_) => waker.wake_by_ref(),
        }
    }

    fn take(&self) -> Option<Waker> {
        match self.state.fetch_or(WAKING, Ordering::AcqRel) {
            IDLE => {
                // SAFETY: IDLE -> WAKING is an exclusive claim on the cell.
                let taken = unsafe { (*self.waker.get()).take() };
                self.state.fetch_and(!WAKING, Ordering::Release);
                taken
            }
            _ => None,
        }
    }

    fn wake(&self) {
        if let Some(w) = self.take() {
            w.wake();
        }
    }
}

/// One operation slot with its context reference count (wsk-async's `Op` inside a `SocketCtx`).
pub struct OpSlot {
    state: AtomicU32,
    waker: AtomicWaker,
    refs: AtomicUsize,
    irp: PIRP,
}

// SAFETY: shared between the future and the completion routine through the state word, as in
// wsk-async: the IRP's `IoStatus` is written by the provider before completion and read by the
// owner after transition 3.
unsafe impl Send for OpSlot {}
// SAFETY: as above.
unsafe impl Sync for OpSlot {}

impl OpSlot {
    pub fn new() -> Self {
        // SAFETY: IoAllocateIrp at PASSIVE_LEVEL.
        let irp = unsafe { IoAllocateIrp(1, FALSE) };
        assert!(!irp.is_null(), "IoAllocateIrp");
        Self {
            state: AtomicU32::new(0),
            waker: AtomicWaker::new(),
            refs: AtomicUsize::new(1),
            irp,
        }
    }
}

impl Drop for OpSlot {
    fn drop(&mut self) {
        assert_eq!(self.state.load(Ordering::Acquire) & KERNEL, 0, "IRP still pending");
        // SAFETY: the IRP is ours and not pending.
        unsafe { IoFreeIrp(self.irp) };
    }
}

/// The awaited round trip.
pub struct RoundTrip<'a> {
    slot: &'a OpSlot,
    provider: &'a Provider,
    submitted: bool,
}

impl<'a> RoundTrip<'a> {
    pub fn new(slot: &'a OpSlot, provider: &'a Provider) -> Self {
        Self {
            slot,
            provider,
            submitted: false,
        }
    }
}

impl Future for RoundTrip<'_> {
    type Output = ULONG_PTR;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ULONG_PTR> {
        let slot = self.slot;
        if !self.submitted {
            // Transition 1: claim.
            let mut current = slot.state.load(Ordering::Acquire);
            loop {
                assert_eq!(current & (FUTURE | KERNEL), 0, "slot in use");
                match slot
                    .state
                    .compare_exchange(current, current | FUTURE, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => break,
                    Err(actual) => current = actual,
                }
            }
            // SAFETY: the slot is ours with KERNEL clear, so is its IRP; the slot outlives the IRP's
            // time in the provider (the future does not complete before the completion).
            unsafe {
                IoReuseIrp(slot.irp, STATUS_UNSUCCESSFUL);
                IoSetCompletionRoutine(
                    slot.irp,
                    Some(op_completion),
                    ptr::from_ref(slot).cast_mut().cast(),
                    true,
                    true,
                    true,
                );
            }
            slot.refs.fetch_add(1, Ordering::Relaxed);
            // Transition 2: submit.
            let mut current = slot.state.load(Ordering::Relaxed);
            loop {
                let next = (current & !COMPLETE) | KERNEL;
                match slot
                    .state
                    .compare_exchange(current, next, Ordering::AcqRel, Ordering::Relaxed)
                {
                    Ok(_) => break,
                    Err(actual) => current = actual,
                }
            }
            // SAFETY: the IRP is ours, its completion routine set.
            unsafe { self.provider.submit(slot.irp) };
            self.submitted = true;
        }
        slot.waker.register(cx.waker());
        if slot.state.load(Ordering::Acquire) & (COMPLETE | KERNEL) != COMPLETE {
            return Poll::Pending;
        }
        // Transition 4: consume.
        slot.state.fetch_and(!COMPLETE, Ordering::AcqRel);
        // SAFETY: COMPLETE observed with Acquire: the provider's IoStatus store (before it completed
        // the IRP) is visible, and nobody touches the IRP after its routine returned
        // STATUS_MORE_PROCESSING_REQUIRED until this owner reuses it.
        let iosb = unsafe { (*slot.irp).IoStatus };
        // Transition 5: release.
        drop(slot.waker.take());
        slot.state.fetch_and(!FUTURE, Ordering::AcqRel);
        self.submitted = false;
        assert_eq!(iosb.Status, STATUS_SUCCESS);
        Poll::Ready(iosb.Information)
    }
}

/// The completion routine (wsk-async's `op_completion`, without the orphan branch).
///
/// # Safety
/// `context` is the `OpSlot` whose IRP this is, kept alive by the reference taken at submission.
unsafe extern "system" fn op_completion(_device: PDEVICE_OBJECT, _irp: PIRP, context: PVOID) -> NTSTATUS {
    // SAFETY: see above; the IRP is ours again (top location).
    unsafe {
        let slot = &*context.cast::<OpSlot>();
        // Transition 3: complete.
        let previous = slot.state.fetch_xor(KERNEL | COMPLETE, Ordering::AcqRel);
        if previous & FUTURE != 0 {
            slot.waker.wake();
        }
        // The kernel's reference on the context, released last.
        slot.refs.fetch_sub(1, Ordering::AcqRel);
    }
    STATUS_MORE_PROCESSING_REQUIRED
}

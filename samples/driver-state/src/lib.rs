//! One loaded driver's state — its executor, its WSK registration and its device object — created
//! by DriverEntry and torn down by DriverUnload, for the sample drivers (`samples/echo-driver`,
//! `samples/report-client`). A driver keeps one [`DriverSlot`] in a `static`, calls
//! [`DriverSlot::load`] from DriverEntry with what it starts on the executor, and
//! [`DriverSlot::unload`] from DriverUnload.
//!
//! # Lifetime of the driver's state
//!
//! The executor, the registration and the device object live in one nonpaged pool block
//! (`Loaded`) allocated by `load` and freed by `unload`, rather than in `static`s: an [`Executor`]
//! cannot be restarted once shut down, and on the host one process loads and unloads a driver many
//! times (the tests do), which a real kernel does with a fresh image each time. The block also shows
//! up in the emulation's leak report if unload forgets it.
//!
//! The executor is lent to its thread and tasks as `&'static`. That is sound because the block is
//! freed only after all of these have happened, in this order:
//! 1. `Executor::shutdown` returned: every task's future was dropped on the executor thread, the
//!    thread has ended, and every wake or spawn that reached the executor has made its last access
//!    to it, its `KeSetEvent` included (shutdown's contract; a waker called later finds no task).
//!    A driver uses its `Spawner`s only on the executor thread or inside `load`'s `serve`, so no
//!    spawn call outlives it;
//! 2. `Registration::deregister` completed: every socket is closed and every IRP completed, so no
//!    completion routine will wake anything;
//! 3. `TimerDriver::stop` returned: no timer DPC is queued or running.
//!
//! The device object is deleted after all of these. Until a completion routine or work item of
//! wsk-async has returned, the I/O manager holds a reference on it (`IoSetCompletionRoutineEx`,
//! `IoQueueWorkItem`), and a referenced device object keeps the driver's image loaded: DriverUnload
//! returning does not unmap code that is still running.
//!
//! On the host, [`host`] holds what the samples' host programs share.
#![no_std]

// The host programs' helpers use std; the driver code does not.
#[cfg(not(target_os = "windows"))]
extern crate std;

#[cfg(not(target_os = "windows"))]
pub mod host;

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use core::time::Duration;
use executor::{Executor, ExecutorError, TIMERS, block_on};
use nt::*;
use wsk_async::{Device, Registration};

/// The state of a loaded driver, in nonpaged pool (see the crate documentation).
struct Loaded {
    executor: Executor,
    /// Taken by unload to deregister.
    registration: Option<Registration>,
    /// The driver's unnamed device object (`IoCreateDevice`), deleted last by unload. It serves no
    /// I/O requests: it exists so that wsk-async's completion routines and work items can reference
    /// it (`IoSetCompletionRoutineEx`, `IoQueueWorkItem`), which keeps the image loaded until the
    /// last of them has returned. Null until created.
    device: PDEVICE_OBJECT,
}

const _: () = assert!(align_of::<Loaded>() <= 16, "ExAllocatePool2 aligns to 16 bytes");

const UNLOADED: u8 = 0;
const CHANGING: u8 = 1;
const LOADED: u8 = 2;

/// Where one driver keeps its loaded state: a `static` of the driver.
pub struct DriverSlot {
    /// Whether a driver is loaded. DriverEntry and DriverUnload are serialised by the I/O manager
    /// in the kernel; the host program and tests could call them from anywhere, so the transitions
    /// are compare-exchanges that refuse a second load or an unload of nothing instead of
    /// corrupting state.
    phase: AtomicU8,
    /// The loaded driver's state, while `phase` is `LOADED`.
    state: AtomicPtr<Loaded>,
    /// Pool tag of the state block.
    tag: ULONG,
    /// The driver's name at the start of its log lines.
    name: &'static str,
    /// Tells the driver's tasks to stop at their next step, before the executor's shutdown drops
    /// them (busy tasks end by themselves instead of keeping the run queue full).
    request_stop: fn(),
}

impl DriverSlot {
    /// An empty slot: pool tag `tag` for the state block, `name` in log lines, `request_stop` called
    /// by every teardown before the executor's shutdown.
    pub const fn new(tag: ULONG, name: &'static str, request_stop: fn()) -> Self {
        Self {
            phase: AtomicU8::new(UNLOADED),
            state: AtomicPtr::new(ptr::null_mut()),
            tag,
            name,
            request_stop,
        }
    }

    /// What DriverEntry does around the driver's own start: creates the driver's unnamed device
    /// object, starts the timers and the executor thread, registers with WSK (waiting at most
    /// `register_timeout`), then runs `serve` (which starts the driver's tasks on the executor);
    /// on success sets `driver.DriverUnload` to `unload` and returns `STATUS_SUCCESS`. On failure it
    /// undoes everything it started (tasks `serve` spawned included) and returns the status of the
    /// step that failed (`STATUS_INVALID_DEVICE_STATE` if already loaded or above PASSIVE_LEVEL).
    ///
    /// # Safety
    /// PASSIVE_LEVEL; `driver` is the driver object the I/O manager passed to DriverEntry (on the
    /// host: one the emulation's loader made, `nt::emu::driver`). The executor and the registration
    /// given to `serve` are `'static` only until [`unload`](Self::unload) (or a failed load) shuts
    /// the executor down: `serve` may use them itself and hand them to tasks of that executor (the
    /// shutdown drops those before the registration is deregistered and the block freed), and must
    /// not keep them anywhere else.
    pub unsafe fn load(
        &'static self,
        driver: PDRIVER_OBJECT,
        register_timeout: Duration,
        unload: unsafe extern "system" fn(PDRIVER_OBJECT),
        serve: impl FnOnce(&'static Executor, &'static Registration) -> Result<(), NTSTATUS>,
    ) -> NTSTATUS {
        if driver.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        if KeGetCurrentIrql() != PASSIVE_LEVEL {
            return STATUS_INVALID_DEVICE_STATE;
        }
        // Before any allocation or clock reading: ExAllocatePool2 and KeQueryInterruptTimePrecise
        // are looked up, not imported, so the image loads on kernels without them (Windows before
        // 10 2004, Wine).
        kdprint!(DPFLTR_INFO_LEVEL, "{}: {}", self.name, resolve_optional_exports());
        if self
            .phase
            .compare_exchange(UNLOADED, CHANGING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return STATUS_INVALID_DEVICE_STATE;
        }
        // SAFETY: forwarded from the caller's contract.
        match unsafe { self.create(driver, register_timeout, serve) } {
            Ok(state) => {
                self.state.store(state.as_ptr(), Ordering::Release);
                self.phase.store(LOADED, Ordering::Release);
                // SAFETY: the caller passes a writable driver object.
                unsafe { (*driver).DriverUnload = Some(unload) };
                STATUS_SUCCESS
            }
            Err(status) => {
                self.phase.store(UNLOADED, Ordering::Release);
                kdprint!(
                    DPFLTR_ERROR_LEVEL,
                    "{}: DriverEntry failed: {:#010x}",
                    self.name,
                    status as u32
                );
                status
            }
        }
    }

    /// # Safety
    /// As for [`load`](Self::load).
    unsafe fn create(
        &'static self,
        driver: PDRIVER_OBJECT,
        register_timeout: Duration,
        serve: impl FnOnce(&'static Executor, &'static Registration) -> Result<(), NTSTATUS>,
    ) -> Result<NonNull<Loaded>, NTSTATUS> {
        TIMERS.start();
        // SAFETY: nonpaged pool at PASSIVE_LEVEL.
        let block = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, size_of::<Loaded>(), self.tag) };
        let Some(state) = NonNull::new(block.cast::<Loaded>()) else {
            TIMERS.stop();
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        };
        // SAFETY: fresh, suitably aligned pool memory for one `Loaded`.
        unsafe {
            state.as_ptr().write(Loaded {
                executor: Executor::new(),
                registration: None,
                device: ptr::null_mut(),
            })
        };
        // An unnamed device: nothing can open it, and no dispatch routine is set.
        let mut device = ptr::null_mut();
        // SAFETY: PASSIVE_LEVEL, the driver object of this driver (caller's contract).
        let status = unsafe {
            IoCreateDevice(
                driver,
                0,
                ptr::null_mut(),
                FILE_DEVICE_UNKNOWN,
                FILE_DEVICE_SECURE_OPEN,
                FALSE,
                &mut device,
            )
        };
        if !NT_SUCCESS(status) {
            // SAFETY: nothing else refers to the block yet.
            unsafe { self.teardown(state) };
            return Err(status);
        }
        // SAFETY: the block is ours; the field is touched only by load and unload.
        unsafe { (*state.as_ptr()).device = device };
        // SAFETY: see the crate documentation: the block outlives every user of the executor and of
        // the registration (tasks of the executor, and `serve`: the caller's contract). Only shared
        // references to the executor are ever made; the registration field is a disjoint place,
        // written here and taken by teardown once the executor has shut down.
        let (executor, registration) = unsafe {
            (
                &*ptr::addr_of!((*state.as_ptr()).executor),
                &mut *ptr::addr_of_mut!((*state.as_ptr()).registration),
            )
        };
        // SAFETY: a device object this driver just created.
        let Some(device) = (unsafe { Device::from_raw(device) }) else {
            // SAFETY: as above.
            unsafe { self.teardown(state) };
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        };
        let started = executor.start().map_err(executor_status).and_then(|()| {
            let registration: &'static Registration = registration
                .insert(Registration::register_blocking(&device, register_timeout).map_err(|e| e.status())?);
            serve(executor, registration)
        });
        match started {
            Ok(()) => Ok(state),
            Err(status) => {
                // SAFETY: the block is ours; teardown stops whatever `serve` started.
                unsafe { self.teardown(state) };
                Err(status)
            }
        }
    }

    /// What DriverUnload does: asks the driver's tasks to stop, shuts the executor down (which drops
    /// every task still alive on its thread: a dropped pending WSK call cancels its IRP, a dropped
    /// socket closes abortively, a dropped timer unlinks itself), waits until every socket is closed
    /// and every IRP completed (deregistration), stops the timers, deletes the device object and
    /// frees the state. It never waits on a peer. Returns false, doing nothing, if no driver is
    /// loaded. PASSIVE_LEVEL.
    pub fn unload(&'static self) -> bool {
        if self
            .phase
            .compare_exchange(LOADED, CHANGING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let state = self.state.swap(ptr::null_mut(), Ordering::AcqRel);
        if let Some(state) = NonNull::new(state) {
            // SAFETY: the loaded state, no longer reachable through `state`.
            unsafe { self.teardown(state) };
        }
        self.phase.store(UNLOADED, Ordering::Release);
        true
    }

    /// Shuts down what [`create`](Self::create) started (whatever part of it), in the order the
    /// crate documentation requires, and frees the block.
    ///
    /// # Safety
    /// `state` is the block allocated by `create`, not used by anyone else afterwards.
    unsafe fn teardown(&self, state: NonNull<Loaded>) {
        // SAFETY: the caller's contract; the executor stays valid until the free at the end. Shared
        // references only: the executor thread may still be using it.
        let executor: &'static Executor = unsafe { &*ptr::addr_of!((*state.as_ptr()).executor) };
        // Busy tasks end by themselves; the shutdown drops the rest. Shutting down an executor that
        // never started just marks it done; it cannot fail at PASSIVE_LEVEL, which both callers run at.
        (self.request_stop)();
        let _ = executor.shutdown();
        // SAFETY: a place disjoint from the executor, touched only by load and unload.
        let registration = unsafe { (*ptr::addr_of_mut!((*state.as_ptr()).registration)).take() };
        if let Some(registration) = registration {
            // Should block_on refuse (only above PASSIVE_LEVEL or with every parking slot taken),
            // the future is dropped with the registration in it, and the registration's drop
            // deregisters by blocking instead: the same wait, no leak.
            let _ = block_on(registration.deregister());
        }
        TIMERS.stop();
        // Last: no socket, completion routine or work item of ours is left that could still need it
        // (any that has not yet returned holds its own reference, which keeps the image loaded).
        // SAFETY: the field is touched only by load and unload; the device is ours.
        let device = unsafe { (*state.as_ptr()).device };
        if !device.is_null() {
            // SAFETY: created by `create`, deleted once, here.
            unsafe { IoDeleteDevice(device) };
        }
        // SAFETY: everything that referred to the block is gone (crate documentation).
        unsafe {
            ptr::drop_in_place(state.as_ptr());
            ExFreePoolWithTag(state.as_ptr().cast(), self.tag);
        }
    }
}

fn executor_status(e: ExecutorError) -> NTSTATUS {
    match e {
        ExecutorError::Thread(status) => status,
        ExecutorError::NotPassiveLevel | ExecutorError::Busy | ExecutorError::ShutDown => STATUS_INVALID_DEVICE_STATE,
    }
}

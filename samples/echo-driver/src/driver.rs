//! DriverEntry and DriverUnload, shared by the kernel build and the host program.
//!
//! # Lifetime of the driver's state
//!
//! The executor, the registration and the listening address live in one nonpaged pool block
//! ([`Loaded`]) allocated by DriverEntry and freed by DriverUnload, rather than in `static`s: an
//! [`Executor`] cannot be restarted once shut down, and on the host one process loads and unloads the
//! driver many times (the tests do), which a real kernel does with a fresh image each time. The
//! block also shows up in the emulation's leak report if unload forgets it.
//!
//! The executor is lent to its thread and tasks as `&'static`. That is sound because the block is
//! freed only after all of these have happened, in this order:
//! 1. `Executor::shutdown` returned: every task's future was dropped on the executor thread, the
//!    thread has ended, and every wake or spawn that reached the executor has made its last access
//!    to it, its `KeSetEvent` included (shutdown's contract; a waker called later finds no task).
//!    The only `Spawner` is the accept loop's, used on the executor thread, so no spawn call outlives it;
//! 2. `Registration::deregister` completed: every socket is closed and every IRP completed, so no
//!    completion routine will wake anything;
//! 3. `TimerDriver::stop` returned: no timer DPC is queued or running.
//!
//! The device object is deleted after all of these. Until a completion routine or work item of
//! wsk-async has returned, the I/O manager holds a reference on it (`IoSetCompletionRoutineEx`,
//! `IoQueueWorkItem`), and a referenced device object keeps the driver's image loaded: DriverUnload
//! returning does not unmap code that is still running.

use crate::config::{BUFFERS_PER_CONNECTION, Config};
use crate::counters::COUNTERS;
use crate::server::{self, ACCEPT_TASK, accept_loop};
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU16, Ordering};
use executor::{Executor, ExecutorError, TIMERS, block_on};
use nt::*;
use wsk_async::{BufferPool, Device, Registration, WskError};

/// Pool tag of the driver's state: `Echo` in pool tools.
pub const TAG_DRIVER: ULONG = u32::from_le_bytes(*b"Echo");

/// The state of a loaded driver, in nonpaged pool (see the module documentation).
struct Loaded {
    executor: Executor,
    /// Taken by unload to deregister.
    registration: Option<Registration>,
    /// The driver's unnamed device object (`IoCreateDevice`), deleted last by unload. This driver
    /// serves no I/O requests: the object exists so that wsk-async's completion routines and work
    /// items can reference it (`IoSetCompletionRoutineEx`, `IoQueueWorkItem`), which keeps the image
    /// loaded until the last of them has returned. Null until created.
    device: PDEVICE_OBJECT,
}

const _: () = assert!(align_of::<Loaded>() <= 16, "ExAllocatePool2 aligns to 16 bytes");

/// Whether a driver is loaded. DriverEntry and DriverUnload are serialised by the I/O manager in the
/// kernel; the host program and tests could call them from anywhere, so the transitions are
/// compare-exchanges that refuse a second load or an unload of nothing instead of corrupting state.
static PHASE: AtomicU8 = AtomicU8::new(UNLOADED);
const UNLOADED: u8 = 0;
const CHANGING: u8 = 1;
const LOADED: u8 = 2;

/// The loaded driver's state, while `PHASE` is `LOADED`.
static STATE: AtomicPtr<Loaded> = AtomicPtr::new(ptr::null_mut());

/// The port the loaded driver listens on (0: not listening). Kept outside the state block so that
/// [`local_addr`] never reads memory an unload is freeing.
static PORT: AtomicU16 = AtomicU16::new(0);

/// Whether the listener is dual stack (`[::]`) or, after the fallback, IPv4 only.
static DUAL_STACK: AtomicBool = AtomicBool::new(true);

/// `DriverEntry` of the kernel build: starts the echo server with [`Config::DEFAULT`] (port 40007;
/// the registry is not read) and sets `DriverUnload`.
///
/// # Safety
/// Called by the I/O manager at PASSIVE_LEVEL with a valid driver object (the host program passes a
/// zeroed one of its own).
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DriverEntry(driver: PDRIVER_OBJECT, _registry_path: *mut UNICODE_STRING) -> NTSTATUS {
    // SAFETY: forwarded from the caller's contract.
    unsafe { start(driver, &Config::DEFAULT) }
}

/// `DriverUnload`: see [`stop`].
///
/// # Safety
/// Called by the I/O manager at PASSIVE_LEVEL once DriverEntry succeeded.
#[allow(non_snake_case)] // the WDK name
pub unsafe extern "system" fn DriverUnload(_driver: PDRIVER_OBJECT) {
    stop();
}

/// What DriverEntry does, with the configuration given: validates it, creates the driver's unnamed
/// device object, starts the timers and the executor thread, registers with WSK (waiting at most `register_timeout`), allocates the buffers
/// of every connection, listens on `[::]:port` (dual stack) and spawns the accept loop; on success sets
/// `driver.DriverUnload` and returns `STATUS_SUCCESS`. On failure it undoes everything it started
/// and returns the status of the step that failed (`STATUS_INVALID_PARAMETER` for a bad
/// configuration, `STATUS_INVALID_DEVICE_STATE` if already loaded or above PASSIVE_LEVEL,
/// `STATUS_ADDRESS_ALREADY_ASSOCIATED` or `STATUS_ADDRESS_ALREADY_EXISTS` for a port in use, ...).
///
/// # Safety
/// PASSIVE_LEVEL; `driver` is the driver object the I/O manager passed to DriverEntry (on the host:
/// one the emulation's loader made, `nt::emu::driver`).
pub unsafe fn start(driver: PDRIVER_OBJECT, config: &Config) -> NTSTATUS {
    if !config.is_valid() || driver.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    if KeGetCurrentIrql() != PASSIVE_LEVEL {
        return STATUS_INVALID_DEVICE_STATE;
    }
    // Before any allocation or clock reading: ExAllocatePool2 and KeQueryInterruptTimePrecise are
    // looked up, not imported, so the image loads on kernels without them (Windows before 10 2004, Wine).
    kdprint!(DPFLTR_INFO_LEVEL, "echo: {}", resolve_optional_exports());
    if PHASE
        .compare_exchange(UNLOADED, CHANGING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return STATUS_INVALID_DEVICE_STATE;
    }
    // SAFETY: forwarded from the caller's contract.
    match unsafe { load(driver, config) } {
        Ok(state) => {
            STATE.store(state.as_ptr(), Ordering::Release);
            PHASE.store(LOADED, Ordering::Release);
            // SAFETY: the caller passes a writable driver object.
            unsafe { (*driver).DriverUnload = Some(DriverUnload) };
            STATUS_SUCCESS
        }
        Err(status) => {
            PHASE.store(UNLOADED, Ordering::Release);
            kdprint!(DPFLTR_ERROR_LEVEL, "echo: DriverEntry failed: {:#010x}", status as u32);
            status
        }
    }
}

/// # Safety
/// As for [`start`].
unsafe fn load(driver: PDRIVER_OBJECT, config: &Config) -> Result<NonNull<Loaded>, NTSTATUS> {
    COUNTERS.reset();
    server::reset_stop();
    TIMERS.start();
    // SAFETY: nonpaged pool at PASSIVE_LEVEL.
    let block = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, size_of::<Loaded>(), TAG_DRIVER) };
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
    // An unnamed device: nothing can open it, and this driver sets no dispatch routines.
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
        unsafe { teardown(state) };
        return Err(status);
    }
    // SAFETY: the block is ours; the field is touched only by DriverEntry and DriverUnload.
    unsafe { (*state.as_ptr()).device = device };
    // SAFETY: see the module documentation: the block outlives every user of the executor. Only
    // shared references to the executor are ever made; the registration field is a disjoint place
    // touched only by DriverEntry and DriverUnload.
    let (executor, registration) = unsafe {
        (
            &*ptr::addr_of!((*state.as_ptr()).executor),
            &mut *ptr::addr_of_mut!((*state.as_ptr()).registration),
        )
    };
    // SAFETY: a device object this driver just created.
    let Some(device) = (unsafe { Device::from_raw(device) }) else {
        // SAFETY: as above.
        unsafe { teardown(state) };
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    };
    match serve(executor, registration, &device, config) {
        Ok(()) => Ok(state),
        Err(status) => {
            // SAFETY: nothing started by `serve` is left running; the block is ours.
            unsafe { teardown(state) };
            Err(status)
        }
    }
}

/// Starts the executor, registers (into `registration`, where [`teardown`] finds it), listens and
/// spawns the accept loop. On error, [`teardown`] undoes whatever part of this was done.
fn serve(
    executor: &'static Executor,
    registration: &mut Option<Registration>,
    device: &Device,
    config: &Config,
) -> Result<(), NTSTATUS> {
    executor.start().map_err(executor_status)?;
    let registration =
        registration.insert(Registration::register_blocking(device, config.register_timeout).map_err(|e| e.status())?);
    let buffers = BufferPool::new(config.connection_limit * BUFFERS_PER_CONNECTION, config.buffer_size)
        .map_err(|e| e.status())?;
    let listener = listen(registration, config.port)?;
    let local = listener.local_addr();
    let spawner = executor.spawner();
    ACCEPT_TASK
        .spawn_detached(spawner, accept_loop(listener, buffers, *config, spawner))
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    PORT.store(local.map_or(config.port, |a| a.port()), Ordering::Release);
    let families = if DUAL_STACK.load(Ordering::Acquire) {
        "IPv4 and IPv6"
    } else {
        "IPv4 only"
    };
    match local {
        Some(addr) => kdprint!(
            DPFLTR_INFO_LEVEL,
            "echo: listening on {addr} ({families}), limit {}, idle timeout {:?}",
            config.connection_limit,
            config.idle_timeout
        ),
        None => kdprint!(
            DPFLTR_INFO_LEVEL,
            "echo: listening on port {} ({families})",
            config.port
        ),
    }
    Ok(())
}

/// Listens on `[::]:port` (dual stack) or, if the provider cannot (it fails the IPv6 bind or the
/// `IPV6_V6ONLY` option, as Wine 8's netio does), on `0.0.0.0:port`, and logs that it did. A port in
/// use is an error either way.
fn listen(registration: &Registration, port: u16) -> Result<wsk_async::Listener, NTSTATUS> {
    let dual = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
    let attempt = |addr| {
        block_on(registration.listen(addr))
            .map_err(|_| STATUS_INVALID_DEVICE_STATE)?
            .map_err(|e: WskError| e.status())
    };
    match attempt(dual) {
        Ok(listener) => {
            DUAL_STACK.store(true, Ordering::Release);
            Ok(listener)
        }
        Err(status) if WskError::from_status(status).is_address_in_use() => Err(status),
        Err(status) => {
            kdprint!(
                DPFLTR_WARNING_LEVEL,
                "echo: no dual-stack listener ({:#010x}); falling back to IPv4 only",
                status as u32
            );
            DUAL_STACK.store(false, Ordering::Release);
            attempt(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)))
        }
    }
}

fn executor_status(e: ExecutorError) -> NTSTATUS {
    match e {
        ExecutorError::Thread(status) => status,
        ExecutorError::NotPassiveLevel | ExecutorError::Busy | ExecutorError::ShutDown => STATUS_INVALID_DEVICE_STATE,
    }
}

/// What DriverUnload does: stops accepting and aborts every connection (the executor's shutdown
/// drops every task on its thread: the accept loop's drop closes the listener, each connection
/// task's drop cancels its pending IRP and closes its socket abortively), waits until every socket is
/// closed and every IRP completed, deregisters from WSK, stops the timers, frees the state and logs
/// the counters. It never waits on a peer: every close is abortive. Does nothing if no driver is
/// loaded. PASSIVE_LEVEL.
pub fn stop() {
    if PHASE
        .compare_exchange(LOADED, CHANGING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    PORT.store(0, Ordering::Release);
    let state = STATE.swap(ptr::null_mut(), Ordering::AcqRel);
    if let Some(state) = NonNull::new(state) {
        // SAFETY: the loaded state, no longer reachable through STATE.
        unsafe { teardown(state) };
    }
    kdprint!(DPFLTR_INFO_LEVEL, "echo: unloaded; {}", COUNTERS.snapshot());
    PHASE.store(UNLOADED, Ordering::Release);
}

/// Shuts down what [`serve`] started (whatever part of it), in the order the module documentation
/// requires, and frees the block.
///
/// # Safety
/// `state` is the block allocated by [`load`], not used by anyone else afterwards.
unsafe fn teardown(state: NonNull<Loaded>) {
    // SAFETY: the caller's contract; the executor stays valid until the free at the end. Shared
    // references only: the executor thread may still be using it.
    let executor: &'static Executor = unsafe { &*ptr::addr_of!((*state.as_ptr()).executor) };
    // Busy tasks end by themselves; the shutdown drops the rest. Shutting down an executor that
    // never started just marks it done; it cannot fail at PASSIVE_LEVEL, which both callers run at.
    server::request_stop();
    let _ = executor.shutdown();
    // SAFETY: a place disjoint from the executor, touched only by DriverEntry and DriverUnload.
    let registration = unsafe { (*ptr::addr_of_mut!((*state.as_ptr()).registration)).take() };
    if let Some(registration) = registration {
        // Should block_on refuse (only above PASSIVE_LEVEL or with every parking slot taken), the
        // future is dropped with the registration in it, and the registration's drop deregisters by
        // blocking instead: the same wait, no leak.
        let _ = block_on(registration.deregister());
    }
    TIMERS.stop();
    // Last: no socket, completion routine or work item of ours is left that could still need it
    // (any that has not yet returned holds its own reference, which keeps the image loaded).
    // SAFETY: the field is touched only by DriverEntry and DriverUnload; the device is ours.
    let device = unsafe { (*state.as_ptr()).device };
    if !device.is_null() {
        // SAFETY: created by `load`, deleted once, here.
        unsafe { IoDeleteDevice(device) };
    }
    // SAFETY: everything that referred to the block is gone (module documentation).
    unsafe {
        ptr::drop_in_place(state.as_ptr());
        ExFreePoolWithTag(state.as_ptr().cast(), TAG_DRIVER);
    }
}

/// Where the loaded driver listens: `[::]:port` (IPv6 and IPv4), or `0.0.0.0:port` when the provider
/// had no dual stack, with the actual port when configured with port 0. `None` when no driver is
/// loaded.
pub fn local_addr() -> Option<SocketAddr> {
    match PORT.load(Ordering::Acquire) {
        0 => None,
        port if DUAL_STACK.load(Ordering::Acquire) => {
            Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)))
        }
        port => Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))),
    }
}

/// The counters now (after unload: their final values).
pub fn counters() -> crate::CounterSnapshot {
    COUNTERS.snapshot()
}

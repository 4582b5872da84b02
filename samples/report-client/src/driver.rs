//! DriverEntry and DriverUnload, shared by the kernel build and the host program.
//!
//! The executor, the WSK registration and the device object are the `driver-state` crate's
//! ([`DriverSlot`], as in the echo sample): it creates them before [`serve`] runs and tears them
//! down at unload in the order that makes lending them to the task sound.

use crate::client::{self, CLIENT_TASK, REPORT_BUFFER_SIZE};
use crate::config::Config;
use crate::counters::{COUNTERS, Phase};
use driver_state::DriverSlot;
use executor::Executor;
use nt::*;
use wsk_async::{BufferPool, Registration};

/// Pool tag of the driver's state: `Rprt` in pool tools.
pub const TAG_DRIVER: ULONG = u32::from_le_bytes(*b"Rprt");

/// The loaded driver's executor, registration and device object.
static DRIVER: DriverSlot = DriverSlot::new(TAG_DRIVER, "report", client::request_stop);

/// `DriverEntry` of the kernel build: starts the client with [`Config::DEFAULT`] (the registry is
/// not read) and sets `DriverUnload`.
///
/// # Safety
/// Called by the I/O manager at PASSIVE_LEVEL with a valid driver object.
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

/// What DriverEntry does, with the configuration given: validates it, creates the driver's device
/// object, starts the timers and the executor thread, registers with WSK (waiting at most
/// `register_timeout`), allocates the client's two buffers and spawns its task; on success sets
/// `driver.DriverUnload` and returns `STATUS_SUCCESS`. It does not wait for the server: resolving
/// and connecting are the task's, and their failures are retried, not returned. On failure it undoes
/// everything it started and returns the status of the step that failed
/// (`STATUS_INVALID_PARAMETER` for a bad configuration, `STATUS_INVALID_DEVICE_STATE` if already
/// loaded or above PASSIVE_LEVEL, ...).
///
/// # Safety
/// PASSIVE_LEVEL; `driver` is the driver object the I/O manager passed to DriverEntry (on the host:
/// one the emulation's loader made, `nt::emu::driver`).
pub unsafe fn start(driver: PDRIVER_OBJECT, config: &Config) -> NTSTATUS {
    if !config.is_valid() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: forwarded from the caller's contract; the executor and the registration go only to
    // the client's task, which runs on that executor.
    unsafe {
        DRIVER.load(
            driver,
            config.register_timeout,
            DriverUnload,
            |executor, registration| serve(executor, registration, config),
        )
    }
}

/// Runs once the executor is started and WSK registered: allocates the buffers and spawns the task.
fn serve(executor: &'static Executor, registration: &'static Registration, config: &Config) -> Result<(), NTSTATUS> {
    COUNTERS.reset();
    client::reset_stop();
    // One buffer for the report being sent, one for the receive that is always pending.
    let buffers = BufferPool::new(2, REPORT_BUFFER_SIZE).map_err(|e| e.status())?;
    CLIENT_TASK
        .spawn_detached(executor.spawner(), client::run(registration, buffers, *config))
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    kdprint!(
        DPFLTR_INFO_LEVEL,
        "report: reporting to {}:{} every {:?}, backoff {:?} to {:?}",
        config.host,
        config.port,
        config.interval,
        config.backoff_min,
        config.backoff_max
    );
    Ok(())
}

/// What DriverUnload does: the task stops wherever it is (the executor's shutdown drops it, which
/// cancels its pending IRP, closes its connection abortively and unlinks its timer), the driver
/// waits until every IRP completed, deregisters from WSK, stops the timers, frees its state and logs
/// the counters. It never waits on the server. Does nothing if no driver is loaded. PASSIVE_LEVEL.
pub fn stop() {
    if DRIVER.unload() {
        COUNTERS.set_phase(Phase::Idle);
        kdprint!(DPFLTR_INFO_LEVEL, "report: unloaded; {}", COUNTERS.snapshot());
    }
}

/// The counters now (after unload: their final values).
pub fn counters() -> crate::CounterSnapshot {
    COUNTERS.snapshot()
}

//! DriverEntry and DriverUnload, shared by the kernel build and the host program.
//!
//! The executor, the WSK registration and the device object are the `driver-state` crate's
//! ([`DriverSlot`]): it creates them before [`serve`] runs and tears them down at unload in the order
//! that makes lending the executor as `&'static` sound (its crate documentation says why).

use crate::config::{BUFFERS_PER_CONNECTION, Config};
use crate::counters::COUNTERS;
use crate::server::{self, ACCEPT_TASK, accept_loop};
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use core::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use driver_state::DriverSlot;
use executor::{Executor, block_on};
use nt::*;
use wsk_async::{BufferPool, Registration, WskError};

/// Pool tag of the driver's state: `Echo` in pool tools.
pub const TAG_DRIVER: ULONG = u32::from_le_bytes(*b"Echo");

/// The loaded driver's executor, registration and device object.
static DRIVER: DriverSlot = DriverSlot::new(TAG_DRIVER, "echo", request_stop);

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
    if !config.is_valid() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        DRIVER.load(
            driver,
            config.register_timeout,
            DriverUnload,
            |executor, registration| serve(executor, registration, config),
        )
    }
}

/// Runs once the executor is started and WSK registered: allocates the buffers, listens and spawns
/// the accept loop. On error, the driver state's teardown undoes whatever part of this was done.
fn serve(executor: &'static Executor, registration: &Registration, config: &Config) -> Result<(), NTSTATUS> {
    COUNTERS.reset();
    server::reset_stop();
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

/// What DriverUnload does: stops accepting and aborts every connection (the executor's shutdown
/// drops every task on its thread: the accept loop's drop closes the listener, each connection
/// task's drop cancels its pending IRP and closes its socket abortively), waits until every socket is
/// closed and every IRP completed, deregisters from WSK, stops the timers, frees the state and logs
/// the counters. It never waits on a peer: every close is abortive. Does nothing if no driver is
/// loaded. PASSIVE_LEVEL.
pub fn stop() {
    if DRIVER.unload() {
        kdprint!(DPFLTR_INFO_LEVEL, "echo: unloaded; {}", COUNTERS.snapshot());
    }
}

/// Called by every teardown before the executor's shutdown: the driver no longer listens, and busy
/// tasks stop at their next step.
fn request_stop() {
    PORT.store(0, Ordering::Release);
    server::request_stop();
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

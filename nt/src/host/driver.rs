//! Driver images and device objects: `nt::emu::driver::load` (the I/O manager loading a non-PnP
//! driver and calling its `DriverEntry`), `LoadedDriver::unload` (calling `DriverUnload`),
//! `IoCreateDevice` / `IoDeleteDevice`, references on device objects, and the check that no driver
//! routine runs in an image that is no longer mapped ([`Rule::RoutineAfterUnload`]).
//!
//! # The image model
//!
//! As on Windows, a loaded image is kept mapped by its `DRIVER_OBJECT`, and the driver object by
//! each of its device objects. A device object lives until it is deleted (`IoDeleteDevice`) *and*
//! its last reference (`ObfReferenceObject`, `IoSetCompletionRoutineEx`, `IoQueueWorkItem`) is
//! gone. So the image is unloaded (unmapped) once `DriverUnload` has returned (or `DriverEntry`
//! failed) and every device object of the driver is gone: that is the moment
//! [`image_unloaded`] turns true, and the moment at which a driver routine still running is
//! reported.
//!
//! # Which driver a routine belongs to
//!
//! Routines the emulation enters on a driver's behalf are tracked while they run:
//! * completion routines set with `IoSetCompletionRoutineEx` and work item routines belong to the
//!   driver of their device object (exact);
//! * plain completion routines, DPC routines and system threads carry no device object. On Windows
//!   their address says which image they are in; here every driver is linked into the host program,
//!   so no image has an address range of its own. They belong instead to the driver whose code armed
//!   them: whose code passed the IRP down (`IoCallDriver`), armed the timer (`KeSetTimerEx`) or
//!   created the thread (`PsCreateSystemThread`). The emulation knows which driver's code runs on a
//!   thread because it is the one that calls it: `DriverEntry`, `DriverUnload`, and every tracked
//!   routine (a system thread for its whole life) mark their thread as running that driver's code
//!   ([`arming_driver`]).
//! * Code that runs outside any driver routine (a test calling the library directly) arms routines
//!   for no driver in particular: they are attributed to the driver only when exactly one driver was
//!   loaded in the session, and with two or more they are not checked.
//!
//! With no driver loaded in a session none of this costs more than one atomic load per routine.

use super::heap::{Access, Class, Kind, heap};
use super::irql;
use super::verifier::{Rule, creation_site, violation};
use crate::types::*;
use core::ptr;
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Bytes of a `DEVICE_OBJECT` on x64 (`sizeof(DEVICE_OBJECT)` in `wdm.h`); the device extension
/// follows it. The emulated device object is zeroed memory of this size: drivers here treat the
/// structure as opaque.
const DEVICE_OBJECT_SIZE: usize = 0x150;
/// Device extensions are 16-byte aligned, like pool blocks.
const DEVICE_ALIGNMENT: usize = 16;

/// The service name the emulation gives the `n`th loaded driver (invented: Windows uses the name
/// of the service key `sc create` made).
fn service_name(n: u64) -> String {
    format!("nt-emu-driver-{n}")
}

/// Where a driver is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// `DriverEntry` is running.
    Entry,
    /// `DriverEntry` succeeded; not unloaded yet.
    Loaded,
    /// `DriverUnload` is running.
    Unloading,
    /// `DriverUnload` returned (or `DriverEntry` failed); the image stays mapped until every device
    /// object of the driver is gone.
    Released,
    /// The image is unmapped: nothing of the driver may run any more.
    Unmapped,
}

/// An owning pointer to an emulation-owned `DRIVER_OBJECT`, moved between threads under the
/// registry lock.
struct OwnedDriverObject(*mut DRIVER_OBJECT);
// SAFETY: a `Box` allocation, only freed (never, in fact: abandoned at session reset) under the
// registry lock; the kernel contract lets any thread use a driver object.
unsafe impl Send for OwnedDriverObject {}

/// A driver routine the emulation has entered and that has not returned yet.
struct Running {
    token: u64,
    what: &'static str,
    thread: String,
}

struct Driver {
    object: OwnedDriverObject,
    name: String,
    state: State,
    /// `LoadedDriver::unload` was called on a driver without `DriverUnload`: Windows refuses to
    /// unload such a driver, so the image stays.
    unload_refused: bool,
    /// Device objects of the driver not yet gone (deleted and unreferenced), in creation order.
    devices: Vec<usize>,
    running: Vec<Running>,
    /// The `DriverName` and registry path buffers (the registry path is poisoned after
    /// `DriverEntry`, but stays allocated so a stale read stays a read of host memory).
    _strings: Vec<Vec<u16>>,
    created: Option<Backtrace>,
}

/// A live device object.
struct Device {
    /// The driver object's address.
    driver: usize,
    deleted: bool,
    /// References beyond the one `IoCreateDevice` made (which `IoDeleteDevice` drops).
    references: usize,
}

pub(super) struct Registry {
    /// Bumped by every session reset; threads of an earlier session compare it and touch nothing.
    generation: u64,
    drivers: BTreeMap<usize, Driver>,
    devices: BTreeMap<usize, Device>,
    /// IRPs on which `IoSetCompletionRoutineEx` failed, not yet passed down.
    ex_failed: Vec<usize>,
    /// IRPs passed down by a driver's code with a plain completion routine, and that driver.
    plain_routines: BTreeMap<usize, DriverId>,
    next_token: u64,
    next_driver: u64,
    /// Driver objects of earlier sessions, never freed (their routines may still run).
    abandoned: Vec<OwnedDriverObject>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    generation: 0,
    drivers: BTreeMap::new(),
    devices: BTreeMap::new(),
    ex_failed: Vec::new(),
    plain_routines: BTreeMap::new(),
    next_token: 0,
    next_driver: 0,
    abandoned: Vec::new(),
});

/// Signalled when an image is unmapped (and by the work item module when a worker ends).
pub(super) static CHANGED: Condvar = Condvar::new();

/// Whether a driver was loaded in this session: the fast path of every check here.
static ANY_DRIVER: AtomicBool = AtomicBool::new(false);

/// The registry lock. Lock order: registry, then heap (never the other way round); no driver code
/// runs while it is held.
pub(super) fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether any driver was loaded in this session.
pub(super) fn any_driver() -> bool {
    ANY_DRIVER.load(Ordering::Acquire)
}

impl Registry {
    /// The current session's generation.
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether `device` is a device object that is not gone.
    pub(super) fn is_device(&self, device: usize) -> bool {
        self.devices.contains_key(&device)
    }

    /// Reports `function` on `device`, which is not a live device object: a use after free if it is
    /// a quarantined one, an unknown object otherwise.
    pub(super) fn report_not_device(&self, device: usize, function: &str) {
        let _ = heap().find(device, Class::Device, function, Access::Use);
    }

    /// Adds a reference to a live device object.
    pub(super) fn reference_device(&mut self, device: usize) {
        if let Some(d) = self.devices.get_mut(&device) {
            d.references += 1;
        }
    }

    /// Drops a reference added by [`Registry::reference_device`]; the device goes (and with it,
    /// perhaps, the image) when it is deleted and this was the last one. False if there was no such
    /// reference (the caller reports it).
    pub(super) fn dereference_device(&mut self, device: usize) -> bool {
        let Some(d) = self.devices.get_mut(&device) else {
            return false;
        };
        if d.references == 0 {
            return false;
        }
        d.references -= 1;
        if d.deleted && d.references == 0 {
            self.free_device(device);
        }
        true
    }

    /// The pointer count a reference call returns: the creation reference (until deleted) plus the
    /// others.
    fn pointer_count(&self, device: usize) -> LONG_PTR {
        self.devices
            .get(&device)
            .map_or(0, |d| (d.references + usize::from(!d.deleted)) as LONG_PTR)
    }

    /// The device object is deleted and unreferenced: frees its memory, unlinks it from its driver,
    /// and unmaps the image if it was the last thing keeping it.
    fn free_device(&mut self, device: usize) {
        let Some(d) = self.devices.remove(&device) else { return };
        heap().release(device, None);
        if let Some(driver) = self.drivers.get_mut(&d.driver) {
            driver.devices.retain(|&x| x != device);
        }
        self.maybe_unmap(d.driver);
    }

    /// Unmaps the image of `driver` if `DriverUnload` has returned and no device object of it is
    /// left; reports every routine of it still running at that moment.
    fn maybe_unmap(&mut self, driver: usize) {
        let Some(d) = self.drivers.get_mut(&driver) else { return };
        if d.state != State::Released || !d.devices.is_empty() {
            return;
        }
        d.state = State::Unmapped;
        for running in &d.running {
            violation(
                Rule::RoutineAfterUnload,
                &format_args!(
                    "the image of driver '{}' was unloaded while its {} was still running on thread '{}' (it returns into unmapped code)",
                    d.name, running.what, running.thread
                ),
                d.created.as_ref(),
            );
        }
        CHANGED.notify_all();
    }

    /// The driver a routine without a device object belongs to: the only driver of the session.
    fn sole_driver(&self) -> Option<usize> {
        if self.drivers.len() == 1 {
            self.drivers.keys().next().copied()
        } else {
            None
        }
    }

    /// Whether a driver of this session is loaded (its image is mapped).
    fn a_driver_is_mapped(&self) -> bool {
        self.drivers.values().any(|d| d.state != State::Unmapped)
    }

    /// Sets `DriverObject->DeviceObject` to the newest device not yet deleted (the head of the
    /// driver's device list, which Windows links through `DEVICE_OBJECT::NextDevice`).
    fn relink(&self, driver: usize) {
        let Some(d) = self.drivers.get(&driver) else { return };
        let head = d
            .devices
            .iter()
            .rev()
            .find(|&&x| self.devices.get(&x).is_some_and(|dev| !dev.deleted))
            .map_or(ptr::null_mut(), |&x| {
                ptr::with_exposed_provenance_mut::<DEVICE_OBJECT>(x)
            });
        // SAFETY: the driver object is emulation-owned and live (in the registry); the field is a
        // plain pointer the driver only reads.
        unsafe { ptr::addr_of_mut!((*d.object.0).DeviceObject).write(head) };
    }
}

/// A driver of a session, by identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct DriverId {
    key: usize,
    generation: u64,
}

thread_local! {
    /// The driver whose code the emulation is running on this thread (see the module documentation).
    static RUNNING_CODE_OF: Cell<Option<DriverId>> = const { Cell::new(None) };
}

/// The driver whose code is running on this thread, i.e. the driver a routine armed now belongs to;
/// `None` outside any driver's code.
pub(super) fn arming_driver() -> Option<DriverId> {
    RUNNING_CODE_OF.with(Cell::get)
}

/// Marks this thread as running `driver`'s code until dropped (then restores the previous mark).
struct RunningCodeOf(Option<DriverId>);

impl RunningCodeOf {
    fn enter(driver: DriverId) -> RunningCodeOf {
        RunningCodeOf(RUNNING_CODE_OF.with(|c| c.replace(Some(driver))))
    }
}

impl Drop for RunningCodeOf {
    fn drop(&mut self) {
        RUNNING_CODE_OF.with(|c| c.set(self.0));
    }
}

/// Who a routine belongs to.
#[derive(Clone, Copy)]
pub(super) enum Owner {
    /// The driver of this device object.
    Device(usize),
    /// The driver whose code armed it ([`arming_driver`] then); `None`: armed outside any driver's
    /// code, so the only driver of the session, if there is exactly one.
    ArmedBy(Option<DriverId>),
}

/// A driver routine the emulation has entered; leaving is dropping it.
pub(super) struct RoutineGuard {
    driver: usize,
    token: u64,
    generation: u64,
    _code: RunningCodeOf,
}

impl Drop for RoutineGuard {
    fn drop(&mut self) {
        let mut registry = registry();
        if registry.generation != self.generation {
            return;
        }
        if let Some(d) = registry.drivers.get_mut(&self.driver) {
            d.running.retain(|r| r.token != self.token);
        }
    }
}

/// The emulation is about to call `what` (a routine of a driver): reports a
/// [`Rule::RoutineAfterUnload`] if the driver's image is already unloaded, and tracks the routine
/// until the returned guard is dropped (right after the routine returned). `None` when no driver
/// owns it (see the module documentation).
pub(super) fn enter_routine(what: &'static str, owner: Owner) -> Option<RoutineGuard> {
    if !any_driver() {
        return None;
    }
    let mut registry = registry();
    let driver = match owner {
        Owner::Device(device) => registry.devices.get(&device).map(|d| d.driver)?,
        Owner::ArmedBy(Some(id)) if id.generation == registry.generation => id.key,
        Owner::ArmedBy(Some(_)) => return None,
        Owner::ArmedBy(None) => registry.sole_driver()?,
    };
    registry.next_token += 1;
    let token = registry.next_token;
    let generation = registry.generation;
    let d = registry.drivers.get_mut(&driver)?;
    if d.state == State::Unmapped {
        violation(
            Rule::RoutineAfterUnload,
            &format_args!(
                "{what} of driver '{}' entered after its image was unloaded (its code is no longer mapped)",
                d.name
            ),
            d.created.as_ref(),
        );
    }
    d.running.push(Running {
        token,
        what,
        thread: std::thread::current().name().unwrap_or("<unnamed>").to_string(),
    });
    Some(RoutineGuard {
        driver,
        token,
        generation,
        _code: RunningCodeOf::enter(DriverId {
            key: driver,
            generation,
        }),
    })
}

/// The owner of the plain completion routine `irp` was passed down with (see
/// [`check_unload_safe_routine`]), for the routine about to run.
pub(super) fn plain_routine_owner(irp: PIRP) -> Owner {
    if !any_driver() {
        return Owner::ArmedBy(None);
    }
    Owner::ArmedBy(registry().plain_routines.remove(&irp.addr()))
}

/// `IoSetCompletionRoutineEx` failed on `irp`: the next hand-over of it may use a plain completion
/// routine (the documented fallback).
pub(super) fn note_ex_failed(registry: &mut Registry, irp: PIRP) {
    if !registry.ex_failed.contains(&irp.addr()) {
        registry.ex_failed.push(irp.addr());
    }
}

/// `IoSetCompletionRoutineEx` succeeded on `irp`: forgets an earlier failure.
pub(super) fn forget_ex_failed(registry: &mut Registry, irp: PIRP) {
    registry.ex_failed.retain(|&x| x != irp.addr());
}

/// [`Rule::CompletionRoutineNotUnloadSafe`], checked when an IRP is handed to a lower driver
/// (`enter_provider`): while a driver of the session is loaded, the completion routine in the
/// location the lower driver now owns must have been set by `IoSetCompletionRoutineEx`, unless
/// `IoSetCompletionRoutineEx` failed on this IRP just before.
///
/// # Safety
/// `irp` is a live IRP just handed over (its current location is the lower driver's).
pub(super) unsafe fn check_unload_safe_routine(irp: PIRP) {
    if !any_driver() {
        return;
    }
    // SAFETY: forwarded from the caller's contract: the current location is inside the IRP.
    let (routine, context) = unsafe {
        let location = crate::IoGetCurrentIrpStackLocation(irp);
        ((*location).CompletionRoutine, (*location).Context)
    };
    let unload_safe = routine.is_some() && super::completion_ex::is_ex_context(context);
    let mut registry = registry();
    // Whose plain routine this is: the driver whose code passes the IRP down.
    match arming_driver() {
        Some(id) if routine.is_some() && !unload_safe => {
            registry.plain_routines.insert(irp.addr(), id);
        }
        _ => {
            registry.plain_routines.remove(&irp.addr());
        }
    }
    let excused = registry.ex_failed.contains(&irp.addr());
    registry.ex_failed.retain(|&x| x != irp.addr());
    // A kernel without a working IoSetCompletionRoutineEx (Wine's stub) leaves no other choice.
    let no_ex = super::exports::wine8_kernel();
    if routine.is_none() || unload_safe || excused || no_ex || !registry.a_driver_is_mapped() {
        return;
    }
    violation(
        Rule::CompletionRoutineNotUnloadSafe,
        &format_args!(
            "IRP {irp:p} passed down with a completion routine set by IoSetCompletionRoutine while a non-PnP driver is loaded: nothing keeps the image loaded until the routine has returned (use IoSetCompletionRoutineEx)"
        ),
        None,
    );
}

/// `IoCreateDevice`: PASSIVE_LEVEL. `DriverObject` must come from [`load`] and its image must be
/// mapped ([`Rule::UnknownObject`] otherwise). Creates a zeroed device object with a zeroed
/// extension of `DeviceExtensionSize` bytes, links it as `DriverObject->DeviceObject`, and stores it
/// in `*DeviceObject`. Fails with `STATUS_INSUFFICIENT_RESOURCES` under pool fault injection
/// ([`crate::emu::pool::fail_next`]), leaving `*DeviceObject` unwritten.
///
/// Differences from Windows: `DeviceName` is ignored (no object namespace is emulated, so a name
/// collision is never reported; unnamed devices are what this project creates), as are `DeviceType`,
/// `DeviceCharacteristics` and `Exclusive`.
///
/// # Safety
/// `DeviceObject` is valid for a write.
pub unsafe extern "system" fn IoCreateDevice(
    DriverObject: PDRIVER_OBJECT,
    DeviceExtensionSize: ULONG,
    DeviceName: PUNICODE_STRING,
    DeviceType: DEVICE_TYPE,
    DeviceCharacteristics: ULONG,
    Exclusive: BOOLEAN,
    DeviceObject: *mut PDEVICE_OBJECT,
) -> NTSTATUS {
    let _ = (DeviceName, DeviceType, DeviceCharacteristics, Exclusive);
    if !irql::require_max("IoCreateDevice", PASSIVE_LEVEL) {
        return STATUS_INVALID_PARAMETER;
    }
    if DeviceObject.is_null() {
        violation(Rule::InvalidParameter, &"IoCreateDevice with a NULL DeviceObject", None);
        return STATUS_INVALID_PARAMETER;
    }
    let created = creation_site();
    let mut registry = registry();
    let driver = DriverObject.addr();
    match registry.drivers.get(&driver).map(|d| d.state) {
        Some(State::Entry | State::Loaded | State::Unloading | State::Released) => {}
        Some(State::Unmapped) => {
            violation(
                Rule::UseAfterFree,
                &format_args!("IoCreateDevice on driver object {DriverObject:p}, whose image is unloaded"),
                None,
            );
            return STATUS_INVALID_PARAMETER;
        }
        None => {
            violation(
                Rule::UnknownObject,
                &format_args!(
                    "IoCreateDevice on {DriverObject:p}, which is no driver object of this session (load drivers with nt::emu::driver::load)"
                ),
                None,
            );
            return STATUS_INVALID_PARAMETER;
        }
    }
    let size = DEVICE_OBJECT_SIZE + (DeviceExtensionSize as usize).next_multiple_of(DEVICE_ALIGNMENT);
    let device = {
        let mut heap = heap();
        if heap.inject_failure(None) {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        match heap.allocate(size, DEVICE_ALIGNMENT, None, Kind::Device, created) {
            Some(p) => p.as_ptr().cast::<DEVICE_OBJECT>(),
            None => return STATUS_INSUFFICIENT_RESOURCES,
        }
    };
    // The registry finds the device object again by address only.
    let addr = device.expose_provenance();
    registry.devices.insert(
        addr,
        Device {
            driver,
            deleted: false,
            references: 0,
        },
    );
    if let Some(d) = registry.drivers.get_mut(&driver) {
        d.devices.push(addr);
    }
    registry.relink(driver);
    drop(registry);
    // SAFETY: forwarded from the caller's contract.
    unsafe { DeviceObject.write(device) };
    STATUS_SUCCESS
}

/// `IoDeleteDevice`: PASSIVE_LEVEL. Marks the device object deleted and drops the reference
/// `IoCreateDevice` made; it goes once the other references are gone too. A second delete
/// ([`Rule::DoubleFree`]) or a pointer that is no device object ([`Rule::UnknownObject`]) is
/// reported.
///
/// # Safety
/// `DeviceObject` was returned by `IoCreateDevice` and is not deleted yet.
pub unsafe extern "system" fn IoDeleteDevice(DeviceObject: PDEVICE_OBJECT) {
    if !irql::require_max("IoDeleteDevice", PASSIVE_LEVEL) {
        return;
    }
    let addr = DeviceObject.addr();
    let mut registry = registry();
    let Some(device) = registry.devices.get_mut(&addr) else {
        // Not live: the heap tells a freed one (double free) from an unknown pointer.
        let _ = heap().find(addr, Class::Device, "IoDeleteDevice", Access::Free);
        return;
    };
    if device.deleted {
        violation(
            Rule::DoubleFree,
            &format_args!(
                "IoDeleteDevice on device object {DeviceObject:p}, already deleted (still referenced {} time(s))",
                device.references
            ),
            None,
        );
        return;
    }
    device.deleted = true;
    let (driver, unreferenced) = (device.driver, device.references == 0);
    registry.relink(driver);
    if unreferenced {
        registry.free_device(addr);
    }
}

/// `ObfReferenceObject` on a device object: returns the new pointer count, or `None` if `object`
/// is no device object.
pub(super) fn reference_object(object: usize) -> Option<LONG_PTR> {
    if !any_driver() {
        return None;
    }
    let mut registry = registry();
    if !registry.is_device(object) {
        return None;
    }
    registry.reference_device(object);
    Some(registry.pointer_count(object))
}

/// `ObfDereferenceObject` on a device object: returns the new pointer count, or `None` if `object`
/// is no device object. Dropping a reference that was never taken is a [`Rule::UnknownObject`].
pub(super) fn dereference_object(object: usize) -> Option<LONG_PTR> {
    if !any_driver() {
        return None;
    }
    let mut registry = registry();
    if !registry.is_device(object) {
        return None;
    }
    if !registry.dereference_device(object) {
        violation(
            Rule::UnknownObject,
            &format_args!(
                "ObfDereferenceObject({object:#x}) on a device object without a reference to drop (the one IoCreateDevice made belongs to IoDeleteDevice)"
            ),
            None,
        );
        return Some(registry.pointer_count(object));
    }
    Some(registry.pointer_count(object))
}

/// Images that are still mapped, for the leak report.
pub(super) fn leaks(report: &mut super::leaks::LeakReport) {
    let registry = registry();
    for d in registry.drivers.values() {
        let why = match d.state {
            State::Unmapped => continue,
            State::Entry => "DriverEntry still running".to_string(),
            State::Loaded if d.unload_refused => {
                "unload refused: the driver sets no DriverUnload, so Windows cannot unload it".to_string()
            }
            State::Loaded => "never unloaded (LoadedDriver::unload was not called)".to_string(),
            State::Unloading => "DriverUnload still running".to_string(),
            State::Released => format!(
                "DriverUnload returned (or DriverEntry failed) but {} device object(s) of it are not deleted or still referenced",
                d.devices.len()
            ),
        };
        report.push(
            "driver image",
            format!("image of driver '{}' still loaded: {why}", d.name),
            d.created.as_ref(),
        );
    }
}

/// Forgets the drivers and devices of an earlier session (driver objects abandoned, not freed:
/// their routines may still run; device memory belongs to the heap, which abandons it too).
pub(super) fn reset() {
    let mut registry = registry();
    registry.generation += 1;
    let drivers = std::mem::take(&mut registry.drivers);
    registry.abandoned.extend(drivers.into_values().map(|d| d.object));
    registry.devices.clear();
    registry.ex_failed.clear();
    registry.plain_routines.clear();
    super::workitem::reset(registry.generation);
    ANY_DRIVER.store(false, Ordering::Release);
}

/// `DriverEntry`, as the I/O manager calls it.
pub type DriverEntry =
    unsafe extern "system" fn(DriverObject: PDRIVER_OBJECT, RegistryPath: *mut UNICODE_STRING) -> NTSTATUS;

/// A counted string over `buffer` (which must outlive its use).
fn counted(buffer: &mut [u16]) -> UNICODE_STRING {
    let bytes = (buffer.len() * 2) as USHORT;
    UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: buffer.as_mut_ptr(),
    }
}

/// Loads a (non-PnP) driver the way the I/O manager does for `sc start`: creates a zeroed
/// `DRIVER_OBJECT` (memory the emulation owns), then calls `entry(DriverObject, RegistryPath)` on the
/// calling thread, which must be at PASSIVE_LEVEL. On failure the driver object is discarded: no
/// `DriverUnload` is called, and any device object the failed `DriverEntry` left undeleted keeps the
/// image loaded and is reported as a leak at the end of the session, as Windows leaks it.
///
/// The registry path (`\REGISTRY\MACHINE\SYSTEM\CurrentControlSet\Services\<name>`, with an invented
/// service name) is valid only during `DriverEntry`, as documented; afterwards its buffer is
/// overwritten with `0xDDDD`.
pub fn load(entry: DriverEntry) -> Result<LoadedDriver, NTSTATUS> {
    load_entry(entry as PVOID, |object, registry_path| {
        // SAFETY: the driver's entry point, called as the I/O manager calls it: at PASSIVE_LEVEL,
        // with a live driver object and a registry path valid for the duration of the call.
        unsafe { entry(object, registry_path) }
    })
}

/// [`load`] with a closure in place of the `DriverEntry` function, for hosts and tests that pass
/// their own configuration to the driver's entry code (`DriverInit` stays NULL). The closure runs
/// exactly where `DriverEntry` would, with the same driver object and registry path.
pub fn load_with(
    entry: impl FnOnce(PDRIVER_OBJECT, *mut UNICODE_STRING) -> NTSTATUS,
) -> Result<LoadedDriver, NTSTATUS> {
    load_entry(ptr::null_mut(), entry)
}

fn load_entry(
    init: PVOID,
    entry: impl FnOnce(PDRIVER_OBJECT, *mut UNICODE_STRING) -> NTSTATUS,
) -> Result<LoadedDriver, NTSTATUS> {
    if !irql::require_max("DriverEntry (nt::emu::driver::load)", PASSIVE_LEVEL) {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let created = creation_site();
    // SAFETY: all-zero bytes are a valid DRIVER_OBJECT (integers, null pointers, `None` routines).
    let object = Box::into_raw(Box::new(unsafe { core::mem::zeroed::<DRIVER_OBJECT>() }));
    let (name, mut path, mut driver_name) = {
        let mut registry = registry();
        registry.next_driver += 1;
        let name = service_name(registry.next_driver);
        let path: Vec<u16> = format!("\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\{name}")
            .encode_utf16()
            .collect();
        let driver_name: Vec<u16> = format!("\\Driver\\{name}").encode_utf16().collect();
        (name, path, driver_name)
    };
    let mut registry_path = counted(&mut path);
    // SAFETY: `object` was just allocated and is not shared yet.
    unsafe {
        (*object).Type = IO_TYPE_DRIVER;
        (*object).Size = size_of::<DRIVER_OBJECT>() as CSHORT;
        (*object).DriverInit = init;
        (*object).DriverName = counted(&mut driver_name);
    }
    let key = object.expose_provenance();
    let generation = {
        let mut registry = registry();
        registry.drivers.insert(
            key,
            Driver {
                object: OwnedDriverObject(object),
                name: name.clone(),
                state: State::Entry,
                unload_refused: false,
                devices: Vec::new(),
                running: Vec::new(),
                _strings: Vec::new(),
                created,
            },
        );
        ANY_DRIVER.store(true, Ordering::Release);
        registry.generation
    };
    let status = {
        let _code = RunningCodeOf::enter(DriverId { key, generation });
        entry(object, &mut registry_path)
    };
    check_returned_at_passive("DriverEntry");
    path.fill(0xDDDD);
    let mut registry = registry();
    if registry.generation != generation {
        return Err(STATUS_UNSUCCESSFUL);
    }
    let Some(d) = registry.drivers.get_mut(&key) else {
        return Err(STATUS_UNSUCCESSFUL);
    };
    d._strings = vec![path, driver_name];
    if !NT_SUCCESS(status) {
        d.state = State::Released;
        registry.maybe_unmap(key);
        return Err(status);
    }
    d.state = State::Loaded;
    Ok(LoadedDriver {
        image: Image { key, generation },
    })
}

/// A driver routine the emulation called at PASSIVE_LEVEL must return there.
fn check_returned_at_passive(what: &str) {
    let now = irql::current();
    if now != PASSIVE_LEVEL {
        violation(
            Rule::IrqlMismatch,
            &format_args!("{what} was called at PASSIVE_LEVEL and returned at {}", irql::name(now)),
            None,
        );
        irql::set(PASSIVE_LEVEL);
    }
}

/// A driver whose `DriverEntry` succeeded. Unload it with [`LoadedDriver::unload`]; one still
/// loaded when the session ends is in the leak report.
#[derive(Debug)]
pub struct LoadedDriver {
    image: Image,
}

impl LoadedDriver {
    /// The driver object `DriverEntry` received.
    pub fn object(&self) -> PDRIVER_OBJECT {
        ptr::with_exposed_provenance_mut(self.image.key)
    }

    /// The image, to ask later whether it is unloaded.
    pub fn image(&self) -> Image {
        self.image
    }

    /// Unloads the driver as `sc stop` does: calls `DriverUnload` on the calling thread (which must be
    /// at PASSIVE_LEVEL) and returns when it has returned. The image is unmapped then, or later, once
    /// every device object of the driver is deleted and unreferenced ([`image_unloaded`],
    /// [`wait_image_unloaded`]). A driver without `DriverUnload` cannot be unloaded on Windows: the
    /// image then stays loaded, and the session's leak report names it.
    pub fn unload(self) {
        if !irql::require_max("DriverUnload (nt::emu::driver::LoadedDriver::unload)", PASSIVE_LEVEL) {
            return;
        }
        let key = self.image.key;
        let unload = {
            let mut registry = registry();
            if registry.generation != self.image.generation {
                return;
            }
            let Some(d) = registry.drivers.get_mut(&key) else {
                return;
            };
            // SAFETY: the driver object is live (in the registry); the driver wrote this field in
            // DriverEntry and no longer changes it.
            let unload = unsafe { (*d.object.0).DriverUnload };
            if unload.is_none() {
                d.unload_refused = true;
                return;
            }
            d.state = State::Unloading;
            unload
        };
        if let Some(unload) = unload {
            let _code = RunningCodeOf::enter(DriverId {
                key,
                generation: self.image.generation,
            });
            // SAFETY: the driver's unload routine, called as the I/O manager calls it: at
            // PASSIVE_LEVEL with its live driver object.
            unsafe { unload(self.object()) };
            check_returned_at_passive("DriverUnload");
        }
        let mut registry = registry();
        if registry.generation != self.image.generation {
            return;
        }
        if let Some(d) = registry.drivers.get_mut(&key) {
            d.state = State::Released;
        }
        registry.maybe_unmap(key);
    }

    /// [`unload`](Self::unload) on a thread of its own, as the I/O manager's (a new thread starts at
    /// PASSIVE_LEVEL), then [`wait_image_unloaded`]; returns how long both took (real time). For
    /// tests that must fail, not hang, when a driver's unload does not finish.
    ///
    /// # Panics
    /// If `DriverUnload` has not returned within `bound` (its thread is left blocked), or if the
    /// image is not unloaded within `bound` after that (a device object is still referenced).
    pub fn unload_within(self, bound: Duration) -> Duration {
        let started = Instant::now();
        let image = self.image;
        let (done, returned) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            self.unload();
            let _ = done.send(());
        });
        if returned.recv_timeout(bound).is_err() {
            // The usual cause in a test: bounded waits in DriverUnload (a timer, a polling
            // KeDelayExecutionThread, a KeWaitForSingleObject with a timeout) see no time pass.
            let paused = if super::clock::is_paused() {
                "; the emulated clock is paused, so its timed waits never end: resume it \
                 (emu::clock::resume) before unloading"
            } else {
                ""
            };
            panic!("DriverUnload did not return within {bound:?}{paused}");
        }
        assert!(
            wait_image_unloaded(&image, bound),
            "the image did not unload within {bound:?}: a device object is still referenced"
        );
        started.elapsed()
    }
}

/// A loaded driver image, by identity (copyable, valid after [`LoadedDriver::unload`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Image {
    key: usize,
    generation: u64,
}

impl Image {
    /// Whether the image is unloaded (unmapped). True too for an image of an earlier session.
    pub fn is_unloaded(&self) -> bool {
        image_unloaded(self)
    }

    /// Waits (in real time, at most `bound`) until the image is unloaded; returns whether it is.
    pub fn wait_unloaded(&self, bound: Duration) -> bool {
        wait_image_unloaded(self, bound)
    }
}

/// Whether the image is unloaded: `DriverUnload` returned (or `DriverEntry` failed) and every device
/// object of the driver is deleted and unreferenced.
pub fn image_unloaded(image: &Image) -> bool {
    let registry = registry();
    unloaded(&registry, image)
}

fn unloaded(registry: &Registry, image: &Image) -> bool {
    registry.generation != image.generation
        || registry
            .drivers
            .get(&image.key)
            .is_none_or(|d| d.state == State::Unmapped)
}

/// Waits (in real time, at most `bound`) until [`image_unloaded`]; returns whether it is.
pub fn wait_image_unloaded(image: &Image, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    let mut registry = registry();
    loop {
        if unloaded(&registry, image) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        registry = CHANGED
            .wait_timeout(registry, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// One unnamed device of a minimal non-PnP driver, for library tests that need a device object
/// (for `IoSetCompletionRoutineEx` or `IoAllocateWorkItem`) and nothing else. Dropping it deletes
/// the device and unloads its driver (its `DriverUnload` deletes the device).
///
/// Its driver is a driver of the session like any other: while it is loaded, plain completion
/// routines on IRPs passed down are reported ([`Rule::CompletionRoutineNotUnloadSafe`]), and if it is
/// the only driver of the session, the plain completion routines, DPCs and system threads the test
/// arms outside any driver's code count as its code ([`Rule::RoutineAfterUnload`]). So create it before, and drop it after,
/// everything that runs such code (declare it first in the test).
pub struct TestDevice {
    driver: Option<LoadedDriver>,
    image: Image,
    device: PDEVICE_OBJECT,
}

// SAFETY: a device object is a kernel object any thread may pass to the kernel; `TestDevice` only
// hands out the pointer and unloads the driver on drop (which the kernel allows from any thread at
// PASSIVE_LEVEL).
unsafe impl Send for TestDevice {}
// SAFETY: as for `Send`: `&TestDevice` only gives out the pointer.
unsafe impl Sync for TestDevice {}

unsafe extern "system" fn test_device_entry(
    DriverObject: PDRIVER_OBJECT,
    _RegistryPath: *mut UNICODE_STRING,
) -> NTSTATUS {
    let mut device = ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL in DriverEntry; `device` is valid for the write.
    let status = unsafe {
        IoCreateDevice(
            DriverObject,
            0,
            ptr::null_mut(),
            FILE_DEVICE_UNKNOWN,
            FILE_DEVICE_SECURE_OPEN,
            FALSE,
            &mut device,
        )
    };
    if NT_SUCCESS(status) {
        // SAFETY: the driver object is live during DriverEntry.
        unsafe { (*DriverObject).DriverUnload = Some(test_device_unload) };
    }
    status
}

unsafe extern "system" fn test_device_unload(DriverObject: PDRIVER_OBJECT) {
    // SAFETY: the driver object is live during DriverUnload; each pass deletes the head device, and
    // IoDeleteDevice moves the head to the next one.
    unsafe {
        while !(*DriverObject).DeviceObject.is_null() {
            IoDeleteDevice((*DriverObject).DeviceObject);
        }
    }
}

impl TestDevice {
    /// Loads a driver whose `DriverEntry` creates one unnamed `FILE_DEVICE_UNKNOWN` device. PASSIVE_LEVEL.
    ///
    /// # Panics
    /// If the device cannot be created (a pool failure was injected before the call): this is test
    /// scaffolding, not code under test.
    pub fn create() -> TestDevice {
        let driver = match load(test_device_entry) {
            Ok(driver) => driver,
            Err(status) => panic!("nt::emu::driver::TestDevice::create: DriverEntry failed with {status:#010x}"),
        };
        // SAFETY: the driver object is live while the driver is loaded.
        let device = unsafe { (*driver.object()).DeviceObject };
        TestDevice {
            image: driver.image(),
            driver: Some(driver),
            device,
        }
    }

    /// The device object.
    pub fn device(&self) -> PDEVICE_OBJECT {
        self.device
    }

    /// The image of the device's driver (unloaded once the device is dropped and unreferenced).
    pub fn image(&self) -> Image {
        self.image
    }
}

impl Drop for TestDevice {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            driver.unload();
        }
    }
}

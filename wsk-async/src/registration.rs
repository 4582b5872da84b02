//! [`Registration`]: this driver's attachment to the WSK subsystem, and the shared state every socket
//! refers to.
//!
//! The state ([`RegInner`]) lives in nonpaged pool: `WskRegister` requires the `WSK_REGISTRATION`
//! and the client NPI to stay put until `WskDeregister`, and sockets refer to it from completion
//! routines. It counts live socket contexts (what [`Registration::deregister`] waits for) separately
//! from the references that keep its memory alive (the handle's and one per context), so that a
//! completion routine can wake the deregistering task *while still holding* a reference.
//!
//! # The deferred closer (orphan list)
//!
//! A completion routine must not call back into WSK. Yet an accept (or a socket creation, or a
//! `WskSocketConnect`) can complete successfully after its future was dropped, or after its listener
//! or creating future is gone, producing a socket nobody will use; it must be closed, promptly: a
//! client that timed out a connect must not keep that TCP connection open until it connects again.
//! The routine keeps the slot (`op.rs`, `complete_op`), pushes it onto the registration's lock-free
//! orphan list (a push-only Treiber stack; the drainer takes the whole list with one swap, so there
//! is no ABA), wakes the registered waker and queues the registration's drain work item
//! (`IoQueueWorkItem` may be called at DISPATCH_LEVEL). The item's routine runs at PASSIVE_LEVEL on a
//! system worker thread and closes each socket with its slot's own IRP. The next `accept()`,
//! `listen()` or `connect()` poll and [`Registration::deregister`] drain the list too, whichever
//! comes first.
//!
//! Once the node is published, the drainer may close its socket, free its context, and — if that was
//! the last socket — deregister and free the registration, all before the pushing routine gets to
//! its wake. So `push_orphan` takes a memory reference on the registration *before* publishing and
//! drops it only after the wake: the same "wake while holding a reference" rule `socket_freed`
//! follows (the loom model `loom_push_orphan_races_deregister` checks both orders).
//!
//! # Unload: waiting for the code, not just the memory
//!
//! When the last socket is gone the memory is safe, but a completion routine may still be executing
//! this crate's code (its wake, its release, its return). Every routine is set with
//! `IoSetCompletionRoutineEx` on the registration's [`Device`], and every work item is queued on it,
//! so the I/O manager keeps the image loaded until each has returned (see `device.rs`).
//! Deregistration also waits, at PASSIVE_LEVEL, for the crate-wide active-completion count to read
//! zero, which covers the routines set by the fallback when `IoSetCompletionRoutineEx` had no pool;
//! see `quiesce.rs`.
//!
//! # Dropping instead of deregistering
//!
//! `Drop` cannot await. At PASSIVE_LEVEL it drains orphans and sleeps on a `KEVENT` (bounded steps)
//! that the last socket's release and every orphan push signal, until no socket is left; then it
//! deregisters. That blocks the dropping thread, so it must not be a thread whose progress the
//! remaining sockets need: see [`Registration`]'s documentation. Above PASSIVE_LEVEL it may not
//! block or call WSK, so it queues a work item that does the same at PASSIVE_LEVEL.

use crate::atomic_waker::AtomicWaker;
use crate::ctx::SocketCtx;
use crate::device::Device;
use crate::error::{Result, WskError};
use crate::op::Op;
use crate::pool_mem::{self, TAG_REGISTRATION};
use crate::sync::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use core::cell::UnsafeCell;
use core::future::Future;
use core::mem::MaybeUninit;
use core::pin::Pin;
use core::ptr::{self, NonNull};
use core::task::{Context, Poll};
use core::time::Duration;
use nt::*;

/// The client dispatch table: WSK 1.0, no client-level event callback.
static CLIENT_DISPATCH: WSK_CLIENT_DISPATCH = WSK_CLIENT_DISPATCH {
    Version: MAKE_WSK_VERSION(1, 0),
    Reserved: 0,
    WskClientEvent: None,
};

/// The registration's shared state. See the module documentation.
pub(crate) struct RegInner {
    /// Written by the provider (`WskRegister`, `WskDeregister`) while completion routines may hold a
    /// `&RegInner`: interior mutability, so such a reference never covers it.
    registration: UnsafeCell<WSK_REGISTRATION>,
    client: WSK_CLIENT_NPI,
    provider: WSK_PROVIDER_NPI,
    /// Memory references: the handle's + one per live socket context.
    refs: AtomicUsize,
    /// Live socket contexts (each one's IRPs are all completed once it is gone).
    sockets: AtomicUsize,
    /// The deregistering task (or whoever waits for sockets to go or orphans to appear).
    waker: AtomicWaker,
    orphans: AtomicPtr<Op>,
    /// Signalled (synchronization event) by the last socket's release and by every orphan push, for a
    /// blocking [`Registration`] drop. Initialised right after the state is written.
    event: UnsafeCell<MaybeUninit<KEVENT>>,
    /// The driver's device object, referenced for as long as this state lives: completion routines
    /// (`IoSetCompletionRoutineEx`) and work items name it, so the image stays loaded until each of
    /// them has returned (see `device.rs`).
    device: Device,
    /// The deferred closer's work item: queued by [`push_orphan`](Self::push_orphan) so that an orphaned
    /// socket is closed at PASSIVE_LEVEL right away, not at the next accept or deregistration.
    drain_item: PIO_WORKITEM,
    /// Whether `drain_item` is queued (set by the pusher that queues it, cleared by its routine
    /// before it drains, so a push after the clear queues it again and none is missed).
    drain_queued: AtomicBool,
    /// The work item that finishes a [`Registration`] dropped above PASSIVE_LEVEL (see `Drop`).
    teardown_item: PIO_WORKITEM,
    /// The provider's `WskSocketConnect` answered STATUS_NOT_IMPLEMENTED (Wine 8's stub): connects go
    /// straight to `WskSocket` + `WskBind` + `WskConnect` (see `connect.rs`).
    socket_connect_missing: AtomicBool,
    /// The state's own address with the pool block's provenance: what contexts keep, and what
    /// releases and work items use. A pointer made from a `&RegInner` would carry a shared
    /// reference's permissions, which the provider's writes into `registration` invalidate and
    /// which a final release (a write: the drop and free) never had.
    this: NonNull<RegInner>,
}

impl RegInner {
    pub(crate) fn provider(&self) -> &WSK_PROVIDER_NPI {
        &self.provider
    }

    /// The provider's client-level function table.
    pub(crate) fn dispatch(&self) -> &WSK_PROVIDER_DISPATCH {
        // SAFETY: captured by `WskCaptureProviderNPI` and valid until `WskReleaseProviderNPI`, which
        // happens only after every socket context is gone.
        unsafe { &*self.provider.Dispatch }
    }

    /// Whether `WskSocketConnect` turned out to be a stub (see `connect.rs`).
    pub(crate) fn socket_connect_missing(&self) -> bool {
        self.socket_connect_missing.load(Ordering::Relaxed)
    }

    /// Remembers that `WskSocketConnect` is a stub, for every later connect.
    pub(crate) fn set_socket_connect_missing(&self) {
        self.socket_connect_missing.store(true, Ordering::Relaxed);
    }

    pub(crate) fn socket_created(&self) {
        self.refs.fetch_add(1, Ordering::Relaxed);
        self.sockets.fetch_add(1, Ordering::AcqRel);
    }

    /// A socket context was freed (any IRQL <= DISPATCH_LEVEL): wake the waiter if it was the last,
    /// *then* drop the context's memory reference.
    ///
    /// # Safety
    /// `this` is alive and the caller gives up one context reference.
    pub(crate) unsafe fn socket_freed(this: NonNull<RegInner>) {
        // SAFETY: the context's reference keeps the state alive until the final release below.
        unsafe {
            let inner = this.as_ref();
            if inner.sockets.fetch_sub(1, Ordering::AcqRel) == 1 {
                inner.waker.wake();
                inner.signal();
            }
            Self::release(this);
        }
    }

    /// This state's address, with the allocation's provenance (see the field).
    pub(crate) fn this(&self) -> NonNull<RegInner> {
        self.this
    }

    /// The device object that completion routines and work items reference.
    pub(crate) fn device(&self) -> PDEVICE_OBJECT {
        self.device.as_raw()
    }

    /// Drops one memory reference; the last one frees the work items and the state, and drops the
    /// device reference. Any IRQL <= DISPATCH_LEVEL: the last reference may be a completion routine's
    /// or the drain work item's own (freeing a work item from its routine is allowed: the I/O manager
    /// dequeued it before the call, and its own device reference keeps the image until the return).
    ///
    /// # Safety
    /// `this` is alive and the caller gives up one reference.
    unsafe fn release(this: NonNull<RegInner>) {
        // SAFETY: the caller's reference keeps the state alive for the RMW; the last one frees it.
        unsafe {
            if this.as_ref().refs.fetch_sub(1, Ordering::AcqRel) == 1 {
                Self::free(this);
            }
        }
    }

    /// Frees the work items and the state (dropping the device reference with it).
    ///
    /// # Safety
    /// No reference to the state is left; neither work item is queued (each queued item holds a
    /// reference).
    unsafe fn free(this: NonNull<RegInner>) {
        // SAFETY: forwarded from the caller's contract; the items were allocated by `register_only`.
        unsafe {
            let inner = this.as_ref();
            for item in [inner.drain_item, inner.teardown_item] {
                if !item.is_null() {
                    IoFreeWorkItem(item);
                }
            }
            ptr::drop_in_place(this.as_ptr());
            pool_mem::free(this, TAG_REGISTRATION);
        }
    }

    /// Pushes a slot its completion routine kept because it holds a socket nobody will read (from
    /// that routine, any CPU, IRQL <= DISPATCH_LEVEL), or a resolution's unread list that
    /// `Op::dispose_unread` could not free above PASSIVE_LEVEL, wakes the waiter and queues the
    /// drain work item. The slot's kernel reference on its context moves to the list.
    ///
    /// Once the CAS publishes the node, a drainer may close the socket, free the context (and with it
    /// the context's reference on this state) and finish deregistering: so a memory reference is
    /// taken *before* the publication and dropped only after the wake and the signal (DISPATCH-safe).
    ///
    /// # Safety
    /// `this` is the registration of `node`'s context; `node` is a kept slot with an unread socket
    /// (`KERNEL` still set), exclusively owned by the caller, whose kernel reference on the context
    /// (which keeps `this` alive until the publication) the caller gives up to the list. Neither is
    /// used by the caller afterwards.
    ///
    /// A context has one link, so a context already in the list is refused
    /// ([`SocketCtx::mark_orphan_queued`]; a failed assertion in debug builds). Then the kernel's
    /// reference is kept by nobody, on purpose: the context stays alive rather than being freed while
    /// the list may still link it, and the leak shows at unload (deregistration waits for it).
    pub(crate) unsafe fn push_orphan(this: NonNull<RegInner>, node: *const Op) {
        // SAFETY: the context's reference on the registration keeps it alive until the CAS; the
        // reference taken first keeps it alive from then until the release at the end.
        unsafe {
            if !(*node).ctx().mark_orphan_queued() {
                return;
            }
            let inner = this.as_ref();
            // Relaxed suffices, as for any clone of an owned reference: the CAS below (Release)
            // orders it before every decrement a drainer's chain can make.
            inner.refs.fetch_add(1, Ordering::Relaxed);
            let mut head = inner.orphans.load(Ordering::Relaxed);
            loop {
                // The slot is exclusively ours (kept: KERNEL set, nobody else may touch it) until the CAS below
                // publishes it.
                (*node).orphan_link().with_mut(|p| *p = head);
                match inner
                    .orphans
                    .compare_exchange_weak(head, node.cast_mut(), Ordering::AcqRel, Ordering::Relaxed)
                {
                    Ok(_) => break,
                    Err(actual) => head = actual,
                }
            }
            // `node` may be freed from here on; `inner` is ours until the release.
            inner.waker.wake();
            inner.signal();
            inner.queue_drain(this);
            Self::release(this);
        }
    }

    /// Queues the drain work item unless it is queued already (any IRQL <= DISPATCH_LEVEL). The
    /// queued item holds a memory reference, which its routine drops. The caller holds a reference.
    fn queue_drain(&self, this: NonNull<RegInner>) {
        if self.drain_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        self.refs.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the item belongs to this state, which the reference just taken keeps alive until
        // the routine has run; `drain_queued` was clear, so the item is not queued (its routine may be
        // running, after its dequeue, which allows queueing it again).
        #[cfg(not(loom))]
        unsafe {
            IoQueueWorkItem(
                self.drain_item,
                Some(drain_work),
                DelayedWorkQueue,
                this.as_ptr().cast(),
            )
        };
        #[cfg(loom)]
        {
            let _ = this;
            self.drain_queued.store(false, Ordering::Release);
            self.refs.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Signals the blocking dropper's event (any IRQL <= DISPATCH_LEVEL). The caller holds a memory
    /// reference on the state.
    fn signal(&self) {
        // SAFETY: the event was initialised by `register_only` and lives as long as the state; a
        // KEVENT is made to be signalled from any CPU (the kernel serialises access to it).
        #[cfg(not(loom))]
        unsafe {
            KeSetEvent(self.event.get().cast::<KEVENT>(), 0, FALSE)
        };
    }

    /// Closes the sockets of every orphaned slot and frees the late lists of dropped resolutions
    /// (never from a completion routine). Above PASSIVE_LEVEL it does nothing: `WskFreeAddressInfo`
    /// requires PASSIVE_LEVEL, and a non-empty list always has the drain work item queued (every push
    /// queues it, and its routine clears `drain_queued` before it drains), which does it there.
    pub(crate) fn drain_orphans(&self) {
        if KeGetCurrentIrql() > PASSIVE_LEVEL {
            return;
        }
        let mut node = self.orphans.swap(ptr::null_mut(), Ordering::AcqRel).cast_const();
        while let Some(op) = NonNull::new(node.cast_mut()) {
            // SAFETY: the list's reference keeps the slot's context alive; the slot was kept by its
            // completion routine (still KERNEL-owned) and is exclusively the drainer's.
            unsafe {
                let op = op.as_ref();
                node = op.orphan_link().with(|p| *p);
                // The link is read: give it back before the close below restarts the slot.
                op.ctx().clear_orphan_queued();
                op.close_kept_socket();
                // The close submitted above holds its own reference; drop the list's.
                SocketCtx::release(op.ctx_ptr());
            }
        }
    }

    pub(crate) fn live_sockets(&self) -> usize {
        self.sockets.load(Ordering::Acquire)
    }
}

/// The drain work item's routine (PASSIVE_LEVEL, a system worker thread): closes the orphans' sockets
/// and drops the reference the queueing took.
///
/// # Safety
/// Called by the I/O manager for an item queued by [`RegInner::queue_drain`], with `context` the state.
#[cfg(not(loom))]
unsafe extern "system" fn drain_work(_device: PDEVICE_OBJECT, context: PVOID) {
    // SAFETY: the queued item's reference keeps the state alive until the release below.
    unsafe {
        let this = NonNull::new_unchecked(context.cast::<RegInner>());
        let inner = this.as_ref();
        // Clear before draining: a push from now on queues the item again, and one published before
        // is taken by the drain below.
        inner.drain_queued.store(false, Ordering::SeqCst);
        inner.drain_orphans();
        RegInner::release(this);
    }
}

/// The teardown work item's routine (PASSIVE_LEVEL): finishes a [`Registration`] dropped above
/// PASSIVE_LEVEL by dropping it again here, where its blocking drop may wait.
///
/// # Safety
/// Called by the I/O manager for the item `Registration::drop` queued, with `context` the state, whose
/// handle reference (of a captured registration) the queueing handed over.
#[cfg(not(loom))]
unsafe extern "system" fn teardown_work(_device: PDEVICE_OBJECT, context: PVOID) {
    // SAFETY: the handed-over handle reference (caller's contract).
    let registration = Registration {
        inner: unsafe { NonNull::new_unchecked(context.cast::<RegInner>()) },
        captured: true,
    };
    drop(registration);
}

/// This driver's registration with the WSK subsystem (`WskRegister` + `WskCaptureProviderNPI`), the
/// factory of listeners and connections.
///
/// Sockets do not borrow the registration (a task can own them), but they keep its state alive;
/// [`deregister`](Self::deregister) waits until every socket is closed and every IRP completed, then
/// calls `WskReleaseProviderNPI` and `WskDeregister`.
///
/// # Sockets nobody will use (the deferred closer)
///
/// A completion routine must not call back into WSK, yet an accept or a `listen`/`connect` socket
/// creation can complete successfully after its future was dropped, producing a socket nobody will
/// use. The completion routine then hands the operation to this registration's deferred closer: a
/// lock-free orphan list and a work item that closes each such socket at PASSIVE_LEVEL right away,
/// with the operation's own IRP (see the module documentation).
///
/// Leaking a socket or a pending future with `mem::forget` leaks its socket: `deregister` then waits
/// forever, as `WskDeregister` would.
///
/// # Where to deregister (and where not to drop)
///
/// [`deregister`](Self::deregister) waits without blocking; dropping the registration (or a pending
/// [`Deregister`] future) instead **blocks** the dropping thread until every socket is closed (see
/// `Drop`). That deadlocks if the sockets still alive belong to tasks of the executor whose thread
/// is the one blocked — typically when a task owning the registration (or awaiting `deregister()`)
/// is dropped by `Executor::shutdown` before the tasks owning its sockets. The safe shape, which the
/// echo driver follows: keep the registration outside the executor's tasks, shut the executor down
/// first (that drops every task, closing their sockets), then `block_on(registration.deregister())`
/// (or drop it) from DriverUnload. A blocking drop that makes no progress for 10 s logs a warning
/// naming this deadlock (`DbgPrintEx`, warning level); it cannot be prevented from here, because
/// neither WSK call may be made from the completion routine that frees the last socket.
///
/// ```
/// # let _session = nt::emu::session();
/// # let _net = nt::emu::wsk::MemoryNetwork::install();
/// use wsk_async::Registration;
/// executor::block_on(async {
/// # let _test_device = nt::emu::driver::TestDevice::create();
/// # let device = unsafe { wsk_async::Device::from_raw(_test_device.device()) }.unwrap();
///     let registration = Registration::register(&device).await?;
///     // ... listen, accept, connect ...
///     registration.deregister().await;
///     Ok::<(), wsk_async::WskError>(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
pub struct Registration {
    inner: NonNull<RegInner>,
    /// `WskCaptureProviderNPI` succeeded: the teardown owes one `WskReleaseProviderNPI`. A
    /// registration dropped before that (a `register()` future dropped between its retries) only
    /// deregisters.
    captured: bool,
}

// SAFETY: the state is shared through atomics; the WSK registration calls may be made from any thread.
unsafe impl Send for Registration {}
// SAFETY: `&Registration` only creates sockets (atomics and WSK calls, both thread-safe).
unsafe impl Sync for Registration {}

/// How long [`Registration::register`] keeps retrying `WskCaptureProviderNPI` before giving up.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

impl Registration {
    /// Registers (`WskRegister`) and captures the provider NPI without blocking: it retries
    /// `WskCaptureProviderNPI(WSK_NO_WAIT)` with a timer backoff (10 ms doubling to 500 ms) until the
    /// WSK subsystem is ready, for at most [`REGISTER_TIMEOUT`]; then fails with the last status
    /// (`STATUS_DEVICE_NOT_READY`). Call it from a task (it uses the executor's timers), not from
    /// DriverEntry directly — or use [`register_blocking`](Self::register_blocking) there.
    ///
    /// `device` is a device object of this driver: every completion routine and work item of this
    /// registration references it, so the driver's image stays loaded until each has returned (see
    /// [`Device`]). Dropping the future between retries deregisters without releasing a provider NPI
    /// it never captured.
    #[cfg(not(loom))] // the executor's timers are not built for the loom model
    pub async fn register(device: &Device) -> Result<Self> {
        let mut this = Self::register_only(device)?;
        let mut delay = Duration::from_millis(10);
        let mut waited = Duration::ZERO;
        loop {
            match this.capture(WSK_NO_WAIT) {
                Ok(()) => return Ok(this),
                Err(e) if e.status() == STATUS_DEVICE_NOT_READY && waited < REGISTER_TIMEOUT => {
                    executor::sleep(delay).await;
                    waited += delay;
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Registers and captures the provider NPI, waiting at most `timeout` (rounded to milliseconds)
    /// for the WSK subsystem: a bounded `WskCaptureProviderNPI(timeout_ms)`. PASSIVE_LEVEL; suitable
    /// for DriverEntry with a short timeout. `device` as for [`register`](Self::register).
    pub fn register_blocking(device: &Device, timeout: Duration) -> Result<Self> {
        let mut this = Self::register_only(device)?;
        let ms = timeout.as_millis().min(u128::from(WSK_INFINITE_WAIT - 1)) as ULONG;
        this.capture(ms)?;
        Ok(this)
    }

    /// Allocates the state and its two work items and calls `WskRegister`. The handle it returns is
    /// not captured yet: dropping it only deregisters.
    fn register_only(device: &Device) -> Result<Self> {
        let block = pool_mem::allocate::<RegInner>(TAG_REGISTRATION).ok_or(WskError::NO_RESOURCES)?;
        // SAFETY: IRQL <= DISPATCH_LEVEL; the device is referenced by `device`.
        let (drain_item, teardown_item) =
            unsafe { (IoAllocateWorkItem(device.as_raw()), IoAllocateWorkItem(device.as_raw())) };
        // SAFETY: fresh pool memory for one RegInner; it does not move until freed, as WSK requires.
        unsafe {
            block.as_ptr().write(RegInner {
                registration: UnsafeCell::new(WSK_REGISTRATION::zeroed()),
                client: WSK_CLIENT_NPI {
                    ClientContext: ptr::null_mut(),
                    Dispatch: &CLIENT_DISPATCH,
                },
                provider: WSK_PROVIDER_NPI::zeroed(),
                refs: AtomicUsize::new(1),
                sockets: AtomicUsize::new(0),
                waker: AtomicWaker::new(),
                orphans: AtomicPtr::new(ptr::null_mut()),
                // Zeroed, not uninit: the storage is what KeInitializeEvent receives (the emulation's
                // use-after-free check reads the header before initialising it).
                event: UnsafeCell::new(MaybeUninit::zeroed()),
                device: device.clone(),
                drain_item,
                drain_queued: AtomicBool::new(false),
                socket_connect_missing: AtomicBool::new(false),
                teardown_item,
                this: block,
            });
            if drain_item.is_null() || teardown_item.is_null() {
                // Nothing is queued or registered: free what was allocated.
                RegInner::free(block);
                return Err(WskError::NO_RESOURCES);
            }
            let inner = block.as_ptr();
            KeInitializeEvent((*inner).event.get().cast::<KEVENT>(), SynchronizationEvent, FALSE);
            let status = WskRegister(ptr::addr_of_mut!((*inner).client), (*inner).registration.get());
            if !NT_SUCCESS(status) {
                RegInner::release(block);
                return Err(WskError::from_status(status));
            }
        }
        Ok(Self {
            inner: block,
            captured: false,
        })
    }

    /// `WskCaptureProviderNPI`; on success the handle owes a release.
    fn capture(&mut self, wait_ms: ULONG) -> Result<()> {
        let inner = self.inner.as_ptr();
        // SAFETY: registered above; the provider NPI storage is ours until release.
        let status = unsafe {
            WskCaptureProviderNPI(
                (*inner).registration.get(),
                wait_ms,
                ptr::addr_of_mut!((*inner).provider),
            )
        };
        WskError::check(status)?;
        self.captured = true;
        Ok(())
    }

    /// `WskReleaseProviderNPI` (if captured) + `WskDeregister`, then drops the handle's reference.
    fn teardown(self) {
        let inner = self.inner;
        let captured = self.captured;
        core::mem::forget(self);
        // SAFETY: the handle's reference keeps the state alive; registered, and captured if told so.
        unsafe {
            let registration = (*inner.as_ptr()).registration.get();
            if captured {
                WskReleaseProviderNPI(registration);
            }
            WskDeregister(registration);
            RegInner::release(inner);
        }
    }

    pub(crate) fn inner(&self) -> &RegInner {
        // SAFETY: the handle holds a reference.
        unsafe { self.inner.as_ref() }
    }

    /// Detaches from WSK (rule 8 of the design): closes sockets orphaned by dropped handles, waits until
    /// every socket of this registration is closed and every IRP completed (drop or close the
    /// listeners and connections — dropping a task drops them), then until no completion routine of
    /// this crate is still running (a short blocking poll at PASSIVE_LEVEL, 1 ms steps: the routine
    /// that freed the last socket may still be on its way out; see `quiesce.rs` for the residual
    /// window), then `WskReleaseProviderNPI` and `WskDeregister`. Never fails.
    pub fn deregister(self) -> Deregister {
        Deregister {
            registration: Some(self),
        }
    }

    /// The number of sockets (listeners, connections, sockets being created or closed) still alive,
    /// counting each name resolution in flight as one (its IRP and request live in a context too).
    pub fn live_sockets(&self) -> usize {
        self.inner().live_sockets()
    }

    /// The `KEVENT` a blocking drop sleeps on between drains, for tests that must act exactly while
    /// the drop waits (the emulation reports the threads waiting on an object). Not an API.
    #[doc(hidden)]
    pub fn blocking_drop_event(&self) -> *const core::ffi::c_void {
        self.inner().event.get().cast_const().cast()
    }
}

impl Drop for Registration {
    /// Dropping without [`deregister`](Self::deregister) at PASSIVE_LEVEL **blocks** the dropping
    /// thread until every socket is closed: it drains the orphan list and sleeps on the
    /// registration's event (signalled by the last socket's release and by every orphan push, so an
    /// orphan that arrives late is still closed), then waits for running completion routines, then
    /// calls `WskReleaseProviderNPI` + `WskDeregister`. Prefer `deregister().await`; see the type's
    /// documentation for the threads this must not run on.
    ///
    /// Above PASSIVE_LEVEL (a drop at DISPATCH_LEVEL, e.g. of a future holding the registration,
    /// dropped under a spin lock) it neither blocks nor calls WSK: it queues the registration's
    /// teardown work item, whose routine does the same at PASSIVE_LEVEL on a system worker thread,
    /// and returns at once. The work item references the driver's device object, so the image stays
    /// loaded until that routine has returned; the driver's unload must still delete its device
    /// object only after everything it registered is gone, as always. A registration whose provider
    /// NPI was never captured (a dropped `register()`) has no sockets: its drop only deregisters.
    fn drop(&mut self) {
        let this = Registration {
            inner: self.inner,
            captured: self.captured,
        };
        if !this.captured {
            this.teardown();
            return;
        }
        if KeGetCurrentIrql() > PASSIVE_LEVEL {
            #[cfg(not(loom))]
            {
                let inner = this.inner;
                core::mem::forget(this);
                // SAFETY: the teardown item is this state's and queued only here (a handle is dropped
                // once); the handle reference moves to the routine, which keeps the state alive.
                unsafe {
                    IoQueueWorkItem(
                        inner.as_ref().teardown_item,
                        Some(teardown_work),
                        DelayedWorkQueue,
                        inner.as_ptr().cast(),
                    )
                };
                return;
            }
        }
        this.wait_for_sockets_blocking();
        crate::quiesce::wait_idle();
        this.teardown();
    }
}

/// The step of [`Registration::wait_for_sockets_blocking`]'s wait, in 100 ns units (relative): 100 ms.
/// The event makes the wait prompt; the step only bounds each sleep.
const DROP_WAIT_STEP_100NS: i64 = -1_000_000;

/// Consecutive timed-out steps without any socket closed after which a blocking drop logs that it
/// may be deadlocked (10 s).
const DROP_STALL_WARNING_STEPS: u32 = 100;

impl Registration {
    /// `Drop`'s wait: drain orphans; sleep on the event; until no socket is left (PASSIVE_LEVEL).
    fn wait_for_sockets_blocking(&self) {
        let inner = self.inner();
        let mut last = usize::MAX;
        // Consecutive 100 ms waits that timed out with no socket closed.
        let mut stalled = 0u32;
        loop {
            inner.drain_orphans();
            let live = inner.live_sockets();
            if live == 0 {
                return;
            }
            if live != last {
                last = live;
                stalled = 0;
            }
            let mut step = LARGE_INTEGER {
                QuadPart: DROP_WAIT_STEP_100NS,
            };
            // SAFETY: PASSIVE_LEVEL (a drop of the registration handle, documented); the event is
            // initialised and lives as long as the state, which our handle reference keeps alive.
            #[cfg(not(loom))]
            let status =
                unsafe { KeWaitForSingleObject(inner.event.get().cast(), Executive, KernelMode, FALSE, &mut step) };
            #[cfg(loom)]
            let status = {
                let _ = &mut step;
                STATUS_TIMEOUT
            };
            if status == STATUS_TIMEOUT && inner.live_sockets() == last {
                stalled = stalled.saturating_add(1);
                if stalled == DROP_STALL_WARNING_STEPS {
                    // The one deadlock this wait can cause: the sockets belong to tasks of the
                    // executor whose thread is the one blocked here.
                    nt::kdprint!(
                        DPFLTR_WARNING_LEVEL,
                        "wsk-async: Registration dropped with {} socket(s) alive and none closed for 10 s; \
                         if their tasks run on this thread, this is a deadlock: deregister after the \
                         executor has shut down",
                        last
                    );
                }
            }
        }
    }
}

/// The future of [`Registration::deregister`].
pub struct Deregister {
    registration: Option<Registration>,
}

impl Future for Deregister {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(registration) = self.registration.as_ref() else {
            return Poll::Ready(());
        };
        let inner = registration.inner();
        inner.waker.register(cx.waker());
        inner.drain_orphans();
        if inner.live_sockets() != 0 {
            return Poll::Pending;
        }
        // No socket left, so no IRP of ours pending; wait until the routines that completed them
        // have returned (at most a few instructions each: a short blocking poll at PASSIVE_LEVEL).
        crate::quiesce::wait_idle();
        if let Some(registration) = self.registration.take() {
            registration.teardown();
        }
        Poll::Ready(())
    }
}

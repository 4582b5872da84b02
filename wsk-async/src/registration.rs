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
//! A completion routine must not call back into WSK. Yet an accept (or a socket creation) can
//! complete successfully after its listener (or its creating future) was dropped, producing a socket
//! nobody will use; it must be closed. The routine pushes the operation slot onto the registration's
//! lock-free orphan list (a push-only Treiber stack; the drainer takes the whole list with one swap,
//! so there is no ABA) and wakes the registered waker. The list is drained, and each socket closed
//! with its slot's own IRP, at PASSIVE_LEVEL by the next `accept()`, `listen()` or `connect()` poll
//! on this registration and by [`Registration::deregister`], which cannot finish before every socket
//! is closed anyway.
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
//! this crate's code (its wake, its release, its return). Deregistration therefore also waits, at
//! PASSIVE_LEVEL, for the crate-wide active-completion count to read zero; see `quiesce.rs` for what
//! that covers and the residual window (the routine's final `ret`) it cannot.
//!
//! # Dropping instead of deregistering
//!
//! `Drop` cannot await. It drains orphans and sleeps on a `KEVENT` (bounded steps) that the last
//! socket's release and every orphan push signal, until no socket is left; then it deregisters. That
//! blocks the dropping thread, so it must not be a thread whose progress the remaining sockets need:
//! see [`Registration`]'s documentation.

use crate::atomic_waker::AtomicWaker;
use crate::ctx::SocketCtx;
use crate::error::{Result, WskError};
use crate::op::Op;
use crate::pool_mem::{self, TAG_REGISTRATION};
use crate::sync::{AtomicPtr, AtomicUsize, Ordering};
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
    registration: WSK_REGISTRATION,
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

    /// # Safety
    /// `this` is alive and the caller gives up one reference.
    unsafe fn release(this: NonNull<RegInner>) {
        // SAFETY: the caller's reference keeps the state alive for the RMW; the last one frees it.
        unsafe {
            if this.as_ref().refs.fetch_sub(1, Ordering::AcqRel) == 1 {
                ptr::drop_in_place(this.as_ptr());
                pool_mem::free(this, TAG_REGISTRATION);
            }
        }
    }

    /// Pushes an orphaned slot holding an unread socket (from a completion routine, any CPU, IRQL <=
    /// DISPATCH_LEVEL) and wakes the waiter. The slot's kernel reference on its context moves to the
    /// list.
    ///
    /// Once the CAS publishes the node, a drainer may close the socket, free the context (and with it
    /// the context's reference on this state) and finish deregistering: so a memory reference is
    /// taken *before* the publication and dropped only after the wake and the signal (DISPATCH-safe).
    ///
    /// # Safety
    /// `this` is the registration of `node`'s context; `node` is an orphaned slot with an unread
    /// socket, exclusively owned by the caller, whose kernel reference on the context (which keeps
    /// `this` alive until the publication) the caller gives up to the list. Neither is used by the
    /// caller afterwards.
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
                // The slot is exclusively ours (orphaned, no future, kernel done) until the CAS below
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
            Self::release(this);
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

    /// Closes the sockets of every orphaned slot (PASSIVE_LEVEL; never from a completion routine).
    pub(crate) fn drain_orphans(&self) {
        let mut node = self.orphans.swap(ptr::null_mut(), Ordering::AcqRel).cast_const();
        while let Some(op) = NonNull::new(node.cast_mut()) {
            // SAFETY: the list's reference keeps the slot's context alive; the slot is exclusively the
            // drainer's (orphaned, no future, kernel done).
            unsafe {
                let op = op.as_ref();
                node = op.orphan_link().with(|p| *p);
                // The link is read: give it back before the disposal below restarts the slot.
                op.ctx().clear_orphan_queued();
                op.dispose_unread();
                // The close submitted above holds its own reference; drop the list's.
                SocketCtx::release(op.ctx_ptr());
            }
        }
    }

    pub(crate) fn live_sockets(&self) -> usize {
        self.sockets.load(Ordering::Acquire)
    }
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
/// A completion routine must not call back into WSK, yet an accept (or a `listen`/`connect` socket
/// creation) can complete successfully after its listener (or its creating future) was dropped,
/// producing a socket nobody will use. The completion routine then pushes the operation onto this
/// registration's lock-free orphan list (push-only; the drainer swaps the whole list out, so there is
/// no ABA) and wakes the waiter. The orphans' sockets are closed, each with its operation's own IRP,
/// at PASSIVE_LEVEL by the next `accept()`, `listen()` or `connect()` poll on this registration and by
/// [`deregister`](Self::deregister), which cannot finish before every socket is closed anyway. (An
/// accept that completes after its future was dropped while the listener is still alive is closed by
/// the listener's next `accept()` or by closing/dropping the listener.)
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
///     let registration = Registration::register().await?;
///     // ... listen, accept, connect ...
///     registration.deregister().await;
///     Ok::<(), wsk_async::WskError>(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
pub struct Registration {
    inner: NonNull<RegInner>,
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
    #[cfg(not(loom))] // the executor's timers are not built for the loom model
    pub async fn register() -> Result<Self> {
        let this = Self::register_only()?;
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
                Err(e) => {
                    this.teardown(false);
                    return Err(e);
                }
            }
        }
    }

    /// Registers and captures the provider NPI, waiting at most `timeout` (rounded to milliseconds)
    /// for the WSK subsystem: a bounded `WskCaptureProviderNPI(timeout_ms)`. PASSIVE_LEVEL; suitable
    /// for DriverEntry with a short timeout.
    pub fn register_blocking(timeout: Duration) -> Result<Self> {
        let this = Self::register_only()?;
        let ms = timeout.as_millis().min(u128::from(WSK_INFINITE_WAIT - 1)) as ULONG;
        match this.capture(ms) {
            Ok(()) => Ok(this),
            Err(e) => {
                this.teardown(false);
                Err(e)
            }
        }
    }

    fn register_only() -> Result<Self> {
        let block = pool_mem::allocate::<RegInner>(TAG_REGISTRATION).ok_or(WskError::NO_RESOURCES)?;
        // SAFETY: fresh pool memory for one RegInner; it does not move until freed, as WSK requires.
        unsafe {
            block.as_ptr().write(RegInner {
                registration: WSK_REGISTRATION::zeroed(),
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
            });
            let inner = block.as_ptr();
            KeInitializeEvent((*inner).event.get().cast::<KEVENT>(), SynchronizationEvent, FALSE);
            let status = WskRegister(
                ptr::addr_of_mut!((*inner).client),
                ptr::addr_of_mut!((*inner).registration),
            );
            if !NT_SUCCESS(status) {
                RegInner::release(block);
                return Err(WskError::from_status(status));
            }
        }
        Ok(Self { inner: block })
    }

    fn capture(&self, wait_ms: ULONG) -> Result<()> {
        let inner = self.inner.as_ptr();
        // SAFETY: registered above; the provider NPI storage is ours until release.
        let status = unsafe {
            WskCaptureProviderNPI(
                ptr::addr_of_mut!((*inner).registration),
                wait_ms,
                ptr::addr_of_mut!((*inner).provider),
            )
        };
        WskError::check(status)
    }

    /// `WskReleaseProviderNPI` (if captured) + `WskDeregister`, then drops the handle's reference.
    fn teardown(self, captured: bool) {
        let inner = self.inner;
        core::mem::forget(self);
        // SAFETY: the handle's reference keeps the state alive; registered, and captured if told so.
        unsafe {
            let registration = ptr::addr_of_mut!((*inner.as_ptr()).registration);
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

    /// The number of sockets (listeners, connections, sockets being created or closed) still alive.
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
    /// Dropping without [`deregister`](Self::deregister) **blocks** the dropping thread
    /// (PASSIVE_LEVEL) until every socket is closed: it drains the orphan list and sleeps on the
    /// registration's event (signalled by the last socket's release and by every orphan push, so an
    /// orphan that arrives late is still closed), then waits for running completion routines, then
    /// calls `WskReleaseProviderNPI` + `WskDeregister`. Prefer `deregister().await`; see the type's
    /// documentation for the threads this must not run on.
    fn drop(&mut self) {
        self.wait_for_sockets_blocking();
        crate::quiesce::wait_idle();
        let this = Registration { inner: self.inner };
        this.teardown(true);
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
            registration.teardown(true);
        }
        Poll::Ready(())
    }
}

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

use crate::atomic_waker::AtomicWaker;
use crate::ctx::SocketCtx;
use crate::error::{Result, WskError};
use crate::op::Op;
use crate::pool_mem::{self, TAG_REGISTRATION};
use crate::sync::{AtomicPtr, AtomicUsize, Ordering};
use core::future::Future;
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
    pub(crate) fn push_orphan(&self, op: &Op) {
        let node = ptr::from_ref(op).cast_mut();
        let mut head = self.orphans.load(Ordering::Relaxed);
        loop {
            // SAFETY: the slot is exclusively ours (orphaned, no future, kernel done) until the
            // CAS below publishes it.
            op.orphan_next.with_mut(|p| unsafe { *p = head });
            match self
                .orphans
                .compare_exchange_weak(head, node, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => head = actual,
            }
        }
        self.waker.wake();
    }

    /// Closes the sockets of every orphaned slot (PASSIVE_LEVEL; never from a completion routine).
    pub(crate) fn drain_orphans(&self) {
        let mut node = self.orphans.swap(ptr::null_mut(), Ordering::AcqRel).cast_const();
        while let Some(op) = NonNull::new(node.cast_mut()) {
            // SAFETY: the list's reference keeps the slot's context alive; the slot is exclusively the
            // drainer's (orphaned, no future, kernel done).
            unsafe {
                let op = op.as_ref();
                node = op.orphan_next.with(|p| *p);
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
            });
            let inner = block.as_ptr();
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
    /// listeners and connections — dropping a task drops them), then `WskReleaseProviderNPI` and
    /// `WskDeregister`. Never fails.
    pub fn deregister(self) -> Deregister {
        Deregister {
            registration: Some(self),
        }
    }

    /// The number of sockets (listeners, connections, sockets being created or closed) still alive.
    pub fn live_sockets(&self) -> usize {
        self.inner().live_sockets()
    }
}

impl Drop for Registration {
    /// Dropping without [`deregister`](Self::deregister) drains the orphan list and calls
    /// `WskReleaseProviderNPI` + `WskDeregister`, which **blocks** (PASSIVE_LEVEL) until every socket
    /// is closed — prefer `deregister().await`.
    fn drop(&mut self) {
        self.inner().drain_orphans();
        let this = Registration { inner: self.inner };
        this.teardown(true);
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
        if let Some(registration) = self.registration.take() {
            registration.teardown(true);
        }
        Poll::Ready(())
    }
}

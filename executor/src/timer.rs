//! Timers: [`sleep`], [`sleep_until`] and [`timeout`], driven by one KTIMER + KDPC per
//! [`TimerDriver`].
//!
//! # Design
//!
//! A timer future does not own a kernel timer. It links an entry (deadline, waker) into its
//! driver's intrusive list, under the driver's spin lock; the driver keeps one KTIMER armed for the
//! earliest deadline. The KTIMER's DPC (DISPATCH_LEVEL, any CPU) takes the lock, wakes and unlinks
//! every entry that is due, and re-arms the KTIMER for the next one. Dropping a timer future unlinks
//! its entry under the same lock, so once `drop` returns the DPC can no longer reach it: no
//! reference counting and no per-timer kernel object, and the entry lives inside the (pinned)
//! future. The drivers are independent of executors, so these futures work under any executor (or
//! [`block_on`](crate::block_on)): all they need is a waker that may be called at DISPATCH_LEVEL.
//!
//! A driver initialises its KTIMER and KDPC on first use (`KeInitializeTimerEx`, `KeInitializeDpc`
//! are callable at any IRQL). The crate provides one driver, [`TIMERS`], used by the free functions;
//! a driver can declare others.
//!
//! # Unload
//!
//! No DPC may run after the driver image is unloaded. [`TimerDriver::stop`] (PASSIVE_LEVEL, from
//! DriverUnload, after the executors were shut down) marks the driver stopped, completes every
//! entry still linked (their futures resolve as if due, so nothing waits for a clock that will not
//! tick), cancels the KTIMER and calls `KeFlushQueuedDpcs`, which returns once a DPC the timer may
//! already have queued has finished. After `stop`, timer futures complete at once.
//! [`TimerDriver::start`] makes a stopped driver usable again.

use crate::time::Instant;
use core::cell::UnsafeCell;
use core::future::Future;
use core::marker::PhantomPinned;
use core::mem::MaybeUninit;
use core::pin::Pin;
use core::ptr;
// Not `crate::sync`: the timer is not part of the loom models (its lock is the kernel's spin lock),
// and the entry's size is fixed (see `Sleep`).
use core::sync::atomic::{AtomicPtr, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use pin_project_lite::pin_project;

/// The timer driver behind [`sleep`], [`sleep_until`] and [`timeout`].
pub static TIMERS: TimerDriver = TimerDriver::new();

/// Waits until `duration` has passed (rounded up to 100 ns). Uses [`TIMERS`].
pub fn sleep(duration: Duration) -> Sleep {
    TIMERS.sleep(duration)
}

/// Waits until `deadline`. Uses [`TIMERS`].
pub fn sleep_until(deadline: Instant) -> Sleep {
    TIMERS.sleep_until(deadline)
}

/// Runs `future`, giving up with [`Elapsed`] if it has not completed within `duration`. Uses
/// [`TIMERS`]. Giving up drops `future`.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    TIMERS.timeout_at(Instant::now() + duration, future)
}

/// Like [`timeout`] with a deadline.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    TIMERS.timeout_at(deadline, future)
}

/// The error of a [`Timeout`] whose deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// A timer entry, inside its future (40 bytes: the future is 48, which every [`Timeout`] and so
/// every task waiting with a deadline carries).
///
/// Links and waker are accessed under the driver's lock, except that the owning future reads its
/// own `waker` without it: only the owner writes it (with the lock held); the DPC only reads it.
/// And the owner reads `prev` without it (atomically), to see whether the entry is still linked:
/// `prev` is non-null exactly while the entry is linked (the head's is [`HEAD`]), and the DPC and
/// `stop` clear it (Release) before they wake the entry's waker.
/// The entry's states, with no flag of their own:
/// - *new*: no waker (never returned `Pending`), not linked;
/// - *armed*: a waker, linked in the driver's list (`prev` non-null);
/// - *done*: a waker, not linked (the DPC or `stop` unlinked it and woke it, or a poll of the armed
///   entry found its deadline passed). The waker stays until the future is dropped, marking the
///   entry done.
///
/// `!Unpin`: the list holds its address, so [`Sleep`] pins it (a structurally pinned field), and a
/// `&mut` to it, which the pin projection makes, asserts no uniqueness that would invalidate the
/// list's pointers to it (as Miri checks).
struct Entry {
    /// The previous entry, [`HEAD`] for the first, null when not linked. Written under the lock.
    prev: AtomicPtr<Entry>,
    next: *mut Entry,
    deadline: u64,
    waker: Option<Waker>,
    _pinned: PhantomPinned,
}

impl Entry {
    /// Whether `entry` is linked in `inner`'s list.
    ///
    /// # Safety
    /// `entry` is live and the driver's lock is held.
    unsafe fn is_linked(entry: *mut Entry) -> bool {
        // SAFETY: forwarded from the caller.
        unsafe { !(*entry).prev.load(Ordering::Relaxed).is_null() }
    }
}

/// The `prev` of the list's first entry: a marker, never dereferenced, that keeps `prev` non-null
/// for every linked entry.
const HEAD: *mut Entry = ptr::dangling_mut();

/// The driver's state, under its lock.
struct Inner {
    initialised: bool,
    stopped: bool,
    head: *mut Entry,
    /// The deadline the KTIMER is armed for, if armed.
    armed: Option<u64>,
}

/// One KTIMER + KDPC serving any number of timer futures. See the module documentation.
pub struct TimerDriver {
    /// A `KSPIN_LOCK` (0 = free).
    lock: UnsafeCell<usize>,
    inner: UnsafeCell<Inner>,
    ktimer: UnsafeCell<MaybeUninit<nt::KTIMER>>,
    kdpc: UnsafeCell<MaybeUninit<nt::KDPC>>,
}

// SAFETY: `inner` and the entries are only touched with `lock` held; the KTIMER and KDPC are
// kernel objects initialised under the lock and then used only through kernel calls.
unsafe impl Sync for TimerDriver {}

impl Default for TimerDriver {
    fn default() -> Self {
        Self::new()
    }
}

/// Holds the driver's spin lock (IRQL raised to DISPATCH_LEVEL) until dropped.
struct Locked<'a> {
    driver: &'a TimerDriver,
    old_irql: nt::KIRQL,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: the lock was acquired by `TimerDriver::lock` with this IRQL.
        unsafe { nt::KeReleaseSpinLock(self.driver.lock.get(), self.old_irql) };
    }
}

impl Locked<'_> {
    fn inner(&mut self) -> &mut Inner {
        // SAFETY: the lock is held, and this guard is the only way to reach `inner`.
        unsafe { &mut *self.driver.inner.get() }
    }
}

impl TimerDriver {
    /// A driver whose kernel objects are initialised on first use. `const`, for a `static`.
    pub const fn new() -> Self {
        Self {
            lock: UnsafeCell::new(0),
            inner: UnsafeCell::new(Inner {
                initialised: false,
                stopped: false,
                head: ptr::null_mut(),
                armed: None,
            }),
            ktimer: UnsafeCell::new(MaybeUninit::uninit()),
            kdpc: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    fn lock(&self) -> Locked<'_> {
        // SAFETY: a static spin lock, initialised (0) at compile time; callers are at IRQL <= DISPATCH.
        let old_irql = unsafe { nt::KeAcquireSpinLockRaiseToDpc(self.lock.get()) };
        let mut guard = Locked { driver: self, old_irql };
        if !guard.inner().initialised {
            // SAFETY: first use, under the lock: nothing armed or queued yet; both calls are allowed
            // at any IRQL. The DPC context is this `'static` driver (see `sleep_until`'s bound).
            unsafe {
                nt::KeInitializeTimerEx(self.ktimer.get().cast(), nt::NotificationTimer);
                nt::KeInitializeDpc(
                    self.kdpc.get().cast(),
                    Some(timer_dpc),
                    ptr::from_ref(self).cast_mut().cast(),
                );
            }
            guard.inner().initialised = true;
        }
        guard
    }

    /// A future that completes at `deadline` (or at once after [`TimerDriver::stop`]).
    pub fn sleep_until(&'static self, deadline: Instant) -> Sleep {
        Sleep {
            driver: self,
            entry: UnsafeCell::new(Entry {
                prev: AtomicPtr::new(ptr::null_mut()),
                next: ptr::null_mut(),
                deadline: deadline.as_100ns(),
                waker: None,
                _pinned: PhantomPinned,
            }),
        }
    }

    /// A future that completes after `duration`.
    pub fn sleep(&'static self, duration: Duration) -> Sleep {
        self.sleep_until(Instant::now() + duration)
    }

    /// Runs `future` until `deadline`; see [`timeout`].
    pub fn timeout_at<F: Future>(&'static self, deadline: Instant, future: F) -> Timeout<F> {
        Timeout {
            future,
            sleep: self.sleep_until(deadline),
        }
    }

    /// Makes a stopped driver usable again. Any IRQL <= DISPATCH_LEVEL.
    pub fn start(&'static self) {
        self.lock().inner().stopped = false;
    }

    /// Stops the driver for unload: completes every pending timer future, cancels the KTIMER and
    /// waits (`KeFlushQueuedDpcs`) until no DPC of this driver is queued or running. PASSIVE_LEVEL.
    /// Returns false (doing nothing) above PASSIVE_LEVEL.
    ///
    /// Until [`TimerDriver::start`], every sleep and deadline then completes at once. A task that
    /// retries around a sleep (a loop that backs off after an error, such as an accept loop) would
    /// spin on its executor: stop the timers after shutting down the executors whose tasks use them
    /// (the echo driver's unload does), or make such loops also end on the unload request.
    pub fn stop(&'static self) -> bool {
        if nt::KeGetCurrentIrql() != nt::PASSIVE_LEVEL {
            return false;
        }
        let was_initialised = {
            let mut guard = self.lock();
            let inner = guard.inner();
            inner.stopped = true;
            inner.armed = None;
            let mut entry = inner.head;
            inner.head = ptr::null_mut();
            while !entry.is_null() {
                // SAFETY: linked entries are live (their futures unlink them before being dropped,
                // under this lock, which we hold). Unlinked (the head is already null), an entry with
                // a waker is done; the waker stays for its future to drop.
                unsafe {
                    let e = entry;
                    entry = (*e).next;
                    (*e).prev.store(ptr::null_mut(), Ordering::Release);
                    (*e).next = ptr::null_mut();
                    if let Some(waker) = &(*e).waker {
                        waker.wake_by_ref();
                    }
                }
            }
            // SAFETY: initialised by `lock`; KeCancelTimer is allowed at DISPATCH_LEVEL.
            unsafe { nt::KeCancelTimer(self.ktimer.get().cast()) };
            inner.initialised
        };
        if was_initialised {
            // SAFETY: PASSIVE_LEVEL (checked above); waits out a DPC queued before the cancel.
            unsafe { nt::KeFlushQueuedDpcs() };
        }
        true
    }

    /// Arms the KTIMER for `deadline` (relative due time: interrupt time is not system time), `now`
    /// being the interrupt time read at most a moment ago (an older reading only makes the KTIMER
    /// fire later than `deadline`, never earlier: a timer future never completes before its
    /// deadline).
    fn arm(&self, inner: &mut Inner, deadline: u64, now: u64) {
        inner.armed = Some(deadline);
        let relative = deadline.saturating_sub(now).clamp(1, i64::MAX as u64) as i64;
        // SAFETY: initialised by `lock` (held by the caller); the KTIMER and KDPC are static.
        unsafe {
            nt::KeSetTimerEx(
                self.ktimer.get().cast(),
                nt::LARGE_INTEGER::relative_100ns(relative),
                0,
                self.kdpc.get().cast(),
            )
        };
    }

    /// Cancels the KTIMER once no entry is left (a dropped timer future leaves it armed otherwise,
    /// which would only cost a spurious DPC, but keeps an armed kernel timer around for nothing).
    fn disarm_if_idle(&self, inner: &mut Inner) {
        if inner.head.is_null() && inner.armed.take().is_some() {
            // SAFETY: initialised by `lock` (held by the caller); allowed at DISPATCH_LEVEL.
            unsafe { nt::KeCancelTimer(self.ktimer.get().cast()) };
        }
    }

    /// The DPC: wake and unlink every due entry, re-arm for the earliest remaining one.
    fn expire(&self) {
        let mut guard = self.lock();
        let inner = guard.inner();
        inner.armed = None;
        if inner.stopped {
            return;
        }
        let now = Instant::now().as_100ns();
        let mut earliest: Option<u64> = None;
        let mut entry = inner.head;
        while !entry.is_null() {
            let e = entry;
            // SAFETY: linked entries are live while the lock is held (see `stop`).
            unsafe {
                entry = (*e).next;
                let deadline = (*e).deadline;
                if deadline <= now {
                    // Unlinked with its waker kept: done (see `Entry`).
                    unlink(inner, e);
                    if let Some(waker) = &(*e).waker {
                        waker.wake_by_ref();
                    }
                } else {
                    earliest = Some(earliest.map_or(deadline, |d| d.min(deadline)));
                }
            }
        }
        if let Some(deadline) = earliest {
            self.arm(inner, deadline, now);
        }
    }
}

/// Unlinks `entry` from `inner`'s list.
///
/// # Safety
/// `entry` is linked in that list and the driver's lock is held.
unsafe fn unlink(inner: &mut Inner, entry: *mut Entry) {
    // SAFETY: neighbours of a linked entry are linked entries, live under the lock.
    unsafe {
        let (prev, next) = ((*entry).prev.load(Ordering::Relaxed), (*entry).next);
        if prev == HEAD {
            inner.head = next;
        } else {
            (*prev).next = next;
        }
        if !next.is_null() {
            (*next).prev.store(prev, Ordering::Relaxed);
        }
        // Release: a waker woken after this (by the DPC or `stop`) finds it cleared (see `poll`).
        (*entry).prev.store(ptr::null_mut(), Ordering::Release);
        (*entry).next = ptr::null_mut();
    }
}

/// `KDEFERRED_ROUTINE` of every driver's KDPC; runs at DISPATCH_LEVEL.
unsafe extern "system" fn timer_dpc(_dpc: *mut nt::KDPC, context: nt::PVOID, _a1: nt::PVOID, _a2: nt::PVOID) {
    // SAFETY: the context is the `'static` TimerDriver that initialised this DPC.
    let driver = unsafe { &*context.cast_const().cast::<TimerDriver>() };
    driver.expire();
}

pin_project! {
    /// A future completing at a deadline; see [`sleep`]. Must be pinned to be polled (its timer
    /// entry is linked into the driver's list by address), hence `!Unpin`:
    ///
    /// ```compile_fail
    /// fn unpin<T: Unpin>() {}
    /// unpin::<executor::Sleep>();
    /// ```
    pub struct Sleep {
        driver: &'static TimerDriver,
        // Pinned: linked by address. `Entry` is `!Unpin`, and so is `Sleep`.
        #[pin]
        entry: UnsafeCell<Entry>,
    }

    impl PinnedDrop for Sleep {
        fn drop(this: Pin<&mut Self>) {
            this.unlink_for_drop();
        }
    }
}

const _: () = assert!(core::mem::size_of::<Sleep>() == 48 || core::mem::size_of::<usize>() != 8);

// SAFETY: the entry is only touched under the driver's lock; the waker in it is Send.
unsafe impl Send for Sleep {}
// SAFETY: `&Sleep` gives access to nothing (all methods take `Pin<&mut Self>` or `&mut self`).
unsafe impl Sync for Sleep {}

impl Sleep {
    /// The deadline.
    pub fn deadline(&self) -> Instant {
        // SAFETY: only the owner writes `deadline` ([`Sleep::reset`], through `Pin<&mut Self>`, so
        // not while this `&self` exists); the DPC and `stop` only read it.
        Instant::from_100ns(unsafe { (*self.entry.get()).deadline })
    }

    /// Moves the deadline to `deadline`, later or earlier, as if a new `sleep_until(deadline)`
    /// took this one's place: a done sleep waits again. A waiting sleep's entry stays linked (only
    /// its deadline changes, under the driver's lock, and the KTIMER is re-armed if the new
    /// deadline is the earliest), so a deadline that keeps moving, such as an idle timeout pushed
    /// back on every completed operation, costs no unlink, relink or kernel timer call each time:
    /// the KTIMER, still armed for the old deadline, fires then, and the DPC re-arms it for the new
    /// one.
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let deadline = deadline.as_100ns();
        let registered = self.registered();
        let this = self.project();
        let entry = this.entry.get();
        if !registered {
            // SAFETY: never linked, so neither the DPC nor `stop` can reach the entry.
            unsafe { (*entry).deadline = deadline };
            return;
        }
        let driver = *this.driver;
        let mut guard = driver.lock();
        let inner = guard.inner();
        // SAFETY: the lock is held (the DPC reads the deadline only under it) and the entry lives
        // in this future.
        unsafe {
            (*entry).deadline = deadline;
            if Entry::is_linked(entry) {
                if inner.armed.is_none_or(|armed| deadline < armed) {
                    driver.arm(inner, deadline, Instant::now().as_100ns());
                }
            } else {
                // Done: new again (its next poll registers it). The waker is dropped under the
                // lock, as in `drop`.
                (*entry).waker = None;
            }
        }
    }
}

impl Sleep {
    /// Whether the entry ever returned `Pending` (stored a waker), i.e. may be linked: the entry
    /// is armed or done (see [`Entry`]).
    fn registered(&self) -> bool {
        // SAFETY: only this future writes the waker; the DPC and `stop` only read it.
        unsafe { (*self.entry.get()).waker.is_some() }
    }
}

impl Future for Sleep {
    type Output = ();

    /// Reads the clock only on the first poll: once the entry is linked, the KTIMER is armed no
    /// later than its deadline, and the DPC unlinks and wakes it when it is due, so a later poll (a
    /// `Timeout` polls its sleep on every wake of the future it bounds) only looks at the list.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline().as_100ns();
        let registered = self.registered();
        if registered {
            let entry = self.entry.get();
            // Still linked with the same waker: nothing to do, and no lock to take. If the DPC or
            // `stop` unlinks the entry after this look, it wakes that waker after clearing `prev`,
            // and the poll that follows sees it cleared (Acquire) and takes the path below.
            // SAFETY: `prev` is atomic; only this owner writes the waker, so reading it here races
            // only with the DPC's reads.
            let waiting = unsafe {
                !(*entry).prev.load(Ordering::Acquire).is_null()
                    && (*entry).waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
            };
            if waiting {
                return Poll::Pending;
            }
        }
        // The interrupt time, read before the first registration only.
        let mut now = 0;
        if !registered {
            now = Instant::now().as_100ns();
            if now >= deadline {
                return Poll::Ready(());
            }
        }
        let this = self.project();
        let driver = *this.driver;
        let mut guard = driver.lock();
        let inner = guard.inner();
        let entry = this.entry.get();
        // SAFETY: the lock is held and the entry lives in this future.
        let linked = unsafe { Entry::is_linked(entry) };
        // Done (unlinked by the DPC or `stop`) or stopped. Not due yet on the first poll (just
        // checked); a linked entry's deadline is the DPC's to notice.
        if (registered && !linked) || inner.stopped {
            if linked {
                // SAFETY: linked in this driver's list; lock held.
                unsafe { unlink(inner, entry) };
                driver.disarm_if_idle(inner);
            }
            return Poll::Ready(());
        }
        // SAFETY: the lock is held: the DPC does not read the waker meanwhile.
        match unsafe { &mut (*entry).waker } {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        if !linked {
            // SAFETY: the lock is held; the head, if any, is a linked, live entry.
            unsafe {
                (*entry).prev.store(HEAD, Ordering::Relaxed);
                (*entry).next = inner.head;
                if !inner.head.is_null() {
                    (*inner.head).prev.store(entry, Ordering::Relaxed);
                }
            }
            inner.head = entry;
            if inner.armed.is_none_or(|armed| deadline < armed) {
                driver.arm(inner, deadline, now);
            }
        }
        Poll::Pending
    }
}

impl Sleep {
    /// What dropping does: unlinks the entry if linked, so the DPC cannot reach it any more.
    fn unlink_for_drop(&self) {
        if !self.registered() {
            // Never linked.
            return;
        }
        let mut guard = self.driver.lock();
        let inner = guard.inner();
        let entry = self.entry.get();
        // SAFETY: lock held; after this the DPC cannot reach the entry any more.
        unsafe {
            if Entry::is_linked(entry) {
                unlink(inner, entry);
                self.driver.disarm_if_idle(inner);
            }
            // Dropping the waker under the lock keeps DPC and drop from ever touching it together.
            (*entry).waker = None;
        }
    }
}

pin_project! {
    /// A future with a deadline; see [`timeout`].
    pub struct Timeout<F> {
        #[pin]
        future: F,
        #[pin]
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

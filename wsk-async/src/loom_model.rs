//! Loom model of an operation slot: the state word ([`OpState`]), the waker cell ([`AtomicWaker`])
//! and the context reference count, driven exactly as `op_completion` (the kernel side) and
//! `SlotUse` / the drop paths (the future side) drive them. Loom explores every interleaving and
//! checks that the result cell is never accessed concurrently.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p wdm-async-wsk --release --lib loom`.
//!
//! Checked in every interleaving: a result is read or disposed of exactly once; a future waiting for
//! a completion is always woken (no lost wake-up); the context is freed exactly once, after the last
//! access; a socket produced after its handle went away is disposed of exactly once.

use crate::atomic_waker::AtomicWaker;
use crate::op_state::{Claim, Completed, KERNEL, OpState};
use crate::sync::{AtomicUsize, Cell, Ordering};
use loom::sync::Arc;
use loom::thread;
use std::sync::Arc as StdArc;
use std::task::{Wake, Waker};

/// Counts wakes.
struct Flag(std::sync::atomic::AtomicUsize);

impl Wake for Flag {
    fn wake(self: StdArc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn waker() -> (Waker, StdArc<Flag>) {
    let flag = StdArc::new(Flag(std::sync::atomic::AtomicUsize::new(0)));
    (Waker::from(flag.clone()), flag)
}

fn woken(flag: &Flag) -> usize {
    flag.0.load(std::sync::atomic::Ordering::SeqCst)
}

/// One slot inside its context.
struct Slot {
    state: OpState,
    waker: AtomicWaker,
    /// Stands for the IO_STATUS_BLOCK (and the produced socket).
    result: Cell<u32>,
    /// The context's reference count (handle + kernel).
    refs: AtomicUsize,
    freed: AtomicUsize,
    /// Results read or disposed of.
    taken: AtomicUsize,
}

impl Slot {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: OpState::new(),
            waker: AtomicWaker::new(),
            result: Cell::new(0),
            refs: AtomicUsize::new(1),
            freed: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
        })
    }

    /// `SocketCtx::release`.
    fn release_ref(&self) {
        if self.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.freed.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// `Op::start` (with `SocketCtx::acquire`).
    fn submit(&self) {
        self.refs.fetch_add(1, Ordering::Relaxed);
        self.state.submit();
    }

    /// `op_completion`: store, one RMW, wake or dispose, release the kernel's reference last.
    ///
    /// `result` stands for the IRP's `Irp->IoStatus`, which the provider writes before it calls
    /// `IofCompleteRequest` on the thread that runs the routine; the model writes it here, before the
    /// RMW, on the same thread.
    fn complete(&self, value: u32) {
        assert_eq!(self.freed.load(Ordering::SeqCst), 0, "completion on a freed context");
        // SAFETY (model): KERNEL is set: the kernel side owns the cell.
        self.result.with_mut(|p| unsafe { *p = value });
        match self.state.complete() {
            Completed::Wake => self.waker.wake(),
            Completed::Orphan => self.dispose(),
            Completed::Idle => {}
        }
        self.release_ref();
    }

    /// Reads (disposes of) the unread result; the caller owns the slot exclusively.
    fn dispose(&self) {
        // SAFETY (model): exclusive owner.
        let v = self.result.with(|p| unsafe { *p });
        assert_eq!(v, 7);
        self.state.consume();
        self.taken.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future waits for its completion while the kernel completes it: the result is read once and the
/// wake is never lost.
#[test]
fn loom_complete_vs_poll() {
    loom::model(|| {
        let slot = Slot::new();
        assert_eq!(slot.state.claim(), Claim::Owned { stale: false });
        slot.submit();
        let kernel = {
            let slot = slot.clone();
            thread::spawn(move || slot.complete(7))
        };
        let (w, flag) = waker();
        loop {
            // SlotUse::poll_complete: look, register only if not complete, look again.
            if slot.state.is_complete() {
                slot.dispose();
                break;
            }
            slot.waker.register(&w);
            if slot.state.is_complete() {
                slot.dispose();
                break;
            }
            // Pending: the next poll happens only after a wake.
            while woken(&flag) == 0 {
                thread::yield_now();
            }
            flag.0.store(0, std::sync::atomic::Ordering::SeqCst);
        }
        slot.state.release();
        kernel.join().unwrap();
        slot.release_ref();
        assert_eq!(slot.taken.load(Ordering::SeqCst), 1);
        assert_eq!(slot.freed.load(Ordering::SeqCst), 1);
    });
}

/// The future is dropped while its IRP is pending (racing the completion): the result is disposed of
/// exactly once, by the next claimer if nobody read it, and the context is freed once.
#[test]
fn loom_drop_races_completion() {
    loom::model(|| {
        let slot = Slot::new();
        assert_eq!(slot.state.claim(), Claim::Owned { stale: false });
        slot.submit();
        let (w, _flag) = waker();
        slot.waker.register(&w);
        let kernel = {
            let slot = slot.clone();
            thread::spawn(move || slot.complete(7))
        };
        // Drop: (cancel), take the waker, release FUTURE.
        drop(slot.waker.take());
        let previous = slot.state.release();
        let _ = previous & KERNEL;
        kernel.join().unwrap();
        // The next claimer disposes of an unread result.
        match slot.state.claim() {
            Claim::Owned { stale: true } => slot.dispose(),
            other => panic!("unexpected claim {other:?}"),
        }
        slot.state.release();
        slot.release_ref();
        assert_eq!(slot.taken.load(Ordering::SeqCst), 1);
        assert_eq!(slot.freed.load(Ordering::SeqCst), 1);
    });
}

/// A new future claims the slot while the kernel still owns the IRP of a dropped operation: it
/// attaches, is woken (or sees the completion), disposes of the stale result once, then owns the slot.
#[test]
fn loom_attach_to_dropped_operation() {
    loom::model(|| {
        let slot = Slot::new();
        assert_eq!(slot.state.claim(), Claim::Owned { stale: false });
        slot.submit();
        slot.state.release(); // the first future was dropped while pending
        let kernel = {
            let slot = slot.clone();
            thread::spawn(move || slot.complete(7))
        };
        let (w, flag) = waker();
        match slot.state.claim() {
            Claim::Attached => loop {
                slot.waker.register(&w);
                if !slot.state.kernel_owned() {
                    slot.dispose();
                    break;
                }
                while woken(&flag) == 0 {
                    thread::yield_now();
                }
                flag.0.store(0, std::sync::atomic::Ordering::SeqCst);
            },
            Claim::Owned { stale: true } => slot.dispose(),
            other => panic!("unexpected claim {other:?}"),
        }
        // The slot is ours now: KERNEL clear, result consumed.
        assert!(!slot.state.kernel_owned());
        slot.state.release();
        kernel.join().unwrap();
        slot.release_ref();
        assert_eq!(slot.taken.load(Ordering::SeqCst), 1);
        assert_eq!(slot.freed.load(Ordering::SeqCst), 1);
    });
}

/// `op_completion` for an operation that produces a socket (accept, socket creation): the result is
/// read *before* any RMW (the kernel side owns it while `KERNEL` is set); transition 3 is made only
/// if a future holds the slot; otherwise the slot is kept and handed to the deferred closer, which
/// the model runs on the same thread right away (on Windows a work item runs it later: the other
/// threads interleave with it either way).
impl Slot {
    fn complete_producing(&self) {
        assert_eq!(self.freed.load(Ordering::SeqCst), 0, "completion on a freed context");
        // SAFETY (model): KERNEL is set: the kernel side owns the cell.
        self.result.with_mut(|p| unsafe { *p = SOCKET });
        if self.state.complete_if_held() {
            self.waker.wake();
            self.release_ref();
            return;
        }
        // Kept: the kernel's reference moves to the orphan list; the drainer closes the socket with
        // the slot's IRP (`Op::close_kept_socket`), still KERNEL-owned, then drops the list's
        // reference.
        // SAFETY (model): the kept slot is the closer's alone.
        let socket = self.result.with(|p| unsafe { *p });
        assert_eq!(socket, SOCKET);
        self.taken.fetch_add(1, Ordering::SeqCst);
        self.refs.fetch_add(1, Ordering::Relaxed); // the close IRP's reference
        // The close completes (its status is no socket): an ordinary completion.
        self.complete_close();
        self.release_ref(); // the list's reference
    }

    /// The close's completion: an ordinary transition 3; nothing to dispose of.
    fn complete_close(&self) {
        // SAFETY (model): KERNEL is set: the kernel side owns the cell.
        self.result.with_mut(|p| unsafe { *p = CLOSED });
        if self.state.complete() == Completed::Wake {
            self.waker.wake();
        }
        self.release_ref();
    }

    /// Disposes of an unread result as `Op::dispose_unread` does: a socket is closed (counted), any
    /// other result just consumed. The caller owns the slot exclusively.
    fn dispose_unread(&self) {
        // SAFETY (model): exclusive owner.
        if self.result.with(|p| unsafe { *p }) == SOCKET {
            self.taken.fetch_add(1, Ordering::SeqCst);
        }
        self.state.consume();
    }
}

/// The produced socket's value in the model's result cell, and the close's.
const SOCKET: u32 = 7;
const CLOSED: u32 = 0;

/// The handle goes away (orphan) while a dropped accept's IRP completes with a socket: the slot is
/// kept for the deferred closer, which closes the socket exactly once, and the context is freed
/// once.
#[test]
fn loom_orphan_races_completion() {
    loom::model(|| {
        let slot = Slot::new();
        assert_eq!(slot.state.claim(), Claim::Owned { stale: false });
        slot.submit();
        slot.state.release(); // the accept future was dropped while pending
        let kernel = {
            let slot = slot.clone();
            thread::spawn(move || slot.complete_producing())
        };
        // Handle::abandon -> orphan_slots.
        let previous = slot.state.orphan();
        if previous & (crate::op_state::FUTURE | KERNEL | crate::op_state::ORPHANED) == 0 {
            slot.dispose_unread();
        }
        slot.release_ref();
        kernel.join().unwrap();
        assert_eq!(slot.taken.load(Ordering::SeqCst), 1);
        assert_eq!(slot.freed.load(Ordering::SeqCst), 1);
    });
}

/// A pending accept's future is dropped while its IRP completes with a socket, and a new accept
/// claims the slot right after, with the listener alive: whichever way the completion goes (to the
/// future, which then disposes of the socket in its drop; or kept, closed by the deferred closer,
/// with the new future attached until that close completes) the socket is closed exactly once, the
/// new future ends up owning the slot, and the context is freed once.
#[test]
fn loom_dropped_accept_on_a_live_listener_races_its_completion() {
    loom::model(|| {
        let slot = Slot::new();
        assert_eq!(slot.state.claim(), Claim::Owned { stale: false });
        slot.submit();
        let kernel = {
            let slot = slot.clone();
            thread::spawn(move || slot.complete_producing())
        };
        // The future's drop (Accept::drop): if the completion already reached it, it disposes of the
        // unread socket itself; otherwise it lets go (transition 6).
        if slot.state.is_complete() {
            slot.dispose_unread();
        }
        let previous = slot.state.release();
        assert_eq!(previous & crate::op_state::FUTURE, crate::op_state::FUTURE);
        // The next accept: claim, attach while the kernel (or the closer) owns the IRP, dispose of a
        // stale result, own the slot.
        let (w, flag) = waker();
        match slot.state.claim() {
            Claim::Owned { stale } => {
                if stale {
                    slot.dispose_unread();
                }
            }
            Claim::Attached => loop {
                slot.waker.register(&w);
                if !slot.state.kernel_owned() {
                    if slot.state.is_complete() {
                        slot.dispose_unread();
                    }
                    break;
                }
                while woken(&flag) == 0 {
                    thread::yield_now();
                }
                flag.0.store(0, std::sync::atomic::Ordering::SeqCst);
            },
            Claim::InUse => panic!("the slot is free for a new accept"),
        }
        slot.state.release();
        kernel.join().unwrap();
        slot.release_ref(); // the handle's reference
        assert_eq!(
            slot.taken.load(Ordering::SeqCst),
            1,
            "the socket is closed exactly once"
        );
        assert_eq!(slot.freed.load(Ordering::SeqCst), 1);
    });
}

/// The waker cell alone: a register racing a wake never loses the wake.
#[test]
fn loom_atomic_waker_register_vs_wake() {
    loom::model(|| {
        let cell = Arc::new(AtomicWaker::new());
        let ready = Arc::new(AtomicUsize::new(0));
        let (w, flag) = waker();
        let waker_thread = {
            let (cell, ready) = (cell.clone(), ready.clone());
            thread::spawn(move || {
                ready.store(1, Ordering::SeqCst);
                cell.wake();
            })
        };
        cell.register(&w);
        if ready.load(Ordering::SeqCst) == 0 {
            // Not ready when we looked: the wake must reach the registered waker.
            waker_thread.join().unwrap();
            assert!(woken(&flag) >= 1, "lost wake-up");
        } else {
            waker_thread.join().unwrap();
        }
    });
}

/// A pool's buffer coming back while a task waits for one (`Buffer::drop` against
/// `TakeWhenFree::poll`, with their orderings): the bit is set before the wake, the waiter registers
/// before it looks again, so it either finds the buffer or is woken.
#[test]
fn loom_buffer_return_wakes_a_waiter() {
    /// `BufferPool::take` on a one-word bitmap.
    fn take(bitmap: &AtomicUsize) -> bool {
        let mut bits = bitmap.load(Ordering::Acquire);
        while bits != 0 {
            let bit = bits.trailing_zeros();
            match bitmap.compare_exchange(bits, bits & !(1 << bit), Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(actual) => bits = actual,
            }
        }
        false
    }
    loom::model(|| {
        let bitmap = Arc::new(AtomicUsize::new(0)); // every buffer lent
        let cell = Arc::new(AtomicWaker::new());
        let (w, flag) = waker();
        let returner = {
            let (bitmap, cell) = (bitmap.clone(), cell.clone());
            thread::spawn(move || {
                bitmap.fetch_or(1, Ordering::AcqRel);
                cell.wake();
            })
        };
        let got = take(&bitmap) || {
            cell.register(&w);
            take(&bitmap)
        };
        returner.join().unwrap();
        assert!(
            got || woken(&flag) >= 1,
            "the waiter neither got the buffer nor was woken"
        );
    });
}

/// The registration's two counters (`RegInner::socket_freed` against `Deregister::poll`): the last
/// socket wakes the deregistering task while still holding a memory reference, so the state is never
/// freed under the wake, is freed exactly once, and the deregistering task is never left asleep.
#[test]
fn loom_last_socket_wakes_deregister_before_releasing_memory() {
    struct Reg {
        sockets: AtomicUsize,
        refs: AtomicUsize,
        waker: AtomicWaker,
        freed: AtomicUsize,
    }
    impl Reg {
        fn release(&self) {
            if self.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.freed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    loom::model(|| {
        // One socket alive: refs = handle + socket.
        let reg = Arc::new(Reg {
            sockets: AtomicUsize::new(1),
            refs: AtomicUsize::new(2),
            waker: AtomicWaker::new(),
            freed: AtomicUsize::new(0),
        });
        let completion = {
            let reg = reg.clone();
            thread::spawn(move || {
                // RegInner::socket_freed.
                if reg.sockets.fetch_sub(1, Ordering::AcqRel) == 1 {
                    assert_eq!(reg.freed.load(Ordering::SeqCst), 0, "woke through freed memory");
                    reg.waker.wake();
                }
                reg.release();
            })
        };
        let (w, flag) = waker();
        loop {
            // Deregister::poll.
            reg.waker.register(&w);
            if reg.sockets.load(Ordering::Acquire) == 0 {
                reg.release();
                break;
            }
            while woken(&flag) == 0 {
                thread::yield_now();
            }
            flag.0.store(0, std::sync::atomic::Ordering::SeqCst);
        }
        completion.join().unwrap();
        assert_eq!(reg.freed.load(Ordering::SeqCst), 1);
    });
}

/// The registration's deferred closer against deregistration (`RegInner::push_orphan` on a
/// completion CPU against `Deregister::poll` draining the list on another): once the orphan is
/// published, the drainer may close its socket, free its context and finish deregistering, which
/// drops the handle's reference. The push must still be able to wake through the state afterwards,
/// so it takes a reference *before* publishing and releases it after the wake.
struct OrphanReg {
    refs: AtomicUsize,
    sockets: AtomicUsize,
    /// The orphan list, reduced to "one node published or not".
    orphans: AtomicUsize,
    waker: AtomicWaker,
    freed: AtomicUsize,
}

impl OrphanReg {
    /// `RegInner::release`.
    fn release(&self) {
        if self.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.freed.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// `RegInner::push_orphan`; `hold_reference: false` is the order before the fix.
    fn push_orphan(&self, hold_reference: bool) {
        if hold_reference {
            self.refs.fetch_add(1, Ordering::Relaxed);
        }
        // The CAS that publishes the node (Release).
        self.orphans.swap(1, Ordering::AcqRel);
        assert_eq!(
            self.freed.load(Ordering::SeqCst),
            0,
            "woke through a freed registration"
        );
        self.waker.wake();
        assert_eq!(
            self.freed.load(Ordering::SeqCst),
            0,
            "signalled through a freed registration"
        );
        if hold_reference {
            self.release();
        }
    }
}

fn push_orphan_races_deregister(hold_reference: bool) {
    loom::model(move || {
        // One socket (an orphaned connect/accept slot's context): refs = handle + context.
        let reg = Arc::new(OrphanReg {
            refs: AtomicUsize::new(2),
            sockets: AtomicUsize::new(1),
            orphans: AtomicUsize::new(0),
            waker: AtomicWaker::new(),
            freed: AtomicUsize::new(0),
        });
        let completion = {
            let reg = reg.clone();
            thread::spawn(move || reg.push_orphan(hold_reference))
        };
        let (w, flag) = waker();
        loop {
            // Deregister::poll: register, drain, look.
            reg.waker.register(&w);
            if reg.orphans.swap(0, Ordering::AcqRel) == 1 {
                // drain_orphans closes the socket; the close's completion frees the context:
                // RegInner::socket_freed (wake while holding the context's reference, then release).
                if reg.sockets.fetch_sub(1, Ordering::AcqRel) == 1 {
                    reg.waker.wake();
                }
                reg.release();
            }
            if reg.sockets.load(Ordering::Acquire) == 0 {
                // teardown: WskDeregister, then the handle's reference goes.
                reg.release();
                break;
            }
            while woken(&flag) == 0 {
                thread::yield_now();
            }
            flag.0.store(0, std::sync::atomic::Ordering::SeqCst);
        }
        completion.join().unwrap();
        assert_eq!(reg.freed.load(Ordering::SeqCst), 1, "freed exactly once");
    });
}

/// With the reference taken before the publication, no interleaving wakes through freed memory and
/// the state is freed exactly once (by whichever of the two releases last).
#[test]
fn loom_push_orphan_races_deregister() {
    push_orphan_races_deregister(true);
}

/// The order before the fix (publish, then wake, holding nothing): loom finds the interleaving in
/// which deregistration completes and frees the state between the publication and the wake. Kept so
/// that the model above is known to be able to see the bug.
#[test]
#[should_panic(expected = "through a freed registration")]
fn loom_push_orphan_without_a_reference_is_caught() {
    push_orphan_races_deregister(false);
}

/// `Registration`'s blocking drop against a late orphan (M2): the drop drains, finds a socket alive,
/// and sleeps on its synchronization event; the orphan's push (and the last socket's release) signal
/// that event after changing the state, and the drop re-checks after every wake, so an orphan pushed
/// at any point — before the first drain, between a drain and the wait, during the wait — is drained
/// and the drop ends (a lost signal would leave the drop waiting forever, which loom reports).
#[test]
fn loom_blocking_drop_sees_a_late_orphan() {
    loom::model(|| {
        let reg = Arc::new(OrphanReg {
            refs: AtomicUsize::new(2),
            sockets: AtomicUsize::new(1),
            orphans: AtomicUsize::new(0),
            waker: AtomicWaker::new(),
            freed: AtomicUsize::new(0),
        });
        // The KEVENT (synchronization: a signal is remembered until one wait consumes it).
        let event = Arc::new(loom::sync::Notify::new());
        let completion = {
            let (reg, event) = (reg.clone(), event.clone());
            thread::spawn(move || {
                // push_orphan: reference, publish, wake + signal, release.
                reg.refs.fetch_add(1, Ordering::Relaxed);
                reg.orphans.swap(1, Ordering::AcqRel);
                event.notify();
                reg.release();
            })
        };
        loop {
            // wait_for_sockets_blocking: drain, look, wait.
            if reg.orphans.swap(0, Ordering::AcqRel) == 1 {
                // The close's completion frees the context: socket_freed signals on the last one.
                if reg.sockets.fetch_sub(1, Ordering::AcqRel) == 1 {
                    event.notify();
                }
                reg.release();
            }
            if reg.sockets.load(Ordering::Acquire) == 0 {
                break;
            }
            // KeWaitForSingleObject without the timeout: a lost signal would block forever, which
            // loom reports as a deadlock.
            event.wait();
        }
        // teardown: the handle's reference.
        reg.release();
        completion.join().unwrap();
        assert_eq!(reg.freed.load(Ordering::SeqCst), 1);
    });
}

/// `lazy::install_once` (the lazily allocated disconnect/abort slots): two callers racing to provide
/// a context's end slots (a graceful disconnect and an `abort()` in two tasks) both get the same
/// block, the loser's allocation is discarded exactly once, and the contents the winner
/// initialised are visible to the other caller (the model's cell checks that access).
#[test]
fn loom_install_once_races() {
    use crate::lazy::install_once;
    use crate::sync::AtomicPtr;
    loom::model(|| {
        let slot = Arc::new(AtomicPtr::<Cell<u32>>::new(core::ptr::null_mut()));
        let made = Arc::new(AtomicUsize::new(0));
        let discarded = Arc::new(AtomicUsize::new(0));
        let provide = {
            let (made, discarded) = (made.clone(), discarded.clone());
            move |slot: &AtomicPtr<Cell<u32>>| {
                let p = install_once(
                    slot,
                    || {
                        made.fetch_add(1, Ordering::SeqCst);
                        std::boxed::Box::into_raw(std::boxed::Box::new(Cell::new(7)))
                    },
                    |unused| {
                        discarded.fetch_add(1, Ordering::SeqCst);
                        // SAFETY: never published: the loser owns it.
                        drop(unsafe { std::boxed::Box::from_raw(unused) });
                    },
                )
                .expect("allocation does not fail in the model");
                // SAFETY: the installed pointer lives until the end of the model; reads only.
                let value = unsafe { (*p).with(|v| *v) };
                assert_eq!(value, 7, "the winner's initialisation is visible");
                p
            }
        };
        let other = {
            let (slot, provide) = (slot.clone(), provide.clone());
            thread::spawn(move || provide(&slot) as usize)
        };
        let mine = provide(&slot);
        let theirs = other.join().unwrap();
        assert_eq!(mine as usize, theirs, "both callers use one block");
        assert_eq!(slot.load(Ordering::SeqCst), mine);
        assert_eq!(made.load(Ordering::SeqCst) - discarded.load(Ordering::SeqCst), 1);
        // SAFETY: both callers are done; the installed pointer is freed once, like the context does.
        drop(unsafe { std::boxed::Box::from_raw(mine) });
    });
}

/// A failed allocation leaves the slot empty for a later try, and never publishes null.
#[test]
fn loom_install_once_failure_leaves_the_slot_empty() {
    use crate::lazy::install_once;
    use crate::sync::AtomicPtr;
    loom::model(|| {
        let slot = AtomicPtr::<u32>::new(core::ptr::null_mut());
        assert!(install_once(&slot, core::ptr::null_mut, |_| unreachable!("nothing to discard")).is_none());
        assert!(slot.load(Ordering::SeqCst).is_null());
    });
}

/// `SlotUse::poll_acquire_one_of` (a connection's send slots): two send futures claim "the first
/// free one of two slots" while the future holding slot 0 lets go of it. Each claim is one RMW on
/// one slot's own word, so in every interleaving no slot is ever held by two futures, each claimer
/// either gets a slot or finds both held, and the slot the earlier future gave back is taken at most
/// once.
#[test]
fn loom_two_sends_claim_distinct_slots() {
    /// `poll_acquire_one_of`'s claim: the first slot whose claim does not find it in use.
    fn claim_one_of(slots: &[OpState; 2]) -> Option<usize> {
        (0..2).find(|&i| slots[i].claim() != Claim::InUse)
    }
    loom::model(|| {
        let slots = Arc::new([OpState::new(), OpState::new()]);
        assert_eq!(
            slots[0].claim(),
            Claim::Owned { stale: false },
            "an earlier send holds slot 0"
        );
        let claimer = {
            let slots = slots.clone();
            thread::spawn(move || claim_one_of(&slots))
        };
        let releaser = {
            let slots = slots.clone();
            thread::spawn(move || {
                slots[0].release();
            })
        };
        let mine = claim_one_of(&slots);
        let theirs = claimer.join().unwrap();
        releaser.join().unwrap();
        if let (Some(a), Some(b)) = (mine, theirs) {
            assert_ne!(a, b, "one slot held by two sends");
        }
        assert!(mine.is_some() || theirs.is_some(), "slot 1 was free throughout");
        // Every slot a claimer got is held (FUTURE), and nothing else is.
        for (i, slot) in slots.iter().enumerate() {
            let held = mine == Some(i) || theirs == Some(i);
            assert_eq!(slot.load() & crate::op_state::FUTURE != 0, held);
        }
    });
}

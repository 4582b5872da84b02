//! Helpers shared by the emulation's integration tests.
#![allow(dead_code)]

use nt::emu::{self, Rule, Violation};
use nt::*;
use std::cell::UnsafeCell;
use std::time::Duration;

/// The pool tag the tests allocate with ("Test" in poolmon).
pub const TAG: ULONG = u32::from_le_bytes(*b"Test");

/// How long a test waits for something that should happen promptly before failing.
pub const BOUND: Duration = Duration::from_secs(30);

/// Takes the recorded violations and asserts there is exactly one, of `rule`.
#[track_caller]
pub fn take_one(rule: Rule) -> Violation {
    let mut taken = emu::take_violations();
    assert_eq!(
        taken.len(),
        1,
        "expected exactly one {rule:?} violation, got: {taken:#?}"
    );
    let v = taken.remove(0);
    assert_eq!(v.rule, rule, "{v}");
    v
}

/// A relative timeout (negative, 100 ns units).
pub fn relative(d: Duration) -> LARGE_INTEGER {
    LARGE_INTEGER::relative_100ns((d.as_nanos() / 100) as i64)
}

/// A pointer that tests move to another thread; the test guarantees the pointee outlives its use.
pub struct SendPtr<T>(pub *mut T);
// SAFETY: only used to hand kernel objects (IRPs, events) to emulated provider / waiter threads, which
// the kernel contract allows; the tests keep the objects alive until those threads are joined.
unsafe impl<T> Send for SendPtr<T> {}
impl<T> SendPtr<T> {
    pub fn get(&self) -> *mut T {
        self.0
    }
}

/// A KEVENT in shared memory (the kernel writes it through a `*mut` while others read it).
pub struct Event(UnsafeCell<KEVENT>);
// SAFETY: a KEVENT is designed to be signalled and waited on from any thread; the emulation accesses
// its state atomically under the dispatcher lock.
unsafe impl Sync for Event {}
unsafe impl Send for Event {}

impl Event {
    pub fn new(kind: EVENT_TYPE, signalled: bool) -> Box<Event> {
        // SAFETY: an all-zero KEVENT is a valid bit pattern (integers and null pointers).
        let event = Box::new(Event(UnsafeCell::new(unsafe { core::mem::zeroed() })));
        // SAFETY: the event is fresh and nobody waits on it.
        unsafe { KeInitializeEvent(event.ptr(), kind, BOOLEAN::from(signalled)) };
        event
    }

    pub fn ptr(&self) -> PKEVENT {
        self.0.get()
    }

    pub fn set(&self) -> LONG {
        // SAFETY: initialised in `new`, alive while `self` is.
        unsafe { KeSetEvent(self.ptr(), 0, FALSE) }
    }

    pub fn state(&self) -> LONG {
        // SAFETY: as for `set`.
        unsafe { KeReadStateEvent(self.ptr()) }
    }

    /// Waits with a relative timeout of `timeout` (`None`: no timeout).
    pub fn wait(&self, timeout: Option<Duration>) -> NTSTATUS {
        let mut t = timeout.map(relative);
        let t_ptr = t.as_mut().map_or(core::ptr::null_mut(), |t| t as *mut LARGE_INTEGER);
        // SAFETY: the event is alive; the timeout outlives the call.
        unsafe { KeWaitForSingleObject(self.ptr().cast(), Executive, KernelMode, FALSE, t_ptr) }
    }
}

//! A small numeric id per host thread, the emulation's analogue of a `KTHREAD` pointer: spin locks
//! store it to know their owner, and reports name the thread by it.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    static ID: Cell<usize> = const { Cell::new(0) };
}

/// The current thread's id (never 0, so 0 can mean "no owner").
pub fn current() -> usize {
    ID.with(|id| {
        if id.get() == 0 {
            id.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        id.get()
    })
}

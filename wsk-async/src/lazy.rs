//! [`install_once`]: a pointer allocated on first use and then shared, lock-free, by whoever races
//! to allocate it. Used for the slots (and IRPs) a connection needs only when it ends, graceful and
//! abortive disconnect ([`EndSlots`](crate::end_slots::EndSlots)), so that an open connection does
//! not hold them.

use crate::sync::{AtomicPtr, Ordering};
use core::ptr;

/// Returns the pointer in `cell`, first installing one from `make` if the cell is null. If another
/// caller installs first, the loser's fresh pointer goes to `discard` (it was never published) and
/// the winner's is returned, so every caller gets the same pointer. `None` if `make` returns null
/// (then the cell stays null and a later call tries again).
///
/// Orderings: the winning CAS is Release, so what `make` initialised is visible to every Acquire
/// load of the cell (the loser's failed CAS, and `SocketCtx::end_slots`). The cell is never reset
/// while it can be read, so there is no ABA.
pub(crate) fn install_once<T>(
    cell: &AtomicPtr<T>,
    make: impl FnOnce() -> *mut T,
    discard: impl FnOnce(*mut T),
) -> Option<*mut T> {
    let current = cell.load(Ordering::Acquire);
    if !current.is_null() {
        return Some(current);
    }
    let fresh = make();
    if fresh.is_null() {
        return None;
    }
    match cell.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(fresh),
        Err(winner) => {
            discard(fresh);
            Some(winner)
        }
    }
}

//! Objects of other emulated subsystems (WSK registrations, sockets...) that must be gone when the
//! session ends: they register here so that they appear in the leak report.

use super::verifier::creation_site;
use std::backtrace::Backtrace;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

pub(super) struct Tracked {
    pub description: String,
    pub created: Option<Backtrace>,
}

static TRACKED: Mutex<BTreeMap<(&'static str, usize), Tracked>> = Mutex::new(BTreeMap::new());

fn table() -> MutexGuard<'static, BTreeMap<(&'static str, usize), Tracked>> {
    TRACKED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Registers the live object `addr` of kind `kind` (e.g. `"WSK socket"`), described by `description`
/// in the leak report; the creation site is captured here. Tracking the same `(kind, addr)` again
/// replaces the entry.
pub fn track(kind: &'static str, addr: usize, description: String) {
    let created = creation_site();
    table().insert((kind, addr), Tracked { description, created });
}

/// Unregisters an object; returns whether it was tracked.
pub fn untrack(kind: &'static str, addr: usize) -> bool {
    table().remove(&(kind, addr)).is_some()
}

/// Whether `(kind, addr)` is tracked.
pub fn is_tracked(kind: &'static str, addr: usize) -> bool {
    table().contains_key(&(kind, addr))
}

/// Calls `f` for every tracked object (for the leak report).
pub(super) fn for_each(mut f: impl FnMut(&'static str, usize, &Tracked)) {
    for (&(kind, addr), tracked) in table().iter() {
        f(kind, addr, tracked);
    }
}

pub(super) fn reset() {
    table().clear();
}

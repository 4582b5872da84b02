//! The socket table: every socket the provider handed out, keyed by the address of its `WSK_SOCKET`
//! header, with the checks made on each call: an unknown pointer, a call after `WskCloseSocket`
//! ([`Rule::CallAfterClose`]), and `WskCloseSocket` while another call is in progress
//! ([`Rule::CloseWhileCallInProgress`]).
//!
//! A closed socket's header stays allocated in a bounded quarantine (like Driver Verifier's special
//! pool), so a stale call is reported instead of reading freed memory.

use super::dispatch::{BASIC_DISPATCH, CONNECTION_DISPATCH, DATAGRAM_DISPATCH, LISTEN_DISPATCH, STREAM_DISPATCH};
use super::registration::Registration;
use super::socket::{Category, SocketCore, SocketState};
use crate::emu::{Rule, violation};
use crate::types::*;
use crate::wsk::*;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Marks a provider call in progress on a socket for as long as it lives.
pub(crate) struct CallGuard {
    pub core: Arc<SocketCore>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let me = crate::host::thread_id::current();
        let mut calls = self.core.calls.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = calls.iter().position(|&t| t == me) {
            calls.swap_remove(i);
        }
    }
}

/// The client-visible header: a heap object (from `Box::into_raw`, so the client's pointer keeps its
/// provenance), freed when its table entry goes.
struct Header(PWSK_SOCKET);

// SAFETY: the header only holds a pointer to a static dispatch table; the provider never writes it
// after creation and frees it only once it is out of the table.
unsafe impl Send for Header {}

impl Drop for Header {
    fn drop(&mut self) {
        // SAFETY: allocated by `Box::into_raw` in `create` and freed only here, once.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

struct Entry {
    _header: Header,
    core: Arc<SocketCore>,
    closed: bool,
}

#[derive(Default)]
struct Table {
    entries: BTreeMap<usize, Entry>,
    /// Closed sockets, oldest first; their headers stay allocated until evicted.
    quarantine: VecDeque<usize>,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

fn table() -> MutexGuard<'static, Option<Table>> {
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

const TRACK_KIND: &str = "WSK socket";

/// Creates a socket of `category` for `registration`; returns the client's pointer and the core.
pub(crate) fn create(
    registration: &Arc<Registration>,
    category: Category,
    family: ADDRESS_FAMILY,
) -> (PWSK_SOCKET, Arc<SocketCore>) {
    let dispatch: *const core::ffi::c_void = match category {
        Category::Basic => &BASIC_DISPATCH as *const WSK_PROVIDER_BASIC_DISPATCH as *const _,
        Category::Listen => &LISTEN_DISPATCH as *const WSK_PROVIDER_LISTEN_DISPATCH as *const _,
        Category::Connection => &CONNECTION_DISPATCH as *const WSK_PROVIDER_CONNECTION_DISPATCH as *const _,
        Category::Stream => &STREAM_DISPATCH as *const WSK_PROVIDER_STREAM_DISPATCH as *const _,
        Category::Datagram => &DATAGRAM_DISPATCH as *const WSK_PROVIDER_DATAGRAM_DISPATCH as *const _,
    };
    let socket: PWSK_SOCKET = Box::into_raw(Box::new(WSK_SOCKET { Dispatch: dispatch }));
    let core = Arc::new_cyclic(|me| SocketCore {
        // Exposed: the client gets the pointer back from `IoStatus.Information`, an integer.
        header: socket.expose_provenance(),
        category,
        family,
        registration: registration.clone(),
        state: Mutex::new(SocketState {
            v6only: family == AF_INET6,
            ..SocketState::default()
        }),
        me: me.clone(),
        calls: Mutex::new(Vec::new()),
        gate: Mutex::new(None),
        gated: AtomicBool::new(false),
        discard: AtomicBool::new(false),
        created_at: crate::emu::creation_site(),
    });
    registration.socket_opened();
    crate::emu::tracking::track(TRACK_KIND, socket.addr(), core.to_string());
    let mut table = table();
    let table = table.get_or_insert_with(Table::default);
    table.entries.insert(
        socket.addr(),
        Entry {
            _header: Header(socket),
            core: core.clone(),
            closed: false,
        },
    );
    (socket, core)
}

/// Enters a provider call on `socket` from `function`: checks that the socket exists and is not
/// closed, and records the call as in progress. On a violation (recording mode) returns the status
/// the call completes with instead.
pub(crate) fn enter(socket: PWSK_SOCKET, function: &str) -> Result<CallGuard, NTSTATUS> {
    let found = {
        let table = table();
        table
            .as_ref()
            .and_then(|t| t.entries.get(&(socket.addr())))
            .map(|e| (e.core.clone(), e.closed))
    };
    let core = match found {
        None => {
            violation(
                Rule::Other("WSK call with a pointer that is not a socket of this provider"),
                &format_args!("{function}({socket:p})"),
                None,
            );
            return Err(STATUS_INVALID_HANDLE);
        }
        Some((core, true)) => {
            violation(
                Rule::CallAfterClose,
                &format_args!("{function} on closed {core}"),
                core.created_at.as_ref(),
            );
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        Some((core, false)) => core,
    };
    core.calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(crate::host::thread_id::current());
    let guard = CallGuard { core };
    if guard.core.gated.load(Ordering::Acquire) {
        let gate = {
            let mut slot = guard.core.gate.lock().unwrap_or_else(PoisonError::into_inner);
            guard.core.gated.store(false, Ordering::Release);
            slot.take()
        };
        if let Some(gate) = gate {
            gate.pass();
        }
    }
    Ok(guard)
}

/// `WskCloseSocket`'s check: no other call may be in progress on the socket (pending IRPs are fine:
/// close cancels them). Returns false after reporting [`Rule::CloseWhileCallInProgress`].
pub(crate) fn check_close(core: &SocketCore) -> bool {
    let others = core.calls_on_other_threads();
    if others == 0 {
        return true;
    }
    violation(
        Rule::CloseWhileCallInProgress,
        &format_args!("WskCloseSocket on {core} while {others} other call(s) on it are in progress"),
        core.created_at.as_ref(),
    );
    false
}

/// Retires a closed socket: its header goes to quarantine, it leaves the leak report, and its
/// registration counts it closed.
pub(crate) fn retire(core: &SocketCore) {
    retire_closing(core);
    core.registration.socket_closed();
}

/// [`retire`], except that the registration still counts the socket open: its close is pending, and
/// whoever completes the close IRP counts it closed then (`WskDeregister` waits for that).
pub(crate) fn retire_closing(core: &SocketCore) {
    crate::emu::tracking::untrack(TRACK_KIND, core.header);
    let evicted = {
        let mut table = table();
        let Some(table) = table.as_mut() else { return };
        let Some(entry) = table.entries.get_mut(&core.header) else {
            return;
        };
        entry.closed = true;
        table.quarantine.push_back(core.header);
        let mut evicted = Vec::new();
        // How many closed sockets keep their header (and so stay detectable) before the oldest is
        // freed: `emu::Checks::closed_sockets`.
        let limit = crate::host::session::closed_socket_quarantine();
        while table.quarantine.len() > limit {
            if let Some(old) = table.quarantine.pop_front() {
                evicted.extend(table.entries.remove(&old));
            }
        }
        evicted
    };
    drop(evicted);
}

/// Removes every socket of `registration` from the table (at `WskDeregister`); returns those still
/// open so the caller can report and force-close them. Closed headers are freed.
pub(crate) fn purge(registration: &Arc<Registration>) -> Vec<Arc<SocketCore>> {
    let removed: Vec<Entry> = {
        let mut table = table();
        let Some(table) = table.as_mut() else { return Vec::new() };
        let keys: Vec<usize> = table
            .entries
            .iter()
            .filter(|(_, e)| Arc::ptr_eq(&e.core.registration, registration))
            .map(|(&k, _)| k)
            .collect();
        table.quarantine.retain(|k| !keys.contains(k));
        keys.iter().filter_map(|k| table.entries.remove(k)).collect()
    };
    let open = removed.iter().filter(|e| !e.closed).map(|e| e.core.clone()).collect();
    drop(removed);
    open
}

/// The live core of a socket pointer, for emulation controls (no checks, no violation).
pub(crate) fn lookup(socket: PWSK_SOCKET) -> Option<Arc<SocketCore>> {
    let table = table();
    table
        .as_ref()?
        .entries
        .get(&(socket.addr()))
        .filter(|e| !e.closed)
        .map(|e| e.core.clone())
}

/// The live cores of every open socket, for emulation controls.
pub(crate) fn open_cores() -> Vec<Arc<SocketCore>> {
    let table = table();
    let Some(table) = table.as_ref() else {
        return Vec::new();
    };
    table
        .entries
        .values()
        .filter(|e| !e.closed)
        .map(|e| e.core.clone())
        .collect()
}

/// Drops every socket (session reset after a test that did not close them).
pub(crate) fn forget_all() {
    let all = table().take();
    drop(all);
}

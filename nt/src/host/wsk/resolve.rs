//! `WskGetAddressInfo` / `WskFreeAddressInfo`: name resolution without a network. It knows
//! `localhost` and numeric IPv4/IPv6 literals; every other name fails as an unknown host does.
//!
//! Facts (Wine's netio test driver, run on Windows 8 and later): a NULL IRP fails with
//! STATUS_INVALID_PARAMETER before anything else, the IRP untouched; a valid call returns
//! STATUS_PENDING, numeric names included; an unknown name completes with STATUS_NOT_FOUND
//! (Windows 7: STATUS_NO_MATCH); a success completes with `Information` 0 and the list in
//! `*Result`, freed with `WskFreeAddressInfo`. Both functions are documented for PASSIVE_LEVEL.
//!
//! How it completes: under `realistic` and `pending` the IRP pends (as on Windows) with a cancel
//! routine armed, and is resolved when the provider delivers its deferred completions
//! ([`super::later`]); `inline` completes in the call; `random` draws. A cancelled resolution
//! completes with STATUS_CANCELLED and no list. A test may hold every resolution pending
//! ([`set_held`]) to catch its client in the middle of one.
//!
//! Invented: the node and service names and the hints are read when the resolution is made, not in
//! the call (Wine's netio hands them to a thread pool; Windows documents nothing), so a client must
//! keep them valid and unchanged until the IRP completes; one that freed them earlier is caught (a
//! use after free under Miri, garbage otherwise).
//!
//! The checks: the list is one block of emulated nonpaged pool (tag [`TAG`]), so a list never freed
//! is a leak in the session's report; `WskFreeAddressInfo` of a list already freed is a
//! [`Rule::DoubleFree`], of any other pointer a [`Rule::UnknownObject`].

use super::irp::{self, Completions, Done, ProviderIrp};
use crate::emu::{Rule, violation};
use crate::types::*;
use crate::wsk::*;
use crate::{IoIsIrpCancelRequested, IoReleaseCancelSpinLock, IoSetCancelRoutine};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The pool tag of the lists (`'WskA'` as a little-endian character literal).
pub const TAG: ULONG = u32::from_le_bytes(*b"WskA");

/// A resolution pending on its IRP.
struct Resolution {
    irp: ProviderIrp,
    /// What was asked (the client's memory, read when the resolution is made).
    node: *const UNICODE_STRING,
    service: *const UNICODE_STRING,
    hints: *const ADDRINFOEXW,
    /// Where the list goes (`PADDRINFOEXW *Result`; the client keeps it alive until the IRP
    /// completes).
    result: *mut PVOID,
    /// A cancel routine is armed (not under [`set_past_cancel`]).
    cancellable: bool,
}

// SAFETY: `irp`, the request's pointers and `result` belong to the provider until the IRP
// completes; as for `ProviderIrp`.
unsafe impl Send for Resolution {}

#[derive(Default)]
struct State {
    pending: Vec<Resolution>,
    /// Lists handed out and not yet freed (their first entry's address).
    live: HashSet<usize>,
    /// Lists freed (for telling a double free from a foreign pointer).
    freed: HashSet<usize>,
    /// See [`set_past_cancel`].
    past_cancel: bool,
    /// See [`set_held`].
    held: bool,
    /// See [`set_defect`].
    defect: Option<ListDefect>,
}

/// A defect the first entry of each returned list carries (a test control: what a client must
/// check in a provider's list rather than trust).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListDefect {
    /// `ai_addrlen` is 8: the family, the port and four more bytes, shorter than any IP socket
    /// address (the bytes after them are not part of the entry's address).
    ShortAddrlen,
    /// `ai_addr` is NULL.
    NullAddr,
    /// The address (and `ai_family`) is of a family that is neither `AF_INET` nor `AF_INET6`.
    UnknownFamily,
    /// Every entry is of such a family (as [`UnknownFamily`](Self::UnknownFamily)), and the last
    /// entry's `ai_next` points back to the first: a cyclic list in which a client finds no address,
    /// so that only a bound on its walk ends the walk. (The list is still one pool block, freed
    /// whole by `WskFreeAddressInfo`.)
    Cycle,
}

/// Sets the defect of the lists returned from now on (`None`: well-formed lists).
pub(crate) fn set_defect(defect: Option<ListDefect>) {
    with_state(|st| st.defect = defect);
}

/// While on, a pending resolution has no cancel routine: `IoCancelIrp` returns FALSE and the
/// resolution completes with its list when the provider delivers it, whoever still waits for it. A
/// provider may refuse a cancel (the documented contract of `IoCancelIrp`); this is the case of a
/// client that dropped its resolution and must still free the list that arrives.
pub(crate) fn set_past_cancel(on: bool) {
    with_state(|st| st.past_cancel = on);
}

/// While on, every resolution pends, whatever the schedule, and stays pending until turned off
/// (a test control: a name service that takes its time). A held resolution keeps its cancel routine
/// (unless [`set_past_cancel`] or the Wine 8 mode took it away), so `IoCancelIrp` ends it with
/// STATUS_CANCELLED. Turning it off lets the provider deliver what it held.
pub(crate) fn set_held(on: bool) {
    with_state(|st| st.held = on);
    if !on {
        super::later::kick();
    }
}

/// How many resolutions pend (held or not).
pub(crate) fn pending() -> usize {
    with_state(|st| st.pending.len())
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn state() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    f(state().get_or_insert_with(State::default))
}

/// The addresses `name` stands for, in the order they are returned, or the unknown-host status.
fn lookup(name: &str, port: u16) -> Result<Vec<SocketAddr>, NTSTATUS> {
    if name.eq_ignore_ascii_case("localhost") {
        // Invented: the order (IPv6 first). Windows documents none; with ::1 first, a client that
        // tries only the first address fails against a server that listens on IPv4 only.
        return Ok(vec![
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        ]);
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => Ok(vec![SocketAddr::new(ip, port)]),
        // Windows 8 and later (Wine's netio test, run on Windows).
        Err(_) => Err(STATUS_NOT_FOUND),
    }
}

/// The text of a counted UTF-16 string; `None` for a malformed one (odd length, no buffer, not UTF-16).
///
/// # Safety
/// `s` is null or a valid `UNICODE_STRING` whose buffer holds `Length` bytes.
unsafe fn text(s: *const UNICODE_STRING) -> Option<Option<String>> {
    // SAFETY: caller's contract.
    let s = unsafe { s.as_ref() }?;
    if s.Length % 2 != 0 || s.Length > s.MaximumLength || (s.Length != 0 && s.Buffer.is_null()) {
        return Some(None);
    }
    let units = if s.Length == 0 {
        &[][..]
    } else {
        // SAFETY: `Length` bytes at `Buffer` (caller's contract), checked non-null and even above.
        unsafe { std::slice::from_raw_parts(s.Buffer, usize::from(s.Length) / 2) }
    };
    Some(String::from_utf16(units).ok())
}

/// `WskGetAddressInfo`. See the module documentation.
///
/// # Safety
/// `Irp` is NULL or a live IRP the caller hands over; the strings and hints are null or valid, and
/// `Result` valid for a write, until the IRP completes.
pub(crate) unsafe fn get_address_info(
    Client: PWSK_CLIENT,
    NodeName: *mut UNICODE_STRING,
    ServiceName: *mut UNICODE_STRING,
    Hints: *const ADDRINFOEXW,
    Result: *mut PVOID,
    Irp: PIRP,
) -> NTSTATUS {
    // A NULL IRP: STATUS_INVALID_PARAMETER, without a report (Windows, Wine's netio test).
    // SAFETY: forwarded from the caller's contract.
    if !unsafe { irp::take(Irp) } {
        return STATUS_INVALID_PARAMETER;
    }
    let irp = ProviderIrp(Irp);
    if !crate::host::irql::require_max("WskGetAddressInfo", PASSIVE_LEVEL) {
        return finish_now(irp, STATUS_INVALID_DEVICE_STATE);
    }
    if let Err(status) = super::client::client(Client, "WskGetAddressInfo") {
        return finish_now(irp, status);
    }
    let resolution = Resolution {
        irp,
        node: NodeName,
        service: ServiceName,
        hints: Hints,
        result: Result,
        cancellable: true,
    };
    if !with_state(|st| st.held) && !defer() {
        // SAFETY: forwarded from the caller's contract.
        let (status, done) = unsafe { conclude(resolution) };
        irp::complete_all(Completions::one(done));
        return status;
    }
    irp::mark_pending(irp);
    let cancelled = with_state(|st| {
        // Wine's netio resolves on a thread pool and arms no cancel routine.
        if st.past_cancel || super::wine8::on() {
            st.pending.push(Resolution {
                cancellable: false,
                ..resolution
            });
            return false;
        }
        st.pending.push(resolution);
        // SAFETY: the provider owns the IRP (taken, not completed); the cancel routine finds it in
        // `pending`, which it locks first.
        unsafe {
            IoSetCancelRoutine(Irp, Some(cancel_routine));
            if IoIsIrpCancelRequested(Irp) && IoSetCancelRoutine(Irp, None).is_some() {
                st.pending.pop();
                return true;
            }
        }
        false
    });
    if cancelled {
        irp::complete_all(Completions::one(Done::ended(irp, STATUS_CANCELLED, 0)));
    } else {
        super::later::kick();
    }
    STATUS_PENDING
}

/// The answer to a request: the addresses (or the failure status), the socket type and protocol
/// of the hints.
///
/// # Safety
/// The strings and hints are null or valid (`get_address_info`'s contract, until the IRP completes).
unsafe fn answer(
    NodeName: *const UNICODE_STRING,
    ServiceName: *const UNICODE_STRING,
    Hints: *const ADDRINFOEXW,
) -> (Result<Vec<SocketAddr>, NTSTATUS>, i32, i32) {
    // SAFETY: forwarded from the caller's contract.
    let (node, service, hints) = unsafe { (text(NodeName), text(ServiceName), Hints.as_ref()) };
    let (socktype, protocol, family) = hints.map_or((0, 0, 0), |h| (h.ai_socktype, h.ai_protocol, h.ai_family));
    let answer = match (node, service) {
        (_, Some(None)) | (Some(None), _) | (None, None) => Err(STATUS_INVALID_PARAMETER),
        // Invented: without a node name Windows returns the local or wildcard addresses; this
        // provider knows none, and fails.
        (None, Some(Some(_))) => Err(STATUS_NOT_FOUND),
        // Invented: a service that is not a decimal port (a name from the services database) is
        // unknown here.
        (Some(Some(node)), service) => match service.flatten().map(|s| s.parse::<u16>()) {
            None => lookup(&node, 0),
            Some(Ok(port)) => lookup(&node, port),
            Some(Err(_)) => Err(STATUS_NOT_FOUND),
        },
    };
    let answer = answer.and_then(|addrs| {
        let kept: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| match family {
                0 => true,
                f if f == i32::from(AF_INET) => a.is_ipv4(),
                f if f == i32::from(AF_INET6) => a.is_ipv6(),
                _ => false,
            })
            .collect();
        if kept.is_empty() {
            Err(STATUS_NOT_FOUND)
        } else {
            Ok(kept)
        }
    });
    (answer, socktype, protocol)
}

/// Whether a resolution pends (`realistic` and `pending`: as Windows does), completes in the call
/// (`inline`) or as drawn (`random`).
fn defer() -> bool {
    use super::schedule::{Schedule, current};
    match current() {
        Schedule::Inline => false,
        Schedule::Realistic | Schedule::Pending => true,
        Schedule::Random(_) => super::schedule::defer(),
    }
}

/// Completes `irp` in the call with `status` (a rejected call).
fn finish_now(irp: ProviderIrp, status: NTSTATUS) -> NTSTATUS {
    irp::complete_all(Completions::one(Done::new(irp, status, 0)));
    status
}

/// Makes the resolution (reading the request now) and writes the list of a successful one to
/// `*Result`; returns the completion.
///
/// # Safety
/// The resolution's IRP has not completed (so the client keeps its request and result cell valid).
unsafe fn conclude(resolution: Resolution) -> (NTSTATUS, Done) {
    // SAFETY: the request is valid until the IRP completes (caller's contract).
    let (answer, socktype, protocol) = unsafe { answer(resolution.node, resolution.service, resolution.hints) };
    let status = match answer {
        Err(status) => status,
        Ok(addrs) => match allocate(&addrs, socktype, protocol) {
            None => STATUS_INSUFFICIENT_RESOURCES,
            Some(list) => {
                // SAFETY: `Result` is valid for a write until the IRP completes (caller's contract
                // of `get_address_info`), which happens after this.
                unsafe { *resolution.result = list.cast() };
                STATUS_SUCCESS
            }
        },
    };
    // Invented: on failure `*Result` is left as it was (Windows documents no value for it).
    (status, Done::new(resolution.irp, status, 0))
}

/// One pool block: the entries, then their addresses (`SOCKADDR_IN6`-sized each). Recorded as live.
fn allocate(addrs: &[SocketAddr], socktype: i32, protocol: i32) -> Option<*mut ADDRINFOEXW> {
    const SLOT: usize = size_of::<SOCKADDR_IN6>();
    let entry = size_of::<ADDRINFOEXW>();
    let size = addrs.len() * (entry + SLOT);
    // SAFETY: a plain allocation; the emulation's pool is fault-injectable and tracks the block.
    let block = unsafe { crate::ExAllocatePoolWithTag(NonPagedPool, size, TAG) }.cast::<u8>();
    if block.is_null() {
        return None;
    }
    let entries = block.cast::<ADDRINFOEXW>();
    let defect = with_state(|st| st.defect);
    for (i, addr) in addrs.iter().enumerate() {
        // SAFETY: the block holds `addrs.len()` entries, then as many address slots; the pool
        // aligns blocks for any of these types (entries first, slots at a multiple of 8 after them).
        unsafe {
            let sa = block.add(addrs.len() * entry + i * SLOT).cast::<SOCKADDR>();
            super::addr::write(sa, *addr);
            let next = if i + 1 < addrs.len() {
                entries.add(i + 1)
            } else if defect == Some(ListDefect::Cycle) {
                entries
            } else {
                core::ptr::null_mut()
            };
            entries.add(i).write(ADDRINFOEXW {
                ai_family: i32::from(super::addr::family(addr)),
                ai_socktype: socktype,
                ai_protocol: protocol,
                ai_addrlen: if addr.is_ipv4() { size_of::<SOCKADDR_IN>() } else { SLOT },
                ai_addr: sa,
                ai_next: next,
                ..ADDRINFOEXW::zeroed()
            });
            if defect == Some(ListDefect::Cycle) {
                unknown_family(&mut *entries.add(i), sa);
            }
            if i == 0 {
                let first = &mut *entries;
                match defect {
                    None | Some(ListDefect::Cycle) => {}
                    Some(ListDefect::ShortAddrlen) => first.ai_addrlen = 8,
                    Some(ListDefect::NullAddr) => first.ai_addr = core::ptr::null_mut(),
                    Some(ListDefect::UnknownFamily) => unknown_family(first, sa),
                }
            }
        }
    }
    with_state(|st| {
        st.freed.remove(&entries.addr());
        st.live.insert(entries.addr());
    });
    Some(entries)
}

/// Makes `entry`, whose address is at `sa`, of a family unknown to IP clients: AF_NETBIOS, one a
/// name service may return.
///
/// # Safety
/// `sa` points to the entry's address slot (`SOCKADDR_IN6`-sized).
unsafe fn unknown_family(entry: &mut ADDRINFOEXW, sa: *mut SOCKADDR) {
    const AF_NETBIOS: u16 = 17;
    entry.ai_family = i32::from(AF_NETBIOS);
    // SAFETY: caller's contract.
    unsafe { (*sa).sa_family = AF_NETBIOS };
}

/// The cancel routine of a pending resolution: completes it with STATUS_CANCELLED, no list.
unsafe extern "system" fn cancel_routine(_device: PDEVICE_OBJECT, irp: PIRP) {
    // SAFETY: IoCancelIrp calls us with the cancel spin lock held and the routine swapped out: the IRP
    // is ours to complete.
    unsafe { IoReleaseCancelSpinLock((*irp).CancelIrql) };
    let found = with_state(|st| {
        let at = st.pending.iter().position(|r| r.irp.0 == irp)?;
        Some(st.pending.remove(at))
    });
    if let Some(resolution) = found {
        irp::complete_all(Completions::one(Done::ended(resolution.irp, STATUS_CANCELLED, 0)));
    }
}

/// Whether a resolution pends that the provider is to deliver (not held by [`set_held`]).
pub(crate) fn any() -> bool {
    with_state(|st| !st.held && !st.pending.is_empty())
}

/// Resolves every pending resolution whose cancel routine the provider could disarm (the others
/// are being cancelled); returns how many completed. At DISPATCH_LEVEL, as from a DPC. Nothing
/// while [`set_held`] holds them.
pub(crate) fn deliver() -> usize {
    let claimed: Vec<Resolution> = with_state(|st| {
        if st.held {
            return Vec::new();
        }
        let (mine, cancelling): (Vec<_>, Vec<_>) =
            st.pending.drain(..).partition(|r| !r.cancellable || irp::claim(r.irp));
        st.pending = cancelling;
        mine
    });
    let count = claimed.len();
    for resolution in claimed {
        crate::emu::at_dispatch(|| {
            // SAFETY: claimed, not completed: the client's request and result cell are valid.
            let (_, done) = unsafe { conclude(resolution) };
            irp::complete_all(Completions::one(done));
        });
    }
    count
}

/// `WskFreeAddressInfo`. See the module documentation.
///
/// # Safety
/// `AddrInfo` is a list `WskGetAddressInfo` returned and not yet freed (checked).
pub(crate) unsafe fn free_address_info(Client: PWSK_CLIENT, AddrInfo: PVOID) {
    crate::host::irql::require_max("WskFreeAddressInfo", PASSIVE_LEVEL);
    if super::client::client(Client, "WskFreeAddressInfo").is_err() {
        return;
    }
    let addr = AddrInfo.addr();
    let known = with_state(|st| {
        if st.live.remove(&addr) {
            st.freed.insert(addr);
            Ok(())
        } else {
            Err(st.freed.contains(&addr))
        }
    });
    match known {
        // SAFETY: a live list of ours: one pool block with our tag.
        Ok(()) => unsafe { crate::ExFreePoolWithTag(AddrInfo, TAG) },
        Err(true) => violation(
            Rule::DoubleFree,
            &format_args!("WskFreeAddressInfo({AddrInfo:p}) of a list already freed"),
            None,
        ),
        Err(false) => violation(
            Rule::UnknownObject,
            &format_args!("WskFreeAddressInfo({AddrInfo:p}) of a pointer WskGetAddressInfo did not return"),
            None,
        ),
    }
}

/// A fresh session: pending resolutions (whose IRPs belong to the ended session) and the record of
/// lists are forgotten; the pool's leak report names the lists never freed.
pub(crate) fn reset() {
    *state() = None;
}

/// A failed test's session end, while it unwinds: forgets the pending resolutions without
/// completing their IRPs. The lists handed out stay known, so that the unwinding can still free
/// them. A forgotten resolution's cancel routine, if called later, finds nothing to cancel.
pub(crate) fn forget_pending() {
    if let Some(st) = state().as_mut() {
        st.pending.clear();
    }
}

// The address slots start right after the entries: aligned for a SOCKADDR_IN6 (4) if the entries'
// size is a multiple of 8 and each slot's size a multiple of 4.
const _: () = assert!(size_of::<ADDRINFOEXW>() % 8 == 0 && size_of::<SOCKADDR_IN6>() % 4 == 0);

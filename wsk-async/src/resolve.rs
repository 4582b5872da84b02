//! [`Registration::resolve`]: name resolution with `WskGetAddressInfo`, as a future.
//!
//! What the provider borrows until the IRP completes — the host name and the service as counted
//! UTF-16 strings, the hints, and the cell it writes the result list's pointer to — lives in a
//! [`Request`] at the end of a socket context's pool block ([`Kind::Resolving`]), so it stays valid
//! whatever happens to the future, and the IRP is the context's one slot ([`SEND`]), driven by the
//! same slot protocol as a connect. The provider's list (`ADDRINFOEXW`) must be freed with
//! `WskFreeAddressInfo` exactly once, at PASSIVE_LEVEL:
//!
//! * by the future, after it copied the addresses out;
//! * by whoever disposes of an unread result (`Op::dispose_unread`: the future dropped after the
//!   completion and before reading it);
//! * for a completion that arrives after the future was dropped, by the registration's deferred
//!   closer: the completion routine keeps the slot and queues it as it does for an unread socket, and
//!   the drain frees the list (`Op::close_kept_socket`).

use crate::addr;
use crate::creating::Creating;
use crate::ctx::{Kind, SEND, SocketCtx};
use crate::error::{Result, WskError};
use crate::registration::{RegInner, Registration};
use crate::slot::Phase;
use core::future::Future;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll, ready};
use nt::*;

/// The longest host name [`Registration::resolve`] accepts, in UTF-16 code units (a DNS name has at
/// most 253 characters).
pub const MAX_HOST_NAME: usize = 255;

/// How many addresses a [`ResolvedAddrs`] holds.
pub const MAX_RESOLVED: usize = 8;

/// How many entries of the provider's list [`Registration::resolve`] examines at most: the walk
/// stops there even if `ai_next` goes on, so a broken provider's cyclic list cannot keep it
/// spinning at PASSIVE_LEVEL. A real list is far shorter (a name has a handful of addresses).
pub const MAX_LIST_ENTRIES: usize = 64;

/// The decimal digits of a `u16`.
const PORT_DIGITS: usize = 5;

/// What `WskGetAddressInfo` borrows: in the context's block, after the context.
pub(crate) struct Request {
    node: UNICODE_STRING,
    service: UNICODE_STRING,
    hints: ADDRINFOEXW,
    /// Written by the provider on success: the list to free.
    list: PADDRINFOEXW,
    /// NUL-terminated, though `UNICODE_STRING` needs no terminator: Wine's netio passes the buffer to
    /// `GetAddrInfoExW` as a C string.
    node_buf: [u16; MAX_HOST_NAME + 1],
    service_buf: [u16; PORT_DIGITS + 1],
}

const REQUEST_OFFSET: usize = size_of::<SocketCtx>().next_multiple_of(align_of::<Request>());

/// Bytes of a [`Kind::Resolving`] context's block.
pub(crate) const BLOCK_SIZE: usize = REQUEST_OFFSET + size_of::<Request>();

const _: () = assert!(align_of::<Request>() <= crate::pool_mem::POOL_ALIGNMENT);

/// Whether the provider left a list in a resolving context's request.
///
/// # Safety
/// As for [`take_list`].
pub(crate) unsafe fn has_list(ctx: *const SocketCtx) -> bool {
    // SAFETY: caller's contract; a raw place, no reference to the whole request.
    unsafe { !ptr::addr_of!((*request(ctx)).list).read().is_null() }
}

/// The request of a resolving context, from a pointer with the block's provenance
/// ([`Op::ctx_ptr`](crate::op::Op::ctx_ptr)).
///
/// # Safety
/// `ctx` points to a live [`Kind::Resolving`] context's block (`BLOCK_SIZE` bytes): another kind's
/// block ends before the request.
unsafe fn request(ctx: *const SocketCtx) -> *mut Request {
    // SAFETY: a resolving context's block is BLOCK_SIZE bytes (caller's contract); the request is
    // at REQUEST_OFFSET inside it.
    unsafe { ctx.cast::<u8>().cast_mut().add(REQUEST_OFFSET).cast() }
}

/// Takes the list an unread successful resolution left in its context's request (null if none).
///
/// # Safety
/// `ctx` is a resolving context's pointer with the block's provenance; the caller owns its slot's
/// result exclusively, after the completion.
pub(crate) unsafe fn take_list(ctx: *const SocketCtx) -> PADDRINFOEXW {
    // SAFETY: caller's contract; a raw place, no reference to the whole request.
    unsafe { ptr::replace(ptr::addr_of_mut!((*request(ctx)).list), ptr::null_mut()) }
}

/// `WskFreeAddressInfo(list)`.
///
/// # Safety
/// `list` came from this registration's provider and is freed once, here, at PASSIVE_LEVEL (as
/// documented; `Op::dispose_unread` and `RegInner::drain_orphans` leave a list alone above it).
pub(crate) unsafe fn free_list(registration: &RegInner, list: PADDRINFOEXW) {
    if let Some(free) = registration.dispatch().WskFreeAddressInfo {
        // SAFETY: caller's contract.
        unsafe { free(registration.provider().Client, list.cast()) };
    }
}

/// Up to [`MAX_RESOLVED`] addresses, in the provider's order; the provider's further addresses are
/// dropped. No heap: it is copied out of the provider's list before that list is freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedAddrs {
    addrs: [SocketAddr; MAX_RESOLVED],
    len: usize,
}

impl ResolvedAddrs {
    const fn new() -> Self {
        Self {
            addrs: [SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)); MAX_RESOLVED],
            len: 0,
        }
    }

    fn push(&mut self, addr: SocketAddr) {
        if let Some(slot) = self.addrs.get_mut(self.len) {
            *slot = addr;
            self.len += 1;
        }
    }

    /// How many addresses.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No address.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The addresses, in the provider's order.
    pub fn iter(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.addrs[..self.len].iter().copied()
    }

    /// The first address, if any.
    pub fn first(&self) -> Option<SocketAddr> {
        self.iter().next()
    }
}

impl IntoIterator for ResolvedAddrs {
    type Item = SocketAddr;
    type IntoIter = core::iter::Take<core::array::IntoIter<SocketAddr, MAX_RESOLVED>>;

    fn into_iter(self) -> Self::IntoIter {
        self.addrs.into_iter().take(self.len)
    }
}

/// The future of [`Registration::resolve`].
pub struct Resolve<'a> {
    registration: &'a Registration,
    /// A failure found before anything was submitted (bad host name, no pool), reported by the
    /// first poll.
    early: Option<WskError>,
    creating: Creating,
    finished: bool,
}

impl Registration {
    /// Resolves `host` (a name or a numeric IPv4/IPv6 address) with `WskGetAddressInfo`, for TCP
    /// (`SOCK_STREAM`, `IPPROTO_TCP`) and any family, with the numeric service `port`: the addresses
    /// in the provider's order, at most [`MAX_RESOLVED`] of them (the rest are dropped), from at most
    /// the first [`MAX_LIST_ENTRIES`] entries of the provider's list.
    ///
    /// On success the [`ResolvedAddrs`] holds at least one address. Fails with the provider's status
    /// (e.g. `STATUS_NOT_FOUND` on Windows 8 and later, and in the emulation, for a name that does
    /// not resolve); with `STATUS_NOT_FOUND` too when the provider succeeds with no usable address
    /// (an empty list, or one whose every entry is skipped as malformed or not IP), the status an
    /// unknown name gets, so `first()` of a success is always `Some`;
    /// `STATUS_INVALID_PARAMETER` for an empty host or one containing NUL,
    /// `STATUS_NAME_TOO_LONG` beyond [`MAX_HOST_NAME`] UTF-16 units (those two without calling the
    /// provider), `STATUS_INSUFFICIENT_RESOURCES` without pool.
    ///
    /// The request lives in nonpaged pool until the IRP completes; dropping the pending future
    /// cancels the IRP, and a list that arrives anyway is freed by the registration's deferred
    /// closer. Poll it at PASSIVE_LEVEL, which `WskGetAddressInfo` and `WskFreeAddressInfo` require:
    /// a poll above it fails with [`WskError::is_invalid_state`] and gives the resolution up (as a
    /// drop does). It may be dropped at IRQL <= DISPATCH_LEVEL: above PASSIVE_LEVEL an unread list
    /// is left to the deferred closer's work item.
    pub fn resolve<'a>(&'a self, host: &str, port: u16) -> Resolve<'a> {
        let mut creating = Creating::new(Kind::Resolving, SEND);
        let early = encode_len(host).and_then(|_| {
            let (ctx, _) = creating.ensure(self.inner())?;
            let ctx = ctx.slot(SEND).ctx_ptr();
            // SAFETY: a fresh resolving context (its block's pointer), nothing submitted: the
            // request is ours to write.
            unsafe { write_request(request(ctx), host, port) };
            Ok(())
        });
        Resolve {
            registration: self,
            early: early.err(),
            creating,
            finished: false,
        }
    }
}

/// The host's length in UTF-16 units, if acceptable.
fn encode_len(host: &str) -> Result<usize> {
    let len = host.encode_utf16().count();
    if len == 0 || host.contains('\0') {
        return Err(WskError::from_status(STATUS_INVALID_PARAMETER));
    }
    if len > MAX_HOST_NAME {
        return Err(WskError::from_status(STATUS_NAME_TOO_LONG));
    }
    Ok(len)
}

/// Fills a request: the strings (pointing into the request itself, which never moves), TCP hints,
/// no list yet.
///
/// # Safety
/// `req` points to a resolving context's request that nobody else uses yet; `host` passed
/// [`encode_len`].
unsafe fn write_request(req: *mut Request, host: &str, port: u16) {
    let mut node_buf = [0u16; MAX_HOST_NAME + 1];
    let mut node_len = 0;
    for (slot, unit) in node_buf.iter_mut().zip(host.encode_utf16()) {
        *slot = unit;
        node_len += 1;
    }
    let mut service_buf = [0u16; PORT_DIGITS + 1];
    let mut digits = [0u16; PORT_DIGITS];
    let (mut n, mut value) = (0, port);
    loop {
        digits[n] = u16::from(b'0') + value % 10;
        n += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for (i, digit) in digits[..n].iter().rev().enumerate() {
        service_buf[i] = *digit;
    }
    let mut hints = ADDRINFOEXW::zeroed();
    hints.ai_family = i32::from(AF_UNSPEC);
    hints.ai_socktype = i32::from(SOCK_STREAM);
    hints.ai_protocol = IPPROTO_TCP as i32;
    // SAFETY: caller's contract; the buffers' addresses are taken after the request is in place.
    unsafe {
        req.write(Request {
            node: UNICODE_STRING {
                Length: 0,
                MaximumLength: 0,
                Buffer: ptr::null_mut(),
            },
            service: UNICODE_STRING {
                Length: 0,
                MaximumLength: 0,
                Buffer: ptr::null_mut(),
            },
            hints,
            list: ptr::null_mut(),
            node_buf,
            service_buf,
        });
        (*req).node = UNICODE_STRING {
            Length: (node_len * 2) as u16,
            MaximumLength: ((node_len + 1) * 2) as u16,
            Buffer: ptr::addr_of_mut!((*req).node_buf).cast(),
        };
        (*req).service = UNICODE_STRING {
            Length: (n * 2) as u16,
            MaximumLength: ((n + 1) * 2) as u16,
            Buffer: ptr::addr_of_mut!((*req).service_buf).cast(),
        };
    }
}

/// Copies the addresses of `list` out (at most [`MAX_RESOLVED`]). An entry is skipped unless its
/// `ai_addr` is non-null and its `ai_addrlen` covers the whole socket address of the family it
/// names (`SOCKADDR_IN` / `SOCKADDR_IN6`; other families are skipped): the provider's length is not
/// trusted to be enough, nor the bytes beyond it to be the address. At most [`MAX_LIST_ENTRIES`]
/// entries are examined, whatever `ai_next` says.
///
/// # Safety
/// `list` is a live list from the provider, read at PASSIVE_LEVEL (it may be paged).
unsafe fn copy_out(list: PADDRINFOEXW) -> ResolvedAddrs {
    let mut out = ResolvedAddrs::new();
    let mut entry = list;
    let mut examined = 0;
    while !entry.is_null() && out.len() < MAX_RESOLVED && examined < MAX_LIST_ENTRIES {
        examined += 1;
        // SAFETY: a live entry of the provider's list, whose `ai_addr` holds `ai_addrlen` bytes;
        // the family is read only if those cover it, the rest only if they cover its address.
        unsafe {
            let e = entry.read();
            if !e.ai_addr.is_null() && e.ai_addrlen >= size_of::<ADDRESS_FAMILY>() {
                let needed = match ptr::addr_of!((*e.ai_addr).sa_family).read_unaligned() {
                    AF_INET => size_of::<SOCKADDR_IN>(),
                    AF_INET6 => size_of::<SOCKADDR_IN6>(),
                    _ => usize::MAX,
                };
                if e.ai_addrlen >= needed {
                    let mut storage = SOCKADDR_STORAGE::default();
                    ptr::copy_nonoverlapping(e.ai_addr.cast::<u8>(), ptr::addr_of_mut!(storage).cast::<u8>(), needed);
                    if let Some(addr) = addr::from_storage(&storage) {
                        out.push(addr);
                    }
                }
            }
            entry = e.ai_next;
        }
    }
    out
}

impl Future for Resolve<'_> {
    type Output = Result<ResolvedAddrs>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<ResolvedAddrs>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(Err(WskError::INVALID_STATE));
        }
        if let Some(error) = this.early.take() {
            this.finished = true;
            return Poll::Ready(Err(error));
        }
        if KeGetCurrentIrql() > PASSIVE_LEVEL {
            // Neither `WskGetAddressInfo` nor `WskFreeAddressInfo` may be called here, nor the list
            // (which may be paged) read: give the resolution up. Dropping the context cancels a
            // pending IRP and hands a list already there, or arriving later, to the deferred closer.
            this.finished = true;
            drop(core::mem::replace(
                &mut this.creating,
                Creating::new(Kind::Resolving, SEND),
            ));
            return Poll::Ready(Err(WskError::INVALID_STATE));
        }
        let registration = this.registration.inner();
        registration.drain_orphans();
        let (ctx, slot) = this.creating.ensure(registration)?;
        let op = ctx.slot(SEND);
        if slot.phase() != Phase::Submitted {
            ready!(slot.poll_acquire(op, cx))?;
            let get = registration.dispatch().WskGetAddressInfo;
            let client = registration.provider().Client;
            // SAFETY: the slot is ours; the request lives in the resolving context's block until
            // it is freed, after the completion; raw places only (the provider writes `list`).
            unsafe {
                let req = request(op.ctx_ptr());
                ptr::addr_of_mut!((*req).list).write(ptr::null_mut());
                op.set_produces_address_info(true);
                let node = ptr::addr_of_mut!((*req).node);
                let service = ptr::addr_of_mut!((*req).service);
                let hints = ptr::addr_of_mut!((*req).hints);
                let list = ptr::addr_of_mut!((*req).list);
                slot.start(op, |irp| {
                    get.map(|f| {
                        f(
                            client,
                            node,
                            service,
                            NS_ALL,
                            ptr::null_mut(),
                            hints.cast(),
                            list.cast(),
                            ptr::null_mut(),
                            ptr::null_mut(),
                            irp,
                        )
                    })
                });
            }
        }
        let iosb = ready!(slot.poll_complete(op, cx));
        // SAFETY: the slot is still ours after the completion: the result is ours to read.
        let list = unsafe {
            op.set_produces_address_info(false);
            take_list(op.ctx_ptr())
        };
        slot.release(op);
        this.finished = true;
        let result = match WskError::check(iosb.Status) {
            // SAFETY: a successful call's live list, at PASSIVE_LEVEL (checked above).
            Ok(()) => match unsafe { copy_out(list) } {
                // No usable address (an empty list, or every entry skipped): as an unknown name.
                addrs if addrs.is_empty() => Err(WskError::from_status(STATUS_NOT_FOUND)),
                addrs => Ok(addrs),
            },
            Err(error) => Err(error),
        };
        if !list.is_null() {
            // SAFETY: the provider's list, read above and freed once, here (PASSIVE_LEVEL: checked
            // above).
            unsafe { free_list(registration, list) };
        }
        // The context is no longer needed: free it now rather than with the future.
        drop(core::mem::replace(
            &mut this.creating,
            Creating::new(Kind::Resolving, SEND),
        ));
        Poll::Ready(result)
    }
}

//! A WSK client written against the raw ABI, the way a C driver uses it: a registration and captured
//! provider NPI, one IRP per operation whose completion routine signals a KEVENT and returns
//! STATUS_MORE_PROCESSING_REQUIRED, nonpaged buffers described by MDLs, and every call made through
//! the dispatch table the socket's `Dispatch` points to. Shared by the `wsk_*` tests.
#![allow(dead_code)]

pub mod datagram;

use core::ptr;
use nt::emu::wsk::{MemoryNetwork, Peer};
use nt::*;
use std::cell::UnsafeCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// Pool tag of the test driver ("WskT").
pub const TAG: ULONG = u32::from_le_bytes(*b"WskT");

/// How long a test waits for something that must happen before it fails.
pub const BOUND: Duration = Duration::from_secs(30);

static CLIENT_DISPATCH: WSK_CLIENT_DISPATCH = WSK_CLIENT_DISPATCH {
    Version: MAKE_WSK_VERSION(1, 0),
    Reserved: 0,
    WskClientEvent: None,
};

/// The driver's WSK globals: registration storage and the captured provider NPI.
pub struct Client {
    registration: Box<UnsafeCell<WSK_REGISTRATION>>,
    _client_npi: Box<WSK_CLIENT_NPI>,
    pub npi: WSK_PROVIDER_NPI,
}

// SAFETY: a registration and the provider NPI may be used from any thread (the kernel's rules, which
// the emulation checks, still apply); tests move a Client to another thread only to wait there.
unsafe impl Send for Client {}

impl Client {
    /// `WskRegister` then `WskCaptureProviderNPI(WSK_NO_WAIT)`.
    pub fn register() -> Client {
        let mut client = Self::register_only();
        let status = client.capture(WSK_NO_WAIT);
        assert_eq!(status, STATUS_SUCCESS, "WskCaptureProviderNPI");
        client
    }

    /// `WskRegister` only; capture with [`capture`](Self::capture).
    pub fn register_only() -> Client {
        let mut client_npi = Box::new(WSK_CLIENT_NPI {
            ClientContext: ptr::null_mut(),
            Dispatch: &CLIENT_DISPATCH,
        });
        let registration = Box::new(UnsafeCell::new(WSK_REGISTRATION::zeroed()));
        // SAFETY: both structures outlive the registration (owned by the returned Client).
        let status = unsafe { WskRegister(&mut *client_npi, registration.get()) };
        assert_eq!(status, STATUS_SUCCESS, "WskRegister");
        Client {
            registration,
            _client_npi: client_npi,
            npi: WSK_PROVIDER_NPI::zeroed(),
        }
    }

    pub fn registration(&self) -> PWSK_REGISTRATION {
        self.registration.get()
    }

    /// `WskCaptureProviderNPI` into `self.npi`.
    pub fn capture(&mut self, timeout_ms: ULONG) -> NTSTATUS {
        // SAFETY: registered storage; `npi` is valid for a write.
        unsafe { WskCaptureProviderNPI(self.registration(), timeout_ms, &mut self.npi) }
    }

    /// `WskReleaseProviderNPI` then `WskDeregister`.
    pub fn deregister(self) {
        // SAFETY: registered storage, captured once.
        unsafe {
            WskReleaseProviderNPI(self.registration());
            WskDeregister(self.registration());
        }
    }

    fn dispatch(&self) -> &WSK_PROVIDER_DISPATCH {
        // SAFETY: captured; the provider's table is static.
        unsafe { &*self.npi.Dispatch }
    }

    /// `WskSocket`, waiting for the IRP; the new socket comes back in `IoStatus.Information`.
    pub fn socket(&self, family: ADDRESS_FAMILY, flags: ULONG) -> PWSK_SOCKET {
        let op = IrpOp::new();
        let f = self.dispatch().WskSocket.expect("WskSocket");
        // SAFETY: valid client handle and a fresh IRP with our completion routine.
        let returned = unsafe {
            f(
                self.npi.Client,
                family,
                SOCK_STREAM,
                IPPROTO_TCP,
                flags,
                ptr::null_mut(),
                ptr::null(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                op.start(),
            )
        };
        let (status, information) = op.wait();
        assert_eq!(status, STATUS_SUCCESS, "WskSocket");
        // Inline, or later under a schedule that defers completions.
        assert!(
            returned == STATUS_SUCCESS || returned == STATUS_PENDING,
            "WskSocket returned {returned:#x}"
        );
        std::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information)
    }

    /// `WskSocketConnect`; returns what the call returned (the result comes through `op`).
    pub fn socket_connect(&self, local: &Addr, remote: &Addr, op: &IrpOp) -> NTSTATUS {
        let f = self.dispatch().WskSocketConnect.expect("WskSocketConnect");
        // SAFETY: valid client handle; the addresses and the IRP outlive the operation.
        unsafe {
            f(
                self.npi.Client,
                SOCK_STREAM,
                IPPROTO_TCP,
                local.ptr(),
                remote.ptr(),
                0,
                ptr::null_mut(),
                ptr::null(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                op.start(),
            )
        }
    }
}

/// What the completion routine signals, and the IRQL it ran at.
struct Event {
    event: UnsafeCell<KEVENT>,
    irql: AtomicU8,
    /// `Irp->PendingReturned` as the completion routine saw it (0/1; `u8::MAX` before it ran).
    pending_returned: AtomicU8,
    /// The `WSK_BUF` of the operation in flight ([`IrpOp::lend`]): the provider may read it until
    /// the IRP completes.
    wsk_buf: UnsafeCell<WSK_BUF>,
}

/// One driver-allocated IRP, reused for successive operations.
pub struct IrpOp {
    irp: PIRP,
    event: Box<Event>,
}

// SAFETY: the IRP and event are kernel objects usable from any thread; a test moves an IrpOp to
// another thread only while no operation on it is in flight there and here at once.
unsafe impl Send for IrpOp {}

/// The completion routine: signals the event; the IRP is ours again (driver-allocated), so
/// STATUS_MORE_PROCESSING_REQUIRED stops the I/O manager from completing it further.
unsafe extern "system" fn signal_event(_device: PDEVICE_OBJECT, irp: PIRP, context: PVOID) -> NTSTATUS {
    // SAFETY: `context` is the IrpOp's Event, alive while the IRP is.
    let signal = unsafe { &*(context as *const Event) };
    // SAFETY: the IRP being completed is live while its completion routine runs.
    let pending_returned = unsafe { (*irp).PendingReturned };
    signal.pending_returned.store(pending_returned, Ordering::Release);
    signal.irql.store(KeGetCurrentIrql(), Ordering::Release);
    // SAFETY: as above; KeSetEvent with Wait = FALSE is allowed at DISPATCH_LEVEL.
    unsafe { KeSetEvent(signal.event.get(), 0, FALSE) };
    STATUS_MORE_PROCESSING_REQUIRED
}

impl IrpOp {
    pub fn new() -> IrpOp {
        // SAFETY: plain allocation at PASSIVE_LEVEL.
        let irp = unsafe { IoAllocateIrp(1, FALSE) };
        assert!(!irp.is_null(), "IoAllocateIrp");
        // SAFETY: an all-zero KEVENT is a valid bit pattern before initialisation.
        let event = Box::new(Event {
            event: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            irql: AtomicU8::new(u8::MAX),
            pending_returned: AtomicU8::new(u8::MAX),
            wsk_buf: UnsafeCell::new(WSK_BUF {
                Mdl: ptr::null_mut(),
                Offset: 0,
                Length: 0,
            }),
        });
        // SAFETY: fresh event.
        unsafe { KeInitializeEvent(event.event.get(), NotificationEvent, FALSE) };
        IrpOp { irp, event }
    }

    /// Prepares the IRP for one more call: reuse, clear the event, set the completion routine.
    pub fn start(&self) -> PIRP {
        // SAFETY: the IRP is ours (not pending: the previous operation completed).
        unsafe {
            IoReuseIrp(self.irp, STATUS_UNSUCCESSFUL);
            KeClearEvent(self.event.event.get());
            self.event.irql.store(u8::MAX, Ordering::Relaxed);
            self.event.pending_returned.store(u8::MAX, Ordering::Relaxed);
            let context = &*self.event as *const Event as PVOID;
            IoSetCompletionRoutine(self.irp, Some(signal_event), context, true, true, true);
        }
        self.irp
    }

    pub fn irp(&self) -> PIRP {
        self.irp
    }

    /// Keeps `buf` with the IRP, for the next operation on it, and returns where: a `WSK_BUF` must
    /// stay valid and unchanged until the IRP completes (the provider may read it until then).
    pub fn lend(&self, buf: WSK_BUF) -> PWSK_BUF {
        let at = self.event.wsk_buf.get();
        // SAFETY: no operation on this IRP is in flight (the previous one completed), so nothing
        // reads the cell meanwhile.
        unsafe { at.write(buf) };
        at
    }

    /// Where [`lend`](Self::lend) keeps the `WSK_BUF` (for a test that changes it while it is lent).
    pub fn lend_in_flight(&self) -> PWSK_BUF {
        self.event.wsk_buf.get()
    }

    /// Whether the completion routine has run.
    pub fn is_done(&self) -> bool {
        // SAFETY: live event.
        unsafe { KeReadStateEvent(self.event.event.get()) != 0 }
    }

    /// The IRP's final status and `Information` (only meaningful once done).
    pub fn result(&self) -> (NTSTATUS, usize) {
        assert!(self.is_done(), "the IRP has not completed");
        // SAFETY: completed, so ours again.
        unsafe { ((*self.irp).IoStatus.Status, (*self.irp).IoStatus.Information) }
    }

    /// Waits (bounded) for completion; returns status and `Information`.
    pub fn wait(&self) -> (NTSTATUS, usize) {
        let mut timeout = LARGE_INTEGER::relative_100ns((BOUND.as_nanos() / 100) as i64);
        // SAFETY: live event; the timeout outlives the call.
        let status = unsafe {
            KeWaitForSingleObject(
                self.event.event.get().cast(),
                Executive,
                KernelMode,
                FALSE,
                &mut timeout,
            )
        };
        assert_eq!(status, STATUS_SUCCESS, "the IRP did not complete within {BOUND:?}");
        self.result()
    }

    /// The IRQL the completion routine ran at (only meaningful once done).
    pub fn completed_at(&self) -> KIRQL {
        self.event.irql.load(Ordering::Acquire)
    }

    /// `Irp->PendingReturned` as the completion routine saw it (only meaningful once done).
    pub fn pending_returned(&self) -> bool {
        let seen = self.event.pending_returned.load(Ordering::Acquire);
        assert_ne!(seen, u8::MAX, "the completion routine has not run");
        seen != 0
    }

    /// `IoCancelIrp`.
    pub fn cancel(&self) -> bool {
        // SAFETY: live IRP.
        unsafe { IoCancelIrp(self.irp) != 0 }
    }
}

impl Drop for IrpOp {
    fn drop(&mut self) {
        // SAFETY: ours; the emulation reports a free while pending.
        unsafe { IoFreeIrp(self.irp) };
    }
}

/// A nonpaged pool buffer described by a chain of MDLs built for it (one MDL per [`MDL_PIECE`]
/// bytes: one MDL can describe only a few MiB).
pub struct PoolBuf {
    ptr: *mut u8,
    len: usize,
    mdl: PMDL,
}

/// The most one MDL of a [`PoolBuf`] describes.
pub const MDL_PIECE: usize = 8 << 20;

// SAFETY: pool memory and its MDL may be used from any thread; tests synchronise through IRPs.
unsafe impl Send for PoolBuf {}

impl PoolBuf {
    pub fn new(len: usize) -> PoolBuf {
        // SAFETY: plain allocation; the MDL describes exactly this block.
        unsafe {
            let ptr = ExAllocatePool2(POOL_FLAG_NON_PAGED, len, TAG) as *mut u8;
            assert!(!ptr.is_null(), "ExAllocatePool2");
            let mut head: PMDL = ptr::null_mut();
            let mut tail: PMDL = ptr::null_mut();
            let mut offset = 0;
            while offset < len || offset == 0 {
                let piece = (len - offset).min(MDL_PIECE);
                let mdl = IoAllocateMdl(ptr.add(offset).cast(), piece as ULONG, FALSE, FALSE, ptr::null_mut());
                assert!(!mdl.is_null(), "IoAllocateMdl");
                MmBuildMdlForNonPagedPool(mdl);
                if head.is_null() {
                    head = mdl
                } else {
                    (*tail).Next = mdl
                }
                tail = mdl;
                offset += piece.max(1);
            }
            PoolBuf { ptr, len, mdl: head }
        }
    }

    pub fn with(data: &[u8]) -> PoolBuf {
        let mut buf = PoolBuf::new(data.len());
        buf.bytes_mut().copy_from_slice(data);
        buf
    }

    /// A `WSK_BUF` for `len` bytes from `offset`.
    pub fn wsk(&self, offset: usize, len: usize) -> WSK_BUF {
        assert!(offset + len <= self.len);
        WSK_BUF {
            Mdl: self.mdl,
            Offset: offset as ULONG,
            Length: len,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: our block, no IRP in flight while the test reads it.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: our block, no IRP in flight while the test writes it.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        // SAFETY: ours, no IRP in flight.
        unsafe {
            let mut mdl = self.mdl;
            while !mdl.is_null() {
                let next = (*mdl).Next;
                IoFreeMdl(mdl);
                mdl = next;
            }
            ExFreePoolWithTag(self.ptr.cast(), TAG);
        }
    }
}

/// Socket address storage in the WSK layout.
pub struct Addr(UnsafeCell<SOCKADDR_STORAGE>);

impl Addr {
    pub fn new(addr: SocketAddr) -> Addr {
        let mut storage = SOCKADDR_STORAGE::default();
        let p = &mut storage as *mut SOCKADDR_STORAGE;
        // SAFETY: SOCKADDR_STORAGE is large and aligned enough for either family.
        unsafe {
            match addr {
                SocketAddr::V4(v4) => p
                    .cast::<SOCKADDR_IN>()
                    .write(SOCKADDR_IN::new(v4.ip().octets(), v4.port())),
                SocketAddr::V6(v6) => p
                    .cast::<SOCKADDR_IN6>()
                    .write(SOCKADDR_IN6::new(v6.ip().octets(), v6.port())),
            }
        }
        Addr(UnsafeCell::new(storage))
    }

    /// Empty storage for the provider to fill in.
    pub fn empty() -> Addr {
        Addr(UnsafeCell::new(SOCKADDR_STORAGE::default()))
    }

    pub fn ptr(&self) -> PSOCKADDR {
        self.0.get().cast()
    }

    pub fn get(&self) -> SocketAddr {
        // SAFETY: no operation writing it is in flight.
        unsafe {
            let p = self.0.get();
            match (*p).ss_family {
                AF_INET => {
                    let v4 = p.cast::<SOCKADDR_IN>().read();
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(v4.sin_addr.s_addr)), v4.port())
                }
                AF_INET6 => {
                    let v6 = p.cast::<SOCKADDR_IN6>().read();
                    SocketAddr::new(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)), v6.port())
                }
                family => panic!("no address written (family {family})"),
            }
        }
    }
}

/// The connection-oriented dispatch table of `socket`.
pub fn conn(socket: PWSK_SOCKET) -> &'static WSK_PROVIDER_CONNECTION_DISPATCH {
    // SAFETY: the socket was created as a connection-oriented socket; its table is static.
    unsafe { &*((*socket).Dispatch as *const WSK_PROVIDER_CONNECTION_DISPATCH) }
}

/// The listening dispatch table of `socket`.
pub fn listen(socket: PWSK_SOCKET) -> &'static WSK_PROVIDER_LISTEN_DISPATCH {
    // SAFETY: the socket was created as a listening socket; its table is static.
    unsafe { &*((*socket).Dispatch as *const WSK_PROVIDER_LISTEN_DISPATCH) }
}

/// The stream dispatch table of `socket`.
pub fn stream(socket: PWSK_SOCKET) -> &'static WSK_PROVIDER_STREAM_DISPATCH {
    // SAFETY: the socket was created as (or accepted on) a stream socket; its table is static.
    unsafe { &*((*socket).Dispatch as *const WSK_PROVIDER_STREAM_DISPATCH) }
}

/// The basic dispatch table every socket's table starts with.
pub fn basic(socket: PWSK_SOCKET) -> &'static WSK_PROVIDER_BASIC_DISPATCH {
    // SAFETY: every table begins with the basic one.
    unsafe { &*((*socket).Dispatch as *const WSK_PROVIDER_BASIC_DISPATCH) }
}

/// Runs one IRP-based call synchronously: returns (returned status, final status, Information).
pub fn call(f: impl FnOnce(PIRP) -> NTSTATUS) -> (NTSTATUS, NTSTATUS, usize) {
    let op = IrpOp::new();
    let returned = f(op.start());
    let (status, information) = op.wait();
    (returned, status, information)
}

/// A dual-stack listener: AF_INET6, `IPV6_V6ONLY` = 0 via `WskControlSocket`, bound to `[::]:port`.
pub fn dual_stack_listener(client: &Client, port: u16) -> PWSK_SOCKET {
    let socket = client.socket(AF_INET6, WSK_FLAG_LISTEN_SOCKET);
    set_v6only(socket, false);
    bind(socket, SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)));
    socket
}

/// `WskControlSocket(WskSetOption, IPV6_V6ONLY, IPPROTO_IPV6)` with an IRP.
pub fn set_v6only(socket: PWSK_SOCKET, on: bool) {
    let value: ULONG = on.into();
    let f = basic(socket).WskControlSocket.expect("WskControlSocket");
    let (returned, status, _) = call(|irp| {
        // SAFETY: the option value outlives the call, which `call` waits for.
        unsafe {
            f(
                socket,
                WskSetOption,
                IPV6_V6ONLY,
                IPPROTO_IPV6,
                size_of::<ULONG>(),
                &value as *const ULONG as PVOID,
                0,
                ptr::null_mut(),
                ptr::null_mut(),
                irp,
            )
        }
    });
    assert_eq!(status, STATUS_SUCCESS, "IPV6_V6ONLY");
    assert!(
        returned == STATUS_SUCCESS || returned == STATUS_PENDING,
        "IPV6_V6ONLY returned {returned:#x}"
    );
}

/// `WskBind` (listening or connection-oriented).
pub fn bind(socket: PWSK_SOCKET, addr: SocketAddr) {
    let local = Addr::new(addr);
    // Both tables have WskBind at the same offset (right after the basic table).
    let f = listen(socket).WskBind.expect("WskBind");
    // SAFETY: valid socket and address; the IRP is fresh.
    let (returned, status, _) = call(|irp| unsafe { f(socket, local.ptr(), 0, irp) });
    assert_eq!(status, STATUS_SUCCESS, "WskBind {addr}");
    assert!(
        returned == STATUS_SUCCESS || returned == STATUS_PENDING,
        "WskBind returned {returned:#x}"
    );
}

/// `WskGetLocalAddress` of a listening or connection-oriented socket.
pub fn local_address(socket: PWSK_SOCKET) -> SocketAddr {
    get_local_address(listen(socket).WskGetLocalAddress, socket)
}

/// `WskGetLocalAddress` through the table entry `f` (it sits at another offset in the stream table).
pub fn get_local_address(f: PFN_WSK_GET_LOCAL_ADDRESS, socket: PWSK_SOCKET) -> SocketAddr {
    let out = Addr::empty();
    let f = f.expect("WskGetLocalAddress");
    // SAFETY: valid socket; `out` outlives the call.
    let (_, status, _) = call(|irp| unsafe { f(socket, out.ptr(), irp) });
    assert_eq!(status, STATUS_SUCCESS, "WskGetLocalAddress");
    out.get()
}

/// `WskGetRemoteAddress`.
pub fn remote_address(socket: PWSK_SOCKET) -> SocketAddr {
    let out = Addr::empty();
    let f = conn(socket).WskGetRemoteAddress.expect("WskGetRemoteAddress");
    // SAFETY: valid socket; `out` outlives the call.
    let (_, status, _) = call(|irp| unsafe { f(socket, out.ptr(), irp) });
    assert_eq!(status, STATUS_SUCCESS, "WskGetRemoteAddress");
    out.get()
}

/// `WskAccept` on `op`; returns what the call returned. The socket arrives in `Information`.
pub fn accept(listener: PWSK_SOCKET, remote: &Addr, op: &IrpOp) -> NTSTATUS {
    let f = listen(listener).WskAccept.expect("WskAccept");
    // SAFETY: valid socket; `remote` and the IRP outlive the operation.
    unsafe {
        f(
            listener,
            0,
            ptr::null_mut(),
            ptr::null(),
            ptr::null_mut(),
            remote.ptr(),
            op.start(),
        )
    }
}

/// Accepts one connection on `listener` (waiting for it, bounded); returns the new socket.
pub fn accept_one(listener: PWSK_SOCKET) -> PWSK_SOCKET {
    let op = IrpOp::new();
    let remote = Addr::empty();
    accept(listener, &remote, &op);
    let (status, information) = op.wait();
    assert_eq!(status, STATUS_SUCCESS, "WskAccept");
    std::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information)
}

/// A connection accepted from an in-memory peer, on a listener bound to `127.0.0.1:0`; returns
/// (listener, connection, peer).
pub fn connected(client: &Client, net: &MemoryNetwork) -> (PWSK_SOCKET, PWSK_SOCKET, Peer) {
    let listener = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    bind(listener, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let peer = net.connect(local_address(listener)).expect("connect");
    (listener, accept_one(listener), peer)
}

/// A connection accepted from a host `TcpStream` (real TCP), on a listener bound to
/// `127.0.0.1:0`; returns (listener, connection, the host's end).
pub fn connected_over_tcp(client: &Client) -> (PWSK_SOCKET, PWSK_SOCKET, TcpStream) {
    let listener = client.socket(AF_INET, WSK_FLAG_LISTEN_SOCKET);
    bind(listener, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let peer = TcpStream::connect(local_address(listener)).expect("connect");
    (listener, accept_one(listener), peer)
}

/// `WskReceive` of `buf[offset..offset+len]` on `op`.
pub fn receive(socket: PWSK_SOCKET, buf: &PoolBuf, offset: usize, len: usize, flags: ULONG, op: &IrpOp) -> NTSTATUS {
    let wsk = op.lend(buf.wsk(offset, len));
    let f = conn(socket).WskReceive.expect("WskReceive");
    // SAFETY: valid socket; the buffer, its WSK_BUF (kept by `op`) and the IRP outlive the operation.
    unsafe { f(socket, wsk, flags, op.start()) }
}

/// `WskSend` of `buf[offset..offset+len]` on `op`.
pub fn send(socket: PWSK_SOCKET, buf: &PoolBuf, offset: usize, len: usize, op: &IrpOp) -> NTSTATUS {
    let wsk = op.lend(buf.wsk(offset, len));
    let f = conn(socket).WskSend.expect("WskSend");
    // SAFETY: valid socket; the buffer, its WSK_BUF (kept by `op`) and the IRP outlive the operation.
    unsafe { f(socket, wsk, 0, op.start()) }
}

/// Graceful `WskDisconnect`, with an optional final buffer.
pub fn disconnect(socket: PWSK_SOCKET, last: Option<&PoolBuf>, op: &IrpOp) -> NTSTATUS {
    let buffer = last.map_or(ptr::null_mut(), |b| op.lend(b.wsk(0, b.bytes().len())));
    let f = conn(socket).WskDisconnect.expect("WskDisconnect");
    // SAFETY: valid socket; the buffer, its WSK_BUF (kept by `op`) and the IRP outlive the operation.
    unsafe { f(socket, buffer, 0, op.start()) }
}

/// Abortive `WskDisconnect` (NULL buffer), waited for.
pub fn abort(socket: PWSK_SOCKET) -> NTSTATUS {
    let f = conn(socket).WskDisconnect.expect("WskDisconnect");
    // SAFETY: valid socket, fresh IRP.
    let (returned, status, _) = call(|irp| unsafe { f(socket, ptr::null_mut(), WSK_FLAG_ABORTIVE, irp) });
    // Inline, or later under a schedule that defers completions (then STATUS_PENDING).
    assert!(
        returned == status || returned == STATUS_PENDING,
        "returned {returned:#x}, completed with {status:#x}"
    );
    status
}

/// `WskCloseSocket`, waited for; returns the final status.
pub fn close(socket: PWSK_SOCKET) -> NTSTATUS {
    let f = basic(socket).WskCloseSocket.expect("WskCloseSocket");
    // SAFETY: valid socket, fresh IRP.
    let (returned, status, _) = call(|irp| unsafe { f(socket, irp) });
    // Inline, or later under a schedule that defers completions (then STATUS_PENDING).
    assert!(
        returned == status || returned == STATUS_PENDING,
        "returned {returned:#x}, completed with {status:#x}"
    );
    status
}

/// A deterministic test pattern.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed)
                .wrapping_add((i >> 8) as u8)
        })
        .collect()
}

//! A C-style echo driver on the raw WSK ABI, designed like Microsoft's echosrv (`wsksmple.c`): every
//! IRP's completion routine pushes its operation context on a lock-free list (echosrv:
//! `InterlockedPushEntrySList`) and signals a KEVENT; one worker thread pops the list and issues
//! the next WSK call (accept -> receive -> send -> receive ... -> close). One IRP per connection,
//! recycled with `IoReuseIrp`, and one nonpaged buffer with its MDL, allocated at accept.
//!
//! It runs on the same emulated WSK provider as the echo driver, so the difference between the two
//! in `bench echo` is what async/await and the executor cost end to end, compared with the classic
//! completion-routine-plus-worker-thread design. Like echosrv it has no connection limit or idle
//! timeout; the benchmark's load never needs them.

use nt::*;
use std::cell::UnsafeCell;
use std::net::Ipv4Addr;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Pool tag of the C-style driver's buffers: `RawE`.
const TAG: ULONG = u32::from_le_bytes(*b"RawE");

static CLIENT_DISPATCH: WSK_CLIENT_DISPATCH = WSK_CLIENT_DISPATCH {
    Version: MAKE_WSK_VERSION(1, 0),
    Reserved: 0,
    WskClientEvent: None,
};

/// An operation context (echosrv's `WSKSAMPLE_SOCKET_OP_CONTEXT`): the work-queue link, what to do
/// when the IRP completes, and the IRP.
struct Op {
    next: *mut Op,
    handler: unsafe fn(&Server, *mut Op),
    server: *const Server,
    /// The connection, or null for the listener's accept.
    conn: *mut Conn,
    irp: PIRP,
}

/// A connection (echosrv's `WSKSAMPLE_SOCKET_CONTEXT` with its buffer).
struct Conn {
    op: Op,
    socket: PWSK_SOCKET,
    buffer: PVOID,
    mdl: PMDL,
    wsk_buf: WSK_BUF,
}

/// The driver's state.
struct Server {
    registration: UnsafeCell<WSK_REGISTRATION>,
    client_npi: WSK_CLIENT_NPI,
    npi: UnsafeCell<WSK_PROVIDER_NPI>,
    listener: UnsafeCell<PWSK_SOCKET>,
    accept: UnsafeCell<Op>,
    /// Completed operations, pushed by completion routines, drained by the worker.
    queue: AtomicPtr<Op>,
    doorbell: UnsafeCell<KEVENT>,
    buffer_size: usize,
    stopping: AtomicBool,
    accept_pending: AtomicBool,
    live: AtomicUsize,
    worker_exit: AtomicBool,
}

// SAFETY: shared between the worker thread, completion routines and the owner; every field is either
// atomic, a kernel object used through its functions, or written only before the worker starts.
unsafe impl Sync for Server {}
// SAFETY: as above.
unsafe impl Send for Server {}

struct SendPtr(*const Server);
// SAFETY: the server outlives the worker thread (joined before it is freed).
unsafe impl Send for SendPtr {}

/// The running C-style echo driver. Needs an emulation session held by the caller for its whole
/// life.
pub struct RawEchoDriver {
    server: Box<Server>,
    worker: Option<std::thread::JoinHandle<()>>,
    pub port: u16,
}

impl RawEchoDriver {
    /// Registers with WSK, listens on 127.0.0.1 (port chosen by the system) and starts the worker.
    pub fn start(buffer_size: usize) -> Self {
        let mut server = Box::new(Server {
            registration: UnsafeCell::new(WSK_REGISTRATION::zeroed()),
            client_npi: WSK_CLIENT_NPI {
                ClientContext: ptr::null_mut(),
                Dispatch: &CLIENT_DISPATCH,
            },
            npi: UnsafeCell::new(WSK_PROVIDER_NPI::zeroed()),
            listener: UnsafeCell::new(ptr::null_mut()),
            accept: UnsafeCell::new(Op {
                next: ptr::null_mut(),
                handler: on_accept,
                server: ptr::null(),
                conn: ptr::null_mut(),
                irp: ptr::null_mut(),
            }),
            queue: AtomicPtr::new(ptr::null_mut()),
            // SAFETY: all-zero is a valid KEVENT to initialise; initialised below.
            doorbell: UnsafeCell::new(unsafe { std::mem::zeroed() }),
            buffer_size,
            stopping: AtomicBool::new(false),
            accept_pending: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            worker_exit: AtomicBool::new(false),
        });
        let this: *const Server = &*server;
        // SAFETY: PASSIVE_LEVEL; the server is boxed (stable address) and outlives the registration,
        // the sockets and the worker (see Drop).
        let port = unsafe {
            KeInitializeEvent(server.doorbell.get(), SynchronizationEvent, FALSE);
            let status = WskRegister(&mut server.client_npi, server.registration.get());
            assert_eq!(status, STATUS_SUCCESS, "WskRegister");
            let status = WskCaptureProviderNPI(server.registration.get(), WSK_INFINITE_WAIT, server.npi.get());
            assert_eq!(status, STATUS_SUCCESS, "WskCaptureProviderNPI");
            let npi = &*server.npi.get();
            let socket_fn = (*npi.Dispatch).WskSocket.expect("WskSocket");
            let (status, information) = call_sync(|irp| {
                socket_fn(
                    npi.Client,
                    AF_INET,
                    SOCK_STREAM,
                    IPPROTO_TCP,
                    WSK_FLAG_LISTEN_SOCKET,
                    ptr::null_mut(),
                    ptr::null(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    irp,
                )
            });
            assert_eq!(status, STATUS_SUCCESS, "WskSocket");
            let listener = ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information);
            *server.listener.get() = listener;
            let dispatch = &*((*listener).Dispatch as *const WSK_PROVIDER_LISTEN_DISPATCH);
            let mut local = SOCKADDR_STORAGE::default();
            ptr::from_mut(&mut local)
                .cast::<SOCKADDR_IN>()
                .write(SOCKADDR_IN::new(Ipv4Addr::LOCALHOST.octets(), 0));
            let bind = dispatch.WskBind.expect("WskBind");
            let (status, _) = call_sync(|irp| bind(listener, ptr::from_mut(&mut local).cast(), 0, irp));
            assert_eq!(status, STATUS_SUCCESS, "WskBind");
            let mut bound = SOCKADDR_STORAGE::default();
            let get_local = dispatch.WskGetLocalAddress.expect("WskGetLocalAddress");
            let (status, _) = call_sync(|irp| get_local(listener, ptr::from_mut(&mut bound).cast(), irp));
            assert_eq!(status, STATUS_SUCCESS, "WskGetLocalAddress");
            let port = ptr::from_ref(&bound).cast::<SOCKADDR_IN>().read().port();
            let accept = &mut *server.accept.get();
            accept.server = this;
            accept.irp = IoAllocateIrp(1, FALSE);
            assert!(!accept.irp.is_null(), "IoAllocateIrp");
            port
        };
        let worker = {
            let ptr = SendPtr(this);
            std::thread::spawn(move || {
                let ptr = ptr;
                // SAFETY: the server outlives this thread (Drop joins it before freeing the box).
                unsafe { worker(&*ptr.0) }
            })
        };
        // SAFETY: the listener exists; PASSIVE_LEVEL.
        unsafe { start_accept(&server) };
        Self {
            server,
            worker: Some(worker),
            port,
        }
    }

    /// Waits (bounded) until every connection of the previous case is closed.
    pub fn wait_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.server.live.load(Ordering::Acquire) != 0 {
            assert!(Instant::now() < deadline, "C-style driver: connections still open");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RawEchoDriver {
    fn drop(&mut self) {
        let server = &*self.server;
        server.stopping.store(true, Ordering::Release);
        self.wait_idle();
        // SAFETY: PASSIVE_LEVEL; closing the listener completes its pending accept (cancelled), which
        // the worker handles by not re-arming it.
        unsafe {
            let listener = *server.listener.get();
            let dispatch = &*((*listener).Dispatch as *const WSK_PROVIDER_BASIC_DISPATCH);
            let close = dispatch.WskCloseSocket.expect("WskCloseSocket");
            let (status, _) = call_sync(|irp| close(listener, irp));
            assert_eq!(status, STATUS_SUCCESS, "WskCloseSocket(listener)");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.accept_pending.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the accept did not complete");
            std::thread::sleep(Duration::from_millis(1));
        }
        server.worker_exit.store(true, Ordering::Release);
        // SAFETY: an initialised event.
        unsafe { KeSetEvent(server.doorbell.get(), IO_NO_INCREMENT.into(), FALSE) };
        if let Some(worker) = self.worker.take() {
            worker.join().expect("worker");
        }
        // SAFETY: nothing is pending any more; PASSIVE_LEVEL.
        unsafe {
            IoFreeIrp((*server.accept.get()).irp);
            WskReleaseProviderNPI(server.registration.get());
            WskDeregister(server.registration.get());
        }
    }
}

/// Makes one WSK call with a fresh IRP and waits for its completion (setup and teardown only).
///
/// # Safety
/// `f` passes the IRP to one WSK function.
unsafe fn call_sync(f: impl FnOnce(PIRP) -> NTSTATUS) -> (NTSTATUS, ULONG_PTR) {
    unsafe extern "system" fn signal(_d: PDEVICE_OBJECT, _irp: PIRP, context: PVOID) -> NTSTATUS {
        // SAFETY: the context is the waiting caller's event.
        unsafe { KeSetEvent(context.cast(), IO_NO_INCREMENT.into(), FALSE) };
        STATUS_MORE_PROCESSING_REQUIRED
    }
    // SAFETY: a fresh IRP and event, both alive until the wait returns.
    unsafe {
        let mut event: Box<KEVENT> = Box::new(std::mem::zeroed());
        KeInitializeEvent(&mut *event, NotificationEvent, FALSE);
        let irp = IoAllocateIrp(1, FALSE);
        assert!(!irp.is_null(), "IoAllocateIrp");
        IoSetCompletionRoutine(irp, Some(signal), ptr::from_mut(&mut *event).cast(), true, true, true);
        f(irp);
        KeWaitForSingleObject(
            ptr::from_mut(&mut *event).cast(),
            Executive,
            KernelMode,
            FALSE,
            ptr::null_mut(),
        );
        let result = ((*irp).IoStatus.Status, (*irp).IoStatus.Information);
        IoFreeIrp(irp);
        result
    }
}

/// The completion routine of every operation: queue it for the worker (DISPATCH_LEVEL, any CPU).
///
/// # Safety
/// `context` is the operation whose IRP completed; its server is alive.
unsafe extern "system" fn queue_completion(_d: PDEVICE_OBJECT, _irp: PIRP, context: PVOID) -> NTSTATUS {
    // SAFETY: see above.
    unsafe {
        let op = context.cast::<Op>();
        let server = &*(*op).server;
        let mut head = server.queue.load(Ordering::Relaxed);
        loop {
            (*op).next = head;
            match server
                .queue
                .compare_exchange_weak(head, op, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        KeSetEvent(server.doorbell.get(), IO_NO_INCREMENT.into(), FALSE);
    }
    STATUS_MORE_PROCESSING_REQUIRED
}

/// The worker thread (PASSIVE_LEVEL): runs the handler of every completed operation, oldest first.
///
/// # Safety
/// `server` outlives the thread.
unsafe fn worker(server: &Server) {
    loop {
        // SAFETY: an initialised event; PASSIVE_LEVEL.
        unsafe {
            KeWaitForSingleObject(
                server.doorbell.get().cast(),
                Executive,
                KernelMode,
                FALSE,
                ptr::null_mut(),
            )
        };
        let mut list = server.queue.swap(ptr::null_mut(), Ordering::Acquire);
        let mut fifo: *mut Op = ptr::null_mut();
        while !list.is_null() {
            // SAFETY: every queued op is alive until its handler runs.
            unsafe {
                let next = (*list).next;
                (*list).next = fifo;
                fifo = list;
                list = next;
            }
        }
        while !fifo.is_null() {
            // SAFETY: as above; the handler may free the op, so `next` is read first.
            unsafe {
                let next = (*fifo).next;
                ((*fifo).handler)(server, fifo);
                fifo = next;
            }
        }
        if server.worker_exit.load(Ordering::Acquire) {
            return;
        }
    }
}

/// Re-arms `op`'s IRP with the queueing completion routine and `handler`.
///
/// # Safety
/// The caller owns `op` and its IRP (not pending).
unsafe fn prepare(op: *mut Op, handler: unsafe fn(&Server, *mut Op)) -> PIRP {
    // SAFETY: forwarded.
    unsafe {
        (*op).handler = handler;
        IoReuseIrp((*op).irp, STATUS_UNSUCCESSFUL);
        IoSetCompletionRoutine((*op).irp, Some(queue_completion), op.cast(), true, true, true);
        (*op).irp
    }
}

/// # Safety
/// The accept op is idle; PASSIVE_LEVEL.
unsafe fn start_accept(server: &Server) {
    // SAFETY: forwarded; the listener is alive until Drop closes it.
    unsafe {
        let listener = *server.listener.get();
        let irp = prepare(server.accept.get(), on_accept);
        server.accept_pending.store(true, Ordering::Release);
        let dispatch = &*((*listener).Dispatch as *const WSK_PROVIDER_LISTEN_DISPATCH);
        let accept = dispatch.WskAccept.expect("WskAccept");
        accept(
            listener,
            0,
            ptr::null_mut(),
            ptr::null(),
            ptr::null_mut(),
            ptr::null_mut(),
            irp,
        );
    }
}

/// # Safety
/// Called by the worker for the completed accept op.
unsafe fn on_accept(server: &Server, op: *mut Op) {
    // SAFETY: the accept op's IRP completed: ours again.
    let (status, information) = unsafe { ((*(*op).irp).IoStatus.Status, (*(*op).irp).IoStatus.Information) };
    if !NT_SUCCESS(status) || server.stopping.load(Ordering::Acquire) {
        if NT_SUCCESS(status) {
            // Accepted while stopping: close it at once.
            let socket = ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information);
            // SAFETY: a new socket of ours; PASSIVE_LEVEL.
            unsafe { close_sync(socket) };
        }
        server.accept_pending.store(false, Ordering::Release);
        return;
    }
    let socket = ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information);
    // SAFETY: PASSIVE_LEVEL; the new connection's memory is ours until its close completes.
    unsafe {
        let buffer = ExAllocatePool2(POOL_FLAG_NON_PAGED, server.buffer_size, TAG);
        assert!(!buffer.is_null(), "ExAllocatePool2");
        let mdl = IoAllocateMdl(buffer, server.buffer_size as ULONG, FALSE, FALSE, ptr::null_mut());
        assert!(!mdl.is_null(), "IoAllocateMdl");
        MmBuildMdlForNonPagedPool(mdl);
        let irp = IoAllocateIrp(1, FALSE);
        assert!(!irp.is_null(), "IoAllocateIrp");
        let conn = Box::into_raw(Box::new(Conn {
            op: Op {
                next: ptr::null_mut(),
                handler: on_receive,
                server,
                conn: ptr::null_mut(),
                irp,
            },
            socket,
            buffer,
            mdl,
            wsk_buf: WSK_BUF {
                Mdl: mdl,
                Offset: 0,
                Length: 0,
            },
        }));
        (*conn).op.conn = conn;
        server.live.fetch_add(1, Ordering::AcqRel);
        start_receive(conn);
        start_accept(server);
    }
}

fn connection_dispatch(socket: PWSK_SOCKET) -> &'static WSK_PROVIDER_CONNECTION_DISPATCH {
    // SAFETY: a connection socket's dispatch table is the provider's static connection table.
    unsafe { &*((*socket).Dispatch as *const WSK_PROVIDER_CONNECTION_DISPATCH) }
}

/// # Safety
/// The connection's op is idle.
unsafe fn start_receive(conn: *mut Conn) {
    // SAFETY: forwarded; the buffer and WSK_BUF live in the connection until its close completes.
    unsafe {
        let irp = prepare(&raw mut (*conn).op, on_receive);
        (*conn).wsk_buf.Length = (*(*conn).op.server).buffer_size;
        let receive = connection_dispatch((*conn).socket).WskReceive.expect("WskReceive");
        receive((*conn).socket, &raw mut (*conn).wsk_buf, 0, irp);
    }
}

/// # Safety
/// Called by the worker for a completed receive.
unsafe fn on_receive(_server: &Server, op: *mut Op) {
    // SAFETY: the op's IRP completed: ours again.
    unsafe {
        let conn = (*op).conn;
        let (status, n) = ((*(*op).irp).IoStatus.Status, (*(*op).irp).IoStatus.Information);
        if !NT_SUCCESS(status) || n == 0 {
            start_close(conn);
            return;
        }
        let irp = prepare(op, on_send);
        (*conn).wsk_buf.Length = n;
        let send = connection_dispatch((*conn).socket).WskSend.expect("WskSend");
        send((*conn).socket, &raw mut (*conn).wsk_buf, 0, irp);
    }
}

/// # Safety
/// Called by the worker for a completed send.
unsafe fn on_send(_server: &Server, op: *mut Op) {
    // SAFETY: the op's IRP completed: ours again.
    unsafe {
        let conn = (*op).conn;
        let status = (*(*op).irp).IoStatus.Status;
        if NT_SUCCESS(status) {
            start_receive(conn);
        } else {
            start_close(conn);
        }
    }
}

/// # Safety
/// The connection's op is idle; no other call on the socket is in progress.
unsafe fn start_close(conn: *mut Conn) {
    // SAFETY: forwarded.
    unsafe {
        let irp = prepare(&raw mut (*conn).op, on_close);
        let dispatch = &*((*(*conn).socket).Dispatch as *const WSK_PROVIDER_BASIC_DISPATCH);
        let close = dispatch.WskCloseSocket.expect("WskCloseSocket");
        close((*conn).socket, irp);
    }
}

/// # Safety
/// Called by the worker for a completed close: frees the connection.
unsafe fn on_close(server: &Server, op: *mut Op) {
    // SAFETY: the close completed; nothing refers to the connection any more.
    unsafe {
        let conn = Box::from_raw((*op).conn);
        IoFreeIrp(conn.op.irp);
        IoFreeMdl(conn.mdl);
        ExFreePoolWithTag(conn.buffer, TAG);
    }
    server.live.fetch_sub(1, Ordering::AcqRel);
}

/// # Safety
/// `socket` is ours with no call in progress; PASSIVE_LEVEL.
unsafe fn close_sync(socket: PWSK_SOCKET) {
    // SAFETY: forwarded.
    unsafe {
        let dispatch = &*((*socket).Dispatch as *const WSK_PROVIDER_BASIC_DISPATCH);
        let close = dispatch.WskCloseSocket.expect("WskCloseSocket");
        call_sync(|irp| close(socket, irp));
    }
}

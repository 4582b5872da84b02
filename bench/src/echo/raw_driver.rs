//! A C-style echo driver on the raw WSK ABI, designed like Microsoft's echosrv (`wsksmple.c`): every
//! IRP's completion routine pushes its operation context on a lock-free list (echosrv:
//! `InterlockedPushEntrySList`) and signals a KEVENT; one worker thread pops the list and issues
//! the next WSK call. Like echosrv, and like the async echo driver, a connection has two operation
//! contexts, each with its IRP (recycled with `IoReuseIrp`) and a nonpaged buffer with its MDL,
//! allocated at accept, and pipelines them: while one buffer's bytes are being sent, the next chunk
//! is received into the other, and a chunk is sent as soon as it is received (two sends in flight
//! at most, in the order received; a short send with the other send in flight closes the
//! connection). The connection is closed with an idle operation's IRP once the echo ends, and freed
//! when that close and every other operation of it have completed.
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
    /// Which of the connection's two operations this is.
    index: usize,
    irp: PIRP,
}

/// One of a connection's two operations, with its buffer.
struct ConnOp {
    op: Op,
    buffer: PVOID,
    mdl: PMDL,
    wsk_buf: WSK_BUF,
    /// Its IRP is with the provider.
    busy: bool,
    /// It is sending (the bytes `wsk_buf.Offset..received`).
    sending: bool,
    /// Bytes the last receive put in the buffer.
    received: usize,
}

/// A connection (echosrv's `WSKSAMPLE_SOCKET_CONTEXT`).
struct Conn {
    ops: [ConnOp; 2],
    socket: PWSK_SOCKET,
    /// The peer sent FIN: close once the last send is done.
    fin: bool,
    /// The close was issued (or completed, see `closed`): completions only count down.
    closing: bool,
    closed: bool,
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
    /// The driver's device object: a non-PnP driver sets its completion routines with
    /// `IoSetCompletionRoutineEx` on it, so that its image stays loaded until they have returned.
    device: PDEVICE_OBJECT,
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
    /// Dropped last: the device the completion routines reference.
    _device: nt::emu::driver::TestDevice,
}

impl RawEchoDriver {
    /// Registers with WSK, listens on 127.0.0.1 (port chosen by the system) and starts the worker.
    pub fn start(buffer_size: usize) -> Self {
        let device = nt::emu::driver::TestDevice::create();
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
                index: 0,
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
            device: device.device(),
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
            let (status, information) = call_sync(server.device, |irp| {
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
            let (status, _) = call_sync(server.device, |irp| {
                bind(listener, ptr::from_mut(&mut local).cast(), 0, irp)
            });
            assert_eq!(status, STATUS_SUCCESS, "WskBind");
            let mut bound = SOCKADDR_STORAGE::default();
            let get_local = dispatch.WskGetLocalAddress.expect("WskGetLocalAddress");
            let (status, _) = call_sync(server.device, |irp| {
                get_local(listener, ptr::from_mut(&mut bound).cast(), irp)
            });
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
            _device: device,
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
            let (status, _) = call_sync(server.device, |irp| close(listener, irp));
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
unsafe fn call_sync(device: PDEVICE_OBJECT, f: impl FnOnce(PIRP) -> NTSTATUS) -> (NTSTATUS, ULONG_PTR) {
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
        set_routine(device, irp, signal, ptr::from_mut(&mut *event).cast());
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

/// Sets `routine` on `irp` for success, error and cancellation with `IoSetCompletionRoutineEx` (a
/// non-PnP driver's routines must keep its image loaded), falling back to `IoSetCompletionRoutine`
/// when the former cannot allocate its context, as wsk-async does.
///
/// # Safety
/// `irp` is a live IRP the caller owns; `device` is this driver's device object.
unsafe fn set_routine(
    device: PDEVICE_OBJECT,
    irp: PIRP,
    routine: unsafe extern "system" fn(PDEVICE_OBJECT, PIRP, PVOID) -> NTSTATUS,
    context: PVOID,
) {
    // SAFETY: forwarded.
    unsafe {
        if !NT_SUCCESS(IoSetCompletionRoutineEx(
            device,
            irp,
            Some(routine),
            context,
            TRUE,
            TRUE,
            TRUE,
        )) {
            IoSetCompletionRoutine(irp, Some(routine), context, true, true, true);
        }
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
        set_routine((*(*op).server).device, (*op).irp, queue_completion, op.cast());
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
            unsafe { close_sync(server, socket) };
        }
        server.accept_pending.store(false, Ordering::Release);
        return;
    }
    let socket = ptr::with_exposed_provenance_mut::<WSK_SOCKET>(information);
    // SAFETY: PASSIVE_LEVEL; the new connection's memory is ours until its close completes.
    unsafe {
        let op = |index| {
            let buffer = ExAllocatePool2(POOL_FLAG_NON_PAGED, server.buffer_size, TAG);
            assert!(!buffer.is_null(), "ExAllocatePool2");
            let mdl = IoAllocateMdl(buffer, server.buffer_size as ULONG, FALSE, FALSE, ptr::null_mut());
            assert!(!mdl.is_null(), "IoAllocateMdl");
            MmBuildMdlForNonPagedPool(mdl);
            let irp = IoAllocateIrp(1, FALSE);
            assert!(!irp.is_null(), "IoAllocateIrp");
            ConnOp {
                op: Op {
                    next: ptr::null_mut(),
                    handler: on_receive,
                    server,
                    conn: ptr::null_mut(),
                    index,
                    irp,
                },
                buffer,
                mdl,
                wsk_buf: WSK_BUF {
                    Mdl: mdl,
                    Offset: 0,
                    Length: 0,
                },
                busy: false,
                sending: false,
                received: 0,
            }
        };
        let conn = Box::into_raw(Box::new(Conn {
            ops: [op(0), op(1)],
            socket,
            fin: false,
            closing: false,
            closed: false,
        }));
        (*conn).ops[0].op.conn = conn;
        (*conn).ops[1].op.conn = conn;
        server.live.fetch_add(1, Ordering::AcqRel);
        start_receive(conn, 0);
        start_accept(server);
    }
}

fn connection_dispatch(socket: PWSK_SOCKET) -> &'static WSK_PROVIDER_CONNECTION_DISPATCH {
    // SAFETY: a connection socket's dispatch table is the provider's static connection table.
    unsafe { &*((*socket).Dispatch as *const WSK_PROVIDER_CONNECTION_DISPATCH) }
}

/// # Safety
/// Operation `i` of the connection is idle.
unsafe fn start_receive(conn: *mut Conn, i: usize) {
    // SAFETY: forwarded; the buffer and WSK_BUF live in the connection until it is freed.
    unsafe {
        let c = &raw mut (*conn).ops[i];
        let irp = prepare(&raw mut (*c).op, on_receive);
        (*c).busy = true;
        (*c).sending = false;
        (*c).wsk_buf.Offset = 0;
        (*c).wsk_buf.Length = (*(*c).op.server).buffer_size;
        let receive = connection_dispatch((*conn).socket).WskReceive.expect("WskReceive");
        receive((*conn).socket, &raw mut (*c).wsk_buf, 0, irp);
    }
}

/// Sends the bytes `from..received` of operation `i`'s buffer.
///
/// # Safety
/// Operation `i` of the connection is idle.
unsafe fn start_send(conn: *mut Conn, i: usize, from: usize) {
    // SAFETY: forwarded.
    unsafe {
        let c = &raw mut (*conn).ops[i];
        let irp = prepare(&raw mut (*c).op, on_send);
        (*c).busy = true;
        (*c).sending = true;
        (*c).wsk_buf.Offset = from as ULONG;
        (*c).wsk_buf.Length = (*c).received - from;
        let send = connection_dispatch((*conn).socket).WskSend.expect("WskSend");
        send((*conn).socket, &raw mut (*c).wsk_buf, 0, irp);
    }
}

/// The operation `op` of its connection has completed: marks it idle; returns the connection, the
/// operation's index, and whether the connection is closing (then nothing more is started, and the
/// connection is freed once nothing is in flight).
///
/// # Safety
/// Called by the worker for a completed operation of a connection.
unsafe fn completed(server: &Server, op: *mut Op) -> Option<(*mut Conn, usize)> {
    // SAFETY: the op's IRP completed: ours again; the connection is alive until freed here.
    unsafe {
        let (conn, i) = ((*op).conn, (*op).index);
        (*conn).ops[i].busy = false;
        if (*conn).closing {
            free_when_done(server, conn);
            return None;
        }
        Some((conn, i))
    }
}

/// Starts the close with operation `i`'s (idle) IRP. WSK cancels and completes the other
/// operation, if it is in flight.
///
/// # Safety
/// Operation `i` is idle; no other call on the socket is in progress.
unsafe fn start_close(conn: *mut Conn, i: usize) {
    // SAFETY: forwarded.
    unsafe {
        (*conn).closing = true;
        let c = &raw mut (*conn).ops[i];
        (*c).busy = true;
        let irp = prepare(&raw mut (*c).op, on_close);
        let dispatch = &*((*(*conn).socket).Dispatch as *const WSK_PROVIDER_BASIC_DISPATCH);
        let close = dispatch.WskCloseSocket.expect("WskCloseSocket");
        close((*conn).socket, irp);
    }
}

/// # Safety
/// Called by the worker for a completed receive.
unsafe fn on_receive(server: &Server, op: *mut Op) {
    // SAFETY: the op's IRP completed: ours again.
    unsafe {
        let Some((conn, i)) = completed(server, op) else { return };
        let (status, n) = ((*(*op).irp).IoStatus.Status, (*(*op).irp).IoStatus.Information);
        let other = 1 - i;
        if !NT_SUCCESS(status) {
            start_close(conn, i);
            return;
        }
        if n == 0 {
            (*conn).fin = true;
            if !(*conn).ops[other].busy {
                start_close(conn, i);
            }
            return;
        }
        (*conn).ops[i].received = n;
        start_send(conn, i, 0);
        if !(*conn).ops[other].busy {
            start_receive(conn, other);
        }
    }
}

/// # Safety
/// Called by the worker for a completed send.
unsafe fn on_send(server: &Server, op: *mut Op) {
    // SAFETY: the op's IRP completed: ours again.
    unsafe {
        let Some((conn, i)) = completed(server, op) else { return };
        let (status, n) = ((*(*op).irp).IoStatus.Status, (*(*op).irp).IoStatus.Information);
        let other = 1 - i;
        let c = &raw mut (*conn).ops[i];
        let done = (*c).wsk_buf.Offset as usize + n;
        if !NT_SUCCESS(status) || n == 0 {
            start_close(conn, i);
        } else if done < (*c).received {
            if (*conn).ops[other].busy && (*conn).ops[other].sending {
                // The other send went after these bytes' first part: the rest can no longer follow it.
                start_close(conn, i);
            } else {
                start_send(conn, i, done);
            }
        } else if (*conn).fin {
            if !(*conn).ops[other].busy {
                start_close(conn, i);
            }
        } else if !(*conn).ops[other].busy || (*conn).ops[other].sending {
            // Nothing is receiving: this buffer is.
            start_receive(conn, i);
        }
    }
}

/// # Safety
/// Called by the worker for a completed close.
unsafe fn on_close(server: &Server, op: *mut Op) {
    // SAFETY: the close completed.
    unsafe {
        let conn = (*op).conn;
        (*conn).ops[(*op).index].busy = false;
        (*conn).closed = true;
        free_when_done(server, conn);
    }
}

/// Frees a closed connection once none of its operations is in flight.
///
/// # Safety
/// `conn` is alive; called by the worker.
unsafe fn free_when_done(server: &Server, conn: *mut Conn) {
    // SAFETY: closed and nothing in flight: nothing refers to the connection any more.
    unsafe {
        if !(*conn).closed || (*conn).ops.iter().any(|c| c.busy) {
            return;
        }
        let conn = Box::from_raw(conn);
        for c in &conn.ops {
            IoFreeIrp(c.op.irp);
            IoFreeMdl(c.mdl);
            ExFreePoolWithTag(c.buffer, TAG);
        }
    }
    server.live.fetch_sub(1, Ordering::AcqRel);
}

/// # Safety
/// `socket` is ours with no call in progress; PASSIVE_LEVEL.
unsafe fn close_sync(server: &Server, socket: PWSK_SOCKET) {
    // SAFETY: forwarded.
    unsafe {
        let dispatch = &*((*socket).Dispatch as *const WSK_PROVIDER_BASIC_DISPATCH);
        let close = dispatch.WskCloseSocket.expect("WskCloseSocket");
        call_sync(server.device, |irp| close(socket, irp));
    }
}

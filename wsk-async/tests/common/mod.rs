//! Shared helpers: a waker that counts wakes, manual polling, and a driver-side setup on the
//! emulation's in-memory network.
#![allow(dead_code)]

use nt::emu::wsk::{MemoryNetwork, Peer};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use wsk_async::{BufferPool, Connection, Device, Listener, Registration};

/// How long a test waits for another thread (a work item, a provider thread) before failing.
pub const BOUND: Duration = Duration::from_secs(10);

/// Polls `condition` until it holds or `bound` has passed (then returns false); for conditions that
/// another thread makes true, such as a work item's close.
pub fn wait_until(bound: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while !condition() {
        if start.elapsed() > bound {
            return false;
        }
        // Time passes: the provider delivers what its schedule deferred.
        nt::emu::wsk::settle();
        std::thread::yield_now();
    }
    true
}

/// A loaded (emulated) non-PnP driver with one device object, and wsk-async's reference on it: what
/// `Registration::register` needs. `device` is declared first so that its reference goes before the
/// device object is deleted.
pub struct TestDriver {
    pub device: Device,
    _object: nt::emu::driver::TestDevice,
}

impl TestDriver {
    pub fn new() -> Self {
        let object = nt::emu::driver::TestDevice::create();
        // SAFETY: a live device object of the emulated test driver.
        let device = unsafe { Device::from_raw(object.device()) }.expect("a device object");
        Self {
            device,
            _object: object,
        }
    }
}

/// A waker that counts how often it was woken.
pub struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

pub struct Wakes {
    counter: Arc<Counter>,
    waker: Waker,
}

impl Wakes {
    pub fn new() -> Self {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        Self { counter, waker }
    }

    pub fn count(&self) -> usize {
        self.counter.0.load(Ordering::SeqCst)
    }

    /// Polls `future` once with this waker.
    pub fn poll<F: Future + ?Sized>(&self, future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(&self.waker))
    }

    /// Polls until ready, letting the provider deliver what its schedule deferred between polls; on
    /// the in-memory network every completion happens on the test thread, so a future that is not
    /// ready after 16 polls never will be.
    pub fn ready<F: Future + ?Sized>(&self, mut future: Pin<&mut F>) -> F::Output {
        for _ in 0..16 {
            if let Poll::Ready(output) = self.poll(future.as_mut()) {
                return output;
            }
            nt::emu::wsk::settle();
        }
        panic!("future still pending after 16 polls");
    }
}

/// Runs `future` to completion by polling (in-memory network: no executor needed).
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    Wakes::new().ready(future.as_mut())
}

/// Runs `future` (a send, or a graceful disconnect behind sends) to completion on the in-memory
/// network while `peer` reads: WSK has no send buffer, and a send completes only once the peer has
/// read its bytes. Returns the output and what the peer read (up to EOF or what was there).
pub fn ready_while_reading<F: Future>(peer: &Peer, future: F) -> (F::Output, Vec<u8>) {
    let mut future = std::pin::pin!(future);
    let wakes = Wakes::new();
    let mut read = Vec::new();
    for _ in 0..16 {
        if let Poll::Ready(output) = wakes.poll(future.as_mut()) {
            return (output, read);
        }
        while let Ok(data) = peer.read(usize::MAX) {
            if data.is_empty() {
                break;
            }
            read.extend(data);
        }
    }
    panic!("future still pending after 16 polls and reads");
}

/// The driver side of one in-memory connection: registration, pool, listener, the accepted
/// connection, and the remote peer.
///
/// `registration` is declared last on purpose: fields drop in declaration order, and the
/// `Registration`'s blocking drop waits until every socket is closed, so it must come after the
/// listener and the connection. Otherwise a test that panics with a `Setup` alive would hang in that
/// wait instead of failing.
pub struct Setup {
    pub net: MemoryNetwork,
    pub pool: BufferPool,
    pub listener: Listener,
    pub conn: Connection,
    pub peer: Peer,
    pub registration: Registration,
    pub driver: TestDriver,
}

pub const LOCAL: &str = "127.0.0.1:0";

/// Installs an in-memory network, registers, listens, and accepts one connection from a peer.
pub fn setup() -> Setup {
    let net = MemoryNetwork::install();
    let driver = TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, Duration::from_secs(1)).expect("register");
    let pool = BufferPool::new(4, 256).expect("pool");
    let listener = ready(registration.listen(LOCAL.parse().unwrap())).expect("listen");
    let addr = listener.local_addr().expect("local address");
    let peer = net.connect(addr).expect("peer connects");
    let conn = ready(listener.accept()).expect("accept");
    Setup {
        net,
        pool,
        listener,
        conn,
        peer,
        registration,
        driver,
    }
}

impl Setup {
    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    /// Closes everything and deregisters; the session then checks for leaks.
    pub fn finish(self) {
        let Setup {
            net,
            registration,
            pool,
            listener,
            conn,
            peer,
            ..
        } = self;
        ready(conn.close()).ok();
        ready(listener.close()).ok();
        drop(pool);
        ready(registration.deregister());
        drop(peer);
        drop(net);
    }
}

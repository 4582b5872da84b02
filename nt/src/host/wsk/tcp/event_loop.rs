//! The TCP transport's event loop: one thread per session (shared by every registration using real
//! TCP) owning a `mio::Poll`. Sockets register their host socket with it, tagged with a token that
//! names the WSK socket to pump; when the host socket becomes readable or writable, the loop pumps
//! that WSK socket at emulated DISPATCH_LEVEL, which completes IRPs there, as the real provider
//! completes them from a DPC on any CPU.
//!
//! Linux raises no event when the peer acknowledges data, which completes sends (see [`super::ack`]):
//! connections waiting for an acknowledgement ask for a re-check ([`Shared::await_acknowledgement`]),
//! and while any does, the loop wakes at least every [`RECHECK`] to pump them once more.
//!
//! The loop thread ends when the last registration using it is deregistered (the [`EventLoop`] is
//! dropped), so no thread outlives a session.

use super::super::later::Kick;
use super::super::socket::SocketCore;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const WAKER: Token = Token(0);

/// How often the loop re-checks connections waiting for an acknowledgement that no event announced
/// (a dropped notification, or a kernel without them). Invented: the delay this adds to a send's
/// completion in that case.
pub(crate) const RECHECK: Duration = Duration::from_millis(10);

/// What the loop thread and the sockets share.
pub(crate) struct Shared {
    registry: Registry,
    owners: Mutex<HashMap<Token, Weak<SocketCore>>>,
    next_token: AtomicUsize,
    stop: AtomicBool,
    waker: Arc<Waker>,
    /// Connections with sends waiting for an acknowledgement, to re-check on the next sweep.
    waiting: Mutex<HashSet<Token>>,
}

impl Shared {
    fn owners(&self) -> MutexGuard<'_, HashMap<Token, Weak<SocketCore>>> {
        self.owners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `source` for readable and writable events on behalf of `owner`; returns its token.
    pub(crate) fn register(&self, source: &mut impl mio::event::Source, owner: Weak<SocketCore>) -> io::Result<Token> {
        let token = Token(self.next_token.fetch_add(1, Ordering::Relaxed));
        self.owners().insert(token, owner);
        self.registry
            .register(source, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(token)
    }

    /// Points an already registered token at another socket (an accepted connection's new owner).
    pub(crate) fn set_owner(&self, token: Token, owner: Weak<SocketCore>) {
        self.owners().insert(token, owner);
    }

    /// The connection `token` has sends waiting for an acknowledgement: pump it again within
    /// [`RECHECK`] unless an event comes first.
    pub(crate) fn await_acknowledgement(&self, token: Token) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if waiting.insert(token) && waiting.len() == 1 {
            // The loop may be asleep without a timeout.
            let _ = self.waker.wake();
        }
    }

    /// Takes the connections to re-check.
    fn take_waiting(&self) -> Vec<Token> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        waiting.drain().collect()
    }

    fn any_waiting(&self) -> bool {
        !self.waiting.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    pub(crate) fn deregister(&self, source: &mut impl mio::event::Source, token: Token) {
        self.owners().remove(&token);
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&token);
        // The source is about to be closed, which removes it from epoll anyway.
        let _ = self.registry.deregister(source);
    }
}

/// The running loop; dropping it stops and joins the thread.
pub(crate) struct EventLoop {
    pub(crate) shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl EventLoop {
    pub(crate) fn start() -> io::Result<Self> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        // Woken when the schedule defers a completion: the loop delivers it (see `later`).
        let kicker: Arc<dyn Kick> = waker.clone();
        super::super::later::add_kicker(Arc::downgrade(&kicker));
        let shared = Arc::new(Shared {
            registry,
            owners: Mutex::new(HashMap::new()),
            next_token: AtomicUsize::new(1),
            stop: AtomicBool::new(false),
            waker,
            waiting: Mutex::new(HashSet::new()),
        });
        let loop_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("wsk-tcp-event-loop".into())
            .spawn(move || run(poll, loop_shared))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.shared.waker.wake();
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl Kick for Waker {
    fn kick(&self) {
        let _ = self.wake();
    }
}

fn run(mut poll: Poll, shared: Arc<Shared>) {
    let mut events = Events::with_capacity(256);
    let mut last_sweep = Instant::now();
    while !shared.stop.load(Ordering::Acquire) {
        let timeout = shared.any_waiting().then_some(RECHECK);
        if let Err(error) = poll.poll(&mut events, timeout) {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Not `eprintln!`, which panics if stderr is a closed pipe.
            let _ = writeln!(io::stderr(), "wsk-tcp-event-loop: poll failed: {error}");
            return;
        }
        if super::super::later::any() {
            crate::emu::at_dispatch(super::super::later::deliver);
        }
        for event in events.iter() {
            if event.token() == WAKER {
                continue;
            }
            let owner = shared.owners().get(&event.token()).and_then(Weak::upgrade);
            if let Some(core) = owner {
                // With edge-triggered registration the event carries the socket's whole current
                // readiness: any of these means a read may find data, EOF or an error.
                let readable = event.is_readable() || event.is_read_closed() || event.is_error() || event.is_priority();
                crate::emu::at_dispatch(|| core.pump_after_event(readable));
            }
        }
        if last_sweep.elapsed() >= RECHECK {
            last_sweep = Instant::now();
            // Each pump asks again if its sends still wait.
            for token in shared.take_waiting() {
                // Not under the owners lock, which the pump may take (an accept registers).
                let owner = shared.owners().get(&token).and_then(Weak::upgrade);
                if let Some(core) = owner {
                    crate::emu::at_dispatch(|| core.pump_after_event(false));
                }
            }
        }
    }
}

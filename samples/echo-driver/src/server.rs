//! The server's two kinds of task: the accept loop (one) and the echo of one connection (one per
//! connection, from a static pool sized to [`MAX_CONNECTIONS`]).

use crate::config::{BUFFER_RETURN_BOUND, BUFFERS_PER_CONNECTION, Config, MAX_CONNECTIONS};
use crate::counters::{COUNTERS, Place};
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use executor::{Elapsed, Instant, Sleep, Spawner, TaskPool, sleep, sleep_until, timeout_at};
use nt::{DPFLTR_ERROR_LEVEL, DPFLTR_INFO_LEVEL, DPFLTR_WARNING_LEVEL, kdprint};
use wsk_async::{Buffer, BufferPool, Connection, Listener, Receive, WskError};

/// Bytes of task storage for one connection's future: the size of [`serve`]'s future, the same in
/// debug and release builds (`spawn_detached` checks at compile time that the future fits).
const CONNECTION_TASK_SIZE: usize = 320;

/// The bytes one connection's task slot takes (header and storage), in the image's zero-fill
/// `.bss`: `CONNECTION_TASK_SIZE` (320) plus the executor's per-task header. Exported (doc-hidden) for
/// the memory benchmark.
pub const CONNECTION_SLOT_BYTES: usize = TaskPool::<CONNECTION_TASK_SIZE, 1>::SLOT_BYTES;

/// Bytes of task storage for the accept loop's future.
const ACCEPT_TASK_SIZE: usize = 1024;

/// Spare connection slots above [`MAX_CONNECTIONS`]: a connection gives its place back
/// ([`COUNTERS`]'s `active`) when its future is dropped, just before its task frees its slot, so a
/// new connection admitted in between must still find a slot.
const SLACK: usize = 16;

/// One slot per connection. Static: spawning allocates nothing.
static CONNECTION_TASKS: TaskPool<CONNECTION_TASK_SIZE, { MAX_CONNECTIONS + SLACK }> = TaskPool::new();

/// The accept loop's slot.
pub(crate) static ACCEPT_TASK: TaskPool<ACCEPT_TASK_SIZE, 1> = TaskPool::new();

/// Set by DriverUnload before it shuts the executor down: busy tasks end by themselves (abort and
/// close) at their next step instead of keeping the executor's run queue full. Tasks waiting on a
/// quiet peer do not see it; the executor's shutdown drops them (which aborts and closes too).
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Tells every task to stop at its next step (DriverUnload).
pub(crate) fn request_stop() {
    STOPPING.store(true, Ordering::Release);
}

/// Clears the stop request (DriverEntry).
pub(crate) fn reset_stop() {
    STOPPING.store(false, Ordering::Release);
}

fn stopping() -> bool {
    STOPPING.load(Ordering::Acquire)
}

/// How long the accept loop pauses after a failed accept (e.g. out of pool), so that a persistent
/// failure does not spin the executor thread.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// The accept loop: accepts until DriverUnload asks it to stop (or drops its task, which closes the
/// listener by dropping it), or until the WSK subsystem forces the listener closed.
pub(crate) async fn accept_loop(listener: Listener, mut buffers: BufferPool, config: Config, spawner: Spawner) {
    while !stopping() {
        match listener.accept().await {
            Ok(conn) if stopping() => drop(conn), // reset: the driver is unloading
            Ok(conn) => admit(conn, &mut buffers, &config, spawner).await,
            Err(e) if e.is_forced_close() => {
                kdprint!(
                    DPFLTR_ERROR_LEVEL,
                    "echo: listener forced closed ({e}); no longer accepting"
                );
                break;
            }
            Err(e) => {
                COUNTERS.accept_error();
                kdprint!(DPFLTR_WARNING_LEVEL, "echo: accept failed: {e}");
                sleep(ACCEPT_RETRY_DELAY).await;
            }
        }
    }
    let _ = listener.close().await;
}

/// Serves `conn` in a task of its own, or resets it at once when the limit is reached (or, should it
/// happen, no task slot is free): a connection is never queued.
///
/// The pool holds exactly [`BUFFERS_PER_CONNECTION`] buffers per place under the limit
/// (DriverEntry), and a connection's buffers go back to it only when the kernel is done with them:
/// after an idle timeout drops a pending receive or send, that is when the cancelled IRP completes,
/// which may be after the connection's task has ended and given its place ([`COUNTERS`]' `active`)
/// back. So a connection that claims a place can find buffers lent: the ones it is owed are on their
/// way back, and it waits for them ([`BufferPool::take_when_free`], at most [`BUFFER_RETURN_BOUND`]
/// for both). Places in use never outnumber pairs of buffers (a task's buffers are taken after its
/// place is claimed and given back no later than its place), so every buffer the connection can wait
/// for is held by the kernel for an ended connection, or by a live task that will end. Nothing here
/// allocates.
async fn admit(conn: Connection, buffers: &mut BufferPool, config: &Config, spawner: Spawner) {
    let Some(place) = COUNTERS.try_claim(config.connection_limit) else {
        COUNTERS.refused();
        // Dropping a connection that was not disconnected closes it abortively: the peer sees RST.
        drop(conn);
        return;
    };
    let deadline = after(to_100ns(BUFFER_RETURN_BOUND));
    let (Some(first), Some(second)) = (
        take_buffer(buffers, deadline).await,
        take_buffer(buffers, deadline).await,
    ) else {
        COUNTERS.refused();
        kdprint!(
            DPFLTR_WARNING_LEVEL,
            "echo: no buffer came back within {:?}; connection reset",
            BUFFER_RETURN_BOUND
        );
        drop((conn, place));
        return;
    };
    let timeouts = Timeouts::new(config);
    match CONNECTION_TASKS.spawn_detached(spawner, serve(conn, first, Some(second), place, timeouts)) {
        Ok(()) => COUNTERS.accepted(),
        // The future, with the connection, the buffers and the place in it, was dropped: reset, as above.
        Err(_) => COUNTERS.refused(),
    }
}

/// One buffer from the pool, waiting for one to come back until `deadline` if all are lent.
async fn take_buffer(buffers: &mut BufferPool, deadline: Instant) -> Option<Buffer> {
    if let Ok(buf) = buffers.take() {
        return Some(buf);
    }
    COUNTERS.buffer_wait();
    timeout_at(deadline, buffers.take_when_free()).await.ok()
}

/// A connection's timeouts, in the timers' 100 ns units: 16 bytes in every connection's future
/// instead of two 16-byte `Duration`s.
#[derive(Clone, Copy)]
struct Timeouts {
    idle: u64,
    disconnect: u64,
}

impl Timeouts {
    fn new(config: &Config) -> Self {
        Self {
            idle: to_100ns(config.idle_timeout),
            disconnect: to_100ns(config.disconnect_timeout),
        }
    }
}

/// `duration` in 100 ns units, rounded up (a timeout never fires early), saturating.
fn to_100ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos().div_ceil(100)).unwrap_or(u64::MAX)
}

/// The deadline `units` 100 ns units from now.
fn after(units: u64) -> Instant {
    Instant::from_100ns(Instant::now().as_100ns().saturating_add(units))
}

/// How the echo of one connection ended.
enum End {
    /// The peer sent FIN and everything received was echoed.
    PeerClosed,
    /// No receive or send completed within the idle timeout.
    Idle,
    /// A receive or send failed (reset by the peer, forced close, ...).
    Failed(WskError),
    /// The driver is unloading.
    Stopping,
}

/// What a connection's operations did, as [`next_event`] reports it.
enum Event {
    Received(Result<usize, WskError>, Buffer),
    /// The send that was `sends[i]`.
    Sent(usize, Result<usize, WskError>, Buffer),
}

/// The operations of one connection in flight: at most one receive and two sends (one per buffer),
/// `sends[0]` the older. Every future here is `Unpin` (it holds a reference, a buffer and its slot
/// phase; what the kernel borrows is in the socket's context), so they live in `Option`s and move.
struct InFlight<'c> {
    receive: Option<Receive<'c>>,
    sends: [Option<wsk_async::Send<'c>>; BUFFERS_PER_CONNECTION],
    /// Where each send's bytes begin in its buffer (a short send goes on from there); buffers are at
    /// most 1 MiB ([`Config::is_valid`]).
    begin: [u32; BUFFERS_PER_CONNECTION],
    /// The peer's FIN was received (no more receives).
    fin: bool,
    /// Events handled in a row without a wait: at [`EVENTS_PER_TURN`] the task yields. Kept here
    /// with `fin`, in the padding after `begin`, rather than as locals of the future, which the
    /// compiler lays out with padding of their own and captures separately in the polling closure.
    ready_streak: u8,
    /// The idle timeout: one timer entry for the whole echo, its deadline moved on each completed
    /// operation ([`Sleep::reset`]) instead of a new timer linked and unlinked (and the kernel timer
    /// armed and cancelled) around every wait. Here rather than as a pinned local, which would cost
    /// a pointer to it in the future and another in the polling closure.
    idle: Sleep,
}

impl InFlight<'_> {
    /// The idle timer, pinned.
    ///
    /// # Safety
    /// `self` is not moved from its first call until it is dropped: the timer's entry, once polled,
    /// is linked into the timer driver's list by its address.
    unsafe fn idle(&mut self) -> Pin<&mut Sleep> {
        // SAFETY: the caller does not move `self`, so the sleep inside it does not move either.
        unsafe { Pin::new_unchecked(&mut self.idle) }
    }
}

/// How many events one connection's task handles in a row without waiting before it yields: one
/// per operation it can have in flight (a receive and a send per buffer), so that in one turn it
/// can handle each completion that woke it once, but an operation it starts in that turn and that
/// completes at once (a receive whose bytes are already there) waits for its next turn, behind every
/// other connection already woken. What it costs: an operation the turn's last event creates goes
/// to WSK only at the next turn (an operation is submitted when it is first polled), and a turn that
/// ends on its last event takes one more poll of the task even when nothing else is ready.
///
/// This is fairness between connections, the latency of the slowest. The C-style design gets it from
/// its queue: every completion is an entry, the worker handles them oldest first, and one that
/// completes inline is queued behind the rest. A task that instead kept handling whatever is ready
/// would let a connection whose peer is quick be served again and again while the others' completions
/// wait. `bench echo` measured that with a limit of 32 (wsk-async's `COOP_BUDGET`, which is there for
/// starvation, not fairness): with 64 connections the messages each connection echoed in a round
/// ranged over about ±18% of the median (±2% for the C-style driver), and the 99th percentile round
/// trip was 1.7 to 2.1 times the C-style driver's; with one to four events per turn it was 1.0 to 1.13.
const EVENTS_PER_TURN: u8 = BUFFERS_PER_CONNECTION as u8 + 1;

/// Polls the connection's operations, the sends first and the older send first (a send's bytes go
/// to WSK when it is first polled, so a new send is submitted after every earlier one), and reports
/// the first that is done.
fn next_event(cx: &mut core::task::Context<'_>, ops: &mut InFlight<'_>) -> core::task::Poll<Event> {
    use core::task::Poll;
    for (i, send) in ops.sends.iter_mut().enumerate() {
        if let Some(future) = send
            && let Poll::Ready((result, buf)) = Pin::new(future).poll(cx)
        {
            *send = None;
            return Poll::Ready(Event::Sent(i, result, buf));
        }
    }
    if let Some(future) = &mut ops.receive
        && let Poll::Ready((result, buf)) = Pin::new(future).poll(cx)
    {
        ops.receive = None;
        return Poll::Ready(Event::Received(result, buf));
    }
    Poll::Pending
}

/// One connection's task: echo until the peer's FIN, an error, the idle timeout or unload, then end
/// the connection as the way the echo ended requires, then close it. Its place under the limit is
/// given back when the future is dropped (at its end, or by the executor's shutdown).
///
/// The echo is pipelined over the connection's two buffers, as Microsoft's echosrv does: while one
/// buffer's bytes are being sent, the next chunk is received into the other, and a chunk received
/// while the previous send is still pending is sent at once (a second send in flight) — WSK
/// completes a send only when the transport is done with its bytes, so waiting for each send before
/// the next receive would leave the stream idle for a round trip per chunk. Bytes are sent in the
/// order they were received: a send is submitted when its receive completed, after every earlier
/// send, and a short send with a later send already in flight (a gap no retry can fill) ends the
/// connection as a failure.
///
/// On an idle timeout (no receive or send completed for that long) the pending operations are
/// dropped (their IRPs cancelled; the buffers return to the pool when the IRPs complete), which
/// leaves the stream unknown: only abort and close remain.
///
/// Its future is what a connection's task slot must hold ([`CONNECTION_TASK_SIZE`]), so it is kept
/// small: one `async` block that uses its captures in place (an `async fn` would also copy each
/// argument into a local of its own), the operations in one [`InFlight`] polled by hand, and one
/// timer alive at a time.
#[expect(
    clippy::manual_async_fn,
    reason = "an `async fn` would keep a second copy of each argument"
)]
fn serve(
    conn: Connection,
    first: Buffer,
    mut spare: Option<Buffer>,
    place: Place,
    timeouts: Timeouts,
) -> impl Future<Output = ()> + Send {
    async move {
        // The echo phase's state lives in this block, so that its storage (`ops` above all) is dead
        // at the awaits of the connection's end below: the future holds the larger of the two
        // phases, not their sum.
        let end = {
            // `spare` (the buffer no operation holds, if any) is used in place, as a capture.
            let mut ops = InFlight {
                receive: Some(conn.receive(first)),
                sends: [None, None],
                begin: [0; BUFFERS_PER_CONNECTION],
                fin: false,
                ready_streak: 0,
                idle: sleep_until(after(timeouts.idle)),
            };
            // From here on `ops` is only borrowed, never moved: it is dropped in place at the end of
            // this block (the pinning `InFlight::idle` requires).
            let end = loop {
                if stopping() {
                    break End::Stopping;
                }
                if ops.fin && ops.sends.iter().all(Option::is_none) {
                    break End::PeerClosed;
                }
                // A turn handles at most `EVENTS_PER_TURN` events, then the task yields (see there).
                let events = poll_fn(|cx| {
                    if ops.ready_streak >= EVENTS_PER_TURN {
                        ops.ready_streak = 0;
                        cx.waker().wake_by_ref();
                        return core::task::Poll::Pending;
                    }
                    let polled = next_event(cx, &mut ops);
                    ops.ready_streak = if polled.is_ready() {
                        ops.ready_streak.saturating_add(1)
                    } else {
                        0
                    };
                    match polled {
                        core::task::Poll::Ready(event) => core::task::Poll::Ready(Ok(event)),
                        // SAFETY: `ops` is never moved (see where it is made).
                        core::task::Poll::Pending => unsafe { ops.idle() }.poll(cx).map(|()| Err(Elapsed)),
                    }
                });
                let event = match events.await {
                    Ok(event) => event,
                    Err(Elapsed) => break End::Idle,
                };
                // An operation completed: the idle timeout starts again.
                // SAFETY: `ops` is never moved (see where it is made).
                unsafe { ops.idle() }.reset(after(timeouts.idle));
                match event {
                    Event::Received(Ok(0), buf) => {
                        ops.fin = true;
                        spare = Some(buf);
                    }
                    Event::Received(Ok(n), buf) => {
                        // The older send, if any, is in `sends[0]`: the new one goes after it.
                        let at = usize::from(ops.sends[0].is_some());
                        ops.begin[at] = 0;
                        ops.sends[at] = Some(conn.send(buf.slice(..n)));
                        if let Some(free) = spare.take() {
                            ops.receive = Some(conn.receive(free));
                        }
                    }
                    Event::Received(Err(e), _) => break End::Failed(e),
                    Event::Sent(_, Ok(0), _) => {
                        break End::Failed(WskError::from_status(nt::STATUS_CONNECTION_DISCONNECTED));
                    }
                    Event::Sent(i, Ok(k), buf) => {
                        let begin = ops.begin[i] as usize + k;
                        if begin < buf.len() {
                            if ops.sends.iter().any(Option::is_some) {
                                // A later send already went out: these bytes can no longer follow it.
                                break End::Failed(WskError::from_status(nt::STATUS_CONNECTION_DISCONNECTED));
                            }
                            ops.begin[i] = begin as u32;
                            ops.sends[i] = Some(conn.send(buf.slice(begin..)));
                            continue;
                        }
                        COUNTERS.echoed(buf.len());
                        if i == 0 {
                            // Keep the older send first.
                            ops.sends.swap(0, 1);
                            ops.begin.swap(0, 1);
                        }
                        if ops.receive.is_none() && !ops.fin {
                            ops.receive = Some(conn.receive(buf));
                        } else {
                            spare = Some(buf);
                        }
                    }
                    Event::Sent(_, Err(e), _) => break End::Failed(e),
                }
            };
            if let End::Idle = end {
                // Counted before the pending operations are dropped: a provider may reset the connection
                // when it cancels them, so the peer can see the end before the driver aborts.
                COUNTERS.idle_abort();
            }
            // Pending operations are dropped (cancelled) and idle buffers go back to the pool before the
            // connection's end, which may wait. In place: `ops` must not move (its idle timer is
            // dropped, unlinked, with it at the end of this block).
            ops.receive = None;
            ops.sends = [None, None];
            drop(spare.take());
            end
        };
        match end {
            // Graceful (FIN after the last echoed byte). Giving up on it after the timeout drops the
            // pending disconnect, which aborts the connection (RST) instead: what
            // `disconnect_or_abort` does, with a smaller future.
            End::PeerClosed if !conn.is_stream_unknown() => {
                let _ = timeout_at(after(timeouts.disconnect), conn.disconnect()).await;
            }
            End::Idle => {
                kdprint!(DPFLTR_INFO_LEVEL, "echo: {:?} idle, aborted", conn.peer_addr());
                let _ = conn.abort().await;
            }
            End::Failed(e) if e.is_forced_close() => {}
            End::PeerClosed | End::Failed(_) | End::Stopping => {
                let _ = conn.abort().await;
            }
        }
        let _ = conn.close().await;
        // Naming `place` makes the block own it: given back here, or when the future is dropped.
        drop(place);
    }
}

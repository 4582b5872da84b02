//! The server's two kinds of task: the accept loop (one) and the echo of one connection (one per
//! connection, from a static pool sized to [`MAX_CONNECTIONS`]).

use crate::config::{BUFFER_RETURN_BOUND, Config, MAX_CONNECTIONS};
use crate::counters::{COUNTERS, Place};
use core::future::Future;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use executor::{Elapsed, Instant, Spawner, TaskPool, sleep, timeout_at};
use nt::{DPFLTR_ERROR_LEVEL, DPFLTR_INFO_LEVEL, DPFLTR_WARNING_LEVEL, kdprint};
use wsk_async::{Buffer, BufferPool, Connection, Listener, WskError};

/// Bytes of task storage for one connection's future: the size of [`serve`]'s future, the same in
/// debug and release builds (`spawn_detached` checks at compile time that the future fits).
const CONNECTION_TASK_SIZE: usize = 256;

/// The bytes one connection's task slot takes (header and storage), in the image's zero-fill
/// `.bss`: `CONNECTION_TASK_SIZE` (256) plus the executor's per-task header. Exported (doc-hidden) for
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
/// The pool holds exactly `connection_limit` buffers (DriverEntry), one per place under the limit,
/// and a connection's buffer goes back to it only when the kernel is done with it: after an idle
/// timeout drops a pending receive or send, that is when the cancelled IRP completes, which may be
/// after the connection's task has ended and given its place ([`COUNTERS`]' `active`) back. So a
/// connection that claims a place can find every buffer lent: the one it is owed is on its way back,
/// and it waits for it ([`BufferPool::take_when_free`], at most [`BUFFER_RETURN_BOUND`]). Places in
/// use never outnumber buffers (a task gives its place back before its buffer), so every buffer the
/// connection can wait for is held by the kernel for an ended connection, or by a live task that
/// will end. Nothing here allocates.
async fn admit(conn: Connection, buffers: &mut BufferPool, config: &Config, spawner: Spawner) {
    let Some(place) = COUNTERS.try_claim(config.connection_limit) else {
        COUNTERS.refused();
        // Dropping a connection that was not disconnected closes it abortively: the peer sees RST.
        drop(conn);
        return;
    };
    let buf = match buffers.take() {
        Ok(buf) => buf,
        Err(_) => {
            COUNTERS.buffer_wait();
            let deadline = after(to_100ns(BUFFER_RETURN_BOUND));
            match timeout_at(deadline, buffers.take_when_free()).await {
                Ok(buf) => buf,
                Err(Elapsed) => {
                    COUNTERS.refused();
                    kdprint!(
                        DPFLTR_WARNING_LEVEL,
                        "echo: no buffer came back within {:?}; connection reset",
                        BUFFER_RETURN_BOUND
                    );
                    drop((conn, place));
                    return;
                }
            }
        }
    };
    let timeouts = Timeouts::new(config);
    match CONNECTION_TASKS.spawn_detached(spawner, serve(conn, buf, place, timeouts)) {
        Ok(()) => COUNTERS.accepted(),
        // The future, with the connection, the buffer and the place in it, was dropped: reset, as above.
        Err(_) => COUNTERS.refused(),
    }
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

/// One connection's task: echo until the peer's FIN, an error, the idle timeout or unload, then end
/// the connection as the way the echo ended requires, then close it. Its place under the limit is
/// given back when the future is dropped (at its end, or by the executor's shutdown).
///
/// On an idle timeout the pending receive or send is dropped (its IRP cancelled; the buffer returns
/// to its pool when the IRP completes), which leaves the stream unknown: only abort and close remain.
///
/// Its future is what a connection's task slot must hold ([`CONNECTION_TASK_SIZE`]), so it is kept
/// small: one `async` block that uses its captures in place (an `async fn` would also copy each
/// argument into a local of its own, and a nested echo future would hold a second copy of the
/// buffer and the timeout), `send` in a loop rather than `send_all` (whose future, in a timeout, would
/// be the largest state), and one operation with its timer alive at a time.
#[expect(
    clippy::manual_async_fn,
    reason = "an `async fn` would keep a second copy of each argument"
)]
fn serve(conn: Connection, mut buf: Buffer, place: Place, timeouts: Timeouts) -> impl Future<Output = ()> + Send {
    async move {
        let end = 'echo: loop {
            if stopping() {
                break End::Stopping;
            }
            let (received, returned) = match timeout_at(after(timeouts.idle), conn.receive(buf)).await {
                Ok(done) => done,
                Err(Elapsed) => break End::Idle,
            };
            buf = returned;
            let n = match received {
                Ok(0) => break End::PeerClosed,
                Ok(n) => n,
                Err(e) => break End::Failed(e),
            };
            let mut sent = 0;
            while sent < n {
                let send = conn.send(buf.slice(sent..n));
                let (result, returned) = match timeout_at(after(timeouts.idle), send).await {
                    Ok(done) => done,
                    Err(Elapsed) => break 'echo End::Idle,
                };
                buf = returned;
                match result {
                    Ok(0) => break 'echo End::Failed(WskError::from_status(nt::STATUS_CONNECTION_DISCONNECTED)),
                    Ok(k) => sent += k,
                    Err(e) => break 'echo End::Failed(e),
                }
            }
            COUNTERS.echoed(n);
        };
        match end {
            // Graceful (FIN after the last echoed byte). Giving up on it after the timeout drops the
            // pending disconnect, which aborts the connection (RST) instead: what
            // `disconnect_or_abort` does, with a smaller future.
            End::PeerClosed if !conn.is_stream_unknown() => {
                let _ = timeout_at(after(timeouts.disconnect), conn.disconnect()).await;
            }
            End::Idle => {
                COUNTERS.idle_abort();
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

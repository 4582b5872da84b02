//! The server's two kinds of task: the accept loop (one) and the echo of one connection (one per
//! connection, from a static pool sized to [`MAX_CONNECTIONS`]).

use crate::config::{Config, MAX_CONNECTIONS};
use crate::counters::{COUNTERS, Place};
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use executor::{Elapsed, Spawner, TaskPool, sleep, timeout};
use nt::{DPFLTR_ERROR_LEVEL, DPFLTR_INFO_LEVEL, DPFLTR_WARNING_LEVEL, kdprint};
use wsk_async::{Buffer, BufferPool, Connection, Listener, WskError};

/// Bytes of task storage for one connection's future (576 in a debug build; `spawn` checks at compile
/// time that the future fits).
const CONNECTION_TASK_SIZE: usize = 640;

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
pub(crate) async fn accept_loop(listener: Listener, buffers: BufferPool, config: Config, spawner: Spawner) {
    while !stopping() {
        match listener.accept().await {
            Ok(conn) if stopping() => drop(conn), // reset: the driver is unloading
            Ok(conn) => admit(conn, &buffers, &config, spawner),
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
/// happen, no buffer or task slot is free): a connection is never queued.
fn admit(conn: Connection, buffers: &BufferPool, config: &Config, spawner: Spawner) {
    let Some(place) = COUNTERS.try_claim(config.connection_limit) else {
        COUNTERS.refused();
        // Dropping a connection that was not disconnected closes it abortively: the peer sees RST.
        drop(conn);
        return;
    };
    let Ok(buf) = buffers.take() else {
        COUNTERS.refused();
        drop((conn, place));
        return;
    };
    let timeouts = Timeouts {
        idle: config.idle_timeout,
        disconnect: config.disconnect_timeout,
    };
    match CONNECTION_TASKS.spawn_detached(spawner, serve(conn, buf, place, timeouts)) {
        Ok(()) => COUNTERS.accepted(),
        // The future, with the connection and the place in it, was dropped: reset, as above.
        Err(_) => COUNTERS.refused(),
    }
}

#[derive(Clone, Copy)]
struct Timeouts {
    idle: Duration,
    disconnect: Duration,
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

/// One connection's task: echo, then end the connection as the way the echo ended requires, then
/// close it. Its place under the limit is given back when the future is dropped (at its end, or by
/// the executor's shutdown).
async fn serve(conn: Connection, buf: Buffer, place: Place, timeouts: Timeouts) {
    let _place = place;
    match echo(&conn, buf, timeouts.idle).await {
        End::PeerClosed => {
            // Graceful (FIN after the last echoed byte), abortive if it takes too long.
            let _ = conn.disconnect_or_abort(timeouts.disconnect).await;
        }
        End::Idle => {
            COUNTERS.idle_abort();
            kdprint!(DPFLTR_INFO_LEVEL, "echo: {:?} idle, aborted", conn.peer_addr());
            let _ = conn.abort().await;
        }
        End::Failed(e) if e.is_forced_close() => {}
        End::Failed(_) | End::Stopping => {
            let _ = conn.abort().await;
        }
    }
    let _ = conn.close().await;
}

/// Receives and sends back until the peer's FIN, an error, the idle timeout, or unload. On a timeout the
/// pending receive or send is dropped (its IRP cancelled; the buffer returns to its pool when the
/// IRP completes), which leaves the stream unknown: only abort and close remain.
async fn echo(conn: &Connection, mut buf: Buffer, idle: Duration) -> End {
    loop {
        if stopping() {
            return End::Stopping;
        }
        let (received, returned) = match timeout(idle, conn.receive(buf)).await {
            Ok(done) => done,
            Err(Elapsed) => return End::Idle,
        };
        buf = returned;
        let n = match received {
            Ok(0) => return End::PeerClosed,
            Ok(n) => n,
            Err(e) => return End::Failed(e),
        };
        let (sent, returned) = match timeout(idle, conn.send_all(buf.slice(..n))).await {
            Ok(done) => done,
            Err(Elapsed) => return End::Idle,
        };
        buf = returned;
        match sent {
            Ok(n) => COUNTERS.echoed(n),
            Err(e) => return End::Failed(e),
        }
    }
}

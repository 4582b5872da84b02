//! The client's one task: resolve, connect, report every `interval`, and after any failure back
//! off and start again.

use crate::backoff::Backoff;
use crate::config::Config;
use crate::counters::{COUNTERS, CounterSnapshot, Phase};
use crate::resolve::resolve_server;
use core::fmt::Write;
use core::future::{Future, poll_fn};
use core::pin::{Pin, pin};
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::Poll;
use core::time::Duration;
use executor::{Instant, TaskPool, sleep, sleep_until, timeout_at};
use nt::{DPFLTR_INFO_LEVEL, DPFLTR_WARNING_LEVEL, kdprint};
use wsk_async::{Buffer, BufferPool, Connection, Receive, Registration, WskError};

/// Bytes of a report line: the sequence number and the counters, well under this.
pub(crate) const REPORT_BUFFER_SIZE: usize = 256;

/// Bytes of task storage for the client's future.
const CLIENT_TASK_SIZE: usize = 2048;

/// How long a new connection waits for the buffers the previous one lent to cancelled operations.
const BUFFER_RETURN_BOUND: Duration = Duration::from_secs(1);

/// The client task's slot. Static: spawning allocates nothing.
pub(crate) static CLIENT_TASK: TaskPool<CLIENT_TASK_SIZE, 1> = TaskPool::new();

/// Set by DriverUnload before it shuts the executor down: the task ends at its next step instead of
/// starting another attempt. Wherever it is waiting, the executor's shutdown drops it anyway.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Tells the task to stop at its next step (DriverUnload).
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

/// How one connection attempt, or the connection it made, ended.
enum End {
    /// No connection was made: the name did not resolve, or every address refused or failed.
    NotConnected(WskError),
    /// The server closed the connection (FIN).
    ServerClosed,
    /// A send or receive failed (reset, forced close, ...).
    Failed(WskError),
    /// No buffer came back for the new connection (only if the provider never completes a
    /// cancelled IRP of the previous one).
    NoBuffer,
    /// The driver is unloading.
    Stopping,
}

/// The client: until unload, one attempt after another with a backoff wait between them. The
/// sequence number goes on across connections, so the server sees it grow whatever reconnections
/// happened in between (a report whose send failed leaves a gap).
///
/// Unload can come at any `.await` here: the executor's shutdown drops this future there, and every
/// operation pending at that point ends with it (a connect or a send has its IRP cancelled, an open
/// connection is closed abortively, a sleep unlinks its timer); the driver state's teardown then
/// waits for the IRPs before it deregisters.
pub(crate) async fn run(registration: &'static Registration, buffers: BufferPool, config: Config) {
    let mut buffers = buffers;
    let mut backoff = Backoff::new(config.backoff_min, config.backoff_max);
    let mut sequence = 0u64;
    while !stopping() {
        let end = attempt(registration, &mut buffers, &config, &mut sequence).await;
        match end {
            End::Stopping => break,
            End::NotConnected(e) => kdprint!(DPFLTR_WARNING_LEVEL, "report: no connection: {e}"),
            // A connection was made: the backoff starts from its minimum again.
            End::ServerClosed => {
                backoff.reset();
                kdprint!(DPFLTR_INFO_LEVEL, "report: the server closed the connection");
            }
            End::Failed(e) => {
                backoff.reset();
                kdprint!(DPFLTR_WARNING_LEVEL, "report: connection failed: {e}");
            }
            End::NoBuffer => kdprint!(DPFLTR_WARNING_LEVEL, "report: no buffer came back"),
        }
        COUNTERS.failure();
        if stopping() {
            break;
        }
        let wait = backoff.next_wait();
        // The sleep (and so its deadline) exists before the counters say `BackingOff`, with that
        // deadline as `retry_at`: whoever reads them sees the wait that is really in progress.
        let pause = sleep(wait);
        COUNTERS.backing_off(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), pause.deadline());
        pause.await;
    }
    COUNTERS.set_phase(Phase::Idle);
}

/// One attempt: resolve, connect to each address in turn until one accepts, then report on that
/// connection until it ends, and close it.
async fn attempt(registration: &Registration, buffers: &mut BufferPool, config: &Config, sequence: &mut u64) -> End {
    COUNTERS.set_phase(Phase::Resolving);
    let addrs = match resolve_server(registration, config.host, config.port).await {
        Ok(addrs) => addrs,
        Err(e) => return End::NotConnected(e),
    };
    if stopping() {
        return End::Stopping;
    }
    COUNTERS.set_phase(Phase::Connecting);
    // A resolver that succeeds returns at least one address; should one return none, that is a failure too.
    let mut last_error = WskError::from_status(nt::STATUS_NOT_FOUND);
    let mut connection = None;
    for addr in addrs.iter() {
        kdprint!(DPFLTR_INFO_LEVEL, "report: connecting to {addr}");
        match registration.connect(addr).await {
            Ok(conn) => {
                connection = Some(conn);
                break;
            }
            Err(e) => last_error = e,
        }
    }
    let Some(conn) = connection else {
        return End::NotConnected(last_error);
    };
    COUNTERS.connected();
    COUNTERS.set_phase(Phase::Connected);
    if let Some(peer) = conn.peer_addr() {
        kdprint!(DPFLTR_INFO_LEVEL, "report: connected to {peer}");
    }
    // The two buffers of the previous connection come back when the kernel has completed its
    // operations: at once, unless a cancelled one is still on its way (Windows completes a
    // cancelled IRP promptly; the bound is for a provider that does not).
    let deadline = Instant::now() + BUFFER_RETURN_BOUND;
    let send_buf = timeout_at(deadline, buffers.take_when_free()).await;
    let receive_buf = timeout_at(deadline, buffers.take_when_free()).await;
    let (Ok(send_buf), Ok(receive_buf)) = (send_buf, receive_buf) else {
        return End::NoBuffer;
    };
    let end = report(&conn, send_buf, receive_buf, config, sequence).await;
    if matches!(end, End::ServerClosed) {
        // The server said it is done: answer with our FIN (abortive if that takes too long).
        let _ = conn.disconnect_or_abort(config.disconnect_timeout).await;
    }
    // Abortive unless both sides disconnected.
    let _ = conn.close().await;
    end
}

/// What [`race`] saw first.
enum First<T> {
    Received((wsk_async::Result<usize>, Buffer)),
    Other(T),
}

/// Waits for whichever of the pending receive and `other` completes first (the receive is polled
/// first). Neither is dropped: the caller goes on with whichever is still pending.
async fn race<F: Future>(receive: &mut Receive<'_>, mut other: Pin<&mut F>) -> First<F::Output> {
    poll_fn(|cx| {
        if let Poll::Ready(received) = Pin::new(&mut *receive).poll(cx) {
            return Poll::Ready(First::Received(received));
        }
        other.as_mut().poll(cx).map(First::Other)
    })
    .await
}

/// Reports on `conn` until it ends: a report at once and then every `interval`, with a receive
/// always pending, so that the server's FIN or reset ends the connection even while no report is
/// being sent (and even during a send the server does not acknowledge). What the server sends is
/// counted and discarded.
async fn report(conn: &Connection, send_buf: Buffer, receive_buf: Buffer, config: &Config, sequence: &mut u64) -> End {
    let mut receive = conn.receive(receive_buf);
    let mut send_buf = Some(send_buf);
    let mut next = Instant::now();
    loop {
        if stopping() {
            return End::Stopping;
        }
        match race(&mut receive, pin!(sleep_until(next))).await {
            First::Received(received) => match on_received(conn, received) {
                Ok(again) => {
                    receive = again;
                    continue;
                }
                Err(end) => return end,
            },
            First::Other(()) => {}
        }
        let mut buf = send_buf.take().expect("the report buffer is back after every send");
        // Numbered before it is sent: a report cut short by a failure keeps its number.
        write_report(&mut buf, *sequence, COUNTERS.snapshot());
        *sequence += 1;
        let mut send = pin!(conn.send_all(buf));
        let (sent, buf) = loop {
            match race(&mut receive, send.as_mut()).await {
                First::Received(received) => match on_received(conn, received) {
                    Ok(again) => receive = again,
                    Err(end) => return end,
                },
                First::Other(done) => break done,
            }
        };
        send_buf = Some(buf);
        if let Err(e) = sent {
            return End::Failed(e);
        }
        COUNTERS.report_sent();
        // The next report one interval after this one was due; after a stall (a slow send), one
        // interval from now rather than a burst to catch up.
        next = next.saturating_add(config.interval).max(Instant::now());
    }
}

/// A completed receive: the next receive, or how the connection ended.
fn on_received<'c>(
    conn: &'c Connection,
    (result, buf): (wsk_async::Result<usize>, Buffer),
) -> Result<Receive<'c>, End> {
    match result {
        Ok(0) => Err(End::ServerClosed),
        Ok(n) => {
            COUNTERS.received(n);
            Ok(conn.receive(buf))
        }
        Err(e) => Err(End::Failed(e)),
    }
}

/// Writes the report line: `report SEQ connects=N reconnects=N sent=N failures=N\n`.
fn write_report(buf: &mut Buffer, sequence: u64, counters: CounterSnapshot) {
    struct Line<'b>(&'b mut Buffer);
    impl Write for Line<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            // A line longer than the buffer is cut (it never is: see REPORT_BUFFER_SIZE).
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }
    buf.clear();
    let _ = writeln!(
        Line(buf),
        "report {sequence} connects={} reconnects={} sent={} failures={}",
        counters.connects,
        counters.reconnects,
        counters.reports_sent,
        counters.failures
    );
}

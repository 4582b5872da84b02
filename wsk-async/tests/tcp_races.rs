//! Futures dropped while a real completion (from the provider's event-loop thread) races the drop:
//! both orders happen across the iterations. Whatever the order, nothing leaks (the session's leak
//! report), nothing is freed twice (the emulation would abort), every buffer returns to its pool, and
//! the connection ends as documented. Not under Miri (real sockets and threads).
#![cfg(all(not(target_os = "windows"), not(miri), not(loom)))]

mod common;

use std::future::{Future, poll_fn};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use wsk_async::{BufferPool, Registration};

const BOUND: Duration = Duration::from_secs(20);
const ROUNDS: usize = 40;

fn block_on<F: Future>(f: F) -> F::Output {
    executor::block_on(f).expect("block_on at PASSIVE_LEVEL")
}

/// Waits (bounded) until `count` buffers of `pool` are free, delivering deferred completions.
fn wait_buffers_back(pool: &BufferPool, count: usize) {
    let deadline = std::time::Instant::now() + BOUND;
    while pool.available() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "a buffer did not come back within {BOUND:?}"
        );
        nt::emu::wsk::settle();
        std::thread::yield_now();
    }
}

/// Polls `future` once (submitting its IRP) and returns whether it completed.
async fn poll_once<F: Future>(mut future: std::pin::Pin<&mut F>) -> bool {
    poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx).is_ready())).await
}

#[test]
fn receive_dropped_while_data_arrives() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let pool = BufferPool::new(2, 1024).unwrap();
    let listener = block_on(registration.listen("127.0.0.1:0".parse().unwrap())).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], listener.local_addr().unwrap().port()));
    for round in 0..ROUNDS {
        let mut client = TcpStream::connect(addr).unwrap();
        client.set_read_timeout(Some(BOUND)).unwrap();
        let conn = block_on(listener.accept()).unwrap();
        let (go, start) = mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            start.recv().unwrap();
            // The driver may already have reset the connection by the time this runs; the reset is
            // then reported to this write (and a later read sees EOF).
            let written = client.write_all(b"racing").map_err(|e| e.kind());
            (client, written)
        });
        block_on(async {
            let mut receive = pin!(conn.receive(pool.take().unwrap()));
            let done = poll_once(receive.as_mut()).await;
            assert!(!done, "nothing was sent yet");
            go.send(()).unwrap();
            // Dropped here, racing the write's completion.
        });
        assert!(conn.is_stream_unknown());
        drop(conn); // unclosed: abortive close
        // The cancelled receive's buffer is back once its IRP has completed, which under the
        // `pending` and `random` schedules happens after the drop, on the provider's thread.
        wait_buffers_back(&pool, 2);
        let (mut client, written) = writer.join().unwrap();
        let mut rest = Vec::new();
        let end = client.read_to_end(&mut rest).map_err(|e| e.kind());
        let reset = end == Err(ErrorKind::ConnectionReset)
            || matches!(written, Err(ErrorKind::ConnectionReset | ErrorKind::BrokenPipe));
        assert!(reset, "round {round}: no reset seen (write {written:?}, read {end:?})");
    }
    block_on(listener.close()).unwrap();
    assert_eq!(pool.available(), 2, "every buffer is back, whatever the order");
    drop(pool);
    block_on(registration.deregister());
}

/// Set by a client thread when the connection was reset; wakes the driver task waiting for it.
#[derive(Default)]
struct ResetSeen {
    seen: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl ResetSeen {
    fn set(&self) {
        self.seen.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }

    fn poll(&self, cx: &mut Context<'_>) -> bool {
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        self.seen.load(Ordering::SeqCst)
    }
}

#[test]
fn accept_dropped_while_a_client_connects() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let listener = block_on(registration.listen("127.0.0.1:0".parse().unwrap())).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], listener.local_addr().unwrap().port()));
    for _ in 0..ROUNDS {
        let (go, start) = mpsc::channel::<()>();
        let reset = Arc::new(ResetSeen::default());
        let client = {
            let reset = reset.clone();
            std::thread::spawn(move || {
                start.recv().unwrap();
                let mut client = TcpStream::connect(addr).unwrap();
                client.set_read_timeout(Some(BOUND)).unwrap();
                let mut byte = [0u8; 1];
                let end = client.read(&mut byte).map_err(|e| e.kind());
                reset.set();
                end
            })
        };
        block_on(async {
            let mut accept = pin!(listener.accept());
            assert!(!poll_once(accept.as_mut()).await);
            go.send(()).unwrap();
            // Dropped here, racing the connection: cancelled (the connection stays in the backlog),
            // or completed and its connection closed at once (the client sees a reset).
        });
        // Whichever happened, the client ends up reset: a connection left in the backlog is
        // accepted by this next accept and dropped unclosed.
        let next = block_on(async {
            let mut accept = pin!(listener.accept());
            poll_fn(|cx| match accept.as_mut().poll(cx) {
                Poll::Ready(conn) => Poll::Ready(Some(conn.unwrap())),
                Poll::Pending if reset.poll(cx) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            })
            .await
        });
        drop(next);
        assert_eq!(client.join().unwrap(), Err(ErrorKind::ConnectionReset));
    }
    block_on(listener.close()).unwrap();
    block_on(registration.deregister());
}

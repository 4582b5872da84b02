//! Waiting for a pool's buffer to come back: [`BufferPool::take_when_free`].
//!
//! A buffer lent to the kernel by a future that was dropped (an operation cancelled by a timeout)
//! returns to its pool when the cancelled IRP completes, which Windows may do a little after the
//! code that dropped the future has moved on. A server that counts its connections and sizes its
//! pool to that count therefore meets, now and then, an empty pool with a place free: the buffer is
//! on its way back. It waits for it rather than shedding the connection.
//!
//! The protocol is the waker cell's: a returning buffer sets its free bit, then wakes the cell; the
//! waiting future registers its waker, then looks at the bitmap again. Whichever order the two take,
//! the waiter either finds the bit or is woken (the loom model `loom_buffer_return_wakes_a_waiter`).

use crate::buffer::{Buffer, BufferPool};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

impl BufferPool {
    /// Takes a free buffer, waiting for one to be returned when every buffer is in use. A buffer
    /// comes back when its owner drops it, or, for one lent to an operation whose future was dropped,
    /// when the kernel completes that operation's IRP.
    ///
    /// One task waits at a time (the handle is borrowed mutably). Not bounded: a caller that must
    /// not wait forever (a provider that never completes a cancelled IRP breaks the IRP contract,
    /// but a driver may still want to survive it) puts it under a timeout; dropping the future
    /// stops the wait. PASSIVE_LEVEL or APC_LEVEL (it is awaited by a task); never allocates.
    pub fn take_when_free(&mut self) -> TakeWhenFree<'_> {
        TakeWhenFree { pool: self }
    }
}

/// The future of [`BufferPool::take_when_free`].
#[must_use = "futures do nothing unless awaited"]
pub struct TakeWhenFree<'a> {
    pool: &'a mut BufferPool,
}

impl Future for TakeWhenFree<'_> {
    type Output = Buffer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Buffer> {
        let pool = &*self.get_mut().pool;
        if let Ok(buf) = pool.take() {
            return Poll::Ready(buf);
        }
        pool.returned().register(cx.waker());
        // A buffer that came back between the take above and the registration woke nobody (or an
        // older waker): look again now that a return is sure to wake this one.
        match pool.take() {
            Ok(buf) => Poll::Ready(buf),
            Err(_) => Poll::Pending,
        }
    }
}

impl Drop for TakeWhenFree<'_> {
    /// Leaves no waker behind in the pool: later returns wake nobody (a stale waker could outlive
    /// its task's executor).
    fn drop(&mut self) {
        drop(self.pool.returned().take());
    }
}

#[cfg(all(test, not(loom), not(target_os = "windows")))]
mod tests {
    use super::*;
    use core::task::Waker;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountWakes(AtomicUsize);
    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Waker, Arc<CountWakes>) {
        let count = Arc::new(CountWakes(AtomicUsize::new(0)));
        (Waker::from(count.clone()), count)
    }

    #[test]
    fn a_free_buffer_is_taken_at_once() {
        let _session = nt::emu::session();
        let mut pool = BufferPool::new(1, 16).unwrap();
        let (waker, wakes) = counting_waker();
        let mut wait = core::pin::pin!(pool.take_when_free());
        assert!(wait.as_mut().poll(&mut Context::from_waker(&waker)).is_ready());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_waiter_is_woken_by_the_return_and_then_gets_the_buffer() {
        let _session = nt::emu::session();
        let mut pool = BufferPool::new(1, 16).unwrap();
        let lent = pool.take().unwrap();
        let (waker, wakes) = counting_waker();
        let mut wait = core::pin::pin!(pool.take_when_free());
        let mut cx = Context::from_waker(&waker);
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        assert!(wait.as_mut().poll(&mut cx).is_pending(), "still nothing back");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        drop(lent); // as a completion routine returning a cancelled receive's buffer would
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "the return woke the waiter");
        let Poll::Ready(buf) = wait.as_mut().poll(&mut cx) else {
            panic!("the returned buffer is taken")
        };
        assert_eq!(buf.len(), 0);
    }

    #[test]
    fn a_dropped_wait_leaves_no_waker_in_the_pool() {
        let _session = nt::emu::session();
        let mut pool = BufferPool::new(1, 16).unwrap();
        let lent = pool.take().unwrap();
        let (waker, wakes) = counting_waker();
        {
            let mut wait = core::pin::pin!(pool.take_when_free());
            assert!(wait.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        }
        assert_eq!(Arc::strong_count(&wakes), 2, "only the test's waker is left");
        drop(lent);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "nobody waits any more");
    }
}

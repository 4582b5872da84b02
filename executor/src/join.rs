//! The join handle: await a task's output, abort it, or drop the handle to detach the task.

use crate::error::JoinError;
use crate::state::{self, COMPLETE, JOIN_WAKER, OUTPUT};
use crate::task::TaskRef;
use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::task::{Context, Poll};

/// A handle to a spawned task, resolving to its output (or [`JoinError::Aborted`]).
///
/// Dropping the handle detaches the task: it keeps running and its output is dropped when it
/// completes. The task's slot is returned to its pool when the task has completed and the handle is
/// gone (or its output taken). Dropping is allowed from any thread at IRQL <= DISPATCH_LEVEL
/// provided dropping the output `T` is.
#[must_use = "dropping a JoinHandle detaches the task"]
pub struct JoinHandle<T> {
    task: Option<TaskRef>,
    _output: PhantomData<T>,
}

// SAFETY: the handle only moves the output out of the slot (T: Send) and touches atomics.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: `&JoinHandle` only allows `abort` and `is_finished`, which use atomics only.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// # Safety
    /// `task` was spawned with `HANDLE` set and an output of type `T`.
    pub(crate) unsafe fn new(task: TaskRef) -> Self {
        Self {
            task: Some(task),
            _output: PhantomData,
        }
    }

    /// Asks the executor to drop the task's future instead of polling it again. The drop happens on
    /// the executor thread; awaiting the handle then yields [`JoinError::Aborted`] (or the output,
    /// if the task completed first). Callable at IRQL <= DISPATCH_LEVEL.
    pub fn abort(&self) {
        if let Some(task) = self.task
            && task.header().state.request_abort()
        {
            crate::waker::wake_task(task);
        }
    }

    /// True once the task has completed (returned, been aborted, or been dropped by a shutdown).
    pub fn is_finished(&self) -> bool {
        match self.task {
            Some(task) => task.header().state.load() & COMPLETE != 0,
            None => true,
        }
    }

    /// Lets go of the task (transition 7), dropping an output nobody took, and frees the slot if
    /// the task is done with it.
    fn release(&mut self, mut take: impl FnMut(TaskRef)) {
        let Some(task) = self.task.take() else { return };
        let header = task.header();
        if header.state.load() & JOIN_WAKER != 0 && header.state.reclaim_join_waker().is_ok() {
            // SAFETY: `reclaim_join_waker` gave the cell back to the handle; it holds a waker.
            unsafe { (*task.join_waker()).assume_init_drop() };
        }
        let mut consumed = false;
        let previous = loop {
            match header.state.release_handle(consumed) {
                Ok(previous) => break previous,
                Err(_) => {
                    // OUTPUT is set: the executor wrote the output and will not touch it again.
                    take(task);
                    consumed = true;
                }
            }
        };
        let now = previous & !(state::HANDLE | OUTPUT | JOIN_WAKER);
        if state::is_releasable(now) {
            // SAFETY: this RMW cleared the last of SPAWNED/RUN_QUEUED/HANDLE; the output is gone.
            unsafe { task.release() };
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(task) = self.task else {
            return Poll::Ready(Err(JoinError::AlreadyJoined));
        };
        let header = task.header();
        let mut word = header.state.load();
        if word & COMPLETE == 0 {
            // Store or refresh the join waker; the executor takes it when the task completes.
            if word & JOIN_WAKER != 0 {
                // SAFETY: with JOIN_WAKER set and COMPLETE clear the cell holds a waker that only
                // the executor may take, and only after setting COMPLETE; reading it is a shared read.
                let same = unsafe { (*task.join_waker()).assume_init_ref() }.will_wake(cx.waker());
                if same {
                    return Poll::Pending;
                }
                match header.state.reclaim_join_waker() {
                    // SAFETY: the cell is ours again and holds the old waker.
                    Ok(()) => unsafe { (*task.join_waker()).assume_init_drop() },
                    Err(now) => word = now,
                }
            }
            if word & COMPLETE == 0 {
                // SAFETY: JOIN_WAKER is clear, so the handle owns the (empty) cell.
                unsafe { (*task.join_waker()).write(cx.waker().clone()) };
                match header.state.publish_join_waker() {
                    Ok(()) => return Poll::Pending,
                    Err(now) => {
                        // Completed meanwhile: the cell is still ours; empty it and read the result.
                        // SAFETY: the cell holds the waker just written, and is still the handle's.
                        unsafe { (*task.join_waker()).assume_init_drop() };
                        word = now;
                    }
                }
            }
        }
        let mut output = None;
        if word & OUTPUT != 0 {
            // SAFETY: COMPLETE|OUTPUT: the slot holds the task's `T` output, owned by the handle.
            output = Some(unsafe { task.storage().cast::<T>().read() });
        }
        let mut consumed_output = output.is_some();
        let this = &mut *self;
        this.release(|task| {
            if !consumed_output {
                // SAFETY: `release` calls this only when OUTPUT is set and not yet consumed.
                output = Some(unsafe { task.storage().cast::<T>().read() });
                consumed_output = true;
            }
        });
        Poll::Ready(output.ok_or(JoinError::Aborted))
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.release(|task| {
            // SAFETY: `release` calls this only when the slot holds an output nobody took.
            unsafe { core::ptr::drop_in_place(task.storage().cast::<T>()) }
        });
    }
}

//! The executor on the host emulation of the kernel: its system thread sleeping on a KEVENT,
//! wakes from other threads at DISPATCH_LEVEL, `block_on`, timers on KTIMER + KDPC, and shutdown.
//! Each test runs in an emulation session, which fails the test if a thread, timer or object leaks.
#![cfg(not(target_os = "windows"))]

use executor::{
    BlockOnError, Duration, Elapsed, Executor, ExecutorError, Instant, JoinError, SpawnError, TIMERS, TaskPool,
    TimerDriver, block_on, sleep, timeout,
};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread::{self, ThreadId};

/// How long a test waits for something that must happen before failing (real time).
const BOUND: std::time::Duration = std::time::Duration::from_secs(20);

/// Records the thread it is dropped on.
struct DropProbe {
    drops: &'static AtomicUsize,
    thread: &'static Mutex<Vec<ThreadId>>,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        self.thread.lock().unwrap().push(thread::current().id());
    }
}

#[test]
fn the_executor_thread_runs_tasks_woken_at_dispatch_level_from_other_threads() {
    let _session = nt::emu::session();
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<256, 32> = TaskPool::new();
    EXECUTOR.start().unwrap();
    assert_eq!(EXECUTOR.run_until_idle(), Err(ExecutorError::Busy));
    const TASKS: usize = 8;
    const ROUNDS: usize = 50;
    let (to_completer, completions) = mpsc::channel::<Waker>();
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let to_completer = to_completer.clone();
        handles.push(
            POOL.spawn(EXECUTOR.spawner(), async move {
                let irql = nt::KeGetCurrentIrql();
                let mut rounds = 0;
                poll_fn(|cx| {
                    if rounds == ROUNDS {
                        return Poll::Ready(());
                    }
                    rounds += 1;
                    to_completer.send(cx.waker().clone()).unwrap();
                    Poll::Pending
                })
                .await;
                (irql, thread::current().id())
            })
            .unwrap(),
        );
    }
    drop(to_completer);
    // Two "completion routine" threads: each wake runs at DISPATCH_LEVEL, like an IRP completion.
    let completions = std::sync::Arc::new(Mutex::new(completions));
    let completers: Vec<_> = (0..2)
        .map(|_| {
            let completions = completions.clone();
            thread::spawn(move || {
                loop {
                    let next = completions.lock().unwrap().recv();
                    let Ok(waker) = next else { return };
                    nt::emu::at_dispatch(|| {
                        assert_eq!(nt::KeGetCurrentIrql(), nt::DISPATCH_LEVEL);
                        waker.wake()
                    });
                }
            })
        })
        .collect();
    let results = block_on(async {
        let mut results = Vec::new();
        for handle in handles {
            results.push(handle.await.unwrap());
        }
        results
    })
    .unwrap();
    let executor_thread = results[0].1;
    assert_ne!(executor_thread, thread::current().id());
    for (irql, thread) in results {
        assert_eq!(irql, nt::PASSIVE_LEVEL);
        assert_eq!(thread, executor_thread);
    }
    EXECUTOR.shutdown().unwrap();
    for completer in completers {
        completer.join().unwrap();
    }
}

#[test]
fn shutdown_drops_every_pending_future_once_on_the_executor_thread() {
    let _session = nt::emu::session();
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<128, 16> = TaskPool::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static DROP_THREADS: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    static KEPT: Mutex<Vec<Waker>> = Mutex::new(Vec::new());
    EXECUTOR.start().unwrap();
    let executor_thread = block_on(
        POOL.spawn(EXECUTOR.spawner(), async { thread::current().id() })
            .unwrap(),
    )
    .unwrap()
    .unwrap();
    const PENDING: usize = 10;
    let mut handles = Vec::new();
    for i in 0..PENDING {
        let probe = DropProbe {
            drops: &DROPS,
            thread: &DROP_THREADS,
        };
        let task = async move {
            let _probe = probe;
            poll_fn(|cx| {
                KEPT.lock().unwrap().push(cx.waker().clone());
                STARTED.fetch_add(1, Ordering::SeqCst);
                Poll::<()>::Pending
            })
            .await;
        };
        if i % 2 == 0 {
            handles.push(POOL.spawn(EXECUTOR.spawner(), task).unwrap());
        } else {
            POOL.spawn_detached(EXECUTOR.spawner(), task).unwrap();
        }
    }
    // Wait (bounded) until every task has been polled once and is waiting on its waker.
    let start = std::time::Instant::now();
    while STARTED.load(Ordering::SeqCst) < PENDING {
        assert!(start.elapsed() < BOUND, "tasks were not polled");
        thread::yield_now();
    }
    // Some tasks are queued again when the shutdown starts.
    for waker in KEPT.lock().unwrap().iter().take(3) {
        waker.wake_by_ref();
    }
    EXECUTOR.shutdown().unwrap();
    assert_eq!(DROPS.load(Ordering::SeqCst), PENDING);
    assert!(DROP_THREADS.lock().unwrap().iter().all(|t| *t == executor_thread));
    // Nothing runs or is woken afterwards; spawns are refused; handles report the abort.
    for waker in KEPT.lock().unwrap().drain(..) {
        waker.wake();
    }
    assert_eq!(
        POOL.spawn(EXECUTOR.spawner(), async {}).err(),
        Some(SpawnError::ShutDown)
    );
    assert_eq!(EXECUTOR.run_until_idle(), Err(ExecutorError::ShutDown));
    assert_eq!(EXECUTOR.shutdown(), Ok(()));
    for handle in handles {
        assert_eq!(block_on(handle).unwrap(), Err(JoinError::Aborted));
    }
    assert_eq!(DROPS.load(Ordering::SeqCst), PENDING);
}

#[test]
fn shutdown_of_an_executor_run_on_the_callers_thread() {
    let _session = nt::emu::session();
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<128, 4> = TaskPool::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static DROP_THREADS: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());
    let probe = DropProbe {
        drops: &DROPS,
        thread: &DROP_THREADS,
    };
    POOL.spawn_detached(EXECUTOR.spawner(), async move {
        let _probe = probe;
        std::future::pending::<()>().await
    })
    .unwrap();
    EXECUTOR.run_until_idle().unwrap();
    EXECUTOR.shutdown().unwrap();
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    assert_eq!(DROP_THREADS.lock().unwrap()[0], thread::current().id());
}

#[test]
fn block_on_refuses_above_passive_level() {
    let _session = nt::emu::session();
    let refused = nt::emu::at_dispatch(|| block_on(async { 1 }));
    assert_eq!(refused, Err(BlockOnError::NotPassiveLevel));
    assert_eq!(block_on(async { 1 }), Ok(1));
    static EXECUTOR: Executor = Executor::new();
    assert_eq!(
        nt::emu::at_dispatch(|| EXECUTOR.start()),
        Err(ExecutorError::NotPassiveLevel)
    );
    assert_eq!(
        nt::emu::at_dispatch(|| EXECUTOR.shutdown()),
        Err(ExecutorError::NotPassiveLevel)
    );
}

#[test]
fn block_on_is_woken_from_another_thread_at_dispatch_level() {
    let _session = nt::emu::session();
    let (to_waker, wakes) = mpsc::channel::<Waker>();
    let waker_thread = thread::spawn(move || {
        for waker in wakes {
            nt::emu::at_dispatch(|| waker.wake());
        }
    });
    let mut polls = 0;
    let value = block_on(poll_fn(|cx| {
        polls += 1;
        if polls == 5 {
            return Poll::Ready(polls);
        }
        to_waker.send(cx.waker().clone()).unwrap();
        Poll::Pending
    }))
    .unwrap();
    assert_eq!(value, 5);
    drop(to_waker);
    waker_thread.join().unwrap();
}

/// Stops the timer driver at the end of a test so that no KTIMER stays armed into the leak check,
/// and makes it usable again for the next test.
struct TimersStopped(&'static TimerDriver);
impl Drop for TimersStopped {
    fn drop(&mut self) {
        assert!(self.0.stop());
        self.0.start();
    }
}

#[test]
fn sleep_and_timeout_in_tasks_on_the_virtual_clock() {
    let _session = nt::emu::session();
    let _timers = TimersStopped(&TIMERS);
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<512, 8> = TaskPool::new();
    nt::emu::clock::pause();
    EXECUTOR.start().unwrap();
    let started = Instant::now();
    let sleeper = POOL
        .spawn(EXECUTOR.spawner(), async move {
            sleep(Duration::from_millis(30)).await;
            Instant::now().saturating_duration_since(started)
        })
        .unwrap();
    let timed_out = POOL
        .spawn(EXECUTOR.spawner(), async {
            timeout(Duration::from_millis(10), std::future::pending::<()>()).await
        })
        .unwrap();
    let in_time = POOL
        .spawn(EXECUTOR.spawner(), async {
            timeout(Duration::from_millis(50), sleep(Duration::from_millis(20))).await
        })
        .unwrap();
    // A pending sleep dropped before its deadline (its entry must leave the timer list).
    let dropped = POOL
        .spawn(EXECUTOR.spawner(), async {
            sleep(Duration::from_millis(5)).await;
            let mut long = pin!(sleep(Duration::from_secs(3600)));
            poll_fn(|cx| {
                let _ = long.as_mut().poll(cx);
                Poll::Ready(())
            })
            .await;
            7
        })
        .unwrap();
    // Move the virtual clock until every task is done (the executor thread registers the timers
    // whenever it gets to them, so the clock must keep moving until they have all fired).
    let tasks_done =
        || sleeper.is_finished() && timed_out.is_finished() && in_time.is_finished() && dropped.is_finished();
    let start = std::time::Instant::now();
    while !tasks_done() {
        assert!(start.elapsed() < BOUND, "timers did not fire");
        nt::emu::clock::advance(Duration::from_millis(1));
        thread::yield_now();
    }
    let (slept, timed_out, in_time, dropped) = block_on(async {
        (
            sleeper.await.unwrap(),
            timed_out.await.unwrap(),
            in_time.await.unwrap(),
            dropped.await.unwrap(),
        )
    })
    .unwrap();
    assert!(slept >= Duration::from_millis(30), "{slept:?}");
    assert_eq!(timed_out, Err(Elapsed));
    assert_eq!(in_time, Ok(()));
    assert_eq!(dropped, 7);
    EXECUTOR.shutdown().unwrap();
}

#[test]
fn timers_work_for_futures_outside_any_executor() {
    let _session = nt::emu::session();
    static DRIVER: TimerDriver = TimerDriver::new();
    let _timers = TimersStopped(&DRIVER);
    nt::emu::clock::pause();
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let advancer = thread::spawn(|| {
        let start = std::time::Instant::now();
        while !DONE.load(Ordering::SeqCst) {
            assert!(start.elapsed() < BOUND, "the sleep did not end");
            nt::emu::clock::advance(Duration::from_millis(1));
            thread::yield_now();
        }
    });
    let deadline = Instant::now() + Duration::from_millis(15);
    block_on(DRIVER.sleep_until(deadline)).unwrap();
    DONE.store(true, Ordering::SeqCst);
    assert!(Instant::now() >= deadline);
    advancer.join().unwrap();
}

#[test]
fn stopping_the_timer_driver_completes_pending_sleeps() {
    let _session = nt::emu::session();
    static DRIVER: TimerDriver = TimerDriver::new();
    nt::emu::clock::pause();
    let mut sleep = pin!(DRIVER.sleep(Duration::from_secs(60)));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(sleep.as_mut().poll(&mut cx).is_pending());
    assert!(DRIVER.stop());
    assert!(sleep.as_mut().poll(&mut cx).is_ready());
    // After stop, new sleeps complete at once; start makes the driver usable again.
    assert!(pin!(DRIVER.sleep(Duration::from_secs(60))).poll(&mut cx).is_ready());
    DRIVER.start();
    let mut again = pin!(DRIVER.sleep(Duration::from_millis(1)));
    assert!(again.as_mut().poll(&mut cx).is_pending());
    // The timer's DPC runs on the clock tick at or after the due time (as on Windows), and a poll
    // of a sleep still linked with the same waker waits for that DPC rather than reading the clock:
    // advance past the next tick, which `advance` returns from only after the DPC has run.
    nt::emu::clock::advance(nt::emu::clock::TICK);
    assert!(again.as_mut().poll(&mut cx).is_ready());
    assert!(DRIVER.stop());
    DRIVER.start();
}

/// Counts the wakes of one timer future.
struct WakeCount(AtomicUsize);

impl std::task::Wake for WakeCount {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Timer entries leave the driver's list from any position (head, middle, tail) when their futures
/// are dropped while armed, and the DPC then wakes each remaining one once, when it is due: the
/// list stays consistent, and a done sleep stays done when polled again.
#[test]
fn timer_entries_dropped_from_any_place_in_the_list_leave_it_consistent() {
    let _session = nt::emu::session();
    static DRIVER: TimerDriver = TimerDriver::new();
    let _timers = TimersStopped(&DRIVER);
    nt::emu::clock::pause();
    let counts: Vec<_> = (0..5)
        .map(|_| std::sync::Arc::new(WakeCount(AtomicUsize::new(0))))
        .collect();
    let wakers: Vec<Waker> = counts.iter().map(|c| Waker::from(c.clone())).collect();
    // Deadlines 10, 20, ... 50 ms; each poll links its entry at the head: the list is 50, 40, ... 10.
    let mut sleeps: Vec<Option<std::pin::Pin<Box<executor::Sleep>>>> = (1..=5)
        .map(|i| Some(Box::pin(DRIVER.sleep(Duration::from_millis(10 * i)))))
        .collect();
    for (sleep, waker) in sleeps.iter_mut().zip(&wakers) {
        let sleep = sleep.as_mut().unwrap();
        assert!(sleep.as_mut().poll(&mut Context::from_waker(waker)).is_pending());
    }
    // Drop the head (50 ms), one from the middle (30 ms) and the tail (10 ms).
    for dropped in [4, 2, 0] {
        sleeps[dropped] = None;
    }
    let poll = |sleeps: &mut Vec<Option<std::pin::Pin<Box<executor::Sleep>>>>, i: usize| {
        let sleep = sleeps[i].as_mut().unwrap();
        sleep.as_mut().poll(&mut Context::from_waker(&wakers[i])).is_ready()
    };
    let woken = || counts.iter().map(|c| c.0.load(Ordering::SeqCst)).collect::<Vec<_>>();
    // `advance` returns once the DPCs of the timers due meanwhile have run; a KTIMER expires on
    // the first clock tick at or after its due time, so the clock goes one tick past the deadline
    // (35.625 ms: short of the 40 ms one).
    nt::emu::clock::advance(Duration::from_millis(20) + nt::emu::clock::TICK);
    assert_eq!(woken(), [0, 1, 0, 0, 0]);
    assert!(poll(&mut sleeps, 1));
    assert!(!poll(&mut sleeps, 3));
    nt::emu::clock::advance(Duration::from_millis(40));
    assert_eq!(woken(), [0, 1, 0, 1, 0]);
    assert!(poll(&mut sleeps, 3));
    // Done stays done, and no later DPC wakes them again.
    assert!(poll(&mut sleeps, 1));
    nt::emu::clock::advance(Duration::from_millis(100));
    assert_eq!(woken(), [0, 1, 0, 1, 0]);
}

/// `Sleep::reset` moves a waiting sleep's deadline in place: later (the KTIMER armed for the old
/// deadline does not complete it), earlier (the KTIMER is re-armed), and it makes a done sleep wait
/// again. Margins of 100 ms or more around each deadline, so that a coarser timer tick still falls
/// on the same side.
#[test]
fn a_reset_sleep_completes_at_its_new_deadline_only() {
    let _session = nt::emu::session();
    static DRIVER: TimerDriver = TimerDriver::new();
    let _timers = TimersStopped(&DRIVER);
    nt::emu::clock::pause();
    let count = std::sync::Arc::new(WakeCount(AtomicUsize::new(0)));
    let waker = Waker::from(count.clone());
    let woken = || count.0.load(Ordering::SeqCst);
    let ms = Duration::from_millis;
    let mut sleep = Box::pin(DRIVER.sleep(ms(100)));
    let ready = |sleep: &mut std::pin::Pin<Box<executor::Sleep>>| {
        sleep.as_mut().poll(&mut Context::from_waker(&waker)).is_ready()
    };
    assert!(!ready(&mut sleep));
    // Later, while waiting: the old deadline passes without completing it.
    sleep.as_mut().reset(Instant::now() + ms(400));
    nt::emu::clock::advance(ms(200));
    assert_eq!(woken(), 0, "not woken at the old deadline");
    assert!(!ready(&mut sleep));
    nt::emu::clock::advance(ms(300));
    assert_eq!(woken(), 1, "woken at the new one");
    assert!(ready(&mut sleep));
    // Done, then reset: it waits again.
    sleep.as_mut().reset(Instant::now() + ms(1000));
    assert!(!ready(&mut sleep), "a done sleep, reset, waits again");
    nt::emu::clock::advance(ms(200));
    assert!(!ready(&mut sleep));
    // Earlier, while waiting: the KTIMER is re-armed for it.
    let earlier = Instant::now() + ms(100);
    sleep.as_mut().reset(earlier);
    nt::emu::clock::advance(ms(300));
    assert_eq!(woken(), 2, "woken at the earlier deadline");
    assert!(ready(&mut sleep));
    assert_eq!(sleep.deadline(), earlier);
}

/// A waiting sleep polled again with another waker wakes that one when due, not the first (a poll
/// with the same waker takes no lock; one with a new waker must still store it).
#[test]
fn a_waiting_sleep_polled_with_a_new_waker_wakes_the_new_one() {
    let _session = nt::emu::session();
    static DRIVER: TimerDriver = TimerDriver::new();
    let _timers = TimersStopped(&DRIVER);
    nt::emu::clock::pause();
    let (first, second) = (
        std::sync::Arc::new(WakeCount(AtomicUsize::new(0))),
        std::sync::Arc::new(WakeCount(AtomicUsize::new(0))),
    );
    let (first_waker, second_waker) = (Waker::from(first.clone()), Waker::from(second.clone()));
    let mut sleep = Box::pin(DRIVER.sleep(Duration::from_millis(100)));
    for waker in [&first_waker, &first_waker, &second_waker, &second_waker] {
        assert!(sleep.as_mut().poll(&mut Context::from_waker(waker)).is_pending());
    }
    nt::emu::clock::advance(Duration::from_millis(300));
    assert_eq!(first.0.load(Ordering::SeqCst), 0);
    assert_eq!(second.0.load(Ordering::SeqCst), 1);
    assert!(sleep.as_mut().poll(&mut Context::from_waker(&second_waker)).is_ready());
}

/// What a task shares with the completion routine of its IRP.
struct IrpOperation {
    done: std::sync::atomic::AtomicBool,
    waker: Mutex<Option<Waker>>,
    irql_seen: std::sync::atomic::AtomicU8,
}

unsafe extern "system" fn complete_operation(
    _device: nt::PDEVICE_OBJECT,
    _irp: nt::PIRP,
    context: nt::PVOID,
) -> nt::NTSTATUS {
    // SAFETY: the context is a `'static` IrpOperation (see the test).
    let operation = unsafe { &*context.cast_const().cast::<IrpOperation>() };
    operation.irql_seen.store(nt::KeGetCurrentIrql(), Ordering::SeqCst);
    operation.done.store(true, Ordering::SeqCst);
    if let Some(waker) = operation.waker.lock().unwrap().take() {
        waker.wake();
    }
    nt::STATUS_MORE_PROCESSING_REQUIRED
}

/// An IRP pointer handed between threads (the IRP is owned by one side at a time).
#[derive(Clone, Copy)]
struct IrpPtr(nt::PIRP);
// SAFETY: ownership of the IRP passes with the pointer (driver -> provider -> completion routine).
unsafe impl Send for IrpPtr {}
// SAFETY: as above; the pointer is only dereferenced by the current owner.
unsafe impl Sync for IrpPtr {}

/// An IRP sent to a lower driver (a "provider" thread): pending until its completion routine runs.
async fn irp_round_trip(operation: &'static IrpOperation, provider: mpsc::Sender<IrpPtr>) -> nt::KIRQL {
    operation.done.store(false, Ordering::SeqCst);
    // SAFETY: IoAllocateIrp at PASSIVE_LEVEL; the IRP has one stack location for the lower driver.
    let irp = IrpPtr(unsafe { nt::IoAllocateIrp(1, nt::FALSE) });
    assert!(!irp.0.is_null());
    let mut sent = false;
    poll_fn(|cx| {
        if operation.done.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        *operation.waker.lock().unwrap() = Some(cx.waker().clone());
        if !sent {
            sent = true;
            // SAFETY: the IRP is ours; the routine and its `'static` context outlive it; the
            // provider takes it the way IoCallDriver hands it down.
            unsafe {
                nt::IoSetCompletionRoutine(
                    irp.0,
                    Some(complete_operation),
                    std::ptr::from_ref(operation).cast_mut().cast(),
                    true,
                    true,
                    true,
                );
                assert!(nt::emu::irp::enter_provider(irp.0));
            }
            provider.send(irp).unwrap();
        }
        Poll::Pending
    })
    .await;
    // SAFETY: the completion routine ran and returned STATUS_MORE_PROCESSING_REQUIRED: the IRP is
    // ours again.
    unsafe { nt::IoFreeIrp(irp.0) };
    operation.irql_seen.load(Ordering::SeqCst)
}

#[test]
fn irp_completion_routines_at_dispatch_level_on_other_threads_wake_tasks() {
    let _session = nt::emu::session();
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<512, 8> = TaskPool::new();
    static OPERATIONS: [IrpOperation; 4] = [const {
        IrpOperation {
            done: std::sync::atomic::AtomicBool::new(false),
            waker: Mutex::new(None),
            irql_seen: std::sync::atomic::AtomicU8::new(0xff),
        }
    }; 4];
    const ROUNDS: usize = 20;
    EXECUTOR.start().unwrap();
    let (to_provider, submitted) = mpsc::channel::<IrpPtr>();
    // The provider completes each IRP at DISPATCH_LEVEL, as a lower driver's DPC would.
    let provider = thread::spawn(move || {
        for IrpPtr(irp) in submitted {
            nt::emu::at_dispatch(|| {
                // SAFETY: the provider owns the IRP between enter_provider and completion.
                unsafe {
                    (*irp).IoStatus = nt::IO_STATUS_BLOCK::new(nt::STATUS_SUCCESS, 0);
                    nt::IofCompleteRequest(irp, nt::IO_NO_INCREMENT);
                }
            });
        }
    });
    let handles: Vec<_> = OPERATIONS
        .iter()
        .map(|operation| {
            let to_provider = to_provider.clone();
            POOL.spawn(EXECUTOR.spawner(), async move {
                let mut irqls = Vec::new();
                for _ in 0..ROUNDS {
                    irqls.push(irp_round_trip(operation, to_provider.clone()).await);
                }
                irqls
            })
            .unwrap()
        })
        .collect();
    drop(to_provider);
    for handle in handles {
        let irqls = block_on(handle).unwrap().unwrap();
        assert_eq!(irqls.len(), ROUNDS);
        assert!(irqls.iter().all(|irql| *irql == nt::DISPATCH_LEVEL));
    }
    EXECUTOR.shutdown().unwrap();
    provider.join().unwrap();
}

#[test]
fn a_timeout_that_does_not_fire_leaves_no_kernel_timer_armed() {
    let session = nt::emu::session();
    let mut polls = 0;
    let ready_on_second_poll = poll_fn(|cx| {
        polls += 1;
        if polls == 2 {
            return Poll::Ready(5);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    });
    assert_eq!(
        block_on(timeout(Duration::from_secs(3600), ready_on_second_poll)),
        Ok(Ok(5))
    );
    // The sleep inside the timeout was registered (the KTIMER armed) and then dropped: the driver
    // cancelled its KTIMER, so the session's leak check finds no armed timer.
    assert!(session.leak_report().is_empty(), "{:?}", session.leak_report());
}

#[test]
fn shutdown_racing_with_spawns_and_wakes_from_other_threads_loses_no_task() {
    let _session = nt::emu::session();
    static EXECUTOR: Executor = Executor::new();
    static AFTERWARDS: Executor = Executor::new();
    static POOL: TaskPool<128, 16> = TaskPool::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static DROP_THREADS: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());
    static SPAWNED: AtomicUsize = AtomicUsize::new(0);
    // A refused spawn drops the future it was given, on the spawning thread.
    static REFUSED: AtomicUsize = AtomicUsize::new(0);
    const PER_THREAD: usize = if cfg!(miri) { 6 } else { 200 };
    EXECUTOR.start().unwrap();
    let (to_waker, wakes) = mpsc::channel::<Waker>();
    let waker_thread = thread::spawn(move || {
        for waker in wakes {
            nt::emu::at_dispatch(|| waker.wake());
        }
    });
    let spawners: Vec<_> = (0..2)
        .map(|t| {
            let to_waker = to_waker.clone();
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let probe = DropProbe {
                        drops: &DROPS,
                        thread: &DROP_THREADS,
                    };
                    let to_waker = to_waker.clone();
                    // Odd tasks finish after one wake; even ones wait forever.
                    let finishes = (t + i) % 2 == 1;
                    let task = async move {
                        let _probe = probe;
                        let mut polls = 0;
                        poll_fn(|cx| {
                            polls += 1;
                            if finishes && polls == 2 {
                                return Poll::Ready(());
                            }
                            let _ = to_waker.send(cx.waker().clone());
                            Poll::Pending
                        })
                        .await;
                    };
                    match POOL.spawn_detached(EXECUTOR.spawner(), task) {
                        Ok(()) => {
                            SPAWNED.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(SpawnError::PoolFull) => {
                            REFUSED.fetch_add(1, Ordering::SeqCst);
                            thread::yield_now()
                        }
                        Err(SpawnError::ShutDown) => {
                            REFUSED.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    drop(to_waker);
    // Shut down while the spawners and the waker are (probably) still busy.
    while SPAWNED.load(Ordering::SeqCst) < 8 {
        thread::yield_now();
    }
    EXECUTOR.shutdown().unwrap();
    for spawner in spawners {
        spawner.join().unwrap();
    }
    // Every future that was spawned was dropped exactly once: by completing, or by the shutdown
    // (plus the futures of refused spawns, dropped by the refusal).
    assert_eq!(
        DROPS.load(Ordering::SeqCst),
        SPAWNED.load(Ordering::SeqCst) + REFUSED.load(Ordering::SeqCst)
    );
    waker_thread.join().unwrap();
    // Every slot came back to the pool.
    let runner = AFTERWARDS.local_runner().unwrap();
    for _ in 0..POOL.capacity() {
        POOL.spawn_detached(runner.spawner(), async {}).unwrap();
    }
    assert_eq!(runner.run_until_idle(), POOL.capacity());
}

/// A task that wakes itself on every poll keeps the run queue non-empty forever: shutdown must still
/// end the executor (the thread looks for shutdown after each batch, not only when it is idle), and
/// drop the busy future once, on the executor thread.
#[test]
fn shutdown_ends_an_executor_whose_tasks_never_stop_waking() {
    let _session = nt::emu::session();
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<128, 4> = TaskPool::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static DROP_THREADS: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());
    static POLLS: AtomicUsize = AtomicUsize::new(0);
    EXECUTOR.start().unwrap();
    let probe = DropProbe {
        drops: &DROPS,
        thread: &DROP_THREADS,
    };
    POOL.spawn_detached(EXECUTOR.spawner(), async move {
        let _probe = probe;
        poll_fn(|cx| {
            POLLS.fetch_add(1, Ordering::SeqCst);
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        })
        .await;
    })
    .unwrap();
    // Wait (bounded) until the task is spinning through the run queue.
    let start = std::time::Instant::now();
    while POLLS.load(Ordering::SeqCst) < 100 {
        assert!(start.elapsed() < BOUND, "the task was not polled");
        thread::yield_now();
    }
    let (done_tx, done_rx) = mpsc::channel();
    let stopper = thread::spawn(move || {
        EXECUTOR.shutdown().unwrap();
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(BOUND)
        .expect("shutdown did not return while a task kept waking itself");
    stopper.join().unwrap();
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    assert_eq!(DROP_THREADS.lock().unwrap().len(), 1);
}

/// `ObReferenceObjectByHandle` fails after the thread was created (injected: the emulation cannot
/// make it fail): `start` must stop the thread it created and return only after the thread's last
/// access to the executor, with the tasks spawned before dropped once on that thread.
#[test]
fn start_that_cannot_reference_its_thread_stops_it_before_failing() {
    let session = nt::emu::session();
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<128, 4> = TaskPool::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static DROP_THREADS: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());
    let probe = DropProbe {
        drops: &DROPS,
        thread: &DROP_THREADS,
    };
    let handle = POOL
        .spawn(EXECUTOR.spawner(), async move {
            let _probe = probe;
            std::future::pending::<()>().await
        })
        .unwrap();
    executor::fail_next_thread_reference();
    assert_eq!(EXECUTOR.start(), Err(ExecutorError::Thread(nt::STATUS_INVALID_HANDLE)));
    // The thread made its last access before start returned: the task is gone, dropped there.
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    assert_ne!(DROP_THREADS.lock().unwrap()[0], thread::current().id());
    assert_eq!(block_on(handle).unwrap(), Err(JoinError::Aborted));
    assert_eq!(
        POOL.spawn(EXECUTOR.spawner(), async {}).err(),
        Some(SpawnError::ShutDown)
    );
    assert_eq!(EXECUTOR.shutdown(), Ok(()));
    // The thread ends right after its last access; wait (bounded) for the emulation to see it end.
    let start = std::time::Instant::now();
    while !session.leak_report().is_empty() {
        assert!(start.elapsed() < BOUND, "{:?}", session.leak_report());
        thread::yield_now();
    }
}

/// A shutdown called while another one is under way returns only once the executor is shut down
/// (the thread ended and every future was dropped), not at once.
#[test]
fn a_second_shutdown_during_the_first_returns_after_the_end() {
    let _session = nt::emu::session();
    static EXECUTOR: Executor = Executor::new();
    static POOL: TaskPool<128, 4> = TaskPool::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    /// The second shutdown's result, and the drops it saw done when it returned.
    type SecondShutdown = thread::JoinHandle<(Result<(), ExecutorError>, usize)>;
    static SECOND: Mutex<Option<SecondShutdown>> = Mutex::new(None);

    /// Dropped by the first shutdown, on the executor thread: starts the second one from there, so
    /// that it certainly begins while the first is under way.
    struct StartsSecondShutdown;
    impl Drop for StartsSecondShutdown {
        fn drop(&mut self) {
            let second = thread::spawn(|| {
                let result = EXECUTOR.shutdown();
                (result, DROPS.load(Ordering::SeqCst))
            });
            *SECOND.lock().unwrap() = Some(second);
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }

    EXECUTOR.start().unwrap();
    let guard = StartsSecondShutdown;
    POOL.spawn_detached(EXECUTOR.spawner(), async move {
        let _guard = guard;
        std::future::pending::<()>().await
    })
    .unwrap();
    assert_eq!(EXECUTOR.shutdown(), Ok(()));
    let second = SECOND
        .lock()
        .unwrap()
        .take()
        .expect("the task was dropped by the shutdown");
    let (result, drops_seen) = second.join().unwrap();
    assert_eq!(result, Ok(()));
    assert_eq!(drops_seen, 1, "the second shutdown returned before the drop was over");
    assert_eq!(EXECUTOR.run_until_idle(), Err(ExecutorError::ShutDown));
}

/// A pool's first spawn registers the pool at DISPATCH_LEVEL (so that a shutdown never waits for a
/// preempted registration) and lowers back to the caller's IRQL, whether the caller was at
/// PASSIVE_LEVEL (an IOCTL) or already at DISPATCH_LEVEL (a completion routine); shutdown then
/// finds the tasks of both pools.
#[test]
fn a_pools_first_spawn_returns_at_the_callers_irql() {
    let _session = nt::emu::session();
    static EXECUTOR: Executor = Executor::new();
    static FROM_PASSIVE: TaskPool<128, 2> = TaskPool::new();
    static FROM_DISPATCH: TaskPool<128, 2> = TaskPool::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static DROP_THREADS: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());
    let pending_task = || {
        let probe = DropProbe {
            drops: &DROPS,
            thread: &DROP_THREADS,
        };
        async move {
            let _probe = probe;
            std::future::pending::<()>().await
        }
    };
    FROM_PASSIVE.spawn_detached(EXECUTOR.spawner(), pending_task()).unwrap();
    assert_eq!(nt::KeGetCurrentIrql(), nt::PASSIVE_LEVEL);
    let irql_after = nt::emu::at_dispatch(|| {
        FROM_DISPATCH
            .spawn_detached(EXECUTOR.spawner(), pending_task())
            .unwrap();
        nt::KeGetCurrentIrql()
    });
    assert_eq!(irql_after, nt::DISPATCH_LEVEL);
    assert_eq!(EXECUTOR.run_until_idle(), Ok(2));
    EXECUTOR.shutdown().unwrap();
    assert_eq!(
        DROPS.load(Ordering::SeqCst),
        2,
        "shutdown found the tasks of both pools"
    );
}

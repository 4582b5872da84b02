//! Host emulation of the kernel: the same names and signatures as the Windows imports, implemented
//! by a checker in the spirit of Driver Verifier. See [`emu`] for the controls tests use.
//!
//! One file per idea: `irql` (per-thread IRQL), `heap` (tracked allocations and quarantine), `pool`,
//! `pool_stats` (live bytes and allocation counts), `irp`, `cancel`, `mdl`, `dispatcher` (dispatcher lock and headers), `event`, `timer` (KTIMER,
//! KDPC, the DPC CPUs), `freed_objects` (use after free of kernel objects), `clock`, `exports` (optional exports and the reported Windows version), `spinlock`, `objects` (handles, thread objects), `thread`,
//! `verifier` (rules and reports), `tracking`, `leaks`, `session`, `driver` (driver images, device
//! objects, routines after unload), `completion_ex` (`IoSetCompletionRoutineEx`), `workitem`.

mod cancel;
mod clock;
mod completion_ex;
mod debug;
mod dispatcher;
mod driver;
mod event;
mod exports;
mod freed_objects;
mod heap;
mod inline_list;
mod irp;
mod irql;
mod leaks;
mod mdl;
mod objects;
mod pool;
mod pool_stats;
mod session;
mod spinlock;
mod thread;
mod thread_id;
mod timer;
mod tracking;
mod verifier;
mod workitem;
mod wsk;

/// The emulated kernel API, re-exported at the crate root: every function of
/// `nt/src/windows/imports.rs` and `fallbacks.rs` with the identical name and signature (the
/// optional exports `ExAllocatePool2` and `KeQueryInterruptTimePrecise` are reached through
/// `MmGetSystemRoutineAddress`, as in the kernel: see `crate::optional`), plus the IRQL functions of
/// `nt/src/windows/irql.rs`, plus [`debug_print`](debug::debug_print) in place of `DbgPrintEx`.
pub mod api {
    pub use super::cancel::{IoAcquireCancelSpinLock, IoCancelIrp, IoReleaseCancelSpinLock};
    pub use super::clock::KeQueryPerformanceCounter;
    pub use super::completion_ex::IoSetCompletionRoutineEx;
    pub use super::debug::debug_print;
    pub use super::driver::{IoCreateDevice, IoDeleteDevice};
    pub use super::event::{
        KeClearEvent, KeDelayExecutionThread, KeInitializeEvent, KeReadStateEvent, KeResetEvent, KeSetEvent,
        KeWaitForSingleObject,
    };
    pub use super::exports::{MmGetSystemRoutineAddress, RtlGetVersion};
    pub use super::irp::{IoAllocateIrp, IoFreeIrp, IoReuseIrp, IofCompleteRequest};
    pub use super::irql::{KeGetCurrentIrql, KeLowerIrql, KeRaiseIrql};
    pub use super::mdl::{IoAllocateMdl, IoFreeMdl, MmBuildMdlForNonPagedPool};
    pub use super::objects::{ObReferenceObjectByHandle, ObfDereferenceObject, ObfReferenceObject, ZwClose};
    pub use super::pool::{ExAllocatePoolWithTag, ExFreePoolWithTag};
    pub use super::spinlock::{KeAcquireSpinLockRaiseToDpc, KeReleaseSpinLock};
    pub use super::thread::{PsCreateSystemThread, PsTerminateSystemThread};
    pub use super::timer::{
        KeCancelTimer, KeFlushQueuedDpcs, KeInitializeDpc, KeInitializeTimerEx, KeReadStateTimer, KeSetTimerEx,
    };
    pub use super::workitem::{IoAllocateWorkItem, IoFreeWorkItem, IoQueueWorkItem};
    pub use super::wsk::{WskCaptureProviderNPI, WskDeregister, WskRegister, WskReleaseProviderNPI};
}

pub mod emu {
    //! Controls and checks of the host emulation of the kernel (not available on Windows).
    //!
    //! # The checker
    //!
    //! Every emulated kernel function checks the rules the real kernel (with Driver Verifier) enforces:
    //! IRQL limits, pool tags, double frees, IRP ownership (free, reuse, resubmission or completion at
    //! the wrong time), completion and cancel routine contracts, spin lock ownership. A broken rule is
    //! a bug check: the report (rule, object, where the object was created, current thread and IRQL)
    //! goes to stderr and the process aborts. Negative tests call [`expect_violations`] to record
    //! violations instead, make the violating call harmless, and inspect them with
    //! [`take_violations`].
    //!
    //! # Test isolation
    //!
    //! A test that uses the emulation starts with `let _session = nt::emu::session();`. The session
    //! takes a process-wide lock, so tests of one process that use the emulation run one at a time
    //! under plain `cargo test`, and resets all emulation state. When the guard is dropped it lets
    //! queued DPCs run, then fails the test with a leak report (IRPs, MDLs, pool blocks by tag, system
    //! threads still running, handles and object references not released, timers still armed, objects
    //! tracked by other emulated subsystems) if anything is still alive. Under `cargo nextest` every
    //! test is its own process anyway; the session then only resets and checks. Every test that
    //! touches emulation state must hold a session: another test's session would reset it.
    //!
    //! # Time
    //!
    //! Timeouts, due times and `KeQueryInterruptTimePrecise` follow one monotonic clock in 100 ns
    //! units (positive "absolute" times are values of that clock). [`clock::pause`] freezes it and
    //! [`clock::advance`] moves it, running every DPC that falls due, for deterministic timer tests.
    //!
    //! # Differences from Windows
    //!
    //! * `PsTerminateSystemThread` records the exit status and returns: a host thread cannot be
    //!   ended without unwinding through `extern "system"` frames. Return from the start routine
    //!   right after it.
    //! * `DbgPrintEx` is C-variadic; use `nt::debug_print(level, message)` (the `log` crate here).
    //! * There are no APCs: alertable waits are never alerted.
    //! * `IoCreateDevice` ignores the device name (no object namespace is emulated); each queued
    //!   work item runs on a host thread of its own; see [`driver`] for which driver a routine
    //!   without a device object is attributed to.
    //! * Creation backtraces cost a stack walk per object; [`set_backtraces`] or
    //!   `NT_EMU_BACKTRACES=0` turns them off (they are always off under Miri).
    //! * What the checker keeps in memory (the quarantine of freed blocks, backtraces) is bounded
    //!   by [`set_checks`]: [`Checks::FULL`] by default, [`Checks::BOUNDED`] for long runs.

    pub use super::irql::at_dispatch;
    pub use super::leaks::{Leak, LeakReport};
    pub use super::session::{Checks, Session, checks, session, set_checks};
    pub use super::verifier::{
        Rule, Violation, creation_site, expect_violations, set_backtraces, take_violations, violation,
    };

    pub use super::wsk::control as wsk;

    /// Registration of other emulated objects (WSK registrations, sockets) in the leak report.
    pub mod tracking {
        pub use super::super::tracking::{is_tracked, track, untrack};
    }

    /// Driver images: loading a (non-PnP) driver, unloading it, and whether its image is unmapped.
    ///
    /// As on Windows, an image stays mapped while its driver object exists, and the driver object
    /// while any of its device objects does: the image is unloaded once `DriverUnload` has returned
    /// (or `DriverEntry` failed) and every device object of the driver is deleted and unreferenced.
    /// While a driver of the session is loaded, an IRP passed down with a plain
    /// `IoSetCompletionRoutine` is a `Rule::CompletionRoutineNotUnloadSafe`; a driver routine
    /// entered after the unmap, or still running at it, is a `Rule::RoutineAfterUnload`.
    ///
    /// Which driver a routine belongs to: exact for `IoSetCompletionRoutineEx` routines and work
    /// items (their device object says); a plain completion routine, DPC or system thread is
    /// attributed to the session's driver only when exactly one driver was loaded in the session,
    /// and not checked otherwise. A [`TestDevice`](driver::TestDevice)'s driver counts.
    pub mod driver {
        pub use super::super::driver::{
            DriverEntry, Image, LoadedDriver, TestDevice, image_unloaded, load, load_with, wait_image_unloaded,
        };
    }

    /// Scheduling of work items.
    pub mod work_items {
        pub use super::super::workitem::{Hold, WORKER_THREADS, hold};
    }

    /// IRP ownership as seen by emulated lower drivers (the WSK provider).
    pub mod irp {
        pub use super::super::irp::control::{enter_provider, forget, is_pending, live_count};
    }

    /// Inspection of waits.
    pub mod sync {
        /// How many threads are blocked in `KeWaitForSingleObject` on `object` right now (a test
        /// waits for this before provoking what the blocked thread should see).
        pub fn waiters(object: *const core::ffi::c_void) -> usize {
            super::super::dispatcher::waiters(object)
        }

        /// Blocks until at least `threads` threads are blocked in `KeWaitForSingleObject` on objects
        /// that are not signalled (each stays blocked until something signals it), at most `bound`;
        /// returns whether they are. A benchmark or test that drives a driver's own threads (an
        /// executor's, a worker's) from outside waits for this after each step, so that the next
        /// step never overlaps the driver's work on the previous one.
        pub fn wait_until_blocked(threads: usize, bound: std::time::Duration) -> bool {
            super::super::dispatcher::wait_until_blocked(threads, bound)
        }
    }

    /// Fault injection and inspection of the pool.
    pub mod pool {
        pub use super::super::heap::{FREED_FILL, UNINITIALIZED_FILL};
        pub use super::super::pool::control::{clear_failures, fail_next, fail_tag, live_blocks};
        pub use super::super::pool_stats::{Live, PoolStats, stats};
    }

    /// The emulated interrupt-time clock. Real time unless paused; while paused, only
    /// [`advance`](clock::advance) moves it. A new session starts with the clock running and a
    /// 10 MHz performance counter.
    pub mod clock {
        pub use super::super::clock::{is_paused, now, set_performance_frequency};

        /// Stops the clock at its current value: from then on only [`advance`] moves it.
        ///
        /// # Panics
        /// While no session is current (the clock is process-wide: a call between sessions would
        /// change the next test's clock), as do [`resume`] and [`advance`].
        pub fn pause() {
            super::super::session::require_current_session("emu::clock::pause");
            super::super::clock::pause();
        }

        /// Lets the clock follow real time again, from its current value; waits and timers that
        /// were waiting for `advance` now expire in real time.
        pub fn resume() {
            super::super::session::require_current_session("emu::clock::resume");
            super::super::timer::resume();
        }

        /// The clock tick (15.625 ms): timers and wait timeouts end on a tick at or after their
        /// due time, so up to one tick late. A test that waits for a timer advances the clock to
        /// its due time plus one tick.
        pub const TICK: std::time::Duration = std::time::Duration::from_nanos(super::super::clock::TICK * 100);

        /// Advances the clock by `by` (pausing it first if it runs). Every timer due in between
        /// expires in due order, and the DPCs they queue have run (on a DPC CPU, at
        /// DISPATCH_LEVEL) before this returns. PASSIVE_LEVEL only; never call it from a DPC.
        pub fn advance(by: std::time::Duration) {
            super::super::session::require_current_session("emu::clock::advance");
            super::super::timer::advance(by);
        }
    }

    /// What the emulated kernel exports (`MmGetSystemRoutineAddress`) and which Windows it says it
    /// is (`RtlGetVersion`): Windows 10 version 2004 with every export, unless a test says otherwise.
    pub mod exports {
        pub use super::super::exports::control::{hide, set_version, set_wine8_kernel};
    }

    /// The current thread's emulated IRQL, and a check other emulated subsystems use to enforce the
    /// maximum IRQL of their functions.
    pub mod irql {
        pub use super::super::irql::{current, name, require_max};
    }
}

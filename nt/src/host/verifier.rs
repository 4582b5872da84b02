//! The checker's reporting machinery: the rules, how a violation is reported, and the recording mode
//! negative tests use.
//!
//! Faithful to the kernel, a broken rule is a bug check: by default the report goes to stderr and the
//! process aborts (a panic could not unwind out of the `extern "system"` function that detected it
//! anyway, and would lose the message). [`expect_violations`] switches to recording mode, where the
//! violating call is made harmless, the violation is stored, and [`take_violations`] returns it.

use super::{irql, thread_id};
use std::backtrace::Backtrace;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A rule of the kernel (most of them enforced by Driver Verifier on Windows) that the code under test
/// broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// A function was called above the maximum IRQL its documentation allows.
    IrqlTooHigh,
    /// `KeRaiseIrql` to a lower IRQL, `KeLowerIrql` to a higher one, a spin lock released at an IRQL
    /// other than DISPATCH_LEVEL, or a routine that returned at a different IRQL than it was entered.
    IrqlMismatch,
    /// A wait with no or a non-zero timeout at DISPATCH_LEVEL (the kernel cannot block there).
    WaitAtDispatch,
    /// A parameter the kernel rejects (bad pool flags, zero tag, zero stack size, ...).
    InvalidParameter,
    /// `ExFreePoolWithTag` with a tag other than the one the block was allocated with.
    PoolTagMismatch,
    /// A pool block, IRP or MDL freed twice.
    DoubleFree,
    /// A pointer that no emulated allocator handed out (or a block of another kind: an IRP passed to
    /// `ExFreePoolWithTag`, a pool block to `IoFreeIrp`...).
    UnknownObject,
    /// An IRP, MDL or pool block used after it was freed, or a kernel object (KEVENT, KTIMER, KDPC)
    /// passed to a kernel function while the pool block it lives in is freed.
    UseAfterFree,
    /// Pool memory freed while it contains an armed timer or a queued DPC.
    FreeWithActiveTimer,
    /// Pool memory freed while a thread is blocked in `KeWaitForSingleObject` on an object inside it.
    FreeWithWaiter,
    /// `IoFreeIrp` on an IRP a lower driver still owns.
    IrpFreeWhilePending,
    /// `IoReuseIrp` on an IRP a lower driver still owns.
    IrpReuseWhilePending,
    /// An IRP handed to a lower driver while a lower driver already owns it.
    IrpSubmittedWhilePending,
    /// An IRP handed to a lower driver with no stack location left for it.
    IrpNoStackLocation,
    /// An IRP handed to a lower driver while it still has a cancel routine (I/O Verification's
    /// "IoCallDriver without setting the cancel routine in the IRP to NULL").
    IrpSubmittedWithCancelRoutine,
    /// `IofCompleteRequest` on an IRP no lower driver owns (completed twice, or never submitted).
    IrpDoubleCompletion,
    /// `IofCompleteRequest` while the IRP still has a cancel routine.
    IrpCompletedWithCancelRoutine,
    /// `IofCompleteRequest` with `IoStatus.Status` STATUS_PENDING or -1 (bug check 0xC9, parameter 0x06:
    /// "a status marked as pending (or equal to -1)").
    IrpCompletedWithStatusPending,
    /// The completion routine of a driver-allocated IRP (the top stack location) returned anything but
    /// `STATUS_MORE_PROCESSING_REQUIRED`, or there was none: the I/O manager would then complete an IRP
    /// that has no thread to complete to.
    WrongCompletionRoutineReturn,
    /// A cancel routine returned without calling `IoReleaseCancelSpinLock`.
    CancelSpinLockNotReleased,
    /// A spin lock released by a thread that does not hold it.
    SpinLockNotHeld,
    /// A spin lock acquired again by the thread that holds it (a deadlock on a real CPU).
    SpinLockRecursion,
    /// `MmBuildMdlForNonPagedPool` on memory that is not inside one live nonpaged pool block.
    MdlNotNonPagedPool,
    /// A kernel handle that is not open (`ZwClose` of an invalid kernel handle is a bug check).
    InvalidHandle,
    /// A system thread returned (or terminated) at an IRQL other than PASSIVE_LEVEL.
    ThreadExitAtRaisedIrql,
    /// A resource still alive when the session ended.
    Leak,
    /// A call on an emulated object (e.g. a WSK socket) after it was closed.
    CallAfterClose,
    /// An emulated object (e.g. a WSK socket) closed while another call on it is in progress.
    CloseWhileCallInProgress,
    /// Static Driver Verifier's rule IoSetCompletionRoutineNonPnpDriver: while a non-PnP driver
    /// (every driver loaded with `nt::emu::driver::load`) is loaded, an IRP was passed down with a
    /// completion routine set by `IoSetCompletionRoutine` rather than `IoSetCompletionRoutineEx`.
    /// Nothing then keeps the image loaded until the routine has returned. Permitted right after
    /// `IoSetCompletionRoutineEx` failed on the same IRP (the fallback after that failure).
    CompletionRoutineNotUnloadSafe,
    /// A driver routine (completion routine, DPC, work item routine, system thread) was entered after
    /// its driver's image was unloaded, or was still running when the image was unloaded.
    RoutineAfterUnload,
    /// `IoQueueWorkItem` on a work item that is queued and not yet dequeued.
    WorkItemAlreadyQueued,
    /// `IoFreeWorkItem` on a work item that is queued and not yet dequeued.
    WorkItemFreedWhileQueued,
    /// A `WSK_BUF` whose `Offset + Length` runs past the end of its MDL chain.
    WskBufBeyondMdl,
    /// The `WSK_BUF` of a pending send or receive changed, or was freed, before its IRP completed:
    /// the provider may read it again until then (see `nt/src/host/wsk/mdl.rs`).
    WskBufChangedWhilePending,
    /// `WskAccept` on a listening socket that already has an accept pending.
    AcceptAlreadyPending,
    /// Any other rule, named by the emulated subsystem that reports it.
    Other(&'static str),
}

impl Rule {
    /// The bug check a real kernel (with Driver Verifier where needed) raises for this rule.
    pub fn bug_check(&self) -> &'static str {
        match self {
            Rule::IrqlTooHigh | Rule::WaitAtDispatch => {
                "IRQL_NOT_LESS_OR_EQUAL (0x0A) / DRIVER_VERIFIER_DETECTED_VIOLATION"
            }
            Rule::IrqlMismatch | Rule::ThreadExitAtRaisedIrql => "IRQL_UNEXPECTED_VALUE (0xC8)",
            Rule::PoolTagMismatch | Rule::DoubleFree | Rule::UnknownObject | Rule::InvalidParameter => {
                "BAD_POOL_CALLER (0xC2) / DRIVER_VERIFIER_DETECTED_VIOLATION (0xC4)"
            }
            Rule::UseAfterFree => "PAGE_FAULT_IN_NONPAGED_AREA (0x50) under special pool",
            Rule::FreeWithActiveTimer => "TIMER_OR_DPC_INVALID (0xC7)",
            Rule::FreeWithWaiter => {
                "none at the free: the waiter's wait block stays linked into freed memory (later corruption)"
            }
            Rule::IrpDoubleCompletion => "MULTIPLE_IRP_COMPLETE_REQUESTS (0x44)",
            Rule::IrpFreeWhilePending
            | Rule::IrpReuseWhilePending
            | Rule::IrpSubmittedWhilePending
            | Rule::IrpNoStackLocation
            | Rule::IrpSubmittedWithCancelRoutine
            | Rule::IrpCompletedWithCancelRoutine
            | Rule::IrpCompletedWithStatusPending
            | Rule::WrongCompletionRoutineReturn => "DRIVER_VERIFIER_IOMANAGER_VIOLATION (0xC9)",
            Rule::CancelSpinLockNotReleased | Rule::SpinLockNotHeld | Rule::SpinLockRecursion => {
                "SPIN_LOCK_NOT_OWNED / DRIVER_VERIFIER_DETECTED_VIOLATION (0xC4)"
            }
            Rule::MdlNotNonPagedPool => "DRIVER_VERIFIER_DETECTED_VIOLATION (0xC4)",
            Rule::InvalidHandle => "INVALID_KERNEL_HANDLE (0x93)",
            Rule::Leak => "DRIVER_VERIFIER_DETECTED_VIOLATION (0xC4) at unload",
            Rule::CompletionRoutineNotUnloadSafe => {
                "none: a Static Driver Verifier rule; the crash it prevents is a page fault in unloaded code (DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS, 0xCE)"
            }
            Rule::RoutineAfterUnload => "DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS (0xCE)",
            Rule::WorkItemAlreadyQueued | Rule::WorkItemFreedWhileQueued => "DRIVER_VERIFIER_DETECTED_VIOLATION (0xC4)",
            Rule::WskBufBeyondMdl => {
                "a page fault in the WSK provider (not documented; Wine's netio test, run on Windows, notes a blue screen)"
            }
            Rule::WskBufChangedWhilePending => {
                "none at once: the provider moves data through a stale or freed WSK_BUF (memory corruption, or a page fault in the WSK provider)"
            }
            Rule::AcceptAlreadyPending => {
                "none: Windows hangs (not documented; Wine's netio test, run on Windows, notes the hang)"
            }
            Rule::CallAfterClose | Rule::CloseWhileCallInProgress | Rule::Other(_) => "emulated subsystem rule",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Rule::IrqlTooHigh => "called above its maximum IRQL",
            Rule::IrqlMismatch => "IRQL mismatch",
            Rule::WaitAtDispatch => "wait at DISPATCH_LEVEL",
            Rule::InvalidParameter => "invalid parameter",
            Rule::PoolTagMismatch => "pool tag mismatch",
            Rule::DoubleFree => "double free",
            Rule::UnknownObject => "unknown object",
            Rule::UseAfterFree => "use after free",
            Rule::FreeWithActiveTimer => "pool freed with an armed timer or queued DPC inside",
            Rule::FreeWithWaiter => "pool freed while a thread waits on a dispatcher object inside it",
            Rule::IrpFreeWhilePending => "IRP freed while pending",
            Rule::IrpReuseWhilePending => "IRP reused while pending",
            Rule::IrpSubmittedWhilePending => "IRP submitted while pending",
            Rule::IrpNoStackLocation => "IRP has no stack location left",
            Rule::IrpSubmittedWithCancelRoutine => "IRP passed down with a cancel routine still set",
            Rule::IrpDoubleCompletion => "IRP completed twice (or completed while not pending)",
            Rule::IrpCompletedWithCancelRoutine => "IRP completed with a cancel routine still set",
            Rule::IrpCompletedWithStatusPending => "IRP completed with STATUS_PENDING (or -1)",
            Rule::WrongCompletionRoutineReturn => {
                "wrong completion routine return (a driver-allocated IRP's routine must return STATUS_MORE_PROCESSING_REQUIRED)"
            }
            Rule::CancelSpinLockNotReleased => "cancel routine did not release the cancel spin lock",
            Rule::SpinLockNotHeld => "spin lock released but not held by this thread",
            Rule::SpinLockRecursion => "spin lock acquired recursively",
            Rule::MdlNotNonPagedPool => "MDL does not describe nonpaged pool",
            Rule::InvalidHandle => "invalid kernel handle",
            Rule::ThreadExitAtRaisedIrql => "system thread exited at raised IRQL",
            Rule::Leak => "leak at the end of the session",
            Rule::CallAfterClose => "call after close",
            Rule::CloseWhileCallInProgress => "close while a call is in progress",
            Rule::CompletionRoutineNotUnloadSafe => {
                "completion routine not unload-safe (a non-PnP driver must use IoSetCompletionRoutineEx)"
            }
            Rule::RoutineAfterUnload => "driver routine running after its image was unloaded",
            Rule::WorkItemAlreadyQueued => "work item queued while still queued",
            Rule::WorkItemFreedWhileQueued => "work item freed while queued",
            Rule::WskBufBeyondMdl => "WSK_BUF extends past its MDL chain",
            Rule::WskBufChangedWhilePending => "WSK_BUF changed or freed while its operation pends",
            Rule::AcceptAlreadyPending => "a second WskAccept pending on one listening socket",
            Rule::Other(text) => text,
        };
        f.write_str(text)
    }
}

/// One reported violation: the rule and the full message (object, creation site, thread, IRQL).
#[derive(Clone, Debug)]
pub struct Violation {
    /// The rule that was broken.
    pub rule: Rule,
    message: String,
}

impl Violation {
    /// The full report, as printed before an abort.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

static RECORDING: AtomicBool = AtomicBool::new(false);
static RECORDED: Mutex<Vec<Violation>> = Mutex::new(Vec::new());
/// Whether creation backtraces are captured: 0 = not decided yet, 1 = no, 2 = yes.
static BACKTRACES: AtomicU8 = AtomicU8::new(0);

/// Captured unless running under Miri (unsupported there) or `NT_EMU_BACKTRACES=0` is set.
pub(super) fn backtraces_enabled() -> bool {
    match BACKTRACES.load(Ordering::Relaxed) {
        0 => {
            let enabled = !cfg!(miri) && std::env::var_os("NT_EMU_BACKTRACES").is_none_or(|v| v != "0");
            BACKTRACES.store(if enabled { 2 } else { 1 }, Ordering::Relaxed);
            enabled
        }
        value => value == 2,
    }
}

fn recorded() -> MutexGuard<'static, Vec<Violation>> {
    RECORDED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Switches to recording mode: a violating call is made harmless and returns, and the violation is
/// kept for [`take_violations`]. A [`super::session::Session`] that ends with violations nobody took
/// fails. The mode lasts until the next session starts.
pub fn expect_violations() {
    RECORDING.store(true, Ordering::SeqCst);
}

/// Takes every violation recorded since the last call.
pub fn take_violations() -> Vec<Violation> {
    std::mem::take(&mut *recorded())
}

/// Turns the capture of creation backtraces on or off for the whole process (sessions keep the
/// setting). On by default, except under Miri (unsupported there) or with `NT_EMU_BACKTRACES=0` in
/// the environment. Capturing costs a stack walk per created object (IRP, MDL, pool block, thread,
/// armed timer, tracked object), so benchmarks turn it off.
pub fn set_backtraces(enabled: bool) {
    BACKTRACES.store(if enabled && !cfg!(miri) { 2 } else { 1 }, Ordering::SeqCst);
}

/// The creation site to store with a new object, if backtraces are enabled.
pub fn creation_site() -> Option<Backtrace> {
    if backtraces_enabled() {
        Some(Backtrace::force_capture())
    } else {
        None
    }
}

/// Back to the defaults a new session starts with.
pub(super) fn reset() {
    RECORDING.store(false, Ordering::SeqCst);
    recorded().clear();
}

/// Whether recording mode is on (the caller then makes its violating call harmless).
pub(super) fn recording() -> bool {
    RECORDING.load(Ordering::SeqCst)
}

/// Reports that `rule` was broken on `object` (created at `created_at`, if known).
///
/// In the default mode this prints the report to stderr and aborts the process, like a bug check.
/// In recording mode ([`expect_violations`]) it records the violation and returns; the caller must
/// then make its operation harmless (skip the free, treat the wait as a poll, ...).
pub fn violation(rule: Rule, object: &dyn fmt::Display, created_at: Option<&Backtrace>) {
    use std::io::Write;
    let message = format_report(rule, object, created_at);
    if recording() {
        recorded().push(Violation { rule, message });
        return;
    }
    // Not `eprintln!`, which panics if stderr is a closed pipe: the bug check must happen anyway.
    let _ = writeln!(std::io::stderr(), "{message}");
    std::process::abort();
}

fn format_report(rule: Rule, object: &dyn fmt::Display, created_at: Option<&Backtrace>) -> String {
    use std::fmt::Write;
    let thread = std::thread::current();
    let mut out = String::new();
    let _ = writeln!(out, "*** nt emulation: rule violated: {rule}");
    let _ = writeln!(out, "    bug check on Windows: {}", rule.bug_check());
    let _ = writeln!(out, "    object: {object}");
    let _ = writeln!(out, "    {}", super::wsk::schedule::describe());
    let _ = writeln!(
        out,
        "    thread: {} (emulated thread #{}, IRQL {})",
        thread.name().unwrap_or("<unnamed>"),
        thread_id::current(),
        irql::name(irql::current())
    );
    match created_at {
        Some(site) => {
            let _ = writeln!(out, "    object created at:\n{}", trim_backtrace(site));
        }
        None => {
            let _ = writeln!(out, "    object created at: <no backtrace captured>");
        }
    }
    if let Some(here) = creation_site() {
        let _ = writeln!(out, "    violation detected at:\n{}", trim_backtrace(&here));
    }
    if std::thread::panicking() {
        // A bug check while the test unwinds from its own failure aborts the process, which
        // discards the failure's message (the test harness holds it with the test's output).
        let _ = writeln!(
            out,
            "    detected while the thread unwinds from a panic (the test had already failed): {}",
            unwinding_from().unwrap_or_else(|| "<message not recorded>".to_string())
        );
    }
    out
}

thread_local! {
    /// The message and place of this thread's latest panic, recorded by [`note_panics`]'s hook.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Makes every panic record its message and place for [`format_report`], in a hook that then calls
/// the hook it replaced (so the panic is printed as before). Installed once, by the first session
/// (not on a panicking thread); every session start clears its own thread's record.
pub(super) fn note_panics() {
    // A message from an earlier session (a panic caught and resumed with `resume_unwind`, which
    // calls no hook, would otherwise be reported under that older message).
    let _ = LAST_PANIC.try_with(|last| last.borrow_mut().take());
    // `take_hook`/`set_hook` panic on a panicking thread (a session opened in a `Drop` during
    // unwinding): the hook is then installed by a later session instead.
    if std::thread::panicking() {
        return;
    }
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("<a panic payload that is not a string>");
            let place = info.location().map(ToString::to_string).unwrap_or_default();
            // `try_with`: a panic during the thread's teardown finds the slot gone.
            let _ = LAST_PANIC.try_with(|last| *last.borrow_mut() = Some(format!("'{message}' at {place}")));
            previous(info);
        }));
    });
}

/// This thread's latest panic, as [`note_panics`] recorded it.
fn unwinding_from() -> Option<String> {
    LAST_PANIC.try_with(|last| last.borrow().clone()).ok().flatten()
}

/// A backtrace without the frames of the emulation itself and of std, which say nothing about the
/// code under test. Falls back to the full text if filtering would leave nothing.
pub(super) fn trim_backtrace(bt: &Backtrace) -> String {
    let text = bt.to_string();
    let mut frames: Vec<Vec<&str>> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let starts_frame = trimmed
            .split_once(": ")
            .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()));
        if starts_frame || frames.is_empty() {
            frames.push(vec![line]);
        } else if let Some(last) = frames.last_mut() {
            last.push(line);
        }
    }
    const NOISE: [&str; 11] = [
        "std::",
        "core::",
        "alloc::",
        "nt::host::",
        "test::",
        "__rust",
        "<unknown>",
        "_start",
        "start_thread",
        "clone",
        "libc",
    ];
    let kept: Vec<String> = frames
        .iter()
        .filter(|frame| !NOISE.iter().any(|n| frame[0].contains(n)))
        .take(16)
        .map(|frame| {
            let mut lines = frame.iter().map(|l| l.trim());
            let head = lines.next().unwrap_or_default();
            let rest: Vec<String> = lines.map(|l| format!("\n          {l}")).collect();
            format!("      {head}{}", rest.concat())
        })
        .collect();
    if kept.is_empty() { text } else { kept.join("\n") }
}

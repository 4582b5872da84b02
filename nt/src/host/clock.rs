//! The emulated interrupt-time clock (`KeQueryInterruptTimePrecise`), in 100 ns units, and the
//! performance counter derived from it (`KeQueryPerformanceCounter`).
//!
//! It follows real monotonic time, unless a test pauses it: it then stands still and moves only
//! when the test advances it ([`crate::emu::clock::advance`]), which makes timer tests deterministic.
//! Time never goes backwards, across pauses and sessions.
//!
//! Invented: the emulation has no separate system time: absolute (positive) due times and timeouts
//! are values of this clock.

use crate::types::*;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The clock's state, written only under [`WRITER`] (pause, resume, advance: rare) and read without
/// a lock by [`now`], which every wait, timer and `KeQueryInterruptTimePrecise` calls.
///
/// `PAUSED_AT` is the time the clock stands at while paused, 0 while it runs (a paused time is never
/// 0: it starts at [`START`]). `OFFSET` is added to the real elapsed time while it runs; `resume`
/// stores it before it clears `PAUSED_AT`, so a reader that sees the clock running sees the offset
/// that goes with it.
static PAUSED_AT: AtomicU64 = AtomicU64::new(0);
static OFFSET: AtomicU64 = AtomicU64::new(START);
/// Serialises the writers.
static WRITER: Mutex<()> = Mutex::new(());

/// Interrupt time at the first reading: one second, so that "absolute time 0" is in the past.
const START: u64 = 10_000_000;

static BASE: OnceLock<Instant> = OnceLock::new();

fn writer() -> MutexGuard<'static, ()> {
    WRITER.lock().unwrap_or_else(PoisonError::into_inner)
}

fn real_elapsed() -> u64 {
    let elapsed = BASE.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_nanos() / 100).unwrap_or(u64::MAX)
}

/// Converts a duration to 100 ns units, saturating.
pub fn to_units(d: Duration) -> u64 {
    u64::try_from(d.as_nanos() / 100).unwrap_or(u64::MAX)
}

/// Converts 100 ns units to a duration.
pub fn to_duration(units: u64) -> Duration {
    Duration::from_nanos(units.saturating_mul(100))
}

/// The current interrupt time.
pub fn now() -> u64 {
    match PAUSED_AT.load(Ordering::Acquire) {
        0 => real_elapsed().saturating_add(OFFSET.load(Ordering::Acquire)),
        paused => paused,
    }
}

/// Whether the clock is paused (then only [`crate::emu::clock::advance`] moves it).
pub fn is_paused() -> bool {
    PAUSED_AT.load(Ordering::Acquire) != 0
}

/// Stops the clock at its current value.
pub fn pause() {
    let _writer = writer();
    if !is_paused() {
        let t = real_elapsed().saturating_add(OFFSET.load(Ordering::Acquire));
        PAUSED_AT.store(t.max(1), Ordering::Release);
    }
}

/// Lets the clock follow real time again, continuing from its current value.
pub fn resume() {
    let _writer = writer();
    let t = PAUSED_AT.load(Ordering::Acquire);
    if t != 0 {
        let offset = OFFSET.load(Ordering::Acquire).max(t.saturating_sub(real_elapsed()));
        OFFSET.store(offset, Ordering::Release);
        PAUSED_AT.store(0, Ordering::Release);
    }
}

/// Sets the paused clock to `t`, never backwards: not below the clock's reading, paused or running
/// (a `resume` on another thread may have let it run since the caller paused it, and a running
/// clock may already be past `t`). Called by the timer code under the dispatcher lock.
pub(super) fn set_paused_time(t: u64) {
    let _writer = writer();
    let current = match PAUSED_AT.load(Ordering::Acquire) {
        0 => real_elapsed().saturating_add(OFFSET.load(Ordering::Acquire)),
        paused => paused,
    };
    PAUSED_AT.store(current.max(t).max(1), Ordering::Release);
}

/// Back to real time and a 10 MHz performance counter (a new session).
pub(super) fn reset() {
    resume();
    PERFORMANCE_FREQUENCY.store(DEFAULT_FREQUENCY, Ordering::Relaxed);
}

/// The clock tick, in 100 ns units: 15.625 ms, the default period of the Windows clock interrupt
/// (64 ticks a second).
pub const TICK: u64 = 156_250;

/// A `Timeout`/`DueTime` argument as an absolute interrupt time: negative values are relative,
/// positive ones absolute, zero is "now". A time still to come is rounded up to the next clock tick
/// ([`on_tick`]); one already reached stays as it is (a zero timeout polls, a past due time expires
/// at once).
pub fn deadline(value: i64) -> u64 {
    let now = now();
    let due = if value < 0 {
        now.saturating_add(value.unsigned_abs())
    } else {
        value as u64
    };
    if due > now { on_tick(due) } else { due }
}

/// The first clock tick at or after `t`. The KeSetTimerEx and KeWaitForSingleObject pages document
/// that expiration is "limited by the granularity of the system clock": Windows notices a timer or
/// a wait timeout on a clock interrupt, so it ends at or after its due time, up to a tick late,
/// never before.
///
/// Invented: the phase of the ticks (every multiple of [`TICK`] since interrupt time 0; the clock
/// starts on one), and a fixed tick (Windows may shorten it while a driver or program asks for a
/// finer resolution: that only makes timers less late).
pub fn on_tick(t: u64) -> u64 {
    t.div_ceil(TICK).saturating_mul(TICK)
}

/// `KeQueryInterruptTimePrecise`: the interrupt time in 100 ns units; `*QpcTimeStamp` receives the
/// same value (the emulation's performance counter runs at 10 MHz).
///
/// # Safety
/// `QpcTimeStamp` is valid for a write.
pub unsafe extern "system" fn KeQueryInterruptTimePrecise(QpcTimeStamp: *mut ULONG64) -> ULONG64 {
    let t = now();
    if !QpcTimeStamp.is_null() {
        // SAFETY: forwarded from the caller's contract.
        unsafe { QpcTimeStamp.write(t) };
    }
    t
}

/// The performance counter's frequency by default: 10 MHz, as on Windows 10 and Wine (the counter
/// then equals the interrupt time).
const DEFAULT_FREQUENCY: i64 = 10_000_000;

static PERFORMANCE_FREQUENCY: AtomicI64 = AtomicI64::new(DEFAULT_FREQUENCY);

/// Sets the performance counter's frequency (ticks per second, at least 1) until the session ends;
/// e.g. 3,579,545 Hz, the ACPI PM timer older Windows used.
pub fn set_performance_frequency(hz: i64) {
    PERFORMANCE_FREQUENCY.store(hz.max(1), Ordering::Relaxed);
}

/// `KeQueryPerformanceCounter`: the interrupt time expressed in ticks of the emulated frequency
/// (`floor(now * frequency / 10^7)`), so it pauses and advances with the clock;
/// `*PerformanceFrequency` (if not null) receives the frequency. Any IRQL.
///
/// # Safety
/// `PerformanceFrequency` is null or valid for a write.
pub unsafe extern "system" fn KeQueryPerformanceCounter(PerformanceFrequency: *mut LARGE_INTEGER) -> LARGE_INTEGER {
    let hz = PERFORMANCE_FREQUENCY.load(Ordering::Relaxed);
    if !PerformanceFrequency.is_null() {
        // SAFETY: the caller's contract.
        unsafe { PerformanceFrequency.write(LARGE_INTEGER { QuadPart: hz }) };
    }
    let ticks = u128::from(now()) * hz as u128 / 10_000_000;
    LARGE_INTEGER {
        QuadPart: i64::try_from(ticks).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `set_paused_time` on a clock that runs again (resumed by another thread after `advance`
    /// paused it) never moves it backwards: it used to set it to the step asked for, which a running
    /// clock that started past it had already left behind.
    #[test]
    fn setting_the_paused_time_below_a_running_clock_does_not_move_it_backwards() {
        // Serialised with every other user of the clock, which is global.
        let _session = crate::emu::session();
        pause();
        let step = now();
        resume();
        // The running clock continues from `step`; make sure it is past it.
        let before = loop {
            let reading = now();
            if reading > step {
                break reading;
            }
            std::thread::yield_now();
        };
        set_paused_time(step);
        assert!(now() >= before, "the clock went back from {before} to {}", now());
        resume();
    }
}

//! The emulated interrupt-time clock (`KeQueryInterruptTimePrecise`), in 100 ns units.
//!
//! It follows real monotonic time, unless a test pauses it: it then stands still and moves only
//! when the test advances it ([`crate::emu::clock::advance`]), which makes timer tests deterministic.
//! Time never goes backwards, across pauses and sessions.
//!
//! The emulation has no separate system time: absolute (positive) due times and timeouts are
//! values of this clock.

use crate::types::*;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

struct Clock {
    /// `Some(now)` while paused.
    paused: Option<u64>,
    /// Added to the real elapsed time while running.
    offset: u64,
}

/// Interrupt time at the first reading: one second, so that "absolute time 0" is in the past.
const START: u64 = 10_000_000;

static CLOCK: Mutex<Clock> = Mutex::new(Clock {
    paused: None,
    offset: START,
});
static BASE: OnceLock<Instant> = OnceLock::new();

fn clock() -> MutexGuard<'static, Clock> {
    CLOCK.lock().unwrap_or_else(PoisonError::into_inner)
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
    let c = clock();
    match c.paused {
        Some(t) => t,
        None => real_elapsed().saturating_add(c.offset),
    }
}

/// Whether the clock is paused (then only [`crate::emu::clock::advance`] moves it).
pub fn is_paused() -> bool {
    clock().paused.is_some()
}

/// Stops the clock at its current value.
pub fn pause() {
    let mut c = clock();
    if c.paused.is_none() {
        let t = real_elapsed().saturating_add(c.offset);
        c.paused = Some(t);
    }
}

/// Lets the clock follow real time again, continuing from its current value.
pub fn resume() {
    let mut c = clock();
    if let Some(t) = c.paused.take() {
        c.offset = c.offset.max(t.saturating_sub(real_elapsed()));
    }
}

/// Sets the paused clock to `t` (never backwards). Called by the timer code under the dispatcher lock.
pub(super) fn set_paused_time(t: u64) {
    let mut c = clock();
    let current = c.paused.unwrap_or(0);
    c.paused = Some(current.max(t));
}

/// Back to real time (a new session).
pub(super) fn reset() {
    resume();
}

/// A `Timeout`/`DueTime` argument as an absolute interrupt time: negative values are relative,
/// positive ones absolute, zero is "now".
pub fn deadline(value: i64) -> u64 {
    if value < 0 {
        now().saturating_add(value.unsigned_abs())
    } else {
        value as u64
    }
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

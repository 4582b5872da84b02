//! Time as the kernel counts it: interrupt time (`KeQueryInterruptTimePrecise`), in 100 ns units
//! since boot. It is monotonic and not affected by changes of the system (wall-clock) time, which is
//! why timers are armed with relative due times computed from it.

use core::ops::Add;
use core::time::Duration;

/// 100 ns units per second.
const UNITS_PER_SECOND: u64 = 10_000_000;

/// A point in interrupt time, with 100 ns resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    units: u64,
}

impl Instant {
    /// The current interrupt time. Callable at any IRQL.
    pub fn now() -> Self {
        let mut qpc = 0;
        // SAFETY: the out-parameter is a valid local; the function has no other precondition.
        let units = unsafe { nt::KeQueryInterruptTimePrecise(&mut qpc) };
        Self { units }
    }

    /// The instant `units` 100 ns units after boot.
    pub const fn from_100ns(units: u64) -> Self {
        Self { units }
    }

    /// 100 ns units since boot.
    pub const fn as_100ns(self) -> u64 {
        self.units
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        units_to_duration(self.units.saturating_sub(earlier.units))
    }

    /// `self + duration`, saturating at the end of time (a deadline that never comes).
    pub fn saturating_add(self, duration: Duration) -> Instant {
        Instant {
            units: self.units.saturating_add(duration_to_units(duration)),
        }
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// Saturating: adding a huge duration gives a deadline that never comes, not an overflow.
    fn add(self, duration: Duration) -> Instant {
        self.saturating_add(duration)
    }
}

/// `duration` in 100 ns units, rounded up (a timer never fires early), saturating.
pub(crate) fn duration_to_units(duration: Duration) -> u64 {
    let units = duration.as_nanos().div_ceil(100);
    u64::try_from(units).unwrap_or(u64::MAX)
}

fn units_to_duration(units: u64) -> Duration {
    Duration::new(units / UNITS_PER_SECOND, ((units % UNITS_PER_SECOND) * 100) as u32)
}

//! Bounded exponential backoff: the wait before the next connection attempt.

use core::time::Duration;

/// The waits after consecutive failures: `min`, `2 min`, `4 min`, ... up to `max`, back to `min`
/// after a connection ([`reset`](Self::reset)). No jitter: one client per driver, and the tests
/// check the exact waits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, next: min }
    }

    /// The wait before the next attempt; the one after it doubles (saturating at `max`).
    pub(crate) fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        wait
    }

    /// After a connection: the next wait is `min` again.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(700));
        let waits: [Duration; 5] = core::array::from_fn(|_| b.next_wait());
        assert_eq!(waits, [ms(100), ms(200), ms(400), ms(700), ms(700)]);
        b.reset();
        assert_eq!(b.next_wait(), ms(100));
    }

    #[test]
    fn a_huge_cap_saturates_instead_of_overflowing() {
        let mut b = Backoff::new(Duration::from_secs(u64::MAX / 2 + 1), Duration::MAX);
        b.next_wait();
        assert_eq!(b.next_wait(), Duration::MAX);
        assert_eq!(b.next_wait(), Duration::MAX);
    }
}

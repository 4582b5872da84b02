//! Completion schedules: whether an operation of the emulated provider that can complete before its
//! WSK function returns (the data, the connection, the result is already there) completes inline,
//! or later, from a provider context at DISPATCH_LEVEL, with the function returning STATUS_PENDING.
//!
//! Windows does both, and a client must be correct under either: a provider that always completes
//! inline never gives the client a `Pending` (the starvation of a busy connection), one that never
//! does exercises every late completion and every drop while pending. The schedule is chosen by the
//! environment variable [`ENV`] (read at each session start, so every test of a run uses it) or by a
//! test ([`set`](super::control::set_schedule)), and is named in every failure report of the
//! emulation so that a failing run can be replayed.
//!
//! * `realistic` (the default): inline whenever the operation can complete at once, as Windows does;
//! * `inline`: the same, and a receive asks the host socket again even if the transport has not
//!   reported new data since its last attempt (so everything that can complete inline does);
//! * `pending`: never inline; every completion of an IRP-based call comes later;
//! * `random:SEED`: a deterministic pseudo-random choice per operation, from the seed and the
//!   operation's rank in the session (so a run on the in-memory network replays exactly).
//!
//! The same choice decides the order of the IRPs a cancel, a close or an abort ends
//! ([`late_ended`]): under `pending` (and `random`, by draw) they complete later, after the action
//! returned and after the close or abort IRP itself.
//!
//! A completion made inline runs the completion routine at DISPATCH_LEVEL under `inline` (and
//! `random`, by draw), as a provider that completes while holding a spin lock does
//! ([`complete_at_dispatch`]); `realistic` keeps the caller's IRQL.
//!
//! An operation that must wait (a receive with no data) pends under every schedule. A deferred
//! completion is already decided (its bytes are moved, its socket created): past the point of
//! cancellation, `IoCancelIrp` finds no cancel routine. Invented: Windows documents neither that a
//! provider may finish an operation and report it later, nor that it may not; a provider that
//! refuses a cancel is allowed (`IoCancelIrp` returns FALSE), so this is the harsher choice.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// The environment variable that selects the schedule of every session.
pub const ENV: &str = "NT_EMU_SCHEDULE";

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Schedule {
    /// Inline when the data or the connection is already there, as Windows does.
    #[default]
    Realistic,
    /// Inline whenever the operation can complete at all.
    Inline,
    /// Never inline: every completion is delivered later, at DISPATCH_LEVEL.
    Pending,
    /// A choice per operation from a generator seeded with this value (replayable).
    Random(u64),
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Realistic => f.write_str("realistic"),
            Schedule::Inline => f.write_str("inline"),
            Schedule::Pending => f.write_str("pending"),
            Schedule::Random(seed) => write!(f, "random:{seed}"),
        }
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "" | "realistic" => Ok(Schedule::Realistic),
            "inline" => Ok(Schedule::Inline),
            "pending" => Ok(Schedule::Pending),
            other => other
                .strip_prefix("random:")
                .and_then(|seed| seed.parse().ok())
                .map(Schedule::Random)
                .ok_or_else(|| format!("{ENV}={other:?}: expected realistic, inline, pending or random:SEED")),
        }
    }
}

static CURRENT: Mutex<Schedule> = Mutex::new(Schedule::Realistic);

/// Choices made by `random` in this session (the rank of the next one).
static DRAWS: AtomicU64 = AtomicU64::new(0);

/// The schedule [`ENV`] names (`realistic` if unset).
///
/// # Panics
/// If the variable is set to something else than a schedule: a typo must not silently run the
/// default schedule.
pub(crate) fn from_env() -> Schedule {
    match std::env::var(ENV) {
        Ok(text) => text.parse().unwrap_or_else(|e: String| panic!("{e}")),
        Err(_) => Schedule::Realistic,
    }
}

pub(crate) fn current() -> Schedule {
    *CURRENT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sets the schedule for the rest of the session; a random one starts its sequence again.
pub(crate) fn set(schedule: Schedule) {
    *CURRENT.lock().unwrap_or_else(PoisonError::into_inner) = schedule;
    DRAWS.store(0, Ordering::Relaxed);
}

/// A new session runs the environment's schedule from the start of its sequence.
pub(crate) fn reset() {
    set(from_env());
}

/// Whether a completion the provider could make before its WSK function returns is made later.
pub(crate) fn defer() -> bool {
    match current() {
        Schedule::Realistic | Schedule::Inline => false,
        Schedule::Pending => true,
        Schedule::Random(seed) => {
            let rank = DRAWS.fetch_add(1, Ordering::Relaxed);
            draw(seed, rank)
        }
    }
}

/// Whether an IRP ended by `IoCancelIrp`, a close, an abortive disconnect or `WskDeregister`
/// completes later (after that action returned, and after the close or abort IRP completed) rather
/// than before: `pending` always, `random` by its seeded choice. Invented (kind): under `realistic`
/// and `inline` such an IRP completes inside `IoCancelIrp` / the close / the abort, before the close
/// or abort IRP; Windows documents no order (an IRP cancelled may complete later on another CPU,
/// and nothing says a close or an abort completes only after the IRPs it ended), so the schedules
/// `pending` and `random` take the harsh order.
pub(crate) fn late_ended() -> bool {
    defer()
}

/// Whether a completion made below DISPATCH_LEVEL (inline, in the WSK call or in `IoCancelIrp`)
/// runs the client's completion routine at DISPATCH_LEVEL, as it does when the provider completes
/// while holding a spin lock: `inline` always, `random` by its seeded choice. Invented (kind): under
/// `realistic` an inline completion runs at the caller's IRQL; Windows only promises a completion
/// routine IRQL <= DISPATCH_LEVEL.
pub(crate) fn complete_at_dispatch() -> bool {
    match current() {
        Schedule::Inline => true,
        Schedule::Realistic | Schedule::Pending => false,
        Schedule::Random(_) => defer(),
    }
}

/// Whether a truncated datagram completes with STATUS_BUFFER_OVERFLOW (`realistic`, `inline`) or
/// with STATUS_SUCCESS and only `MSG_TRUNC` to tell (`pending`; `random` by its seeded choice).
/// Invented: Microsoft documents only the flag (see `datagram.rs`), so a client must take both.
pub(crate) fn truncation_overflows() -> bool {
    match current() {
        Schedule::Realistic | Schedule::Inline => true,
        Schedule::Pending => false,
        Schedule::Random(_) => !defer(),
    }
}

/// The choice of `random:seed` for the operation of rank `rank`: true defers.
fn draw(seed: u64, rank: u64) -> bool {
    mix(seed ^ rank.wrapping_mul(0x9E37_79B9_7F4A_7C15)) & 1 == 1
}

/// Whether an operation's inline attempt must ask the transport even when it reported nothing new
/// since its last attempt (`inline`: everything that can complete inline does).
pub(crate) fn eager() -> bool {
    current() == Schedule::Inline
}

/// SplitMix64's finaliser: a well-mixed 64-bit value from any input.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The line failure reports print, to replay the run.
pub(crate) fn describe() -> String {
    let schedule = current();
    format!("completion schedule: {schedule} (replay with {ENV}={schedule})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_print_back() {
        for text in [
            "realistic",
            "inline",
            "pending",
            "random:0",
            "random:18446744073709551615",
        ] {
            let schedule: Schedule = text.parse().unwrap();
            assert_eq!(schedule.to_string(), text);
        }
        assert_eq!("".parse::<Schedule>(), Ok(Schedule::Realistic));
        assert!("random".parse::<Schedule>().is_err());
        assert!("random:x".parse::<Schedule>().is_err());
        assert!("pendign".parse::<Schedule>().is_err());
    }

    #[test]
    fn a_seed_mixes_both_choices() {
        let draws: Vec<bool> = (0..64).map(|rank| draw(7, rank)).collect();
        assert!(draws.iter().any(|&d| d) && draws.iter().any(|&d| !d));
    }
}

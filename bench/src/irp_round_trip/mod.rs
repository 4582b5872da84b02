//! `bench irp`: one WSK-style IRP round trip — reuse the IRP, set the completion routine, hand it
//! to a provider that completes it at DISPATCH_LEVEL, get the result back to the caller — done
//! (a) the C-driver way, a completion routine that signals a KEVENT the caller waits on
//! ([`raw`]), and (b) as a future awaited by a task on the executor's system thread ([`awaited`]).
//! The provider ([`provider`]) is the same code for both.
//!
//! Two provider modes: `thread` (completed from another thread, the figure the issue asks for) and
//! `inline` (completed inside the submit call: no thread switch, so what remains is the CPU cost of
//! each side's own machinery).
//!
//! Figures: nanoseconds per round trip (median of `ROUNDS` round-robin rounds of the harness's
//! median) and instructions per round trip under callgrind (whole process, all threads: the
//! instruction count of a run of 2N round trips minus that of N, divided by N; deterministic up to
//! the few instructions of lock spinning, which the report shows by repeating the count).

mod awaited;
mod provider;
mod raw;

use crate::callgrind::{self, Count};
use crate::figures::{Figure, median, ratio, spread};
use crate::harness::ns_per_op;
use awaited::{OpSlot, RoundTrip};
use executor::{Executor, TaskPool, block_on};
use provider::{Mode, Provider, TRANSFERRED};
use raw::RawCaller;
use std::sync::Arc;

static EXECUTOR: Executor = Executor::new();
/// Two slots: the executor thread frees a finished task's slot just after its join handle has seen it
/// complete, so the next spawn may find the previous slot still taken for a moment.
static TASK: TaskPool<256, 2> = TaskPool::new();

/// Round trips per timed run, per mode (a thread round trip costs two thread wake-ups).
fn ops(mode: Mode) -> usize {
    match mode {
        Mode::Thread => 2_000,
        Mode::Inline => 50_000,
    }
}

/// Round-robin rounds; each metric is the median over them.
const ROUNDS: usize = 3;

/// Round trips of the smaller callgrind run (the larger one does twice as many).
const CALLGRIND_OPS: usize = 10_000;
/// Each callgrind count is the median of this many runs: with several threads the count varies by
/// a few instructions per round trip from run to run (lock spinning, scheduling order).
const CALLGRIND_REPEATS: usize = 3;

/// The two variants.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Raw,
    Awaited,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Raw => "raw",
            Variant::Awaited => "awaited",
        }
    }
}

/// The emulation, the executor thread and both providers, for one process.
struct Bench {
    thread_provider: Arc<Provider>,
    inline_provider: Arc<Provider>,
    raw: RawCaller,
    slot: Arc<OpSlot>,
    // Last: the session ends (and checks for leaks) after everything above is freed.
    _session: nt::emu::Session,
}

impl Bench {
    fn start() -> Self {
        let session = nt::emu::session();
        nt::emu::set_backtraces(false);
        EXECUTOR.start().expect("executor thread");
        Self {
            thread_provider: Arc::new(Provider::start(Mode::Thread)),
            inline_provider: Arc::new(Provider::start(Mode::Inline)),
            raw: RawCaller::new(),
            slot: Arc::new(OpSlot::new()),
            _session: session,
        }
    }

    fn provider(&self, mode: Mode) -> &Arc<Provider> {
        match mode {
            Mode::Thread => &self.thread_provider,
            Mode::Inline => &self.inline_provider,
        }
    }

    /// `n` round trips of `variant`.
    fn run(&mut self, variant: Variant, mode: Mode, n: usize) {
        let provider = self.provider(mode).clone();
        match variant {
            Variant::Raw => {
                let mut sum = 0;
                for _ in 0..n {
                    sum += self.raw.round_trip(&provider);
                }
                assert_eq!(sum, n * TRANSFERRED);
            }
            Variant::Awaited => {
                let slot = self.slot.clone();
                let task = async move {
                    let mut sum = 0;
                    for _ in 0..n {
                        sum += RoundTrip::new(&slot, &provider).await;
                    }
                    sum
                };
                let handle = TASK.spawn(EXECUTOR.spawner(), task).expect("a free task slot");
                let sum = block_on(handle).expect("block_on").expect("task");
                assert_eq!(sum, n * TRANSFERRED);
            }
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        EXECUTOR.shutdown().expect("executor shutdown");
    }
}

/// What one mode scored.
struct ModeResult {
    mode: Mode,
    raw_ns: f64,
    awaited_ns: f64,
    raw_spread: f64,
    awaited_spread: f64,
    instructions: Option<(Instructions, Instructions)>,
}

/// Runs the benchmark, prints its table, returns its figures.
pub fn run() -> Vec<Figure> {
    let modes = [Mode::Thread, Mode::Inline];
    let mut samples: Vec<[Vec<f64>; 2]> = modes.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    {
        let mut bench = Bench::start();
        for round in 0..ROUNDS {
            for (m, &mode) in modes.iter().enumerate() {
                // Alternate which variant goes first, so that a drift in load does not favour one.
                let order = if round % 2 == 0 {
                    [Variant::Raw, Variant::Awaited]
                } else {
                    [Variant::Awaited, Variant::Raw]
                };
                for variant in order {
                    let ns = ns_per_op(ops(mode), |n| bench.run(variant, mode, n));
                    samples[m][variant as usize].push(ns);
                }
            }
        }
    }
    let callgrind = callgrind::available();
    let results: Vec<ModeResult> = modes
        .iter()
        .zip(samples)
        .map(|(&mode, [raw, awaited])| ModeResult {
            mode,
            raw_ns: median(raw.clone()),
            awaited_ns: median(awaited.clone()),
            raw_spread: spread(&raw),
            awaited_spread: spread(&awaited),
            instructions: callgrind.then(|| {
                (
                    instructions_per_op(Variant::Raw, mode),
                    instructions_per_op(Variant::Awaited, mode),
                )
            }),
        })
        .collect();

    println!("IRP round trip: (a) completion routine + KEVENT, (b) future awaited on the executor");
    println!(
        "{:<8} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8} {:>12} {:>12} {:>8} {:>14} {:>14} {:>8} {:>15}",
        "provider",
        "(a) ns/op",
        "(b) ns/op",
        "(b)/(a)",
        "(a) instr",
        "(b) instr",
        "(b)/(a)",
        "(a) no spin",
        "(b) no spin",
        "(b)/(a)",
        "(a) w/o emu",
        "(b) w/o emu",
        "(b)/(a)",
        "spread (a)/(b)"
    );
    let mut figures = Vec::new();
    for r in &results {
        let instr = |f: fn(&Instructions) -> f64| match r.instructions {
            Some((a, b)) => (
                format!("{:.0}", f(&a)),
                format!("{:.0}", f(&b)),
                format!("{:.3}", ratio(f(&b), f(&a))),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let (all_a, all_b, all_ratio) = instr(|i| i.total);
        let (calm_a, calm_b, calm_ratio) = instr(|i| i.without_spinning);
        let (own_a, own_b, own_ratio) = instr(|i| i.outside_emulation);
        println!(
            "{:<8} {:>10.1} {:>10.1} {:>8.3} {:>10} {:>10} {:>8} {:>12} {:>12} {:>8} {:>14} {:>14} {:>8} {:>7.0}%/{:.0}%",
            r.mode.name(),
            r.raw_ns,
            r.awaited_ns,
            ratio(r.awaited_ns, r.raw_ns),
            all_a,
            all_b,
            all_ratio,
            calm_a,
            calm_b,
            calm_ratio,
            own_a,
            own_b,
            own_ratio,
            r.raw_spread * 100.0,
            r.awaited_spread * 100.0
        );
        let m = r.mode.name();
        figures.push(Figure::value(format!("irp_{m}_raw_ns"), r.raw_ns, "ns/op"));
        figures.push(Figure::value(format!("irp_{m}_awaited_ns"), r.awaited_ns, "ns/op"));
        figures.push(Figure::ratio(format!("irp_{m}_ns"), ratio(r.awaited_ns, r.raw_ns)));
        if let Some((a, b)) = r.instructions {
            figures.push(Figure::value(
                format!("irp_{m}_raw_instructions"),
                a.total,
                "instructions/op",
            ));
            figures.push(Figure::value(
                format!("irp_{m}_awaited_instructions"),
                b.total,
                "instructions/op",
            ));
            figures.push(Figure::ratio(format!("irp_{m}_instructions"), ratio(b.total, a.total)));
            figures.push(Figure::value(
                format!("irp_{m}_raw_instructions_without_lock_spinning"),
                a.without_spinning,
                "instructions/op",
            ));
            figures.push(Figure::value(
                format!("irp_{m}_awaited_instructions_without_lock_spinning"),
                b.without_spinning,
                "instructions/op",
            ));
            figures.push(Figure::ratio(
                format!("irp_{m}_instructions_without_lock_spinning"),
                ratio(b.without_spinning, a.without_spinning),
            ));
            figures.push(Figure::value(
                format!("irp_{m}_raw_instructions_outside_emulation"),
                a.outside_emulation,
                "instructions/op",
            ));
            figures.push(Figure::value(
                format!("irp_{m}_awaited_instructions_outside_emulation"),
                b.outside_emulation,
                "instructions/op",
            ));
            figures.push(Figure::ratio(
                format!("irp_{m}_instructions_outside_emulation"),
                ratio(b.outside_emulation, a.outside_emulation),
            ));
        }
    }
    if !callgrind {
        println!("(instructions: skipped, valgrind or callgrind_annotate is not installed)");
    }
    println!(
        "spread: (max - min) / median of the {ROUNDS} rounds' medians; instructions: callgrind, {CALLGRIND_OPS} vs {} round trips, median of {CALLGRIND_REPEATS} runs each",
        2 * CALLGRIND_OPS
    );
    figures
}

/// Instructions per round trip of `variant` in `mode`: callgrind's whole-process count for
/// `2 * CALLGRIND_OPS` round trips minus that for `CALLGRIND_OPS`, over `CALLGRIND_OPS`; and the
/// same for the instructions outside the emulation (see [`Count`]).
fn instructions_per_op(variant: Variant, mode: Mode) -> Instructions {
    let count = |n: usize| {
        let counts: Vec<Count> = (0..CALLGRIND_REPEATS)
            .map(|_| collected_instructions(variant, mode, n))
            .collect();
        (
            median(counts.iter().map(|c| c.total as f64).collect()),
            median(counts.iter().map(|c| (c.total - c.lock_spinning) as f64).collect()),
            median(counts.iter().map(|c| c.outside_emulation as f64).collect()),
        )
    };
    let (small, large) = (count(CALLGRIND_OPS), count(2 * CALLGRIND_OPS));
    Instructions {
        total: (large.0 - small.0) / CALLGRIND_OPS as f64,
        without_spinning: (large.1 - small.1) / CALLGRIND_OPS as f64,
        outside_emulation: (large.2 - small.2) / CALLGRIND_OPS as f64,
    }
}

/// Instructions per round trip.
#[derive(Clone, Copy)]
struct Instructions {
    total: f64,
    /// Without the spinning of contended std mutexes (the emulation's global locks): the part of
    /// the count that depends on how the threads happened to interleave.
    without_spinning: f64,
    outside_emulation: f64,
}

/// Runs `bench irp-count <variant> <mode> <n>` under callgrind and returns its counts.
fn collected_instructions(variant: Variant, mode: Mode, n: usize) -> Count {
    callgrind::count(&["irp-count", variant.name(), mode.name(), &n.to_string()])
}

/// `bench irp-count <raw|awaited> <thread|inline> <n>`: `n` round trips and nothing else, for
/// callgrind.
pub fn count(args: &[String]) {
    let usage = "usage: bench irp-count <raw|awaited> <thread|inline> <n>";
    let variant = match args.first().map(String::as_str) {
        Some("raw") => Variant::Raw,
        Some("awaited") => Variant::Awaited,
        _ => panic!("{usage}"),
    };
    let mode = match args.get(1).map(String::as_str) {
        Some("thread") => Mode::Thread,
        Some("inline") => Mode::Inline,
        _ => panic!("{usage}"),
    };
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).expect(usage);
    let mut bench = Bench::start();
    bench.run(variant, mode, n);
}

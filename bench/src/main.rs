//! Benchmarks against peers, measured side by side in one run with one harness. Results and how to
//! read them: BENCHMARKS.md at the repository root.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml -- all        # everything, then the figures
//! cargo run --release --manifest-path bench/Cargo.toml -- executor   # one benchmark: executor, irp, echo, echo-cost, memory, sys
//! ```

mod callgrind;
mod echo;
mod executor;
mod figures;
mod harness;
mod irp_round_trip;
mod memory;
mod sys_size;

use figures::Figure;

fn print_figures(figures: &[Figure]) {
    for figure in figures {
        println!("{figure}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str).unwrap_or_default() {
        "executor" => print_figures(&executor::run()),
        // Only our spawn+poll loop, for a profiler.
        "executor-profile-spawn" => executor::profile_spawn(),
        "irp" => print_figures(&irp_round_trip::run()),
        "echo" => print_figures(&echo::run()),
        "echo-bulk" => print_figures(&echo::run_bulk()),
        "echo-cost" => print_figures(&echo::cost::run()),
        "memory" => print_figures(&memory::run()),
        "sys" => print_figures(&sys_size::run()),
        // Internal: what `irp` runs under callgrind.
        "irp-count" => irp_round_trip::count(&args[1..]),
        // Internal: what `echo-cost` runs under callgrind.
        "echo-cost-count" => echo::cost::count(&args[1..]),
        "all" => {
            let mut figures = Vec::new();
            for bench in [
                executor::run,
                irp_round_trip::run,
                echo::run,
                echo::cost::run,
                memory::run,
                sys_size::run,
            ] {
                figures.extend(bench());
                println!();
            }
            print_figures(&figures);
        }
        _ => {
            eprintln!("usage: bench <all|executor|irp|echo|echo-bulk|echo-cost|memory|sys>");
            std::process::exit(2);
        }
    }
}

//! Benchmarks against peers, measured side by side in one run with one harness.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml -- executor
//! cargo run --release --manifest-path bench/Cargo.toml -- all
//! ```

mod executor;
mod harness;

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    match which.as_str() {
        "executor" => executor::run(),
        // Only our spawn+poll loop, for a profiler.
        "executor-profile-spawn" => executor::profile_spawn(),
        "all" => {
            executor::run();
        }
        _ => {
            eprintln!("usage: bench <executor|all>");
            std::process::exit(2);
        }
    }
}

//! Instruction counts under callgrind, for the benchmarks that report them (`irp`, `echo-cost`):
//! runs this executable with internal arguments under `valgrind --tool=callgrind` and reads the
//! whole-process counts back with `callgrind_annotate --inclusive=no`. A count per operation is the
//! count of a run of 2N operations minus that of a run of N, divided by N: what starting and
//! stopping cost cancels out.

use std::process::Command;

/// Whether valgrind and callgrind_annotate can be run.
pub fn available() -> bool {
    // callgrind_annotate --version prints its version but exits with 255: only check it runs.
    let valgrind = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    valgrind && Command::new("callgrind_annotate").arg("--version").output().is_ok()
}

/// One callgrind run's instruction counts.
#[derive(Clone, Copy)]
pub struct Count {
    /// Every instruction of every thread.
    pub total: u64,
    /// Instructions spent spinning on contended std mutexes (`Mutex::lock_contended`): the
    /// emulation's dispatcher and heap locks, contended between threads.
    pub lock_spinning: u64,
    /// Without the functions of the host emulation of the kernel (`nt::host::*`: heap lookups, the
    /// dispatcher and heap locks, emulated KEVENTs and IRQL checks, the emulated WSK provider and
    /// its network), of std's locks and threads, and of libc (futex system calls, and the
    /// memset/memcmp the emulation does): what remains is the code a driver would run itself, the
    /// variant's and the executor's.
    pub outside_emulation: u64,
}

fn is_emulation(function: &str) -> bool {
    ["nt::host::", "std::sys::", "std::thread::", "libc.so", "ld-linux"]
        .iter()
        .any(|p| function.contains(p))
}

/// Runs `bench <args>` under callgrind and returns its counts.
pub fn count(args: &[&str]) -> Count {
    let exe = std::env::current_exe().expect("current exe");
    let out = std::env::temp_dir().join(format!("bench-callgrind-{}.out", std::process::id()));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(args)
        .output()
        .expect("valgrind");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "valgrind failed:\n{stderr}");
    let annotated = Command::new("callgrind_annotate")
        .args(["--inclusive=no", "--threshold=100"])
        .arg(&out)
        .output()
        .expect("callgrind_annotate");
    let _ = std::fs::remove_file(&out);
    let text = String::from_utf8_lossy(&annotated.stdout);
    let mut total = 0;
    let mut emulation = 0;
    let mut lock_spinning = 0;
    for line in text.lines() {
        let line = line.trim();
        let Some((count, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        if rest.contains("PROGRAM TOTALS") {
            total = count;
        } else if is_emulation(rest) {
            emulation += count;
            if rest.contains("lock_contended") {
                lock_spinning += count;
            }
        }
    }
    assert!(total > 0, "no total in callgrind_annotate's output:\n{text}");
    Count {
        total,
        lock_spinning,
        outside_emulation: total - emulation,
    }
}

//! The leak report: everything still alive when a session ends (Driver Verifier's "pool allocations
//! not freed at unload", extended to every emulated object).

use super::heap::{Describe, heap};
use super::verifier::trim_backtrace;
use super::{driver, objects, timer, tracking, workitem};
use std::backtrace::Backtrace;
use std::fmt;

/// One leaked object.
#[derive(Clone, Debug)]
pub struct Leak {
    /// `"IRP"`, `"MDL"`, `"pool block"`, `"system thread"`, `"handle"`, `"timer"`, or a tracked kind.
    pub kind: String,
    /// What it is: its address, size, tag or name, as the emulation knows it.
    pub description: String,
    /// Where it was created (trimmed backtrace), if captured.
    pub created_at: Option<String>,
}

/// Everything alive that should not be. Empty when the session cleaned up after itself.
#[derive(Clone, Debug, Default)]
pub struct LeakReport {
    /// The leaked objects, in the order they were found.
    pub leaks: Vec<Leak>,
}

impl LeakReport {
    /// Nothing leaked.
    pub fn is_empty(&self) -> bool {
        self.leaks.is_empty()
    }

    /// The number of leaked objects.
    pub fn len(&self) -> usize {
        self.leaks.len()
    }

    /// The number of leaked objects of `kind`.
    pub fn count(&self, kind: &str) -> usize {
        self.leaks.iter().filter(|l| l.kind == kind).count()
    }

    pub(super) fn push(&mut self, kind: &str, description: String, created: Option<&Backtrace>) {
        self.leaks.push(Leak {
            kind: kind.to_string(),
            description,
            created_at: created.map(trim_backtrace),
        });
    }
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.leaks.is_empty() {
            return f.write_str("no leaks");
        }
        writeln!(
            f,
            "*** nt emulation: leak at the end of the session: {} object(s) still alive",
            self.leaks.len()
        )?;
        writeln!(f, "    {}", super::wsk::schedule::describe())?;
        for leak in &self.leaks {
            writeln!(f, "  - {}: {}", leak.kind, leak.description)?;
            match &leak.created_at {
                Some(site) => writeln!(f, "    created at:\n{site}")?,
                None => writeln!(f, "    created at: <no backtrace captured>")?,
            }
        }
        Ok(())
    }
}

/// Collects the current leak report.
pub(super) fn collect() -> LeakReport {
    let mut report = LeakReport::default();
    timer::leaks(&mut report);
    objects::leaks(&mut report);
    workitem::leaks(&mut report);
    driver::leaks(&mut report);
    {
        let heap = heap();
        for (addr, block) in heap.live_blocks() {
            let what = Describe {
                addr,
                size: block.size,
                kind: &block.kind,
            };
            report.push(block.kind.name(), what.to_string(), block.created.as_ref());
        }
    }
    tracking::for_each(|kind, addr, tracked| {
        report.push(
            kind,
            format!("{addr:#x} {}", tracked.description),
            tracked.created.as_ref(),
        );
    });
    report
}

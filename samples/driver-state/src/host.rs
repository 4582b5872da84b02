//! What the samples' host programs share (not in the kernel build): output that never stops the
//! program, the driver's `kdprint!` lines on stderr, Ctrl-C and SIGTERM as the unload request, and
//! the leak report at the end.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

/// Writes one line to stdout. A failed write (EPIPE: whoever read the output has gone) drops the
/// line: output must never stop the driver, which would then die without its unload. SIGPIPE is
/// ignored ([`ignore_sigpipe`]), so the write returns the error instead of killing us.
pub fn say(line: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}

/// As [`say`], to stderr.
pub fn complain(line: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(line).and_then(|()| err.write_all(b"\n"));
}

/// Prints the driver's `kdprint!` lines (the `log` records of the emulation's DbgPrintEx) to
/// stderr; a line that cannot be written is dropped (see [`say`]).
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            complain(format_args!("[{}] {}", record.level(), record.args()));
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Sends the driver's `kdprint!` lines (DbgPrintEx in the kernel, `log` records here) to stderr,
/// from the info level up.
pub fn log_to_stderr() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// SIGPIPE is ignored, so that a write to a closed pipe fails with EPIPE (which [`say`] and
/// [`complain`] drop) instead of killing the process without an unload. Rust's runtime already does
/// this before `main` on Unix; this keeps it so whatever the binary was built with
/// (`-Zon-broken-pipe=kill` would restore the default action).
pub fn ignore_sigpipe() {
    // SAFETY: installs the SIG_IGN disposition, which runs no code in the process; no other thread
    // exists yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// SIGINT and SIGTERM, blocked in every thread so that they wait for [`Signals::wait`].
pub struct Signals(libc::sigset_t);

impl Signals {
    /// Blocks SIGINT and SIGTERM in this thread. Call it before any other thread exists, so that
    /// every thread inherits the mask.
    pub fn block() -> Self {
        // SAFETY: sigset_t is plain data initialised by sigemptyset; pthread_sigmask only reads it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Self(set)
        }
    }

    /// Waits for SIGINT or SIGTERM; returns its number.
    pub fn wait(&self) -> i32 {
        let mut signal = 0;
        // SAFETY: `self.0` is an initialised signal set; sigwait writes the signal number.
        while unsafe { libc::sigwait(&self.0, &mut signal) } != 0 {}
        signal
    }
}

/// Prints the leak report and any broken kernel rule, each line prefixed with `program`; the exit
/// code is `ok` only if both are empty (otherwise the process exits 1 here).
pub fn finish(program: &str, session: nt::emu::Session, ok: ExitCode) -> ExitCode {
    let report = session.leak_report();
    let violations = nt::emu::take_violations();
    let clean = report.is_empty() && violations.is_empty();
    if report.is_empty() {
        say(format_args!("{program}: leak report: empty"));
    } else {
        say(format_args!("{program}: leak report:\n{report}"));
    }
    for violation in &violations {
        say(format_args!("{program}: kernel rule broken: {violation}"));
    }
    if clean {
        drop(session);
        ok
    } else {
        // Ending the session would panic on the leak; the report is printed, so exit.
        std::process::exit(1)
    }
}

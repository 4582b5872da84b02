//! The echo driver on the host: runs the driver's own DriverEntry and DriverUnload on the `nt` host
//! emulation of the kernel, serving real TCP on every local IPv6 and IPv4 address (so `127.0.0.1`
//! and `::1` both work).
//!
//! ```text
//! cargo run -p echo-driver -- [--port N] [--limit N] [--idle-secs N]
//! ```
//!
//! Ctrl-C (SIGINT) or SIGTERM unloads the driver, then the program prints the counters and the
//! emulation's leak report, and exits 0 only if the report is empty and no kernel rule was broken.
//!
//! Output never stops the program: a line written to a closed stdout or stderr (`... | head`, a log
//! collector restarting) is dropped, and the driver keeps serving and still unloads on Ctrl-C.
//!
//! The emulation checks every kernel rule, as in the tests, but keeps less to explain what it finds
//! ([`nt::emu::Checks::BOUNDED`]), so that memory stays bounded however many connections come and
//! go; `NT_EMU_CHECKS=full` restores the tests' setting.

#[cfg(not(target_os = "windows"))]
mod host {
    use driver_state::host::{Signals, complain, finish, ignore_sigpipe, log_to_stderr, say};
    use echo_driver::Config;
    use std::io::Write;
    use std::process::ExitCode;
    use std::time::Duration;

    const USAGE: &str = "\
usage: echo-driver [--port N] [--limit N] [--idle-secs N]

Runs the echo-server driver's DriverEntry on the host emulation of the Windows kernel and serves TCP
on [::]:PORT (IPv6 and IPv4). Ctrl-C unloads it and prints the counters and the leak report.

  --port N       TCP port (default 40007; 0 picks a free one)
  --limit N      connections served at once, 1..=1024 (default 1024); one more is reset at once
  --idle-secs N  abort a connection after N seconds without traffic (default 60)

The emulation checks every kernel rule, as the tests do. To keep memory bounded in a long run it
keeps only the last 1,024 freed blocks (at most 1 MiB) and the last 256 closed sockets to recognise a
use after free, a double free or a call after close, where the tests keep 4,096 blocks (up to 64 MiB)
and 1,024 sockets, and it captures no backtraces, so its reports do not say where an object was
created or freed. NT_EMU_CHECKS=full in the environment restores the tests' setting (then
NT_EMU_BACKTRACES=0 still turns the backtraces off).

A closed stdout or stderr never stops the program: the lines written to it are dropped.
";

    fn parse(args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
        let mut config = Config::default();
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (arg.clone(), None),
            };
            let mut value = |what: &str| -> Result<u64, String> {
                let text = inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs {what}"))?;
                text.parse::<u64>()
                    .map_err(|_| format!("{name}: `{text}` is not {what}"))
            };
            match name.as_str() {
                "--port" => {
                    config.port = u16::try_from(value("a port number (0-65535)")?)
                        .map_err(|_| "--port: a port number is 0-65535".to_string())?
                }
                "--limit" => {
                    config.connection_limit = usize::try_from(value("a number")?).unwrap_or(usize::MAX);
                    if !(1..=echo_driver::MAX_CONNECTIONS).contains(&config.connection_limit) {
                        return Err(format!("--limit must be 1..={}", echo_driver::MAX_CONNECTIONS));
                    }
                }
                "--idle-secs" => {
                    let secs = value("a number of seconds")?;
                    if secs == 0 {
                        return Err("--idle-secs must be at least 1".to_string());
                    }
                    config.idle_timeout = Duration::from_secs(secs);
                }
                "--help" | "-h" => return Ok(None),
                _ => return Err(format!("unknown option `{arg}`")),
            }
        }
        Ok(Some(config))
    }

    fn describe(status: nt::NTSTATUS, config: &Config) -> String {
        let port = config.port;
        match status {
            status if wsk_async::WskError::from_status(status).is_address_in_use() => {
                format!("port {port} is already in use (is another echo-driver running?); try --port")
            }
            nt::STATUS_ACCESS_DENIED => format!("not allowed to listen on port {port}; try a port above 1023"),
            _ => wsk_async::WskError::from_status(status).to_string(),
        }
    }

    pub fn main() -> ExitCode {
        ignore_sigpipe();
        let config = match parse(std::env::args().skip(1)) {
            Ok(Some(config)) => config,
            Ok(None) => {
                let _ = std::io::stdout().write_all(USAGE.as_bytes());
                return ExitCode::SUCCESS;
            }
            Err(message) => {
                complain(format_args!("echo-driver: {message}\n\n{USAGE}"));
                return ExitCode::from(2);
            }
        };
        let signals = Signals::block();
        if std::env::var_os("NT_EMU_CHECKS").is_none_or(|v| v != "full") {
            nt::emu::set_checks(nt::emu::Checks::BOUNDED);
        }
        // The driver's kdprint! lines (DbgPrintEx in the kernel) arrive as `log` records.
        log_to_stderr();

        let session = nt::emu::session();
        // The emulation's loader makes the driver object, as the I/O manager does, and tracks the
        // image: it counts as unloaded once DriverUnload returned and its device object is gone.
        // SAFETY: PASSIVE_LEVEL (this thread, in a fresh session), the loader's driver object.
        let driver =
            match nt::emu::driver::load_with(|driver, _registry_path| unsafe { echo_driver::start(driver, &config) }) {
                Ok(driver) => driver,
                Err(status) => {
                    complain(format_args!(
                        "echo-driver: DriverEntry failed: {}",
                        describe(status, &config)
                    ));
                    return finish("echo-driver", session, ExitCode::FAILURE);
                }
            };
        let addr = echo_driver::local_addr().map_or_else(|| format!("port {}", config.port), |a| a.to_string());
        say(format_args!(
            "echo-driver: listening on {addr} (IPv4 and IPv6): limit {} connections, idle timeout {} s. Ctrl-C unloads.",
            config.connection_limit,
            config.idle_timeout.as_secs()
        ));

        let signal = signals.wait();
        say(format_args!("echo-driver: signal {signal}: unloading"));
        let started = std::time::Instant::now();
        driver.unload();
        say(format_args!("echo-driver: unloaded in {:?}", started.elapsed()));
        say(format_args!("echo-driver: counters: {}", echo_driver::counters()));
        finish("echo-driver", session, ExitCode::SUCCESS)
    }
}

#[cfg(not(target_os = "windows"))]
fn main() -> std::process::ExitCode {
    host::main()
}

/// On Windows the driver is the library (`echo_driver.sys`); there is no host program.
#[cfg(target_os = "windows")]
fn main() {}

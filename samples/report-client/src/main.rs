//! The report client on the host: runs the driver's own DriverEntry and DriverUnload on the `nt`
//! host emulation of the kernel, connecting with real TCP.
//!
//! ```text
//! cargo run -p report-client -- [--host NAME] [--port N] [--interval-ms N] [--backoff-min-ms N] [--backoff-max-ms N]
//! ```
//!
//! Ctrl-C (SIGINT) or SIGTERM unloads the driver, then the program prints the counters and the
//! emulation's leak report, and exits 0 only if the report is empty and no kernel rule was broken.

#[cfg(not(target_os = "windows"))]
mod host {
    use driver_state::host::{Signals, complain, finish, ignore_sigpipe, log_to_stderr, say};
    use report_client::Config;
    use std::io::Write;
    use std::process::ExitCode;
    use std::time::Duration;

    const USAGE: &str = "\
usage: report-client [--host NAME] [--port N] [--interval-ms N] [--backoff-min-ms N] [--backoff-max-ms N]

Runs the report-client driver's DriverEntry on the host emulation of the Windows kernel: it connects
to HOST:PORT over TCP and sends a line `report SEQ connects=N reconnects=N sent=N failures=N` every
interval, reconnecting with exponential backoff after any failure. Ctrl-C unloads it and prints the
counters and the leak report.

  --host NAME          the server: a name or a numeric address (default localhost)
  --port N             its TCP port, 1-65535 (default 40007, the echo sample's)
  --interval-ms N      time between reports (default 1000)
  --backoff-min-ms N   first wait after a failure, doubled after each further one (default 100)
  --backoff-max-ms N   longest wait (default 30000)
";

    fn parse(args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
        let mut config = Config::default();
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (arg.clone(), None),
            };
            let mut text = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            let mut number = |what: &str| -> Result<u64, String> {
                let text = text()?;
                text.parse::<u64>()
                    .map_err(|_| format!("{name}: `{text}` is not {what}"))
            };
            let millis = |n: u64| Duration::from_millis(n);
            match name.as_str() {
                "--host" => {
                    let host = inline.clone().or_else(|| args.next()).ok_or("--host needs a name")?;
                    // The configuration is `Copy` and lent to the driver for the whole run.
                    config.host = Box::leak(host.into_boxed_str());
                }
                "--port" => {
                    config.port = u16::try_from(number("a port number (1-65535)")?)
                        .map_err(|_| "--port: a port number is 1-65535".to_string())?
                }
                "--interval-ms" => config.interval = millis(number("a number of milliseconds")?),
                "--backoff-min-ms" => config.backoff_min = millis(number("a number of milliseconds")?),
                "--backoff-max-ms" => config.backoff_max = millis(number("a number of milliseconds")?),
                "--help" | "-h" => return Ok(None),
                _ => return Err(format!("unknown option `{arg}`")),
            }
        }
        if !config.is_valid() {
            return Err(format!(
                "invalid settings: the host is 1-{} bytes, the port and the interval are not 0, 0 < backoff min <= backoff max",
                report_client::MAX_HOST_LEN
            ));
        }
        Ok(Some(config))
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
                complain(format_args!("report-client: {message}\n\n{USAGE}"));
                return ExitCode::from(2);
            }
        };
        let signals = Signals::block();
        log_to_stderr();
        let session = nt::emu::session();
        // SAFETY: PASSIVE_LEVEL (this thread, in a fresh session), the loader's driver object.
        let driver =
            match nt::emu::driver::load_with(|driver, _registry_path| unsafe { report_client::start(driver, &config) })
            {
                Ok(driver) => driver,
                Err(status) => {
                    complain(format_args!(
                        "report-client: DriverEntry failed: {}",
                        wsk_async::WskError::from_status(status)
                    ));
                    return finish("report-client", session, ExitCode::FAILURE);
                }
            };
        say(format_args!(
            "report-client: reporting to {}:{} every {} ms. Ctrl-C unloads.",
            config.host,
            config.port,
            config.interval.as_millis()
        ));
        let signal = signals.wait();
        say(format_args!("report-client: signal {signal}: unloading"));
        let started = std::time::Instant::now();
        driver.unload();
        say(format_args!("report-client: unloaded in {:?}", started.elapsed()));
        say(format_args!("report-client: counters: {}", report_client::counters()));
        finish("report-client", session, ExitCode::SUCCESS)
    }
}

#[cfg(not(target_os = "windows"))]
fn main() -> std::process::ExitCode {
    host::main()
}

/// On Windows the driver is the library (`report_client.sys`); there is no host program.
#[cfg(target_os = "windows")]
fn main() {}

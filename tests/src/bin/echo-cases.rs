//! Runs the black-box client cases of `e2e_tests::cases` against an echo driver at a loopback
//! address: the real `echo_driver.sys` under Wine (`samples/echo-driver/wine/run-tier.sh`), or the
//! host program.
//!
//! ```text
//! echo-cases [--addr 127.0.0.1:40007] [--unload-cmd 'wine sc stop echo'] CASE... | all | --list
//! ```
//!
//! `all` is every case not marked pending.
//!
//! Prints one line per case (`case NAME: ok in 1.2s` or `case NAME: FAILED in ..: why`) and exits 1
//! if any failed. The unload case runs `--unload-cmd` with `sh -c` where the driver must unload.

#[cfg(not(target_os = "windows"))]
fn main() -> std::process::ExitCode {
    use e2e_tests::cases::{CASES, case};
    use std::net::SocketAddr;
    use std::process::{Command, ExitCode};
    use std::time::Instant;

    let mut addr: SocketAddr = ([127, 0, 0, 1], 40007).into();
    let mut unload_cmd: Option<String> = None;
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => match args.next().map(|a| a.parse()) {
                Some(Ok(a)) => addr = a,
                _ => {
                    eprintln!("echo-cases: --addr needs an address such as 127.0.0.1:40007");
                    return ExitCode::from(2);
                }
            },
            "--unload-cmd" => unload_cmd = args.next(),
            "--list" => {
                for c in CASES {
                    match c.pending {
                        None => println!("{:<30} {}", c.name, c.what),
                        Some(why) => println!("{:<30} {} (pending: {why})", c.name, c.what),
                    }
                }
                return ExitCode::SUCCESS;
            }
            // Every case that is not pending; a pending one runs when named.
            "all" => names.extend(CASES.iter().filter(|c| c.pending.is_none()).map(|c| c.name.to_string())),
            _ => names.push(arg),
        }
    }
    if !addr.ip().is_loopback() {
        eprintln!("echo-cases: {addr} is not a loopback address");
        return ExitCode::from(2);
    }
    if names.is_empty() {
        eprintln!("echo-cases: name the cases to run (or all; --list shows them)");
        return ExitCode::from(2);
    }
    let mut failed = 0;
    for name in &names {
        let Some(c) = case(name) else {
            eprintln!("echo-cases: no case named {name} (--list shows them)");
            return ExitCode::from(2);
        };
        let mut unload = || -> Result<(), String> {
            let cmd = unload_cmd.as_deref().ok_or("this case needs --unload-cmd")?;
            let status = Command::new("sh")
                .args(["-c", cmd])
                .status()
                .map_err(|e| format!("{cmd}: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("{cmd}: {status}"))
            }
        };
        let started = Instant::now();
        let result = (c.run)(addr, &mut unload);
        let took = started.elapsed();
        match result {
            Ok(()) => println!("case {name}: ok in {took:.1?}"),
            Err(why) => {
                failed += 1;
                println!("case {name}: FAILED in {took:.1?}: {why}");
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(target_os = "windows")]
fn main() {}

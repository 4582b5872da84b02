//! The host program (`cargo run -p report-client -- --port N`) as a user runs it against a server:
//! it reports to a std listener through `localhost`, reconnects after the server closes, and on
//! Ctrl-C (SIGINT) unloads and prints the counters and an empty leak report; bad options are
//! reported with the usage.
#![cfg(not(target_os = "windows"))]

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long any wait for the program may take before the test fails.
const BOUND: Duration = Duration::from_secs(30);

fn start(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_report-client"))
        .args(args)
        .env("NT_EMU_BACKTRACES", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the host program")
}

/// Waits (bounded) for the exit; returns the status, stdout and stderr.
fn wait(mut child: Child) -> (ExitStatus, String, String) {
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the program did not exit within {BOUND:?}");
        }
        std::thread::yield_now();
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status, stdout, stderr)
}

/// The next connection, within the bound (the listener is nonblocking).
fn accept(listener: &TcpListener) -> TcpStream {
    let deadline = Instant::now() + BOUND;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(BOUND)).unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "the program did not connect within {BOUND:?}"
                );
                std::thread::yield_now();
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    assert!(
        reader.read_line(&mut line).unwrap() > 0,
        "the program closed the connection"
    );
    line
}

#[test]
fn reports_to_a_server_reconnects_and_unloads_cleanly_on_ctrl_c() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let child = start(&["--port", &port, "--interval-ms", "20", "--backoff-min-ms", "10"]);

    let mut reader = BufReader::new(accept(&listener));
    assert!(read_line(&mut reader).starts_with("report 0 connects=1 reconnects=0"));
    assert!(read_line(&mut reader).starts_with("report 1 "));
    drop(reader); // the server closes: the program reconnects
    let mut reader = BufReader::new(accept(&listener));
    let line = read_line(&mut reader);
    assert!(line.contains("connects=2 reconnects=1"), "{line}");

    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: sends SIGINT to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let (status, stdout, stderr) = wait(child);
    assert!(status.success(), "exit {status}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("reporting to localhost:"), "{stdout}");
    assert!(stdout.contains("counters: connects 2, reconnects 1"), "{stdout}");
    assert!(stdout.contains("leak report: empty"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_options_are_reported_with_the_usage() {
    for args in [
        &["--port", "0"][..],
        &["--port", "70000"],
        &["--interval-ms", "0"],
        &["--backoff-min-ms", "500", "--backoff-max-ms", "100"],
        &["--interval-ms", "x"],
        &["--frobnicate"],
    ] {
        let (status, _, stderr) = wait(start(args));
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("usage: report-client"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

//! The host program under conditions a long-running service meets: its stdout and stderr going away
//! (`cargo run -p echo-driver 2>&1 | head`, a log collector restarting), and thousands of
//! connections coming and going.
#![cfg(target_os = "linux")]

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long any wait for the program may take before the test fails.
const BOUND: Duration = Duration::from_secs(30);

/// The write end of a pipe whose read end is already closed: every write to it fails with EPIPE,
/// from the program's first line on.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 succeeded: both descriptors are open and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

/// The host program without the test's environment knobs, so that its own defaults apply.
fn program(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_echo-driver"));
    command
        .args(args)
        .env_remove("NT_EMU_CHECKS")
        .env_remove("NT_EMU_BACKTRACES")
        .stdin(Stdio::null());
    command
}

/// Waits (bounded) for `child` to exit; kills it and fails if it does not.
fn wait_bounded(mut child: Child) -> ExitStatus {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(BOUND) {
        Ok(status) => status.expect("wait for the program"),
        Err(_) => {
            // SAFETY: kills our own child, which has not been reaped (the waiter still waits).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the program did not exit within {BOUND:?}");
        }
    }
}

/// Ctrl-C.
fn interrupt(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: sends SIGINT to our own child process, which has not been reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
}

/// A port that is free on `[::]` (IPv6 and IPv4) right now, and below the host's ephemeral range.
///
/// Not one the OS hands out for port 0: the other tests here start the program with `--port 0`, and
/// every client socket binds an ephemeral port. A port from that range, released by this check,
/// could be taken by one of them before this test's program binds it; this test's program then
/// fails to bind and has to be started again on another port.
fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Linux's ephemeral range starts at 32768 unless configured otherwise.
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let low = 10_000.min(ephemeral_start / 2);
    let span = ephemeral_start.saturating_sub(low).max(1);
    // Spread over the span by process, so two test processes start far apart.
    let origin = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let offset = (origin + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(low + offset).expect("below the ephemeral range, so a u16");
        if TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range ({low}..{ephemeral_start})");
}

/// Writes `message`, reads it back, keeps the connection open. If that fails, says whether the
/// program (`child`) is still running or how it ended (a SIGABRT is the emulation's bug check, whose
/// report went to the closed stderr), and kills it so that it does not outlive the test.
fn echo(child: &mut Child, stream: &mut TcpStream, message: &[u8]) {
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let mut echoed = vec![0; message.len()];
    if let Err(e) = stream.write_all(message).and_then(|()| stream.read_exact(&mut echoed)) {
        let state = match child.try_wait() {
            Ok(Some(status)) => format!("the program has exited: {status}"),
            Ok(None) => "the program is still running".to_string(),
            Err(wait) => format!("the program's state is unknown: {wait}"),
        };
        let _ = child.kill();
        panic!("the echo failed: {e}; {state}");
    }
    assert_eq!(echoed, message);
}

/// The inodes of the sockets `pid` has open (`/proc/PID/fd/N` links to `socket:[INODE]`).
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Whether process `pid` itself has a TCP socket listening on `port` (IPv4 or IPv6): the listening
/// sockets of `/proc/net/tcp` and `/proc/net/tcp6` on that port, matched by inode against the
/// process's open sockets.
fn listens(pid: u32, port: u16) -> bool {
    const LISTEN: &str = "0A";
    let inodes = socket_inodes(pid);
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        let Ok(text) = std::fs::read_to_string(table) else {
            return false;
        };
        text.lines().skip(1).any(|line| {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|local| local.rsplit(':').next())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            let inode = fields.get(9).and_then(|inode| inode.parse::<u64>().ok());
            local_port == Some(port) && fields.get(3) == Some(&LISTEN) && inode.is_some_and(|i| inodes.contains(&i))
        })
    })
}

/// Starts the program on a free port with both outputs closed, and connects to it. The program
/// cannot say that it listens, so the test looks (bounded, yielding between looks) for a listening
/// socket on the port that is the program's own. Not by connecting until a connect succeeds: the
/// listener [`free_port`] opened to check the port can outlive its close. Another test of this
/// binary that spawns its program at that moment forks, and the forked child holds a copy of every
/// descriptor until its exec closes the close-on-exec ones; meanwhile the check's listener still
/// listens. A connect that reached it was reset when the exec closed it (traced: the reset came from
/// the other program's process, from a socket closed with the connection in its accept queue, and
/// this program never saw the connection). If the program exits with status 1 (DriverEntry failed:
/// the port was taken meanwhile), it is started again on another port.
fn start_with_closed_outputs() -> (Child, u16, TcpStream) {
    for _attempt in 0..3 {
        let port = free_port();
        let mut child = program(&["--port", &port.to_string(), "--idle-secs", "600"])
            .stdout(closed_pipe())
            .stderr(closed_pipe())
            .spawn()
            .expect("start the host program");
        let deadline = Instant::now() + BOUND;
        let listening = loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert_eq!(status.code(), Some(1), "the program ended before it listened: {status}");
                break false;
            }
            if listens(child.id(), port) {
                break true;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!("the program does not listen on port {port} within {BOUND:?}");
            }
            thread::yield_now();
        };
        if listening {
            let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to the listening program");
            return (child, port, stream);
        }
    }
    panic!("three free ports were taken before the program could listen on them");
}

#[test]
fn closed_stdout_and_stderr_never_stop_the_program_and_ctrl_c_still_unloads_it() {
    // Every line the program writes (the listening line, the driver's DbgPrintEx lines at
    // DriverEntry and DriverUnload, the counters and the leak report) fails with EPIPE.
    let (mut child, port, mut first) = start_with_closed_outputs();
    echo(&mut child, &mut first, b"hello with nobody reading the output");
    first.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    first.read_to_end(&mut rest).expect("EOF after the echo");
    assert!(rest.is_empty());

    // A client still connected when the driver unloads: the unload aborts its connection (RST).
    // A process that died instead would have its sockets closed by the host: FIN, an EOF here.
    let mut idle = TcpStream::connect((Ipv6Addr::LOCALHOST, port)).unwrap();
    echo(&mut child, &mut idle, b"x");
    interrupt(&child);
    let mut byte = [0u8; 1];
    let end = idle.read(&mut byte);
    assert!(
        matches!(&end, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "the unload must reset a connected client, got {end:?}"
    );
    // Exit status 0: DriverUnload ran, the leak report was empty and no kernel rule was broken
    // (an abort would be SIGABRT, a panic 101).
    let status = wait_bounded(child);
    assert!(status.success(), "exit {status}");
}

#[test]
fn help_and_usage_errors_written_to_a_closed_pipe_exit_normally() {
    let help = program(&["--help"])
        .stdout(closed_pipe())
        .stderr(closed_pipe())
        .spawn()
        .expect("start the host program");
    let status = wait_bounded(help);
    assert_eq!(status.code(), Some(0), "--help: {status}");
    let bad = program(&["--frobnicate"])
        .stdout(closed_pipe())
        .stderr(closed_pipe())
        .spawn()
        .expect("start the host program");
    let status = wait_bounded(bad);
    assert_eq!(status.code(), Some(2), "a bad option: {status}");
}

/// The program's resident set size, from `/proc/PID/status`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// One connect/close cycle: connect, FIN, wait for the driver's FIN (so the driver has finished
/// with the connection before the next one starts), close.
fn connect_close(port: u16) {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("the driver's FIN");
    assert!(rest.is_empty());
}

/// Cycles before the first measurement, and in all.
const WARM_UP: usize = 500;
const CYCLES: usize = 5000;

/// The growth allowed between the two measurements. With the program's default checks
/// (`nt::emu::Checks::BOUNDED`), what the checker keeps is full well before the warm-up ends: its
/// quarantine of 1,024 freed blocks after about 150 cycles (each cycle frees 7: 2 pool blocks, 5
/// IRPs), its 256 closed sockets after 256. So nothing it keeps grows after the warm-up; what remains
/// is allocator noise, measured at about 20 KiB over these 4,500 cycles. A leak of one 256-byte
/// allocation per cycle would add 1.1 MiB and fail. The checks the tests use (4,096 blocks with two
/// backtraces each, 1,024 closed sockets) grew the program by about 4 MiB here (debug build).
const ALLOWED_GROWTH: u64 = 1 << 20;

#[test]
fn memory_stays_bounded_over_5000_connect_close_cycles() {
    let mut child = program(&["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the host program");
    let port = listening_port(&mut child);
    let pid = child.id();

    for _ in 0..WARM_UP {
        connect_close(port);
    }
    let warm = rss(pid);
    for _ in WARM_UP..CYCLES {
        connect_close(port);
    }
    let end = rss(pid);
    let growth = end.saturating_sub(warm);
    println!(
        "VmRSS after {WARM_UP} cycles: {} KiB, after {CYCLES}: {} KiB",
        warm / 1024,
        end / 1024
    );

    interrupt(&child);
    let status = wait_bounded(child);
    assert!(status.success(), "exit {status}");
    assert!(
        growth < ALLOWED_GROWTH,
        "RSS grew by {} KiB between cycle {WARM_UP} ({} KiB) and cycle {CYCLES} ({} KiB); allowed: {} KiB",
        growth / 1024,
        warm / 1024,
        end / 1024,
        ALLOWED_GROWTH / 1024
    );
}

/// Reads stdout (on a thread, bounded) up to the "listening on [::]:PORT" line; the rest of the
/// output is drained so that the program never blocks on a full pipe.
fn listening_port(child: &mut Child) -> u16 {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on [::]:").nth(1) {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Some(tx) = tx.take() {
                    let _ = tx.send(port.parse::<u16>().expect("a port number"));
                }
            }
        }
    });
    rx.recv_timeout(BOUND).expect("the 'listening on' line")
}

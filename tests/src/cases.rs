//! Black-box client cases: real TCP clients against an echo driver at an address, knowing nothing
//! of the backend. The same code runs against the driver on the host emulation (`tests/tests/
//! black_box.rs`) and against the real `echo_driver.sys` under Wine (the `echo-cases` program,
//! driven by `samples/echo-driver/wine/run-tier.sh`).
//!
//! Every wait is bounded by [`CASE_BOUND`] (a read or write that takes longer fails the case with
//! what it was waiting for), so a driver that hangs a connection fails a case instead of hanging it.
//! Only loopback addresses are accepted.

use crate::{ByteStream, echo_stream, is_reset, ping};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

/// The longest a case waits for any one thing (a connect, a read, a write, a thread).
pub const CASE_BOUND: Duration = Duration::from_secs(20);

/// 1 MiB, the size of each echo.
pub const MIB: usize = 1 << 20;

/// How a client ends its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// Sends everything, then FIN (`shutdown(Write)`), reads the echo to EOF: the driver must
    /// finish echoing and end with a graceful disconnect (WskDisconnect).
    Graceful,
    /// Sends everything, reads the whole echo back, then resets (SO_LINGER 0 and close): the
    /// driver never needs a graceful disconnect.
    Abortive,
}

/// What unloads the driver under test (the unload case calls it; the others ignore it).
pub type Unload<'a> = &'a mut dyn FnMut() -> Result<(), String>;

/// A case: a name (for the command line and the log) and what it does.
pub struct Case {
    pub name: &'static str,
    pub what: &'static str,
    /// `Some(why)`: the case fails on every backend until the named change lands, so the test
    /// suites do not run it yet (`echo-cases` runs it when named).
    pub pending: Option<&'static str>,
    pub run: fn(SocketAddr, Unload<'_>) -> Result<(), String>,
}

/// Every case, in the order a full run makes them (the unload case last: the driver is gone after
/// it).
pub const CASES: &[Case] = &[
    Case {
        name: "echo-1mib-abortive",
        pending: None,
        what: "one IPv4 client echoes 1 MiB, reads it all back, then resets",
        run: |addr, _| echo_one(addr, 1, Close::Abortive),
    },
    Case {
        name: "echo-1mib-graceful",
        pending: None,
        what: "one IPv4 client echoes 1 MiB and ends with FIN; the echo ends with EOF",
        run: |addr, _| echo_one(addr, 2, Close::Graceful),
    },
    Case {
        name: "concurrent-20x1mib-abortive",
        pending: None,
        what: "20 IPv4 clients at once, 1 MiB each, each resets after reading its echo",
        run: |addr, _| concurrent(addr, 20, Close::Abortive),
    },
    Case {
        name: "concurrent-20x1mib-graceful",
        pending: None,
        what: "20 IPv4 clients at once, 1 MiB each, each ending with FIN",
        run: |addr, _| concurrent(addr, 20, Close::Graceful),
    },
    Case {
        name: "fairness",
        // Before wsk-async's cooperative budget, measured on the host emulation: the second client's
        // first message got no echo within 20 s while the first client streamed (7 GB echoed to it).
        pending: None,
        what: "while one client streams without pause, a second is accepted and echoes 10 small messages",
        run: |addr, _| fairness(addr),
    },
    Case {
        name: "unload-with-clients",
        pending: None,
        what: "5 connected clients, then the driver unloads: every connection ends (FIN or RST)",
        run: unload_with_clients,
    },
];

/// Looks a case up by name.
pub fn case(name: &str) -> Option<&'static Case> {
    CASES.iter().find(|c| c.name == name)
}

/// Connects to a loopback `addr` with read and write timeouts of [`CASE_BOUND`].
pub fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address; the cases only ever talk to this machine"
        ));
    }
    let stream = TcpStream::connect_timeout(&addr, CASE_BOUND).map_err(|e| format!("connect to {addr}: {e}"))?;
    for set in [TcpStream::set_read_timeout, TcpStream::set_write_timeout] {
        set(&stream, Some(CASE_BOUND)).map_err(|e| e.to_string())?;
    }
    Ok(stream)
}

/// SO_LINGER 0: the next close sends RST instead of FIN.
pub fn set_linger_zero(stream: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Resets the connection: SO_LINGER 0, then close.
fn reset(stream: TcpStream) -> Result<(), String> {
    set_linger_zero(&stream).map_err(|e| format!("SO_LINGER: {e}"))?;
    drop(stream);
    Ok(())
}

/// Sends `total` bytes of the stream `seed` from a writer thread while this thread reads back and
/// checks exactly `total` bytes; then resets the connection.
fn echo_exact_then_reset(stream: TcpStream, seed: u64, total: usize) -> Result<(), String> {
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let sender = thread::spawn(move || -> io::Result<()> {
        let mut data = ByteStream::new(seed);
        let mut chunk = vec![0; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            data.fill(&mut chunk[..n]);
            writer.write_all(&chunk[..n])?;
            sent += n;
        }
        Ok(())
    });
    let mut reader = stream;
    let mut expected = ByteStream::new(seed);
    let mut buf = vec![0; 64 * 1024];
    let mut want = vec![0; 64 * 1024];
    let mut received = 0;
    let result = loop {
        if received == total {
            break Ok(());
        }
        let n = match reader.read(&mut buf[..(total - received).min(64 * 1024)]) {
            Ok(0) => break Err(format!("EOF after {received} of {total} echoed bytes")),
            Ok(n) => n,
            Err(e) => break Err(format!("read after {received} of {total} echoed bytes: {e}")),
        };
        expected.fill(&mut want[..n]);
        if let Some(i) = (0..n).find(|&i| buf[i] != want[i]) {
            break Err(format!("echoed byte {} differs", received + i));
        }
        received += n;
    };
    let sent = sender.join().map_err(|_| "writer panicked".to_string())?;
    result?;
    sent.map_err(|e| format!("write: {e}"))?;
    reset(reader)
}

/// One client, 1 MiB, closed as `close` says.
fn echo_one(addr: SocketAddr, seed: u64, close: Close) -> Result<(), String> {
    let stream = connect(addr)?;
    match close {
        Close::Graceful => echo_stream(stream, seed, MIB, 16 * 1024),
        Close::Abortive => echo_exact_then_reset(stream, seed, MIB),
    }
}

/// `clients` clients at once, 1 MiB each; every failure is reported.
fn concurrent(addr: SocketAddr, clients: u64, close: Close) -> Result<(), String> {
    let handles: Vec<_> = (0..clients)
        .map(|i| thread::spawn(move || echo_one(addr, 100 + i, close)))
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| match h.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("client {i}: {e}")),
            Err(_) => Some(format!("client {i}: panicked")),
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {clients} clients failed: {}",
            failures.len(),
            failures.join("; ")
        ))
    }
}

/// One client streams without pause (and reads its echo, so the driver is never held back by TCP
/// flow control) while a second connects and echoes 10 small messages, each within [`CASE_BOUND`].
fn fairness(addr: SocketAddr) -> Result<(), String> {
    let streamer = connect(addr)?;
    let stop = Arc::new(AtomicBool::new(false));
    let echoed = Arc::new(AtomicU64::new(0));
    let mut writer = streamer.try_clone().map_err(|e| e.to_string())?;
    let mut reader = streamer.try_clone().map_err(|e| e.to_string())?;
    let write_stop = Arc::clone(&stop);
    let send = thread::spawn(move || {
        let chunk = vec![0x5A; 16 * 1024];
        while !write_stop.load(Ordering::Relaxed) {
            if writer.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let counted = Arc::clone(&echoed);
    let (flowing, is_flowing) = std::sync::mpsc::channel();
    let receive = thread::spawn(move || {
        let mut buf = vec![0; 64 * 1024];
        let mut flowing = Some(flowing);
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            if counted.fetch_add(n as u64, Ordering::Relaxed) + n as u64 >= MIB as u64
                && let Some(tell) = flowing.take()
            {
                let _ = tell.send(());
            }
        }
    });
    let outcome = (|| {
        // The stream is flowing (1 MiB echoed) before the second client arrives.
        is_flowing.recv_timeout(CASE_BOUND).map_err(|_| {
            format!(
                "the streaming client got only {} bytes back",
                echoed.load(Ordering::Relaxed)
            )
        })?;
        let mut second = connect(addr)?;
        for i in 0..10u8 {
            ping(&mut second, &[b'm', i, 0xA5, i]).map_err(|e| {
                format!(
                    "message {i} of the second client, while the first streamed ({} bytes echoed to it): {e}",
                    echoed.load(Ordering::Relaxed)
                )
            })?;
        }
        reset(second)
    })();
    // End the streamer with a reset (no FIN: no graceful disconnect needed), waking its reader.
    stop.store(true, Ordering::Relaxed);
    let _ = set_linger_zero(&streamer);
    let _ = streamer.shutdown(Shutdown::Read);
    let _ = send.join();
    let _ = receive.join();
    drop(streamer);
    outcome
}

/// 5 clients connected and served once each, then `unload`; each connection must then end.
fn unload_with_clients(addr: SocketAddr, unload: Unload<'_>) -> Result<(), String> {
    let mut clients = Vec::new();
    for i in 0..5u8 {
        let mut client = connect(addr)?;
        ping(&mut client, &[b'u', i]).map_err(|e| format!("client {i} before unload: {e}"))?;
        clients.push(client);
    }
    unload()?;
    for (i, client) in clients.iter_mut().enumerate() {
        let mut buf = [0; 4096];
        loop {
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if is_reset(&e) => break,
                Err(e) => return Err(format!("client {i} after unload: its connection did not end: {e}")),
            }
        }
    }
    Ok(())
}

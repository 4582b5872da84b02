//! `bench memory`: nonpaged memory per open connection of the echo driver, against echosrv's
//! (Microsoft's WSK echo sample, `network/wsk/echosrv/wsksmple.c` in Windows-driver-samples), and
//! heap/pool allocations per echoed message in steady state.
//!
//! Ours is *measured*: the emulation tracks every pool block, IRP and MDL with its size (the leak
//! report lists them), so the driver is loaded, `OPEN` connections are opened and served once, and
//! (live bytes with them open - live bytes before) / `OPEN` is the per-connection pool cost. Two
//! parts are allocated before any connection exists and are added as a per-connection share: the
//! task slot (static, in the image: `echo_driver::CONNECTION_SLOT_BYTES`) and the connection's buffers with their MDLs
//! (`BufferPool` allocates all of them at DriverEntry: pool bytes / `connection_limit`).
//!
//! echosrv's is *computed* from its source, with its structures mirrored as `#[repr(C)]` here (x64
//! layout: this host is x86_64 too) and the IRP and MDL sizes from `nt`'s x64 layouts:
//! `WSKSAMPLE_SOCKET_CONTEXT` (one pool block per connection, with `WSKSAMPLE_OP_COUNT` = 2 embedded
//! `WSKSAMPLE_SOCKET_OP_CONTEXT`), and per operation context one `IoAllocateIrp(1, FALSE)`, one
//! `WSKSAMPLE_DATA_BUFFER_LENGTH` (2048) byte buffer and one `IoAllocateMdl` for it.
//! WSK's own socket object (inside netio.sys) is the same for both drivers and counted for neither.

use crate::figures::{Figure, ratio};
use crate::harness::count_allocations;
use echo_driver::Config;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Connections held open for the measurement.
const OPEN: usize = 256;
/// Echo rounds over all open connections for the allocation count (each round: one 64-byte message
/// per connection).
const STEADY_ROUNDS: usize = 40;
const MESSAGE: usize = 64;

// --- echosrv's structures, mirrored from wsksmple.c for their x64 sizes ---

/// `SLIST_ENTRY` on x64: one pointer, `DECLSPEC_ALIGN(16)`.
#[repr(C, align(16))]
struct SlistEntry {
    _next: *mut SlistEntry,
}

/// `WSKSAMPLE_SOCKET_OP_CONTEXT`.
#[repr(C)]
struct EchosrvOpContext {
    _queue_entry: SlistEntry,
    _op_handler: usize,
    _socket_context: usize,
    _irp: usize,
    _data_buffer: usize,
    _data_mdl: usize,
    _buffer_length: usize,
    _data_length: usize,
}

/// `WSKSAMPLE_SOCKET_CONTEXT`.
#[repr(C)]
struct EchosrvSocketContext {
    _socket: usize,
    _work_queue: usize,
    _closing: u8,
    _disconnecting: u8,
    _stop_listening: u8,
    _op_context: [EchosrvOpContext; ECHOSRV_OP_COUNT],
}

/// `WSKSAMPLE_OP_COUNT`.
const ECHOSRV_OP_COUNT: usize = 2;
/// `WSKSAMPLE_DATA_BUFFER_LENGTH`.
const ECHOSRV_BUFFER: usize = 2048;

/// `IoSizeOfIrp(1)`.
fn irp_bytes() -> usize {
    size_of::<nt::IRP>() + size_of::<nt::IO_STACK_LOCATION>()
}

/// `MmSizeOfMdl` for a buffer of `len` bytes spanning `pages` pages.
fn mdl_bytes(pages: usize) -> usize {
    size_of::<nt::MDL>() + pages * size_of::<usize>()
}

/// echosrv's per-connection nonpaged bytes, by part. Its 2048-byte buffers come from
/// `ExAllocatePoolUninitialized`; a pool block under a page never crosses a page, so each MDL maps
/// one page.
fn echosrv_parts() -> Vec<(&'static str, usize)> {
    vec![
        (
            "WSKSAMPLE_SOCKET_CONTEXT (2 op contexts)",
            size_of::<EchosrvSocketContext>(),
        ),
        ("2 IRPs, 1 stack location", ECHOSRV_OP_COUNT * irp_bytes()),
        ("2 data buffers", ECHOSRV_OP_COUNT * ECHOSRV_BUFFER),
        ("2 MDLs (1 page each)", ECHOSRV_OP_COUNT * mdl_bytes(1)),
    ]
}

/// Live pool blocks (by tag), IRPs and MDLs with their bytes, from the emulation's leak report.
#[derive(Default, Debug, Clone)]
struct PoolSnapshot {
    /// (kind or pool tag) -> (blocks, bytes)
    parts: BTreeMap<String, (usize, usize)>,
}

impl PoolSnapshot {
    /// A snapshot that two accountings of the same memory agree on: the leak report's blocks (by
    /// tag) and the emulation's running totals (`nt::emu::pool::stats`). The driver's accept loop
    /// may allocate the next accept while a snapshot is taken, so it is retried until the totals
    /// before and after the report match it.
    fn take(session: &nt::emu::Session) -> Self {
        let live = |s: nt::emu::pool::PoolStats| s.pool.bytes + s.irps.bytes + s.mdls.bytes;
        for _ in 0..1000 {
            let before = live(nt::emu::pool::stats());
            let snapshot = Self::from_leak_report(session);
            if before == snapshot.total() && before == live(nt::emu::pool::stats()) {
                return snapshot;
            }
            std::thread::yield_now();
        }
        panic!("the leak report and the pool totals never agreed");
    }

    fn from_leak_report(session: &nt::emu::Session) -> Self {
        let mut parts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for leak in session.leak_report().leaks {
            let Some(bytes) = bytes_in(&leak.description) else {
                continue;
            };
            let key = match leak.kind.as_str() {
                "pool block" => match leak.description.split_once("tag '") {
                    Some((_, rest)) => format!("pool '{}'", &rest[..4]),
                    None => "pool".to_string(),
                },
                "IRP" | "MDL" => leak.kind.clone(),
                _ => continue,
            };
            let entry = parts.entry(key).or_default();
            entry.0 += 1;
            entry.1 += bytes;
        }
        Self { parts }
    }

    fn total(&self) -> usize {
        self.parts.values().map(|p| p.1).sum()
    }

    fn get(&self, key: &str) -> (usize, usize) {
        self.parts.get(key).copied().unwrap_or_default()
    }
}

/// The "(N bytes" of a leak report line.
fn bytes_in(description: &str) -> Option<usize> {
    let (_, rest) = description.split_once('(')?;
    rest.split_once(" bytes")?.0.parse().ok()
}

fn echo_once(stream: &mut TcpStream, message: &[u8], echo: &mut [u8]) {
    stream.write_all(message).expect("send");
    stream.read_exact(echo).expect("echo");
    assert!(echo == message);
}

/// Runs the benchmark, prints its table, returns its figures.
pub fn run() -> Vec<Figure> {
    let session = nt::emu::session();
    nt::emu::set_backtraces(false);
    let config = Config {
        port: 0,
        ..Config::DEFAULT
    };
    // SAFETY: PASSIVE_LEVEL, a fresh session, the loader's driver object.
    let driver = nt::emu::driver::load_with(|driver, _registry_path| unsafe { echo_driver::start(driver, &config) })
        .unwrap_or_else(|status| panic!("DriverEntry failed: {status:#x}"));
    let addr = SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        echo_driver::local_addr().expect("listening").port(),
    ));

    let baseline = PoolSnapshot::take(&session);
    let message = [0x5au8; MESSAGE];
    let mut echo = [0u8; MESSAGE];
    let mut streams: Vec<TcpStream> = (0..OPEN)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            echo_once(&mut s, &message, &mut echo);
            s
        })
        .collect();
    assert_eq!(echo_driver::counters().active, OPEN);
    let open = PoolSnapshot::take(&session);

    // Steady state: warm up, then count every pool, IRP and MDL allocation call (the emulation's
    // exact counters) and, for information, every heap allocation of the process, while echoing.
    let round = |streams: &mut Vec<TcpStream>, echo: &mut [u8]| {
        for s in streams.iter_mut() {
            s.write_all(&message).expect("send");
        }
        for s in streams.iter_mut() {
            s.read_exact(echo).expect("echo");
        }
    };
    for _ in 0..5 {
        round(&mut streams, &mut echo);
    }
    let before = nt::emu::pool::stats();
    let (allocations, _) = count_allocations(|| {
        for _ in 0..STEADY_ROUNDS {
            round(&mut streams, &mut echo);
        }
    });
    let after = nt::emu::pool::stats();
    let kernel_allocations = (after.pool_allocations - before.pool_allocations)
        + (after.irp_allocations - before.irp_allocations)
        + (after.mdl_allocations - before.mdl_allocations);
    let messages = STEADY_ROUNDS * OPEN;
    let steady = PoolSnapshot::take(&session);
    drop(streams);
    let deadline = Instant::now() + Duration::from_secs(30);
    while echo_driver::counters().active != 0 {
        assert!(Instant::now() < deadline, "connections did not end");
        std::thread::sleep(Duration::from_millis(5));
    }
    driver.unload();
    drop(session);

    // Per connection, ours.
    let per = |key: &str| {
        let (b0, s0) = baseline.get(key);
        let (b1, s1) = open.get(key);
        (
            (b1 as f64 - b0 as f64) / OPEN as f64,
            (s1 as f64 - s0 as f64) / OPEN as f64,
        )
    };
    let limit = config.connection_limit as f64;
    let (socket_blocks, socket_bytes) = per("pool 'WsAs'");
    let (irps, irp_total) = per("IRP");
    let (mdls_open, mdl_open_bytes) = per("MDL");
    let (buffer_blocks, buffer_bytes) = per("pool 'WsAb'");
    let buffer_share = baseline.get("pool 'WsAb'").1 as f64 / limit;
    let mdl_share = baseline.get("MDL").1 as f64 / limit;
    let slot = echo_driver::CONNECTION_SLOT_BYTES as f64;
    let measured_delta = (open.total() as f64 - baseline.total() as f64) / OPEN as f64;
    let ours_total = measured_delta + buffer_share + mdl_share + slot;
    let ours_parts: Vec<(String, f64)> = vec![
        (
            format!("socket context 'WsAs' ({socket_blocks:.2} blocks: receive, two send and close slots)"),
            socket_bytes,
        ),
        (format!("IRPs ({irps:.2}, 1 stack location)"), irp_total),
        (
            format!("other pool/MDL growth per connection ({buffer_blocks:.2} 'WsAb' blocks, {mdls_open:.2} MDLs)"),
            buffer_bytes + mdl_open_bytes,
        ),
        (
            format!(
                "{} buffers ({} B each): share of the BufferPool",
                echo_driver::BUFFERS_PER_CONNECTION,
                config.buffer_size
            ),
            buffer_share,
        ),
        ("their MDLs (built at DriverEntry)".to_string(), mdl_share),
        ("task slot (static TaskPool, in the image)".to_string(), slot),
    ];
    let echosrv = echosrv_parts();
    let echosrv_total: usize = echosrv.iter().map(|p| p.1).sum();

    println!("Memory per open connection (nonpaged bytes; {OPEN} connections open, each served once)");
    println!(
        "{:<78} {:>10}",
        "ours (measured by the emulation's pool accounting)", "bytes"
    );
    for (name, bytes) in &ours_parts {
        println!("  {name:<76} {bytes:>10.1}");
    }
    println!("  {:<76} {:>10.1}", "total", ours_total);
    println!("{:<78} {:>10}", "echosrv (computed from wsksmple.c, x64)", "bytes");
    for (name, bytes) in &echosrv {
        println!("  {name:<76} {bytes:>10}");
    }
    println!("  {:<76} {:>10}", "total", echosrv_total);
    println!(
        "reserved at DriverEntry for {} connections: {:.0} bytes of buffers and MDLs, plus {:.0} bytes of task slots in the image",
        config.connection_limit,
        (buffer_share + mdl_share) * limit,
        slot * (config.connection_limit as f64)
    );
    let steady_growth = steady.total() as f64 - open.total() as f64;
    let per_message = kernel_allocations as f64 / messages as f64;
    println!(
        "steady state: {messages} messages echoed; ExAllocatePool2/IoAllocateIrp/IoAllocateMdl calls: {kernel_allocations} ({per_message:.4}/message); \
         all heap allocations of the process (the emulation's and the load generator's own): {allocations} ({:.2}/message); live pool bytes changed by {steady_growth:.0}",
        allocations as f64 / messages as f64
    );
    // The same comparison without the data buffers: both drivers hold 4 KiB of them per connection
    // by default (two of 2 KiB each), so this is what each design adds.
    let ours_buffers = echo_driver::BUFFERS_PER_CONNECTION * config.buffer_size;
    let ours_overhead = ours_total - ours_buffers as f64;
    let echosrv_overhead = (echosrv_total - ECHOSRV_OP_COUNT * ECHOSRV_BUFFER) as f64;
    println!(
        "without the data buffers ({} B ours, {} B echosrv): ours {ours_overhead:.1} B, echosrv {echosrv_overhead:.0} B",
        ours_buffers,
        ECHOSRV_OP_COUNT * ECHOSRV_BUFFER
    );
    vec![
        Figure::value("memory_per_connection_ours", ours_total.round(), "bytes"),
        Figure::value("memory_per_connection_echosrv", echosrv_total as f64, "bytes"),
        Figure::ratio("memory_per_connection", ratio(ours_total, echosrv_total as f64)),
        Figure::ratio(
            "memory_per_connection_without_buffers",
            ratio(ours_overhead, echosrv_overhead),
        ),
        Figure::value("pool_allocations_per_message", per_message, "allocations/message"),
        Figure::value(
            "host_heap_allocations_per_message",
            allocations as f64 / messages as f64,
            "allocations/message",
        ),
    ]
}

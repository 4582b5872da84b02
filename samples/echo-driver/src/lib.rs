//! An echo server driver on WSK, written with `async`/`await`.
//!
//! It does what Microsoft's WSK echo sample (`network/wsk/echosrv` in Windows-driver-samples) does —
//! listen on port 40007, IPv6 and IPv4 on one dual-stack socket, and echo every byte until the peer
//! closes — and closes the three gaps that sample's README admits:
//!
//! * **a connection limit** ([`Config::connection_limit`], default 1024): the connection over it is
//!   accepted and reset at once, never queued;
//! * **an idle timeout** ([`Config::idle_timeout`], default 60 s): a connection with no completed
//!   receive or send for that long is aborted;
//! * **an unload that never waits on a peer**: DriverUnload drops every task, which aborts every
//!   connection, waits only for the kernel's own IRPs, deregisters and returns.
//!
//! The same code is the kernel driver (`echo_driver.sys`, x86_64-pc-windows-msvc) and, on other
//! systems, a library that the host program (`src/main.rs`) and the end-to-end tests run on the
//! `nt` host emulation, serving real TCP.
//!
//! Structure: [`DriverEntry`] / [`start`] and [`DriverUnload`] / [`stop`] in `driver.rs`; the accept
//! loop and the per-connection echo task in `server.rs`; the counters in `counters.rs`.
#![no_std]

mod config;
mod counters;
mod driver;
mod server;

// The kernel's panic handler, `_fltused` and personality stub (nothing on the host). A dependency
// that no code names is not linked, hence this `use`; not in a unit-test build, which has std's.
#[cfg(not(test))]
use wdm_driver_runtime as _;

pub use config::{BUFFER_RETURN_BOUND, BUFFERS_PER_CONNECTION, Config, DEFAULT_PORT, MAX_CONNECTIONS};
pub use counters::CounterSnapshot;
pub use driver::{DriverEntry, DriverUnload, TAG_DRIVER, counters, local_addr, start, stop};
#[doc(hidden)]
pub use server::CONNECTION_SLOT_BYTES;

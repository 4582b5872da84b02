//! A WSK client driver, written with `async`/`await`: the client-side counterpart of the echo
//! sample.
//!
//! At DriverEntry it starts one task that resolves the configured server name, connects out, and
//! sends a report line every [`Config::interval`]:
//!
//! ```text
//! report 7 connects=2 reconnects=1 sent=6 failures=1
//! ```
//!
//! (a sequence number that grows across connections, then the driver's counters). A receive is
//! always pending on the connection: what the server sends back is counted and discarded, and its
//! FIN or reset is noticed at once. After any failure — a name that does not resolve, a refused or
//! unreachable connect, a reset, the server closing — the task waits and starts again, with a wait
//! that doubles from [`Config::backoff_min`] to [`Config::backoff_max`] and goes back to the minimum
//! after a connection.
//!
//! DriverUnload may come at any point (mid-resolve, mid-connect, mid-send, mid-backoff): it drops
//! the task, which cancels whatever IRP is pending and closes the connection abortively, waits for
//! the kernel's IRPs, deregisters and returns. It never waits on the server.
//!
//! The same code is the kernel driver (`report_client.sys`, x86_64-pc-windows-msvc) and, on other
//! systems, a library that the host program (`src/main.rs`) and the end-to-end tests run on the
//! `nt` host emulation, connecting with real TCP.
//!
//! Structure: [`DriverEntry`] / [`start`] and [`DriverUnload`] / [`stop`] in `driver.rs` (the
//! executor, registration and device object are the `driver-state` crate's, shared with the echo
//! sample); the task in `client.rs`; name resolution in `resolve.rs`; the backoff in `backoff.rs`.
#![no_std]

mod backoff;
mod client;
mod config;
mod counters;
mod driver;
mod resolve;

// The kernel's panic handler, `_fltused` and personality stub (nothing on the host). A dependency
// that no code names is not linked, hence this `use`; not in a unit-test build, which has std's.
#[cfg(not(test))]
use wdm_driver_runtime as _;

pub use config::{Config, DEFAULT_PORT, MAX_HOST_LEN};
pub use counters::{CounterSnapshot, Phase};
pub use driver::{DriverEntry, DriverUnload, TAG_DRIVER, counters, start, stop};

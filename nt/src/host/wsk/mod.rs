//! The emulated WSK provider (netio.sys): `WskRegister` and friends, and the socket dispatch tables
//! behind them, over two transports: real host TCP ([`tcp`]) and a deterministic in-memory network
//! ([`memory`]), selected per registration (see [`control::MemoryNetwork`]).
//!
//! Every IRP-taking function takes ownership of the client's IRP as a lower driver does, completes it
//! with `IofCompleteRequest` (inline, before returning the final status, or later at DISPATCH_LEVEL
//! from the transport, returning STATUS_PENDING), keeps a cancel routine armed while it pends, and
//! follows the statuses of the WSK documentation. The checks (call after close, close while a call is
//! in progress, sockets or captures left at `WskDeregister`) are reported through `nt::emu`.
//!
//! Map: [`registration`] (the four exports), [`client`] (`WskSocket`, `WskSocketConnect`),
//! [`resolve`] (name resolution), [`listen`], [`connection`], [`datagram`], [`disconnect`], [`close`] (socket functions), [`call`] (their common
//! prologue), [`submit`] and [`pump`] (queuing and progress of pending operations), [`send`] (when
//! a send completes: WSK's send model), [`irp`] (IRP
//! ownership and cancellation), [`socket`] (socket state), [`table`] (the socket table and the
//! checks), [`gate`] and [`deferred`] (test hooks), [`schedule`] and [`later`] (inline or later completion), [`decided`]
//! (operations done at the call whose completion may come later), [`transport`] (the interface both transports implement),
//! [`backlog`] (the ideal send backlog query), [`control`] (the test controls, `nt::emu::wsk`).

mod addr;
mod backlog;
mod call;
mod client;
mod close;
mod connection;
pub mod control;
mod datagram;
mod decided;
mod deferred;
mod disconnect;
mod dispatch;
mod gate;
mod irp;
mod later;
mod listen;
mod mdl;
mod memory;
mod options;
mod pump;
mod registration;
mod resolve;
pub(crate) mod schedule;
mod send;
mod socket;
mod submit;
mod table;
mod tcp;
mod transport;
pub(crate) mod wine8;

pub use registration::{WskCaptureProviderNPI, WskDeregister, WskRegister, WskReleaseProviderNPI};

/// Back to a fresh provider at the start of a session: provider available, default deregister bound,
/// no in-memory network installed, and whatever a failed test left registered or open dropped (which
/// stops the TCP event loop).
pub(super) fn reset() {
    registration::set_ready(true);
    registration::set_deregister_timeout(registration::DEFAULT_DEREGISTER_TIMEOUT);
    memory::uninstall();
    registration::forget_all();
    socket::forget_all();
    wine8::reset();
    deferred::reset();
    later::reset();
    resolve::reset();
    schedule::reset();
    backlog::reset();
}

/// The end of a session whose test failed and is unwinding: every completion the provider deferred
/// or parked, and every pending resolution, is forgotten at once, never delivered; the registrations
/// and sockets are forgotten too, which stops the TCP transport's event loop, so that it completes
/// none of the IRPs still queued on the failed test's sockets. Not at the next session's start, which
/// would leave all of it until then for a later emulated wait or the event loop to complete into the
/// test's freed memory. What this cannot cover: waits the unwinding makes before the session guard
/// is dropped (the guard is usually the test's first local, so dropped last) still deliver.
pub(super) fn forget_failed_session() {
    later::forget();
    deferred::forget();
    resolve::forget_pending();
    registration::forget_all();
    socket::forget_all();
}

/// Delivers the completions the schedule deferred (the end of a session, before its leak report).
pub(super) fn settle() {
    later::deliver();
}

/// The hook of the emulated waits (see [`later`]).
pub(super) fn deliver_before_wait() {
    later::deliver_before_wait();
}

//! Winsock Kernel (WSK) sockets as futures that are safe to drop, for Windows kernel drivers.
//!
//! Every WSK call is an IRP; this crate turns each into a future woken by the IRP's completion
//! routine, and makes dropping any future at any `.await` sound and meaningful:
//!
//! * An operation's IRP, the buffer lent to the kernel, its `WSK_BUF` and addresses live in
//!   nonpaged pool in an *operation slot* of the socket's context, never in the future; the
//!   completion routine and the future share the slot through one atomic state word (the state
//!   machine is documented in `op_state.rs`), and the context is freed by whoever drops its last
//!   reference. IRPs are allocated once per socket and recycled with `IoReuseIrp`: steady-state
//!   sends and receives allocate nothing. An open connection holds four slots and four IRPs
//!   (receive, two sends, close); the disconnect and abort slots are allocated by the first
//!   `disconnect()` or `abort()` (`footprint.rs` pins the sizes). Two consequences for callers:
//!   - [`Connection::disconnect`], [`Connection::disconnect_with`] and [`Connection::abort`] can fail
//!     with [`WskError::is_out_of_resources`] on the first one per connection (having done nothing;
//!     dropping or closing the connection still closes it, abortively, with its preallocated close
//!     IRP, so the peer still sees a reset);
//!   - a connection that ends with a disconnect or an abort makes one more pool allocation then (one
//!     block and two IRPs), where older versions allocated those IRPs with the connection.
//! * Dropping a pending receive/send/accept/connect cancels its IRP; dropping a pending graceful
//!   disconnect issues an abortive one; dropping a socket closes it with a preallocated IRP. See
//!   [`Connection`], [`Listener`] and [`DatagramSocket`] for the exact effects.
//! * Datagram (UDP) sockets: [`Registration::bind_datagram`] gives a [`DatagramSocket`] with
//!   `send_to` / `receive_from` futures over the same owned buffers and slots (one send and one
//!   receive in flight, three IRPs per socket).
//! * Buffers are owned ([`Buffer`], from a [`BufferPool`] of nonpaged buffers with prebuilt MDLs)
//!   and come back with the result: `let (result, buf) = conn.receive(buf).await;`.
//! * Errors keep the raw `NTSTATUS` ([`WskError`]); [`WskError::is_forced_close`] says "close now".
//!
//! The futures are executor-agnostic: they need only a waker that may be called at
//! `DISPATCH_LEVEL` from any CPU (the completion routine wakes it). They are polled at
//! `PASSIVE_LEVEL`.
//!
//! An echo of one message. On the host the example runs on the emulation's in-memory network, where
//! the test plays the remote peer (`tests/tcp.rs` does the same over real loopback TCP with std
//! clients); the driver code is the same either way:
//!
//! ```
//! # let _session = nt::emu::session();
//! # let net = nt::emu::wsk::MemoryNetwork::install();
//! # // The peer reads only after block_on: its TCP acknowledges on arrival, so sends complete.
//! # net.set_default_acknowledgement(nt::emu::wsk::Acknowledgement::OnArrival);
//! use core::net::SocketAddr;
//! use wsk_async::{BufferPool, Registration};
//! executor::block_on(async {
//! # let _test_device = nt::emu::driver::TestDevice::create();
//! # let device = unsafe { wsk_async::Device::from_raw(_test_device.device()) }.unwrap();
//!     let registration = Registration::register(&device).await?;
//!     let pool = BufferPool::new(4, 4096)?;
//!     let listener = registration.listen("[::]:0".parse::<SocketAddr>().unwrap()).await?;
//! #   let peer = net.connect(listener.local_addr().unwrap()).unwrap();
//! #   peer.write(b"ping").unwrap();
//! #   peer.shutdown();
//!     let conn = listener.accept().await?;
//!     let mut buf = pool.take()?;
//!     loop {
//!         let (n, b) = conn.receive(buf).await;
//!         if n? == 0 {
//!             buf = b;
//!             break; // the peer sent FIN
//!         }
//!         let (sent, b) = conn.send_all(b).await;
//!         sent?;
//!         buf = b;
//!     }
//!     conn.disconnect().await?; // graceful: everything sent, then FIN
//! #   assert_eq!(peer.read(100).unwrap(), b"ping");
//! #   assert!(peer.got_fin() && !peer.was_reset());
//!     conn.close().await?;
//!     drop(buf);
//!     listener.close().await?;
//!     registration.deregister().await;
//!     Ok::<(), wsk_async::WskError>(())
//! })
//! .unwrap()
//! .unwrap();
//! ```
#![no_std]
#![warn(missing_docs)]

#[cfg(any(test, loom))]
extern crate std;

mod addr;
mod atomic_waker;
mod backlog;
mod buffer;
mod buffer_wait;
mod close;
mod connect;
mod connection;
mod creating;
mod ctx;
mod datagram;
mod device;
mod disconnect;
mod end_slots;
mod error;
mod lazy;
mod listener;
mod op;
mod op_state;
mod option;
mod pool_mem;
mod quiesce;
mod registration;
mod resolve;
mod send_slot_control;
mod setup;
mod slot;
mod sync;

#[cfg(all(test, loom))]
mod loom_model;

#[cfg(all(test, not(loom)))]
mod footprint;

#[cfg(all(test, not(loom), not(target_os = "windows")))]
mod slot_edge_tests;

#[cfg(all(test, not(loom), not(target_os = "windows")))]
mod test_support;

pub use backlog::IdealSendBacklog;
pub use buffer::{Buffer, BufferPool, Slice};
pub use buffer_wait::TakeWhenFree;
pub use close::Close;
pub use connect::Connect;
pub use connection::{Connection, Receive, Send};
pub use ctx::COOP_BUDGET;
pub use datagram::{BindDatagram, DatagramSocket, ReceiveFrom, ReceivedFrom, SendTo};
pub use device::Device;
pub use disconnect::{Abort, Disconnect, DisconnectWith};
pub use error::{Result, WskError};
pub use listener::{Accept, Incoming, Listen, Listener};
pub use option::SetOption;
pub use pool_mem::{TAG_BUFFER, TAG_REGISTRATION, TAG_SOCKET};
pub use registration::{Deregister, REGISTER_TIMEOUT, Registration};
pub use resolve::{MAX_HOST_NAME, MAX_LIST_ENTRIES, MAX_RESOLVED, Resolve, ResolvedAddrs};

//! The nonpaged footprint of a socket, pinned: a change that makes a connection bigger fails here
//! and has to say why.
//!
//! The budget (x64): Microsoft's echosrv sample spends 4 960 bytes per connection (a 192-byte socket
//! context, two 280-byte IRPs, two 2 048-byte buffers, two 56-byte MDLs). Buffers are the driver's
//! choice (a [`BufferPool`](crate::BufferPool)); what this crate adds per open connection is its
//! socket context and the IRPs that context preallocates:
//!
//! | part | before | now |
//! |---|---|---|
//! | `SocketCtx` of an open accepted connection | 1 952 | 360: 48 header + 4 × 48 inline slots + 3 × 40 `OpIo` (272 with one send slot) |
//! | `Op` (one slot) | 384 (2 `SOCKADDR_STORAGE`, an `IO_STATUS_BLOCK` copy, an orphan link, an `OpIo`) | 48 |
//! | IRPs of an open connection | 5 | 4 (receive, two sends, close; 3 with one send slot) |
//! | when it ends: `EndSlots` + IRPs | (inside the above) | 136 + 2 IRPs, allocated by the first `disconnect()`/`abort()` |
//!
//! Listeners, connecting sockets and datagram sockets add an [`Addresses`](crate::ctx::Addresses)
//! part (264 bytes) to their block. A datagram socket preallocates three IRPs (receive, one send,
//! close): its second send slot has none.
//!
//! The public futures are pinned too: a task stores them (and its [`Buffer`](crate::Buffer)s), in a
//! static task slot that is nonpaged memory as well. Before → now, in bytes: `Buffer` 24 → 16,
//! `Slice` 40 → 24, `Receive` 40 → 32, `Send` 56 → 40, `Disconnect`/`DisconnectWith` 56 → 40.

use crate::ctx::{Addresses, INLINE_SLOTS, Kind, SocketCtx};
use crate::end_slots::EndSlots;
use crate::op::{Op, OpIo};

#[cfg(target_pointer_width = "64")]
#[test]
fn socket_context_and_slots_stay_within_budget() {
    assert!(size_of::<Op>() <= 48, "Op grew to {} bytes", size_of::<Op>());
    assert!(size_of::<OpIo>() <= 40, "OpIo grew to {} bytes", size_of::<OpIo>());
    let ctx = size_of::<SocketCtx>();
    // The second send slot (`ctx::SEND_SLOTS`) added 88 bytes (a slot and its `OpIo`) to 272.
    assert!(ctx <= 360, "SocketCtx grew to {ctx} bytes");
    let end = size_of::<EndSlots>();
    assert!(end <= 136, "EndSlots grew to {end} bytes");
    // An accepted connection's block is the context alone: no addresses.
    assert_eq!(Kind::Accepted.block_size(), size_of::<SocketCtx>());
    for kind in [Kind::Listener, Kind::Connecting, Kind::Datagram] {
        assert!(kind.block_size() <= size_of::<SocketCtx>() + size_of::<Addresses>() + 8);
    }
    assert!(
        size_of::<Addresses>() <= 264,
        "Addresses grew to {} bytes",
        size_of::<Addresses>()
    );
}

#[test]
fn an_open_connection_preallocates_four_irps_a_listener_two() {
    let preallocated = |kind: Kind| (0..INLINE_SLOTS).filter(|&i| kind.preallocates(i)).count();
    assert_eq!(preallocated(Kind::Accepted), 4);
    assert_eq!(preallocated(Kind::Connecting), 4);
    assert_eq!(preallocated(Kind::Listener), 2);
    // Receive, one send, close: one send in flight per datagram socket.
    assert_eq!(preallocated(Kind::Datagram), 3);
    assert_eq!(preallocated(Kind::Resolving), 1);
}

/// The futures hold a reference, the owned buffer and their slot phase; nothing the kernel borrows.
#[cfg(target_pointer_width = "64")]
#[test]
fn public_futures_stay_small() {
    use crate::*;
    assert!(size_of::<Buffer>() <= 16);
    assert!(size_of::<Slice>() <= 24);
    assert!(size_of::<Receive<'static>>() <= 32);
    assert!(size_of::<Send<'static>>() <= 40);
    assert!(size_of::<Disconnect<'static>>() <= 40);
    assert!(size_of::<DisconnectWith<'static>>() <= 40);
    assert!(size_of::<Abort<'static>>() <= 16);
    assert!(size_of::<Close>() <= 16);
    assert!(size_of::<Accept<'static>>() <= 24);
    assert!(size_of::<IdealSendBacklog<'static>>() <= 16);
    // The datagram futures: `SendTo` also carries the destination until its first poll.
    assert!(size_of::<ReceiveFrom<'static>>() <= 32);
    assert!(size_of::<SendTo<'static>>() <= 72);
    assert!(size_of::<BindDatagram<'static>>() <= 72);
    // The request (host name, service, hints) is in the context's pool block, not in the future.
    assert!(
        size_of::<Resolve<'static>>() <= 48,
        "Resolve grew to {}",
        size_of::<Resolve<'static>>()
    );
}

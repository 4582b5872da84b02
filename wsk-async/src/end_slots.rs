//! [`EndSlots`]: the operation slots a connection needs only when it ends — the graceful disconnect
//! (with the [`OpIo`] of its optional final buffer) and the abort — with their two IRPs, in one
//! nonpaged block that the first `disconnect()` or `abort()` allocates and installs in the context
//! (`SocketCtx::ensure_end_slots`). An open connection does not hold them.
//!
//! Why both at once: a pending graceful disconnect may be dropped, and its drop must then issue the
//! abort that forces it to complete, without allocating or failing. So the disconnect future
//! provides the abort slot too, before it submits anything.
//!
//! Lifetime: installed at most once (`lazy::install_once`: racing installers agree on one block, the
//! loser frees its own), never removed while the context lives, freed by the context's last release,
//! when no IRP can be in flight. The slots' `ctx` pointers are the context's (its references cover
//! their IRPs exactly like the inline slots').

use crate::ctx::{ABORT, DISCONNECT, SocketCtx, free_irps};
use crate::op::{Op, OpIo};
use crate::pool_mem::{self, TAG_SOCKET};
use crate::sync::Cell;
use core::ptr::{self, NonNull};
use nt::*;

/// See the module documentation.
pub(crate) struct EndSlots {
    pub(crate) disconnect: Op,
    pub(crate) abort: Op,
    /// The disconnect slot's kernel-borrowed data (`disconnect_with`'s final buffer).
    pub(crate) disconnect_io: Cell<OpIo>,
}

impl EndSlots {
    /// Allocates the block and its two IRPs for the context `ctx` (a pointer with the context
    /// allocation's provenance). Null if any allocation fails (nothing is left allocated then).
    /// IRQL <= DISPATCH_LEVEL.
    pub(crate) fn allocate(ctx: *const SocketCtx) -> *mut EndSlots {
        // SAFETY: IoAllocateIrp has no preconditions at IRQL <= DISPATCH_LEVEL.
        Self::allocate_with(ctx, || unsafe { IoAllocateIrp(1, FALSE) })
    }

    /// [`allocate`](Self::allocate) with the IRP allocator as a parameter, so that a test can fail
    /// exactly the second IRP (the emulation's fault injection fails the *next* allocations only).
    /// `allocate_irp` returns a fresh IRP the caller owns, or null.
    fn allocate_with(ctx: *const SocketCtx, mut allocate_irp: impl FnMut() -> PIRP) -> *mut EndSlots {
        let irps = [allocate_irp(), allocate_irp()];
        let block = if irps.iter().all(|irp| !irp.is_null()) {
            pool_mem::allocate::<EndSlots>(TAG_SOCKET)
        } else {
            None
        };
        let Some(block) = block else {
            free_irps(&irps);
            return ptr::null_mut();
        };
        let this = block.as_ptr();
        // SAFETY: `block` is fresh pool memory for one EndSlots, aligned enough for it (checked at
        // compile time by `pool_mem::allocate`).
        unsafe {
            this.write(EndSlots {
                disconnect: Op::new(irps[0], ctx, DISCONNECT as u8),
                abort: Op::new(irps[1], ctx, ABORT as u8),
                disconnect_io: Cell::new(OpIo::new()),
            });
        }
        this
    }

    /// Frees a block from [`allocate`](Self::allocate) and its IRPs: the loser of an installation
    /// race (never published), or the context's last release.
    ///
    /// # Safety
    /// `this` came from `allocate`, no IRP of it is in flight, and nobody uses it afterwards.
    /// IRQL <= DISPATCH_LEVEL.
    pub(crate) unsafe fn free(this: *mut EndSlots) {
        // SAFETY: caller's contract: exclusively ours, IRPs owned by the driver.
        unsafe {
            let irps = [(*this).disconnect.irp(), (*this).abort.irp()];
            // Drops a leftover final buffer (back to its pool) and any waker still stored.
            ptr::drop_in_place(this);
            pool_mem::free(NonNull::new_unchecked(this), TAG_SOCKET);
            free_irps(&irps);
        }
    }
}

#[cfg(all(test, not(loom), not(target_os = "windows")))]
mod tests {
    use super::*;

    /// The first IRP is allocated and the second fails: the first goes back, nothing is left.
    #[test]
    fn first_irp_allocated_second_fails_frees_the_first() {
        let _session = nt::emu::session();
        let irps = nt::emu::irp::live_count();
        let blocks = nt::emu::pool::live_blocks(TAG_SOCKET);
        let mut calls = 0;
        // The context pointer is only stored, never read, by `allocate_with`.
        let end = EndSlots::allocate_with(ptr::null(), || {
            calls += 1;
            if calls == 2 {
                ptr::null_mut()
            } else {
                // SAFETY: IoAllocateIrp has no preconditions at PASSIVE_LEVEL.
                unsafe { IoAllocateIrp(1, FALSE) }
            }
        });
        assert!(end.is_null());
        assert_eq!(calls, 2);
        assert_eq!(nt::emu::irp::live_count(), irps, "the first IRP was freed");
        assert_eq!(nt::emu::pool::live_blocks(TAG_SOCKET), blocks, "no block was allocated");
    }
}

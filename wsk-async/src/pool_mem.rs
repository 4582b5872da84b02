//! Nonpaged pool allocation with this crate's pool tags.

use core::ptr::NonNull;
use nt::*;

/// Builds a pool tag from four ASCII characters, in the byte order the kernel's pool tools print
/// (`ExAllocatePool2(.., 'sAsW')` in C shows as `WsAs`).
const fn tag(name: &[u8; 4]) -> ULONG {
    u32::from_le_bytes(*name)
}

/// Pool tag of socket contexts (operation slots, IRP pointers, addresses): `WsAs`.
pub const TAG_SOCKET: ULONG = tag(b"WsAs");
/// Pool tag of buffer pools (descriptors and data): `WsAb`.
pub const TAG_BUFFER: ULONG = tag(b"WsAb");
/// Pool tag of the registration state: `WsAr`.
pub const TAG_REGISTRATION: ULONG = tag(b"WsAr");

/// The alignment `ExAllocatePool2` guarantees (`MEMORY_ALLOCATION_ALIGNMENT`): 16 bytes on 64-bit
/// Windows, 8 on 32-bit x86. Every type placed at the start of a block (or at an offset that is a
/// multiple of its alignment) must need no more; `allocate` and the context layout check it at
/// compile time.
pub(crate) const POOL_ALIGNMENT: usize = if cfg!(target_pointer_width = "64") { 16 } else { 8 };

/// Allocates zeroed nonpaged memory for one `T` (IRQL <= DISPATCH_LEVEL). `None` when the pool is
/// exhausted.
pub(crate) fn allocate<T>(tag: ULONG) -> Option<NonNull<T>> {
    const {
        assert!(
            align_of::<T>() <= POOL_ALIGNMENT,
            "a pool block is not aligned enough for T"
        )
    };
    allocate_bytes(core::mem::size_of::<T>(), tag).map(NonNull::cast)
}

/// Allocates `size` zeroed nonpaged bytes, [`POOL_ALIGNMENT`]-aligned.
pub(crate) fn allocate_bytes(size: usize, tag: ULONG) -> Option<NonNull<u8>> {
    // SAFETY: ExAllocatePool2 has no preconditions beyond IRQL <= DISPATCH_LEVEL for nonpaged pool,
    // which every caller in this crate satisfies (it runs at PASSIVE_LEVEL or in completion routines).
    let p = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, size, tag) };
    NonNull::new(p.cast())
}

/// Frees a block returned by [`allocate`] / [`allocate_bytes`] with the same tag.
///
/// # Safety
/// `p` came from this module's allocators with `tag` and is not used afterwards.
pub(crate) unsafe fn free<T>(p: NonNull<T>, tag: ULONG) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { ExFreePoolWithTag(p.as_ptr().cast(), tag) };
}

//! Owned I/O buffers: a [`BufferPool`] of fixed-size nonpaged buffers, each with an MDL built once
//! when the pool is created, so that a send or receive never allocates.
//!
//! A [`Buffer`] is lent to the kernel for the duration of an operation and handed back with the
//! result (`(result, buffer)`), as in tokio-uring and compio: the kernel can never write into memory
//! the caller has freed, because the caller does not have the buffer while the kernel does. If the
//! future is dropped while the kernel still owns the buffer, the buffer stays in the operation slot
//! until the IRP completes and is then returned to its pool.
//!
//! Returning a buffer to its pool is an atomic bit set (any CPU, IRQL <= DISPATCH_LEVEL), so a
//! completion routine may do it. The pool's memory lives until the [`BufferPool`] handle *and* every
//! buffer taken from it are gone (a reference count), so a buffer may outlive its pool handle.
//!
//! # No bytes from an earlier owner
//!
//! A buffer goes from connection to connection, and its memory keeps whatever the last owner (or
//! the kernel, on that owner's behalf) wrote. No public API lets the next owner see those bytes.
//! The pool does not zero a buffer when it comes back (a `memset` of the whole buffer for every
//! take, i.e. per connection or, with a buffer per message, per message); it tracks instead how
//! many leading bytes were written *in the current ownership* — the buffer's *initialised* length
//! ([`Buffer::initialised`]): 0 at [`BufferPool::take`], raised by every write
//! ([`Buffer::extend_from_slice`], [`Buffer::resize`]) and by a receive's completion (the kernel
//! wrote the `n` bytes it reports, from offset 0). What can expose bytes, and why it cannot expose
//! an earlier owner's:
//!
//! | path | bounded by |
//! |---|---|
//! | `Deref`, `DerefMut` (indexing, `as_ref`, iteration, `copy_from_slice`, ...) | `len()` |
//! | [`Buffer::slice`], [`Slice`]'s `Deref`, a send of a slice | `len()` |
//! | [`Buffer::set_len`] | clamped to `initialised()` (never past it) |
//! | [`Buffer::resize`], [`Buffer::extend_from_slice`] | the bytes they write themselves |
//! | a receive's completion | `len()` becomes the `n` bytes the kernel wrote |
//!
//! and `len() <= initialised() <= capacity()` always holds. The cost is a 4-byte store at take
//! and a compare in `set_len`: steady-state echo still allocates and clears nothing per message.

use crate::atomic_waker::AtomicWaker;
use crate::error::{Result, WskError};
use crate::pool_mem::{self, TAG_BUFFER};
use crate::sync::{AtomicUsize, Ordering};
use core::ops::{Bound, Deref, DerefMut, RangeBounds};
use core::ptr::NonNull;
use nt::*;

const WORD_BITS: usize = usize::BITS as usize;

/// The pool's shared header, followed in the same pool block by the free bitmap (`words` words,
/// bit set = buffer free), the MDL pointers (`count`) and the initialised lengths (`count` `u32`s,
/// see the module documentation; entry `i` is read and written only by the owner of buffer `i`).
#[repr(C)]
struct PoolHeader {
    /// 1 for the [`BufferPool`] handle + 1 per buffer handed out.
    refs: AtomicUsize,
    count: usize,
    size: usize,
    words: usize,
    data: *mut u8,
    /// The task waiting in [`BufferPool::take_when_free`] (at most one: it borrows the handle
    /// mutably), woken by every buffer's return.
    returned: AtomicWaker,
}

impl PoolHeader {
    /// The free bitmap. Derived from the block pointer (not from `&PoolHeader`, whose provenance
    /// covers the header only).
    fn bitmap<'a>(this: NonNull<Self>) -> &'a [AtomicUsize] {
        // SAFETY: the bitmap follows the header in the same block, `words` atomics long, initialised
        // by `BufferPool::new` and alive as long as a reference on the pool is held by the caller.
        unsafe {
            let first = this.as_ptr().add(1).cast::<AtomicUsize>();
            core::slice::from_raw_parts(first, this.as_ref().words)
        }
    }

    /// The MDL pointer array, after the bitmap in the same block.
    fn mdls(this: NonNull<Self>) -> *mut PMDL {
        // SAFETY: inside the block allocated by `new` (header, bitmap, then the MDL array).
        unsafe {
            this.as_ptr()
                .add(1)
                .cast::<AtomicUsize>()
                .add(this.as_ref().words)
                .cast::<PMDL>()
        }
    }

    /// The initialised-length array, after the MDL pointers in the same block (4-byte entries after
    /// 8-byte pointers: aligned). Raw: entries are plain memory, each touched only by its buffer's
    /// owner (ownership passes through the bitmap's AcqRel operations).
    fn initialised(this: NonNull<Self>) -> *mut u32 {
        // SAFETY: inside the block allocated by `new` (header, bitmap, MDL array, then this array).
        unsafe { Self::mdls(this).add(this.as_ref().count).cast::<u32>() }
    }

    /// Bytes of the descriptor block (header, bitmap, MDL pointers, initialised lengths); `None` if
    /// that overflows a `usize` (a count no pool could hold).
    fn block_size(count: usize, words: usize) -> Option<usize> {
        let bitmap = words.checked_mul(core::mem::size_of::<AtomicUsize>())?;
        let mdls = count.checked_mul(core::mem::size_of::<PMDL>())?;
        let initialised = count.checked_mul(core::mem::size_of::<u32>())?;
        core::mem::size_of::<Self>()
            .checked_add(bitmap)?
            .checked_add(mdls)?
            .checked_add(initialised)
    }

    /// Drops one reference; the last one frees the MDLs, the data and the header.
    ///
    /// # Safety
    /// `this` is live and the caller owns one reference, not used afterwards.
    unsafe fn release(this: NonNull<Self>) {
        // SAFETY: the caller owns a reference, so the header is alive for this RMW.
        if unsafe { this.as_ref() }.refs.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // SAFETY: that was the last reference: nobody else can reach the pool any more.
        unsafe { Self::destroy(this, this.as_ref().count) };
    }

    /// Frees the first `built` MDLs, the data block and the header block.
    ///
    /// # Safety
    /// Exclusive access to a header whose first `built` MDLs exist.
    unsafe fn destroy(this: NonNull<Self>, built: usize) {
        // SAFETY: exclusive access (caller's contract); every pointer freed was allocated by `new`.
        unsafe {
            let header = this.as_ref();
            for i in 0..built {
                IoFreeMdl(*Self::mdls(this).add(i));
            }
            if let Some(data) = NonNull::new(header.data) {
                pool_mem::free(data, TAG_BUFFER);
            }
            pool_mem::free(this, TAG_BUFFER);
        }
    }
}

/// A pool of `count` nonpaged buffers of `size` bytes each, with prebuilt MDLs.
///
/// Taking a buffer is O(words of the free bitmap) and never allocates; [`take`](Self::take) on an
/// empty pool is an error value ([`WskError::is_out_of_resources`]), not a wait: a server decides
/// itself whether to shed the connection, retry later, or wait for a buffer to come back
/// ([`take_when_free`](Self::take_when_free)).
///
/// ```
/// # let _session = nt::emu::session();
/// use wsk_async::BufferPool;
/// let pool = BufferPool::new(2, 4096).unwrap();
/// let mut a = pool.take().unwrap();
/// assert_eq!((a.len(), a.capacity()), (0, 4096));
/// a.extend_from_slice(b"hello");
/// assert_eq!(&a[..], b"hello");
/// let _b = pool.take().unwrap();
/// assert!(pool.take().unwrap_err().is_out_of_resources());
/// drop(a); // back to the pool
/// assert!(pool.take().is_ok());
/// ```
pub struct BufferPool {
    header: NonNull<PoolHeader>,
}

// SAFETY: the header is only mutated through atomics; the data of a buffer is accessed only by the
// holder of the `Buffer` that owns that index.
unsafe impl Send for BufferPool {}
// SAFETY: as above.
unsafe impl Sync for BufferPool {}

impl BufferPool {
    /// Allocates `count` buffers of `size` bytes (one nonpaged block for the data, one for the
    /// descriptors) and builds an MDL for each (`IoAllocateMdl` + `MmBuildMdlForNonPagedPool`).
    /// IRQL <= DISPATCH_LEVEL. Fails with `STATUS_INSUFFICIENT_RESOURCES` if any allocation fails
    /// (everything allocated so far is freed) and with `STATUS_INVALID_PARAMETER` for a zero count or
    /// size, a size an MDL cannot describe (`u32` bytes), more than `u32::MAX` buffers, or a count
    /// or total size whose arithmetic would overflow (checked: never a wrapped, undersized block).
    pub fn new(count: usize, size: usize) -> Result<Self> {
        // Both limits also let a `Buffer` keep its index and length in 32 bits (see `Buffer`).
        if count == 0 || size == 0 || size > u32::MAX as usize / 2 || count > u32::MAX as usize {
            return Err(WskError::from_status(STATUS_INVALID_PARAMETER));
        }
        let total = count
            .checked_mul(size)
            .ok_or(WskError::from_status(STATUS_INVALID_PARAMETER))?;
        let words = count.div_ceil(WORD_BITS);
        let block_size = PoolHeader::block_size(count, words).ok_or(WskError::from_status(STATUS_INVALID_PARAMETER))?;
        let header = pool_mem::allocate_bytes(block_size, TAG_BUFFER)
            .ok_or(WskError::NO_RESOURCES)?
            .cast::<PoolHeader>();
        // SAFETY: `header` is a fresh zeroed block of `block_size` bytes, 16-aligned, exclusively ours.
        unsafe {
            header.as_ptr().write(PoolHeader {
                refs: AtomicUsize::new(1),
                count,
                size,
                words,
                data: core::ptr::null_mut(),
                returned: AtomicWaker::new(),
            });
            let bitmap = header.as_ptr().add(1).cast::<AtomicUsize>();
            for w in 0..words {
                let bits_here = (count - w * WORD_BITS).min(WORD_BITS);
                let mask = if bits_here == WORD_BITS {
                    usize::MAX
                } else {
                    (1usize << bits_here) - 1
                };
                bitmap.add(w).write(AtomicUsize::new(mask));
            }
        }
        let Some(data) = pool_mem::allocate_bytes(total, TAG_BUFFER) else {
            // SAFETY: no MDL built yet; the header is exclusively ours.
            unsafe { PoolHeader::destroy(header, 0) };
            return Err(WskError::NO_RESOURCES);
        };
        // SAFETY: exclusive access to the new header; each MDL describes a sub-range of the live
        // nonpaged data block.
        unsafe {
            (*header.as_ptr()).data = data.as_ptr();
            let mdls = PoolHeader::mdls(header);
            for i in 0..count {
                let va = data.as_ptr().add(i * size);
                let mdl = IoAllocateMdl(va.cast(), size as ULONG, FALSE, FALSE, core::ptr::null_mut());
                if mdl.is_null() {
                    PoolHeader::destroy(header, i);
                    return Err(WskError::NO_RESOURCES);
                }
                MmBuildMdlForNonPagedPool(mdl);
                mdls.add(i).write(mdl);
            }
        }
        Ok(Self { header })
    }

    /// Takes a free buffer (empty, `len() == 0`, nothing [initialised](Buffer::initialised): none of
    /// its earlier owners' bytes can be seen through it). Any IRQL <= DISPATCH_LEVEL; never allocates.
    /// Fails with `STATUS_INSUFFICIENT_RESOURCES` when every buffer is in use.
    pub fn take(&self) -> Result<Buffer> {
        // SAFETY: the handle holds a reference.
        let header = unsafe { self.header.as_ref() };
        for (w, word) in PoolHeader::bitmap(self.header).iter().enumerate() {
            let mut bits = word.load(Ordering::Acquire);
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                match word.compare_exchange(bits, bits & !(1 << bit), Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        header.refs.fetch_add(1, Ordering::Relaxed);
                        let index = w * WORD_BITS + bit;
                        // SAFETY: `index < count`; the CAS (Acquire) made buffer `index` ours, after
                        // its last owner's writes to this entry (its drop's Release `fetch_or`).
                        unsafe { PoolHeader::initialised(self.header).add(index).write(0) };
                        return Ok(Buffer {
                            pool: self.header,
                            // `< count <= u32::MAX` (checked by `new`).
                            index: index as u32,
                            len: 0,
                        });
                    }
                    Err(actual) => bits = actual,
                }
            }
        }
        Err(WskError::NO_RESOURCES)
    }

    /// The size of each buffer.
    pub fn buffer_size(&self) -> usize {
        // SAFETY: the handle holds a reference.
        unsafe { self.header.as_ref() }.size
    }

    /// The cell a returning buffer wakes ([`take_when_free`](Self::take_when_free)).
    pub(crate) fn returned(&self) -> &AtomicWaker {
        // SAFETY: the handle holds a reference.
        &unsafe { self.header.as_ref() }.returned
    }

    /// The number of buffers currently free.
    pub fn available(&self) -> usize {
        PoolHeader::bitmap(self.header)
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }
}

impl Drop for BufferPool {
    fn drop(&mut self) {
        // SAFETY: the handle owns one reference and is going away.
        unsafe { PoolHeader::release(self.header) };
    }
}

/// An owned nonpaged buffer from a [`BufferPool`], with its prebuilt MDL. Dereferences to its
/// `len()` valid bytes; `capacity()` is the pool's buffer size. Dropping it returns it to the pool
/// (any IRQL <= DISPATCH_LEVEL). It never exposes an earlier owner's bytes: see the module
/// documentation (`len() <= initialised()`).
///
/// Index and length are 32-bit (a pool has at most `u32::MAX` buffers of at most `u32::MAX / 2`
/// bytes, checked by [`BufferPool::new`]), so a buffer is two words: the futures that carry one, and
/// the tasks that store those futures, stay small.
pub struct Buffer {
    pool: NonNull<PoolHeader>,
    index: u32,
    /// `<= capacity()`, so it fits (every write clamps to the capacity first).
    len: u32,
}

// SAFETY: a buffer exclusively owns its index's data range; the pool header is shared through atomics.
unsafe impl Send for Buffer {}
// SAFETY: `&Buffer` only reads the owned data range and its initialised-length entry (written only
// through `&mut Buffer`).
unsafe impl Sync for Buffer {}

impl Buffer {
    fn header(&self) -> &PoolHeader {
        // SAFETY: a buffer holds a reference on its pool.
        unsafe { self.pool.as_ref() }
    }

    /// The number of valid bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no valid bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer's size (the pool's buffer size).
    pub fn capacity(&self) -> usize {
        self.header().size
    }

    /// Forgets the contents (`len() == 0`).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// How many leading bytes were written while this buffer has been taken (by this owner, or by
    /// the kernel for one of its receives): the most [`set_len`](Self::set_len) can show. 0 after
    /// [`BufferPool::take`]; `len() <= initialised() <= capacity()`.
    pub fn initialised(&self) -> usize {
        // SAFETY: `index < count`; the entry is ours while we own the buffer (see `PoolHeader`).
        unsafe { *PoolHeader::initialised(self.pool).add(self.index as usize) as usize }
    }

    /// Records that the first `n` bytes (`<= capacity()`) hold data of this ownership.
    fn mark_initialised(&mut self, n: usize) {
        if n > self.initialised() {
            // SAFETY: as in `initialised`, with exclusive access through `&mut self`; `n` fits in a
            // `u32` because it is at most the capacity (checked by `BufferPool::new`).
            unsafe { *PoolHeader::initialised(self.pool).add(self.index as usize) = n as u32 };
        }
    }

    /// Sets the number of valid bytes, clamped to [`initialised()`](Self::initialised): it can
    /// bring back bytes written in this ownership (after [`clear`](Self::clear), a shorter receive,
    /// ...) but never show what an earlier owner left in the memory. To grow the buffer over bytes
    /// not written yet, use [`resize`](Self::resize) or [`extend_from_slice`](Self::extend_from_slice).
    ///
    /// ```
    /// # let _session = nt::emu::session();
    /// let pool = wsk_async::BufferPool::new(1, 64).unwrap();
    /// let mut buf = pool.take().unwrap();
    /// buf.extend_from_slice(b"secret");
    /// drop(buf);
    /// let mut buf = pool.take().unwrap(); // the same memory, a new owner
    /// buf.set_len(64);
    /// assert!(buf.is_empty(), "nothing of the earlier owner");
    /// buf.extend_from_slice(b"hi");
    /// buf.clear();
    /// buf.set_len(64);
    /// assert_eq!(&buf[..], b"hi");
    /// ```
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.initialised()) as u32;
    }

    /// Sets the number of valid bytes to `len` (clamped to `capacity()`), like `Vec::resize`: bytes
    /// added past the current `len()` are set to `value`.
    pub fn resize(&mut self, len: usize, value: u8) {
        let (old, len) = (self.len(), len.min(self.capacity()));
        self.mark_initialised(len);
        self.len = len as u32;
        if len > old {
            self[old..].fill(value);
        }
    }

    /// Appends as much of `data` as fits; returns the number of bytes copied.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> usize {
        let start = self.len();
        let n = data.len().min(self.capacity() - start);
        self.mark_initialised(start + n);
        self.len = (start + n) as u32;
        self[start..].copy_from_slice(&data[..n]);
        n
    }

    /// A receive's completion: the kernel wrote the first `n` bytes (clamped to the capacity, which
    /// the MDL describes); they become the valid bytes.
    pub(crate) fn set_received(&mut self, n: usize) {
        let n = n.min(self.capacity());
        self.mark_initialised(n);
        self.len = n as u32;
    }

    /// A view of `range` (relative to the valid bytes) to pass to a send, like tokio-uring's
    /// `IoBuf::slice`: `conn.send_all(buf.slice(..n))`. Bounds are clamped to `len()`.
    ///
    /// ```
    /// # let _session = nt::emu::session();
    /// let pool = wsk_async::BufferPool::new(1, 64).unwrap();
    /// let mut buf = pool.take().unwrap();
    /// buf.extend_from_slice(b"hello world");
    /// let slice = buf.slice(6..);
    /// assert_eq!(&slice[..], b"world");
    /// let buf = slice.into_inner();
    /// assert_eq!(buf.len(), 11);
    /// ```
    pub fn slice(self, range: impl RangeBounds<usize>) -> Slice {
        let begin = match range.start_bound() {
            Bound::Included(&b) => b,
            Bound::Excluded(&b) => b.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.len(),
        };
        // Both bounds end up `<= len() <= capacity()`: they fit in 32 bits.
        let end = end.min(self.len());
        Slice {
            begin: begin.min(end) as u32,
            end: end as u32,
            buffer: self,
        }
    }

    /// The buffer's MDL (built over the whole capacity).
    pub(crate) fn mdl(&self) -> PMDL {
        // SAFETY: `index < count` and the MDL array is initialised and immutable after `new`.
        unsafe { *PoolHeader::mdls(self.pool).add(self.index as usize) }
    }

    fn data_ptr(&self) -> *mut u8 {
        // SAFETY: `index < count`, so the range `[index*size, (index+1)*size)` lies in the data block.
        unsafe { self.header().data.add(self.index as usize * self.header().size) }
    }
}

impl Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the buffer owns `len <= capacity` bytes at `data_ptr`, initialised memory (the pool
        // block is zeroed when allocated) and, since `len <= initialised()`, written in this ownership.
        unsafe { core::slice::from_raw_parts(self.data_ptr(), self.len()) }
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`, with exclusive access through `&mut self`.
        unsafe { core::slice::from_raw_parts_mut(self.data_ptr(), self.len()) }
    }
}

impl core::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Buffer")
            .field("index", &self.index)
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let index = self.index as usize;
        let (w, bit) = (index / WORD_BITS, index % WORD_BITS);
        PoolHeader::bitmap(self.pool)[w].fetch_or(1 << bit, Ordering::AcqRel);
        // After the bit is back (a waiter that registered before this wake finds the bit when it
        // looks again, see `take_when_free`), and while this buffer's reference keeps the header
        // alive. Two uncontended RMWs on the waker cell when nobody waits.
        // SAFETY: the buffer owns one pool reference: the header is alive.
        unsafe { self.pool.as_ref() }.returned.wake();
        // SAFETY: the buffer owns one pool reference and is going away.
        unsafe { PoolHeader::release(self.pool) };
    }
}

/// A range of a [`Buffer`]'s valid bytes, made by [`Buffer::slice`]; what `send` and `send_all` take.
/// A whole buffer converts into a slice of all its valid bytes.
#[derive(Debug)]
pub struct Slice {
    buffer: Buffer,
    /// `begin <= end <= buffer.len()`: 32 bits, like the buffer's own length.
    begin: u32,
    end: u32,
}

impl Slice {
    /// Offset of the first byte in the buffer.
    pub fn begin(&self) -> usize {
        self.begin as usize
    }

    /// Offset one past the last byte in the buffer.
    pub fn end(&self) -> usize {
        self.end as usize
    }

    /// The buffer back, with its valid length unchanged.
    pub fn into_inner(self) -> Buffer {
        self.buffer
    }

    pub(crate) fn buffer(&self) -> &Buffer {
        &self.buffer
    }
}

impl From<Buffer> for Slice {
    fn from(buffer: Buffer) -> Self {
        let end = buffer.len;
        Slice { buffer, begin: 0, end }
    }
}

impl Deref for Slice {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buffer[self.begin()..self.end()]
    }
}

#[cfg(all(test, not(loom), not(target_os = "windows")))]
mod tests {
    use super::*;
    use std::format;

    const SIZE: usize = 64;
    const SECRET: u8 = 0xA5;

    /// A pool of one buffer whose memory holds the previous owner's `SECRET`s, and that buffer,
    /// taken again.
    fn taken_again(pool: &BufferPool) -> Buffer {
        let mut first = pool.take().unwrap();
        assert_eq!(first.extend_from_slice(&[SECRET; SIZE]), SIZE);
        let index = first.index;
        drop(first);
        let buf = pool.take().unwrap();
        assert_eq!(buf.index, index, "the same memory");
        buf
    }

    /// Every public way to look at a buffer's bytes, after the length-changing ones.
    #[test]
    fn a_buffer_taken_again_shows_nothing_of_its_previous_owner() {
        let _session = nt::emu::session();
        let pool = BufferPool::new(1, SIZE).unwrap();
        let mut buf = taken_again(&pool);
        assert!(buf.is_empty());
        buf.set_len(SIZE);
        assert_eq!(buf.len(), 0, "set_len cannot reach bytes this owner did not write");
        assert!(buf.iter().all(|&b| b != SECRET));
        assert!((*buf).is_empty() && buf.as_mut().is_empty());
        let slice = buf.slice(..SIZE);
        assert_eq!((slice.begin(), slice.end(), slice.len()), (0, 0, 0));
        let mut buf = slice.into_inner();
        let whole = Slice::from(buf);
        assert!(whole.is_empty());
        buf = whole.into_inner();
        // Bytes this owner writes can be shown again; nothing past them.
        buf.extend_from_slice(b"mine");
        buf.clear();
        buf.set_len(SIZE);
        assert_eq!(&buf[..], b"mine");
        assert!(!format!("{buf:?}").contains("165"), "Debug shows no data");
        assert_eq!(&buf.slice(..SIZE)[..], b"mine");
    }

    /// `resize` writes every byte it adds; `initialised` follows the writes of this ownership only.
    #[test]
    fn resize_and_receives_raise_the_initialised_length_of_this_ownership_only() {
        let _session = nt::emu::session();
        let pool = BufferPool::new(1, SIZE).unwrap();
        let mut buf = taken_again(&pool);
        assert_eq!(buf.initialised(), 0);
        buf.resize(8, 0);
        assert_eq!((&buf[..], buf.initialised()), (&[0u8; 8][..], 8));
        buf.resize(2, 7);
        assert_eq!(
            (&buf[..], buf.initialised()),
            (&[0u8; 2][..], 8),
            "shrinking keeps what was written"
        );
        buf.resize(4, 7);
        assert_eq!(&buf[..], &[0, 0, 7, 7]);
        buf.resize(SIZE * 2, 1);
        assert_eq!((buf.len(), buf.initialised()), (SIZE, SIZE), "clamped to the capacity");
        assert!(buf.iter().all(|&b| b != SECRET));
        // A receive of 3 bytes: the kernel wrote [0, 3); what this owner wrote after stays visible.
        buf.set_received(3);
        assert_eq!((buf.len(), buf.initialised()), (3, SIZE));
        buf.set_received(usize::MAX);
        assert_eq!(buf.len(), SIZE, "a count past the MDL is clamped");
        drop(buf);
        let buf = pool.take().unwrap();
        assert_eq!(buf.initialised(), 0, "a new ownership starts with nothing");
    }
}

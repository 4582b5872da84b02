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

use crate::error::{Result, WskError};
use crate::pool_mem::{self, TAG_BUFFER};
use crate::sync::{AtomicUsize, Ordering};
use core::ops::{Bound, Deref, DerefMut, RangeBounds};
use core::ptr::NonNull;
use nt::*;

const WORD_BITS: usize = usize::BITS as usize;

/// The pool's shared header, followed in the same pool block by the free bitmap (`words` words,
/// bit set = buffer free) and the MDL pointers (`count`).
#[repr(C)]
struct PoolHeader {
    /// 1 for the [`BufferPool`] handle + 1 per buffer handed out.
    refs: AtomicUsize,
    count: usize,
    size: usize,
    words: usize,
    data: *mut u8,
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

    /// Bytes of the descriptor block (header, bitmap, MDL pointers); `None` if that overflows a
    /// `usize` (a count no pool could hold).
    fn block_size(count: usize, words: usize) -> Option<usize> {
        let bitmap = words.checked_mul(core::mem::size_of::<AtomicUsize>())?;
        let mdls = count.checked_mul(core::mem::size_of::<PMDL>())?;
        core::mem::size_of::<Self>().checked_add(bitmap)?.checked_add(mdls)
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
/// Taking a buffer is O(words of the free bitmap) and never allocates; an empty pool is an error
/// value ([`WskError::is_out_of_resources`]), not a wait: a server decides itself whether to shed
/// the connection or retry later.
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

    /// Takes a free buffer (empty, `len() == 0`). Any IRQL <= DISPATCH_LEVEL; never allocates.
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
                        return Ok(Buffer {
                            pool: self.header,
                            // `< count <= u32::MAX` (checked by `new`).
                            index: (w * WORD_BITS + bit) as u32,
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
/// (any IRQL <= DISPATCH_LEVEL).
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
// SAFETY: `&Buffer` only reads the owned data range.
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

    /// Sets the number of valid bytes, clamped to `capacity()`. The bytes are always initialised
    /// (pool memory is zeroed when the pool is created), so any length is sound.
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.capacity()) as u32;
    }

    /// Appends as much of `data` as fits; returns the number of bytes copied.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> usize {
        let start = self.len();
        let n = data.len().min(self.capacity() - start);
        self.set_len(start + n);
        self[start..].copy_from_slice(&data[..n]);
        n
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
        // SAFETY: the buffer owns `len <= capacity` initialised bytes at `data_ptr`.
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

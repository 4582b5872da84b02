//! Access to the client's data through a `WSK_BUF`: `Length` bytes starting `Offset` bytes into the
//! buffer an MDL chain describes, read and written through each MDL's system address
//! (`MappedSystemVa`, set by `MmBuildMdlForNonPagedPool`), as the provider does in the kernel.
//!
//! The `WSK_BUF` itself is read in the call and read again ([`Buf::reread`]) each time a pending
//! operation moves data and when its IRP completes: a client must keep the structure valid and
//! unchanged until then, not only the MDLs and memory it describes. Invented, the harsher reading
//! (the WskSend / WskReceive pages say only that the IRP completes the operation; a provider that
//! queues the request may keep the caller's pointer): a client that keeps its `WSK_BUF` on a stack
//! it leaves while the IRP pends, or reuses it, is a [`Rule::WskBufChangedWhilePending`], or a use
//! after free (under Miri, or [`Rule::UseAfterFree`] for a `WSK_BUF` in freed pool).

use crate::MmGetSystemAddressForNonPagedMdl;
use crate::emu::{Rule, violation};
use crate::types::*;
use crate::wsk::{PWSK_BUF, WSK_BUF};

/// A copy of the caller's `WSK_BUF`, and where the caller keeps it (read again: see the module
/// documentation).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Buf(pub WSK_BUF, pub PWSK_BUF);

// SAFETY: the `WSK_BUF`, the MDL chain and the memory it describes belong to the pending IRP's
// operation; the client must not touch them until the IRP completes, so the provider may use them
// from any thread.
unsafe impl Send for Buf {}

impl Buf {
    /// Reads the caller's `WSK_BUF` again (a pending operation about to move data, or to complete):
    /// it must still be the one the call read. Otherwise a [`Rule::WskBufChangedWhilePending`] (or a
    /// [`Rule::UseAfterFree`] if it lies in freed pool), and in recording mode the operation
    /// completes with STATUS_INVALID_PARAMETER, moving nothing more.
    ///
    /// # Safety
    /// The caller's `WSK_BUF` is readable: the client's contract until the IRP completes (a client
    /// that freed it makes this a use after free, which is what Miri then reports).
    pub(crate) unsafe fn reread(&self, function: &str) -> Result<(), NTSTATUS> {
        // SAFETY: caller's contract; the caller's pointer was read in the call, so it is aligned.
        let now = unsafe { self.1.read() };
        if now.Mdl == self.0.Mdl && now.Offset == self.0.Offset && now.Length == self.0.Length {
            return Ok(());
        }
        if !crate::host::freed_objects::storage_is_freed(self.1.addr(), function, "WSK_BUF") {
            violation(
                Rule::WskBufChangedWhilePending,
                &format_args!(
                    "{function}'s WSK_BUF at {:p} was {{ Mdl {:p}, Offset {}, Length {} }} in the call and is {{ Mdl {:p}, Offset {}, Length {} }} while the IRP pends",
                    self.1, self.0.Mdl, self.0.Offset, self.0.Length, now.Mdl, now.Offset, now.Length
                ),
                None,
            );
        }
        Err(STATUS_INVALID_PARAMETER)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.Length
    }

    /// Checks that the MDL chain covers `Offset + Length` bytes and that every MDL is mapped. A chain
    /// too short is a [`Rule::WskBufBeyondMdl`]: Windows' provider reads or writes past the MDL and
    /// bug-checks (Wine's netio test, which also runs on Windows, says so for a send); in recording
    /// mode the call fails with STATUS_INVALID_PARAMETER.
    ///
    /// # Safety
    /// `Mdl` is NULL or the head of a chain of live MDLs.
    pub(crate) unsafe fn validate(&self) -> Result<(), NTSTATUS> {
        if self.0.Length == 0 {
            return Ok(());
        }
        let want = self.0.Offset as usize + self.0.Length;
        let mut need = want;
        let mut mdl = self.0.Mdl;
        while !mdl.is_null() && need > 0 {
            // SAFETY: forwarded from the caller's contract.
            unsafe {
                if MmGetSystemAddressForNonPagedMdl(mdl).is_null() {
                    return Err(STATUS_INSUFFICIENT_RESOURCES);
                }
                need = need.saturating_sub((*mdl).ByteCount as usize);
                mdl = (*mdl).Next;
            }
        }
        if need == 0 {
            return Ok(());
        }
        violation(
            Rule::WskBufBeyondMdl,
            &format_args!(
                "WSK_BUF {{ Offset {}, Length {} }} needs {want} bytes, its MDL chain at {:p} describes {}",
                self.0.Offset,
                self.0.Length,
                self.0.Mdl,
                want - need
            ),
            None,
        );
        Err(STATUS_INVALID_PARAMETER)
    }

    /// The contiguous piece of the buffer that starts `pos` bytes into it, or None at the end.
    ///
    /// # Safety
    /// The buffer was validated and its MDLs are still live (the IRP has not completed).
    pub(crate) unsafe fn segment(&self, pos: usize) -> Option<(*mut u8, usize)> {
        if pos >= self.0.Length {
            return None;
        }
        let mut skip = self.0.Offset as usize + pos;
        let mut mdl = self.0.Mdl;
        while !mdl.is_null() {
            // SAFETY: forwarded from the caller's contract.
            unsafe {
                let count = (*mdl).ByteCount as usize;
                if skip < count {
                    let base = MmGetSystemAddressForNonPagedMdl(mdl) as *mut u8;
                    let len = (count - skip).min(self.0.Length - pos);
                    return Some((base.add(skip), len));
                }
                skip -= count;
                mdl = (*mdl).Next;
            }
        }
        None
    }

    /// A copy of the whole buffer (a datagram to send).
    ///
    /// # Safety
    /// As for [`segment`](Self::segment).
    pub(crate) unsafe fn gather(&self) -> Vec<u8> {
        let mut data = Vec::with_capacity(self.len());
        // SAFETY: forwarded from the caller's contract.
        while let Some((ptr, len)) = unsafe { self.segment(data.len()) } {
            // SAFETY: the segment lies inside the client's locked buffer.
            data.extend_from_slice(unsafe { core::slice::from_raw_parts(ptr, len) });
        }
        data
    }

    /// Copies `data` to the start of the buffer (at most its length); returns the bytes copied.
    ///
    /// # Safety
    /// As for [`segment`](Self::segment), and the client does not touch the buffer while its IRP
    /// pends.
    pub(crate) unsafe fn scatter(&self, data: &[u8]) -> usize {
        let mut done = 0;
        while done < data.len() {
            // SAFETY: forwarded from the caller's contract.
            let Some((ptr, len)) = (unsafe { self.segment(done) }) else {
                break;
            };
            let n = len.min(data.len() - done);
            // SAFETY: `ptr..ptr+n` lies inside the client's locked buffer; `data` is ours.
            unsafe { core::ptr::copy_nonoverlapping(data.as_ptr().add(done), ptr, n) };
            done += n;
        }
        done
    }
}

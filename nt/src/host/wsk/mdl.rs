//! Access to the client's data through a `WSK_BUF`: `Length` bytes starting `Offset` bytes into the
//! buffer an MDL chain describes, read and written through each MDL's system address
//! (`MappedSystemVa`, set by `MmBuildMdlForNonPagedPool`), as the provider does in the kernel.

use crate::MmGetSystemAddressForNonPagedMdl;
use crate::emu::{Rule, violation};
use crate::types::*;
use crate::wsk::WSK_BUF;

/// A copy of the caller's `WSK_BUF` (the structure itself need not outlive the call).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Buf(pub WSK_BUF);

// SAFETY: the MDL chain and the memory it describes belong to the pending IRP's operation; the
// client must not touch them until the IRP completes, so the provider may use them from any thread.
unsafe impl Send for Buf {}

impl Buf {
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

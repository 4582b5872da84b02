//! `kdprint!`: formatted debug output without allocation, for kernel and host alike.

use core::fmt;

/// A fixed-size line buffer that truncates instead of failing, so formatting can never error out or
/// allocate. Used by [`kdprint!`](crate::kdprint).
pub struct LineBuffer<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> LineBuffer<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self { bytes: [0; N], len: 0 }
    }

    /// The text written so far, cut at a character boundary if it was truncated.
    pub fn as_str(&self) -> &str {
        match core::str::from_utf8(&self.bytes[..self.len]) {
            Ok(s) => s,
            // Truncation can split a multi-byte character; keep the valid prefix.
            Err(e) => core::str::from_utf8(&self.bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl<const N: usize> Default for LineBuffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for LineBuffer<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let take = s.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// `kdprint!(level, "format", args...)`: formats into a 256-byte stack buffer (longer lines are
/// truncated) and hands the line to [`debug_print`](crate::debug_print): `DbgPrintEx` in the kernel,
/// the `log` crate on the host.
#[macro_export]
macro_rules! kdprint {
    ($level:expr, $($arg:tt)*) => {{
        let mut line = $crate::LineBuffer::<256>::new();
        let _ = ::core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        $crate::debug_print($level, line.as_str());
    }};
}

#[cfg(test)]
mod tests {
    use super::LineBuffer;
    use core::fmt::Write;

    #[test]
    fn long_lines_are_truncated_at_a_character_boundary() {
        let mut line = LineBuffer::<4>::new();
        write!(line, "ab\u{e9}\u{e9}").unwrap();
        assert_eq!(line.as_str(), "ab\u{e9}");
        write!(line, "more").unwrap();
        assert_eq!(line.as_str(), "ab\u{e9}");
    }
}

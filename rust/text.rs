// SPDX-License-Identifier: GPL-2.0

//! Bounded text for messages and sysfs output, without allocation.

/// A bounded text buffer for messages and sysfs output; output past the end is dropped.
pub(crate) struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    /// An empty buffer.
    pub(crate) fn new() -> Self {
        Text {
            buf: [0; N],
            len: 0,
        }
    }

    /// The text written so far (cut at a character boundary).
    pub(crate) fn as_str(&self) -> &str {
        match core::str::from_utf8(&self.buf[..self.len]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl<const N: usize> core::fmt::Write for Text<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// At most the first `max` bytes of `text`, cut at a character boundary.
pub(crate) fn prefix(text: &str, max: usize) -> &str {
    let mut n = text.len().min(max);
    while n > 0 && !text.is_char_boundary(n) {
        n -= 1;
    }
    text.get(..n).unwrap_or("")
}

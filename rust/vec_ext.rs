// SPDX-License-Identifier: GPL-2.0

//! The few `Vec` operations the 6.12 kernel crate lacks (`pop`, `truncate`, `insert`, ...),
//! for vectors of plain `Copy` data, which have no destructors to run.

use kernel::alloc::{AllocError, Allocator, Vec};

/// Extra operations on `Vec<T, A>` for `T: Copy`.
pub(crate) trait VecExt<T: Copy> {
    /// Shortens the vector to `len` elements (no-op if it is not longer).
    fn truncate(&mut self, len: usize);
    /// Removes every element.
    fn clear(&mut self) {
        self.truncate(0);
    }
    /// Removes and returns the last element.
    fn pop(&mut self) -> Option<T>;
    /// Inserts `v` at `i` (at most the length), shifting later elements up.
    fn insert(&mut self, i: usize, v: T) -> Result<(), AllocError>;
    /// Removes element `i`, moving the last element into its place.
    fn swap_remove(&mut self, i: usize) -> Option<T>;
    /// Removes elements `start..end` (clamped to the length), shifting later ones down.
    fn drain_range(&mut self, start: usize, end: usize);
    /// Inserts `s` at `i` (at most the length), shifting later elements up.
    fn insert_slice(&mut self, i: usize, s: &[T]) -> Result<(), AllocError>;
}

impl<T: Copy, A: Allocator> VecExt<T> for Vec<T, A> {
    fn truncate(&mut self, len: usize) {
        if len < self.len() {
            // SAFETY: `len` is below the current length, hence within capacity, and the
            // elements past it need no drop because `T: Copy`.
            unsafe { self.set_len(len) };
        }
    }

    fn pop(&mut self) -> Option<T> {
        let last = *self.last()?;
        self.truncate(self.len() - 1);
        Some(last)
    }

    fn insert(&mut self, i: usize, v: T) -> Result<(), AllocError> {
        self.push(v, kernel::alloc::flags::GFP_KERNEL)?;
        if let Some(tail) = self.get_mut(i..) {
            tail.rotate_right(1);
        }
        Ok(())
    }

    fn drain_range(&mut self, start: usize, end: usize) {
        let len = self.len();
        let end = end.min(len);
        if start >= end {
            return;
        }
        self.copy_within(end..len, start);
        self.truncate(len - (end - start));
    }

    fn insert_slice(&mut self, i: usize, s: &[T]) -> Result<(), AllocError> {
        let len = self.len();
        let i = i.min(len);
        self.extend_from_slice(s, kernel::alloc::flags::GFP_KERNEL)?;
        self.copy_within(i..len, i + s.len());
        self[i..i + s.len()].copy_from_slice(s);
        Ok(())
    }

    fn swap_remove(&mut self, i: usize) -> Option<T> {
        let last = *self.last()?;
        let v = *self.get(i)?;
        self[i] = last;
        self.truncate(self.len() - 1);
        Some(v)
    }
}

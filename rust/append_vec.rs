// SPDX-License-Identifier: GPL-2.0

//! [`AppendVec`]: a vector of at most `N` elements that grows through a shared reference and
//! never shrinks or moves an element, so readers take a slice of it without a lock while a
//! writer appends. The members of a mounted filesystem live in two of them: a member added
//! while mounted (`device_add`) appears to every reader at once, and an index below a length
//! once read stays valid for as long as the vector lives.

use core::{
    cell::UnsafeCell,
    mem::MaybeUninit,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};
use kernel::{alloc::KVec, prelude::*};

/// Up to `N` elements, appended through `&self`, read as a slice.
///
/// # Invariants
///
/// `slots` has `N` elements and is never resized (its buffer never moves). Slots `0..len` are
/// initialised and never written again until the vector is dropped; a slot is written only by
/// the one caller of [`AppendVec::push`] that set `busy`, before `len` covers it.
pub(crate) struct AppendVec<T, const N: usize> {
    /// On the heap: the vector is small to move and to keep in a stack frame.
    slots: KVec<UnsafeCell<MaybeUninit<T>>>,
    len: AtomicUsize,
    busy: AtomicBool,
}

// SAFETY: The vector owns its elements; sending it sends them.
unsafe impl<T: Send, const N: usize> Send for AppendVec<T, N> {}
// SAFETY: Shared access gives out `&T` (so `T: Sync`) and lets one thread at a time move a `T`
// in (so `T: Send`); the slot being written is not visible to readers (not below `len`).
unsafe impl<T: Send + Sync, const N: usize> Sync for AppendVec<T, N> {}

impl<T, const N: usize> AppendVec<T, N> {
    /// An empty vector, with room for `N` elements allocated now.
    pub(crate) fn new() -> Result<Self> {
        let mut slots = KVec::with_capacity(N, GFP_KERNEL)?;
        for _ in 0..N {
            slots.push(UnsafeCell::new(MaybeUninit::uninit()), GFP_KERNEL)?;
        }
        // INVARIANT: `N` slots, none initialised, and `len` is 0.
        Ok(AppendVec {
            slots,
            len: AtomicUsize::new(0),
            busy: AtomicBool::new(false),
        })
    }

    /// Appends `v`; gives it back if the vector is full or another push is under way.
    pub(crate) fn push(&self, v: T) -> Result<usize, T> {
        if self.busy.swap(true, Ordering::Acquire) {
            return Err(v);
        }
        let n = self.len.load(Ordering::Relaxed);
        let Some(slot) = self.slots.get(n) else {
            self.busy.store(false, Ordering::Release);
            return Err(v);
        };
        // SAFETY: `busy` makes this the only writer, and slot `n` is not below `len`, so no
        // reader has a reference to it (type invariant).
        unsafe { (*slot.get()).write(v) };
        // INVARIANT: slot `n` is initialised before `len` covers it (Release pairs with the
        // readers' Acquire).
        self.len.store(n + 1, Ordering::Release);
        self.busy.store(false, Ordering::Release);
        Ok(n)
    }

    /// The elements appended so far.
    pub(crate) fn as_slice(&self) -> &[T] {
        let len = self.len.load(Ordering::Acquire);
        // SAFETY: Slots `0..len` are initialised and not written while the vector lives (type
        // invariant; `len <= N`, the number of slots); `UnsafeCell<MaybeUninit<T>>` has the
        // layout of `T`, and the slots are contiguous in the vector's buffer.
        unsafe { core::slice::from_raw_parts(self.slots.as_ptr().cast::<T>(), len) }
    }
}

impl<T, const N: usize> core::ops::Deref for AppendVec<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T, const N: usize> Drop for AppendVec<T, N> {
    fn drop(&mut self) {
        let len = *self.len.get_mut();
        for slot in self.slots.iter_mut().take(len) {
            // SAFETY: Slots below `len` are initialised (type invariant) and dropped once,
            // here; nothing can read them after `drop`.
            unsafe { slot.get_mut().assume_init_drop() };
        }
    }
}

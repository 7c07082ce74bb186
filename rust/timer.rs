// SPDX-License-Identifier: GPL-2.0

//! A delayed call on the module's workqueue: [`Timer`], over `c/bdev.c`'s `bucketfs_timer`
//! (a `delayed_work`). The journal's flush interval (`transaction.rs`).
//!
//! C header: [`include/bucketfs_glue.h`](../include/bucketfs_glue.h)

use crate::glue as bindings;
use core::ptr::NonNull;
use kernel::{ffi::c_void, prelude::*};

/// What a [`Timer`] calls.
///
/// # Safety
///
/// An implementer must drop every [`Timer`] made for a value before the value goes (or moves):
/// the timer keeps its address and calls [`TimerTarget::fire`] through it until it is dropped.
pub(crate) unsafe trait TimerTarget: Sync {
    /// Runs on the workqueue when the timer fires.
    fn fire(&self);
}

/// A delayed call of `T::fire` on one target; dropping it cancels a queued call and waits for a
/// running one.
///
/// # Invariants
///
/// `ptr` is the `bucketfs_timer` that `bucketfs_timer_new` returned, not freed yet; its
/// context is a `&T` that outlives the timer (the [`TimerTarget`] contract).
pub(crate) struct Timer {
    ptr: NonNull<bindings::bucketfs_timer>,
}

// SAFETY: The C timer may be armed from any thread and is freed once, in `drop`; its target is
// `Sync`.
unsafe impl Send for Timer {}
// SAFETY: `arm` is safe to call from several threads at once (`queue_delayed_work`).
unsafe impl Sync for Timer {}

/// # Safety
///
/// `ctx` is the `&T` a [`Timer`] was made with, alive (the [`TimerTarget`] contract).
unsafe extern "C" fn fire<T: TimerTarget>(ctx: *mut c_void) {
    // SAFETY: By this function's safety contract, `ctx` points to a live `T`.
    let target = unsafe { &*ctx.cast::<T>() };
    target.fire();
}

impl Timer {
    /// A timer calling `target.fire()` when armed and due.
    pub(crate) fn new<T: TimerTarget>(target: &T) -> Result<Timer> {
        let ctx = (target as *const T).cast_mut().cast::<c_void>();
        // SAFETY: `fire::<T>` has the signature the C side calls, and `ctx` is a `&T` that,
        // by the `TimerTarget` contract, outlives the timer this returns.
        let ptr = unsafe { bindings::bucketfs_timer_new(Some(fire::<T>), ctx) };
        Ok(Timer {
            ptr: NonNull::new(ptr).ok_or(ENOMEM)?,
        })
    }

    /// Calls the target `ms` milliseconds from now, unless a call is queued already.
    pub(crate) fn arm(&self, ms: u32) {
        // SAFETY: By the type invariant `ptr` is a live timer.
        unsafe { bindings::bucketfs_timer_arm(self.ptr.as_ptr(), ms) };
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `ptr` is a live timer; it is freed here, once.
        unsafe { bindings::bucketfs_timer_free(self.ptr.as_ptr()) };
    }
}

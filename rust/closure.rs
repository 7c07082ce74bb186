// SPDX-License-Identifier: GPL-2.0

//! Closures parked on wait lists, over `lib/closure.c`.
//!
//! A [`WaitList`] is a lock-free list of parked closures. [`WaitList::wake_all`] releases every
//! closure on it, in the order they parked. A [`StackClosure`] lives on the waiting task's stack
//! and is bound to one wait list for its whole life.
//!
//! [`StackClosure::park`] puts the closure on its list and returns a [`Parked`] guard, the only
//! way to sleep. The C API has no way to take one closure off a list: leaving means waking the
//! whole list. So dropping a [`Parked`] guard (or the [`StackClosure`] itself) wakes the list and
//! waits for the wake to reach this closure before the stack frame can end. bucketfs's waiters
//! re-check their condition on every wake, so the extra wakes this causes are harmless.
//!
//! Wakes are not latched: a wake with nobody parked is lost. Waiters therefore park first, then
//! re-check their condition, then sleep; a wake between the park and the sleep makes the sleep
//! return at once.
//!
//! C header: [`include/linux/closure.h`](srctree/include/linux/closure.h)

use crate::glue as bindings;
use core::pin::Pin;
use kernel::{
    error::code::EINTR,
    ffi::c_long,
    prelude::*,
    time::{msecs_to_jiffies, Jiffies},
    types::Opaque,
};

/// A list of parked closures (`struct closure_waitlist`).
///
/// # Invariants
///
/// `inner` is a valid `struct closure_waitlist`; every closure on it is a [`StackClosure`] that
/// borrows this list, so the list outlives all of them.
#[repr(transparent)]
pub(crate) struct WaitList {
    inner: Opaque<bindings::closure_waitlist>,
}

// SAFETY: A wait list is an `llist_head`; adding to it and taking everything off it are lock-free
// atomic operations that any thread may do.
unsafe impl Send for WaitList {}

// SAFETY: See `Send`: all operations through `&WaitList` are atomic.
unsafe impl Sync for WaitList {}

impl WaitList {
    /// Creates an empty wait list.
    pub(crate) const fn new() -> Self {
        // SAFETY: `struct closure_waitlist` is an `llist_head`, plain data whose all-zero value
        // is the empty list (`LLIST_HEAD_INIT`).
        Self {
            inner: Opaque::new(unsafe { core::mem::zeroed() }),
        }
    }

    /// Releases every closure parked on the list, in the order they parked.
    pub(crate) fn wake_all(&self) {
        // SAFETY: `self.inner` is a valid wait list by the type invariant.
        unsafe { bindings::bucketfs_waitlist_wake_all(self.inner.get()) }
    }

    /// Returns whether no closure is parked on the list right now.
    pub(crate) fn is_empty(&self) -> bool {
        // SAFETY: `self.inner` is a valid wait list by the type invariant.
        unsafe { bindings::bucketfs_waitlist_is_empty(self.inner.get()) }
    }
}

impl Default for WaitList {
    fn default() -> Self {
        Self::new()
    }
}

/// How long [`Parked::sync_timeout`] may sleep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// Until released (or killed, for a killable sleep).
    Never,
    /// At most this many jiffies.
    Jiffies(Jiffies),
}

impl Timeout {
    /// At most `ms` milliseconds, rounded up to whole jiffies.
    pub(crate) fn ms(ms: u32) -> Self {
        Timeout::Jiffies(msecs_to_jiffies(ms))
    }

    fn as_c(self) -> c_long {
        match self {
            // `MAX_SCHEDULE_TIMEOUT` is `LONG_MAX`.
            Timeout::Never => c_long::MAX,
            Timeout::Jiffies(j) => c_long::try_from(j).unwrap_or(c_long::MAX - 1),
        }
    }
}

/// A closure was released by a wake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Woken {
    /// Module-wide sequence number of the release, taken in the waker's context: one
    /// [`WaitList::wake_all`] hands its waiters increasing tickets in the order they parked.
    /// Zero if the closure was never parked.
    pub(crate) ticket: u64,
}

/// Why [`Parked::sync_timeout`] returned without a wake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interrupted {
    /// The timeout passed.
    TimedOut,
    /// The task got a fatal signal during a killable sleep.
    Killed,
}

/// A closure on the waiting task's stack, bound to one [`WaitList`].
///
/// Create it with [`kernel::stack_pin_init!`] and [`StackClosure::new`].
///
/// # Invariants
///
/// `cl` was initialised by `closure_init_stack()`. Whenever `cl` is parked, it is parked on
/// `list`. It is never parked once its destructor has run.
#[pin_data(PinnedDrop)]
pub(crate) struct StackClosure<'list> {
    #[pin]
    cl: Opaque<bindings::closure>,
    list: &'list WaitList,
}

impl<'list> StackClosure<'list> {
    /// Creates a closure that will park on `list`.
    pub(crate) fn new(list: &'list WaitList) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid for writes of a `struct closure`, which
            // `closure_init_stack()` fully initialises.
            cl <- Opaque::ffi_init(|slot| unsafe { bindings::bucketfs_closure_init_stack(slot) }),
            list,
        })
    }

    /// Parks the closure on its wait list; the returned guard sleeps until a wake releases it.
    pub(crate) fn park<'c>(mut self: Pin<&'c mut Self>) -> Parked<'c, 'list> {
        // A guard that was leaked with `mem::forget` left the closure parked: leave first, as
        // `closure_wait()` refuses a closure that is already on a list.
        self.as_mut().leave();
        // SAFETY: `cl` is initialised and not parked (we just left), so `closure_wait()` may add
        // it to `list`, which is valid and outlives the closure by the type invariant.
        let parked =
            unsafe { bindings::bucketfs_closure_park(self.cl.get(), self.list.inner.get()) };
        if !parked {
            // Unreachable: `leave()` just took the closure off every list.
            pr_warn!("closure was still parked after leaving its wait list\n");
        }
        Parked { closure: self }
    }

    /// Returns whether the closure is on its wait list right now.
    pub(crate) fn is_parked(&self) -> bool {
        // SAFETY: `cl` is initialised by the type invariant; this is an atomic read.
        unsafe { bindings::bucketfs_closure_is_parked(self.cl.get()) }
    }

    /// Sleeps until released, as [`Parked::sync_timeout`].
    fn sync(&self, timeout: Timeout, killable: bool) -> Result<Woken, Interrupted> {
        let mut ticket = 0u64;
        // SAFETY: `cl` is initialised and pinned, and only its owner (us, through `&mut` access
        // held by the caller) syncs it. `ticket` is valid for writes.
        let ret = unsafe {
            bindings::bucketfs_closure_sync(self.cl.get(), timeout.as_c(), killable, &mut ticket)
        };
        match ret {
            0 => Ok(Woken { ticket }),
            r if r == EINTR.to_errno() => Err(Interrupted::Killed),
            _ => Err(Interrupted::TimedOut),
        }
    }

    /// Takes the closure off its wait list if it is on it, by waking the list.
    fn leave(self: Pin<&mut Self>) {
        if self.is_parked() {
            self.list.wake_all();
        }
        // Even when no longer parked, a wake may still be in flight (the waker took the list
        // but has not released us yet), or may have released us before we slept: this sync
        // returns once the release has fully happened, and at once if we were never parked.
        let _ = self.sync(Timeout::Never, false);
    }
}

#[pinned_drop]
impl PinnedDrop for StackClosure<'_> {
    fn drop(self: Pin<&mut Self>) {
        // The frame holding `cl` is about to end: it must not stay on the list.
        self.leave();
    }
}

/// A [`StackClosure`] parked on its wait list.
///
/// Dropping the guard without a successful sync takes the closure off the list by waking the
/// whole list.
pub(crate) struct Parked<'c, 'list> {
    closure: Pin<&'c mut StackClosure<'list>>,
}

impl<'c, 'list> Parked<'c, 'list> {
    /// Sleeps uninterruptibly until a wake releases the closure.
    #[allow(dead_code, reason = "used by the KUnit tests")]
    pub(crate) fn sync(self) -> Woken {
        match self.sync_timeout(Timeout::Never, false) {
            Ok(woken) => woken,
            // Without a timeout and without `killable`, the C side can only return once released.
            Err((parked, _)) => parked.sync(),
        }
    }

    /// Sleeps until a wake releases the closure, `timeout` passes or, if `killable`, the task
    /// gets a fatal signal. On a timeout or a signal the closure is still parked and the guard is
    /// handed back, to sync again or to drop.
    pub(crate) fn sync_timeout(
        self,
        timeout: Timeout,
        killable: bool,
    ) -> Result<Woken, (Self, Interrupted)> {
        match self.closure.sync(timeout, killable) {
            Ok(woken) => {
                // Released: the closure is off the list, so there is nothing for `drop` to do.
                core::mem::forget(self);
                Ok(woken)
            }
            Err(why) => Err((self, why)),
        }
    }
}

impl Drop for Parked<'_, '_> {
    fn drop(&mut self) {
        self.closure.as_mut().leave();
    }
}

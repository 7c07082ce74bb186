// SPDX-License-Identifier: GPL-2.0

//! Closures parked on wait lists.
//!
//! This module lets Rust code wait on the kernel's [`struct closure_waitlist`] with a
//! [`struct closure`] that lives on the waiting task's stack:
//!
//! - a [`WaitList`] is a lock-free list of parked closures; [`WaitList::wake_all`] releases
//!   every closure on it, in the order they parked;
//! - a [`StackClosure`] is bound to one wait list for its whole life;
//! - [`StackClosure::park`] puts the closure on its list and returns a [`Parked`] guard, the only
//!   way to sleep: [`Parked::sync`] and [`Parked::sync_timeout`] (with a timeout, and killable
//!   if asked) sleep until a wake releases the closure.
//!
//! Wakes are not latched: a wake with nobody parked is lost. A waiter therefore parks first,
//! then re-checks its condition, then sleeps; a wake that comes between the park and the sleep
//! makes the sleep return at once. Wakers change the condition first, then wake.
//!
//! The C API has no way to take one closure off a list: leaving means waking the whole list.
//! So dropping a [`Parked`] guard that was not released (or the [`StackClosure`] itself while
//! parked) wakes the list and waits for that wake to reach this closure, before the memory of
//! the closure can be reused. Every other waiter on the list sees a spurious wake, so waiters
//! must re-check their condition after every wake (they must anyway, as above).
//!
//! # Pinning
//!
//! - [`WaitList`] need not be pinned. Its `struct closure_waitlist` is an `llist_head`, a
//!   single pointer to the first parked closure; no closure points back at the head, so moving
//!   the head moves the whole list. In practice it cannot move while a closure is parked on it
//!   anyway: every [`StackClosure`] borrows its list.
//! - [`StackClosure`] must be pinned: while it is parked, the list (or the closure parked
//!   before it) points into it, and the waker writes to it. The API guarantees this: the only
//!   constructor is a [`PinInit`], so the closure is initialised in place (with
//!   [`kernel::stack_pin_init!`] on the stack, or in a pinned box) and never moves after;
//!   [`StackClosure::park`] takes `Pin<&mut Self>`; and its [`PinnedDrop`] takes it off the
//!   list before the memory can be freed. The pinning guarantee (pinned memory is not reused
//!   without the destructor running) covers leaks: a leaked closure stays where it is, parked
//!   at worst, and the list never points to freed memory.
//! - [`Parked`] holds only a pinned reference to its closure, so it need not be pinned. It can
//!   be leaked with [`core::mem::forget`]; the closure then stays parked until the next
//!   [`StackClosure::park`] or the closure's destructor, both of which take it off the list
//!   first.
//!
//! # Examples
//!
//! Out-of-tree modules' doctests are neither built nor run (the kernel's `rustdoc` target only
//! covers in-tree crates), so the examples below are marked `ignore`; the same sequences run as
//! the KUnit suite `bucketfs_closure` (`tests/kunit/closure_tests.rs`).
//!
//! A waiter and a waker of one condition:
//!
//! ```ignore
//! use crate::closure::{StackClosure, WaitList};
//! use core::sync::atomic::{AtomicBool, Ordering};
//! use kernel::stack_pin_init;
//!
//! struct Gate {
//!     open: AtomicBool,
//!     waiters: WaitList,
//! }
//!
//! /// Returns once the gate is open.
//! fn wait_open(gate: &Gate) {
//!     stack_pin_init!(let cl = StackClosure::new(&gate.waiters));
//!     loop {
//!         // Park first, then look: a wake between the look and the sleep is not lost.
//!         let parked = cl.as_mut().park();
//!         if gate.open.load(Ordering::Acquire) {
//!             // Dropping `parked` takes the closure off the list (by waking the list).
//!             return;
//!         }
//!         parked.sync();
//!     }
//! }
//!
//! /// Opens the gate and releases every waiter.
//! fn open(gate: &Gate) {
//!     gate.open.store(true, Ordering::Release);
//!     gate.waiters.wake_all();
//! }
//! ```
//!
//! A wake between the park and the sleep makes the sleep return at once:
//!
//! ```ignore
//! use crate::closure::{StackClosure, WaitList};
//! use kernel::stack_pin_init;
//!
//! let list = WaitList::new();
//! stack_pin_init!(let cl = StackClosure::new(&list));
//! let parked = cl.as_mut().park();
//! assert!(!list.is_empty());
//! list.wake_all();
//! assert!(list.is_empty());
//! let woken = parked.sync(); // returns at once
//! assert!(woken.ticket > 0);
//! assert!(!cl.is_parked());
//! ```
//!
//! C header: [`include/linux/closure.h`](srctree/include/linux/closure.h); the sync with a
//! timeout, a fatal signal and a wake ticket is bucketfs's own, in `c/closure_glue.c`.
//!
//! [`struct closure_waitlist`]: srctree/include/linux/closure.h
//! [`struct closure`]: srctree/include/linux/closure.h

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
/// Needs no pinning (see *Pinning* in the module documentation); it can live in a `static`, an
/// [`Arc`](kernel::sync::Arc) or a struct field.
///
/// # Invariants
///
/// `inner` is a valid, initialised `struct closure_waitlist`. Every closure on it is the `cl`
/// of a [`StackClosure`] that borrows this list, or of one that was leaked (and so is never
/// freed).
///
/// # Examples
///
/// ```ignore
/// use crate::closure::WaitList;
///
/// let list = WaitList::new();
/// assert!(list.is_empty());
/// // Nobody is parked: this wake is lost, and releases nobody who parks later.
/// list.wake_all();
/// ```
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
        // INVARIANT: The all-zero value is the empty list.
        Self {
            // SAFETY: `struct closure_waitlist` is an `llist_head`, plain data whose all-zero
            // value is the empty list (`LLIST_HEAD_INIT`).
            inner: Opaque::new(unsafe { core::mem::zeroed() }),
        }
    }

    /// Releases every closure parked on the list, in the order they parked.
    ///
    /// Each released closure gets the next wake ticket ([`Woken::ticket`]), in that order. A
    /// wake with nobody parked is lost.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// let parked = cl.as_mut().park();
    /// list.wake_all();
    /// assert!(list.is_empty());
    /// assert!(parked.sync().ticket > 0); // at once
    /// ```
    pub(crate) fn wake_all(&self) {
        // SAFETY: `self.inner` is a valid wait list by the type invariant, and every closure on
        // it is a live `StackClosure`'s (by the same invariant), which `closure_wake_up()` may
        // release.
        unsafe { bindings::bucketfs_waitlist_wake_all(self.inner.get()) }
    }

    /// Returns whether no closure is parked on the list right now.
    ///
    /// The answer may be stale as soon as it is returned if other threads park or wake.
    pub(crate) fn is_empty(&self) -> bool {
        // SAFETY: `self.inner` is a valid wait list by the type invariant; this is one atomic
        // read of its head.
        unsafe { bindings::bucketfs_waitlist_is_empty(self.inner.get()) }
    }
}

impl Default for WaitList {
    fn default() -> Self {
        Self::new()
    }
}

/// How long [`Parked::sync_timeout`] may sleep.
///
/// # Invariants
///
/// None: plain data, every value is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// Until released (or killed, for a killable sleep).
    Never,
    /// At most this many jiffies.
    Jiffies(Jiffies),
}

impl Timeout {
    /// At most `ms` milliseconds, rounded up to whole jiffies.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// match parked.sync_timeout(Timeout::ms(100), false) {
    ///     Ok(woken) => pr_info!("released, ticket {}\n", woken.ticket),
    ///     // Still parked: dropping the guard leaves the list.
    ///     Err((parked, Interrupted::TimedOut)) => drop(parked),
    ///     // Only a killable sleep ends on a fatal signal.
    ///     Err((_, Interrupted::Killed)) => {}
    /// }
    /// ```
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
///
/// # Invariants
///
/// None: plain data. (Every [`Woken`] that a [`Parked`] guard returns has a nonzero ticket,
/// since its closure was parked; the type does not rely on it.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Woken {
    /// Module-wide sequence number of the release, taken in the waker's context: one
    /// [`WaitList::wake_all`] hands its waiters increasing tickets in the order they parked.
    /// Never zero from a [`Parked`] guard (zero only from the internal sync of a closure that
    /// was never parked).
    pub(crate) ticket: u64,
}

/// Why [`Parked::sync_timeout`] returned without a wake.
///
/// # Invariants
///
/// None: plain data, every value is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interrupted {
    /// The timeout passed.
    TimedOut,
    /// The task got a fatal signal during a killable sleep.
    Killed,
}

/// A closure on the waiting task's stack, bound to one [`WaitList`].
///
/// Create it with [`kernel::stack_pin_init!`] and [`StackClosure::new`]. It must be pinned: see
/// *Pinning* in the module documentation for why, and how the API guarantees it.
///
/// `StackClosure` is `Send` (a parked closure may be synced from another thread, the sync
/// records the task that sleeps) but not `Sync` (`Opaque` is not), so two threads never sync
/// the same closure at once.
///
/// # Invariants
///
/// - `cl` was initialised by `closure_init_stack()` and does not move until it is dropped.
/// - Whenever `cl` is parked, it is parked on `list`.
/// - `cl` is off every list, and no wake is still in flight towards it, once its destructor has
///   run.
///
/// # Examples
///
/// ```ignore
/// use crate::closure::{Interrupted, StackClosure, Timeout, WaitList};
/// use kernel::stack_pin_init;
///
/// let list = WaitList::new();
/// stack_pin_init!(let cl = StackClosure::new(&list));
/// // Nobody wakes the list: the sync times out and hands the guard back.
/// match cl.as_mut().park().sync_timeout(Timeout::ms(10), false) {
///     Ok(_) => pr_warn!("nobody was meant to wake the list\n"),
///     Err((parked, why)) => {
///         assert_eq!(why, Interrupted::TimedOut);
///         assert!(!list.is_empty()); // still parked
///         drop(parked); // wakes the list to leave it
///     }
/// }
/// assert!(list.is_empty());
/// ```
#[pin_data(PinnedDrop)]
pub(crate) struct StackClosure<'list> {
    #[pin]
    cl: Opaque<bindings::closure>,
    list: &'list WaitList,
}

impl<'list> StackClosure<'list> {
    /// Creates a closure that will park on `list`.
    pub(crate) fn new(list: &'list WaitList) -> impl PinInit<Self> {
        // INVARIANT: `cl` is initialised in place by `closure_init_stack()` and, being pinned,
        // does not move; it is not parked yet.
        pin_init!(Self {
            // SAFETY: `slot` is valid for writes of a `struct closure`, which
            // `closure_init_stack()` fully initialises.
            cl <- Opaque::ffi_init(|slot| unsafe { bindings::bucketfs_closure_init_stack(slot) }),
            list,
        })
    }

    /// Parks the closure on its wait list; the returned guard sleeps until a wake releases it.
    ///
    /// A closure still parked (its last guard was leaked with [`core::mem::forget`]) leaves its
    /// list first, which wakes the list.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// stack_pin_init!(let cl = StackClosure::new(&list));
    /// let parked = cl.as_mut().park();
    /// if condition_holds() {
    ///     return; // `parked` is dropped: the closure leaves the list
    /// }
    /// parked.sync();
    /// ```
    pub(crate) fn park<'c>(mut self: Pin<&'c mut Self>) -> Parked<'c, 'list> {
        // A guard that was leaked with `mem::forget` left the closure parked: leave first, as
        // `closure_wait()` refuses a closure that is already on a list.
        self.as_mut().leave();
        // SAFETY: `cl` is initialised and pinned by the type invariant, and not parked (we just
        // left), so `closure_wait()` may add it to `list`, a valid wait list that outlives the
        // closure (`'list`). It stays there at most until the destructor, which leaves first.
        let parked =
            unsafe { bindings::bucketfs_closure_park(self.cl.get(), self.list.inner.get()) };
        if !parked {
            // Unreachable: `leave()` just took the closure off every list.
            pr_warn!("closure was still parked after leaving its wait list\n");
        }
        // INVARIANT: `cl` is parked on `self.list`.
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
        // SAFETY: `cl` is initialised and pinned by the type invariant. Only one thread syncs it
        // at a time: `StackClosure` is not `Sync` and this call returns only when the sync is
        // over (the C side waits out a wake that raced with a timeout or a signal). `ticket` is
        // valid for writes.
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
        // INVARIANT: The memory holding `cl` may be reused after this: it leaves the list, and
        // the uninterruptible sync in `leave` waits out any wake in flight.
        self.leave();
    }
}

/// A [`StackClosure`] parked on its wait list.
///
/// The guard holds a pinned reference to its closure and needs no pinning itself. Dropping it
/// without a successful sync takes the closure off the list by waking the whole list; leaking
/// it with [`core::mem::forget`] leaves the closure parked until its next
/// [`StackClosure::park`] or its destructor.
///
/// # Invariants
///
/// `closure` was parked on its list when the guard was made, and is parked or released (by a
/// wake that may still be in flight) for as long as the guard lives; only the guard syncs it.
///
/// # Examples
///
/// ```ignore
/// match cl.as_mut().park().sync_timeout(Timeout::Never, true) {
///     // Released: look at the condition again.
///     Ok(_) => {}
///     // Killed: the guard is dropped here, which leaves the list.
///     Err((_, Interrupted::Killed)) => return Err(EINTR),
///     // Not with `Timeout::Never`.
///     Err((_, Interrupted::TimedOut)) => {}
/// }
/// ```
pub(crate) struct Parked<'c, 'list> {
    closure: Pin<&'c mut StackClosure<'list>>,
}

impl<'c, 'list> Parked<'c, 'list> {
    /// Sleeps uninterruptibly until a wake releases the closure.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// let parked = cl.as_mut().park();
    /// list.wake_all();
    /// assert!(parked.sync().ticket > 0);
    /// ```
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
    ///
    /// A sleep that is not killable ignores fatal signals (it ends on a wake or the timeout).
    ///
    /// # Examples
    ///
    /// ```ignore
    /// let mut parked = cl.as_mut().park();
    /// loop {
    ///     match parked.sync_timeout(Timeout::ms(1000), true) {
    ///         Ok(_) => break,
    ///         Err((p, Interrupted::TimedOut)) => {
    ///             pr_info!("still waiting\n");
    ///             parked = p; // still parked: sync again
    ///         }
    ///         Err((_, Interrupted::Killed)) => return Err(EINTR),
    ///     }
    /// }
    /// ```
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

/// Lets the scheduler run something else if it wants to: called in every loop whose length
/// follows the device size (a mount reading a 16M-bucket table), so it does not hog a CPU.
#[allow(
    dead_code,
    reason = "the KUnit and bench crates compile this file without using it"
)]
pub(crate) fn cond_resched() {
    // SAFETY: `bucketfs_cond_resched` only calls `cond_resched()`, which any task in process
    // context may call, holding no spinlock (the callers hold no lock at all).
    unsafe { bindings::bucketfs_cond_resched() }
}

/// Sleeps for `ms` milliseconds (process context, nothing held that a waker needs).
pub(crate) fn msleep(ms: u32) {
    // SAFETY: `bucketfs_msleep` only calls `msleep`; callers run in process context.
    unsafe { bindings::bucketfs_msleep(ms) }
}

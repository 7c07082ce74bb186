// SPDX-License-Identifier: GPL-2.0

//! The `bucketfs_closure` suite: the closure wrapper in `rust/closure.rs`.

use crate::closure::{Interrupted, StackClosure, Timeout, WaitList};
use crate::test::{clear_kill, kill_self, kunit_case, ms_since, msleep, wait_until, Test};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use kernel::{prelude::*, stack_pin_init, sync::Arc, time::Ktime, workqueue};

kunit_case!(
    bucketfs_kunit_closure_wake_between_park_and_sync,
    wake_between_park_and_sync
);
kunit_case!(
    bucketfs_kunit_closure_wake_with_nobody_parked_is_lost,
    wake_with_nobody_parked_is_lost
);
kunit_case!(bucketfs_kunit_closure_wake_after_sync, wake_after_sync);
kunit_case!(
    bucketfs_kunit_closure_timeout_keeps_it_parked,
    timeout_keeps_it_parked
);
kunit_case!(
    bucketfs_kunit_closure_many_waiters_released_fifo,
    many_waiters_released_fifo
);
kunit_case!(
    bucketfs_kunit_closure_dropped_guard_wakes_the_list,
    dropped_guard_wakes_the_list
);
kunit_case!(
    bucketfs_kunit_closure_forgotten_guard_left_on_drop,
    forgotten_guard_left_on_drop
);
kunit_case!(
    bucketfs_kunit_closure_is_empty_follows_parks_and_wakes,
    is_empty_follows_parks_and_wakes
);
kunit_case!(
    bucketfs_kunit_closure_killed_sync_hands_the_guard_back,
    killed_sync_hands_the_guard_back
);

/// A wake that comes after the park but before the sleep is not lost: the sleep returns at once.
fn wake_between_park_and_sync(t: &Test) {
    let list = WaitList::new();
    stack_pin_init!(let cl = StackClosure::new(&list));
    let parked = cl.as_mut().park();
    check!(t, !list.is_empty());
    list.wake_all();
    check!(t, list.is_empty());
    let start = Ktime::ktime_get();
    let woken = parked.sync_timeout(Timeout::ms(2000), false);
    check!(t, woken.is_ok());
    check!(t, woken.map(|w| w.ticket > 0).unwrap_or(false));
    check!(t, ms_since(start) < 1000);
    check!(t, !cl.is_parked());

    // The closure is reusable once released; the uninterruptible sync behaves the same.
    let parked = cl.as_mut().park();
    list.wake_all();
    check!(t, parked.sync().ticket > 0);
    check!(t, list.is_empty());
}

/// Wakes are not latched: one with nobody parked releases nobody later.
fn wake_with_nobody_parked_is_lost(t: &Test) {
    let list = WaitList::new();
    stack_pin_init!(let cl = StackClosure::new(&list));
    list.wake_all();
    let parked = cl.as_mut().park();
    match parked.sync_timeout(Timeout::ms(50), false) {
        Ok(_) => check!(t, false),
        Err((parked, why)) => {
            check!(t, why == Interrupted::TimedOut);
            drop(parked);
        }
    }
    check!(t, list.is_empty());
    check!(t, !cl.is_parked());
}

/// A wake from another thread releases a closure that is already asleep.
fn wake_after_sync(t: &Test) {
    let Ok(list) = Arc::new(WaitList::new(), GFP_KERNEL) else {
        return check!(t, false);
    };
    stack_pin_init!(let cl = StackClosure::new(&list));
    let parked = cl.as_mut().park();
    let waker = list.clone();
    let spawned = workqueue::system_unbound().try_spawn(GFP_KERNEL, move || {
        msleep(100);
        waker.wake_all();
    });
    check!(t, spawned.is_ok());
    let start = Ktime::ktime_get();
    let woken = parked.sync_timeout(Timeout::ms(5000), false);
    let elapsed = ms_since(start);
    check!(t, woken.is_ok());
    // The waker sleeps 100 ms first; allow for jiffy rounding.
    check!(t, elapsed >= 80);
    check!(t, elapsed < 4000);
}

/// A timed-out sync leaves the closure parked; dropping the guard takes it off the list.
fn timeout_keeps_it_parked(t: &Test) {
    let list = WaitList::new();
    stack_pin_init!(let cl = StackClosure::new(&list));
    let start = Ktime::ktime_get();
    match cl.as_mut().park().sync_timeout(Timeout::ms(100), true) {
        Ok(_) => check!(t, false),
        Err((parked, why)) => {
            check!(t, why == Interrupted::TimedOut);
            check!(t, ms_since(start) >= 80);
            check!(t, !list.is_empty());
            // Still parked: a second, shorter sync times out too.
            let again = parked.sync_timeout(Timeout::ms(10), false);
            check!(t, matches!(again, Err((_, Interrupted::TimedOut))));
        }
    }
    check!(t, list.is_empty());
    check!(t, !cl.is_parked());
}

const WAITERS: usize = 8;

struct Waiters {
    list: WaitList,
    parked: AtomicUsize,
    done: AtomicUsize,
    tickets: [AtomicU64; WAITERS],
}

impl Waiters {
    fn new() -> Result<Arc<Self>> {
        Arc::new(
            Waiters {
                list: WaitList::new(),
                parked: AtomicUsize::new(0),
                done: AtomicUsize::new(0),
                tickets: [const { AtomicU64::new(0) }; WAITERS],
            },
            GFP_KERNEL,
        )
        .map_err(|_| ENOMEM)
    }
}

/// Waiter `i` parks only after waiters `0..i` have, then records the ticket of its release.
fn park_in_turn(w: &Waiters, i: usize) {
    if wait_until(5000, || w.parked.load(Ordering::Acquire) == i) {
        stack_pin_init!(let cl = StackClosure::new(&w.list));
        let parked = cl.as_mut().park();
        w.parked.fetch_add(1, Ordering::Release);
        let woken = parked.sync_timeout(Timeout::ms(10_000), false);
        if let Ok(woken) = &woken {
            w.tickets[i].store(woken.ticket, Ordering::Relaxed);
        }
    }
    w.done.fetch_add(1, Ordering::Release);
}

/// One wake releases every parked closure, in the order they parked.
fn many_waiters_released_fifo(t: &Test) {
    let Ok(w) = Waiters::new() else {
        return check!(t, false);
    };
    let mut spawned = 0;
    for i in 0..WAITERS {
        let w = w.clone();
        if workqueue::system_unbound()
            .try_spawn(GFP_KERNEL, move || park_in_turn(&w, i))
            .is_ok()
        {
            spawned += 1;
        }
    }
    check!(t, spawned == WAITERS);
    check!(
        t,
        wait_until(10_000, || w.parked.load(Ordering::Acquire) == spawned)
    );
    w.list.wake_all();
    check!(t, w.list.is_empty());
    check!(
        t,
        wait_until(10_000, || w.done.load(Ordering::Acquire) == spawned)
    );

    let tickets: [u64; WAITERS] = core::array::from_fn(|i| w.tickets[i].load(Ordering::Relaxed));
    check!(t, tickets.iter().all(|&ticket| ticket > 0));
    // FIFO, and consecutive: the single wake released them one after another.
    check!(t, tickets.windows(2).all(|p| p[1] == p[0] + 1));
}

/// Leaving the list early (dropping a guard) wakes the other waiters: the only way off a list
/// is a wake of the whole list. They see a spurious wake and re-check.
fn dropped_guard_wakes_the_list(t: &Test) {
    let Ok(w) = Waiters::new() else {
        return check!(t, false);
    };
    let other = w.clone();
    let spawned =
        workqueue::system_unbound().try_spawn(GFP_KERNEL, move || park_in_turn(&other, 0));
    check!(t, spawned.is_ok());
    check!(
        t,
        wait_until(5000, || w.parked.load(Ordering::Acquire) == 1)
    );

    stack_pin_init!(let cl = StackClosure::new(&w.list));
    let start = Ktime::ktime_get();
    drop(cl.as_mut().park());
    check!(t, wait_until(5000, || w.done.load(Ordering::Acquire) == 1));
    check!(t, w.tickets[0].load(Ordering::Relaxed) > 0);
    check!(t, ms_since(start) < 5000);
    check!(t, w.list.is_empty());
}

/// A guard leaked with `mem::forget` cannot leave a dead frame on the list: parking again
/// leaves first, and dropping the closure leaves too.
fn forgotten_guard_left_on_drop(t: &Test) {
    let list = WaitList::new();
    {
        stack_pin_init!(let cl = StackClosure::new(&list));
        core::mem::forget(cl.as_mut().park());
        check!(t, cl.is_parked());
        core::mem::forget(cl.as_mut().park());
        check!(t, cl.is_parked());
        check!(t, !list.is_empty());
    }
    check!(t, list.is_empty());
}

/// `is_empty` is true exactly while nobody is parked; closures parked by one thread are released
/// by one wake in the order they parked.
fn is_empty_follows_parks_and_wakes(t: &Test) {
    let list = WaitList::default();
    check!(t, list.is_empty());
    stack_pin_init!(let first = StackClosure::new(&list));
    stack_pin_init!(let second = StackClosure::new(&list));
    check!(t, !first.is_parked());

    let parked_first = first.as_mut().park();
    check!(t, !list.is_empty());
    let parked_second = second.as_mut().park();
    check!(t, !list.is_empty());

    list.wake_all();
    check!(t, list.is_empty());
    let start = Ktime::ktime_get();
    let a = parked_first.sync_timeout(Timeout::ms(2000), false);
    let b = parked_second.sync_timeout(Timeout::ms(2000), false);
    check!(t, ms_since(start) < 1000);
    match (a, b) {
        (Ok(a), Ok(b)) => check!(t, a.ticket > 0 && b.ticket == a.ticket + 1),
        _ => check!(t, false),
    }
    check!(t, !first.is_parked());
    check!(t, !second.is_parked());

    // A wake with nobody parked leaves the list empty; parking again makes it non-empty.
    list.wake_all();
    check!(t, list.is_empty());
    let parked = first.as_mut().park();
    check!(t, !list.is_empty());
    drop(parked);
    check!(t, list.is_empty());
}

/// A fatal signal ends a killable sleep and hands the still-parked guard back; a sleep that is
/// not killable ignores it and ends on its timeout.
fn killed_sync_hands_the_guard_back(t: &Test) {
    let list = WaitList::new();
    stack_pin_init!(let cl = StackClosure::new(&list));
    let parked = cl.as_mut().park();
    check!(t, kill_self());
    let start = Ktime::ktime_get();
    match parked.sync_timeout(Timeout::ms(5000), true) {
        Ok(_) => check!(t, false),
        Err((parked, why)) => {
            check!(t, why == Interrupted::Killed);
            check!(t, ms_since(start) < 2500);
            // Still parked (the guard borrows `cl`, so ask the list).
            check!(t, !list.is_empty());
            // The signal is still pending: an uninterruptible sleep runs to its timeout.
            let start = Ktime::ktime_get();
            match parked.sync_timeout(Timeout::ms(100), false) {
                Ok(_) => check!(t, false),
                Err((parked, why)) => {
                    check!(t, why == Interrupted::TimedOut);
                    check!(t, ms_since(start) >= 80);
                    check!(t, !list.is_empty());
                    drop(parked);
                }
            }
        }
    }
    clear_kill();
    check!(t, list.is_empty());
    check!(t, !cl.is_parked());
}

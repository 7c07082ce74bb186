// SPDX-License-Identifier: GPL-2.0

//! The `bucketfs_allocator` suite: restartable allocation requests (`rust/allocator.rs`).

use crate::allocator::{ecanceled, Allocator, DeviceBuckets, LiveInputs, NodeAlloc};
use crate::shared::alloc_policy::Watermark;
use crate::shared::bucket_table::BucketState;
use crate::test::{kunit_case, wait_until, Test};
use crate::vec_ext::VecExt;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use kernel::{
    alloc::{KVVec, KVec},
    prelude::*,
    sync::Arc,
    time::Ktime,
    workqueue,
};

kunit_case!(
    bucketfs_kunit_alloc_rereads_options_on_wakeup,
    rereads_options_on_wakeup
);
kunit_case!(
    bucketfs_kunit_alloc_wake_before_park_not_lost,
    wake_before_park_not_lost
);
kunit_case!(
    bucketfs_kunit_alloc_many_parked_all_released,
    many_parked_all_released
);
kunit_case!(
    bucketfs_kunit_alloc_abort_fails_all_parked,
    abort_fails_all_parked
);
kunit_case!(
    bucketfs_kunit_alloc_free_path_and_reserves,
    free_path_and_reserves
);
kunit_case!(
    bucketfs_kunit_alloc_abort_between_wake_and_park,
    abort_between_wake_and_park
);
kunit_case!(
    bucketfs_kunit_alloc_rate_limited_report_does_not_poll,
    rate_limited_report_does_not_poll
);
kunit_case!(
    bucketfs_kunit_alloc_degraded_after_the_stuck_timeout,
    degraded_after_the_stuck_timeout
);

const BUCKETS: u32 = 1000;

/// An allocator over two devices, device 0 with `free0` free buckets and device 1 with 900,
/// and counters for the requests run against it.
#[pin_data]
struct Harness {
    #[pin]
    alloc: Allocator,
    replicas: AtomicU32,
    /// The live `allocator_stuck_timeout`, in seconds.
    stuck_s: AtomicU32,
    /// Nodes each request asks for.
    nodes: AtomicU32,
    /// The live `metadata_degraded_writes` (`metadata_replicas_required` is 1).
    degrade: AtomicBool,
    /// Sum of what `abort_parked` returned: the requests it counted as failed.
    abort_counted: AtomicUsize,
    /// Set by the inputs function on its first call, to simulate a racing option write.
    race_on_first_read: AtomicBool,
    ok: AtomicUsize,
    canceled: AtomicUsize,
    failed: AtomicUsize,
    done: AtomicUsize,
    /// Member of the first copy of the last node allocated.
    last_member: AtomicU32,
    last_copies: AtomicU32,
}

fn device(name: &str, free: u32) -> Result<DeviceBuckets> {
    // `free` free buckets, then 200 waiting for discard, then data.
    DeviceBuckets::new(BUCKETS, 0, name, |b| match b {
        b if b < free => BucketState::Free,
        b if b < free + 200 => BucketState::NeedDiscard,
        _ => BucketState::Data,
    })
}

fn harness(free0: u32, replicas: u32) -> Result<Arc<Harness>> {
    let mut devices = KVec::new();
    devices.push(device("dev0", free0)?, GFP_KERNEL)?;
    devices.push(device("dev1", 900)?, GFP_KERNEL)?;
    Arc::pin_init(
        pin_init!(Harness {
            alloc <- Allocator::new([7; 16], devices),
            replicas: AtomicU32::new(replicas),
            stuck_s: AtomicU32::new(0),
            nodes: AtomicU32::new(1),
            degrade: AtomicBool::new(false),
            abort_counted: AtomicUsize::new(0),
            race_on_first_read: AtomicBool::new(false),
            ok: AtomicUsize::new(0),
            canceled: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            last_member: AtomicU32::new(u32::MAX),
            last_copies: AtomicU32::new(0),
        }),
        GFP_KERNEL,
    )
}

impl Harness {
    fn inputs(&self) -> LiveInputs {
        let replicas = self.replicas.load(Ordering::Acquire);
        if self.race_on_first_read.swap(false, Ordering::AcqRel) {
            // The option changes and its wake goes out after this read but before the park.
            self.replicas.store(1, Ordering::Release);
            self.alloc.wake_all();
        }
        LiveInputs {
            replicas,
            stuck_timeout_s: self.stuck_s.load(Ordering::Acquire),
            target: 0,
            fallback: false,
            required: 1,
            degrade: self.degrade.load(Ordering::Acquire),
        }
    }

    /// One request for `nodes` nodes (one unless a test changes it), as a filesystem would
    /// make it.
    fn request(&self) {
        let mut out: KVec<NodeAlloc> = KVec::new();
        let nodes = self.nodes.load(Ordering::Acquire);
        match self
            .alloc
            .alloc_nodes(nodes, Watermark::Normal, || self.inputs(), &mut out)
        {
            Ok(()) => {
                if let Some(n) = out.first() {
                    self.last_member.store(n.ptrs[0].member, Ordering::Relaxed);
                    self.last_copies.store(n.nr_ptrs, Ordering::Relaxed);
                }
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e == ecanceled() => {
                self.canceled.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.done.fetch_add(1, Ordering::Release);
    }

    /// Pulls the abort knob; returns (and sums up) how many requests it says it failed.
    fn abort(&self) -> usize {
        let n = self.alloc.abort_parked();
        self.abort_counted.fetch_add(n, Ordering::AcqRel);
        n
    }

    /// Starts `n` requests on the unbound workqueue; returns how many started.
    fn spawn(self: &Arc<Self>, n: usize) -> usize {
        (0..n)
            .filter(|_| {
                let h = self.clone();
                workqueue::system_unbound()
                    .try_spawn(GFP_KERNEL, move || h.request())
                    .is_ok()
            })
            .count()
    }

    /// Waits for `n` requests to finish; if they do not, aborts them so none is left parked.
    fn finish(&self, n: usize) -> bool {
        if wait_until(5000, || self.done.load(Ordering::Acquire) >= n) {
            return true;
        }
        while self.done.load(Ordering::Acquire) < n {
            self.abort();
            crate::test::msleep(10);
        }
        false
    }
}

/// A parked request reads `metadata_replicas` again when woken, and uses the new value.
fn rereads_options_on_wakeup(t: &Test) {
    let Ok(h) = harness(1, 2) else {
        return check!(t, false);
    };
    check!(t, h.spawn(1) == 1);
    check!(t, wait_until(5000, || h.alloc.parked() == 1));
    check!(t, h.ok.load(Ordering::Relaxed) == 0);
    h.replicas.store(1, Ordering::Release);
    h.alloc.wake_all();
    check!(t, h.finish(1));
    check!(t, h.ok.load(Ordering::Relaxed) == 1);
    check!(t, h.last_copies.load(Ordering::Relaxed) == 1);
    // Device 0 is below its watermark: the one copy went to device 1.
    check!(t, h.last_member.load(Ordering::Relaxed) == 1);
    check!(t, h.alloc.parked() == 0);
}

/// A change whose wake lands between a request's check and its park is not lost: the request
/// looks again after parking and completes without waiting for another wake.
fn wake_before_park_not_lost(t: &Test) {
    let Ok(h) = harness(1, 2) else {
        return check!(t, false);
    };
    h.race_on_first_read.store(true, Ordering::Release);
    check!(t, h.spawn(1) == 1);
    // No further wake is sent: if the racing one were lost, this would time out.
    check!(t, h.finish(1));
    check!(t, h.ok.load(Ordering::Relaxed) == 1);
    check!(t, h.last_copies.load(Ordering::Relaxed) == 1);
}

const MANY: usize = 8;

/// Many parked requests are all released once buckets are freed.
fn many_parked_all_released(t: &Test) {
    let Ok(h) = harness(0, 2) else {
        return check!(t, false);
    };
    check!(t, h.spawn(MANY) == MANY);
    check!(t, wait_until(5000, || h.alloc.parked() == MANY));
    // Enough for all of them above device 0's normal watermark, as the discard worker would.
    h.alloc.free_bucket_run(0, 0, 100);
    check!(t, h.finish(MANY));
    check!(t, h.ok.load(Ordering::Relaxed) == MANY);
    check!(t, h.last_copies.load(Ordering::Relaxed) == 2);
    check!(t, h.alloc.parked() == 0);
}

/// The abort knob fails every request parked at that moment, and only those.
fn abort_fails_all_parked(t: &Test) {
    let Ok(h) = harness(0, 2) else {
        return check!(t, false);
    };
    check!(t, h.spawn(MANY) == MANY);
    check!(t, wait_until(5000, || h.alloc.parked() == MANY));
    check!(t, h.abort() == MANY);
    check!(
        t,
        wait_until(5000, || h.done.load(Ordering::Acquire) == MANY)
    );
    check!(t, h.canceled.load(Ordering::Relaxed) == MANY);
    check!(t, h.ok.load(Ordering::Relaxed) == 0);
    check!(t, h.alloc.parked() == 0);

    // A request that parks after the abort is not failed by it.
    check!(t, h.spawn(1) == 1);
    check!(t, wait_until(5000, || h.alloc.parked() == 1));
    crate::test::msleep(50);
    check!(t, h.done.load(Ordering::Acquire) == MANY);
    h.replicas.store(1, Ordering::Release);
    h.alloc.wake_all();
    check!(t, h.finish(MANY + 1));
    check!(t, h.ok.load(Ordering::Relaxed) == 1);
}

/// Requests that can be served right away never park; ones that can never be served fail.
fn free_path_and_reserves(t: &Test) {
    let Ok(h) = harness(500, 2) else {
        return check!(t, false);
    };
    h.request();
    check!(t, h.ok.load(Ordering::Relaxed) == 1);
    check!(t, h.last_copies.load(Ordering::Relaxed) == 2);
    // Three replicas on two devices can never be served: an error, not a park.
    h.replicas.store(3, Ordering::Release);
    h.request();
    check!(t, h.failed.load(Ordering::Relaxed) == 1);
    check!(t, h.alloc.parked() == 0);
}

kunit_case!(bucketfs_kunit_alloc_races, races);

/// Many parked requests while option changes, wakeups, aborts and freed buckets race with
/// them: every request ends (served or aborted), none is left parked, nothing hangs. Run on
/// the debug kernel, this is also the lockdep and KASAN check of the allocator.
fn races(t: &Test) {
    const REQUESTS: usize = 24;
    let Ok(h) = harness(0, 2) else {
        return check!(t, false);
    };
    check!(t, h.spawn(REQUESTS) == REQUESTS);
    let mut spawned = 0;
    for k in 0..3u32 {
        let r = h.clone();
        let ok = workqueue::system_unbound().try_spawn(GFP_KERNEL, move || {
            for i in 0..200u32 {
                match (i + k) % 4 {
                    0 => r.replicas.store(1 + (i / 4) % 2, Ordering::Release),
                    1 => r.alloc.wake_all(),
                    2 if i % 16 == 2 => {
                        r.abort();
                    }
                    _ => r.alloc.free_bucket_run(0, i % 200, 1),
                }
                if i % 8 == 0 {
                    crate::test::msleep(1);
                }
            }
        });
        if ok.is_ok() {
            spawned += 1;
        }
    }
    check!(t, spawned == 3);
    crate::test::msleep(300);
    // Settle: one replica and room for everyone still waiting.
    h.replicas.store(1, Ordering::Release);
    h.alloc.wake_all();
    check!(t, h.finish(REQUESTS));
    let (ok, canceled) = (
        h.ok.load(Ordering::Relaxed),
        h.canceled.load(Ordering::Relaxed),
    );
    check!(t, ok + canceled == REQUESTS);
    // Every request an abort counted failed, and no other.
    check!(t, canceled == h.abort_counted.load(Ordering::Acquire));
    check!(t, h.failed.load(Ordering::Relaxed) == 0);
    check!(t, h.alloc.parked() == 0);
}

/// An abort that lands after a woken request has handled its wake but before it parks and looks
/// again still fails it: the abort counted it, so it must return `ECANCELED`. The wake hook holds
/// the request in that window.
fn abort_between_wake_and_park(t: &Test) {
    let Ok(h) = harness(0, 2) else {
        return check!(t, false);
    };
    check!(t, h.spawn(1) == 1);
    check!(t, wait_until(5000, || h.alloc.parked() == 1));
    h.alloc.wake_hook.arm();
    // A wake that changes nothing: the request handles it and stops in the hook.
    h.alloc.wake_all();
    check!(t, wait_until(5000, || h.alloc.wake_hook.held() == 1));
    let counted = h.abort();
    h.alloc.wake_hook.release();
    check!(t, counted == 1);
    // No further wake or abort: the one that counted it must end it.
    check!(t, wait_until(2000, || h.done.load(Ordering::Acquire) == 1));
    check!(t, h.canceled.load(Ordering::Relaxed) == 1);
    check!(t, h.ok.load(Ordering::Relaxed) == 0);
    // Clean up (aborts again if the request was left parked).
    h.finish(1);
    check!(t, h.alloc.parked() == 0);
}

/// A request whose stuck report is rate-limited (another request of the filesystem reported
/// less than the report interval ago) sleeps until a report may go out again, instead of
/// waking every millisecond.
fn rate_limited_report_does_not_poll(t: &Test) {
    let Ok(h) = harness(0, 2) else {
        return check!(t, false);
    };
    h.stuck_s.store(1, Ordering::Release);
    // Two nodes, so the stuck report this prints is not the one the guest tests wait for
    // (theirs want one node).
    h.nodes.store(2, Ordering::Release);
    // Request A parks; its first timeout, after one second, prints the filesystem's first
    // report, and it then waits without a timeout.
    check!(t, h.spawn(1) == 1);
    check!(t, wait_until(5000, || h.alloc.parked() == 1));
    check!(t, wait_until(5000, || h.alloc.timeouts() >= 1));
    // Request B parks; one second later it times out, but A reported one second ago, so
    // its report is refused for about four more seconds.
    check!(t, h.spawn(1) == 1);
    check!(t, wait_until(5000, || h.alloc.parked() == 2));
    crate::test::msleep(2000);
    // A timed out once and B once (a timer firing a tick early may add one each); polling
    // would be hundreds.
    let timeouts = h.alloc.timeouts();
    check!(t, timeouts >= 2);
    check!(t, timeouts <= 4);
    check!(t, h.abort() == 2);
    check!(t, h.finish(2));
    check!(t, h.canceled.load(Ordering::Relaxed) == 2);
    check!(t, h.alloc.parked() == 0);
}

kunit_case!(
    bucketfs_kunit_alloc_index_16m_nearly_full,
    index_16m_nearly_full
);

/// Buckets of the large device: 16M (a 1 TiB member of 64 KiB buckets).
const BIG: u32 = 1 << 24;
/// Its metadata buckets (below the first allocatable one).
const BIG_FIRST: u32 = 300;

/// Whether bucket `b` is free on a 99.9 %-full device: one in a thousand, spread by a hash.
fn free_one_in_1000(b: u32) -> bool {
    ((b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % 1000 == 0
}

/// An allocator over one device of `n` buckets whose state `state_of` gives above
/// [`BIG_FIRST`].
fn one_device(n: u32, state_of: impl Fn(u32) -> BucketState) -> Result<Arc<Allocator>> {
    let dev = DeviceBuckets::new(n, BIG_FIRST, "big", |b| {
        if b < BIG_FIRST {
            BucketState::Superblock
        } else {
            state_of(b)
        }
    })?;
    let mut devices = KVec::new();
    devices.push(dev, GFP_KERNEL)?;
    Arc::pin_init(Allocator::new([9; 16], devices), GFP_KERNEL)
}

/// One node, one copy, on the real path (policy decision included), at the watermark that may
/// take the last bucket; returns its bucket.
fn alloc_one(a: &Allocator, out: &mut KVec<NodeAlloc>) -> Option<u32> {
    out.clear();
    let inputs = || LiveInputs {
        replicas: 1,
        stuck_timeout_s: 0,
        target: 0,
        fallback: false,
        required: 1,
        degrade: false,
    };
    a.alloc_nodes(1, Watermark::Reclaim, inputs, out).ok()?;
    out.first().map(|n| n.ptrs[0].bucket)
}

/// Allocates every free bucket of `a` one at a time, `rounds` times (giving them back between
/// rounds); returns the mean nanoseconds per allocation and whether each round got exactly
/// the free buckets in increasing order (`expected`; the rotor starts at the first bucket and
/// every round ends where the next starts).
fn rounds(a: &Allocator, expected: &[u32], rounds: u32) -> (u64, bool) {
    let mut out = KVec::new();
    let mut got: KVVec<NodeAlloc> = KVVec::new();
    let mut ns = 0i64;
    let mut ok = true;
    for _ in 0..rounds {
        got.clear();
        for &want in expected {
            let start = Ktime::ktime_get();
            let b = alloc_one(a, &mut out);
            ns += Ktime::ktime_get().to_ns() - start.to_ns();
            ok &= b == Some(want);
            if let Some(n) = out.first() {
                ok &= got.push(*n, GFP_KERNEL).is_ok();
            }
        }
        // Full now: every bucket taken.
        ok &= a.counts(0)[BucketState::Free as usize] == 0;
        a.release_nodes(&got);
    }
    ok &= a.inspect(|d| d[0].check());
    let n = (expected.len() as u64 * rounds as u64).max(1);
    (ns.max(0) as u64 / n, ok)
}

/// The free-space index on a 16M-bucket device at 99.9 % full, in the kernel: allocation
/// through the allocator returns exactly the free buckets in rotor order, the index stays
/// consistent with the states (its own `check`), and allocations whose next free bucket is a
/// million buckets away take microseconds (a linear scan takes milliseconds each). Prints the
/// mean allocation time at 16k and 16M buckets.
fn index_16m_nearly_full(t: &Test) {
    // 16k buckets, 99.9 % full, allocated and given back many times; then 16M.
    let mut means = [0u64; 2];
    for (i, (n, reps)) in [(16384u32, 20000u32), (BIG, 10)].into_iter().enumerate() {
        let Ok(a) = one_device(n, |b| {
            if free_one_in_1000(b) {
                BucketState::Free
            } else {
                BucketState::Data
            }
        }) else {
            return check!(t, false);
        };
        let mut expected = KVVec::new();
        for b in BIG_FIRST..n {
            if free_one_in_1000(b) && expected.push(b, GFP_KERNEL).is_err() {
                return check!(t, false);
            }
        }
        check!(t, !expected.is_empty());
        check!(t, a.inspect(|d| d[0].check()));
        check!(
            t,
            a.counts(0)[BucketState::Free as usize] == expected.len() as u64
        );
        let (ns, ok) = rounds(&a, &expected, reps);
        check!(t, ok);
        check!(t, a.inspect(|d| d[0].check()));
        check!(
            t,
            a.counts(0)[BucketState::Free as usize] == expected.len() as u64
        );
        pr_info!(
            "bucketfs_kunit: allocation at {n} buckets, 99.9% full: {ns} ns mean over {} \
             allocations\n",
            expected.len() as u64 * reps as u64
        );
        means[i] = ns;
    }

    // 16M buckets with 16 free ones a million apart: every search crosses a million buckets
    // (after the last one it wraps around to the first). 20 rounds of 16 allocations, given
    // back between rounds: a linear scan reads 320M states (a second or more); the index a few
    // dozen words each. Timed as a whole: the test kernel's clock may tick every 4 ms.
    const SPREAD: u32 = 1 << 20;
    const FAR_ROUNDS: u32 = 20;
    let far = |b: u32| b % SPREAD == 12345;
    let Ok(a) = one_device(BIG, |b| {
        if far(b) {
            BucketState::Free
        } else {
            BucketState::Btree
        }
    }) else {
        return check!(t, false);
    };
    let mut out = KVec::new();
    let mut got: KVec<NodeAlloc> = KVec::new();
    let mut ok = true;
    let start = Ktime::ktime_get();
    for _ in 0..FAR_ROUNDS {
        got.clear();
        let mut want = 12345u32;
        for _ in 0..16 {
            ok &= alloc_one(&a, &mut out) == Some(want);
            if let Some(n) = out.first() {
                ok &= got.push(*n, GFP_KERNEL).is_ok();
            }
            want += SPREAD;
        }
        ok &= a.counts(0)[BucketState::Free as usize] == 0;
        a.release_nodes(&got);
    }
    let far_ms = crate::test::ms_since(start);
    check!(t, ok);
    check!(t, a.inspect(|d| d[0].check()));
    pr_info!(
        "bucketfs_kunit: {} allocations at {BIG} buckets, each next free bucket 1M away: {far_ms} \
         ms\n",
        FAR_ROUNDS * 16
    );
    check!(t, far_ms < 100);
    // Flat from 16k to 16M buckets, with a wide margin for noise on shared CPUs (the figures
    // printed above are what the report uses).
    check!(t, means[1] <= 4 * means[0].max(1000));
}

/// `metadata_degraded_writes`: a request parked past the stuck timeout that one copy could
/// serve proceeds with one copy (on the device with room) by itself when the option is on;
/// with it off it stays parked past the timeout, and turning it on (a wake) releases it at
/// once with one copy. Each event is counted.
fn degraded_after_the_stuck_timeout(t: &Test) {
    // On: served by itself after the one-second timeout.
    let Ok(h) = harness(0, 2) else {
        return check!(t, false);
    };
    h.stuck_s.store(1, Ordering::Release);
    // Three nodes, so neither the stuck report nor the degraded line is one the guest tests
    // wait for (theirs are for one node).
    h.nodes.store(3, Ordering::Release);
    h.degrade.store(true, Ordering::Release);
    let start = Ktime::ktime_get();
    check!(t, h.spawn(1) == 1);
    check!(t, wait_until(5000, || h.done.load(Ordering::Acquire) == 1));
    let ms = kernel::time::ktime_ms_delta(Ktime::ktime_get(), start);
    check!(t, h.ok.load(Ordering::Relaxed) == 1);
    check!(t, ms >= 1000);
    check!(t, h.last_copies.load(Ordering::Relaxed) == 1);
    check!(t, h.last_member.load(Ordering::Relaxed) == 1);
    check!(t, h.alloc.degraded_counts() == (1, 3));
    check!(t, h.alloc.parked() == 0);

    // Off: still parked well past the timeout; on, and a wake: served with one copy.
    let Ok(h) = harness(0, 2) else {
        return check!(t, false);
    };
    h.stuck_s.store(1, Ordering::Release);
    h.nodes.store(3, Ordering::Release);
    check!(t, h.spawn(1) == 1);
    check!(t, wait_until(5000, || h.alloc.timeouts() >= 1));
    crate::test::msleep(300);
    check!(t, h.alloc.parked() == 1);
    check!(t, h.done.load(Ordering::Acquire) == 0);
    check!(t, h.alloc.degraded_counts() == (0, 0));
    h.degrade.store(true, Ordering::Release);
    h.alloc.wake_all();
    check!(t, h.finish(1));
    check!(t, h.ok.load(Ordering::Relaxed) == 1);
    check!(t, h.last_copies.load(Ordering::Relaxed) == 1);
    check!(t, h.alloc.degraded_counts() == (1, 3));
}

// SPDX-License-Identifier: GPL-2.0

//! The bucket allocator and its restartable allocation requests.
//!
//! A request for btree nodes that cannot be served parks on the allocator's wait list and, on
//! every wakeup, rebuilds all of its inputs from live state: the replica count (the live
//! `metadata_replicas`, read through the caller's `inputs` function), the watermark, and a fresh
//! snapshot of every device. It holds no lock while parked. It is woken by:
//! - buckets becoming free ([`Allocator::free_bucket_run`], from the discard worker),
//! - any write under `options/` (the filesystem calls [`Allocator::wake_all`]),
//! - a device state change (`dev-N/writable`, [`Allocator::set_writable`]),
//! - any other bucket state change (recovery, the commit: [`Allocator::update`]),
//! - the abort knob ([`Allocator::abort_parked`]), which fails the requests parked at that
//!   moment with `ECANCELED`,
//! - a fatal signal to the waiting task (`EINTR`).
//!
//! A blocked request is registered in [`AllocState::parked`] from its first park until it
//! returns. The abort knob marks every registered request under the state lock; a request
//! looks at its own mark under that lock at every look, and again when it returns for any
//! other reason, so every request an abort counts fails with `ECANCELED`, wherever it was in
//! its loop, and a request that was served first is never counted.
//!
//! After `allocator_stuck_timeout` seconds parked, a request prints one report (rate-limited
//! per filesystem) and goes on waiting. Its sleeps are bounded only while a report is still
//! due: until the stuck timeout, then, if another request reported recently, until the next
//! moment a report may go out; once it has reported, it sleeps until woken.
//!
//! The state is private to this file (and its child `report.rs`, the report and the
//! `internal/alloc_debug` text): others read it through [`Allocator::inspect`] and change it
//! through methods that wake parked requests afterwards.

#[path = "allocator/report.rs"]
mod report;

use crate::closure::{Interrupted, StackClosure, Timeout, WaitList};
use crate::shared::alloc_policy::{
    decide, decide_degraded, may_degrade, Decision, DeviceSnapshot, RequestInputs, Watermark,
};
use crate::shared::bucket_table::{BucketState, DirtyBlocks, NR_STATES};
use crate::shared::free_index::{FreeIndex, IndexBuilder, Tracked, Words};
use crate::shared::options::{Opt, Options, MAX_REPLICAS};
use crate::shared::superblock::{NodePtr, MAX_MEMBERS};
use crate::shared::target::Label;
use crate::vec_ext::VecExt;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use kernel::{
    alloc::{KVVec, KVec},
    new_mutex,
    prelude::*,
    stack_pin_init,
    sync::Mutex,
    time::{ktime_ms_delta, Ktime},
};

/// Smallest interval between two stuck reports of one filesystem, in milliseconds.
const REPORT_INTERVAL_MS: i64 = 5000;

/// Smallest interval between two degraded allocation lines of one filesystem, in
/// milliseconds; the events in between are counted and the next line says how many.
const DEGRADED_REPORT_INTERVAL_MS: i64 = 1000;

/// Storage of a [`FreeIndex`] or [`DirtyBlocks`]: 64-bit words in a `KVVec` (vmalloc'd when
/// large, so nothing sized by the device is one physically contiguous allocation).
struct KWords(KVVec<u64>);

impl KWords {
    /// Most words in one: `kvmalloc` refuses (with a warning) anything above `INT_MAX` bytes.
    const MAX: usize = i32::MAX as usize / core::mem::size_of::<u64>();

    /// `n` zero words.
    fn new(n: usize) -> Result<KWords> {
        if n > Self::MAX {
            return Err(EFBIG);
        }
        Ok(KWords(KVVec::from_elem(0u64, n, GFP_KERNEL)?))
    }
}

impl Words for KWords {
    #[inline]
    fn nr_words(&self) -> usize {
        self.0.len()
    }

    #[inline]
    fn word(&self, i: usize) -> Option<u64> {
        self.0.get(i).copied()
    }

    #[inline]
    fn set_word(&mut self, i: usize, v: u64) {
        if let Some(w) = self.0.get_mut(i) {
            *w = v;
        }
    }
}

/// One device's buckets: their states in a [`FreeIndex`] (so finding a free or `need_discard`
/// bucket is `O(log n)` whatever the fullness), and which bucket table blocks changed since
/// they were last written.
pub(crate) struct DeviceBuckets {
    /// State of every bucket, the counts per state, and the search bitmaps.
    index: FreeIndex<KWords>,
    /// Table blocks whose buckets changed state since they were written (or read).
    dirty: DirtyBlocks<KWords>,
    /// Where the next free-bucket search starts.
    rotor: u32,
    /// Whether the device takes allocations (set by the allocator only).
    writable: bool,
    /// Device name for reports.
    name: [u8; 32],
}

impl DeviceBuckets {
    /// Whether a device of `nbuckets` buckets can be accounted (its index fits one `KVVec`:
    /// about 2.8 billion buckets; bigger members need bigger buckets).
    pub(crate) fn supported(nbuckets: u32) -> bool {
        FreeIndex::<KWords>::words_needed(nbuckets).is_some_and(|w| w <= KWords::MAX)
    }

    /// A device of `nbuckets` buckets whose states come from `state_of`, allocatable from
    /// `first_bucket` on. Its bucket table is taken to hold these states (no block dirty).
    #[allow(
        dead_code,
        reason = "the mount uses the builder; the KUnit and bench crates this"
    )]
    #[inline(never)]
    pub(crate) fn new(
        nbuckets: u32,
        first_bucket: u32,
        name: &str,
        state_of: impl FnMut(u32) -> BucketState,
    ) -> Result<DeviceBuckets> {
        let words = FreeIndex::<KWords>::words_needed(nbuckets).ok_or(EINVAL)?;
        let index = FreeIndex::new(KWords::new(words)?, nbuckets, first_bucket, state_of)
            .map_err(|_| EINVAL)?;
        Self::with_index(index, name)
    }

    /// Starts a device of `nbuckets` buckets, allocatable from `first_bucket`, whose states
    /// are then given in bucket order, runs a word at a time ([`BucketsBuilder`]). Not inlined
    /// (nor `new`, `from_builder`): the index's temporaries stay off the mount's frame.
    #[inline(never)]
    pub(crate) fn builder(nbuckets: u32, first_bucket: u32) -> Result<BucketsBuilder> {
        let words = FreeIndex::<KWords>::words_needed(nbuckets).ok_or(EINVAL)?;
        let b =
            IndexBuilder::new(KWords::new(words)?, nbuckets, first_bucket).map_err(|_| EINVAL)?;
        Ok(BucketsBuilder(b))
    }

    /// The device `b` built, once every bucket has its state (`EINVAL` before). Its bucket
    /// table is taken to hold these states (no block dirty).
    #[inline(never)]
    pub(crate) fn from_builder(b: BucketsBuilder, name: &str) -> Result<DeviceBuckets> {
        let index = b.0.finish().map_err(|_| EINVAL)?;
        Self::with_index(index, name)
    }

    fn with_index(index: FreeIndex<KWords>, name: &str) -> Result<DeviceBuckets> {
        let nbuckets = index.nbuckets();
        let first_bucket = index.first_bucket();
        let dirty_words = DirtyBlocks::<KWords>::words_needed(nbuckets as u64);
        let dirty = DirtyBlocks::new(KWords::new(dirty_words)?, nbuckets as u64).ok_or(EINVAL)?;
        let mut n = [0u8; 32];
        let len = name.len().min(31);
        n[..len].copy_from_slice(&name.as_bytes()[..len]);
        Ok(DeviceBuckets {
            index,
            dirty,
            rotor: first_bucket,
            writable: true,
            name: n,
        })
    }

    /// The state of `bucket`.
    #[inline]
    pub(crate) fn state(&self, bucket: u32) -> Option<BucketState> {
        self.index.state(bucket)
    }

    /// Sets the state of `bucket` (ignored outside the device); a change marks its table block
    /// dirty.
    #[inline]
    pub(crate) fn set_state(&mut self, bucket: u32, state: BucketState) {
        if let Some(old) = self.index.set_state(bucket, state) {
            if old != state {
                self.dirty.mark_bucket(bucket);
            }
        }
    }

    /// The first bucket in `state` at or after `from` (a scan of the states, 16 buckets a
    /// word: for recovery's rare passes, not the allocation path).
    pub(crate) fn next_in_state(&self, state: BucketState, from: u32) -> Option<u32> {
        self.index.next_in_state(state, from)
    }

    /// Buckets in `state`.
    pub(crate) fn count(&self, state: BucketState) -> u64 {
        self.index.count(state)
    }

    /// Buckets on the device.
    #[inline]
    pub(crate) fn nbuckets(&self) -> u32 {
        self.index.nbuckets()
    }

    #[inline]
    fn allocatable(&self) -> u64 {
        (self.index.nbuckets() - self.index.first_bucket()) as u64
    }

    #[inline]
    pub(crate) fn snapshot(&self) -> DeviceSnapshot {
        DeviceSnapshot {
            allocatable: self.allocatable(),
            free: self.index.count(BucketState::Free),
            need_discard: self.index.count(BucketState::NeedDiscard),
            writable: self.writable,
        }
    }

    /// Takes a free bucket for a btree node: the first at or after the rotor, wrapping.
    #[inline]
    fn take_free(&mut self) -> Option<u32> {
        self.take_free_as(BucketState::Btree)
    }

    /// Takes a free bucket for file data (`data`) when the device takes allocations and keeps
    /// more free buckets than `watermark` holds back: the first at or after the rotor.
    pub(crate) fn take_data(&mut self, watermark: Watermark) -> Option<u32> {
        if !self.writable || self.snapshot().available(watermark) == 0 {
            return None;
        }
        self.take_free_as(BucketState::Data)
    }

    /// Takes the first free bucket at or after the rotor (wrapping) into `state`.
    #[inline]
    fn take_free_as(&mut self, state: BucketState) -> Option<u32> {
        let b = self.index.take(Tracked::Free, state, self.rotor)?;
        self.dirty.mark_bucket(b);
        self.rotor = if b + 1 < self.nbuckets() {
            b + 1
        } else {
            self.index.first_bucket()
        };
        Some(b)
    }

    /// The first run of free buckets at or after `from` and before `end`, at most `max_len`
    /// long and no more
    /// than half the free buckets beyond what the data watermark holds back (metadata keeps its
    /// reserve and writers half of the rest while `FITRIM` runs), taken out of allocation for `FITRIM`: held as `btree`
    /// buckets that no node uses, which the mount's reconciliation frees if a crash comes
    /// first; [`DeviceBuckets::untrim`] gives them back.
    pub(crate) fn take_free_run(
        &mut self,
        from: u32,
        end: u32,
        max_len: u32,
    ) -> Option<(u32, u32)> {
        // Half of what file data may take: concurrent writers keep the other half.
        let spare = self.snapshot().available(Watermark::Normal) / 2;
        let max_len = max_len.min(spare.min(u32::MAX as u64) as u32);
        let (start, len) = self.index.run(Tracked::Free, from, max_len)?;
        // Only buckets before `end`.
        let len = len.min(end.saturating_sub(start));
        if len == 0 {
            return None;
        }
        for b in start..start + len {
            self.set_state(b, BucketState::Btree);
        }
        Some((start, len))
    }

    /// Gives back a run [`DeviceBuckets::take_free_run`] took.
    pub(crate) fn untrim(&mut self, start: u32, len: u32) {
        for b in start..start + len {
            if self.state(b) == Some(BucketState::Btree) {
                self.set_state(b, BucketState::Free);
            }
        }
    }

    /// The first run of contiguous `need_discard` buckets starting at or after `from` (and the
    /// first allocatable bucket), at most `max_len` long: its start and length.
    pub(crate) fn need_discard_run(&self, from: u32, max_len: u32) -> Option<(u32, u32)> {
        self.index.run(Tracked::NeedDiscard, from, max_len)
    }

    /// The first run of adjacent dirty bucket table blocks at or after block `from`, at most
    /// `max_len` blocks: its first block and length.
    pub(crate) fn dirty_table_run(&self, from: u32, max_len: u32) -> Option<(u32, u32)> {
        self.dirty.next_run(from, max_len)
    }

    /// Checks the free-space index against the states (`O(n)`: tests and debugging).
    #[allow(dead_code, reason = "used by the KUnit tests")]
    pub(crate) fn check(&self) -> bool {
        self.index.check().is_ok()
    }

    /// The device name.
    pub(crate) fn name(&self) -> &str {
        let len = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
}

/// A device's bucket states being given in bucket order (see [`DeviceBuckets::builder`]): the
/// mount pushes each bucket table block's states, a whole block at once when they are all
/// the same.
pub(crate) struct BucketsBuilder(IndexBuilder<KWords>);

impl BucketsBuilder {
    /// The next bucket is in `state`.
    pub(crate) fn push(&mut self, state: BucketState) {
        self.0.push(state);
    }

    /// The next `n` buckets are in `state`.
    pub(crate) fn push_run(&mut self, state: BucketState, n: u32) {
        self.0.push_run(state, n);
    }
}

/// Bucket table blocks of one device, as the table writer sees them (see
/// [`Allocator::table`]): the states to encode and the dirty marks to clear, but no state
/// change.
pub(crate) struct TableView<'a>(&'a mut DeviceBuckets);

impl TableView<'_> {
    /// The state of `bucket`.
    pub(crate) fn state(&self, bucket: u32) -> Option<BucketState> {
        self.0.state(bucket)
    }

    /// See [`DeviceBuckets::dirty_table_run`].
    pub(crate) fn dirty_run(&self, from: u32, max_len: u32) -> Option<(u32, u32)> {
        self.0.dirty_table_run(from, max_len)
    }

    /// Marks table blocks `first..first + n` written (clean).
    pub(crate) fn clean(&mut self, first: u32, n: u32) {
        self.0.dirty.clear(first, n);
    }

    /// Marks table blocks `first..first + n` dirty again (their write failed).
    pub(crate) fn mark_dirty(&mut self, first: u32, n: u32) {
        self.0.dirty.mark(first, n);
    }
}

/// Where one new btree node's copies are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NodeAlloc {
    /// Copies in `ptrs`.
    pub(crate) nr_ptrs: u32,
    /// The copies, on distinct members.
    pub(crate) ptrs: [NodePtr; MAX_REPLICAS as usize],
}

/// A parked request, as shown in `internal/alloc_debug`.
#[derive(Clone, Copy)]
struct ParkedInfo {
    id: u64,
    inputs: RequestInputs,
    since: Ktime,
    wakeups: u64,
    /// Set (under the state lock) by the abort knob, which counted the request as failed: the
    /// request returns `ECANCELED` at its next look or as it returns.
    aborted: bool,
}

/// A test hook in a parked request's loop: once armed, a request that was just woken stops
/// here, after it has handled the wake and before it parks and looks again, until the hook is
/// released. KUnit tests use it to act deterministically in that window. Unarmed (always, outside
/// the tests) it costs one atomic load per wakeup of a parked request, never on the fast path.
#[pin_data]
pub(crate) struct WakeHook {
    armed: AtomicBool,
    /// Requests stopped in the hook right now.
    held: AtomicUsize,
    #[pin]
    gate: WaitList,
}

impl WakeHook {
    fn new() -> impl PinInit<Self> {
        pin_init!(WakeHook {
            armed: AtomicBool::new(false),
            held: AtomicUsize::new(0),
            gate: WaitList::new(),
        })
    }

    /// Stops woken requests from now on.
    #[allow(dead_code, reason = "used by the KUnit tests")]
    pub(crate) fn arm(&self) {
        self.armed.store(true, Ordering::Release);
    }

    /// Lets every stopped request go on, and stops no more.
    #[allow(dead_code, reason = "used by the KUnit tests")]
    pub(crate) fn release(&self) {
        self.armed.store(false, Ordering::Release);
        self.gate.wake_all();
    }

    /// Requests stopped in the hook right now.
    #[allow(dead_code, reason = "used by the KUnit tests")]
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// Called by a woken request: stops while armed.
    fn pass(&self) {
        if !self.armed.load(Ordering::Acquire) {
            return;
        }
        stack_pin_init!(let cl = StackClosure::new(&self.gate));
        // Park, then look (a release between the look and the sleep wakes the park).
        let parked = cl.as_mut().park();
        self.held.fetch_add(1, Ordering::AcqRel);
        if self.armed.load(Ordering::Acquire) {
            let _ = parked.sync();
        } else {
            drop(parked);
        }
        self.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Allocator state behind [`Allocator::state`].
struct AllocState {
    /// Devices by member index.
    devices: KVec<DeviceBuckets>,
    parked: KVec<ParkedInfo>,
    next_id: u64,
    last_report: Option<Ktime>,
    /// Devices the last blocked request was refused on (bit per member).
    starved: u32,
    /// Members taken out of allocation (`dev-N/writable` = 0), bit per member. Kept apart from
    /// `devices`, which mounting replaces once the bucket tables are read, so a write made
    /// before that is not lost: [`Allocator::install_devices`] applies it to the new devices.
    not_writable: u32,
    /// Members removed while mounted (bit per member): never writable again.
    retired: u32,
    /// Where every attempt snapshots the devices (rewritten for the installed devices at each
    /// attempt; kept here so an attempt does not build a `MAX_MEMBERS` array).
    snaps: [DeviceSnapshot; MAX_MEMBERS],
    /// When the last degraded allocation line went out, and the events since not reported.
    last_degraded_report: Option<Ktime>,
    degraded_unreported: u64,
}

/// What a request's caller reads afresh at every attempt.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LiveInputs {
    /// Copies of each node: the live `metadata_replicas`.
    pub(crate) replicas: u32,
    /// Seconds before a parked request is reported (0: never).
    pub(crate) stuck_timeout_s: u32,
    /// The members the live `metadata_target` names (bit per member; 0: no target), from the
    /// live option and the members' labels.
    pub(crate) target: u32,
    /// The live `metadata_target_fallback`.
    pub(crate) fallback: bool,
    /// The live `metadata_replicas_required`: the fewest copies a degraded request may take.
    pub(crate) required: u32,
    /// The live `metadata_degraded_writes`.
    pub(crate) degrade: bool,
}

// `LiveInputs::pack` keeps the target's members in 16 bits.
const _: () = assert!(MAX_MEMBERS <= 16);

impl LiveInputs {
    /// The inputs the options `o` give, with the members' labels `labels` (for the members
    /// `metadata_target` names).
    pub(crate) fn of(o: &Options, labels: &[Label]) -> LiveInputs {
        LiveInputs {
            replicas: o.get(Opt::MetadataReplicas),
            stuck_timeout_s: o.get(Opt::AllocatorStuckTimeout),
            target: o.target().members(labels),
            fallback: o.get(Opt::MetadataTargetFallback) != 0,
            required: o.get(Opt::MetadataReplicasRequired),
            degrade: o.get(Opt::MetadataDegradedWrites) != 0,
        }
    }

    // One word: `replicas` in bits 0..8, `stuck_timeout_s` in 8..32, `target` (one bit per
    // member, at most `MAX_MEMBERS` = 16) in 32..48, `fallback` in bit 48, `required` in
    // 49..57, `degrade` in bit 57. The option table's ranges (`metadata_replicas` and
    // `metadata_replicas_required` <= 4, `allocator_stuck_timeout` <= 3600) make every field
    // fit; a value that did not would be saturated, never wrapped into another field.
    /// A request for `nodes` nodes at `watermark` with these inputs.
    #[inline]
    pub(crate) fn request(&self, nodes: u32, watermark: Watermark) -> RequestInputs {
        RequestInputs {
            nodes,
            replicas: self.replicas,
            watermark,
            target: self.target,
            fallback: self.fallback,
        }
    }

    fn pack(self) -> u64 {
        (self.replicas.min(0xff) as u64)
            | (self.stuck_timeout_s.min(0xff_ffff) as u64) << 8
            | ((self.target & 0xffff) as u64) << 32
            | (self.fallback as u64) << 48
            | (self.required.min(0xff) as u64) << 49
            | (self.degrade as u64) << 57
    }

    fn unpack(v: u64) -> LiveInputs {
        LiveInputs {
            replicas: (v & 0xff) as u32,
            stuck_timeout_s: ((v >> 8) & 0xff_ffff) as u32,
            target: ((v >> 32) & 0xffff) as u32,
            fallback: (v >> 48) & 1 != 0,
            required: ((v >> 49) & 0xff) as u32,
            degrade: (v >> 57) & 1 != 0,
        }
    }
}

/// The [`LiveInputs`] in force, readable without a lock: one atomic word, so every attempt of
/// a request (the fast path's one included) reads a consistent pair at the cost of one load.
/// The owner of the live options publishes every change here, under the lock that serialises
/// those changes, before it wakes parked requests: a woken request reads the new value.
pub(crate) struct LiveCell(AtomicU64);

impl LiveCell {
    /// A cell holding `v`.
    pub(crate) fn new(v: LiveInputs) -> LiveCell {
        LiveCell(AtomicU64::new(v.pack()))
    }

    /// Puts `v` in force for the next read.
    pub(crate) fn publish(&self, v: LiveInputs) {
        self.0.store(v.pack(), Ordering::Release);
    }

    /// The inputs in force.
    #[inline]
    pub(crate) fn read(&self) -> LiveInputs {
        LiveInputs::unpack(self.0.load(Ordering::Acquire))
    }
}

/// The allocator of one filesystem.
#[pin_data]
pub(crate) struct Allocator {
    uuid: [u8; 16],
    /// Parked requests wait here.
    wait: WaitList,
    /// Requests failed by the abort knob.
    aborted: AtomicU64,
    /// Wakeups seen by parked requests.
    wakeups: AtomicU64,
    /// Requests that had to park.
    parks: AtomicU64,
    /// Sleeps of parked requests that ended by their timeout (the stuck report's clock).
    timeouts: AtomicU64,
    /// Parked requests served with fewer copies than asked (`metadata_degraded_writes`), and
    /// the node copies they went without.
    degraded_allocs: AtomicU64,
    degraded_copies_short: AtomicU64,
    /// The last request that could not get its full copies degraded, and none got them since:
    /// the next blocked one degrades at once (see `alloc_policy::may_degrade`).
    degrading: AtomicBool,
    /// Test hook: holds woken requests before they park again (off unless a test arms it).
    #[pin]
    pub(crate) wake_hook: WakeHook,
    /// Devices and parked requests. Private: every change that can unblock a request goes
    /// through a method that wakes parked requests after it ([`Allocator::update`] and the
    /// named ones), so the rule on [`Allocator::wake_after_state_change`] holds by construction.
    #[pin]
    state: Mutex<AllocState>,
}

/// `ECANCELED`: what requests failed by the abort knob return (the 6.12 kernel crate has no
/// constant for it).
pub(crate) fn ecanceled() -> Error {
    Error::from_errno(-(kernel::bindings::ECANCELED as i32))
}

/// Why [`Allocator::alloc_nodes`] failed.
pub(crate) fn describe_alloc_error(e: Error) -> &'static str {
    if e == ecanceled() {
        "aborted through internal/abort_stuck_allocations"
    } else if e == EINTR {
        "killed while waiting"
    } else {
        "cannot be served"
    }
}

impl Allocator {
    /// An allocator over `devices` (by member index) for filesystem `uuid`.
    pub(crate) fn new(uuid: [u8; 16], devices: KVec<DeviceBuckets>) -> impl PinInit<Self> {
        pin_init!(Allocator {
            uuid,
            wait: WaitList::new(),
            aborted: AtomicU64::new(0),
            wakeups: AtomicU64::new(0),
            parks: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            degraded_allocs: AtomicU64::new(0),
            degraded_copies_short: AtomicU64::new(0),
            degrading: AtomicBool::new(false),
            wake_hook <- WakeHook::new(),
            state <- new_mutex!(AllocState {
                devices,
                parked: KVec::new(),
                next_id: 1,
                last_report: None,
                starved: 0,
                not_writable: 0,
                retired: 0,
                snaps: [DeviceSnapshot::default(); MAX_MEMBERS],
                last_degraded_report: None,
                degraded_unreported: 0,
            }),
        })
    }

    /// Wakes every parked request, to rebuild its inputs and try again.
    pub(crate) fn wake_all(&self) {
        self.wait.wake_all();
    }

    /// Wakes parked requests after a change made under [`Allocator::state`], skipping the
    /// wake when nobody is parked. That is safe for such changes only: a request parks before
    /// it looks at the state under the same lock, so either its look comes after our unlock
    /// and sees the change, or its park came before our lock and `is_empty` sees it.
    fn wake_after_state_change(&self) {
        if !self.wait.is_empty() {
            self.wait.wake_all();
        }
    }

    /// Runs `look` on the devices (by member index) under the state lock, and returns what it
    /// returns: a consistent view for the bucket table writer, the discard worker's run search
    /// and the counts shown. Changes nothing, so wakes nobody.
    pub(crate) fn inspect<R>(&self, look: impl FnOnce(&[DeviceBuckets]) -> R) -> R {
        look(&self.state.lock().devices)
    }

    /// Runs `change` on the devices (by member index) under the state lock, then wakes parked
    /// requests: recovery's and the commit's bucket state changes (reconciliation, replayed
    /// journal updates, freed nodes) go through here.
    pub(crate) fn update<R>(&self, change: impl FnOnce(&mut [DeviceBuckets]) -> R) -> R {
        let r = change(&mut self.state.lock().devices);
        self.wake_after_state_change();
        r
    }

    /// Runs `look` on member `m`'s bucket table view (`None` before its device is installed)
    /// under the state lock: the table writer encodes the dirty blocks and marks them clean.
    /// Changes no bucket state, so wakes nobody.
    pub(crate) fn table<R>(&self, m: usize, look: impl FnOnce(Option<TableView<'_>>) -> R) -> R {
        look(self.state.lock().devices.get_mut(m).map(TableView))
    }

    /// Buckets per state of member `m` (zeros before its device is installed).
    pub(crate) fn counts(&self, m: usize) -> [u64; NR_STATES] {
        self.inspect(|d| d.get(m).map_or([0; NR_STATES], |d| d.index.counts()))
    }

    /// Fails every request parked right now with `ECANCELED`; returns how many it failed.
    ///
    /// Each request registered in the parked list is marked under the state lock, and each
    /// one marked (the count returned) fails: it looks at its mark under the same lock at every
    /// look and as it returns, wherever in its loop the abort found it. Requests an earlier
    /// abort marked and that have not returned yet are not counted again.
    pub(crate) fn abort_parked(&self) -> usize {
        let mut marked = 0;
        for p in self.state.lock().parked.iter_mut() {
            if !p.aborted {
                p.aborted = true;
                marked += 1;
            }
        }
        // Marked requests that are asleep must wake to see it. One that is not parked on the
        // wait list right now looks at its mark after it parks again.
        self.wake_all();
        marked
    }

    /// Number of requests parked right now.
    #[allow(dead_code, reason = "used by the KUnit tests")]
    pub(crate) fn parked(&self) -> usize {
        self.state.lock().parked.len()
    }

    /// Sleeps of parked requests that ended by their timeout, since the allocator was made.
    #[allow(dead_code, reason = "used by the KUnit tests")]
    pub(crate) fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }

    /// Marks the `need_discard` buckets of `member` in `start..start + len` free, and wakes
    /// parked requests.
    pub(crate) fn free_bucket_run(&self, member: usize, start: u32, len: u32) {
        {
            let mut st = self.state.lock();
            if let Some(d) = st.devices.get_mut(member) {
                for b in start..start.saturating_add(len) {
                    if d.state(b) == Some(BucketState::NeedDiscard) {
                        d.set_state(b, BucketState::Free);
                    }
                }
            }
        }
        self.wake_after_state_change();
    }

    /// Takes member `m` out of allocation for good (it was removed while mounted).
    pub(crate) fn retire(&self, m: usize) {
        if m < MAX_MEMBERS {
            self.state.lock().retired |= 1 << m;
        }
        self.set_writable(m, false);
    }

    /// Lets member `m` take allocations, or not (a device state change): parked requests
    /// are woken to decide again with the new device set. Recorded per member, so it also
    /// holds for devices installed later ([`Allocator::install_devices`]). A retired member
    /// stays out.
    pub(crate) fn set_writable(&self, m: usize, writable: bool) {
        if m >= MAX_MEMBERS {
            return;
        }
        {
            let mut st = self.state.lock();
            // A removed member stays out, whatever a `dev-N/writable` write racing the removal
            // asks (decided under this lock, as the removal's `retire` is).
            let writable = writable && st.retired & (1 << m) == 0;
            if writable {
                st.not_writable &= !(1 << m);
            } else {
                st.not_writable |= 1 << m;
            }
            if let Some(d) = st.devices.get_mut(m) {
                d.writable = writable;
            }
        }
        self.wake_after_state_change();
    }

    /// Whether member `m` takes allocations (as last set, whether or not its device is
    /// installed yet).
    pub(crate) fn writable(&self, m: usize) -> bool {
        m < MAX_MEMBERS && self.state.lock().not_writable & (1 << m) == 0
    }

    /// Installs the devices (by member index), with the writable flags set so far, and wakes
    /// parked requests.
    pub(crate) fn install_devices(&self, mut devices: KVec<DeviceBuckets>) {
        {
            let mut st = self.state.lock();
            for (m, d) in devices.iter_mut().enumerate() {
                d.writable = m < MAX_MEMBERS && st.not_writable & (1 << m) == 0;
            }
            st.devices = devices;
        }
        self.wake_after_state_change();
    }

    /// Adds the device of a member added while mounted, as member `m`, and wakes parked
    /// requests: they decide again with its buckets. `EBUSY` (and nothing added) unless the
    /// devices are installed and `m` is the next member index.
    pub(crate) fn add_device(&self, m: usize, mut device: DeviceBuckets) -> Result {
        {
            let mut st = self.state.lock();
            if m >= MAX_MEMBERS || st.devices.len() != m {
                return Err(EBUSY);
            }
            device.writable = st.not_writable & (1 << m) == 0;
            st.devices.push(device, GFP_KERNEL)?;
        }
        self.wake_after_state_change();
        Ok(())
    }

    /// Gives back nodes allocated but never written (a request whose user failed): their
    /// buckets are free again at once, and parked requests are woken.
    pub(crate) fn release_nodes(&self, nodes: &[NodeAlloc]) {
        {
            let mut st = self.state.lock();
            for n in nodes {
                for p in &n.ptrs[..n.nr_ptrs as usize] {
                    if let Some(d) = st.devices.get_mut(p.member as usize) {
                        if d.state(p.bucket) == Some(BucketState::Btree) {
                            d.set_state(p.bucket, BucketState::Free);
                        }
                    }
                }
            }
        }
        self.wake_after_state_change();
    }

    /// Devices the last blocked request was refused on (bit per member), for the discard
    /// worker to serve first.
    pub(crate) fn starved_mask(&self) -> u32 {
        self.state.lock().starved
    }

    /// Allocates `nodes` btree nodes at `watermark`, each with `inputs().replicas` copies on
    /// distinct devices, into `out`. Parks while the devices cannot serve the request, and
    /// rebuilds every input on each wakeup.
    ///
    /// Errors: `ECANCELED` (abort knob), `EINTR` (fatal signal), `EINVAL` (a request that can
    /// never be served, such as more replicas than devices).
    pub(crate) fn alloc_nodes(
        &self,
        nodes: u32,
        watermark: Watermark,
        inputs: impl Fn() -> LiveInputs,
        out: &mut KVec<NodeAlloc>,
    ) -> Result {
        // The fast path: served at once, no closure to set up and no clock read.
        let live = inputs();
        let req = live.request(nodes, watermark);
        let degrade = may_degrade(
            live.degrade,
            live.stuck_timeout_s,
            0,
            live.replicas,
            live.required,
            self.degrading.load(Ordering::Relaxed),
        )
        .then_some(live.required);
        let before = out.len();
        if self.try_alloc(&req, out, None, degrade)?.is_none() {
            if degrade.is_some() {
                self.after_served(&req, &out[before..], 0);
            }
            return Ok(());
        }
        // Blocked: the request's clock (its stuck report, `alloc_debug`) starts here, one
        // attempt after it was made.
        let start = Ktime::ktime_get();
        // Blocked: register in the parked list, where the abort knob finds (and marks) it.
        let id = {
            let mut st = self.state.lock();
            let id = st.next_id;
            st.next_id += 1;
            st.parked.push(
                ParkedInfo {
                    id,
                    inputs: req,
                    since: start,
                    wakeups: 0,
                    aborted: false,
                },
                GFP_KERNEL,
            )?;
            id
        };
        self.parks.fetch_add(1, Ordering::Relaxed);
        let ret = self.wait_for_nodes(id, nodes, watermark, &inputs, out, start);
        // Leave the parked list, unless a successful look already took us off it. An abort
        // that marked us before we left counted us as failed: fail, whatever ended the wait.
        if self.unregister(id) {
            self.aborted.fetch_add(1, Ordering::Relaxed);
            return Err(ecanceled());
        }
        ret
    }

    /// The parked part of [`Allocator::alloc_nodes`], for request `id` (registered in the
    /// parked list). Returns `ECANCELED` as soon as a look finds the request marked by the
    /// abort knob; on success, the look that served it also took it off the parked list.
    /// Not inlined: the parked path's state (its closure on the stack, the last decision)
    /// stays off the frame of the fast path, which runs under the btree insert.
    #[inline(never)]
    fn wait_for_nodes(
        &self,
        id: u64,
        nodes: u32,
        watermark: Watermark,
        inputs: &impl Fn() -> LiveInputs,
        out: &mut KVec<NodeAlloc>,
        start: Ktime,
    ) -> Result {
        // Whether this request printed its stuck report; until then, milliseconds after
        // `start` before which the rate limit refuses it.
        let mut reported = false;
        let mut report_not_before = 0i64;
        stack_pin_init!(let cl = StackClosure::new(&self.wait));
        // Park first, then look again (a wake between a look and the park would otherwise be
        // lost), then sleep; after every wake, park and look again. The abort mark needs no
        // wake to be seen: the knob marks under the state lock, then wakes, and every look
        // reads the mark under that lock after parking.
        loop {
            let mut parked = cl.as_mut().park();
            loop {
                let live = inputs();
                let req = live.request(nodes, watermark);
                // Parked past the stuck timeout with `metadata_degraded_writes` on: fewer
                // copies (at least `metadata_replicas_required`) will do.
                let parked_ms = ktime_ms_delta(Ktime::ktime_get(), start);
                let degrade = may_degrade(
                    live.degrade,
                    live.stuck_timeout_s,
                    parked_ms,
                    live.replicas,
                    live.required,
                    self.degrading.load(Ordering::Relaxed),
                )
                .then_some(live.required);
                let before = out.len();
                let Some(decision) = self.try_alloc(&req, out, Some(id), degrade)? else {
                    self.after_served(&req, &out[before..], parked_ms);
                    return Ok(());
                };
                let sleep = if live.stuck_timeout_s == 0 || reported {
                    Timeout::Never
                } else {
                    let due = (live.stuck_timeout_s as i64 * 1000).max(report_not_before);
                    let elapsed = ktime_ms_delta(Ktime::ktime_get(), start);
                    Timeout::ms((due - elapsed).clamp(1, u32::MAX as i64) as u32)
                };
                match parked.sync_timeout(sleep, true) {
                    Ok(_) => {
                        self.wakeups.fetch_add(1, Ordering::Relaxed);
                        self.note_wakeup(id);
                        self.wake_hook.pass();
                        break;
                    }
                    Err((p, Interrupted::TimedOut)) => {
                        parked = p;
                        self.timeouts.fetch_add(1, Ordering::Relaxed);
                        let elapsed = ktime_ms_delta(Ktime::ktime_get(), start);
                        if elapsed >= live.stuck_timeout_s as i64 * 1000
                            && elapsed >= report_not_before
                        {
                            match self.report_stuck(id, &req, &decision, start) {
                                None => reported = true,
                                Some(wait_ms) => report_not_before = elapsed + wait_ms,
                            }
                        }
                    }
                    Err((_, Interrupted::Killed)) => return Err(EINTR),
                }
            }
        }
    }

    /// Takes request `id` off the parked list if it is still on it; returns whether the abort
    /// knob had marked it.
    fn unregister(&self, id: u64) -> bool {
        let mut st = self.state.lock();
        match st.parked.iter().position(|p| p.id == id) {
            Some(i) => st.parked.swap_remove(i).is_some_and(|p| p.aborted),
            None => false,
        }
    }

    /// One attempt: `Ok(None)` if `out` got the nodes, `Ok(Some(decision))` if blocked.
    ///
    /// For parked request `parked` (registered in the parked list), under the one lock: fails
    /// with `ECANCELED` if the abort knob marked it, records its inputs, and takes it off the
    /// parked list if it is served, so an abort either comes first and fails it or comes after
    /// and does not count it. With `degrade` (the fewest copies allowed), a request the full
    /// replica count blocks takes as many copies as the devices can serve, at least that many.
    fn try_alloc(
        &self,
        req: &RequestInputs,
        out: &mut KVec<NodeAlloc>,
        parked: Option<u64>,
        degrade: Option<u32>,
    ) -> Result<Option<Decision>> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let slot = match parked {
            Some(id) => st.parked.iter().position(|p| p.id == id),
            None => None,
        };
        if let Some(p) = slot.and_then(|i| st.parked.get_mut(i)) {
            if p.aborted {
                // `alloc_nodes` counts it when it takes it off the list.
                return Err(ecanceled());
            }
            p.inputs = *req;
        }
        // A fresh snapshot of every installed device, at every attempt.
        let n = st.devices.len().min(MAX_MEMBERS);
        for (s, d) in st.snaps.iter_mut().zip(st.devices.iter()) {
            *s = d.snapshot();
        }
        let mut decision = decide(&st.snaps[..n], req);
        if let (Decision::Blocked { .. }, Some(required)) = (&decision, degrade) {
            if let Some(d) = decide_degraded(&st.snaps[..n], req, required) {
                decision = d;
            }
        }
        match decision {
            Decision::Allocate { devices, count } => {
                out.reserve(req.nodes as usize, GFP_KERNEL)?;
                let count = (count as usize).min(devices.len());
                for _ in 0..req.nodes {
                    let mut node = NodeAlloc::default();
                    for (&dev, ptr) in devices.iter().zip(node.ptrs.iter_mut()).take(count) {
                        // `decide` checked every chosen device has `nodes` free buckets.
                        let d = st.devices.get_mut(dev as usize).ok_or(ENOSPC)?;
                        let bucket = d.take_free().ok_or(ENOSPC)?;
                        *ptr = NodePtr {
                            member: dev as u32,
                            bucket,
                        };
                    }
                    node.nr_ptrs = count as u32;
                    out.push(node, GFP_KERNEL)?;
                }
                st.starved = 0;
                if let Some(i) = slot {
                    st.parked.swap_remove(i);
                }
                Ok(None)
            }
            Decision::Impossible => Err(EINVAL),
            Decision::Blocked { refused, usable } => {
                st.starved = refused
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.is_some())
                    .fold(0, |m, (i, _)| m | 1 << i);
                Ok(Some(Decision::Blocked { refused, usable }))
            }
        }
    }

    /// Allocates `nodes` btree nodes with `live.replicas` copies at `watermark` if the devices
    /// can serve them now; never parks and never takes fewer copies. Returns whether `out` got
    /// them (`EINVAL`: a request that can never be served). The re-replication worker's try.
    pub(crate) fn try_alloc_now(
        &self,
        nodes: u32,
        watermark: Watermark,
        live: &LiveInputs,
        out: &mut KVec<NodeAlloc>,
    ) -> Result<bool> {
        let req = live.request(nodes, watermark);
        Ok(self.try_alloc(&req, out, None, None)?.is_none())
    }

    /// Parked requests served with fewer copies, and the node copies they went without.
    pub(crate) fn degraded_counts(&self) -> (u64, u64) {
        (
            self.degraded_allocs.load(Ordering::Relaxed),
            self.degraded_copies_short.load(Ordering::Relaxed),
        )
    }

    /// A request that was parked or may have degraded got `nodes`: records whether it
    /// degraded (the allocator is degrading until a request gets its full copies again) and
    /// reports it.
    fn after_served(&self, req: &RequestInputs, nodes: &[NodeAlloc], parked_ms: i64) {
        let copies = nodes
            .iter()
            .map(|n| n.nr_ptrs)
            .min()
            .unwrap_or(req.replicas);
        let degraded = copies < req.replicas;
        self.degrading.store(degraded, Ordering::Relaxed);
        if degraded {
            self.note_degraded(req, copies, parked_ms);
        }
    }

    /// A request was served with `copies` copies of each node instead of `req.replicas`
    /// after `parked_ms` parked: counted, and one dmesg line, at most one a second (the events
    /// in between are counted in the next line).
    fn note_degraded(&self, req: &RequestInputs, copies: u32, parked_ms: i64) {
        self.degraded_allocs.fetch_add(1, Ordering::Relaxed);
        self.degraded_copies_short.fetch_add(
            req.nodes as u64 * req.replicas.saturating_sub(copies) as u64,
            Ordering::Relaxed,
        );
        let now = Ktime::ktime_get();
        let suppressed = {
            let mut st = self.state.lock();
            let due = st.last_degraded_report.map_or(true, |t| {
                ktime_ms_delta(now, t) >= DEGRADED_REPORT_INTERVAL_MS
            });
            if !due {
                st.degraded_unreported += 1;
                return;
            }
            st.last_degraded_report = Some(now);
            core::mem::take(&mut st.degraded_unreported)
        };
        pr_warn!(
            "{}: allocator: {} btree node(s) allocated degraded, {copies} of {} copies, after \
             {parked_ms} ms parked (metadata_degraded_writes); re-replicated when buckets allow \
             ({suppressed} more degraded allocation(s) since the last line)\n",
            crate::shared::superblock::UuidFmt(&self.uuid),
            req.nodes,
            req.replicas
        );
    }

    fn note_wakeup(&self, id: u64) {
        if let Some(p) = self.state.lock().parked.iter_mut().find(|p| p.id == id) {
            p.wakeups += 1;
        }
    }
}

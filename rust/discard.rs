// SPDX-License-Identifier: GPL-2.0

//! The discard worker: turns `need_discard` buckets into `free` ones.
//!
//! It runs on the module's own workqueue ([`crate::bdev::discard_queue`], drained before the
//! module goes) whenever it is kicked: at mount once the discard rule is ready (before journal
//! replay, so a replay parked on a starved device is unstuck by it), after every commit that
//! freed old btree nodes, and by `internal/trigger_discards`. Devices that parked requests
//! were refused on are served first. For each run of contiguous `need_discard` buckets, up to
//! [`MAX_COMMAND_BYTES`] (and the device's largest discard), it issues one block-device
//! discard (when the `discard` option, the member's discard flag and the device all allow it;
//! otherwise the buckets are freed without I/O), marks the buckets free, wakes the allocator,
//! and persists the bucket tables. It checks for a stop between two commands, so an unmount
//! waits for one bounded command at most.
//!
//! This file owns the discard state ([`Discard`]: the worker's controller, the counters, the
//! rule's inputs in [`DiscardRule`]); it does not know the filesystem type, only what the
//! worker needs of it ([`DiscardHost`]), so it imports nothing that imports it back.
//!
//! # Before the rule is ready
//!
//! The rule below needs the committed btree's nodes, the journal pins and bucket states
//! reconciled with the btree; none of them exists before recovery has loaded the btree. A kick
//! before [`rule_ready`] (a sysfs write during the mount, say) is only remembered,
//! and served once the rule is ready; before that no worker runs at all.
//!
//! # The rule
//!
//! A bucket is discarded only if no journal entry or btree node that a future replay needs points
//! into it. Journal and metadata areas lie below `first_bucket` and are never in the `need_discard`
//! state. A btree node's bucket becomes `need_discard` only once a committed superblock no longer
//! reaches it (`Btree::committed` in the commit, the reconciliation in `recovery.rs`). A bucket
//! that a journal entry being replayed frees, to `need_discard` or to `free`, is pinned until the
//! commit that puts the entry in the btree: until then the on-disk state predates the free, and a
//! mount that fails or crashes before the commit, or a later replay that stops before that entry (a
//! torn or unreadable copy), goes back to a state in which the bucket's contents are still in use.
//! So until the commit such a bucket is neither discarded nor written: one freed to `free` is held
//! as `need_discard` (the allocator only hands out `free` buckets) and becomes `free` in the
//! commit, after the superblock is written and before the bucket tables are; it is not discarded
//! (the entry said it needs none). The run search skips pinned buckets, and refuses (and reports)
//! any bucket the committed btree still uses.

use crate::allocator::Allocator;
use crate::bdev::{BlockDevice, DiscardRange, IoBatch, IoTicket};
use crate::btree::Btree;
use crate::shared::superblock::{Member as MemberDesc, NodePtr, UuidFmt, MAX_MEMBERS};
use crate::vec_ext::VecExt;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{
    alloc::{KVVec, KVec},
    new_condvar, new_mutex,
    prelude::*,
    sync::{Arc, CondVar, Mutex},
    time::Ktime,
};

/// Most buckets in one discard command.
const MAX_RUN: u32 = 1 << 16;

/// Most bytes in one discard command: a stop (unmount, killed mount) waits for one command at
/// most, so this bounds that wait (256 MiB is a fraction of a second even for devices that
/// discard at a few hundred MB/s), while still merging many buckets into one command (65536
/// buckets of 4 KiB, 4096 of 64 KiB, 16 of 16 MiB). A device whose largest discard is smaller
/// caps it further; a command covers at least one bucket.
pub(crate) const MAX_COMMAND_BYTES: u64 = 256 << 20;

/// Per-device discard counters, shown in `dev-N/`.
#[derive(Default)]
pub(crate) struct DiscardCounters {
    /// Buckets discarded with I/O.
    pub(crate) buckets: AtomicU64,
    /// Discard commands issued (one per run of contiguous buckets).
    pub(crate) commands: AtomicU64,
    /// Bytes discarded.
    pub(crate) bytes: AtomicU64,
    /// Buckets freed without I/O (discard off or unsupported).
    pub(crate) without_io: AtomicU64,
    /// Discard commands that failed (the buckets are freed all the same).
    pub(crate) errors: AtomicU64,
    /// Nanoseconds the worker spent draining this device (discards, freeing, table writes).
    pub(crate) ns: AtomicU64,
}

struct CtlState {
    /// A worker is queued or running.
    running: bool,
    /// A kick not yet served.
    pending: bool,
    /// The filesystem is going: no new worker, and a running one leaves between commands.
    stop: bool,
    /// The discard rule's inputs exist (see "Before the rule is ready" above).
    ready: bool,
}

/// Starts and stops the worker. Lives in its own `Arc` so the worker can finish with it after
/// it is done with the filesystem.
#[pin_data]
pub(crate) struct DiscardCtl {
    #[pin]
    state: Mutex<CtlState>,
    #[pin]
    idle: CondVar,
}

impl DiscardCtl {
    /// A stopped-but-startable controller.
    pub(crate) fn new() -> Result<Arc<DiscardCtl>> {
        Arc::pin_init(
            pin_init!(DiscardCtl {
                state <- new_mutex!(CtlState {
                    running: false,
                    pending: false,
                    stop: false,
                    ready: false,
                }),
                idle <- new_condvar!(),
            }),
            GFP_KERNEL,
        )
    }

    /// Stops the worker and waits until it no longer touches the filesystem. Idempotent; kicks
    /// after it are ignored. The work item may still be returning when this returns: module
    /// exit drains the queue for that.
    pub(crate) fn stop(&self) {
        let mut st = self.state.lock();
        st.stop = true;
        while st.running {
            self.idle.wait(&mut st);
        }
    }

    /// Pauses the worker (a read-only mount or remount): as [`DiscardCtl::stop`], but
    /// [`DiscardCtl::resume`] undoes it.
    fn pause(&self) {
        self.stop();
    }

    /// Undoes a [`DiscardCtl::pause`]; returns whether the discard rule is ready (so a kick
    /// starts the worker).
    fn resume(&self) -> bool {
        let mut st = self.state.lock();
        st.stop = false;
        st.ready
    }

    fn stopping(&self) -> bool {
        self.state.lock().stop
    }
}

/// The rule's inputs besides bucket states (see "The rule" above): the buckets of the
/// committed btree's nodes and the buckets journal entries not committed yet freed. Recovery
/// and the commit update them; the worker and the bucket table writer read them. Lock order:
/// the allocator's state first, then these (both readers look under the allocator's lock).
#[pin_data]
pub(crate) struct DiscardRule {
    /// Buckets of the committed btree's nodes, sorted: never discarded. (Sized by the tree:
    /// a `KVVec`, so a large tree is not one physically contiguous allocation.)
    #[pin]
    committed_nodes: Mutex<KVVec<NodePtr>>,
    /// Buckets freed by journal entries that are not committed yet, sorted: never discarded
    /// before the commit.
    #[pin]
    journal_pins: Mutex<KVVec<NodePtr>>,
}

/// The sort key of the rule's lists.
fn key(p: &NodePtr) -> (u32, u32) {
    (p.member, p.bucket)
}

impl DiscardRule {
    fn new() -> impl PinInit<Self> {
        pin_init!(DiscardRule {
            committed_nodes <- new_mutex!(KVVec::new()),
            journal_pins <- new_mutex!(KVVec::new()),
        })
    }

    /// Records the buckets of the committed btree's nodes.
    pub(crate) fn set_committed_nodes(&self, btree: &Btree) -> Result {
        let mut v = KVVec::new();
        let mut oom = false;
        btree.for_each_bucket(|p| oom |= v.push(p, GFP_KERNEL).is_err());
        if oom {
            return Err(ENOMEM);
        }
        v.sort_unstable_by_key(key);
        *self.committed_nodes.lock() = v;
        Ok(())
    }

    /// Pins a bucket freed by a journal entry being replayed, until the commit; the caller pins
    /// before it changes the bucket's state.
    pub(crate) fn pin_for_journal(&self, p: NodePtr) -> Result {
        let mut pins = self.journal_pins.lock();
        if let Err(i) = pins.binary_search_by_key(&key(&p), key) {
            pins.insert(i, p)?;
        }
        Ok(())
    }

    /// Drops every journal pin: the entries that freed the pinned buckets are committed.
    pub(crate) fn clear_journal_pins(&self) {
        self.journal_pins.lock().clear();
    }

    /// Whether a journal pin is held (a replay's bucket states are not committed yet).
    pub(crate) fn has_journal_pins(&self) -> bool {
        !self.journal_pins.lock().is_empty()
    }

    /// Whether the committed btree has a node copy in `bucket` of `member`.
    pub(crate) fn is_committed_node(&self, member: u32, bucket: u32) -> bool {
        let k = (member, bucket);
        self.committed_nodes
            .lock()
            .binary_search_by_key(&k, key)
            .is_ok()
    }
}

/// The first bucket of `member` at or after `from` in `list` (sorted by [`key`]): a binary
/// search.
fn next_listed(list: &[NodePtr], member: u32, from: u32) -> Option<u32> {
    let i = list.partition_point(|p| key(p) < (member, from));
    list.get(i).filter(|p| p.member == member).map(|p| p.bucket)
}

impl DiscardRule {
    /// The first bucket of `member` at or after `from` that must not be discarded now, and
    /// whether it holds a committed btree node (else a journal pin holds it): one binary search
    /// in each list, under each list's lock once.
    fn next_forbidden(&self, member: u32, from: u32) -> Option<(u32, bool)> {
        let node = next_listed(&self.committed_nodes.lock(), member, from);
        let pin = next_listed(&self.journal_pins.lock(), member, from);
        match (node, pin) {
            (Some(n), Some(p)) if p < n => Some((p, false)),
            (Some(n), _) => Some((n, true)),
            (None, Some(p)) => Some((p, false)),
            (None, None) => None,
        }
    }
}

/// One filesystem's discard state.
#[pin_data]
pub(crate) struct Discard {
    /// Starts and stops the worker.
    ctl: Arc<DiscardCtl>,
    /// Discard counters, by member index.
    pub(crate) counters: KVec<DiscardCounters>,
    /// The rule's inputs.
    #[pin]
    pub(crate) rule: DiscardRule,
}

impl Discard {
    /// The discard state of a filesystem of `nr_members` members: no worker, rule not ready.
    pub(crate) fn new(nr_members: usize) -> impl PinInit<Self, Error> {
        try_pin_init!(Discard {
            ctl: DiscardCtl::new()?,
            counters: {
                let mut v = KVec::with_capacity(nr_members, GFP_KERNEL)?;
                for _ in 0..nr_members {
                    v.push(DiscardCounters::default(), GFP_KERNEL)?;
                }
                v
            },
            rule <- DiscardRule::new(),
        }? Error)
    }

    /// Stops the worker and waits until it no longer touches the filesystem (see
    /// [`DiscardCtl::stop`]).
    pub(crate) fn stop(&self) {
        self.ctl.stop();
    }

    /// Pauses the worker for a read-only mount: it stops (waiting for a command in flight) and
    /// no kick starts it again until [`Discard::resume`]. The caller serialises pause and
    /// resume with each other and with the final [`Discard::stop`] (remount and unmount hold
    /// `s_umount`).
    pub(crate) fn pause(&self) {
        self.ctl.pause();
    }

    /// Lets kicks start the worker again after [`Discard::pause`]; returns whether the
    /// discard rule is ready (if not, recovery has not got that far, and no kick would run).
    pub(crate) fn resume(&self) -> bool {
        self.ctl.resume()
    }
}

/// What the worker needs of the filesystem it serves.
///
/// # Safety
///
/// The worker uses the value through a pointer after [`kick`] returns: an implementer must not
/// move (it is pinned) and must call [`Discard::stop`] on its [`DiscardHost::discard_state`]
/// before it is dropped; `stop` returns once the worker is done with it.
pub(crate) unsafe trait DiscardHost: Sync + 'static {
    /// The filesystem uuid, for messages.
    fn host_uuid(&self) -> &[u8; 16];
    /// Its discard state.
    fn discard_state(&self) -> &Discard;
    /// Its allocator.
    fn allocator(&self) -> &Allocator;
    /// Its number of members.
    fn nr_members(&self) -> usize;
    /// Member `m`'s geometry, device and name.
    fn member(&self, m: usize) -> Option<(&MemberDesc, &BlockDevice, &str)>;
    /// Whether the `discard` option and member `m`'s discard flag allow discards (the device
    /// may still not support them).
    fn discard_allowed(&self, m: usize) -> bool;
    /// Persists member `m`'s bucket table unless a replay's states are not committed yet;
    /// returns whether it wrote.
    fn persist_table(&self, m: usize) -> Result<bool>;
    /// Runs after every drain, on the worker (buckets may have been freed): the
    /// re-replication pass of degraded btree nodes (`heal.rs`). Stopped and waited for with
    /// the drain.
    fn after_drain(&self);
}

/// The filesystem, handed to the worker.
struct HostPtr<H>(*const H);

// SAFETY: `H` is `Sync`, and the pointer is only dereferenced while the host is alive and in
// place: the host stops the worker before it is dropped (the `DiscardHost` contract), `stop`
// waits for `running` to go false, and the worker clears `running` only after its last use.
unsafe impl<H: DiscardHost> Send for HostPtr<H> {}

impl<H> HostPtr<H> {
    /// The pointer (a method, so closures capture the whole `HostPtr`, which is `Send`).
    fn get(&self) -> *const H {
        self.0
    }
}

/// Asks the worker to look for `need_discard` buckets; starts it if it is idle and the
/// discard rule is ready, otherwise remembers the request (see [`rule_ready`]).
pub(crate) fn kick<H: DiscardHost>(host: &H) {
    let ctl = &host.discard_state().ctl;
    {
        let mut st = ctl.state.lock();
        if st.stop {
            return;
        }
        st.pending = true;
        if st.running || !st.ready {
            return;
        }
        st.running = true;
    }
    spawn_worker(host);
}

/// Marks the discard rule's inputs as present (committed nodes, reconciled bucket states;
/// journal pins are taken before the states they protect change), and serves every kick
/// made before, and the one recovery always makes.
pub(crate) fn rule_ready<H: DiscardHost>(host: &H) {
    host.discard_state().ctl.state.lock().ready = true;
    kick(host);
}

/// Queues the worker; the caller has set `running`.
fn spawn_worker<H: DiscardHost>(host: &H) {
    let ctl = host.discard_state().ctl.clone();
    let ptr = HostPtr(host as *const H);
    let worker_ctl = ctl.clone();
    let spawned = crate::bdev::discard_queue().try_spawn(GFP_KERNEL, move || {
        // SAFETY: See `HostPtr`: `running` is set, so the host outlives this use.
        let host = unsafe { &*ptr.get() };
        loop {
            {
                let mut st = worker_ctl.state.lock();
                if st.stop || !st.pending {
                    st.running = false;
                    worker_ctl.idle.notify_all();
                    return;
                }
                st.pending = false;
            }
            drain_need_discard(host, &worker_ctl);
            if !worker_ctl.stopping() {
                host.after_drain();
            }
        }
    });
    if spawned.is_err() {
        pr_err!(
            "{}: cannot start the discard worker (-12)\n",
            UuidFmt(host.host_uuid())
        );
        let mut st = ctl.state.lock();
        st.running = false;
        ctl.idle.notify_all();
    }
}

/// Most runs of one device in one batch: bounds the worker's memory (the bytes are bounded
/// by [`MAX_COMMAND_BYTES`]).
const MAX_RUNS_PER_BATCH: usize = 1024;

/// One device's part of a drain.
struct DevDrain {
    /// Member index.
    m: usize,
    /// Where the run search goes on: the runs before it are taken.
    next: u32,
    /// No run left at or after `next`.
    done: bool,
    /// The runs of the current batch (start, length), in bucket order.
    runs: KVec<(u32, u32)>,
    /// The same, as byte ranges for the discard.
    ranges: KVec<DiscardRange>,
    /// Buckets freed during this drain: the bucket table is written after it.
    freed: bool,
    /// Nanoseconds of the worker's time attributed to this device.
    ns: u64,
}

/// Discards and frees every `need_discard` bucket. Batch by batch: each device contributes
/// its next runs, up to one command's worth ([`command_buckets`]) in all, chained into one
/// discard; all devices' discards are submitted together and waited for once; then the runs
/// are freed, starved devices first. The stop is checked between two batches, so an unmount
/// waits for one bounded batch at most (the devices work on it in parallel).
fn drain_need_discard<H: DiscardHost>(host: &H, ctl: &DiscardCtl) {
    let alloc = host.allocator();
    let starved = alloc.starved_mask();
    let n = host.nr_members();
    let uuid = host.host_uuid();
    let first = (0..n).filter(|&m| starved & (1 << m) != 0);
    let order = Iterator::chain(first, (0..n).filter(|&m| starved & (1 << m) == 0));
    let mut devs: KVec<DevDrain> = KVec::new();
    for m in order {
        let d = (|| -> Result<DevDrain> {
            Ok(DevDrain {
                m,
                next: host.member(m).map_or(0, |g| g.0.first_bucket),
                done: false,
                runs: KVec::with_capacity(MAX_RUNS_PER_BATCH, GFP_KERNEL)?,
                ranges: KVec::with_capacity(MAX_RUNS_PER_BATCH, GFP_KERNEL)?,
                freed: false,
                ns: 0,
            })
        })()
        .and_then(|d| devs.push(d, GFP_KERNEL).map_err(Into::into));
        if let Err(e) = d {
            pr_err!(
                "{}: discard worker: no memory for a drain ({})\n",
                UuidFmt(uuid),
                e.to_errno()
            );
            return;
        }
    }
    loop {
        // Between two batches: an unmount waits for one bounded batch at most. The buckets
        // freed so far stay need_discard on disk, which is safe.
        if ctl.stopping() {
            return;
        }
        let start = Ktime::ktime_get();
        let mut busy = 0u64;
        for d in devs.iter_mut().filter(|d| !d.done) {
            d.runs.clear();
            let mut budget = command_buckets(host, d.m);
            while budget > 0 && d.runs.len() < MAX_RUNS_PER_BATCH {
                let Some((s, len)) = take_run(host, d.m, d.next, budget) else {
                    d.done = true;
                    break;
                };
                // The capacity is there: this push does not allocate.
                if d.runs.push((s, len), GFP_KERNEL).is_err() {
                    break;
                }
                d.next = s + len;
                budget -= len.min(budget);
            }
            if !d.runs.is_empty() {
                busy += 1;
            }
        }
        if busy == 0 {
            break;
        }
        discard_batch(host, &mut devs);
        for d in devs.iter_mut().filter(|d| !d.runs.is_empty()) {
            // The buckets are empty on the device now: the allocator may have them.
            for &(s, len) in d.runs.iter() {
                alloc.free_bucket_run(d.m, s, len);
            }
            d.freed = true;
        }
        // The devices worked on the batch together: each gets its share of the time.
        let ns = (Ktime::ktime_get().to_ns() - start.to_ns()).max(0) as u64;
        for d in devs.iter_mut().filter(|d| !d.runs.is_empty()) {
            d.ns += ns / busy;
        }
    }
    for d in devs.iter_mut().filter(|d| d.freed) {
        let start = Ktime::ktime_get();
        // During a replay the table is left to the commit (see `persist_bucket_table`):
        // the buckets freed here stay need_discard on disk until then, which is safe.
        if let Err(e) = host.persist_table(d.m) {
            pr_err!(
                "{}: bucket table write after discards failed ({})\n",
                UuidFmt(uuid),
                e.to_errno()
            );
        }
        d.ns += (Ktime::ktime_get().to_ns() - start.to_ns()).max(0) as u64;
        if let Some(c) = host.discard_state().counters.get(d.m) {
            c.ns.fetch_add(d.ns, Ordering::Relaxed);
        }
    }
}

/// Most buckets of member `m` in one discard command: [`MAX_COMMAND_BYTES`], the device's
/// largest discard (when it can discard) and [`MAX_RUN`], at least one bucket.
fn command_buckets<H: DiscardHost>(host: &H, m: usize) -> u32 {
    let Some((g, dev, _)) = host.member(m) else {
        return 1;
    };
    let mut bytes = MAX_COMMAND_BYTES;
    let dev_max = dev.max_discard_bytes();
    if dev_max > 0 {
        bytes = bytes.min(dev_max);
    }
    let per = (g.bucket_size as u64).max(1);
    (bytes / per).clamp(1, MAX_RUN as u64) as u32
}

/// The next run of contiguous `need_discard` buckets on member `m` at or after bucket `from`,
/// at most `max_len` long, cut short before any bucket the rule forbids (see the rule above).
///
/// The index finds each candidate run (`O(log n)`); the rule is checked once per candidate,
/// by a binary search for the first forbidden bucket at or after its start: a run that starts
/// on one is skipped past it, one that reaches one is cut there. So the search costs
/// `O(log n)` per skipped forbidden bucket plus the run, and takes the rule's two locks once
/// per candidate, not per bucket.
fn take_run<H: DiscardHost>(host: &H, m: usize, from: u32, max_len: u32) -> Option<(u32, u32)> {
    let first = host.member(m)?.0.first_bucket;
    let rule = &host.discard_state().rule;
    let uuid = host.host_uuid();
    // Under the allocator's lock, then the rule's (the lock order on `DiscardRule`).
    host.allocator().inspect(|devices| {
        let d = devices.get(m)?;
        let mut from = from.max(first);
        loop {
            let (start, len) = d.need_discard_run(from, max_len)?;
            let Some((cut, committed)) = rule.next_forbidden(m as u32, start) else {
                return Some((start, len));
            };
            if cut == start {
                // Pinned or (a bug) committed: skipped, as the search always did.
                from = start.checked_add(1)?;
                continue;
            }
            if cut - start >= len {
                return Some((start, len));
            }
            if committed {
                // need_discard and in the committed btree at once: a bug, say so.
                pr_err!(
                    "{}: dev-{m} bucket {cut} is need_discard but holds a committed btree \
                     node: not discarded\n",
                    UuidFmt(uuid)
                );
            }
            return Some((start, cut - start));
        }
    })
}

/// Issues the discards of the batch's runs (each device's chained, all devices at once,
/// waited for once), or counts them as freed without I/O where discards are off.
fn discard_batch<H: DiscardHost>(host: &H, devs: &mut [DevDrain]) {
    let counters = &host.discard_state().counters;
    for d in devs.iter_mut() {
        d.ranges.clear();
        let (Some((g, dev, _)), Some(c)) = (host.member(d.m), counters.get(d.m)) else {
            continue;
        };
        if d.runs.is_empty() {
            continue;
        }
        if !(host.discard_allowed(d.m) && dev.max_discard_bytes() > 0) {
            let buckets: u64 = d.runs.iter().map(|r| r.1 as u64).sum();
            c.without_io.fetch_add(buckets, Ordering::Relaxed);
            continue;
        }
        for &(s, len) in d.runs.iter() {
            let r = DiscardRange {
                off: g.bucket_offset(s as u64),
                len: len as u64 * g.bucket_size as u64,
            };
            // The capacity is there (as many as runs): this push does not allocate.
            if d.ranges.push(r, GFP_KERNEL).is_err() {
                break;
            }
        }
    }
    let devs = &*devs;
    let issued = devs.iter().filter(|d| !d.ranges.is_empty()).count();
    if issued == 0 {
        return;
    }
    // Each device's ticket, or the error that kept it from being submitted.
    let mut results: [Option<Result<IoTicket>>; MAX_MEMBERS] = [None; MAX_MEMBERS];
    let mut batch = match IoBatch::with_capacity(issued) {
        Ok(b) => Some(b),
        Err(e) => {
            for d in devs.iter().filter(|d| !d.ranges.is_empty()) {
                if let Some(r) = results.get_mut(d.m) {
                    *r = Some(Err(e));
                }
            }
            None
        }
    };
    if let Some(batch) = batch.as_mut() {
        for d in devs.iter().filter(|d| !d.ranges.is_empty()) {
            if let (Some((_, dev, _)), Some(r)) = (host.member(d.m), results.get_mut(d.m)) {
                *r = Some(batch.discard(dev, &d.ranges));
            }
        }
        if let Err(e) = batch.run() {
            for r in results.iter_mut().filter(|r| r.is_some()) {
                *r = Some(Err(e));
            }
        }
    }
    for d in devs.iter().filter(|d| !d.ranges.is_empty()) {
        let (Some((g, _, name)), Some(c), Some(Some(r))) =
            (host.member(d.m), counters.get(d.m), results.get(d.m))
        else {
            continue;
        };
        let status = match (r, batch.as_ref()) {
            (Ok(t), Some(b)) => b.status(*t),
            (Ok(_), None) => Err(EINVAL),
            (Err(e), _) => Err(*e),
        };
        let first = d.runs.first().map_or(0, |r| r.0);
        let end = d.runs.last().map_or(0, |r| r.0 + r.1);
        match status {
            Ok(()) => {
                let buckets: u64 = d.runs.iter().map(|r| r.1 as u64).sum();
                c.commands
                    .fetch_add(d.ranges.len() as u64, Ordering::Relaxed);
                c.buckets.fetch_add(buckets, Ordering::Relaxed);
                c.bytes
                    .fetch_add(buckets * g.bucket_size as u64, Ordering::Relaxed);
            }
            Err(e) => {
                // A discard is advice to the device: the buckets are empty either way.
                c.errors.fetch_add(1, Ordering::Relaxed);
                pr_warn!(
                    "{}: dev-{} ({name}): discard of buckets {}..{} ({} run(s)) failed ({}); \
                     freeing them anyway\n",
                    UuidFmt(host.host_uuid()),
                    d.m,
                    first,
                    end,
                    d.runs.len(),
                    e.to_errno()
                );
            }
        }
    }
}

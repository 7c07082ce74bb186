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
//! # Before the rule is ready
//!
//! The rule below needs the committed btree's nodes, the journal pins and bucket states
//! reconciled with the btree; none of them exists before recovery has loaded the btree. A kick
//! before [`Fs::discard_rule_ready`] (a sysfs write during the mount, say) is only remembered,
//! and served once the rule is ready; before that no worker runs at all.
//!
//! # The rule
//!
//! A bucket is discarded only if no journal entry or btree node that a future replay needs
//! points into it. Journal and metadata areas lie below `first_bucket` and are never in the
//! `need_discard` state. A btree node's bucket becomes `need_discard` only once a committed
//! superblock no longer reaches it (`Btree::committed`, `Fs::reconcile_buckets`). A bucket
//! that a journal entry being replayed frees, to `need_discard` or to `free`, is pinned until
//! the commit that puts the entry in the btree: until then the on-disk state predates the
//! free, and a mount that fails or crashes before the commit, or a later replay that stops
//! before that entry (a torn or unreadable copy), goes back to a state in which the bucket's
//! contents are still in use. So until the commit such a bucket is neither discarded nor
//! written: one freed to `free` is held as `need_discard` (the allocator only hands out
//! `free` buckets) and becomes `free` in the commit, after the superblock is written and
//! before the bucket tables are; it is not discarded (the entry said it needs none).
//! [`Fs::take_run`] skips pinned buckets, and refuses (and reports) any bucket the committed
//! btree still uses.

use crate::fs::Fs;
use crate::shared::bucket_table::BucketState;
use crate::shared::options::Opt;
use crate::shared::superblock::UuidFmt;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{
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

    fn stopping(&self) -> bool {
        self.state.lock().stop
    }
}

/// The filesystem, handed to the worker.
struct FsPtr(*const Fs);

// SAFETY: `Fs` is `Sync`, and the pointer is only dereferenced while the filesystem is alive:
// dropping the pinned `Fs` stops the worker first (`Fs`'s `PinnedDrop` calls
// `DiscardCtl::stop`, which waits for `running` to go false), and the worker clears `running`
// only after its last use.
unsafe impl Send for FsPtr {}

impl FsPtr {
    /// The pointer (a method, so closures capture the whole `FsPtr`, which is `Send`).
    fn get(&self) -> *const Fs {
        self.0
    }
}

impl Fs {
    /// Asks the worker to look for `need_discard` buckets; starts it if it is idle and the
    /// discard rule is ready, otherwise remembers the request (see [`Fs::discard_rule_ready`]).
    pub(crate) fn kick_discards(&self) {
        {
            let mut st = self.discard_ctl.state.lock();
            if st.stop {
                return;
            }
            st.pending = true;
            if st.running || !st.ready {
                return;
            }
            st.running = true;
        }
        self.spawn_worker();
    }

    /// Marks the discard rule's inputs as present (committed nodes, reconciled bucket states;
    /// journal pins are taken before the states they protect change), and serves every kick
    /// made before, and the one recovery always makes.
    pub(crate) fn discard_rule_ready(&self) {
        self.discard_ctl.state.lock().ready = true;
        self.kick_discards();
    }

    /// Queues the worker; the caller has set `running`.
    fn spawn_worker(&self) {
        let ctl = self.discard_ctl.clone();
        let fs = FsPtr(self);
        let worker_ctl = ctl.clone();
        let spawned = crate::bdev::discard_queue().try_spawn(GFP_KERNEL, move || {
            // SAFETY: See `FsPtr`: `running` is set, so the filesystem outlives this use.
            let fs = unsafe { &*fs.get() };
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
                fs.drain_need_discard(&worker_ctl);
            }
        });
        if spawned.is_err() {
            pr_err!(
                "{}: cannot start the discard worker (-12)\n",
                UuidFmt(&self.uuid)
            );
            let mut st = ctl.state.lock();
            st.running = false;
            ctl.idle.notify_all();
        }
    }

    /// Discards and frees every `need_discard` bucket, starved devices first.
    fn drain_need_discard(&self, ctl: &DiscardCtl) {
        let starved = self.alloc.starved_mask();
        let n = self.members.len();
        let first = (0..n).filter(|&m| starved & (1 << m) != 0);
        let order = Iterator::chain(first, (0..n).filter(|&m| starved & (1 << m) == 0));
        for m in order {
            let start = Ktime::ktime_get();
            let mut freed = false;
            let max_len = self.command_buckets(m);
            while let Some((start, len)) = self.take_run(m, max_len) {
                // Between two commands: an unmount waits for one bounded command at most. The
                // buckets freed so far stay need_discard on disk, which is safe.
                if ctl.stopping() {
                    return;
                }
                self.discard_run(m, start, len);
                // The buckets are empty on the device now: the allocator may have them.
                self.alloc.free_bucket_run(m, start, len);
                freed = true;
            }
            if freed {
                // During a replay the table is left to the commit (see `persist_bucket_table`):
                // the buckets freed here stay need_discard on disk until then, which is safe.
                if let Err(e) = self.persist_bucket_table(m) {
                    pr_err!(
                        "{}: bucket table write after discards failed ({})\n",
                        UuidFmt(&self.uuid),
                        e.to_errno()
                    );
                }
                let ns = (Ktime::ktime_get().to_ns() - start.to_ns()).max(0) as u64;
                self.discard_counters[m].ns.fetch_add(ns, Ordering::Relaxed);
            }
        }
    }

    /// Most buckets of member `m` in one discard command: [`MAX_COMMAND_BYTES`], the device's
    /// largest discard (when it can discard) and [`MAX_RUN`], at least one bucket.
    fn command_buckets(&self, m: usize) -> u32 {
        let Some(g) = self.geometry.get(m) else {
            return 1;
        };
        let mut bytes = MAX_COMMAND_BYTES;
        let dev_max = self.members[m].dev.max_discard_bytes();
        if dev_max > 0 {
            bytes = bytes.min(dev_max);
        }
        let per = (g.bucket_size as u64).max(1);
        (bytes / per).clamp(1, MAX_RUN as u64) as u32
    }

    /// The next run of contiguous `need_discard` buckets on member `m`, at most `max_len` long,
    /// cut short before any bucket the committed btree still uses (see the rule above).
    fn take_run(&self, m: usize, max_len: u32) -> Option<(u32, u32)> {
        let first = self.geometry.get(m)?.first_bucket;
        let a = self.alloc.state.lock();
        let d = a.devices.get(m)?;
        let nb = d.nbuckets();
        let start = (first..nb).find(|&b| {
            d.state(b) == Some(BucketState::NeedDiscard)
                && self.discard_forbidden(m as u32, b).is_none()
        })?;
        let mut len = 0;
        while start + len < nb
            && len < max_len
            && d.state(start + len) == Some(BucketState::NeedDiscard)
        {
            if let Some(why) = self.discard_forbidden(m as u32, start + len) {
                if self.is_committed_node(m as u32, start + len) {
                    // need_discard and in the committed btree at once: a bug, say so.
                    pr_err!(
                        "{}: dev-{m} bucket {} is need_discard but {why}: not discarded\n",
                        UuidFmt(&self.uuid),
                        start + len
                    );
                }
                break;
            }
            len += 1;
        }
        (len > 0).then_some((start, len))
    }

    /// Issues the discard for a run, or counts it as freed without I/O.
    fn discard_run(&self, m: usize, start: u32, len: u32) {
        let g = &self.geometry[m];
        let dev = &self.members[m].dev;
        let counters = &self.discard_counters[m];
        let enabled = {
            let st = self.state.lock();
            st.live.get(Opt::Discard) != 0 && st.sb.members[m].discard()
        } && dev.max_discard_bytes() > 0;
        if !enabled {
            counters.without_io.fetch_add(len as u64, Ordering::Relaxed);
            return;
        }
        let bytes = len as u64 * g.bucket_size as u64;
        match dev.discard(g.bucket_offset(start as u64), bytes) {
            Ok(()) => {
                counters.commands.fetch_add(1, Ordering::Relaxed);
                counters.buckets.fetch_add(len as u64, Ordering::Relaxed);
                counters.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Err(e) => {
                // A discard is advice to the device: the buckets are empty either way.
                counters.errors.fetch_add(1, Ordering::Relaxed);
                pr_warn!(
                    "{}: dev-{m} ({}): discard of buckets {start}..{} failed ({}); freeing them anyway\n",
                    UuidFmt(&self.uuid),
                    self.members[m].name(),
                    start + len,
                    e.to_errno()
                );
            }
        }
    }
}

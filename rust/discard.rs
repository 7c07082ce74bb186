// SPDX-License-Identifier: GPL-2.0

//! The discard worker: turns `need_discard` buckets into `free` ones.
//!
//! It runs on the unbound workqueue whenever it is kicked: at mount (before journal replay, so
//! a replay parked on a starved device is unstuck by it), after every commit that freed old
//! btree nodes, and by `internal/trigger_discards`. Devices that parked requests were refused
//! on are served first. For each run of contiguous `need_discard` buckets it issues one
//! block-device discard (when the `discard` option, the member's discard flag and the device
//! all allow it; otherwise the buckets are freed without I/O), marks the buckets free, wakes
//! the allocator, and persists the bucket tables.
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
    workqueue,
};

/// Most buckets in one discard command.
const MAX_RUN: u32 = 1 << 16;

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
    running: bool,
    pending: bool,
    stop: bool,
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
                state <- new_mutex!(CtlState { running: false, pending: false, stop: false }),
                idle <- new_condvar!(),
            }),
            GFP_KERNEL,
        )
    }

    /// Stops the worker and waits until it no longer touches the filesystem.
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
// `Mounted` stops the worker (`DiscardCtl::stop`, which waits for `running` to go false)
// before it drops the pinned `Fs`, and the worker clears `running` only after its last use.
unsafe impl Send for FsPtr {}

impl FsPtr {
    /// The pointer (a method, so closures capture the whole `FsPtr`, which is `Send`).
    fn get(&self) -> *const Fs {
        self.0
    }
}

impl Fs {
    /// Asks the worker to look for `need_discard` buckets; starts it if it is idle.
    pub(crate) fn kick_discards(&self) {
        let ctl = self.discard_ctl.clone();
        {
            let mut st = ctl.state.lock();
            if st.stop {
                return;
            }
            st.pending = true;
            if st.running {
                return;
            }
            st.running = true;
        }
        let fs = FsPtr(self);
        let worker_ctl = ctl.clone();
        let spawned = workqueue::system_unbound().try_spawn(GFP_KERNEL, move || {
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
            while let Some((start, len)) = self.take_run(m) {
                if ctl.stopping() {
                    return;
                }
                self.discard_run(m, start, len);
                // The buckets are empty on the device now: the allocator may have them.
                self.alloc.free_bucket_run(m, start, len);
                freed = true;
            }
            if freed {
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

    /// The next run of contiguous `need_discard` buckets on member `m`, cut short before any
    /// bucket the committed btree still uses (see the rule above).
    fn take_run(&self, m: usize) -> Option<(u32, u32)> {
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
            && len < MAX_RUN
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

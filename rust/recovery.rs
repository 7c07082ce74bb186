// SPDX-License-Identifier: GPL-2.0

//! Recovery at mount: load and check the btree, reconcile the bucket states with it, replay the
//! journal into it (pinning the buckets its entries free, see `discard.rs`), and commit
//! (`commit.rs`).

use crate::allocator::{describe_alloc_error, NodeAlloc};
use crate::btree::Btree;
use crate::fs::{mount_err, Fs, REPLAY_IN_MEMORY, REPLAY_SKIPPED};
use crate::journal::{self, JournalPos};
use crate::shared::alloc_policy::Watermark;
use crate::shared::bkey;
use crate::shared::bucket_table::BucketState;
use crate::shared::layout::Field;
use crate::shared::namespace_format::ROOT_INO;
use crate::shared::superblock::{check_ptr, BtreeRoot, NodePtr, UuidFmt, BLOCK_SIZE};
use crate::vec_ext::VecExt;
use core::cell::Cell;
use core::sync::atomic::Ordering;
use kernel::{
    alloc::{KVVec, KVec},
    prelude::*,
    time::{ktime_ms_delta, Ktime},
};

impl Fs {
    /// Recovery: load and check the btree, reconcile bucket states with it, replay the
    /// journal into it, and commit.
    ///
    /// On a read-only mount the replay is made in memory only (the btree and the bucket states
    /// the mount shows hold every key; nothing is committed, the journal stays for a read-write
    /// mount to replay). With `norecovery` (read-only) the journal is read, shown in
    /// `internal/replay`, and not replayed. Not inlined into the mount, whose frame would
    /// otherwise add to the commit's superblock writes deep under it.
    #[inline(never)]
    pub(crate) fn recover(&self, source: &str, norecovery: bool) -> Result {
        let (btree, mut known) = self.recover_tree(source, norecovery)?;
        // The namespace starts at the root directory: a tree without it (damage, or a journal
        // that deleted it) is not mounted.
        let root = btree.get(crate::shared::namespace_format::inode_pos(ROOT_INO));
        let root_ok = root.is_some_and(|v| {
            crate::shared::namespace_format::check_inode(ROOT_INO, v)
                && crate::shared::namespace_format::InodeDisk::read(v).mode
                    & crate::shared::namespace_format::S_IFMT
                    == crate::shared::namespace_format::S_IFDIR
        });
        if !root_ok {
            return Err(mount_err!(
                source,
                EINVAL,
                "the btree has no root directory (inode {ROOT_INO}); bucketfs fsck shows what is \
                 left"
            ));
        }
        // The tree stays: the mounted filesystem's transactions change it (`transaction.rs`).
        self.install_tree(btree);
        // The data buckets as the extents have them; extents of deleted inodes go.
        known.sort_unstable();
        self.data_after_recovery(&known)
            .map_err(|e| mount_err!(source, e, "cannot account the file data"))
    }

    /// [`Fs::recover`] but for keeping the tree: returns it, recovered.
    #[inline(never)]
    fn recover_tree(&self, source: &str, norecovery: bool) -> Result<(Btree, KVVec<u64>)> {
        // Only what recovery needs of the superblock (a whole copy is large, and the commit's
        // superblock writes run deep under this frame).
        let (sb, read_only) = {
            let st = self.state.lock();
            let sb = RecoveryStart {
                root: st.sb.root,
                journal_seq: st.sb.journal_seq,
                journal_offset: st.sb.journal_offset,
            };
            (sb, st.read_only)
        };
        let mut btree = Btree::load(self, &sb.root).map_err(|e| {
            if e == ENXIO {
                self.report_missing_needed(source);
            }
            mount_err!(source, e, "cannot load the btree")
        })?;
        self.reconcile_buckets(&btree)?;
        // The data buckets the committed tree's extents use are `data` before anything may be
        // discarded or allocated; with those the journal's updates make `data`, they are the
        // buckets the accounting after recovery may free (see `data.rs`).
        let mut known = self.mark_data_buckets(&btree)?;
        self.discard.rule.set_committed_nodes(&btree)?;
        self.progress.set_stats(&btree.stats());

        let mut copies = KVec::with_capacity(self.members.len(), GFP_KERNEL)?;
        // Every member keeps a copy of the journal: a missing member's is not needed.
        for (m, g) in self.members.iter().zip(self.geometry.iter()) {
            let Ok(dev) = m.dev() else {
                continue;
            };
            copies.push(
                journal::Copy {
                    dev,
                    member: g,
                    name: m.name(),
                },
                GFP_KERNEL,
            )?;
        }
        let read_start = Ktime::ktime_get();
        let journal =
            match journal::read_entries(&self.uuid, &copies, sb.journal_seq, sb.journal_offset) {
                Ok(j) => j,
                // norecovery is for inspecting a filesystem that cannot recover: a journal that
                // cannot be read does not stop it.
                Err(e) if norecovery => {
                    pr_warn!(
                        "{source}: norecovery: cannot read the journal ({}); mounted without it\n",
                        e.to_errno()
                    );
                    self.progress
                        .replay_mode
                        .store(REPLAY_SKIPPED, Ordering::Relaxed);
                    self.degraded_after_recovery(&btree);
                    return Ok((btree, known));
                }
                Err(e) => return Err(mount_err!(source, e, "cannot read the journal")),
            };
        let entries = &journal.entries;
        let read_us = us_since(read_start);
        self.progress.read_us.store(read_us, Ordering::Relaxed);
        let total: u64 = entries.iter().map(|e| e.nr_keys as u64).sum();
        if let (Some(f), Some(l)) = (entries.first(), entries.last()) {
            let p = &self.progress;
            p.journal_entries
                .store(entries.len() as u64, Ordering::Relaxed);
            p.journal_first_seq.store(f.seq, Ordering::Relaxed);
            p.journal_last_seq.store(l.seq, Ordering::Relaxed);
        }
        if norecovery {
            // Nothing of the journal is applied, bucket updates included: the discard rule's
            // inputs are not complete, and it is never made ready (the mount cannot go
            // read-write).
            self.progress.replay_total.store(total, Ordering::Relaxed);
            self.progress
                .replay_mode
                .store(REPLAY_SKIPPED, Ordering::Relaxed);
            pr_info!(
                "{source}: norecovery: the journal is not replayed: {total} key(s) in {} \
                 entr{} (seq {}..={}) left for a read-write mount\n",
                entries.len(),
                if entries.len() == 1 { "y" } else { "ies" },
                self.progress.journal_first_seq.load(Ordering::Relaxed),
                self.progress.journal_last_seq.load(Ordering::Relaxed)
            );
            self.degraded_after_recovery(&btree);
            return Ok((btree, known));
        }
        if entries.is_empty() {
            // The discard rule has its inputs now: kicks made so far are served.
            self.discard_rule_ready();
            self.degraded_after_recovery(&btree);
            return Ok((btree, known));
        }
        let (first, last) = (entries[0].seq, entries[entries.len() - 1].seq);
        pr_info!(
            "{}: replaying {total} key(s) from {} journal entr{} (seq {first}..={last}; {} KiB \
             read from block {})\n",
            UuidFmt(&self.uuid),
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" },
            journal.bytes_read >> 10,
            sb.journal_offset
        );
        self.progress.replay_total.store(total, Ordering::Relaxed);
        let start = Ktime::ktime_get();
        // Node copies allocated and not given back: the node blocks the commit writes.
        let node_blocks = Cell::new(0u64);
        let copies = |nodes: &[NodeAlloc]| nodes.iter().map(|n| n.nr_ptrs as u64).sum::<u64>();
        // Every bucket update first, then every key: the updates only take buckets away from
        // the allocator until the commit (see below), so applying them first changes no
        // outcome, and no node the replay allocates can land in a bucket an entry changes.
        // Buckets freed to `free` (sorted; false once a later entry changed them again).
        let mut frees: KVVec<(NodePtr, bool)> = KVVec::new();
        for e in entries.iter() {
            for u in e.updates.iter() {
                let p = NodePtr {
                    member: u.member,
                    bucket: u.bucket,
                };
                if check_ptr(&self.geometry, p).is_err()
                    || self.discard.rule.is_committed_node(u.member, u.bucket)
                {
                    return Err(mount_err!(
                        source,
                        EINVAL,
                        "journal entry {} changes member {} bucket {}, which it may not (metadata \
                         area, outside the device, or a btree node)",
                        e.seq,
                        u.member,
                        u.bucket
                    ));
                }
                if matches!(u.state, BucketState::Superblock | BucketState::Journal) {
                    return Err(mount_err!(
                        source,
                        EINVAL,
                        "journal entry {} makes member {} bucket {} {}",
                        e.seq,
                        u.member,
                        u.bucket,
                        u.state.name()
                    ));
                }
                // A bucket an entry frees (to `need_discard` or to `free`) is pinned before
                // its state changes, so the discard worker never sees it unpinned; one freed
                // to `free` is held as `need_discard` until the commit, so the allocator does
                // not hand it out either (see the rule in `discard.rs`).
                let key = (p.member, p.bucket);
                let pending = frees.binary_search_by_key(&key, |(q, _)| (q.member, q.bucket));
                let freed = u.state == BucketState::Free;
                match pending {
                    // The last entry to change a bucket says what it is after the commit.
                    Ok(i) => frees[i].1 = freed,
                    Err(i) if freed => frees.insert(i, (p, true))?,
                    Err(_) => {}
                }
                let state = if freed {
                    BucketState::NeedDiscard
                } else {
                    u.state
                };
                if matches!(u.state, BucketState::NeedDiscard | BucketState::Free) {
                    self.discard.rule.pin_for_journal(p)?;
                }
                if u.state == BucketState::Data {
                    known.push(
                        crate::data_space::bucket_key(u.member, u.bucket),
                        GFP_KERNEL,
                    )?;
                }
                self.alloc.update(|devices| {
                    if let Some(d) = devices.get_mut(u.member as usize) {
                        d.set_state(u.bucket, state);
                    }
                });
            }
        }
        // The discard rule has its inputs now (the committed btree, and every bucket the
        // journal changes pinned or in its new state): kicks made so far are served. Not
        // before: a run the worker took before an update was applied could be discarded after
        // the update made a bucket of it live. Discards run during the key replay: a request
        // parked on a starved device is unstuck as soon as its need_discard buckets are freed.
        self.discard_rule_ready();
        let mut line = ProgressLine::new(start);
        for e in entries.iter() {
            let mut at = 0;
            for _ in 0..e.nr_keys {
                // The records were checked when the entry was read; an update's record is a
                // leaf's record as it is (`update_rec` checks it once more).
                let (k, next) = bkey::decode_at(&e.records, at).map_err(|_| EINVAL)?;
                let raw = &e.records[at..next];
                at = next;
                btree
                    .update_rec(
                        k.pos,
                        (!k.deleted).then_some(raw),
                        |_| Ok(()),
                        |n, out| {
                            let before = out.len();
                            self.alloc
                                .alloc_nodes(n, Watermark::Normal, || self.live(), out)?;
                            node_blocks.set(node_blocks.get() + copies(&out[before..]));
                            Ok(())
                        },
                        |unused| {
                            node_blocks.set(node_blocks.get().saturating_sub(copies(unused)));
                            self.alloc.release_nodes(unused)
                        },
                    )
                    .map_err(|err| {
                        mount_err!(
                            source,
                            err,
                            "journal replay stopped after {} of {total} key(s): btree node \
                             allocation {}; nothing was written, the mount can be retried",
                            self.progress.replay_done.load(Ordering::Relaxed),
                            describe_alloc_error(err)
                        )
                    })?;
                let done = self.progress.replay_done.fetch_add(1, Ordering::Relaxed) + 1;
                line.key_done(&self.uuid, done, total);
            }
        }
        let commit_start = Ktime::ktime_get();
        self.progress
            .apply_us
            .store(us_since(start), Ordering::Relaxed);
        if read_only {
            // In memory only: the btree and bucket states this mount shows hold every key;
            // nothing is written, and the journal (its pins held) stays for a read-write
            // mount, which replays and commits it. This mount cannot go read-write: the
            // replayed btree is not kept past recovery.
            self.state.lock().rw_refused.get_or_insert(
                "the journal was replayed in memory only (read-only mount); a read-write mount \
                 replays and commits it",
            );
            self.progress
                .replay_mode
                .store(REPLAY_IN_MEMORY, Ordering::Relaxed);
            self.progress
                .replay_us
                .store(read_us + us_since(start), Ordering::Relaxed);
            let stats = btree.stats();
            self.progress.set_stats(&stats);
            pr_info!(
                "{}: read-only: replayed {total} key(s) in memory only, nothing written; btree \
                 has {} key(s) in {} node(s)\n",
                UuidFmt(&self.uuid),
                stats.keys,
                stats.nodes
            );
            self.degraded_after_recovery(&btree);
            return Ok((btree, known));
        }
        // `last` is at most `MAX_ENTRY_SEQ` (the journal reader refuses entries above it), so
        // `journal_seq` stays one the superblock decoder accepts.
        // The next mount reads from where entry `last + 1` would start.
        let next = JournalPos {
            seq: last.saturating_add(1),
            offset: journal.next_offset,
        };
        self.commit(&mut btree, next, &frees, false)
            .map_err(|e| mount_err!(source, e, "cannot commit the replayed btree"))?;
        self.progress
            .commit_us
            .store(us_since(commit_start), Ordering::Relaxed);
        self.progress
            .nodes_written
            .store(node_blocks.get(), Ordering::Relaxed);
        // The whole replay: reading the journal, applying it, the commit.
        self.progress
            .replay_us
            .store(read_us + us_since(start), Ordering::Relaxed);
        let bytes: u64 = entries
            .iter()
            .map(|e| e.blocks as u64 * BLOCK_SIZE as u64)
            .sum();
        self.progress.replay_bytes.store(bytes, Ordering::Relaxed);
        let stats = btree.stats();
        self.progress.set_stats(&stats);
        let ms = ktime_ms_delta(Ktime::ktime_get(), start);
        pr_info!(
            "{}: replayed {total} key(s) in {ms} ms ({} keys/s); btree has {} key(s) in {} \
             node(s), {} level(s)\n",
            UuidFmt(&self.uuid),
            keys_per_s(total, ms),
            stats.keys,
            stats.nodes,
            stats.depth
        );
        // The committed tree's degraded nodes (a degraded replay's among them) are listed, and
        // the worker's re-replication pass may run.
        self.degraded_after_recovery(&btree);
        Ok((btree, known))
    }

    /// Names the missing members a btree node needed (the load said which node).
    fn report_missing_needed(&self, source: &str) {
        for (i, (m, g)) in self.members.iter().zip(self.geometry.iter()).enumerate() {
            if m.is_missing() {
                pr_err!(
                    "{source}: degraded: the btree needs missing member {i} (uuid {}): a node \
                     has no copy on the members given\n",
                    UuidFmt(&g.uuid)
                );
            }
        }
    }

    /// Buckets the btree uses are `btree`; `btree` buckets it does not use (left by a commit
    /// that did not finish, or freed by one whose bucket table write did not) need discard.
    fn reconcile_buckets(&self, btree: &Btree) -> Result {
        // Per member, sized by the tree: `KVVec`s.
        let mut used: KVec<KVVec<u32>> = KVec::new();
        for _ in 0..self.geometry.len() {
            used.push(KVVec::new(), GFP_KERNEL)?;
        }
        let mut oom = false;
        btree.for_each_bucket(|p| {
            if let Some(v) = used.get_mut(p.member as usize) {
                oom |= v.push(p.bucket, GFP_KERNEL).is_err();
            }
        });
        if oom {
            return Err(ENOMEM);
        }
        for used in used.iter_mut() {
            used.sort_unstable();
        }
        self.alloc.update(|devices| {
            for ((d, used), g) in devices
                .iter_mut()
                .zip(used.iter())
                .zip(self.geometry.iter())
            {
                // Metadata areas are never `btree` or `need_discard`: the loaded tree's pointers
                // were checked to lie above them. First every bucket the tree uses becomes
                // `btree` (one look per pointer, not per bucket of the device)...
                let mut distinct = 0u64;
                let mut last = None;
                for &b in used.iter() {
                    if last == Some(b) || b < g.first_bucket {
                        continue;
                    }
                    last = Some(b);
                    if d.state(b) != Some(BucketState::Btree) {
                        d.set_state(b, BucketState::Btree);
                    }
                    distinct += (d.state(b) == Some(BucketState::Btree)) as u64;
                }
                // ... then any other `btree` bucket needs discard. The counts say how many
                // there are: none after a clean unmount or a finished commit, and then no
                // bucket is looked at; else the states are scanned until they are all found.
                let mut stray = d.count(BucketState::Btree).saturating_sub(distinct);
                let mut from = g.first_bucket;
                while stray > 0 {
                    let Some(b) = d.next_in_state(BucketState::Btree, from) else {
                        break;
                    };
                    if used.binary_search(&b).is_err() {
                        d.set_state(b, BucketState::NeedDiscard);
                        stray -= 1;
                    }
                    from = b + 1;
                }
            }
        });
        Ok(())
    }
}

/// Least time between two replay progress lines, in milliseconds.
const PROGRESS_INTERVAL_MS: i64 = 1000;
/// Keys replayed between two looks at the clock for the progress line.
const PROGRESS_EVERY_KEYS: u64 = 16;

/// `keys` in `ms` milliseconds as keys per second (`keys` when `ms` is 0).
/// What recovery reads of the superblock.
struct RecoveryStart {
    root: BtreeRoot,
    journal_seq: u64,
    journal_offset: u64,
}

fn keys_per_s(keys: u64, ms: i64) -> u64 {
    match u64::try_from(ms) {
        Ok(ms) if ms > 0 => keys.saturating_mul(1000) / ms,
        _ => keys,
    }
}

/// The replay's progress line in dmesg: at most one per [`PROGRESS_INTERVAL_MS`], so a long
/// replay (or one that was parked and goes on) says how far it is and how fast it goes, and a
/// short one prints none (its final line says it all); `internal/replay` has the same figures
/// at any time.
struct ProgressLine {
    start: Ktime,
    /// When the last line went out (the start before the first), and keys done then.
    last: Ktime,
    last_done: u64,
}

impl ProgressLine {
    fn new(start: Ktime) -> Self {
        ProgressLine {
            start,
            last: start,
            last_done: 0,
        }
    }

    /// Key number `done` of `total` was replayed: prints the line if it is due.
    fn key_done(&mut self, uuid: &[u8; 16], done: u64, total: u64) {
        if done % PROGRESS_EVERY_KEYS != 0 || done >= total {
            return;
        }
        let now = Ktime::ktime_get();
        let since = ktime_ms_delta(now, self.last);
        if since < PROGRESS_INTERVAL_MS {
            return;
        }
        pr_info!(
            "{}: replay progress: {done} of {total} key(s) ({}%), {} keys/s in the last {since} \
             ms, {} ms since the replay started\n",
            UuidFmt(uuid),
            done * 100 / total.max(1),
            keys_per_s(done - self.last_done, since),
            ktime_ms_delta(now, self.start)
        );
        (self.last, self.last_done) = (now, done);
    }
}

/// Microseconds since `t`.
fn us_since(t: Ktime) -> u64 {
    (Ktime::ktime_get().to_ns() - t.to_ns()).max(0) as u64 / 1000
}

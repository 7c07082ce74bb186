// SPDX-License-Identifier: GPL-2.0

//! Transactions on the mounted filesystem's btree: the tree stays in memory after recovery
//! ([`Tree`]), every metadata change is one [`Tx`] (all of its updates or none), its records go
//! to the open journal entry (`journal_writer.rs`), and a commit writes the changed nodes and
//! lets the journal start again.
//!
//! A transaction never parks while it holds the tree: node allocations are tried without
//! parking; when one cannot be served now, the transaction is undone, the tree released, and a
//! restartable allocation request (`Allocator::alloc_nodes`: killable, abortable, re-reading the
//! live options on every wakeup, named in the stuck report) waits for the nodes the update
//! needed; then the transaction runs again from the start with them. So a parked metadata
//! operation holds nothing another operation, the discard worker, the re-replication pass or a
//! sync needs, and a failed wait leaves nothing half done.

use crate::allocator::NodeAlloc;
use crate::btree::Btree;
use crate::data_space::{DataEffect, DataSpace};
use crate::fs::Fs;
use crate::journal::JournalPos;
use crate::journal_writer::{
    self, area_blocks, JournalCopy, JournalWriter, Tree, TxBuffers, Undo, Written,
};
use crate::shared::alloc_policy::Watermark;
use crate::shared::bkey::{self, Kind, Pos, MAX_RECORD};
use crate::shared::bucket_table::BucketState;
use crate::shared::journal_format::{BucketUpdate, UPDATE_BYTES};
use crate::shared::namespace_format::MAX_INO;
use crate::shared::options::Opt;
use crate::shared::superblock::UuidFmt;
use crate::timer::Timer;
use crate::vec_ext::VecExt;
use core::sync::atomic::Ordering;
use kernel::{
    alloc::{KVVec, KVec},
    prelude::*,
};

/// The open journal entry is written at most this long after a transaction put the first
/// records in it (unless a `sync` or an `fsync` wrote it before).
pub(crate) const JOURNAL_FLUSH_MS: u32 = 1000;

/// Most bytes of records one transaction writes (a symbolic link with the longest target, or a
/// rename, is well below): the open entry is written before a transaction starts when less room
/// is left in it, so the records of a transaction that ran always fit, and a transaction never
/// commits anything while it runs.
pub(crate) const TX_MAX_BYTES: usize = 8192;

/// Changed nodes at which the flush interval commits instead of writing the journal entry.
const COMMIT_DIRTY_NODES: usize = 32;

/// Zeros to make room for a record in a transaction's records.
static ZERO_RECORD: [u8; MAX_RECORD] = [0; MAX_RECORD];

/// The watermark of the namespace's node allocations: metadata digs into the btree reserve
/// that data (a lower watermark) leaves alone.
const WATERMARK: Watermark = Watermark::Btree;

/// The watermark of a change that frees space (an unlink, an rmdir): it may take the last
/// buckets, so a full filesystem can still be emptied (its nodes' old copies are freed by the
/// next commit).
const FREEING_WATERMARK: Watermark = Watermark::Reclaim;

/// Buckets per member that a change which does not free space leaves to those that do, beyond
/// the btree reserve: enough for an unlink's three paths (directory entry, inode, directory) to
/// be copied in a tree of the usual depth, so a full filesystem can always be emptied.
const FREEING_HEADROOM: u32 = 8;

/// A transaction: reads see its own updates; its records go to the journal when it ends well.
pub(crate) struct Tx<'a> {
    fs: &'a Fs,
    tree: &'a mut Tree,
    undo: KVec<Undo>,
    /// The values the updates replaced, one after the other.
    old: KVVec<u8>,
    /// The transaction's records, encoded.
    recs: KVVec<u8>,
    nr: u32,
    /// Node locations set aside for this run (by an earlier run's wait), used first.
    prealloc: &'a mut KVec<NodeAlloc>,
    /// Set when an update needed nodes that could not be had without waiting: how many.
    want: u32,
    /// The watermark of the transaction's node allocations.
    watermark: Watermark,
    /// Inode keys the transaction added less those it deleted.
    inodes: i64,
    /// Bucket updates for the journal entry (data buckets the transaction's extents are in).
    updates: KVec<BucketUpdate>,
    /// What it did to the data buckets.
    effects: KVec<DataEffect>,
}

impl Tx<'_> {
    /// The tree as the transaction has changed it so far (what its reads see).
    pub(crate) fn btree(&self) -> &Btree {
        &self.tree.btree
    }

    /// The data buckets (write points, live blocks), as the transaction's allocations and
    /// frees change them.
    pub(crate) fn data(&mut self) -> &mut DataSpace {
        &mut self.tree.data
    }

    /// Records `e` (its `Alloc` live count already added by the caller: undone if the
    /// transaction fails; a `Free` is applied when it ends well), and the bucket update that
    /// makes the bucket `data` on replay, once per bucket.
    pub(crate) fn data_effect(&mut self, e: DataEffect) -> Result {
        self.effects.reserve(1, GFP_KERNEL)?;
        if let DataEffect::Alloc { member, bucket, .. } = e {
            if !self
                .updates
                .iter()
                .any(|u| u.member == member && u.bucket == bucket)
            {
                self.updates.push(
                    BucketUpdate {
                        member,
                        bucket,
                        state: crate::shared::bucket_table::BucketState::Data,
                        gen: 0,
                    },
                    GFP_KERNEL,
                )?;
            }
        }
        // Within the capacity reserved above.
        self.effects.push(e, GFP_KERNEL)?;
        Ok(())
    }

    /// Sets the key at `pos` to `val`.
    pub(crate) fn put(&mut self, pos: Pos, val: &[u8]) -> Result {
        self.update(pos, Some(val))
    }

    /// Deletes the key at `pos` (nothing if there is none).
    pub(crate) fn delete(&mut self, pos: Pos) -> Result {
        self.update(pos, None)
    }

    fn update(&mut self, pos: Pos, val: Option<&[u8]>) -> Result {
        // The record first, at the end of the transaction's records (taken back if the update
        // fails): a value the decoder would refuse is refused before anything changes.
        let at = self.recs.len();
        let size = bkey::record_size(val.map_or(0, |v| v.len()));
        if size > MAX_RECORD {
            return Err(EINVAL);
        }
        self.recs
            .extend_from_slice(&ZERO_RECORD[..size], GFP_KERNEL)?;
        let encoded = bkey::encode(pos, val.is_none(), val.unwrap_or(&[]), &mut self.recs[at..]);
        if encoded != Some(size) {
            self.recs.truncate(at);
            return Err(EINVAL);
        }
        let undo_before = self.undo.len();
        // Room for the undo before the update: the btree hands over the old value before it
        // changes anything.
        if let Err(e) = self.undo.reserve(1, GFP_KERNEL) {
            self.recs.truncate(at);
            return Err(e.into());
        }
        let undo = &mut self.undo;
        let old_vals = &mut self.old;
        let mut existed = false;
        let fs = self.fs;
        let watermark = self.watermark;
        let prealloc = &mut *self.prealloc;
        let want = &mut self.want;
        let rec = val.map(|_| &self.recs[at..at + size]);
        let r = self.tree.btree.update_rec(
            pos,
            rec,
            |old| {
                existed = old.is_some();
                let old = match old {
                    Some(v) => {
                        let o = old_vals.len();
                        old_vals.extend_from_slice(v, GFP_KERNEL)?;
                        Some((o, v.len()))
                    }
                    None => None,
                };
                // Within the capacity reserved above.
                undo.push(Undo { pos, old }, GFP_KERNEL)?;
                Ok(())
            },
            |n, out| {
                let before = out.len();
                let mut left = n;
                while left > 0 {
                    let Some(a) = prealloc.pop() else { break };
                    // Set aside before a member was emptied or removed: not used, given back.
                    if !fs.usable_copies(&a) {
                        fs.alloc.release_nodes(&[a]);
                        continue;
                    }
                    out.push(a, GFP_KERNEL)?;
                    left -= 1;
                }
                if left == 0 {
                    return Ok(());
                }
                // A change that does not free space leaves the headroom to those that do.
                let room = watermark == FREEING_WATERMARK || !fs.out_of_space(left, watermark);
                if room && fs.alloc.try_alloc_now(left, watermark, &fs.live(), out)? {
                    return Ok(());
                }
                // The ones set aside stay set aside; wait for the rest without the tree (the
                // caller runs the transaction again).
                while out.len() > before {
                    let Some(a) = out.pop() else { break };
                    prealloc.push(a, GFP_KERNEL)?;
                }
                *want = left;
                Err(EAGAIN)
            },
            |unused| fs.alloc.release_nodes(unused),
        );
        if let Err(e) = r {
            // Nothing changed: this update has no undo (if it got as far), and no record.
            if self.undo.len() > undo_before {
                let _ = self.undo.pop();
            }
            self.recs.truncate(at);
            return Err(e);
        }
        if val.is_none() && !existed {
            // A deletion of a key that is not there changed nothing: no undo, no record.
            let _ = self.undo.pop();
            self.recs.truncate(at);
            return Ok(());
        }
        self.nr += 1;
        if pos.kind == Kind::Inode as u8 {
            let had = self.undo.last().is_some_and(|u| u.old.is_some());
            self.inodes += val.is_some() as i64 - had as i64;
        }
        Ok(())
    }

    /// Undoes every update, the last first: each node gets back the records it had, so none
    /// grows past what it held and no undo needs a node allocation (the nodes are already the
    /// transaction's copies). Returns whether every update was undone.
    fn rollback(&mut self) -> bool {
        let mut all = true;
        let fs = self.fs;
        while let Some(u) = self.undo.pop() {
            let old = u.old.map(|(at, len)| &self.old[at..at + len]);
            let r = self.tree.btree.update(
                u.pos,
                old,
                |n, out| match fs
                    .alloc
                    .try_alloc_now(n, Watermark::Reclaim, &fs.live(), out)?
                {
                    true => Ok(()),
                    false => Err(ENOSPC),
                },
                |unused| fs.alloc.release_nodes(unused),
            );
            if let Err(e) = r {
                all = false;
                pr_err!(
                    "{}: cannot undo a failed transaction's update of ({}, {}, {}) ({}); the \
                     tree in memory keeps it\n",
                    UuidFmt(&fs.uuid),
                    u.pos.kind,
                    u.pos.ino,
                    u.pos.off,
                    e.to_errno()
                );
            }
        }
        self.recs.clear();
        self.nr = 0;
        // The blocks taken go back to their write points, their live counts with them; frees
        // were not applied.
        while let Some(e) = self.effects.pop() {
            if let DataEffect::Alloc {
                member,
                bucket,
                off,
                n,
            } = e
            {
                self.tree.data.unadd_live(member, bucket, n);
                self.tree.data.untake(member as usize, bucket, off, n);
            }
        }
        self.updates.clear();
        all
    }

    /// The transaction ends well: its records join the open journal entry, which has room for
    /// them (see [`TX_MAX_BYTES`]).
    fn finish(&mut self) -> Result {
        if self.nr == 0 && self.effects.is_empty() {
            return Ok(());
        }
        let bytes = self.recs.len() + self.updates.len() * UPDATE_BYTES;
        if bytes > TX_MAX_BYTES || !self.tree.jw.fits(bytes) {
            return Err(E2BIG);
        }
        let frees = self
            .effects
            .iter()
            .filter(|e| matches!(e, DataEffect::Free { .. }))
            .count();
        self.tree.data.reserve_frees(frees)?;
        let was_empty = self.tree.jw.is_empty();
        self.tree.jw.append(&self.recs, self.nr, &self.updates)?;
        for e in self.effects.iter() {
            if let DataEffect::Free { member, bucket, n } = *e {
                // Room reserved above: this fails only for a count the frees exceed.
                if self.tree.data.sub_live(member, bucket, n).is_err() {
                    pr_err!(
                        "{}: member {member} bucket {bucket}: {n} block(s) freed, fewer counted \
                         live; the bucket is kept (run bucketfs fsck)\n",
                        UuidFmt(&self.fs.uuid)
                    );
                }
            }
        }
        self.effects.clear();
        self.updates.clear();
        self.tree.changed_since_space_commit = true;
        let n = self.fs.inodes.load(Ordering::Relaxed);
        self.fs
            .inodes
            .store(n.saturating_add_signed(self.inodes), Ordering::Relaxed);
        if was_empty {
            if let Some(t) = self.fs.flusher.lock().as_ref() {
                t.arm(JOURNAL_FLUSH_MS);
            }
        }
        Ok(())
    }
}

impl Fs {
    /// Stops every write of the mounted filesystem after a failure that leaves what is in
    /// memory out of step with what may be on disk: a journal entry written to fewer members
    /// than needed (its block may hold it on some: written again or followed by a commit, it
    /// could be replayed onto a newer root), a commit that failed after it began writing, a
    /// change of the tree in memory that failed half-way. As XFS does: metadata changes,
    /// `sync` and the unmount's commit then fail with `EIO` or do nothing, and the next mount
    /// recovers the last durable state.
    pub(crate) fn shut_down(&self, why: &str, e: Error) -> Error {
        if !self.shut_down.swap(true, Ordering::AcqRel) {
            pr_err!(
                "{}: shut down: {why} ({}); no more metadata is written: changes and sync fail \
                 with EIO; unmount and mount again to recover what was synced\n",
                UuidFmt(&self.uuid),
                e.to_errno()
            );
        }
        EIO
    }

    /// Whether every copy of `a` is on a member that takes new copies (set aside before a
    /// member was emptied or removed, it is given back instead).
    fn usable_copies(&self, a: &NodeAlloc) -> bool {
        let on = &a.ptrs[..a.nr_ptrs as usize];
        if on.iter().any(|p| {
            self.members
                .get(p.member as usize)
                .is_none_or(|m| m.is_removed())
        }) {
            return false;
        }
        self.alloc.inspect(|devices| {
            on.iter().all(|p| {
                devices
                    .get(p.member as usize)
                    .is_some_and(|d| d.snapshot().writable)
            })
        })
    }

    /// `EIO` once the filesystem is shut down.
    fn check_shut_down(&self) -> Result {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(EIO);
        }
        Ok(())
    }

    /// Keeps the btree recovery loaded (and replayed) as the mounted filesystem's tree; the
    /// journal goes on where the superblock says, and new inodes are numbered from one more
    /// than the largest.
    pub(crate) fn install_tree(&self, btree: Btree) {
        let (seq, pos) = {
            let st = self.state.lock();
            (st.sb.journal_seq, st.sb.journal_offset)
        };
        let (mut largest, mut count) = (0, 0);
        btree.scan(
            Pos::new(Kind::Inode, 0, 0),
            Pos::new(Kind::Dirent, 0, 0),
            &mut |p, _| {
                largest = largest.max(p.ino);
                count += 1;
                true
            },
        );
        self.inodes.store(count, Ordering::Relaxed);
        self.next_ino.store(
            largest.max(crate::shared::namespace_format::ROOT_INO) + 1,
            Ordering::Relaxed,
        );
        *self.tree.lock() = Some(Tree {
            btree,
            jw: JournalWriter::new(seq, pos),
            changed_since_space_commit: true,
            tx_buffers: TxBuffers::new(),
            data: DataSpace::new(),
        });
        // The flush interval's timer (none on a read-only mount: nothing is written there; a
        // remount read-write makes it).
        self.start_flusher();
    }

    /// Makes the journal flush timer if there is none (a read-write mount once the tree is
    /// installed, a remount read-write), and arms it if the open entry holds records (left by a
    /// remount read-only whose commit failed).
    pub(crate) fn start_flusher(&self) {
        self.make_flusher();
        if let Some(t) = self.tree.lock().as_ref() {
            if !t.jw.is_empty() {
                if let Some(f) = self.flusher.lock().as_ref() {
                    f.arm(JOURNAL_FLUSH_MS);
                }
            }
        }
    }

    fn make_flusher(&self) {
        if self.state.lock().read_only {
            return;
        }
        let mut f = self.flusher.lock();
        if f.is_none() {
            match Timer::new(self) {
                Ok(t) => *f = Some(t),
                Err(_) => pr_warn!(
                    "{}: no journal flush timer (-12): only sync, fsync and the unmount write \
                     the journal\n",
                    UuidFmt(&self.uuid)
                ),
            }
        }
    }

    /// A new inode number (never one an inode key has: numbers only grow while mounted, and
    /// start above the largest at mount); `ENOSPC` past [`MAX_INO`].
    pub(crate) fn new_ino(&self) -> Result<u64> {
        let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
        if ino > MAX_INO {
            self.next_ino.store(MAX_INO + 1, Ordering::Relaxed);
            return Err(ENOSPC);
        }
        Ok(ino)
    }

    /// Runs `f` as one transaction: all of its updates, or none (`f` failing undoes what it
    /// did). `EROFS` on a read-only mount; `EAGAIN` before recovery has finished. When an
    /// update needs node buckets that cannot be had now, waits for them without the tree (see
    /// the module documentation) and runs `f` again; the wait's error (`ECANCELED` from
    /// `abort_stuck_allocations`, `EINTR` from a fatal signal) is the transaction's, with
    /// nothing done. `ENOSPC` when no member has an empty bucket left.
    pub(crate) fn transact_tx<T>(
        &self,
        freeing: bool,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        let watermark = if freeing {
            FREEING_WATERMARK
        } else {
            WATERMARK
        };
        let mut prealloc = KVec::new();
        // Whether a commit was made to give back the old copies of changed nodes.
        let mut reclaimed = false;
        let result = loop {
            let want;
            let r = {
                let mut guard = self.tree.lock();
                let Some(tree) = guard.as_mut() else {
                    break Err(EAGAIN);
                };
                if self.state.lock().read_only {
                    break Err(EROFS);
                }
                if let Err(e) = self.check_shut_down() {
                    break Err(e);
                }
                // Room for the transaction's records in the open entry, before anything changes.
                if !tree.jw.fits(TX_MAX_BYTES) {
                    if let Err(e) = self.flush_entry(tree) {
                        break Err(e);
                    }
                }
                let mut bufs = core::mem::replace(&mut tree.tx_buffers, TxBuffers::new());
                bufs.reset();
                let TxBuffers { undo, old, recs } = bufs;
                let mut tx = Tx {
                    fs: self,
                    tree,
                    undo,
                    old,
                    recs,
                    nr: 0,
                    prealloc: &mut prealloc,
                    want: 0,
                    watermark,
                    inodes: 0,
                    updates: KVec::new(),
                    effects: KVec::new(),
                };
                let r = f(&mut tx).and_then(|v| tx.finish().map(|()| v));
                let r = match r {
                    Err(e) if !tx.rollback() => {
                        Err(self.shut_down("a failed metadata change could not be undone", e))
                    }
                    r => r,
                };
                let r = match r {
                    Err(e) if tx.tree.btree.torn() => {
                        Err(self.shut_down("the btree in memory was left half changed", e))
                    }
                    r => r,
                };
                want = tx.want;
                let Tx {
                    tree,
                    undo,
                    old,
                    recs,
                    ..
                } = tx;
                tree.tx_buffers = TxBuffers { undo, old, recs };
                r
            };
            match r {
                Err(e) if e == EAGAIN && want > 0 => {
                    if self.out_of_space(want, watermark) {
                        // The old copies of the nodes changed since the last commit are the
                        // space a commit gives back (to `need_discard`, which the discard
                        // worker frees): once, before `ENOSPC`.
                        if !reclaimed {
                            reclaimed = true;
                            let mut guard = self.tree.lock();
                            // Not again while nothing has changed since one (a loop of
                            // creations failing on a full filesystem commits once).
                            if let Some(t) = guard
                                .as_mut()
                                .filter(|t| t.btree.is_dirty() && t.changed_since_space_commit)
                            {
                                t.changed_since_space_commit = false;
                                if let Err(e) = self.commit_tree(t, false) {
                                    break Err(e);
                                }
                                continue;
                            }
                        }
                        break Err(ENOSPC);
                    }
                    let got =
                        self.alloc
                            .alloc_nodes(want, watermark, || self.live(), &mut prealloc);
                    if let Err(e) = got {
                        break Err(e);
                    }
                }
                r => break r,
            }
        };
        if !prealloc.is_empty() {
            self.alloc.release_nodes(&prealloc);
        }
        result
    }

    /// Runs `f` on the tree without changing it (`EAGAIN` before recovery has finished).
    pub(crate) fn read_tree<T>(&self, f: impl FnOnce(&Btree) -> Result<T>) -> Result<T> {
        let guard = self.tree.lock();
        let tree = guard.as_ref().ok_or(EAGAIN)?;
        f(&tree.btree)
    }

    /// Whether fewer members than a request for `want` nodes needs (`metadata_replicas`, or
    /// `metadata_replicas_required` with `metadata_degraded_writes`) have `want` empty buckets
    /// (free, or waiting for discard) beyond what the metadata watermark holds back: the
    /// change then fails with `ENOSPC` instead of waiting. A member starved while its
    /// `need_discard` buckets wait for the discard worker (the #1108 shape) still counts: a
    /// change parks there, and an option write, a discard or the abort knob releases it.
    fn out_of_space(&self, want: u32, watermark: Watermark) -> bool {
        let live = self.live();
        // Fewer copies only where a parked request may degrade (after the stuck timeout).
        let needs = if live.degrade && live.stuck_timeout_s > 0 {
            live.required.min(live.replicas)
        } else {
            live.replicas
        } as usize;
        let want = if watermark == FREEING_WATERMARK {
            want
        } else {
            want.saturating_add(FREEING_HEADROOM)
        };
        let usable = self.alloc.inspect(|devices| {
            devices
                .iter()
                .zip(self.members.iter())
                .filter(|(_, m)| !m.is_removed())
                .filter(|(d, _)| {
                    let s = d.snapshot();
                    s.writable && s.spare(watermark) >= want as u64
                })
                .count()
        });
        usable < needs
    }

    /// The members the journal is written to (not removed, not missing).
    fn journal_copies(&self) -> Result<KVec<JournalCopy<'_>>> {
        let mut v = KVec::with_capacity(self.members.len(), GFP_KERNEL)?;
        for (m, g) in self.members.iter().zip(self.geometry.iter()) {
            if m.is_removed() {
                continue;
            }
            if let Ok(dev) = m.dev() {
                v.push((dev, g), GFP_KERNEL)?;
            }
        }
        Ok(v)
    }

    /// Half of the smallest journal area, in blocks.
    fn journal_half(&self) -> u64 {
        self.journal_copies()
            .map(|c| area_blocks(&c) / 2)
            .unwrap_or(0)
    }

    /// Writes the open journal entry; a journal area too full for it is reclaimed by a commit
    /// first (which also makes the entry's records durable).
    pub(crate) fn flush_entry(&self, tree: &mut Tree) -> Result {
        let copies = self.journal_copies()?;
        let required = self.state.lock().live.get(Opt::MetadataReplicasRequired) as usize;
        self.check_shut_down()?;
        // An error before any write (out of memory) leaves the entry open for a later try.
        match tree.jw.write(&self.uuid, &copies, required)? {
            Written::Done => {
                self.free_emptied_data(tree);
                Ok(())
            }
            Written::Short(e) => Err(self.shut_down("a journal entry could not be written", e)),
            Written::AreaFull => self.commit_tree(tree, true),
        }
    }

    /// The flush interval's work: the open entry written, or, when many nodes changed since
    /// the last commit (each holding a bucket per copy besides its committed one), a commit,
    /// which gives those buckets back (a workload of deletions does not keep twice its nodes'
    /// space until the journal fills).
    pub(crate) fn periodic_flush(&self) -> Result {
        let mut guard = self.tree.lock();
        let Some(tree) = guard.as_mut() else {
            return Ok(());
        };
        if self.state.lock().read_only {
            return Ok(());
        }
        self.check_shut_down()?;
        if tree.btree.dirty_count() >= COMMIT_DIRTY_NODES {
            let half = self.journal_half();
            return self.commit_tree(tree, tree.jw.pos > half);
        }
        self.flush_entry(tree)
    }

    /// The data buckets emptied by transactions whose records are durable now (the entry was
    /// written, or a commit put them in the btree) go to `need_discard`, and the discard worker
    /// is kicked.
    fn free_emptied_data(&self, tree: &mut Tree) {
        let freed = tree.data.settle();
        if freed.is_empty() {
            return;
        }
        self.data_buckets_emptied(&freed);
        self.kick_discards();
    }

    /// Data buckets no extent uses any more (and no write point) go to `need_discard`; a
    /// removed member's buckets are nobody's to discard.
    fn data_buckets_emptied(&self, buckets: &[(u32, u32)]) {
        self.alloc.update(|devices| {
            for &(m, b) in buckets {
                if self.members.get(m as usize).is_none_or(|x| x.is_removed()) {
                    continue;
                }
                if let Some(d) = devices.get_mut(m as usize) {
                    if d.state(b) == Some(BucketState::Data) {
                        d.set_state(b, BucketState::NeedDiscard);
                    }
                }
            }
        });
    }

    /// Makes every transaction so far durable: writes the open journal entry (`fsync`,
    /// `sync`; every write is waited for, so `_wait` changes nothing). Nothing on a read-only
    /// mount.
    pub(crate) fn sync_journal(&self, _wait: bool) -> Result {
        let mut guard = self.tree.lock();
        let Some(tree) = guard.as_mut() else {
            return Ok(());
        };
        if self.state.lock().read_only {
            return Ok(());
        }
        self.check_shut_down()?;
        if tree.jw.is_empty() {
            // Nothing to journal, but file data may have been overwritten in place since the
            // last flush: each member's write cache is flushed, so an fsync makes it durable.
            return self.flush_members();
        }
        // The entry's write flushes each member's cache first (see `c/bdev.c`).
        self.flush_entry(tree)
    }

    /// Flushes the write cache of every present member.
    fn flush_members(&self) -> Result {
        let copies = self.journal_copies()?;
        let mut batch = crate::bdev::IoBatch::with_capacity(copies.len())?;
        let mut tickets = KVec::with_capacity(copies.len(), GFP_KERNEL)?;
        for (dev, _) in copies.iter() {
            tickets.push(batch.flush(dev)?, GFP_KERNEL)?;
        }
        batch.run()?;
        for t in tickets {
            batch.status(t)?;
        }
        Ok(())
    }

    /// Commits the tree: every changed node written, the superblock pointing at the new root
    /// with the journal position past every record (`restart`: at block 0 of the areas), the
    /// bucket tables; the open entry's records are in the tree now and are dropped.
    pub(crate) fn commit_tree(&self, tree: &mut Tree, restart: bool) -> Result {
        self.check_shut_down()?;
        // At the end of the smallest area the journal goes on at block 0 (as the mount's
        // reader has it), which is also the only offset the superblock accepts there.
        let restart = restart || tree.jw.pos >= area_blocks(&self.journal_copies()?);
        let pos = if restart { 0 } else { tree.jw.pos };
        let next = JournalPos {
            seq: tree.jw.seq,
            offset: pos,
        };
        self.commit(&mut tree.btree, next, &[], true)
            .map_err(|e| self.shut_down("a commit of the btree failed", e))?;
        tree.jw.committed(pos);
        self.free_emptied_data(tree);
        if restart {
            if let Ok(copies) = self.journal_copies() {
                journal_writer::clear_start(&copies);
            }
        }
        self.progress.set_stats(&tree.btree.stats());
        Ok(())
    }

    /// The mount goes (unmount, or a remount read-only): commits what is not committed yet,
    /// starting the journal again at block 0 when more than half of it is used.
    pub(crate) fn commit_for_shutdown(&self) -> Result {
        let mut guard = self.tree.lock();
        match guard.as_mut() {
            Some(tree) => self.commit_closing(tree),
            None => Ok(()),
        }
    }

    /// The last commit of a read-write mount (unmount, remount read-only): write points
    /// without a live block whose frees are durable are freed by it (no extent points into
    /// them: its tree says so on disk, and it writes the bucket tables even when no node
    /// changed); then what is not committed yet is.
    pub(crate) fn commit_closing(&self, tree: &mut Tree) -> Result {
        let mut freed = false;
        if !self.state.lock().read_only && self.check_shut_down().is_ok() {
            let empty = tree.data.close_points();
            if !empty.is_empty() {
                self.data_buckets_emptied(&empty);
                freed = true;
            }
        }
        if freed {
            let half = self.journal_half();
            return self.commit_tree(tree, tree.jw.pos > half);
        }
        self.commit_pending(tree)
    }

    /// Commits `tree` if anything is not committed yet (nothing on a read-only mount).
    pub(crate) fn commit_pending(&self, tree: &mut Tree) -> Result {
        self.check_shut_down()?;
        if self.state.lock().read_only {
            return Ok(());
        }
        if tree.jw.is_empty() && tree.jw.written == 0 && !tree.btree.is_dirty() {
            return Ok(());
        }
        let half = self.journal_half();
        self.commit_tree(tree, tree.jw.pos > half)
    }
}

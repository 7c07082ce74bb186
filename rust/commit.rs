// SPDX-License-Identifier: GPL-2.0

//! Writing the filesystem: btree nodes ([`NodeIo`]: all of them to all copies in one batch),
//! superblocks (every copy checked by the decoder before any is written; a cache flush of
//! every member, then primaries, then backups, each step to all members at once), bucket
//! tables, and the commit that orders them (nodes, superblocks, bucket states, tables).

use crate::allocator::LiveInputs;
use crate::bdev::{BlockDevice, IoBatch, IoBuf, IoTicket};
use crate::btree::{Btree, NodeIo};
use crate::fs::{Fs, FsState, Member};
use crate::journal::JournalPos;
use crate::shared::bucket_table::{
    encode_block, entries_in_block, BucketEntry, BucketState, TableBlockId,
};
use crate::shared::options::Opt;
use crate::shared::superblock::{
    check_ptr, NodePtr, PtrError, Superblock, UuidFmt, BLOCK_SIZE, MAX_SEQ, SB_OFFSETS, SB_SIZE,
    TABLE_ENTRIES_PER_BLOCK,
};
use crate::vec_ext::VecExt;
use kernel::{
    alloc::{KBox, KVec},
    prelude::*,
};

/// A copy of `sb` on the heap, to change and write: a superblock is large and the superblock
/// writes run deep (under the mount's recovery, under sysfs writes), so the copies a change
/// needs are kept off the stack. Written into the new box straight from `sb`.
pub(crate) fn boxed_copy(sb: &Superblock) -> Result<KBox<Superblock>> {
    Ok(KBox::<Superblock>::new_uninit(GFP_KERNEL)?.write(*sb))
}

/// Most bucket table blocks in one write (1 MiB): adjacent dirty blocks are coalesced up to
/// this, and the writer's buffer is never larger.
const TABLE_WRITE_BLOCKS: u32 = 256;

impl Fs {
    /// Writes the changed btree nodes and points the superblocks at the new root; then frees
    /// the old nodes' buckets and the buckets the replayed entries freed to `free` (`frees`,
    /// held until now) and persists the bucket tables; only then moves the superblocks'
    /// journal position to `journal_next` (the next entry's sequence number and offset).
    ///
    /// Two superblock writes, because the replayed entries' bucket updates live nowhere but in
    /// the journal until the tables hold them: a crash before the second write replays the
    /// journal again onto the new root (keys and bucket updates are idempotent), and no crash
    /// can leave a journal position past entries whose bucket updates are not durable.
    ///
    /// A commit of the mounted filesystem's tree (`with_root`: the runtime journal's entries
    /// hold no bucket updates) moves the journal position in the same superblock write as the
    /// root: the new root holds every change, also those of records not written to the journal
    /// yet, so no entry may be replayed onto it (a replay of older entries could undo a later
    /// change that only the root holds). The bucket tables follow; a crash before they are
    /// durable is mended by the next mount's reconciliation with the btree.
    pub(crate) fn commit(
        &self,
        btree: &mut Btree,
        journal_next: JournalPos,
        frees: &[(NodePtr, bool)],
        with_root: bool,
    ) -> Result {
        let required = {
            let st = self.state.lock();
            if st.read_only {
                return Err(EROFS);
            }
            // The superblock this commit will write must be one the decoder accepts: check
            // its sequence numbers before any node is written.
            let mut next = boxed_copy(&st.sb)?;
            next.seq = st.sb.seq.saturating_add(2);
            next.journal_seq = journal_next.seq;
            next.journal_offset = journal_next.offset;
            next.root.node_seq = btree.seq().saturating_add(1);
            if let Err(e) = next.validate() {
                pr_err!(
                    "{}: cannot commit: the next superblock would be refused ({}: superblock seq \
                     {}, journal_seq {}, root node seq {}, the limit is {})\n",
                    UuidFmt(&self.uuid),
                    e.field(),
                    next.seq,
                    next.journal_seq,
                    next.root.node_seq,
                    MAX_SEQ
                );
                return Err(EINVAL);
            }
            st.live.get(Opt::MetadataReplicasRequired)
        };
        // Empty nodes leave the tree first; their new (unwritten) locations go back at once.
        btree.prune_empty(|a| self.alloc.release_nodes(core::slice::from_ref(a)))?;
        // Copies whose write failed are no node's: their buckets wait for discard. Not when the
        // write failed as a whole: the node whose copies fell short still names its copies (a
        // retry writes them again), so none of its buckets may be discarded or handed out;
        // buckets of copies dropped from nodes of lower levels are left `btree` until the next
        // mount's reconciliation frees them.
        let mut dropped: KVec<NodePtr> = KVec::new();
        let written = btree.write_dirty(self, required, |p| {
            let _ = dropped.push(p, GFP_KERNEL);
        });
        if written.is_ok() && !dropped.is_empty() {
            let geometry = &self.geometry;
            self.alloc.update(|devices| {
                for p in dropped.iter().filter(|p| check_ptr(geometry, **p).is_ok()) {
                    if let Some(d) = devices.get_mut(p.member as usize) {
                        d.set_state(p.bucket, BucketState::NeedDiscard);
                    }
                }
            });
        }
        let root = written?;
        self.update_superblock(|sb| {
            sb.root = root;
            if with_root {
                sb.journal_seq = journal_next.seq;
                sb.journal_offset = journal_next.offset;
            }
            Ok(())
        })?;
        // The new tree's nodes are the committed ones before the old nodes become
        // need_discard, so the discard worker never sees a need_discard bucket that the list
        // of committed nodes still names.
        self.discard.rule.set_committed_nodes(btree)?;
        let geometry = &self.geometry;
        self.alloc.update(|devices| {
            btree.committed(&root, |p| {
                // Only the loaded tree's checked pointers and the allocator's buckets come
                // here; a metadata bucket is never made `need_discard`.
                if check_ptr(geometry, p).is_ok() {
                    if let Some(d) = devices.get_mut(p.member as usize) {
                        d.set_state(p.bucket, BucketState::NeedDiscard);
                    }
                }
            });
            // The entries that freed these are in the btree now: the buckets are free. One
            // that is no longer `need_discard` was taken by something else since: left alone.
            for (p, _) in frees.iter().filter(|(_, freed)| *freed) {
                if let Some(d) = devices.get_mut(p.member as usize) {
                    if d.state(p.bucket) == Some(BucketState::NeedDiscard) {
                        d.set_state(p.bucket, BucketState::Free);
                    }
                }
            }
        });
        self.persist_bucket_tables()?;
        if !with_root {
            self.update_superblock(|sb| {
                sb.journal_seq = journal_next.seq;
                sb.journal_offset = journal_next.offset;
                Ok(())
            })?;
        }
        // The entries that freed pinned buckets are in the btree and the tables now.
        self.discard.rule.clear_journal_pins();
        // The old nodes' buckets wait for discard now.
        self.kick_discards();
        Ok(())
    }

    /// Persists every member's bucket table from the allocator's bucket states (the commit:
    /// the states changed by replayed journal entries are committed with it).
    fn persist_bucket_tables(&self) -> Result {
        let _serialised = self.table_lock.lock();
        let seq = self.state.lock().sb.seq;
        // A removed member's table is not written any more.
        (0..self.geometry.len())
            .filter(|&m| !self.members.get(m).is_some_and(|m| m.is_removed()))
            .try_for_each(|m| self.write_bucket_table(m, seq, true).map(|_| ()))
    }

    /// Persists member `m`'s bucket table only (the discard worker), unless a replay has
    /// changed bucket states that no commit has made durable yet: the table must not say a
    /// bucket is free before the superblock says the entry that freed it is in the btree, or
    /// a crash would let the next mount discard it before replaying that entry. Returns
    /// whether it wrote; when it did not, the commit writes the table.
    pub(crate) fn persist_bucket_table(&self, m: usize) -> Result<bool> {
        // Nothing is written to a removed member (its device stays open until the unmount).
        if self.members.get(m).map_or(true, |mm| mm.is_removed()) {
            return Ok(true);
        }
        let _serialised = self.table_lock.lock();
        let seq = self.state.lock().sb.seq;
        self.write_bucket_table(m, seq, false)
    }

    /// Writes the blocks of member `i`'s bucket table that changed since they were last
    /// written, from the allocator's bucket states. With `while_replaying` false it stops
    /// (`Ok(false)`: the commit writes the rest) as soon as it finds journal pins held;
    /// otherwise it returns `Ok(true)`, also when nothing was dirty.
    ///
    /// Adjacent dirty blocks go in one write of at most [`TABLE_WRITE_BLOCKS`]. Every write but
    /// the last is a plain one; the last is PREFLUSH|FUA, so when this returns every block
    /// written is durable, for one cache flush per call. Each block is self-describing (uuid,
    /// member, block number, crc; the mount checks each on its own): a crash between two writes
    /// leaves each block its old or its new self, as a crash inside the former whole-table
    /// write did. A run is marked clean when it is encoded, under the allocator lock, so a
    /// state change after that marks its block again; a failed write marks the runs not yet
    /// durable dirty again.
    fn write_bucket_table(&self, i: usize, seq: u64, while_replaying: bool) -> Result<bool> {
        let m = self.geometry.get(i).ok_or(EINVAL)?;
        let dev = self.members.get(i).ok_or(EINVAL)?.dev()?;
        let table_off = m.bucket_offset(m.table_start as u64);
        let mut entries = KVec::with_capacity(TABLE_ENTRIES_PER_BLOCK as usize, GFP_KERNEL)?;
        // The run encoded last and not written yet (written plain once another follows, FUA
        // if it is the last), and a buffer to reuse.
        let mut held: Option<((u32, u32), IoBuf)> = None;
        let mut spare: Option<IoBuf> = None;
        let mut from = 0u32;
        let mut refused = false;
        // Runs written plain since the last FUA write: not durable yet.
        let mut unflushed: Option<(u32, u32)> = None;
        let result = loop {
            let mut buf = spare.take();
            let encoded = self.alloc.table(i, |view| -> Result<Option<(u32, u32)>> {
                // Under the allocator lock: a replayed update pins its bucket before it changes
                // the state, so no pin means no uncommitted journal state in these blocks. Lock
                // order: allocator state, then journal pins (as in the discard worker's run
                // search).
                if !while_replaying && self.discard.rule.has_journal_pins() {
                    refused = true;
                    return Ok(None);
                }
                // A member being added is published before the allocator takes it (under the
                // state lock, `member_add.rs`): nothing to write yet, its table was written
                // whole by the add.
                let Some(mut view) = view else {
                    return Ok(None);
                };
                let Some((first, n)) = view.dirty_run(from, TABLE_WRITE_BLOCKS) else {
                    return Ok(None);
                };
                let size = n as usize * BLOCK_SIZE;
                if buf.as_ref().map_or(true, |b| b.len() != size) {
                    buf = Some(IoBuf::new(size)?);
                }
                let out = buf.as_mut().ok_or(ENOMEM)?;
                for k in 0..n {
                    let block = first + k;
                    entries.clear();
                    let b0 = (block as u64 * TABLE_ENTRIES_PER_BLOCK) as u32;
                    for b in b0..b0 + entries_in_block(m.nbuckets, block as u64) as u32 {
                        let state = view.state(b).unwrap_or(BucketState::Superblock);
                        entries.push(BucketEntry { state, gen: 0 }, GFP_KERNEL)?;
                    }
                    let id = TableBlockId {
                        uuid: self.uuid,
                        member: i as u32,
                        block,
                    };
                    let o = k as usize * BLOCK_SIZE;
                    encode_block(&id, seq, &entries, &mut out[o..o + BLOCK_SIZE]);
                }
                view.clean(first, n);
                Ok(Some((first, n)))
            });
            let run = match encoded {
                Ok(Some(run)) => run,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            let Some(buf) = buf else {
                break Err(ENOMEM);
            };
            from = run.0 + run.1;
            // Another run follows the held one: write the held one plain.
            if let Some((prev, prev_buf)) = held.replace((run, buf)) {
                let off = table_off + prev.0 as u64 * BLOCK_SIZE as u64;
                if let Err(e) = dev.write(off, &prev_buf, false) {
                    self.alloc.table(i, |v| {
                        if let Some(mut v) = v {
                            v.mark_dirty(prev.0, prev.1);
                        }
                    });
                    break Err(e);
                }
                unflushed = Some(unflushed.map_or(prev, |u| (u.0, prev.0 + prev.1 - u.0)));
                spare = Some(prev_buf);
            }
        };
        // The last run: PREFLUSH|FUA makes it and the plain writes before it durable.
        let result = match (result, held.take()) {
            (Ok(()), Some((run, buf))) => {
                let off = table_off + run.0 as u64 * BLOCK_SIZE as u64;
                let r = dev.write(off, &buf, true);
                if r.is_err() {
                    held = Some((run, buf));
                }
                r
            }
            (r, h) => {
                held = h;
                r
            }
        };
        if let Err(e) = result {
            // Not durable: the held run and the plain writes since the last flush.
            self.alloc.table(i, |v| {
                if let Some(mut v) = v {
                    for (first, n) in Iterator::chain(held.iter().map(|(r, _)| *r), unflushed) {
                        v.mark_dirty(first, n);
                    }
                }
            });
            return Err(e);
        }
        Ok(!refused)
    }

    /// Changes the superblock with `change` and persists it; on any error nothing changes.
    pub(crate) fn update_superblock(
        &self,
        change: impl FnOnce(&mut Superblock) -> Result,
    ) -> Result {
        let mut st = self.state.lock();
        let mut sb = boxed_copy(&st.sb)?;
        change(&mut sb)?;
        self.write_next_superblock(&mut st, sb)
    }

    /// Writes `sb` as the next superblock (its sequence number one past the current one) and,
    /// once every copy is written, makes it the current one.
    pub(crate) fn write_next_superblock(
        &self,
        st: &mut FsState,
        mut sb: KBox<Superblock>,
    ) -> Result {
        // A read-only mount writes nothing (its callers do not get here; this is the guard).
        if st.read_only {
            return Err(EROFS);
        }
        sb.seq = st.sb.seq + 1;
        if let Err(e) = self.write_superblocks(&sb) {
            // Some copies may carry `sb.seq` now: the next superblock must not reuse that
            // sequence number for other contents (copies with one seq must be the same).
            st.sb.seq = sb.seq;
            return Err(e);
        }
        st.sb = sb;
        // The members `metadata_target` names follow the labels this superblock holds.
        self.live_inputs
            .publish(LiveInputs::of(&st.live, st.sb.member_labels()));
        Ok(())
    }

    /// Writes `sb` to every member: first a cache flush of every member (the writes before,
    /// the commit's node writes, are durable on every member before any superblock points at
    /// them), then all primaries, durable (FUA), then all backups, so a crash leaves one good
    /// copy everywhere. Each step goes to all members at once and is waited for once.
    ///
    /// The caller holds the state lock, under which members are added (`member_add.rs`): the
    /// members published are the `nr_members` of `sb`.
    pub(crate) fn write_superblocks(&self, sb: &Superblock) -> Result {
        let n = sb.nr_members as usize;
        let members = self.members.get(..n).ok_or(EINVAL)?;
        let mut targets = KVec::with_capacity(n, GFP_KERNEL)?;
        // Not to a removed member (`sb` says which): its device keeps its last superblock.
        for (i, m) in members.iter().enumerate() {
            if !sb.members[i].is_removed() {
                targets.push((i as u32, m), GFP_KERNEL)?;
            }
        }
        self.write_superblock_copies(sb, &targets)
    }

    /// Writes `sb` to `targets` (each with its member index), as [`Fs::write_superblocks`]
    /// describes: a flush of each, then every primary, then every backup.
    pub(crate) fn write_superblock_copies(
        &self,
        sb: &Superblock,
        targets: &[(u32, &Member)],
    ) -> Result {
        let n = targets.len();
        let mut bufs = IoBuf::new(n * SB_SIZE)?;
        // Never write what the decoder would refuse: every copy is decoded (into a slot on the
        // heap) before any is written, and a refusal fails the write with nothing written.
        let mut decoded = boxed_copy(sb)?;
        for (i, (index, _)) in targets.iter().enumerate() {
            let buf = &mut bufs[i * SB_SIZE..(i + 1) * SB_SIZE];
            sb.encode_as(*index, buf);
            if let Err(e) = Superblock::decode_into(buf, &mut decoded) {
                pr_err!(
                    "{}: refusing to write a superblock the decoder would refuse ({}; seq {}, \
                     journal_seq {})\n",
                    UuidFmt(&self.uuid),
                    e.field(),
                    sb.seq,
                    sb.journal_seq
                );
                return Err(EINVAL);
            }
        }
        let mut tickets = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut flush = IoBatch::with_capacity(n)?;
        for (_, m) in targets.iter() {
            tickets.push(flush.flush(m.dev()?)?, GFP_KERNEL)?;
        }
        self.check_batch(
            flush,
            targets,
            &tickets,
            &"cache flush before the superblock write",
        )?;
        for off in SB_OFFSETS {
            tickets.clear();
            let mut batch = IoBatch::with_capacity(n)?;
            for (i, (_, m)) in targets.iter().enumerate() {
                let buf = bufs.slice(i * SB_SIZE, SB_SIZE).ok_or(EINVAL)?;
                tickets.push(batch.write(m.dev()?, off, buf, true)?, GFP_KERNEL)?;
            }
            // All primaries are durable before any backup is written.
            self.check_batch(
                batch,
                targets,
                &tickets,
                &format_args!("superblock write at {off}"),
            )?;
        }
        Ok(())
    }

    /// Runs `batch`, in which `tickets[i]` is `targets[i]`'s request, and reports each member
    /// whose request failed (`what` failed); the error is the first failure's.
    fn check_batch(
        &self,
        mut batch: IoBatch<'_>,
        targets: &[(u32, &Member)],
        tickets: &[IoTicket],
        what: &dyn core::fmt::Display,
    ) -> Result {
        batch.run()?;
        let mut first = Ok(());
        for ((_, m), t) in targets.iter().zip(tickets) {
            if let Err(e) = batch.status(*t) {
                pr_err!(
                    "{}: {}: {what} failed ({})\n",
                    UuidFmt(&self.uuid),
                    m.name(),
                    e.to_errno()
                );
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

impl Fs {
    /// [`check_ptr`] against the member table in force, where a member removed while mounted
    /// keeps its geometry: its pointers are refused too.
    fn check_member_ptr(&self, ptr: NodePtr) -> core::result::Result<(), PtrError> {
        check_ptr(&self.geometry, ptr)?;
        match self.members.get(ptr.member as usize) {
            Some(m) if m.is_removed() => Err(PtrError::Removed),
            _ => Ok(()),
        }
    }
}

impl NodeIo for Fs {
    fn check_ptr(&self, ptr: NodePtr) -> core::result::Result<(), PtrError> {
        self.check_member_ptr(ptr)
    }

    fn read_node(&self, ptr: NodePtr, buf: &mut IoBuf) -> Result {
        self.check_member_ptr(ptr).map_err(|_| EINVAL)?;
        let m = self.geometry.get(ptr.member as usize).ok_or(EINVAL)?;
        self.members
            .get(ptr.member as usize)
            .ok_or(EINVAL)?
            .dev()?
            .read(m.bucket_offset(ptr.bucket as u64), buf)
    }

    fn member_missing(&self, member: u32) -> bool {
        self.members
            .get(member as usize)
            .is_some_and(|m| m.is_missing())
    }

    fn node_target(&self, ptr: NodePtr) -> Result<(&BlockDevice, u64)> {
        // Never a node into a metadata area, past the device, or on a removed member.
        self.check_member_ptr(ptr).map_err(|_| EINVAL)?;
        let m = self.geometry.get(ptr.member as usize).ok_or(EINVAL)?;
        let dev = self.members.get(ptr.member as usize).ok_or(EINVAL)?.dev()?;
        Ok((dev, m.bucket_offset(ptr.bucket as u64)))
    }

    fn uuid(&self) -> [u8; 16] {
        self.uuid
    }
}

// SPDX-License-Identifier: GPL-2.0

//! Writing the filesystem: btree nodes ([`NodeIo`]), superblocks (every copy checked by the
//! decoder before any is written; primaries first, then backups), bucket tables, and the
//! commit that orders them (nodes, superblocks, bucket states, tables).

use crate::bdev::IoBuf;
use crate::btree::{Btree, NodeIo};
use crate::fs::{Fs, FsState};
use crate::journal::JournalPos;
use crate::shared::bucket_table::{
    encode_block, entries_in_block, table_blocks, BucketEntry, BucketState, TableBlockId,
};
use crate::shared::options::Opt;
use crate::shared::superblock::{
    check_ptr, NodePtr, PtrError, Superblock, UuidFmt, BLOCK_SIZE, MAX_SEQ, SB_OFFSETS, SB_SIZE,
    TABLE_ENTRIES_PER_BLOCK,
};
use crate::vec_ext::VecExt;
use kernel::{alloc::KVec, prelude::*};

impl Fs {
    /// Writes the changed btree nodes, points the superblocks at the new root with the
    /// journal replayed up to `journal_next` (the next entry's sequence number and offset),
    /// then frees the old nodes' buckets and the
    /// buckets the replayed entries freed to `free` (`frees`, held until now), and persists
    /// the bucket tables.
    pub(crate) fn commit(
        &self,
        btree: &mut Btree,
        journal_next: JournalPos,
        frees: &[(NodePtr, bool)],
    ) -> Result {
        let required = {
            let st = self.state.lock();
            // The superblock this commit will write must be one the decoder accepts: check
            // its sequence numbers before any node is written.
            let mut next = st.sb;
            next.seq = st.sb.seq.saturating_add(1);
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
        let root = btree.write_dirty(self, required)?;
        self.update_superblock(|sb| {
            sb.root = root;
            sb.journal_seq = journal_next.seq;
            sb.journal_offset = journal_next.offset;
            Ok(())
        })?;
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
        self.discard.rule.set_committed_nodes(btree)?;
        self.persist_bucket_tables()?;
        // The entries that freed pinned buckets are in the btree now.
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
        (0..self.geometry.len()).try_for_each(|m| self.write_bucket_table(m, seq, true).map(|_| ()))
    }

    /// Persists member `m`'s bucket table only (the discard worker), unless a replay has
    /// changed bucket states that no commit has made durable yet: the table must not say a
    /// bucket is free before the superblock says the entry that freed it is in the btree, or
    /// a crash would let the next mount discard it before replaying that entry. Returns
    /// whether it wrote; when it did not, the commit writes the table.
    pub(crate) fn persist_bucket_table(&self, m: usize) -> Result<bool> {
        let _serialised = self.table_lock.lock();
        let seq = self.state.lock().sb.seq;
        self.write_bucket_table(m, seq, false)
    }

    /// Writes member `i`'s bucket table from the allocator's bucket states; with
    /// `while_replaying` false, writes nothing (`Ok(false)`) while journal pins are held.
    fn write_bucket_table(&self, i: usize, seq: u64, while_replaying: bool) -> Result<bool> {
        let m = self.geometry.get(i).ok_or(EINVAL)?;
        let blocks = table_blocks(m.nbuckets);
        let mut buf = IoBuf::new(blocks as usize * BLOCK_SIZE)?;
        let written = self.alloc.inspect(|devices| -> Result<bool> {
            // Under the allocator lock: a replayed update pins its bucket before it changes
            // the state, so no pin means no uncommitted journal state in this snapshot. Lock
            // order: allocator state, then journal pins (as in the discard worker's run search).
            if !while_replaying && self.discard.rule.has_journal_pins() {
                return Ok(false);
            }
            let d = devices.get(i).ok_or(EINVAL)?;
            let mut entries = KVec::with_capacity(TABLE_ENTRIES_PER_BLOCK as usize, GFP_KERNEL)?;
            for block in 0..blocks {
                entries.clear();
                let first = (block * TABLE_ENTRIES_PER_BLOCK) as u32;
                for b in first..first + entries_in_block(m.nbuckets, block) as u32 {
                    let state = d.state(b).unwrap_or(BucketState::Superblock);
                    entries.push(BucketEntry { state, gen: 0 }, GFP_KERNEL)?;
                }
                let id = TableBlockId {
                    uuid: self.uuid,
                    member: i as u32,
                    block: block as u32,
                };
                let o = block as usize * BLOCK_SIZE;
                encode_block(&id, seq, &entries, &mut buf[o..o + BLOCK_SIZE]);
            }
            Ok(true)
        })?;
        if !written {
            return Ok(false);
        }
        self.members[i]
            .dev
            .write(m.bucket_offset(m.table_start as u64), &buf, true)?;
        Ok(true)
    }

    /// Changes the superblock with `change` and persists it; on any error nothing changes.
    pub(crate) fn update_superblock(
        &self,
        change: impl FnOnce(&mut Superblock) -> Result,
    ) -> Result {
        let mut st = self.state.lock();
        let mut sb = st.sb;
        change(&mut sb)?;
        self.write_next_superblock(&mut st, sb)
    }

    /// Writes `sb` as the next superblock (its sequence number one past the current one) and,
    /// once every copy is written, makes it the current one.
    pub(crate) fn write_next_superblock(&self, st: &mut FsState, mut sb: Superblock) -> Result {
        sb.seq = st.sb.seq + 1;
        self.write_superblocks(&sb)?;
        st.sb = sb;
        Ok(())
    }

    /// Writes `sb` to every member: all primaries first, then all backups, so a crash
    /// leaves one good copy everywhere.
    fn write_superblocks(&self, sb: &Superblock) -> Result {
        let mut buf = IoBuf::new(SB_SIZE)?;
        // Never write what the decoder would refuse: every copy is decoded before any is
        // written, and a refusal fails the write with nothing written.
        for i in 0..self.members.len() {
            let mut copy = *sb;
            copy.member_index = i as u32;
            copy.encode(&mut buf);
            if let Err(e) = Superblock::decode(&buf) {
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
        for off in SB_OFFSETS {
            for (i, m) in self.members.iter().enumerate() {
                let mut copy = *sb;
                copy.member_index = i as u32;
                copy.encode(&mut buf);
                m.dev.write(off, &buf, true).inspect_err(|e| {
                    pr_err!(
                        "{}: {}: superblock write at {off} failed ({})\n",
                        UuidFmt(&self.uuid),
                        m.name(),
                        e.to_errno()
                    )
                })?;
            }
        }
        Ok(())
    }
}

impl NodeIo for Fs {
    fn check_ptr(&self, ptr: NodePtr) -> core::result::Result<(), PtrError> {
        check_ptr(&self.geometry, ptr)
    }

    fn read_node(&self, ptr: NodePtr, buf: &mut IoBuf) -> Result {
        check_ptr(&self.geometry, ptr).map_err(|_| EINVAL)?;
        let m = self.geometry.get(ptr.member as usize).ok_or(EINVAL)?;
        self.members[ptr.member as usize]
            .dev
            .read(m.bucket_offset(ptr.bucket as u64), buf)
    }

    fn write_node(&self, ptr: NodePtr, buf: &IoBuf) -> Result {
        // Never a node into a metadata area or past the device.
        check_ptr(&self.geometry, ptr).map_err(|_| EINVAL)?;
        let m = self.geometry.get(ptr.member as usize).ok_or(EINVAL)?;
        self.members[ptr.member as usize]
            .dev
            .write(m.bucket_offset(ptr.bucket as u64), buf, false)
    }

    fn uuid(&self) -> [u8; 16] {
        self.uuid
    }
}

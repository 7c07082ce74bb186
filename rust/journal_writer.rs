// SPDX-License-Identifier: GPL-2.0

//! The runtime journal: the open entry, which gathers the records of whole transactions, and
//! its writes to every member's journal area.
//!
//! The live journal is the entries from the superblock's `journal_offset` on, with consecutive
//! sequence numbers from its `journal_seq` (`journal.rs` reads it at mount). An entry is written
//! at the same block of every writable member's area, with FUA, followed (when the area has
//! room) by one zero block: the mount's reader stops there, instead of reading on through
//! entries of an earlier lap of the area. An entry never wraps: when the open entry does not fit
//! before the end of the smallest area, the tree is committed first (`transaction.rs`), which
//! makes every entry obsolete, and the journal starts again at block 0. So a full journal waits
//! for that commit and never overwrites a live entry.

use crate::bdev::{BlockDevice, IoBatch, IoBuf};
use crate::btree::Btree;
use crate::data_space::DataSpace;
use crate::shared::bkey::Pos;
use crate::shared::journal_format::{
    encode_entry, entry_blocks, BucketUpdate, MAX_KEY_BYTES, UPDATE_BYTES,
};
use crate::shared::superblock::Member;
use crate::shared::superblock::{UuidFmt, BLOCK_SIZE};
use crate::vec_ext::VecExt;
use kernel::{alloc::KVVec, prelude::*};

/// The mounted filesystem's btree and its journal, guarded by `Fs::tree`
/// (`transaction.rs` runs transactions on it).
pub(crate) struct Tree {
    /// The whole btree, with the changes not committed yet.
    pub(crate) btree: Btree,
    /// The open journal entry and the journal position.
    pub(crate) jw: JournalWriter,
    /// A transaction ended well since the last commit made to find space before an `ENOSPC`.
    pub(crate) changed_since_space_commit: bool,
    /// The buffers of the transaction running on the tree, kept between transactions (cleared
    /// for each one) so a transaction allocates nothing once they have grown.
    pub(crate) tx_buffers: TxBuffers,
    /// The data buckets: write points, live blocks, frees waiting for the journal.
    pub(crate) data: DataSpace,
}

/// One update a transaction made, to undo it: the key, and where its value before is in
/// [`TxBuffers::old`] (`None`: it was absent).
#[derive(Clone, Copy)]
pub(crate) struct Undo {
    pub(crate) pos: Pos,
    pub(crate) old: Option<(usize, usize)>,
}

/// What a transaction keeps while it runs (`transaction.rs`).
pub(crate) struct TxBuffers {
    /// Its updates, to undo them.
    pub(crate) undo: KVec<Undo>,
    /// The values the updates replaced, one after the other.
    pub(crate) old: KVVec<u8>,
    /// Its records, encoded.
    pub(crate) recs: KVVec<u8>,
}

impl TxBuffers {
    /// Empty buffers.
    pub(crate) fn new() -> TxBuffers {
        TxBuffers {
            undo: KVec::new(),
            old: KVVec::new(),
            recs: KVVec::new(),
        }
    }

    /// Empties them for the next transaction (keeping their room, unless it grew large).
    pub(crate) fn reset(&mut self) {
        const KEEP: usize = 1 << 16;
        if self.old.capacity() > KEEP || self.recs.capacity() > KEEP {
            *self = TxBuffers::new();
            return;
        }
        self.undo.clear();
        self.old.clear();
        self.recs.clear();
    }
}

/// A member the journal is written to: its device and geometry (where its area is).
pub(crate) type JournalCopy<'a> = (&'a BlockDevice, &'a Member);

/// Blocks of the smallest journal area of `copies` (0 if there is none).
pub(crate) fn area_blocks(copies: &[JournalCopy<'_>]) -> u64 {
    copies
        .iter()
        .map(|(_, g)| g.journal_blocks())
        .min()
        .unwrap_or(0)
}

/// The open entry and where it goes.
///
/// # Invariants
///
/// `recs` holds `nr` valid records ([`crate::shared::bkey::encode`]); they and `updates` (as
/// encoded) take at most [`MAX_KEY_BYTES`].
pub(crate) struct JournalWriter {
    recs: KVVec<u8>,
    nr: u32,
    /// Bucket updates of the open entry (data buckets opened by its transactions).
    updates: KVec<BucketUpdate>,
    /// Sequence number of the open entry: the next entry written.
    pub(crate) seq: u64,
    /// Block of the journal areas where it goes.
    pub(crate) pos: u64,
    /// Entries written since the last commit.
    pub(crate) written: u64,
}

/// What [`JournalWriter::write`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// The entry is durable (or there was nothing to write).
    Done,
    /// It does not fit before the end of the journal area: commit, then write again.
    AreaFull,
    /// Written to fewer members than needed (error `.0`): the entry may be on some of them,
    /// so its sequence number and place may not be used again by this mount.
    Short(Error),
}

impl JournalWriter {
    /// The journal goes on with entry `seq` at block `pos`.
    pub(crate) fn new(seq: u64, pos: u64) -> JournalWriter {
        JournalWriter {
            recs: KVVec::new(),
            nr: 0,
            updates: KVec::new(),
            seq,
            pos,
            written: 0,
        }
    }

    /// Whether the open entry holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.nr == 0 && self.updates.is_empty()
    }

    /// Whether `bytes` more bytes of records (and bucket updates) fit in the open entry.
    pub(crate) fn fits(&self, bytes: usize) -> bool {
        self.recs.len() + self.updates.len() * UPDATE_BYTES + bytes <= MAX_KEY_BYTES
    }

    /// Adds a transaction's `nr` records (valid, encoded by [`crate::shared::bkey::encode`])
    /// and its bucket updates; the caller checked [`JournalWriter::fits`]. All or nothing.
    pub(crate) fn append(&mut self, recs: &[u8], nr: u32, updates: &[BucketUpdate]) -> Result {
        if !self.fits(recs.len() + updates.len() * UPDATE_BYTES) {
            return Err(E2BIG);
        }
        self.updates.reserve(updates.len(), GFP_KERNEL)?;
        self.recs.extend_from_slice(recs, GFP_KERNEL)?;
        for u in updates {
            // Within the capacity reserved above.
            self.updates.push(*u, GFP_KERNEL)?;
        }
        self.nr += nr;
        Ok(())
    }

    /// A commit made every record durable in the btree: the open entry is dropped (its
    /// sequence number stays the next one), and the journal goes on at `pos`.
    pub(crate) fn committed(&mut self, pos: u64) {
        self.recs.clear();
        self.nr = 0;
        self.updates.clear();
        self.pos = pos;
        self.written = 0;
    }
}

impl JournalWriter {
    /// Writes the open entry (nothing if it is empty) of filesystem `uuid` at `pos` of every
    /// area in `copies`, with FUA: when this returns `Done`, the entry is durable on at least
    /// `required` of them (all of them if fewer). Returns `AreaFull`, writing nothing, if it
    /// does not fit before the end of the smallest area.
    pub(crate) fn write(
        &mut self,
        uuid: &[u8; 16],
        copies: &[JournalCopy<'_>],
        required: usize,
    ) -> Result<Written> {
        if self.is_empty() {
            return Ok(Written::Done);
        }
        let blocks = entry_blocks(self.recs.len(), self.updates.len()).ok_or(E2BIG)? as u64;
        let area = area_blocks(copies);
        if self.pos + blocks > area {
            return Ok(Written::AreaFull);
        }
        // The zero block after the entry, when the area has room for it.
        let trailer = (self.pos + blocks < area) as u64;
        let len = ((blocks + trailer) as usize) * BLOCK_SIZE;
        let mut buf = IoBuf::new(len)?;
        buf.fill(0);
        // The encoder refuses what the decoder would: never written, then.
        if encode_entry(
            uuid,
            self.seq,
            self.nr as usize,
            &self.recs,
            &self.updates,
            &mut buf,
        )
        .is_none()
        {
            pr_err!(
                "{}: journal entry {} cannot be encoded ({} records, {} bytes)\n",
                UuidFmt(uuid),
                self.seq,
                self.nr,
                self.recs.len()
            );
            return Err(EIO);
        }
        let required = required.min(copies.len()).max(1);
        let slice = buf.slice(0, len).ok_or(EINVAL)?;
        let mut batch = IoBatch::with_capacity(copies.len())?;
        let mut tickets = KVVec::with_capacity(copies.len(), GFP_KERNEL)?;
        for (dev, g) in copies {
            let off = g.bucket_offset(g.journal_start as u64) + self.pos * BLOCK_SIZE as u64;
            tickets.push(batch.write(dev, off, slice, true).ok(), GFP_KERNEL)?;
        }
        if let Err(e) = batch.run() {
            // Nothing was submitted.
            return Err(e);
        }
        let good = tickets
            .iter()
            .filter(|t| t.is_some_and(|t| batch.status(t).is_ok()))
            .count();
        if good < required {
            pr_err!(
                "{}: journal entry {} written to {good} member(s) of {}, {required} needed (-5)\n",
                UuidFmt(uuid),
                self.seq,
                copies.len()
            );
            return Ok(Written::Short(EIO));
        }
        self.recs.clear();
        self.nr = 0;
        self.updates.clear();
        self.seq += 1;
        self.pos += blocks;
        self.written += 1;
        Ok(Written::Done)
    }
}

/// Writes a zero block at block 0 of every area in `copies` (after a commit moved the journal
/// there), so a mount reading from there stops at once. Best effort: stale entries there are
/// older than the superblock's `journal_seq` and are skipped.
pub(crate) fn clear_start(copies: &[JournalCopy<'_>]) {
    let Ok(mut buf) = IoBuf::new(BLOCK_SIZE) else {
        return;
    };
    buf.fill(0);
    let Some(slice) = buf.slice(0, BLOCK_SIZE) else {
        return;
    };
    let Ok(mut batch) = IoBatch::with_capacity(copies.len()) else {
        return;
    };
    for (dev, g) in copies {
        let _ = batch.write(dev, g.bucket_offset(g.journal_start as u64), slice, true);
    }
    let _ = batch.run();
}

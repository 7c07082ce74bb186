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

use crate::bdev::{IoBatch, IoBuf};
use crate::fs::Fs;
use crate::shared::journal_format::{encode_entry, entry_blocks, MAX_KEY_BYTES};
use crate::shared::options::Opt;
use crate::shared::superblock::{UuidFmt, BLOCK_SIZE};
use crate::vec_ext::VecExt;
use kernel::{alloc::KVVec, prelude::*};

/// The open entry and where it goes.
///
/// # Invariants
///
/// `recs` holds `nr` valid records ([`crate::shared::bkey::encode`]), at most
/// [`MAX_KEY_BYTES`] of them.
pub(crate) struct JournalWriter {
    recs: KVVec<u8>,
    nr: u32,
    /// Sequence number of the open entry: the next entry written.
    pub(crate) seq: u64,
    /// Block of the journal areas where it goes.
    pub(crate) pos: u64,
    /// Entries written since the last commit.
    pub(crate) written: u64,
}

/// What [`Fs::write_entry`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// The entry is durable (or there was nothing to write).
    Done,
    /// It does not fit before the end of the journal area: commit, then write again.
    AreaFull,
}

impl JournalWriter {
    /// The journal goes on with entry `seq` at block `pos`.
    pub(crate) fn new(seq: u64, pos: u64) -> JournalWriter {
        JournalWriter {
            recs: KVVec::new(),
            nr: 0,
            seq,
            pos,
            written: 0,
        }
    }

    /// Whether the open entry holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.nr == 0
    }

    /// Whether `bytes` more bytes of records fit in the open entry.
    pub(crate) fn fits(&self, bytes: usize) -> bool {
        self.recs.len() + bytes <= MAX_KEY_BYTES
    }

    /// Adds a transaction's `nr` records (valid, encoded by [`crate::shared::bkey::encode`]);
    /// the caller checked [`JournalWriter::fits`].
    pub(crate) fn append(&mut self, recs: &[u8], nr: u32) -> Result {
        if !self.fits(recs.len()) {
            return Err(E2BIG);
        }
        self.recs.extend_from_slice(recs, GFP_KERNEL)?;
        self.nr += nr;
        Ok(())
    }

    /// A commit made every record durable in the btree: the open entry is dropped (its
    /// sequence number stays the next one), and the journal goes on at `pos`.
    pub(crate) fn committed(&mut self, pos: u64) {
        self.recs.clear();
        self.nr = 0;
        self.pos = pos;
        self.written = 0;
    }
}

impl Fs {
    /// Half of the smallest journal area, in blocks.
    pub(crate) fn journal_half(&self) -> u64 {
        self.journal_area().0 / 2
    }

    /// Blocks of the smallest journal area of the members written to, and how many there are.
    fn journal_area(&self) -> (u64, usize) {
        let mut blocks = u64::MAX;
        let mut n = 0;
        for (m, g) in self.members.iter().zip(self.geometry.iter()) {
            if m.is_removed() || m.dev().is_err() {
                continue;
            }
            blocks = blocks.min(g.journal_blocks());
            n += 1;
        }
        (if n == 0 { 0 } else { blocks }, n)
    }

    /// Writes the open entry of `jw` (nothing if it is empty) at `jw.pos` of every writable
    /// member's journal area, with FUA: when this returns `Done`, the entry is durable on at
    /// least `metadata_replicas_required` members (all of them if fewer). Returns `AreaFull`,
    /// writing nothing, if it does not fit before the end of the smallest area.
    pub(crate) fn write_entry(&self, jw: &mut JournalWriter) -> Result<Written> {
        if jw.is_empty() {
            return Ok(Written::Done);
        }
        let blocks = entry_blocks(jw.recs.len(), 0).ok_or(E2BIG)? as u64;
        let (area, members) = self.journal_area();
        if jw.pos + blocks > area {
            return Ok(Written::AreaFull);
        }
        // The zero block after the entry, when the area has room for it.
        let trailer = (jw.pos + blocks < area) as u64;
        let len = ((blocks + trailer) as usize) * BLOCK_SIZE;
        let mut buf = IoBuf::new(len)?;
        buf.fill(0);
        // The encoder refuses what the decoder would: never written, then.
        encode_entry(&self.uuid, jw.seq, jw.nr as usize, &jw.recs, &[], &mut buf).ok_or_else(
            || {
                pr_err!(
                    "{}: journal entry {} cannot be encoded ({} records, {} bytes)\n",
                    UuidFmt(&self.uuid),
                    jw.seq,
                    jw.nr,
                    jw.recs.len()
                );
                EIO
            },
        )?;
        let required = (self.state.lock().live.get(Opt::MetadataReplicasRequired) as usize)
            .min(members)
            .max(1);
        let slice = buf.slice(0, len).ok_or(EINVAL)?;
        let mut batch = IoBatch::with_capacity(members)?;
        let mut tickets = KVVec::with_capacity(members, GFP_KERNEL)?;
        for (m, g) in self.members.iter().zip(self.geometry.iter()) {
            if m.is_removed() {
                continue;
            }
            let Ok(dev) = m.dev() else {
                continue;
            };
            let off = g.bucket_offset(g.journal_start as u64) + jw.pos * BLOCK_SIZE as u64;
            tickets.push(batch.write(dev, off, slice, true).ok(), GFP_KERNEL)?;
        }
        batch.run()?;
        let good = tickets
            .iter()
            .filter(|t| t.is_some_and(|t| batch.status(t).is_ok()))
            .count();
        if good < required {
            pr_err!(
                "{}: journal entry {} written to {good} member(s) of {members}, {required} \
                 needed (-5)\n",
                UuidFmt(&self.uuid),
                jw.seq
            );
            return Err(EIO);
        }
        jw.recs.clear();
        jw.nr = 0;
        jw.seq += 1;
        jw.pos += blocks;
        jw.written += 1;
        Ok(Written::Done)
    }

    /// Writes a zero block at block 0 of every writable member's journal area (after a commit
    /// moved the journal there), so a mount reading from there stops at once. Best effort:
    /// stale entries there are older than the superblock's `journal_seq` and are skipped.
    pub(crate) fn clear_journal_start(&self) {
        let Ok(mut buf) = IoBuf::new(BLOCK_SIZE) else {
            return;
        };
        buf.fill(0);
        let Some(slice) = buf.slice(0, BLOCK_SIZE) else {
            return;
        };
        let Ok(mut batch) = IoBatch::with_capacity(self.members.len()) else {
            return;
        };
        for (m, g) in self.members.iter().zip(self.geometry.iter()) {
            if m.is_removed() {
                continue;
            }
            if let Ok(dev) = m.dev() {
                let _ = batch.write(dev, g.bucket_offset(g.journal_start as u64), slice, true);
            }
        }
        let _ = batch.run();
    }
}

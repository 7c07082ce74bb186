// SPDX-License-Identifier: GPL-2.0

//! Reading the journal for replay.
//!
//! Every member carries a copy of the journal in its journal buckets. An entry is replayed if
//! its sequence number is at least the superblock's `journal_seq` (the first one not yet in
//! the btree); entries are taken in sequence order from there, and replay stops at the first
//! gap, so a torn or missing entry ends the journal instead of being skipped over.
//!
//! Sequence numbers are bounded: an entry above [`MAX_ENTRY_SEQ`] is refused (with a message),
//! because replaying it would make the committed superblock's `journal_seq` one the superblock
//! decoder refuses, and no copy would decode afterwards.

use crate::bdev::{BlockDevice, IoBuf};
use crate::shared::journal_format::{
    decode_entry, decode_header, BucketUpdate, JournalError, Key, MAX_ENTRY_SEQ,
};
use crate::shared::superblock::{Member, BLOCK_SIZE};
use core::cell::Cell;
use kernel::{alloc::KVec, prelude::*};

/// One journal entry to replay.
pub(crate) struct Entry {
    /// Sequence number.
    pub(crate) seq: u64,
    /// Length in blocks.
    pub(crate) blocks: u32,
    /// Key updates, in order.
    pub(crate) keys: KVec<Key>,
    /// Bucket state changes.
    pub(crate) updates: KVec<BucketUpdate>,
}

/// Reads every member's journal and returns the entries to replay, in sequence order,
/// starting at `from_seq` and stopping at the first gap.
pub(crate) fn read_entries(
    uuid: &[u8; 16],
    members: &[(&BlockDevice, &Member)],
    from_seq: u64,
) -> Result<KVec<Entry>> {
    let mut found: KVec<Entry> = KVec::new();
    // Entries refused for their sequence number: the first one and how many.
    let mut beyond: Option<(u64, u64)> = None;
    for (dev, m) in members {
        let bytes = m.journal_buckets as usize * m.bucket_size as usize;
        let mut buf = IoBuf::new(bytes)?;
        dev.read(m.bucket_offset(m.journal_start as u64), &mut buf)?;
        let mut off = 0;
        while off + BLOCK_SIZE <= bytes {
            let h = match decode_header(uuid, &buf[off..off + BLOCK_SIZE]) {
                Ok(h) => h,
                Err(e) => {
                    if let JournalError::Sequence(seq) = e {
                        let (first, n) = beyond.unwrap_or((seq, 0));
                        beyond = Some((first.min(seq), n + 1));
                    }
                    off += BLOCK_SIZE;
                    continue;
                }
            };
            if h.seq < from_seq || found.iter().any(|e| e.seq == h.seq) {
                off += h.blocks as usize * BLOCK_SIZE;
                continue;
            }
            let mut e = Entry {
                seq: h.seq,
                blocks: h.blocks,
                keys: KVec::new(),
                updates: KVec::new(),
            };
            let oom = Cell::new(false);
            let end = (off + h.blocks as usize * BLOCK_SIZE).min(bytes);
            let decoded = decode_entry(
                uuid,
                &buf[off..end],
                |k| oom.set(oom.get() | e.keys.push(k, GFP_KERNEL).is_err()),
                |u| oom.set(oom.get() | e.updates.push(u, GFP_KERNEL).is_err()),
            );
            if oom.get() {
                return Err(ENOMEM);
            }
            match decoded {
                Ok(_) => {
                    found.push(e, GFP_KERNEL)?;
                    off = end;
                }
                Err(_) => off += BLOCK_SIZE,
            }
        }
    }
    if let Some((seq, n)) = beyond {
        pr_warn!(
            "{}: journal: {n} entry header(s) refused: sequence number {seq} is above the \
             largest replayable one ({MAX_ENTRY_SEQ})\n",
            crate::shared::superblock::UuidFmt(uuid),
        );
    }
    found.sort_unstable_by_key(|e| e.seq);
    // Keep the run that starts at `from_seq` and has no gap.
    let run = found
        .iter()
        .enumerate()
        .take_while(|(i, e)| from_seq.checked_add(*i as u64) == Some(e.seq))
        .count();
    if found.len() > run {
        // Entries past a gap are not replayed: say so, it means a torn or damaged entry.
        pr_warn!(
            "{}: journal: entry {} is missing or damaged; {} later entr{} not replayed\n",
            crate::shared::superblock::UuidFmt(uuid),
            from_seq.saturating_add(run as u64),
            found.len() - run,
            if found.len() - run == 1 {
                "y is"
            } else {
                "ies are"
            }
        );
    }
    let mut entries = KVec::with_capacity(run, GFP_KERNEL)?;
    for (i, e) in found.into_iter().enumerate() {
        if i < run {
            entries.push(e, GFP_KERNEL)?;
        }
    }
    Ok(entries)
}

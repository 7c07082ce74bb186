// SPDX-License-Identifier: GPL-2.0

//! Reading the journal for replay.
//!
//! Every member carries a copy of the journal in its journal buckets, each entry at the same
//! block offset of the area. The live journal starts at the superblock's `journal_offset` with
//! the entry whose sequence number is `journal_seq` (the first one not yet in the btree) and
//! goes on with consecutive entries. Only that part is read, from one copy, forward, a bounded
//! window at a time ([`WINDOW_BYTES`]): memory does not grow with the journal area, only with
//! the entries taken (their keys and updates, in virtually contiguous vectors).
//!
//! At each position the copy being read must hold the expected entry; an older entry of this
//! filesystem (already in the btree) is skipped. Anything else ends that copy there (no entry,
//! another filesystem's entry, a refused or torn entry, a later sequence number, a read error),
//! and the same position is tried on the other copies; the first that has it becomes the copy
//! read from. When no copy has it, the journal ends there, so a torn or missing entry ends the
//! journal instead of being skipped over. Only when every copy failed with a read error is the
//! read an error.
//!
//! Sequence numbers are bounded: an entry above [`MAX_ENTRY_SEQ`] is refused (with a message),
//! because replaying it would make the committed superblock's `journal_seq` one the superblock
//! decoder refuses, and no copy would decode afterwards.

use crate::bdev::{BlockDevice, IoBuf};
use crate::shared::journal_format::{
    decode_entry, decode_entry_records, decode_header, BucketUpdate, JournalError,
    MAX_ENTRY_BLOCKS, MAX_ENTRY_SEQ,
};
use crate::shared::superblock::{Member, UuidFmt, BLOCK_SIZE};
use kernel::{alloc::KVVec, prelude::*};

/// Bytes read at a time from the copy being read.
const WINDOW_BYTES: usize = 1 << 20;
/// [`WINDOW_BYTES`] in blocks.
const WINDOW_BLOCKS: u64 = (WINDOW_BYTES / BLOCK_SIZE) as u64;

/// One journal entry to replay.
pub(crate) struct Entry {
    /// Sequence number.
    pub(crate) seq: u64,
    /// Length in blocks.
    pub(crate) blocks: u32,
    /// Key records (updates and deletions, [`crate::shared::bkey`]), in order, checked.
    pub(crate) records: KVVec<u8>,
    /// Records in `records`.
    pub(crate) nr_keys: u32,
    /// Bucket state changes.
    pub(crate) updates: KVVec<BucketUpdate>,
}

/// One member's copy of the journal.
pub(crate) struct Copy<'a> {
    /// The member's device.
    pub(crate) dev: &'a BlockDevice,
    /// Its geometry (where the journal area is).
    pub(crate) member: &'a Member,
    /// Its name, for messages.
    pub(crate) name: &'a str,
}

/// What [`read_entries`] found.
pub(crate) struct Journal {
    /// The entries to replay, in sequence order from the superblock's `journal_seq`, with no
    /// gap.
    pub(crate) entries: KVVec<Entry>,
    /// Where the next entry would start: the block after the last entry taken (the start
    /// offset if none was), or 0 if that is the end of the smallest copy's area. This is the
    /// `journal_offset` the commit after the replay writes.
    pub(crate) next_offset: u64,
    /// Bytes read from the devices.
    pub(crate) bytes_read: u64,
}

/// Where the journal goes on: the superblock's `journal_seq` and `journal_offset`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JournalPos {
    /// Sequence number of the first entry not in the btree.
    pub(crate) seq: u64,
    /// Block offset in the journal area where that entry starts (or would be written).
    pub(crate) offset: u64,
}

/// The read buffer: some blocks of one copy's journal area.
struct Window {
    buf: IoBuf,
    /// Which copy the blocks are from (`usize::MAX`: none).
    copy: usize,
    /// First block in the buffer, as an offset in the journal area.
    first: u64,
    /// Blocks in the buffer.
    len: u64,
    /// Bytes read so far.
    bytes_read: u64,
}

impl Window {
    /// Blocks `pos .. pos + n` of copy `c`'s area (`n` at most [`MAX_ENTRY_BLOCKS`]), read if
    /// they are not in the buffer: a window's worth from `pos` with `ahead` (the copy being
    /// streamed), just an entry's worth otherwise (a fallback look at another copy). `None` if
    /// they run past the area.
    fn blocks(
        &mut self,
        copies: &[Copy<'_>],
        c: usize,
        pos: u64,
        n: u64,
        ahead: bool,
    ) -> Result<Option<&[u8]>> {
        let m = copies[c].member;
        let area_blocks = m.journal_blocks();
        if pos.checked_add(n).map_or(true, |end| end > area_blocks) {
            return Ok(None);
        }
        if self.copy != c || pos < self.first || pos + n > self.first + self.len {
            let want = if ahead {
                WINDOW_BLOCKS
            } else {
                MAX_ENTRY_BLOCKS as u64
            };
            let want = want.max(n).min(area_blocks - pos);
            self.copy = usize::MAX;
            let off = m.bucket_offset(m.journal_start as u64) + pos * BLOCK_SIZE as u64;
            copies[c]
                .dev
                .read_part(off, &mut self.buf, want as usize * BLOCK_SIZE)?;
            self.bytes_read += want * BLOCK_SIZE as u64;
            (self.copy, self.first, self.len) = (c, pos, want);
        }
        let o = (pos - self.first) as usize * BLOCK_SIZE;
        Ok(self.buf.get(o..o + n as usize * BLOCK_SIZE))
    }

    /// Entry headers of this filesystem with a sequence number above `seq` in the blocks of
    /// copy `c` from `pos` on that are already in the buffer: entries a gap keeps from replay.
    fn later_entries(&self, uuid: &[u8; 16], c: usize, mut pos: u64, seq: u64) -> u64 {
        let mut n = 0;
        if self.copy != c || pos < self.first {
            return 0;
        }
        while pos < self.first + self.len {
            let o = (pos - self.first) as usize * BLOCK_SIZE;
            match self
                .buf
                .get(o..o + BLOCK_SIZE)
                .map(|b| decode_header(uuid, b))
            {
                Some(Ok(h)) => {
                    n += (h.seq > seq) as u64;
                    pos += h.blocks as u64;
                }
                _ => pos += 1,
            }
        }
        n
    }
}

/// What one copy holds at a position.
enum Found {
    /// The expected entry.
    Entry(Entry),
    /// An entry of this filesystem already in the btree, this many blocks long.
    Old(u32),
    /// Not the expected entry: the journal ends here on this copy.
    End(End),
}

/// Why a copy has no expected entry at a position.
enum End {
    /// No valid entry header (nothing written, another filesystem's entry), a refused entry,
    /// or the end of the area.
    Nothing(Option<JournalError>),
    /// An entry with a later sequence number: the expected one is missing.
    Gap,
    /// A read error.
    Io(Error),
}

/// Looks at position `pos` of copy `c` for the entry with sequence number `expected`. Fails
/// only for lack of memory.
fn entry_at(
    uuid: &[u8; 16],
    win: &mut Window,
    copies: &[Copy<'_>],
    c: usize,
    pos: u64,
    expected: u64,
    ahead: bool,
) -> Result<Found> {
    let header = match win.blocks(copies, c, pos, 1, ahead) {
        Ok(Some(b)) => decode_header(uuid, b),
        Ok(None) => return Ok(Found::End(End::Nothing(None))),
        Err(e) => return Ok(Found::End(End::Io(e))),
    };
    let h = match header {
        Ok(h) => h,
        Err(e) => return Ok(Found::End(End::Nothing(Some(e)))),
    };
    if h.seq < expected {
        // An older entry is skipped by its length only once its checksum shows the header is
        // the entry's: a stale or torn header could otherwise jump over live entries.
        let whole = match win.blocks(copies, c, pos, h.blocks as u64, ahead) {
            Ok(Some(b)) => decode_entry(uuid, b, |_| {}, |_| {}).is_ok(),
            _ => false,
        };
        return Ok(Found::Old(if whole { h.blocks } else { 1 }));
    }
    if h.seq > expected {
        return Ok(Found::End(End::Gap));
    }
    // The header bounds the counts (an entry is at most `MAX_ENTRY_BLOCKS` blocks). The
    // records are copied as they are, once the whole entry checked out.
    let mut e = Entry {
        seq: h.seq,
        blocks: h.blocks,
        records: KVVec::with_capacity(h.key_bytes as usize, GFP_KERNEL)?,
        nr_keys: h.nr_keys,
        updates: KVVec::with_capacity(h.nr_updates as usize, GFP_KERNEL)?,
    };
    let body = match win.blocks(copies, c, pos, h.blocks as u64, ahead) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(Found::End(End::Nothing(Some(JournalError::Truncated)))),
        Err(err) => return Ok(Found::End(End::Io(err))),
    };
    let mut oom = false;
    let decoded = decode_entry_records(uuid, body, |u| {
        oom |= e.updates.push(u, GFP_KERNEL).is_err()
    });
    if oom {
        return Err(ENOMEM);
    }
    Ok(match decoded {
        Ok((_, records)) => {
            e.records.extend_from_slice(records, GFP_KERNEL)?;
            Found::Entry(e)
        }
        Err(err) => Found::End(End::Nothing(Some(err))),
    })
}

/// Reads the live journal: the entries from sequence number `from_seq` on, starting at block
/// `start` of the journal area, stopping at the first gap; from one copy of `copies`, falling
/// back to the others where it has no good entry.
pub(crate) fn read_entries(
    uuid: &[u8; 16],
    copies: &[Copy<'_>],
    from_seq: u64,
    start: u64,
) -> Result<Journal> {
    let mut win = Window {
        buf: IoBuf::new(WINDOW_BYTES)?,
        copy: usize::MAX,
        first: 0,
        len: 0,
        bytes_read: 0,
    };
    let mut entries = KVVec::new();
    let (mut pos, mut expected, mut cur) = (start, from_seq, 0);
    let mut end = start;
    // Copies a read error was reported for (one message each).
    let mut warned = 0u32;
    loop {
        let mut found = None;
        let mut io_error = None;
        let mut not_io = false;
        let mut gap = false;
        let mut refused_seq = None;
        let mut refused = None;
        let mut old = None;
        for k in 0..copies.len() {
            let c = (cur + k) % copies.len();
            match entry_at(uuid, &mut win, copies, c, pos, expected, k == 0)? {
                Found::End(End::Io(e)) => {
                    if warned & (1 << c) == 0 {
                        warned |= 1 << c;
                        pr_warn!(
                            "{}: journal: {}: read error ({}) at block {pos}; using the other \
                             copies\n",
                            UuidFmt(uuid),
                            copies[c].name,
                            e.to_errno()
                        );
                    }
                    io_error = Some(e);
                }
                Found::End(why) => {
                    not_io = true;
                    match why {
                        End::Gap => gap = true,
                        End::Nothing(Some(JournalError::Sequence(s))) => refused_seq = Some(s),
                        // An entry of this filesystem that is refused (torn by a crash, or
                        // damaged): said below, with the position.
                        End::Nothing(Some(e))
                            if !matches!(e, JournalError::Magic | JournalError::Uuid) =>
                        {
                            refused = Some(e)
                        }
                        _ => {}
                    }
                }
                // An older entry is skipped only when no copy has the expected one here: a
                // copy that holds an old entry where another has the expected one (its write
                // of that entry failed, or its block 0 was not cleared) must not win.
                Found::Old(blocks) => {
                    if old.is_none() {
                        old = Some((c, blocks));
                    }
                }
                f => {
                    found = Some(f);
                    cur = c;
                    break;
                }
            }
        }
        if found.is_none() {
            if let Some((c, blocks)) = old {
                found = Some(Found::Old(blocks));
                cur = c;
            }
        }
        match found {
            Some(Found::Entry(e)) => {
                pos += e.blocks as u64;
                end = pos;
                expected = e.seq + 1;
                entries.push(e, GFP_KERNEL)?;
            }
            Some(Found::Old(blocks)) => pos += blocks as u64,
            _ => {
                if let (Some(e), false) = (io_error, not_io) {
                    pr_err!(
                        "{}: journal: no copy of block {pos} could be read ({})\n",
                        UuidFmt(uuid),
                        e.to_errno()
                    );
                    return Err(e);
                }
                if let Some(s) = refused_seq {
                    pr_warn!(
                        "{}: journal: an entry header is refused: sequence number {s} is above \
                         the largest replayable one ({MAX_ENTRY_SEQ})\n",
                        UuidFmt(uuid),
                    );
                }
                if let Some(e) = refused {
                    pr_warn!(
                        "{}: journal: the entry at block {pos} (expected sequence number \
                         {expected}) is refused on every copy that has one ({e:?}): the journal \
                         ends there\n",
                        UuidFmt(uuid),
                    );
                }
                let later = win.later_entries(uuid, cur, pos, expected).max(gap as u64);
                if later > 0 {
                    // Entries past a gap are not replayed: say so, it means a torn or damaged
                    // entry.
                    pr_warn!(
                        "{}: journal: entry {expected} is missing or damaged; {later} later \
                         entr{} seen after it not replayed\n",
                        UuidFmt(uuid),
                        if later == 1 { "y is" } else { "ies are" }
                    );
                }
                break;
            }
        }
    }
    let smallest = copies
        .iter()
        .map(|c| c.member.journal_blocks())
        .min()
        .unwrap_or(0);
    Ok(Journal {
        entries,
        next_offset: if end < smallest { end } else { 0 },
        bytes_read: win.bytes_read,
    })
}

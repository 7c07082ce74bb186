// SPDX-License-Identifier: GPL-2.0

//! The bucket table: every bucket's state and generation, per member, on disk.
//!
//! It lives in the member's table buckets as a run of [`BLOCK_SIZE`] blocks, each with its own
//! header and checksum. It is the checkpoint of bucket states; journal entries carry the changes
//! made since.

use crate::shared::crc32c::{block_crc, update, update_words};
use crate::shared::free_index::Words;
use crate::shared::layout::{layout, offset, Field};
use crate::shared::superblock::{BLOCK_SIZE, TABLE_ENTRIES_PER_BLOCK};

/// Magic number of a bucket table block.
pub const TABLE_MAGIC: u64 = u64::from_le_bytes(*b"BFSTABLE");

layout! {
    /// The header of a bucket table block. `nr` entries follow it, one `u32` each (see
    /// [`BucketEntry::to_raw`]); the rest of the block is zero.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct TableHeaderDisk(size: 48) {
        /// [`TABLE_MAGIC`].
        0x00 => pub magic: u64,
        /// CRC-32C of the [`BLOCK_SIZE`] bytes with this field taken as zero.
        0x08 => pub crc: u32,
        /// Index of the member whose table this is.
        0x0c => pub member: u32,
        /// Block number within that member's table.
        0x10 => pub block: u32,
        /// Entries in this block.
        0x14 => pub nr: u32,
        /// Sequence number of the superblock current when this block was last written (blocks
        /// of one table may differ; not checked on reading: each block is checked on its own).
        0x18 => pub seq: u64,
        /// Filesystem uuid.
        0x20 => pub uuid: [u8; 16],
    }
}

const OFF_CRC: usize = offset!(TableHeaderDisk, crc);

/// Byte offset of entry `i` in a table block.
fn entry_offset(i: usize) -> usize {
    TableHeaderDisk::SIZE + i * u32::SIZE
}

// The member layout sizes the table with this many entries per block.
const _: () =
    assert!(TABLE_ENTRIES_PER_BLOCK as usize == (BLOCK_SIZE - TableHeaderDisk::SIZE) / u32::SIZE);

/// What a bucket holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum BucketState {
    /// Empty and discarded: ready to allocate.
    Free = 0,
    /// Empty, but must be discarded (or at least passed through the discard worker) first.
    NeedDiscard = 1,
    /// Holds a btree node.
    Btree = 2,
    /// Part of the journal.
    Journal = 3,
    /// Reserved area, superblocks or the bucket table.
    Superblock = 4,
    /// Holds file data.
    Data = 5,
}

/// Number of [`BucketState`]s.
pub const NR_STATES: usize = 6;

impl BucketState {
    /// Every state, in value order.
    pub const ALL: [BucketState; NR_STATES] = [
        BucketState::Free,
        BucketState::NeedDiscard,
        BucketState::Btree,
        BucketState::Journal,
        BucketState::Superblock,
        BucketState::Data,
    ];

    /// The state with on-disk value `v`.
    #[inline]
    pub fn from_u8(v: u8) -> Option<BucketState> {
        Self::ALL.get(v as usize).copied()
    }

    /// The state's name in sysfs and the tool.
    pub fn name(self) -> &'static str {
        match self {
            BucketState::Free => "free",
            BucketState::NeedDiscard => "need_discard",
            BucketState::Btree => "btree",
            BucketState::Journal => "journal",
            BucketState::Superblock => "superblock",
            BucketState::Data => "data",
        }
    }
}

/// One bucket's table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketEntry {
    /// What the bucket holds.
    pub state: BucketState,
    /// Generation: bumped each time the bucket is reused (24 bits on disk).
    pub gen: u32,
}

/// Largest generation number.
pub const MAX_GEN: u32 = (1 << 24) - 1;

impl BucketEntry {
    /// The on-disk entry: the state in bits 0-7, the generation (at most [`MAX_GEN`]) in bits
    /// 8-31.
    pub fn to_raw(self) -> u32 {
        self.state as u32 | (self.gen.min(MAX_GEN) << 8)
    }

    /// The entry stored as `raw`, if its state is known.
    pub fn from_raw(raw: u32) -> Option<BucketEntry> {
        Some(BucketEntry {
            state: BucketState::from_u8(raw as u8)?,
            gen: raw >> 8,
        })
    }
}

/// Why a table block was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// Not a table block.
    Magic,
    /// Checksum mismatch.
    Checksum,
    /// The block belongs to another filesystem, member or position.
    Owner,
    /// Entry count differs from what the member's size implies.
    Count,
    /// Entry `.0` of the block has an unknown state.
    State(u32),
}

/// Blocks in a table of `nbuckets` entries.
pub fn table_blocks(nbuckets: u64) -> u64 {
    nbuckets.div_ceil(TABLE_ENTRIES_PER_BLOCK)
}

/// Entries in block `block` of a table of `nbuckets` entries.
pub fn entries_in_block(nbuckets: u64, block: u64) -> usize {
    nbuckets
        .saturating_sub(block * TABLE_ENTRIES_PER_BLOCK)
        .min(TABLE_ENTRIES_PER_BLOCK) as usize
}

/// Identifies a table block: filesystem, member, position and superblock sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableBlockId {
    /// Filesystem uuid.
    pub uuid: [u8; 16],
    /// Member index.
    pub member: u32,
    /// Block number within the member's table.
    pub block: u32,
}

/// Encodes table block `id.block` from `entries` (exactly the entries of that block).
pub fn encode_block(id: &TableBlockId, seq: u64, entries: &[BucketEntry], buf: &mut [u8]) {
    let b = &mut buf[..BLOCK_SIZE];
    b.fill(0);
    TableHeaderDisk {
        magic: TABLE_MAGIC,
        crc: 0,
        member: id.member,
        block: id.block,
        nr: entries.len() as u32,
        seq,
        uuid: id.uuid,
    }
    .write(b);
    for (i, e) in entries.iter().enumerate() {
        e.to_raw().write(&mut b[entry_offset(i)..]);
    }
    block_crc(b, OFF_CRC).write(&mut b[OFF_CRC..]);
}

/// Checks the header of table block `id` of a table of `nbuckets` entries (magic, checksum,
/// owner, count): its entry count, or why it is refused.
fn check_header(id: &TableBlockId, nbuckets: u64, b: &[u8]) -> Result<usize, TableError> {
    let h = TableHeaderDisk::read(b);
    if h.magic != TABLE_MAGIC {
        return Err(TableError::Magic);
    }
    if h.crc != block_crc(b, OFF_CRC) {
        return Err(TableError::Checksum);
    }
    if h.member != id.member || h.block != id.block || h.uuid != id.uuid {
        return Err(TableError::Owner);
    }
    let nr = h.nr as usize;
    if nr != entries_in_block(nbuckets, id.block as u64) {
        return Err(TableError::Count);
    }
    Ok(nr)
}

/// Decodes a table block that must be `id` of a table of `nbuckets` entries; calls `visit`
/// with each entry's index in the block once the whole block has been checked.
///
/// This is the per-entry decoder; [`check_block`] refuses exactly what it refuses, a block at
/// a time.
pub fn decode_block(
    id: &TableBlockId,
    nbuckets: u64,
    buf: &[u8],
    mut visit: impl FnMut(usize, BucketEntry),
) -> Result<(), TableError> {
    let Some(b) = buf.get(..BLOCK_SIZE) else {
        return Err(TableError::Magic);
    };
    let nr = check_header(id, nbuckets, b)?;
    let entry = |i: usize| BucketEntry::from_raw(u32::read(&b[entry_offset(i)..]));
    for i in 0..nr {
        if entry(i).is_none() {
            return Err(TableError::State(i as u32));
        }
    }
    for i in 0..nr {
        if let Some(e) = entry(i) {
            visit(i, e);
        }
    }
    Ok(())
}

/// The entries of a table block [`check_block`] accepted: every state is known.
#[derive(Clone, Copy, Debug)]
pub struct CheckedBlock<'a> {
    /// The entries' bytes, 4 per entry.
    raw: &'a [u8],
    /// The state every entry has, if they all have the same one.
    uniform: Option<BucketState>,
}

impl<'a> CheckedBlock<'a> {
    /// Entries in the block.
    pub fn len(&self) -> usize {
        self.raw.len() / u32::SIZE
    }

    /// Whether the block has no entry.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The state of every entry, when they all have the same one (the common case: a table
    /// block covers 1012 neighbouring buckets).
    pub fn uniform(&self) -> Option<BucketState> {
        self.uniform
    }

    /// Entry `i` (`None` past the end).
    pub fn entry(&self, i: usize) -> Option<BucketEntry> {
        let o = i.checked_mul(u32::SIZE)?;
        BucketEntry::from_raw(u32::read(self.raw.get(o..o + u32::SIZE)?))
    }

    /// The entries' states, in order.
    pub fn states(&self) -> impl Iterator<Item = BucketState> + 'a {
        // Every state byte was checked by `check_block`: the fallback is never taken.
        self.raw
            .chunks_exact(u32::SIZE)
            .map(|c| BucketState::from_u8(c[0]).unwrap_or(BucketState::Superblock))
    }
}

/// Checks table block `id` of a table of `nbuckets` entries as [`decode_block`] does, and
/// refuses exactly what it refuses with the same error, but in one pass: the entries' state
/// bytes are compared with the first entry's a word (two entries) at a time while the
/// checksum is computed, so a block whose entries all have the same state (most blocks: one
/// covers 1012 neighbouring buckets) costs little more than its checksum. Entries are then
/// looked at one by one only in a block of mixed states.
pub fn check_block<'a>(
    id: &TableBlockId,
    nbuckets: u64,
    buf: &'a [u8],
) -> Result<CheckedBlock<'a>, TableError> {
    let Some(b) = buf.get(..BLOCK_SIZE) else {
        return Err(TableError::Magic);
    };
    let h = TableHeaderDisk::read(b);
    if h.magic != TABLE_MAGIC {
        return Err(TableError::Magic);
    }
    // The state byte of both entries of a little-endian word.
    const STATE_BYTES: u64 = 0x0000_00ff_0000_00ff;
    let s0 = b[entry_offset(0)];
    let want = (s0 as u64) * 0x0000_0001_0000_0001;
    // The count is not trusted before the checksum: it only bounds the words compared (the
    // rest of the block is zero, which need not look like an entry).
    let pairs_end = entry_offset((h.nr as usize).min(TABLE_ENTRIES_PER_BLOCK as usize) & !1);
    let crc = update(!0, &b[..OFF_CRC]);
    let crc = update(crc, &[0; 4]);
    let crc = update(crc, &b[OFF_CRC + 4..entry_offset(0)]);
    let mut differ = 0u64;
    let crc = update_words(crc, &b[entry_offset(0)..pairs_end], |w| {
        differ |= (w ^ want) & STATE_BYTES
    });
    let crc = !update(crc, &b[pairs_end..]);
    if h.crc != crc {
        return Err(TableError::Checksum);
    }
    if h.member != id.member || h.block != id.block || h.uuid != id.uuid {
        return Err(TableError::Owner);
    }
    let nr = h.nr as usize;
    if nr != entries_in_block(nbuckets, id.block as u64) {
        return Err(TableError::Count);
    }
    let raw = &b[entry_offset(0)..entry_offset(nr)];
    if nr == 0 {
        return Ok(CheckedBlock { raw, uniform: None });
    }
    let Some(first) = BucketState::from_u8(s0) else {
        return Err(TableError::State(0));
    };
    // Entries looked at one by one: the odd last one, or all of them if a word differed.
    let from = if differ == 0 { nr & !1 } else { 0 };
    let mut uniform = differ == 0;
    for i in from..nr {
        let st = raw[i * u32::SIZE];
        if st != s0 {
            uniform = false;
            if BucketState::from_u8(st).is_none() {
                return Err(TableError::State(i as u32));
            }
        }
    }
    Ok(CheckedBlock {
        raw,
        uniform: uniform.then_some(first),
    })
}

/// Which blocks of one member's bucket table changed in memory since they were last written.
///
/// One bit per table block ([`TABLE_ENTRIES_PER_BLOCK`] buckets), in caller-provided storage
/// ([`Words`], sized by [`DirtyBlocks::words_needed`]; a `KVVec<u64>` in the kernel), and the
/// number of set bits. Changing a bucket's state marks its block ([`DirtyBlocks::mark_bucket`]);
/// the table writer takes runs of adjacent dirty blocks ([`DirtyBlocks::next_run`]), clears
/// them as it encodes them ([`DirtyBlocks::clear`]) and marks them again if the write fails.
/// A table read from disk starts clean: what is on disk is what is in memory. The caller
/// serialises access (the allocator's lock).
///
/// Finding the next dirty block reads one word per 64 blocks from the start position (at most
/// 260 words for 16M buckets, 2 KiB of bits): next to one block write that is nothing, so a
/// table write costs what changed.
pub struct DirtyBlocks<W: Words> {
    words: W,
    blocks: u32,
    dirty: u32,
}

impl<W: Words> DirtyBlocks<W> {
    /// Words of storage for the table of `nbuckets` buckets.
    pub fn words_needed(nbuckets: u64) -> usize {
        (table_blocks(nbuckets) as usize).div_ceil(64)
    }

    /// No block dirty, for the table of `nbuckets` buckets, in `words` (at least
    /// [`DirtyBlocks::words_needed`]; its contents are overwritten). `None` if the storage is
    /// too small or the table has more than `u32::MAX` blocks.
    pub fn new(mut words: W, nbuckets: u64) -> Option<DirtyBlocks<W>> {
        let blocks = u32::try_from(table_blocks(nbuckets)).ok()?;
        let needed = Self::words_needed(nbuckets);
        if words.nr_words() < needed {
            return None;
        }
        for i in 0..needed {
            words.set_word(i, 0);
        }
        Some(DirtyBlocks {
            words,
            blocks,
            dirty: 0,
        })
    }

    /// Blocks in the table.
    pub fn blocks(&self) -> u32 {
        self.blocks
    }

    /// Dirty blocks.
    pub fn dirty(&self) -> u32 {
        self.dirty
    }

    /// Whether block `block` is dirty (false past the end).
    pub fn is_dirty(&self, block: u32) -> bool {
        block < self.blocks
            && self
                .words
                .word((block / 64) as usize)
                .is_some_and(|w| w & (1 << (block % 64)) != 0)
    }

    /// Marks the block holding `bucket` dirty (ignored past the table).
    #[inline]
    pub fn mark_bucket(&mut self, bucket: u32) {
        self.mark((bucket as u64 / TABLE_ENTRIES_PER_BLOCK) as u32, 1);
    }

    /// Marks blocks `first..first + n` dirty (those past the table are ignored).
    #[inline]
    pub fn mark(&mut self, first: u32, n: u32) {
        self.set(first, n, true);
    }

    /// Marks blocks `first..first + n` clean.
    pub fn clear(&mut self, first: u32, n: u32) {
        self.set(first, n, false);
    }

    #[inline]
    fn set(&mut self, first: u32, n: u32, dirty: bool) {
        let end = first.saturating_add(n).min(self.blocks);
        for b in first..end {
            let at = (b / 64) as usize;
            let bit = 1u64 << (b % 64);
            let Some(w) = self.words.word(at) else {
                return;
            };
            if (w & bit != 0) != dirty {
                self.words.set_word(at, w ^ bit);
                if dirty {
                    self.dirty += 1;
                } else {
                    self.dirty -= 1;
                }
            }
        }
    }

    /// The first run of adjacent dirty blocks at or after block `from`: its first block and
    /// length, at most `max_len` (`None` if no block from `from` on is dirty, or `max_len` is
    /// 0).
    pub fn next_run(&self, from: u32, max_len: u32) -> Option<(u32, u32)> {
        if max_len == 0 || self.dirty == 0 || from >= self.blocks {
            return None;
        }
        let mut at = (from / 64) as usize;
        let mut w = self.words.word(at)? & (u64::MAX << (from % 64));
        while w == 0 {
            at += 1;
            if at * 64 >= self.blocks as usize {
                return None;
            }
            w = self.words.word(at)?;
        }
        let start = u32::try_from(at * 64 + w.trailing_zeros() as usize).ok()?;
        if start >= self.blocks {
            return None;
        }
        let mut len = 0u32;
        while len < max_len && self.is_dirty(start + len) {
            len += 1;
        }
        Some((start, len))
    }
}

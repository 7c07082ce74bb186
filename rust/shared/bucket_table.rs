// SPDX-License-Identifier: GPL-2.0

//! The bucket table: every bucket's state and generation, per member, on disk.
//!
//! It lives in the member's table buckets as a run of [`BLOCK_SIZE`] blocks, each with its own
//! header and checksum. It is the checkpoint of bucket states; journal entries carry the changes
//! made since.

use crate::shared::crc32c::block_crc;
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
        /// Sequence number of the superblock written with this table (not checked on reading).
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

/// Decodes a table block that must be `id` of a table of `nbuckets` entries; calls `visit`
/// with each entry's index in the block once the whole block has been checked.
pub fn decode_block(
    id: &TableBlockId,
    nbuckets: u64,
    buf: &[u8],
    mut visit: impl FnMut(usize, BucketEntry),
) -> Result<(), TableError> {
    let Some(b) = buf.get(..BLOCK_SIZE) else {
        return Err(TableError::Magic);
    };
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

// SPDX-License-Identifier: GPL-2.0

//! The bucket table: every bucket's state and generation, per member, on disk.
//!
//! It lives in the member's table buckets as a run of [`BLOCK_SIZE`] blocks, each with its own
//! header and checksum. It is the checkpoint of bucket states; journal entries carry the changes
//! made since.

use crate::shared::crc32c::block_crc;
use crate::shared::le::*;
use crate::shared::superblock::{BLOCK_SIZE, TABLE_ENTRIES_PER_BLOCK};

/// Magic number of a bucket table block.
pub const TABLE_MAGIC: u64 = u64::from_le_bytes(*b"BFSTABLE");
const OFF_CRC: usize = 8;
const OFF_MEMBER: usize = 12;
const OFF_BLOCK: usize = 16;
const OFF_NR: usize = 20;
const OFF_SEQ: usize = 24;
const OFF_UUID: usize = 32;
const OFF_ENTRIES: usize = 48;

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
    put_u64(b, 0, TABLE_MAGIC);
    put_u32(b, OFF_MEMBER, id.member);
    put_u32(b, OFF_BLOCK, id.block);
    put_u32(b, OFF_NR, entries.len() as u32);
    put_u64(b, OFF_SEQ, seq);
    b[OFF_UUID..OFF_UUID + 16].copy_from_slice(&id.uuid);
    for (i, e) in entries.iter().enumerate() {
        put_u32(
            b,
            OFF_ENTRIES + 4 * i,
            e.state as u32 | (e.gen.min(MAX_GEN) << 8),
        );
    }
    let crc = block_crc(b, OFF_CRC);
    put_u32(b, OFF_CRC, crc);
}

/// Decodes a table block that must be `id` of a table of `nbuckets` entries; calls `visit`
/// with each entry's index in the block once the whole block has been checked.
pub fn decode_block(
    id: &TableBlockId,
    nbuckets: u64,
    buf: &[u8],
    mut visit: impl FnMut(usize, BucketEntry),
) -> Result<(), TableError> {
    if buf.len() < BLOCK_SIZE || get_u64(buf, 0) != TABLE_MAGIC {
        return Err(TableError::Magic);
    }
    let b = &buf[..BLOCK_SIZE];
    if get_u32(b, OFF_CRC) != block_crc(b, OFF_CRC) {
        return Err(TableError::Checksum);
    }
    if get_u32(b, OFF_MEMBER) != id.member
        || get_u32(b, OFF_BLOCK) != id.block
        || b[OFF_UUID..OFF_UUID + 16] != id.uuid
    {
        return Err(TableError::Owner);
    }
    let nr = get_u32(b, OFF_NR) as usize;
    if nr != entries_in_block(nbuckets, id.block as u64) {
        return Err(TableError::Count);
    }
    for i in 0..nr {
        let raw = get_u32(b, OFF_ENTRIES + 4 * i);
        if BucketState::from_u8(raw as u8).is_none() {
            return Err(TableError::State(i as u32));
        }
    }
    for i in 0..nr {
        let raw = get_u32(b, OFF_ENTRIES + 4 * i);
        if let Some(state) = BucketState::from_u8(raw as u8) {
            visit(
                i,
                BucketEntry {
                    state,
                    gen: raw >> 8,
                },
            );
        }
    }
    Ok(())
}

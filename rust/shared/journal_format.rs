// SPDX-License-Identifier: GPL-2.0

//! Journal entries: btree key updates and bucket state changes, in sequence order.
//!
//! An entry is one or more [`BLOCK_SIZE`] blocks in a member's journal buckets: a 64-byte
//! header (magic, checksum over the whole entry, length in blocks, sequence number, filesystem
//! uuid, counts), then the keys, then the bucket updates.

use crate::shared::bucket_table::{BucketState, MAX_GEN};
use crate::shared::crc32c::block_crc;
use crate::shared::le::*;
use crate::shared::superblock::{BLOCK_SIZE, MAX_SEQ};

/// Magic number of a journal entry.
pub const JOURNAL_MAGIC: u64 = u64::from_le_bytes(*b"BFSJRNL1");
/// Largest sequence number an entry may have: replaying it makes the superblock's
/// `journal_seq` one more, which must stay below [`MAX_SEQ`] (the superblock decoder refuses
/// anything at or above it). An entry above this is refused by [`decode_header`].
pub const MAX_ENTRY_SEQ: u64 = MAX_SEQ - 2;
/// Most blocks in one entry.
pub const MAX_ENTRY_BLOCKS: u32 = 16;
const HEADER: usize = 64;
const KEY_SIZE: usize = 16;
const UPDATE_SIZE: usize = 16;
const OFF_CRC: usize = 8;

/// A btree key update: `key` now maps to `val`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// The key.
    pub key: u64,
    /// Its value.
    pub val: u64,
}

/// A bucket state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketUpdate {
    /// Member index.
    pub member: u32,
    /// Bucket on that member.
    pub bucket: u32,
    /// New state.
    pub state: BucketState,
    /// New generation.
    pub gen: u32,
}

/// A decoded entry header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    /// Sequence number.
    pub seq: u64,
    /// Length in blocks.
    pub blocks: u32,
    /// Keys in the entry.
    pub nr_keys: u32,
    /// Bucket updates in the entry.
    pub nr_updates: u32,
}

/// Why a journal entry was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalError {
    /// No entry here (or not a bucketfs entry).
    Magic,
    /// Entry of another filesystem (a stale journal from an earlier format).
    Uuid,
    /// Length in blocks is zero, too large, or too small for the counts.
    Length,
    /// Fewer bytes than the entry's length.
    Truncated,
    /// Checksum mismatch.
    Checksum,
    /// A bucket update has an unknown state or generation.
    Update(u32),
    /// The sequence number is above [`MAX_ENTRY_SEQ`]: replaying the entry would move the
    /// superblock's `journal_seq` to where the superblock decoder refuses it.
    Sequence(u64),
}

/// Blocks an entry with these counts needs, if it fits in [`MAX_ENTRY_BLOCKS`].
pub fn entry_blocks(nr_keys: usize, nr_updates: usize) -> Option<u32> {
    let bytes = HEADER
        .checked_add(nr_keys.checked_mul(KEY_SIZE)?)?
        .checked_add(nr_updates.checked_mul(UPDATE_SIZE)?)?;
    let blocks = bytes.div_ceil(BLOCK_SIZE) as u32;
    (blocks <= MAX_ENTRY_BLOCKS).then_some(blocks)
}

/// Most keys one entry holds when it has no bucket updates.
pub const MAX_KEYS_PER_ENTRY: usize = (MAX_ENTRY_BLOCKS as usize * BLOCK_SIZE - HEADER) / KEY_SIZE;

/// Encodes an entry into `buf`; returns its length in bytes, or `None` if it does not fit in
/// one entry or in `buf`.
pub fn encode_entry(
    uuid: &[u8; 16],
    seq: u64,
    keys: &[Key],
    updates: &[BucketUpdate],
    buf: &mut [u8],
) -> Option<usize> {
    let blocks = entry_blocks(keys.len(), updates.len())?;
    let len = blocks as usize * BLOCK_SIZE;
    let b = buf.get_mut(..len)?;
    b.fill(0);
    put_u64(b, 0, JOURNAL_MAGIC);
    put_u32(b, 12, blocks);
    put_u64(b, 16, seq);
    b[24..40].copy_from_slice(uuid);
    put_u32(b, 40, keys.len() as u32);
    put_u32(b, 44, updates.len() as u32);
    let mut o = HEADER;
    for k in keys {
        put_u64(b, o, k.key);
        put_u64(b, o + 8, k.val);
        o += KEY_SIZE;
    }
    for u in updates {
        put_u32(b, o, u.member);
        put_u32(b, o + 4, u.bucket);
        put_u8(b, o + 8, u.state as u8);
        put_u32(b, o + 12, u.gen);
        o += UPDATE_SIZE;
    }
    let crc = block_crc(b, OFF_CRC);
    put_u32(b, OFF_CRC, crc);
    Some(len)
}

/// Decodes the header in the first block of an entry (no checksum yet: it covers all blocks).
pub fn decode_header(uuid: &[u8; 16], first_block: &[u8]) -> Result<EntryHeader, JournalError> {
    if first_block.len() < HEADER || get_u64(first_block, 0) != JOURNAL_MAGIC {
        return Err(JournalError::Magic);
    }
    if first_block[24..40] != *uuid {
        return Err(JournalError::Uuid);
    }
    let h = EntryHeader {
        seq: get_u64(first_block, 16),
        blocks: get_u32(first_block, 12),
        nr_keys: get_u32(first_block, 40),
        nr_updates: get_u32(first_block, 44),
    };
    match entry_blocks(h.nr_keys as usize, h.nr_updates as usize) {
        Some(needed) if h.blocks >= needed && h.blocks <= MAX_ENTRY_BLOCKS => {}
        _ => return Err(JournalError::Length),
    }
    if h.seq > MAX_ENTRY_SEQ {
        return Err(JournalError::Sequence(h.seq));
    }
    Ok(h)
}

/// Decodes a whole entry; calls `key` and `update` for its contents once all of it checked out.
pub fn decode_entry(
    uuid: &[u8; 16],
    buf: &[u8],
    mut key: impl FnMut(Key),
    mut update: impl FnMut(BucketUpdate),
) -> Result<EntryHeader, JournalError> {
    let h = decode_header(uuid, buf)?;
    let b = buf
        .get(..h.blocks as usize * BLOCK_SIZE)
        .ok_or(JournalError::Truncated)?;
    if get_u32(b, OFF_CRC) != block_crc(b, OFF_CRC) {
        return Err(JournalError::Checksum);
    }
    let updates_at = HEADER + h.nr_keys as usize * KEY_SIZE;
    let update_at = |i: usize| -> Result<BucketUpdate, JournalError> {
        let o = updates_at + i * UPDATE_SIZE;
        let state = BucketState::from_u8(get_u8(b, o + 8)).ok_or(JournalError::Update(i as u32))?;
        let gen = get_u32(b, o + 12);
        if gen > MAX_GEN {
            return Err(JournalError::Update(i as u32));
        }
        Ok(BucketUpdate {
            member: get_u32(b, o),
            bucket: get_u32(b, o + 4),
            state,
            gen,
        })
    };
    for i in 0..h.nr_updates as usize {
        update_at(i)?;
    }
    for i in 0..h.nr_keys as usize {
        let o = HEADER + i * KEY_SIZE;
        key(Key {
            key: get_u64(b, o),
            val: get_u64(b, o + 8),
        });
    }
    for i in 0..h.nr_updates as usize {
        update(update_at(i)?);
    }
    Ok(h)
}

/// An order-independent digest term of one key and its value: the sum of all terms (wrapping)
/// identifies a set of keys, so the kernel's btree and the tool's expectation can be compared.
pub fn key_digest(k: &Key) -> u64 {
    let mut x = k.key ^ k.val.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 29)
}

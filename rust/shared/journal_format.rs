// SPDX-License-Identifier: GPL-2.0

//! Journal entries: btree key updates and bucket state changes, in sequence order.
//!
//! An entry is one or more [`BLOCK_SIZE`] blocks in a member's journal buckets: a 64-byte
//! header (magic, checksum over the whole entry, length in blocks, sequence number, filesystem
//! uuid, counts), then the keys, then the bucket updates.

use crate::shared::bucket_table::{BucketState, MAX_GEN};
use crate::shared::crc32c::block_crc;
use crate::shared::layout::{layout, offset, Field};
use crate::shared::superblock::{BLOCK_SIZE, MAX_SEQ};

/// Magic number of a journal entry.
pub const JOURNAL_MAGIC: u64 = u64::from_le_bytes(*b"BFSJRNL1");
/// Largest sequence number an entry may have: replaying it makes the superblock's
/// `journal_seq` one more, which must stay below [`MAX_SEQ`] (the superblock decoder refuses
/// anything at or above it). An entry above this is refused by [`decode_header`].
pub const MAX_ENTRY_SEQ: u64 = MAX_SEQ - 2;
/// Most blocks in one entry.
pub const MAX_ENTRY_BLOCKS: u32 = 16;

layout! {
    /// The header at the start of a journal entry's first block. `nr_keys` [`Key`]s follow it,
    /// then `nr_updates` [`UpdateDisk`]s; the rest of the entry's blocks is zero.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct EntryHeaderDisk(size: 64) {
        /// [`JOURNAL_MAGIC`].
        0x00 => pub magic: u64,
        /// CRC-32C of the whole entry (`blocks` blocks) with this field taken as zero.
        0x08 => pub crc: u32,
        /// Length of the entry in [`BLOCK_SIZE`] blocks.
        0x0c => pub blocks: u32,
        /// Sequence number.
        0x10 => pub seq: u64,
        /// Filesystem uuid.
        0x18 => pub uuid: [u8; 16],
        /// Keys in the entry.
        0x28 => pub nr_keys: u32,
        /// Bucket updates in the entry.
        0x2c => pub nr_updates: u32,
    }
}

layout! {
    /// A btree key update: `key` now maps to `val`. Also a btree leaf entry.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
    pub struct Key(size: 16) {
        /// The key.
        0x0 => pub key: u64,
        /// Its value.
        0x8 => pub val: u64,
    }
}

layout! {
    /// A [`BucketUpdate`] as it lies in a journal entry.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct UpdateDisk(size: 16) {
        /// Member index.
        0x0 => pub member: u32,
        /// Bucket on that member.
        0x4 => pub bucket: u32,
        /// New state, a [`BucketState`] value.
        0x8 => pub state: u8,
        /// New generation, at most [`MAX_GEN`].
        0xc => pub gen: u32,
    }
}

const HEADER: usize = EntryHeaderDisk::SIZE;
const KEY_SIZE: usize = Key::SIZE;
const UPDATE_SIZE: usize = UpdateDisk::SIZE;
const OFF_CRC: usize = offset!(EntryHeaderDisk, crc);

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
    EntryHeaderDisk {
        magic: JOURNAL_MAGIC,
        crc: 0,
        blocks,
        seq,
        uuid: *uuid,
        nr_keys: keys.len() as u32,
        nr_updates: updates.len() as u32,
    }
    .write(b);
    let mut o = HEADER;
    for k in keys {
        k.write(&mut b[o..]);
        o += KEY_SIZE;
    }
    for u in updates {
        UpdateDisk {
            member: u.member,
            bucket: u.bucket,
            state: u.state as u8,
            gen: u.gen,
        }
        .write(&mut b[o..]);
        o += UPDATE_SIZE;
    }
    block_crc(b, OFF_CRC).write(&mut b[OFF_CRC..]);
    Some(len)
}

/// Decodes the header in the first block of an entry (no checksum yet: it covers all blocks).
pub fn decode_header(uuid: &[u8; 16], first_block: &[u8]) -> Result<EntryHeader, JournalError> {
    let Some(b) = first_block.get(..HEADER) else {
        return Err(JournalError::Magic);
    };
    let d = EntryHeaderDisk::read(b);
    if d.magic != JOURNAL_MAGIC {
        return Err(JournalError::Magic);
    }
    if d.uuid != *uuid {
        return Err(JournalError::Uuid);
    }
    let h = EntryHeader {
        seq: d.seq,
        blocks: d.blocks,
        nr_keys: d.nr_keys,
        nr_updates: d.nr_updates,
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

/// Checks a whole entry: its header, its checksum and every bucket update; the header and
/// the entry's bytes.
fn check_entry<'a>(
    uuid: &[u8; 16],
    buf: &'a [u8],
) -> Result<(EntryHeader, &'a [u8]), JournalError> {
    let h = decode_header(uuid, buf)?;
    let b = buf
        .get(..h.blocks as usize * BLOCK_SIZE)
        .ok_or(JournalError::Truncated)?;
    if u32::read(&b[OFF_CRC..]) != block_crc(b, OFF_CRC) {
        return Err(JournalError::Checksum);
    }
    for i in 0..h.nr_updates as usize {
        update_at(b, &h, i)?;
    }
    Ok((h, b))
}

/// Bucket update `i` of entry `b` with header `h` (whose counts fit in the entry).
fn update_at(b: &[u8], h: &EntryHeader, i: usize) -> Result<BucketUpdate, JournalError> {
    let updates_at = HEADER + h.nr_keys as usize * KEY_SIZE;
    let d = UpdateDisk::read(&b[updates_at + i * UPDATE_SIZE..]);
    let state = BucketState::from_u8(d.state).ok_or(JournalError::Update(i as u32))?;
    if d.gen > MAX_GEN {
        return Err(JournalError::Update(i as u32));
    }
    Ok(BucketUpdate {
        member: d.member,
        bucket: d.bucket,
        state,
        gen: d.gen,
    })
}

/// Decodes a whole entry; calls `key` and `update` for its contents once all of it checked out.
pub fn decode_entry(
    uuid: &[u8; 16],
    buf: &[u8],
    mut key: impl FnMut(Key),
    mut update: impl FnMut(BucketUpdate),
) -> Result<EntryHeader, JournalError> {
    let (h, b) = check_entry(uuid, buf)?;
    for i in 0..h.nr_keys as usize {
        key(Key::read(&b[HEADER + i * KEY_SIZE..]));
    }
    for i in 0..h.nr_updates as usize {
        update(update_at(b, &h, i)?);
    }
    Ok(h)
}

/// Decodes a whole entry as [`decode_entry`] does, refusing what it refuses with the same
/// error, but writes the keys into `keys` in one tight pass instead of a call per key: `keys`
/// must have exactly the header's `nr_keys` slots (else [`JournalError::Length`]; the caller
/// sizes it from [`decode_header`]). `keys` is written only once the whole entry checked out;
/// `update` is called for each bucket update after that.
pub fn decode_entry_keys(
    uuid: &[u8; 16],
    buf: &[u8],
    keys: &mut [Key],
    mut update: impl FnMut(BucketUpdate),
) -> Result<EntryHeader, JournalError> {
    let (h, b) = check_entry(uuid, buf)?;
    if keys.len() != h.nr_keys as usize {
        return Err(JournalError::Length);
    }
    let body = b
        .get(HEADER..HEADER + keys.len() * KEY_SIZE)
        .ok_or(JournalError::Truncated)?;
    for (i, raw) in body.chunks_exact(KEY_SIZE).enumerate() {
        if let Some(k) = keys.get_mut(i) {
            *k = Key::read(raw);
        }
    }
    for i in 0..h.nr_updates as usize {
        update(update_at(b, &h, i)?);
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

// SPDX-License-Identifier: GPL-2.0

//! Journal entries: btree key updates and bucket state changes, in sequence order.
//!
//! An entry is one or more [`BLOCK_SIZE`] blocks in a member's journal buckets: a 64-byte
//! header (magic, checksum over the whole entry, length in blocks, sequence number, filesystem
//! uuid, counts), then the key records ([`crate::shared::bkey`]: an update, or a deletion of
//! the key at a position), then the bucket updates.
//!
//! The kernel writes one entry per flush of its open entry, which holds whole transactions
//! only: a replay applies an entry's records in order, and an entry is all there or refused.

use crate::shared::bkey::{decode_at, KeyError, KeyRef};
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
    /// The header at the start of a journal entry's first block. `nr_keys` key records follow
    /// it (`key_bytes` bytes), then `nr_updates` [`UpdateDisk`]s; the rest of the entry's
    /// blocks is zero.
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
        /// Bytes of the key records (a multiple of 8).
        0x30 => pub key_bytes: u32,
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
const UPDATE_SIZE: usize = UpdateDisk::SIZE;
/// Bytes one bucket update takes in an entry.
pub const UPDATE_BYTES: usize = UPDATE_SIZE;
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
    /// Bytes of the key records.
    pub key_bytes: u32,
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
    /// Key record `.0` refused, or the records do not fill `key_bytes` exactly.
    Key(u32, KeyError),
    /// The sequence number is above [`MAX_ENTRY_SEQ`]: replaying the entry would move the
    /// superblock's `journal_seq` to where the superblock decoder refuses it.
    Sequence(u64),
}

/// Blocks an entry with `key_bytes` bytes of records and `nr_updates` bucket updates needs, if
/// it fits in [`MAX_ENTRY_BLOCKS`].
pub fn entry_blocks(key_bytes: usize, nr_updates: usize) -> Option<u32> {
    let bytes = HEADER
        .checked_add(key_bytes)?
        .checked_add(nr_updates.checked_mul(UPDATE_SIZE)?)?;
    let blocks = bytes.div_ceil(BLOCK_SIZE) as u32;
    (blocks <= MAX_ENTRY_BLOCKS).then_some(blocks)
}

/// Most bytes of key records one entry holds when it has no bucket updates.
pub const MAX_KEY_BYTES: usize = MAX_ENTRY_BLOCKS as usize * BLOCK_SIZE - HEADER;

/// Encodes an entry of the `nr_keys` records `records` (each valid: as encoded by
/// [`crate::shared::bkey::encode`]) and `updates` into `buf`; returns its length in bytes, or
/// `None` if it does not fit in one entry or in `buf`, or if the records are not `nr_keys`
/// valid ones (what the decoder would refuse is never written).
pub fn encode_entry(
    uuid: &[u8; 16],
    seq: u64,
    nr_keys: usize,
    records: &[u8],
    updates: &[BucketUpdate],
    buf: &mut [u8],
) -> Option<usize> {
    check_records(nr_keys, records).ok()?;
    if seq > MAX_ENTRY_SEQ {
        return None;
    }
    let blocks = entry_blocks(records.len(), updates.len())?;
    let len = blocks as usize * BLOCK_SIZE;
    let b = buf.get_mut(..len)?;
    b.fill(0);
    EntryHeaderDisk {
        magic: JOURNAL_MAGIC,
        crc: 0,
        blocks,
        seq,
        uuid: *uuid,
        nr_keys: nr_keys as u32,
        nr_updates: updates.len() as u32,
        key_bytes: records.len() as u32,
    }
    .write(b);
    b[HEADER..HEADER + records.len()].copy_from_slice(records);
    let mut o = HEADER + records.len();
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

/// Checks that `records` is exactly `nr` valid key records.
fn check_records(nr: usize, records: &[u8]) -> Result<(), JournalError> {
    let mut at = 0;
    for i in 0..nr {
        at = decode_at(records, at)
            .map_err(|e| JournalError::Key(i as u32, e))?
            .1;
    }
    if at != records.len() {
        return Err(JournalError::Key(nr as u32, KeyError::Truncated));
    }
    Ok(())
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
        key_bytes: d.key_bytes,
    };
    // A record takes at least a header's bytes, and the records are padded to 8 bytes.
    let counts_fit = (h.nr_keys as usize).saturating_mul(crate::shared::bkey::KEY_HEADER)
        <= h.key_bytes as usize
        && h.key_bytes % 8 == 0;
    match entry_blocks(h.key_bytes as usize, h.nr_updates as usize) {
        Some(needed) if counts_fit && h.blocks >= needed && h.blocks <= MAX_ENTRY_BLOCKS => {}
        _ => return Err(JournalError::Length),
    }
    if h.seq > MAX_ENTRY_SEQ {
        return Err(JournalError::Sequence(h.seq));
    }
    Ok(h)
}

/// Checks a whole entry: its header, its checksum, every key record and every bucket update;
/// the header and the entry's bytes.
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
    check_records(h.nr_keys as usize, records_of(b, &h))?;
    for i in 0..h.nr_updates as usize {
        update_at(b, &h, i)?;
    }
    Ok((h, b))
}

/// The key records of entry `b` with header `h` (whose counts fit in the entry).
fn records_of<'a>(b: &'a [u8], h: &EntryHeader) -> &'a [u8] {
    &b[HEADER..HEADER + h.key_bytes as usize]
}

/// Bucket update `i` of entry `b` with header `h` (whose counts fit in the entry).
fn update_at(b: &[u8], h: &EntryHeader, i: usize) -> Result<BucketUpdate, JournalError> {
    let updates_at = HEADER + h.key_bytes as usize;
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

/// Decodes a whole entry; calls `key` for each record and `update` for each bucket update once
/// all of it checked out.
pub fn decode_entry(
    uuid: &[u8; 16],
    buf: &[u8],
    mut key: impl FnMut(KeyRef<'_>),
    mut update: impl FnMut(BucketUpdate),
) -> Result<EntryHeader, JournalError> {
    let (h, b) = check_entry(uuid, buf)?;
    let records = records_of(b, &h);
    let mut at = 0;
    for _ in 0..h.nr_keys {
        // Checked by `check_entry`.
        let (k, next) = decode_at(records, at).map_err(|e| JournalError::Key(0, e))?;
        key(k);
        at = next;
    }
    for i in 0..h.nr_updates as usize {
        update(update_at(b, &h, i)?);
    }
    Ok(h)
}

/// Decodes a whole entry as [`decode_entry`] does, refusing what it refuses with the same
/// error, and hands over its records as one slice (`nr_keys` valid records, checked) instead of
/// a call per record; `update` is called for each bucket update.
pub fn decode_entry_records<'a>(
    uuid: &[u8; 16],
    buf: &'a [u8],
    mut update: impl FnMut(BucketUpdate),
) -> Result<(EntryHeader, &'a [u8]), JournalError> {
    let (h, b) = check_entry(uuid, buf)?;
    for i in 0..h.nr_updates as usize {
        update(update_at(b, &h, i)?);
    }
    Ok((h, records_of(b, &h)))
}

// SPDX-License-Identifier: GPL-2.0

//! Btree nodes: one [`BLOCK_SIZE`] block at the start of a bucket, written to as many members
//! as `metadata_replicas` asks.
//!
//! A leaf holds records ([`crate::shared::bkey`]) sorted by position, strictly ascending,
//! packed after the header; an interior node holds sorted children, each the smallest position
//! it covers and pointers to the copies of the child node.

use crate::shared::bkey::{decode_at, KeyError, KeyRef, Pos};
use crate::shared::crc32c::block_crc;
use crate::shared::layout::{layout, offset, Field};
use crate::shared::options::MAX_REPLICAS;
use crate::shared::superblock::{NodePtr, BLOCK_SIZE, MAX_BTREE_LEVEL, MAX_SEQ};

/// Magic number of a btree node.
pub const BTREE_MAGIC: u64 = u64::from_le_bytes(*b"BFSBTREE");

layout! {
    /// The header of a btree node. `nr` entries follow it, `bytes` bytes in all: records in a
    /// leaf, [`Child`]ren in an interior node; the rest of the block is zero.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct NodeHeaderDisk(size: 64) {
        /// [`BTREE_MAGIC`].
        0x00 => pub magic: u64,
        /// CRC-32C of the [`BLOCK_SIZE`] bytes with this field taken as zero.
        0x08 => pub crc: u32,
        /// 0 for a leaf.
        0x0c => pub level: u8,
        /// Keys or children.
        0x0e => pub nr: u16,
        /// Write sequence number.
        0x10 => pub seq: u64,
        /// Filesystem uuid.
        0x18 => pub uuid: [u8; 16],
        /// Bytes of the entries: at most [`LEAF_BYTES`]; `nr` times [`Child`]'s size in an
        /// interior node.
        0x28 => pub bytes: u32,
    }
}

const HEADER: usize = NodeHeaderDisk::SIZE;
const INTERIOR_ENTRY: usize = Child::SIZE;
const OFF_CRC: usize = offset!(NodeHeaderDisk, crc);

/// Most bytes of records in a leaf.
pub const LEAF_BYTES: usize = BLOCK_SIZE - HEADER;
/// Most children of an interior node.
pub const INTERIOR_CAPACITY: usize = (BLOCK_SIZE - HEADER) / INTERIOR_ENTRY;

layout! {
    /// A child of an interior node.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Child(size: 64) {
        /// Kind of the smallest position the child covers.
        0x00 => pub kind: u8,
        /// Its inode.
        0x08 => pub ino: u64,
        /// Its offset.
        0x10 => pub off: u64,
        /// Copies in `ptrs`.
        0x18 => pub nr_ptrs: u32,
        /// Where the copies of the child are; unused ones are zero.
        0x20 => pub ptrs: [NodePtr; MAX_REPLICAS as usize],
    }
}

impl Child {
    /// The smallest position the child covers.
    pub fn pos(&self) -> Pos {
        Pos {
            kind: self.kind,
            ino: self.ino,
            off: self.off,
        }
    }
}

/// A decoded node header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeHeader {
    /// 0 for a leaf.
    pub level: u8,
    /// Keys or children.
    pub nr: u16,
    /// Write sequence number.
    pub seq: u64,
    /// Bytes of the entries.
    pub bytes: u32,
}

/// Why a node was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeError {
    /// Not a btree node.
    Magic,
    /// Checksum mismatch.
    Checksum,
    /// Node of another filesystem.
    Uuid,
    /// Level above [`MAX_BTREE_LEVEL`] or not the level the parent expects.
    Level,
    /// More entries than fit.
    Count,
    /// Keys not strictly ascending.
    Order,
    /// A leaf record refused (or a deletion, which only a journal entry holds), or records
    /// that do not fill `bytes` exactly.
    Record(KeyError),
    /// A child with no copies or too many.
    Ptrs,
    /// A write sequence number at or above [`MAX_SEQ`], which no commit writes.
    Sequence,
}

fn header(b: &mut [u8], uuid: &[u8; 16], seq: u64, level: u8, nr: usize, bytes: usize) {
    b.fill(0);
    NodeHeaderDisk {
        magic: BTREE_MAGIC,
        crc: 0,
        level,
        nr: nr as u16,
        seq,
        uuid: *uuid,
        bytes: bytes as u32,
    }
    .write(b);
}

fn seal(b: &mut [u8]) {
    block_crc(b, OFF_CRC).write(&mut b[OFF_CRC..]);
}

/// Encodes a leaf holding the `nr` records `records` (sorted, checked: as a leaf built from
/// decoded or encoded records holds). Returns `false`, writing nothing, if they are more than
/// [`LEAF_BYTES`] or not `nr` valid sorted records: what the decoder would refuse is never
/// written.
pub fn encode_leaf(uuid: &[u8; 16], seq: u64, nr: usize, records: &[u8], buf: &mut [u8]) -> bool {
    if records.len() > LEAF_BYTES || nr > u16::MAX as usize || check_records(nr, records).is_err() {
        return false;
    }
    let b = &mut buf[..BLOCK_SIZE];
    header(b, uuid, seq, 0, nr, records.len());
    b[HEADER..HEADER + records.len()].copy_from_slice(records);
    seal(b);
    true
}

/// Checks that `records` is exactly `nr` valid records, none a deletion, strictly ascending.
pub fn check_records(nr: usize, records: &[u8]) -> Result<(), NodeError> {
    let mut at = 0;
    let mut last: Option<Pos> = None;
    for _ in 0..nr {
        let (k, next) = decode_at(records, at).map_err(NodeError::Record)?;
        if k.deleted {
            return Err(NodeError::Record(KeyError::Header));
        }
        if last.is_some_and(|l| k.pos <= l) {
            return Err(NodeError::Order);
        }
        last = Some(k.pos);
        at = next;
    }
    if at != records.len() {
        return Err(NodeError::Record(KeyError::Truncated));
    }
    Ok(())
}

/// Encodes an interior node at `level` (1 ..= [`MAX_BTREE_LEVEL`]) of `children` (1 to
/// [`INTERIOR_CAPACITY`], strictly ascending, each with 1 ..= `MAX_REPLICAS` copies). Returns
/// `false`, writing nothing, for anything else: what the decoder would refuse is never written.
pub fn encode_interior(
    uuid: &[u8; 16],
    seq: u64,
    level: u8,
    children: &[Child],
    buf: &mut [u8],
) -> bool {
    let ordered = children.windows(2).all(|w| w[0].pos() < w[1].pos());
    if !(1..=MAX_BTREE_LEVEL).contains(&level)
        || !(1..=INTERIOR_CAPACITY).contains(&children.len())
        || !ordered
        || children
            .iter()
            .any(|c| !(1..=MAX_REPLICAS).contains(&c.nr_ptrs))
        || seq >= MAX_SEQ
    {
        return false;
    }
    write_interior_raw(uuid, seq, level, children, buf);
    true
}

/// Writes an interior node of `children` (at most [`INTERIOR_CAPACITY`] of them) as given,
/// checked or not: for damage generators and tests, which write what the decoder refuses on
/// purpose. The filesystem writes nodes with [`encode_interior`] only.
pub fn write_interior_raw(
    uuid: &[u8; 16],
    seq: u64,
    level: u8,
    children: &[Child],
    buf: &mut [u8],
) {
    let children = &children[..children.len().min(INTERIOR_CAPACITY)];
    let b = &mut buf[..BLOCK_SIZE];
    header(
        b,
        uuid,
        seq,
        level,
        children.len(),
        children.len() * INTERIOR_ENTRY,
    );
    for (i, c) in children.iter().enumerate() {
        c.write(&mut b[HEADER + i * INTERIOR_ENTRY..]);
    }
    seal(b);
}

/// Decodes a node expected at `level`; once it checked out, calls `leaf` for each record of a
/// leaf or `child` for each child of an interior node. Child pointers are not range-checked
/// here (the member table is not known): the caller checks each with
/// [`crate::shared::superblock::check_ptr`] before it uses it. A leaf's records are in
/// [`leaf_body`].
pub fn decode_node(
    uuid: &[u8; 16],
    level: u8,
    buf: &[u8],
    mut leaf: impl FnMut(KeyRef<'_>),
    mut child: impl FnMut(Child),
) -> Result<NodeHeader, NodeError> {
    let Some(b) = buf.get(..BLOCK_SIZE) else {
        return Err(NodeError::Magic);
    };
    let d = NodeHeaderDisk::read(b);
    if d.magic != BTREE_MAGIC {
        return Err(NodeError::Magic);
    }
    if d.crc != block_crc(b, OFF_CRC) {
        return Err(NodeError::Checksum);
    }
    if d.uuid != *uuid {
        return Err(NodeError::Uuid);
    }
    let h = NodeHeader {
        level: d.level,
        nr: d.nr,
        seq: d.seq,
        bytes: d.bytes,
    };
    if h.level != level || h.level > MAX_BTREE_LEVEL {
        return Err(NodeError::Level);
    }
    if h.seq >= MAX_SEQ {
        return Err(NodeError::Sequence);
    }
    let nr = h.nr as usize;
    let bytes = h.bytes as usize;
    if level == 0 {
        if bytes > LEAF_BYTES {
            return Err(NodeError::Count);
        }
        let body = &b[HEADER..HEADER + bytes];
        check_records(nr, body)?;
        let mut at = 0;
        for _ in 0..nr {
            // Checked just above.
            let Ok((k, next)) = decode_at(body, at) else {
                return Err(NodeError::Record(KeyError::Truncated));
            };
            leaf(k);
            at = next;
        }
        return Ok(h);
    }
    // An interior node without children would leave keys nowhere to go.
    if nr > INTERIOR_CAPACITY || nr == 0 || bytes != nr * INTERIOR_ENTRY {
        return Err(NodeError::Count);
    }
    let read_child = |i: usize| Child::read(&b[HEADER + i * INTERIOR_ENTRY..]);
    for i in 1..nr {
        if read_child(i).pos() <= read_child(i - 1).pos() {
            return Err(NodeError::Order);
        }
    }
    if (0..nr).any(|i| !(1..=MAX_REPLICAS).contains(&read_child(i).nr_ptrs)) {
        return Err(NodeError::Ptrs);
    }
    for i in 0..nr {
        child(read_child(i));
    }
    Ok(h)
}

/// The records of a leaf that [`decode_node`] accepted with header `h`.
pub fn leaf_body<'a>(buf: &'a [u8], h: &NodeHeader) -> &'a [u8] {
    let end = (HEADER + h.bytes as usize).min(buf.len());
    &buf[HEADER.min(end)..end]
}

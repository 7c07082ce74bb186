// SPDX-License-Identifier: GPL-2.0

//! Btree nodes: one [`BLOCK_SIZE`] block at the start of a bucket, written to as many members
//! as `metadata_replicas` asks.
//!
//! A leaf holds sorted `(key, value)` pairs; an interior node holds sorted children, each the
//! smallest key it covers and pointers to the copies of the child node.

use crate::shared::crc32c::block_crc;
use crate::shared::journal_format::Key;
use crate::shared::layout::{layout, offset, Field};
use crate::shared::options::MAX_REPLICAS;
use crate::shared::superblock::{NodePtr, BLOCK_SIZE, MAX_BTREE_LEVEL, MAX_SEQ};

/// Magic number of a btree node.
pub const BTREE_MAGIC: u64 = u64::from_le_bytes(*b"BFSBTREE");

layout! {
    /// The header of a btree node. `nr` entries follow it: [`Key`]s in a leaf, [`Child`]ren in
    /// an interior node; the rest of the block is zero.
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
    }
}

const HEADER: usize = NodeHeaderDisk::SIZE;
const LEAF_ENTRY: usize = Key::SIZE;
const INTERIOR_ENTRY: usize = Child::SIZE;
const OFF_CRC: usize = offset!(NodeHeaderDisk, crc);

/// Most keys in a leaf.
pub const LEAF_CAPACITY: usize = (BLOCK_SIZE - HEADER) / LEAF_ENTRY;
/// Most children of an interior node.
pub const INTERIOR_CAPACITY: usize = (BLOCK_SIZE - HEADER) / INTERIOR_ENTRY;

layout! {
    /// A child of an interior node.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Child(size: 48) {
        /// Smallest key the child covers.
        0x00 => pub key: u64,
        /// Copies in `ptrs`.
        0x08 => pub nr_ptrs: u32,
        /// Where the copies of the child are; unused ones are zero.
        0x10 => pub ptrs: [NodePtr; MAX_REPLICAS as usize],
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
    /// A child with no copies or too many.
    Ptrs,
    /// A write sequence number at or above [`MAX_SEQ`], which no commit writes.
    Sequence,
}

fn header(b: &mut [u8], uuid: &[u8; 16], seq: u64, level: u8, nr: usize) {
    b.fill(0);
    NodeHeaderDisk {
        magic: BTREE_MAGIC,
        crc: 0,
        level,
        nr: nr as u16,
        seq,
        uuid: *uuid,
    }
    .write(b);
}

fn seal(b: &mut [u8]) {
    block_crc(b, OFF_CRC).write(&mut b[OFF_CRC..]);
}

/// Encodes a leaf; `keys` must be sorted and at most [`LEAF_CAPACITY`].
pub fn encode_leaf(uuid: &[u8; 16], seq: u64, keys: &[Key], buf: &mut [u8]) {
    let b = &mut buf[..BLOCK_SIZE];
    let keys = &keys[..keys.len().min(LEAF_CAPACITY)];
    header(b, uuid, seq, 0, keys.len());
    for (i, k) in keys.iter().enumerate() {
        k.write(&mut b[HEADER + i * LEAF_ENTRY..]);
    }
    seal(b);
}

/// Encodes an interior node at `level` (1 or more); `children` sorted, at most
/// [`INTERIOR_CAPACITY`].
pub fn encode_interior(uuid: &[u8; 16], seq: u64, level: u8, children: &[Child], buf: &mut [u8]) {
    let b = &mut buf[..BLOCK_SIZE];
    let children = &children[..children.len().min(INTERIOR_CAPACITY)];
    header(b, uuid, seq, level, children.len());
    for (i, c) in children.iter().enumerate() {
        c.write(&mut b[HEADER + i * INTERIOR_ENTRY..]);
    }
    seal(b);
}

/// Decodes a node expected at `level`; once it checked out, calls `leaf` for each key of a
/// leaf or `child` for each child of an interior node. Child pointers are not range-checked
/// here (the member table is not known): the caller checks each with
/// [`crate::shared::superblock::check_ptr`] before it uses it.
pub fn decode_node(
    uuid: &[u8; 16],
    level: u8,
    buf: &[u8],
    mut leaf: impl FnMut(Key),
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
    };
    if h.level != level || h.level > MAX_BTREE_LEVEL {
        return Err(NodeError::Level);
    }
    if h.seq >= MAX_SEQ {
        return Err(NodeError::Sequence);
    }
    let nr = h.nr as usize;
    let capacity = if level == 0 {
        LEAF_CAPACITY
    } else {
        INTERIOR_CAPACITY
    };
    // An interior node without children would leave keys nowhere to go.
    if nr > capacity || (level > 0 && nr == 0) {
        return Err(NodeError::Count);
    }
    let read_key = |i: usize| Key::read(&b[HEADER + i * LEAF_ENTRY..]);
    let read_child = |i: usize| Child::read(&b[HEADER + i * INTERIOR_ENTRY..]);
    let key_at = |i: usize| {
        if level == 0 {
            read_key(i).key
        } else {
            read_child(i).key
        }
    };
    for i in 1..nr {
        if key_at(i) <= key_at(i - 1) {
            return Err(NodeError::Order);
        }
    }
    if level > 0 && (0..nr).any(|i| !(1..=MAX_REPLICAS).contains(&read_child(i).nr_ptrs)) {
        return Err(NodeError::Ptrs);
    }
    for i in 0..nr {
        if level == 0 {
            leaf(read_key(i));
        } else {
            child(read_child(i));
        }
    }
    Ok(h)
}

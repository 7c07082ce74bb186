// SPDX-License-Identifier: GPL-2.0

//! Btree nodes: one [`BLOCK_SIZE`] block at the start of a bucket, written to as many members
//! as `metadata_replicas` asks.
//!
//! A leaf holds sorted `(key, value)` pairs; an interior node holds sorted children, each the
//! smallest key it covers and pointers to the copies of the child node.

use crate::shared::crc32c::block_crc;
use crate::shared::journal_format::Key;
use crate::shared::le::*;
use crate::shared::options::MAX_REPLICAS;
use crate::shared::superblock::{NodePtr, BLOCK_SIZE, MAX_BTREE_LEVEL, MAX_SEQ};

/// Magic number of a btree node.
pub const BTREE_MAGIC: u64 = u64::from_le_bytes(*b"BFSBTREE");
const HEADER: usize = 64;
const LEAF_ENTRY: usize = 16;
const INTERIOR_ENTRY: usize = 48;
const OFF_CRC: usize = 8;

/// Most keys in a leaf.
pub const LEAF_CAPACITY: usize = (BLOCK_SIZE - HEADER) / LEAF_ENTRY;
/// Most children of an interior node.
pub const INTERIOR_CAPACITY: usize = (BLOCK_SIZE - HEADER) / INTERIOR_ENTRY;

/// A child of an interior node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Child {
    /// Smallest key the child covers.
    pub key: u64,
    /// Copies in `ptrs`.
    pub nr_ptrs: u32,
    /// Where the copies of the child are.
    pub ptrs: [NodePtr; MAX_REPLICAS as usize],
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
    put_u64(b, 0, BTREE_MAGIC);
    put_u8(b, 12, level);
    put_u16(b, 14, nr as u16);
    put_u64(b, 16, seq);
    b[24..40].copy_from_slice(uuid);
}

fn seal(b: &mut [u8]) {
    let crc = block_crc(b, OFF_CRC);
    put_u32(b, OFF_CRC, crc);
}

/// Encodes a leaf; `keys` must be sorted and at most [`LEAF_CAPACITY`].
pub fn encode_leaf(uuid: &[u8; 16], seq: u64, keys: &[Key], buf: &mut [u8]) {
    let b = &mut buf[..BLOCK_SIZE];
    let keys = &keys[..keys.len().min(LEAF_CAPACITY)];
    header(b, uuid, seq, 0, keys.len());
    for (i, k) in keys.iter().enumerate() {
        put_u64(b, HEADER + i * LEAF_ENTRY, k.key);
        put_u64(b, HEADER + i * LEAF_ENTRY + 8, k.val);
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
        let o = HEADER + i * INTERIOR_ENTRY;
        put_u64(b, o, c.key);
        put_u32(b, o + 8, c.nr_ptrs);
        for (j, p) in c.ptrs.iter().enumerate() {
            put_u32(b, o + 16 + 8 * j, p.member);
            put_u32(b, o + 20 + 8 * j, p.bucket);
        }
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
    if buf.len() < BLOCK_SIZE || get_u64(buf, 0) != BTREE_MAGIC {
        return Err(NodeError::Magic);
    }
    let b = &buf[..BLOCK_SIZE];
    if get_u32(b, OFF_CRC) != block_crc(b, OFF_CRC) {
        return Err(NodeError::Checksum);
    }
    if b[24..40] != *uuid {
        return Err(NodeError::Uuid);
    }
    let h = NodeHeader {
        level: get_u8(b, 12),
        nr: get_u16(b, 14),
        seq: get_u64(b, 16),
    };
    if h.level != level || h.level > MAX_BTREE_LEVEL {
        return Err(NodeError::Level);
    }
    if h.seq >= MAX_SEQ {
        return Err(NodeError::Sequence);
    }
    let nr = h.nr as usize;
    let (capacity, size) = if level == 0 {
        (LEAF_CAPACITY, LEAF_ENTRY)
    } else {
        (INTERIOR_CAPACITY, INTERIOR_ENTRY)
    };
    // An interior node without children would leave keys nowhere to go.
    if nr > capacity || (level > 0 && nr == 0) {
        return Err(NodeError::Count);
    }
    for i in 1..nr {
        if get_u64(b, HEADER + i * size) <= get_u64(b, HEADER + (i - 1) * size) {
            return Err(NodeError::Order);
        }
    }
    let read_child = |i: usize| {
        let o = HEADER + i * INTERIOR_ENTRY;
        let mut c = Child {
            key: get_u64(b, o),
            nr_ptrs: get_u32(b, o + 8),
            ..Default::default()
        };
        for (j, p) in c.ptrs.iter_mut().enumerate() {
            p.member = get_u32(b, o + 16 + 8 * j);
            p.bucket = get_u32(b, o + 20 + 8 * j);
        }
        c
    };
    if level > 0 && (0..nr).any(|i| !(1..=MAX_REPLICAS).contains(&read_child(i).nr_ptrs)) {
        return Err(NodeError::Ptrs);
    }
    for i in 0..nr {
        if level == 0 {
            let o = HEADER + i * LEAF_ENTRY;
            leaf(Key {
                key: get_u64(b, o),
                val: get_u64(b, o + 8),
            });
        } else {
            child(read_child(i));
        }
    }
    Ok(h)
}

// SPDX-License-Identifier: GPL-2.0

//! Btree keys: a position ([`Pos`]: kind, inode, offset) and a value of at most [`MAX_VAL`]
//! bytes, encoded the same way in btree leaves and in journal entries (a *record*).
//!
//! A record is a [`KeyHeaderDisk`] (24 bytes) followed by the value, zero-padded to a multiple
//! of 8 bytes. Records lie one after the other; in a leaf they are sorted by position, strictly
//! ascending, and none is a deletion; in a journal entry they are in the order they were made,
//! and a deletion ([`FLAG_DELETE`], no value) removes the key at its position.
//!
//! What a value holds depends on its kind ([`Kind`]); [`check_value`] refuses a value its kind
//! does not allow, so nothing decoded from disk reaches the namespace unchecked.

use crate::shared::extent;
use crate::shared::layout::{layout, Field};
use crate::shared::namespace_format;

layout! {
    /// The header of a record; the value's `len` bytes follow, then zeros to a multiple of 8.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct KeyHeaderDisk(size: 24) {
        /// A [`Kind`] value.
        0x00 => pub kind: u8,
        /// [`FLAG_DELETE`] or 0.
        0x01 => pub flags: u8,
        /// Value bytes, at most [`MAX_VAL`]; 0 for a deletion.
        0x02 => pub len: u16,
        /// Inode number (the directory's, for a directory entry); 0 for a map key.
        0x08 => pub ino: u64,
        /// Offset within the inode's keys of this kind (the map key itself, for a map key).
        0x10 => pub off: u64,
    }
}

/// Bytes of a record header.
pub const KEY_HEADER: usize = KeyHeaderDisk::SIZE;
/// Largest value.
pub const MAX_VAL: usize = 1024;
/// Largest record.
pub const MAX_RECORD: usize = KEY_HEADER + MAX_VAL;
/// A journal record that deletes the key at its position.
pub const FLAG_DELETE: u8 = 1;

/// What a key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// A map key: `off` maps to an 8-byte value (journal replay tests and crash states written
    /// by the tool's `scenario`); `ino` is 0.
    Map = 1,
    /// An inode: `ino`, `off` 0, a [`namespace_format::InodeDisk`].
    Inode = 2,
    /// A directory entry of directory `ino` at hash slot `off`, a
    /// [`namespace_format::DirentHeaderDisk`] and the name.
    Dirent = 3,
    /// A piece of symbolic link `ino`'s target: piece `off`, at most
    /// [`namespace_format::SYMLINK_PIECE`] bytes.
    Symlink = 4,
    /// File data: the extent of regular file `ino` ending at block `off` (exclusive), a
    /// [`extent::ExtentHeaderDisk`] and its replicas' [`extent::DataPtrDisk`]s.
    Extent = 5,
}

impl Kind {
    /// The kind with code `v`.
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Map,
            2 => Kind::Inode,
            3 => Kind::Dirent,
            4 => Kind::Symlink,
            5 => Kind::Extent,
            _ => return None,
        })
    }
}

/// Where a key sorts: by kind, then inode, then offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// A [`Kind`] code.
    pub kind: u8,
    /// Inode number.
    pub ino: u64,
    /// Offset.
    pub off: u64,
}

impl Pos {
    /// The smallest position.
    pub const MIN: Pos = Pos {
        kind: 0,
        ino: 0,
        off: 0,
    };

    /// A position of kind `kind`.
    pub const fn new(kind: Kind, ino: u64, off: u64) -> Pos {
        Pos {
            kind: kind as u8,
            ino,
            off,
        }
    }

    /// The map key `key`.
    pub const fn map(key: u64) -> Pos {
        Pos::new(Kind::Map, 0, key)
    }

    /// The next position, if there is one.
    pub fn succ(self) -> Option<Pos> {
        if let Some(off) = self.off.checked_add(1) {
            return Some(Pos { off, ..self });
        }
        if let Some(ino) = self.ino.checked_add(1) {
            return Some(Pos {
                ino,
                off: 0,
                ..self
            });
        }
        Some(Pos {
            kind: self.kind.checked_add(1)?,
            ino: 0,
            off: 0,
        })
    }
}

/// A record, borrowed from the bytes it was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRef<'a> {
    /// Where it sorts.
    pub pos: Pos,
    /// A deletion (journal entries only).
    pub deleted: bool,
    /// The value (empty for a deletion).
    pub val: &'a [u8],
}

/// Why a record was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The record runs past the bytes it is in.
    Truncated,
    /// Unknown kind, unknown flags, or a deletion with a value.
    Header,
    /// A value its kind does not allow (length or contents).
    Value,
}

/// Bytes a record with a value of `len` bytes takes.
pub const fn record_size(len: usize) -> usize {
    KEY_HEADER + len.div_ceil(8) * 8
}

/// Whether `val` is a value a key at `pos` may have (not a deletion).
pub fn check_value(pos: Pos, val: &[u8]) -> bool {
    match Kind::from_u8(pos.kind) {
        Some(Kind::Map) => pos.ino == 0 && val.len() == 8,
        Some(Kind::Inode) => pos.off == 0 && namespace_format::check_inode(pos.ino, val),
        Some(Kind::Dirent) => namespace_format::check_dirent(pos, val),
        Some(Kind::Symlink) => namespace_format::check_symlink_piece(pos, val),
        Some(Kind::Extent) => extent::Extent::decode(pos, val).is_some(),
        None => false,
    }
}

/// Encodes a record at the start of `out`; returns its size, or `None` if it does not fit or
/// the value is one the decoder would refuse (never written, then).
pub fn encode(pos: Pos, deleted: bool, val: &[u8], out: &mut [u8]) -> Option<usize> {
    let val = if deleted { &[][..] } else { val };
    if !deleted && !check_value(pos, val) {
        return None;
    }
    if deleted && Kind::from_u8(pos.kind).is_none() {
        return None;
    }
    let size = record_size(val.len());
    let b = out.get_mut(..size)?;
    KeyHeaderDisk {
        kind: pos.kind,
        flags: if deleted { FLAG_DELETE } else { 0 },
        len: val.len() as u16,
        ino: pos.ino,
        off: pos.off,
    }
    .write(b);
    b[KEY_HEADER..KEY_HEADER + val.len()].copy_from_slice(val);
    b[KEY_HEADER + val.len()..].fill(0);
    Some(size)
}

/// Decodes the record at `at` in `buf`; returns it and where the next one starts. Checks the
/// header, the length and the value against its kind.
pub fn decode_at(buf: &[u8], at: usize) -> Result<(KeyRef<'_>, usize), KeyError> {
    let h = buf
        .get(at..at.checked_add(KEY_HEADER).ok_or(KeyError::Truncated)?)
        .map(KeyHeaderDisk::read)
        .ok_or(KeyError::Truncated)?;
    let len = h.len as usize;
    if Kind::from_u8(h.kind).is_none() || h.flags & !FLAG_DELETE != 0 || len > MAX_VAL {
        return Err(KeyError::Header);
    }
    let deleted = h.flags & FLAG_DELETE != 0;
    if deleted && len != 0 {
        return Err(KeyError::Header);
    }
    let end = at + record_size(len);
    if end > buf.len() {
        return Err(KeyError::Truncated);
    }
    // The header's unused bytes and the value's padding are zero, as the encoder writes them.
    if buf[at + 4..at + 8].iter().any(|&c| c != 0)
        || buf[at + KEY_HEADER + len..end].iter().any(|&c| c != 0)
    {
        return Err(KeyError::Header);
    }
    let pos = Pos {
        kind: h.kind,
        ino: h.ino,
        off: h.off,
    };
    let val = &buf[at + KEY_HEADER..at + KEY_HEADER + len];
    if !deleted && !check_value(pos, val) {
        return Err(KeyError::Value);
    }
    Ok((KeyRef { pos, deleted, val }, end))
}

/// The records of `buf` (exactly `nr` of them, filling it up to `bytes`), in order; each
/// checked as [`decode_at`] checks it.
pub fn records(buf: &[u8], nr: usize) -> Records<'_> {
    Records {
        buf,
        at: 0,
        left: nr,
    }
}

/// Iterator of [`records`].
pub struct Records<'a> {
    buf: &'a [u8],
    at: usize,
    left: usize,
}

impl<'a> Records<'a> {
    /// Where the next record starts (after the last one: the bytes the records took).
    pub fn offset(&self) -> usize {
        self.at
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<KeyRef<'a>, KeyError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match decode_at(self.buf, self.at) {
            Ok((k, next)) => {
                self.at = next;
                Some(Ok(k))
            }
            Err(e) => {
                self.left = 0;
                Some(Err(e))
            }
        }
    }
}

/// An order-independent digest term of one key and its value: the sum of all terms (wrapping)
/// identifies a set of keys, so the kernel's btree and the tool's expectation can be compared.
pub fn key_digest(pos: Pos, val: &[u8]) -> u64 {
    let mut x = pos.off ^ (pos.ino.rotate_left(17)) ^ ((pos.kind as u64) << 56);
    for (i, c) in val.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        x ^= u64::from_le_bytes(w).rotate_left(29 + i as u32 * 7);
    }
    x ^= 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 29)
}

// SPDX-License-Identifier: GPL-2.0

//! Helpers the host tests share: building key records and namespace values.

#![allow(dead_code)]

use bucketfs_core::bkey::{encode, record_size, Kind, Pos, MAX_RECORD};
use bucketfs_core::layout::Field;
use bucketfs_core::namespace_format::*;

/// A record as the tests hold it: position, deletion, value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub pos: Pos,
    pub deleted: bool,
    pub val: Vec<u8>,
}

impl Rec {
    pub fn put(pos: Pos, val: &[u8]) -> Rec {
        Rec {
            pos,
            deleted: false,
            val: val.to_vec(),
        }
    }

    pub fn del(pos: Pos) -> Rec {
        Rec {
            pos,
            deleted: true,
            val: Vec::new(),
        }
    }

    pub fn map(key: u64, val: u64) -> Rec {
        Rec::put(Pos::map(key), &val.to_le_bytes())
    }

    pub fn of(k: bucketfs_core::bkey::KeyRef<'_>) -> Rec {
        Rec {
            pos: k.pos,
            deleted: k.deleted,
            val: k.val.to_vec(),
        }
    }
}

/// The bytes of `recs`, each encoded with `bkey::encode` (which must accept it).
pub fn encode_all(recs: &[Rec]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; MAX_RECORD];
    for r in recs {
        let n = encode(r.pos, r.deleted, &r.val, &mut buf)
            .unwrap_or_else(|| panic!("{r:?} does not encode"));
        assert_eq!(n, record_size(r.val.len()));
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Map records `key -> val` for each pair.
pub fn maps(pairs: impl IntoIterator<Item = (u64, u64)>) -> Vec<Rec> {
    pairs.into_iter().map(|(k, v)| Rec::map(k, v)).collect()
}

/// A valid inode value: a regular file with one link, changed by `change`.
pub fn inode(change: impl FnOnce(&mut InodeDisk)) -> Vec<u8> {
    let mut i = InodeDisk {
        mode: S_IFREG | 0o644,
        uid: 1000,
        gid: 100,
        nlink: 1,
        size: 12345,
        atime_sec: 1_700_000_000,
        mtime_sec: 1_700_000_001,
        ctime_sec: 1_700_000_002,
        atime_nsec: 1,
        mtime_nsec: 999_999_999,
        ctime_nsec: 500,
        rdev: 0,
    };
    change(&mut i);
    let mut v = vec![0u8; INODE_SIZE];
    i.write(&mut v);
    v
}

/// A directory entry value written field by field (a bad one too).
pub fn dirent_raw(ino: u64, dtype: u8, name_len: u8, name: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; DIRENT_HEADER];
    DirentHeaderDisk {
        ino,
        dtype,
        name_len,
    }
    .write(&mut v);
    v.extend_from_slice(name);
    v
}

/// A valid directory entry value naming a regular file.
pub fn dirent(ino: u64, name: &[u8]) -> Vec<u8> {
    dirent_raw(ino, dtype_of(S_IFREG), name.len() as u8, name)
}

/// One valid record of each kind.
pub fn one_of_each() -> Vec<Rec> {
    vec![
        Rec::map(7, 0x0102_0304_0506_0708),
        Rec::put(inode_pos(ROOT_INO), &inode(|i| i.mode = S_IFDIR | 0o755)),
        Rec::put(dirent_pos(ROOT_INO, 99), &dirent(5, b"name")),
        Rec::put(symlink_pos(5, 0), b"target"),
    ]
}

/// Kind codes, valid and not.
pub const KINDS: [u8; 4] = [
    Kind::Map as u8,
    Kind::Inode as u8,
    Kind::Dirent as u8,
    Kind::Symlink as u8,
];

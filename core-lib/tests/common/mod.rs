// SPDX-License-Identifier: GPL-2.0

//! Helpers the host tests share: building key records and namespace values.

#![allow(dead_code)]

use bucketfs_core::bkey::{check_value, encode, record_size, Kind, Pos, MAX_RECORD, MAX_VAL};
use bucketfs_core::layout::Field;
use bucketfs_core::namespace::{NsError, Store};
use bucketfs_core::namespace_format::*;
use std::collections::BTreeMap;

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
pub const KINDS: [u8; 5] = [
    Kind::Map as u8,
    Kind::Inode as u8,
    Kind::Dirent as u8,
    Kind::Symlink as u8,
    Kind::Extent as u8,
];

/// A store in memory. `put` refuses (panics on) a value the decoder would refuse, `delete` a
/// key that is not there: the namespace writes neither.
#[derive(Clone, Default, PartialEq, Debug)]
pub struct Mem {
    pub m: BTreeMap<Pos, Vec<u8>>,
    /// Fail the n-th next write with EIO (`None`: never).
    pub fail_after: Option<u32>,
}

impl Mem {
    pub fn write_allowed(&mut self) -> Result<(), NsError> {
        match self.fail_after {
            Some(0) => Err(NsError::Errno(5)),
            Some(ref mut n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Store for Mem {
    fn get(&self, pos: Pos, buf: &mut [u8; MAX_VAL]) -> Result<Option<usize>, NsError> {
        Ok(self.m.get(&pos).map(|v| {
            buf[..v.len()].copy_from_slice(v);
            v.len()
        }))
    }

    fn scan(
        &self,
        from: Pos,
        to: Pos,
        f: &mut dyn FnMut(Pos, &[u8]) -> bool,
    ) -> Result<(), NsError> {
        if from >= to {
            return Ok(());
        }
        for (p, v) in self.m.range(from..to) {
            if !f(*p, v) {
                break;
            }
        }
        Ok(())
    }

    fn put(&mut self, pos: Pos, val: &[u8]) -> Result<(), NsError> {
        assert!(
            check_value(pos, val),
            "put of a value the decoder refuses at {pos:?}"
        );
        self.write_allowed()?;
        self.m.insert(pos, val.to_vec());
        Ok(())
    }

    fn delete(&mut self, pos: Pos) -> Result<(), NsError> {
        assert!(self.m.contains_key(&pos), "delete of a missing key {pos:?}");
        self.write_allowed()?;
        self.m.remove(&pos);
        Ok(())
    }
}

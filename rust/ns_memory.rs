// SPDX-License-Identifier: GPL-2.0

//! TEMPORARY TEST DOUBLE of the namespace store: `Fs::transact`, `Fs::read_ns`, `Fs::new_ino`,
//! `Fs::sync_journal` and `Fs::ns_figures` over keys held in memory only, so the VFS glue can
//! be tested before the btree-backed store exists. The lead replaces this file with the real
//! store (journaled transactions over the btree); nothing here is persisted, and a mount starts
//! from an empty root directory.
//!
//! The keys are a sorted vector of (position, place of the value in an append-only arena); a
//! transaction keeps an undo log of the entries it replaced and restores them on an error.

use crate::fs::Fs;
use crate::shared::bkey::{Pos, MAX_VAL};
use crate::shared::layout::Field;
use crate::shared::namespace::{NsError, Store};
use crate::shared::namespace_format::{
    inode_pos, InodeDisk, INODE_SIZE, MAX_INO, ROOT_INO, S_IFDIR,
};
use crate::vec_ext::VecExt;
use kernel::{
    alloc::{KVVec, KVec},
    error::Error,
    prelude::*,
};

/// A key: where it sorts and where its value is in the arena.
#[derive(Clone, Copy)]
struct Key {
    pos: Pos,
    off: usize,
    len: usize,
}

/// The keys of a mounted filesystem's namespace, in memory (the test double's store).
pub(crate) struct NsMemory {
    /// Sorted by position.
    keys: KVVec<Key>,
    /// Every value ever put, one after the other (freed at unmount).
    arena: KVVec<u8>,
    /// The next inode number; 0 until the root directory is made.
    next_ino: u64,
}

impl NsMemory {
    /// No key yet: the root directory is made at first use.
    pub(crate) fn new() -> NsMemory {
        NsMemory {
            keys: KVVec::new(),
            arena: KVVec::new(),
            next_ino: 0,
        }
    }

    /// Makes the root directory if it is not made yet.
    fn ensure_root(&mut self) -> Result<(), NsError> {
        if self.next_ino != 0 {
            return Ok(());
        }
        let root = InodeDisk {
            mode: S_IFDIR | 0o755,
            nlink: 2,
            ..InodeDisk::default()
        };
        let mut b = [0u8; INODE_SIZE];
        root.write(&mut b);
        let at = self.store_value(&b)?;
        self.set(inode_pos(ROOT_INO), Some(at))?;
        self.next_ino = ROOT_INO + 1;
        Ok(())
    }

    /// Index of the first key at or after `pos`, and whether it is at `pos`.
    fn find(&self, pos: Pos) -> (usize, bool) {
        match self.keys.binary_search_by(|k| k.pos.cmp(&pos)) {
            Ok(i) => (i, true),
            Err(i) => (i, false),
        }
    }

    fn value(&self, k: &Key) -> &[u8] {
        &self.arena[k.off..k.off + k.len]
    }

    fn store_value(&mut self, val: &[u8]) -> Result<(usize, usize), NsError> {
        let off = self.arena.len();
        self.arena
            .extend_from_slice(val, GFP_KERNEL)
            .map_err(|_| NsError::Errno(ENOMEM.to_errno().abs()))?;
        Ok((off, val.len()))
    }

    /// Sets the key at `pos` to the value at `at` (`None`: deletes it); returns what it was.
    fn set(
        &mut self,
        pos: Pos,
        at: Option<(usize, usize)>,
    ) -> Result<Option<(usize, usize)>, NsError> {
        let (i, found) = self.find(pos);
        let old = found.then(|| (self.keys[i].off, self.keys[i].len));
        match (at, found) {
            (Some((off, len)), true) => {
                self.keys[i].off = off;
                self.keys[i].len = len;
            }
            (Some((off, len)), false) => self
                .keys
                .insert(i, Key { pos, off, len })
                .map_err(|_| NsError::Errno(ENOMEM.to_errno().abs()))?,
            (None, true) => {
                self.keys[i..].rotate_left(1);
                let n = self.keys.len() - 1;
                self.keys.truncate(n);
            }
            (None, false) => {}
        }
        Ok(old)
    }
}

/// One transaction over an [`NsMemory`]: the entries it changed, to restore on an error.
struct Tx<'a> {
    mem: &'a mut NsMemory,
    undo: KVec<(Pos, Option<(usize, usize)>)>,
}

impl Tx<'_> {
    fn change(&mut self, pos: Pos, at: Option<(usize, usize)>) -> Result<(), NsError> {
        self.undo
            .reserve(1, GFP_KERNEL)
            .map_err(|_| NsError::Errno(ENOMEM.to_errno().abs()))?;
        let old = self.mem.set(pos, at)?;
        // Reserved above: cannot fail.
        let _ = self.undo.push((pos, old), GFP_KERNEL);
        Ok(())
    }

    /// Undoes every change, newest first. Restoring needs no allocation: the keys vector had
    /// room for every entry it held before.
    fn rollback(&mut self) {
        while let Some((pos, old)) = self.undo.pop() {
            let _ = self.mem.set(pos, old);
        }
    }
}

impl Store for Tx<'_> {
    fn get(&self, pos: Pos, buf: &mut [u8; MAX_VAL]) -> Result<Option<usize>, NsError> {
        let (i, found) = self.mem.find(pos);
        if !found {
            return Ok(None);
        }
        let v = self.mem.value(&self.mem.keys[i]);
        buf[..v.len()].copy_from_slice(v);
        Ok(Some(v.len()))
    }

    fn scan(
        &self,
        from: Pos,
        to: Pos,
        f: &mut dyn FnMut(Pos, &[u8]) -> bool,
    ) -> Result<(), NsError> {
        let (start, _) = self.mem.find(from);
        for k in self.mem.keys[start..].iter().take_while(|k| k.pos < to) {
            if !f(k.pos, self.mem.value(k)) {
                break;
            }
        }
        Ok(())
    }

    fn put(&mut self, pos: Pos, val: &[u8]) -> Result<(), NsError> {
        if val.len() > MAX_VAL {
            return Err(NsError::Invalid);
        }
        let at = self.mem.store_value(val)?;
        self.change(pos, Some(at))
    }

    fn delete(&mut self, pos: Pos) -> Result<(), NsError> {
        self.change(pos, None)
    }
}

/// The kernel error of a namespace error.
pub(crate) fn ns_error(e: NsError) -> Error {
    Error::from_errno(-e.errno())
}

impl Fs {
    /// Runs `f` as one transaction: all of its puts and deletions, or none. `EROFS` on a
    /// read-only mount.
    pub(crate) fn transact<T>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> Result<T, NsError>,
    ) -> Result<T> {
        if self.state.lock().read_only {
            return Err(EROFS);
        }
        let mut mem = self.ns.lock();
        mem.ensure_root().map_err(ns_error)?;
        let mut tx = Tx {
            mem: &mut mem,
            undo: KVec::new(),
        };
        match f(&mut tx) {
            Ok(v) => Ok(v),
            Err(e) => {
                tx.rollback();
                Err(ns_error(e))
            }
        }
    }

    /// Runs `f` over the namespace as it is (no change).
    pub(crate) fn read_ns<T>(&self, f: impl FnOnce(&dyn Store) -> Result<T, NsError>) -> Result<T> {
        let mut mem = self.ns.lock();
        mem.ensure_root().map_err(ns_error)?;
        let tx = Tx {
            mem: &mut mem,
            undo: KVec::new(),
        };
        f(&tx).map_err(ns_error)
    }

    /// A new inode number, never given before on this mount; `ENOSPC` when they are used up.
    pub(crate) fn new_ino(&self) -> Result<u64> {
        let mut mem = self.ns.lock();
        mem.ensure_root().map_err(ns_error)?;
        if mem.next_ino > MAX_INO {
            return Err(ENOSPC);
        }
        mem.next_ino += 1;
        Ok(mem.next_ino - 1)
    }

    /// Makes every transaction so far durable (nothing to do in memory).
    pub(crate) fn sync_journal(&self, _wait: bool) -> Result {
        Ok(())
    }

    /// Inodes in use and inode numbers left, for statfs.
    pub(crate) fn ns_figures(&self) -> (u64, u64) {
        let mut mem = self.ns.lock();
        if mem.ensure_root().is_err() {
            return (0, 0);
        }
        let (lo, _) = mem.find(inode_pos(0));
        let (hi, _) = mem.find(inode_pos(MAX_INO + 1));
        ((hi - lo) as u64, (MAX_INO + 1).saturating_sub(mem.next_ino))
    }
}

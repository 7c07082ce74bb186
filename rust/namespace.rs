// SPDX-License-Identifier: GPL-2.0

//! The namespace on the mounted filesystem: the shared namespace operations
//! (`shared/namespace.rs`) run in a transaction ([`Tx`]) or on the tree as it is ([`View`]).
//!
//! A store error travels through the namespace as [`NsError::Errno`] and comes back as the
//! same kernel error, so a transaction that must wait for node buckets (`EAGAIN` from
//! [`Tx`]) is run again, and an abort (`ECANCELED`) or a fatal signal (`EINTR`) reaches the
//! system call. A [`NsError::Corrupt`] is reported with a dmesg line and fails with `EUCLEAN`.

use crate::btree::Btree;
use crate::fs::Fs;
use crate::shared::bkey::{Pos, MAX_VAL};
use crate::shared::namespace::{Names, NsError, Store};
use crate::shared::superblock::UuidFmt;
use crate::transaction::Tx;
use kernel::prelude::*;

/// `e` as the kernel error a system call returns.
fn to_error(e: Error) -> NsError {
    NsError::Errno(-e.to_errno())
}

impl Store for Tx<'_> {
    fn get(
        &self,
        pos: Pos,
        buf: &mut [u8; MAX_VAL],
    ) -> core::result::Result<Option<usize>, NsError> {
        View(self.btree()).get(pos, buf)
    }

    fn scan(
        &self,
        from: Pos,
        to: Pos,
        f: &mut dyn FnMut(Pos, &[u8]) -> bool,
    ) -> core::result::Result<(), NsError> {
        View(self.btree()).scan(from, to, f)
    }

    fn put(&mut self, pos: Pos, val: &[u8]) -> core::result::Result<(), NsError> {
        Tx::put(self, pos, val).map_err(to_error)
    }

    fn delete(&mut self, pos: Pos) -> core::result::Result<(), NsError> {
        Tx::delete(self, pos).map_err(to_error)
    }
}

/// The tree as it is, read only.
pub(crate) struct View<'a>(&'a Btree);

impl<'a> View<'a> {
    /// `t` as a read-only store.
    pub(crate) fn of(t: &'a Btree) -> View<'a> {
        View(t)
    }
}

impl Store for View<'_> {
    fn get(
        &self,
        pos: Pos,
        buf: &mut [u8; MAX_VAL],
    ) -> core::result::Result<Option<usize>, NsError> {
        Ok(self.0.get(pos).map(|v| {
            let n = v.len().min(MAX_VAL);
            buf[..n].copy_from_slice(&v[..n]);
            n
        }))
    }

    fn scan(
        &self,
        from: Pos,
        to: Pos,
        f: &mut dyn FnMut(Pos, &[u8]) -> bool,
    ) -> core::result::Result<(), NsError> {
        self.0.scan(from, to, f);
        Ok(())
    }

    fn put(&mut self, _pos: Pos, _val: &[u8]) -> core::result::Result<(), NsError> {
        Err(NsError::Errno(-EROFS.to_errno()))
    }

    fn delete(&mut self, _pos: Pos) -> core::result::Result<(), NsError> {
        Err(NsError::Errno(-EROFS.to_errno()))
    }
}

impl Fs {
    /// How this filesystem places names in directories.
    pub(crate) fn names(&self) -> Names {
        Names::for_uuid(&self.uuid)
    }

    /// `e` as a kernel error; an inconsistency found in the tree is reported.
    fn ns_error(&self, e: NsError) -> Error {
        if e == NsError::Corrupt {
            pr_err!(
                "{}: the namespace in the btree is inconsistent (a name without its inode, a \
                 value that does not decode, a symbolic link missing a piece); run bucketfs \
                 fsck (-117)\n",
                UuidFmt(&self.uuid)
            );
        }
        Error::from_errno(-e.errno())
    }

    /// Runs the namespace change `f` as one transaction (see [`Fs::transact_tx`]): all of it
    /// or nothing, run again after a wait for node buckets.
    pub(crate) fn transact<T>(
        &self,
        mut f: impl FnMut(&mut dyn Store) -> core::result::Result<T, NsError>,
    ) -> Result<T> {
        self.transact_tx(false, |tx| f(tx).map_err(|e| self.ns_error(e)))
    }

    /// [`Fs::transact`] for a change that frees space (an unlink, an rmdir): its node
    /// allocations may take the last buckets, so a full filesystem can be emptied.
    pub(crate) fn transact_freeing<T>(
        &self,
        mut f: impl FnMut(&mut dyn Store) -> core::result::Result<T, NsError>,
    ) -> Result<T> {
        self.transact_tx(true, |tx| f(tx).map_err(|e| self.ns_error(e)))
    }

    /// Runs `f` on the namespace as it is.
    pub(crate) fn read_ns<T>(
        &self,
        f: impl FnOnce(&dyn Store) -> core::result::Result<T, NsError>,
    ) -> Result<T> {
        self.read_tree(|t| f(&View(t)).map_err(|e| self.ns_error(e)))
    }
}

impl Fs {
    /// Inode figures for statfs: (in use, free). Free is what the inode numbers left and the
    /// empty buckets allow, whichever is less: each bucket beyond the metadata watermark, per
    /// `metadata_replicas` members, is a node that holds (half full, as after splits) files of
    /// an inode and a 16-byte name.
    pub(crate) fn ns_figures(&self) -> (u64, u64) {
        use crate::shared::alloc_policy::Watermark;
        use crate::shared::bkey::record_size;
        use crate::shared::btree_format::LEAF_BYTES;
        use crate::shared::namespace_format::{DIRENT_HEADER, INODE_SIZE, MAX_INO};
        use core::sync::atomic::Ordering;
        let used = self.inodes.load(Ordering::Relaxed);
        let numbers_left = (MAX_INO + 1).saturating_sub(self.next_ino.load(Ordering::Relaxed));
        let buckets: u64 = self.alloc.inspect(|devices| {
            devices
                .iter()
                .zip(self.members.iter())
                .filter(|(_, m)| !m.is_removed())
                .map(|(d, _)| d.snapshot().spare(Watermark::Btree))
                .sum()
        });
        let replicas = (self.live().replicas as u64).max(1);
        let per_node =
            (LEAF_BYTES / 2 / (record_size(INODE_SIZE) + record_size(DIRENT_HEADER + 16))) as u64;
        let free = numbers_left.min(buckets / replicas * per_node);
        (used, free)
    }
}

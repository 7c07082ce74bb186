// SPDX-License-Identifier: GPL-2.0

//! File data on the mounted filesystem: the mappings iomap asks for (`c/file.c` through
//! `vfs.rs`), the pieces of a write for every replica, the conversion of unwritten extents when
//! their data is on disk, punching and truncation, and `FITRIM`.
//!
//! (Interface stub: the bodies follow; the allow goes when the glue calls them.)
#![allow(dead_code)]

use crate::fs::Fs;
use kernel::{error::Error, prelude::*};

/// [`Fs::data_map`] flags (the glue translates iomap's).
pub(crate) mod map_flags {
    /// A write (buffered, direct, `fallocate`, `page_mkwrite`): holes are allocated.
    pub(crate) const WRITE: u32 = 1;
    /// Direct I/O.
    pub(crate) const DIRECT: u32 = 2;
    /// `iomap_zero_range`/`iomap_truncate_page`: never allocates.
    pub(crate) const ZERO: u32 = 4;
    /// fiemap, `SEEK_HOLE`/`SEEK_DATA`: never allocates.
    pub(crate) const REPORT: u32 = 8;
    /// A page fault (`page_mkwrite`).
    pub(crate) const FAULT: u32 = 16;
}

/// What a range of a file is on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MapKind {
    /// No blocks: reads as zeros.
    Hole,
    /// Blocks with the file's data.
    Mapped,
    /// Blocks allocated but not written yet: reads as zeros, writes go to them.
    Unwritten,
}

/// One mapping for iomap: `length` bytes of the file from `offset` (block aligned).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mapping {
    pub(crate) offset: u64,
    pub(crate) length: u64,
    pub(crate) kind: MapKind,
    /// For `Mapped`/`Unwritten`: the member read from (a present one) ...
    pub(crate) member: u32,
    /// ... and the byte address there.
    pub(crate) addr: u64,
    /// Blocks this call allocated (the glue adds them to `i_blocks` and sets `IOMAP_F_NEW`).
    pub(crate) new_blocks: u64,
}

/// One piece of a write: `len` bytes of the file at `offset` go to `member` at byte `addr`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment {
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) member: u32,
    pub(crate) addr: u64,
}

/// `EOPNOTSUPP` (the kernel crate has no constant for it): the stub bodies' error.
fn eopnotsupp() -> Error {
    Error::from_errno(-(kernel::bindings::EOPNOTSUPP as i32))
}

impl Fs {
    /// iomap_begin: the mapping of `[pos, pos + len)` of inode `ino` from `pos` on (it may be
    /// shorter than `len`). With [`map_flags::WRITE`] (and not `ZERO`/`REPORT`), a hole at
    /// `pos` is allocated (at most `len` bytes, rounded up to blocks) as an unwritten extent
    /// on `data_replicas` members: `ENOSPC` when the data watermark leaves no room.
    pub(crate) fn data_map(&self, _ino: u64, _pos: u64, _len: u64, _flags: u32) -> Result<Mapping> {
        Err(eopnotsupp())
    }

    /// The pieces a write of `[pos, pos + len)` (block aligned, within extents) goes to: every
    /// replica of every extent, in file order, through `f`.
    pub(crate) fn data_segments(
        &self,
        _ino: u64,
        _pos: u64,
        _len: u64,
        _f: &mut dyn FnMut(&Segment) -> Result,
    ) -> Result {
        Err(eopnotsupp())
    }

    /// The data of `[pos, pos + len)` is on disk: unwritten extents there become written, and
    /// the inode's size on disk grows to `min(isize, pos + len)` if it was smaller.
    pub(crate) fn data_written(&self, _ino: u64, _pos: u64, _len: u64, _isize: u64) -> Result {
        Err(eopnotsupp())
    }

    /// Frees the blocks of `[start, end)` of `ino` (`start` rounded up and `end` down to
    /// blocks; `u64::MAX` for the rest of the file), in as many transactions as it takes.
    /// Returns the blocks freed (per file block, not per replica).
    pub(crate) fn data_punch(&self, _ino: u64, _start: u64, _end: u64) -> Result<u64> {
        Err(eopnotsupp())
    }

    /// Blocks allocated to `ino` (per file block), for `i_blocks` when the inode is read.
    pub(crate) fn data_blocks(&self, _ino: u64) -> Result<u64> {
        Ok(0)
    }

    /// `FITRIM`: discards the free buckets of every member that overlap `[start, start +
    /// len)` (bytes of the member's address space) in runs of at least `minlen` bytes;
    /// returns the bytes discarded.
    pub(crate) fn data_trim(&self, _start: u64, _len: u64, _minlen: u64) -> Result<u64> {
        Err(eopnotsupp())
    }
}

// SPDX-License-Identifier: GPL-2.0

//! File data extents: which device blocks hold a regular file's blocks.
//!
//! An extent maps file blocks `[end - len, end)` of inode `ino` (blocks of [`BLOCK_SIZE`]
//! bytes) to `len` blocks on each of its `nr_ptrs` members (replicas). Its key is
//! (`Extent`, `ino`, `end`): keyed by its *end*, so the first extent at or after position
//! (`Extent`, `ino`, `b + 1`) is the only one that may cover block `b`. Extents of one inode
//! never overlap.
//!
//! An extent is *unwritten* ([`EXTENT_UNWRITTEN`]) from its allocation until its data is on
//! disk: it reads as zeros. Written blocks are overwritten in place.
//!
//! The operations ([`lookup`], [`insert`], [`mark_written`], [`punch`], [`for_each`],
//! [`allocated_blocks`]) are free functions over a [`Store`], as the namespace's are. Those that
//! change several keys ([`mark_written`], [`punch`]) do at most a given number of key updates
//! and say how far they got, so the caller can go on in a new transaction. Every operation
//! reads an extent before it writes the keys that replace it, and never reads again a key it
//! wrote, so the store need not show a transaction its own writes.
//!
//! Where an extent lies on its members (inside one bucket, among the data buckets) is checked
//! against the members' geometry by [`check_placement`] (the kernel and `fsck`), not by
//! [`check_value`], which has only the value.

use crate::shared::bkey::{Kind, Pos};
use crate::shared::layout::{layout, Field};
use crate::shared::namespace::{read_inode, NsError, Store};
use crate::shared::namespace_format::{MAX_INO, MAX_SIZE, S_IFMT, S_IFREG};
use crate::shared::superblock::{Member, BLOCK_SIZE, MAX_MEMBERS};

/// Most replicas of an extent.
pub const MAX_DATA_REPLICAS: usize = 4;
/// Extent flag: allocated, never written; reads as zeros.
pub const EXTENT_UNWRITTEN: u8 = 1;
/// Blocks of the largest file ([`MAX_SIZE`] bytes): no extent ends beyond this block.
pub const MAX_FILE_BLOCKS: u64 = (MAX_SIZE >> 12) + 1;
/// Key updates [`mark_written`] and [`punch`] may need for one extent: the smallest budget
/// they accept.
pub const MIN_BUDGET: u32 = 3;

layout! {
    /// The start of an extent's value; `nr_ptrs` [`DataPtrDisk`]s follow.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ExtentHeaderDisk(size: 8) {
        /// Blocks of the extent, at least 1.
        0x0 => pub len: u32,
        /// [`EXTENT_UNWRITTEN`] or 0.
        0x4 => pub flags: u8,
        /// Replicas, 1 ..= [`MAX_DATA_REPLICAS`].
        0x5 => pub nr_ptrs: u8,
    }
}

layout! {
    /// One replica of an extent: where its blocks are on one member.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct DataPtrDisk(size: 16) {
        /// Member index.
        0x0 => pub member: u32,
        /// The device block (byte offset / 4096) of the extent's first block.
        0x8 => pub block: u64,
    }
}

/// Bytes of the value's header.
pub const EXTENT_HEADER: usize = ExtentHeaderDisk::SIZE;
/// Bytes of one replica pointer.
pub const DATA_PTR_SIZE: usize = DataPtrDisk::SIZE;
/// Largest extent value.
pub const MAX_EXTENT_VAL: usize = EXTENT_HEADER + MAX_DATA_REPLICAS * DATA_PTR_SIZE;

/// The header's reserved bytes (zero on disk).
const HEADER_RESERVED: core::ops::Range<usize> = 6..8;
/// A pointer's reserved bytes (zero on disk).
const PTR_RESERVED: core::ops::Range<usize> = 4..8;

/// One replica: the device block of the extent's first block on `member`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DataPtr {
    /// Member index.
    pub member: u32,
    /// Device block (byte offset / 4096).
    pub block: u64,
}

/// A decoded extent: file blocks `[start, start + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// First file block.
    pub start: u64,
    /// Blocks.
    pub len: u32,
    /// Allocated, not written yet.
    pub unwritten: bool,
    /// Replicas in `ptrs`.
    pub nr: u8,
    /// The replicas (the first `nr`; the rest are ignored).
    pub ptrs: [DataPtr; MAX_DATA_REPLICAS],
}

/// The position of the extent of `ino` ending at block `end`.
pub const fn extent_pos(ino: u64, end: u64) -> Pos {
    Pos::new(Kind::Extent, ino, end)
}

/// Whether `ino` may own extents.
fn valid_ino(ino: u64) -> bool {
    (1..=MAX_INO).contains(&ino)
}

impl Extent {
    /// The block after the last one.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len as u64)
    }

    /// The replicas.
    pub fn ptrs(&self) -> &[DataPtr] {
        &self.ptrs[..(self.nr as usize).min(MAX_DATA_REPLICAS)]
    }

    /// Its key's position in inode `ino`'s extents.
    pub fn pos(&self, ino: u64) -> Pos {
        extent_pos(ino, self.end())
    }

    /// Bytes of its value.
    pub fn value_len(&self) -> usize {
        EXTENT_HEADER + DATA_PTR_SIZE * (self.nr as usize).min(MAX_DATA_REPLICAS)
    }

    /// Whether it is an extent the decoder accepts: at least one block, ending at or below
    /// [`MAX_FILE_BLOCKS`], 1 ..= [`MAX_DATA_REPLICAS`] replicas on distinct members below
    /// [`MAX_MEMBERS`], none running past the last device block.
    pub fn valid(&self) -> bool {
        let nr = self.nr as usize;
        if self.len == 0 || !(1..=MAX_DATA_REPLICAS).contains(&nr) {
            return false;
        }
        if self
            .start
            .checked_add(self.len as u64)
            .is_none_or(|end| end > MAX_FILE_BLOCKS)
        {
            return false;
        }
        let ptrs = self.ptrs();
        ptrs.iter().enumerate().all(|(i, p)| {
            (p.member as usize) < MAX_MEMBERS
                && p.block.checked_add(self.len as u64).is_some()
                && ptrs[..i].iter().all(|q| q.member != p.member)
        })
    }

    /// Encodes its value at the start of `out`; returns the bytes written, or 0 (nothing
    /// written) if it is not [`valid`](Extent::valid) or `out` is too short.
    pub fn encode(&self, out: &mut [u8]) -> usize {
        let n = self.value_len();
        if !self.valid() {
            return 0;
        }
        let Some(out) = out.get_mut(..n) else {
            return 0;
        };
        ExtentHeaderDisk {
            len: self.len,
            flags: if self.unwritten { EXTENT_UNWRITTEN } else { 0 },
            nr_ptrs: self.nr,
        }
        .write(out);
        for (i, p) in self.ptrs().iter().enumerate() {
            DataPtrDisk {
                member: p.member,
                block: p.block,
            }
            .write(&mut out[EXTENT_HEADER + i * DATA_PTR_SIZE..]);
        }
        n
    }

    /// Decodes the extent keyed at `pos` with value `val`; `None` if any field is out of range
    /// (the value as [`check_value`] checks it; the position: kind `Extent`, `ino` 1 ..=
    /// [`MAX_INO`], an end at least `len` and at most [`MAX_FILE_BLOCKS`]).
    pub fn decode(pos: Pos, val: &[u8]) -> Option<Extent> {
        if pos.kind != Kind::Extent as u8 || !valid_ino(pos.ino) || !check_value(val) {
            return None;
        }
        let h = ExtentHeaderDisk::read(val);
        let end = pos.off;
        if end > MAX_FILE_BLOCKS || end < h.len as u64 {
            return None;
        }
        let mut e = Extent {
            start: end - h.len as u64,
            len: h.len,
            unwritten: h.flags & EXTENT_UNWRITTEN != 0,
            nr: h.nr_ptrs,
            ptrs: [DataPtr::default(); MAX_DATA_REPLICAS],
        };
        for (i, p) in e.ptrs.iter_mut().take(h.nr_ptrs as usize).enumerate() {
            let d = DataPtrDisk::read(&val[EXTENT_HEADER + i * DATA_PTR_SIZE..]);
            *p = DataPtr {
                member: d.member,
                block: d.block,
            };
        }
        Some(e)
    }

    /// The piece `[from, to)` of the extent (clamped to it), its replicas' blocks advanced to
    /// match. A piece of no block is not [`valid`](Extent::valid).
    pub fn slice(&self, from: u64, to: u64) -> Extent {
        // Not `clamp`, which asserts its bounds are in order.
        let from = from.max(self.start).min(self.end());
        let to = to.max(from).min(self.end());
        let skip = from - self.start;
        let mut e = *self;
        e.start = from;
        e.len = (to - from) as u32;
        for p in e.ptrs.iter_mut().take(self.nr as usize) {
            p.block = p.block.saturating_add(skip);
        }
        e
    }
}

/// Whether `val` is a value an extent key may have: the header's `len` at least 1, no flag
/// but [`EXTENT_UNWRITTEN`], `nr_ptrs` 1 ..= [`MAX_DATA_REPLICAS`], reserved bytes zero, the
/// length exactly `8 + 16 × nr_ptrs`, members below [`MAX_MEMBERS`] and distinct, no replica
/// running past the last device block. The position is checked by [`Extent::decode`].
pub fn check_value(val: &[u8]) -> bool {
    let Some(hb) = val.get(..EXTENT_HEADER) else {
        return false;
    };
    let h = ExtentHeaderDisk::read(hb);
    let nr = h.nr_ptrs as usize;
    if h.len == 0
        || h.flags & !EXTENT_UNWRITTEN != 0
        || !(1..=MAX_DATA_REPLICAS).contains(&nr)
        || hb[HEADER_RESERVED].iter().any(|&b| b != 0)
        || val.len() != EXTENT_HEADER + nr * DATA_PTR_SIZE
    {
        return false;
    }
    let mut members = 0u32;
    for pb in val[EXTENT_HEADER..].chunks_exact(DATA_PTR_SIZE) {
        let p = DataPtrDisk::read(pb);
        if pb[PTR_RESERVED].iter().any(|&b| b != 0)
            || p.member as usize >= MAX_MEMBERS
            || members & (1 << p.member) != 0
            || p.block.checked_add(h.len as u64).is_none()
        {
            return false;
        }
        members |= 1 << p.member;
    }
    true
}

/// A member's data blocks, for placement checks: device blocks `[first_block, end_block)`
/// (from its first data bucket to its end), `bucket_blocks` per bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberBlocks {
    /// The first block of the first data bucket.
    pub first_block: u64,
    /// The block after the member's last.
    pub end_block: u64,
    /// Blocks per bucket.
    pub bucket_blocks: u64,
}

impl MemberBlocks {
    /// The data blocks of member `m`; `None` for a removed member.
    pub fn of(m: &Member) -> Option<MemberBlocks> {
        if m.is_removed() {
            return None;
        }
        let bb = m.bucket_size as u64 / BLOCK_SIZE as u64;
        Some(MemberBlocks {
            first_block: (m.first_bucket as u64).saturating_mul(bb),
            end_block: m.nbuckets.saturating_mul(bb),
            bucket_blocks: bb,
        })
    }
}

/// Checks where `e`'s replicas lie: each on a member `member` knows, at or above its first
/// data block, ending at or below its end, inside one bucket.
pub fn check_placement(
    e: &Extent,
    member: &dyn Fn(u32) -> Option<MemberBlocks>,
) -> Result<(), &'static str> {
    let len = e.len as u64;
    for p in e.ptrs() {
        let m = member(p.member).ok_or("on no member")?;
        if m.bucket_blocks == 0 {
            return Err("on a member without buckets");
        }
        let end = p.block.checked_add(len).ok_or("past the member's end")?;
        if p.block < m.first_block {
            return Err("below the member's first data bucket");
        }
        if end > m.end_block {
            return Err("past the member's end");
        }
        let last = end.checked_sub(1).ok_or("empty")?;
        if p.block.checked_div(m.bucket_blocks) != last.checked_div(m.bucket_blocks) {
            return Err("across a bucket boundary");
        }
    }
    Ok(())
}

/// What a file block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// No extent: blocks `[start, end)` (from the block asked for to the next extent's start,
    /// or [`MAX_FILE_BLOCKS`]) read as zeros.
    Hole {
        /// The block asked for.
        start: u64,
        /// The next extent's start, or [`MAX_FILE_BLOCKS`].
        end: u64,
    },
    /// The extent covering the block.
    Mapped(Extent),
}

/// The first extent of `ino` ending after block `block` (the one covering it, if any).
fn next_extent<S: Store + ?Sized>(s: &S, ino: u64, block: u64) -> Result<Option<Extent>, NsError> {
    let mut out = None;
    let mut bad = false;
    // Every key of the inode from there, so a bad one beyond MAX_FILE_BLOCKS is seen too.
    s.scan(
        extent_pos(ino, block + 1),
        extent_pos(ino + 1, 0),
        &mut |p, v| {
            match Extent::decode(p, v) {
                Some(e) => out = Some(e),
                None => bad = true,
            }
            false
        },
    )?;
    if bad {
        return Err(NsError::Corrupt);
    }
    Ok(out)
}

/// Refuses an inode number that owns no extents and a range that ends before it starts;
/// returns where the range stops among the blocks a file can have.
fn check_range(ino: u64, start: u64, end: u64) -> Result<u64, NsError> {
    if !valid_ino(ino) || start > end {
        return Err(NsError::Invalid);
    }
    Ok(end.min(MAX_FILE_BLOCKS))
}

/// What file block `block` of `ino` is.
pub fn lookup<S: Store + ?Sized>(s: &S, ino: u64, block: u64) -> Result<Lookup, NsError> {
    if block >= MAX_FILE_BLOCKS {
        return Err(NsError::Invalid);
    }
    check_range(ino, block, block)?;
    Ok(match next_extent(s, ino, block)? {
        Some(e) if e.start <= block => Lookup::Mapped(e),
        Some(e) => Lookup::Hole {
            start: block,
            end: e.start,
        },
        None => Lookup::Hole {
            start: block,
            end: MAX_FILE_BLOCKS,
        },
    })
}

/// Puts extent `e`'s key.
fn put_extent<S: Store + ?Sized>(s: &mut S, ino: u64, e: &Extent) -> Result<(), NsError> {
    let mut b = [0u8; MAX_EXTENT_VAL];
    let n = e.encode(&mut b);
    if n == 0 {
        return Err(NsError::Invalid);
    }
    s.put(e.pos(ino), &b[..n])
}

/// Adds extent `e` to `ino`. Its range must be a hole ([`NsError::Exists`] otherwise); an
/// extent that is not [`valid`](Extent::valid) is [`NsError::Invalid`].
pub fn insert<S: Store + ?Sized>(s: &mut S, ino: u64, e: &Extent) -> Result<(), NsError> {
    if !e.valid() {
        return Err(NsError::Invalid);
    }
    check_range(ino, e.start, e.end())?;
    if next_extent(s, ino, e.start)?.is_some_and(|n| n.start < e.end()) {
        return Err(NsError::Exists);
    }
    put_extent(s, ino, e)
}

/// Walks the extents of `ino` that overlap `[start, end)` for a change of at most `budget`
/// key updates: `step(s, e, from, to, apply)` returns the updates the piece `[from, to)` of
/// extent `e` needs (0: none), and makes them when `apply` (called so only if they fit).
/// Returns the block it got to: `end` when done, else where the caller goes on.
fn change_range<S: Store + ?Sized>(
    s: &mut S,
    ino: u64,
    start: u64,
    end: u64,
    budget: u32,
    step: &mut dyn FnMut(&mut S, &Extent, u64, u64, bool) -> Result<u32, NsError>,
) -> Result<u64, NsError> {
    let stop = check_range(ino, start, end)?;
    if budget < MIN_BUDGET {
        return Err(NsError::Invalid);
    }
    let (mut at, mut left) = (start, budget);
    while at < stop {
        let Some(e) = next_extent(s, ino, at)? else {
            break;
        };
        if e.start >= stop {
            break;
        }
        let (from, to) = (e.start.max(at), e.end().min(stop));
        let cost = step(s, &e, from, to, false)?;
        if cost > left {
            return Ok(at);
        }
        if cost > 0 {
            step(s, &e, from, to, true)?;
        }
        left -= cost;
        at = to;
    }
    Ok(end)
}

/// Makes the unwritten extents in `[start, end)` of `ino` written, splitting those that stick
/// out of the range (the parts outside stay unwritten). Holes and written extents are left
/// alone; `end` may pass [`MAX_FILE_BLOCKS`] (`u64::MAX`: the rest of the file). Does at most
/// `budget` key updates (at least [`MIN_BUDGET`], else [`NsError::Invalid`]) and returns the
/// block it got to: `end` when done, else where the caller goes on (in a new transaction).
pub fn mark_written<S: Store + ?Sized>(
    s: &mut S,
    ino: u64,
    start: u64,
    end: u64,
    budget: u32,
) -> Result<u64, NsError> {
    change_range(s, ino, start, end, budget, &mut |s, e, from, to, apply| {
        if !e.unwritten {
            return Ok(0);
        }
        let (keep_left, keep_right) = (from > e.start, to < e.end());
        if apply {
            if keep_left {
                put_extent(s, ino, &e.slice(e.start, from))?;
            }
            let mut mid = e.slice(from, to);
            mid.unwritten = false;
            put_extent(s, ino, &mid)?;
            if keep_right {
                put_extent(s, ino, &e.slice(to, e.end()))?;
            }
        }
        Ok(1 + keep_left as u32 + keep_right as u32)
    })
}

/// Removes `[start, end)` from `ino`'s extents, trimming or splitting those that stick out.
/// Each replica run freed is reported through `freed(ptr, blocks, replica)` (`ptr`: the
/// member and device block of the run's first block; `replica`: its index in the extent), once its keys are updated (the reports hold only if
/// the caller's transaction commits). Does at most `budget` key updates (at least
/// [`MIN_BUDGET`], else [`NsError::Invalid`]) and returns the block it got to: `end` when
/// done, else where the caller goes on (in a new transaction).
pub fn punch<S: Store + ?Sized>(
    s: &mut S,
    ino: u64,
    start: u64,
    end: u64,
    budget: u32,
    freed: &mut dyn FnMut(DataPtr, u64, usize),
) -> Result<u64, NsError> {
    change_range(s, ino, start, end, budget, &mut |s, e, from, to, apply| {
        let (keep_left, keep_right) = (from > e.start, to < e.end());
        if apply {
            // The left piece gets a new key; the right piece keeps the extent's.
            if keep_left {
                put_extent(s, ino, &e.slice(e.start, from))?;
            }
            if keep_right {
                put_extent(s, ino, &e.slice(to, e.end()))?;
            } else {
                s.delete(e.pos(ino))?;
            }
            for (i, p) in e.slice(from, to).ptrs().iter().enumerate() {
                freed(*p, to - from, i);
            }
        }
        Ok(1 + keep_left as u32)
    })
}

/// `f` for each extent of `ino` that overlaps `[start, end)`, in order (whole, not cut to the
/// range), until it returns false.
pub fn for_each<S: Store + ?Sized>(
    s: &S,
    ino: u64,
    start: u64,
    end: u64,
    f: &mut dyn FnMut(&Extent) -> bool,
) -> Result<(), NsError> {
    let end = check_range(ino, start.min(end), end)?;
    if start >= end {
        return Ok(());
    }
    let mut bad = false;
    s.scan(
        extent_pos(ino, start + 1),
        extent_pos(ino + 1, 0),
        &mut |p, v| {
            let Some(e) = Extent::decode(p, v) else {
                bad = true;
                return false;
            };
            e.start < end && f(&e)
        },
    )?;
    if bad {
        return Err(NsError::Corrupt);
    }
    Ok(())
}

/// Blocks allocated to `ino` (file blocks with an extent, whatever its replicas).
pub fn allocated_blocks<S: Store + ?Sized>(s: &S, ino: u64) -> Result<u64, NsError> {
    let mut n = 0u64;
    for_each(s, ino, 0, MAX_FILE_BLOCKS, &mut |e| {
        n += e.len as u64;
        true
    })?;
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// The consistency check (fsck).

/// One inconsistency [`check`] found among the extents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtentProblem {
    /// An extent key whose value or position does not decode.
    BadValue {
        /// Where.
        pos: Pos,
    },
    /// A replica outside its member's data buckets, or across a bucket boundary.
    Placement {
        /// The inode.
        ino: u64,
        /// The extent's file blocks.
        start: u64,
        /// ...
        end: u64,
        /// The replica's member and device block.
        ptr: DataPtr,
        /// What is wrong.
        why: &'static str,
    },
    /// An extent overlapping the one before it in the same inode.
    Overlap {
        /// The inode.
        ino: u64,
        /// The extent's file blocks.
        start: u64,
        /// ...
        end: u64,
        /// The end of the extent before it.
        prev_end: u64,
    },
    /// Extents of an inode whose key is missing: left by an unlink or an eviction cut by a
    /// crash; the next read-write mount deletes them. Not an error.
    NoInode {
        /// The inode.
        ino: u64,
        /// Its extents.
        extents: u64,
        /// Their blocks.
        blocks: u64,
    },
    /// Extents of an inode that is not a regular file (or whose key does not decode).
    NotRegular {
        /// The inode.
        ino: u64,
        /// Its mode (0 if its key does not decode).
        mode: u32,
        /// Its extents.
        extents: u64,
    },
}

impl ExtentProblem {
    /// Whether it is an error ([`ExtentProblem::NoInode`] is not: a mount repairs it).
    pub fn is_error(&self) -> bool {
        !matches!(self, ExtentProblem::NoInode { .. })
    }

    /// One line describing it (no newline).
    pub fn describe(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        match *self {
            ExtentProblem::BadValue { pos } => write!(
                out,
                "extent key ino {} end {}: value does not decode",
                pos.ino, pos.off
            ),
            ExtentProblem::Placement {
                ino,
                start,
                end,
                ptr,
                why,
            } => write!(
                out,
                "inode {ino} extent {start}..{end}: replica on member {} at block {} {why}",
                ptr.member, ptr.block
            ),
            ExtentProblem::Overlap {
                ino,
                start,
                end,
                prev_end,
            } => write!(
                out,
                "inode {ino} extent {start}..{end}: overlaps the extent before it (ending at \
                 {prev_end})"
            ),
            ExtentProblem::NoInode {
                ino,
                extents,
                blocks,
            } => write!(
                out,
                "inode {ino}: {extents} extent(s), {blocks} block(s), of an inode that does not \
                 exist: left by a crash; the next read-write mount deletes them"
            ),
            ExtentProblem::NotRegular { ino, mode, extents } => write!(
                out,
                "inode {ino}: {extents} extent(s) of an inode that is not a regular file (mode \
                 {mode:o})"
            ),
        }
    }
}

/// What [`check`] knows of the inode whose extents it is reading.
#[derive(Clone, Copy)]
struct Owner {
    ino: u64,
    /// None: no key; Some(mode, 0 if the key does not decode).
    mode: Option<u32>,
    extents: u64,
    blocks: u64,
    prev_end: u64,
}

impl Owner {
    fn flush(&self, report: &mut dyn FnMut(ExtentProblem)) {
        if self.extents == 0 {
            return;
        }
        match self.mode {
            None => report(ExtentProblem::NoInode {
                ino: self.ino,
                extents: self.extents,
                blocks: self.blocks,
            }),
            Some(mode) if mode & S_IFMT != S_IFREG => report(ExtentProblem::NotRegular {
                ino: self.ino,
                mode,
                extents: self.extents,
            }),
            Some(_) => {}
        }
    }
}

/// Checks every extent in `store`: it decodes, its replicas lie where
/// [`check_placement`] allows on the members `member` describes, it does not overlap the
/// extent before it, and its inode exists and is a regular file. Reports each problem through
/// `report` (an inode's missing or wrong key once per inode); returns the number of extents.
/// The inode of each run of extents is read from inside the scan of the extents, so `store`
/// must allow nested scans (the tool's in-memory store does). Blocks used twice across inodes
/// are the caller's to check (it needs a map of every device block).
pub fn check<S: Store + ?Sized>(
    store: &S,
    member: &dyn Fn(u32) -> Option<MemberBlocks>,
    report: &mut dyn FnMut(ExtentProblem),
) -> Result<u64, NsError> {
    let mut count = 0u64;
    let mut owner: Option<Owner> = None;
    let mut err = None;
    store.scan(
        Pos::new(Kind::Extent, 0, 0),
        Pos {
            kind: Kind::Extent as u8 + 1,
            ino: 0,
            off: 0,
        },
        &mut |p, v| {
            count += 1;
            let Some(e) = Extent::decode(p, v) else {
                report(ExtentProblem::BadValue { pos: p });
                return true;
            };
            if owner.is_none_or(|o| o.ino != p.ino) {
                if let Some(o) = owner {
                    o.flush(report);
                }
                let mode = match read_inode(store, p.ino) {
                    Ok(i) => Some(i.attr.mode),
                    Err(NsError::NotFound) => None,
                    Err(NsError::Corrupt) => Some(0),
                    Err(e) => {
                        err = Some(e);
                        return false;
                    }
                };
                owner = Some(Owner {
                    ino: p.ino,
                    mode,
                    extents: 0,
                    blocks: 0,
                    prev_end: 0,
                });
            }
            let Some(o) = owner.as_mut() else {
                return false;
            };
            o.extents += 1;
            o.blocks += e.len as u64;
            if e.start < o.prev_end {
                report(ExtentProblem::Overlap {
                    ino: p.ino,
                    start: e.start,
                    end: e.end(),
                    prev_end: o.prev_end,
                });
            }
            o.prev_end = o.prev_end.max(e.end());
            for ptr in e.ptrs() {
                let one = Extent {
                    nr: 1,
                    ptrs: [*ptr; MAX_DATA_REPLICAS],
                    ..e
                };
                if let Err(why) = check_placement(&one, member) {
                    report(ExtentProblem::Placement {
                        ino: p.ino,
                        start: e.start,
                        end: e.end(),
                        ptr: *ptr,
                        why,
                    });
                }
            }
            true
        },
    )?;
    if let Some(e) = err {
        return Err(e);
    }
    if let Some(o) = owner {
        o.flush(report);
    }
    Ok(count)
}

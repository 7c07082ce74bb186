// SPDX-License-Identifier: GPL-2.0

//! File data on the mounted filesystem: the mappings iomap asks for (`c/file.c` through
//! `vfs.rs`), the pieces of a write for every replica, the conversion of unwritten extents when
//! their data is on disk, punching and truncation, and `FITRIM`.
//!
//! Blocks are allocated when a write reaches a hole, as an unwritten extent (reads see zeros)
//! on `data_replicas` members, from one open bucket per member ([`DataSpace`]); the data is
//! written in place; when the write is on disk, the extent becomes written. So a crash never
//! shows a block that was not written, and a block is never read before its key says so. A
//! written extent is overwritten where it is.
//!
//! Data allocations take buckets at the normal watermark, below the btree reserve that node
//! allocations (and frees) may use: metadata keeps priority. An allocation that cannot be
//! served writes the journal (frees waiting for it go to `need_discard`), lets the discard
//! worker free what waits for it, and tries again once; then it is `ENOSPC`. It never parks.

use crate::btree::Btree;
use crate::closure::msleep;
use crate::data_space::{bucket_key, key_bucket, DataEffect, Point};
use crate::fs::Fs;
use crate::namespace::View;
use crate::shared::alloc_policy::Watermark;
use crate::shared::bkey::Pos;
use crate::shared::bucket_table::BucketState;
use crate::shared::extent::{
    self, DataPtr, Extent, Lookup, MemberBlocks, MAX_DATA_REPLICAS, MAX_FILE_BLOCKS,
};
use crate::shared::namespace::{self, NsError};
use crate::shared::options::Opt;
use crate::shared::superblock::{UuidFmt, BLOCK_SIZE};
use crate::transaction::Tx;
use core::sync::atomic::Ordering;
use kernel::{alloc::KVVec, prelude::*};

/// The bucket of device block `block` of a member with `mb`'s geometry (no division by zero:
/// a member without buckets has none).
fn bucket_of(mb: &MemberBlocks, block: u64) -> Option<u32> {
    block
        .checked_div(mb.bucket_blocks)
        .and_then(|b| u32::try_from(b).ok())
}

/// Bytes of a block (file and device blocks are the same size).
const BLOCK: u64 = BLOCK_SIZE as u64;

/// Key updates one transaction of a long conversion or punch makes (well within
/// `TX_MAX_BYTES` of records).
const BUDGET: u32 = 48;

/// How long an allocation that found no room waits for the discard worker, at most.
const RECLAIM_WAIT_MS: u32 = 5000;

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

impl Fs {
    /// Member `m`'s data blocks, if it is a member with a geometry.
    fn member_blocks(&self, m: u32) -> Option<MemberBlocks> {
        self.geometry.get(m as usize).and_then(MemberBlocks::of)
    }

    /// Refuses an extent whose replicas do not lie where data may (a bad value on disk): a
    /// dmesg line, `EUCLEAN`.
    fn checked(&self, ino: u64, e: &Extent) -> Result<()> {
        let placed = extent::check_placement(e, &|m| self.member_blocks(m));
        let placed = placed.and_then(|()| {
            // Each replica's bucket holds file data by its state too (not a node's, say).
            let all_data = self.alloc.inspect(|devices| {
                e.ptrs().iter().all(|p| {
                    let bucket = self
                        .member_blocks(p.member)
                        .and_then(|mb| bucket_of(&mb, p.block));
                    devices.get(p.member as usize).is_some_and(|d| {
                        bucket.is_some_and(|b| d.state(b) == Some(BucketState::Data))
                    })
                })
            });
            if all_data {
                Ok(())
            } else {
                Err("in a bucket that does not hold file data")
            }
        });
        match placed {
            Ok(()) => Ok(()),
            Err(why) => {
                pr_err!(
                    "{}: inode {ino}: extent of blocks {}..{} is {why}; not used (run bucketfs \
                     fsck) (-117)\n",
                    UuidFmt(&self.uuid),
                    e.start,
                    e.end()
                );
                Err(Error::from_errno(-117))
            }
        }
    }

    /// A namespace error as the kernel's (a corrupt value reported).
    fn extent_error(&self, ino: u64, e: NsError) -> Error {
        if e == NsError::Corrupt {
            pr_err!(
                "{}: inode {ino}: an extent key does not decode; run bucketfs fsck (-117)\n",
                UuidFmt(&self.uuid)
            );
        }
        Error::from_errno(-e.errno())
    }

    /// The mapping of block `b` in extent `e`: read from its first replica on a present
    /// member.
    fn mapping_of(&self, ino: u64, e: &Extent, b: u64, new_blocks: u64) -> Result<Mapping> {
        self.checked(ino, e)?;
        let Some(p) = e.ptrs().iter().find(|p| {
            self.members
                .get(p.member as usize)
                .is_some_and(|m| m.dev().is_ok())
        }) else {
            pr_err!(
                "{}: inode {ino}: no replica of blocks {}..{} is on a present member (-5)\n",
                UuidFmt(&self.uuid),
                e.start,
                e.end()
            );
            return Err(EIO);
        };
        Ok(Mapping {
            offset: b * BLOCK,
            length: (e.end() - b) * BLOCK,
            kind: if e.unwritten {
                MapKind::Unwritten
            } else {
                MapKind::Mapped
            },
            member: p.member,
            addr: (p.block + (b - e.start)) * BLOCK,
            new_blocks,
        })
    }

    /// Takes `want` blocks (fewer if a write point has less room) on `replicas` distinct
    /// members for file blocks from `start`, recording them in `tx`. `ENOSPC` when fewer
    /// members have room at the data watermark.
    fn alloc_extent(
        &self,
        tx: &mut Tx<'_>,
        start: u64,
        want: u64,
        replicas: usize,
    ) -> Result<Extent> {
        let nm = self.nr_members();
        let mut chosen: [(u32, Point, u32); MAX_DATA_REPLICAS] =
            [(0, Point { bucket: 0, next: 0 }, 0); MAX_DATA_REPLICAS];
        let mut count = 0;
        let rotor = tx.data().rotor;
        for i in 0..nm {
            if count == replicas {
                break;
            }
            let m = (rotor + i).checked_rem(nm).unwrap_or(0);
            let usable = self
                .members
                .get(m)
                .is_some_and(|x| !x.is_removed() && x.dev().is_ok());
            let Some(mb) = self.member_blocks(m as u32).filter(|_| usable) else {
                continue;
            };
            let bb = u32::try_from(mb.bucket_blocks).map_err(|_| EINVAL)?;
            if !self.alloc.writable(m) {
                continue;
            }
            let p = match tx.data().point(m) {
                Some(p) if p.next < bb => p,
                _ => {
                    let taken = self
                        .alloc
                        .update(|d| d.get_mut(m).and_then(|d| d.take_data(Watermark::Normal)));
                    let Some(bucket) = taken else {
                        continue;
                    };
                    let p = Point { bucket, next: 0 };
                    tx.data().set_point(m, Some(p))?;
                    p
                }
            };
            chosen[count] = (m as u32, p, bb);
            count += 1;
        }
        if count < replicas {
            return Err(ENOSPC);
        }
        tx.data().rotor = (chosen[0].0 as usize + 1).checked_rem(nm).unwrap_or(0);
        let room = chosen[..count]
            .iter()
            .map(|(_, p, bb)| bb - p.next)
            .min()
            .unwrap_or(0);
        let n = want.min(room as u64) as u32;
        if n == 0 {
            return Err(ENOSPC);
        }
        let mut e = Extent {
            start,
            len: n,
            unwritten: true,
            nr: count as u8,
            ptrs: [DataPtr::default(); MAX_DATA_REPLICAS],
        };
        for (i, &(m, p, bb)) in chosen[..count].iter().enumerate() {
            e.ptrs[i] = DataPtr {
                member: m,
                block: p.bucket as u64 * bb as u64 + p.next as u64,
            };
            tx.data().set_point(
                m as usize,
                Some(Point {
                    bucket: p.bucket,
                    next: p.next + n,
                }),
            )?;
            tx.data().add_live(m, p.bucket, n)?;
            let effect = DataEffect::Alloc {
                member: m,
                bucket: p.bucket,
                off: p.next,
                n,
            };
            if let Err(err) = tx.data_effect(effect) {
                tx.data().unadd_live(m, p.bucket, n);
                tx.data().untake(m as usize, p.bucket, p.next, n);
                return Err(err);
            }
        }
        Ok(e)
    }

    /// Whether `blocks` blocks from `ptr` lie in one data bucket of a member.
    fn run_in_place(&self, ptr: DataPtr, blocks: u64) -> bool {
        let Some(mb) = self.member_blocks(ptr.member) else {
            return false;
        };
        let Some(end) = ptr.block.checked_add(blocks) else {
            return false;
        };
        blocks > 0
            && mb.bucket_blocks > 0
            && ptr.block >= mb.first_block
            && end <= mb.end_block
            && bucket_of(&mb, ptr.block).is_some()
            && bucket_of(&mb, ptr.block) == bucket_of(&mb, end - 1)
    }

    /// Records the frees of a punched replica run (`blocks` blocks from `ptr`) in `tx`.
    fn free_run(&self, tx: &mut Tx<'_>, ptr: DataPtr, blocks: u64) -> Result {
        let Some(mb) = self.member_blocks(ptr.member) else {
            return Ok(());
        };
        let bucket = bucket_of(&mb, ptr.block).ok_or(EINVAL)?;
        tx.data_effect(DataEffect::Free {
            member: ptr.member,
            bucket,
            n: blocks as u32,
        })
    }

    /// What an allocation that found no room tries: a commit (old node copies and the frees
    /// waiting for the journal become `need_discard`), the discard worker kicked, and a wait
    /// (bounded) until it has freed what waits for it.
    fn reclaim_for_data(&self) {
        if self.state.lock().read_only || self.shut_down.load(Ordering::Acquire) {
            return;
        }
        {
            // A commit gives back the old copies of the nodes changed since the last one (and
            // writes the journal's frees into the tree); else the open entry is written.
            let mut guard = self.tree.lock();
            if let Some(t) = guard.as_mut() {
                let r = if t.btree.is_dirty() && t.changed_since_space_commit {
                    t.changed_since_space_commit = false;
                    self.commit_tree(t, false)
                } else {
                    self.flush_entry(t)
                };
                if let Err(e) = r {
                    pr_warn!(
                        "{}: a commit to find room for file data failed ({})\n",
                        UuidFmt(&self.uuid),
                        e.to_errno()
                    );
                }
            }
        }
        self.kick_discards();
        let mut waited = 0;
        while waited < RECLAIM_WAIT_MS {
            // Only members the worker serves and allocations may use.
            let waiting: u64 = self.alloc.inspect(|devices| {
                devices
                    .iter()
                    .zip(self.members.iter())
                    .filter(|(d, m)| !m.is_removed() && m.dev().is_ok() && d.snapshot().writable)
                    .map(|(d, _)| d.count(BucketState::NeedDiscard))
                    .sum()
            });
            if waiting == 0 {
                break;
            }
            msleep(10);
            waited += 10;
        }
    }

    /// iomap_begin: the mapping of `[pos, pos + len)` of inode `ino` from `pos` on (it may be
    /// shorter than `len`). With [`map_flags::WRITE`] (and not `ZERO`/`REPORT`), a hole at
    /// `pos` is allocated (at most `len` bytes, rounded up to blocks) as an unwritten extent
    /// on `data_replicas` members: `ENOSPC` when the data watermark leaves no room.
    pub(crate) fn data_map(&self, ino: u64, pos: u64, len: u64, flags: u32) -> Result<Mapping> {
        let b = pos / BLOCK;
        if b >= MAX_FILE_BLOCKS {
            return Err(EFBIG);
        }
        let want_end = pos
            .saturating_add(len.max(1))
            .div_ceil(BLOCK)
            .clamp(b + 1, MAX_FILE_BLOCKS);
        let alloc =
            flags & map_flags::WRITE != 0 && flags & (map_flags::ZERO | map_flags::REPORT) == 0;
        let found = self.read_tree(|t| {
            extent::lookup(&View::of(t), ino, b).map_err(|e| self.extent_error(ino, e))
        })?;
        match found {
            Lookup::Mapped(e) => return self.mapping_of(ino, &e, b, 0),
            Lookup::Hole { end, .. } if !alloc => {
                return Ok(Mapping {
                    offset: b * BLOCK,
                    length: (end.min(want_end).max(b + 1) - b) * BLOCK,
                    kind: MapKind::Hole,
                    member: 0,
                    addr: 0,
                    new_blocks: 0,
                })
            }
            Lookup::Hole { .. } => {}
        }
        let replicas =
            (self.state.lock().live.get(Opt::DataReplicas) as usize).clamp(1, MAX_DATA_REPLICAS);
        let mut reclaimed = false;
        loop {
            let r = self.transact_tx(false, |tx| {
                let found = extent::lookup(&*tx, ino, b).map_err(|e| self.extent_error(ino, e))?;
                match found {
                    // Allocated by another mapping since the look above.
                    Lookup::Mapped(e) => self.mapping_of(ino, &e, b, 0),
                    Lookup::Hole { end, .. } => {
                        let want = end.min(want_end) - b;
                        let e = self.alloc_extent(tx, b, want, replicas)?;
                        extent::insert(tx, ino, &e).map_err(|err| self.extent_error(ino, err))?;
                        self.mapping_of(ino, &e, b, e.len as u64)
                    }
                }
            });
            match r {
                Err(e) if e == ENOSPC && !reclaimed => {
                    reclaimed = true;
                    self.reclaim_for_data();
                }
                r => return r,
            }
        }
    }

    /// The pieces a write of `[pos, pos + len)` (block aligned, within extents) goes to: every
    /// replica of every extent, in file order, through `f`.
    pub(crate) fn data_segments(
        &self,
        ino: u64,
        pos: u64,
        len: u64,
        f: &mut dyn FnMut(&Segment) -> Result,
    ) -> Result {
        let (start, end) = (pos / BLOCK, pos.saturating_add(len).div_ceil(BLOCK));
        // The extents first (under the tree lock), then `f` (which submits I/O) without it.
        let mut list: KVec<Extent> = KVec::new();
        self.read_tree(|t| {
            let mut oom = false;
            extent::for_each(&View::of(t), ino, start, end, &mut |e| {
                oom = list.push(*e, GFP_KERNEL).is_err();
                !oom
            })
            .map_err(|e| self.extent_error(ino, e))?;
            if oom {
                return Err(ENOMEM);
            }
            Ok(())
        })?;
        let mut at = start;
        for e in list.iter() {
            self.checked(ino, e)?;
            let (from, to) = (e.start.max(start), e.end().min(end));
            if from != at {
                break;
            }
            for p in e.ptrs() {
                if self
                    .members
                    .get(p.member as usize)
                    .is_none_or(|m| m.dev().is_err())
                {
                    // A missing member's copy is not written (the extent stays degraded).
                    continue;
                }
                f(&Segment {
                    offset: from * BLOCK,
                    len: (to - from) * BLOCK,
                    member: p.member,
                    addr: (p.block + (from - e.start)) * BLOCK,
                })?;
            }
            at = to;
        }
        if at < end {
            pr_err!(
                "{}: inode {ino}: a write of blocks {start}..{end} finds no blocks at {at}; not \
                 written (-5)\n",
                UuidFmt(&self.uuid)
            );
            return Err(EIO);
        }
        Ok(())
    }

    /// The data of `[pos, pos + len)` is on disk: unwritten extents there become written, and
    /// the inode's size on disk grows to `min(isize, pos + len)` if it was smaller.
    pub(crate) fn data_written(&self, ino: u64, pos: u64, len: u64, isize: u64) -> Result {
        let (start, end) = (pos / BLOCK, pos.saturating_add(len).div_ceil(BLOCK));
        let mut at = start;
        // Only as far as there are unwritten extents: most completions find none.
        let mut any = false;
        self.read_tree(|t| {
            extent::for_each(&View::of(t), ino, start, end, &mut |e| {
                any |= e.unwritten;
                !any
            })
            .map_err(|e| self.extent_error(ino, e))
        })?;
        while any && at < end {
            let next = self.transact_tx(true, |tx| {
                extent::mark_written(tx, ino, at, end, BUDGET)
                    .map_err(|e| self.extent_error(ino, e))
            })?;
            if next <= at {
                return Err(EIO);
            }
            at = next;
        }
        let size = isize.min(pos.saturating_add(len));
        let on_disk = self.read_ns(|s| namespace::read_inode(s, ino).map(|i| i.attr.size));
        match on_disk {
            Ok(s) if s < size => self.transact_tx(true, |tx| {
                let mut i = match namespace::read_inode(&*tx, ino) {
                    Ok(i) => i,
                    // Unlinked meanwhile: no key to update.
                    Err(NsError::NotFound) => return Ok(()),
                    Err(e) => return Err(self.extent_error(ino, e)),
                };
                if i.attr.size < size {
                    i.attr.size = size;
                    namespace::setattr(tx, &i).map_err(|e| self.extent_error(ino, e))?;
                }
                Ok(())
            }),
            Ok(_) => Ok(()),
            // No key (unlinked, open): its size lives in the inode cache.
            Err(e) if e == ENOENT => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Frees the blocks of `[start, end)` of `ino` (`start` rounded up and `end` down to
    /// blocks; `u64::MAX` for the rest of the file), in as many transactions as it takes.
    /// Returns the blocks freed (per file block, not per replica).
    pub(crate) fn data_punch(&self, ino: u64, start: u64, end: u64) -> Result<u64> {
        let first = start.div_ceil(BLOCK);
        let last = if end == u64::MAX {
            MAX_FILE_BLOCKS
        } else {
            end / BLOCK
        };
        let mut at = first;
        let mut total = 0u64;
        while at < last {
            let (next, blocks) = self.transact_tx(true, |tx| {
                let mut runs: KVec<(DataPtr, u64, usize)> = KVec::new();
                let mut oom = false;
                let next = extent::punch(tx, ino, at, last, BUDGET, &mut |p, n, replica| {
                    oom |= runs.push((p, n, replica), GFP_KERNEL).is_err();
                })
                .map_err(|e| self.extent_error(ino, e))?;
                if oom {
                    return Err(ENOMEM);
                }
                let mut blocks = 0u64;
                for &(p, n, replica) in runs.iter() {
                    if !self.run_in_place(p, n) {
                        // A pointer out of place (its extent was refused wherever it was
                        // used): its key is gone, nothing is freed on its word.
                        pr_err!(
                            "{}: inode {ino}: punched extent replica at member {} block {} \
                             ({n} blocks) lies outside the data buckets; nothing freed there\n",
                            UuidFmt(&self.uuid),
                            p.member,
                            p.block
                        );
                        continue;
                    }
                    self.free_run(tx, p, n)?;
                    // Per file block: the first replica of each run counts.
                    if replica == 0 {
                        blocks += n;
                    }
                }
                Ok((next, blocks))
            })?;
            if next <= at {
                return Err(EIO);
            }
            total += blocks;
            at = next;
        }
        Ok(total)
    }

    /// Blocks allocated to `ino` (per file block), for `i_blocks` when the inode is read.
    pub(crate) fn data_blocks(&self, ino: u64) -> Result<u64> {
        self.read_tree(|t| {
            extent::allocated_blocks(&View::of(t), ino).map_err(|e| self.extent_error(ino, e))
        })
    }

    /// The extent at key `p` with value `v`, if it decodes and lies where data may.
    fn placed_extent(&self, p: Pos, v: &[u8]) -> Option<Extent> {
        let e = Extent::decode(p, v)?;
        extent::check_placement(&e, &|m| self.member_blocks(m))
            .ok()
            .map(|()| e)
    }

    /// `f(member, bucket)` for each replica of `e` (placed: see [`Fs::placed_extent`]).
    fn extent_buckets(&self, e: &Extent, mut f: impl FnMut(u32, u32)) {
        for ptr in e.ptrs() {
            if let Some(b) = self
                .member_blocks(ptr.member)
                .and_then(|mb| bucket_of(&mb, ptr.block))
            {
                f(ptr.member, b);
            }
        }
    }

    /// Before replay: every bucket an extent of the committed tree `btree` uses becomes
    /// `data` (a commit may have reached its superblock and not its bucket tables), before
    /// the discard rule is ready or a node is allocated. Returns those buckets
    /// ([`bucket_key`]s, unsorted).
    pub(crate) fn mark_data_buckets(&self, btree: &Btree) -> Result<KVVec<u64>> {
        let mut used: KVVec<u64> = KVVec::new();
        let mut oom = false;
        btree.scan(
            extent::extent_pos(0, 0),
            extent::extent_pos(u64::MAX, u64::MAX),
            &mut |p, v| {
                if let Some(e) = self.placed_extent(p, v) {
                    self.extent_buckets(&e, |m, b| {
                        oom |= used.push(bucket_key(m, b), GFP_KERNEL).is_err();
                    });
                }
                !oom
            },
        );
        if oom {
            return Err(ENOMEM);
        }
        self.alloc.update(|devices| {
            for &k in used.iter() {
                let (m, b) = key_bucket(k);
                if let Some(d) = devices.get_mut(m as usize) {
                    if matches!(
                        d.state(b),
                        Some(BucketState::Free | BucketState::NeedDiscard)
                    ) {
                        d.set_state(b, BucketState::Data);
                    }
                }
            }
        });
        Ok(used)
    }

    /// After recovery: the live blocks of every data bucket counted from the extents, every
    /// bucket they use `data` (a bucket of another state that an extent uses is reported, and
    /// the extent is not read or written: [`Fs::checked`]), and the buckets of `known` (sorted
    /// [`bucket_key`]s: those the committed tree's extents or the replayed journal made `data`)
    /// that no extent uses any more go to `need_discard`. Other `data` buckets without extents
    /// are left as they are: bucketfs did not place them (a scenario's filler, another
    /// writer). New inode numbers start above every inode that owns extents. Then (read-write)
    /// the extents whose inode key is gone (an unlink or an eviction cut by a crash) are
    /// deleted.
    pub(crate) fn data_after_recovery(&self, known: &[u64]) -> Result {
        let mut bad = 0u64;
        let mut largest = 0u64;
        let mut orphans = Orphans::new();
        {
            let mut guard = self.tree.lock();
            let Some(tree) = guard.as_mut() else {
                return Ok(());
            };
            let mut oom = false;
            let btree = &tree.btree;
            let data = &mut tree.data;
            btree.scan(
                extent::extent_pos(0, 0),
                extent::extent_pos(u64::MAX, u64::MAX),
                &mut |p, v| {
                    largest = largest.max(p.ino);
                    oom |= orphans.see(btree, p.ino).is_err();
                    let Some(e) = self.placed_extent(p, v) else {
                        bad += 1;
                        return !oom;
                    };
                    self.extent_buckets(&e, |m, b| {
                        oom |= data.add_live(m, b, e.len).is_err();
                    });
                    !oom
                },
            );
            if oom {
                return Err(ENOMEM);
            }
            // States follow the counts.
            let mut conflicts = 0u64;
            let mut freed = 0u64;
            self.alloc.update(|devices| {
                data.for_each_live(|m, b, _| {
                    if let Some(d) = devices.get_mut(m as usize) {
                        match d.state(b) {
                            Some(BucketState::Data) => {}
                            Some(BucketState::Free | BucketState::NeedDiscard) => {
                                d.set_state(b, BucketState::Data)
                            }
                            _ => conflicts += 1,
                        }
                    }
                });
                for &k in known.iter() {
                    let (m, b) = key_bucket(k);
                    if data.live(m, b) > 0 {
                        continue;
                    }
                    if let Some(d) = devices.get_mut(m as usize) {
                        if d.state(b) == Some(BucketState::Data) {
                            d.set_state(b, BucketState::NeedDiscard);
                            freed += 1;
                        }
                    }
                }
            });
            if conflicts > 0 {
                pr_err!(
                    "{}: {conflicts} bucket(s) hold file data by the extents but are metadata by \
                     their state; those extents are not used; run bucketfs fsck (-117)\n",
                    UuidFmt(&self.uuid)
                );
            }
            if freed > 0 {
                self.kick_discards();
            }
        }
        self.next_ino
            .fetch_max(largest.saturating_add(1), Ordering::Relaxed);
        if bad > 0 {
            pr_err!(
                "{}: {bad} extent(s) do not decode or lie outside the data buckets; their blocks \
                 are not counted and reading them fails; run bucketfs fsck (-117)\n",
                UuidFmt(&self.uuid)
            );
        }
        if self.state.lock().read_only {
            return Ok(());
        }
        self.delete_orphan_extents(&orphans.inos);
        Ok(())
    }

    /// Deletes the extents of inodes that no longer exist (an unlink or an eviction cut by a
    /// crash): at a read-write mount, and when a read-only mount goes read-write. An inode
    /// whose extents cannot be deleted is reported and left (fsck shows it).
    pub(crate) fn delete_orphans(&self) -> Result {
        let mut orphans = Orphans::new();
        self.read_tree(|t| {
            let mut r = Ok(());
            t.scan(
                extent::extent_pos(0, 0),
                extent::extent_pos(u64::MAX, u64::MAX),
                &mut |p, _| {
                    r = orphans.see(t, p.ino);
                    r.is_ok()
                },
            );
            r
        })?;
        self.delete_orphan_extents(&orphans.inos);
        Ok(())
    }

    /// Deletes the extents of inodes `orphans` (see [`Fs::delete_orphans`]).
    fn delete_orphan_extents(&self, orphans: &[u64]) {
        if orphans.is_empty() {
            return;
        }
        let (mut freed, mut left) = (0u64, 0u64);
        for &ino in orphans.iter() {
            match self.data_punch(ino, 0, u64::MAX) {
                Ok(n) => freed += n,
                Err(e) => {
                    left += 1;
                    pr_err!(
                        "{}: the extents of deleted inode {ino} cannot be deleted ({}); run \
                         bucketfs fsck\n",
                        UuidFmt(&self.uuid),
                        e.to_errno()
                    );
                }
            }
        }
        pr_info!(
            "{}: deleted the extents of {} inode(s) that no longer exist ({freed} block(s); an \
             unlink or truncate cut by a crash){}\n",
            UuidFmt(&self.uuid),
            orphans.len() as u64 - left,
            if left > 0 { "; some left" } else { "" }
        );
    }

    /// `FITRIM`: discards the free buckets of every member that overlap `[start, start +
    /// len)` (bytes of the member's address space) in runs of at least `minlen` bytes;
    /// returns the bytes discarded. The buckets are out of allocation while their discard
    /// runs. With the `discard` option on, freed buckets were discarded already, and they are
    /// discarded again (as ext4 does without its trimmed flags).
    pub(crate) fn data_trim(&self, start: u64, len: u64, minlen: u64) -> Result<u64> {
        use crate::bdev::{DiscardRange, IoBatch};
        if self.state.lock().read_only {
            return Err(EROFS);
        }
        let end = start.saturating_add(len);
        let mut trimmed = 0u64;
        let mut any = false;
        for (m, g) in self.geometry.iter().enumerate() {
            let Some(member) = self.members.get(m).filter(|x| !x.is_removed()) else {
                continue;
            };
            let Ok(dev) = member.dev() else {
                continue;
            };
            if dev.max_discard_bytes() == 0 {
                continue;
            }
            any = true;
            let bs = g.bucket_size as u64;
            let first = start
                .checked_div(bs)
                .unwrap_or(0)
                .max(g.first_bucket as u64);
            let last = end
                .saturating_add(bs.saturating_sub(1))
                .checked_div(bs)
                .unwrap_or(0)
                .min(g.nbuckets);
            // At most this many buckets in one command (32 MiB: writers waiting for space meanwhile
            // find the rest of the spare buckets; see `take_free_run`).
            let max_run =
                ((32u64 << 20).checked_div(bs).unwrap_or(1)).clamp(1, u32::MAX as u64) as u32;

            let last = last.min(u32::MAX as u64) as u32;
            let mut from = first.min(u32::MAX as u64) as u32;
            while from < last {
                // A remount read-only (or a shutdown) stops it between two runs.
                if self.state.lock().read_only || self.shut_down.load(Ordering::Acquire) {
                    return Err(EROFS);
                }
                let mut batch = IoBatch::with_capacity(1)?;
                let run = self.alloc.update(|d| {
                    d.get_mut(m)
                        .and_then(|d| d.take_free_run(from, last, max_run))
                });
                let Some((b, n)) = run else {
                    break;
                };
                let bytes = n as u64 * bs;
                let mut result = Ok(());
                if bytes >= minlen {
                    let range = [DiscardRange {
                        off: g.bucket_offset(b as u64),
                        len: bytes,
                    }];
                    result = batch
                        .discard(dev, &range)
                        .and_then(|t| batch.run().and_then(|()| batch.status(t)));
                    if result.is_ok() {
                        trimmed += bytes;
                    }
                }
                self.alloc.update(|d| {
                    if let Some(d) = d.get_mut(m) {
                        d.untrim(b, n);
                    }
                });
                self.alloc.wake_all();
                if let Err(e) = result {
                    pr_warn!(
                        "{}: FITRIM: discard of {bytes} bytes of member {m} failed ({}); the \
                         buckets stay free\n",
                        UuidFmt(&self.uuid),
                        e.to_errno()
                    );
                    break;
                }
                from = b + n;
            }
        }
        if !any {
            // No member can discard (ext4's answer too).
            return Err(Error::from_errno(-95));
        }
        Ok(trimmed)
    }
}

/// The inodes that own extents but have no inode key, gathered during a scan of the extent
/// keys (in key order: one look at the inode per inode).
struct Orphans {
    last: u64,
    inos: KVec<u64>,
}

impl Orphans {
    fn new() -> Orphans {
        Orphans {
            last: 0,
            inos: KVec::new(),
        }
    }

    /// An extent key of inode `ino` in `btree` was seen.
    fn see(&mut self, btree: &Btree, ino: u64) -> Result {
        if ino != self.last {
            self.last = ino;
            if btree
                .get(crate::shared::namespace_format::inode_pos(ino))
                .is_none()
            {
                self.inos.push(ino, GFP_KERNEL)?;
            }
        }
        Ok(())
    }
}

// SPDX-License-Identifier: GPL-2.0

//! Where file data goes, as the mounted filesystem keeps it in memory: one open bucket per
//! member (its write point, filled block after block), the live blocks of every data bucket,
//! and the data buckets emptied by a transaction whose journal entry is not durable yet.
//!
//! It lives in the tree ([`crate::journal_writer::Tree`]) and is changed under the tree lock
//! only, by transactions when they end well (`transaction.rs`) and by the journal writes that
//! make their frees durable. It is rebuilt from the extents after recovery (`data.rs`): nothing
//! here is on disk.
//!
//! A data bucket is `data` from the moment it is opened; it goes to `need_discard` once its
//! last live block is freed, it is not a write point, and the journal entry with the frees is
//! durable (before that, a crash would replay a state in which the blocks are still used).

use crate::shared::superblock::MAX_MEMBERS;
use crate::vec_ext::VecExt;
use kernel::{prelude::*, rbtree::RBTree};

/// The key of member `member`'s bucket `bucket` in [`DataSpace::live`] and in sets of data
/// buckets.
pub(crate) fn bucket_key(member: u32, bucket: u32) -> u64 {
    ((member as u64) << 32) | bucket as u64
}

/// The member and bucket of a [`bucket_key`].
pub(crate) fn key_bucket(k: u64) -> (u32, u32) {
    ((k >> 32) as u32, k as u32)
}

/// What a transaction did to the data buckets, applied or undone with it
/// (`transaction.rs`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum DataEffect {
    /// `n` blocks taken at block `off` of member `member`'s write point bucket `bucket` (their
    /// live count is added at once; undone if the transaction fails).
    Alloc {
        member: u32,
        bucket: u32,
        off: u32,
        n: u32,
    },
    /// `n` blocks of a data bucket freed (applied when the transaction ends well).
    Free { member: u32, bucket: u32, n: u32 },
}

/// A member's open data bucket and the next block to take in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Point {
    pub(crate) bucket: u32,
    pub(crate) next: u32,
}

/// The data buckets in memory (see the module documentation).
///
/// # Invariants
///
/// `live` holds no zero count; a bucket in `pending` had no count in `live` when it was put
/// there.
pub(crate) struct DataSpace {
    points: [Option<Point>; MAX_MEMBERS],
    live: RBTree<u64, u32>,
    pending: KVec<(u32, u32)>,
    /// The member the next allocation looks at first (spreads extents over the members).
    pub(crate) rotor: usize,
}

impl DataSpace {
    /// No data bucket.
    pub(crate) fn new() -> DataSpace {
        DataSpace {
            points: [None; MAX_MEMBERS],
            live: RBTree::new(),
            pending: KVec::new(),
            rotor: 0,
        }
    }

    /// Member `m`'s write point.
    pub(crate) fn point(&self, m: usize) -> Option<Point> {
        self.points.get(m).copied().flatten()
    }

    /// Member `m`'s write point becomes `p`; the bucket it had, if it has no live block, is
    /// freed (pending the journal).
    pub(crate) fn set_point(&mut self, m: usize, p: Option<Point>) -> Result {
        // Room first: the old bucket is never left neither a point nor pending.
        self.pending.reserve(1, GFP_KERNEL)?;
        let Some(slot) = self.points.get_mut(m) else {
            return Err(EINVAL);
        };
        let old = core::mem::replace(slot, p);
        if let Some(o) = old.filter(|o| Some(o.bucket) != p.map(|p| p.bucket)) {
            if self.live(m as u32, o.bucket) == 0 {
                self.pending.push((m as u32, o.bucket), GFP_KERNEL)?;
            }
        }
        Ok(())
    }

    /// Takes back the last `n` blocks taken from member `m`'s point at `off` (a transaction
    /// that took them failed), if nothing was taken after them.
    pub(crate) fn untake(&mut self, m: usize, bucket: u32, off: u32, n: u32) {
        if let Some(Some(p)) = self.points.get_mut(m) {
            if p.bucket == bucket && p.next == off + n {
                p.next = off;
            }
        }
    }

    /// Live blocks of member `member`'s bucket `bucket`.
    pub(crate) fn live(&self, member: u32, bucket: u32) -> u32 {
        self.live
            .get(&bucket_key(member, bucket))
            .copied()
            .unwrap_or(0)
    }

    /// `n` more live blocks in a data bucket.
    pub(crate) fn add_live(&mut self, member: u32, bucket: u32, n: u32) -> Result {
        let k = bucket_key(member, bucket);
        if let Some(v) = self.live.get_mut(&k) {
            *v = v.saturating_add(n);
            return Ok(());
        }
        if n > 0 {
            self.live.try_create_and_insert(k, n, GFP_KERNEL)?;
        }
        Ok(())
    }

    /// Takes back [`DataSpace::add_live`] of a failed transaction (the bucket is its write
    /// point's, so it is not freed here).
    pub(crate) fn unadd_live(&mut self, member: u32, bucket: u32, n: u32) {
        let k = bucket_key(member, bucket);
        let left = match self.live.get_mut(&k) {
            Some(v) => {
                *v = v.saturating_sub(n);
                *v
            }
            None => return,
        };
        if left == 0 {
            self.live.remove(&k);
        }
    }

    /// Room for `n` more frees, so [`DataSpace::sub_live`] does not allocate.
    pub(crate) fn reserve_frees(&mut self, n: usize) -> Result {
        self.pending.reserve(n, GFP_KERNEL)?;
        Ok(())
    }

    /// `n` blocks of a data bucket freed; when it has none left it waits for the journal (see
    /// [`DataSpace::settle`]). Returns whether it has none left; `EINVAL` (nothing changed)
    /// when it counted fewer live blocks.
    pub(crate) fn sub_live(&mut self, member: u32, bucket: u32, n: u32) -> Result<bool> {
        let k = bucket_key(member, bucket);
        let left = match self.live.get_mut(&k) {
            Some(v) if *v >= n => {
                *v -= n;
                *v
            }
            // More freed than counted: the extents and the counts disagree (a bad extent);
            // the bucket is not freed on that word.
            _ => return Err(EINVAL),
        };
        if left > 0 {
            return Ok(false);
        }
        self.live.remove(&k);
        // A write point emptied too: once the frees are durable it starts again at its first
        // block (see `settle`).
        self.pending.push((member, bucket), GFP_KERNEL)?;
        Ok(true)
    }

    /// The frees since the last call are durable now: returns the buckets to free (to
    /// `need_discard`): those emptied that are no write point and have not been written to
    /// since. An emptied write point with nothing written since starts again at its first
    /// block (its old blocks can be written again only now: before, a crash could bring back
    /// the extents that pointed there).
    pub(crate) fn settle(&mut self) -> KVec<(u32, u32)> {
        let mut pending = core::mem::take(&mut self.pending);
        let mut out = 0;
        for i in 0..pending.len() {
            let (m, b) = pending[i];
            if self.live(m, b) > 0 {
                continue;
            }
            if let Some(Some(p)) = self.points.get_mut(m as usize) {
                if p.bucket == b {
                    p.next = 0;
                    continue;
                }
            }
            pending[out] = (m, b);
            out += 1;
        }
        pending.truncate(out);
        pending
    }

    /// Blocks left in the write points, per member, through `f(member, blocks left)` given
    /// `bucket_blocks(member)`.
    pub(crate) fn point_room(&self, bucket_blocks: impl Fn(usize) -> u32) -> u64 {
        self.points
            .iter()
            .enumerate()
            .filter_map(|(m, p)| p.map(|p| bucket_blocks(m).saturating_sub(p.next) as u64))
            .sum()
    }

    /// Takes every write point (the mount goes): those with no live block and no free waiting
    /// for the journal are returned, to be freed by the caller in the commit that follows.
    pub(crate) fn close_points(&mut self) -> KVec<(u32, u32)> {
        let mut empty = KVec::new();
        for m in 0..MAX_MEMBERS {
            if let Some(p) = self.points[m].take() {
                // One whose frees are not durable yet (a journal write failed) is left as it
                // is: freeing it now could discard blocks a replay gives back to a file.
                let unsettled = self
                    .pending
                    .iter()
                    .any(|&(pm, pb)| pm == m as u32 && pb == p.bucket);
                if self.live(m as u32, p.bucket) == 0 && !unsettled {
                    // Best effort: a bucket not freed here is freed by no one until it is
                    // reused (reported by nothing: it holds no data).
                    let _ = empty.push((m as u32, p.bucket), GFP_KERNEL);
                }
            }
        }
        empty
    }

    /// Every data bucket with live blocks, through `f(member, bucket, live)`.
    pub(crate) fn for_each_live(&self, mut f: impl FnMut(u32, u32, u32)) {
        for (k, v) in self.live.iter() {
            let (m, b) = key_bucket(*k);
            f(m, b, *v);
        }
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The free-space index: one member's bucket states, with find-next in `O(log n)`.
//!
//! [`FreeIndex`] holds the state of every bucket of one member, the number of buckets in each
//! state, and for the two states the allocator and the discard worker search for ([`Tracked`]:
//! `free` and `need_discard`) a hierarchical bitmap. Setting a state updates all three, so they
//! cannot disagree; the caller serialises access (the allocator's lock).
//!
//! # Layout
//!
//! Everything lives in one caller-provided array of 64-bit words ([`Words`]), sized by
//! [`FreeIndex::words_needed`]; the index never allocates. The caller may back it with any
//! storage that is not physically contiguous (`KVVec` in the kernel, chunks, a host `Vec`):
//!
//! - the states: 4 bits per bucket, 16 buckets per word (bucket `b` in word `b / 16`, bits
//!   `4 * (b % 16)..`), the [`BucketState`] value;
//! - then, for each [`Tracked`] state in order, its bitmap: level 0 has bit `b` set exactly when
//!   bucket `b` is in that state; level `k + 1` has bit `i` set exactly when word `i` of level
//!   `k` is not zero. Levels are added until one has a single word: at most [`MAX_LEVELS`] for
//!   `u32::MAX` buckets, 4 for 16M buckets. Bits past the last bucket are always clear.
//!
//! Words per member: `ceil(n / 16)` for the states plus `2 * (ceil(n / 64) + ceil(n / 4096) +
//! ...)` for the bitmaps, about `n / 10.6`: 1,581,186 words (12.1 MiB) at 16M buckets, 0.75 byte
//! per bucket.
//!
//! In the kernel a `KVVec<u64>` of [`FreeIndex::words_needed`] words (vmalloc'd when large,
//! never one physically contiguous block) serves up to about 2.8G buckets, where it reaches
//! kvmalloc's `INT_MAX` limit; past that, a vector of fixed-size chunks implements [`Words`]
//! (word `i` in chunk `i >> k`, at `i & (2^k - 1)`).
//!
//! # Cost
//!
//! - [`FreeIndex::next_in`] and [`FreeIndex::next_wrapping`]: climb from the start position's
//!   word until a word has a set bit at or after the position, then descend along the lowest
//!   set bits: at most `2 * levels` word reads (twice that with the wrap-around), whatever the
//!   fullness. A linear scan of a 99.9 %-full member reads about a thousand states per find.
//! - [`FreeIndex::set_state`]: one state word, and for a tracked state one bitmap word, plus
//!   one per level only while a word goes from zero to non-zero or back: `O(levels)` worst case,
//!   `O(1)` typically.
//! - [`FreeIndex::run`]: the find, then one level-0 word per 64 buckets of the run.
//! - [`FreeIndex::new`]: `O(n)`, one pass over the states and one over the bitmaps.
//!
//! # Why a bitmap and not free extents
//!
//! A tree of free extents needs an allocation per extent while the allocator lock is held, and
//! its size follows the fragmentation (up to `n / 2` extents), not the device; a
//! fixed-size bitmap is sized once from the bucket count and never allocates afterwards, each
//! update is a few word writes, and 64-way summaries keep every search within a handful of
//! cache lines.
//!
//! Only buckets from the first allocatable bucket on are ever returned; the states below it
//! (superblocks, table, journal) are held and counted like the others.

use crate::shared::bucket_table::{BucketState, NR_STATES};

/// Storage for a [`FreeIndex`]: a fixed number of 64-bit words, provided by the caller.
///
/// Implementations must keep what [`Words::set_word`] stored; the index reads only words below
/// [`Words::nr_words`] and treats a `None` from [`Words::word`] as the end of the storage.
pub trait Words {
    /// Number of words.
    fn nr_words(&self) -> usize;
    /// Word `i`, or `None` past the end.
    fn word(&self, i: usize) -> Option<u64>;
    /// Sets word `i` to `v`; ignored past the end.
    fn set_word(&mut self, i: usize, v: u64);
}

impl Words for &mut [u64] {
    fn nr_words(&self) -> usize {
        <[u64]>::len(self)
    }

    fn word(&self, i: usize) -> Option<u64> {
        <[u64]>::get(self, i).copied()
    }

    fn set_word(&mut self, i: usize, v: u64) {
        if let Some(w) = <[u64]>::get_mut(self, i) {
            *w = v;
        }
    }
}

/// A state the index keeps a bitmap for, and so can search for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracked {
    /// [`BucketState::Free`]: what allocation looks for.
    Free = 0,
    /// [`BucketState::NeedDiscard`]: what the discard worker looks for.
    NeedDiscard = 1,
}

/// Number of [`Tracked`] states.
const NR_TRACKED: usize = 2;

impl Tracked {
    /// Every tracked state, in bitmap order.
    pub const ALL: [Tracked; NR_TRACKED] = [Tracked::Free, Tracked::NeedDiscard];

    /// The bucket state.
    #[inline]
    pub fn state(self) -> BucketState {
        match self {
            Tracked::Free => BucketState::Free,
            Tracked::NeedDiscard => BucketState::NeedDiscard,
        }
    }

    /// The tracked state for `state`, if it is one.
    #[inline]
    pub fn of(state: BucketState) -> Option<Tracked> {
        match state {
            BucketState::Free => Some(Tracked::Free),
            BucketState::NeedDiscard => Some(Tracked::NeedDiscard),
            _ => None,
        }
    }
}

/// Most bitmap levels: enough for `u32::MAX` buckets (64^6 > 2^32).
pub const MAX_LEVELS: usize = 6;

/// Bits per bucket state in the state words.
const STATE_BITS: u32 = 4;
/// Bucket states per word.
const STATES_PER_WORD: u32 = 64 / STATE_BITS;
/// Mask of one state.
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;

/// Why an index could not be built, or failed its check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexError {
    /// The storage has fewer words than [`FreeIndex::words_needed`].
    Storage,
    /// The first allocatable bucket is past the last bucket.
    FirstBucket,
    /// [`FreeIndex::check`] found a bitmap, summary or count that disagrees with the states.
    Inconsistent,
    /// [`IndexBuilder::finish`] was called before every bucket had its state.
    Incomplete,
}

/// Where each part lives in the storage.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Bitmap levels.
    levels: usize,
    /// Words in each level.
    len: [usize; MAX_LEVELS],
    /// Words of states.
    state_words: usize,
    /// Words of one bitmap, all levels.
    bitmap_words: usize,
    /// Storage index of word 0 of each level of each [`Tracked`] bitmap, so finding a word
    /// is one addition on the allocation path (computed once, in [`Layout::new`]).
    base: [[usize; MAX_LEVELS]; NR_TRACKED],
}

impl Layout {
    fn new(nbuckets: u32) -> Option<Layout> {
        let n = usize::try_from(nbuckets).ok()?;
        let mut off = [0; MAX_LEVELS];
        let mut len = [0; MAX_LEVELS];
        let mut words = n.div_ceil(64).max(1);
        let mut total = 0usize;
        let mut levels = 0;
        loop {
            *off.get_mut(levels)? = total;
            *len.get_mut(levels)? = words;
            total = total.checked_add(words)?;
            levels += 1;
            if words == 1 {
                break;
            }
            words = words.div_ceil(64);
        }
        let state_words = n.div_ceil(STATES_PER_WORD as usize);
        let mut base = [[0; MAX_LEVELS]; NR_TRACKED];
        for (t, levels_base) in base.iter_mut().enumerate() {
            let bitmap = total.checked_mul(t)?.checked_add(state_words)?;
            for (b, &o) in levels_base.iter_mut().zip(off.iter()) {
                *b = bitmap.checked_add(o)?;
            }
        }
        let layout = Layout {
            levels,
            len,
            state_words,
            bitmap_words: total,
            base,
        };
        // Every storage index `at` returns is below the total, so it cannot overflow.
        layout.total()?;
        Some(layout)
    }

    fn total(&self) -> Option<usize> {
        self.bitmap_words
            .checked_mul(NR_TRACKED)?
            .checked_add(self.state_words)
    }

    /// Words in level `lvl` (0 past the top).
    #[inline]
    fn level_len(&self, lvl: usize) -> usize {
        if lvl < self.levels {
            self.len.get(lvl).copied().unwrap_or(0)
        } else {
            0
        }
    }

    /// Storage index of word `i` of level `lvl` of the bitmap of `t`.
    #[inline]
    fn at(&self, t: Tracked, lvl: usize, i: usize) -> Option<usize> {
        if i >= self.level_len(lvl) {
            return None;
        }
        // Below `total()`, which `new` checked fits a `usize`.
        self.base.get(t as usize)?.get(lvl)?.checked_add(i)
    }
}

/// Builds a [`FreeIndex`] from the bucket states in bucket order, a run or a bucket at a time:
/// a run of buckets in one state is written a word at a time (16 states, or 64 bitmap bits,
/// per word write), so building the index of a member whose table is mostly long runs costs
/// about one word write per 16 buckets. Every word of the storage is written exactly once
/// (the summary levels by [`IndexBuilder::finish`]), so the storage need not be zeroed.
///
/// It builds what [`FreeIndex::new`] builds from the same states.
pub struct IndexBuilder<W: Words> {
    words: W,
    nbuckets: u32,
    first_bucket: u32,
    counts: [u64; NR_STATES],
    layout: Layout,
    /// Buckets given a state so far.
    next: u32,
    /// The states of the current state word (buckets `next & !15 .. next`).
    state_word: u64,
    /// The current level-0 words (buckets `next & !63 .. next`) of each bitmap.
    bits: [u64; NR_TRACKED],
}

/// `state` in every 4-bit slot of a state word.
fn state_pattern(state: BucketState) -> u64 {
    (state as u64) * 0x1111_1111_1111_1111
}

impl<W: Words> IndexBuilder<W> {
    /// Starts the index of `nbuckets` buckets in `words` (at least
    /// [`FreeIndex::words_needed`]); searches will return only buckets from `first_bucket` on.
    pub fn new(words: W, nbuckets: u32, first_bucket: u32) -> Result<IndexBuilder<W>, IndexError> {
        if first_bucket > nbuckets {
            return Err(IndexError::FirstBucket);
        }
        let layout = Layout::new(nbuckets).ok_or(IndexError::Storage)?;
        let total = layout.total().ok_or(IndexError::Storage)?;
        if words.nr_words() < total {
            return Err(IndexError::Storage);
        }
        Ok(IndexBuilder {
            words,
            nbuckets,
            first_bucket,
            counts: [0; NR_STATES],
            layout,
            next: 0,
            state_word: 0,
            bits: [0; NR_TRACKED],
        })
    }

    /// Buckets given a state so far: the next one to push is this one.
    pub fn pushed(&self) -> u32 {
        self.next
    }

    /// Buckets still without a state.
    pub fn remaining(&self) -> u32 {
        self.nbuckets - self.next
    }

    /// Writes the current level-0 words (of the 64 buckets holding bucket `next - 1`).
    fn flush_bits(&mut self) {
        let i = ((self.next - 1) / 64) as usize;
        for t in Tracked::ALL {
            let w = self.bits.get(t as usize).copied().unwrap_or(0);
            if let Some(at) = self.layout.at(t, 0, i) {
                self.words.set_word(at, w);
            }
        }
        self.bits = [0; NR_TRACKED];
    }

    /// The next bucket is in `state` (ignored once every bucket has its state).
    pub fn push(&mut self, state: BucketState) {
        if self.next >= self.nbuckets {
            return;
        }
        let b = self.next;
        if let Some(c) = self.counts.get_mut(state as usize) {
            *c += 1;
        }
        self.state_word |= (state as u64) << ((b % STATES_PER_WORD) * STATE_BITS);
        if let Some(t) = Tracked::of(state) {
            if let Some(w) = self.bits.get_mut(t as usize) {
                *w |= 1 << (b % 64);
            }
        }
        self.next = b + 1;
        if self.next % STATES_PER_WORD == 0 {
            self.words
                .set_word((b / STATES_PER_WORD) as usize, self.state_word);
            self.state_word = 0;
        }
        if self.next % 64 == 0 {
            self.flush_bits();
        }
    }

    /// The next `n` buckets are in `state` (those past the last bucket are ignored).
    pub fn push_run(&mut self, state: BucketState, n: u32) {
        let mut n = n.min(self.remaining());
        let tracked = Tracked::of(state);
        let pattern = state_pattern(state);
        // Buckets written a word at a time (`push` counts its own).
        let mut bulk = 0u64;
        while n > 0 {
            let b = self.next;
            if b % 64 == 0 && n >= 64 {
                // Four whole state words and one whole bitmap word per bitmap.
                let first = (b / STATES_PER_WORD) as usize;
                for k in 0..4 {
                    self.words.set_word(first + k, pattern);
                }
                for t in Tracked::ALL {
                    let w = if tracked == Some(t) { u64::MAX } else { 0 };
                    if let Some(at) = self.layout.at(t, 0, (b / 64) as usize) {
                        self.words.set_word(at, w);
                    }
                }
                self.next = b + 64;
                n -= 64;
                bulk += 64;
            } else if b % STATES_PER_WORD == 0 && n >= STATES_PER_WORD {
                // One whole state word; the bitmap word is still partial.
                self.words.set_word((b / STATES_PER_WORD) as usize, pattern);
                if let Some(t) = tracked {
                    if let Some(w) = self.bits.get_mut(t as usize) {
                        *w |= 0xffff << (b % 64);
                    }
                }
                self.next = b + STATES_PER_WORD;
                n -= STATES_PER_WORD;
                bulk += STATES_PER_WORD as u64;
                if self.next % 64 == 0 {
                    self.flush_bits();
                }
            } else {
                self.push(state);
                n -= 1;
            }
        }
        if let Some(c) = self.counts.get_mut(state as usize) {
            *c += bulk;
        }
    }

    /// The index, once every bucket has its state ([`IndexError::Incomplete`] before).
    pub fn finish(mut self) -> Result<FreeIndex<W>, IndexError> {
        if self.next != self.nbuckets {
            return Err(IndexError::Incomplete);
        }
        // The partial last words, if any (and the one level-0 word of an empty member).
        if self.next % STATES_PER_WORD != 0 {
            self.words
                .set_word((self.next / STATES_PER_WORD) as usize, self.state_word);
        }
        if self.next % 64 != 0 {
            self.flush_bits();
        } else if self.next == 0 {
            for t in Tracked::ALL {
                if let Some(at) = self.layout.at(t, 0, 0) {
                    self.words.set_word(at, 0);
                }
            }
        }
        let mut index = FreeIndex {
            words: self.words,
            nbuckets: self.nbuckets,
            first_bucket: self.first_bucket,
            counts: self.counts,
            layout: self.layout,
        };
        index.build_summaries();
        Ok(index)
    }
}

/// One member's bucket states, counts, and the bitmaps that find `free` and `need_discard`
/// buckets; see the [module documentation](self).
pub struct FreeIndex<W: Words> {
    words: W,
    nbuckets: u32,
    first_bucket: u32,
    counts: [u64; NR_STATES],
    layout: Layout,
}

impl<W: Words> FreeIndex<W> {
    /// Words of storage an index of `nbuckets` buckets needs (`None` if it does not fit a
    /// `usize`).
    pub fn words_needed(nbuckets: u32) -> Option<usize> {
        Layout::new(nbuckets)?.total()
    }

    /// Builds the index of `nbuckets` buckets, bucket `b` in state `state_of(b)`, in `words`
    /// (at least [`FreeIndex::words_needed`] words; their contents are overwritten). Searches
    /// return only buckets from `first_bucket` on.
    pub fn new(
        mut words: W,
        nbuckets: u32,
        first_bucket: u32,
        mut state_of: impl FnMut(u32) -> BucketState,
    ) -> Result<FreeIndex<W>, IndexError> {
        if first_bucket > nbuckets {
            return Err(IndexError::FirstBucket);
        }
        let layout = Layout::new(nbuckets).ok_or(IndexError::Storage)?;
        let total = layout.total().ok_or(IndexError::Storage)?;
        if words.nr_words() < total {
            return Err(IndexError::Storage);
        }
        for i in 0..total {
            words.set_word(i, 0);
        }
        let mut counts = [0u64; NR_STATES];
        let mut state_word = 0u64;
        let mut bits = [0u64; NR_TRACKED];
        for b in 0..nbuckets {
            let s = state_of(b);
            if let Some(c) = counts.get_mut(s as usize) {
                *c += 1;
            }
            state_word |= (s as u64) << ((b % STATES_PER_WORD) * STATE_BITS);
            if let Some(t) = Tracked::of(s) {
                if let Some(w) = bits.get_mut(t as usize) {
                    *w |= 1 << (b % 64);
                }
            }
            let last = b + 1 == nbuckets;
            if b % STATES_PER_WORD == STATES_PER_WORD - 1 || last {
                words.set_word((b / STATES_PER_WORD) as usize, state_word);
                state_word = 0;
            }
            if b % 64 == 63 || last {
                for t in Tracked::ALL {
                    let w = bits.get(t as usize).copied().unwrap_or(0);
                    if let Some(i) = layout.at(t, 0, (b / 64) as usize) {
                        words.set_word(i, w);
                    }
                }
                bits = [0; NR_TRACKED];
            }
        }
        let mut index = FreeIndex {
            words,
            nbuckets,
            first_bucket,
            counts,
            layout,
        };
        for t in Tracked::ALL {
            for lvl in 1..index.layout.levels {
                for i in 0..index.layout.level_len(lvl) {
                    let w = index.summary_of(t, lvl - 1, i);
                    if let Some(at) = index.layout.at(t, lvl, i) {
                        index.words.set_word(at, w);
                    }
                }
            }
        }
        Ok(index)
    }

    /// Writes every summary level from the level below, a child word at a time.
    fn build_summaries(&mut self) {
        for t in Tracked::ALL {
            for lvl in 1..self.layout.levels {
                let len = self.layout.level_len(lvl - 1);
                let Some(child0) = self.layout.at(t, lvl - 1, 0) else {
                    continue;
                };
                for i in 0..self.layout.level_len(lvl) {
                    let mut w = 0u64;
                    for k in 0..64.min(len.saturating_sub(i * 64)) {
                        if self.words.word(child0 + i * 64 + k).unwrap_or(0) != 0 {
                            w |= 1 << k;
                        }
                    }
                    if let Some(at) = self.layout.at(t, lvl, i) {
                        self.words.set_word(at, w);
                    }
                }
            }
        }
    }

    /// The summary word of words `64 * i..64 * i + 64` of level `lvl`: bit `k` set when word
    /// `64 * i + k` is not zero.
    fn summary_of(&self, t: Tracked, lvl: usize, i: usize) -> u64 {
        let mut w = 0;
        for k in 0..64 {
            let child = i * 64 + k;
            if self.bitmap_word(t, lvl, child) != 0 {
                w |= 1 << k;
            }
        }
        w
    }

    /// Word `i` of level `lvl` of the bitmap of `t` (0 outside it).
    fn bitmap_word(&self, t: Tracked, lvl: usize, i: usize) -> u64 {
        self.layout
            .at(t, lvl, i)
            .and_then(|at| self.words.word(at))
            .unwrap_or(0)
    }

    /// Buckets on the member.
    #[inline]
    pub fn nbuckets(&self) -> u32 {
        self.nbuckets
    }

    /// The first bucket searches may return.
    #[inline]
    pub fn first_bucket(&self) -> u32 {
        self.first_bucket
    }

    /// Bitmap levels (the search reads at most twice this many words, four times with the
    /// wrap-around).
    pub fn levels(&self) -> usize {
        self.layout.levels
    }

    /// The storage.
    pub fn words(&self) -> &W {
        &self.words
    }

    /// Gives the storage back.
    pub fn into_words(self) -> W {
        self.words
    }

    /// Buckets in `state`.
    #[inline]
    pub fn count(&self, state: BucketState) -> u64 {
        self.counts.get(state as usize).copied().unwrap_or(0)
    }

    /// Buckets in each state, indexed by the state's value.
    pub fn counts(&self) -> [u64; NR_STATES] {
        self.counts
    }

    /// The state of `bucket` (`None` past the last bucket).
    #[inline]
    pub fn state(&self, bucket: u32) -> Option<BucketState> {
        if bucket >= self.nbuckets {
            return None;
        }
        let w = self.words.word((bucket / STATES_PER_WORD) as usize)?;
        let shift = (bucket % STATES_PER_WORD) * STATE_BITS;
        BucketState::from_u8(((w >> shift) & STATE_MASK) as u8)
    }

    /// The first bucket in `state` at or after `from` (any state: the untracked ones have no
    /// bitmap, so this reads the state words, 16 buckets per word read, comparing all 16 at
    /// once): `O(n / 16)`, for the rare passes that look for an untracked state.
    pub fn next_in_state(&self, state: BucketState, from: u32) -> Option<u32> {
        const LOW3: u64 = 0x7777_7777_7777_7777;
        const HIGH: u64 = 0x8888_8888_8888_8888;
        if from >= self.nbuckets {
            return None;
        }
        let pattern = state_pattern(state);
        let mut i = (from / STATES_PER_WORD) as usize;
        let mut mask = u64::MAX << ((from % STATES_PER_WORD) * STATE_BITS);
        while i < self.layout.state_words {
            // A nibble of `x` is zero exactly where the bucket is in `state`; adding 7 to its
            // low three bits sets its high bit unless the nibble is zero (no carry leaves it).
            let x = self.words.word(i)? ^ pattern;
            let hits = !(((x & LOW3) + LOW3) | x) & HIGH & mask;
            if hits != 0 {
                let b =
                    i * STATES_PER_WORD as usize + (hits.trailing_zeros() / STATE_BITS) as usize;
                return u32::try_from(b).ok().filter(|&b| b < self.nbuckets);
            }
            mask = u64::MAX;
            i += 1;
        }
        None
    }

    /// Sets the state of `bucket`, updating the counts and bitmaps; returns the old state
    /// (`None`, and nothing changes, past the last bucket).
    #[inline]
    pub fn set_state(&mut self, bucket: u32, state: BucketState) -> Option<BucketState> {
        if bucket >= self.nbuckets {
            return None;
        }
        let at = (bucket / STATES_PER_WORD) as usize;
        let w = self.words.word(at)?;
        let shift = (bucket % STATES_PER_WORD) * STATE_BITS;
        let old = BucketState::from_u8(((w >> shift) & STATE_MASK) as u8);
        if old == Some(state) {
            return old;
        }
        self.words
            .set_word(at, (w & !(STATE_MASK << shift)) | ((state as u64) << shift));
        if let Some(old) = old {
            if let Some(c) = self.counts.get_mut(old as usize) {
                *c = c.saturating_sub(1);
            }
            if let Some(t) = Tracked::of(old) {
                self.clear_bit(t, bucket);
            }
        }
        if let Some(c) = self.counts.get_mut(state as usize) {
            *c += 1;
        }
        if let Some(t) = Tracked::of(state) {
            self.set_bit(t, bucket);
        }
        old
    }

    /// Sets bit `bucket` of the bitmap of `t`, and the summary bits above it that were clear.
    #[inline]
    fn set_bit(&mut self, t: Tracked, bucket: u32) {
        let mut pos = bucket as usize;
        for lvl in 0..self.layout.levels {
            let Some(at) = self.layout.at(t, lvl, pos / 64) else {
                return;
            };
            let Some(w) = self.words.word(at) else {
                return;
            };
            self.words.set_word(at, w | (1 << (pos % 64)));
            if w != 0 {
                return;
            }
            pos /= 64;
        }
    }

    /// Clears bit `bucket` of the bitmap of `t`, and the summary bits above it whose word
    /// became zero.
    #[inline]
    fn clear_bit(&mut self, t: Tracked, bucket: u32) {
        let mut pos = bucket as usize;
        for lvl in 0..self.layout.levels {
            let Some(at) = self.layout.at(t, lvl, pos / 64) else {
                return;
            };
            let Some(w) = self.words.word(at) else {
                return;
            };
            let w = w & !(1 << (pos % 64));
            self.words.set_word(at, w);
            if w != 0 {
                return;
            }
            pos /= 64;
        }
    }

    /// The first set bit at or after `from` in the bitmap of `t`.
    #[inline]
    fn next_set(&self, t: Tracked, from: u32) -> Option<u32> {
        let mut pos = from as usize;
        let mut lvl = 0;
        // Climb until a word has a set bit at or after the position.
        let found = loop {
            let wi = pos / 64;
            let at = self.layout.at(t, lvl, wi)?;
            let w = self.words.word(at)? & (u64::MAX << (pos % 64));
            if w != 0 {
                break wi * 64 + w.trailing_zeros() as usize;
            }
            pos = wi + 1;
            lvl += 1;
        };
        // Descend along the lowest set bits.
        let mut pos = found;
        while lvl > 0 {
            lvl -= 1;
            let w = self.words.word(self.layout.at(t, lvl, pos)?)?;
            if w == 0 {
                // A summary bit over a zero word: only a damaged storage does that.
                return None;
            }
            pos = pos
                .checked_mul(64)?
                .checked_add(w.trailing_zeros() as usize)?;
        }
        u32::try_from(pos).ok().filter(|&b| b < self.nbuckets)
    }

    /// The first bucket in state `t` at or after `from` (and the first bucket), without
    /// wrapping.
    #[inline]
    pub fn next_in(&self, t: Tracked, from: u32) -> Option<u32> {
        let start = from.max(self.first_bucket);
        if start >= self.nbuckets {
            return None;
        }
        self.next_set(t, start)
    }

    /// The first bucket in state `t` at or after `rotor`, wrapping to the first bucket; a
    /// `rotor` outside the searched range starts at the first bucket.
    #[inline]
    pub fn next_wrapping(&self, t: Tracked, rotor: u32) -> Option<u32> {
        let start = if rotor < self.first_bucket || rotor >= self.nbuckets {
            self.first_bucket
        } else {
            rotor
        };
        self.next_in(t, start).or_else(|| {
            if start > self.first_bucket {
                self.next_in(t, self.first_bucket).filter(|&b| b < start)
            } else {
                None
            }
        })
    }

    /// Takes the first bucket in state `from` at or after `rotor` (wrapping, as
    /// [`FreeIndex::next_wrapping`]) and sets it to `to`.
    #[inline]
    pub fn take(&mut self, from: Tracked, to: BucketState, rotor: u32) -> Option<u32> {
        let b = self.next_wrapping(from, rotor)?;
        self.set_state(b, to);
        Some(b)
    }

    /// The number of buckets in state `t` from `start` on without a gap, at most `max_len`.
    pub fn run_len(&self, t: Tracked, start: u32, max_len: u32) -> u32 {
        let limit = max_len.min(self.nbuckets.saturating_sub(start));
        let mut len = 0u32;
        let mut pos = start as usize;
        while len < limit {
            let bit = (pos % 64) as u32;
            let w = self.bitmap_word(t, 0, pos / 64) >> bit;
            let ones = (!w).trailing_zeros().min(64 - bit);
            len = len.saturating_add(ones);
            if ones < 64 - bit {
                break;
            }
            pos += ones as usize;
        }
        len.min(limit)
    }

    /// The first run of buckets in state `t` starting at or after `from` (and the first
    /// bucket), without wrapping: its start and length, the run as long as it goes but at most
    /// `max_len` (`None` if there is no such bucket, or `max_len` is 0).
    pub fn run(&self, t: Tracked, from: u32, max_len: u32) -> Option<(u32, u32)> {
        if max_len == 0 {
            return None;
        }
        let start = self.next_in(t, from)?;
        Some((start, self.run_len(t, start, max_len)))
    }

    /// Checks every bitmap bit, summary bit and count against the states (`O(n)`; for tests
    /// and debugging).
    pub fn check(&self) -> Result<(), IndexError> {
        let mut counts = [0u64; NR_STATES];
        for b in 0..self.nbuckets {
            let s = self.state(b).ok_or(IndexError::Inconsistent)?;
            if let Some(c) = counts.get_mut(s as usize) {
                *c += 1;
            }
        }
        if counts != self.counts {
            return Err(IndexError::Inconsistent);
        }
        for t in Tracked::ALL {
            for i in 0..self.layout.level_len(0) {
                let mut want = 0u64;
                for k in 0..64u32 {
                    let b = (i as u64) * 64 + k as u64;
                    let Ok(b) = u32::try_from(b) else {
                        break;
                    };
                    if self.state(b) == Some(t.state()) {
                        want |= 1 << k;
                    }
                }
                if self.bitmap_word(t, 0, i) != want {
                    return Err(IndexError::Inconsistent);
                }
            }
            for lvl in 1..self.layout.levels {
                for i in 0..self.layout.level_len(lvl) {
                    if self.bitmap_word(t, lvl, i) != self.summary_of(t, lvl - 1, i) {
                        return Err(IndexError::Inconsistent);
                    }
                }
            }
        }
        Ok(())
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The free-space index against a model (a `Vec` of states searched linearly), and the number
//! of words its searches read on a 16M-bucket member.

use bucketfs_core::bucket_table::{BucketState, NR_STATES};
use bucketfs_core::free_index::*;
use proptest::prelude::*;
use std::cell::Cell;

/// Host storage that counts word reads.
struct Store {
    w: Vec<u64>,
    reads: Cell<u64>,
}

impl Store {
    fn for_buckets(n: u32) -> Store {
        let needed = FreeIndex::<Store>::words_needed(n).unwrap();
        // Garbage in the storage: `new` must not trust it.
        Store {
            w: vec![0xa5a5_a5a5_a5a5_a5a5; needed],
            reads: Cell::new(0),
        }
    }
}

impl Words for Store {
    fn nr_words(&self) -> usize {
        self.w.len()
    }

    fn word(&self, i: usize) -> Option<u64> {
        self.reads.set(self.reads.get() + 1);
        self.w.get(i).copied()
    }

    fn set_word(&mut self, i: usize, v: u64) {
        if let Some(w) = self.w.get_mut(i) {
            *w = v;
        }
    }
}

/// A small deterministic generator for bucket states.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

fn state(v: u8) -> BucketState {
    BucketState::from_u8(v % NR_STATES as u8).unwrap()
}

fn used(r: &mut Rng) -> BucketState {
    [
        BucketState::Btree,
        BucketState::Journal,
        BucketState::Superblock,
        BucketState::Data,
    ][(r.next() % 4) as usize]
}

/// Initial states: 0 near-empty (99.9 % free), 1 near-full (0.1 % free or need_discard),
/// 2 uniform, 3 runs of one state.
fn initial(n: u32, fill: u8, seed: u64) -> Vec<BucketState> {
    let mut r = Rng(seed | 1);
    let mut v = Vec::with_capacity(n as usize);
    while v.len() < n as usize {
        match fill {
            0 => v.push(if r.chance(999) {
                BucketState::Free
            } else {
                used(&mut r)
            }),
            1 => v.push(if r.chance(1) {
                if r.chance(500) {
                    BucketState::Free
                } else {
                    BucketState::NeedDiscard
                }
            } else {
                used(&mut r)
            }),
            2 => v.push(state(r.next() as u8)),
            _ => {
                let s = state(r.next() as u8);
                for _ in 0..r.next() % 300 {
                    v.push(s);
                }
            }
        }
    }
    v.truncate(n as usize);
    v
}

/// The model.
struct Model {
    s: Vec<BucketState>,
    first: u32,
}

impl Model {
    fn n(&self) -> u32 {
        self.s.len() as u32
    }

    fn is(&self, b: u32, t: Tracked) -> bool {
        self.s.get(b as usize) == Some(&t.state())
    }

    fn next_in(&self, t: Tracked, from: u32) -> Option<u32> {
        (from.max(self.first)..self.n()).find(|&b| self.is(b, t))
    }

    fn next_wrapping(&self, t: Tracked, rotor: u32) -> Option<u32> {
        let start = if rotor < self.first || rotor >= self.n() {
            self.first
        } else {
            rotor
        };
        (start..self.n())
            .chain(self.first..start)
            .find(|&b| self.is(b, t))
    }

    fn run(&self, t: Tracked, from: u32, max: u32) -> Option<(u32, u32)> {
        if max == 0 {
            return None;
        }
        let start = self.next_in(t, from)?;
        let mut len = 0;
        while len < max && self.is(start + len, t) {
            len += 1;
        }
        Some((start, len))
    }

    fn set(&mut self, b: u32, s: BucketState) -> Option<BucketState> {
        let slot = self.s.get_mut(b as usize)?;
        Some(core::mem::replace(slot, s))
    }

    fn counts(&self) -> [u64; NR_STATES] {
        let mut c = [0; NR_STATES];
        for &s in &self.s {
            c[s as usize] += 1;
        }
        c
    }
}

/// A bucket number: raw (reduced modulo `n + 3` at run time, so a few are past the end), or
/// next to a word boundary (64) or a summary boundary (4096 or 262144), possibly past the end.
#[derive(Clone, Copy, Debug)]
enum Pos {
    Raw(u32),
    Near(u32, u32, i32),
}

impl Pos {
    fn at(self, n: u32) -> u32 {
        match self {
            Pos::Raw(r) => r % (n + 3),
            Pos::Near(unit, k, d) => (unit * k).saturating_add_signed(d),
        }
    }
}

fn pos() -> impl Strategy<Value = Pos> {
    prop_oneof![
        any::<u32>().prop_map(Pos::Raw),
        (0u32..80, -2i32..3).prop_map(|(k, d)| Pos::Near(64, k, d)),
        (0u32..5, -2i32..3).prop_map(|(k, d)| Pos::Near(4096, k, d)),
        (0u32..2, -2i32..3).prop_map(|(k, d)| Pos::Near(262_144, k, d)),
    ]
}

fn tracked() -> impl Strategy<Value = Tracked> {
    prop_oneof![Just(Tracked::Free), Just(Tracked::NeedDiscard)]
}

#[derive(Clone, Debug)]
enum Op {
    Set(Pos, u8),
    SetRange(Pos, u32, u8),
    NextIn(Tracked, Pos),
    NextWrapping(Tracked, Pos),
    Run(Tracked, Pos, u32),
    Take(Tracked, u8, Pos),
    State(Pos),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (pos(), any::<u8>()).prop_map(|(p, s)| Op::Set(p, s)),
        (pos(), 0u32..400, any::<u8>()).prop_map(|(p, l, s)| Op::SetRange(p, l, s)),
        (tracked(), pos()).prop_map(|(t, p)| Op::NextIn(t, p)),
        (tracked(), pos()).prop_map(|(t, p)| Op::NextWrapping(t, p)),
        (tracked(), pos(), 0u32..500).prop_map(|(t, p, m)| Op::Run(t, p, m)),
        (tracked(), any::<u8>(), pos()).prop_map(|(t, s, p)| Op::Take(t, s, p)),
        pos().prop_map(Op::State),
    ]
}

fn sizes() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 0u32..200,
        4 => 200u32..10_000,
        1 => Just(4096u32),
        1 => Just(4097u32),
        1 => 262_100u32..262_300,
    ]
}

/// Runs `ops` on an index and on the model, comparing every answer.
fn run_ops(n: u32, first: u32, fill: u8, seed: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let first = first.min(n);
    let init = initial(n, fill, seed);
    let mut model = Model {
        s: init.clone(),
        first,
    };
    let mut idx = FreeIndex::new(Store::for_buckets(n), n, first, |b| init[b as usize]).unwrap();
    prop_assert_eq!(idx.check(), Ok(()));
    prop_assert_eq!(idx.counts(), model.counts());
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Set(p, s) => {
                let b = p.at(n);
                prop_assert_eq!(idx.set_state(b, state(s)), model.set(b, state(s)));
            }
            Op::SetRange(p, len, s) => {
                let b = p.at(n);
                for i in b..b.saturating_add(len) {
                    prop_assert_eq!(idx.set_state(i, state(s)), model.set(i, state(s)));
                }
            }
            Op::NextIn(t, p) => {
                let b = p.at(n);
                prop_assert_eq!(
                    idx.next_in(t, b),
                    model.next_in(t, b),
                    "next_in {:?} {}",
                    t,
                    b
                );
            }
            Op::NextWrapping(t, p) => {
                let b = p.at(n);
                prop_assert_eq!(
                    idx.next_wrapping(t, b),
                    model.next_wrapping(t, b),
                    "next_wrapping {:?} {}",
                    t,
                    b
                );
            }
            Op::Run(t, p, max) => {
                let b = p.at(n);
                prop_assert_eq!(
                    idx.run(t, b, max),
                    model.run(t, b, max),
                    "run {:?} {}",
                    t,
                    b
                );
            }
            Op::Take(t, s, p) => {
                let b = p.at(n);
                let want = model.next_wrapping(t, b);
                if let Some(w) = want {
                    model.set(w, state(s));
                }
                prop_assert_eq!(idx.take(t, state(s), b), want);
            }
            Op::State(p) => {
                let b = p.at(n);
                prop_assert_eq!(idx.state(b), model.s.get(b as usize).copied());
            }
        }
        prop_assert_eq!(idx.counts(), model.counts());
        if n <= 1000 || i % 16 == 15 {
            prop_assert_eq!(idx.check(), Ok(()));
        }
    }
    prop_assert_eq!(idx.check(), Ok(()));
    for b in 0..n {
        prop_assert_eq!(idx.state(b), Some(model.s[b as usize]));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_index_answers_as_a_linear_scan_does(
        n in sizes(),
        first in prop_oneof![Just(0u32), 0u32..300],
        fill in 0u8..4,
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 0..120),
    ) {
        run_ops(n, first, fill, seed, &ops)?;
    }

    #[test]
    fn near_full_members_find_their_few_free_buckets(
        n in 1000u32..10_000,
        first in 0u32..100,
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        run_ops(n, first, 1, seed, &ops)?;
    }
}

#[test]
fn runs_cross_word_and_summary_boundaries() {
    let n = 300_000;
    let mut idx = FreeIndex::new(Store::for_buckets(n), n, 10, |_| BucketState::Btree).unwrap();
    // need_discard on 4090..4200 (crosses words and the first summary word's end) and on
    // 262_100..262_200 (crosses the second-level summary boundary at 262_144).
    for b in (4090..4200).chain(262_100..262_200) {
        idx.set_state(b, BucketState::NeedDiscard);
    }
    let nd = Tracked::NeedDiscard;
    assert_eq!(idx.run(nd, 0, 1000), Some((4090, 110)));
    assert_eq!(idx.run(nd, 0, 50), Some((4090, 50)));
    assert_eq!(idx.run(nd, 4150, 1000), Some((4150, 50)));
    assert_eq!(idx.run(nd, 4200, 1000), Some((262_100, 100)));
    assert_eq!(idx.run(nd, 262_200, 1000), None);
    assert_eq!(idx.run(nd, 0, 0), None);
    assert_eq!(idx.next_wrapping(nd, 262_200), Some(4090));
    assert_eq!(idx.next_in(Tracked::Free, 0), None);
    assert_eq!(idx.count(BucketState::NeedDiscard), 210);
    // The last bucket, then wrapped back to the first searchable one.
    idx.set_state(n - 1, BucketState::Free);
    idx.set_state(10, BucketState::Free);
    idx.set_state(9, BucketState::Free);
    assert_eq!(idx.next_wrapping(Tracked::Free, n - 1), Some(n - 1));
    assert_eq!(
        idx.take(Tracked::Free, BucketState::Btree, n - 1),
        Some(n - 1)
    );
    assert_eq!(idx.next_wrapping(Tracked::Free, n - 1), Some(10));
    // Bucket 9 is below the first bucket: never returned.
    assert_eq!(idx.take(Tracked::Free, BucketState::Btree, 0), Some(10));
    assert_eq!(idx.next_wrapping(Tracked::Free, 5), None);
    assert_eq!(idx.count(BucketState::Free), 1);
    assert_eq!(idx.check(), Ok(()));
}

#[test]
fn bad_arguments_are_refused_or_ignored() {
    let n = 1000;
    let need = FreeIndex::<Store>::words_needed(n).unwrap();
    let short = Store {
        w: vec![0; need - 1],
        reads: Cell::new(0),
    };
    assert_eq!(
        FreeIndex::new(short, n, 0, |_| BucketState::Free).err(),
        Some(IndexError::Storage)
    );
    assert_eq!(
        FreeIndex::new(Store::for_buckets(n), n, n + 1, |_| BucketState::Free).err(),
        Some(IndexError::FirstBucket)
    );
    let mut idx = FreeIndex::new(Store::for_buckets(n), n, n, |_| BucketState::Free).unwrap();
    // first_bucket == nbuckets: nothing to search.
    assert_eq!(idx.next_wrapping(Tracked::Free, 0), None);
    assert_eq!(idx.run(Tracked::Free, 0, 10), None);
    assert_eq!(idx.set_state(n, BucketState::Data), None);
    assert_eq!(idx.set_state(u32::MAX, BucketState::Data), None);
    assert_eq!(idx.state(n), None);
    assert_eq!(idx.count(BucketState::Free), n as u64);
    assert_eq!(idx.check(), Ok(()));
    // Zero buckets.
    let mut w = [0u64; 8];
    let slice: &mut [u64] = &mut w;
    let idx = FreeIndex::new(slice, 0, 0, |_| BucketState::Free).unwrap();
    assert_eq!(idx.next_wrapping(Tracked::Free, 0), None);
    assert_eq!(idx.check(), Ok(()));
}

#[test]
fn storage_sizes() {
    // 16M buckets: 1M state words, and per tracked state 262144 + 4096 + 64 + 1 bitmap words.
    let n = 1 << 24;
    assert_eq!(
        FreeIndex::<Store>::words_needed(n),
        Some((1 << 20) + 2 * (262_144 + 4096 + 64 + 1))
    );
    // The largest member fits MAX_LEVELS levels.
    let mut w = [0u64; 0];
    let slice: &mut [u64] = &mut w;
    assert!(FreeIndex::<&mut [u64]>::words_needed(u32::MAX).is_some());
    assert_eq!(
        FreeIndex::new(slice, u32::MAX, 0, |_| BucketState::Free).err(),
        Some(IndexError::Storage)
    );
}

/// Builds a near-full index of `n` buckets (one bucket in `1000 / free_per_mille` free).
fn near_full(n: u32, first: u32, seed: u64) -> FreeIndex<Store> {
    let mut r = Rng(seed);
    FreeIndex::new(Store::for_buckets(n), n, first, |_| {
        if r.chance(1) {
            BucketState::Free
        } else {
            BucketState::Data
        }
    })
    .unwrap()
}

/// Word reads of `f`.
fn reads<T>(idx: &FreeIndex<Store>, f: impl FnOnce(&FreeIndex<Store>) -> T) -> (T, u64) {
    let before = idx.words().reads.get();
    let v = f(idx);
    (v, idx.words().reads.get() - before)
}

#[test]
fn finds_read_log64_words_at_16m_buckets_99_9_percent_full() {
    for n in [1u32 << 14, 1 << 24] {
        let first = 777;
        let mut idx = near_full(n, first, 0x1234_5678);
        let levels = idx.levels() as u64;
        assert_eq!(levels, if n == 1 << 14 { 3 } else { 4 });
        let free = idx.count(BucketState::Free);
        assert!(free > 0 && free < n as u64 / 500, "{free} free of {n}");
        let mut r = Rng(99);
        let mut worst = 0;
        for _ in 0..2000 {
            let rotor = first + (r.next() % (n - first) as u64) as u32;
            let (b, cost) = reads(&idx, |i| i.next_wrapping(Tracked::Free, rotor));
            let b = b.unwrap();
            // The answer is right: free, and nothing free between the rotor and it.
            assert_eq!(idx.state(b), Some(BucketState::Free));
            if b >= rotor {
                assert_eq!(idx.next_in(Tracked::Free, rotor), Some(b));
                // No wrap: one climb and one descent.
                assert!(
                    cost <= 2 * levels,
                    "{cost} reads for one find at {n} buckets"
                );
            }
            worst = worst.max(cost);
        }
        // With the wrap-around, two searches.
        assert!(worst <= 4 * levels, "{worst} reads at worst at {n} buckets");
        // Allocation until the member is full: every take is a find plus an update.
        let mut rotor = first;
        let mut taken = 0;
        loop {
            let (b, cost) = reads(&idx, |i| i.next_wrapping(Tracked::Free, rotor));
            assert!(cost <= 4 * levels, "{cost} reads");
            let Some(b) = b else { break };
            let before = idx.words().reads.get();
            idx.set_state(b, BucketState::Btree);
            assert!(idx.words().reads.get() - before <= 1 + levels);
            rotor = b + 1;
            taken += 1;
        }
        assert_eq!(taken, free);
        assert_eq!(idx.count(BucketState::Free), 0);
        // The worst case for a scan: one free bucket, just behind the rotor.
        idx.set_state(first + 5, BucketState::Free);
        let (b, cost) = reads(&idx, |i| i.next_wrapping(Tracked::Free, first + 6));
        assert_eq!(b, Some(first + 5));
        assert!(cost <= 4 * levels, "{cost} reads for the wrapped find");
        // And the discard worker's run search over an otherwise empty bitmap.
        idx.set_state(n - 3, BucketState::NeedDiscard);
        idx.set_state(n - 2, BucketState::NeedDiscard);
        let (run, cost) = reads(&idx, |i| i.run(Tracked::NeedDiscard, first, 64));
        assert_eq!(run, Some((n - 3, 2)));
        assert!(cost <= 2 * levels + 1, "{cost} reads for the run");
    }
}

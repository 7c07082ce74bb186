// SPDX-License-Identifier: GPL-2.0

//! The bucket table's dirty-block tracking against a model (a `Vec<bool>` of blocks), and the
//! writer's loop over it: after any sequence of state changes and writes, the blocks a writer
//! takes are exactly the blocks whose buckets changed since they were last taken.

use bucketfs_core::bucket_table::{table_blocks, DirtyBlocks};
use bucketfs_core::free_index::Words;
use bucketfs_core::superblock::TABLE_ENTRIES_PER_BLOCK;
use proptest::prelude::*;

struct Store(Vec<u64>);

impl Words for Store {
    fn nr_words(&self) -> usize {
        self.0.len()
    }

    fn word(&self, i: usize) -> Option<u64> {
        self.0.get(i).copied()
    }

    fn set_word(&mut self, i: usize, v: u64) {
        if let Some(w) = self.0.get_mut(i) {
            *w = v;
        }
    }
}

fn dirty_blocks(nbuckets: u64) -> DirtyBlocks<Store> {
    // Garbage in the storage: `new` must clear it.
    let words = DirtyBlocks::<Store>::words_needed(nbuckets);
    DirtyBlocks::new(Store(vec![u64::MAX; words]), nbuckets).unwrap()
}

/// The runs a table writer takes (each at most `max_len`), clearing each as it takes it.
fn drain(d: &mut DirtyBlocks<Store>, max_len: u32) -> Vec<(u32, u32)> {
    let mut runs = Vec::new();
    let mut from = 0;
    while let Some((first, n)) = d.next_run(from, max_len) {
        assert!(n >= 1 && n <= max_len);
        d.clear(first, n);
        runs.push((first, n));
        from = first + n;
    }
    runs
}

#[test]
fn starts_clean_and_marks_the_block_of_each_bucket() {
    let n = 10 * TABLE_ENTRIES_PER_BLOCK + 5;
    let mut d = dirty_blocks(n);
    assert_eq!(d.blocks() as u64, table_blocks(n));
    assert_eq!(d.dirty(), 0);
    assert_eq!(d.next_run(0, 256), None);
    d.mark_bucket(0);
    d.mark_bucket(TABLE_ENTRIES_PER_BLOCK as u32 - 1); // same block
    d.mark_bucket(3 * TABLE_ENTRIES_PER_BLOCK as u32); // block 3
    d.mark_bucket(4 * TABLE_ENTRIES_PER_BLOCK as u32 + 7); // block 4: adjacent to 3
    d.mark_bucket(n as u32 - 1); // the last, short block
    d.mark_bucket(n as u32 + 5000); // past the table: ignored
    assert_eq!(d.dirty(), 4);
    assert_eq!(drain(&mut d, 256), vec![(0, 1), (3, 2), (10, 1)]);
    assert_eq!(d.dirty(), 0);
}

#[test]
fn runs_are_cut_at_max_len_and_cross_word_boundaries() {
    let n = 1000 * TABLE_ENTRIES_PER_BLOCK;
    let mut d = dirty_blocks(n);
    d.mark(60, 140); // 60..200, across words 0..3
    assert_eq!(drain(&mut d, 64), vec![(60, 64), (124, 64), (188, 12)]);
    d.mark(0, 1000);
    assert_eq!(d.dirty(), 1000);
    assert_eq!(drain(&mut d, 256).len(), 4);
    d.mark(990, 100); // past the end: cut to the table
    assert_eq!(d.dirty(), 10);
}

proptest! {
    /// Marks (by bucket or by block range, as a failed write does), clears and drains, against
    /// a model: every block changed since it was last taken is taken, and only those.
    #[test]
    fn matches_a_model(
        nbuckets in 1u64..200_000,
        ops in proptest::collection::vec((0u8..4, any::<u32>(), 1u32..300), 1..200),
        max_len in 1u32..300,
    ) {
        let mut d = dirty_blocks(nbuckets);
        let blocks = table_blocks(nbuckets) as usize;
        let mut model = vec![false; blocks];
        for (op, a, len) in ops {
            match op {
                0 | 1 => {
                    let b = a % (nbuckets as u32 + 2000);
                    d.mark_bucket(b);
                    if let Some(m) = model.get_mut((b as u64 / TABLE_ENTRIES_PER_BLOCK) as usize) {
                        *m = true;
                    }
                }
                2 => {
                    let first = a % (blocks as u32 + 10);
                    d.mark(first, len);
                    for m in model.iter_mut().skip(first as usize).take(len as usize) {
                        *m = true;
                    }
                }
                _ => {
                    let runs = drain(&mut d, max_len);
                    let mut taken = vec![false; blocks];
                    let mut last_end = 0;
                    for (first, n) in runs {
                        prop_assert!(first >= last_end);
                        for b in first..first + n {
                            taken[b as usize] = true;
                        }
                        // A run stops at a clean block or at `max_len`.
                        let end = (first + n) as usize;
                        prop_assert!(n == max_len || end == blocks || !model[end]);
                        last_end = first + n;
                    }
                    prop_assert_eq!(&taken, &model);
                    model.iter_mut().for_each(|m| *m = false);
                }
            }
            prop_assert_eq!(d.dirty() as usize, model.iter().filter(|&&m| m).count());
            for (b, &m) in model.iter().enumerate() {
                prop_assert_eq!(d.is_dirty(b as u32), m);
            }
        }
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The mount's bulk paths against the per-entry ones they replace, on random inputs:
//! `check_block` (a table block a word at a time) against `decode_block` (entry by entry), and
//! `IndexBuilder` (states pushed in runs) against `FreeIndex::new` (one state at a time).

use bucketfs_core::bucket_table::*;
use bucketfs_core::crc32c::block_crc;
use bucketfs_core::free_index::*;
use bucketfs_core::layout::Field;
use bucketfs_core::superblock::{BLOCK_SIZE, TABLE_ENTRIES_PER_BLOCK};
use proptest::prelude::*;

const UUID: [u8; 16] = *b"bulk-decode-test";

/// Host storage, filled with garbage: neither builder may trust it.
fn storage(n: u32) -> Vec<u64> {
    vec![0x5a5a_a5a5_5a5a_a5a5; FreeIndex::<&mut [u64]>::words_needed(n).unwrap()]
}

/// A table block of `nbuckets` buckets' table, block `block`, whose entries have the raw
/// values `raw` (as many as the block holds; cycled), then `damage` applied (byte offset and
/// xor mask), the checksum fixed afterwards when `fix_crc`.
fn block(nbuckets: u64, block: u32, raw: &[u32], damage: &[(usize, u8)], fix_crc: bool) -> Vec<u8> {
    let id = TableBlockId {
        uuid: UUID,
        member: 1,
        block,
    };
    let n = entries_in_block(nbuckets, block as u64);
    let entries: Vec<BucketEntry> = (0..n)
        .map(|i| BucketEntry::from_raw(raw[i % raw.len()] & 0xffff_ff00).unwrap())
        .collect();
    let mut b = vec![0u8; BLOCK_SIZE];
    encode_block(&id, 9, &entries, &mut b);
    // The raw values, unknown states included, written over the encoded entries.
    for i in 0..n {
        raw[i % raw.len()].write(&mut b[TableHeaderDisk::SIZE + 4 * i..]);
    }
    for &(o, x) in damage {
        b[o % BLOCK_SIZE] ^= x;
    }
    if fix_crc || damage.is_empty() {
        let crc = block_crc(&b, 8);
        crc.write(&mut b[8..]);
    }
    b
}

/// Raw entries: mostly one state (as most table blocks are), some random, some unknown.
fn raw_entries() -> impl Strategy<Value = Vec<u32>> {
    prop_oneof![
        // One state, random generations.
        (0u32..6, prop::collection::vec(any::<u32>(), 1..40))
            .prop_map(|(s, g)| g.into_iter().map(|g| (g << 8) | s).collect()),
        // One state with a few others (known or not) at random places.
        (
            0u32..6,
            prop::collection::vec(any::<u32>(), 1..40),
            prop::collection::vec((0usize..40, 0u32..8), 0..3)
        )
            .prop_map(|(s, g, odd)| {
                let mut v: Vec<u32> = g.into_iter().map(|g| (g << 8) | s).collect();
                for (i, st) in odd {
                    let k = i % v.len();
                    v[k] = (v[k] & !0xff) | st;
                }
                v
            }),
        // Anything.
        prop::collection::vec(any::<u32>(), 1..40),
    ]
}

fn check_against_decode(id: &TableBlockId, nbuckets: u64, b: &[u8]) -> Result<(), TestCaseError> {
    let mut want = Vec::new();
    let slow = decode_block(id, nbuckets, b, |i, e| want.push((i, e)));
    let fast = check_block(id, nbuckets, b);
    match (slow, fast) {
        (Err(a), Err(b)) => prop_assert_eq!(a, b),
        (Ok(()), Ok(c)) => {
            prop_assert_eq!(c.len(), want.len());
            let got: Vec<_> = (0..c.len()).map(|i| (i, c.entry(i).unwrap())).collect();
            prop_assert_eq!(&got, &want);
            let states: Vec<_> = c.states().collect();
            let want_states: Vec<_> = want.iter().map(|(_, e)| e.state).collect();
            prop_assert_eq!(&states, &want_states);
            let same = want_states.windows(2).all(|w| w[0] == w[1]);
            prop_assert_eq!(
                c.uniform(),
                if same {
                    want_states.first().copied()
                } else {
                    None
                }
            );
        }
        (a, b) => prop_assert!(false, "decode_block {:?}, check_block {:?}", a, b.err()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn check_block_refuses_what_decode_block_refuses(
        raw in raw_entries(),
        nbuckets in prop_oneof![Just(5000u64), 1u64..3000, Just(TABLE_ENTRIES_PER_BLOCK)],
        which in 0u32..5,
        damage in prop::collection::vec((any::<usize>(), 1u8..=255), 0..3),
        fix_crc in any::<bool>(),
        ask_nbuckets in prop_oneof![4 => Just(None), 1 => (1u64..6000).prop_map(Some)],
        ask_block in prop_oneof![4 => Just(None), 1 => (0u32..5).prop_map(Some)],
    ) {
        let blocks = table_blocks(nbuckets) as u32;
        let blk = which % blocks;
        let b = block(nbuckets, blk, &raw, &damage, fix_crc);
        let id = TableBlockId { uuid: UUID, member: 1, block: ask_block.unwrap_or(blk) };
        check_against_decode(&id, ask_nbuckets.unwrap_or(nbuckets), &b)?;
        // A short buffer is refused by both.
        check_against_decode(&id, nbuckets, &b[..BLOCK_SIZE - 1])?;
    }

    #[test]
    fn the_builder_builds_what_new_builds(
        n in prop_oneof![4 => 0u32..300, 4 => 300u32..20_000, 1 => 262_100u32..262_200],
        first in 0u32..400,
        runs in prop::collection::vec((0u8..6, 0u32..300, any::<bool>()), 0..200),
    ) {
        let first = first.min(n);
        // The states: the runs in order, cycled until every bucket has one.
        let mut states = Vec::with_capacity(n as usize);
        let mut pushes = Vec::new();
        'fill: loop {
            if runs.is_empty() {
                states.resize(n as usize, BucketState::Data);
                pushes.push((BucketState::Data, n, true));
                break;
            }
            for &(s, len, bulk) in &runs {
                if states.len() >= n as usize {
                    break 'fill;
                }
                let s = BucketState::from_u8(s).unwrap();
                let len = len.min(n - states.len() as u32);
                states.extend(std::iter::repeat(s).take(len as usize));
                pushes.push((s, len, bulk));
            }
            if runs.iter().all(|r| r.1 == 0) {
                states.resize(n as usize, BucketState::Free);
                pushes.push((BucketState::Free, n, true));
                break;
            }
        }
        let mut want_words = storage(n);
        let want = FreeIndex::new(&mut want_words[..], n, first, |b| states[b as usize]).unwrap();
        let want_counts = want.counts();
        drop(want);
        let mut got_words = storage(n);
        let mut builder = IndexBuilder::new(&mut got_words[..], n, first).unwrap();
        for &(s, len, bulk) in &pushes {
            if bulk {
                builder.push_run(s, len);
            } else {
                for _ in 0..len {
                    builder.push(s);
                }
            }
        }
        prop_assert_eq!(builder.remaining(), 0);
        // Pushing past the last bucket is ignored.
        builder.push(BucketState::Free);
        builder.push_run(BucketState::Free, 100);
        let got = builder.finish().unwrap();
        prop_assert!(got.check().is_ok());
        prop_assert_eq!(got.counts(), want_counts);
        prop_assert_eq!(got.first_bucket(), first);
        drop(got);
        prop_assert_eq!(got_words, want_words);
    }
}

#[test]
fn an_unfinished_builder_is_refused() {
    let mut w = storage(100);
    let mut b = IndexBuilder::new(&mut w[..], 100, 10).unwrap();
    b.push_run(BucketState::Free, 99);
    assert_eq!(b.remaining(), 1);
    assert_eq!(b.finish().err(), Some(IndexError::Incomplete));
    let mut w = storage(100);
    assert_eq!(
        IndexBuilder::new(&mut w[..], 100, 101).err(),
        Some(IndexError::FirstBucket)
    );
    let mut short = vec![0u64; 3];
    assert_eq!(
        IndexBuilder::new(&mut short[..], 100, 0).err(),
        Some(IndexError::Storage)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn next_in_state_finds_what_a_linear_scan_finds(
        n in prop_oneof![4 => 0u32..300, 2 => 300u32..5000],
        states in prop::collection::vec((0u8..6, 0u32..100), 0..60),
        froms in prop::collection::vec(any::<u32>(), 1..20),
    ) {
        let mut v = Vec::new();
        for &(s, len) in states.iter().cycle().take(if states.is_empty() { 0 } else { 1000 }) {
            if v.len() >= n as usize {
                break;
            }
            v.extend(std::iter::repeat(BucketState::from_u8(s).unwrap()).take(len as usize));
        }
        v.resize(n as usize, BucketState::Data);
        let mut w = storage(n);
        let idx = FreeIndex::new(&mut w[..], n, 0, |b| v[b as usize]).unwrap();
        for &f in &froms {
            for from in [f % (n + 20), f] {
                for s in BucketState::ALL {
                    let want = (from as usize..v.len()).find(|&b| v[b] == s).map(|b| b as u32);
                    prop_assert_eq!(idx.next_in_state(s, from), want, "state {:?} from {}", s, from);
                }
            }
        }
    }
}

mod journal {
    use super::UUID;
    use bucketfs_core::bkey::{encode, records, Pos, MAX_RECORD};
    use bucketfs_core::bucket_table::BucketState;
    use bucketfs_core::journal_format::*;
    use proptest::prelude::*;

    /// An entry of map keys (a deletion where `del`), updates with raw states and generations,
    /// then `damage` applied.
    fn entry(
        keys: &[(u64, u64, bool)],
        updates: &[(u32, u32, u8, u32)],
        damage: &[(usize, u8)],
    ) -> Vec<u8> {
        let mut recs = Vec::new();
        let mut r = [0u8; MAX_RECORD];
        for &(key, val, del) in keys {
            let n = encode(Pos::map(key), del, &val.to_le_bytes(), &mut r).unwrap();
            recs.extend_from_slice(&r[..n]);
        }
        let ups: Vec<BucketUpdate> = updates
            .iter()
            .map(|&(member, bucket, _, gen)| BucketUpdate {
                member,
                bucket,
                state: BucketState::Data,
                gen: gen & 0xff_ffff,
            })
            .collect();
        let mut b = vec![0u8; 16 * 4096];
        let len = encode_entry(&UUID, 7, keys.len(), &recs, &ups, &mut b).unwrap();
        // Raw states and generations written over the encoded ones (unknown ones included).
        let at = 64 + recs.len();
        for (i, &(_, _, st, gen)) in updates.iter().enumerate() {
            b[at + i * 16 + 8] = st;
            b[at + i * 16 + 12..at + i * 16 + 16].copy_from_slice(&gen.to_le_bytes());
        }
        let crc = bucketfs_core::crc32c::block_crc(&b[..len], 8);
        b[8..12].copy_from_slice(&crc.to_le_bytes());
        for &(o, x) in damage {
            b[o % len] ^= x;
        }
        b.truncate(len + 4096);
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The replay's bulk path (`decode_entry_records`, then `bkey::records` over the
        /// slice) refuses what `decode_entry` refuses and hands over the same records and
        /// updates.
        #[test]
        fn decode_entry_records_decodes_what_decode_entry_decodes(
            keys in prop::collection::vec(any::<(u64, u64, bool)>(), 0..600),
            updates in prop::collection::vec(
                (any::<u32>(), any::<u32>(), prop_oneof![4 => 0u8..6, 1 => any::<u8>()],
                 prop_oneof![4 => 0u32..0x100_0000, 1 => any::<u32>()]),
                0..40),
            damage in prop::collection::vec((any::<usize>(), 1u8..=255), 0..2),
            fix_crc in any::<bool>(),
        ) {
            let mut b = entry(&keys, &updates, &damage);
            if fix_crc {
                // Damage behind a good checksum: the record checks must catch it.
                let len = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize * 4096;
                if (1..=b.len()).contains(&len) && len >= 64 {
                    let crc = bucketfs_core::crc32c::block_crc(&b[..len], 8);
                    b[8..12].copy_from_slice(&crc.to_le_bytes());
                }
            }
            let (mut want_keys, mut want_ups) = (Vec::new(), Vec::new());
            let want = decode_entry(
                &UUID,
                &b,
                |k| want_keys.push((k.pos, k.deleted, k.val.to_vec())),
                |u| want_ups.push(u),
            );
            let mut got_ups = Vec::new();
            let got = decode_entry_records(&UUID, &b, |u| got_ups.push(u));
            match (want, got) {
                (Ok(h), Ok((h2, recs))) => {
                    prop_assert_eq!(h, h2);
                    prop_assert_eq!(recs.len(), h.key_bytes as usize);
                    let got_keys: Vec<_> = records(recs, h.nr_keys as usize)
                        .map(|k| k.map(|k| (k.pos, k.deleted, k.val.to_vec())))
                        .collect::<Result<_, _>>()
                        .unwrap();
                    prop_assert_eq!(got_keys, want_keys);
                    prop_assert_eq!(got_ups, want_ups);
                }
                (Err(e), Err(e2)) => prop_assert_eq!(e, e2),
                (a, b) => prop_assert!(false, "decode_entry {:?}, decode_entry_records {:?}", a, b.map(|x| x.0)),
            }
        }
    }
}

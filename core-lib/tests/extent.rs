// SPDX-License-Identifier: GPL-2.0

//! File data extents (`extent.rs`): the value's encoding and every refusal of the decoder, the
//! placement check, the operations over the namespace tests' `BTreeMap` store, and random
//! sequences of insert / mark_written / punch with small budgets against a model that maps
//! each file block to its replicas' device blocks and a written flag.

mod common;

use bucketfs_core::bkey::{self, check_value as key_check, decode_at, encode, Kind, Pos};
use bucketfs_core::extent::*;
use bucketfs_core::namespace::{NsError, Store, MAX_VAL};
use bucketfs_core::namespace_format::MAX_INO;
use common::Mem;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn ext(start: u64, len: u32, unwritten: bool, ptrs: &[(u32, u64)]) -> Extent {
    let mut e = Extent {
        start,
        len,
        unwritten,
        nr: ptrs.len() as u8,
        ptrs: [DataPtr::default(); MAX_DATA_REPLICAS],
    };
    for (i, &(member, block)) in ptrs.iter().enumerate() {
        e.ptrs[i] = DataPtr { member, block };
    }
    e
}

fn value(e: &Extent) -> Vec<u8> {
    let mut b = vec![0u8; MAX_EXTENT_VAL];
    let n = e.encode(&mut b);
    assert_eq!(n, e.value_len(), "{e:?} does not encode");
    b.truncate(n);
    b
}

#[test]
fn values_round_trip() {
    let cases = [
        ext(0, 1, false, &[(0, 300)]),
        ext(7, 100, true, &[(1, 4096), (0, 8192)]),
        ext(MAX_FILE_BLOCKS - 5, 5, false, &[(3, 1), (2, 2), (15, 3)]),
        ext(12, u32::MAX, true, &[(0, 0), (1, 0), (2, 0), (3, 0)]),
    ];
    for e in cases {
        let v = value(&e);
        assert_eq!(v.len(), 8 + 16 * e.nr as usize);
        assert!(check_value(&v));
        let pos = e.pos(42);
        assert_eq!(pos, Pos::new(Kind::Extent, 42, e.end()));
        assert_eq!(Extent::decode(pos, &v), Some(e));
        assert!(key_check(pos, &v));
        // As a record, through the key encoder and decoder.
        let mut r = vec![0u8; bkey::MAX_RECORD];
        let n = encode(pos, false, &v, &mut r).unwrap();
        let (k, end) = decode_at(&r[..n], 0).unwrap();
        assert_eq!((k.pos, k.val, end), (pos, &v[..], n));
    }
    // The documented layout, byte by byte.
    let v = value(&ext(3, 0x0102_0304, true, &[(5, 0x1122_3344_5566_7788)]));
    assert_eq!(
        v,
        [
            4, 3, 2, 1, 1, 1, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33,
            0x22, 0x11
        ]
    );
    assert_eq!(Kind::from_u8(5), Some(Kind::Extent));
}

#[test]
fn malformed_values_are_refused() {
    let good = ext(10, 8, false, &[(0, 1000), (1, 2000)]);
    let v = value(&good);
    let pos = good.pos(5);
    assert!(Extent::decode(pos, &v).is_some());
    let mut bad: Vec<(&str, Pos, Vec<u8>)> = Vec::new();
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut w = v.clone();
        f(&mut w);
        w
    };
    for i in [6, 7] {
        bad.push(("header reserved byte", pos, edit(&|w| w[i] = 1)));
    }
    for p in 0..2 {
        for i in 4..8 {
            bad.push((
                "pointer reserved byte",
                pos,
                edit(&|w| w[8 + 16 * p + i] = 0x80),
            ));
        }
    }
    bad.push(("len 0", pos, edit(&|w| w[..4].fill(0))));
    for f in 1..8 {
        bad.push(("unknown flag", pos, edit(&|w| w[4] = 1 << f)));
    }
    bad.push(("nr_ptrs 0", pos, edit(&|w| w[5] = 0)));
    bad.push((
        "nr_ptrs 0, no pointers",
        pos,
        edit(&|w| {
            w[5] = 0;
            w.truncate(8);
        }),
    ));
    bad.push(("nr_ptrs 5", pos, edit(&|w| w[5] = 5)));
    bad.push(("nr_ptrs 5 with 5 pointers", pos, {
        let mut w = value(&ext(2, 8, false, &[(0, 1), (1, 1), (2, 1), (3, 1)]));
        w[5] = 5;
        let mut p = w[8..24].to_vec();
        p[0] = 4;
        w.extend_from_slice(&p);
        w
    }));
    bad.push(("nr_ptrs 3, 2 pointers", pos, edit(&|w| w[5] = 3)));
    bad.push(("nr_ptrs 1, 2 pointers", pos, edit(&|w| w[5] = 1)));
    bad.push((
        "a byte short",
        pos,
        edit(&|w| {
            w.pop();
        }),
    ));
    bad.push(("a byte extra", pos, edit(&|w| w.push(0))));
    bad.push(("header only", pos, v[..8].to_vec()));
    bad.push(("empty", pos, Vec::new()));
    bad.push(("duplicate member", pos, edit(&|w| w[24] = 0)));
    bad.push(("member 16", pos, edit(&|w| w[24] = 16)));
    bad.push(("blocks past u64", pos, edit(&|w| w[32..40].fill(0xff))));
    bad.push(("end < len", Pos { off: 7, ..pos }, v.clone()));
    bad.push(("end 0", Pos { off: 0, ..pos }, v.clone()));
    bad.push((
        "end > MAX_FILE_BLOCKS",
        Pos {
            off: MAX_FILE_BLOCKS + 1,
            ..pos
        },
        v.clone(),
    ));
    bad.push((
        "end u64::MAX",
        Pos {
            off: u64::MAX,
            ..pos
        },
        v.clone(),
    ));
    bad.push(("inode 0", Pos { ino: 0, ..pos }, v.clone()));
    bad.push((
        "inode past MAX_INO",
        Pos {
            ino: MAX_INO + 1,
            ..pos
        },
        v.clone(),
    ));
    for (what, p, w) in &bad {
        assert_eq!(Extent::decode(*p, w), None, "{what}");
        assert!(!key_check(*p, w), "{what}");
        // A record holding it is refused with `Value`.
        if w.len() <= MAX_VAL {
            let mut r = vec![0u8; bkey::MAX_RECORD];
            let mut h = vec![0u8; 24];
            h[0] = Kind::Extent as u8;
            h[2..4].copy_from_slice(&(w.len() as u16).to_le_bytes());
            h[8..16].copy_from_slice(&p.ino.to_le_bytes());
            h[16..24].copy_from_slice(&p.off.to_le_bytes());
            r[..24].copy_from_slice(&h);
            r[24..24 + w.len()].copy_from_slice(w);
            let n = bkey::record_size(w.len());
            assert_eq!(
                decode_at(&r[..n], 0).map(|_| ()),
                Err(bkey::KeyError::Value),
                "{what}"
            );
            assert_eq!(encode(*p, false, w, &mut r), None, "{what}");
        }
    }
    // The value-only check refuses every bad value (not the positions).
    for (what, p, w) in &bad {
        if *p == pos {
            assert!(!check_value(w), "{what}");
        }
    }
    // The encoder writes nothing the decoder would refuse.
    let mut out = [0xaau8; MAX_EXTENT_VAL];
    for e in [
        ext(0, 0, false, &[(0, 1)]),
        ext(0, 1, false, &[]),
        ext(0, 1, false, &[(0, 1), (0, 2)]),
        ext(0, 1, false, &[(16, 1)]),
        ext(0, 1, false, &[(0, u64::MAX)]),
        ext(MAX_FILE_BLOCKS, 1, false, &[(0, 1)]),
        ext(u64::MAX, 2, false, &[(0, 1)]),
        Extent {
            nr: 5,
            ..ext(0, 1, false, &[(0, 1), (1, 1), (2, 1), (3, 1)])
        },
    ] {
        assert!(!e.valid(), "{e:?}");
        assert_eq!(e.encode(&mut out), 0, "{e:?}");
    }
    assert!(out.iter().all(|&b| b == 0xaa));
    assert_eq!(good.encode(&mut out[..39]), 0);
}

#[test]
fn slices_advance_every_replica() {
    let e = ext(100, 50, true, &[(0, 1000), (2, 5000)]);
    let s = e.slice(110, 120);
    assert_eq!(s, ext(100 + 10, 10, true, &[(0, 1010), (2, 5010)]));
    assert_eq!(e.slice(0, u64::MAX), e);
    assert_eq!(
        e.slice(149, 200),
        ext(149, 1, true, &[(0, 1049), (2, 5049)])
    );
    assert!(!e.slice(160, 170).valid());
}

#[test]
fn placement_is_checked_against_the_geometry() {
    // Member 0: 16-block buckets, data from block 64 to 1024; member 1 unknown.
    let m = |i: u32| {
        (i == 0).then_some(MemberBlocks {
            first_block: 64,
            end_block: 1024,
            bucket_blocks: 16,
        })
    };
    let ok = |b: u64, len: u32| check_placement(&ext(0, len, false, &[(0, b)]), &m);
    assert_eq!(ok(64, 16), Ok(()));
    assert_eq!(ok(1008, 16), Ok(()));
    assert_eq!(ok(70, 3), Ok(()));
    assert_eq!(ok(63, 1), Err("below the member's first data bucket"));
    assert_eq!(ok(0, 1), Err("below the member's first data bucket"));
    assert_eq!(ok(1016, 9), Err("past the member's end"));
    assert_eq!(ok(1024, 1), Err("past the member's end"));
    assert_eq!(ok(70, 16), Err("across a bucket boundary"));
    assert_eq!(ok(64, 17), Err("across a bucket boundary"));
    assert_eq!(
        check_placement(&ext(0, 1, false, &[(0, 64), (1, 64)]), &m),
        Err("on no member")
    );
    // From a member table entry: 64 KiB buckets (16 blocks), first bucket 18 of 1024.
    let member = bucketfs_core::superblock::Member::layout(64 << 20, 65536, [1; 16]).unwrap();
    assert_eq!(
        MemberBlocks::of(&member),
        Some(MemberBlocks {
            first_block: 18 * 16,
            end_block: 1024 * 16,
            bucket_blocks: 16
        })
    );
    assert_eq!(
        MemberBlocks::of(&bucketfs_core::superblock::Member::removed()),
        None
    );
}

/// A store that counts the key updates made through it.
struct Counting<'a> {
    mem: &'a mut Mem,
    updates: u32,
}

impl Store for Counting<'_> {
    fn get(&self, pos: Pos, buf: &mut [u8; MAX_VAL]) -> Result<Option<usize>, NsError> {
        self.mem.get(pos, buf)
    }
    fn scan(
        &self,
        from: Pos,
        to: Pos,
        f: &mut dyn FnMut(Pos, &[u8]) -> bool,
    ) -> Result<(), NsError> {
        self.mem.scan(from, to, f)
    }
    fn put(&mut self, pos: Pos, val: &[u8]) -> Result<(), NsError> {
        self.updates += 1;
        self.mem.put(pos, val)
    }
    fn delete(&mut self, pos: Pos) -> Result<(), NsError> {
        self.updates += 1;
        self.mem.delete(pos)
    }
}

#[test]
fn operations_on_a_small_file() {
    let mut s = Mem::default();
    let ino = 7;
    assert_eq!(
        lookup(&s, ino, 0),
        Ok(Lookup::Hole {
            start: 0,
            end: MAX_FILE_BLOCKS
        })
    );
    let a = ext(10, 10, true, &[(0, 100)]);
    insert(&mut s, ino, &a).unwrap();
    assert_eq!(lookup(&s, ino, 3), Ok(Lookup::Hole { start: 3, end: 10 }));
    assert_eq!(lookup(&s, ino, 10), Ok(Lookup::Mapped(a)));
    assert_eq!(lookup(&s, ino, 19), Ok(Lookup::Mapped(a)));
    assert_eq!(
        lookup(&s, ino, 20),
        Ok(Lookup::Hole {
            start: 20,
            end: MAX_FILE_BLOCKS
        })
    );
    assert_eq!(lookup(&s, ino, MAX_FILE_BLOCKS), Err(NsError::Invalid));
    // Overlapping inserts are refused, touching ones are not.
    for (start, len) in [(5, 6), (19, 1), (12, 2), (0, 100)] {
        assert_eq!(
            insert(&mut s, ino, &ext(start, len, true, &[(0, 500)])),
            Err(NsError::Exists)
        );
    }
    insert(&mut s, ino, &ext(20, 5, false, &[(1, 200)])).unwrap();
    insert(&mut s, ino, &ext(5, 5, false, &[(1, 300)])).unwrap();
    assert_eq!(
        insert(&mut s, ino, &ext(0, 0, false, &[(1, 300)])),
        Err(NsError::Invalid)
    );
    assert_eq!(
        insert(&mut s, 0, &ext(40, 1, false, &[(1, 300)])),
        Err(NsError::Invalid)
    );
    assert_eq!(allocated_blocks(&s, ino), Ok(20));
    // The middle of the unwritten extent is written: three keys.
    let mut c = Counting {
        mem: &mut s,
        updates: 0,
    };
    assert_eq!(mark_written(&mut c, ino, 12, 15, 3), Ok(15));
    assert_eq!(c.updates, 3);
    let mut got = Vec::new();
    for_each(&s, ino, 0, 100, &mut |e| {
        got.push(*e);
        true
    })
    .unwrap();
    assert_eq!(
        got,
        [
            ext(5, 5, false, &[(1, 300)]),
            ext(10, 2, true, &[(0, 100)]),
            ext(12, 3, false, &[(0, 102)]),
            ext(15, 5, true, &[(0, 105)]),
            ext(20, 5, false, &[(1, 200)]),
        ]
    );
    // for_each stops where asked, and at the end of the range.
    let mut n = 0;
    for_each(&s, ino, 11, 13, &mut |_| {
        n += 1;
        true
    })
    .unwrap();
    assert_eq!(n, 2);
    n = 0;
    for_each(&s, ino, 0, 100, &mut |_| {
        n += 1;
        n < 2
    })
    .unwrap();
    assert_eq!(n, 2);
    // A budget below MIN_BUDGET is refused; a punch of the rest of the file reports every
    // replica run.
    assert_eq!(
        punch(&mut s, ino, 0, 1, MIN_BUDGET - 1, &mut |_, _, _| {}),
        Err(NsError::Invalid)
    );
    let mut freed = Vec::new();
    let mut at = 13;
    while at != u64::MAX {
        at = punch(&mut s, ino, at, u64::MAX, 3, &mut |p, n, _| {
            freed.push((p, n))
        })
        .unwrap();
    }
    assert_eq!(
        freed,
        [
            (
                DataPtr {
                    member: 0,
                    block: 103
                },
                2
            ),
            (
                DataPtr {
                    member: 0,
                    block: 105
                },
                5
            ),
            (
                DataPtr {
                    member: 1,
                    block: 200
                },
                5
            ),
        ]
    );
    assert_eq!(allocated_blocks(&s, ino), Ok(8));
    // A store error passes through.
    s.fail_after = Some(0);
    assert_eq!(
        punch(&mut s, ino, 0, u64::MAX, 3, &mut |_, _, _| {}),
        Err(NsError::Errno(5))
    );
    // A key that does not decode is Corrupt.
    s.fail_after = None;
    s.m.insert(Pos::new(Kind::Extent, ino, 50), vec![0; 24]);
    assert_eq!(lookup(&s, ino, 30), Err(NsError::Corrupt));
    assert_eq!(allocated_blocks(&s, ino), Err(NsError::Corrupt));
}

// ---------------------------------------------------------------------------------------------
// The model test.

/// Blocks of the file the model test uses.
const N: u64 = 48;

#[derive(Clone, Debug)]
enum Op {
    Insert {
        start: u64,
        len: u32,
        nr: u8,
        unwritten: bool,
    },
    MarkWritten {
        start: u64,
        len: u64,
        budget: u32,
    },
    Punch {
        start: u64,
        len: u64,
        budget: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..N, 1u32..12, 1u8..=4, any::<bool>()).prop_map(|(start, len, nr, unwritten)| {
            Op::Insert { start, len, nr, unwritten }
        }),
        2 => (0..N, 0..N, MIN_BUDGET..6).prop_map(|(start, len, budget)| Op::MarkWritten {
            start,
            len,
            budget
        }),
        2 => (0..N, 0..N, MIN_BUDGET..6).prop_map(|(start, len, budget)| Op::Punch {
            start,
            len,
            budget
        }),
    ]
}

/// Per file block: each replica's (member, device block), and whether it is written.
type Model = BTreeMap<u64, (Vec<(u32, u64)>, bool)>;

/// The inode the operations work on, between two that must not change.
const INO: u64 = 2;

fn run(ops: &[Op]) {
    let mut s = Mem::default();
    let neighbours = [
        (1, ext(0, 100, false, &[(9, 1)])),
        (3, ext(0, 100, true, &[(9, 200)])),
    ];
    for (ino, e) in &neighbours {
        insert(&mut s, *ino, e).unwrap();
    }
    let mut model = Model::new();
    // Device blocks are handed out once per member, so every block has one owner.
    let mut next_block = [1000u64; 4];
    for op in ops {
        match *op {
            Op::Insert {
                start,
                len,
                nr,
                unwritten,
            } => {
                let ptrs: Vec<(u32, u64)> = (0..nr as u32)
                    .map(|m| (m, next_block[m as usize]))
                    .collect();
                let e = ext(start, len, unwritten, &ptrs);
                let free = (start..e.end()).all(|b| !model.contains_key(&b));
                let got = insert(&mut s, INO, &e);
                if free {
                    assert_eq!(got, Ok(()));
                    for m in 0..nr as usize {
                        next_block[m] += len as u64;
                    }
                    for b in start..e.end() {
                        let r = ptrs.iter().map(|&(m, d)| (m, d + b - start)).collect();
                        model.insert(b, (r, !unwritten));
                    }
                } else {
                    assert_eq!(got, Err(NsError::Exists));
                }
            }
            Op::MarkWritten { start, len, budget } => {
                let end = start + len;
                let mut at = start;
                let mut rounds = 0;
                while at != end {
                    let mut c = Counting {
                        mem: &mut s,
                        updates: 0,
                    };
                    let next = mark_written(&mut c, INO, at, end, budget).unwrap();
                    assert!(c.updates <= budget, "{} updates", c.updates);
                    assert!(next > at && next <= end, "{at} -> {next}");
                    at = next;
                    rounds += 1;
                    assert!(rounds <= N);
                }
                for (_, v) in model.range_mut(start..end) {
                    v.1 = true;
                }
            }
            Op::Punch { start, len, budget } => {
                let end = start + len;
                let mut at = start;
                let mut freed = Vec::new();
                while at != end {
                    let mut c = Counting {
                        mem: &mut s,
                        updates: 0,
                    };
                    let next = punch(&mut c, INO, at, end, budget, &mut |p, n, _| {
                        freed.push((p, n))
                    })
                    .unwrap();
                    assert!(c.updates <= budget, "{} updates", c.updates);
                    assert!(next > at && next <= end, "{at} -> {next}");
                    at = next;
                }
                let mut got: Vec<(u32, u64)> = freed
                    .iter()
                    .flat_map(|&(p, n)| (0..n).map(move |i| (p.member, p.block + i)))
                    .collect();
                let mut want: Vec<(u32, u64)> = Vec::new();
                let dropped: Vec<u64> = model.range(start..end).map(|(&b, _)| b).collect();
                for b in dropped {
                    want.extend(model.remove(&b).unwrap().0);
                }
                got.sort();
                want.sort();
                assert_eq!(got, want, "freed runs");
            }
        }
        check(&s, &model);
    }
    for (ino, e) in &neighbours {
        let mut all = Vec::new();
        for_each(&s, *ino, 0, MAX_FILE_BLOCKS, &mut |x| {
            all.push(*x);
            true
        })
        .unwrap();
        assert_eq!(all, [*e]);
    }
}

/// The store against the model: every block's lookup, the allocated blocks, and the keys.
fn check(s: &Mem, model: &Model) {
    for b in 0..N + 12 {
        match lookup(s, INO, b).unwrap() {
            Lookup::Mapped(e) => {
                assert!(e.start <= b && b < e.end());
                let (ptrs, written) = model.get(&b).unwrap_or_else(|| panic!("block {b}"));
                let got: Vec<(u32, u64)> = e
                    .ptrs()
                    .iter()
                    .map(|p| (p.member, p.block + b - e.start))
                    .collect();
                assert_eq!(&got, ptrs, "block {b}");
                assert_eq!(!e.unwritten, *written, "block {b}");
            }
            Lookup::Hole { start, end } => {
                assert_eq!(start, b);
                assert!(!model.contains_key(&b), "block {b}");
                let next = model.range(b..).next().map_or(MAX_FILE_BLOCKS, |(&k, _)| k);
                assert_eq!(end, next, "block {b}");
            }
        }
    }
    assert_eq!(allocated_blocks(s, INO), Ok(model.len() as u64));
    // The keys never overlap and each is keyed by its end.
    let mut last = 0;
    for (p, v) in
        s.m.range(Pos::new(Kind::Extent, INO, 0)..Pos::new(Kind::Extent, INO + 1, 0))
    {
        let e = Extent::decode(*p, v).unwrap();
        assert!(e.start >= last, "{e:?} overlaps the key before it");
        assert_eq!(p.off, e.end());
        last = e.end();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn operations_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops);
    }
}

#[test]
fn a_long_punch_takes_several_rounds() {
    // Thirty one-block extents, punched with a budget of 3: at least ten rounds.
    let ops: Vec<Op> = (0..30)
        .map(|i| Op::Insert {
            start: i,
            len: 1,
            nr: 2,
            unwritten: i % 2 == 0,
        })
        .chain([
            Op::MarkWritten {
                start: 0,
                len: 30,
                budget: 3,
            },
            Op::Punch {
                start: 1,
                len: 28,
                budget: 3,
            },
        ])
        .collect();
    run(&ops);
}

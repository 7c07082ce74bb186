mod common;

use bucketfs_core::bkey::*;
use bucketfs_core::btree_format::*;
use bucketfs_core::bucket_table::*;
use bucketfs_core::crc32c;
use bucketfs_core::journal_format::*;
use bucketfs_core::layout::Field;
use bucketfs_core::namespace_format::{inode_pos, symlink_pos};
use bucketfs_core::options::{Opt, Options};
use bucketfs_core::superblock::*;
use common::*;
use proptest::prelude::*;

const UUID: [u8; 16] = *b"0123456789abcdef";

fn two_member_sb() -> Superblock {
    let m0 = Member::layout(64 << 20, 4096, [1; 16]).unwrap();
    let m1 = Member::layout(32 << 20, 8192, [2; 16]).unwrap();
    let mut members = [Member::default(); MAX_MEMBERS];
    members[0] = m0;
    members[1] = m1;
    let mut options = Options::default();
    options.set(Opt::MetadataReplicas, 2, 2).unwrap();
    let mut root = BtreeRoot {
        level: 0,
        nr_ptrs: 2,
        node_seq: 1,
        ..Default::default()
    };
    root.ptrs[0] = NodePtr {
        member: 0,
        bucket: m0.first_bucket,
    };
    root.ptrs[1] = NodePtr {
        member: 1,
        bucket: m1.first_bucket,
    };
    Superblock {
        uuid: UUID,
        seq: 5,
        member_index: 1,
        nr_members: 2,
        options,
        journal_seq: 1,
        journal_offset: 0,
        root,
        members,
        labels: Default::default(),
    }
}

fn encoded(sb: &Superblock) -> Vec<u8> {
    let mut b = vec![0; SB_SIZE];
    sb.encode(&mut b);
    b
}

/// Re-seals a superblock after a test changed a field, so the field check (not the checksum)
/// must catch it.
fn reseal(b: &mut [u8]) {
    let crc = crc32c::block_crc(&b[..SB_SIZE], 12);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn crc32c_matches_the_reference_crate() {
    for data in [&b""[..], b"123456789", &[0xa5; 4096]] {
        assert_eq!(crc32c::crc32c(data), crc32c::crc32c(data));
        assert_eq!(crc32c::crc32c(data), ::crc32c::crc32c(data));
    }
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
}

#[test]
fn layout_is_consistent_and_sized() {
    let m = Member::layout(64 << 20, 4096, [1; 16]).unwrap();
    assert_eq!(m.nbuckets, 16384);
    assert_eq!(m.validate(), Ok(()));
    assert!(m.table_start as u64 * 4096 >= RESERVED_BYTES);
    assert_eq!(m.journal_buckets, 256);
    assert!(m.bytes() <= 64 << 20);
    assert_eq!(
        Member::layout(64 << 20, 3000, [1; 16]),
        Err(MemberField::BucketSize)
    );
    assert_eq!(
        Member::layout(64 << 10, 4096, [1; 16]),
        Err(MemberField::NBuckets)
    );
}

#[test]
fn superblock_round_trips() {
    let sb = two_member_sb();
    assert_eq!(Superblock::decode(&encoded(&sb)), Ok(sb));
}

/// The superblock encoder and decoder go field by field (no whole `SbDisk` value on the
/// kernel's stack): the bytes are the ones the `SbDisk` layout writes (every field, padding
/// zeroed), and decoding into a slot that held another superblock gives the superblock.
#[test]
fn superblock_codec_matches_the_sbdisk_layout() {
    use bucketfs_core::layout::Field;
    use bucketfs_core::target::Label;
    let mut sb = two_member_sb();
    sb.labels[1] = Label::parse("fast").unwrap();
    sb.journal_offset = 3;
    let mut got = vec![0xff; SB_SIZE];
    sb.encode(&mut got);
    let disk = SbDisk {
        magic: MAGIC,
        version: VERSION,
        crc: 0,
        uuid: sb.uuid,
        seq: sb.seq,
        member_index: sb.member_index,
        nr_members: sb.nr_members,
        options: sb.options.to_slots(),
        journal_seq: sb.journal_seq,
        root: sb.root,
        journal_offset: sb.journal_offset,
        members: sb.members,
        labels: sb.labels,
        metadata_target_label: sb.options.target_label(),
    };
    let mut want = vec![0xff; SB_SIZE];
    disk.write(&mut want);
    reseal(&mut want);
    assert_eq!(got, want);
    let mut back = SbDisk::read(&got);
    back.crc = 0;
    assert_eq!(back, disk);

    let mut slot = two_member_sb();
    slot.seq = 99;
    slot.labels[0] = Label::parse("old").unwrap();
    slot.labels[5] = Label::parse("stale").unwrap();
    slot.members[7] = slot.members[0];
    Superblock::decode_into(&got, &mut slot).unwrap();
    assert_eq!(slot, sb);
}

#[test]
fn superblock_corruption_of_each_field_is_refused() {
    let sb = two_member_sb();
    let good = encoded(&sb);
    let cases: Vec<(&str, Box<dyn Fn(&mut Vec<u8>)>, SbError)> = vec![
        ("magic", Box::new(|b| b[0] ^= 1), SbError::Magic),
        (
            "version",
            Box::new(|b| {
                b[8] = 9;
                reseal(b)
            }),
            SbError::Version(9),
        ),
        ("checksum", Box::new(|b| b[0x20] ^= 0x40), SbError::Checksum),
        (
            "nr_members 0",
            Box::new(|b| {
                b[0x2c..0x30].copy_from_slice(&0u32.to_le_bytes());
                reseal(b)
            }),
            SbError::NrMembers(0),
        ),
        (
            "nr_members big",
            Box::new(|b| {
                b[0x2c..0x30].copy_from_slice(&17u32.to_le_bytes());
                reseal(b)
            }),
            SbError::NrMembers(17),
        ),
        (
            "member_index",
            Box::new(|b| {
                b[0x28..0x2c].copy_from_slice(&2u32.to_le_bytes());
                reseal(b)
            }),
            SbError::MemberIndex(2),
        ),
        (
            "option range",
            Box::new(|b| {
                b[0x30..0x34].copy_from_slice(&0u32.to_le_bytes());
                reseal(b)
            }),
            SbError::Option(Opt::MetadataReplicas),
        ),
        (
            "option rule",
            Box::new(|b| {
                b[0x30..0x34].copy_from_slice(&1u32.to_le_bytes());
                b[0x34..0x38].copy_from_slice(&2u32.to_le_bytes());
                reseal(b)
            }),
            SbError::Option(Opt::MetadataReplicasRequired),
        ),
        (
            "bucket size",
            Box::new(|b| {
                b[0x100 + 24..0x100 + 28].copy_from_slice(&4095u32.to_le_bytes());
                reseal(b)
            }),
            SbError::Member(0, MemberField::BucketSize),
        ),
        (
            "nbuckets",
            Box::new(|b| {
                b[0x140 + 16..0x140 + 24].copy_from_slice(&0u64.to_le_bytes());
                reseal(b)
            }),
            SbError::Member(1, MemberField::NBuckets),
        ),
        (
            "table",
            Box::new(|b| {
                b[0x100 + 32..0x100 + 36].copy_from_slice(&0u32.to_le_bytes());
                reseal(b)
            }),
            SbError::Member(0, MemberField::Table),
        ),
        (
            "journal",
            Box::new(|b| {
                b[0x100 + 40..0x100 + 44].copy_from_slice(&0u32.to_le_bytes());
                reseal(b)
            }),
            SbError::Member(0, MemberField::Journal),
        ),
        (
            "first bucket",
            Box::new(|b| {
                b[0x100 + 44] = b[0x100 + 44].wrapping_add(1);
                reseal(b)
            }),
            SbError::Member(0, MemberField::FirstBucket),
        ),
        (
            "flags",
            Box::new(|b| {
                b[0x100 + 48] = 0x80;
                reseal(b)
            }),
            SbError::Member(0, MemberField::Flags),
        ),
        (
            "duplicate member",
            Box::new(|b| {
                let u: Vec<u8> = b[0x100..0x110].to_vec();
                b[0x140..0x150].copy_from_slice(&u);
                reseal(b)
            }),
            SbError::DuplicateMember(1),
        ),
        (
            "root level",
            Box::new(|b| {
                b[0x78] = 9;
                reseal(b)
            }),
            SbError::Root,
        ),
        (
            "root no ptrs",
            Box::new(|b| {
                b[0x79] = 0;
                reseal(b)
            }),
            SbError::Root,
        ),
        (
            "root ptr member",
            Box::new(|b| {
                b[0x78 + 16] = 5;
                reseal(b)
            }),
            SbError::Root,
        ),
        (
            "root ptr bucket",
            Box::new(|b| {
                b[0x78 + 20..0x78 + 24].copy_from_slice(&1u32.to_le_bytes());
                reseal(b)
            }),
            SbError::Root,
        ),
        (
            "root ptrs same member",
            Box::new(|b| {
                b[0x78 + 24] = 0;
                reseal(b)
            }),
            SbError::Root,
        ),
        (
            "seq overflow",
            Box::new(|b| {
                b[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
                reseal(b)
            }),
            SbError::Sequence,
        ),
        (
            "journal seq overflow",
            Box::new(|b| {
                b[0x70..0x78].copy_from_slice(&(1u64 << 62).to_le_bytes());
                reseal(b)
            }),
            SbError::Sequence,
        ),
    ];
    for (name, corrupt, want) in cases {
        let mut b = good.clone();
        corrupt(&mut b);
        assert_eq!(Superblock::decode(&b), Err(want), "{name}");
        assert!(!Superblock::decode(&b).unwrap_err().field().is_empty());
    }
    assert_eq!(Superblock::decode(&good[..100]), Err(SbError::Short));
}

proptest! {
    /// No input makes the decoders panic, and a single flipped bit is always caught.
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
        let _ = Superblock::decode(&bytes);
        let _ = decode_node(&UUID, 0, &bytes, |_| {}, |_| {});
        let _ = decode_node(&UUID, 1, &bytes, |_| {}, |_| {});
        let _ = decode_entry(&UUID, &bytes, |_| {}, |_| {});
        let id = TableBlockId { uuid: UUID, member: 0, block: 0 };
        let _ = decode_block(&id, 5000, &bytes, |_, _| {});
    }

    /// Sealed leaves and entries of records, damaged at random (the checksum recomputed):
    /// never a panic, and what is accepted holds what its header says, a leaf's records
    /// sorted and none a deletion.
    #[test]
    fn sealed_records_never_panic_and_accepted_ones_hold(
        recs in proptest::collection::vec((0u64..20, any::<u64>(), any::<bool>()), 0..40),
        sort in any::<bool>(),
        nr_delta in -2i32..3,
        bytes_delta in prop_oneof![Just(0i64), -40i64..40],
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
    ) {
        let mut recs: Vec<Rec> = recs
            .iter()
            .map(|&(k, v, d)| if d { Rec::del(Pos::map(k)) } else { Rec::map(k, v) })
            .collect();
        if sort {
            recs.sort_by_key(|r| r.pos);
            recs.dedup_by_key(|r| r.pos);
        }
        let mut body = encode_all(&recs);
        for &(at, x) in &flips {
            if !body.is_empty() {
                let n = body.len();
                body[at % n] ^= x;
            }
        }
        let nr = (recs.len() as i32 + nr_delta).max(0) as u16;
        let bytes = (body.len() as i64 + bytes_delta).max(0) as u32;
        let leaf = raw_leaf(nr, bytes.min(LEAF_BYTES as u32 + 64), &body);
        let mut got = Vec::new();
        if let Ok(h) = decode_node(&UUID, 0, &leaf, |k| got.push(Rec::of(k)), |_| {}) {
            prop_assert_eq!(got.len(), h.nr as usize);
            prop_assert!(got.iter().all(|r| !r.deleted));
            prop_assert!(got.windows(2).all(|w| w[0].pos < w[1].pos));
            prop_assert!(h.bytes as usize <= LEAF_BYTES);
        }
        // The same records in a journal entry, its counts as damaged.
        let mut e = vec![0u8; MAX_ENTRY_BLOCKS as usize * BLOCK_SIZE];
        let clean = encode_all(&recs);
        let len = encode_entry(&UUID, 5, recs.len(), &clean, &[], &mut e).unwrap();
        e[64..64 + body.len()].copy_from_slice(&body);
        e.truncate(len);
        set_counts(&mut e, nr as u32, (bytes as usize).min(len) as u32);
        let mut got = Vec::new();
        if let Ok(h) = decode_entry(&UUID, &e, |k| got.push(Rec::of(k)), |_| {}) {
            prop_assert_eq!(got.len(), h.nr_keys as usize);
            prop_assert!(got.iter().all(|r| !r.deleted || r.val.is_empty()));
            let (h2, slice) = decode_entry_records(&UUID, &e, |_| {}).unwrap();
            prop_assert_eq!(h2, h);
            prop_assert_eq!(slice.len(), h.key_bytes as usize);
        } else {
            let refused = decode_entry_records(&UUID, &e, |_| ()).is_err();
            prop_assert!(refused);
        }
    }

    #[test]
    fn any_bit_flip_in_a_superblock_is_refused(bit in 0usize..SB_SIZE * 8) {
        let mut b = encoded(&two_member_sb());
        b[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(Superblock::decode(&b).is_err());
    }
}

#[test]
fn table_block_round_trip_and_checks() {
    let id = TableBlockId {
        uuid: UUID,
        member: 1,
        block: 2,
    };
    let nbuckets = 2 * TABLE_ENTRIES_PER_BLOCK + 10;
    let entries: Vec<BucketEntry> = (0..10)
        .map(|i| BucketEntry {
            state: BucketState::ALL[i % NR_STATES],
            gen: i as u32 * 1000,
        })
        .collect();
    let mut b = vec![0; BLOCK_SIZE];
    encode_block(&id, 3, &entries, &mut b);
    let mut got = Vec::new();
    decode_block(&id, nbuckets, &b, |i, e| got.push((i, e))).unwrap();
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|(i, e)| *e == entries[*i]));

    let other = TableBlockId { block: 1, ..id };
    assert_eq!(
        decode_block(&other, nbuckets, &b, |_, _| {}),
        Err(TableError::Owner)
    );
    assert_eq!(
        decode_block(&id, nbuckets + 1, &b, |_, _| {}),
        Err(TableError::Count)
    );
    let mut bad = b.clone();
    bad[100] ^= 1;
    assert_eq!(
        decode_block(&id, nbuckets, &bad, |_, _| {}),
        Err(TableError::Checksum)
    );
    let mut bad = b.clone();
    bad[48] = 9;
    let crc = crc32c::block_crc(&bad, 8);
    bad[8..12].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        decode_block(&id, nbuckets, &bad, |_, _| {}),
        Err(TableError::State(0))
    );
}

/// Seals a node or entry whose fields were changed behind the encoder's back.
fn seal(b: &mut [u8]) {
    let crc = crc32c::block_crc(b, 8);
    b[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// A leaf block written field by field: header with `nr` and `bytes` as given, `body` after
/// it, sealed. What the encoder would refuse to write.
fn raw_leaf(nr: u16, bytes: u32, body: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK_SIZE];
    NodeHeaderDisk {
        magic: BTREE_MAGIC,
        crc: 0,
        level: 0,
        nr,
        seq: 3,
        uuid: UUID,
        bytes,
    }
    .write(&mut b);
    b[64..64 + body.len()].copy_from_slice(body);
    seal(&mut b);
    b
}

fn leaf_recs(b: &[u8]) -> Result<Vec<Rec>, NodeError> {
    let mut got = Vec::new();
    decode_node(
        &UUID,
        0,
        b,
        |k| got.push(Rec::of(k)),
        |_| panic!("a child in a leaf"),
    )?;
    Ok(got)
}

/// Records of every kind, sorted, filling a leaf to `LEAF_BYTES` exactly.
fn full_leaf_records() -> Vec<Rec> {
    let mut recs = one_of_each();
    recs.sort_by_key(|r| r.pos);
    let mut bytes: usize = recs.iter().map(|r| record_size(r.val.len())).sum();
    let mut i = 0;
    // Map keys below the others (which sort after every map key).
    while bytes + 32 <= LEAF_BYTES {
        recs.insert(i, Rec::map(1000 + i as u64, i as u64));
        bytes += 32;
        i += 1;
    }
    // The rest (less than 32 bytes: 8, 16 or 24) as a longer symlink piece.
    let last = recs.last_mut().unwrap();
    let extra = LEAF_BYTES - bytes;
    last.val.extend(std::iter::repeat(b'z').take(extra));
    recs
}

#[test]
fn leaves_round_trip_records_of_every_kind() {
    for recs in [vec![], one_of_each(), full_leaf_records()] {
        let mut recs = recs;
        recs.sort_by_key(|r| r.pos);
        let body = encode_all(&recs);
        let mut b = vec![0xee; BLOCK_SIZE];
        assert!(encode_leaf(&UUID, 9, recs.len(), &body, &mut b));
        let mut got = Vec::new();
        let h = decode_node(&UUID, 0, &b, |k| got.push(Rec::of(k)), |_| panic!()).unwrap();
        assert_eq!(
            (h.level, h.nr as usize, h.seq, h.bytes as usize),
            (0, recs.len(), 9, body.len())
        );
        assert_eq!(got, recs);
        assert_eq!(leaf_body(&b, &h), &body[..]);
        // The rest of the block is zero.
        assert!(b[64 + body.len()..].iter().all(|&x| x == 0));
        assert_eq!(check_records(recs.len(), &body), Ok(()));
    }
    assert_eq!(
        full_leaf_records()
            .iter()
            .map(|r| record_size(r.val.len()))
            .sum::<usize>(),
        LEAF_BYTES
    );
    assert_eq!(LEAF_BYTES, BLOCK_SIZE - 64);
    assert_eq!(
        decode_node(&UUID, 1, &raw_leaf(0, 0, &[]), |_| {}, |_| {}),
        Err(NodeError::Level)
    );
    assert_eq!(
        decode_node(&[0; 16], 0, &raw_leaf(0, 0, &[]), |_| {}, |_| {}),
        Err(NodeError::Uuid)
    );
}

#[test]
fn encode_leaf_writes_nothing_the_decoder_refuses() {
    let sorted = maps([(1, 1), (2, 2), (3, 3)]);
    let body = encode_all(&sorted);
    let mut del = sorted.clone();
    del.insert(1, Rec::del(Pos::map(1)));
    let mut dup = sorted.clone();
    dup.insert(1, Rec::map(1, 9));
    let unsorted = maps([(1, 1), (3, 3), (2, 2)]);
    let mut over = full_leaf_records();
    over.insert(0, Rec::map(0, 0));
    let cases: Vec<(&str, usize, Vec<u8>)> = vec![
        ("unsorted", 3, encode_all(&unsorted)),
        ("repeated", 4, encode_all(&dup)),
        ("a deletion", 4, encode_all(&del)),
        ("one record more than given", 2, body.clone()),
        ("one record less than given", 4, body.clone()),
        (
            "a trailing half record",
            3,
            [&body[..], &body[..8]].concat(),
        ),
        ("a cut record", 3, body[..body.len() - 8].to_vec()),
        ("more than LEAF_BYTES", over.len(), encode_all(&over)),
        ("zero bytes as a record", 1, vec![0; 32]),
    ];
    for (what, nr, records) in cases {
        let mut b = vec![0xee; BLOCK_SIZE];
        assert!(!encode_leaf(&UUID, 1, nr, &records, &mut b), "{what}");
        assert!(b.iter().all(|&x| x == 0xee), "{what}: wrote");
        // And the decoder refuses the same leaf written behind the encoder's back.
        if records.len() <= LEAF_BYTES {
            assert!(
                leaf_recs(&raw_leaf(nr as u16, records.len() as u32, &records)).is_err(),
                "{what}: decoded"
            );
        }
    }
}

#[test]
fn decode_node_refuses_bad_leaves() {
    let recs = maps([(1, 1), (2, 2), (3, 3)]);
    let body = encode_all(&recs);
    let n = body.len() as u32;
    assert_eq!(leaf_recs(&raw_leaf(3, n, &body)), Ok(recs.clone()));
    // Order: swapped, repeated.
    let swapped = encode_all(&maps([(1, 1), (3, 3), (2, 2)]));
    assert_eq!(leaf_recs(&raw_leaf(3, n, &swapped)), Err(NodeError::Order));
    let repeated = encode_all(&maps([(1, 1), (2, 2), (2, 2)]));
    assert_eq!(leaf_recs(&raw_leaf(3, n, &repeated)), Err(NodeError::Order));
    // Kinds sort before inodes, inodes before offsets.
    let across = vec![
        Rec::map(u64::MAX, 1),
        Rec::put(inode_pos(1), &inode(|_| {})),
        Rec::put(inode_pos(2), &inode(|_| {})),
        Rec::put(symlink_pos(1, 0), b"a"),
    ];
    let b = encode_all(&across);
    assert_eq!(
        leaf_recs(&raw_leaf(4, b.len() as u32, &b)),
        Ok(across.clone())
    );
    let mut back = across.clone();
    back.swap(0, 1);
    let b = encode_all(&back);
    assert_eq!(
        leaf_recs(&raw_leaf(4, b.len() as u32, &b)),
        Err(NodeError::Order)
    );
    // A deletion, anywhere, even at its place in the order.
    for at in 0..=3 {
        let mut d = recs.clone();
        d.insert(at, Rec::del(Pos::map(at as u64 * 2)));
        let b = encode_all(&d);
        assert_eq!(
            leaf_recs(&raw_leaf(4, b.len() as u32, &b)),
            Err(NodeError::Record(KeyError::Header)),
            "deletion at {at}"
        );
    }
    // `bytes` that the records do not fill exactly.
    for bytes in [n + 8, n + 24, n + 32] {
        assert_eq!(
            leaf_recs(&raw_leaf(3, bytes, &body)),
            Err(NodeError::Record(KeyError::Truncated)),
            "bytes {bytes}"
        );
    }
    for bytes in [n - 8, n - 32, 0] {
        assert_eq!(
            leaf_recs(&raw_leaf(3, bytes, &body)),
            Err(NodeError::Record(KeyError::Truncated)),
            "bytes {bytes}"
        );
    }
    for bytes in [LEAF_BYTES as u32 + 8, u32::MAX] {
        assert_eq!(leaf_recs(&raw_leaf(3, bytes, &body)), Err(NodeError::Count));
    }
    // `nr` that does not match: the zeros after the records are no record.
    assert_eq!(
        leaf_recs(&raw_leaf(4, n, &body)),
        Err(NodeError::Record(KeyError::Truncated))
    );
    assert_eq!(
        leaf_recs(&raw_leaf(4, n + 32, &body)),
        Err(NodeError::Record(KeyError::Header))
    );
    assert_eq!(
        leaf_recs(&raw_leaf(2, n, &body)),
        Err(NodeError::Record(KeyError::Truncated))
    );
    assert_eq!(
        leaf_recs(&raw_leaf(u16::MAX, n, &body)),
        Err(NodeError::Record(KeyError::Truncated))
    );
    // A bad value or header in the middle.
    let mut bad = body.clone();
    bad[32 + 8] = 1; // Record 1's inode: a map key has none.
    assert_eq!(
        leaf_recs(&raw_leaf(3, n, &bad)),
        Err(NodeError::Record(KeyError::Value))
    );
    let mut bad = body.clone();
    bad[32 + 1] = 2; // Record 1's flags.
    assert_eq!(
        leaf_recs(&raw_leaf(3, n, &bad)),
        Err(NodeError::Record(KeyError::Header))
    );
    let nlink0 = vec![Rec::map(1, 1)];
    let mut b = encode_all(&nlink0);
    b.extend_from_slice(&{
        let v = inode(|i| i.nlink = 0);
        let mut r = vec![0u8; record_size(v.len())];
        KeyHeaderDisk {
            kind: Kind::Inode as u8,
            flags: 0,
            len: v.len() as u16,
            ino: 2,
            off: 0,
        }
        .write(&mut r);
        r[24..].copy_from_slice(&v);
        r
    });
    assert_eq!(
        leaf_recs(&raw_leaf(2, b.len() as u32, &b)),
        Err(NodeError::Record(KeyError::Value))
    );
    // Nothing of a refused leaf reaches the caller.
    let mut seen = 0;
    let _ = decode_node(&UUID, 0, &raw_leaf(3, n, &swapped), |_| seen += 1, |_| {});
    assert_eq!(seen, 0);
}

fn child(kind: Kind, ino: u64, off: u64, bucket: u32) -> Child {
    let mut c = Child {
        kind: kind as u8,
        ino,
        off,
        nr_ptrs: 2,
        ..Default::default()
    };
    c.ptrs[0] = NodePtr { member: 0, bucket };
    c.ptrs[1] = NodePtr {
        member: 1,
        bucket: bucket + 100,
    };
    c
}

#[test]
fn interior_nodes_round_trip_and_checks() {
    let children = vec![
        Child {
            kind: 0,
            ..child(Kind::Map, 0, 0, 300)
        },
        child(Kind::Map, 0, 500, 301),
        child(Kind::Inode, 1, 0, 302),
        child(Kind::Inode, 7, 0, 303),
        child(Kind::Dirent, 1, 9, 304),
        child(Kind::Dirent, 1, 10, 305),
    ];
    let mut b = vec![0; BLOCK_SIZE];
    assert!(encode_interior(&UUID, 10, 1, &children, &mut b));
    let mut got = Vec::new();
    let h = decode_node(&UUID, 1, &b, |_| panic!(), |c| got.push(c)).unwrap();
    assert_eq!(got, children);
    assert_eq!(h.bytes as usize, children.len() * Child::SIZE);
    assert_eq!(children[2].pos(), inode_pos(1));
    assert_eq!(Child::SIZE, 64);
    assert_eq!(INTERIOR_CAPACITY, (BLOCK_SIZE - 64) / 64);

    let refused = |c: &[Child], fix: &dyn Fn(&mut [u8])| {
        let mut b = vec![0; BLOCK_SIZE];
        write_interior_raw(&UUID, 10, 1, c, &mut b);
        fix(&mut b);
        seal(&mut b);
        decode_node(&UUID, 1, &b, |_| {}, |_| {})
    };
    // Children out of order by kind, inode or offset, or repeated.
    for (i, j) in [(1, 2), (2, 3), (4, 5)] {
        let mut c = children.clone();
        c.swap(i, j);
        assert_eq!(refused(&c, &|_| {}), Err(NodeError::Order), "{i} {j}");
    }
    let mut c = children.clone();
    c[3] = Child {
        ptrs: c[3].ptrs,
        ..c[2]
    };
    assert_eq!(refused(&c, &|_| {}), Err(NodeError::Order));
    // Pointer counts.
    for nr_ptrs in [0, 5, u32::MAX] {
        let mut c = children.clone();
        c[1].nr_ptrs = nr_ptrs;
        assert_eq!(refused(&c, &|_| {}), Err(NodeError::Ptrs), "{nr_ptrs}");
    }
    // `bytes` other than nr × 64, and no children.
    let bytes_at = 0x28;
    for bytes in [0u32, 6 * 64 - 8, 6 * 64 + 64, u32::MAX] {
        let got = refused(&children, &|b: &mut [u8]| {
            b[bytes_at..bytes_at + 4].copy_from_slice(&bytes.to_le_bytes())
        });
        assert_eq!(got, Err(NodeError::Count), "bytes {bytes}");
    }
    assert_eq!(refused(&[], &|_| {}), Err(NodeError::Count));
    let too_many = vec![children[0]; INTERIOR_CAPACITY + 1];
    let got = refused(&too_many[..INTERIOR_CAPACITY], &|b: &mut [u8]| {
        b[0x0e..0x10].copy_from_slice(&(INTERIOR_CAPACITY as u16 + 1).to_le_bytes());
        b[bytes_at..bytes_at + 4]
            .copy_from_slice(&((INTERIOR_CAPACITY as u32 + 1) * 64).to_le_bytes());
    });
    assert_eq!(got, Err(NodeError::Count));
}

fn entry_of(recs: &[Rec], updates: &[BucketUpdate]) -> Vec<u8> {
    let body = encode_all(recs);
    let mut b = vec![0; MAX_ENTRY_BLOCKS as usize * BLOCK_SIZE];
    let len = encode_entry(&UUID, 42, recs.len(), &body, updates, &mut b).unwrap();
    b.truncate(len);
    b
}

fn entry_recs(b: &[u8]) -> Result<(Vec<Rec>, Vec<BucketUpdate>), JournalError> {
    let (mut k, mut u) = (Vec::new(), Vec::new());
    decode_entry(&UUID, b, |x| k.push(Rec::of(x)), |x| u.push(x))?;
    Ok((k, u))
}

/// An entry header written field by field over `b`, sealed.
fn set_counts(b: &mut [u8], nr_keys: u32, key_bytes: u32) {
    b[0x28..0x2c].copy_from_slice(&nr_keys.to_le_bytes());
    b[0x30..0x34].copy_from_slice(&key_bytes.to_le_bytes());
    seal(b);
}

#[test]
fn journal_entry_round_trip_and_checks() {
    // Records of every kind, deletions among them, in the order made (not sorted).
    let mut recs: Vec<Rec> = (0..700u64).map(|i| Rec::map(i * 3, i)).collect();
    recs.insert(10, Rec::del(Pos::map(5)));
    recs.push(Rec::del(inode_pos(2)));
    recs.extend(one_of_each());
    recs.push(Rec::map(3, 1));
    recs.push(Rec::del(Pos::map(3)));
    let updates = [BucketUpdate {
        member: 1,
        bucket: 77,
        state: BucketState::NeedDiscard,
        gen: 4,
    }];
    let b = entry_of(&recs, &updates);
    let key_bytes = encode_all(&recs).len();
    assert_eq!(
        b.len(),
        (64 + key_bytes + 16).div_ceil(BLOCK_SIZE) * BLOCK_SIZE
    );
    let h = decode_header(&UUID, &b).unwrap();
    assert_eq!(
        (
            h.seq,
            h.nr_keys as usize,
            h.key_bytes as usize,
            h.nr_updates
        ),
        (42, recs.len(), key_bytes, 1)
    );
    assert_eq!(entry_recs(&b), Ok((recs.clone(), updates.to_vec())));
    let (h2, body) = decode_entry_records(&UUID, &b, |_| {}).unwrap();
    assert_eq!(h2, h);
    assert_eq!(body, &encode_all(&recs)[..]);

    assert_eq!(
        decode_entry(&[9; 16], &b, |_| {}, |_| {}),
        Err(JournalError::Uuid)
    );
    assert_eq!(
        decode_entry(&UUID, &b[..BLOCK_SIZE], |_| {}, |_| {}),
        Err(JournalError::Truncated)
    );
    let mut bad = b.clone();
    bad[BLOCK_SIZE + 5] ^= 1;
    assert_eq!(entry_recs(&bad), Err(JournalError::Checksum));

    // Counts: a record takes at least 24 bytes; `key_bytes` is a multiple of 8 and fits.
    let nr = recs.len() as u32;
    let kb = key_bytes as u32;
    for (nr_keys, key_bytes) in [
        (100_000, kb),
        (kb / 24 + 1, kb),
        (nr, kb + 4),
        (nr, kb - 1),
        (nr, u32::MAX),
        (nr, (MAX_KEY_BYTES + 8) as u32),
    ] {
        let mut bad = b.clone();
        set_counts(&mut bad, nr_keys, key_bytes);
        assert_eq!(
            entry_recs(&bad),
            Err(JournalError::Length),
            "{nr_keys} keys, {key_bytes} bytes"
        );
    }
    // Counts that fit the header but not the records.
    let mut bad = b.clone();
    set_counts(&mut bad, nr + 1, kb);
    assert_eq!(
        entry_recs(&bad),
        Err(JournalError::Key(nr, KeyError::Truncated))
    );
    let mut bad = b.clone();
    set_counts(&mut bad, nr - 1, kb);
    assert_eq!(
        entry_recs(&bad),
        Err(JournalError::Key(nr - 1, KeyError::Truncated))
    );
    let mut bad = b.clone();
    set_counts(&mut bad, nr, kb - 8);
    assert!(matches!(
        entry_recs(&bad),
        Err(JournalError::Key(_, KeyError::Truncated))
    ));
    // A record refused: its index is reported.
    let at = encode_all(&recs[..10]).len();
    let mut bad = b.clone();
    bad[64 + at] = 0; // Record 10's kind.
    seal(&mut bad);
    assert_eq!(
        entry_recs(&bad),
        Err(JournalError::Key(10, KeyError::Header))
    );
    let mut bad = b.clone();
    bad[64 + at + 2] = 8; // Record 10 (a deletion) with a value.
    seal(&mut bad);
    assert_eq!(
        entry_recs(&bad),
        Err(JournalError::Key(10, KeyError::Header))
    );
    let mut bad = b.clone();
    bad[64 + at + 24 + 8] = 1; // Record 11 (after the 24-byte deletion), a map key, with an inode.
    seal(&mut bad);
    assert_eq!(
        entry_recs(&bad),
        Err(JournalError::Key(11, KeyError::Value))
    );
    // A refused entry hands nothing over.
    let (mut keys, mut ups) = (0, 0);
    let _ = decode_entry(&UUID, &bad, |_| keys += 1, |_| ups += 1);
    assert_eq!((keys, ups), (0, 0));
    assert_eq!(
        decode_entry_records(&UUID, &bad, |_| {}).map(|_| ()),
        Err(JournalError::Key(11, KeyError::Value))
    );
}

#[test]
fn encode_entry_writes_nothing_the_decoder_refuses() {
    let mut b = vec![0xee; MAX_ENTRY_BLOCKS as usize * BLOCK_SIZE + 1];
    let body = encode_all(&maps([(1, 1), (2, 2)]));
    for (what, nr, records) in [
        ("one record more", 3, body.clone()),
        ("one record less", 1, body.clone()),
        ("a cut record", 2, body[..56].to_vec()),
        ("a zero record", 3, [&body[..], &[0; 32][..]].concat()),
    ] {
        assert_eq!(
            encode_entry(&UUID, 1, nr, &records, &[], &mut b),
            None,
            "{what}"
        );
        assert!(b.iter().all(|&x| x == 0xee), "{what}: wrote");
    }
    let mut bad = body.clone();
    bad[32 + 1] = 2;
    assert_eq!(encode_entry(&UUID, 1, 2, &bad, &[], &mut b), None);
    // Sequence numbers past MAX_ENTRY_SEQ are not written either.
    assert_eq!(
        encode_entry(&UUID, MAX_ENTRY_SEQ + 1, 2, &body, &[], &mut b),
        None
    );
    assert!(b.iter().all(|&x| x == 0xee));
    assert!(encode_entry(&UUID, MAX_ENTRY_SEQ, 2, &body, &[], &mut b).is_some());
    // The largest entry: MAX_KEY_BYTES of records, and not 8 more.
    let per = MAX_KEY_BYTES / 32;
    assert_eq!(MAX_KEY_BYTES % 32, 0);
    let full = maps((0..per as u64).map(|i| (i, i)));
    let body = encode_all(&full);
    assert_eq!(body.len(), MAX_KEY_BYTES);
    let len = encode_entry(&UUID, 1, per, &body, &[], &mut b).unwrap();
    assert_eq!(len, MAX_ENTRY_BLOCKS as usize * BLOCK_SIZE);
    assert_eq!(entry_recs(&b[..len]).map(|r| r.0.len()), Ok(per));
    let more = [&body[..], &encode_all(&[Rec::del(Pos::map(1))])[..]].concat();
    assert_eq!(encode_entry(&UUID, 1, per + 1, &more, &[], &mut b), None);
    assert_eq!(entry_blocks(MAX_KEY_BYTES, 0), Some(MAX_ENTRY_BLOCKS));
    assert_eq!(entry_blocks(MAX_KEY_BYTES + 8, 0), None);
    assert_eq!(entry_blocks(MAX_KEY_BYTES - 16, 1), Some(MAX_ENTRY_BLOCKS));
    // Too small a buffer.
    assert_eq!(
        encode_entry(&UUID, 1, per, &full_body_of(per), &[], &mut [0; BLOCK_SIZE]),
        None
    );
}

fn full_body_of(n: usize) -> Vec<u8> {
    encode_all(&maps((0..n as u64).map(|i| (i, i))))
}

/// The journal is a sixty-fourth of the device below 64 GiB (as before the cap), and at most
/// `MAX_JOURNAL_BYTES` above, at least the old minimum; `validate` accepts every such layout.
#[test]
fn journal_is_bounded() {
    const GIB: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;
    for (bytes, bs, journal_bytes) in [
        (64 << 20, 4096, 1 << 20),
        (64 << 20, 65536, 1 << 20),
        (8 << 20, 4096, 256 << 10),
        (64 * GIB, 65536, GIB),
        (128 * GIB, 65536, GIB),
        (TIB, 65536, GIB),
        (16 * TIB, 65536, GIB),
        (16 * TIB, 16 << 20, GIB),
        (TIB, 4096, GIB),
    ] {
        let m = Member::layout(bytes, bs, [1; 16]).unwrap();
        assert_eq!(m.validate(), Ok(()), "{bytes} {bs}");
        assert_eq!(
            m.journal_buckets as u64 * bs as u64,
            journal_bytes,
            "{bytes} bytes, {bs}-byte buckets"
        );
        assert_eq!(m.journal_blocks() * BLOCK_SIZE as u64, journal_bytes);
    }
    // The old rule, for every device up to the cap: unchanged layouts.
    for shift in 23..36 {
        for bs in [4096u32, 65536, 1 << 20] {
            let bytes = 1u64 << shift;
            let Ok(m) = Member::layout(bytes, bs, [1; 16]) else {
                continue;
            };
            let nbuckets = bytes / bs as u64;
            let old = (nbuckets / 64)
                .max(8)
                .max((256u64 << 10).div_ceil(bs as u64));
            assert_eq!(m.journal_buckets as u64, old, "{bytes} {bs}");
        }
    }
    // The minimum wins over the cap for huge buckets.
    assert_eq!(journal_buckets_for(1 << 20, 1 << 30), MIN_JOURNAL_BUCKETS);
    // A broken layout is still refused: a journal that does not follow the table.
    let mut m = Member::layout(TIB, 65536, [1; 16]).unwrap();
    m.journal_start += 1;
    assert_eq!(m.validate(), Err(MemberField::Journal));
}

/// `journal_offset` round-trips, must lie within every member's journal area, and a
/// superblock with it zero is byte for byte what the format wrote before the field existed.
#[test]
fn journal_offset_is_checked() {
    let mut sb = two_member_sb();
    let limit = sb.members[..2]
        .iter()
        .map(|m| m.journal_blocks())
        .min()
        .unwrap();
    sb.journal_offset = limit - 1;
    assert_eq!(Superblock::decode(&encoded(&sb)), Ok(sb));
    for bad in [limit, limit + 1, u64::MAX] {
        sb.journal_offset = bad;
        assert_eq!(sb.validate(), Err(SbError::JournalOffset(bad)));
        // Written past the encoder's back, as a damaged image would have it.
        let mut b = encoded(&two_member_sb());
        b[0xa8..0xb0].copy_from_slice(&bad.to_le_bytes());
        reseal(&mut b);
        assert_eq!(Superblock::decode(&b), Err(SbError::JournalOffset(bad)));
        assert_eq!(SbError::JournalOffset(bad).field(), "journal_offset");
    }
    // Offset zero: the bytes an older image has there.
    let b = encoded(&two_member_sb());
    assert_eq!(&b[0xa8..0x100], &[0u8; 0x58][..]);
}

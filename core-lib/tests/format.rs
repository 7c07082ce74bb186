use bucketfs_core::btree_format::*;
use bucketfs_core::bucket_table::*;
use bucketfs_core::crc32c;
use bucketfs_core::journal_format::*;
use bucketfs_core::options::{Opt, Options};
use bucketfs_core::superblock::*;
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

#[test]
fn journal_entry_round_trip_and_checks() {
    let keys: Vec<Key> = (0..700).map(|i| Key { key: i * 3, val: i }).collect();
    let updates = [BucketUpdate {
        member: 1,
        bucket: 77,
        state: BucketState::NeedDiscard,
        gen: 4,
    }];
    let mut b = vec![0; MAX_ENTRY_BLOCKS as usize * BLOCK_SIZE];
    let len = encode_entry(&UUID, 42, &keys, &updates, &mut b).unwrap();
    assert_eq!(len, 3 * BLOCK_SIZE);
    let (mut k, mut u) = (Vec::new(), Vec::new());
    let h = decode_entry(&UUID, &b, |x| k.push(x), |x| u.push(x)).unwrap();
    assert_eq!(
        (h.seq, h.blocks, k, u),
        (42, 3, keys.clone(), updates.to_vec())
    );

    assert_eq!(
        decode_entry(&[9; 16], &b, |_| {}, |_| {}),
        Err(JournalError::Uuid)
    );
    assert_eq!(
        decode_entry(&UUID, &b[..2 * BLOCK_SIZE], |_| {}, |_| {}),
        Err(JournalError::Truncated)
    );
    let mut bad = b.clone();
    bad[2 * BLOCK_SIZE + 5] ^= 1;
    assert_eq!(
        decode_entry(&UUID, &bad, |_| {}, |_| {}),
        Err(JournalError::Checksum)
    );
    let mut bad = b.clone();
    bad[40..44].copy_from_slice(&100_000u32.to_le_bytes());
    assert_eq!(
        decode_entry(&UUID, &bad, |_| {}, |_| {}),
        Err(JournalError::Length)
    );
    assert!(encode_entry(
        &UUID,
        1,
        &vec![Key::default(); MAX_KEYS_PER_ENTRY + 1],
        &[],
        &mut b
    )
    .is_none());
    assert!(encode_entry(
        &UUID,
        1,
        &vec![Key::default(); MAX_KEYS_PER_ENTRY],
        &[],
        &mut b
    )
    .is_some());
}

#[test]
fn btree_nodes_round_trip_and_checks() {
    let keys: Vec<Key> = (0..LEAF_CAPACITY as u64)
        .map(|i| Key {
            key: i * 2 + 1,
            val: !i,
        })
        .collect();
    let mut b = vec![0; BLOCK_SIZE];
    encode_leaf(&UUID, 9, &keys, &mut b);
    let mut got = Vec::new();
    let h = decode_node(
        &UUID,
        0,
        &b,
        |k| got.push(k),
        |_| panic!("leaf has no children"),
    )
    .unwrap();
    assert_eq!(
        (h.level, h.nr as usize, h.seq, got),
        (0, LEAF_CAPACITY, 9, keys)
    );
    assert_eq!(
        decode_node(&UUID, 1, &b, |_| {}, |_| {}),
        Err(NodeError::Level)
    );
    assert_eq!(
        decode_node(&[0; 16], 0, &b, |_| {}, |_| {}),
        Err(NodeError::Uuid)
    );

    let mut children = vec![Child::default(); 3];
    for (i, c) in children.iter_mut().enumerate() {
        c.key = i as u64 * 100;
        c.nr_ptrs = 2;
        c.ptrs[0] = NodePtr {
            member: 0,
            bucket: 300 + i as u32,
        };
        c.ptrs[1] = NodePtr {
            member: 1,
            bucket: 400 + i as u32,
        };
    }
    encode_interior(&UUID, 10, 1, &children, &mut b);
    let mut got = Vec::new();
    decode_node(&UUID, 1, &b, |_| panic!(), |c| got.push(c)).unwrap();
    assert_eq!(got, children);

    // Out-of-order keys and pointer counts are refused even with a valid checksum.
    let mut bad = b.clone();
    bad[64..72].copy_from_slice(&1000u64.to_le_bytes());
    let crc = crc32c::block_crc(&bad, 8);
    bad[8..12].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        decode_node(&UUID, 1, &bad, |_| {}, |_| {}),
        Err(NodeError::Order)
    );
    let mut bad = b.clone();
    bad[72..76].copy_from_slice(&0u32.to_le_bytes());
    let crc = crc32c::block_crc(&bad, 8);
    bad[8..12].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        decode_node(&UUID, 1, &bad, |_| {}, |_| {}),
        Err(NodeError::Ptrs)
    );
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

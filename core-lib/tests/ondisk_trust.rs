//! Issue 11, items 1 and 2: every pointer and sequence number read from disk is bounded by
//! the same predicates the kernel uses, and whatever passes them can be written back in a
//! superblock the decoder accepts.

mod common;

use bucketfs_core::journal_format::*;
use bucketfs_core::options::Options;
use bucketfs_core::superblock::*;

const UUID: [u8; 16] = *b"0123456789abcdef";

fn one_member_sb() -> Superblock {
    let m = Member::layout(8 << 20, 4096, [1; 16]).unwrap();
    let mut members = [Member::default(); MAX_MEMBERS];
    members[0] = m;
    let mut root = BtreeRoot {
        level: 0,
        nr_ptrs: 1,
        node_seq: 1,
        ..Default::default()
    };
    root.ptrs[0] = NodePtr {
        member: 0,
        bucket: m.first_bucket,
    };
    Superblock {
        uuid: UUID,
        seq: 1,
        member_index: 0,
        nr_members: 1,
        options: Options::default(),
        journal_seq: 1,
        journal_offset: 0,
        root,
        members,
        labels: Default::default(),
    }
}

fn ptr(member: u32, bucket: u32) -> NodePtr {
    NodePtr { member, bucket }
}

#[test]
fn node_pointers_outside_the_allocatable_area_are_refused() {
    let sb = one_member_sb();
    let m = sb.members[0];
    let table = sb.member_table();
    for b in [0, 1, 2, m.table_start, m.journal_start, m.first_bucket - 1] {
        assert_eq!(
            check_ptr(table, ptr(0, b)),
            Err(PtrError::Metadata),
            "bucket {b}"
        );
    }
    for b in [m.nbuckets as u32, m.nbuckets as u32 + 3, u32::MAX] {
        assert_eq!(
            check_ptr(table, ptr(0, b)),
            Err(PtrError::Beyond),
            "bucket {b}"
        );
    }
    for member in [1, 7, 16, u32::MAX] {
        assert_eq!(
            check_ptr(table, ptr(member, m.first_bucket)),
            Err(PtrError::Member)
        );
    }
    for b in [m.first_bucket, m.first_bucket + 1, m.nbuckets as u32 - 1] {
        assert_eq!(check_ptr(table, ptr(0, b)), Ok(()));
    }
    // The superblock's root goes through the same predicate.
    let mut bad = sb;
    bad.root.ptrs[0] = ptr(0, 1);
    assert_eq!(bad.validate(), Err(SbError::Root));
}

/// An entry with one key and sequence number `seq`: encoded when the encoder accepts `seq`,
/// else encoded with 1 and `seq` written over it (the checksum recomputed), as a damaged or
/// hostile image would hold it.
fn entry_with_seq(seq: u64) -> Vec<u8> {
    let mut b = vec![0; BLOCK_SIZE];
    let recs = common::encode_all(&common::maps([(1, 2)]));
    if encode_entry(&UUID, seq, 1, &recs, &[], &mut b).is_none() {
        assert!(seq > MAX_ENTRY_SEQ, "seq {seq} refused by the encoder");
        encode_entry(&UUID, 1, 1, &recs, &[], &mut b).unwrap();
        b[0x10..0x18].copy_from_slice(&seq.to_le_bytes());
        let crc = bucketfs_core::crc32c::block_crc(&b, 8);
        b[8..12].copy_from_slice(&crc.to_le_bytes());
    }
    b
}

#[test]
fn journal_sequence_numbers_are_bounded() {
    assert!(MAX_ENTRY_SEQ < MAX_SEQ);
    for seq in [0, 1, MAX_ENTRY_SEQ - 1, MAX_ENTRY_SEQ] {
        let b = entry_with_seq(seq);
        assert_eq!(decode_header(&UUID, &b).map(|h| h.seq), Ok(seq));
        assert!(decode_entry(&UUID, &b, |_| {}, |_| {}).is_ok());
    }
    for seq in [
        MAX_ENTRY_SEQ + 1,
        MAX_SEQ - 1,
        MAX_SEQ,
        u64::MAX - 1,
        u64::MAX,
    ] {
        let b = entry_with_seq(seq);
        // The encoder does not write it, the decoder refuses it.
        assert_eq!(
            encode_entry(&UUID, seq, 0, &[], &[], &mut vec![0; BLOCK_SIZE]),
            None
        );
        assert_eq!(decode_header(&UUID, &b), Err(JournalError::Sequence(seq)));
        assert_eq!(
            decode_entry(&UUID, &b, |_| {}, |_| {}),
            Err(JournalError::Sequence(seq))
        );
    }
}

#[test]
fn replaying_the_largest_accepted_entry_writes_a_decodable_superblock() {
    // The commit after replaying entry `MAX_ENTRY_SEQ` writes `journal_seq` one past it.
    let mut sb = one_member_sb();
    sb.journal_seq = MAX_ENTRY_SEQ + 1;
    let mut b = vec![0; SB_SIZE];
    sb.encode(&mut b);
    assert_eq!(Superblock::decode(&b), Ok(sb));
    // One more, and the decoder refuses it: so no entry may go past `MAX_ENTRY_SEQ`.
    sb.journal_seq = MAX_ENTRY_SEQ + 2;
    sb.encode(&mut b);
    assert_eq!(Superblock::decode(&b), Err(SbError::Sequence));
    assert_eq!(sb.validate(), Err(SbError::Sequence));
}

#[test]
fn validate_is_the_decoders_predicate_for_sequence_numbers() {
    // The kernel checks a superblock it is about to write with `validate`: for every
    // sequence field, validate and decode agree at the limit.
    for (field, at) in [("seq", 0), ("journal_seq", 1), ("node_seq", 2)] {
        for v in [MAX_SEQ - 2, MAX_SEQ - 1, MAX_SEQ, u64::MAX] {
            let mut sb = one_member_sb();
            match at {
                0 => sb.seq = v,
                1 => sb.journal_seq = v,
                _ => sb.root.node_seq = v,
            }
            let mut b = vec![0; SB_SIZE];
            sb.encode(&mut b);
            assert_eq!(
                sb.validate().is_ok(),
                Superblock::decode(&b).is_ok(),
                "{field} = {v}"
            );
            assert_eq!(sb.validate().is_ok(), v < MAX_SEQ, "{field} = {v}");
        }
    }
}

#[test]
fn node_sequence_numbers_are_bounded() {
    use bucketfs_core::btree_format::*;
    let recs = common::encode_all(&common::maps([(1, 2)]));
    let mut b = vec![0; BLOCK_SIZE];
    for (seq, ok) in [
        (1, true),
        (MAX_SEQ - 1, true),
        (MAX_SEQ, false),
        (u64::MAX, false),
    ] {
        assert!(encode_leaf(&UUID, seq, 1, &recs, &mut b));
        let got = decode_node(&UUID, 0, &b, |_| {}, |_| {});
        if ok {
            assert_eq!(got.map(|h| h.seq), Ok(seq));
        } else {
            assert_eq!(got, Err(NodeError::Sequence), "seq {seq}");
        }
    }
}

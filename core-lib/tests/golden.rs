//! Golden encodings: known values encode to exactly these bytes, and the bytes decode back.
//!
//! The expected bytes were captured from the encoders as they stood before the on-disk structures
//! were declared through one field list, so a change of any offset, width, byte order, padding or
//! checksum coverage fails here. Only the non-zero 16-byte rows of each block are listed; every
//! other byte must be zero.
//!
//! Format 2 (key records in journal entries and leaves, `key_bytes`, `bytes`, 64-byte children,
//! version 2): the rows of the journal entry, the leaf and the interior node were captured from
//! the encoders and checked row by row against `Documentation/on-disk-format.md` (every record
//! header, value, padding and count at its documented offset) before being pinned here.

use bucketfs_core::bkey::*;
use bucketfs_core::btree_format::*;
use bucketfs_core::bucket_table::*;
use bucketfs_core::journal_format::*;
use bucketfs_core::layout::Field;
use bucketfs_core::namespace_format::*;
use bucketfs_core::options::{Opt, Options};
use bucketfs_core::superblock::*;
use std::fmt::Write;

/// The non-zero 16-byte rows of `b`, as `offset: hex`, one per line.
fn rows(b: &[u8]) -> String {
    let mut s = String::new();
    for (i, row) in b.chunks(16).enumerate() {
        if row.iter().all(|&x| x == 0) {
            continue;
        }
        write!(s, "{:04x}:", i * 16).unwrap();
        for word in row.chunks(4) {
            s.push(' ');
            for x in word {
                write!(s, "{x:02x}").unwrap();
            }
        }
        s.push('\n');
    }
    s
}

/// Compares `b` with `expected` (as written by [`rows`], indentation ignored).
fn check(what: &str, b: &[u8], expected: &str) {
    let expected: String = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let got = rows(b);
    if got != expected {
        print!("{what}: got\n{got}");
    }
    assert_eq!(got, expected, "{what}");
}

fn uuid(seed: u8) -> [u8; 16] {
    core::array::from_fn(|i| seed.wrapping_add(i as u8 * 7))
}

/// A superblock whose every field holds a distinct pattern (it need not be valid: the encoder
/// does not check), so a field written to the wrong place or width shows.
fn pattern_superblock() -> Superblock {
    let mut options = Options::default();
    // The four options of the captured bytes; later ones are pinned by their own tests
    // (`labels_and_target_encode_at_their_offsets`), so these bytes stay as captured.
    for (i, opt) in Opt::ALL.into_iter().take(4).enumerate() {
        options = options.with_unchecked(opt, 0xa1b2_c300 + i as u32);
    }
    let mut root = BtreeRoot {
        level: 0xc1,
        nr_ptrs: 0xc2,
        node_seq: 0xc3c4_c5c6_c7c8_c9ca,
        ..Default::default()
    };
    for (i, p) in root.ptrs.iter_mut().enumerate() {
        p.member = 0xd100_0000 + i as u32;
        p.bucket = 0xd200_0000 + i as u32;
    }
    let members = core::array::from_fn(|i| {
        let i = i as u32;
        Member {
            uuid: uuid(0x40 + i as u8),
            nbuckets: 0x0102_0304_0506_0700 + i as u64,
            bucket_size: 0x1100_0000 + i,
            table_start: 0x2200_0000 + i,
            table_buckets: 0x3300_0000 + i,
            journal_start: 0x4400_0000 + i,
            journal_buckets: 0x5500_0000 + i,
            first_bucket: 0x6600_0000 + i,
            flags: 0x7700_0000 + i,
        }
    });
    Superblock {
        uuid: uuid(0x10),
        seq: 0x8182_8384_8586_8788,
        member_index: 0x9192_9394,
        nr_members: 0xa1a2_a3a4,
        options,
        journal_seq: 0xb1b2_b3b4_b5b6_b7b8,
        journal_offset: 0,
        root,
        members,
        labels: Default::default(),
    }
}

/// A valid superblock with every member slot and every root pointer in use.
fn full_superblock() -> Superblock {
    let members: [Member; MAX_MEMBERS] = core::array::from_fn(|i| {
        let bucket_size = 4096 << (i % 3);
        let mut m = Member::layout((64 + i as u64) << 20, bucket_size, uuid(i as u8)).unwrap();
        if i % 2 == 1 {
            m.flags = 0;
        }
        m
    });
    let mut options = Options::default();
    options.set(Opt::MetadataReplicas, 4, 16).unwrap();
    options.set(Opt::MetadataReplicasRequired, 3, 16).unwrap();
    options.set(Opt::Discard, 0, 16).unwrap();
    options.set(Opt::AllocatorStuckTimeout, 77, 16).unwrap();
    let mut root = BtreeRoot {
        level: 2,
        nr_ptrs: 4,
        node_seq: 0x1234_5678_9abc,
        ..Default::default()
    };
    for (i, p) in root.ptrs.iter_mut().enumerate() {
        let member = i as u32 * 5;
        p.member = member;
        p.bucket = members[member as usize].first_bucket + 3 + i as u32;
    }
    Superblock {
        uuid: uuid(0xf0),
        seq: 0x0abc_def0_1234,
        member_index: 7,
        nr_members: 16,
        options,
        journal_seq: 0x5566_7788,
        journal_offset: 0,
        root,
        members,
        labels: Default::default(),
    }
}

const PATTERN_SUPERBLOCK: &str = "
    0000: 4255434b 45544653 02000000 2f3d3e24
    0010: 10171e25 2c333a41 484f565d 646b7279
    0020: 88878685 84838281 94939291 a4a3a2a1
    0030: 00c3b2a1 01c3b2a1 02c3b2a1 03c3b2a1
    0040: 00000000 00000000 00000000 01000000
    0070: b8b7b6b5 b4b3b2b1 c1c20000 00000000
    0080: cac9c8c7 c6c5c4c3 000000d1 000000d2
    0090: 010000d1 010000d2 020000d1 020000d2
    00a0: 030000d1 030000d2 00000000 00000000
    0100: 40474e55 5c636a71 787f868d 949ba2a9
    0110: 00070605 04030201 00000011 00000022
    0120: 00000033 00000044 00000055 00000066
    0130: 00000077 00000000 00000000 00000000
    0140: 41484f56 5d646b72 7980878e 959ca3aa
    0150: 01070605 04030201 01000011 01000022
    0160: 01000033 01000044 01000055 01000066
    0170: 01000077 00000000 00000000 00000000
    0180: 42495057 5e656c73 7a81888f 969da4ab
    0190: 02070605 04030201 02000011 02000022
    01a0: 02000033 02000044 02000055 02000066
    01b0: 02000077 00000000 00000000 00000000
    01c0: 434a5158 5f666d74 7b828990 979ea5ac
    01d0: 03070605 04030201 03000011 03000022
    01e0: 03000033 03000044 03000055 03000066
    01f0: 03000077 00000000 00000000 00000000
    0200: 444b5259 60676e75 7c838a91 989fa6ad
    0210: 04070605 04030201 04000011 04000022
    0220: 04000033 04000044 04000055 04000066
    0230: 04000077 00000000 00000000 00000000
    0240: 454c535a 61686f76 7d848b92 99a0a7ae
    0250: 05070605 04030201 05000011 05000022
    0260: 05000033 05000044 05000055 05000066
    0270: 05000077 00000000 00000000 00000000
    0280: 464d545b 62697077 7e858c93 9aa1a8af
    0290: 06070605 04030201 06000011 06000022
    02a0: 06000033 06000044 06000055 06000066
    02b0: 06000077 00000000 00000000 00000000
    02c0: 474e555c 636a7178 7f868d94 9ba2a9b0
    02d0: 07070605 04030201 07000011 07000022
    02e0: 07000033 07000044 07000055 07000066
    02f0: 07000077 00000000 00000000 00000000
    0300: 484f565d 646b7279 80878e95 9ca3aab1
    0310: 08070605 04030201 08000011 08000022
    0320: 08000033 08000044 08000055 08000066
    0330: 08000077 00000000 00000000 00000000
    0340: 4950575e 656c737a 81888f96 9da4abb2
    0350: 09070605 04030201 09000011 09000022
    0360: 09000033 09000044 09000055 09000066
    0370: 09000077 00000000 00000000 00000000
    0380: 4a51585f 666d747b 82899097 9ea5acb3
    0390: 0a070605 04030201 0a000011 0a000022
    03a0: 0a000033 0a000044 0a000055 0a000066
    03b0: 0a000077 00000000 00000000 00000000
    03c0: 4b525960 676e757c 838a9198 9fa6adb4
    03d0: 0b070605 04030201 0b000011 0b000022
    03e0: 0b000033 0b000044 0b000055 0b000066
    03f0: 0b000077 00000000 00000000 00000000
    0400: 4c535a61 686f767d 848b9299 a0a7aeb5
    0410: 0c070605 04030201 0c000011 0c000022
    0420: 0c000033 0c000044 0c000055 0c000066
    0430: 0c000077 00000000 00000000 00000000
    0440: 4d545b62 6970777e 858c939a a1a8afb6
    0450: 0d070605 04030201 0d000011 0d000022
    0460: 0d000033 0d000044 0d000055 0d000066
    0470: 0d000077 00000000 00000000 00000000
    0480: 4e555c63 6a71787f 868d949b a2a9b0b7
    0490: 0e070605 04030201 0e000011 0e000022
    04a0: 0e000033 0e000044 0e000055 0e000066
    04b0: 0e000077 00000000 00000000 00000000
    04c0: 4f565d64 6b727980 878e959c a3aab1b8
    04d0: 0f070605 04030201 0f000011 0f000022
    04e0: 0f000033 0f000044 0f000055 0f000066
    04f0: 0f000077 00000000 00000000 00000000
";

const FULL_SUPERBLOCK: &str = "
    0000: 4255434b 45544653 02000000 345eb4e5
    0010: f0f7fe05 0c131a21 282f363d 444b5259
    0020: 3412f0de bc0a0000 07000000 10000000
    0030: 04000000 03000000 00000000 4d000000
    0040: 00000000 00000000 00000000 01000000
    0070: 88776655 00000000 02040000 00000000
    0080: bc9a7856 34120000 00000000 17010000
    0090: 05000000 4c000000 0a000000 a0000000
    00a0: 0f000000 59010000 00000000 00000000
    0100: 00070e15 1c232a31 383f464d 545b6269
    0110: 00400000 00000000 00100000 03000000
    0120: 11000000 14000000 00010000 14010000
    0130: 01000000 00000000 00000000 00000000
    0140: 01080f16 1d242b32 3940474e 555c636a
    0150: 80200000 00000000 00200000 02000000
    0160: 05000000 07000000 82000000 89000000
    0180: 02091017 1e252c33 3a41484f 565d646b
    0190: 80100000 00000000 00400000 01000000
    01a0: 02000000 03000000 42000000 45000000
    01b0: 01000000 00000000 00000000 00000000
    01c0: 030a1118 1f262d34 3b424950 575e656c
    01d0: 00430000 00000000 00100000 03000000
    01e0: 11000000 14000000 0c010000 20010000
    0200: 040b1219 20272e35 3c434a51 585f666d
    0210: 00220000 00000000 00200000 02000000
    0220: 05000000 07000000 88000000 8f000000
    0230: 01000000 00000000 00000000 00000000
    0240: 050c131a 21282f36 3d444b52 5960676e
    0250: 40110000 00000000 00400000 01000000
    0260: 02000000 03000000 45000000 48000000
    0280: 060d141b 22293037 3e454c53 5a61686f
    0290: 00460000 00000000 00100000 03000000
    02a0: 12000000 15000000 18010000 2d010000
    02b0: 01000000 00000000 00000000 00000000
    02c0: 070e151c 232a3138 3f464d54 5b626970
    02d0: 80230000 00000000 00200000 02000000
    02e0: 05000000 07000000 8e000000 95000000
    0300: 080f161d 242b3239 40474e55 5c636a71
    0310: 00120000 00000000 00400000 01000000
    0320: 02000000 03000000 48000000 4b000000
    0330: 01000000 00000000 00000000 00000000
    0340: 0910171e 252c333a 41484f56 5d646b72
    0350: 00490000 00000000 00100000 03000000
    0360: 13000000 16000000 24010000 3a010000
    0380: 0a11181f 262d343b 42495057 5e656c73
    0390: 00250000 00000000 00200000 02000000
    03a0: 05000000 07000000 94000000 9b000000
    03b0: 01000000 00000000 00000000 00000000
    03c0: 0b121920 272e353c 434a5158 5f666d74
    03d0: c0120000 00000000 00400000 01000000
    03e0: 02000000 03000000 4b000000 4e000000
    0400: 0c131a21 282f363d 444b5259 60676e75
    0410: 004c0000 00000000 00100000 03000000
    0420: 14000000 17000000 30010000 47010000
    0430: 01000000 00000000 00000000 00000000
    0440: 0d141b22 2930373e 454c535a 61686f76
    0450: 80260000 00000000 00200000 02000000
    0460: 05000000 07000000 9a000000 a1000000
    0480: 0e151c23 2a31383f 464d545b 62697077
    0490: 80130000 00000000 00400000 01000000
    04a0: 02000000 03000000 4e000000 51000000
    04b0: 01000000 00000000 00000000 00000000
    04c0: 0f161d24 2b323940 474e555c 636a7178
    04d0: 004f0000 00000000 00100000 03000000
    04e0: 14000000 17000000 3c010000 53010000
";

#[test]
fn superblock_fields_are_at_their_offsets() {
    let mut b = vec![0xee; SB_SIZE];
    pattern_superblock().encode(&mut b);
    check("pattern superblock", &b, PATTERN_SUPERBLOCK);
}

#[test]
fn full_superblock_encodes_to_known_bytes_and_back() {
    let sb = full_superblock();
    let mut b = vec![0xee; SB_SIZE];
    sb.encode(&mut b);
    check("full superblock", &b, FULL_SUPERBLOCK);
    assert_eq!(Superblock::decode(&b), Ok(sb));
}

/// Labels go at 0x500 + 32 x member, the target's label at 0x700 and its code in slot 4 (0x040),
/// the fallback flag in slot 5 (0x044); all round trip through the decoder.
#[test]
fn labels_and_target_encode_at_their_offsets() {
    use bucketfs_core::target::{Label, Target};
    let mut sb = full_superblock();
    sb.labels[0] = Label::parse("ssd").unwrap();
    sb.labels[1] = Label::parse("hdd.hdd1").unwrap();
    sb.labels[15] = Label::parse(&"z".repeat(31)).unwrap();
    sb.options = sb
        .options
        .with_target(Target::Label(Label::parse("hdd").unwrap()))
        .with_unchecked(Opt::MetadataTargetFallback, 1);
    let mut b = vec![0u8; SB_SIZE];
    sb.encode(&mut b);
    assert_eq!(&b[0x040..0x048], &[0, 1, 0, 0, 1, 0, 0, 0]);
    assert_eq!(&b[0x500..0x504], b"ssd\0");
    assert!(b[0x503..0x520].iter().all(|&x| x == 0));
    assert_eq!(&b[0x520..0x529], b"hdd.hdd1\0");
    assert_eq!(&b[0x6e0..0x6ff], "z".repeat(31).as_bytes());
    assert_eq!(b[0x6ff], 0);
    assert_eq!(&b[0x700..0x704], b"hdd\0");
    assert!(b[0x720..].iter().all(|&x| x == 0));
    assert_eq!(Superblock::decode(&b), Ok(sb));
    // A dev-N target has its code only.
    sb.options = sb.options.with_target(Target::Member(3));
    sb.encode(&mut b);
    assert_eq!(&b[0x040..0x044], &[4, 0, 0, 0]);
    assert!(b[0x700..0x720].iter().all(|&x| x == 0));
    assert_eq!(Superblock::decode(&b), Ok(sb));
}

fn table_entries() -> Vec<BucketEntry> {
    (0..10)
        .map(|i| BucketEntry {
            state: BucketState::ALL[i % NR_STATES],
            gen: [0, 1, 0xab_cdef, MAX_GEN][i % 4],
        })
        .collect()
}

const TABLE_BLOCK: &str = "
    0000: 42465354 41424c45 646f31ea 04030201
    0010: 02000000 0a000000 88776655 44332211
    0020: 20272e35 3c434a51 585f666d 747b8289
    0030: 00000000 01010000 02efcdab 03ffffff
    0040: 04000000 05010000 00efcdab 01ffffff
    0050: 02000000 03010000 00000000 00000000
";

#[test]
fn table_block_encodes_to_known_bytes_and_back() {
    let id = TableBlockId {
        uuid: uuid(0x20),
        member: 0x0102_0304,
        block: 2,
    };
    let entries = table_entries();
    let mut b = vec![0xee; BLOCK_SIZE];
    encode_block(&id, 0x1122_3344_5566_7788, &entries, &mut b);
    check("table block", &b, TABLE_BLOCK);
    let mut got = Vec::new();
    let nbuckets = 2 * TABLE_ENTRIES_PER_BLOCK + 10;
    decode_block(&id, nbuckets, &b, |i, e| got.push((i, e))).unwrap();
    assert_eq!(got, entries.into_iter().enumerate().collect::<Vec<_>>());
}

#[test]
fn table_block_clamps_generations() {
    let id = TableBlockId {
        uuid: uuid(0x20),
        member: 0,
        block: 0,
    };
    let over = [BucketEntry {
        state: BucketState::Data,
        gen: MAX_GEN + 5,
    }];
    let mut b = vec![0; BLOCK_SIZE];
    encode_block(&id, 1, &over, &mut b);
    assert_eq!(b[48..52], [5, 0xff, 0xff, 0xff]);
}

/// Key records of every kind for the golden journal entry and leaf, written with distinct
/// patterns so a field at the wrong place or width shows.
fn golden_records() -> Vec<(Pos, bool, Vec<u8>)> {
    let inode = InodeDisk {
        mode: S_IFDIR | 0o755,
        uid: 0xa1a2_a3a4,
        gid: 0xb1b2_b3b4,
        nlink: 0x0000_0102,
        size: 0xc1c2_c3c4_c5c6_c7c8 >> 1,
        atime_sec: 0xd1d2_d3d4_d5d6_d7d8,
        mtime_sec: 0xe1e2_e3e4_e5e6_e7e8,
        ctime_sec: 0xf1f2_f3f4_f5f6_f7f8,
        atime_nsec: 0x0102_0304,
        mtime_nsec: 0x1112_1314,
        ctime_nsec: 0x2122_2324,
        rdev: 0x3132_3334,
    };
    let mut iv = vec![0u8; INODE_SIZE];
    inode.write(&mut iv);
    let mut dv = vec![0u8; DIRENT_HEADER + 3];
    let n = encode_dirent(0x4142_4344, 0x04, b"ab\xff", &mut dv).unwrap();
    dv.truncate(n);
    vec![
        (
            Pos::map(0x0102_0304_0506_0708),
            false,
            0xf1f2_f3f4_f5f6_f7f8u64.to_le_bytes().to_vec(),
        ),
        (inode_pos(0x5152_5354), false, iv),
        (dirent_pos(ROOT_INO, 0x0a0b_0c0d), false, dv),
        (symlink_pos(0x6162_6364, 2), false, b"target".to_vec()),
        (inode_pos(0x7172_7374), true, vec![]),
    ]
}

/// The records encoded one after the other.
fn encode_records(recs: &[(Pos, bool, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = [0u8; MAX_RECORD];
    for (pos, deleted, val) in recs {
        let n = encode(*pos, *deleted, val, &mut b).unwrap();
        out.extend_from_slice(&b[..n]);
    }
    out
}

fn journal_updates() -> Vec<BucketUpdate> {
    BucketState::ALL
        .iter()
        .enumerate()
        .map(|(i, &state)| BucketUpdate {
            member: 0xa100 + i as u32,
            bucket: 0xb1b2_0000 + i as u32,
            state,
            gen: [0, MAX_GEN, 0x12_3456][i % 3],
        })
        .collect()
}

const JOURNAL_ENTRY: &str = "
    0000: 4246534a 524e4c31 ce763987 01000000
    0010: 0f0e0d0c 0b0a0000 30373e45 4c535a61
    0020: 686f767d 848b9299 05000000 06000000
    0030: e0000000 00000000 00000000 00000000
    0040: 01000800 00000000 00000000 00000000
    0050: 08070605 04030201 f8f7f6f5 f4f3f2f1
    0060: 02004000 00000000 54535251 00000000
    0070: 00000000 00000000 ed410000 a4a3a2a1
    0080: b4b3b2b1 02010000 e463e362 e261e160
    0090: d8d7d6d5 d4d3d2d1 e8e7e6e5 e4e3e2e1
    00a0: f8f7f6f5 f4f3f2f1 04030201 14131211
    00b0: 24232221 34333231 03001300 00000000
    00c0: 01000000 00000000 0d0c0b0a 00000000
    00d0: 44434241 00000000 04030000 00000000
    00e0: 6162ff00 00000000 04000600 00000000
    00f0: 64636261 00000000 02000000 00000000
    0100: 74617267 65740000 02010000 00000000
    0110: 74737271 00000000 00000000 00000000
    0120: 00a10000 0000b2b1 00000000 00000000
    0130: 01a10000 0100b2b1 01000000 ffffff00
    0140: 02a10000 0200b2b1 02000000 56341200
    0150: 03a10000 0300b2b1 03000000 00000000
    0160: 04a10000 0400b2b1 04000000 ffffff00
    0170: 05a10000 0500b2b1 05000000 56341200
";

#[test]
fn journal_entry_encodes_to_known_bytes_and_back() {
    let recs = golden_records();
    let body = encode_records(&recs);
    let updates = journal_updates();
    let id = uuid(0x30);
    let mut b = vec![0xee; 2 * BLOCK_SIZE];
    let len = encode_entry(&id, 0x0a0b_0c0d_0e0f, recs.len(), &body, &updates, &mut b).unwrap();
    assert_eq!(len, BLOCK_SIZE);
    assert!(b[BLOCK_SIZE..].iter().all(|&x| x == 0xee));
    check("journal entry", &b[..len], JOURNAL_ENTRY);
    let h = decode_header(&id, &b).unwrap();
    assert_eq!(
        h,
        EntryHeader {
            seq: 0x0a0b_0c0d_0e0f,
            blocks: 1,
            nr_keys: 5,
            nr_updates: 6,
            key_bytes: body.len() as u32,
        }
    );
    let (mut k, mut u) = (Vec::new(), Vec::new());
    assert_eq!(
        decode_entry(
            &id,
            &b,
            |x| k.push((x.pos, x.deleted, x.val.to_vec())),
            |x| u.push(x)
        ),
        Ok(h)
    );
    assert_eq!((k, u), (recs, updates));
}

#[test]
fn journal_entry_of_two_blocks_has_its_length_and_one_checksum() {
    let recs: Vec<_> = (0..150u64)
        .map(|i| (Pos::map(i), false, (!i).to_le_bytes().to_vec()))
        .collect();
    let id = uuid(0x30);
    let mut b = vec![0; 2 * BLOCK_SIZE];
    assert_eq!(
        encode_entry(&id, 9, 150, &encode_records(&recs), &[], &mut b),
        Some(2 * BLOCK_SIZE)
    );
    assert_eq!(b[12..16], 2u32.to_le_bytes());
    assert_eq!(b[0x30..0x34], (150u32 * 32).to_le_bytes());
    let mut z = b.clone();
    z[8..12].fill(0);
    let crc = ::crc32c::crc32c(&z);
    assert_eq!(b[8..12], crc.to_le_bytes());
}

const LEAF: &str = "
    0000: 42465342 54524545 fbea7903 00000400
    0010: 76757473 72710000 50575e65 6c737a81
    0020: 888f969d a4abb2b9 c8000000 00000000
    0040: 01000800 00000000 00000000 00000000
    0050: 08070605 04030201 f8f7f6f5 f4f3f2f1
    0060: 02004000 00000000 54535251 00000000
    0070: 00000000 00000000 ed410000 a4a3a2a1
    0080: b4b3b2b1 02010000 e463e362 e261e160
    0090: d8d7d6d5 d4d3d2d1 e8e7e6e5 e4e3e2e1
    00a0: f8f7f6f5 f4f3f2f1 04030201 14131211
    00b0: 24232221 34333231 03001300 00000000
    00c0: 01000000 00000000 0d0c0b0a 00000000
    00d0: 44434241 00000000 04030000 00000000
    00e0: 6162ff00 00000000 04000600 00000000
    00f0: 64636261 00000000 02000000 00000000
    0100: 74617267 65740000 00000000 00000000
";

const INTERIOR: &str = "
    0000: 42465342 54524545 397ff62c 03000400
    0010: 84838281 00000000 60676e75 7c838a91
    0020: 989fa6ad b4bbc2c9 00010000 00000000
    0040: 01000000 00000000 00000000 00000010
    0050: 00000000 00000020 01000000 00000000
    0060: 000c0000 000000b0 00000000 00000000
    0080: 02000000 00000000 01000000 00000010
    0090: 00000000 00010020 02000000 00000000
    00a0: 100c0000 000100b0 110c0000 010100b0
    00c0: 03000000 00000000 02000000 00000010
    00d0: 00000000 00020020 03000000 00000000
    00e0: 200c0000 000200b0 210c0000 010200b0
    00f0: 220c0000 020200b0 00000000 00000000
    0100: 04000000 00000000 03000000 00000010
    0110: 00000000 00030020 04000000 00000000
    0120: 300c0000 000300b0 310c0000 010300b0
    0130: 320c0000 020300b0 330c0000 030300b0
";

#[test]
fn btree_leaf_encodes_to_known_bytes_and_back() {
    // The records sorted, the deletion left out (a leaf holds none).
    let mut recs: Vec<_> = golden_records().into_iter().filter(|r| !r.1).collect();
    recs.sort_by_key(|r| r.0);
    let body = encode_records(&recs);
    let id = uuid(0x50);
    let mut b = vec![0xee; BLOCK_SIZE];
    assert!(encode_leaf(
        &id,
        0x7172_7374_7576,
        recs.len(),
        &body,
        &mut b
    ));
    check("leaf", &b, LEAF);
    let mut got = Vec::new();
    let h = decode_node(
        &id,
        0,
        &b,
        |k| got.push((k.pos, k.deleted, k.val.to_vec())),
        |_| panic!(),
    )
    .unwrap();
    assert_eq!(
        (h.level, h.nr, h.seq, h.bytes as usize),
        (0, 4, 0x7172_7374_7576, body.len())
    );
    assert_eq!(got, recs);
}

#[test]
fn btree_interior_encodes_to_known_bytes_and_back() {
    let children: Vec<Child> = (0..4u32)
        .map(|i| {
            let mut c = Child {
                kind: 1 + i as u8,
                ino: 0x1000_0000_0000_0000 + i as u64,
                off: 0x2000_0000_0000_0000 + ((i as u64) << 40),
                nr_ptrs: i + 1,
                ..Default::default()
            };
            for (j, p) in c.ptrs.iter_mut().enumerate().take(i as usize + 1) {
                p.member = 0x0c00 + 16 * i + j as u32;
                p.bucket = 0xb000_0000 + 256 * i + j as u32;
            }
            c
        })
        .collect();
    let id = uuid(0x60);
    let mut b = vec![0xee; BLOCK_SIZE];
    assert!(encode_interior(&id, 0x8182_8384, 3, &children, &mut b));
    check("interior", &b, INTERIOR);
    let mut got = Vec::new();
    let h = decode_node(&id, 3, &b, |_| panic!(), |c| got.push(c)).unwrap();
    assert_eq!((h.level, h.nr, h.seq, h.bytes), (3, 4, 0x8182_8384, 4 * 64));
    assert_eq!(got, children);
}

// SPDX-License-Identifier: GPL-2.0

//! Key records (`bkey.rs`) and namespace values (`namespace_format.rs`): round trips, every
//! refusal of `decode_at` and `check_value`, and that the encoder never writes what the decoder
//! refuses.

mod common;

use bucketfs_core::bkey::*;
use bucketfs_core::layout::Field;
use bucketfs_core::namespace_format::*;
use common::*;
use proptest::prelude::*;

fn enc(r: &Rec) -> Vec<u8> {
    encode_all(std::slice::from_ref(r))
}

/// A record header followed by `val` (padded to 8), every field as given.
fn raw(kind: u8, flags: u8, len: u16, ino: u64, off: u64, val: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; record_size(val.len())];
    KeyHeaderDisk {
        kind,
        flags,
        len,
        ino,
        off,
    }
    .write(&mut b);
    b[KEY_HEADER..KEY_HEADER + val.len()].copy_from_slice(val);
    b
}

#[test]
fn records_round_trip_with_their_padding() {
    let mut recs = one_of_each();
    recs.push(Rec::del(Pos::map(3)));
    recs.push(Rec::del(inode_pos(9)));
    recs.push(Rec::put(symlink_pos(5, 3), &[b'x'; SYMLINK_PIECE - 1]));
    recs.push(Rec::put(symlink_pos(6, 0), &[b'y'; SYMLINK_PIECE]));
    for r in &recs {
        let b = enc(r);
        assert_eq!(b.len(), record_size(r.val.len()), "{r:?}");
        assert_eq!(b.len() % 8, 0);
        // The padding is zero.
        assert!(b[KEY_HEADER + r.val.len()..].iter().all(|&x| x == 0));
        let h = KeyHeaderDisk::read(&b);
        assert_eq!(
            (h.kind, h.flags, h.len as usize, h.ino, h.off),
            (
                r.pos.kind,
                if r.deleted { FLAG_DELETE } else { 0 },
                r.val.len(),
                r.pos.ino,
                r.pos.off
            )
        );
        let (k, next) = decode_at(&b, 0).unwrap();
        assert_eq!((Rec::of(k), next), (r.clone(), b.len()));
    }
    // One after the other, at their offsets.
    let all = encode_all(&recs);
    let got: Vec<Rec> = records(&all, recs.len())
        .map(|k| Rec::of(k.unwrap()))
        .collect();
    assert_eq!(got, recs);
    let mut it = records(&all, recs.len());
    for _ in it.by_ref() {}
    assert_eq!(it.offset(), all.len());
    assert_eq!(record_size(0), KEY_HEADER);
    assert_eq!(record_size(1), KEY_HEADER + 8);
    assert_eq!(record_size(MAX_VAL), MAX_RECORD);
}

#[test]
fn a_deletion_carries_no_value() {
    // The encoder drops a value given with a deletion.
    let mut b = [0xeeu8; 64];
    assert_eq!(encode(Pos::map(1), true, &[1; 8], &mut b), Some(KEY_HEADER));
    assert_eq!(
        decode_at(&b, 0).map(|(k, n)| (Rec::of(k), n)),
        Ok((Rec::del(Pos::map(1)), KEY_HEADER))
    );
    // A deletion's position need not hold a valid value's position (it removes what is
    // there), but its kind must be known.
    for pos in [inode_pos(0), dirent_pos(0, u64::MAX), symlink_pos(7, 99)] {
        let r = Rec::del(pos);
        assert_eq!(decode_at(&enc(&r), 0).map(|k| Rec::of(k.0)), Ok(r));
    }
    for kind in [0u8, 6, 0xff] {
        let pos = Pos {
            kind,
            ino: 0,
            off: 0,
        };
        assert_eq!(encode(pos, true, &[], &mut b), None, "kind {kind}");
    }
}

#[test]
fn decode_at_refuses_truncated_records() {
    let b = enc(&Rec::put(symlink_pos(5, 0), b"0123456789"));
    assert_eq!(b.len(), KEY_HEADER + 16);
    for cut in 0..b.len() {
        assert_eq!(decode_at(&b[..cut], 0), Err(KeyError::Truncated), "{cut}");
    }
    // Past the end, at the end, and where `at + header` overflows.
    for at in [b.len(), b.len() + 1, usize::MAX - 10, usize::MAX] {
        assert_eq!(decode_at(&b, at), Err(KeyError::Truncated), "at {at}");
    }
    // The second of two records, cut.
    let two = encode_all(&maps([(1, 1), (2, 2)]));
    assert!(decode_at(&two[..40], 0).is_ok());
    assert_eq!(decode_at(&two[..40], 32), Err(KeyError::Truncated));
    assert_eq!(decode_at(&two, 32).map(|k| k.1), Ok(64));
}

#[test]
fn decode_at_refuses_bad_headers() {
    let v = 7u64.to_le_bytes();
    // Unknown kinds.
    for kind in [0u8, 6, 7, 0x80, 0xff] {
        assert_eq!(
            decode_at(&raw(kind, 0, 8, 0, 1, &v), 0),
            Err(KeyError::Header),
            "kind {kind}"
        );
    }
    // Unknown flags, alone or with the deletion flag.
    for flags in [2u8, 4, 0x80, 0xff, FLAG_DELETE | 2] {
        assert_eq!(
            decode_at(&raw(1, flags, 8, 0, 1, &v), 0),
            Err(KeyError::Header),
            "flags {flags:#x}"
        );
    }
    // A deletion with a value.
    assert_eq!(
        decode_at(&raw(1, FLAG_DELETE, 8, 0, 1, &v), 0),
        Err(KeyError::Header)
    );
    // A length past MAX_VAL: refused from the header alone, bytes or not.
    for len in [MAX_VAL as u16 + 1, 0x7fff, 0xffff] {
        assert_eq!(
            decode_at(&raw(4, 0, len, 1, 0, &[]), 0),
            Err(KeyError::Header)
        );
        assert_eq!(
            decode_at(&raw(4, 0, len, 1, 0, &vec![b'a'; len as usize]), 0),
            Err(KeyError::Header)
        );
    }
    // The good header, for contrast.
    assert!(decode_at(&raw(1, 0, 8, 0, 1, &v), 0).is_ok());
}

/// Values each kind refuses, at positions that are otherwise good, and ones it accepts.
fn bad_values() -> Vec<(&'static str, Pos, Vec<u8>)> {
    let map = Pos::map(5);
    let ino = inode_pos(2);
    let de = dirent_pos(ROOT_INO, 1234);
    let sl = symlink_pos(3, 0);
    let dt = dtype_of(S_IFREG);
    vec![
        ("map: 7 bytes", map, vec![0; 7]),
        ("map: 9 bytes", map, vec![0; 9]),
        ("map: empty", map, vec![]),
        ("map: ino 1", Pos { ino: 1, ..map }, vec![0; 8]),
        ("inode: offset 1", Pos { off: 1, ..ino }, inode(|_| {})),
        ("inode: number 0", inode_pos(0), inode(|_| {})),
        (
            "inode: above MAX_INO",
            inode_pos(MAX_INO + 1),
            inode(|_| {}),
        ),
        ("inode: 63 bytes", ino, inode(|_| {})[..63].to_vec()),
        ("inode: 65 bytes", ino, [inode(|_| {}), vec![0]].concat()),
        ("inode: nlink 0", ino, inode(|i| i.nlink = 0)),
        ("inode: no type", ino, inode(|i| i.mode = 0o644)),
        ("inode: type 0o030000", ino, inode(|i| i.mode = 0o030644)),
        ("inode: mode bit 16", ino, inode(|i| i.mode |= 1 << 16)),
        ("inode: mode bit 31", ino, inode(|i| i.mode |= 1 << 31)),
        ("inode: size", ino, inode(|i| i.size = MAX_SIZE + 1)),
        (
            "inode: atime_nsec",
            ino,
            inode(|i| i.atime_nsec = 1_000_000_000),
        ),
        ("inode: mtime_nsec", ino, inode(|i| i.mtime_nsec = u32::MAX)),
        (
            "inode: ctime_nsec",
            ino,
            inode(|i| i.ctime_nsec = 1_000_000_000),
        ),
        (
            "inode: empty symlink",
            ino,
            inode(|i| {
                i.mode = S_IFLNK | 0o777;
                i.size = 0
            }),
        ),
        (
            "inode: symlink too long",
            ino,
            inode(|i| {
                i.mode = S_IFLNK | 0o777;
                i.size = MAX_SYMLINK as u64 + 1
            }),
        ),
        ("dirent: directory 0", dirent_pos(0, 1), dirent(5, b"a")),
        (
            "dirent: directory above MAX_INO",
            dirent_pos(MAX_INO + 1, 1),
            dirent(5, b"a"),
        ),
        (
            "dirent: slot HASH_LIMIT",
            dirent_pos(1, HASH_LIMIT),
            dirent(5, b"a"),
        ),
        ("dirent: slot max", dirent_pos(1, u64::MAX), dirent(5, b"a")),
        ("dirent: short header", de, dirent(5, b"abc")[..15].to_vec()),
        ("dirent: no name", de, dirent_raw(5, dt, 0, b"")),
        ("dirent: name_len long", de, dirent_raw(5, dt, 4, b"abc")),
        ("dirent: name_len short", de, dirent_raw(5, dt, 2, b"abc")),
        ("dirent: '/'", de, dirent(5, b"a/b")),
        ("dirent: only '/'", de, dirent(5, b"/")),
        ("dirent: NUL", de, dirent(5, b"a\0")),
        ("dirent: '.'", de, dirent(5, b".")),
        ("dirent: '..'", de, dirent(5, b"..")),
        ("dirent: inode 0", de, dirent(0, b"a")),
        ("dirent: inode above MAX_INO", de, dirent(MAX_INO + 1, b"a")),
        ("dirent: type 0", de, dirent_raw(5, 0, 1, b"a")),
        ("dirent: type 3", de, dirent_raw(5, 3, 1, b"a")),
        (
            "dirent: type 16 + DT_REG",
            de,
            dirent_raw(5, 16 + dt, 1, b"a"),
        ),
        ("dirent: type 0xf8", de, dirent_raw(5, 0xf8, 1, b"a")),
        ("symlink: inode 0", symlink_pos(0, 0), b"x".to_vec()),
        ("symlink: piece 4", symlink_pos(3, 4), b"x".to_vec()),
        (
            "symlink: piece max",
            symlink_pos(3, u64::MAX),
            b"x".to_vec(),
        ),
        ("symlink: empty", sl, vec![]),
        ("symlink: too long", sl, vec![b'x'; SYMLINK_PIECE + 1]),
        ("unknown kind", Pos { kind: 9, ..map }, vec![0; 8]),
    ]
}

#[test]
fn check_value_refuses_every_bad_value_and_decode_at_with_it() {
    for (what, pos, val) in bad_values() {
        assert!(!check_value(pos, &val), "{what}: accepted");
        let mut b = [0u8; MAX_RECORD + 8];
        assert_eq!(encode(pos, false, &val, &mut b), None, "{what}: encoded");
        if val.len() <= MAX_VAL {
            let r = raw(pos.kind, 0, val.len() as u16, pos.ino, pos.off, &val);
            let want = if Kind::from_u8(pos.kind).is_none() {
                KeyError::Header
            } else {
                KeyError::Value
            };
            assert_eq!(decode_at(&r, 0).map(|_| ()), Err(want), "{what}");
        }
    }
}

#[test]
fn check_value_accepts_good_values_at_their_limits() {
    let dt = dtype_of(S_IFREG);
    let good: Vec<(&str, Pos, Vec<u8>)> = vec![
        ("map: key max", Pos::map(u64::MAX), vec![0xff; 8]),
        ("inode: MAX_INO", inode_pos(MAX_INO), inode(|_| {})),
        ("inode: root", inode_pos(ROOT_INO), inode(|_| {})),
        (
            "inode: mode 0o7777",
            inode_pos(2),
            inode(|i| i.mode = S_IFDIR | 0o7777),
        ),
        (
            "inode: size MAX_SIZE",
            inode_pos(2),
            inode(|i| i.size = MAX_SIZE),
        ),
        (
            "inode: nsec 999999999",
            inode_pos(2),
            inode(|i| {
                i.atime_nsec = 999_999_999;
                i.ctime_nsec = 999_999_999
            }),
        ),
        (
            "inode: nlink max",
            inode_pos(2),
            inode(|i| i.nlink = u32::MAX),
        ),
        (
            "inode: symlink 1 byte",
            inode_pos(2),
            inode(|i| {
                i.mode = S_IFLNK | 0o777;
                i.size = 1
            }),
        ),
        (
            "inode: symlink MAX_SYMLINK",
            inode_pos(2),
            inode(|i| {
                i.mode = S_IFLNK | 0o777;
                i.size = MAX_SYMLINK as u64
            }),
        ),
        (
            "inode: times before the epoch",
            inode_pos(2),
            inode(|i| i.mtime_sec = (-1i64) as u64),
        ),
        (
            "dirent: slot below HASH_LIMIT",
            dirent_pos(1, HASH_LIMIT - 1),
            dirent(5, b"a"),
        ),
        (
            "dirent: MAX_INO",
            dirent_pos(MAX_INO, 0),
            dirent(MAX_INO, b"a"),
        ),
        ("dirent: '...'", dirent_pos(1, 0), dirent(5, b"...")),
        ("dirent: '.a'", dirent_pos(1, 0), dirent(5, b".a")),
        (
            "dirent: 255 bytes",
            dirent_pos(1, 0),
            dirent(5, &[b'n'; MAX_NAME]),
        ),
        (
            "symlink: piece 3",
            symlink_pos(3, 3),
            vec![b'x'; SYMLINK_PIECE],
        ),
        ("symlink: 1 byte", symlink_pos(3, 0), vec![0]),
    ];
    for mode in [
        S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK,
    ] {
        let v = inode(|i| {
            i.mode = mode | 0o600;
            i.size = 5
        });
        assert!(check_value(inode_pos(3), &v), "mode {mode:o}");
        let d = dirent_raw(3, dtype_of(mode), 1, b"a");
        assert!(check_value(dirent_pos(1, 0), &d), "dtype of {mode:o}");
    }
    for (what, pos, val) in good {
        assert!(check_value(pos, &val), "{what}: refused");
        let r = Rec::put(pos, &val);
        assert_eq!(
            decode_at(&enc(&r), 0).map(|k| Rec::of(k.0)),
            Ok(r),
            "{what}"
        );
    }
    let _ = dt;
}

#[test]
fn names_with_every_byte_but_slash_and_nul() {
    // Every byte but '/' and NUL is a valid one-byte name (but ".").
    for c in 0..=255u8 {
        let ok = c != b'/' && c != 0 && c != b'.';
        assert_eq!(valid_name(&[c]), ok, "byte {c:#x}");
        let mut v = [0u8; DIRENT_HEADER + MAX_NAME];
        assert_eq!(
            encode_dirent(5, 8, &[c], &mut v).is_some(),
            ok,
            "byte {c:#x}"
        );
        assert_eq!(check_value(dirent_pos(1, 0), &dirent(5, &[c])), ok);
    }
    // One name holding every allowed byte, and names of 255 bytes, round trip.
    let all: Vec<u8> = (1..=255u8).filter(|&c| c != b'/').collect();
    assert_eq!(all.len(), 254);
    let long: Vec<u8> = (0..MAX_NAME)
        .map(|i| 1 + (i % 200) as u8)
        .map(|c| if c == b'/' { b'_' } else { c })
        .collect();
    for name in [
        all.clone(),
        long,
        vec![0xff; MAX_NAME],
        [all.clone(), vec![b'z']].concat(),
    ] {
        assert!(name.len() <= MAX_NAME);
        let mut v = [0u8; DIRENT_HEADER + MAX_NAME];
        let n = encode_dirent(42, 4, &name, &mut v).unwrap();
        assert_eq!(n, DIRENT_HEADER + name.len());
        assert_eq!(
            decode_dirent(&v[..n]),
            Some(Dirent {
                ino: 42,
                dtype: 4,
                name: &name
            })
        );
        let pos = dirent_pos(ROOT_INO, dirent_hash(hash_seed(&[3; 16]), &name));
        let r = Rec::put(pos, &v[..n]);
        let b = enc(&r);
        assert_eq!(decode_at(&b, 0).map(|k| Rec::of(k.0)), Ok(r));
        // A '/' or a NUL anywhere in it refuses it.
        for bad in [b'/', 0] {
            for at in [0, name.len() / 2, name.len() - 1] {
                let mut n2 = name.clone();
                n2[at] = bad;
                assert!(!valid_name(&n2));
                assert!(encode_dirent(42, 4, &n2, &mut v).is_none());
                assert!(!check_value(pos, &dirent(42, &n2)));
            }
        }
    }
    // 256 bytes: too long for the name, and for its length byte.
    assert!(!valid_name(&[b'a'; MAX_NAME + 1]));
    let mut v = [0u8; DIRENT_HEADER + MAX_NAME + 1];
    assert!(encode_dirent(5, 8, &[b'a'; MAX_NAME + 1], &mut v).is_none());
    assert!(!check_value(
        dirent_pos(1, 0),
        &dirent_raw(5, 8, 0, &[b'a'; MAX_NAME + 1])
    ));
    assert!(!valid_name(b""));
    // Too small a buffer: nothing.
    assert!(encode_dirent(5, 8, b"abc", &mut [0u8; DIRENT_HEADER + 2]).is_none());
}

#[test]
fn encode_writes_nothing_it_refuses_or_cannot_fit() {
    let r = Rec::put(symlink_pos(5, 0), b"0123456789");
    let size = record_size(10);
    let mut b = vec![0xeeu8; size - 1];
    assert_eq!(encode(r.pos, false, &r.val, &mut b), None);
    assert!(b.iter().all(|&x| x == 0xee));
    let mut b = vec![0xeeu8; MAX_RECORD];
    assert_eq!(
        encode(inode_pos(2), false, &inode(|i| i.nlink = 0), &mut b),
        None
    );
    assert!(b.iter().all(|&x| x == 0xee));
    assert_eq!(encode(r.pos, false, &r.val, &mut b), Some(size));
    assert!(b[size..].iter().all(|&x| x == 0xee));
}

#[test]
fn positions_sort_by_kind_then_inode_then_offset() {
    let mut v = vec![
        Pos::new(Kind::Symlink, 1, 0),
        Pos::new(Kind::Dirent, 1, 5),
        Pos::new(Kind::Inode, 2, 0),
        Pos::new(Kind::Inode, 1, 0),
        Pos::map(u64::MAX),
        Pos::map(0),
        Pos::new(Kind::Dirent, 1, 4),
        Pos::MIN,
    ];
    v.sort();
    assert_eq!(
        v,
        [
            Pos::MIN,
            Pos::map(0),
            Pos::map(u64::MAX),
            Pos::new(Kind::Inode, 1, 0),
            Pos::new(Kind::Inode, 2, 0),
            Pos::new(Kind::Dirent, 1, 4),
            Pos::new(Kind::Dirent, 1, 5),
            Pos::new(Kind::Symlink, 1, 0),
        ]
    );
    assert_eq!(Pos::map(3).succ(), Some(Pos::map(4)));
    assert_eq!(Pos::map(u64::MAX).succ(), Some(Pos::new(Kind::Map, 1, 0)));
    assert_eq!(
        Pos::new(Kind::Map, u64::MAX, u64::MAX).succ(),
        Some(Pos::new(Kind::Inode, 0, 0))
    );
    let last = Pos {
        kind: u8::MAX,
        ino: u64::MAX,
        off: u64::MAX,
    };
    assert_eq!(last.succ(), None);
    for p in [Pos::MIN, Pos::map(9), Pos::new(Kind::Dirent, 4, u64::MAX)] {
        assert!(p.succ().unwrap() > p);
    }
}

#[test]
fn key_digests_sum_to_a_set_identity() {
    let recs = one_of_each();
    let sum = |rs: &[Rec]| {
        rs.iter()
            .fold(0u64, |a, r| a.wrapping_add(key_digest(r.pos, &r.val)))
    };
    let mut rev = recs.clone();
    rev.reverse();
    assert_eq!(sum(&recs), sum(&rev));
    // A changed value, offset, inode or kind changes the term.
    let base = key_digest(Pos::map(7), &7u64.to_le_bytes());
    assert_ne!(base, key_digest(Pos::map(7), &8u64.to_le_bytes()));
    assert_ne!(base, key_digest(Pos::map(8), &7u64.to_le_bytes()));
    assert_ne!(
        base,
        key_digest(
            Pos {
                ino: 1,
                ..Pos::map(7)
            },
            &7u64.to_le_bytes()
        )
    );
    assert_ne!(
        base,
        key_digest(Pos::new(Kind::Symlink, 0, 7), &7u64.to_le_bytes())
    );
    // A value's later words count too.
    assert_ne!(
        key_digest(symlink_pos(1, 0), &[0; 24]),
        key_digest(symlink_pos(1, 0), &[&[0u8; 16][..], &[1u8; 8][..]].concat())
    );
}

#[test]
fn the_records_iterator_stops_at_the_first_refusal() {
    let mut b = encode_all(&maps([(1, 1), (2, 2), (3, 3)]));
    b[32] = 0; // Record 1's kind.
    let got: Vec<_> = records(&b, 3).map(|r| r.map(Rec::of)).collect();
    assert_eq!(got, [Ok(Rec::map(1, 1)), Err(KeyError::Header)]);
    // More records asked for than there are: the one past the end is truncated.
    let b = encode_all(&maps([(1, 1)]));
    let got: Vec<_> = records(&b, 2).map(|r| r.map(Rec::of)).collect();
    assert_eq!(got, [Ok(Rec::map(1, 1)), Err(KeyError::Truncated)]);
    assert_eq!(records(&b, 0).count(), 0);
}

#[test]
fn directory_entry_hashes_leave_room_for_the_probe_window() {
    let seed = hash_seed(&*b"0123456789abcdef");
    assert_ne!(seed, hash_seed(&*b"0123456789abcdeg"));
    let mut distinct = std::collections::HashSet::new();
    for i in 0..2000u32 {
        let name = format!("file-{i}");
        let h = dirent_hash(seed, name.as_bytes());
        assert!(h < HASH_LIMIT - DIRENT_PROBE);
        // Every probe slot is a valid directory entry position.
        assert!(check_value(
            dirent_pos(ROOT_INO, h + DIRENT_PROBE - 1),
            &dirent(5, name.as_bytes())
        ));
        distinct.insert(h);
        assert_eq!(h, dirent_hash(seed, name.as_bytes()));
    }
    assert!(distinct.len() > 1990);
    // The seed changes where a name lands.
    assert_ne!(dirent_hash(1, b"a"), dirent_hash(2, b"a"));
}

/// A position of any kind code (mostly known ones) with small or extreme numbers.
fn any_pos() -> impl Strategy<Value = Pos> {
    let num = prop_oneof![
        0u64..8,
        Just(MAX_INO),
        Just(MAX_INO + 1),
        Just(HASH_LIMIT),
        any::<u64>()
    ];
    (
        prop_oneof![8 => 1u8..=4, 1 => any::<u8>()],
        num.clone(),
        num,
    )
        .prop_map(|(kind, ino, off)| Pos { kind, ino, off })
}

/// A value that is often valid for some kind: an inode, a directory entry, 8 bytes, bytes.
fn any_val() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (any::<u32>(), 0u32..3, any::<u64>(), 0u32..1_000_000_001).prop_map(
            |(mode, nlink, size, ns)| {
                inode(|i| {
                    i.mode =
                        [S_IFREG, S_IFDIR, S_IFLNK, 0][(mode % 4) as usize] | (mode >> 20) & 0o7777;
                    i.nlink = nlink;
                    i.size = size % 5000;
                    i.mtime_nsec = ns;
                })
            }
        ),
        (0u64..4, 0u8..16, prop::collection::vec(any::<u8>(), 0..260))
            .prop_map(|(ino, dt, name)| dirent_raw(ino, dt, name.len() as u8, &name)),
        any::<u64>().prop_map(|v| v.to_le_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..1100),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoding_any_bytes_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..1200),
        at in prop_oneof![0usize..1200, Just(usize::MAX)],
        nr in 0usize..50,
    ) {
        if let Ok((k, next)) = decode_at(&bytes, at) {
            // What it accepts is a checked record inside the buffer.
            prop_assert!(next <= bytes.len() && next > at && (next - at) % 8 == 0);
            prop_assert!(k.deleted || check_value(k.pos, k.val));
            prop_assert!(!k.deleted || k.val.is_empty());
        }
        for r in records(&bytes, nr) {
            let _ = r;
        }
        let _ = decode_dirent(&bytes);
        let _ = check_value(Pos::map(1), &bytes);
    }

    #[test]
    fn encode_never_writes_what_decode_refuses(
        pos in any_pos(),
        deleted in prop::bool::weighted(0.2),
        val in any_val(),
    ) {
        let mut b = vec![0x5au8; MAX_RECORD + 16];
        match encode(pos, deleted, &val, &mut b) {
            Some(n) => {
                let want = Rec { pos, deleted, val: if deleted { vec![] } else { val.clone() } };
                prop_assert_eq!(n, record_size(want.val.len()));
                let got = decode_at(&b[..n], 0).map(|(k, next)| (Rec::of(k), next));
                prop_assert_eq!(got, Ok((want, n)));
            }
            None => {
                // Refused: nothing written, and it is something the decoder refuses.
                prop_assert!(b.iter().all(|&x| x == 0x5a));
                prop_assert!(deleted || !check_value(pos, &val));
                if !deleted && val.len() <= MAX_VAL {
                    let r = raw(pos.kind, 0, val.len() as u16, pos.ino, pos.off, &val);
                    prop_assert!(decode_at(&r, 0).is_err());
                }
            }
        }
    }
}

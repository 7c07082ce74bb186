// SPDX-License-Identifier: GPL-2.0

//! The namespace operations (`namespace.rs`) over a `BTreeMap` store: every operation and
//! every refusal, names of 255 bytes and of every byte but `/` and NUL, hash collisions filling
//! a window, random operation sequences against a model of the tree, and the checker's report
//! of each kind of damage.
//!
//! Collisions use `Names::with_hash`, a placement function the test chooses (the real hash is
//! 61 bits wide, so no search finds 33 names in one window): every operation and the checker
//! take the `Names`, so they see the same placement.

use bucketfs_core::bkey::Pos;
use bucketfs_core::layout::Field;
use bucketfs_core::namespace::*;
use bucketfs_core::namespace_format::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};

mod common;
use common::Mem;

#[derive(Default)]
struct Map(HashMap<u64, Tally>);

impl Tallies for Map {
    fn get(&self, ino: u64) -> Tally {
        self.0.get(&ino).copied().unwrap_or_default()
    }

    fn set(&mut self, ino: u64, t: Tally) -> Result<(), NsError> {
        self.0.insert(ino, t);
        Ok(())
    }
}

fn attr(mode: u32, nlink: u32, size: u64) -> InodeDisk {
    InodeDisk {
        mode,
        uid: 1000,
        gid: 100,
        nlink,
        size,
        atime_sec: 1_700_000_000,
        mtime_sec: 1_700_000_000,
        ctime_sec: 1_700_000_000,
        atime_nsec: 1,
        mtime_nsec: 2,
        ctime_nsec: 3,
        rdev: if mode & S_IFMT == S_IFCHR { 0x0501 } else { 0 },
    }
}

/// The test filesystem: a store, names, and the glue's work (computing attributes after each
/// operation, as the VFS glue does). Every refused operation is checked to have written
/// nothing.
struct Fs {
    s: Mem,
    n: Names,
}

fn problems(s: &Mem, n: &Names) -> Vec<Problem> {
    let mut v = Vec::new();
    let mut t = Map::default();
    let count = check(s, n, &mut t, &mut |p| v.push(p)).unwrap();
    assert_eq!(count, v.len() as u64);
    v
}

fn describe(p: &Problem) -> String {
    let mut s = String::new();
    p.describe(&mut s).unwrap();
    s
}

impl Fs {
    fn new(n: Names) -> Fs {
        let mut s = Mem::default();
        let mut b = [0u8; INODE_SIZE];
        attr(S_IFDIR | 0o755, 2, 0).write(&mut b);
        s.put(inode_pos(ROOT_INO), &b).unwrap();
        Fs { s, n }
    }

    fn real() -> Fs {
        Fs::new(Names::new(0x1234_5678_9abc_def0))
    }

    fn inode(&self, ino: u64) -> Inode {
        read_inode(&self.s, ino).unwrap()
    }

    /// Runs `f` on the store; a refusal must leave the store as it was.
    fn run(
        &mut self,
        f: impl FnOnce(&mut Mem, &Names) -> Result<(), NsError>,
    ) -> Result<(), NsError> {
        let before = self.s.clone();
        let r = f(&mut self.s, &self.n);
        if let Err(e) = r {
            if !matches!(e, NsError::Errno(_)) {
                assert_eq!(self.s, before, "refused with {e:?} after writing");
            }
        }
        r
    }

    fn touched(mut i: Inode) -> Inode {
        i.attr.mtime_sec += 1;
        i.attr.ctime_sec += 1;
        i
    }

    /// Creates `name` in `dir` with `mode` (a symlink: to `target`); returns the inode number.
    fn mk(
        &mut self,
        dir: u64,
        name: &[u8],
        mode: u32,
        target: Option<&[u8]>,
    ) -> Result<u64, NsError> {
        let mut d = Fs::touched(read_inode(&self.s, dir)?);
        let ino = next_ino(&self.s).unwrap();
        let is_dir = mode & S_IFMT == S_IFDIR;
        if is_dir {
            d.attr.nlink += 1;
        }
        let size = target.map_or(0, |t| t.len() as u64);
        let new = Inode {
            ino,
            attr: attr(mode, if is_dir { 2 } else { 1 }, size),
        };
        self.run(|s, n| create(s, n, &d, name, &new, target))?;
        Ok(ino)
    }

    fn mkdir(&mut self, dir: u64, name: &[u8]) -> Result<u64, NsError> {
        self.mk(dir, name, S_IFDIR | 0o755, None)
    }

    fn touch(&mut self, dir: u64, name: &[u8]) -> Result<u64, NsError> {
        self.mk(dir, name, S_IFREG | 0o644, None)
    }

    fn ln(&mut self, target: u64, dir: u64, name: &[u8]) -> Result<(), NsError> {
        let d = Fs::touched(read_inode(&self.s, dir)?);
        let mut t = Fs::touched(read_inode(&self.s, target)?);
        t.attr.nlink += 1;
        self.run(|s, n| link(s, n, &d, name, &t))
    }

    fn rm(&mut self, dir: u64, name: &[u8], rmdir: bool) -> Result<(), NsError> {
        let mut d = Fs::touched(read_inode(&self.s, dir)?);
        let f = lookup(&self.s, &self.n, dir, name)?.ok_or(NsError::NotFound)?;
        let mut v = Fs::touched(read_inode(&self.s, f.ino)?);
        if rmdir {
            v.attr.nlink = 0;
            d.attr.nlink -= 1;
        } else {
            v.attr.nlink -= 1;
        }
        self.run(|s, n| unlink(s, n, &d, name, &v, rmdir))
    }

    fn mv(&mut self, od: u64, on: &[u8], nd: u64, nn: &[u8]) -> Result<(), NsError> {
        let mut o = Fs::touched(read_inode(&self.s, od)?);
        let mut d = Fs::touched(read_inode(&self.s, nd)?);
        let f = lookup(&self.s, &self.n, od, on)?.ok_or(NsError::NotFound)?;
        let m = Fs::touched(read_inode(&self.s, f.ino)?);
        let mut r = match lookup(&self.s, &self.n, nd, nn)? {
            Some(t) => Some(Fs::touched(read_inode(&self.s, t.ino)?)),
            None => None,
        };
        let same_inode = r.is_some_and(|r| r.ino == m.ino) || (od == nd && on == nn);
        if !same_inode {
            if m.is_dir() && od != nd {
                o.attr.nlink -= 1;
                d.attr.nlink += 1;
            }
            if let Some(r) = r.as_mut() {
                if r.is_dir() {
                    r.attr.nlink = 0;
                    d.attr.nlink -= 1;
                } else {
                    r.attr.nlink -= 1;
                }
            }
        } else {
            o = read_inode(&self.s, od)?;
            d = read_inode(&self.s, nd)?;
            r = r.map(|_| m);
        }
        if od == nd {
            o = d;
        }
        self.run(|s, n| rename(s, n, &o, on, &d, nn, &m, r.as_ref()))
    }

    fn names(&self, dir: u64) -> BTreeMap<Vec<u8>, (u64, u8)> {
        let mut out = BTreeMap::new();
        let mut last = None;
        readdir(&self.s, dir, 0, &mut |slot, ino, dtype, name| {
            assert!(last.is_none_or(|l| l < slot));
            last = Some(slot);
            assert!(out.insert(name.to_vec(), (ino, dtype)).is_none());
            true
        })
        .unwrap();
        out
    }

    fn clean(&self) {
        let p = problems(&self.s, &self.n);
        assert!(
            p.is_empty(),
            "{:?}",
            p.iter().map(describe).collect::<Vec<_>>()
        );
    }

    fn find(&self, dir: u64, name: &[u8]) -> Option<u64> {
        lookup(&self.s, &self.n, dir, name).unwrap().map(|f| f.ino)
    }
}

/// A name of every byte but `/` and NUL (254 bytes).
fn every_byte() -> Vec<u8> {
    (1..=255u8).filter(|&c| c != b'/').collect()
}

#[test]
fn errno_values() {
    let e = [
        (NsError::NotFound, 2),
        (NsError::Exists, 17),
        (NsError::NotEmpty, 39),
        (NsError::NameTooLong, 36),
        (NsError::Invalid, 22),
        (NsError::NoSpace, 28),
        (NsError::NotDir, 20),
        (NsError::IsDir, 21),
        (NsError::Corrupt, 117),
        (NsError::Errno(125), 125),
    ];
    for (err, n) in e {
        assert_eq!(err.errno(), n);
    }
}

#[test]
fn create_lookup_readdir_and_attributes() {
    let mut fs = Fs::real();
    assert_eq!(next_ino(&fs.s).unwrap(), ROOT_INO + 1);
    let a = fs.mkdir(ROOT_INO, b"a").unwrap();
    let f = fs.touch(a, b"file").unwrap();
    let long = vec![b'x'; 255];
    let l = fs.touch(a, &long).unwrap();
    let every = every_byte();
    let e = fs.touch(ROOT_INO, &every).unwrap();
    let fifo = fs.mk(a, b"fifo", S_IFIFO | 0o600, None).unwrap();
    let chr = fs.mk(a, b"chr", S_IFCHR | 0o600, None).unwrap();
    let sock = fs.mk(a, b"sock", S_IFSOCK | 0o600, None).unwrap();
    assert_eq!((a, f, l, e), (2, 3, 4, 5));
    assert_eq!(fs.inode(ROOT_INO).attr.nlink, 3);
    assert_eq!(fs.inode(a).attr.nlink, 2);
    assert_eq!(fs.inode(chr).attr.rdev, 0x0501);
    let found = lookup(&fs.s, &fs.n, a, &long).unwrap().unwrap();
    assert_eq!((found.ino, found.dtype), (l, dtype_of(S_IFREG)));
    assert!((fs.n.slot(&long)..fs.n.slot(&long) + DIRENT_PROBE).contains(&found.slot));
    assert_eq!(fs.find(ROOT_INO, &every), Some(e));
    assert_eq!(fs.find(ROOT_INO, b"file"), None);
    let names = fs.names(a);
    assert_eq!(names.len(), 5);
    assert_eq!(names[&b"fifo".to_vec()], (fifo, dtype_of(S_IFIFO)));
    assert_eq!(names[&b"sock".to_vec()], (sock, dtype_of(S_IFSOCK)));
    assert_eq!(
        fs.names(ROOT_INO).keys().collect::<Vec<_>>(),
        vec![&every, &b"a".to_vec()]
    );
    assert_eq!(count_inodes(&fs.s).unwrap(), 8);
    assert_eq!(next_ino(&fs.s).unwrap(), 9);
    fs.clean();

    // readdir resumes from a slot and stops when told.
    let mut slots = Vec::new();
    readdir(&fs.s, a, 0, &mut |s, _, _, _| {
        slots.push(s);
        true
    })
    .unwrap();
    let mut rest = Vec::new();
    readdir(&fs.s, a, slots[2] + 1, &mut |s, _, _, _| {
        rest.push(s);
        rest.len() < 2
    })
    .unwrap();
    assert_eq!(rest, slots[3..5]);

    // setattr: mode bits, owner, times, a regular file's size.
    let mut i = fs.inode(f);
    i.attr.mode = S_IFREG | 0o600;
    i.attr.uid = 0;
    i.attr.size = 0;
    i.attr.atime_sec = 5;
    setattr(&mut fs.s, &i).unwrap();
    assert_eq!(fs.inode(f), i);
    let mut bad = i;
    bad.attr.mode = S_IFDIR | 0o600;
    assert_eq!(fs.run(|s, _| setattr(s, &bad)), Err(NsError::Invalid));
    let mut bad = i;
    bad.attr.nlink = 2;
    assert_eq!(fs.run(|s, _| setattr(s, &bad)), Err(NsError::Invalid));
    let mut bad = i;
    bad.attr.mtime_nsec = 1_000_000_000;
    assert_eq!(fs.run(|s, _| setattr(s, &bad)), Err(NsError::Invalid));
    let mut bad = fs.inode(a);
    bad.attr.size = 7;
    assert_eq!(fs.run(|s, _| setattr(s, &bad)), Err(NsError::Invalid));
    let ghost = Inode { ino: 99, ..i };
    assert_eq!(fs.run(|s, _| setattr(s, &ghost)), Err(NsError::NotFound));
    assert_eq!(read_inode(&fs.s, 99), Err(NsError::NotFound));
    fs.clean();
}

#[test]
fn create_refusals() {
    let mut fs = Fs::real();
    let a = fs.mkdir(ROOT_INO, b"a").unwrap();
    let f = fs.touch(a, b"f").unwrap();
    assert_eq!(fs.touch(a, &vec![b'y'; 256]), Err(NsError::NameTooLong));
    for name in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        assert_eq!(fs.touch(a, name), Err(NsError::Invalid), "{name:?}");
        assert_eq!(
            lookup(&fs.s, &fs.n, a, name).err().unwrap(),
            NsError::Invalid
        );
    }
    assert_eq!(
        lookup(&fs.s, &fs.n, a, &[b'z'; 256]),
        Err(NsError::NameTooLong)
    );
    assert_eq!(fs.touch(a, b"f"), Err(NsError::Exists));
    assert_eq!(fs.mkdir(a, b"f"), Err(NsError::Exists));
    assert_eq!(fs.touch(f, b"g"), Err(NsError::NotDir));

    let dir = fs.inode(a);
    let new = |ino, mode, nlink, size| Inode {
        ino,
        attr: attr(mode, nlink, size),
    };
    let file = new(10, S_IFREG | 0o644, 1, 0);
    // A directory without a key.
    let ghost = Inode { ino: 50, ..dir };
    assert_eq!(
        fs.run(|s, n| create(s, n, &ghost, b"x", &file, None)),
        Err(NsError::NotFound)
    );
    // An inode number in use.
    let taken = Inode { ino: f, ..file };
    assert_eq!(
        fs.run(|s, n| create(s, n, &dir, b"x", &taken, None)),
        Err(NsError::Corrupt)
    );
    // Attributes: bad type, nlink, inode number, dir's nlink not raised for a directory.
    for bad in [
        new(10, 0o644, 1, 0),
        new(10, S_IFREG | 0o644, 2, 0),
        new(0, S_IFREG | 0o644, 1, 0),
        new(MAX_INO + 1, S_IFREG | 0o644, 1, 0),
        new(a, S_IFREG | 0o644, 1, 0),
        new(10, S_IFDIR | 0o755, 2, 0),
    ] {
        assert_eq!(
            fs.run(|s, n| create(s, n, &dir, b"x", &bad, None)),
            Err(NsError::Invalid),
            "{bad:?}"
        );
    }
    let mut raised = dir;
    raised.attr.nlink += 1;
    assert_eq!(
        fs.run(|s, n| create(s, n, &raised, b"x", &file, None)),
        Err(NsError::Invalid)
    );
    // Symbolic links: the target's length is the size, 1 to MAX_SYMLINK bytes.
    let link4 = new(10, S_IFLNK | 0o777, 1, 4);
    assert_eq!(
        fs.run(|s, n| create(s, n, &dir, b"x", &link4, None)),
        Err(NsError::Invalid)
    );
    assert_eq!(
        fs.run(|s, n| create(s, n, &dir, b"x", &link4, Some(b"abc"))),
        Err(NsError::Invalid)
    );
    assert_eq!(
        fs.run(|s, n| create(s, n, &dir, b"x", &file, Some(b"abcd"))),
        Err(NsError::Invalid)
    );
    let big = vec![b'p'; MAX_SYMLINK + 1];
    let link_big = new(10, S_IFLNK | 0o777, 1, big.len() as u64);
    assert_eq!(
        fs.run(|s, n| create(s, n, &dir, b"x", &link_big, Some(&big))),
        Err(NsError::Invalid)
    );
    fs.clean();
}

#[test]
fn symlinks_in_pieces() {
    let mut fs = Fs::real();
    for (i, len) in [1usize, 1023, 1024, 1025, 2048, 3000, MAX_SYMLINK]
        .into_iter()
        .enumerate()
    {
        let target: Vec<u8> = (0..len).map(|k| (k % 251) as u8 + 1).collect();
        let name = format!("l{i}");
        let ino = fs
            .mk(ROOT_INO, name.as_bytes(), S_IFLNK | 0o777, Some(&target))
            .unwrap();
        let pieces =
            fs.s.m
                .range(symlink_pos(ino, 0)..symlink_pos(ino + 1, 0))
                .count();
        assert_eq!(pieces, len.div_ceil(SYMLINK_PIECE));
        let mut out = [0u8; 4096];
        assert_eq!(read_link(&fs.s, ino, &mut out), Ok(len));
        assert_eq!(&out[..len], &target[..]);
        let mut short = vec![0u8; len - 1];
        assert_eq!(read_link(&fs.s, ino, &mut short), Err(NsError::Invalid));
        assert_eq!(fs.find(ROOT_INO, name.as_bytes()), Some(ino));
        assert_eq!(fs.names(ROOT_INO)[name.as_bytes()].1, dtype_of(S_IFLNK));
    }
    fs.clean();
    let f = fs.touch(ROOT_INO, b"plain").unwrap();
    let mut out = [0u8; 4096];
    assert_eq!(read_link(&fs.s, f, &mut out), Err(NsError::Invalid));
    assert_eq!(read_link(&fs.s, 77, &mut out), Err(NsError::NotFound));
    // Unlinking the last name deletes the pieces.
    let l = fs.find(ROOT_INO, b"l5").unwrap();
    fs.rm(ROOT_INO, b"l5", false).unwrap();
    assert_eq!(
        fs.s.m
            .range(symlink_pos(l, 0)..symlink_pos(l + 1, 0))
            .count(),
        0
    );
    assert!(!fs.s.m.contains_key(&inode_pos(l)));
    // A missing piece is corruption.
    let l = fs.find(ROOT_INO, b"l4").unwrap();
    fs.s.m.remove(&symlink_pos(l, 1));
    assert_eq!(read_link(&fs.s, l, &mut out), Err(NsError::Corrupt));
}

#[test]
fn link_and_unlink() {
    let mut fs = Fs::real();
    let a = fs.mkdir(ROOT_INO, b"a").unwrap();
    let f = fs.touch(a, b"f").unwrap();
    fs.ln(f, ROOT_INO, b"g").unwrap();
    fs.ln(f, a, b"h").unwrap();
    assert_eq!(fs.inode(f).attr.nlink, 3);
    fs.clean();
    assert_eq!(fs.ln(f, a, b"h"), Err(NsError::Exists));
    assert_eq!(fs.ln(f, f, b"x"), Err(NsError::NotDir));
    // A directory cannot be linked; an inode without a key cannot either.
    let d = fs.inode(ROOT_INO);
    let mut adir = fs.inode(a);
    adir.attr.nlink += 1;
    assert_eq!(
        fs.run(|s, n| link(s, n, &d, b"x", &adir)),
        Err(NsError::Invalid)
    );
    let ghost = Inode {
        ino: 40,
        attr: attr(S_IFREG | 0o644, 2, 0),
    };
    assert_eq!(
        fs.run(|s, n| link(s, n, &d, b"x", &ghost)),
        Err(NsError::NotFound)
    );
    // The target's nlink must be one more than stored.
    let same = fs.inode(f);
    assert_eq!(
        fs.run(|s, n| link(s, n, &d, b"x", &same)),
        Err(NsError::Invalid)
    );

    fs.rm(a, b"f", false).unwrap();
    assert_eq!(fs.inode(f).attr.nlink, 2);
    assert_eq!(fs.find(a, b"f"), None);
    assert_eq!(fs.rm(a, b"f", false), Err(NsError::NotFound));
    assert_eq!(fs.rm(ROOT_INO, b"a", false), Err(NsError::IsDir));
    assert_eq!(fs.rm(ROOT_INO, b"g", true), Err(NsError::NotDir));
    assert_eq!(fs.rm(ROOT_INO, b"a", true), Err(NsError::NotEmpty));
    // The name must point at the inode given.
    let root = fs.inode(ROOT_INO);
    let mut other = fs.inode(a);
    other.attr.nlink -= 1;
    assert_eq!(
        fs.run(|s, n| unlink(s, n, &root, b"g", &other, false)),
        Err(NsError::Corrupt)
    );
    let mut fi = fs.inode(f);
    fi.attr.nlink -= 1;
    assert_eq!(
        fs.run(|s, n| unlink(s, n, &root, b"nope", &fi, false)),
        Err(NsError::NotFound)
    );
    // nlink not lowered: refused.
    let fi = fs.inode(f);
    assert_eq!(
        fs.run(|s, n| unlink(s, n, &root, b"g", &fi, false)),
        Err(NsError::Invalid)
    );
    fs.rm(ROOT_INO, b"g", false).unwrap();
    fs.rm(a, b"h", false).unwrap();
    assert_eq!(read_inode(&fs.s, f), Err(NsError::NotFound));
    fs.rm(ROOT_INO, b"a", true).unwrap();
    assert_eq!(read_inode(&fs.s, a), Err(NsError::NotFound));
    assert_eq!(fs.inode(ROOT_INO).attr.nlink, 2);
    assert_eq!(fs.s.m.len(), 1);
    assert_eq!(next_ino(&fs.s).unwrap(), ROOT_INO + 1);
    fs.clean();
}

#[test]
fn renames() {
    let mut fs = Fs::real();
    let a = fs.mkdir(ROOT_INO, b"a").unwrap();
    let b = fs.mkdir(ROOT_INO, b"b").unwrap();
    let sub = fs.mkdir(a, b"sub").unwrap();
    let f = fs.touch(sub, b"f").unwrap();
    // Same directory, new name.
    fs.mv(a, b"sub", a, b"sub2").unwrap();
    assert_eq!(fs.find(a, b"sub"), None);
    assert_eq!(fs.find(a, b"sub2"), Some(sub));
    fs.clean();
    // A directory across directories keeps working, link counts follow.
    fs.mv(a, b"sub2", b, b"moved").unwrap();
    assert_eq!(fs.inode(a).attr.nlink, 2);
    assert_eq!(fs.inode(b).attr.nlink, 3);
    assert_eq!(fs.find(sub, b"f"), Some(f));
    fs.touch(sub, b"g").unwrap();
    fs.clean();
    // Over an existing file.
    let g = fs.find(sub, b"g").unwrap();
    fs.ln(g, ROOT_INO, b"g2").unwrap();
    fs.mv(sub, b"f", sub, b"g").unwrap();
    assert_eq!(fs.find(sub, b"g"), Some(f));
    assert_eq!(fs.inode(g).attr.nlink, 1);
    fs.mv(ROOT_INO, b"g2", sub, b"g").unwrap();
    assert_eq!(read_inode(&fs.s, f), Err(NsError::NotFound));
    assert_eq!(fs.find(sub, b"g"), Some(g));
    fs.clean();
    // Over an empty directory, across directories.
    let e = fs.mkdir(a, b"empty").unwrap();
    fs.mv(b, b"moved", a, b"empty").unwrap();
    assert_eq!(read_inode(&fs.s, e), Err(NsError::NotFound));
    assert_eq!(fs.find(a, b"empty"), Some(sub));
    assert_eq!(fs.inode(a).attr.nlink, 3);
    assert_eq!(fs.inode(b).attr.nlink, 2);
    fs.clean();
    // Refusals.
    let x = fs.touch(ROOT_INO, b"x").unwrap();
    let d2 = fs.mkdir(ROOT_INO, b"d2").unwrap();
    fs.touch(d2, b"inside").unwrap();
    assert_eq!(fs.mv(ROOT_INO, b"x", a, b"empty"), Err(NsError::IsDir));
    assert_eq!(fs.mv(a, b"empty", ROOT_INO, b"x"), Err(NsError::NotDir));
    assert_eq!(fs.mv(a, b"empty", ROOT_INO, b"d2"), Err(NsError::NotEmpty));
    assert_eq!(
        fs.mv(ROOT_INO, b"x", a, &[b'n'; 256]),
        Err(NsError::NameTooLong)
    );
    assert_eq!(fs.mv(ROOT_INO, b"x", a, b".."), Err(NsError::Invalid));
    let (root, ai, xi) = (fs.inode(ROOT_INO), fs.inode(a), fs.inode(x));
    assert_eq!(
        fs.run(|s, n| rename(s, n, &root, b"nope", &ai, b"y", &xi, None)),
        Err(NsError::NotFound)
    );
    assert_eq!(
        fs.run(|s, n| rename(s, n, &root, b"x", &ai, b"empty", &xi, None)),
        Err(NsError::Exists)
    );
    assert_eq!(
        fs.run(|s, n| rename(s, n, &root, b"x", &ai, b"new", &xi, Some(&xi))),
        Err(NsError::NotFound)
    );
    let di = fs.inode(d2);
    assert_eq!(
        fs.run(|s, n| rename(s, n, &root, b"d2", &ai, b"new", &xi, None)),
        Err(NsError::Corrupt)
    );
    // A directory into itself.
    let mut dd = di;
    dd.attr.nlink += 1;
    let mut r2 = root;
    r2.attr.nlink -= 1;
    assert_eq!(
        fs.run(|s, n| rename(s, n, &r2, b"d2", &dd, b"self", &di, None)),
        Err(NsError::Invalid)
    );
    // Same directory given with two different attributes.
    let mut root2 = root;
    root2.attr.mtime_sec += 9;
    assert_eq!(
        fs.run(|s, n| rename(s, n, &root, b"x", &root2, b"y", &xi, None)),
        Err(NsError::Invalid)
    );
    // Directory link counts not adjusted for a moving directory.
    assert_eq!(
        fs.run(|s, n| rename(s, n, &root, b"d2", &ai, b"d3", &di, None)),
        Err(NsError::Invalid)
    );
    // No-ops: the same name, and two names of one inode.
    let before = fs.s.clone();
    fs.mv(ROOT_INO, b"x", ROOT_INO, b"x").unwrap();
    fs.ln(x, a, b"xl").unwrap();
    let before2 = fs.s.clone();
    fs.mv(ROOT_INO, b"x", a, b"xl").unwrap();
    assert_eq!(fs.s, before2);
    assert_ne!(fs.s, before);
    fs.clean();
}

/// A directory renamed within its parent is not locked by the VFS: the caller's copy of its
/// attributes may predate a chmod or a link count change that ran meanwhile. The rename takes
/// only the type and the change time from it and keeps the stored rest.
#[test]
fn rename_keeps_the_stored_attributes_of_the_moved_inode() {
    let mut fs = Fs::real();
    let d = fs.mkdir(ROOT_INO, b"d").unwrap();
    let x = fs.mkdir(d, b"x").unwrap();
    let stale = fs.inode(x);
    // A chmod and a subdirectory after the caller took its copy.
    let mut now = fs.inode(x);
    now.attr.mode = S_IFDIR | 0o700;
    fs.run(|s, _| setattr(s, &now)).unwrap();
    fs.mkdir(x, b"sub").unwrap();
    let dir = fs.inode(d);
    let mut moved = stale;
    moved.attr.ctime_sec = 12345;
    fs.run(|s, n| rename(s, n, &dir, b"x", &dir, b"y", &moved, None))
        .unwrap();
    let after = fs.inode(x);
    assert_eq!(after.attr.mode, S_IFDIR | 0o700);
    assert_eq!(after.attr.nlink, 3);
    assert_eq!(after.attr.ctime_sec, 12345);
    assert_eq!(fs.find(d, b"y"), Some(x));
    fs.clean();
}

#[test]
fn errors_of_the_store_pass_through() {
    let mut fs = Fs::real();
    fs.s.fail_after = Some(1);
    assert_eq!(fs.touch(ROOT_INO, b"f"), Err(NsError::Errno(5)));
}

/// Every name at slot 100, except names starting with `b` (slot 90: windows overlap).
fn collide(_: u64, name: &[u8]) -> u64 {
    if name[0] == b'b' {
        90
    } else {
        100
    }
}

#[test]
fn collisions_fill_the_window_and_lookups_cross_gaps() {
    let mut fs = Fs::new(Names::with_hash(7, collide));
    let mut inos = Vec::new();
    for i in 0..DIRENT_PROBE {
        inos.push(fs.touch(ROOT_INO, format!("a{i}").as_bytes()).unwrap());
    }
    let mut slots = Vec::new();
    readdir(&fs.s, ROOT_INO, 0, &mut |s, _, _, _| {
        slots.push(s);
        true
    })
    .unwrap();
    assert_eq!(slots, (100..100 + DIRENT_PROBE).collect::<Vec<_>>());
    assert_eq!(fs.touch(ROOT_INO, b"a-one-more"), Err(NsError::NoSpace));
    assert_eq!(fs.mkdir(ROOT_INO, b"a-dir"), Err(NsError::NoSpace));
    // b-names: slots 90..100 free, then the a-names' slots.
    for i in 0..10 {
        fs.touch(ROOT_INO, format!("b{i}").as_bytes()).unwrap();
    }
    assert_eq!(fs.touch(ROOT_INO, b"b-full"), Err(NsError::NoSpace));
    // Gaps: delete a few; every other name is still found across them.
    for i in [0, 5, 6, 31] {
        fs.rm(ROOT_INO, format!("a{i}").as_bytes(), false).unwrap();
    }
    for i in 0..DIRENT_PROBE {
        let want = (![0, 5, 6, 31].contains(&i)).then_some(inos[i as usize]);
        assert_eq!(fs.find(ROOT_INO, format!("a{i}").as_bytes()), want);
    }
    // A new name takes the first free slot of its window.
    let n = fs.touch(ROOT_INO, b"a-new").unwrap();
    assert_eq!(
        lookup(&fs.s, &fs.n, ROOT_INO, b"a-new")
            .unwrap()
            .unwrap()
            .slot,
        100
    );
    let bn = fs.touch(ROOT_INO, b"b-new").unwrap();
    assert_eq!(
        lookup(&fs.s, &fs.n, ROOT_INO, b"b-new")
            .unwrap()
            .unwrap()
            .slot,
        105
    );
    // A rename within the full window reuses the slot it frees.
    fs.touch(ROOT_INO, b"a-fill").unwrap();
    fs.touch(ROOT_INO, b"a-fill2").unwrap();
    assert_eq!(
        lookup(&fs.s, &fs.n, ROOT_INO, b"a-fill2")
            .unwrap()
            .unwrap()
            .slot,
        131
    );
    assert_eq!(fs.touch(ROOT_INO, b"a-x"), Err(NsError::NoSpace));
    fs.mv(ROOT_INO, b"a-new", ROOT_INO, b"a-renamed").unwrap();
    assert_eq!(
        lookup(&fs.s, &fs.n, ROOT_INO, b"a-renamed")
            .unwrap()
            .unwrap()
            .slot,
        100
    );
    assert_eq!(fs.find(ROOT_INO, b"a-renamed"), Some(n));
    assert_eq!(fs.find(ROOT_INO, b"a-new"), None);
    // A b-name renamed to an a-name in a full a-window: no slot.
    assert_eq!(
        fs.mv(ROOT_INO, b"b0", ROOT_INO, b"a-y"),
        Err(NsError::NoSpace)
    );
    assert_eq!(fs.find(ROOT_INO, b"b-new"), Some(bn));
    fs.clean();
}

// ---------------------------------------------------------------------------------------------
// The checker against damage.

/// A small tree: /a (dir), /a/f (file, also /g), /a/d (dir), /l (symlink of 2000 bytes).
fn tree() -> (Fs, [u64; 4]) {
    let mut fs = Fs::real();
    let a = fs.mkdir(ROOT_INO, b"a").unwrap();
    let f = fs.touch(a, b"f").unwrap();
    fs.ln(f, ROOT_INO, b"g").unwrap();
    let d = fs.mkdir(a, b"d").unwrap();
    let l = fs
        .mk(ROOT_INO, b"l", S_IFLNK | 0o777, Some(&[b'q'; 2000]))
        .unwrap();
    fs.clean();
    (fs, [a, f, d, l])
}

fn has(fs: &Fs, want: Problem) {
    let p = problems(&fs.s, &fs.n);
    assert!(
        p.contains(&want),
        "{want:?} not in {:?}",
        p.iter().map(describe).collect::<Vec<_>>()
    );
    assert!(!describe(&want).is_empty());
}

fn set_inode(fs: &mut Fs, ino: u64, f: impl FnOnce(&mut InodeDisk)) {
    let mut i = fs.inode(ino);
    f(&mut i.attr);
    let mut b = [0u8; INODE_SIZE];
    i.attr.write(&mut b);
    fs.s.m.insert(inode_pos(ino), b.to_vec());
}

fn put_entry(fs: &mut Fs, dir: u64, slot: u64, name: &[u8], ino: u64, dtype: u8) {
    let mut b = [0u8; 300];
    let n = encode_dirent(ino, dtype, name, &mut b).unwrap();
    fs.s.m.insert(dirent_pos(dir, slot), b[..n].to_vec());
}

#[test]
fn check_finds_a_missing_inode() {
    let (mut fs, [a, f, ..]) = tree();
    fs.s.m.remove(&inode_pos(f));
    let slot = lookup(&fs.s, &fs.n, a, b"f").unwrap().unwrap().slot;
    has(
        &fs,
        Problem::Dangling {
            dir: a,
            slot,
            ino: f,
        },
    );
}

#[test]
fn check_finds_wrong_nlinks() {
    let (mut fs, [a, f, ..]) = tree();
    set_inode(&mut fs, f, |i| i.nlink = 3);
    has(
        &fs,
        Problem::WrongNlink {
            ino: f,
            nlink: 3,
            expected: 2,
        },
    );
    set_inode(&mut fs, a, |i| i.nlink = 2);
    has(
        &fs,
        Problem::WrongNlink {
            ino: a,
            nlink: 2,
            expected: 3,
        },
    );
    set_inode(&mut fs, ROOT_INO, |i| i.nlink = 9);
    has(
        &fs,
        Problem::WrongNlink {
            ino: ROOT_INO,
            nlink: 9,
            expected: 3,
        },
    );
}

#[test]
fn check_finds_entries_in_wrong_slots_and_twice() {
    let (mut fs, [a, ..]) = tree();
    let found = lookup(&fs.s, &fs.n, a, b"f").unwrap().unwrap();
    let v = fs.s.m.remove(&dirent_pos(a, found.slot)).unwrap();
    let hash = fs.n.slot(b"f");
    fs.s.m.insert(dirent_pos(a, hash + DIRENT_PROBE), v.clone());
    has(
        &fs,
        Problem::WrongSlot {
            dir: a,
            slot: hash + DIRENT_PROBE,
            hash,
        },
    );
    assert_eq!(lookup(&fs.s, &fs.n, a, b"f").unwrap(), None);

    let (mut fs, [a, f, ..]) = tree();
    let found = lookup(&fs.s, &fs.n, a, b"f").unwrap().unwrap();
    let slot2 = found.slot + 1;
    put_entry(&mut fs, a, slot2, b"f", f, dtype_of(S_IFREG));
    has(
        &fs,
        Problem::DuplicateName {
            dir: a,
            slot: slot2,
            first: found.slot,
        },
    );
}

#[test]
fn check_finds_wrong_types_and_entries_outside_directories() {
    let (mut fs, [a, f, _, l]) = tree();
    let found = lookup(&fs.s, &fs.n, a, b"f").unwrap().unwrap();
    put_entry(&mut fs, a, found.slot, b"f", f, dtype_of(S_IFDIR));
    has(
        &fs,
        Problem::WrongType {
            dir: a,
            slot: found.slot,
            ino: f,
            dtype: dtype_of(S_IFDIR),
            mode: S_IFREG | 0o644,
        },
    );
    put_entry(&mut fs, l, 5, b"z", f, dtype_of(S_IFREG));
    has(
        &fs,
        Problem::EntryInNonDir {
            dir: l,
            slot: 5,
            missing: false,
        },
    );
    put_entry(&mut fs, 300, 5, b"z", f, dtype_of(S_IFREG));
    has(
        &fs,
        Problem::EntryInNonDir {
            dir: 300,
            slot: 5,
            missing: true,
        },
    );
}

#[test]
fn check_finds_root_problems() {
    let (mut fs, [a, ..]) = tree();
    let slot = fs.n.slot(b"up");
    put_entry(&mut fs, a, slot, b"up", ROOT_INO, dtype_of(S_IFDIR));
    has(&fs, Problem::RootLinked { links: 1 });
    let (mut fs, _) = tree();
    set_inode(&mut fs, ROOT_INO, |i| i.mode = S_IFREG | 0o644);
    has(
        &fs,
        Problem::RootNotDir {
            mode: S_IFREG | 0o644,
        },
    );
    let (mut fs, _) = tree();
    fs.s.m.remove(&inode_pos(ROOT_INO));
    has(&fs, Problem::RootMissing);
}

#[test]
fn check_finds_a_directory_linked_twice() {
    let (mut fs, [_, _, d, _]) = tree();
    let slot = fs.n.slot(b"d2");
    put_entry(&mut fs, ROOT_INO, slot, b"d2", d, dtype_of(S_IFDIR));
    has(&fs, Problem::DirLinked { ino: d, links: 2 });
}

#[test]
fn check_finds_an_orphan() {
    let (mut fs, _) = tree();
    let mut b = [0u8; INODE_SIZE];
    attr(S_IFREG | 0o644, 1, 0).write(&mut b);
    fs.s.m.insert(inode_pos(77), b.to_vec());
    has(&fs, Problem::Orphan { ino: 77 });
}

#[test]
fn check_finds_a_cycle() {
    // /a/d gets an entry "back" pointing at /a, and /a's entry in the root goes: a and d
    // point at each other, unreachable.
    let (mut fs, [a, _, d, _]) = tree();
    let slot = lookup(&fs.s, &fs.n, ROOT_INO, b"a").unwrap().unwrap().slot;
    fs.s.m.remove(&dirent_pos(ROOT_INO, slot));
    let slot = fs.n.slot(b"back");
    put_entry(&mut fs, d, slot, b"back", a, dtype_of(S_IFDIR));
    set_inode(&mut fs, d, |i| i.nlink = 3);
    set_inode(&mut fs, ROOT_INO, |i| i.nlink = 2);
    let p = problems(&fs.s, &fs.n);
    assert!(
        p.contains(&Problem::Unreachable {
            ino: a,
            cycle: true
        }),
        "{p:?}"
    );
    assert!(
        p.contains(&Problem::Unreachable {
            ino: d,
            cycle: true
        }),
        "{p:?}"
    );
    // f is linked from the root too (g): reachable. Nothing else is wrong.
    assert_eq!(p.len(), 2, "{p:?}");
}

#[test]
fn check_finds_files_only_in_unreachable_directories() {
    // /a's entry removed and the root's nlink fixed: /a is an orphan, /a/d below it is
    // unreachable, and a file only in /a/d too.
    let (mut fs, [a, _, d, _]) = tree();
    let h = fs.touch(d, b"h").unwrap();
    let slot = lookup(&fs.s, &fs.n, ROOT_INO, b"a").unwrap().unwrap().slot;
    fs.s.m.remove(&dirent_pos(ROOT_INO, slot));
    set_inode(&mut fs, ROOT_INO, |i| i.nlink = 2);
    let p = problems(&fs.s, &fs.n);
    assert_eq!(
        p,
        vec![
            Problem::Orphan { ino: a },
            Problem::Unreachable {
                ino: d,
                cycle: false
            },
            Problem::Unreachable {
                ino: h,
                cycle: false
            },
        ]
    );
}

#[test]
fn check_finds_symlink_piece_damage() {
    let (mut fs, [_, f, _, l]) = tree();
    fs.s.m.remove(&symlink_pos(l, 1));
    has(&fs, Problem::MissingPiece { ino: l, piece: 1 });
    fs.s.m.insert(symlink_pos(l, 1), vec![b'q'; 900]);
    has(
        &fs,
        Problem::PieceSize {
            ino: l,
            piece: 1,
            len: 900,
            expected: 976,
        },
    );
    fs.s.m.insert(symlink_pos(l, 1), vec![b'q'; 976]);
    fs.clean();
    fs.s.m.remove(&symlink_pos(l, 0));
    has(&fs, Problem::MissingPiece { ino: l, piece: 0 });
    fs.s.m.insert(symlink_pos(l, 0), vec![b'q'; 1024]);
    fs.s.m.insert(symlink_pos(l, 3), vec![b'q'; 5]);
    has(&fs, Problem::ExtraPiece { ino: l, piece: 3 });
    fs.s.m.remove(&symlink_pos(l, 3));
    fs.s.m.insert(symlink_pos(f, 0), vec![b'q'; 5]);
    has(&fs, Problem::StrayPiece { ino: f, piece: 0 });
    fs.s.m.insert(symlink_pos(500, 2), vec![b'q'; 5]);
    has(&fs, Problem::StrayPiece { ino: 500, piece: 2 });
}

#[test]
fn check_ignores_map_keys_and_reports_bad_values() {
    let (mut fs, _) = tree();
    fs.s.m.insert(Pos::map(5), 9u64.to_le_bytes().to_vec());
    fs.clean();
    fs.s.m.insert(dirent_pos(ROOT_INO, 3), vec![0; 4]);
    has(
        &fs,
        Problem::BadValue {
            pos: dirent_pos(ROOT_INO, 3),
        },
    );
    fs.s.m.remove(&dirent_pos(ROOT_INO, 3));
    fs.s.m.insert(inode_pos(60), vec![0; 4]);
    has(&fs, Problem::BadValue { pos: inode_pos(60) });
}

// ---------------------------------------------------------------------------------------------
// Random operation sequences against a model.

#[derive(Clone, Debug)]
enum Op {
    Create {
        dir: usize,
        name: usize,
        kind: u8,
    },
    Link {
        src: usize,
        dir: usize,
        name: usize,
    },
    Unlink {
        dir: usize,
        name: usize,
    },
    Rmdir {
        dir: usize,
        name: usize,
    },
    Rename {
        od: usize,
        on: usize,
        nd: usize,
        nn: usize,
    },
    Chmod {
        i: usize,
        mode: u16,
        uid: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let ix = || 0usize..64;
    prop_oneof![
        4 => (ix(), ix(), 0u8..4).prop_map(|(dir, name, kind)| Op::Create { dir, name, kind }),
        1 => (ix(), ix(), ix()).prop_map(|(src, dir, name)| Op::Link { src, dir, name }),
        2 => (ix(), ix()).prop_map(|(dir, name)| Op::Unlink { dir, name }),
        1 => (ix(), ix()).prop_map(|(dir, name)| Op::Rmdir { dir, name }),
        3 => (ix(), ix(), ix(), ix()).prop_map(|(od, on, nd, nn)| Op::Rename { od, on, nd, nn }),
        1 => (ix(), any::<u16>(), any::<u32>()).prop_map(|(i, mode, uid)| Op::Chmod { i, mode, uid }),
    ]
}

fn name_pool() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = ["a", "b", "c", "bb", "x y", "\u{e9}t\u{e9}"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    v.push(vec![b'n'; 255]);
    v.push(every_byte());
    v.push(vec![0xff, 0x01, b'.']);
    v
}

#[derive(Clone, Debug)]
struct MNode {
    mode: u32,
    uid: u32,
    children: BTreeMap<Vec<u8>, u64>,
    target: Option<Vec<u8>>,
}

#[derive(Default, Debug)]
struct Model {
    nodes: BTreeMap<u64, MNode>,
}

impl Model {
    fn is_dir(&self, ino: u64) -> bool {
        self.nodes[&ino].mode & S_IFMT == S_IFDIR
    }

    fn dirs(&self) -> Vec<u64> {
        self.nodes
            .keys()
            .copied()
            .filter(|&i| self.is_dir(i))
            .collect()
    }

    fn nlink(&self, ino: u64) -> u32 {
        if self.is_dir(ino) {
            2 + self.nodes[&ino]
                .children
                .values()
                .filter(|&&c| self.is_dir(c))
                .count() as u32
        } else {
            self.nodes
                .values()
                .flat_map(|n| n.children.values())
                .filter(|&&c| c == ino)
                .count() as u32
        }
    }

    /// Whether `d` is `anc` or below it.
    fn below(&self, d: u64, anc: u64) -> bool {
        if d == anc {
            return true;
        }
        self.nodes[&anc]
            .children
            .values()
            .any(|&c| self.is_dir(c) && self.below(d, c))
    }

    /// Drops inodes no name points at.
    fn gc(&mut self) {
        let named: std::collections::BTreeSet<u64> = self
            .nodes
            .values()
            .flat_map(|n| n.children.values().copied())
            .collect();
        self.nodes
            .retain(|&i, _| i == ROOT_INO || named.contains(&i));
    }
}

fn compare(fs: &Fs, m: &Model, pool: &[Vec<u8>]) {
    for (&ino, node) in &m.nodes {
        let i = fs.inode(ino);
        assert_eq!(i.attr.mode, node.mode);
        assert_eq!(i.attr.uid, node.uid);
        assert_eq!(i.attr.nlink, m.nlink(ino), "inode {ino}");
        if m.is_dir(ino) {
            let got = fs.names(ino);
            let want: BTreeMap<Vec<u8>, (u64, u8)> = node
                .children
                .iter()
                .map(|(n, &c)| (n.clone(), (c, dtype_of(m.nodes[&c].mode))))
                .collect();
            assert_eq!(got, want, "directory {ino}");
            for n in pool {
                assert_eq!(fs.find(ino, n), node.children.get(n).copied());
            }
        }
        if let Some(t) = &node.target {
            let mut out = [0u8; 4096];
            let len = read_link(&fs.s, ino, &mut out).unwrap();
            assert_eq!(&out[..len], &t[..]);
        }
    }
    assert_eq!(count_inodes(&fs.s).unwrap(), m.nodes.len() as u64);
    assert_eq!(next_ino(&fs.s).unwrap(), m.nodes.keys().max().unwrap() + 1);
    let entries: usize = m.nodes.values().map(|n| n.children.len()).sum();
    let pieces: usize = m
        .nodes
        .values()
        .filter_map(|n| n.target.as_ref())
        .map(|t| t.len().div_ceil(SYMLINK_PIECE))
        .sum();
    assert_eq!(fs.s.m.len(), m.nodes.len() + entries + pieces);
    fs.clean();
}

fn run_ops(names: Names, ops: Vec<Op>) {
    let pool = name_pool();
    let mut fs = Fs::new(names);
    let mut m = Model::default();
    m.nodes.insert(
        ROOT_INO,
        MNode {
            mode: S_IFDIR | 0o755,
            uid: 1000,
            children: BTreeMap::new(),
            target: None,
        },
    );
    for op in ops {
        let dirs = m.dirs();
        let pick = |i: usize| dirs[i % dirs.len()];
        match op {
            Op::Create { dir, name, kind } => {
                let (dir, name) = (pick(dir), &pool[name % pool.len()]);
                let target: Vec<u8> = name.iter().cycle().take(name.len() * 9).copied().collect();
                let (mode, t) = match kind {
                    0 => (S_IFREG | 0o644, None),
                    1 => (S_IFDIR | 0o755, None),
                    2 => (S_IFLNK | 0o777, Some(target)),
                    _ => (S_IFIFO | 0o600, None),
                };
                let r = fs.mk(dir, name, mode, t.as_deref());
                if m.nodes[&dir].children.contains_key(name) {
                    assert_eq!(r, Err(NsError::Exists));
                } else {
                    let ino = r.unwrap();
                    m.nodes
                        .get_mut(&dir)
                        .unwrap()
                        .children
                        .insert(name.clone(), ino);
                    m.nodes.insert(
                        ino,
                        MNode {
                            mode,
                            uid: 1000,
                            children: BTreeMap::new(),
                            target: t,
                        },
                    );
                }
            }
            Op::Link { src, dir, name } => {
                let files: Vec<u64> = m.nodes.keys().copied().filter(|&i| !m.is_dir(i)).collect();
                if files.is_empty() {
                    continue;
                }
                let (src, dir, name) = (
                    files[src % files.len()],
                    pick(dir),
                    &pool[name % pool.len()],
                );
                let r = fs.ln(src, dir, name);
                if m.nodes[&dir].children.contains_key(name) {
                    assert_eq!(r, Err(NsError::Exists));
                } else {
                    r.unwrap();
                    m.nodes
                        .get_mut(&dir)
                        .unwrap()
                        .children
                        .insert(name.clone(), src);
                }
            }
            Op::Unlink { dir, name } | Op::Rmdir { dir, name } => {
                let rmdir = matches!(op, Op::Rmdir { .. });
                let (dir, name) = (pick(dir), &pool[name % pool.len()]);
                let r = fs.rm(dir, name, rmdir);
                match m.nodes[&dir].children.get(name).copied() {
                    None => assert_eq!(r, Err(NsError::NotFound)),
                    Some(v) if rmdir && !m.is_dir(v) => assert_eq!(r, Err(NsError::NotDir)),
                    Some(v) if !rmdir && m.is_dir(v) => assert_eq!(r, Err(NsError::IsDir)),
                    Some(v) if rmdir && !m.nodes[&v].children.is_empty() => {
                        assert_eq!(r, Err(NsError::NotEmpty))
                    }
                    Some(_) => {
                        r.unwrap();
                        m.nodes.get_mut(&dir).unwrap().children.remove(name);
                        m.gc();
                    }
                }
            }
            Op::Rename { od, on, nd, nn } => {
                let (od, on, nd, nn) = (
                    pick(od),
                    &pool[on % pool.len()],
                    pick(nd),
                    &pool[nn % pool.len()],
                );
                let Some(&mv) = m.nodes[&od].children.get(on) else {
                    assert_eq!(fs.mv(od, on, nd, nn), Err(NsError::NotFound));
                    continue;
                };
                if m.is_dir(mv) && m.below(nd, mv) {
                    continue; // the VFS refuses it (EINVAL) before the filesystem sees it
                }
                let r = fs.mv(od, on, nd, nn);
                match m.nodes[&nd].children.get(nn).copied() {
                    _ if od == nd && on == nn => r.unwrap(),
                    Some(t) if t == mv => r.unwrap(),
                    Some(t) if m.is_dir(t) && !m.is_dir(mv) => assert_eq!(r, Err(NsError::IsDir)),
                    Some(t) if !m.is_dir(t) && m.is_dir(mv) => assert_eq!(r, Err(NsError::NotDir)),
                    Some(t) if m.is_dir(t) && !m.nodes[&t].children.is_empty() => {
                        assert_eq!(r, Err(NsError::NotEmpty))
                    }
                    _ => {
                        r.unwrap();
                        m.nodes.get_mut(&od).unwrap().children.remove(on);
                        m.nodes
                            .get_mut(&nd)
                            .unwrap()
                            .children
                            .insert(nn.clone(), mv);
                        m.gc();
                    }
                }
            }
            Op::Chmod { i, mode, uid } => {
                let all: Vec<u64> = m.nodes.keys().copied().collect();
                let ino = all[i % all.len()];
                let mut a = fs.inode(ino);
                a.attr.mode = (a.attr.mode & S_IFMT) | (mode as u32 & 0o7777);
                a.attr.uid = uid;
                setattr(&mut fs.s, &a).unwrap();
                let n = m.nodes.get_mut(&ino).unwrap();
                n.mode = a.attr.mode;
                n.uid = uid;
            }
        }
        compare(&fs, &m, &pool);
    }
}

/// A placement where every name of the pool falls in one of two overlapping windows.
fn two_windows(_: u64, name: &[u8]) -> u64 {
    (name[0] % 2) as u64 * 7 + 40
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_operations_agree_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run_ops(Names::new(0xfeed), ops);
    }

    #[test]
    fn random_operations_with_colliding_names(ops in prop::collection::vec(op(), 1..60)) {
        run_ops(Names::with_hash(1, two_windows), ops);
    }
}

#[test]
fn next_ino_finds_the_largest() {
    let mut fs = Fs::real();
    for ino in [2u64, 3, 1000, 65_537, MAX_INO - 1] {
        let mut b = [0u8; INODE_SIZE];
        attr(S_IFREG | 0o644, 1, 0).write(&mut b);
        fs.s.m.insert(inode_pos(ino), b.to_vec());
        assert_eq!(next_ino(&fs.s).unwrap(), ino + 1);
    }
    assert_eq!(count_inodes(&fs.s).unwrap(), 6);
}

// SPDX-License-Identifier: GPL-2.0

//! The namespace: directories, inodes and symbolic links as btree keys
//! ([`crate::shared::namespace_format`]), and the operations on them as free functions over a
//! [`Store`] (what a transaction offers: reads, scans, puts and deletions).
//!
//! # How an operation works
//!
//! Every operation takes the inodes' attributes *after* the operation (the VFS glue computes
//! link counts and times), checks them against what the store holds, then writes every key the
//! change needs. The checks include the link counts: a new directory has `nlink` 2 and its
//! parent one more than it had; a name removed takes one off its inode's count (a removed
//! directory's is 0); a rename leaves the moved inode's count alone. Attributes that do not
//! follow from the stored ones are refused with [`NsError::Invalid`], so the store never holds
//! counts that [`check`] would report.
//!
//! An operation reads everything it needs *before* its first write, so the [`Store`] does not
//! have to show a transaction its own writes, and an operation refused by a check writes
//! nothing. Only an error from the store itself ([`NsError::Errno`]) can stop an operation
//! half-way; the caller makes the whole operation one transaction and undoes it then.
//!
//! No operation nests a scan inside another (a store may hold a lock during a scan), except
//! [`check`], which the offline checker runs over an in-memory store.
//!
//! # Names and hash slots
//!
//! A [`Names`] holds what places a name in a directory: the filesystem's hash seed (from its
//! uuid) and the hash function, always [`dirent_hash`] on disk. A directory entry sits at its
//! name's slot or one of the [`DIRENT_PROBE`] - 1 slots after it (the first free one when it is
//! made); a lookup reads the whole window, so entries deleted in between leave no gap to worry
//! about. A window with no free slot refuses a new name with [`NsError::NoSpace`].

use crate::shared::bkey::{Kind, Pos};
use crate::shared::layout::Field;
use crate::shared::namespace_format::{
    decode_dirent, dirent_hash, dirent_pos, dtype_of, encode_dirent, hash_seed, inode_pos,
    symlink_pos, valid_name, Inode, InodeDisk, DIRENT_HEADER, DIRENT_PROBE, HASH_LIMIT, INODE_SIZE,
    MAX_INO, MAX_NAME, MAX_SYMLINK, ROOT_INO, SYMLINK_PIECE, S_IFMT, S_IFREG,
};

pub use crate::shared::bkey::MAX_VAL;

/// Why a namespace operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsError {
    /// No such name or inode.
    NotFound,
    /// The name exists.
    Exists,
    /// The directory has entries.
    NotEmpty,
    /// A name longer than [`MAX_NAME`] bytes.
    NameTooLong,
    /// A bad argument: a name that cannot be a directory entry's, attributes an inode cannot
    /// have or that do not follow from the stored ones.
    Invalid,
    /// No free slot for the name in its hash window.
    NoSpace,
    /// A directory was needed.
    NotDir,
    /// A directory was not allowed.
    IsDir,
    /// The store holds something the namespace never writes (a name pointing at no inode, a
    /// value that does not decode, a symbolic link missing a piece).
    Corrupt,
    /// An error of the store, passed through (a positive errno: `EIO`, `ENOMEM`, `ECANCELED`,
    /// `EINTR`, `ENOSPC`, ...).
    Errno(i32),
}

impl NsError {
    /// The positive errno a system call returns for it.
    pub fn errno(self) -> i32 {
        match self {
            NsError::NotFound => 2,     // ENOENT
            NsError::Exists => 17,      // EEXIST
            NsError::NotEmpty => 39,    // ENOTEMPTY
            NsError::NameTooLong => 36, // ENAMETOOLONG
            NsError::Invalid => 22,     // EINVAL
            NsError::NoSpace => 28,     // ENOSPC
            NsError::NotDir => 20,      // ENOTDIR
            NsError::IsDir => 21,       // EISDIR
            NsError::Corrupt => 117,    // EUCLEAN
            NsError::Errno(e) => e,
        }
    }
}

/// What a transaction offers the namespace.
pub trait Store {
    /// Value at `pos` copied into `buf`; `Ok(None)` if no key there.
    fn get(&self, pos: Pos, buf: &mut [u8; MAX_VAL]) -> Result<Option<usize>, NsError>;
    /// `f` for each key in `[from, to)`, in order, until it returns false.
    fn scan(
        &self,
        from: Pos,
        to: Pos,
        f: &mut dyn FnMut(Pos, &[u8]) -> bool,
    ) -> Result<(), NsError>;
    /// Puts `val` at `pos` (a new key or a new value).
    fn put(&mut self, pos: Pos, val: &[u8]) -> Result<(), NsError>;
    /// Deletes the key at `pos` (the namespace deletes only keys it has read).
    fn delete(&mut self, pos: Pos) -> Result<(), NsError>;
}

/// What places names in directories: the hash seed and the hash.
#[derive(Clone, Copy, Debug)]
pub struct Names {
    seed: u64,
    hash: fn(u64, &[u8]) -> u64,
}

impl Names {
    /// Names of a filesystem whose hash seed is `seed` ([`hash_seed`] of its uuid).
    pub fn new(seed: u64) -> Names {
        Names {
            seed,
            hash: dirent_hash,
        }
    }

    /// Names of the filesystem with uuid `uuid`.
    pub fn for_uuid(uuid: &[u8; 16]) -> Names {
        Names::new(hash_seed(uuid))
    }

    /// Names placed by `hash` instead of [`dirent_hash`]: for tests that need names to collide
    /// (a filesystem on disk always uses [`Names::new`]). The slot is `hash`'s value modulo
    /// `HASH_LIMIT - DIRENT_PROBE`, so every probe slot stays valid.
    pub fn with_hash(seed: u64, hash: fn(u64, &[u8]) -> u64) -> Names {
        Names { seed, hash }
    }

    /// The hash seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The first slot of `name`'s window.
    pub fn slot(&self, name: &[u8]) -> u64 {
        (self.hash)(self.seed, name) % (HASH_LIMIT - DIRENT_PROBE)
    }
}

/// A name found in a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// Its slot.
    pub slot: u64,
    /// The inode it points at.
    pub ino: u64,
    /// The inode's `DT_*` type.
    pub dtype: u8,
}

/// Refuses a name that cannot be a directory entry's.
fn check_name(name: &[u8]) -> Result<(), NsError> {
    if name.len() > MAX_NAME {
        return Err(NsError::NameTooLong);
    }
    if !valid_name(name) {
        return Err(NsError::Invalid);
    }
    Ok(())
}

/// The key after `pos` (every position the namespace reads has one).
fn after(pos: Pos) -> Pos {
    pos.succ().unwrap_or(pos)
}

/// The value at `pos`, handed to `f`, through a one-key scan (no value buffer on the stack).
fn read_with<S: Store + ?Sized, R>(
    store: &S,
    pos: Pos,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<Option<R>, NsError> {
    let mut f = Some(f);
    let mut out = None;
    store.scan(pos, after(pos), &mut |p, v| {
        if p == pos {
            if let Some(f) = f.take() {
                out = Some(f(v));
            }
        }
        false
    })?;
    Ok(out)
}

/// Decodes an inode value.
fn decode_inode(ino: u64, v: &[u8]) -> Result<Inode, NsError> {
    if v.len() != INODE_SIZE {
        return Err(NsError::Corrupt);
    }
    let attr = InodeDisk::read(v);
    if !(1..=MAX_INO).contains(&ino) || !attr.valid() {
        return Err(NsError::Corrupt);
    }
    Ok(Inode { ino, attr })
}

/// The inode `ino`, if its key exists.
fn get_inode<S: Store + ?Sized>(store: &S, ino: u64) -> Result<Option<Inode>, NsError> {
    if !(1..=MAX_INO).contains(&ino) {
        return Ok(None);
    }
    read_with(store, inode_pos(ino), |v| decode_inode(ino, v))?.transpose()
}

/// Inode `ino`'s attributes; [`NsError::NotFound`] when it has no key.
pub fn read_inode<S: Store + ?Sized>(store: &S, ino: u64) -> Result<Inode, NsError> {
    get_inode(store, ino)?.ok_or(NsError::NotFound)
}

/// Writes inode `i`'s key.
fn put_inode<S: Store + ?Sized>(store: &mut S, i: &Inode) -> Result<(), NsError> {
    let mut b = [0u8; INODE_SIZE];
    i.attr.write(&mut b);
    store.put(inode_pos(i.ino), &b)
}

/// What a scan of a name's window found.
struct Window {
    /// The name's entry, if it is there.
    found: Option<Found>,
    /// Bit `i`: slot `start + i` is taken.
    taken: u64,
    /// The window's first slot.
    start: u64,
}

impl Window {
    /// The first free slot, treating `also_free` (a slot the operation deletes) as free.
    fn free_slot(&self, also_free: Option<u64>) -> Option<u64> {
        let mut taken = self.taken;
        if let Some(s) = also_free {
            if (self.start..self.start + DIRENT_PROBE).contains(&s) {
                taken &= !(1u64 << (s - self.start));
            }
        }
        (0..DIRENT_PROBE)
            .find(|i| taken & (1u64 << i) == 0)
            .map(|i| self.start + i)
    }
}

/// Scans `name`'s window in directory `dir`.
fn window<S: Store + ?Sized>(
    store: &S,
    names: &Names,
    dir: u64,
    name: &[u8],
) -> Result<Window, NsError> {
    let start = names.slot(name);
    let mut w = Window {
        found: None,
        taken: 0,
        start,
    };
    let mut bad = false;
    store.scan(
        dirent_pos(dir, start),
        dirent_pos(dir, start + DIRENT_PROBE),
        &mut |p, v| {
            let Some(d) = decode_dirent(v) else {
                bad = true;
                return false;
            };
            w.taken |= 1u64 << (p.off - start);
            if d.name == name && w.found.is_none() {
                w.found = Some(Found {
                    slot: p.off,
                    ino: d.ino,
                    dtype: d.dtype,
                });
            }
            true
        },
    )?;
    if bad {
        return Err(NsError::Corrupt);
    }
    Ok(w)
}

/// The entry `name` of directory `dir_ino`, if there is one.
pub fn lookup<S: Store + ?Sized>(
    store: &S,
    names: &Names,
    dir_ino: u64,
    name: &[u8],
) -> Result<Option<Found>, NsError> {
    check_name(name)?;
    Ok(window(store, names, dir_ino, name)?.found)
}

/// Writes the entry `name` -> `target` at `slot` of directory `dir`.
fn put_dirent<S: Store + ?Sized>(
    store: &mut S,
    dir: u64,
    slot: u64,
    name: &[u8],
    target: &Inode,
) -> Result<(), NsError> {
    let mut b = [0u8; DIRENT_HEADER + MAX_NAME];
    let len = encode_dirent(target.ino, dtype_of(target.attr.mode), name, &mut b)
        .ok_or(NsError::Invalid)?;
    store.put(dirent_pos(dir, slot), &b[..len])
}

/// Checks directory `dir` (its attributes after the operation) against its key: present, a
/// directory, valid attributes, `nlink` the stored one plus `delta`.
fn check_dir<S: Store + ?Sized>(store: &S, dir: &Inode, delta: i64) -> Result<(), NsError> {
    let stored = get_inode(store, dir.ino)?.ok_or(NsError::NotFound)?;
    if !stored.is_dir() || !dir.is_dir() {
        return Err(NsError::NotDir);
    }
    if !dir.attr.valid() || i64::from(dir.attr.nlink) != i64::from(stored.attr.nlink) + delta {
        return Err(NsError::Invalid);
    }
    Ok(())
}

/// Checks `given` (an inode's attributes after an operation) against its stored key: the same
/// type, `nlink` the stored one plus `delta`, valid attributes (or `nlink` 0); returns the
/// stored inode. A missing key is [`NsError::Corrupt`]: a name pointed at it.
fn check_target<S: Store + ?Sized>(store: &S, given: &Inode, delta: i64) -> Result<Inode, NsError> {
    let stored = get_inode(store, given.ino)?.ok_or(NsError::Corrupt)?;
    let valid = given.attr.valid() || (given.attr.nlink == 0 && valid_nlink0(&given.attr));
    if stored.attr.mode & S_IFMT != given.attr.mode & S_IFMT
        || !valid
        || i64::from(given.attr.nlink) != i64::from(stored.attr.nlink) + delta
    {
        return Err(NsError::Invalid);
    }
    Ok(stored)
}

/// Whether attributes with `nlink` 0 are otherwise valid.
fn valid_nlink0(a: &InodeDisk) -> bool {
    InodeDisk { nlink: 1, ..*a }.valid()
}

/// Whether directory `dir` has an entry.
fn has_entries<S: Store + ?Sized>(store: &S, dir: u64) -> Result<bool, NsError> {
    let mut any = false;
    store.scan(
        dirent_pos(dir, 0),
        dirent_pos(dir, HASH_LIMIT),
        &mut |_, _| {
            any = true;
            false
        },
    )?;
    Ok(any)
}

/// Bit `k`: symbolic link `ino` has piece `k`.
fn pieces<S: Store + ?Sized>(store: &S, ino: u64) -> Result<u64, NsError> {
    let mut bits = 0u64;
    let mut bad = false;
    store.scan(symlink_pos(ino, 0), symlink_pos(ino, 64), &mut |p, _| {
        if p.off >= 64 {
            bad = true;
            return false;
        }
        bits |= 1u64 << p.off;
        true
    })?;
    if bad {
        return Err(NsError::Corrupt);
    }
    Ok(bits)
}

/// Writes what is left of inode `i` after it lost a name: its key, or, when its `nlink` is 0,
/// nothing (its key and the symbolic link pieces in `pieces` deleted).
fn put_or_drop<S: Store + ?Sized>(store: &mut S, i: &Inode, pieces: u64) -> Result<(), NsError> {
    if i.attr.nlink != 0 {
        return put_inode(store, i);
    }
    store.delete(inode_pos(i.ino))?;
    for k in 0..64 {
        if pieces & (1u64 << k) != 0 {
            store.delete(symlink_pos(i.ino, k))?;
        }
    }
    Ok(())
}

/// Creates `name` in directory `dir` pointing at the new inode `new` (a regular file, a
/// directory, a symbolic link with `symlink_target`, a device, FIFO or socket).
///
/// `dir` has its attributes after the operation (`nlink` one more for a new directory), `new`
/// its first ones (`nlink` 2 for a directory, else 1; a symbolic link's size is its target's
/// length, 1 to [`MAX_SYMLINK`] bytes). Refuses an invalid name ([`NsError::NameTooLong`],
/// [`NsError::Invalid`]), a name that exists ([`NsError::Exists`]), a `dir` that is not a
/// directory ([`NsError::NotDir`]) or has no key ([`NsError::NotFound`]), an inode number that
/// has a key already ([`NsError::Corrupt`]), invalid attributes ([`NsError::Invalid`]) and a
/// full hash window ([`NsError::NoSpace`]).
pub fn create<S: Store + ?Sized>(
    store: &mut S,
    names: &Names,
    dir: &Inode,
    name: &[u8],
    new: &Inode,
    symlink_target: Option<&[u8]>,
) -> Result<(), NsError> {
    check_name(name)?;
    let is_dir = new.is_dir();
    check_dir(store, dir, if is_dir { 1 } else { 0 })?;
    let nlink = if is_dir { 2 } else { 1 };
    if !new.attr.valid()
        || new.attr.nlink != nlink
        || !(1..=MAX_INO).contains(&new.ino)
        || new.ino == dir.ino
    {
        return Err(NsError::Invalid);
    }
    match (new.is_symlink(), symlink_target) {
        (true, Some(t))
            if (1..=MAX_SYMLINK).contains(&t.len()) && t.len() as u64 == new.attr.size => {}
        (false, None) => {}
        _ => return Err(NsError::Invalid),
    }
    let w = window(store, names, dir.ino, name)?;
    if w.found.is_some() {
        return Err(NsError::Exists);
    }
    if get_inode(store, new.ino)?.is_some() {
        return Err(NsError::Corrupt);
    }
    let slot = w.free_slot(None).ok_or(NsError::NoSpace)?;
    put_dirent(store, dir.ino, slot, name, new)?;
    put_inode(store, new)?;
    if let Some(t) = symlink_target {
        for (k, piece) in t.chunks(SYMLINK_PIECE).enumerate() {
            store.put(symlink_pos(new.ino, k as u64), piece)?;
        }
    }
    put_inode(store, dir)
}

/// Adds `name` in directory `dir` for the existing inode `target` (not a directory), whose
/// `nlink` is one more than stored. `dir`'s `nlink` is unchanged.
pub fn link<S: Store + ?Sized>(
    store: &mut S,
    names: &Names,
    dir: &Inode,
    name: &[u8],
    target: &Inode,
) -> Result<(), NsError> {
    check_name(name)?;
    check_dir(store, dir, 0)?;
    if target.is_dir() || target.ino == dir.ino {
        return Err(NsError::Invalid);
    }
    let w = window(store, names, dir.ino, name)?;
    if w.found.is_some() {
        return Err(NsError::Exists);
    }
    if get_inode(store, target.ino)?.is_none() {
        return Err(NsError::NotFound);
    }
    check_target(store, target, 1)?;
    let slot = w.free_slot(None).ok_or(NsError::NoSpace)?;
    put_dirent(store, dir.ino, slot, name, target)?;
    put_inode(store, target)?;
    put_inode(store, dir)
}

/// Removes `name` from directory `dir`; it points at `victim` (else [`NsError::NotFound`] when
/// there is no such name, [`NsError::Corrupt`] when it points elsewhere).
///
/// `rmdir`: `victim` is a directory ([`NsError::NotDir`]) without entries
/// ([`NsError::NotEmpty`]), its `nlink` given as 0 and `dir`'s one less than stored; otherwise
/// `victim` is not a directory ([`NsError::IsDir`]), its `nlink` one less than stored and
/// `dir`'s unchanged. An inode whose `nlink` becomes 0 loses its key and symbolic link pieces.
pub fn unlink<S: Store + ?Sized>(
    store: &mut S,
    names: &Names,
    dir: &Inode,
    name: &[u8],
    victim: &Inode,
    rmdir: bool,
) -> Result<(), NsError> {
    check_name(name)?;
    check_dir(store, dir, if rmdir { -1 } else { 0 })?;
    let w = window(store, names, dir.ino, name)?;
    let found = w.found.ok_or(NsError::NotFound)?;
    if found.ino != victim.ino {
        return Err(NsError::Corrupt);
    }
    let stored = get_inode(store, victim.ino)?.ok_or(NsError::Corrupt)?;
    match (rmdir, stored.is_dir()) {
        (true, false) => return Err(NsError::NotDir),
        (false, true) => return Err(NsError::IsDir),
        _ => {}
    }
    if rmdir {
        if has_entries(store, victim.ino)? {
            return Err(NsError::NotEmpty);
        }
        if victim.attr.nlink != 0 {
            return Err(NsError::Invalid);
        }
        check_target(store, victim, -i64::from(stored.attr.nlink))?;
    } else {
        check_target(store, victim, -1)?;
    }
    let p = if victim.attr.nlink == 0 && stored.is_symlink() {
        pieces(store, victim.ino)?
    } else {
        0
    };
    store.delete(dirent_pos(dir.ino, found.slot))?;
    put_or_drop(store, victim, p)?;
    put_inode(store, dir)
}

/// Renames `old_name` in `old_dir` (pointing at `moved`) to `new_name` in `new_dir` (the same
/// directory or another one), over the name's inode `replaced` if it exists.
///
/// Every inode is given with its attributes after the rename, but `moved`, of which only the
/// type and the change time are taken: its stored attributes are written back with that time
/// (the VFS does not lock a directory renamed within its parent, so the caller's copy of its
/// other attributes may be older than a change that ran meanwhile); a
/// replaced directory (which must be empty, and can be replaced by a directory only) has
/// `nlink` 0, another replaced inode one less than stored; `old_dir` loses one link and
/// `new_dir` gains one when a directory moves between them, and a directory replaced by it
/// takes one off `new_dir`. When both directories are one, `old_dir` and `new_dir` are the
/// same attributes. A rename onto itself (the same name in the same directory, or two names of
/// one inode) changes nothing.
#[allow(clippy::too_many_arguments)]
pub fn rename<S: Store + ?Sized>(
    store: &mut S,
    names: &Names,
    old_dir: &Inode,
    old_name: &[u8],
    new_dir: &Inode,
    new_name: &[u8],
    moved: &Inode,
    replaced: Option<&Inode>,
) -> Result<(), NsError> {
    check_name(old_name)?;
    check_name(new_name)?;
    let same_dir = old_dir.ino == new_dir.ino;
    if same_dir && old_dir != new_dir {
        return Err(NsError::Invalid);
    }
    let ow = window(store, names, old_dir.ino, old_name)?;
    let of = ow.found.ok_or(NsError::NotFound)?;
    if of.ino != moved.ino {
        return Err(NsError::Corrupt);
    }
    let stored_moved = get_inode(store, moved.ino)?.ok_or(NsError::Corrupt)?;
    if stored_moved.attr.mode & S_IFMT != moved.attr.mode & S_IFMT
        || moved.attr.ctime_nsec >= 1_000_000_000
    {
        return Err(NsError::Invalid);
    }
    // The stored inode with the rename's change time.
    let mut moved_now = stored_moved;
    moved_now.attr.ctime_sec = moved.attr.ctime_sec;
    moved_now.attr.ctime_nsec = moved.attr.ctime_nsec;
    let moved = &moved_now;
    let nw = window(store, names, new_dir.ino, new_name)?;
    if same_dir && old_name == new_name {
        check_dir(store, new_dir, 0)?;
        return match replaced {
            Some(r) if r.ino != moved.ino => Err(NsError::Corrupt),
            _ => Ok(()),
        };
    }
    let moved_dir = stored_moved.is_dir();
    if moved_dir && moved.ino == new_dir.ino {
        return Err(NsError::Invalid);
    }
    let mut replaced_dir = false;
    let mut replaced_pieces = 0;
    match (nw.found, replaced) {
        (None, None) => {}
        (None, Some(_)) => return Err(NsError::NotFound),
        (Some(_), None) => return Err(NsError::Exists),
        (Some(f), Some(r)) if f.ino != r.ino => return Err(NsError::Corrupt),
        (Some(_), Some(r)) if r.ino == moved.ino => {
            // Two names of one inode: POSIX leaves both.
            check_dir(store, old_dir, 0)?;
            check_dir(store, new_dir, 0)?;
            return Ok(());
        }
        (Some(_), Some(r)) => {
            let stored = get_inode(store, r.ino)?.ok_or(NsError::Corrupt)?;
            replaced_dir = stored.is_dir();
            match (moved_dir, replaced_dir) {
                (false, true) => return Err(NsError::IsDir),
                (true, false) => return Err(NsError::NotDir),
                _ => {}
            }
            if replaced_dir {
                if has_entries(store, r.ino)? {
                    return Err(NsError::NotEmpty);
                }
                if r.attr.nlink != 0 {
                    return Err(NsError::Invalid);
                }
                check_target(store, r, -i64::from(stored.attr.nlink))?;
            } else {
                check_target(store, r, -1)?;
            }
            if r.attr.nlink == 0 && stored.is_symlink() {
                replaced_pieces = pieces(store, r.ino)?;
            }
        }
    }
    // Link count changes of the directories: a moved directory's entry leaves old_dir and
    // joins new_dir; a replaced directory leaves new_dir.
    let leaves = i64::from(moved_dir && !same_dir);
    let joins = i64::from(moved_dir && !same_dir) - i64::from(replaced_dir);
    if same_dir {
        check_dir(store, new_dir, -i64::from(replaced_dir))?;
    } else {
        check_dir(store, old_dir, -leaves)?;
        check_dir(store, new_dir, joins)?;
    }
    let slot = match nw.found {
        Some(f) => f.slot,
        None => {
            let freed = same_dir.then_some(of.slot);
            nw.free_slot(freed).ok_or(NsError::NoSpace)?
        }
    };
    if !(same_dir && slot == of.slot) {
        store.delete(dirent_pos(old_dir.ino, of.slot))?;
    }
    put_dirent(store, new_dir.ino, slot, new_name, moved)?;
    put_inode(store, moved)?;
    if let Some(r) = replaced {
        put_or_drop(store, r, replaced_pieces)?;
    }
    if !same_dir {
        put_inode(store, old_dir)?;
    }
    put_inode(store, new_dir)
}

/// Writes inode `i`'s new attributes (mode bits, owner, times; a regular file's size). Its type
/// and `nlink` are the stored ones, and only a regular file's size changes
/// ([`NsError::Invalid`] otherwise); [`NsError::NotFound`] when it has no key.
pub fn setattr<S: Store + ?Sized>(store: &mut S, i: &Inode) -> Result<(), NsError> {
    let stored = get_inode(store, i.ino)?.ok_or(NsError::NotFound)?;
    if !i.attr.valid()
        || stored.attr.mode & S_IFMT != i.attr.mode & S_IFMT
        || stored.attr.nlink != i.attr.nlink
        || (stored.attr.mode & S_IFMT != S_IFREG && stored.attr.size != i.attr.size)
    {
        return Err(NsError::Invalid);
    }
    put_inode(store, i)
}

/// Calls `emit(slot, ino, dtype, name)` for each entry of directory `dir` from slot
/// `from_slot` on, in slot order, until it returns false. A `readdir` resumes at the last
/// slot emitted plus one.
pub fn readdir<S: Store + ?Sized>(
    store: &S,
    dir: u64,
    from_slot: u64,
    emit: &mut dyn FnMut(u64, u64, u8, &[u8]) -> bool,
) -> Result<(), NsError> {
    if from_slot >= HASH_LIMIT {
        return Ok(());
    }
    let mut bad = false;
    store.scan(
        dirent_pos(dir, from_slot),
        dirent_pos(dir, HASH_LIMIT),
        &mut |p, v| match decode_dirent(v) {
            Some(d) => emit(p.off, d.ino, d.dtype, d.name),
            None => {
                bad = true;
                false
            }
        },
    )?;
    if bad {
        return Err(NsError::Corrupt);
    }
    Ok(())
}

/// Copies symbolic link `ino`'s target into `out` and returns its length. [`NsError::NotFound`]
/// when there is no such inode, [`NsError::Invalid`] when it is not a symbolic link or `out` is
/// shorter than the target, [`NsError::Corrupt`] when the pieces do not make up the target.
pub fn read_link<S: Store + ?Sized>(store: &S, ino: u64, out: &mut [u8]) -> Result<usize, NsError> {
    let i = read_inode(store, ino)?;
    if !i.is_symlink() {
        return Err(NsError::Invalid);
    }
    let size = i.attr.size as usize;
    let out = out.get_mut(..size).ok_or(NsError::Invalid)?;
    let mut at = 0usize;
    let mut bad = false;
    store.scan(symlink_pos(ino, 0), symlink_pos(ino, 64), &mut |p, v| {
        let want = (size - at).min(SYMLINK_PIECE);
        if p.off != (at / SYMLINK_PIECE) as u64 || at >= size || v.len() != want {
            bad = true;
            return false;
        }
        out[at..at + want].copy_from_slice(v);
        at += want;
        true
    })?;
    if bad || at != size {
        return Err(NsError::Corrupt);
    }
    Ok(size)
}

/// Whether an inode key at or above `ino` exists.
fn inode_at_or_above<S: Store + ?Sized>(store: &S, ino: u64) -> Result<bool, NsError> {
    let mut any = false;
    store.scan(inode_pos(ino), Pos::new(Kind::Dirent, 0, 0), &mut |_, _| {
        any = true;
        false
    })?;
    Ok(any)
}

/// The next inode number to allocate: the largest inode key plus 1 (at least [`ROOT_INO`] + 1).
/// A value above [`MAX_INO`] means the numbers are used up. Found by a binary search of
/// one-key scans, not by reading every inode.
pub fn next_ino<S: Store + ?Sized>(store: &S) -> Result<u64, NsError> {
    // Invariant: a key at or above lo exists (or lo is ROOT_INO), none at or above hi.
    let (mut lo, mut hi) = (ROOT_INO, MAX_INO + 1);
    if inode_at_or_above(store, hi)? {
        return Err(NsError::Corrupt);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if inode_at_or_above(store, mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo + 1)
}

/// The number of inode keys.
pub fn count_inodes<S: Store + ?Sized>(store: &S) -> Result<u64, NsError> {
    let mut n = 0u64;
    store.scan(
        Pos::new(Kind::Inode, 0, 0),
        Pos::new(Kind::Dirent, 0, 0),
        &mut |_, _| {
            n += 1;
            true
        },
    )?;
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// The consistency check.

/// One inconsistency [`check`] found, with the keys involved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A namespace key whose value does not decode.
    BadValue {
        /// Where.
        pos: Pos,
    },
    /// A directory entry outside its name's window (`hash..hash + DIRENT_PROBE`).
    WrongSlot {
        /// The directory.
        dir: u64,
        /// The entry's slot.
        slot: u64,
        /// The name's hash slot.
        hash: u64,
    },
    /// A name twice in a directory.
    DuplicateName {
        /// The directory.
        dir: u64,
        /// The later entry's slot.
        slot: u64,
        /// The earlier one's.
        first: u64,
    },
    /// An entry pointing at an inode without a key.
    Dangling {
        /// The directory.
        dir: u64,
        /// The entry's slot.
        slot: u64,
        /// The inode it names.
        ino: u64,
    },
    /// An entry whose type is not its inode's.
    WrongType {
        /// The directory.
        dir: u64,
        /// The entry's slot.
        slot: u64,
        /// The inode.
        ino: u64,
        /// The entry's `DT_*` type.
        dtype: u8,
        /// The inode's mode.
        mode: u32,
    },
    /// An entry in an inode that is not a directory, or that has no key.
    EntryInNonDir {
        /// The inode holding the entry.
        dir: u64,
        /// The entry's slot.
        slot: u64,
        /// Whether the inode has no key at all.
        missing: bool,
    },
    /// No root inode.
    RootMissing,
    /// The root is not a directory.
    RootNotDir {
        /// Its mode.
        mode: u32,
    },
    /// Entries point at the root.
    RootLinked {
        /// How many.
        links: u32,
    },
    /// An inode's `nlink` is not what the entries say.
    WrongNlink {
        /// The inode.
        ino: u64,
        /// Its `nlink`.
        nlink: u32,
        /// What it should be (entries pointing at it; for a directory, 2 plus subdirectories).
        expected: u64,
    },
    /// A directory with more than one entry pointing at it.
    DirLinked {
        /// The directory.
        ino: u64,
        /// Entries pointing at it.
        links: u32,
    },
    /// An inode no entry points at.
    Orphan {
        /// The inode.
        ino: u64,
    },
    /// An inode whose entries are all in directories not reachable from the root.
    Unreachable {
        /// The inode.
        ino: u64,
        /// It is in, or below, a cycle of directories.
        cycle: bool,
    },
    /// A symbolic link piece of the wrong size.
    PieceSize {
        /// The link.
        ino: u64,
        /// The piece.
        piece: u64,
        /// Its length.
        len: u64,
        /// The length the link's size gives it.
        expected: u64,
    },
    /// A piece the link's size needs is missing.
    MissingPiece {
        /// The link.
        ino: u64,
        /// The piece.
        piece: u64,
    },
    /// A piece beyond the link's size.
    ExtraPiece {
        /// The link.
        ino: u64,
        /// The piece.
        piece: u64,
    },
    /// A piece of an inode that is not a symbolic link, or has no key.
    StrayPiece {
        /// The inode.
        ino: u64,
        /// The piece.
        piece: u64,
    },
}

impl Problem {
    /// One line describing it (no newline).
    pub fn describe(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        match *self {
            Problem::BadValue { pos } => write!(
                out,
                "key kind {} ino {} off {}: value does not decode",
                pos.kind, pos.ino, pos.off
            ),
            Problem::WrongSlot { dir, slot, hash } => write!(
                out,
                "directory {dir} slot {slot}: entry outside its name's hash window \
                 ({hash}..{})",
                hash + DIRENT_PROBE
            ),
            Problem::DuplicateName { dir, slot, first } => write!(
                out,
                "directory {dir} slot {slot}: same name as the entry at slot {first}"
            ),
            Problem::Dangling { dir, slot, ino } => write!(
                out,
                "directory {dir} slot {slot}: entry points at inode {ino}, which does not exist"
            ),
            Problem::WrongType {
                dir,
                slot,
                ino,
                dtype,
                mode,
            } => write!(
                out,
                "directory {dir} slot {slot}: entry type {dtype} but inode {ino} has mode {mode:o}"
            ),
            Problem::EntryInNonDir { dir, slot, missing } => write!(
                out,
                "inode {dir} slot {slot}: directory entry in {}",
                if missing {
                    "an inode that does not exist"
                } else {
                    "an inode that is not a directory"
                }
            ),
            Problem::RootMissing => write!(out, "root inode {ROOT_INO} does not exist"),
            Problem::RootNotDir { mode } => {
                write!(
                    out,
                    "root inode {ROOT_INO} is not a directory (mode {mode:o})"
                )
            }
            Problem::RootLinked { links } => {
                write!(out, "root inode {ROOT_INO}: {links} entries point at it")
            }
            Problem::WrongNlink {
                ino,
                nlink,
                expected,
            } => write!(out, "inode {ino}: nlink {nlink}, expected {expected}"),
            Problem::DirLinked { ino, links } => {
                write!(out, "directory inode {ino}: {links} entries point at it")
            }
            Problem::Orphan { ino } => write!(out, "inode {ino}: no entry points at it (orphan)"),
            Problem::Unreachable { ino, cycle } => write!(
                out,
                "inode {ino}: not reachable from the root{}",
                if cycle { " (directory cycle)" } else { "" }
            ),
            Problem::PieceSize {
                ino,
                piece,
                len,
                expected,
            } => write!(
                out,
                "symlink inode {ino} piece {piece}: {len} bytes, expected {expected}"
            ),
            Problem::MissingPiece { ino, piece } => {
                write!(out, "symlink inode {ino}: piece {piece} missing")
            }
            Problem::ExtraPiece { ino, piece } => {
                write!(out, "symlink inode {ino}: piece {piece} beyond its size")
            }
            Problem::StrayPiece { ino, piece } => write!(
                out,
                "inode {ino} piece {piece}: symlink piece of an inode that is not a symlink"
            ),
        }
    }
}

/// What [`check`] counts for one inode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Entries (in directories) pointing at it.
    pub links: u32,
    /// For a directory: entries in it that point at directories.
    pub subdirs: u32,
    /// For a directory: the directory of the first entry pointing at it (0: none).
    pub parent: u64,
    /// [`check`]'s own state bits.
    pub flags: u8,
}

/// The working memory of [`check`]: a [`Tally`] per inode number, all zero at first. The tool
/// implements it with a hash map; `set` may fail (`NsError::Errno(ENOMEM)`).
pub trait Tallies {
    /// The tally of `ino`.
    fn get(&self, ino: u64) -> Tally;
    /// Sets the tally of `ino`.
    fn set(&mut self, ino: u64, t: Tally) -> Result<(), NsError>;
}

/// Tally flag: the inode is a directory.
const T_DIR: u8 = 1;
/// Tally flag: an entry in a reachable directory points at it.
const T_REACHED: u8 = 2;
/// Tally flags: a directory's reachability (mask, and its states).
const T_STATE: u8 = 0x0c;
const T_VISITING: u8 = 0x04;
const T_REACHABLE: u8 = 0x08;
const T_UNREACHABLE: u8 = 0x0c;
/// Tally flag: an unreachable directory is in, or below, a cycle.
const T_CYCLE: u8 = 0x10;

/// All keys of `kind`.
fn kind_range(kind: Kind) -> (Pos, Pos) {
    (
        Pos::new(kind, 0, 0),
        Pos {
            kind: kind as u8 + 1,
            ino: 0,
            off: 0,
        },
    )
}

/// Whether inode `dir` holds entries legitimately (a directory), cached for the run of entries
/// of one directory.
struct DirCache {
    ino: u64,
    /// None: no key; Some(is a directory).
    kind: Option<bool>,
}

impl DirCache {
    fn get<S: Store + ?Sized>(&mut self, store: &S, dir: u64) -> Result<Option<bool>, NsError> {
        if self.ino != dir {
            self.ino = dir;
            self.kind = match get_inode(store, dir) {
                Ok(i) => i.map(|i| i.is_dir()),
                Err(NsError::Corrupt) => None,
                Err(e) => return Err(e),
            };
        }
        Ok(self.kind)
    }
}

/// Runs a scan whose callback may fail: the first error stops it and is returned.
fn try_scan<S: Store + ?Sized>(
    store: &S,
    (from, to): (Pos, Pos),
    f: &mut dyn FnMut(Pos, &[u8]) -> Result<(), NsError>,
) -> Result<(), NsError> {
    let mut err = None;
    store.scan(from, to, &mut |p, v| match f(p, v) {
        Ok(()) => true,
        Err(e) => {
            err = Some(e);
            false
        }
    })?;
    err.map_or(Ok(()), Err)
}

/// Checks the whole namespace in `store` and reports every inconsistency through `report`:
///
/// - every directory entry decodes, sits within [`DIRENT_PROBE`] slots of its name's hash, is
///   the only one with its name in its directory, points at an inode that exists with the
///   entry's type, and is in a directory;
/// - every inode but the root has as many entries pointing at it as its `nlink` (a directory:
///   exactly one, and `nlink` 2 plus its subdirectories); the root exists, is a directory with
///   that `nlink`, and no entry points at it;
/// - every inode is reachable from the root (no orphan, no directory cycle);
/// - every symbolic link has the pieces its size needs, full but the last, and no others; no
///   other inode has pieces.
///
/// Map keys are not the namespace's and are ignored. `tallies` is the working memory (all zero
/// at first). The scans nest (a directory entry's window is scanned for duplicates from inside
/// the scan of all entries), so `store` must allow that. Returns the number of problems
/// reported, or the store's or the tallies' error.
pub fn check<S: Store + ?Sized, T: Tallies + ?Sized>(
    store: &S,
    names: &Names,
    tallies: &mut T,
    report: &mut dyn FnMut(Problem),
) -> Result<u64, NsError> {
    let mut count = 0u64;
    let mut report = |p: Problem| {
        count += 1;
        report(p)
    };
    // Pass 1: the entries. Tallies of links, subdirectories and parents.
    let mut dirs = DirCache { ino: 0, kind: None };
    try_scan(store, kind_range(Kind::Dirent), &mut |p, v| {
        let Some(d) = decode_dirent(v) else {
            report(Problem::BadValue { pos: p });
            return Ok(());
        };
        let (dir, slot) = (p.ino, p.off);
        let hash = names.slot(d.name);
        if !(hash..hash + DIRENT_PROBE).contains(&slot) {
            report(Problem::WrongSlot { dir, slot, hash });
        } else {
            let mut first = None;
            store.scan(dirent_pos(dir, hash), p, &mut |q, w| {
                if decode_dirent(w).is_some_and(|e| e.name == d.name) {
                    first = Some(q.off);
                    return false;
                }
                true
            })?;
            if let Some(first) = first {
                report(Problem::DuplicateName { dir, slot, first });
            }
        }
        match dirs.get(store, dir)? {
            Some(true) => {}
            kind => {
                report(Problem::EntryInNonDir {
                    dir,
                    slot,
                    missing: kind.is_none(),
                });
                return Ok(());
            }
        }
        let target = match get_inode(store, d.ino) {
            Ok(Some(t)) => t,
            Ok(None) => {
                report(Problem::Dangling {
                    dir,
                    slot,
                    ino: d.ino,
                });
                return Ok(());
            }
            // Reported by the inode pass.
            Err(NsError::Corrupt) => return Ok(()),
            Err(e) => return Err(e),
        };
        if dtype_of(target.attr.mode) != d.dtype {
            report(Problem::WrongType {
                dir,
                slot,
                ino: d.ino,
                dtype: d.dtype,
                mode: target.attr.mode,
            });
        }
        let mut t = tallies.get(d.ino);
        t.links = t.links.saturating_add(1);
        if target.is_dir() {
            t.flags |= T_DIR;
            if t.parent == 0 {
                t.parent = dir;
            }
            let mut pt = tallies.get(dir);
            pt.subdirs = pt.subdirs.saturating_add(1);
            tallies.set(dir, pt)?;
        }
        tallies.set(d.ino, t)
    })?;

    // Pass 2: which directories are reachable from the root, following the parents.
    try_scan(store, kind_range(Kind::Inode), &mut |p, v| {
        if decode_inode(p.ino, v).is_ok_and(|i| i.is_dir()) {
            resolve_dir(tallies, p.ino)?;
        }
        Ok(())
    })?;

    // Pass 3: inodes named in reachable directories are reached.
    let mut dirs = DirCache { ino: 0, kind: None };
    try_scan(store, kind_range(Kind::Dirent), &mut |p, v| {
        let Some(d) = decode_dirent(v) else {
            return Ok(());
        };
        if dirs.get(store, p.ino)? != Some(true) {
            return Ok(());
        }
        let reachable = p.ino == ROOT_INO || tallies.get(p.ino).flags & T_STATE == T_REACHABLE;
        if reachable {
            let mut t = tallies.get(d.ino);
            t.flags |= T_REACHED;
            tallies.set(d.ino, t)?;
        }
        Ok(())
    })?;

    // Pass 4: each inode against its tally, and its symbolic link pieces.
    let mut root_seen = false;
    try_scan(store, kind_range(Kind::Inode), &mut |p, v| {
        let ino = p.ino;
        let i = match decode_inode(ino, v) {
            Ok(i) if p.off == 0 => i,
            _ => {
                report(Problem::BadValue { pos: p });
                return Ok(());
            }
        };
        let t = tallies.get(ino);
        let nlink = i.attr.nlink;
        if ino == ROOT_INO {
            root_seen = true;
            if !i.is_dir() {
                report(Problem::RootNotDir { mode: i.attr.mode });
            } else if u64::from(nlink) != 2 + u64::from(t.subdirs) {
                report(Problem::WrongNlink {
                    ino,
                    nlink,
                    expected: 2 + u64::from(t.subdirs),
                });
            }
            if t.links != 0 {
                report(Problem::RootLinked { links: t.links });
            }
        } else if t.links == 0 {
            report(Problem::Orphan { ino });
        } else if i.is_dir() {
            if t.links > 1 {
                report(Problem::DirLinked {
                    ino,
                    links: t.links,
                });
            }
            if t.flags & T_STATE != T_REACHABLE {
                report(Problem::Unreachable {
                    ino,
                    cycle: t.flags & T_CYCLE != 0,
                });
            }
            if u64::from(nlink) != 2 + u64::from(t.subdirs) {
                report(Problem::WrongNlink {
                    ino,
                    nlink,
                    expected: 2 + u64::from(t.subdirs),
                });
            }
        } else {
            if t.flags & T_REACHED == 0 {
                report(Problem::Unreachable { ino, cycle: false });
            }
            if nlink != t.links {
                report(Problem::WrongNlink {
                    ino,
                    nlink,
                    expected: u64::from(t.links),
                });
            }
        }
        if i.is_symlink() {
            check_pieces(store, ino, i.attr.size, &mut report)?;
        }
        Ok(())
    })?;
    if !root_seen {
        report(Problem::RootMissing);
    }

    // Pass 5: pieces of inodes that are not symbolic links.
    let mut last = (0u64, false);
    try_scan(store, kind_range(Kind::Symlink), &mut |p, _| {
        if last.0 != p.ino || p.ino == 0 {
            let link = match get_inode(store, p.ino) {
                Ok(i) => i.is_some_and(|i| i.is_symlink()),
                Err(NsError::Corrupt) => false,
                Err(e) => return Err(e),
            };
            last = (p.ino, link);
        }
        if !last.1 {
            report(Problem::StrayPiece {
                ino: p.ino,
                piece: p.off,
            });
        }
        Ok(())
    })?;
    Ok(count)
}

/// Checks the pieces of symbolic link `ino` of `size` bytes.
fn check_pieces<S: Store + ?Sized>(
    store: &S,
    ino: u64,
    size: u64,
    report: &mut dyn FnMut(Problem),
) -> Result<(), NsError> {
    let piece = SYMLINK_PIECE as u64;
    let nr = size.div_ceil(piece);
    let mut next = 0u64;
    store.scan(
        symlink_pos(ino, 0),
        Pos::new(Kind::Symlink, ino + 1, 0),
        &mut |p, v| {
            while next < p.off.min(nr) {
                report(Problem::MissingPiece { ino, piece: next });
                next += 1;
            }
            if p.off >= nr {
                report(Problem::ExtraPiece { ino, piece: p.off });
            } else {
                let expected = (size - p.off * piece).min(piece);
                if v.len() as u64 != expected {
                    report(Problem::PieceSize {
                        ino,
                        piece: p.off,
                        len: v.len() as u64,
                        expected,
                    });
                }
                next = p.off + 1;
            }
            true
        },
    )?;
    while next < nr {
        report(Problem::MissingPiece { ino, piece: next });
        next += 1;
    }
    Ok(())
}

/// Decides whether directory `ino` is reachable from the root by following the parents (each
/// directory's first entry), marking every directory on the way.
fn resolve_dir<T: Tallies + ?Sized>(tallies: &mut T, ino: u64) -> Result<(), NsError> {
    // Walk up until the root, a decided directory, one without a parent, or one on this walk.
    let mut cur = ino;
    let result = loop {
        if cur == ROOT_INO {
            break T_REACHABLE;
        }
        let mut t = tallies.get(cur);
        match t.flags & T_STATE {
            T_REACHABLE => break T_REACHABLE,
            T_UNREACHABLE => break T_UNREACHABLE | (t.flags & T_CYCLE),
            T_VISITING => break T_UNREACHABLE | T_CYCLE,
            _ => {}
        }
        if t.parent == 0 || t.flags & T_DIR == 0 {
            break T_UNREACHABLE;
        }
        t.flags = (t.flags & !T_STATE) | T_VISITING;
        tallies.set(cur, t)?;
        cur = t.parent;
    };
    // Walk again, marking the directories visited.
    let mut cur = ino;
    loop {
        let mut t = tallies.get(cur);
        if cur == ROOT_INO || t.flags & T_STATE != T_VISITING {
            // The start of an undecided walk that stopped at once is marked too.
            if cur == ino && t.flags & T_STATE == 0 && cur != ROOT_INO {
                t.flags |= result;
                tallies.set(cur, t)?;
            }
            return Ok(());
        }
        t.flags = (t.flags & !(T_STATE | T_CYCLE)) | result;
        tallies.set(cur, t)?;
        cur = t.parent;
    }
}

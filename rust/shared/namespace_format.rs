// SPDX-License-Identifier: GPL-2.0

//! The values of namespace keys ([`crate::shared::bkey::Kind`]): inodes, directory entries and
//! pieces of symbolic link targets, and the hash that places a directory entry.
//!
//! - An inode key (`Inode`, `ino`, 0) holds an [`InodeDisk`]. Inode [`ROOT_INO`] is the root
//!   directory, written by `bucketfs format`. An inode key exists while a name points at the
//!   inode: its `nlink` is at least 1.
//! - A directory entry (`Dirent`, directory, slot) holds a [`DirentHeaderDisk`] and the name.
//!   The slot is [`dirent_hash`] of the name, or one of the [`DIRENT_PROBE`] slots after it
//!   when those are taken by other names: a lookup reads the slots `hash..hash + DIRENT_PROBE`.
//! - A symbolic link's target (at most [`MAX_SYMLINK`] bytes) is in pieces of at most
//!   [`SYMLINK_PIECE`] bytes, keys (`Symlink`, inode, 0), (`Symlink`, inode, 1), ...; every
//!   piece but the last is full.

use crate::shared::bkey::{Kind, Pos};
use crate::shared::layout::{layout, Field};

/// The root directory's inode number.
pub const ROOT_INO: u64 = 1;
/// Largest inode number (a 32-bit `stat` can report every one).
pub const MAX_INO: u64 = u32::MAX as u64;
/// Longest name.
pub const MAX_NAME: usize = 255;
/// Slots a name may take after its hash.
pub const DIRENT_PROBE: u64 = 32;
/// Hash slots are below this, so a `readdir` cookie (slot + 2, and the end cookie, this + 2)
/// fits the 32-bit `d_off` of a compat or 32-bit `getdents` and `telldir`.
pub const HASH_LIMIT: u64 = 1 << 30;
/// Bytes of a piece of a symbolic link's target.
pub const SYMLINK_PIECE: usize = 1024;
/// Longest symbolic link target (`PATH_MAX` less its NUL).
pub const MAX_SYMLINK: usize = 4095;
/// Largest file size.
pub const MAX_SIZE: u64 = i64::MAX as u64;

/// File type bits of a mode.
pub const S_IFMT: u32 = 0o170000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// Character device.
pub const S_IFCHR: u32 = 0o020000;
/// Block device.
pub const S_IFBLK: u32 = 0o060000;
/// FIFO.
pub const S_IFIFO: u32 = 0o010000;
/// Socket.
pub const S_IFSOCK: u32 = 0o140000;

layout! {
    /// An inode's attributes: the value of an inode key. Times are seconds since the epoch
    /// (two's complement) and nanoseconds below 10^9.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct InodeDisk(size: 64) {
            /// Type and permission bits (no bit above them); the type is one of the `S_IF*` above.
        0x00 => pub mode: u32,
        /// Owner.
        0x04 => pub uid: u32,
        /// Group.
        0x08 => pub gid: u32,
        /// Names pointing at the inode (for a directory, 2 plus its subdirectories); at least 1.
        0x0c => pub nlink: u32,
        /// Size in bytes, at most [`MAX_SIZE`] (a symbolic link's: its target's length).
        0x10 => pub size: u64,
        /// Last access.
        0x18 => pub atime_sec: u64,
        /// Last change of the contents.
        0x20 => pub mtime_sec: u64,
        /// Last change of the inode.
        0x28 => pub ctime_sec: u64,
        /// Nanoseconds of `atime_sec`.
        0x30 => pub atime_nsec: u32,
        /// Nanoseconds of `mtime_sec`.
        0x34 => pub mtime_nsec: u32,
        /// Nanoseconds of `ctime_sec`.
        0x38 => pub ctime_nsec: u32,
        /// Device number of a device inode (`new_encode_dev`), else 0.
        0x3c => pub rdev: u32,
    }
}

layout! {
    /// The start of a directory entry's value; the name's `name_len` bytes follow.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct DirentHeaderDisk(size: 16) {
        /// The inode the name points at.
        0x00 => pub ino: u64,
        /// Its type, as `readdir` reports it (`DT_*`: the mode's type bits shifted right 12).
        0x08 => pub dtype: u8,
        /// Bytes of the name, 1 to [`MAX_NAME`].
        0x09 => pub name_len: u8,
    }
}

/// Bytes of an inode value.
pub const INODE_SIZE: usize = InodeDisk::SIZE;
/// Bytes of a directory entry value before the name.
pub const DIRENT_HEADER: usize = DirentHeaderDisk::SIZE;

/// Whether `mode`'s type is one bucketfs stores.
pub fn valid_type(mode: u32) -> bool {
    matches!(
        mode & S_IFMT,
        S_IFDIR | S_IFREG | S_IFLNK | S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK
    )
}

/// Whether `name` may be a directory entry's name: 1 to [`MAX_NAME`] bytes, no `/` or NUL,
/// not `.` or `..`.
pub fn valid_name(name: &[u8]) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && !name.iter().any(|&c| c == b'/' || c == 0)
        && name != b"."
        && name != b".."
}

impl InodeDisk {
    /// Whether the attributes are ones an inode key may hold.
    pub fn valid(&self) -> bool {
        valid_type(self.mode)
            && self.mode & !(S_IFMT | 0o7777) == 0
            && self.nlink >= 1
            && self.size <= MAX_SIZE
            && self.atime_nsec < 1_000_000_000
            && self.mtime_nsec < 1_000_000_000
            && self.ctime_nsec < 1_000_000_000
            && (self.mode & S_IFMT != S_IFLNK || (1..=MAX_SYMLINK as u64).contains(&self.size))
    }
}

/// Whether `val` is a valid inode value for inode `ino`.
pub fn check_inode(ino: u64, val: &[u8]) -> bool {
    (1..=MAX_INO).contains(&ino) && val.len() == INODE_SIZE && InodeDisk::read(val).valid()
}

/// A decoded directory entry value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dirent<'a> {
    /// The inode the name points at.
    pub ino: u64,
    /// Its `DT_*` type.
    pub dtype: u8,
    /// The name.
    pub name: &'a [u8],
}

/// The `DT_*` type of `mode`.
pub fn dtype_of(mode: u32) -> u8 {
    ((mode & S_IFMT) >> 12) as u8
}

/// Decodes a directory entry value, if it is a valid one.
pub fn decode_dirent(val: &[u8]) -> Option<Dirent<'_>> {
    let h = DirentHeaderDisk::read(val.get(..DIRENT_HEADER)?);
    let name = &val[DIRENT_HEADER..];
    let ok = name.len() == h.name_len as usize
        && valid_name(name)
        && (1..=MAX_INO).contains(&h.ino)
        && h.dtype <= (S_IFMT >> 12) as u8
        && valid_type((h.dtype as u32) << 12);
    ok.then_some(Dirent {
        ino: h.ino,
        dtype: h.dtype,
        name,
    })
}

/// Encodes a directory entry value into `out`; returns its length (`None` if `name` is not
/// valid or `out` too small).
pub fn encode_dirent(ino: u64, dtype: u8, name: &[u8], out: &mut [u8]) -> Option<usize> {
    if !valid_name(name) {
        return None;
    }
    let len = DIRENT_HEADER + name.len();
    let b = out.get_mut(..len)?;
    DirentHeaderDisk {
        ino,
        dtype,
        name_len: name.len() as u8,
    }
    .write(b);
    b[DIRENT_HEADER..].copy_from_slice(name);
    Some(len)
}

/// Whether `val` is a valid directory entry value at `pos`: a directory inode number, a slot
/// below [`HASH_LIMIT`], a valid entry.
pub fn check_dirent(pos: Pos, val: &[u8]) -> bool {
    (1..=MAX_INO).contains(&pos.ino) && pos.off < HASH_LIMIT && decode_dirent(val).is_some()
}

/// Whether `val` is a valid symbolic link piece at `pos`.
pub fn check_symlink_piece(pos: Pos, val: &[u8]) -> bool {
    (1..=MAX_INO).contains(&pos.ino)
        && (pos.off as usize) < MAX_SYMLINK.div_ceil(SYMLINK_PIECE)
        && (1..=SYMLINK_PIECE).contains(&val.len())
}

/// The hash slot of `name` in a filesystem whose hash seed is `seed` (from its uuid: see
/// [`hash_seed`]): below [`HASH_LIMIT`] - [`DIRENT_PROBE`], so every probe slot is valid.
pub fn dirent_hash(seed: u64, name: &[u8]) -> u64 {
    // FNV-1a over the name, from a basis mixed with the seed, then a 64-bit finaliser.
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &c in name {
        h ^= c as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h % (HASH_LIMIT - DIRENT_PROBE)
}

/// A filesystem's hash seed: from its uuid, so names of two filesystems do not collide alike.
pub fn hash_seed(uuid: &[u8; 16]) -> u64 {
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&uuid[..8]);
    b.copy_from_slice(&uuid[8..]);
    u64::from_le_bytes(a) ^ u64::from_le_bytes(b).rotate_left(32)
}

/// The position of inode `ino`.
pub const fn inode_pos(ino: u64) -> Pos {
    Pos::new(Kind::Inode, ino, 0)
}

/// The position of slot `slot` of directory `dir`.
pub const fn dirent_pos(dir: u64, slot: u64) -> Pos {
    Pos::new(Kind::Dirent, dir, slot)
}

/// The position of piece `piece` of symbolic link `ino`.
pub const fn symlink_pos(ino: u64, piece: u64) -> Pos {
    Pos::new(Kind::Symlink, ino, piece)
}

/// An inode: its number and attributes (what the VFS glue hands over, and an inode key holds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inode {
    /// Inode number, 1 to [`MAX_INO`].
    pub ino: u64,
    /// Its attributes.
    pub attr: InodeDisk,
}

impl Inode {
    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.attr.mode & S_IFMT == S_IFDIR
    }

    /// Whether it is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.attr.mode & S_IFMT == S_IFLNK
    }
}

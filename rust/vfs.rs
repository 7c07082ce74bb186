// SPDX-License-Identifier: GPL-2.0

//! The VFS boundary: the [`FileSystem`] trait a filesystem implements, the ops table
//! ([`FsVTable`]) through which `c/vfs.c`, `c/namespace.c` and `c/file.c` call it,
//! [`DirEmitter`] (a `readdir`'s output), and [`UuidClaim`], the registry of mounted filesystem
//! uuids.
//!
//! C header: [`include/bucketfs_glue.h`](../include/bucketfs_glue.h)
//!
//! The callbacks are `unsafe extern "C" fn`s whose `# Safety` sections state what the C glue
//! guarantees; they convert pointers to references (inode attributes to [`Inode`], names to
//! byte slices) and hand over to the trait. Ownership of
//! the mount options and of a mounted filesystem crosses to C as [`ForeignOwnable`]. No
//! filesystem policy lives here: that is the trait's implementation (`fs_vfs.rs`).

use crate::bdev::BlockDevice;
use crate::data::{map_flags, MapKind};
use crate::glue as bindings;
use crate::shared::namespace_format::{Inode, InodeDisk};
use core::{fmt::Write, marker::PhantomData, mem::ManuallyDrop, ptr::NonNull};
use kernel::{
    alloc::KBox,
    error::Error,
    ffi::{c_char, c_int, c_void},
    prelude::*,
    str::CStr,
    types::ForeignOwnable,
};

/// Figures for statfs, in blocks of `block_size` bytes.
pub(crate) struct Statfs {
    /// Block size in bytes.
    pub(crate) block_size: u64,
    /// Blocks in all.
    pub(crate) blocks: u64,
    /// Blocks not in use.
    pub(crate) blocks_free: u64,
    /// Blocks available for allocation now.
    pub(crate) blocks_avail: u64,
    /// Inodes in all (in use and free).
    pub(crate) files: u64,
    /// Inodes free.
    pub(crate) files_free: u64,
    /// Filesystem id.
    pub(crate) fsid: u64,
}

/// [`FileSystem::update_times`]: which times to write.
pub(crate) mod times {
    use crate::glue as bindings;
    /// The access time.
    pub(crate) const ATIME: u32 = bindings::BUCKETFS_TIME_ATIME;
    /// The modification time.
    pub(crate) const MTIME: u32 = bindings::BUCKETFS_TIME_MTIME;
    /// The change time.
    pub(crate) const CTIME: u32 = bindings::BUCKETFS_TIME_CTIME;
}

/// A mapping of file data for iomap ([`FileSystem::data_map`]): `length` bytes of the file
/// from `offset`, on `dev` at byte `addr` unless a hole.
pub(crate) struct DataMapping<'a> {
    /// The file offset (block aligned).
    pub(crate) offset: u64,
    /// Its length in bytes (block aligned).
    pub(crate) length: u64,
    /// Hole, written or unwritten blocks.
    pub(crate) kind: MapKind,
    /// The device read from (or written to); `None` for a hole.
    pub(crate) dev: Option<&'a BlockDevice>,
    /// The byte address on `dev`.
    pub(crate) addr: u64,
    /// Blocks the call allocated.
    pub(crate) new_blocks: u64,
}

/// One piece of a write ([`FileSystem::data_segments`]): `len` bytes of the file at `offset`
/// go to `dev` at byte `addr`.
pub(crate) struct DataSegment<'a> {
    /// The file offset.
    pub(crate) offset: u64,
    /// The length in bytes.
    pub(crate) len: u64,
    /// The device.
    pub(crate) dev: &'a BlockDevice,
    /// The byte address on `dev`.
    pub(crate) addr: u64,
}

/// What a filesystem offers to the VFS glue: mount option parsing, mount, remount, statfs and
/// unmount (dropping [`FileSystem::Data`]), the namespace, and file data.
///
/// Namespace changes take the attributes of the inodes they touch *after* the change (link
/// counts and times computed by the glue) and are all or nothing: the glue applies those
/// attributes to its inodes only when the method returns `Ok`.
pub(crate) trait FileSystem {
    /// The mount options gathered for one mount or remount (one `fs_context`).
    type Options: Default + 'static;

    /// A mounted filesystem as the VFS holds it; dropped at unmount.
    type Data: ForeignOwnable + Send + Sync;

    /// Parses one mount option `key[=value]` (`value` is `None` for a flag) into `opts`, for
    /// a mount or (`remount`) a remount. Returns `ENOPARAM` for an option that is not the
    /// filesystem's (the VFS handles it), `EINVAL` with a message written to `msg`.
    fn parse_option(
        opts: &mut Self::Options,
        key: &CStr,
        value: Option<&CStr>,
        remount: bool,
        msg: &mut dyn Write,
    ) -> Result;

    /// Mounts `source` with `opts`, read-only if `read_only` (`SB_RDONLY`).
    fn open(source: &CStr, opts: &Self::Options, read_only: bool) -> Result<Self::Data>;

    /// Remount: applies `opts` to the mounted filesystem and, when `read_only` is given, goes
    /// read-only (`Some(true)`) or read-write (`Some(false)`).
    fn reconfigure(
        fs: <Self::Data as ForeignOwnable>::Borrowed<'_>,
        opts: &Self::Options,
        read_only: Option<bool>,
    ) -> Result;

    /// Figures for statfs.
    fn statfs(fs: <Self::Data as ForeignOwnable>::Borrowed<'_>) -> Statfs;

    /// Inode `ino`.
    fn read_inode(fs: <Self::Data as ForeignOwnable>::Borrowed<'_>, ino: u64) -> Result<Inode>;

    /// The inode number `name` in directory `dir` points at; `ENOENT` if there is no such name.
    fn lookup(
        fs: <Self::Data as ForeignOwnable>::Borrowed<'_>,
        dir: u64,
        name: &[u8],
    ) -> Result<u64>;

    /// A new inode `new` (its number set here) named `name` in directory `dir_after`;
    /// `target` is a symbolic link's target.
    fn create(
        fs: <Self::Data as ForeignOwnable>::Borrowed<'_>,
        dir_after: &Inode,
        name: &[u8],
        new: &mut Inode,
        target: Option<&[u8]>,
    ) -> Result;

    /// A new name `name` in directory `dir_after` for inode `inode_after` (not a directory).
    fn link(
        fs: <Self::Data as ForeignOwnable>::Borrowed<'_>,
        dir_after: &Inode,
        name: &[u8],
        inode_after: &Inode,
    ) -> Result;

    /// Removes `name` of directory `dir_after`, a name of `inode_after`; `rmdir`: an empty
    /// directory (else not a directory).
    fn unlink(
        fs: <Self::Data as ForeignOwnable>::Borrowed<'_>,
        dir_after: &Inode,
        name: &[u8],
        inode_after: &Inode,
        rmdir: bool,
    ) -> Result;

    /// Moves `old_name` of `old_dir_after` (inode `moved_after`) to `new_name` of
    /// `new_dir_after` (the same directory: equal attributes), replacing `replaced_after`.
    #[allow(clippy::too_many_arguments)]
    fn rename(
        fs: <Self::Data as ForeignOwnable>::Borrowed<'_>,
        old_dir_after: &Inode,
        old_name: &[u8],
        new_dir_after: &Inode,
        new_name: &[u8],
        moved_after: &Inode,
        replaced_after: Option<&Inode>,
    ) -> Result;

    /// New attributes of an existing inode.
    fn setattr(fs: <Self::Data as ForeignOwnable>::Borrowed<'_>, inode_after: &Inode) -> Result;

    /// The entries of directory `dir` from the emitter's position on.
    fn readdir(
        fs: <Self::Data as ForeignOwnable>::Borrowed<'_>,
        dir: u64,
        out: &mut DirEmitter<'_>,
    ) -> Result;

    /// Symbolic link `ino`'s target into `buf`; returns its length.
    fn read_link(
        fs: <Self::Data as ForeignOwnable>::Borrowed<'_>,
        ino: u64,
        buf: &mut [u8],
    ) -> Result<usize>;

    /// Makes every change made so far durable; `wait`: before returning.
    fn sync_fs(fs: <Self::Data as ForeignOwnable>::Borrowed<'_>, wait: bool) -> Result;

    /// Sets the times `which` ([`times`] bits) of inode `inode.ino` to `inode`'s; its other
    /// attributes stay as stored.
    fn update_times(
        fs: <Self::Data as ForeignOwnable>::Borrowed<'_>,
        inode: &Inode,
        which: u32,
    ) -> Result;

    /// The mapping of `[pos, pos + len)` of file `ino` from `pos` on, for iomap; `flags` are
    /// [`map_flags`] (with `WRITE`, a hole is allocated).
    fn data_map<'a>(
        fs: <Self::Data as ForeignOwnable>::Borrowed<'a>,
        ino: u64,
        pos: u64,
        len: u64,
        flags: u32,
    ) -> Result<DataMapping<'a>>;

    /// The pieces a write of `[pos, pos + len)` goes to, every replica of every extent, in
    /// file order, through `f` (which may stop the walk with an error, returned).
    fn data_segments(
        fs: <Self::Data as ForeignOwnable>::Borrowed<'_>,
        ino: u64,
        pos: u64,
        len: u64,
        f: &mut dyn FnMut(&DataSegment<'_>) -> Result,
    ) -> Result;

    /// The data of `[pos, pos + len)` is on disk; the size in memory is `isize`.
    fn data_written(
        fs: <Self::Data as ForeignOwnable>::Borrowed<'_>,
        ino: u64,
        pos: u64,
        len: u64,
        isize: u64,
    ) -> Result;

    /// Frees the blocks of `[start, end)` of `ino`; returns the blocks freed.
    fn data_punch(
        fs: <Self::Data as ForeignOwnable>::Borrowed<'_>,
        ino: u64,
        start: u64,
        end: u64,
    ) -> Result<u64>;

    /// Blocks allocated to `ino`.
    fn data_blocks(fs: <Self::Data as ForeignOwnable>::Borrowed<'_>, ino: u64) -> Result<u64>;

    /// `FITRIM`: discards free space in `[start, start + len)`, in runs of at least `minlen`
    /// bytes; returns the bytes discarded.
    fn data_trim(
        fs: <Self::Data as ForeignOwnable>::Borrowed<'_>,
        start: u64,
        len: u64,
        minlen: u64,
    ) -> Result<u64>;
}

/// The inode the C glue's attributes describe.
fn inode_of(a: &bindings::bucketfs_attr) -> Inode {
    Inode {
        ino: a.ino,
        attr: InodeDisk {
            mode: a.mode,
            uid: a.uid,
            gid: a.gid,
            nlink: a.nlink,
            size: a.size,
            atime_sec: a.atime_sec as u64,
            mtime_sec: a.mtime_sec as u64,
            ctime_sec: a.ctime_sec as u64,
            atime_nsec: a.atime_nsec,
            mtime_nsec: a.mtime_nsec,
            ctime_nsec: a.ctime_nsec,
            rdev: a.rdev,
        },
    }
}

/// The C glue's attributes of `i`.
fn attr_of(i: &Inode) -> bindings::bucketfs_attr {
    let a = &i.attr;
    bindings::bucketfs_attr {
        ino: i.ino,
        size: a.size,
        atime_sec: a.atime_sec as i64,
        mtime_sec: a.mtime_sec as i64,
        ctime_sec: a.ctime_sec as i64,
        atime_nsec: a.atime_nsec,
        mtime_nsec: a.mtime_nsec,
        ctime_nsec: a.ctime_nsec,
        mode: a.mode,
        uid: a.uid,
        gid: a.gid,
        nlink: a.nlink,
        rdev: a.rdev,
    }
}

/// The output of one `readdir` call (a `struct dir_context`): entries are emitted with their
/// position (cookie); the next call starts from the position of the first entry that did not
/// fit, or the one set last.
///
/// # Invariants
///
/// `ctx` points at a live `struct dir_context` that nothing else uses while the emitter lives.
pub(crate) struct DirEmitter<'a> {
    ctx: NonNull<bindings::dir_context>,
    _ctx: PhantomData<&'a mut bindings::dir_context>,
}

impl DirEmitter<'_> {
    /// The position this call started from (at least 2: `.` and `..` are the glue's).
    pub(crate) fn pos(&self) -> u64 {
        // SAFETY: `ctx` is live by the type invariant.
        unsafe { bindings::bucketfs_dir_pos(self.ctx.as_ptr()) }
    }

    /// Emits entry `name` (inode `ino`, `DT_*` type `dtype`) at position `cookie`; false if the
    /// caller's buffer is full (the position is left at `cookie`: the entry comes again next
    /// call).
    pub(crate) fn emit(&mut self, name: &[u8], cookie: u64, ino: u64, dtype: u8) -> bool {
        // SAFETY: `ctx` is live and ours by the type invariant; `name` is valid for reads of
        // its length during the call.
        unsafe {
            bindings::bucketfs_dir_emit(
                self.ctx.as_ptr(),
                name.as_ptr(),
                name.len(),
                cookie,
                ino,
                dtype,
            )
        }
    }

    /// Sets the position the next call starts from (past the last entry, at the end).
    pub(crate) fn set_pos(&mut self, cookie: u64) {
        // SAFETY: `ctx` is live and ours by the type invariant.
        unsafe { bindings::bucketfs_dir_set_pos(self.ctx.as_ptr(), cookie) }
    }
}

/// The bytes of a name the C glue gave.
///
/// # Safety
///
/// `name` is valid for reads of `len` bytes for `'a` (and not NULL).
unsafe fn name_of<'a>(name: *const u8, len: usize) -> &'a [u8] {
    // SAFETY: By the safety requirements.
    unsafe { core::slice::from_raw_parts(name, len) }
}

/// The errno of a result, for the C glue.
fn errno_of(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Writes into a C message buffer, always leaving it NUL-terminated; stops at its end.
struct CMessage<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for CMessage<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len().saturating_sub(1).saturating_sub(self.len);
        let n = s.len().min(room);
        if let Some(dst) = self.buf.get_mut(self.len..self.len + n) {
            dst.copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
        }
        if let Some(end) = self.buf.get_mut(self.len) {
            *end = 0;
        }
        Ok(())
    }
}

/// The `struct bucketfs_fs_ops` table for filesystem `T`, given to `bucketfs_register_fs()`.
///
/// Its callbacks are installed in the table; bindgen generates the table's type from the C
/// header, so their signatures are checked against the C prototypes at build time.
pub(crate) struct FsVTable<T: FileSystem>(PhantomData<T>);

impl<T: FileSystem> FsVTable<T> {
    /// Called by the C glue for a new `fs_context`: new, empty mount options.
    ///
    /// # Safety
    ///
    /// The caller takes ownership of the result (or NULL on allocation failure) and gives it
    /// back to [`Self::options_free_callback`] once.
    unsafe extern "C" fn options_new_callback() -> *mut c_void {
        match KBox::new(T::Options::default(), GFP_KERNEL) {
            Ok(opts) => opts.into_foreign().cast_mut(),
            Err(_) => core::ptr::null_mut(),
        }
    }

    /// Called by the C glue from the `fs_context`'s `.free`: frees its mount options.
    ///
    /// # Safety
    ///
    /// `opts` is NULL or came from [`Self::options_new_callback`], is given back once, and no
    /// other callback is using it.
    unsafe extern "C" fn options_free_callback(opts: *mut c_void) {
        // SAFETY: By the safety requirements, `opts` is NULL or came from `into_foreign` on a
        // `KBox<T::Options>` and is not borrowed.
        drop(unsafe { KBox::<T::Options>::try_from_foreign(opts) });
    }

    /// Called by the C glue's `.parse_param`: parses one option into the `fs_context`'s
    /// options; on `-EINVAL` leaves a NUL-terminated message in `msg`.
    ///
    /// # Safety
    ///
    /// - `opts` came from [`Self::options_new_callback`], is not freed, and nothing else
    ///   uses it during the call (the VFS serialises calls on one `fs_context`).
    /// - `key` is NUL-terminated; `value` is NUL-terminated or NULL (a flag).
    /// - `msg` is valid for writes of `msg_len` bytes.
    unsafe extern "C" fn parse_option_callback(
        opts: *mut c_void,
        key: *const c_char,
        value: *const c_char,
        remount: bool,
        msg: *mut c_char,
        msg_len: usize,
    ) -> c_int {
        // SAFETY: `opts` came from `into_foreign` on a `KBox<T::Options>` and is used by no one
        // else during the call; the box is taken back only for the call and never dropped here
        // (`ManuallyDrop`), so the C glue keeps owning it.
        let mut opts = ManuallyDrop::new(unsafe { KBox::<T::Options>::from_foreign(opts) });
        // SAFETY: `key` is NUL-terminated, `value` too when not NULL.
        let (key, value) = unsafe {
            (
                CStr::from_char_ptr(key),
                (!value.is_null()).then(|| CStr::from_char_ptr(value)),
            )
        };
        // SAFETY: `msg` is valid for writes of `msg_len` bytes.
        let buf = unsafe { core::slice::from_raw_parts_mut(msg.cast::<u8>(), msg_len) };
        let mut msg = CMessage { buf, len: 0 };
        match T::parse_option(&mut opts, key, value, remount, &mut msg) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// Called by the C glue's `.get_tree`: mounts `source`; on success `*out` owns the
    /// mounted filesystem.
    ///
    /// # Safety
    ///
    /// - `source` is NUL-terminated.
    /// - `opts` came from [`Self::options_new_callback`] and is not freed during the call.
    /// - `out` is valid for a write. The C glue gives what it receives there back to
    ///   [`Self::close_callback`] once.
    unsafe extern "C" fn open_callback(
        source: *const c_char,
        opts: *mut c_void,
        read_only: bool,
        out: *mut *mut c_void,
    ) -> c_int {
        // SAFETY: `source` is NUL-terminated; `opts` came from `into_foreign` on a
        // `KBox<T::Options>` and lives for the call.
        let (source, opts) = unsafe {
            (
                CStr::from_char_ptr(source),
                KBox::<T::Options>::borrow(opts),
            )
        };
        match T::open(source, opts, read_only) {
            Ok(fs) => {
                // SAFETY: `out` is valid for a write.
                unsafe { *out = fs.into_foreign().cast_mut() };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// Called by the C glue's `.reconfigure` (a remount); `read_only` is 1 to go read-only, 0
    /// to go read-write, anything else to stay as it is.
    ///
    /// # Safety
    ///
    /// - `fs` came from [`Self::open_callback`] and is not closed during the call (it is the
    ///   super_block's `s_fs_info`, and the VFS holds `s_umount`).
    /// - `opts` came from [`Self::options_new_callback`] and is not freed during the call.
    unsafe extern "C" fn reconfigure_callback(
        fs: *mut c_void,
        opts: *mut c_void,
        read_only: c_int,
    ) -> c_int {
        // SAFETY: `fs` and `opts` came from `into_foreign` and live for the call.
        let (fs, opts) = unsafe { (T::Data::borrow(fs), KBox::<T::Options>::borrow(opts)) };
        let read_only = match read_only {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        };
        match T::reconfigure(fs, opts, read_only) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// Called by the C glue from `kill_sb`, or from the `fs_context`'s `.free` when no
    /// super_block took the filesystem: unmounts it.
    ///
    /// # Safety
    ///
    /// `fs` came from [`Self::open_callback`], is given back once, and no other callback is
    /// using it.
    unsafe extern "C" fn close_callback(fs: *mut c_void) {
        // SAFETY: `fs` came from `into_foreign`, is given back once and not borrowed.
        drop(unsafe { T::Data::from_foreign(fs) });
    }

    /// Called by the C glue's `.statfs`.
    ///
    /// # Safety
    ///
    /// - `fs` came from [`Self::open_callback`] and is not closed during the call (it is the
    ///   super_block's `s_fs_info`, alive until `kill_sb`).
    /// - `st` is valid for a write.
    unsafe extern "C" fn statfs_callback(fs: *mut c_void, st: *mut bindings::bucketfs_statfs) {
        // SAFETY: `fs` came from `into_foreign` and lives for the call.
        let s = T::statfs(unsafe { T::Data::borrow(fs) });
        // SAFETY: `st` is valid for a write.
        unsafe {
            *st = bindings::bucketfs_statfs {
                block_size: s.block_size,
                blocks: s.blocks,
                blocks_free: s.blocks_free,
                blocks_avail: s.blocks_avail,
                files: s.files,
                files_free: s.files_free,
                fsid: s.fsid,
            }
        };
    }

    /// Called by the C glue for an inode not in its cache: its attributes into `*attr`.
    ///
    /// # Safety
    ///
    /// - `fs` came from [`Self::open_callback`] and is not closed during the call (it is the
    ///   super_block's `s_fs_info`; the glue calls with an active super_block).
    /// - `attr` is valid for a write.
    unsafe extern "C" fn read_inode_callback(
        fs: *mut c_void,
        ino: u64,
        attr: *mut bindings::bucketfs_attr,
    ) -> c_int {
        // SAFETY: `fs` came from `into_foreign` and lives for the call.
        let fs = unsafe { T::Data::borrow(fs) };
        match T::read_inode(fs, ino) {
            Ok(i) => {
                // SAFETY: `attr` is valid for a write.
                unsafe { *attr = attr_of(&i) };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// Called by the C glue's `lookup`: the inode number of `name` in `dir` into `*ino`.
    ///
    /// # Safety
    ///
    /// - `fs` as for [`Self::read_inode_callback`].
    /// - `name` is valid for reads of `len` bytes; `ino` is valid for a write.
    unsafe extern "C" fn lookup_callback(
        fs: *mut c_void,
        dir: u64,
        name: *const u8,
        len: usize,
        ino: *mut u64,
    ) -> c_int {
        // SAFETY: `fs` came from `into_foreign` and lives for the call; `name` is valid for
        // reads of `len` bytes.
        let (fs, name) = unsafe { (T::Data::borrow(fs), name_of(name, len)) };
        match T::lookup(fs, dir, name) {
            Ok(i) => {
                // SAFETY: `ino` is valid for a write.
                unsafe { *ino = i };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// Called by the C glue's `create`, `mkdir`, `mknod` and `symlink`: a new inode `*inode`,
    /// whose number is written there on success.
    ///
    /// # Safety
    ///
    /// - `fs` as for [`Self::read_inode_callback`].
    /// - `dir_after` is valid for reads; `inode` for reads and writes; neither is written by
    ///   anyone else during the call.
    /// - `name` is valid for reads of `len` bytes; `target` is NULL or valid for reads of
    ///   `target_len` bytes.
    unsafe extern "C" fn create_callback(
        fs: *mut c_void,
        dir_after: *const bindings::bucketfs_attr,
        name: *const u8,
        len: usize,
        inode: *mut bindings::bucketfs_attr,
        target: *const u8,
        target_len: usize,
    ) -> c_int {
        // SAFETY: `fs` came from `into_foreign` and lives for the call; the pointers are valid
        // as the safety requirements state.
        let (fs, dir_after, name, target, mut new) = unsafe {
            (
                T::Data::borrow(fs),
                inode_of(&*dir_after),
                name_of(name, len),
                (!target.is_null()).then(|| name_of(target, target_len)),
                inode_of(&*inode),
            )
        };
        match T::create(fs, &dir_after, name, &mut new, target) {
            Ok(()) => {
                // SAFETY: `inode` is valid for a write.
                unsafe { (*inode).ino = new.ino };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// Called by the C glue's `link`.
    ///
    /// # Safety
    ///
    /// - `fs` as for [`Self::read_inode_callback`].
    /// - `dir_after` and `inode_after` are valid for reads; `name` for reads of `len` bytes.
    unsafe extern "C" fn link_callback(
        fs: *mut c_void,
        dir_after: *const bindings::bucketfs_attr,
        name: *const u8,
        len: usize,
        inode_after: *const bindings::bucketfs_attr,
    ) -> c_int {
        // SAFETY: `fs` came from `into_foreign` and lives for the call; the pointers are valid
        // for reads as the safety requirements state.
        let (fs, dir_after, name, inode_after) = unsafe {
            (
                T::Data::borrow(fs),
                inode_of(&*dir_after),
                name_of(name, len),
                inode_of(&*inode_after),
            )
        };
        errno_of(T::link(fs, &dir_after, name, &inode_after))
    }

    /// Called by the C glue's `unlink` and `rmdir`.
    ///
    /// # Safety
    ///
    /// As for [`Self::link_callback`].
    unsafe extern "C" fn unlink_callback(
        fs: *mut c_void,
        dir_after: *const bindings::bucketfs_attr,
        name: *const u8,
        len: usize,
        inode_after: *const bindings::bucketfs_attr,
        rmdir: bool,
    ) -> c_int {
        // SAFETY: `fs` came from `into_foreign` and lives for the call; the pointers are valid
        // for reads as the safety requirements state.
        let (fs, dir_after, name, inode_after) = unsafe {
            (
                T::Data::borrow(fs),
                inode_of(&*dir_after),
                name_of(name, len),
                inode_of(&*inode_after),
            )
        };
        errno_of(T::unlink(fs, &dir_after, name, &inode_after, rmdir))
    }

    /// Called by the C glue's `rename`.
    ///
    /// # Safety
    ///
    /// - `fs` as for [`Self::read_inode_callback`].
    /// - `old_dir_after`, `new_dir_after` and `moved_after` are valid for reads, and
    ///   `replaced_after` is NULL or valid for reads; `oname` is valid for reads of `olen`
    ///   bytes, `nname` of `nlen` bytes.
    #[allow(clippy::too_many_arguments)]
    unsafe extern "C" fn rename_callback(
        fs: *mut c_void,
        old_dir_after: *const bindings::bucketfs_attr,
        oname: *const u8,
        olen: usize,
        new_dir_after: *const bindings::bucketfs_attr,
        nname: *const u8,
        nlen: usize,
        moved_after: *const bindings::bucketfs_attr,
        replaced_after: *const bindings::bucketfs_attr,
    ) -> c_int {
        // SAFETY: `fs` came from `into_foreign` and lives for the call; the pointers are valid
        // for reads as the safety requirements state (`replaced_after` when not NULL).
        let (fs, old_dir, oname, new_dir, nname, moved, replaced) = unsafe {
            (
                T::Data::borrow(fs),
                inode_of(&*old_dir_after),
                name_of(oname, olen),
                inode_of(&*new_dir_after),
                name_of(nname, nlen),
                inode_of(&*moved_after),
                (!replaced_after.is_null()).then(|| inode_of(&*replaced_after)),
            )
        };
        errno_of(T::rename(
            fs,
            &old_dir,
            oname,
            &new_dir,
            nname,
            &moved,
            replaced.as_ref(),
        ))
    }

    /// Called by the C glue's `setattr`.
    ///
    /// # Safety
    ///
    /// - `fs` as for [`Self::read_inode_callback`].
    /// - `inode_after` is valid for reads.
    unsafe extern "C" fn setattr_callback(
        fs: *mut c_void,
        inode_after: *const bindings::bucketfs_attr,
    ) -> c_int {
        // SAFETY: `fs` came from `into_foreign` and lives for the call; `inode_after` is valid
        // for reads.
        let (fs, inode_after) = unsafe { (T::Data::borrow(fs), inode_of(&*inode_after)) };
        errno_of(T::setattr(fs, &inode_after))
    }

    /// Called by the C glue's `iterate_shared`, once `.` and `..` are emitted.
    ///
    /// # Safety
    ///
    /// - `fs` as for [`Self::read_inode_callback`].
    /// - `ctx` is the live `struct dir_context` of the call, used by nothing else during it.
    unsafe extern "C" fn readdir_callback(
        fs: *mut c_void,
        dir: u64,
        ctx: *mut bindings::dir_context,
    ) -> c_int {
        let Some(ctx) = NonNull::new(ctx) else {
            return EINVAL.to_errno();
        };
        // INVARIANT: `ctx` is live and ours for the call, which the emitter does not outlive.
        let mut out = DirEmitter {
            ctx,
            _ctx: PhantomData,
        };
        // SAFETY: `fs` came from `into_foreign` and lives for the call.
        errno_of(T::readdir(unsafe { T::Data::borrow(fs) }, dir, &mut out))
    }

    /// Called by the C glue for a symbolic link's target: into `buf`, its length into `*len`.
    ///
    /// # Safety
    ///
    /// - `fs` as for [`Self::read_inode_callback`].
    /// - `buf` is valid for writes of `size` bytes, `len` for a write.
    unsafe extern "C" fn read_link_callback(
        fs: *mut c_void,
        ino: u64,
        buf: *mut u8,
        size: usize,
        len: *mut usize,
    ) -> c_int {
        // SAFETY: `fs` came from `into_foreign` and lives for the call; `buf` is valid for
        // writes of `size` bytes and used by nothing else during the call.
        let (fs, buf) = unsafe {
            (
                T::Data::borrow(fs),
                core::slice::from_raw_parts_mut(buf, size),
            )
        };
        match T::read_link(fs, ino, buf) {
            Ok(n) => {
                // SAFETY: `len` is valid for a write.
                unsafe { *len = n };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// Called by the C glue's `sync_fs` and `fsync`.
    ///
    /// # Safety
    ///
    /// `fs` as for [`Self::read_inode_callback`].
    unsafe extern "C" fn sync_fs_callback(fs: *mut c_void, wait: bool) -> c_int {
        // SAFETY: `fs` came from `into_foreign` and lives for the call.
        errno_of(T::sync_fs(unsafe { T::Data::borrow(fs) }, wait))
    }

    /// Called by the C glue's `update_time` (a write's or a page fault's time update).
    ///
    /// # Safety
    ///
    /// - `fs` as for [`Self::read_inode_callback`].
    /// - `inode` is valid for reads.
    unsafe extern "C" fn update_times_callback(
        fs: *mut c_void,
        inode: *const bindings::bucketfs_attr,
        which: u32,
    ) -> c_int {
        // SAFETY: `fs` came from `into_foreign` and lives for the call; `inode` is valid for
        // reads.
        let (fs, inode) = unsafe { (T::Data::borrow(fs), inode_of(&*inode)) };
        errno_of(T::update_times(fs, &inode, which))
    }

    /// Called by the C glue's `iomap_begin` (and writeback, readahead, `fallocate`): the
    /// mapping of `[pos, pos + len)` of `ino` into `*map`.
    ///
    /// # Safety
    ///
    /// - `fs` came from [`Self::open_callback`] and is not closed during the call (the
    ///   super_block's; the glue calls with an inode of it in use).
    /// - `map` is valid for a write.
    unsafe extern "C" fn data_map_callback(
        fs: *mut c_void,
        ino: u64,
        pos: u64,
        len: u64,
        flags: u32,
        map: *mut bindings::bucketfs_map,
    ) -> c_int {
        const FLAGS: [(u32, u32); 5] = [
            (bindings::BUCKETFS_MAP_WRITE, map_flags::WRITE),
            (bindings::BUCKETFS_MAP_DIRECT, map_flags::DIRECT),
            (bindings::BUCKETFS_MAP_ZERO, map_flags::ZERO),
            (bindings::BUCKETFS_MAP_REPORT, map_flags::REPORT),
            (bindings::BUCKETFS_MAP_FAULT, map_flags::FAULT),
        ];
        let flags = FLAGS
            .iter()
            .filter(|(c, _)| flags & c != 0)
            .fold(0, |f, (_, r)| f | r);
        // SAFETY: `fs` came from `into_foreign` and lives for the call.
        let fs = unsafe { T::Data::borrow(fs) };
        match T::data_map(fs, ino, pos, len, flags) {
            Ok(m) => {
                let kind = match m.kind {
                    MapKind::Hole => bindings::bucketfs_map_type_BUCKETFS_MAP_HOLE,
                    MapKind::Mapped => bindings::bucketfs_map_type_BUCKETFS_MAP_MAPPED,
                    MapKind::Unwritten => bindings::bucketfs_map_type_BUCKETFS_MAP_UNWRITTEN,
                };
                // SAFETY: `map` is valid for a write.
                unsafe {
                    *map = bindings::bucketfs_map {
                        offset: m.offset,
                        length: m.length,
                        addr: m.addr,
                        bdev: m.dev.map_or(core::ptr::null_mut(), BlockDevice::raw_bdev),
                        type_: kind as u8,
                        new_blocks: m.new_blocks,
                    }
                };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// Called by the C glue when it submits a write: up to `nr` pieces of `[pos, pos + len)`
    /// of `ino` into `segs`, their number into `*filled`, where the next call starts into
    /// `*next`. A piece's replicas (consecutive pieces at one offset) are never split: a piece
    /// that does not fit with all of them is left to the next call.
    ///
    /// # Safety
    ///
    /// - `fs` as for [`Self::data_map_callback`].
    /// - `segs` is valid for writes of `nr` elements, used by nothing else during the call;
    ///   `filled` and `next` are valid for a write.
    #[allow(clippy::too_many_arguments)]
    unsafe extern "C" fn data_segments_callback(
        fs: *mut c_void,
        ino: u64,
        pos: u64,
        len: u64,
        segs: *mut bindings::bucketfs_seg,
        nr: usize,
        filled: *mut usize,
        next: *mut u64,
    ) -> c_int {
        if segs.is_null() {
            return EINVAL.to_errno();
        }
        // SAFETY: `fs` came from `into_foreign` and lives for the call; `segs` is valid for
        // writes of `nr` elements and ours during the call.
        let (fs, out) = unsafe {
            (
                T::Data::borrow(fs),
                core::slice::from_raw_parts_mut(segs, nr),
            )
        };
        let mut n = 0usize;
        let mut stop = None;
        let r = T::data_segments(fs, ino, pos, len, &mut |s| {
            let Some(slot) = out.get_mut(n) else {
                // Full: the replicas of `s`'s piece given so far go to the next call too.
                while n > 0 && out.get(n - 1).is_some_and(|p| p.offset == s.offset) {
                    n -= 1;
                }
                stop = Some(s.offset);
                return Err(EAGAIN);
            };
            *slot = bindings::bucketfs_seg {
                offset: s.offset,
                len: s.len,
                bdev: s.dev.raw_bdev(),
                addr: s.addr,
            };
            n += 1;
            Ok(())
        });
        let at = match (r, stop) {
            (_, Some(_)) if n == 0 => return EIO.to_errno(),
            (_, Some(at)) => at,
            (Ok(()), None) => pos.saturating_add(len),
            (Err(e), None) => return e.to_errno(),
        };
        // SAFETY: `filled` and `next` are valid for writes.
        unsafe {
            *filled = n;
            *next = at;
        }
        0
    }

    /// Called by the C glue when a write is on disk (writeback completion, direct I/O end).
    ///
    /// # Safety
    ///
    /// `fs` as for [`Self::data_map_callback`].
    unsafe extern "C" fn data_written_callback(
        fs: *mut c_void,
        ino: u64,
        pos: u64,
        len: u64,
        isize: u64,
    ) -> c_int {
        // SAFETY: `fs` came from `into_foreign` and lives for the call.
        let fs = unsafe { T::Data::borrow(fs) };
        errno_of(T::data_written(fs, ino, pos, len, isize))
    }

    /// Called by the C glue's truncate, hole punch and eviction: the blocks freed into
    /// `*freed`.
    ///
    /// # Safety
    ///
    /// - `fs` as for [`Self::data_map_callback`].
    /// - `freed` is valid for a write.
    unsafe extern "C" fn data_punch_callback(
        fs: *mut c_void,
        ino: u64,
        start: u64,
        end: u64,
        freed: *mut u64,
    ) -> c_int {
        // SAFETY: `fs` came from `into_foreign` and lives for the call.
        match T::data_punch(unsafe { T::Data::borrow(fs) }, ino, start, end) {
            Ok(n) => {
                // SAFETY: `freed` is valid for a write.
                unsafe { *freed = n };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// Called by the C glue when it reads a regular file's inode: its blocks into `*blocks`.
    ///
    /// # Safety
    ///
    /// - `fs` as for [`Self::data_map_callback`].
    /// - `blocks` is valid for a write.
    unsafe extern "C" fn data_blocks_callback(
        fs: *mut c_void,
        ino: u64,
        blocks: *mut u64,
    ) -> c_int {
        // SAFETY: `fs` came from `into_foreign` and lives for the call.
        match T::data_blocks(unsafe { T::Data::borrow(fs) }, ino) {
            Ok(n) => {
                // SAFETY: `blocks` is valid for a write.
                unsafe { *blocks = n };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// Called by the C glue's `FITRIM`: the bytes discarded into `*trimmed`.
    ///
    /// # Safety
    ///
    /// - `fs` as for [`Self::read_inode_callback`].
    /// - `trimmed` is valid for a write.
    unsafe extern "C" fn data_trim_callback(
        fs: *mut c_void,
        start: u64,
        len: u64,
        minlen: u64,
        trimmed: *mut u64,
    ) -> c_int {
        // SAFETY: `fs` came from `into_foreign` and lives for the call.
        match T::data_trim(unsafe { T::Data::borrow(fs) }, start, len, minlen) {
            Ok(n) => {
                // SAFETY: `trimmed` is valid for a write.
                unsafe { *trimmed = n };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    const VTABLE: bindings::bucketfs_fs_ops = bindings::bucketfs_fs_ops {
        options_new: Some(Self::options_new_callback),
        options_free: Some(Self::options_free_callback),
        parse_option: Some(Self::parse_option_callback),
        open: Some(Self::open_callback),
        reconfigure: Some(Self::reconfigure_callback),
        close: Some(Self::close_callback),
        statfs: Some(Self::statfs_callback),
        read_inode: Some(Self::read_inode_callback),
        lookup: Some(Self::lookup_callback),
        create: Some(Self::create_callback),
        link: Some(Self::link_callback),
        unlink: Some(Self::unlink_callback),
        rename: Some(Self::rename_callback),
        setattr: Some(Self::setattr_callback),
        readdir: Some(Self::readdir_callback),
        read_link: Some(Self::read_link_callback),
        sync_fs: Some(Self::sync_fs_callback),
        update_times: Some(Self::update_times_callback),
        data_map: Some(Self::data_map_callback),
        data_segments: Some(Self::data_segments_callback),
        data_written: Some(Self::data_written_callback),
        data_punch: Some(Self::data_punch_callback),
        data_blocks: Some(Self::data_blocks_callback),
        data_trim: Some(Self::data_trim_callback),
    };

    /// The table, for `bucketfs_register_fs()`.
    pub(crate) const fn build() -> &'static bindings::bucketfs_fs_ops {
        &Self::VTABLE
    }
}

/// A filesystem uuid claimed by one mount, from the first look at its superblocks until the
/// filesystem is gone: no other mount can claim the same uuid (a clone) meanwhile. Released
/// on drop.
///
/// # Invariants
///
/// `claim` came from `bucketfs_uuid_claim()` and has not been released.
pub(crate) struct UuidClaim {
    claim: NonNull<bindings::bucketfs_uuid_claim>,
}

// SAFETY: A claim may be released from any thread; the registry has its own lock.
unsafe impl Send for UuidClaim {}
// SAFETY: `&UuidClaim` offers no operation.
unsafe impl Sync for UuidClaim {}

impl UuidClaim {
    /// Claims `uuid` for a mount of `source`. If another mount holds it, fails with `EBUSY`
    /// and leaves that mount's source, NUL-terminated, in `holder`.
    pub(crate) fn new(uuid: &[u8; 16], source: &CStr, holder: &mut [u8]) -> Result<UuidClaim> {
        let mut err = 0;
        // SAFETY: `uuid` has the 16 bytes the glue reads, `source` is NUL-terminated, `holder`
        // is valid for writes of its length, `err` for one write.
        let claim = unsafe {
            bindings::bucketfs_uuid_claim(
                uuid.as_ptr(),
                source.as_char_ptr(),
                holder.as_mut_ptr().cast(),
                holder.len(),
                &mut err,
            )
        };
        match NonNull::new(claim) {
            Some(claim) => Ok(UuidClaim { claim }),
            None => Err(Error::from_errno(err)),
        }
    }
}

impl Drop for UuidClaim {
    fn drop(&mut self) {
        // SAFETY: `claim` is live by the type invariant and released once, here.
        unsafe { bindings::bucketfs_uuid_release(self.claim.as_ptr()) };
    }
}

/// A random (version 4) uuid: the member uuid of a member added while mounted.
pub(crate) fn random_uuid() -> [u8; 16] {
    let mut uuid = [0u8; 16];
    // SAFETY: `uuid` is valid for writes of the 16 bytes the C function fills.
    unsafe { bindings::bucketfs_random_uuid(uuid.as_mut_ptr()) };
    uuid
}

// SPDX-License-Identifier: GPL-2.0

//! The VFS boundary: the [`FileSystem`] trait a filesystem implements, the ops table
//! ([`FsVTable`]) through which `c/vfs.c` calls it, and [`UuidClaim`], the registry of
//! mounted filesystem uuids.
//!
//! C header: [`include/bucketfs_glue.h`](../include/bucketfs_glue.h)
//!
//! The callbacks are `unsafe extern "C" fn`s whose `# Safety` sections state what the C glue
//! guarantees; they convert pointers to references and hand over to the trait. Ownership of
//! the mount options and of a mounted filesystem crosses to C as [`ForeignOwnable`]. No
//! filesystem policy lives here: that is the trait's implementation (`fs_vfs.rs`).

use crate::glue as bindings;
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
    /// Filesystem id.
    pub(crate) fsid: u64,
}

/// What a filesystem offers to the VFS glue: mount option parsing, mount, remount, statfs and
/// unmount (dropping [`FileSystem::Data`]).
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
                fsid: s.fsid,
            }
        };
    }

    const VTABLE: bindings::bucketfs_fs_ops = bindings::bucketfs_fs_ops {
        options_new: Some(Self::options_new_callback),
        options_free: Some(Self::options_free_callback),
        parse_option: Some(Self::parse_option_callback),
        open: Some(Self::open_callback),
        reconfigure: Some(Self::reconfigure_callback),
        close: Some(Self::close_callback),
        statfs: Some(Self::statfs_callback),
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

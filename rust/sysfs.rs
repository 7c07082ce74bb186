// SPDX-License-Identifier: GPL-2.0

//! The sysfs boundary: `/sys/fs/bucketfs/<uuid>/` as tables of files.
//!
//! C header: [`include/bucketfs_glue.h`](../include/bucketfs_glue.h)
//!
//! `c/sysfs.c` builds the kobjects: per filesystem a top directory, `options/`, `internal/`
//! and one `dev-N/` per member. What files a directory has, and what reading or writing them
//! does, comes from the [`SysfsFiles`] implementation of the filesystem (`fs_sysfs.rs`): one
//! [`File`] row per file. The C glue reaches it through the ops table [`SysfsVTable`], whose
//! callbacks are `unsafe extern "C" fn`s that only turn pointers into references and look
//! the row up. No policy lives here.

use crate::glue as bindings;
use core::{marker::PhantomData, pin::Pin, ptr::NonNull};
use kernel::{
    alloc::KBox,
    error::Error,
    ffi::{c_char, c_uint, c_void},
    prelude::*,
    str::CStr,
};

/// A directory of a filesystem's sysfs directory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// `/sys/fs/bucketfs/<uuid>/` itself.
    Top,
    /// `options/`.
    Options,
    /// `internal/`.
    Internal,
    /// `dev-N/`, one per member.
    Dev,
}

impl Dir {
    /// The directory of C kind `kind`.
    fn from_kind(kind: c_uint) -> Option<Dir> {
        match kind {
            bindings::bucketfs_sysfs_kind_BUCKETFS_SYSFS_TOP => Some(Dir::Top),
            bindings::bucketfs_sysfs_kind_BUCKETFS_SYSFS_OPTIONS => Some(Dir::Options),
            bindings::bucketfs_sysfs_kind_BUCKETFS_SYSFS_INTERNAL => Some(Dir::Internal),
            bindings::bucketfs_sysfs_kind_BUCKETFS_SYSFS_DEV => Some(Dir::Dev),
            _ => None,
        }
    }
}

/// Which file a show or store is for: the N of `dev-N/` (0 elsewhere) and the file's row
/// index in its directory.
#[derive(Clone, Copy)]
pub(crate) struct At {
    /// The member, for `dev-N/`.
    pub(crate) member: usize,
    /// The row of the file in its directory's table.
    pub(crate) index: usize,
}

/// Writes into a sysfs page; stops one byte before its end (a full page is a bad count).
pub(crate) struct PageWriter<'a> {
    page: &'a mut [u8],
    len: usize,
}

impl core::fmt::Write for PageWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.page.len() - self.len);
        self.page[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Reads a file of `T`'s sysfs directory into a page.
pub(crate) type Show<T> = fn(&T, At, &mut PageWriter<'_>) -> core::fmt::Result;

/// Writes the bytes given to a file of `T`'s sysfs directory; `Ok` takes them all.
pub(crate) type Store<T> = fn(&T, At, &[u8]) -> Result;

/// One sysfs file: one row of a directory's table.
pub(crate) struct File<T: 'static> {
    /// The file name.
    pub(crate) name: &'static str,
    /// Its mode (`0o444` read-only, `0o644` root-writable, `0o200` root write-only).
    pub(crate) mode: u16,
    /// What reading it gives; `None` reads nothing.
    pub(crate) show: Option<Show<T>>,
    /// What writing it does; `None` refuses writes with `EINVAL`.
    pub(crate) store: Option<Store<T>>,
}

impl<T> Clone for File<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for File<T> {}

/// What a filesystem offers to sysfs: the files of each of its directories, by row.
pub(crate) trait SysfsFiles: Sized + Sync + 'static {
    /// Row `index` of directory `dir`'s table; `None` past the last one.
    fn file(dir: Dir, index: usize) -> Option<File<Self>>;

    /// The number of `dev-N/` directories wanted now: after every successful write to a file
    /// of the top directory, the missing ones are created (a member added while mounted).
    fn nr_devs(&self) -> usize;
}

/// The `struct bucketfs_sysfs_ops` table for `T`, given to `bucketfs_sysfs_add()`.
///
/// Its callbacks are installed in the table; bindgen generates the table's type from the C
/// header, so their signatures are checked against the C prototypes at build time.
struct SysfsVTable<T: SysfsFiles>(PhantomData<T>);

impl<T: SysfsFiles> SysfsVTable<T> {
    /// Called by the C glue while it builds a directory of `kind`: names file `index`.
    ///
    /// # Safety
    ///
    /// `name`, `name_len` and `mode` are valid for a write each.
    unsafe extern "C" fn attr_callback(
        kind: c_uint,
        index: c_uint,
        name: *mut *const c_char,
        name_len: *mut usize,
        mode: *mut bindings::umode_t,
    ) -> bool {
        let Some(file) = Dir::from_kind(kind).and_then(|dir| T::file(dir, index as usize)) else {
            return false;
        };
        // SAFETY: The three outputs are valid for writes.
        unsafe {
            *name = file.name.as_ptr().cast();
            *name_len = file.name.len();
            *mode = file.mode;
        }
        true
    }

    /// Called by the C glue's `show`: reads file `index` of a directory of `kind`.
    ///
    /// # Safety
    ///
    /// - `fs` is the `T` given to [`SysfsDir::add`]; the directory is not removed yet, so it
    ///   is alive (type invariant of [`SysfsDir`]).
    /// - `buf` is a page (`PAGE_SIZE` bytes) valid for writes.
    unsafe extern "C" fn show_callback(
        fs: *mut c_void,
        kind: c_uint,
        member: c_uint,
        index: c_uint,
        buf: *mut c_char,
    ) -> isize {
        // SAFETY: `fs` points to a live `T` that is only shared; `buf` is a writable page.
        let (fs, page) = unsafe {
            (
                &*fs.cast::<T>(),
                // One byte short of the page: sysfs warns about a show that fills all of it.
                core::slice::from_raw_parts_mut(buf.cast::<u8>(), kernel::page::PAGE_SIZE - 1),
            )
        };
        let mut out = PageWriter { page, len: 0 };
        let at = At {
            member: member as usize,
            index: index as usize,
        };
        if let Some(show) = Dir::from_kind(kind)
            .and_then(|dir| T::file(dir, at.index))
            .and_then(|file| file.show)
        {
            let _ = show(fs, at, &mut out);
        }
        out.len as isize
    }

    /// Called by the C glue's `store`: writes `len` bytes to file `index` of a directory of
    /// `kind`.
    ///
    /// # Safety
    ///
    /// - `fs` is as for [`Self::show_callback`].
    /// - `buf` is valid for reads of `len` bytes.
    unsafe extern "C" fn store_callback(
        fs: *mut c_void,
        kind: c_uint,
        member: c_uint,
        index: c_uint,
        buf: *const c_char,
        len: usize,
    ) -> isize {
        // SAFETY: `fs` points to a live `T` that is only shared; `buf` holds `len` bytes.
        let (fs, bytes) = unsafe {
            (
                &*fs.cast::<T>(),
                core::slice::from_raw_parts(buf.cast::<u8>(), len),
            )
        };
        let at = At {
            member: member as usize,
            index: index as usize,
        };
        let Some(store) = Dir::from_kind(kind)
            .and_then(|dir| T::file(dir, at.index))
            .and_then(|file| file.store)
        else {
            return EINVAL.to_errno() as isize;
        };
        match store(fs, at, bytes) {
            Ok(()) => len as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// Called by the C glue after a successful store to the top directory: the number of
    /// `dev-N/` directories the filesystem wants.
    ///
    /// # Safety
    ///
    /// `fs` is as for [`Self::show_callback`].
    unsafe extern "C" fn nr_devs_callback(fs: *mut c_void) -> c_uint {
        // SAFETY: `fs` points to a live `T` that is only shared.
        let fs = unsafe { &*fs.cast::<T>() };
        fs.nr_devs().try_into().unwrap_or(0)
    }

    const VTABLE: bindings::bucketfs_sysfs_ops = bindings::bucketfs_sysfs_ops {
        attr: Some(Self::attr_callback),
        show: Some(Self::show_callback),
        store: Some(Self::store_callback),
        nr_devs: Some(Self::nr_devs_callback),
    };

    /// The table, for `bucketfs_sysfs_add()`.
    const fn build() -> &'static bindings::bucketfs_sysfs_ops {
        &Self::VTABLE
    }
}

/// The sysfs directory of a mounted filesystem, and the filesystem it shows: the directory
/// owns the filesystem, so safe code cannot drop the filesystem while its files are up. On
/// drop the directory is removed first, then the filesystem.
///
/// # Invariants
///
/// `dirs` came from `bucketfs_sysfs_add()` for `owner` and has not been removed; its
/// callbacks get a pointer to `*owner`, which is pinned and lives until after the removal.
pub(crate) struct SysfsDir<T: SysfsFiles> {
    dirs: NonNull<bindings::bucketfs_sysfs>,
    owner: Pin<KBox<T>>,
}

// SAFETY: The sysfs handle may be removed from any thread; the owner is `Send`.
unsafe impl<T: SysfsFiles + Send> Send for SysfsDir<T> {}
// SAFETY: `&SysfsDir` only gives out `&T`, and `T` is `Sync`.
unsafe impl<T: SysfsFiles> Sync for SysfsDir<T> {}

impl<T: SysfsFiles> SysfsDir<T> {
    /// Creates `/sys/fs/bucketfs/<name>/` for `owner`, with `nr_members` `dev-N/`
    /// directories (up to `max_members` later, see [`SysfsFiles::nr_devs`]), and takes
    /// `owner` (dropped on failure).
    pub(crate) fn add(
        name: &CStr,
        owner: Pin<KBox<T>>,
        nr_members: u32,
        max_members: u32,
    ) -> Result<Self> {
        let mut err = 0;
        let fs_ptr = (&*owner as *const T).cast_mut().cast::<c_void>();
        // SAFETY: `name` is NUL-terminated; the ops table is static; `fs_ptr` points to the
        // pinned `T` this directory will own, which outlives the directory (dropped after the
        // removal in `drop`), and the callbacks only share it (`T: Sync`); `err` is valid for
        // writes.
        let dirs = unsafe {
            bindings::bucketfs_sysfs_add(
                name.as_char_ptr(),
                SysfsVTable::<T>::build(),
                fs_ptr,
                nr_members,
                max_members,
                &mut err,
            )
        };
        match NonNull::new(dirs) {
            // INVARIANT: the directory was created for `owner`, which it keeps.
            Some(dirs) => Ok(SysfsDir { dirs, owner }),
            None => Err(Error::from_errno(err)),
        }
    }

    /// The filesystem this directory shows.
    pub(crate) fn owner(&self) -> &T {
        &self.owner
    }
}

impl<T: SysfsFiles> Drop for SysfsDir<T> {
    fn drop(&mut self) {
        // SAFETY: `dirs` is live by the type invariant and removed once, here. Removal waits
        // for callbacks in flight, so none runs after this returns; `owner` is dropped after.
        unsafe { bindings::bucketfs_sysfs_remove(self.dirs.as_ptr()) };
    }
}

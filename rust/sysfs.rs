// SPDX-License-Identifier: GPL-2.0

//! `/sys/fs/bucketfs/<uuid>/`: which files each directory has and what they do.
//!
//! `c/sysfs.c` builds the kobjects and forwards every read and write here.
//!
//! - `options/<name>`: one file per row of the option table; reads give the value in force,
//!   writes (root only, runtime options only) are validated, applied and persisted.
//! - `internal/`: debugging knobs.
//! - `dev-N/`: the member's device name, geometry and buckets per state.

use crate::fs::{describe_option_error, Fs};
use crate::glue as bindings;
use crate::shared::bucket_table::{BucketState, NR_STATES};
use crate::shared::options::{parse_value, Opt, OPTIONS};
use crate::shared::superblock::UuidFmt;
use core::{fmt::Write, pin::Pin, ptr::NonNull};
use kernel::{
    alloc::KBox,
    error::Error,
    ffi::{c_char, c_uint, c_void},
    prelude::*,
    str::CStr,
};

/// A bounded text buffer for messages and sysfs output; output past the end is dropped.
pub(crate) struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    /// An empty buffer.
    pub(crate) fn new() -> Self {
        Text {
            buf: [0; N],
            len: 0,
        }
    }

    /// The text written so far (cut at a character boundary).
    pub(crate) fn as_str(&self) -> &str {
        match core::str::from_utf8(&self.buf[..self.len]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl<const N: usize> core::fmt::Write for Text<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// At most the first `max` bytes of `text`, cut at a character boundary.
pub(crate) fn prefix(text: &str, max: usize) -> &str {
    let mut n = text.len().min(max);
    while n > 0 && !text.is_char_boundary(n) {
        n -= 1;
    }
    text.get(..n).unwrap_or("")
}

/// Writes into a sysfs page; stops at its end.
struct PageWriter<'a> {
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

const KIND_OPTIONS: c_uint = bindings::bucketfs_sysfs_kind_BUCKETFS_SYSFS_OPTIONS;
const KIND_INTERNAL: c_uint = bindings::bucketfs_sysfs_kind_BUCKETFS_SYSFS_INTERNAL;
const KIND_DEV: c_uint = bindings::bucketfs_sysfs_kind_BUCKETFS_SYSFS_DEV;

const INTERNAL_FILES: [&str; 1] = ["superblock_seq"];
const DEV_FILES: [&str; 6] = [
    "device",
    "nbuckets",
    "bucket_size",
    "first_bucket",
    "discard",
    "max_discard_bytes",
];

/// Name and mode of file `index` of a directory of `kind`.
fn attr(kind: c_uint, index: usize) -> Option<(&'static str, u16)> {
    match kind {
        KIND_OPTIONS => OPTIONS
            .get(index)
            .map(|d| (d.name, if d.settable.runtime { 0o644 } else { 0o444 })),
        KIND_INTERNAL => INTERNAL_FILES.get(index).map(|n| (*n, 0o444)),
        KIND_DEV if index < DEV_FILES.len() => Some((DEV_FILES[index], 0o444)),
        KIND_DEV => BucketState::ALL
            .get(index - DEV_FILES.len())
            .map(|s| (s.name(), 0o444)),
        _ => None,
    }
}

/// The sysfs directory of a mounted filesystem; removed on drop.
///
/// # Invariants
///
/// `dirs` came from `bucketfs_sysfs_add()` and has not been removed. Its callbacks get a
/// pointer to the [`Fs`] it was created for, which outlives it (see [`crate::fs::Mounted`]).
pub(crate) struct SysfsDir {
    dirs: NonNull<bindings::bucketfs_sysfs>,
}

// SAFETY: The sysfs handle may be removed from any thread.
unsafe impl Send for SysfsDir {}
// SAFETY: `&SysfsDir` offers no operation.
unsafe impl Sync for SysfsDir {}

impl SysfsDir {
    /// Creates `/sys/fs/bucketfs/<name>/` for `fs`. The caller must drop the result before `fs`.
    pub(crate) fn add(name: &CStr, fs: &Pin<KBox<Fs>>, nr_members: u32) -> Result<SysfsDir> {
        let mut err = 0;
        let fs_ptr = (&**fs as *const Fs).cast_mut().cast::<c_void>();
        // SAFETY: `name` is NUL-terminated; `fs_ptr` points to a pinned `Fs` that the caller keeps
        // alive until this directory is removed; `err` is valid for writes.
        let dirs = unsafe {
            bindings::bucketfs_sysfs_add(name.as_char_ptr(), fs_ptr, nr_members, &mut err)
        };
        match NonNull::new(dirs) {
            Some(dirs) => Ok(SysfsDir { dirs }),
            None => Err(Error::from_errno(err)),
        }
    }
}

impl Drop for SysfsDir {
    fn drop(&mut self) {
        // SAFETY: `dirs` is live by the type invariant and removed once, here. Removal waits
        // for callbacks in flight, so none runs after this returns.
        unsafe { bindings::bucketfs_sysfs_remove(self.dirs.as_ptr()) };
    }
}

/// Reports file `index` of directories of `kind` to the C glue.
#[no_mangle]
extern "C" fn bucketfs_rs_sysfs_attr(
    kind: c_uint,
    index: c_uint,
    name: *mut *const c_char,
    name_len: *mut usize,
    mode: *mut bindings::umode_t,
) -> bool {
    let Some((n, m)) = attr(kind, index as usize) else {
        return false;
    };
    // SAFETY: The C glue passes valid pointers for the three outputs.
    unsafe {
        *name = n.as_ptr();
        *name_len = n.len();
        *mode = m;
    }
    true
}

/// Reads file `index` of a directory of `kind` into `buf` (a page).
#[no_mangle]
extern "C" fn bucketfs_rs_sysfs_show(
    fs: *mut c_void,
    kind: c_uint,
    member: c_uint,
    index: c_uint,
    buf: *mut c_char,
) -> isize {
    // SAFETY: `fs` is the `Fs` this directory was created for, alive while the directory is
    // (type invariant of `SysfsDir`); `buf` is a page-sized buffer sysfs gives us.
    let (fs, page) = unsafe {
        (
            &*fs.cast::<Fs>(),
            core::slice::from_raw_parts_mut(buf.cast::<u8>(), 4096),
        )
    };
    let mut out = PageWriter { page, len: 0 };
    let index = index as usize;
    let st = fs.state.lock();
    let _ = match kind {
        KIND_OPTIONS if index < OPTIONS.len() => {
            writeln!(out, "{}", st.live.get(Opt::from_index(index)))
        }
        KIND_INTERNAL if index == 0 => writeln!(out, "{}", st.sb.seq),
        KIND_DEV if (member as usize) < fs.members.len() => {
            let m = member as usize;
            let desc = &st.sb.members[m];
            match index {
                0 => writeln!(out, "{}", fs.members[m].name()),
                1 => writeln!(out, "{}", desc.nbuckets),
                2 => writeln!(out, "{}", desc.bucket_size),
                3 => writeln!(out, "{}", desc.first_bucket),
                4 => writeln!(out, "{}", desc.discard() as u32),
                5 => writeln!(out, "{}", fs.members[m].dev.max_discard_bytes()),
                i if i - DEV_FILES.len() < NR_STATES => {
                    writeln!(out, "{}", st.counts[m][i - DEV_FILES.len()])
                }
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    };
    out.len as isize
}

/// Writes `len` bytes from `buf` to file `index` of a directory of `kind`.
#[no_mangle]
extern "C" fn bucketfs_rs_sysfs_store(
    fs: *mut c_void,
    kind: c_uint,
    _member: c_uint,
    index: c_uint,
    buf: *const c_char,
    len: usize,
) -> isize {
    // SAFETY: As in `bucketfs_rs_sysfs_show`; `buf` holds `len` bytes.
    let (fs, bytes) = unsafe {
        (
            &*fs.cast::<Fs>(),
            core::slice::from_raw_parts(buf.cast::<u8>(), len),
        )
    };
    let index = index as usize;
    if kind != KIND_OPTIONS || index >= OPTIONS.len() {
        return EINVAL.to_errno() as isize;
    }
    let opt = Opt::from_index(index);
    let text = core::str::from_utf8(bytes).unwrap_or("\u{fffd}");
    let result = match parse_value(opt.desc(), text) {
        Ok(_) if !opt.desc().settable.runtime => Err((EPERM, None)),
        Ok(v) => fs.set_option(opt, v),
        Err(e) => Err((EINVAL, Some(e))),
    };
    match result {
        Ok(()) => {
            pr_info!(
                "{}: options/{} set to {}\n",
                UuidFmt(&fs.uuid),
                opt.desc().name,
                text.trim_end()
            );
            len as isize
        }
        Err((err, why)) => {
            let mut msg = Text::<160>::new();
            match why {
                Some(e) => describe_option_error(&mut msg, opt.desc().name, prefix(text, 32), e),
                None => {
                    let _ = write!(msg, "{}: not changed", opt.desc().name);
                }
            }
            pr_err!(
                "{}: options/{} ({})\n",
                UuidFmt(&fs.uuid),
                msg.as_str(),
                err.to_errno()
            );
            err.to_errno() as isize
        }
    }
}

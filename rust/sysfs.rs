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
use crate::text::{prefix, Text};
use core::{fmt::Write, pin::Pin, ptr::NonNull, sync::atomic::Ordering};
use kernel::{
    alloc::KBox,
    error::Error,
    ffi::{c_char, c_uint, c_void},
    prelude::*,
    str::CStr,
};

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

const INTERNAL_FILES: [(&str, u16); 6] = [
    ("superblock_seq", 0o444),
    ("alloc_debug", 0o444),
    ("btree_stats", 0o444),
    ("replay", 0o444),
    ("abort_stuck_allocations", 0o200),
    ("trigger_discards", 0o200),
];
const ABORT: usize = 4;
const TRIGGER_DISCARDS: usize = 5;

fn show_internal(fs: &Fs, index: usize, out: &mut dyn Write) -> core::fmt::Result {
    let p = &fs.progress;
    match index {
        0 => writeln!(out, "{}", fs.state.lock().sb.seq),
        1 => fs.alloc.debug(out),
        2 => writeln!(
            out,
            "keys {}\nnodes {}\ndepth {}\ndigest {:016x}",
            p.keys.load(Ordering::Relaxed),
            p.nodes.load(Ordering::Relaxed),
            p.depth.load(Ordering::Relaxed),
            p.digest.load(Ordering::Relaxed)
        ),
        3 => writeln!(
            out,
            "replayed {} of {} key(s) from {} journal bytes in {} us",
            p.replay_done.load(Ordering::Relaxed),
            p.replay_total.load(Ordering::Relaxed),
            p.replay_bytes.load(Ordering::Relaxed),
            p.replay_us.load(Ordering::Relaxed)
        ),
        _ => Ok(()),
    }
}
const DEV_FILES: [&str; 13] = [
    "device",
    "nbuckets",
    "bucket_size",
    "first_bucket",
    "discard",
    "max_discard_bytes",
    "discard_buckets",
    "discard_commands",
    "discard_bytes",
    "freed_without_discard",
    "discard_errors",
    "discard_ns",
    "writable",
];
const DEV_DISCARD: usize = 4;
const DEV_WRITABLE: usize = 12;

/// Name and mode of file `index` of a directory of `kind`.
fn attr(kind: c_uint, index: usize) -> Option<(&'static str, u16)> {
    match kind {
        KIND_OPTIONS => OPTIONS
            .get(index)
            .map(|d| (d.name, if d.settable.runtime { 0o644 } else { 0o444 })),
        KIND_INTERNAL => INTERNAL_FILES.get(index).copied(),
        KIND_DEV if index == DEV_DISCARD || index == DEV_WRITABLE => {
            Some((DEV_FILES[index], 0o644))
        }
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
/// pointer to the [`Fs`] it was created for, which outlives it (see [`crate::mount::Mounted`]).
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
    let m = member as usize;
    let _ = match kind {
        KIND_OPTIONS if index < OPTIONS.len() => {
            let v = fs.state.lock().live.get(Opt::from_index(index));
            writeln!(out, "{v}")
        }
        KIND_INTERNAL => show_internal(fs, index, &mut out),
        KIND_DEV if m < fs.members.len() => {
            let desc = &fs.geometry[m];
            match index {
                0 => writeln!(out, "{}", fs.members[m].name()),
                1 => writeln!(out, "{}", desc.nbuckets),
                2 => writeln!(out, "{}", desc.bucket_size),
                3 => writeln!(out, "{}", desc.first_bucket),
                DEV_DISCARD => writeln!(out, "{}", fs.state.lock().sb.members[m].discard() as u32),
                5 => writeln!(out, "{}", fs.members[m].dev.max_discard_bytes()),
                DEV_WRITABLE => writeln!(out, "{}", fs.alloc.writable(m) as u32),
                6..=11 => {
                    let c = &fs.discard.counters[m];
                    let v = [
                        &c.buckets,
                        &c.commands,
                        &c.bytes,
                        &c.without_io,
                        &c.errors,
                        &c.ns,
                    ][index - 6];
                    writeln!(out, "{}", v.load(Ordering::Relaxed))
                }
                i if i - DEV_FILES.len() < NR_STATES => {
                    let count = fs.alloc.counts(m)[i - DEV_FILES.len()];
                    writeln!(out, "{count}")
                }
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    };
    out.len as isize
}

/// `internal/abort_stuck_allocations`: "1" fails every allocation parked right now.
fn store_abort(fs: &Fs, bytes: &[u8]) -> isize {
    if bytes != b"1" && bytes != b"1\n" {
        pr_err!(
            "{}: internal/abort_stuck_allocations takes 1 (-22)\n",
            UuidFmt(&fs.uuid)
        );
        return EINVAL.to_errno() as isize;
    }
    let n = fs.alloc.abort_parked();
    pr_warn!(
        "{}: abort_stuck_allocations: {n} parked allocation(s) fail with ECANCELED\n",
        UuidFmt(&fs.uuid)
    );
    bytes.len() as isize
}

/// Writes `len` bytes from `buf` to file `index` of a directory of `kind`.
#[no_mangle]
extern "C" fn bucketfs_rs_sysfs_store(
    fs: *mut c_void,
    kind: c_uint,
    member: c_uint,
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
    if kind == KIND_INTERNAL && index == ABORT {
        return store_abort(fs, bytes);
    }
    if kind == KIND_INTERNAL && index == TRIGGER_DISCARDS {
        if bytes != b"1" && bytes != b"1\n" {
            pr_err!(
                "{}: internal/trigger_discards takes 1 (-22)\n",
                UuidFmt(&fs.uuid)
            );
            return EINVAL.to_errno() as isize;
        }
        fs.kick_discards();
        return len as isize;
    }
    if kind == KIND_DEV
        && (index == DEV_DISCARD || index == DEV_WRITABLE)
        && (member as usize) < fs.members.len()
    {
        // Booleans, spelled as the `discard` option is.
        let text = core::str::from_utf8(bytes).unwrap_or("");
        let Ok(v) = parse_value(crate::shared::options::Opt::Discard.desc(), text) else {
            pr_err!(
                "{}: dev-{member}/{}={}: not a valid value (-22)\n",
                UuidFmt(&fs.uuid),
                DEV_FILES[index],
                prefix(text.trim_end(), 32)
            );
            return EINVAL.to_errno() as isize;
        };
        let m = member as usize;
        let result = if index == DEV_DISCARD {
            fs.set_member_discard(m, v != 0)
        } else {
            fs.alloc.set_writable(m, v != 0);
            Ok(())
        };
        return match result {
            Ok(()) => len as isize,
            Err(e) => e.to_errno() as isize,
        };
    }
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

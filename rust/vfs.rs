// SPDX-License-Identifier: GPL-2.0

//! Entry points for the VFS glue in `c/vfs.c`: mount options, mount, remount, unmount,
//! statfs; and [`UuidClaim`], the registry of mounted filesystem uuids.

use crate::fs::{describe_option_error, Fs};
use crate::glue as bindings;
use crate::mount::Mounted;
use crate::shared::options::{lookup, Kind, MountOptions, Opt, OptError, When};
use crate::shared::superblock::UuidFmt;
use crate::text::{prefix, Text};
use core::{fmt::Write, ptr::NonNull};
use kernel::{
    alloc::KBox,
    error::Error,
    ffi::{c_char, c_int, c_void},
    prelude::*,
    str::CStr,
};

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

/// `-ENOPARAM`: not ours, let the VFS handle it (`source`, or an unknown option it reports).
const ENOPARAM: c_int = -(kernel::bindings::ENOPARAM as c_int);

/// A new, empty set of mount options for an `fs_context`.
#[no_mangle]
extern "C" fn bucketfs_rs_mount_options_new() -> *mut c_void {
    KBox::new(MountOptions::default(), GFP_KERNEL)
        .map(|b| KBox::into_raw(b).cast())
        .unwrap_or(core::ptr::null_mut())
}

/// Frees mount options made by `bucketfs_rs_mount_options_new`.
#[no_mangle]
extern "C" fn bucketfs_rs_mount_options_free(opts: *mut c_void) {
    if !opts.is_null() {
        // SAFETY: `opts` came from `KBox::into_raw` in `bucketfs_rs_mount_options_new` and is
        // freed once, by the fs_context's `.free`.
        drop(unsafe { KBox::from_raw(opts.cast::<MountOptions>()) });
    }
}

/// Parses one mount option `key[=value]`, for a mount or (`remount`) a remount, which takes
/// runtime options only; on `-EINVAL` leaves a message in `msg`.
#[no_mangle]
extern "C" fn bucketfs_rs_parse_option(
    opts: *mut c_void,
    key: *const c_char,
    value: *const c_char,
    remount: bool,
    msg: *mut c_char,
    msg_len: usize,
) -> c_int {
    // SAFETY: The glue passes the fs_context's options, a NUL-terminated key, a NUL-terminated
    // value or NULL for a flag, and a message buffer of `msg_len` bytes.
    let (opts, key, value, msg) = unsafe {
        (
            &mut *opts.cast::<MountOptions>(),
            CStr::from_char_ptr(key),
            (!value.is_null()).then(|| CStr::from_char_ptr(value)),
            core::slice::from_raw_parts_mut(msg.cast::<u8>(), msg_len),
        )
    };
    let Ok(key) = key.to_str() else {
        return ENOPARAM;
    };
    // A flag: `name` for a boolean is `name=1`, `noname` is `name=0`.
    let (name, text) = match value.map(|v| v.to_str()) {
        Some(Ok(v)) => (key, v),
        Some(Err(_)) => (key, "\u{fffd}"),
        None => match key.strip_prefix("no").filter(|n| lookup(n).is_some()) {
            Some(n) => (n, "0"),
            None => (key, "1"),
        },
    };
    let Some(opt) = lookup(name) else {
        return ENOPARAM;
    };
    let when = if remount { When::Runtime } else { When::Mount };
    // An option a remount may not change is refused as such, whatever its value.
    let result = match opt.desc().kind {
        _ if remount && !opt.desc().settable.runtime => Err(OptError::NotSettable),
        Kind::U32 { .. } if value.is_none() => Err(OptError::NotANumber),
        _ => opts.parse_at(when, name, text),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let mut text_msg = Text::<120>::new();
            if e == OptError::NotSettable && remount {
                let _ = write!(
                    text_msg,
                    "{name}: cannot be changed by a remount (not a runtime option)"
                );
            } else {
                describe_option_error(&mut text_msg, name, prefix(text, 32), e);
            }
            let s = text_msg.as_str().as_bytes();
            let n = s.len().min(msg_len.saturating_sub(1));
            msg[..n].copy_from_slice(&s[..n]);
            if msg_len > 0 {
                msg[n] = 0;
            }
            EINVAL.to_errno()
        }
    }
}

/// Mounts `source`; on success `*out` holds the filesystem for `get_tree_nodev`.
#[no_mangle]
extern "C" fn bucketfs_rs_fs_open(
    source: *const c_char,
    opts: *mut c_void,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: The glue passes the NUL-terminated source, the fs_context's options and a valid
    // output pointer.
    let (source, opts) = unsafe { (CStr::from_char_ptr(source), &*opts.cast::<MountOptions>()) };
    let Ok(source) = source.to_str() else {
        pr_err!("mount source is not UTF-8\n");
        return EINVAL.to_errno();
    };
    match Fs::open(source, opts) {
        Ok(mounted) => {
            // SAFETY: `out` is valid for writes.
            unsafe { *out = KBox::into_raw(mounted).cast() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// Remount: applies the runtime options given (parsed by `bucketfs_rs_parse_option`) as one
/// change, as a write under `options/` does: checked, persisted, then in force, waking parked
/// allocations. No option given: nothing changes.
#[no_mangle]
extern "C" fn bucketfs_rs_fs_reconfigure(fs: *mut c_void, opts: *mut c_void) -> c_int {
    // SAFETY: `fs` is the super_block's `s_fs_info`, alive until `kill_sb`, which cannot run
    // during a remount (the VFS holds `s_umount`); `opts` is the fs_context's options.
    let (mounted, opts) = unsafe { (&*fs.cast::<Mounted>(), &*opts.cast::<MountOptions>()) };
    if opts.is_empty() {
        return 0;
    }
    let fs = &mounted.fs;
    let mut msg = Text::<160>::new();
    match fs.set_options(opts) {
        Ok(()) => {
            for opt in Opt::ALL {
                if let Some(v) = opts.get(opt) {
                    let _ = write!(msg, " {}={v}", opt.desc().name);
                }
            }
            pr_info!("{}: remount: set{}\n", UuidFmt(&fs.uuid), msg.as_str());
            0
        }
        Err((err, why)) => {
            match why {
                Some((opt, e)) => {
                    let value = opts
                        .get(opt)
                        .unwrap_or_else(|| fs.state.lock().live.get(opt));
                    let mut num = Text::<16>::new();
                    let _ = write!(num, "{value}");
                    describe_option_error(&mut msg, opt.desc().name, num.as_str(), e);
                }
                None => {
                    let _ = write!(msg, "options not changed");
                }
            }
            pr_err!(
                "{}: remount: {} ({})\n",
                UuidFmt(&fs.uuid),
                msg.as_str(),
                err.to_errno()
            );
            err.to_errno()
        }
    }
}

/// Unmounts: takes back the filesystem `bucketfs_rs_fs_open` gave out, and drops it.
#[no_mangle]
extern "C" fn bucketfs_rs_fs_close(fs: *mut c_void) {
    // SAFETY: `fs` came from `KBox::into_raw` in `bucketfs_rs_fs_open`; the glue calls this
    // once, from `kill_sb` or the fs_context's `.free`.
    drop(unsafe { KBox::from_raw(fs.cast::<Mounted>()) });
}

/// Fills statfs figures.
#[no_mangle]
extern "C" fn bucketfs_rs_statfs(fs: *mut c_void, st: *mut bindings::bucketfs_statfs) {
    // SAFETY: `fs` is the super_block's `s_fs_info`, alive until `kill_sb`; `st` is valid.
    let (mounted, st) = unsafe { (&*fs.cast::<Mounted>(), &mut *st) };
    let (blocks, empty, free) = mounted.fs.statfs();
    let uuid = mounted.fs.uuid;
    let mut fsid = [0u8; 8];
    for (i, b) in uuid.iter().enumerate() {
        fsid[i % 8] ^= b;
    }
    *st = bindings::bucketfs_statfs {
        block_size: 4096,
        blocks,
        blocks_free: empty,
        blocks_avail: free,
        fsid: u64::from_le_bytes(fsid),
    };
}

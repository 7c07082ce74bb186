// SPDX-License-Identifier: GPL-2.0

//! Entry points for the VFS glue in `c/vfs.c`: mount options, mount, unmount, statfs.

use crate::fs::{describe_option_error, Fs, Mounted};
use crate::glue as bindings;
use crate::shared::options::{lookup, Kind, MountOptions, OptError};
use crate::text::{prefix, Text};
use kernel::{
    alloc::KBox,
    ffi::{c_char, c_int, c_void},
    prelude::*,
    str::CStr,
};

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

/// Parses one mount option `key[=value]`; on `-EINVAL` leaves a message in `msg`.
#[no_mangle]
extern "C" fn bucketfs_rs_parse_option(
    opts: *mut c_void,
    key: *const c_char,
    value: *const c_char,
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
    let result = match opt.desc().kind {
        Kind::U32 { .. } if value.is_none() => Err(OptError::NotANumber),
        _ => opts.parse(name, text),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let mut text_msg = Text::<120>::new();
            describe_option_error(&mut text_msg, name, prefix(text, 32), e);
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

// SPDX-License-Identifier: GPL-2.0

//! Member block devices: exclusive open, synchronous I/O with real bios, discard. There is no
//! separate cache flush: a durable write (`fua`) is preceded by a preflush, which makes the
//! writes completed before it durable too (the commit's node writes, before its superblock).
//!
//! I/O goes through [`IoBuf`], a heap buffer: bios need memory with a `struct page` behind
//! it, which the stack (vmapped) does not give.

use crate::glue as bindings;
use core::ptr::NonNull;
use kernel::{
    alloc::KVVec,
    error::{to_result, Result},
    ffi::c_void,
    prelude::*,
    str::CStr,
};

/// A zero-filled heap buffer for block I/O.
pub(crate) struct IoBuf(KVVec<u8>);

impl IoBuf {
    /// A buffer of `len` zero bytes.
    pub(crate) fn new(len: usize) -> Result<IoBuf> {
        Ok(IoBuf(KVVec::from_elem(0u8, len, GFP_KERNEL)?))
    }
}

impl core::ops::Deref for IoBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl core::ops::DerefMut for IoBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// A block device opened read-write and exclusively.
///
/// # Invariants
///
/// `file` is a block device file returned by `bdev_file_open_by_path()` and not yet released.
pub(crate) struct BlockDevice {
    file: NonNull<bindings::file>,
}

// SAFETY: The block device file may be used and released from any thread.
unsafe impl Send for BlockDevice {}
// SAFETY: All operations through `&BlockDevice` are synchronous block-layer calls that are safe
// to make concurrently.
unsafe impl Sync for BlockDevice {}

impl BlockDevice {
    /// Opens `path` read-write, claimed by `holder` (so a second mount or a `mkfs` gets
    /// `EBUSY`).
    pub(crate) fn open(path: &CStr, holder: *mut c_void) -> Result<BlockDevice> {
        let mut file = core::ptr::null_mut();
        // SAFETY: `path` is NUL-terminated; `file` is valid for writes.
        to_result(unsafe { bindings::bucketfs_bdev_open(path.as_char_ptr(), holder, &mut file) })?;
        let file = NonNull::new(file).ok_or(EINVAL)?;
        Ok(BlockDevice { file })
    }

    /// Size in bytes.
    pub(crate) fn bytes(&self) -> u64 {
        // SAFETY: `file` is a live block device file by the type invariant.
        unsafe { bindings::bucketfs_bdev_bytes(self.file.as_ptr()) }
    }

    /// Largest discard the device takes, in bytes; 0 if it cannot discard.
    pub(crate) fn max_discard_bytes(&self) -> u64 {
        // SAFETY: As in `bytes`.
        unsafe { bindings::bucketfs_bdev_max_discard_bytes(self.file.as_ptr()) }
    }

    /// The device's name, as in `/proc/partitions` (`vda`).
    pub(crate) fn name(&self, buf: &mut [u8; 32]) -> usize {
        // SAFETY: As in `bytes`; `buf` is valid for `buf.len()` bytes and snprintf NUL-terminates.
        unsafe {
            bindings::bucketfs_bdev_name(self.file.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        };
        buf.iter().position(|&b| b == 0).unwrap_or(buf.len())
    }

    /// Reads `buf.len()` bytes at byte offset `off` (both multiples of 512).
    pub(crate) fn read(&self, off: u64, buf: &mut IoBuf) -> Result {
        // SAFETY: `file` is live; `buf` is heap memory valid for `buf.len()` bytes of writes.
        to_result(unsafe {
            bindings::bucketfs_bdev_read(
                self.file.as_ptr(),
                off,
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        })
    }

    /// Reads `len` bytes at byte offset `off` into the start of `buf` (`off` and `len`
    /// multiples of 512, `len` at most `buf.len()`): one buffer serves reads of any size up
    /// to its own.
    pub(crate) fn read_part(&self, off: u64, buf: &mut IoBuf, len: usize) -> Result {
        if len > buf.len() {
            return Err(EINVAL);
        }
        // SAFETY: `file` is live; `buf` is heap memory valid for `len <= buf.len()` bytes of
        // writes.
        to_result(unsafe {
            bindings::bucketfs_bdev_read(self.file.as_ptr(), off, buf.as_mut_ptr().cast(), len)
        })
    }

    /// Writes `buf` at byte offset `off` (both multiples of 512); with `fua`, the write is
    /// preceded by a cache flush and is itself durable when this returns.
    pub(crate) fn write(&self, off: u64, buf: &IoBuf, fua: bool) -> Result {
        // SAFETY: `file` is live; `buf` is heap memory valid for `buf.len()` bytes of reads.
        to_result(unsafe {
            bindings::bucketfs_bdev_write(
                self.file.as_ptr(),
                off,
                buf.as_ptr().cast(),
                buf.len(),
                fua,
            )
        })
    }

    /// Discards `len` bytes at byte offset `off` (both multiples of 512).
    pub(crate) fn discard(&self, off: u64, len: u64) -> Result {
        // SAFETY: `file` is live.
        to_result(unsafe { bindings::bucketfs_bdev_discard(self.file.as_ptr(), off, len) })
    }
}

impl Drop for BlockDevice {
    fn drop(&mut self) {
        // SAFETY: `file` is live and released exactly once, here.
        unsafe { bindings::bucketfs_bdev_close(self.file.as_ptr()) };
    }
}

/// The module's discard workqueue (`c/bdev.c`): created in module init before the filesystem
/// type is registered, drained and destroyed in module exit after it is unregistered, so it is
/// there whenever a filesystem can kick its discard worker.
pub(crate) fn discard_queue() -> &'static kernel::workqueue::Queue {
    // SAFETY: `bucketfs_discard_wq_get` returns the queue `bucketfs_discard_wq_init` made in
    // module init (which fails the load if it cannot); it is destroyed only in module exit,
    // after the filesystem type is unregistered, so no filesystem (the only caller) is left.
    unsafe {
        kernel::workqueue::Queue::from_raw(
            bindings::bucketfs_discard_wq_get().cast::<kernel::bindings::workqueue_struct>(),
        )
    }
}

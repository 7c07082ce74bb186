// SPDX-License-Identifier: GPL-2.0

//! Member block devices: exclusive open, synchronous I/O with real bios, and [`IoBatch`]: many
//! reads, writes, cache flushes and discards, on any members, submitted together under one
//! block-layer plug and waited for once (the commit's node writes to every copy, its flushes
//! and superblock writes; the discard worker's chained discards). A synchronous durable write
//! (`write` with `fua`) is preceded by a preflush, which makes the writes completed before it
//! durable too.
//!
//! I/O goes through [`IoBuf`], a heap buffer: bios need memory with a `struct page` behind
//! it, which the stack (vmapped) does not give. A batch borrows its buffers and devices, and
//! [`IoBatch::run`] returns only once every bio is done, so no buffer can be freed or reused,
//! and no device closed, while the device may still be reading or writing it.

use crate::glue as bindings;
use core::{marker::PhantomData, ptr::NonNull};
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

impl IoBuf {
    /// The `len` bytes at `off`, for a batch: `None` if they are not all in the buffer.
    pub(crate) fn slice(&self, off: usize, len: usize) -> Option<IoSlice<'_>> {
        let end = off.checked_add(len)?;
        self.0.get(off..end).map(IoSlice)
    }
}

/// Part of an [`IoBuf`] (so heap memory with pages behind it), for a batched write.
#[derive(Clone, Copy)]
pub(crate) struct IoSlice<'a>(&'a [u8]);

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

/// The holder of a mount's exclusive claim on its members: an address only compared by the
/// block layer, never dereferenced. Devices opened with one holder (a mount's members, and a
/// member it adds later) do not exclude each other; any other holder gets `EBUSY`.
#[derive(Clone, Copy)]
pub(crate) struct Holder(*mut c_void);

// SAFETY: The address is only compared, never dereferenced.
unsafe impl Send for Holder {}
// SAFETY: As for `Send`.
unsafe impl Sync for Holder {}

impl Holder {
    /// The holder whose claim is identified by the address of `cookie`, which must stay
    /// allocated as long as devices claimed with it are open.
    pub(crate) fn of(cookie: &u8) -> Holder {
        Holder((cookie as *const u8).cast_mut().cast())
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
    pub(crate) fn open(path: &CStr, holder: Holder) -> Result<BlockDevice> {
        Self::open_mode(path, holder, true)
    }

    /// Opens the block device at `path` exclusively for `holder`, for reading only unless
    /// `write`. The block layer refuses a write open of a read-only device with `EACCES`.
    pub(crate) fn open_mode(path: &CStr, holder: Holder, write: bool) -> Result<BlockDevice> {
        let mut file = core::ptr::null_mut();
        // SAFETY: `path` is NUL-terminated; `file` is valid for writes; the holder is only
        // compared.
        to_result(unsafe {
            bindings::bucketfs_bdev_open(path.as_char_ptr(), holder.0, write, &mut file)
        })?;
        let file = NonNull::new(file).ok_or(EINVAL)?;
        Ok(BlockDevice { file })
    }

    /// Whether the block device is read-only (write-protected, `blockdev --setro`; it may
    /// become so after a write open). The block layer only warns about a write to such a
    /// device, so callers must not write to it.
    pub(crate) fn read_only(&self) -> bool {
        // SAFETY: `file` is a live block device file by the type invariant.
        unsafe { bindings::bucketfs_bdev_read_only(self.file.as_ptr()) }
    }

    /// The device's `struct block_device`, for the bios of file data the C glue builds
    /// (`c/file.c`). It stays valid while this device is open: a mounted filesystem's members
    /// stay open until it is closed, after its last write completed.
    pub(crate) fn raw_bdev(&self) -> *mut bindings::block_device {
        // SAFETY: `file` is a live block device file by the type invariant.
        unsafe { bindings::bucketfs_bdev_of(self.file.as_ptr()) }
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

    /// Whether `len` bytes at byte offset `off` are sector-aligned and on the device.
    fn range_ok(&self, off: u64, len: u64) -> bool {
        off % 512 == 0 && len % 512 == 0 && off.checked_add(len).is_some_and(|e| e <= self.bytes())
    }
}

impl Drop for BlockDevice {
    fn drop(&mut self) {
        // SAFETY: `file` is live and released exactly once, here.
        unsafe { bindings::bucketfs_bdev_close(self.file.as_ptr()) };
    }
}

/// A discard of `len` bytes at byte offset `off`, in a batch (the C side reads it as two
/// `u64`s).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct DiscardRange {
    /// Byte offset, a multiple of 512.
    pub(crate) off: u64,
    /// Byte length, a multiple of 512.
    pub(crate) len: u64,
}

/// A request's place in an [`IoBatch`], to ask for its result after the run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct IoTicket(usize);

/// A batch of block I/O requests on any of the members: built with [`IoBatch::write`],
/// [`IoBatch::flush`], [`IoBatch::discard`], then run with [`IoBatch::run`], which submits
/// every request under one block-layer plug and waits once for all of them; afterwards
/// [`IoBatch::status`] gives each request's own result (a write to every copy of a node can
/// fail on one copy only).
///
/// # Invariants
///
/// Every request in `reqs` has a `file` from a [`BlockDevice`] borrowed for `'a`, and a `buf`
/// that is null (flushes), points into an [`IoBuf`] borrowed for `'a` with `len` bytes there
/// (reads and writes), or points to `len` [`DiscardRange`]s borrowed for `'a` (discards); each
/// range was checked against its device. So everything a request points to outlives the
/// batch, and `bucketfs_io_run` returns only once the I/O is done.
pub(crate) struct IoBatch<'a> {
    reqs: KVVec<bindings::bucketfs_io_req>,
    _borrows: PhantomData<&'a [u8]>,
}

impl<'a> IoBatch<'a> {
    /// An empty batch with room for `n` requests.
    pub(crate) fn with_capacity(n: usize) -> Result<IoBatch<'a>> {
        Ok(IoBatch {
            reqs: KVVec::with_capacity(n, GFP_KERNEL)?,
            _borrows: PhantomData,
        })
    }

    fn push(
        &mut self,
        dev: &'a BlockDevice,
        op: bindings::bucketfs_io_op,
        off: u64,
        buf: *mut c_void,
        len: usize,
    ) -> Result<IoTicket> {
        let t = IoTicket(self.reqs.len());
        self.reqs.push(
            bindings::bucketfs_io_req {
                file: dev.file.as_ptr(),
                off,
                buf,
                len,
                op,
                status: 0,
            },
            GFP_KERNEL,
        )?;
        Ok(t)
    }

    /// Writes `buf` at byte offset `off` of `dev` (both multiples of 512, on the device; else
    /// `EINVAL` and nothing is added); with `fua`, the write is durable when it completes
    /// (no preflush: add a [`IoBatch::flush`] to an earlier batch for the writes before it).
    pub(crate) fn write(
        &mut self,
        dev: &'a BlockDevice,
        off: u64,
        buf: IoSlice<'a>,
        fua: bool,
    ) -> Result<IoTicket> {
        if !dev.range_ok(off, buf.0.len() as u64) {
            return Err(EINVAL);
        }
        let op = if fua {
            bindings::bucketfs_io_op_BUCKETFS_IO_WRITE_FUA
        } else {
            bindings::bucketfs_io_op_BUCKETFS_IO_WRITE
        };
        // The C side only reads through the pointer (it is `*mut` for the shared request type).
        let p = buf.0.as_ptr().cast_mut().cast();
        self.push(dev, op, off, p, buf.0.len())
    }

    /// A cache flush of `dev`: the writes completed on it before the batch runs are durable
    /// when it completes.
    pub(crate) fn flush(&mut self, dev: &'a BlockDevice) -> Result<IoTicket> {
        let op = bindings::bucketfs_io_op_BUCKETFS_IO_FLUSH;
        self.push(dev, op, 0, core::ptr::null_mut(), 0)
    }

    /// Discards `ranges` of `dev` (each a multiple of 512, on the device; else `EINVAL` and
    /// nothing is added), chained so they complete together: one result for all of them. A
    /// device that cannot discard completes it with nothing done.
    pub(crate) fn discard(
        &mut self,
        dev: &'a BlockDevice,
        ranges: &'a [DiscardRange],
    ) -> Result<IoTicket> {
        if !ranges.iter().all(|r| dev.range_ok(r.off, r.len)) {
            return Err(EINVAL);
        }
        let op = bindings::bucketfs_io_op_BUCKETFS_IO_DISCARD;
        let p = ranges.as_ptr().cast_mut().cast();
        self.push(dev, op, 0, p, ranges.len())
    }

    /// Submits every request together and waits once until all are done. `Err` only if the
    /// batch could not be submitted (`ENOMEM`), with nothing submitted; each request's own
    /// result is then in [`IoBatch::status`].
    pub(crate) fn run(&mut self) -> Result {
        if self.reqs.is_empty() {
            return Ok(());
        }
        // SAFETY: By the type invariant every request's file and buffer are borrowed for `'a`,
        // which `self` does not outlive, and `bucketfs_io_run` returns only once all of its
        // bios have completed, so nothing they point to is freed under the I/O; `reqs` is
        // valid for `reqs.len()` elements, and the call writes only their `status`.
        to_result(unsafe { bindings::bucketfs_io_run(self.reqs.as_mut_ptr(), self.reqs.len()) })
    }

    /// The result of request `t` in the last [`IoBatch::run`] (`Ok` before any run).
    pub(crate) fn status(&self, t: IoTicket) -> Result {
        let r = self.reqs.get(t.0).ok_or(EINVAL)?;
        to_result(r.status)
    }
}

/// A read buffer with at most one read in flight into it: [`ReadAhead::start`] submits a read
/// and returns at once, [`ReadAhead::wait`] waits for it and gives its bytes. A reader with a
/// few of these keeps that many reads in flight while it decodes what has arrived (the mount's
/// bucket table read).
///
/// # Invariants
///
/// When `inflight` is `Some(w)`, `w` is the handle `bucketfs_io_submit` returned for the one
/// request `req`, not yet waited for; `req.buf` is the start of `buf` with `req.len <=
/// buf.len()`, and `req.file` is a [`BlockDevice`] borrowed for `'d`.
pub(crate) struct ReadAhead<'d> {
    buf: IoBuf,
    req: bindings::bucketfs_io_req,
    inflight: Option<NonNull<bindings::bucketfs_io_wait>>,
    _dev: PhantomData<&'d BlockDevice>,
}

impl<'d> ReadAhead<'d> {
    /// A buffer for reads of up to `len` bytes, nothing in flight.
    pub(crate) fn new(len: usize) -> Result<ReadAhead<'d>> {
        Ok(ReadAhead {
            buf: IoBuf::new(len)?,
            req: bindings::bucketfs_io_req {
                file: core::ptr::null_mut(),
                off: 0,
                buf: core::ptr::null_mut(),
                len: 0,
                op: bindings::bucketfs_io_op_BUCKETFS_IO_READ,
                status: 0,
            },
            inflight: None,
            _dev: PhantomData,
        })
    }

    /// Starts reading `len` bytes at byte offset `off` of `dev` into the buffer (both
    /// multiples of 512, on the device, `len` at most the buffer; else `EINVAL`). A read still
    /// in flight is waited for first, its result dropped.
    pub(crate) fn start(&mut self, dev: &'d BlockDevice, off: u64, len: usize) -> Result {
        self.finish();
        if len > self.buf.len() || !dev.range_ok(off, len as u64) {
            return Err(EINVAL);
        }
        self.req = bindings::bucketfs_io_req {
            file: dev.file.as_ptr(),
            off,
            buf: self.buf.as_mut_ptr().cast(),
            len,
            op: bindings::bucketfs_io_op_BUCKETFS_IO_READ,
            status: 0,
        };
        let mut err = 0;
        // SAFETY: `req` is one valid request: a live device file borrowed for `'d`, and heap
        // memory of `len <= buf.len()` bytes that `self` owns and does not hand out until the
        // read was waited for (`wait`, `finish`, and `drop`, which waits).
        let w = unsafe { bindings::bucketfs_io_submit(&mut self.req, 1, &mut err) };
        match NonNull::new(w) {
            Some(w) => {
                self.inflight = Some(w);
                Ok(())
            }
            None => {
                to_result(err)?;
                Err(ENOMEM)
            }
        }
    }

    /// Waits for the read in flight and gives its bytes (`EINVAL` if none was started, the
    /// read's error if it failed).
    pub(crate) fn wait(&mut self) -> Result<&[u8]> {
        let w = self.inflight.take().ok_or(EINVAL)?;
        // SAFETY: `w` was returned by `bucketfs_io_submit` for `req` and not waited for (type
        // invariant); it is taken out of `inflight`, so it is waited for exactly once.
        unsafe { bindings::bucketfs_io_wait(w.as_ptr(), &mut self.req, 1) };
        to_result(self.req.status)?;
        self.buf.get(..self.req.len).ok_or(EINVAL)
    }

    /// Waits for the read in flight, if any, dropping its result.
    fn finish(&mut self) {
        if let Some(w) = self.inflight.take() {
            // SAFETY: As in `wait`.
            unsafe { bindings::bucketfs_io_wait(w.as_ptr(), &mut self.req, 1) };
        }
    }
}

impl Drop for ReadAhead<'_> {
    fn drop(&mut self) {
        // The buffer goes with `self`: the device must be done writing into it.
        self.finish();
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

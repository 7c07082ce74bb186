// SPDX-License-Identifier: GPL-2.0

//! What bucketfs offers to the VFS ([`FileSystem`]): mount option parsing, mount, remount,
//! statfs, the namespace (each operation one transaction of `shared/namespace.rs`'s
//! functions over the filesystem's store), and file data (`data.rs`, its members turned into
//! their devices here). Unmount is dropping [`Mounted`].

use crate::bdev::BlockDevice;
use crate::data::MapKind;
use crate::fs::{describe_option_error, Fs};
use crate::mount::Mounted;
use crate::shared::namespace;
use crate::shared::namespace_format::{Inode, HASH_LIMIT, MAX_NAME};
use crate::shared::options::{lookup, Kind, MountFlag, MountOptions, Opt, OptError, When};
use crate::shared::superblock::UuidFmt;
use crate::text::{prefix, Text};
use crate::vec_ext::VecExt;
use crate::vfs::{times, DataMapping, DataSegment, DirEmitter, FileSystem, Statfs};
use core::fmt::Write;
use kernel::{
    alloc::{KBox, KVec},
    error::Error,
    prelude::*,
    str::CStr,
    types::ForeignOwnable,
};

/// Entries a `readdir` reads per look at the namespace; they are emitted (copied to the
/// caller) with no lock held.
const READDIR_BATCH: usize = 16;

/// A directory entry read by `readdir`, waiting to be emitted.
#[derive(Clone, Copy)]
struct DirEntry {
    slot: u64,
    ino: u64,
    dtype: u8,
    len: u8,
    name: [u8; MAX_NAME],
}

/// `EUCLEAN` (the kernel crate has no constant for it): the namespace is inconsistent.
fn euclean() -> Error {
    Error::from_errno(-(kernel::bindings::EUCLEAN as i32))
}

/// `r`, with a line in dmesg naming the operation when it could not read or write the
/// namespace (`EIO`). An inconsistency (`EUCLEAN`) already has its line from `Fs::ns_error`
/// (or from [`BucketFsType::read_inode`]); the other errors are the caller's to see
/// (`ENOENT`, `EEXIST`, ...).
fn logged<T>(fs: &Fs, what: &str, r: Result<T>) -> Result<T> {
    if let Err(e) = &r {
        // Once shut down, every change fails with EIO: the shutdown said so, once.
        if *e == EIO && !fs.shut_down.load(core::sync::atomic::Ordering::Acquire) {
            pr_err!(
                "{}: {what}: namespace read or write failed ({})\n",
                UuidFmt(&fs.uuid),
                e.to_errno()
            );
        }
    }
    r
}

/// The open device of member `m`, which file data names: `EIO` (with a line in dmesg) if it
/// has none (missing from a degraded mount, removed, or no such member).
fn data_dev(fs: &Fs, m: u32) -> Result<&BlockDevice> {
    let dev = fs.members.get(m as usize).and_then(|d| d.dev().ok());
    dev.ok_or_else(|| {
        pr_err!(
            "{}: file data on member {m}, which is not open\n",
            UuidFmt(&fs.uuid)
        );
        EIO
    })
}

/// The bucketfs filesystem type.
pub(crate) struct BucketFsType;

impl FileSystem for BucketFsType {
    type Options = MountOptions;
    type Data = KBox<Mounted>;

    fn parse_option(
        opts: &mut MountOptions,
        key: &CStr,
        value: Option<&CStr>,
        remount: bool,
        msg: &mut dyn Write,
    ) -> Result {
        let Ok(key) = key.to_str() else {
            return Err(ENOPARAM);
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
            return parse_flag(opts, key, value.is_some(), remount, msg);
        };
        let when = if remount { When::Runtime } else { When::Mount };
        // An option a remount may not change is refused as such, whatever its value.
        let result = match opt.desc().kind {
            _ if remount && !opt.desc().settable.runtime => Err(OptError::NotSettable),
            Kind::U32 { .. } | Kind::Target if value.is_none() => Err(OptError::NotANumber),
            _ => opts.parse_at(when, name, text),
        };
        result.map_err(|e| {
            let mut text_msg = Text::<120>::new();
            if e == OptError::NotSettable && remount {
                let _ = write!(
                    text_msg,
                    "{name}: cannot be changed by a remount (not a runtime option)"
                );
            } else {
                describe_option_error(&mut text_msg, name, prefix(text, 32), e);
            }
            let _ = msg.write_str(text_msg.as_str());
            EINVAL
        })
    }

    fn open(source: &CStr, opts: &MountOptions, read_only: bool) -> Result<KBox<Mounted>> {
        let Ok(source) = source.to_str() else {
            pr_err!("mount source is not UTF-8\n");
            return Err(EINVAL);
        };
        Fs::open(source, opts, read_only)
    }

    /// Goes read-only or read-write if asked, then applies the runtime options given (parsed
    /// by [`Self::parse_option`]) as one change, as a write under `options/` does: checked,
    /// persisted (in force only, on a read-only mount), then in force, waking parked
    /// allocations. No option and no ro/rw change given: nothing changes. An option refused
    /// undoes the ro/rw change (going read-only cannot fail; going read-write is refused for a
    /// mount that cannot write).
    fn reconfigure(mounted: &Mounted, opts: &MountOptions, read_only: Option<bool>) -> Result {
        let fs = mounted.fs();
        match read_only {
            Some(true) => {
                fs.set_read_only();
                pr_info!("{}: remount: read-only\n", UuidFmt(&fs.uuid));
            }
            Some(false) => {
                fs.set_read_write()?;
                pr_info!("{}: remount: read-write\n", UuidFmt(&fs.uuid));
            }
            None => {}
        }
        let undo = || match read_only {
            Some(true) => {
                // Back to read-write, as before the remount: it was, so it may.
                let _ = fs.set_read_write();
            }
            Some(false) => fs.set_read_only(),
            None => {}
        };
        if opts.is_empty() {
            return Ok(());
        }
        let mut msg = Text::<160>::new();
        match fs.set_options(opts) {
            Ok(()) => {
                for opt in Opt::ALL.into_iter().filter(|&o| opts.get(o).is_some()) {
                    let _ = write!(msg, " {}=", opt.desc().name);
                    let _ = opts.show(opt, &mut msg);
                }
                pr_info!("{}: remount: set{}\n", UuidFmt(&fs.uuid), msg.as_str());
                Ok(())
            }
            Err((err, why)) => {
                match why {
                    Some((opt, e)) => {
                        let mut num = Text::<40>::new();
                        let _ = match opts.get(opt) {
                            Some(_) => opts.show(opt, &mut num),
                            None => fs.state.lock().live.show(opt, &mut num),
                        };
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
                undo();
                Err(err)
            }
        }
    }

    fn statfs(mounted: &Mounted) -> Statfs {
        let (blocks, empty, free) = mounted.fs().statfs();
        let (files_used, files_free) = mounted.fs().ns_figures();
        let mut fsid = [0u8; 8];
        for (i, b) in mounted.fs().uuid.iter().enumerate() {
            fsid[i % 8] ^= b;
        }
        Statfs {
            block_size: 4096,
            blocks,
            blocks_free: empty,
            blocks_avail: free,
            files: files_used + files_free,
            files_free,
            fsid: u64::from_le_bytes(fsid),
        }
    }

    fn read_inode(mounted: &Mounted, ino: u64) -> Result<Inode> {
        let fs = mounted.fs();
        match fs.read_ns(|s| namespace::read_inode(s, ino)) {
            // A name (or the root) points at it: it must exist.
            Err(e) if e == ENOENT => {
                pr_err!(
                    "{}: inode {ino} is named but does not exist (run bucketfs fsck)\n",
                    UuidFmt(&fs.uuid)
                );
                Err(euclean())
            }
            r => logged(fs, "read inode", r),
        }
    }

    fn lookup(mounted: &Mounted, dir: u64, name: &[u8]) -> Result<u64> {
        let fs = mounted.fs();
        let names = fs.names();
        let found = fs.read_ns(|s| namespace::lookup(s, &names, dir, name));
        logged(fs, "lookup", found)?.map(|f| f.ino).ok_or(ENOENT)
    }

    fn create(
        mounted: &Mounted,
        dir_after: &Inode,
        name: &[u8],
        new: &mut Inode,
        target: Option<&[u8]>,
    ) -> Result {
        let fs = mounted.fs();
        let names = fs.names();
        new.ino = fs.new_ino()?;
        let made = *new;
        let r = fs.transact(|s| namespace::create(s, &names, dir_after, name, &made, target));
        logged(fs, "create", r)
    }

    fn link(mounted: &Mounted, dir_after: &Inode, name: &[u8], inode_after: &Inode) -> Result {
        let fs = mounted.fs();
        let names = fs.names();
        let r = fs.transact(|s| namespace::link(s, &names, dir_after, name, inode_after));
        logged(fs, "link", r)
    }

    fn unlink(
        mounted: &Mounted,
        dir_after: &Inode,
        name: &[u8],
        inode_after: &Inode,
        rmdir: bool,
    ) -> Result {
        let fs = mounted.fs();
        let names = fs.names();
        // An unlink frees space: it may take the last buckets (a full filesystem is emptied so).
        let r = fs.transact_freeing(|s| {
            namespace::unlink(s, &names, dir_after, name, inode_after, rmdir)
        });
        logged(fs, "unlink", r)
    }

    fn rename(
        mounted: &Mounted,
        old_dir_after: &Inode,
        old_name: &[u8],
        new_dir_after: &Inode,
        new_name: &[u8],
        moved_after: &Inode,
        replaced_after: Option<&Inode>,
    ) -> Result {
        let fs = mounted.fs();
        let names = fs.names();
        let r = fs.transact(|s| {
            namespace::rename(
                s,
                &names,
                old_dir_after,
                old_name,
                new_dir_after,
                new_name,
                moved_after,
                replaced_after,
            )
        });
        logged(fs, "rename", r)
    }

    fn setattr(mounted: &Mounted, inode_after: &Inode) -> Result {
        let fs = mounted.fs();
        let r = fs.transact(|s| namespace::setattr(s, inode_after));
        logged(fs, "setattr", r)
    }

    /// Reads [`READDIR_BATCH`] entries at a time, then emits them; positions are slot + 2, and
    /// past the last slot at the end.
    fn readdir(mounted: &Mounted, dir: u64, out: &mut DirEmitter<'_>) -> Result {
        let fs = mounted.fs();
        let mut from = out.pos().saturating_sub(2);
        let mut batch = KVec::<DirEntry>::with_capacity(READDIR_BATCH, GFP_KERNEL)?;
        loop {
            batch.clear();
            let r = fs.read_ns(|s| {
                namespace::readdir(s, dir, from, &mut |slot, ino, dtype, name| {
                    let mut e = DirEntry {
                        slot,
                        ino,
                        dtype,
                        len: 0,
                        name: [0; MAX_NAME],
                    };
                    if let Some(dst) = e.name.get_mut(..name.len()) {
                        dst.copy_from_slice(name);
                        e.len = name.len() as u8;
                        // Within the capacity reserved above: no allocation.
                        let _ = batch.push(e, GFP_KERNEL);
                    }
                    batch.len() < READDIR_BATCH
                })
            });
            logged(fs, "readdir", r)?;
            for e in batch.iter() {
                if !out.emit(&e.name[..e.len as usize], e.slot + 2, e.ino, e.dtype) {
                    return Ok(());
                }
            }
            match batch.last() {
                Some(e) if batch.len() == READDIR_BATCH => from = e.slot + 1,
                _ => {
                    out.set_pos(HASH_LIMIT + 2);
                    return Ok(());
                }
            }
        }
    }

    fn read_link(mounted: &Mounted, ino: u64, buf: &mut [u8]) -> Result<usize> {
        let fs = mounted.fs();
        let r = fs.read_ns(|s| namespace::read_link(s, ino, buf));
        logged(fs, "read symbolic link", r)
    }

    fn sync_fs(mounted: &Mounted, wait: bool) -> Result {
        let fs = mounted.fs();
        logged(fs, "sync", fs.sync_journal(wait))
    }

    /// Reads the inode and writes it back with the times given: one transaction, so a
    /// change made meanwhile (a link count, a mode) is kept.
    fn update_times(mounted: &Mounted, inode: &Inode, which: u32) -> Result {
        let fs = mounted.fs();
        let r = fs.transact(|s| {
            let mut i = match namespace::read_inode(s, inode.ino) {
                Ok(i) => i,
                // Unlinked since the caller looked (a page fault holds no inode lock): its
                // times live in the inode cache only, as its other attributes do.
                Err(crate::shared::namespace::NsError::NotFound) => return Ok(()),
                Err(e) => return Err(e),
            };
            let (a, from) = (&mut i.attr, &inode.attr);
            if which & times::ATIME != 0 {
                (a.atime_sec, a.atime_nsec) = (from.atime_sec, from.atime_nsec);
            }
            if which & times::MTIME != 0 {
                (a.mtime_sec, a.mtime_nsec) = (from.mtime_sec, from.mtime_nsec);
            }
            if which & times::CTIME != 0 {
                (a.ctime_sec, a.ctime_nsec) = (from.ctime_sec, from.ctime_nsec);
            }
            namespace::setattr(s, &i)
        });
        logged(fs, "update times", r)
    }

    fn data_map<'a>(
        mounted: <KBox<Mounted> as ForeignOwnable>::Borrowed<'a>,
        ino: u64,
        pos: u64,
        len: u64,
        flags: u32,
    ) -> Result<DataMapping<'a>> {
        let fs = mounted.fs();
        let m = logged(fs, "map file data", fs.data_map(ino, pos, len, flags))?;
        let dev = match m.kind {
            MapKind::Hole => None,
            MapKind::Mapped | MapKind::Unwritten => Some(data_dev(fs, m.member)?),
        };
        Ok(DataMapping {
            offset: m.offset,
            length: m.length,
            kind: m.kind,
            dev,
            addr: m.addr,
            new_blocks: m.new_blocks,
        })
    }

    fn data_segments(
        mounted: &Mounted,
        ino: u64,
        pos: u64,
        len: u64,
        f: &mut dyn FnMut(&DataSegment<'_>) -> Result,
    ) -> Result {
        let fs = mounted.fs();
        let r = fs.data_segments(ino, pos, len, &mut |s| {
            f(&DataSegment {
                offset: s.offset,
                len: s.len,
                dev: data_dev(fs, s.member)?,
                addr: s.addr,
            })
        });
        // The walk stopped by `f` (its batch full) is no failure to report.
        if r.is_err_and(|e| e == EAGAIN) {
            return r;
        }
        logged(fs, "find where file data goes", r)
    }

    fn data_written(mounted: &Mounted, ino: u64, pos: u64, len: u64, isize: u64) -> Result {
        let fs = mounted.fs();
        logged(
            fs,
            "record written data",
            fs.data_written(ino, pos, len, isize),
        )
    }

    fn data_punch(mounted: &Mounted, ino: u64, start: u64, end: u64) -> Result<u64> {
        let fs = mounted.fs();
        logged(fs, "free file data", fs.data_punch(ino, start, end))
    }

    fn data_blocks(mounted: &Mounted, ino: u64) -> Result<u64> {
        let fs = mounted.fs();
        logged(fs, "count file data", fs.data_blocks(ino))
    }

    fn data_trim(mounted: &Mounted, start: u64, len: u64, minlen: u64) -> Result<u64> {
        let fs = mounted.fs();
        logged(fs, "trim", fs.data_trim(start, len, minlen))
    }
}

/// Parses mount-only flag `key` (`norecovery`, `degraded`): `ENOPARAM` if it is none (the VFS
/// handles it or reports it unknown); `EINVAL` with a message if it has a value or is given
/// to a remount.
fn parse_flag(
    opts: &mut MountOptions,
    key: &str,
    has_value: bool,
    remount: bool,
    msg: &mut dyn Write,
) -> Result {
    let Some(flag) = MountFlag::lookup(key) else {
        return Err(ENOPARAM);
    };
    if remount {
        let _ = write!(
            msg,
            "{key}: cannot be changed by a remount (a mount-only flag)"
        );
        return Err(EINVAL);
    }
    if has_value {
        let _ = write!(msg, "{key}: takes no value");
        return Err(EINVAL);
    }
    opts.set_flag(flag);
    Ok(())
}

// SPDX-License-Identifier: GPL-2.0

//! A mounted bucketfs: its members, superblock, options and bucket accounting.
//!
//! [`Fs::open`] turns a mount source into a filesystem: it opens every member, reads and
//! checks the superblocks, assembles the members, creates the sysfs directory (before any
//! recovery step, so it is there while recovery runs), then reads the bucket tables.

use crate::bdev::{BlockDevice, IoBuf};
use crate::shared::assemble::{assemble, AssembleError, Probe};
use crate::shared::bucket_table::{
    decode_block, table_blocks, BucketState, TableBlockId, NR_STATES,
};
use crate::shared::mount_source::{self, SourceError};
use crate::shared::options::{MountOptions, Opt, OptError, Options};
use crate::shared::superblock::{
    Superblock, UuidFmt, BLOCK_SIZE, MAX_MEMBERS, SB_OFFSETS, SB_SIZE,
};
use crate::sysfs::SysfsDir;
use core::{fmt::Write, pin::Pin};
use kernel::{
    alloc::{KBox, KVec},
    fmt, new_mutex,
    prelude::*,
    str::CString,
    sync::Mutex,
};

/// One member device of a mounted filesystem.
pub(crate) struct Member {
    /// The open device.
    pub(crate) dev: BlockDevice,
    /// Its name (`vda`), for sysfs and messages.
    name: [u8; 32],
    name_len: usize,
}

impl Member {
    /// The device name.
    pub(crate) fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }
}

/// What may change while mounted; guarded by [`Fs::state`].
pub(crate) struct FsState {
    /// The superblock as persisted (options here are the stored ones).
    pub(crate) sb: Superblock,
    /// The options in force: stored ones, overridden by mount options and runtime writes.
    pub(crate) live: Options,
    /// Buckets per state, per member.
    pub(crate) counts: [[u64; NR_STATES]; MAX_MEMBERS],
}

/// A mounted filesystem.
#[pin_data]
pub(crate) struct Fs {
    /// Filesystem uuid.
    pub(crate) uuid: [u8; 16],
    /// Members, by member index.
    pub(crate) members: KVec<Member>,
    /// Mutable state.
    #[pin]
    pub(crate) state: Mutex<FsState>,
}

/// A filesystem as the VFS holds it: sysfs first, so it goes before the filesystem it shows.
pub(crate) struct Mounted {
    _sysfs: SysfsDir,
    pub(crate) fs: Pin<KBox<Fs>>,
    /// The holder cookie of the members' exclusive claim; lives as long as the claim.
    _claim: KBox<u8>,
}

/// Prints a mount error naming the source and returns `err`.
macro_rules! mount_err {
    ($source:expr, $err:expr, $($arg:tt)*) => {{
        pr_err!("{}: {} ({})\n", $source, format_args!($($arg)*), $err.to_errno());
        $err
    }};
}

/// Reads the newest valid superblock copy of `dev`; warns about a bad copy when the other
/// one is good.
fn read_superblock(source: &str, path: &str, dev: &BlockDevice) -> Result<Superblock> {
    let mut buf = IoBuf::new(SB_SIZE)?;
    let mut best: Option<Superblock> = None;
    let mut bad: Option<(u64, &'static str)> = None;
    for off in SB_OFFSETS {
        dev.read(off, &mut buf)
            .map_err(|e| mount_err!(source, e, "{path}: cannot read the superblock at {off}"))?;
        match Superblock::decode(&buf) {
            Ok(sb) if best.map_or(true, |b| sb.seq > b.seq) => best = Some(sb),
            Ok(_) => {}
            Err(e) => bad = Some((off, e.field())),
        }
    }
    match (best, bad) {
        (Some(sb), Some((off, field))) => {
            pr_warn!("{source}: {path}: superblock copy at {off} refused (bad {field}); using the other\n");
            Ok(sb)
        }
        (Some(sb), None) => Ok(sb),
        (None, Some((_, field))) => Err(mount_err!(
            source,
            EINVAL,
            "{path}: bad superblock: {field}"
        )),
        (None, None) => Err(EINVAL),
    }
}

fn describe_source_error(e: SourceError) -> &'static str {
    match e {
        SourceError::Empty => "empty source",
        SourceError::EmptyMember(_) => "empty device path in source",
        SourceError::PathTooLong(_) => "device path too long",
        SourceError::TooManyMembers => "too many devices",
        SourceError::Duplicate(_, _) => "a device is given twice",
    }
}

/// Writes "`name`=`value`: `why`" into `out`.
pub(crate) fn describe_option_error(
    out: &mut dyn core::fmt::Write,
    name: &str,
    value: &str,
    e: OptError,
) {
    let _ = write!(out, "{name}={}: ", value.trim_end());
    let _ = e.describe(out);
}

impl Fs {
    /// Opens the filesystem named by `source` with mount options `opts`.
    pub(crate) fn open(source: &str, opts: &MountOptions) -> Result<KBox<Mounted>> {
        let nr = mount_source::check(source)
            .map_err(|e| mount_err!(source, EINVAL, "{}", describe_source_error(e)))?;
        let claim = KBox::new(0u8, GFP_KERNEL)?;
        let holder = (&*claim as *const u8).cast_mut().cast();

        // Open every device and read its superblock.
        let mut devs = KVec::with_capacity(nr, GFP_KERNEL)?;
        let mut probes = KVec::with_capacity(nr, GFP_KERNEL)?;
        for path in source.split(':') {
            let cpath = CString::try_from_fmt(fmt!("{path}"))?;
            let dev = BlockDevice::open(&cpath, holder)
                .map_err(|e| mount_err!(source, e, "{path}: cannot open the device"))?;
            let sb = read_superblock(source, path, &dev)?;
            probes.push(
                Probe {
                    sb,
                    bytes: dev.bytes(),
                },
                GFP_KERNEL,
            )?;
            devs.push(Some(dev), GFP_KERNEL)?;
        }
        let path_of = |i: usize| source.split(':').nth(i).unwrap_or("?");
        let assembly = assemble(&probes).map_err(|e| match e {
            AssembleError::Foreign(i) => {
                mount_err!(
                    source,
                    EINVAL,
                    "{}: belongs to another filesystem",
                    path_of(i)
                )
            }
            AssembleError::UnknownMember(i) => {
                mount_err!(
                    source,
                    EINVAL,
                    "{}: not a member of this filesystem",
                    path_of(i)
                )
            }
            AssembleError::SameMember(a, b) => mount_err!(
                source,
                EINVAL,
                "{} and {} are the same member",
                path_of(a),
                path_of(b)
            ),
            AssembleError::Missing(m) => {
                mount_err!(source, ENXIO, "member {m} is missing from the source")
            }
            AssembleError::TooSmall(i) => {
                mount_err!(source, EINVAL, "{}: smaller than its member", path_of(i))
            }
        })?;
        let sb = probes[assembly.newest].sb;
        let live = opts.apply(&sb.options, sb.nr_members).map_err(|(opt, e)| {
            let mut msg = crate::sysfs::Text::<128>::new();
            let value = opts.get(opt).unwrap_or(sb.options.get(opt));
            let mut num = crate::sysfs::Text::<16>::new();
            let _ = write!(num, "{value}");
            describe_option_error(&mut msg, opt.desc().name, num.as_str(), e);
            mount_err!(source, EINVAL, "{}", msg.as_str())
        })?;

        let mut members = KVec::with_capacity(sb.nr_members as usize, GFP_KERNEL)?;
        for m in 0..sb.nr_members as usize {
            let dev = devs[assembly.device_of[m]].take().ok_or(EINVAL)?;
            let mut name = [0u8; 32];
            let name_len = dev.name(&mut name);
            members.push(
                Member {
                    dev,
                    name,
                    name_len,
                },
                GFP_KERNEL,
            )?;
        }
        let fs = KBox::pin_init(
            pin_init!(Fs {
                uuid: sb.uuid,
                members,
                state <- new_mutex!(FsState {
                    sb,
                    live,
                    counts: [[0; NR_STATES]; MAX_MEMBERS],
                }),
            }),
            GFP_KERNEL,
        )?;

        // sysfs goes up before any recovery step, so a stuck recovery can be inspected and
        // steered from it.
        let name = CString::try_from_fmt(fmt!("{}", UuidFmt(&sb.uuid)))?;
        let sysfs = SysfsDir::add(&name, &fs, sb.nr_members).map_err(|e| {
            mount_err!(
                source,
                e,
                "cannot create /sys/fs/bucketfs/{}",
                UuidFmt(&sb.uuid)
            )
        })?;
        let mounted = KBox::new(
            Mounted {
                _sysfs: sysfs,
                fs,
                _claim: claim,
            },
            GFP_KERNEL,
        )?;

        mounted.fs.read_bucket_tables(source)?;
        pr_info!(
            "{}: mounted {} ({} member(s), metadata_replicas={})\n",
            source,
            UuidFmt(&sb.uuid),
            sb.nr_members,
            live.get(Opt::MetadataReplicas)
        );
        Ok(mounted)
    }

    /// Reads every member's bucket table into the bucket counts.
    fn read_bucket_tables(&self, source: &str) -> Result {
        let sb = self.state.lock().sb;
        let mut counts = [[0u64; NR_STATES]; MAX_MEMBERS];
        for (i, m) in sb.member_table().iter().enumerate() {
            let blocks = table_blocks(m.nbuckets);
            let mut buf = IoBuf::new(blocks as usize * BLOCK_SIZE)?;
            let dev = &self.members[i].dev;
            dev.read(m.bucket_offset(m.table_start as u64), &mut buf)
                .map_err(|e| {
                    mount_err!(
                        source,
                        e,
                        "{}: cannot read the bucket table",
                        self.members[i].name()
                    )
                })?;
            for block in 0..blocks as usize {
                let id = TableBlockId {
                    uuid: sb.uuid,
                    member: i as u32,
                    block: block as u32,
                };
                let data = &buf[block * BLOCK_SIZE..(block + 1) * BLOCK_SIZE];
                decode_block(&id, m.nbuckets, data, |_, e| {
                    counts[i][e.state as usize] += 1
                })
                .map_err(|e| {
                    mount_err!(
                        source,
                        EINVAL,
                        "{}: bucket table block {block}: {e:?}",
                        self.members[i].name()
                    )
                })?;
            }
        }
        self.state.lock().counts = counts;
        Ok(())
    }

    /// Sets option `opt` at runtime: checked against both the live and the stored options,
    /// then persisted in every member's superblock. On any error nothing changes.
    pub(crate) fn set_option(&self, opt: Opt, value: u32) -> Result<(), (Error, Option<OptError>)> {
        let mut st = self.state.lock();
        let members = st.sb.nr_members;
        let mut live = st.live;
        let mut sb = st.sb;
        live.set(opt, value, members)
            .map_err(|e| (EINVAL, Some(e)))?;
        sb.options
            .set(opt, value, members)
            .map_err(|e| (EINVAL, Some(e)))?;
        sb.seq += 1;
        self.write_superblocks(&sb).map_err(|e| (e, None))?;
        st.sb = sb;
        st.live = live;
        Ok(())
    }

    /// Writes `sb` to every member: all primaries first, then all backups, so a crash
    /// leaves one good copy everywhere.
    fn write_superblocks(&self, sb: &Superblock) -> Result {
        let mut buf = IoBuf::new(SB_SIZE)?;
        for off in SB_OFFSETS {
            for (i, m) in self.members.iter().enumerate() {
                let mut copy = *sb;
                copy.member_index = i as u32;
                copy.encode(&mut buf);
                m.dev.write(off, &buf, true).inspect_err(|e| {
                    pr_err!(
                        "{}: {}: superblock write at {off} failed ({})\n",
                        UuidFmt(&self.uuid),
                        m.name(),
                        e.to_errno()
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Sizes for statfs, in 4 KiB blocks: all allocatable buckets, the empty ones (free or
    /// waiting for discard), and the free ones.
    pub(crate) fn statfs(&self) -> (u64, u64, u64) {
        let st = self.state.lock();
        let (mut total, mut empty, mut free) = (0, 0, 0);
        for (i, m) in st.sb.member_table().iter().enumerate() {
            let per = m.bucket_size as u64 / BLOCK_SIZE as u64;
            let c = &st.counts[i];
            total += (m.nbuckets - m.first_bucket as u64) * per;
            free += c[BucketState::Free as usize] * per;
            empty += (c[BucketState::Free as usize] + c[BucketState::NeedDiscard as usize]) * per;
        }
        (total, empty, free)
    }
}

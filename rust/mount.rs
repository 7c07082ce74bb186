// SPDX-License-Identifier: GPL-2.0

//! Mounting: from a mount source to a [`Mounted`] filesystem.
//!
//! [`Fs::open`] opens every member, reads and checks the superblocks, assembles the members,
//! claims the uuid (a clone is refused before anything is set up), creates the sysfs directory
//! (before any recovery step, so it is there while recovery runs), reads the bucket tables
//! into the allocator, then runs recovery (`recovery.rs`).

use crate::allocator::Allocator;
use crate::allocator::DeviceBuckets;
use crate::bdev::{BlockDevice, IoBuf};
use crate::discard::Discard;
use crate::fs::{describe_option_error, mount_err, Fs, FsState, Member, Progress};
use crate::shared::assemble::{assemble, AssembleError, Probe};
use crate::shared::bucket_table::{decode_block, table_blocks, BucketState, TableBlockId};
use crate::shared::mount_source::{self, SourceError};
use crate::shared::options::{MountOptions, Opt};
use crate::shared::superblock::{Superblock, UuidFmt, BLOCK_SIZE, SB_OFFSETS, SB_SIZE};
use crate::sysfs::SysfsDir;
use crate::text::Text;
use crate::vfs::UuidClaim;
use core::fmt::Write;
use kernel::{
    alloc::{KBox, KVec},
    fmt, new_mutex,
    prelude::*,
    str::CString,
};

/// A filesystem as the VFS holds it: sysfs first, so it goes before the filesystem it shows.
pub(crate) struct Mounted {
    /// The filesystem, owned by its sysfs directory (removed before the filesystem goes).
    sysfs: SysfsDir<Fs>,
    /// The holder cookie of the members' exclusive claim; lives as long as the claim.
    _claim: KBox<u8>,
    /// The uuid, claimed until everything above is gone (its sysfs directory included).
    _uuid: UuidClaim,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // Stop the worker before sysfs goes too (dropping `fs` would, later): kicks from
        // writes still in flight are ignored from here on.
        self.fs().discard.stop();
    }
}

impl Mounted {
    /// The mounted filesystem.
    pub(crate) fn fs(&self) -> &Fs {
        self.sysfs.owner()
    }
}

/// Reads the newest valid superblock copy of `dev`; warns about a bad copy when the other
/// one is good.
fn read_superblock(source: &str, path: &str, dev: &BlockDevice) -> Result<Superblock> {
    let mut buf = IoBuf::new(SB_SIZE)?;
    let mut best: Option<Superblock> = None;
    // Why a copy was refused: a bad field, or a read error.
    let mut bad: Option<(u64, &'static str, Option<Error>)> = None;
    for off in SB_OFFSETS {
        if let Err(e) = dev.read(off, &mut buf) {
            bad = Some((off, "read error", Some(e)));
            continue;
        }
        match Superblock::decode(&buf) {
            Ok(sb) if best.map_or(true, |b| sb.seq > b.seq) => best = Some(sb),
            Ok(_) => {}
            Err(e) => bad = Some((off, e.field(), None)),
        }
    }
    match (best, bad) {
        (Some(sb), Some((off, why, _))) => {
            pr_warn!(
                "{source}: {path}: superblock copy at {off} refused ({why}); using the other\n"
            );
            Ok(sb)
        }
        (Some(sb), None) => Ok(sb),
        (None, Some((off, _, Some(e)))) => Err(mount_err!(
            source,
            e,
            "{path}: cannot read the superblock (copy at {off} and the other)"
        )),
        (None, Some((_, field, None))) => Err(mount_err!(
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
        // One mount per uuid: a clone (every member copied) would collide with the mounted
        // filesystem in sysfs, and is refused here, before anything is set up.
        let mut holder = [0u8; 128];
        let csource = CString::try_from_fmt(fmt!("{source}"))?;
        let uuid_claim = UuidClaim::new(&sb.uuid, &csource, &mut holder).map_err(|e| {
            if e == EBUSY {
                let held = holder.split(|&b| b == 0).next().unwrap_or(&[]);
                let held = core::str::from_utf8(held).unwrap_or("?");
                pr_err!(
                    "{source}: filesystem {} is already mounted from {held}; a copy with the same \
                     uuid cannot be mounted beside it ({})\n",
                    UuidFmt(&sb.uuid),
                    e.to_errno()
                );
            }
            e
        })?;
        let live = opts.apply(&sb.options, sb.nr_members).map_err(|(opt, e)| {
            let mut msg = Text::<128>::new();
            let value = opts.get(opt).unwrap_or(sb.options.get(opt));
            let mut num = Text::<16>::new();
            let _ = write!(num, "{value}");
            describe_option_error(&mut msg, opt.desc().name, num.as_str(), e);
            mount_err!(source, EINVAL, "{}", msg.as_str())
        })?;
        let required = Opt::MetadataReplicasRequired;
        if live.get(required) < sb.options.get(required) && opts.get(required).is_none() {
            pr_info!(
                "{source}: metadata_replicas_required lowered to {} for this mount, to follow \
                 metadata_replicas\n",
                live.get(required)
            );
        }

        let mut members = KVec::with_capacity(sb.nr_members as usize, GFP_KERNEL)?;
        let mut geometry = KVec::with_capacity(sb.nr_members as usize, GFP_KERNEL)?;
        geometry.extend_from_slice(sb.member_table(), GFP_KERNEL)?;
        for m in 0..sb.nr_members as usize {
            let dev = devs[assembly.device_of[m]].take().ok_or(EINVAL)?;
            members.push(Member::new(dev), GFP_KERNEL)?;
        }
        let fs = KBox::pin_init(
            try_pin_init!(Fs {
                uuid: sb.uuid,
                members,
                geometry,
                state <- new_mutex!(FsState { sb, live }),
                alloc <- Allocator::new(sb.uuid, KVec::new()),
                progress: Progress::default(),
                discard <- Discard::new(sb.nr_members as usize),
                table_lock <- new_mutex!(()),
            }? Error),
            GFP_KERNEL,
        )?;

        // sysfs goes up before any recovery step, so a stuck recovery can be inspected and
        // steered from it.
        let name = CString::try_from_fmt(fmt!("{}", UuidFmt(&sb.uuid)))?;
        let sysfs = SysfsDir::add(&name, fs, sb.nr_members).map_err(|e| {
            mount_err!(
                source,
                e,
                "cannot create /sys/fs/bucketfs/{}",
                UuidFmt(&sb.uuid)
            )
        })?;
        let mounted = KBox::new(
            Mounted {
                sysfs,
                _claim: claim,
                _uuid: uuid_claim,
            },
            GFP_KERNEL,
        )?;

        mounted.fs().read_bucket_tables(source)?;
        mounted.fs().recover(source)?;
        pr_info!(
            "{}: mounted {} ({} member(s), metadata_replicas={})\n",
            source,
            UuidFmt(&sb.uuid),
            sb.nr_members,
            mounted.fs().live().replicas
        );
        Ok(mounted)
    }

    /// Reads every member's bucket table into the allocator.
    fn read_bucket_tables(&self, source: &str) -> Result {
        let uuid = self.uuid;
        let mut devices = KVec::with_capacity(self.geometry.len(), GFP_KERNEL)?;
        for (i, m) in self.geometry.iter().enumerate() {
            let blocks = table_blocks(m.nbuckets);
            let mut buf = IoBuf::new(blocks as usize * BLOCK_SIZE)?;
            let name = self.members[i].name();
            self.members[i]
                .dev
                .read(m.bucket_offset(m.table_start as u64), &mut buf)
                .map_err(|e| mount_err!(source, e, "{name}: cannot read the bucket table"))?;
            let mut states = KVec::with_capacity(m.nbuckets as usize, GFP_KERNEL)?;
            for block in 0..blocks as usize {
                let id = TableBlockId {
                    uuid,
                    member: i as u32,
                    block: block as u32,
                };
                let data = &buf[block * BLOCK_SIZE..(block + 1) * BLOCK_SIZE];
                let mut oom = false;
                decode_block(&id, m.nbuckets, data, |_, e| {
                    oom |= states.push(e.state, GFP_KERNEL).is_err()
                })
                .map_err(|e| {
                    mount_err!(source, EINVAL, "{name}: bucket table block {block}: {e:?}")
                })?;
                if oom {
                    return Err(ENOMEM);
                }
            }
            // Metadata areas must be what the layout says: a table that called a journal bucket
            // free would let the allocator overwrite the journal.
            for (b, st) in states.iter().enumerate().take(m.first_bucket as usize) {
                let want = if (b as u32) < m.journal_start {
                    BucketState::Superblock
                } else {
                    BucketState::Journal
                };
                if *st != want {
                    return Err(mount_err!(
                        source,
                        EINVAL,
                        "{name}: bucket table says metadata bucket {b} is {}",
                        st.name()
                    ));
                }
            }
            let dev = DeviceBuckets::new(m.nbuckets as u32, m.first_bucket, name, |b| {
                states
                    .get(b as usize)
                    .copied()
                    .unwrap_or(BucketState::Superblock)
            })?;
            devices.push(dev, GFP_KERNEL)?;
        }
        // Merges the `dev-N/writable` writes made so far.
        self.alloc.install_devices(devices);
        Ok(())
    }
}

// SPDX-License-Identifier: GPL-2.0

//! Mounting: from a mount source to a [`Mounted`] filesystem.
//!
//! [`Fs::open`] opens every member, reads and checks the superblocks, assembles the members,
//! claims the uuid (a clone is refused before anything is set up), creates the sysfs directory
//! (before any recovery step, so it is there while recovery runs), reads the bucket tables
//! into the allocator, then runs recovery (`recovery.rs`).

use crate::allocator::{Allocator, BucketsBuilder, DeviceBuckets};
use crate::append_vec::AppendVec;
use crate::bdev::{BlockDevice, Holder, IoBuf, ReadAhead};
use crate::closure::cond_resched;
use crate::commit::boxed_copy;
use crate::discard::Discard;
use crate::fs::{describe_option_error, mount_err, Fs, FsState, Member, Progress};
use crate::shared::assemble::{assemble_partial_of, AssembleError, Assembly, Probe};
use crate::shared::bucket_table::{
    check_block, entries_in_block, table_blocks, BucketState, CheckedBlock, TableBlockId,
    TableError,
};
use crate::shared::mount_source::{self, SourceError};
use crate::shared::options::{MountFlag, MountOptions, Opt};
use crate::shared::superblock::{
    Member as GeoMember, Superblock, UuidFmt, BLOCK_SIZE, MAX_MEMBERS, SB_OFFSETS, SB_SIZE,
    TABLE_ENTRIES_PER_BLOCK,
};
use crate::sysfs::SysfsDir;
use crate::text::Text;
use crate::vfs::UuidClaim;
use core::sync::atomic::{AtomicBool, Ordering};
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
    /// Members whose superblock was older than the one assembled from (`Assembly::behind`),
    /// and that one's `seq`: a read-write mount writes the superblock again once recovered.
    behind: (u32, u64),
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // No flush runs from here on (a running one is waited for); then what is not
        // committed yet is, before anything stops (the commit kicks the worker).
        // Out of the lock before it is dropped: a transaction arms the timer under the tree
        // lock, and the drop waits for a running flush, which takes the tree lock.
        let timer = self.fs().flusher.lock().take();
        drop(timer);
        if let Err(e) = self.fs().commit_for_shutdown() {
            pr_err!(
                "{}: unmount: cannot commit the btree ({}); the journal holds what was synced\n",
                UuidFmt(&self.fs().uuid),
                e.to_errno()
            );
        }
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

/// Reads the newest valid superblock copy of `dev` into `sb` (a slot on the heap: a superblock
/// is large, and none is kept on the stack of the mount, which is live under the whole
/// recovery); warns about a bad copy when the other one is good. On an error `sb` holds no
/// valid superblock. Not inlined: its buffers stay off the frame of the mount.
#[inline(never)]
fn read_superblock(source: &str, path: &str, dev: &BlockDevice, sb: &mut Superblock) -> Result {
    // Both copies are kept as bytes and only the newest good one is decoded again at the end.
    let mut bufs = [IoBuf::new(SB_SIZE)?, IoBuf::new(SB_SIZE)?];
    // The newest good copy: its index in `bufs` and its sequence number.
    let mut best: Option<(usize, u64)> = None;
    // Why a copy was refused: a bad field, or a read error.
    let mut bad: Option<(u64, &'static str, Option<Error>)> = None;
    for (i, off) in SB_OFFSETS.into_iter().enumerate() {
        let buf = &mut bufs[i];
        if let Err(e) = dev.read(off, buf) {
            bad = Some((off, "read error", Some(e)));
            continue;
        }
        match Superblock::decode_into(buf, sb).map(|()| sb.seq) {
            Ok(seq) if best.map_or(true, |(_, b)| seq > b) => best = Some((i, seq)),
            Ok(_) => {}
            Err(e) => bad = Some((off, e.field(), None)),
        }
    }
    match (best, bad) {
        (Some((i, _)), Some((off, why, _))) => {
            pr_warn!(
                "{source}: {path}: superblock copy at {off} refused ({why}); using the other\n"
            );
            Superblock::decode_into(&bufs[i], sb).map_err(|_| EINVAL)
        }
        (Some((i, _)), None) => Superblock::decode_into(&bufs[i], sb).map_err(|_| EINVAL),
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

/// Refuses a source with members missing unless `degraded`, naming the first one (index and
/// uuid); with `degraded` (read-only, checked before), warns about each. What else needs a
/// missing member is checked where it is needed: the btree load refuses a node whose copies
/// are all on missing members; the journal is read from the members present.
fn check_missing(source: &str, sb: &Superblock, a: &Assembly, degraded: bool) -> Result {
    let Some(first) = a.first_missing(sb.nr_members) else {
        return Ok(());
    };
    let uuid_of = |m: u32| {
        sb.member_table()
            .get(m as usize)
            .map_or([0; 16], |g| g.uuid)
    };
    let missing = (0..sb.nr_members)
        .filter(|&m| a.is_missing(m as usize))
        .count() as u32;
    if !degraded {
        let replicas = sb.options.get(Opt::MetadataReplicas);
        let hint = if missing < replicas {
            "; mount -o ro,degraded can do without it if every btree node has a copy on the \
             members given"
        } else {
            "; with fewer metadata_replicas than members missing, mount -o ro,degraded works \
             only if no btree node is on it"
        };
        return Err(mount_err!(
            source,
            ENXIO,
            "member {first} is missing from the source (uuid {}){hint}",
            UuidFmt(&uuid_of(first))
        ));
    }
    for m in (0..sb.nr_members).filter(|&m| a.is_missing(m as usize)) {
        pr_warn!(
            "{source}: member {m} is missing from the source (uuid {}): mounting degraded, \
             read-only; nothing is read from it or allocated on it\n",
            UuidFmt(&uuid_of(m))
        );
    }
    Ok(())
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
    /// Opens the filesystem named by `source` with mount options `opts`, read-only if
    /// `read_only`.
    pub(crate) fn open(
        source: &str,
        opts: &MountOptions,
        read_only: bool,
    ) -> Result<KBox<Mounted>> {
        let mounted = Self::set_up(source, opts, read_only)?;
        let fs = mounted.fs();
        if read_only {
            // No discard on a read-only mount: the worker never starts until a remount,rw.
            fs.discard.pause();
        }
        fs.read_bucket_tables(source)?;
        fs.recover(source, opts.flag(MountFlag::NoRecovery))?;
        if !read_only {
            fs.settle_superblocks(source, mounted.behind)?;
        }
        fs.recovered.store(true, Ordering::Release);
        let present = fs.members.iter().filter(|m| m.dev().is_ok()).count();
        let live = fs.members.iter().filter(|m| !m.is_removed()).count();
        pr_info!(
            "{}: mounted {} ({} member(s){}, metadata_replicas={}){}\n",
            source,
            UuidFmt(&fs.uuid),
            live,
            if present < live { ", degraded" } else { "" },
            fs.live().replicas,
            if read_only { " read-only" } else { "" }
        );
        Ok(mounted)
    }

    /// After recovery of a read-write mount: when members carried an older superblock than
    /// the one the mount was assembled from (`behind`: the members and that `seq`), left by a
    /// superblock write a crash interrupted (a member add or removal, a commit), and nothing
    /// has written the superblock since, writes it again to every member. From then on every
    /// member carries the member table this mount used: the interrupted change is settled, and
    /// a later mount of any subset of the members (degraded) finds the same table.
    fn settle_superblocks(&self, source: &str, behind: (u32, u64)) -> Result {
        let (mask, seq) = behind;
        if mask == 0 || self.state.lock().sb.seq != seq {
            return Ok(());
        }
        self.update_superblock(|_| Ok(())).map_err(|e| {
            mount_err!(
                source,
                e,
                "cannot write the superblock again to the members left behind (mask {mask:#x})"
            )
        })?;
        let mut list = Text::<64>::new();
        for (i, m) in (0..MAX_MEMBERS)
            .filter(|m| mask & (1 << m) != 0)
            .enumerate()
        {
            let sep = if i == 0 { "" } else { "," };
            let _ = core::fmt::Write::write_fmt(&mut list, format_args!("{sep}{m}"));
        }
        pr_info!(
            "{source}: member(s) {} carried an older superblock than seq {seq} (a superblock \
             write interrupted by a crash); written again to every member (seq {})\n",
            list.as_str(),
            self.state.lock().sb.seq
        );
        Ok(())
    }

    /// [`Fs::open`] up to the sysfs directory: the members opened and assembled, the uuid
    /// claimed, the options checked. Not inlined: the superblock copies it holds stay off the
    /// stack while recovery runs (the commit's superblock writes run deep under it).
    #[inline(never)]
    fn set_up(source: &str, opts: &MountOptions, read_only: bool) -> Result<KBox<Mounted>> {
        let nr = mount_source::check(source)
            .map_err(|e| mount_err!(source, EINVAL, "{}", describe_source_error(e)))?;
        let (norecovery, degraded) = (
            opts.flag(MountFlag::NoRecovery),
            opts.flag(MountFlag::Degraded),
        );
        for flag in [MountFlag::NoRecovery, MountFlag::Degraded] {
            if opts.flag(flag) && !read_only {
                return Err(mount_err!(
                    source,
                    EINVAL,
                    "{}: requires ro (mount -o ro,{})",
                    flag.name(),
                    flag.name()
                ));
            }
        }
        let claim = KBox::new(0u8, GFP_KERNEL)?;
        let claim_holder = Holder::of(&claim);

        // Open every device and read its superblock, each decoded in place into a slot of its
        // own on the heap (a superblock is large: none is kept on the stack).
        let mut devs = KVec::with_capacity(nr, GFP_KERNEL)?;
        let mut sbs: KVec<KBox<Superblock>> = KVec::with_capacity(nr, GFP_KERNEL)?;
        // A read-only block device (write-protected, `blockdev --setro`, a read-only snapshot)
        // can be mounted read-only only; such a mount stays read-only.
        let mut device_ro = false;
        for path in source.split(':') {
            let cpath = CString::try_from_fmt(fmt!("{path}"))?;
            let dev = match BlockDevice::open(&cpath, claim_holder) {
                // A read-only device (the block layer refuses to open it for writing).
                Err(e) if e == EACCES && read_only => {
                    BlockDevice::open_mode(&cpath, claim_holder, false)
                }
                Err(e) if e == EACCES => {
                    return Err(mount_err!(
                        source,
                        e,
                        "{path}: cannot open the device for writing (a read-only block \
                         device? mount -o ro)"
                    ))
                }
                r => r,
            }
            .map_err(|e| mount_err!(source, e, "{path}: cannot open the device"))?;
            if dev.read_only() {
                if !read_only {
                    return Err(mount_err!(
                        source,
                        EROFS,
                        "{path}: read-only block device (mount -o ro)"
                    ));
                }
                device_ro = true;
            }
            let mut sb = KBox::<Superblock>::new_uninit(GFP_KERNEL)?.write(Superblock::EMPTY);
            read_superblock(source, path, &dev, &mut sb)?;
            sbs.push(sb, GFP_KERNEL)?;
            devs.push(Some(dev), GFP_KERNEL)?;
        }
        let mut probes = KVec::with_capacity(nr, GFP_KERNEL)?;
        for (sb, dev) in sbs.iter().zip(devs.iter().flatten()) {
            probes.push(
                Probe {
                    sb: &**sb,
                    bytes: dev.bytes(),
                },
                GFP_KERNEL,
            )?;
        }
        let path_of = |i: usize| source.split(':').nth(i).unwrap_or("?");
        let assembly = assemble_partial_of(&probes).map_err(|e| match e {
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
            AssembleError::Conflict(a, b) => mount_err!(
                source,
                EINVAL,
                "{} and {} carry different member tables at the same superblock seq (a member \
                 add interrupted by a crash?): leave out the device that is not a member",
                path_of(a),
                path_of(b)
            ),
        })?;
        let sb: &Superblock = probes[assembly.newest].sb;
        check_missing(source, sb, &assembly, degraded)?;
        let behind = (assembly.behind(&probes), sb.seq);
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
        let mut live = opts
            .apply_for(&sb.options, sb.member_labels())
            .map_err(|(opt, e)| {
                let mut msg = Text::<128>::new();
                let mut num = Text::<40>::new();
                let _ = match opts.get(opt) {
                    Some(_) => opts.show(opt, &mut num),
                    None => sb.options.show(opt, &mut num),
                };
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

        // A degraded mount allocates nothing on a missing member, so a replay in memory
        // cannot place more copies than there are members present.
        let present = (0..sb.nr_members)
            .filter(|&m| !assembly.is_missing(m as usize) && !assembly.is_removed(m as usize))
            .count() as u32;
        let replicas = Opt::MetadataReplicas;
        if live.get(replicas) > present {
            pr_warn!(
                "{source}: degraded: metadata_replicas capped to the {present} member(s) present \
                 for this mount\n"
            );
            live = live
                .with_unchecked(replicas, present)
                .with_unchecked(required, live.get(required).min(present));
        }

        // Room for every member a filesystem may have: members added while mounted are
        // appended (`member_add.rs`), nothing is moved.
        let members = AppendVec::new()?;
        let geometry = AppendVec::new()?;
        for m in 0..sb.nr_members as usize {
            let member = match devs.get_mut(assembly.device_of[m]) {
                Some(dev) => Member::new(dev.take().ok_or(EINVAL)?),
                None if assembly.is_removed(m) => Member::removed(),
                None => Member::missing(),
            };
            members.push(member).map_err(|_| EINVAL)?;
            geometry.push(sb.members[m]).map_err(|_| EINVAL)?;
        }
        // Why this mount cannot go read-write later, if it cannot.
        let rw_refused = if device_ro {
            Some("a member's block device is read-only")
        } else if degraded && present < sb.live_members() {
            Some("a member is missing (degraded)")
        } else if norecovery {
            Some("the journal was not replayed (norecovery)")
        } else {
            None
        };
        let persisted = boxed_copy(sb)?;
        let fs = KBox::pin_init(
            try_pin_init!(Fs {
                uuid: sb.uuid,
                members,
                geometry,
                holder: claim_holder,
                tables_ready: AtomicBool::new(false),
                add_lock <- new_mutex!(()),
                recovered: AtomicBool::new(false),
                shut_down: AtomicBool::new(false),
                rewrite_lock <- new_mutex!(()),
                state <- new_mutex!(FsState {
                    sb: persisted,
                    live,
                    read_only,
                    rw_refused,
                }),
                live_inputs: crate::allocator::LiveCell::new(crate::allocator::LiveInputs::of(
                    &live,
                    sb.member_labels()
                )),
                alloc <- Allocator::new(sb.uuid, KVec::new()),
                progress: Progress::default(),
                discard <- Discard::new(MAX_MEMBERS),
                table_lock <- new_mutex!(()),
                heal <- crate::heal::Heal::new(),
                tree <- new_mutex!(None),
                flusher <- new_mutex!(None),
                next_ino: core::sync::atomic::AtomicU64::new(crate::shared::namespace_format::ROOT_INO + 1),
                inodes: core::sync::atomic::AtomicU64::new(0),
            }? Error),
            GFP_KERNEL,
        )?;

        // sysfs goes up before any recovery step, so a stuck recovery can be inspected and
        // steered from it.
        let name = CString::try_from_fmt(fmt!("{}", UuidFmt(&sb.uuid)))?;
        let sysfs = SysfsDir::add(&name, fs, sb.nr_members, MAX_MEMBERS as u32).map_err(|e| {
            mount_err!(
                source,
                e,
                "cannot create /sys/fs/bucketfs/{}",
                UuidFmt(&sb.uuid)
            )
        })?;
        Ok(KBox::new(
            Mounted {
                sysfs,
                _claim: claim,
                _uuid: uuid_claim,
                behind,
            },
            GFP_KERNEL,
        )?)
    }

    /// Reads every member's bucket table into the allocator, a window at a time with several
    /// windows in flight ([`TableReader`]): nothing the size of the table is held besides the
    /// allocator's own per-bucket state. Not inlined: its frame (index builders, the reader)
    /// stays off the mount's, which is live under the whole recovery.
    #[inline(never)]
    fn read_bucket_tables(&self, source: &str) -> Result {
        // Room for every member: a member added later (`member_add.rs`) is pushed without
        // allocating.
        let mut devices = KVec::with_capacity(MAX_MEMBERS, GFP_KERNEL)?;
        let mut reader = TableReader::new(self.uuid)?;
        // Members with refused table blocks, and how many.
        let mut bad_tables: KVec<(usize, u64)> = KVec::new();
        for (i, m) in self.geometry.iter().enumerate() {
            let name = self.members[i].name();
            let Ok(member_dev) = self.members[i].dev() else {
                // A missing member (degraded, read-only): its table is not read; its buckets
                // are taken from the layout, or as in use, and none is ever allocated. A
                // removed one has no bucket (its entry is all zero).
                devices.push(
                    DeviceBuckets::new(m.nbuckets as u32, m.first_bucket, name, |b| {
                        layout_state(m, b as u64)
                    })?,
                    GFP_KERNEL,
                )?;
                continue;
            };
            if !DeviceBuckets::supported(m.nbuckets as u32) {
                return Err(mount_err!(
                    source,
                    EFBIG,
                    "{name}: {} buckets are more than bucketfs can account for in one member \
                     (format it with bigger buckets)",
                    m.nbuckets
                ));
            }
            let mut builder = DeviceBuckets::builder(m.nbuckets as u32, m.first_bucket)?;
            match reader.read(member_dev, i as u32, m, &mut builder) {
                Ok(()) => {}
                Err(TableFault::Read(block, e)) => {
                    return Err(mount_err!(
                        source,
                        e,
                        "{name}: cannot read the bucket table (block {block})"
                    ))
                }
                // Metadata areas must be what the layout says: a table that called a journal
                // bucket free would let the allocator overwrite the journal.
                Err(TableFault::Metadata(b, st)) => {
                    return Err(mount_err!(
                        source,
                        EINVAL,
                        "{name}: bucket table says metadata bucket {b} is {}",
                        st.name()
                    ))
                }
                Err(TableFault::NoMemory) => return Err(ENOMEM),
            }
            let dev = DeviceBuckets::from_builder(builder, name)?;
            if let Some((block, e)) = reader.first_bad {
                pr_warn!(
                    "{}: {name}: {} bucket table block(s) refused (first: block {block}, \
                     {e:?}); their buckets are taken as in use (`data`: no checker rebuilds \
                     them yet), the btree's reclaimed by reconciliation\n",
                    UuidFmt(&self.uuid),
                    reader.bad
                );
                bad_tables.push((i, reader.bad), GFP_KERNEL)?;
            }
            devices.push(dev, GFP_KERNEL)?;
        }
        // Merges the `dev-N/writable` writes made so far.
        self.alloc.install_devices(devices);
        for (i, _) in self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.dev().is_err())
        {
            self.alloc.set_writable(i, false);
        }
        // Members may be added from here on (`device_add`): the allocator has every member's
        // device, and a new one is the next.
        self.tables_ready.store(true, Ordering::Release);
        // Refused blocks are rewritten whole (with the states taken above) by the next table
        // write: every block of such a member is marked dirty (refusals are rare; the
        // blocks are not kept).
        for &(m, _) in bad_tables.iter() {
            let blocks = self.geometry.get(m).map_or(0, |g| table_blocks(g.nbuckets));
            self.alloc
                .table(m, |v| v.map(|mut v| v.mark_dirty(0, blocks as u32)));
        }
        Ok(())
    }
}

/// Table blocks read at a time: 1 MiB.
const TABLE_WINDOW_BLOCKS: u64 = 256;
/// Windows in flight: while one is decoded, the device reads the next ones.
const TABLE_WINDOWS_IN_FLIGHT: usize = 4;

/// Why a bucket table was refused.
#[derive(Clone, Copy)]
enum TableFault {
    /// Reading the window at this block failed.
    Read(u64, Error),
    /// A metadata bucket has the wrong state.
    Metadata(u64, BucketState),
    /// No memory for a read.
    NoMemory,
}

/// Reads members' bucket tables [`TABLE_WINDOW_BLOCKS`] blocks at a time, with
/// [`TABLE_WINDOWS_IN_FLIGHT`] windows in flight, checks every block ([`check_block`]) and
/// gives its states to the allocator's builder in bucket order, a whole block at once when its
/// entries all have the same state. A refused block (torn by a crash, or damaged) is counted
/// and its buckets taken from the layout (metadata areas) or as in use (`data`), never free.
struct TableReader<'d> {
    uuid: [u8; 16],
    ring: KVec<ReadAhead<'d>>,
    /// Refused blocks of the member read last: how many, and the first one with its reason.
    bad: u64,
    first_bad: Option<(u64, TableError)>,
}

impl<'d> TableReader<'d> {
    fn new(uuid: [u8; 16]) -> Result<Self> {
        let mut ring = KVec::with_capacity(TABLE_WINDOWS_IN_FLIGHT, GFP_KERNEL)?;
        for _ in 0..TABLE_WINDOWS_IN_FLIGHT {
            ring.push(
                ReadAhead::new(TABLE_WINDOW_BLOCKS as usize * BLOCK_SIZE)?,
                GFP_KERNEL,
            )?;
        }
        Ok(TableReader {
            uuid,
            ring,
            bad: 0,
            first_bad: None,
        })
    }

    /// Starts reading window `w` (blocks from `w * TABLE_WINDOW_BLOCKS`) of member `m`'s table
    /// on `dev` into its ring slot, if the table has that window.
    fn start(&mut self, dev: &'d BlockDevice, m: &GeoMember, w: u64) -> Result<(), TableFault> {
        let blocks = table_blocks(m.nbuckets);
        let first = w * TABLE_WINDOW_BLOCKS;
        if first >= blocks {
            return Ok(());
        }
        let n = TABLE_WINDOW_BLOCKS.min(blocks - first);
        let off = m.bucket_offset(m.table_start as u64) + first * BLOCK_SIZE as u64;
        let slot = (w % TABLE_WINDOWS_IN_FLIGHT as u64) as usize;
        let r = self.ring.get_mut(slot).ok_or(TableFault::NoMemory)?;
        r.start(dev, off, n as usize * BLOCK_SIZE)
            .map_err(|e| TableFault::Read(first, e))
    }

    /// Reads member `index`'s table (geometry `m`) on `dev` into `out`; on a fault, stops
    /// there (reads still in flight are waited for before their buffers are reused or freed).
    /// Not inlined: its frame stays apart from the index building in `read_bucket_tables`.
    #[inline(never)]
    fn read(
        &mut self,
        dev: &'d BlockDevice,
        index: u32,
        m: &GeoMember,
        out: &mut BucketsBuilder,
    ) -> Result<(), TableFault> {
        (self.bad, self.first_bad) = (0, None);
        let blocks = table_blocks(m.nbuckets);
        let windows = blocks.div_ceil(TABLE_WINDOW_BLOCKS);
        for w in 0..windows.min(TABLE_WINDOWS_IN_FLIGHT as u64) {
            self.start(dev, m, w)?;
        }
        for w in 0..windows {
            let first = w * TABLE_WINDOW_BLOCKS;
            let slot = (w % TABLE_WINDOWS_IN_FLIGHT as u64) as usize;
            let r = self.ring.get_mut(slot).ok_or(TableFault::NoMemory)?;
            let bytes = r.wait().map_err(|e| TableFault::Read(first, e))?;
            let (mut bad, mut first_bad) = (self.bad, self.first_bad);
            for (k, b) in bytes.chunks_exact(BLOCK_SIZE).enumerate() {
                let block = first + k as u64;
                let id = TableBlockId {
                    uuid: self.uuid,
                    member: index,
                    block: block as u32,
                };
                match check_block(&id, m.nbuckets, b) {
                    Ok(c) => take_block(m, block, &c, out)?,
                    Err(e) => {
                        // Not trusted, nor does it make the filesystem unmountable: it is
                        // rewritten whole at the next table write.
                        bad += 1;
                        first_bad.get_or_insert((block, e));
                        take_refused_block(m, block, out);
                    }
                }
            }
            (self.bad, self.first_bad) = (bad, first_bad);
            self.start(dev, m, w + TABLE_WINDOWS_IN_FLIGHT as u64)?;
            cond_resched();
        }
        Ok(())
    }
}

/// Gives the states of checked table block `block` of member `m` to `out`; a metadata bucket
/// (below the first allocatable one) must have the state the layout gives it.
fn take_block(
    m: &GeoMember,
    block: u64,
    c: &CheckedBlock<'_>,
    out: &mut BucketsBuilder,
) -> Result<(), TableFault> {
    let first = block * TABLE_ENTRIES_PER_BLOCK;
    if first < m.first_bucket as u64 {
        for (i, st) in c.states().enumerate() {
            let b = first + i as u64;
            if b < m.first_bucket as u64 && st != layout_state(m, b) {
                return Err(TableFault::Metadata(b, st));
            }
        }
    }
    match c.uniform() {
        Some(st) => out.push_run(st, c.len() as u32),
        None => c.states().for_each(|st| out.push(st)),
    }
    Ok(())
}

/// The state the layout gives bucket `b` of member `m` when its table is not read (a refused
/// block, a member missing from a degraded mount): superblocks and table, journal, or in use
/// (`data`) for the rest.
fn layout_state(m: &GeoMember, b: u64) -> BucketState {
    if b < m.journal_start as u64 {
        BucketState::Superblock
    } else if b < m.first_bucket as u64 {
        BucketState::Journal
    } else {
        BucketState::Data
    }
}

/// Gives the states of refused table block `block` of member `m` to `out`, from the layout.
fn take_refused_block(m: &GeoMember, block: u64, out: &mut BucketsBuilder) {
    let first = block * TABLE_ENTRIES_PER_BLOCK;
    let end = first + entries_in_block(m.nbuckets, block) as u64;
    let journal = (m.journal_start as u64).clamp(first, end);
    let data = (m.first_bucket as u64).clamp(journal, end);
    out.push_run(BucketState::Superblock, (journal - first) as u32);
    out.push_run(BucketState::Journal, (data - journal) as u32);
    out.push_run(BucketState::Data, (end - data) as u32);
}

// SPDX-License-Identifier: GPL-2.0

//! Mounting: from a mount source to a [`Mounted`] filesystem.
//!
//! [`Fs::open`] opens every member, reads and checks the superblocks, assembles the members,
//! claims the uuid (a clone is refused before anything is set up), creates the sysfs directory
//! (before any recovery step, so it is there while recovery runs), reads the bucket tables
//! into the allocator, then runs recovery (`recovery.rs`).

use crate::allocator::Allocator;
use crate::allocator::DeviceBuckets;
use crate::append_vec::AppendVec;
use crate::bdev::{BlockDevice, Holder, IoBuf};
use crate::discard::Discard;
use crate::fs::{describe_option_error, mount_err, Fs, FsState, Member, Progress};
use crate::shared::assemble::{assemble, AssembleError, Probe};
use crate::shared::bucket_table::{
    decode_block, table_blocks, BucketEntry, BucketState, TableBlockId, TableError, TableHeaderDisk,
};
use crate::shared::layout::Field;
use crate::shared::mount_source::{self, SourceError};
use crate::shared::options::{MountOptions, Opt};
use crate::shared::superblock::{
    Member as GeoMember, Superblock, UuidFmt, BLOCK_SIZE, MAX_MEMBERS, SB_OFFSETS, SB_SIZE,
    TABLE_ENTRIES_PER_BLOCK,
};
use crate::sysfs::SysfsDir;
use crate::text::Text;
use crate::vfs::UuidClaim;
use core::{
    cell::RefCell,
    fmt::Write,
    sync::atomic::{AtomicBool, Ordering},
};
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
        let mounted = Self::open_members(source, opts)?;
        mounted.fs().read_bucket_tables(source)?;
        mounted.fs().recover(source)?;
        pr_info!(
            "{}: mounted {} ({} member(s), metadata_replicas={})\n",
            source,
            UuidFmt(&mounted.fs().uuid),
            mounted.fs().nr_members(),
            mounted.fs().live().replicas
        );
        Ok(mounted)
    }

    /// The part of [`Fs::open`] before the bucket tables: opens and assembles the members,
    /// claims the uuid, builds the filesystem and its sysfs directory. Not inlined, so its
    /// large frame (superblocks, probes) is gone before recovery, whose commit is the deepest
    /// stack of a mount, runs.
    #[inline(never)]
    fn open_members(source: &str, opts: &MountOptions) -> Result<KBox<Mounted>> {
        let nr = mount_source::check(source)
            .map_err(|e| mount_err!(source, EINVAL, "{}", describe_source_error(e)))?;
        let claim = KBox::new(0u8, GFP_KERNEL)?;
        let claim_holder = Holder::of(&claim);

        // Open every device and read its superblock.
        let mut devs = KVec::with_capacity(nr, GFP_KERNEL)?;
        let mut probes = KVec::with_capacity(nr, GFP_KERNEL)?;
        for path in source.split(':') {
            let cpath = CString::try_from_fmt(fmt!("{path}"))?;
            let dev = BlockDevice::open(&cpath, claim_holder)
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
            AssembleError::Conflict(a, b) => mount_err!(
                source,
                EINVAL,
                "{} and {} carry different member tables at the same superblock seq (a member \
                 add interrupted by a crash?): leave out the device that is not a member",
                path_of(a),
                path_of(b)
            ),
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

        // Room for every member a filesystem may have: members added while mounted are
        // appended (`member_add.rs`), nothing is moved.
        let members = AppendVec::new()?;
        let geometry = AppendVec::new()?;
        for m in 0..sb.nr_members as usize {
            let dev = devs[assembly.device_of[m]].take().ok_or(EINVAL)?;
            members.push(Member::new(dev)).map_err(|_| EINVAL)?;
            geometry.push(sb.members[m]).map_err(|_| EINVAL)?;
        }
        let fs = KBox::pin_init(
            try_pin_init!(Fs {
                uuid: sb.uuid,
                members,
                geometry,
                holder: claim_holder,
                tables_ready: AtomicBool::new(false),
                add_lock <- new_mutex!(()),
                state <- new_mutex!(FsState { sb, live }),
                alloc <- Allocator::new(sb.uuid, KVec::new()),
                progress: Progress::default(),
                discard <- Discard::new(MAX_MEMBERS),
                table_lock <- new_mutex!(()),
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
        let mounted = KBox::new(
            Mounted {
                sysfs,
                _claim: claim,
                _uuid: uuid_claim,
            },
            GFP_KERNEL,
        )?;

        Ok(mounted)
    }

    /// Reads every member's bucket table into the allocator, a window at a time
    /// ([`TableReader`]): nothing the size of the table is held besides the allocator's own
    /// per-bucket state.
    fn read_bucket_tables(&self, source: &str) -> Result {
        // Room for every member: a member added later (`member_add.rs`) is pushed without
        // allocating.
        let mut devices = KVec::with_capacity(MAX_MEMBERS, GFP_KERNEL)?;
        let mut reader = TableReader::new(self.uuid)?;
        // Members with refused table blocks, and how many.
        let mut bad_tables: KVec<(usize, u64)> = KVec::new();
        for (i, m) in self.geometry.iter().enumerate() {
            let name = self.members[i].name();
            if !DeviceBuckets::supported(m.nbuckets as u32) {
                return Err(mount_err!(
                    source,
                    EFBIG,
                    "{name}: {} buckets are more than bucketfs can account for in one member \
                     (format it with bigger buckets)",
                    m.nbuckets
                ));
            }
            reader.start(&self.members[i].dev, i as u32, m);
            let dev = {
                let cell = RefCell::new(&mut reader);
                DeviceBuckets::new(m.nbuckets as u32, m.first_bucket, name, |b| {
                    cell.try_borrow_mut()
                        .map_or(BucketState::Superblock, |mut r| r.state(b))
                })
            }?;
            // Blocks the allocator did not ask for are checked all the same.
            reader.check_rest();
            match reader.fault {
                None => {}
                Some(TableFault::Read(block, e)) => {
                    return Err(mount_err!(
                        source,
                        e,
                        "{name}: cannot read the bucket table (block {block})"
                    ))
                }
                // Metadata areas must be what the layout says: a table that called a journal
                // bucket free would let the allocator overwrite the journal.
                Some(TableFault::Metadata(b, st)) => {
                    return Err(mount_err!(
                        source,
                        EINVAL,
                        "{name}: bucket table says metadata bucket {b} is {}",
                        st.name()
                    ))
                }
            }
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

/// Table blocks read at a time.
const TABLE_WINDOW_BLOCKS: u64 = 256;

/// Why a bucket table was refused.
#[derive(Clone, Copy)]
enum TableFault {
    /// Reading the window at this block failed.
    Read(u64, Error),
    /// A metadata bucket has the wrong state.
    Metadata(u64, BucketState),
}

/// Reads one member's bucket table [`TABLE_WINDOW_BLOCKS`] blocks at a time, checking every
/// block of a window as it is read, and answers bucket states from the window. Buckets are
/// asked for in order, so each window is read once; a bucket outside the window reads its
/// window. After the first fault every state is `superblock` and nothing more is read.
struct TableReader<'a> {
    uuid: [u8; 16],
    buf: IoBuf,
    /// The member: its device, index and geometry.
    member: Option<(&'a BlockDevice, u32, &'a GeoMember)>,
    /// First block in the window, and blocks in it.
    first: u64,
    len: u64,
    /// Blocks `0 .. checked` have been checked.
    checked: u64,
    fault: Option<TableFault>,
    /// Blocks of the window that were refused (bit per block): their buckets are answered
    /// from the layout (metadata areas) or taken as in use (`data`), never free.
    bad_in_window: [u64; (TABLE_WINDOW_BLOCKS / 64) as usize],
    /// Refused blocks of this member: how many, and the first one with its reason.
    bad: u64,
    first_bad: Option<(u64, TableError)>,
}

impl<'a> TableReader<'a> {
    fn new(uuid: [u8; 16]) -> Result<Self> {
        Ok(TableReader {
            uuid,
            buf: IoBuf::new(TABLE_WINDOW_BLOCKS as usize * BLOCK_SIZE)?,
            member: None,
            first: 0,
            len: 0,
            checked: 0,
            fault: None,
            bad_in_window: [0; (TABLE_WINDOW_BLOCKS / 64) as usize],
            bad: 0,
            first_bad: None,
        })
    }

    /// Starts on member `index`'s table, on `dev`.
    fn start(&mut self, dev: &'a BlockDevice, index: u32, m: &'a GeoMember) {
        self.member = Some((dev, index, m));
        (self.first, self.len, self.checked, self.fault) = (0, 0, 0, None);
        (self.bad, self.first_bad) = (0, None);
    }

    /// The state of `bucket`.
    fn state(&mut self, bucket: u32) -> BucketState {
        let block = bucket as u64 / TABLE_ENTRIES_PER_BLOCK;
        if self.fault.is_none() && !(self.first..self.first + self.len).contains(&block) {
            self.load(block);
        }
        if self.fault.is_some() {
            return BucketState::Superblock;
        }
        let k = (block - self.first) as usize;
        if self.bad_in_window[k / 64] & (1 << (k % 64)) != 0 {
            return match self.member {
                Some((_, _, m)) if bucket < m.journal_start => BucketState::Superblock,
                Some((_, _, m)) if bucket < m.first_bucket => BucketState::Journal,
                _ => BucketState::Data,
            };
        }
        // The window's other blocks were checked whole when it was read: every entry decodes.
        let i = bucket as u64 % TABLE_ENTRIES_PER_BLOCK;
        let o = (block - self.first) as usize * BLOCK_SIZE + TableHeaderDisk::SIZE + i as usize * 4;
        self.buf
            .get(o..o + 4)
            .and_then(|b| BucketEntry::from_raw(u32::read(b)))
            .map_or(BucketState::Superblock, |e| e.state)
    }

    /// Reads and checks the window that starts at `block`; on a fault, records it.
    fn load(&mut self, block: u64) {
        let Some((dev, index, m)) = self.member else {
            return;
        };
        let blocks = table_blocks(m.nbuckets);
        if block >= blocks {
            return;
        }
        let n = TABLE_WINDOW_BLOCKS.min(blocks - block);
        self.len = 0;
        self.bad_in_window = [0; (TABLE_WINDOW_BLOCKS / 64) as usize];
        let off = m.bucket_offset(m.table_start as u64) + block * BLOCK_SIZE as u64;
        if let Err(e) = dev.read_part(off, &mut self.buf, n as usize * BLOCK_SIZE) {
            self.fault = Some(TableFault::Read(block, e));
            return;
        }
        for k in 0..n {
            let id = TableBlockId {
                uuid: self.uuid,
                member: index,
                block: (block + k) as u32,
            };
            let o = k as usize * BLOCK_SIZE;
            let first_bucket = (block + k) * TABLE_ENTRIES_PER_BLOCK;
            let fault = &mut self.fault;
            let decoded = decode_block(&id, m.nbuckets, &self.buf[o..o + BLOCK_SIZE], |i, e| {
                let b = first_bucket + i as u64;
                if b < m.first_bucket as u64 {
                    let want = if b < m.journal_start as u64 {
                        BucketState::Superblock
                    } else {
                        BucketState::Journal
                    };
                    if e.state != want && fault.is_none() {
                        *fault = Some(TableFault::Metadata(b, e.state));
                    }
                }
            });
            if let Err(e) = decoded {
                // A block that does not check out (torn by a crash, or damaged) is not
                // trusted, nor does it make the filesystem unmountable: its buckets are taken
                // from the layout or as in use (see `state`), and it is rewritten whole at the
                // next table write.
                self.bad_in_window[k as usize / 64] |= 1 << (k % 64);
                if (block + k) >= self.checked {
                    self.bad += 1;
                    self.first_bad.get_or_insert((block + k, e));
                }
            }
            if self.fault.is_some() {
                return;
            }
        }
        (self.first, self.len) = (block, n);
        if block == self.checked {
            self.checked = block + n;
        }
    }

    /// Reads and checks every block after the last one checked in order.
    fn check_rest(&mut self) {
        let Some((_, _, m)) = self.member else {
            return;
        };
        while self.fault.is_none() && self.checked < table_blocks(m.nbuckets) {
            let before = self.checked;
            self.load(before);
            if self.checked == before {
                break;
            }
        }
    }
}

// SPDX-License-Identifier: GPL-2.0

//! A mounted bucketfs: its members, superblock, options and bucket accounting.
//!
//! [`Fs::open`] turns a mount source into a filesystem: it opens every member, reads and
//! checks the superblocks, assembles the members, creates the sysfs directory (before any
//! recovery step, so it is there while recovery runs), then reads the bucket tables.

use crate::allocator::{describe_alloc_error, Allocator, DeviceBuckets, LiveInputs};
use crate::bdev::{BlockDevice, IoBuf};
use crate::btree::{Btree, BtreeStats, NodeIo};
use crate::discard::{DiscardCounters, DiscardCtl};
use crate::journal;
use crate::shared::alloc_policy::Watermark;
use crate::shared::assemble::{assemble, AssembleError, Probe};
use crate::shared::bucket_table::{
    decode_block, encode_block, entries_in_block, table_blocks, BucketEntry, BucketState,
    TableBlockId,
};
use crate::shared::mount_source::{self, SourceError};
use crate::shared::options::{MountOptions, Opt, OptError};
use crate::shared::superblock::{
    check_ptr, Member as MemberDesc, NodePtr, PtrError, Superblock, UuidFmt, BLOCK_SIZE, MAX_SEQ,
    SB_OFFSETS, SB_SIZE, TABLE_ENTRIES_PER_BLOCK,
};
use crate::sysfs::SysfsDir;
use crate::vec_ext::VecExt;
use crate::vfs::UuidClaim;
use core::{
    fmt::Write,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
};
use kernel::{
    alloc::{KBox, KVec},
    fmt, new_mutex,
    prelude::*,
    str::CString,
    sync::{Arc, Mutex},
    time::{ktime_ms_delta, Ktime},
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
    pub(crate) live: crate::shared::options::Options,
}

/// Progress and figures of recovery and of the btree, readable while recovery runs.
#[derive(Default)]
pub(crate) struct Progress {
    /// Keys in the journal to replay.
    pub(crate) replay_total: AtomicU64,
    /// Keys replayed so far.
    pub(crate) replay_done: AtomicU64,
    /// Journal bytes replayed (entries, headers included), and the time replay took.
    pub(crate) replay_bytes: AtomicU64,
    pub(crate) replay_us: AtomicU64,
    /// Btree keys, nodes, depth and digest, as of the last load or commit.
    pub(crate) keys: AtomicU64,
    pub(crate) nodes: AtomicU64,
    pub(crate) depth: AtomicU64,
    pub(crate) digest: AtomicU64,
}

impl Progress {
    fn set_stats(&self, s: &BtreeStats) {
        self.keys.store(s.keys, Ordering::Relaxed);
        self.nodes.store(s.nodes, Ordering::Relaxed);
        self.depth.store(s.depth, Ordering::Relaxed);
        self.digest.store(s.digest, Ordering::Relaxed);
    }
}

/// A mounted filesystem.
#[pin_data(PinnedDrop)]
pub(crate) struct Fs {
    /// Filesystem uuid.
    pub(crate) uuid: [u8; 16],
    /// Members, by member index.
    pub(crate) members: KVec<Member>,
    /// The member table (fixed while mounted).
    pub(crate) geometry: KVec<MemberDesc>,
    /// Mutable state.
    #[pin]
    pub(crate) state: Mutex<FsState>,
    /// Bucket accounting and allocation requests.
    #[pin]
    pub(crate) alloc: Allocator,
    /// Recovery progress and btree figures.
    pub(crate) progress: Progress,
    /// Starts and stops the discard worker.
    pub(crate) discard_ctl: Arc<DiscardCtl>,
    /// Discard counters, by member index.
    pub(crate) discard_counters: KVec<DiscardCounters>,
    /// Buckets of the committed btree's nodes, sorted: never discarded.
    #[pin]
    committed_nodes: Mutex<KVec<NodePtr>>,
    /// Buckets freed by journal entries that are not committed yet, sorted: never discarded
    /// before the commit (see `discard.rs`).
    #[pin]
    journal_pins: Mutex<KVec<NodePtr>>,
    /// Serialises bucket table writes (commits and the discard worker).
    #[pin]
    table_lock: Mutex<()>,
}

#[pinned_drop]
impl PinnedDrop for Fs {
    fn drop(self: Pin<&mut Self>) {
        // The worker must be done with the filesystem before any of it goes, on every path
        // that drops it (a mount failing before `Mounted` exists included).
        self.discard_ctl.stop();
    }
}

/// A filesystem as the VFS holds it: sysfs first, so it goes before the filesystem it shows.
pub(crate) struct Mounted {
    _sysfs: SysfsDir,
    pub(crate) fs: Pin<KBox<Fs>>,
    /// The holder cookie of the members' exclusive claim; lives as long as the claim.
    _claim: KBox<u8>,
    /// The uuid, claimed until everything above is gone (its sysfs directory included).
    _uuid: UuidClaim,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // Stop the worker before sysfs goes too (dropping `fs` would, later): kicks from
        // writes still in flight are ignored from here on.
        self.fs.discard_ctl.stop();
    }
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
        // One mount per uuid: a clone (every member copied) would collide with the mounted
        // filesystem in sysfs, and is refused here, before anything is set up.
        let mut holder = [0u8; 128];
        let csource = CString::try_from_fmt(fmt!("{source}"))?;
        let uuid_claim = UuidClaim::new(&sb.uuid, &csource, &mut holder).map_err(|e| {
            if e == EBUSY {
                let held = holder.split(|&b| b == 0).next().unwrap_or(&[]);
                let held = core::str::from_utf8(held).unwrap_or("?");
                pr_err!(
                    "{source}: filesystem {} is already mounted from {held}; a copy with the same uuid cannot be mounted beside it ({})\n",
                    UuidFmt(&sb.uuid),
                    e.to_errno()
                );
            }
            e
        })?;
        let live = opts.apply(&sb.options, sb.nr_members).map_err(|(opt, e)| {
            let mut msg = crate::text::Text::<128>::new();
            let value = opts.get(opt).unwrap_or(sb.options.get(opt));
            let mut num = crate::text::Text::<16>::new();
            let _ = write!(num, "{value}");
            describe_option_error(&mut msg, opt.desc().name, num.as_str(), e);
            mount_err!(source, EINVAL, "{}", msg.as_str())
        })?;
        let required = Opt::MetadataReplicasRequired;
        if live.get(required) < sb.options.get(required) && opts.get(required).is_none() {
            pr_info!(
                "{source}: metadata_replicas_required lowered to {} for this mount, to follow metadata_replicas\n",
                live.get(required)
            );
        }

        let mut members = KVec::with_capacity(sb.nr_members as usize, GFP_KERNEL)?;
        let mut geometry = KVec::with_capacity(sb.nr_members as usize, GFP_KERNEL)?;
        geometry.extend_from_slice(sb.member_table(), GFP_KERNEL)?;
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
        let discard_ctl = DiscardCtl::new()?;
        let mut discard_counters = KVec::with_capacity(sb.nr_members as usize, GFP_KERNEL)?;
        for _ in 0..sb.nr_members {
            discard_counters.push(DiscardCounters::default(), GFP_KERNEL)?;
        }
        let fs = KBox::pin_init(
            pin_init!(Fs {
                uuid: sb.uuid,
                members,
                geometry,
                state <- new_mutex!(FsState { sb, live }),
                alloc <- Allocator::new(sb.uuid, KVec::new()),
                progress: Progress::default(),
                discard_ctl,
                discard_counters,
                committed_nodes <- new_mutex!(KVec::new()),
                journal_pins <- new_mutex!(KVec::new()),
                table_lock <- new_mutex!(()),
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
                _uuid: uuid_claim,
            },
            GFP_KERNEL,
        )?;

        mounted.fs.read_bucket_tables(source)?;
        mounted.fs.recover(source)?;
        pr_info!(
            "{}: mounted {} ({} member(s), metadata_replicas={})\n",
            source,
            UuidFmt(&sb.uuid),
            sb.nr_members,
            mounted.fs.live().replicas
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

    /// The inputs an allocation request re-reads at every attempt.
    pub(crate) fn live(&self) -> LiveInputs {
        let st = self.state.lock();
        LiveInputs {
            replicas: st.live.get(Opt::MetadataReplicas),
            stuck_timeout_s: st.live.get(Opt::AllocatorStuckTimeout),
        }
    }

    /// Recovery: load and check the btree, reconcile bucket states with it, replay the
    /// journal into it, and commit.
    fn recover(&self, source: &str) -> Result {
        let sb = self.state.lock().sb;
        let mut btree = Btree::load(self, &sb.root)
            .map_err(|e| mount_err!(source, e, "cannot load the btree"))?;
        self.reconcile_buckets(&btree)?;
        self.set_committed_nodes(&btree)?;
        // The discard rule has its inputs now: kicks made so far are served. Discards run
        // during replay: a request parked on a starved device is unstuck as soon as its
        // need_discard buckets are freed.
        self.discard_rule_ready();
        self.progress.set_stats(&btree.stats());

        let mut members = KVec::with_capacity(self.members.len(), GFP_KERNEL)?;
        for (m, g) in self.members.iter().zip(self.geometry.iter()) {
            members.push((&m.dev, g), GFP_KERNEL)?;
        }
        let entries = journal::read_entries(&self.uuid, &members, sb.journal_seq)
            .map_err(|e| mount_err!(source, e, "cannot read the journal"))?;
        let total: u64 = entries.iter().map(|e| e.keys.len() as u64).sum();
        if entries.is_empty() {
            return Ok(());
        }
        let (first, last) = (entries[0].seq, entries[entries.len() - 1].seq);
        pr_info!(
            "{}: replaying {total} key(s) from {} journal entr{} (seq {first}..={last})\n",
            UuidFmt(&self.uuid),
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" }
        );
        self.progress.replay_total.store(total, Ordering::Relaxed);
        let start = Ktime::ktime_get();
        // Every bucket update first, then every key: the updates only take buckets away from
        // the allocator until the commit (see below), so applying them first changes no
        // outcome, and no node the replay allocates can land in a bucket an entry changes.
        // Buckets freed to `free` (sorted; false once a later entry changed them again).
        let mut frees: KVec<(NodePtr, bool)> = KVec::new();
        for e in entries.iter() {
            for u in e.updates.iter() {
                let p = NodePtr {
                    member: u.member,
                    bucket: u.bucket,
                };
                if check_ptr(&self.geometry, p).is_err()
                    || self.is_committed_node(u.member, u.bucket)
                {
                    return Err(mount_err!(
                        source,
                        EINVAL,
                        "journal entry {} changes member {} bucket {}, which it may not (metadata area, outside the device, or a btree node)",
                        e.seq,
                        u.member,
                        u.bucket
                    ));
                }
                if matches!(u.state, BucketState::Superblock | BucketState::Journal) {
                    return Err(mount_err!(
                        source,
                        EINVAL,
                        "journal entry {} makes member {} bucket {} {}",
                        e.seq,
                        u.member,
                        u.bucket,
                        u.state.name()
                    ));
                }
                // A bucket an entry frees (to `need_discard` or to `free`) is pinned before
                // its state changes, so the discard worker never sees it unpinned; one freed
                // to `free` is held as `need_discard` until the commit, so the allocator does
                // not hand it out either (see the rule in `discard.rs`).
                let key = (p.member, p.bucket);
                let pending = frees.binary_search_by_key(&key, |(q, _)| (q.member, q.bucket));
                let freed = u.state == BucketState::Free;
                match pending {
                    // The last entry to change a bucket says what it is after the commit.
                    Ok(i) => frees[i].1 = freed,
                    Err(i) if freed => frees.insert(i, (p, true))?,
                    Err(_) => {}
                }
                let state = if freed {
                    BucketState::NeedDiscard
                } else {
                    u.state
                };
                if matches!(u.state, BucketState::NeedDiscard | BucketState::Free) {
                    self.pin_for_journal(p)?;
                }
                if let Some(d) = self.alloc.state.lock().devices.get_mut(u.member as usize) {
                    d.set_state(u.bucket, state);
                }
            }
        }
        for e in entries.iter() {
            for k in e.keys.iter() {
                btree
                    .insert(
                        *k,
                        |n, out| self.alloc.alloc_nodes(n, Watermark::Normal, || self.live(), out),
                        |unused| self.alloc.release_nodes(unused),
                    )
                    .map_err(|err| {
                        mount_err!(
                            source,
                            err,
                            "journal replay stopped after {} of {total} key(s): btree node allocation {}; nothing was written, the mount can be retried",
                            self.progress.replay_done.load(Ordering::Relaxed),
                            describe_alloc_error(err)
                        )
                    })?;
                self.progress.replay_done.fetch_add(1, Ordering::Relaxed);
            }
        }
        // `last` is at most `MAX_ENTRY_SEQ` (the journal reader refuses entries above it), so
        // `journal_seq` stays one the superblock decoder accepts.
        self.commit(&mut btree, last.saturating_add(1), &frees)
            .map_err(|e| mount_err!(source, e, "cannot commit the replayed btree"))?;
        let us = (Ktime::ktime_get().to_ns() - start.to_ns()).max(0) as u64 / 1000;
        self.progress.replay_us.store(us, Ordering::Relaxed);
        let bytes: u64 = entries
            .iter()
            .map(|e| e.blocks as u64 * BLOCK_SIZE as u64)
            .sum();
        self.progress.replay_bytes.store(bytes, Ordering::Relaxed);
        let stats = btree.stats();
        self.progress.set_stats(&stats);
        pr_info!(
            "{}: replayed {total} key(s) in {} ms; btree has {} key(s) in {} node(s), {} level(s)\n",
            UuidFmt(&self.uuid),
            ktime_ms_delta(Ktime::ktime_get(), start),
            stats.keys,
            stats.nodes,
            stats.depth
        );
        Ok(())
    }

    /// Buckets the btree uses are `btree`; `btree` buckets it does not use (left by a commit
    /// that did not finish, or freed by one whose bucket table write did not) need discard.
    fn reconcile_buckets(&self, btree: &Btree) -> Result {
        let mut st = self.alloc.state.lock();
        let mut used: KVec<KVec<u32>> = KVec::new();
        for _ in 0..st.devices.len() {
            used.push(KVec::new(), GFP_KERNEL)?;
        }
        let mut oom = false;
        btree.for_each_bucket(|p| {
            if let Some(v) = used.get_mut(p.member as usize) {
                oom |= v.push(p.bucket, GFP_KERNEL).is_err();
            }
        });
        if oom {
            return Err(ENOMEM);
        }
        for ((d, used), g) in st
            .devices
            .iter_mut()
            .zip(used.iter_mut())
            .zip(self.geometry.iter())
        {
            used.sort_unstable();
            // Metadata areas are never `btree` or `need_discard`: the loaded tree's pointers
            // were checked to lie above them, and these buckets are not looked at.
            for b in g.first_bucket..d.nbuckets() {
                let in_use = used.binary_search(&b).is_ok();
                match d.state(b) {
                    Some(BucketState::Btree) if !in_use => d.set_state(b, BucketState::NeedDiscard),
                    Some(s) if in_use && s != BucketState::Btree => {
                        d.set_state(b, BucketState::Btree)
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Writes the changed btree nodes, points the superblocks at the new root with the
    /// journal replayed up to `journal_next`, then frees the old nodes' buckets and the
    /// buckets the replayed entries freed to `free` (`frees`, held until now), and persists
    /// the bucket tables.
    fn commit(&self, btree: &mut Btree, journal_next: u64, frees: &[(NodePtr, bool)]) -> Result {
        let required = {
            let st = self.state.lock();
            // The superblock this commit will write must be one the decoder accepts: check
            // its sequence numbers before any node is written.
            let mut next = st.sb;
            next.seq = st.sb.seq.saturating_add(1);
            next.journal_seq = journal_next;
            next.root.node_seq = btree.seq().saturating_add(1);
            if let Err(e) = next.validate() {
                pr_err!(
                    "{}: cannot commit: the next superblock would be refused ({}: superblock seq {}, journal_seq {}, root node seq {}, the limit is {})\n",
                    UuidFmt(&self.uuid),
                    e.field(),
                    next.seq,
                    next.journal_seq,
                    next.root.node_seq,
                    MAX_SEQ
                );
                return Err(EINVAL);
            }
            st.live.get(Opt::MetadataReplicasRequired)
        };
        let root = btree.write_dirty(self, required)?;
        self.update_superblock(|sb| {
            sb.root = root;
            sb.journal_seq = journal_next;
            Ok(())
        })?;
        {
            let mut a = self.alloc.state.lock();
            let geometry = &self.geometry;
            btree.committed(&root, |p| {
                // Only the loaded tree's checked pointers and the allocator's buckets come
                // here; a metadata bucket is never made `need_discard`.
                if check_ptr(geometry, p).is_ok() {
                    if let Some(d) = a.devices.get_mut(p.member as usize) {
                        d.set_state(p.bucket, BucketState::NeedDiscard);
                    }
                }
            });
            // The entries that freed these are in the btree now: the buckets are free. One
            // that is no longer `need_discard` was taken by something else since: left alone.
            for (p, _) in frees.iter().filter(|(_, freed)| *freed) {
                if let Some(d) = a.devices.get_mut(p.member as usize) {
                    if d.state(p.bucket) == Some(BucketState::NeedDiscard) {
                        d.set_state(p.bucket, BucketState::Free);
                    }
                }
            }
        }
        self.set_committed_nodes(btree)?;
        self.persist_bucket_tables()?;
        // The entries that freed pinned buckets are in the btree now.
        self.journal_pins.lock().clear();
        // The old nodes' buckets wait for discard now.
        self.kick_discards();
        Ok(())
    }

    /// Records the buckets of the committed btree's nodes.
    fn set_committed_nodes(&self, btree: &Btree) -> Result {
        let mut v = KVec::new();
        let mut oom = false;
        btree.for_each_bucket(|p| oom |= v.push(p, GFP_KERNEL).is_err());
        if oom {
            return Err(ENOMEM);
        }
        v.sort_unstable_by_key(|p| (p.member, p.bucket));
        *self.committed_nodes.lock() = v;
        Ok(())
    }

    /// Pins a bucket freed by a journal entry being replayed, until the commit.
    fn pin_for_journal(&self, p: NodePtr) -> Result {
        let mut pins = self.journal_pins.lock();
        if let Err(i) = pins.binary_search_by_key(&(p.member, p.bucket), |q| (q.member, q.bucket)) {
            pins.insert(i, p)?;
        }
        Ok(())
    }

    /// Why `bucket` of `member` must not be discarded now, if it must not: the committed btree
    /// has a node in it, or a journal entry not yet committed freed it.
    pub(crate) fn discard_forbidden(&self, member: u32, bucket: u32) -> Option<&'static str> {
        if self.is_committed_node(member, bucket) {
            return Some("holds a committed btree node");
        }
        let key = (member, bucket);
        if self
            .journal_pins
            .lock()
            .binary_search_by_key(&key, |p| (p.member, p.bucket))
            .is_ok()
        {
            return Some("was freed by a journal entry not committed yet");
        }
        None
    }

    /// Whether the committed btree has a node copy in `bucket` of `member`.
    pub(crate) fn is_committed_node(&self, member: u32, bucket: u32) -> bool {
        let key = (member, bucket);
        self.committed_nodes
            .lock()
            .binary_search_by_key(&key, |p| (p.member, p.bucket))
            .is_ok()
    }

    /// Persists every member's bucket table from the allocator's bucket states (the commit:
    /// the states changed by replayed journal entries are committed with it).
    fn persist_bucket_tables(&self) -> Result {
        let _serialised = self.table_lock.lock();
        let seq = self.state.lock().sb.seq;
        (0..self.geometry.len()).try_for_each(|m| self.write_bucket_table(m, seq, true).map(|_| ()))
    }

    /// Persists member `m`'s bucket table only (the discard worker), unless a replay has
    /// changed bucket states that no commit has made durable yet: the table must not say a
    /// bucket is free before the superblock says the entry that freed it is in the btree, or
    /// a crash would let the next mount discard it before replaying that entry. Returns
    /// whether it wrote; when it did not, the commit writes the table.
    pub(crate) fn persist_bucket_table(&self, m: usize) -> Result<bool> {
        let _serialised = self.table_lock.lock();
        let seq = self.state.lock().sb.seq;
        self.write_bucket_table(m, seq, false)
    }

    /// Writes member `i`'s bucket table from the allocator's bucket states; with
    /// `while_replaying` false, writes nothing (`Ok(false)`) while journal pins are held.
    fn write_bucket_table(&self, i: usize, seq: u64, while_replaying: bool) -> Result<bool> {
        let m = self.geometry.get(i).ok_or(EINVAL)?;
        let blocks = table_blocks(m.nbuckets);
        let mut buf = IoBuf::new(blocks as usize * BLOCK_SIZE)?;
        {
            let a = self.alloc.state.lock();
            // Under the allocator lock: a replayed update pins its bucket before it changes
            // the state, so no pin means no uncommitted journal state in this snapshot. Lock
            // order: allocator state, then journal pins (as in the discard worker's run search).
            if !while_replaying && !self.journal_pins.lock().is_empty() {
                return Ok(false);
            }
            let d = &a.devices[i];
            let mut entries = KVec::with_capacity(TABLE_ENTRIES_PER_BLOCK as usize, GFP_KERNEL)?;
            for block in 0..blocks {
                entries.clear();
                let first = (block * TABLE_ENTRIES_PER_BLOCK) as u32;
                for b in first..first + entries_in_block(m.nbuckets, block) as u32 {
                    let state = d.state(b).unwrap_or(BucketState::Superblock);
                    entries.push(BucketEntry { state, gen: 0 }, GFP_KERNEL)?;
                }
                let id = TableBlockId {
                    uuid: self.uuid,
                    member: i as u32,
                    block: block as u32,
                };
                let o = block as usize * BLOCK_SIZE;
                encode_block(&id, seq, &entries, &mut buf[o..o + BLOCK_SIZE]);
            }
        }
        self.members[i]
            .dev
            .write(m.bucket_offset(m.table_start as u64), &buf, true)?;
        Ok(true)
    }

    /// Sets option `opt` at runtime: checked against both the live and the stored options,
    /// then persisted in every member's superblock. On any error nothing changes.
    pub(crate) fn set_option(&self, opt: Opt, value: u32) -> Result<(), (Error, Option<OptError>)> {
        self.set_options(&MountOptions::one(opt, value))
            .map_err(|(e, why)| (e, why.map(|(_, why)| why)))
    }

    /// Sets every option given in `changes` at runtime as one change (a remount may give
    /// several), as [`Fs::set_option`] does one; `Err` names the option blamed.
    pub(crate) fn set_options(
        &self,
        changes: &MountOptions,
    ) -> Result<(), (Error, Option<(Opt, OptError)>)> {
        let mut st = self.state.lock();
        let members = st.sb.nr_members;
        let mut live = st.live;
        let mut sb = st.sb;
        live.set_all(changes, members)
            .map_err(|e| (EINVAL, Some(e)))?;
        sb.options
            .set_all(changes, members)
            .map_err(|e| (EINVAL, Some(e)))?;
        self.write_next_superblock(&mut st, sb)
            .map_err(|e| (e, None))?;
        st.live = live;
        drop(st);
        // Parked allocations rebuild their inputs from the new value; a change of `discard`
        // may have made discards possible.
        self.alloc.wake_all();
        self.kick_discards();
        Ok(())
    }

    /// Turns discards on member `m` on or off; persisted in the member table.
    pub(crate) fn set_member_discard(&self, m: usize, on: bool) -> Result {
        self.update_superblock(|sb| {
            let member = sb.members.get_mut(m).ok_or(EINVAL)?;
            member.flags = if on {
                member.flags | crate::shared::superblock::MEMBER_DISCARD
            } else {
                member.flags & !crate::shared::superblock::MEMBER_DISCARD
            };
            Ok(())
        })?;
        self.kick_discards();
        Ok(())
    }

    /// Changes the superblock with `change` and persists it; on any error nothing changes.
    fn update_superblock(&self, change: impl FnOnce(&mut Superblock) -> Result) -> Result {
        let mut st = self.state.lock();
        let mut sb = st.sb;
        change(&mut sb)?;
        self.write_next_superblock(&mut st, sb)
    }

    /// Writes `sb` as the next superblock (its sequence number one past the current one) and,
    /// once every copy is written, makes it the current one.
    fn write_next_superblock(&self, st: &mut FsState, mut sb: Superblock) -> Result {
        sb.seq = st.sb.seq + 1;
        self.write_superblocks(&sb)?;
        st.sb = sb;
        Ok(())
    }

    /// Writes `sb` to every member: all primaries first, then all backups, so a crash
    /// leaves one good copy everywhere.
    fn write_superblocks(&self, sb: &Superblock) -> Result {
        let mut buf = IoBuf::new(SB_SIZE)?;
        // Never write what the decoder would refuse: every copy is decoded before any is
        // written, and a refusal fails the write with nothing written.
        for i in 0..self.members.len() {
            let mut copy = *sb;
            copy.member_index = i as u32;
            copy.encode(&mut buf);
            if let Err(e) = Superblock::decode(&buf) {
                pr_err!(
                    "{}: refusing to write a superblock the decoder would refuse ({}; seq {}, journal_seq {})\n",
                    UuidFmt(&self.uuid),
                    e.field(),
                    sb.seq,
                    sb.journal_seq
                );
                return Err(EINVAL);
            }
        }
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
        let a = self.alloc.state.lock();
        let (mut total, mut empty, mut free) = (0, 0, 0);
        for (m, d) in self.geometry.iter().zip(a.devices.iter()) {
            let per = m.bucket_size as u64 / BLOCK_SIZE as u64;
            let c = &d.counts;
            total += (m.nbuckets - m.first_bucket as u64) * per;
            free += c[BucketState::Free as usize] * per;
            empty += (c[BucketState::Free as usize] + c[BucketState::NeedDiscard as usize]) * per;
        }
        (total, empty, free)
    }
}

impl NodeIo for Fs {
    fn check_ptr(&self, ptr: NodePtr) -> core::result::Result<(), PtrError> {
        check_ptr(&self.geometry, ptr)
    }

    fn read_node(&self, ptr: NodePtr, buf: &mut IoBuf) -> Result {
        check_ptr(&self.geometry, ptr).map_err(|_| EINVAL)?;
        let m = self.geometry.get(ptr.member as usize).ok_or(EINVAL)?;
        self.members[ptr.member as usize]
            .dev
            .read(m.bucket_offset(ptr.bucket as u64), buf)
    }

    fn write_node(&self, ptr: NodePtr, buf: &IoBuf) -> Result {
        // Never a node into a metadata area or past the device.
        check_ptr(&self.geometry, ptr).map_err(|_| EINVAL)?;
        let m = self.geometry.get(ptr.member as usize).ok_or(EINVAL)?;
        self.members[ptr.member as usize]
            .dev
            .write(m.bucket_offset(ptr.bucket as u64), buf, false)
    }

    fn uuid(&self) -> [u8; 16] {
        self.uuid
    }
}

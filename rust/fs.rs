// SPDX-License-Identifier: GPL-2.0

//! A mounted bucketfs: the [`Fs`] that ties its concepts together.
//!
//! [`Fs`] holds the members, the superblock and the options in force ([`FsState`]), the
//! allocator, the discard state and the recovery figures. What is done with them lives in one
//! file per concept, each an `impl Fs` block or a type of its own:
//!
//! | file                 | concept                                                          |
//! |----------------------|------------------------------------------------------------------|
//! | `mount.rs`           | `Mounted`; opening and assembling the members, reading the       |
//! |                      | superblocks and bucket tables, the uuid claim, sysfs; `Fs::open` |
//! | `recovery.rs`        | loading the btree, reconciling bucket states, journal replay     |
//! | `commit.rs`          | node, superblock and bucket table writes; the commit             |
//! | `runtime_options.rs` | option writes while mounted (sysfs `options/`, remount)          |
//! | `discard.rs`         | the discard worker and its own state (controller, counters, the  |
//! |                      | rule's inputs: committed nodes and journal pins)                 |
//! | `heal.rs`            | degraded btree nodes and their re-replication (a pass of the     |
//! |                      | discard worker)                                                  |
//! | `allocator.rs`       | bucket states and allocation requests, behind methods            |
//! | `member_add.rs`      | a member added while mounted (`device_add`)                      |
//! | `member_remove.rs`   | a member emptied and removed while mounted (`dev-N/evacuate`,    |
//! |                      | `dev-N/remove`)                                                  |
//! | `node_move.rs`       | rewriting committed nodes' copies after the mount                |
//! | `journal_writer.rs`  | the mounted tree ([`Tree`]) and the runtime journal's writes     |
//! | `transaction.rs`     | transactions on the mounted tree; commits of it; the flush timer |
//! | `namespace.rs`       | the namespace operations of `shared/namespace.rs` on the tree    |
//! | `timer.rs`           | a delayed call on the module's workqueue (the journal flush)     |
//!
//! Imports (`use crate::…`; `shared` and the leaves `text`, `vec_ext`, `append_vec`, `glue`
//! left out), where `a -> b` reads "a imports b":
//!
//! ```text
//! allocator        -> closure             (its child allocator/report.rs: the report text)
//! btree            -> allocator, bdev
//! discard          -> allocator, bdev, btree
//! journal          -> bdev
//! journal_writer   -> bdev, btree
//! fs               -> allocator, bdev, btree, discard, heal, journal_writer, timer
//! commit           -> fs, allocator, bdev, btree, journal
//! heal             -> fs, allocator, btree
//! recovery         -> fs, allocator, btree, journal
//! transaction      -> fs, allocator, btree, journal, journal_writer, timer
//! namespace        -> fs, btree, transaction
//! runtime_options  -> fs, allocator, commit
//! member_add       -> fs, allocator, bdev, commit, vfs
//! node_move        -> fs
//! member_remove    -> fs
//! fs_sysfs         -> fs, sysfs
//! fs_vfs           -> fs, mount, vfs
//! mount            -> fs, allocator, bdev, closure, commit, discard, heal, sysfs, vfs
//! ```
//!
//! `discard.rs` does not know [`Fs`]: the worker sees it through [`DiscardHost`], which `Fs`
//! implements here. `commit.rs`, `recovery.rs` and `runtime_options.rs` import `fs` and none of
//! each other; their `impl Fs` methods call one another as methods of [`Fs`] (recovery ends in
//! `Fs::commit`, an option write in `Fs::write_next_superblock`). That is a DAG but for one
//! pair: `fs.rs` holds the re-replication state (`Heal`), declared in `heal.rs` next to the
//! pass, an `impl Fs` block; it goes once `Heal` has a file of its own.

use crate::allocator::{Allocator, LiveCell, LiveInputs};
use crate::append_vec::AppendVec;
use crate::bdev::{BlockDevice, Holder};
use crate::btree::BtreeStats;
use crate::discard::{self, Discard, DiscardHost};
use crate::heal::Heal;
use crate::journal_writer::Tree;
use crate::shared::alloc_policy::Watermark;
use crate::shared::options::{Opt, OptError, Options};
use crate::shared::superblock::{Member as MemberDesc, Superblock, BLOCK_SIZE, MAX_MEMBERS};
use crate::timer::{Timer, TimerTarget};
use core::{
    pin::Pin,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};
use kernel::{alloc::KBox, prelude::*, sync::Mutex};

/// One member device of a mounted filesystem.
pub(crate) struct Member {
    /// The open device; `None` for a member missing from a degraded mount's source.
    device: Option<BlockDevice>,
    /// Its name (`vda`), for sysfs and messages.
    name: [u8; 32],
    name_len: usize,
    /// Removed (`member_remove.rs`): nothing is read from it, written to it or allocated on
    /// it any more. Set once, never cleared; a device removed while mounted stays open (and
    /// claimed) until the unmount, since readers borrow it without a reference count.
    removed: AtomicBool,
}

impl Member {
    /// Member device `dev`, named as the block layer names it.
    pub(crate) fn new(dev: BlockDevice) -> Member {
        let mut name = [0u8; 32];
        let name_len = dev.name(&mut name);
        Member {
            device: Some(dev),
            name,
            name_len,
            removed: AtomicBool::new(false),
        }
    }

    /// A member missing from a degraded mount's source: every I/O to it fails with `ENXIO`.
    pub(crate) fn missing() -> Member {
        let mut name = [0u8; 32];
        name[..7].copy_from_slice(b"missing");
        Member {
            device: None,
            name,
            name_len: 7,
            removed: AtomicBool::new(false),
        }
    }

    /// A member removed before this mount (its table entry is [`MemberDesc::removed`]).
    pub(crate) fn removed() -> Member {
        let mut name = [0u8; 32];
        name[..7].copy_from_slice(b"removed");
        Member {
            device: None,
            name,
            name_len: 7,
            removed: AtomicBool::new(true),
        }
    }

    /// Whether the member is removed (before this mount, or while mounted).
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Marks the member removed (once its removal is in every remaining superblock).
    pub(crate) fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }

    /// The open device; `ENXIO` for a missing member.
    pub(crate) fn dev(&self) -> Result<&BlockDevice> {
        self.device.as_ref().ok_or(ENXIO)
    }

    /// Whether the member is missing (a degraded mount; a removed member is not missing).
    pub(crate) fn is_missing(&self) -> bool {
        self.device.is_none() && !self.is_removed()
    }

    /// The device name.
    pub(crate) fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }
}

/// What may change while mounted; guarded by [`Fs::state`].
pub(crate) struct FsState {
    /// The superblock as persisted (options here are the stored ones). On the heap: it is
    /// large, and a new one is built there and swapped in (see `Fs::write_next_superblock`).
    pub(crate) sb: KBox<Superblock>,
    /// The options in force: stored ones, overridden by mount options and runtime writes.
    pub(crate) live: Options,
    /// Mounted read-only (`SB_RDONLY`): nothing is written to any member; option writes
    /// change the options in force only; the discard worker is paused.
    pub(crate) read_only: bool,
    /// Why this mount cannot go read-write (`norecovery`, `degraded`, a journal replayed in
    /// memory only), if it cannot.
    pub(crate) rw_refused: Option<&'static str>,
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
    /// The replay's parts: reading and decoding the journal; applying its bucket updates and
    /// keys to the btree; the commit; and the node block writes (copies included) it made.
    pub(crate) read_us: AtomicU64,
    pub(crate) apply_us: AtomicU64,
    pub(crate) commit_us: AtomicU64,
    pub(crate) nodes_written: AtomicU64,
    /// What became of the journal: [`REPLAY_COMMITTED`], [`REPLAY_IN_MEMORY`] or
    /// [`REPLAY_SKIPPED`]; and its entries and their sequence numbers (first, last).
    pub(crate) replay_mode: AtomicU64,
    pub(crate) journal_entries: AtomicU64,
    pub(crate) journal_first_seq: AtomicU64,
    pub(crate) journal_last_seq: AtomicU64,
    /// Btree keys, nodes, depth and digest, as of the last load or commit.
    pub(crate) keys: AtomicU64,
    pub(crate) nodes: AtomicU64,
    pub(crate) depth: AtomicU64,
    pub(crate) digest: AtomicU64,
    /// Namespace keys in the btree.
    pub(crate) namespace_keys: AtomicU64,
}

/// [`Progress::replay_mode`]: the journal was replayed and committed (or was empty).
pub(crate) const REPLAY_COMMITTED: u64 = 0;
/// [`Progress::replay_mode`]: replayed into the in-memory btree only (a read-only mount).
pub(crate) const REPLAY_IN_MEMORY: u64 = 1;
/// [`Progress::replay_mode`]: not replayed (`norecovery`).
pub(crate) const REPLAY_SKIPPED: u64 = 2;

impl Progress {
    pub(crate) fn set_stats(&self, s: &BtreeStats) {
        self.keys.store(s.keys, Ordering::Relaxed);
        self.nodes.store(s.nodes, Ordering::Relaxed);
        self.depth.store(s.depth, Ordering::Relaxed);
        self.digest.store(s.digest, Ordering::Relaxed);
        self.namespace_keys
            .store(s.namespace_keys, Ordering::Relaxed);
    }
}

/// A mounted filesystem.
#[pin_data(PinnedDrop)]
pub(crate) struct Fs {
    /// Filesystem uuid.
    pub(crate) uuid: [u8; 16],
    /// Members, by member index. Grows while mounted (`device_add`, `member_add.rs`) and
    /// never shrinks: an index below a length once read stays valid. A member is appended
    /// here before its `geometry` entry, so every index below `geometry.len()` (the count
    /// [`Fs::nr_members`] gives) has both.
    pub(crate) members: AppendVec<Member, MAX_MEMBERS>,
    /// The member table, as `members` (an entry never changes once appended).
    pub(crate) geometry: AppendVec<MemberDesc, MAX_MEMBERS>,
    /// The holder of the members' exclusive claim, to open a member added while mounted.
    pub(crate) holder: Holder,
    /// Set once the bucket tables are read into the allocator: a member may be added from then
    /// on (before, `device_add` is refused with `EAGAIN`).
    pub(crate) tables_ready: AtomicBool,
    /// Serialises member adds and removals.
    #[pin]
    pub(crate) add_lock: Mutex<()>,
    /// Set once recovery has finished (the journal replayed and committed, or the mount is
    /// read-only): the btree on disk is the whole tree, and may be rewritten after the mount.
    pub(crate) recovered: AtomicBool,
    /// Set when a journal write, a commit of the mounted tree or a change of the tree in memory
    /// failed half-way (`transaction.rs`): nothing is written any more (metadata changes and
    /// `sync` fail with `EIO`), so the disk keeps the last durable state, which the next mount
    /// recovers.
    pub(crate) shut_down: AtomicBool,
    /// Serialises btree rewrites after the mount (`node_move.rs`: evacuation; the removal's
    /// emptiness check).
    #[pin]
    pub(crate) rewrite_lock: Mutex<()>,
    /// Mutable state.
    #[pin]
    pub(crate) state: Mutex<FsState>,
    /// The allocation inputs of `state.live`: republished under the `state` lock whenever
    /// `live` changes, so [`Fs::live`] reads them without the lock.
    pub(crate) live_inputs: LiveCell,
    /// Bucket accounting and allocation requests.
    #[pin]
    pub(crate) alloc: Allocator,
    /// Recovery progress and btree figures.
    pub(crate) progress: Progress,
    /// The discard worker's state: controller, counters, the rule's inputs.
    #[pin]
    pub(crate) discard: Discard,
    /// Serialises bucket table writes (commits and the discard worker).
    #[pin]
    pub(crate) table_lock: Mutex<()>,
    /// Degraded btree nodes and their re-replication (`heal.rs`).
    #[pin]
    pub(crate) heal: Heal,
    /// The btree and the runtime journal, once recovery has loaded them (`transaction.rs`).
    /// Lock order: `rewrite_lock`, then this, then `state`.
    #[pin]
    pub(crate) tree: Mutex<Option<Tree>>,
    /// The next inode number to give (`Fs::new_ino`).
    pub(crate) next_ino: AtomicU64,
    /// Inode keys in the tree (changed by transactions that end well, under the tree lock).
    pub(crate) inodes: AtomicU64,
    /// Writes the open journal entry a while after a transaction filled it
    /// ([`crate::transaction::JOURNAL_FLUSH_MS`]); made with the tree, dropped before the
    /// filesystem goes.
    #[pin]
    pub(crate) flusher: Mutex<Option<Timer>>,
}

#[pinned_drop]
impl PinnedDrop for Fs {
    fn drop(self: Pin<&mut Self>) {
        // The worker must be done with the filesystem before any of it goes, on every path
        // that drops it (a mount failing before `Mounted` exists included).
        self.discard.stop();
        // The same for the journal flush timer (its drop waits for a running flush).
        // Out of the lock before it is dropped: a transaction arms the timer under the tree
        // lock, and the drop waits for a running flush, which takes the tree lock.
        let timer = self.flusher.lock().take();
        drop(timer);
    }
}

/// Prints a mount error naming the source and returns `err` (mounting and recovery).
macro_rules! mount_err {
    ($source:expr, $err:expr, $($arg:tt)*) => {{
        pr_err!("{}: {} ({})\n", $source, format_args!($($arg)*), $err.to_errno());
        $err
    }};
}
pub(crate) use mount_err;

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
    /// Members whose device and geometry are both published (see [`Fs::members`]).
    pub(crate) fn nr_members(&self) -> usize {
        self.geometry.len()
    }

    /// Asks the discard worker to look for `need_discard` buckets (see [`discard::kick`]).
    pub(crate) fn kick_discards(&self) {
        discard::kick(self);
    }

    /// The discard rule's inputs are present: serves the kicks made so far (see
    /// [`discard::rule_ready`]).
    pub(crate) fn discard_rule_ready(&self) {
        discard::rule_ready(self);
    }

    /// Sizes for statfs, in 4 KiB blocks of file data (each counted once per
    /// `data_replicas` copies): all allocatable buckets, the empty ones (free, or waiting for
    /// discard) plus the room left in the data write points, and what a data allocation may
    /// take (free beyond the data watermark, plus that room).
    pub(crate) fn statfs(&self) -> (u64, u64, u64) {
        let bucket_blocks = |m: usize| {
            self.geometry
                .get(m)
                .map_or(0, |g| g.bucket_size / BLOCK_SIZE as u32)
        };
        let room = self
            .tree
            .lock()
            .as_ref()
            .map_or(0, |t| t.data.point_room(bucket_blocks));
        let (mut total, mut empty, mut free) = (0, room, room);
        // One look at every device, so the three figures agree.
        self.alloc.inspect(|devices| {
            let members = self.members.iter().zip(self.geometry.iter());
            for ((_, m), d) in members
                .zip(devices.iter())
                .filter(|((m, _), _)| !m.is_removed())
            {
                let per = m.bucket_size as u64 / BLOCK_SIZE as u64;
                let s = d.snapshot();
                total += (m.nbuckets - m.first_bucket as u64) * per;
                free += s.available(Watermark::Normal) * per;
                empty += (s.free + s.need_discard) * per;
            }
        });
        let replicas = (self.state.lock().live.get(Opt::DataReplicas) as u64).max(1);
        (total / replicas, empty / replicas, free / replicas)
    }

    /// The inputs an allocation request re-reads at every attempt: from the live options,
    /// as last published in [`Fs::live_inputs`] (one atomic load, no lock).
    pub(crate) fn live(&self) -> LiveInputs {
        self.live_inputs.read()
    }
}

// SAFETY: An `Fs` is pinned (it only exists as `Pin<KBox<Fs>>`, built by `Fs::open`), and its
// `PinnedDrop` drops the timer in `flusher` (the only one made for it, by `Fs::install_tree`)
// before any field goes.
unsafe impl TimerTarget for Fs {
    fn fire(&self) {
        if let Err(e) = self.periodic_flush() {
            if self.shut_down.load(Ordering::Acquire) {
                return;
            }
            pr_err!(
                "{}: journal flush failed ({}); tried again in {} ms\n",
                crate::shared::superblock::UuidFmt(&self.uuid),
                e.to_errno(),
                crate::transaction::JOURNAL_FLUSH_MS
            );
            if let Some(t) = self.flusher.lock().as_ref() {
                t.arm(crate::transaction::JOURNAL_FLUSH_MS);
            }
        }
    }
}

// SAFETY: An `Fs` is pinned (it only exists as `Pin<KBox<Fs>>`, built by `Fs::open`), and its
// `PinnedDrop` calls `Discard::stop` on `discard` before any field goes.
unsafe impl DiscardHost for Fs {
    fn host_uuid(&self) -> &[u8; 16] {
        &self.uuid
    }

    fn discard_state(&self) -> &Discard {
        &self.discard
    }

    fn allocator(&self) -> &Allocator {
        &self.alloc
    }

    fn nr_members(&self) -> usize {
        Fs::nr_members(self)
    }

    fn member(&self, m: usize) -> Option<(&MemberDesc, &BlockDevice, &str)> {
        let member = self.members.get(m)?;
        // A removed member is not discarded (nothing is written to it).
        if member.is_removed() {
            return None;
        }
        Some((self.geometry.get(m)?, member.dev().ok()?, member.name()))
    }

    fn discard_allowed(&self, m: usize) -> bool {
        let st = self.state.lock();
        st.live.get(crate::shared::options::Opt::Discard) != 0
            && st.sb.members.get(m).is_some_and(|d| d.discard())
    }

    fn persist_table(&self, m: usize) -> Result<bool> {
        self.persist_bucket_table(m)
    }

    fn after_drain(&self) {
        self.heal_pass();
    }
}

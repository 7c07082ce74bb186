// SPDX-License-Identifier: GPL-2.0

//! Degraded btree nodes and their re-replication (`metadata_degraded_writes`).
//!
//! A node is degraded when it has fewer copies than the `metadata_replicas` in force; the
//! pointer that names it (the parent's child entry, or the superblock's root) says how many it
//! has, so that count is the on-disk record (`Documentation/on-disk-format.md`, "Degraded
//! nodes"). Such nodes come from a parked allocation that `metadata_degraded_writes` let
//! proceed with fewer copies (`allocator.rs`), from copies whose write failed or that the load
//! dropped, or from a `metadata_replicas` raised since they were written.
//!
//! At the end of recovery the committed tree's degraded nodes are listed
//! (`internal/degraded_nodes`) and, with the option off, reported once. The re-replication
//! pass runs on the background worker of `discard.rs` (the module's workqueue), after each of
//! its drains: it is kicked by every commit and option write, by `dev-N/writable`,
//! `dev-N/label` and `device_add`, and
//! whenever buckets are freed, so it tries again exactly when buckets may have become
//! available; the filesystem stops it (and waits for it) before it goes, on every path, and a
//! read-only mount pauses it. A pass loads the committed tree from disk, moves every degraded
//! node and its path to the root to buckets of a non-blocking full-replica allocation
//! ([`Allocator::try_alloc_now`](crate::allocator::Allocator::try_alloc_now): it never parks
//! and never degrades), and commits through [`Fs::commit`]: the new copies are written and
//! flushed before any superblock names them, and the old ones stay the tree's until then.

use crate::btree::Btree;
use crate::fs::Fs;
use crate::shared::alloc_policy::Watermark;
use crate::shared::options::Opt;
use crate::shared::superblock::{NodePtr, UuidFmt};
use crate::vec_ext::VecExt;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{alloc::KVec, new_mutex, prelude::*, sync::Mutex};

/// Most degraded nodes listed in `internal/degraded_nodes` (all are counted).
const MAX_LISTED: usize = 32;

/// One degraded node, as listed.
#[derive(Clone, Copy)]
struct Listed {
    level: u8,
    seq: u64,
    copies: u32,
    first: NodePtr,
}

/// What the re-replication pass is doing, for `internal/degraded_nodes`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Recovery has not finished: nothing looked at yet.
    NotYet,
    /// Nothing to do, or done.
    Idle,
    /// Degraded nodes, `metadata_degraded_writes` off: left as they are.
    Off,
    /// The last try could not get the buckets: tried again when buckets are freed.
    WaitingForBuckets,
    /// A pass failed (load, allocation that can never be served, commit): not tried again
    /// until an option write.
    Failed,
}

struct HealState {
    status: Status,
    /// The `metadata_replicas` the figures below were taken against (0: none taken).
    replicas: u32,
    /// Degraded nodes in the committed tree, as of the last look, and the fewest copies.
    total: u64,
    fewest: u32,
    listed: KVec<Listed>,
}

/// The degraded nodes of a mounted filesystem and the re-replication pass's figures.
#[pin_data]
pub(crate) struct Heal {
    #[pin]
    state: Mutex<HealState>,
    /// Degraded nodes brought to full replication, and the nodes rewritten for it (their
    /// paths included), by the worker since the mount.
    healed: AtomicU64,
    rewritten: AtomicU64,
    /// Passes that could not get their buckets yet.
    blocked: AtomicU64,
}

impl Heal {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Heal {
            state <- new_mutex!(HealState {
                status: Status::NotYet,
                replicas: 0,
                total: 0,
                fewest: 0,
                listed: KVec::new(),
            }),
            healed: AtomicU64::new(0),
            rewritten: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
        })
    }

    /// An option write: a failed pass may be tried again.
    pub(crate) fn retry(&self) {
        let mut st = self.state.lock();
        if st.status == Status::Failed {
            st.status = Status::Idle;
        }
    }

    /// Takes the figures of `btree` against `replicas`; returns the degraded nodes.
    pub(crate) fn record(&self, btree: &Btree, replicas: u32) -> u64 {
        let mut st = self.state.lock();
        let st = &mut *st;
        st.listed.clear();
        st.fewest = replicas;
        let listed = &mut st.listed;
        let fewest = &mut st.fewest;
        let total = btree.degraded(replicas, |level, seq, at| {
            *fewest = (*fewest).min(at.nr_ptrs);
            if listed.len() < MAX_LISTED {
                let l = Listed {
                    level,
                    seq,
                    copies: at.nr_ptrs,
                    first: at.ptrs[0],
                };
                // A failed push (no memory) only shortens the list.
                let _ = listed.push(l, GFP_KERNEL);
            }
        });
        st.total = total;
        st.replicas = replicas;
        total
    }

    fn set_status(&self, s: Status) {
        self.state.lock().status = s;
    }
}

impl Fs {
    /// The end of recovery: lists the degraded nodes of `btree` (the tree this mount shows),
    /// reports them once when `metadata_degraded_writes` is off, and lets the worker's pass
    /// run (it is kicked here).
    pub(crate) fn degraded_after_recovery(&self, btree: &Btree) {
        let (replicas, enabled, read_only) = {
            let st = self.state.lock();
            (
                st.live.get(Opt::MetadataReplicas),
                st.live.get(Opt::MetadataDegradedWrites) != 0,
                st.read_only,
            )
        };
        let total = self.heal.record(btree, replicas);
        let fewest = self.heal.state.lock().fewest;
        if total == 0 {
            self.heal.set_status(Status::Idle);
        } else if enabled && !read_only {
            pr_info!(
                "{}: {total} btree node(s) have fewer copies than metadata_replicas={replicas} \
                 (fewest {fewest}): queued for re-replication (internal/degraded_nodes)\n",
                UuidFmt(&self.uuid)
            );
            self.heal.set_status(Status::Idle);
        } else {
            pr_warn!(
                "{}: {total} btree node(s) have fewer copies than metadata_replicas={replicas} \
                 (fewest {fewest}); not re-replicated: {} (internal/degraded_nodes)\n",
                UuidFmt(&self.uuid),
                if read_only {
                    "read-only mount"
                } else {
                    "metadata_degraded_writes is off (echo 1 > options/metadata_degraded_writes)"
                }
            );
            self.heal.set_status(Status::Off);
        }
        self.kick_discards();
    }

    /// The re-replication pass (on the background worker, after a drain). Does nothing before
    /// recovery has finished, on a read-only mount, after a failure (until an option write),
    /// or when the last look found nothing degraded against the `metadata_replicas` in force.
    pub(crate) fn heal_pass(&self) {
        // One rewrite of the committed tree at a time (a member's evacuation, `node_move.rs`,
        // never parks while it holds this, so the worker waits for I/O at most).
        let _serialised = self.rewrite_lock.lock();
        let (replicas, enabled, read_only) = {
            let st = self.state.lock();
            (
                st.live.get(Opt::MetadataReplicas),
                st.live.get(Opt::MetadataDegradedWrites) != 0,
                st.read_only,
            )
        };
        {
            let st = self.heal.state.lock();
            let fresh = st.replicas == replicas;
            if st.status == Status::NotYet
                || st.status == Status::Failed
                || read_only
                || (fresh && (st.total == 0 || !enabled))
            {
                return;
            }
        }
        let uuid = UuidFmt(&self.uuid);
        // The mounted filesystem's tree: transactions never park while they hold it, so the
        // worker waits for I/O at most.
        let mut guard = self.tree.lock();
        let Some(tree) = guard.as_mut() else {
            return;
        };
        let total = self.heal.record(&tree.btree, replicas);
        if total == 0 {
            self.heal.set_status(Status::Idle);
            return;
        }
        if !enabled {
            self.heal.set_status(Status::Off);
            return;
        }
        let live = self.live();
        let moved = tree.btree.rereplicate(
            replicas,
            |n, out| match self.alloc.try_alloc_now(n, Watermark::Normal, &live, out)? {
                true => Ok(()),
                false => Err(EAGAIN),
            },
            |unused| self.alloc.release_nodes(unused),
        );
        let moved = match moved {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e == EAGAIN => {
                self.heal.blocked.fetch_add(1, Ordering::Relaxed);
                self.heal.set_status(Status::WaitingForBuckets);
                return;
            }
            Err(e) => {
                pr_err!(
                    "{uuid}: re-replication of {total} degraded btree node(s) to {replicas} \
                     copies cannot be served ({}); not tried again until an option write\n",
                    e.to_errno()
                );
                self.heal.set_status(Status::Failed);
                return;
            }
        };
        if let Err(e) = self.commit_tree(tree, false) {
            // The new buckets stay allocated (the next mount's reconciliation frees whatever
            // no superblock reaches); the old tree is intact unless the commit got as far as a
            // superblock, in which case that one names a fully written tree.
            pr_err!(
                "{uuid}: re-replication commit failed ({}); not tried again until an option \
                 write\n",
                e.to_errno()
            );
            self.heal.set_status(Status::Failed);
            return;
        }
        self.heal.healed.fetch_add(total, Ordering::Relaxed);
        self.heal
            .rewritten
            .fetch_add(moved as u64, Ordering::Relaxed);
        let left = self.heal.record(&tree.btree, replicas);
        if left >= total {
            // Nothing got better (a member takes new buckets but its copy writes fail, and
            // the commit drops them): another pass now would do the same again, with a
            // commit each time.
            pr_err!(
                "{uuid}: re-replication made no progress ({left} of {total} node(s) still \
                 degraded after a commit: copy writes failing?); not tried again until an \
                 option write\n"
            );
            self.heal.set_status(Status::Failed);
            return;
        }
        self.heal.set_status(Status::Idle);
        pr_info!(
            "{uuid}: re-replicated {total} degraded btree node(s) to metadata_replicas={replicas} \
             ({moved} node(s) rewritten with their paths); {left} degraded left\n"
        );
    }

    /// `internal/degraded_nodes`.
    pub(crate) fn show_degraded(&self, out: &mut dyn Write) -> core::fmt::Result {
        {
            let st = self.heal.state.lock();
            writeln!(out, "degraded nodes: {}", st.total)?;
            writeln!(
                out,
                "as of metadata_replicas: {}\nfewest copies: {}",
                st.replicas, st.fewest
            )?;
            for l in st.listed.iter() {
                writeln!(
                    out,
                    "  level {} seq {} copies {} (first at member {} bucket {})",
                    l.level, l.seq, l.copies, l.first.member, l.first.bucket
                )?;
            }
            if st.total > st.listed.len() as u64 {
                writeln!(
                    out,
                    "  ({} more not listed)",
                    st.total - st.listed.len() as u64
                )?;
            }
            writeln!(
                out,
                "worker: {}",
                match st.status {
                    Status::NotYet => "not started (recovery)",
                    Status::Idle => "idle",
                    Status::Off => "off (metadata_degraded_writes=0)",
                    Status::WaitingForBuckets => "waiting for buckets",
                    Status::Failed => "failed (tried again after an option write)",
                }
            )?;
        }
        let (allocs, short) = self.alloc.degraded_counts();
        writeln!(
            out,
            "degraded allocations: {allocs} (node copies short: {short})\nre-replicated nodes: \
             {}\nrewritten nodes: {}\nblocked tries: {}",
            self.heal.healed.load(Ordering::Relaxed),
            self.heal.rewritten.load(Ordering::Relaxed),
            self.heal.blocked.load(Ordering::Relaxed)
        )
    }
}

// SPDX-License-Identifier: GPL-2.0

//! Rewriting committed btree nodes' copies after the mount: the one step that moves node
//! copies through the normal paths (a member's evacuation, `member_remove.rs`; a worker that
//! re-replicates nodes would use it too).
//!
//! The committed tree is loaded from the current root (every copy checked, as at mount), the
//! nodes with a selected copy and every node above them move copy-on-write to buckets from
//! the normal allocator (`metadata_replicas` copies on distinct writable members, the
//! `metadata_target` rules; never parked: `ENOSPC` when the members cannot serve it now, so
//! [`Fs::rewrite_lock`] is never held across a wait that the discard worker, which takes it
//! for its re-replication pass, would have to end), and the commit
//! (`commit.rs`) writes them, flushes, points every superblock at the new root, and only then
//! makes the old buckets `need_discard`. Until the superblock write the old tree is intact on
//! disk and every superblock points at it, so a crash at any point leaves a tree whose every
//! copy decodes: the old one, or the new one.
//!
//! A commit that fails leaves the buckets it took in the allocator as `btree` (a superblock
//! copy may already point at them): the next mount's reconciliation frees those no root
//! reaches.

use crate::fs::Fs;
use crate::shared::alloc_policy::Watermark;
use crate::shared::options::Opt;
use crate::shared::superblock::NodePtr;
use core::sync::atomic::Ordering;
use kernel::prelude::*;

/// What [`Fs::rewrite_nodes`] did.
pub(crate) struct Rewritten {
    /// Nodes written to new buckets (those selected and the nodes above them).
    pub(crate) nodes: u32,
    /// Nodes the selection still selects in the committed tree afterwards (0 when it worked).
    pub(crate) left: u64,
}

impl Fs {
    /// Rewrites every committed node whose copies `moves` selects (and the nodes above it) to
    /// new buckets, and commits; the caller holds [`Fs::rewrite_lock`]. `EAGAIN` until
    /// recovery has finished, `EROFS` on a read-only mount, `ENOSPC` when the writable members
    /// cannot take the copies now, `EINVAL` for a request that can never be served.
    pub(crate) fn rewrite_nodes(&self, moves: impl Fn(&[NodePtr]) -> bool) -> Result<Rewritten> {
        if !self.recovered.load(Ordering::Acquire) {
            return Err(EAGAIN);
        }
        if self.state.lock().read_only {
            return Err(EROFS);
        }
        let mut guard = self.tree.lock();
        let tree = guard.as_mut().ok_or(EAGAIN)?;
        let nodes = tree.btree.rewrite_where(
            &moves,
            |n, out| match self
                .alloc
                .try_alloc_now(n, Watermark::Btree, &self.live(), out)?
            {
                true => Ok(()),
                false => Err(ENOSPC),
            },
            |unused| self.alloc.release_nodes(unused),
        )?;
        if nodes > 0 {
            self.commit_tree(tree, false)?;
            // A copy write the commit dropped leaves a node degraded: recorded, so
            // `internal/degraded_nodes` lists it and the re-replication pass (kicked by the
            // commit) takes it.
            self.heal.record(
                &tree.btree,
                self.state.lock().live.get(Opt::MetadataReplicas),
            );
        }
        Ok(Rewritten {
            nodes,
            left: tree.btree.count_nodes(&moves),
        })
    }
}

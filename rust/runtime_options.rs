// SPDX-License-Identifier: GPL-2.0

//! Option writes while mounted: a write under `options/`, `dev-N/discard` or `dev-N/label`, and
//! a remount.
//!
//! Each change is checked against both the options in force and the stored ones, persisted in
//! every member's superblock (`commit.rs`), and only then put in force; then parked allocations
//! are woken to rebuild their inputs, and the discard worker is kicked. On any error nothing
//! changes.
//!
//! On a read-only mount an option change is put in force for this mount only, as a mount
//! option is, and nothing is written; `dev-N/discard` is refused with `EROFS`. The changes
//! between read-only and read-write (a remount) are here too.

use crate::allocator::LiveInputs;
use crate::commit::boxed_copy;
use crate::fs::Fs;
use crate::shared::options::{MountOptions, Opt, OptError};
use crate::shared::superblock::{UuidFmt, MEMBER_DISCARD};
use crate::shared::target::Label;
use kernel::prelude::*;

impl Fs {
    /// Sets every option given in `changes` at runtime as one change (a sysfs write gives one,
    /// a remount may give several): checked against both the live and the stored options,
    /// then persisted in every member's superblock; `Err` names the option blamed. On any
    /// error nothing changes.
    pub(crate) fn set_options(
        &self,
        changes: &MountOptions,
    ) -> Result<(), (Error, Option<(Opt, OptError)>)> {
        let mut st = self.state.lock();
        // Removed members hold no copies: the rules count the members the filesystem has.
        let members = st.sb.live_members();
        let mut live = st.live;
        live.set_all(changes, members)
            .map_err(|e| (EINVAL, Some(e)))?;
        // A target being set must name a member (a stored one may name none, see
        // `Options::check_target_members`).
        if changes.get(Opt::MetadataTarget).is_some() {
            live.check_target_members(st.sb.member_labels())
                .map_err(|e| (EINVAL, Some((Opt::MetadataTarget, e))))?;
        }
        if st.read_only {
            // Nothing is written on a read-only mount: in force for this mount only, as a
            // mount option is (so the #1108 rescue works on a read-only mount parked in an
            // in-memory replay too).
            st.live = live;
            self.live_inputs
                .publish(LiveInputs::of(&live, st.sb.member_labels()));
            drop(st);
            pr_info!(
                "{}: read-only mount: the option change is in force for this mount only, not \
                 written\n",
                UuidFmt(&self.uuid)
            );
            self.alloc.wake_all();
            return Ok(());
        }
        let mut sb = boxed_copy(&st.sb).map_err(|e| (e, None))?;
        sb.options
            .set_all(changes, members)
            .map_err(|e| (EINVAL, Some(e)))?;
        self.write_next_superblock(&mut st, sb)
            .map_err(|e| (e, None))?;
        st.live = live;
        self.live_inputs
            .publish(LiveInputs::of(&live, st.sb.member_labels()));
        drop(st);
        // Parked allocations rebuild their inputs from the new value; a change of `discard`
        // may have made discards possible; the worker's re-replication pass looks again (a
        // failed one too), after the drain.
        self.alloc.wake_all();
        self.heal.retry();
        self.kick_discards();
        Ok(())
    }

    /// Turns discards on member `m` on or off; persisted in the member table. `EROFS` on a
    /// read-only mount (the member table has no value for this mount only).
    pub(crate) fn set_member_discard(&self, m: usize, on: bool) -> Result {
        if self.state.lock().read_only {
            pr_err!(
                "{}: dev-{m}/discard: read-only mount, the member table is not written (-30)\n",
                UuidFmt(&self.uuid)
            );
            return Err(EROFS);
        }
        self.update_superblock(|sb| {
            let member = sb.members.get_mut(m).ok_or(EINVAL)?;
            member.flags = if on {
                member.flags | MEMBER_DISCARD
            } else {
                member.flags & !MEMBER_DISCARD
            };
            Ok(())
        })?;
        self.kick_discards();
        Ok(())
    }

    /// Sets member `m`'s label; persisted in the superblock. Parked allocations are woken: the
    /// members `metadata_target` names may have changed.
    pub(crate) fn set_member_label(&self, m: usize, label: Label) -> Result {
        if self.state.lock().read_only {
            pr_err!(
                "{}: dev-{m}/label: read-only mount, the superblock is not written (-30)\n",
                UuidFmt(&self.uuid)
            );
            return Err(EROFS);
        }
        self.update_superblock(|sb| {
            if m >= sb.nr_members as usize {
                return Err(EINVAL);
            }
            let l = sb.labels.get_mut(m).ok_or(EINVAL)?;
            *l = label;
            Ok(())
        })?;
        self.alloc.wake_all();
        // The target's members may have changed: the re-replication pass looks again.
        self.kick_discards();
        Ok(())
    }
}

impl Fs {
    /// Goes read-only (a remount): from here on nothing is written; the discard worker is
    /// stopped (a discard command in flight finishes first) until the filesystem goes
    /// read-write again. Nothing else is pending: every change is written when it is made (the
    /// commit at mount, option writes at once). Cannot fail.
    pub(crate) fn set_read_only(&self) {
        // The worker first: a re-replication commit in flight finishes before writes stop
        // (the worker takes `rewrite_lock`, so it is paused before that lock is taken here).
        self.discard.pause();
        // Then an evacuation or removal in flight (they hold `rewrite_lock` across their
        // commit and superblock writes, and never wait for the worker): it finishes first,
        // and the next one sees the mount read-only.
        let _rewrites = self.rewrite_lock.lock();
        // Then the journal: no flush runs from here on, and what is not committed yet is,
        // with the tree held so no transaction slips in before the mount is read-only.
        // Out of the lock before it is dropped: a transaction arms the timer under the tree
        // lock, and the drop waits for a running flush, which takes the tree lock.
        let timer = self.flusher.lock().take();
        drop(timer);
        let mut tree = self.tree.lock();
        if let Some(t) = tree.as_mut() {
            if let Err(e) = self.commit_closing(t) {
                pr_err!(
                    "{}: remount,ro: cannot commit the btree ({}); the journal holds what was \
                     synced\n",
                    UuidFmt(&self.uuid),
                    e.to_errno()
                );
            }
        }
        self.state.lock().read_only = true;
    }

    /// Goes read-write (a remount): refused (`EROFS`, with the reason) when this mount cannot
    /// write (`norecovery`, `degraded`, a journal replayed in memory only); otherwise the
    /// discard worker may run again and is kicked.
    pub(crate) fn set_read_write(&self) -> Result {
        {
            let mut st = self.state.lock();
            if self.shut_down.load(core::sync::atomic::Ordering::Acquire) {
                pr_err!(
                    "{}: remount,rw refused: the filesystem is shut down; unmount and mount it \
                     again (-5)\n",
                    UuidFmt(&self.uuid)
                );
                return Err(EIO);
            }
            if let Some(why) = st.rw_refused {
                pr_err!(
                    "{}: remount,rw refused: {why}; unmount and mount it read-write (-30)\n",
                    UuidFmt(&self.uuid)
                );
                return Err(EROFS);
            }
            st.read_only = false;
        }
        if self.discard.resume() {
            self.kick_discards();
        }
        self.start_flusher();
        // Extents a crash left without their inode (a read-only mount keeps them).
        if let Err(e) = self.delete_orphans() {
            pr_warn!(
                "{}: remount,rw: extents of deleted inodes not looked for ({})\n",
                UuidFmt(&self.uuid),
                e.to_errno()
            );
        }
        Ok(())
    }

    /// Whether the filesystem is mounted read-only.
    pub(crate) fn read_only(&self) -> bool {
        self.state.lock().read_only
    }
}

// SPDX-License-Identifier: GPL-2.0

//! Emptying and removing a member while mounted: `/sys/fs/bucketfs/<uuid>/dev-N/evacuate` and
//! `dev-N/remove` (the end of the bcachefs #1105 way out: a temporary device added to unwedge a
//! mount is taken out again). The policy (refusals, the new member table, the write order and
//! what a crash leaves) is `shared/member_remove.rs`; the node moves are `node_move.rs`.
//!
//! Evacuation takes the member out of allocation (`dev-N/writable` reads 0 from then on), then
//! rewrites every btree node with a copy on it (and the nodes above) to the other members and
//! commits. The journal needs nothing: every member holds a copy of it.
//!
//! Removal checks that the committed tree has no copy on the member, then writes the superblock
//! without it to every remaining member and marks it removed in memory: its table is not
//! written again, no discard is issued on it, no pointer to it is accepted, and its `dev-N/`
//! directory stays (member vectors never shrink) with `state` reading `removed`. Its block
//! device stays open, and claimed, until the unmount: readers (the discard worker, sysfs, a
//! commit) borrow members' devices without a reference count, so none is closed while mounted.

use crate::fs::Fs;
use crate::shared::member_remove::{apply_remove, check_removable, RemoveError};
use crate::shared::superblock::UuidFmt;
use crate::text::Text;
use core::sync::atomic::Ordering;
use kernel::prelude::*;

/// Prints an error of `dev-N/<file>` naming the filesystem, the member and its device, and
/// returns `err`.
macro_rules! member_err {
    ($fs:expr, $m:expr, $file:expr, $err:expr, $($arg:tt)*) => {{
        let err: Error = $err;
        pr_err!(
            "{}: dev-{}/{} ({}): {} ({})\n",
            UuidFmt(&$fs.uuid),
            $m,
            $file,
            $fs.members.get($m).map_or("?", |m| m.name()),
            format_args!($($arg)*),
            err.to_errno()
        );
        err
    }};
}

/// The errno a removal refusal gives.
fn remove_errno(e: &RemoveError) -> Error {
    match e {
        RemoveError::NoSuchMember | RemoveError::AlreadyRemoved | RemoveError::Superblock(_) => {
            EINVAL
        }
        RemoveError::TooFewMembers { .. } => ENOSPC,
        RemoveError::Target | RemoveError::NotEmpty(_) => EBUSY,
    }
}

impl Fs {
    /// What evacuation and removal both refuse: before recovery has finished (`EAGAIN`), on a
    /// read-only mount (`EROFS`), a member that is not there (`EINVAL`), too few members left
    /// for `metadata_replicas` (`ENOSPC`), a `metadata_target` that places copies on the member
    /// with strict placement (`EBUSY`).
    fn check_member_removal(&self, m: usize, file: &str) -> Result {
        if !self.tables_ready.load(Ordering::Acquire) || !self.recovered.load(Ordering::Acquire) {
            return Err(member_err!(
                self,
                m,
                file,
                EAGAIN,
                "the mount has not finished recovery; write again once it has"
            ));
        }
        let st = self.state.lock();
        if st.read_only {
            return Err(member_err!(
                self,
                m,
                file,
                EROFS,
                "read-only mount: members are emptied and removed on a read-write mount only"
            ));
        }
        let live = self.live();
        if let Err(e) = check_removable(&st.sb, m as u32, live.replicas) {
            let mut msg = Text::<160>::new();
            let _ = e.describe(&mut msg);
            return Err(member_err!(
                self,
                m,
                file,
                remove_errno(&e),
                "{}",
                msg.as_str()
            ));
        }
        if m < 32 && live.target & (1 << m) != 0 && !live.fallback {
            return Err(member_err!(
                self,
                m,
                file,
                EBUSY,
                "metadata_target names this member and metadata_target_fallback is 0: copies \
                 would wait for it; set another target first"
            ));
        }
        Ok(())
    }

    /// `dev-N/evacuate`: moves every btree node copy off member `m` (see the file's doc).
    pub(crate) fn evacuate_member(&self, m: usize) -> Result {
        self.check_member_removal(m, "evacuate")?;
        let _serialised = self.rewrite_lock.lock();
        // Checked again under the lock: a removal may have run in between.
        self.check_member_removal(m, "evacuate")?;
        let was_writable = self.alloc.writable(m);
        self.alloc.set_writable(m, false);
        let done = self
            .rewrite_nodes(|copies| copies.iter().any(|p| p.member as usize == m))
            .map_err(|e| {
                if was_writable {
                    self.alloc.set_writable(m, true);
                }
                member_err!(
                    self,
                    m,
                    "evacuate",
                    e,
                    "btree nodes not moved off the member{}",
                    if e == ENOSPC {
                        ": the other members cannot take their copies now (free buckets, e.g. \
                         with discards, or add a member, and write again)"
                    } else {
                        ""
                    }
                )
            })?;
        if done.left > 0 {
            return Err(member_err!(
                self,
                m,
                "evacuate",
                EIO,
                "{} btree node(s) still on the member after the rewrite (a bug)",
                done.left
            ));
        }
        pr_info!(
            "{}: dev-{m} ({}) evacuated: {} btree node(s) rewritten to the other members; it \
             takes no new copies (writable 0) and may be removed (dev-{m}/remove)\n",
            UuidFmt(&self.uuid),
            self.members.get(m).map_or("?", |d| d.name()),
            done.nodes
        );
        Ok(())
    }

    /// `dev-N/remove`: removes member `m`, which must hold no btree node copy (see the file's
    /// doc). Besides the refusals of [`Fs::evacuate_member`]: `EBUSY` while copies are on it.
    pub(crate) fn remove_member(&self, m: usize) -> Result {
        self.check_member_removal(m, "remove")?;
        let _members = self.add_lock.lock();
        let _serialised = self.rewrite_lock.lock();
        self.check_member_removal(m, "remove")?;
        // The tree is held from the count to the retirement: no transaction allocates on the
        // member meanwhile, and what is counted is the committed tree (a commit first, so no
        // node's committed copies hide behind a newer copy in memory). A refusal changes
        // nothing (writable included).
        let mut tree = self.tree.lock();
        let copies = match tree.as_mut() {
            Some(t) => self
                .commit_pending(t)
                .map(|()| t.btree.count_copies(|p| p.member as usize == m)),
            None => Err(EAGAIN),
        }
        .map_err(|e| member_err!(self, m, "remove", e, "cannot commit the btree"))?;
        // File data is not moved off a member: one that holds some stays.
        let data_blocks = tree.as_ref().map_or(0, |t| {
            let mut n = 0u64;
            t.data.for_each_live(|dm, _, live| {
                if dm as usize == m {
                    n += live as u64;
                }
            });
            n
        });
        if data_blocks > 0 {
            return Err(member_err!(
                self,
                m,
                "remove",
                EBUSY,
                "it holds {data_blocks} block(s) of file data, which bucketfs does not move to \
                 other members; delete or copy those files elsewhere first"
            ));
        }
        if let Some(t) = tree.as_mut() {
            // Its empty write point, if any, is closed (freed with the next journal write).
            t.data
                .set_point(m, None)
                .map_err(|e| member_err!(self, m, "remove", e, "cannot close its data bucket"))?;
        }
        // Planned and written under the state lock (`update_superblock`), on its one copy of
        // the superblock (superblocks stay off this deep stack).
        let replicas = self.live().replicas;
        let mut refused: Option<RemoveError> = None;
        let mut uuid = [0u8; 16];
        let written = self.update_superblock(|sb| {
            uuid = sb.members.get(m).map_or([0; 16], |d| d.uuid);
            apply_remove(sb, m as u32, replicas, copies).map_err(|e| {
                refused = Some(e);
                EINVAL
            })
        });
        if let Some(e) = refused {
            let mut msg = Text::<160>::new();
            let _ = e.describe(&mut msg);
            return Err(member_err!(
                self,
                m,
                "remove",
                remove_errno(&e),
                "{}",
                msg.as_str()
            ));
        }
        if let Err(e) = written {
            // Some members may carry the table without it: the old table again, with the next
            // seq, makes it not removed (a crash before this lands leaves it removed, and
            // empty).
            let settled = self.update_superblock(|_| Ok(()));
            return Err(member_err!(
                self,
                m,
                "remove",
                e,
                "a member's superblock write failed; not removed{}",
                if settled.is_ok() {
                    ""
                } else {
                    " in memory (the next mount may not need the device: it is empty)"
                }
            ));
        }
        // Between the write and this mark, nothing writes the member's table or superblock:
        // the discard worker and superblock writes follow the table in force, which says
        // removed already.
        self.alloc.retire(m);
        if let Some(member) = self.members.get(m) {
            member.mark_removed();
        }
        pr_info!(
            "{}: removed member {m} ({}, uuid {}); its device stays open until the unmount\n",
            UuidFmt(&self.uuid),
            self.members.get(m).map_or("?", |d| d.name()),
            UuidFmt(&uuid)
        );
        Ok(())
    }
}

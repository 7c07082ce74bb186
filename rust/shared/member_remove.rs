// SPDX-License-Identifier: GPL-2.0

//! Removing a member: the one policy that `bucketfs device remove` (offline,
//! `tool/src/device_remove.rs`) and the module's `dev-N/remove` sysfs file (online,
//! `rust/member_remove.rs`) both follow.
//!
//! A member is removed in two steps. First it is emptied (evacuated: online only, through
//! `dev-N/evacuate`): every btree node with a copy on it is rewritten, copy-on-write, to
//! buckets of the other members, and committed. Then [`plan_remove`] builds the superblock
//! without it: its table entry becomes [`Member::removed`] (flag [`MEMBER_REMOVED`], every
//! other field zero), its label none, `seq + 1`, nothing else changed. The index stays taken:
//! node pointers name members by index, so indices are never renumbered; `nr_members` counts
//! the removed entry, a mount does not require a device for it, and the decoder refuses any
//! node pointer that names it.
//!
//! The journal needs no move: every member holds a whole copy of it, each entry at the same
//! offset, and the mount reads it from the members it has (`journal.rs`).
//!
//! # Write order
//!
//! The new superblock goes to every remaining member (primaries, then backups, as every
//! superblock write); nothing is written to the removed member, whose device keeps its last
//! superblock. A crash anywhere leaves, by "highest `seq` wins", either the old table (the
//! member is there, complete: nothing on it changed) or the new one (removed), never a third:
//! - before any remaining member carries `seq + 1`, the old table wins: not removed;
//! - once one does (a torn primary falls back to its backup), the new table wins whatever is
//!   given: the member is removed. Its device, given to a mount, is refused as not a member
//!   (its member uuid is no longer in the table); without it the mount needs nothing of it,
//!   because nothing points at it (it was empty before the write).

use crate::shared::options::Opt;
use crate::shared::superblock::{Member, SbError, Superblock};
use crate::shared::target::{Label, Target};

/// Why a member cannot be removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveError {
    /// No member with this index (not below `nr_members`).
    NoSuchMember,
    /// The member was removed already.
    AlreadyRemoved,
    /// The members left could not hold `metadata_replicas` copies of each node (the last
    /// member included: a filesystem keeps at least one).
    TooFewMembers {
        /// Members left after the removal.
        left: u32,
        /// The `metadata_replicas` that must fit.
        replicas: u32,
    },
    /// `metadata_target` names the member by index (`dev-N`).
    Target,
    /// Btree node copies are still on the member (this many): evacuate it first.
    NotEmpty(u64),
    /// The superblock without the member would be refused by the decoder.
    Superblock(SbError),
}

impl RemoveError {
    /// What is wrong, for messages.
    pub fn describe(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        match self {
            RemoveError::NoSuchMember => write!(out, "no such member"),
            RemoveError::AlreadyRemoved => write!(out, "the member was removed already"),
            RemoveError::TooFewMembers { left, replicas } => write!(
                out,
                "{left} member(s) would be left for metadata_replicas={replicas} copies of \
                 each btree node; lower metadata_replicas or add a member first"
            ),
            RemoveError::Target => write!(
                out,
                "metadata_target names this member; set another target first"
            ),
            RemoveError::NotEmpty(n) => write!(
                out,
                "{n} btree node cop{} still on the member; evacuate it first",
                if *n == 1 { "y is" } else { "ies are" }
            ),
            RemoveError::Superblock(e) => {
                write!(out, "the new superblock would be refused ({})", e.field())
            }
        }
    }
}

/// Checks whether member `index` may be emptied and then removed with `replicas` copies per
/// node (the larger of the stored and the live `metadata_replicas`): it exists, is not removed,
/// is not the `dev-N` target, and the other members can hold `replicas` copies.
pub fn check_removable(sb: &Superblock, index: u32, replicas: u32) -> Result<(), RemoveError> {
    let m = sb
        .member_table()
        .get(index as usize)
        .ok_or(RemoveError::NoSuchMember)?;
    if m.is_removed() {
        return Err(RemoveError::AlreadyRemoved);
    }
    let left = sb.live_members() - 1;
    let replicas = replicas.max(sb.options.get(Opt::MetadataReplicas));
    if left < replicas.max(1) {
        return Err(RemoveError::TooFewMembers { left, replicas });
    }
    if sb.options.target() == Target::Member(index) {
        return Err(RemoveError::Target);
    }
    Ok(())
}

/// Plans removing member `index` from the filesystem whose current superblock is `sb`, with
/// `replicas` copies per node in force and `copies_on_member` btree node copies still on the
/// member (counted by the caller from the committed tree). Returns the superblock to write to
/// every remaining member (each with its own `member_index`; this one has the first remaining
/// member's).
pub fn plan_remove(
    sb: &Superblock,
    index: u32,
    replicas: u32,
    copies_on_member: u64,
) -> Result<Superblock, RemoveError> {
    let mut next = *sb;
    apply_remove(&mut next, index, replicas, copies_on_member)?;
    Ok(next)
}

/// [`plan_remove`] in place: turns `sb` into the superblock without member `index` (on an
/// error, `sb` is left part-changed: callers work on a copy). For callers that keep one
/// superblock copy only (the module's superblock writes run deep).
pub fn apply_remove(
    sb: &mut Superblock,
    index: u32,
    replicas: u32,
    copies_on_member: u64,
) -> Result<(), RemoveError> {
    check_removable(sb, index, replicas)?;
    if copies_on_member > 0 {
        return Err(RemoveError::NotEmpty(copies_on_member));
    }
    sb.seq += 1;
    sb.members[index as usize] = Member::removed();
    sb.labels[index as usize] = Label::NONE;
    sb.member_index = sb
        .member_table()
        .iter()
        .position(|m| !m.is_removed())
        .ok_or(RemoveError::NoSuchMember)? as u32;
    sb.validate().map_err(RemoveError::Superblock)
}

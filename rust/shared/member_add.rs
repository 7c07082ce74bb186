// SPDX-License-Identifier: GPL-2.0

//! Adding a member to an existing filesystem: the one policy that `bucketfs device add`
//! (offline, `tool/src/device_add.rs`) and the module's `device_add` sysfs file (online,
//! `rust/member_add.rs`) both follow.
//!
//! [`plan_add`] lays the new member out with [`Member::layout`] (the same function `format`
//! uses), checks it against the filesystem, and builds the superblock every member gets: the
//! member table with the new entry, `nr_members + 1`, `seq + 1`, nothing else changed. The new
//! member's bucket table gives every bucket [`new_member_state`]: no btree node is on it yet.
//!
//! # Write order
//!
//! 1. The new member's bucket table and one zero journal block at `journal_offset`, durable.
//! 2. The new member's superblocks (primary, then backup), `seq + 1`, durable.
//! 3. Every old member's primary superblock (`seq + 1`, the new table), durable.
//! 4. Every old member's backup superblock, durable.
//!
//! A crash anywhere leaves, by the mount's "highest `seq` wins" rule, either the old table
//! (not added) or the new one (added), never a third:
//! - before step 2 completes no valid superblock names the new member: not added (given to a
//!   mount, the new device is refused: no superblock, or one of another filesystem);
//! - after step 2 and before any of step 3, the new device alone carries `seq + 1`: mounted
//!   with it, its table wins and every old member is found at its index (added: every other
//!   field equals the old superblock's); mounted without it, the old table wins (not added);
//! - once any old member carries `seq + 1` (a torn primary falls back to its backup), the new
//!   table wins whatever is given: the new member is required (added), and its superblocks
//!   are already on it.
//!
//! After a crash between steps 2 and 3 followed by a mount without the new device, that
//! mount's next superblock write reuses `seq + 1` with the old table. The left-over device then
//! carries a superblock of the same `seq` and another member table: [`claims_member`] lets a
//! later add reuse it, and the mount's assembly refuses a source whose newest superblocks
//! disagree on the member table (`AssembleError::Conflict`) rather than picking one by order.

use crate::shared::bucket_table::BucketState;
use crate::shared::options::Opt;
use crate::shared::superblock::{
    Member, MemberField, SbError, Superblock, MAX_MEMBERS, MEMBER_DISCARD,
};

/// Why a member cannot be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddError {
    /// The filesystem has [`MAX_MEMBERS`] members already.
    Full,
    /// The device cannot be laid out with this bucket size (too small, or too many buckets).
    Layout(MemberField),
    /// The device's journal area would not reach the filesystem's journal position
    /// (`journal_offset`, in blocks), which every member's journal must.
    JournalTooShort {
        /// Blocks of the new member's journal.
        blocks: u64,
        /// The filesystem's `journal_offset`.
        offset: u64,
    },
    /// The member uuid drawn for the new member is already in the table (draw again).
    DuplicateUuid,
    /// The superblock with the new member would be refused by the decoder.
    Superblock(SbError),
}

impl AddError {
    /// What is wrong, for messages.
    pub fn describe(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        match self {
            AddError::Full => write!(
                out,
                "the member table has {MAX_MEMBERS} entries already (removed members keep theirs)"
            ),
            AddError::Layout(MemberField::BucketSize) => write!(out, "bad bucket size"),
            AddError::Layout(_) => write!(
                out,
                "device too small (or too large) for a member with this bucket size"
            ),
            AddError::JournalTooShort { blocks, offset } => write!(
                out,
                "device too small: its journal ({blocks} blocks) does not reach the journal \
                 position (block {offset})"
            ),
            AddError::DuplicateUuid => write!(out, "member uuid already in use"),
            AddError::Superblock(e) => {
                write!(out, "the new superblock would be refused ({})", e.field())
            }
        }
    }
}

/// The new member and the superblock that names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberAdd {
    /// The new member's index (the old `nr_members`).
    pub index: u32,
    /// Its table entry.
    pub member: Member,
    /// The superblock to write to every member (each with its own `member_index`; this one has
    /// the new member's): `seq + 1`, `nr_members + 1`, the table with [`MemberAdd::member`].
    pub sb: Superblock,
}

/// Plans adding a device of `device_bytes` bytes, with `bucket_size`-byte buckets and member
/// uuid `member_uuid`, to the filesystem whose current superblock is `sb`.
pub fn plan_add(
    sb: &Superblock,
    device_bytes: u64,
    bucket_size: u32,
    member_uuid: [u8; 16],
) -> Result<MemberAdd, AddError> {
    let mut out = MemberAdd {
        index: 0,
        member: Member::ZERO,
        sb: *sb,
    };
    plan_add_into(sb, device_bytes, bucket_size, member_uuid, &mut out)?;
    Ok(out)
}

/// [`plan_add`] into `out` (a slot the caller keeps, e.g. on the kernel heap: a plan holds a
/// superblock, too big for a deep kernel stack). `out` is meaningful only on `Ok`.
pub fn plan_add_into(
    sb: &Superblock,
    device_bytes: u64,
    bucket_size: u32,
    member_uuid: [u8; 16],
    out: &mut MemberAdd,
) -> Result<(), AddError> {
    let index = sb.nr_members;
    if index as usize >= MAX_MEMBERS {
        return Err(AddError::Full);
    }
    if sb.member_table().iter().any(|m| m.uuid == member_uuid) {
        return Err(AddError::DuplicateUuid);
    }
    let mut member =
        Member::layout(device_bytes, bucket_size, member_uuid).map_err(AddError::Layout)?;
    // Discards follow the filesystem's option, as `format` sets them.
    if sb.options.get(Opt::Discard) == 0 {
        member.flags &= !MEMBER_DISCARD;
    }
    if sb.journal_offset >= member.journal_blocks() {
        return Err(AddError::JournalTooShort {
            blocks: member.journal_blocks(),
            offset: sb.journal_offset,
        });
    }
    out.index = index;
    out.member = member;
    out.sb = *sb;
    let next = &mut out.sb;
    next.seq = sb.seq + 1;
    next.nr_members = index + 1;
    next.members[index as usize] = member;
    next.member_index = index;
    next.validate().map_err(AddError::Superblock)
}

/// The state a newly added member's bucket table gives `bucket`: its metadata areas, and
/// every allocatable bucket free (no btree node is on it yet).
pub fn new_member_state(m: &Member, bucket: u64) -> BucketState {
    if bucket < m.journal_start as u64 {
        BucketState::Superblock
    } else if bucket < m.first_bucket as u64 {
        BucketState::Journal
    } else {
        BucketState::Free
    }
}

/// Whether `found` (a superblock read off a device about to be added) says the device is a
/// member of the filesystem whose current superblock is `current`: same filesystem uuid, and a
/// member uuid the current table has. Such a device (a member, or a copy of one) is refused.
/// A device of this filesystem whose member the current table does not name (left by an add
/// that did not complete) is not a member and may be added again.
pub fn claims_member(current: &Superblock, found: &Superblock) -> bool {
    found.uuid == current.uuid
        && current
            .member_table()
            .iter()
            .any(|m| m.uuid == found.this_member().uuid)
}

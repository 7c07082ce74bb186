// SPDX-License-Identifier: GPL-2.0

//! Adding a member while mounted: `/sys/fs/bucketfs/<uuid>/device_add` (the precedent is
//! bcache's `register` file), also while recovery is parked in journal replay. The policy
//! (layout, refusals, the new member table, the write order and what a crash leaves) is
//! `shared/member_add.rs`, shared with `bucketfs device add`; this file does the I/O and
//! publishes the member to the running filesystem.
//!
//! A member is published in this order, under the state lock (so no superblock write runs in
//! between, and `write_superblocks` sees `nr_members` members published): its superblocks and
//! every old member's are written with the new table; `st.sb` takes the new table; the member
//! is appended to `members`, then to `geometry` (readers without a lock see an index below
//! `geometry.len()` only once both have it); then its buckets join the allocator, which wakes
//! the parked requests. The `dev-N/` directory goes up once the write to `device_add` returns.
//! Only after the allocator has the device can a node land on it, and by then `node_target`
//! finds it.

use crate::allocator::DeviceBuckets;
use crate::bdev::{BlockDevice, IoBuf};
use crate::commit::boxed_copy;
use crate::fs::{Fs, FsState, Member};
use crate::shared::bucket_table::{
    encode_block, entries_in_block, table_blocks, BucketEntry, TableBlockId,
};
use crate::shared::member_add::{
    claims_member, new_member_state, plan_add_into, AddError, MemberAdd,
};
use crate::shared::superblock::{
    Member as GeoMember, Superblock, UuidFmt, BLOCK_SIZE, MAX_MEMBERS, SB_OFFSETS, SB_SIZE,
    TABLE_ENTRIES_PER_BLOCK,
};
use crate::text::{prefix, Text};
use crate::vec_ext::VecExt;
use crate::vfs::random_uuid;
use core::{fmt::Write, sync::atomic::Ordering};
use kernel::{
    alloc::{KBox, KVec},
    fmt,
    prelude::*,
    str::CString,
};

/// Most bucket table blocks written at once (1 MiB).
const TABLE_WRITE_BLOCKS: u64 = 256;

/// Prints a `device_add` error naming the filesystem and the path, and returns `err`.
macro_rules! add_err {
    ($fs:expr, $path:expr, $err:expr, $($arg:tt)*) => {{
        let err: Error = $err;
        pr_err!(
            "{}: device_add {}: {} ({})\n",
            UuidFmt(&$fs.uuid),
            prefix($path, 64),
            format_args!($($arg)*),
            err.to_errno()
        );
        err
    }};
}

/// The newest valid superblock copy on `dev`, if it has one (decoded on the heap).
#[inline(never)]
fn read_any_superblock(dev: &BlockDevice) -> Result<Option<KBox<Superblock>>> {
    let mut buf = IoBuf::new(SB_SIZE)?;
    let mut best: Option<KBox<Superblock>> = None;
    let mut slot = KBox::<Superblock>::new_uninit(GFP_KERNEL)?.write(Superblock::EMPTY);
    for off in SB_OFFSETS {
        if dev.read(off, &mut buf).is_err() || Superblock::decode_into(&buf, &mut slot).is_err() {
            continue;
        }
        if best.as_ref().map_or(true, |b| slot.seq > b.seq) {
            let next = KBox::<Superblock>::new_uninit(GFP_KERNEL)?.write(Superblock::EMPTY);
            best = Some(core::mem::replace(&mut slot, next));
        }
    }
    Ok(best)
}

/// A plan slot on the heap, for [`plan_add_into`].
fn empty_plan() -> Result<KBox<MemberAdd>> {
    Ok(KBox::<MemberAdd>::new_uninit(GFP_KERNEL)?.write(MemberAdd {
        index: 0,
        member: GeoMember::ZERO,
        sb: Superblock::EMPTY,
    }))
}

impl Fs {
    /// Adds the block device at `path` as a new member (the `device_add` file).
    ///
    /// Errors, each with one dmesg line naming the filesystem: `EROFS` on a read-only mount
    /// (a degraded one included, or one remounted read-only during the add); `EAGAIN` before
    /// the bucket tables are read (the file exists from early in the mount), or when the
    /// member table changed while the new member's table was written; `ENOSPC` with 16
    /// members; `EFBIG` for more buckets than one member can account for; `EINVAL` for a path
    /// that is not a block device, a device too small, or one that is a member already (or a
    /// copy of one); `EBUSY` for a device opened exclusively elsewhere (mounted, or a member of
    /// another filesystem); `ENOENT` and other open errors as the block layer gives them. On
    /// every error the device is closed; it is left as it was, or (a write failed) with a new
    /// member's metadata that no member table names.
    pub(crate) fn add_member(&self, path: &str) -> Result {
        if path.is_empty() || path.len() > 255 {
            return Err(add_err!(self, path, EINVAL, "not a device path"));
        }
        if !self.tables_ready.load(Ordering::Acquire) {
            return Err(add_err!(
                self,
                path,
                EAGAIN,
                "the mount has not read its bucket tables yet; write again once it has"
            ));
        }
        if self.read_only() {
            return Err(add_err!(
                self,
                path,
                EROFS,
                "read-only mount: members are added on a read-write mount only"
            ));
        }
        let _serialised = self.add_lock.lock();
        if self.state.lock().sb.nr_members as usize >= MAX_MEMBERS {
            return Err(add_err!(
                self,
                path,
                ENOSPC,
                "the member table has {MAX_MEMBERS} entries already (removed members keep theirs)"
            ));
        }
        let cpath = CString::try_from_fmt(fmt!("{path}"))?;
        // The mount's own holder: a member of this filesystem opens (and is recognised below);
        // a device claimed by anyone else gives EBUSY.
        let dev = BlockDevice::open(&cpath, self.holder).map_err(|e| {
            if e == ENOTBLK {
                add_err!(self, path, EINVAL, "not a block device")
            } else if e == EBUSY {
                add_err!(self, path, e, "the device is in use (mounted, or claimed)")
            } else {
                add_err!(self, path, e, "cannot open the device")
            }
        })?;
        if dev.read_only() {
            return Err(add_err!(self, path, EROFS, "read-only block device"));
        }
        let member = Member::new(dev);
        if let Some(i) = self.members.iter().position(|m| m.name() == member.name()) {
            return Err(add_err!(
                self,
                path,
                EINVAL,
                "{} is member {i} already",
                member.name()
            ));
        }
        // Planned on the superblock as it is now, to size and write the new member's table
        // without the state lock (a table write may take seconds on a big device, and every
        // reader of the filesystem's state would wait); planned again under the lock below.
        let plan = self.plan_member(path, &member)?;
        let m = &plan.member;
        if !DeviceBuckets::supported(m.nbuckets as u32) {
            return Err(add_err!(
                self,
                path,
                EFBIG,
                "{} buckets are more than bucketfs can account for in one member",
                m.nbuckets
            ));
        }
        // Everything that can fail for want of memory, before anything is written.
        let buckets = DeviceBuckets::new(m.nbuckets as u32, m.first_bucket, member.name(), |b| {
            new_member_state(m, b as u64)
        })?;
        // 1. Its bucket table and an empty journal block at the journal position.
        self.write_new_member_table(&member, &plan)
            .map_err(|e| add_err!(self, path, e, "cannot write the new member's bucket table"))?;
        self.publish_member(path, member, &plan, buckets)
    }

    /// Checks that `member`'s device is not a member already (a copy of one) and plans its
    /// addition on the current superblock. On the heap: a plan holds a superblock.
    #[inline(never)]
    fn plan_member(&self, path: &str, member: &Member) -> Result<KBox<MemberAdd>> {
        let found = read_any_superblock(member.dev()?)?;
        let st = self.state.lock();
        if let Some(index) = found
            .as_deref()
            .filter(|f| claims_member(&st.sb, f))
            .map(|f| f.member_index)
        {
            return Err(add_err!(
                self,
                path,
                EINVAL,
                "{} carries member {index} of this filesystem (a copy of a member?)",
                member.name()
            ));
        }
        let bucket_size = st.sb.default_bucket_size();
        let mut plan = empty_plan()?;
        loop {
            match plan_add_into(
                &st.sb,
                member.dev()?.bytes(),
                bucket_size,
                random_uuid(),
                &mut plan,
            ) {
                Ok(()) => return Ok(plan),
                Err(AddError::DuplicateUuid) => continue,
                Err(e) => {
                    let err = if e == AddError::Full { ENOSPC } else { EINVAL };
                    let mut msg = Text::<160>::new();
                    let _ = e.describe(&mut msg);
                    return Err(add_err!(
                        self,
                        path,
                        err,
                        "{}: {} ({} bytes, {bucket_size}-byte buckets)",
                        member.name(),
                        msg.as_str(),
                        member.dev()?.bytes()
                    ));
                }
            }
        }
    }

    /// Steps 2 to 4 of an add, under the state lock (no other superblock write in between,
    /// and a remount read-only waits for it or comes first): the plan made again on the
    /// superblock now current (an option or label write or a commit may have come in since
    /// the table was written; the new member's geometry cannot change), the new member's
    /// superblocks, every old member's primary, then every backup; then the member is
    /// published and its buckets join the allocator.
    #[inline(never)]
    fn publish_member(
        &self,
        path: &str,
        member: Member,
        first: &MemberAdd,
        buckets: DeviceBuckets,
    ) -> Result {
        let mut st = self.state.lock();
        if st.read_only {
            return Err(add_err!(
                self,
                path,
                EROFS,
                "the filesystem went read-only; not added"
            ));
        }
        let mut plan = empty_plan()?;
        match plan_add_into(
            &st.sb,
            member.dev()?.bytes(),
            first.member.bucket_size,
            first.member.uuid,
            &mut plan,
        ) {
            Ok(()) if plan.index == first.index && plan.member == first.member => {}
            _ => {
                return Err(add_err!(
                    self,
                    path,
                    EAGAIN,
                    "the member table changed during the add; not added"
                ))
            }
        }
        if plan.sb.journal_offset != first.sb.journal_offset {
            // The journal moved on (a commit): the empty block goes where it is now.
            self.write_empty_journal_block(&member, &plan)
                .map_err(|e| add_err!(self, path, e, "cannot write the new member's journal"))?;
        }
        // 2. Its superblocks. From their first byte on, the new seq must not be reused with
        // another table (a left-over device would tie with it).
        let index = plan.index;
        if let Err(e) = self.write_superblock_copies(&plan.sb, &[(index, &member)]) {
            st.sb.seq = plan.sb.seq;
            return Err(add_err!(
                self,
                path,
                e,
                "cannot write the new member's superblocks; not added"
            ));
        }
        // 3, 4. Every old member's primary, then every backup.
        let old = self.members.get(..index as usize).ok_or(EINVAL)?;
        let mut targets = KVec::with_capacity(old.len(), GFP_KERNEL)?;
        // Not to a removed member: it keeps its last superblock.
        for (i, o) in old.iter().enumerate() {
            if !plan.sb.members[i].is_removed() {
                targets.push((i as u32, o), GFP_KERNEL)?;
            }
        }
        if let Err(e) = self.write_superblock_copies(&plan.sb, &targets) {
            st.sb.seq = plan.sb.seq;
            // Some members may name the new member now: the old table again, with the next
            // seq, makes it not added (a crash before this lands leaves it added, complete).
            let settled = self.rewrite_superblock(&mut st);
            return Err(add_err!(
                self,
                path,
                e,
                "a member's superblock write failed; not added{}",
                if settled.is_ok() {
                    ""
                } else {
                    " in memory (the next mount may need the device: it stays a complete member)"
                }
            ));
        }
        *st.sb = plan.sb;
        let desc = plan.member;
        let name = {
            let mut n = Text::<32>::new();
            let _ = write!(n, "{}", member.name());
            n
        };
        // Published: the device first, then its geometry (see `Fs::members`).
        if self.members.push(member).is_err() || self.geometry.push(desc).is_err() {
            // Not reachable: adds are serialised and the table had room.
            return Err(add_err!(
                self,
                path,
                EINVAL,
                "no room for the member (a bug)"
            ));
        }
        // Its buckets join the allocator (still under the state lock: lock order state, then
        // allocator, as nowhere the other way), and parked requests decide again. Until
        // then a table write skips the member: its table was written whole above.
        self.alloc
            .add_device(index as usize, buckets)
            .map_err(|e| add_err!(self, path, e, "the allocator did not take the device"))?;
        drop(st);
        // Room for degraded nodes' missing copies: the re-replication pass looks again.
        self.kick_discards();
        pr_info!(
            "{}: added {} ({}) as member {index}: {} buckets of {} bytes, {} allocatable\n",
            UuidFmt(&self.uuid),
            prefix(path, 64),
            name.as_str(),
            desc.nbuckets,
            desc.bucket_size,
            desc.nbuckets - desc.first_bucket as u64
        );
        Ok(())
    }

    /// Writes the current superblock again as the next one (after a failed add).
    #[inline(never)]
    fn rewrite_superblock(&self, st: &mut FsState) -> Result {
        let again = boxed_copy(&st.sb)?;
        self.write_next_superblock(st, again)
    }

    /// Writes one zero block at the journal position `plan` names on the new member, durable
    /// (PREFLUSH|FUA) when this returns.
    fn write_empty_journal_block(&self, member: &Member, plan: &MemberAdd) -> Result {
        let m = &plan.member;
        let zero = IoBuf::new(BLOCK_SIZE)?;
        let journal =
            m.bucket_offset(m.journal_start as u64) + plan.sb.journal_offset * BLOCK_SIZE as u64;
        member.dev()?.write(journal, &zero, true)
    }

    /// Writes the new member's bucket table (every bucket by [`new_member_state`]) and one
    /// zero block at the journal position, durable when this returns (the last write is
    /// PREFLUSH|FUA).
    fn write_new_member_table(&self, member: &Member, plan: &MemberAdd) -> Result {
        let m = &plan.member;
        let dev = member.dev()?;
        self.write_empty_journal_block(member, plan)?;
        let blocks = table_blocks(m.nbuckets);
        let table = m.bucket_offset(m.table_start as u64);
        let mut entries = KVec::with_capacity(TABLE_ENTRIES_PER_BLOCK as usize, GFP_KERNEL)?;
        let mut first = 0u64;
        while first < blocks {
            let n = TABLE_WRITE_BLOCKS.min(blocks - first);
            let mut buf = IoBuf::new(n as usize * BLOCK_SIZE)?;
            for k in 0..n {
                let block = first + k;
                entries.clear();
                let b0 = block * TABLE_ENTRIES_PER_BLOCK;
                for b in b0..b0 + entries_in_block(m.nbuckets, block) as u64 {
                    let state = new_member_state(m, b);
                    entries.push(BucketEntry { state, gen: 0 }, GFP_KERNEL)?;
                }
                let id = TableBlockId {
                    uuid: self.uuid,
                    member: plan.index,
                    block: block as u32,
                };
                let o = k as usize * BLOCK_SIZE;
                encode_block(&id, plan.sb.seq, &entries, &mut buf[o..o + BLOCK_SIZE]);
            }
            let last = first + n == blocks;
            dev.write(table + first * BLOCK_SIZE as u64, &buf, last)?;
            first += n;
        }
        Ok(())
    }
}

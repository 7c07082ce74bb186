//! `bucketfs device add --new NEWDEV DEV...`: adds a member to an unmounted filesystem.
//!
//! The plan (layout, checks, the new superblock) is `member_add::plan_add`, shared with the
//! module's `device_add` sysfs file; the write order and why a crash at any point leaves the
//! member added or not added is in `rust/shared/member_add.rs`.

use crate::crash_point::{copy_name, CrashPoint};
use crate::device::Device;
use crate::format::{end_journal_at, write_table};
use crate::show::{read_probes, read_super};
use bucketfs_core::assemble::{assemble, AssembleError};
use bucketfs_core::member_add::{claims_member, new_member_state, plan_add, AddError};
use bucketfs_core::superblock::{Superblock, UuidFmt, SB_OFFSETS, SB_SIZE};

/// Reads the members' superblocks and assembles them as a mount would: every member of the
/// newest table must be given, once.
fn current(devs: &[Device]) -> Result<(Superblock, Vec<usize>), String> {
    let probes = read_probes(devs)?;
    let path = |i: usize| devs[i].path.display().to_string();
    let a = assemble(&probes).map_err(|e| match e {
        AssembleError::Foreign(i) => format!("{}: belongs to another filesystem", path(i)),
        AssembleError::UnknownMember(i) => format!("{}: not a member of this filesystem", path(i)),
        AssembleError::SameMember(a, b) => {
            format!("{} and {} are the same member", path(a), path(b))
        }
        AssembleError::Missing(m) => format!("member {m} is missing: give every member"),
        AssembleError::TooSmall(i) => format!("{}: smaller than its member", path(i)),
        AssembleError::Conflict(a, b) => format!(
            "{} and {} carry different member tables at the same seq: leave out the device \
             that is not a member",
            path(a),
            path(b)
        ),
    })?;
    let sb = probes[a.newest].sb;
    Ok((sb, a.device_of[..sb.nr_members as usize].to_vec()))
}

/// Adds `new` to the filesystem of `devs` (all its members). `bucket_size` defaults to member
/// 0's. Returns the new member's index and the filesystem uuid.
pub fn add(devs: &[Device], new: &Device, bucket_size: Option<u32>) -> Result<String, String> {
    if devs.iter().any(|d| d.path == new.path) {
        return Err(format!(
            "{}: already a member of this filesystem",
            new.path.display()
        ));
    }
    let (sb, device_of) = current(devs)?;
    // A device whose superblock names a member of the current table (a member, or a copy of
    // one) is refused; one of another filesystem, or left by an add that did not complete, is
    // overwritten.
    if let Ok((found, _)) = read_super(new) {
        if claims_member(&sb, &found) {
            return Err(format!(
                "{}: already a member of filesystem {} (member {})",
                new.path.display(),
                UuidFmt(&sb.uuid),
                found.member_index
            ));
        }
    }
    let bucket_size = bucket_size.unwrap_or(sb.default_bucket_size());
    let plan = loop {
        match plan_add(&sb, new.size, bucket_size, *uuid::Uuid::new_v4().as_bytes()) {
            Err(AddError::DuplicateUuid) => continue,
            Err(e) => {
                let mut msg = String::new();
                let _ = e.describe(&mut msg);
                return Err(format!("{}: {msg}", new.path.display()));
            }
            Ok(p) => break p,
        }
    };
    let next = &plan.sb;
    let index = plan.index;
    let mut crash = CrashPoint::from_env()?;
    let all: Vec<&Device> = devs.iter().chain([new]).collect();
    // 1. The new member's table and an empty journal at the journal position, durable.
    crash.before("the new member's journal block", &all)?;
    end_journal_at(new, next, index, next.journal_offset)?;
    crash.before("the new member's bucket table", &all)?;
    write_table(new, next, index, |b| new_member_state(&plan.member, b))?;
    new.sync()?;
    // 2. Its superblocks: from here a mount given it finds it added.
    let mut buf = vec![0u8; SB_SIZE];
    let mut copy = *next;
    copy.member_index = index;
    copy.encode(&mut buf);
    for (i, off) in SB_OFFSETS.into_iter().enumerate() {
        crash.before(
            &format!("the new member's {} superblock", copy_name(i)),
            &all,
        )?;
        new.write_at(off, &buf)?;
    }
    new.sync()?;
    // 3, 4. Every old member's primary, then every backup, each durable before the next.
    for (i, off) in SB_OFFSETS.into_iter().enumerate() {
        for (m, &d) in device_of.iter().enumerate() {
            // A removed member has no device (and gets nothing).
            if next.members[m].is_removed() {
                continue;
            }
            let mut copy = *next;
            copy.member_index = m as u32;
            copy.encode(&mut buf);
            crash.before(&format!("member {m}'s {} superblock", copy_name(i)), &all)?;
            devs[d].write_at(off, &buf)?;
            devs[d].sync()?;
        }
    }
    crash.finish();
    Ok(format!(
        "added {} as member {index} of {} ({} members, superblock seq {})",
        new.path.display(),
        UuidFmt(&sb.uuid),
        next.nr_members,
        next.seq
    ))
}

//! `bucketfs device remove --member N DEV...`: removes an empty member from an unmounted
//! filesystem.
//!
//! The plan (refusals, the new superblock) is `member_remove::plan_remove`, shared with the
//! module's `dev-N/remove` sysfs file; the write order and why a crash at any point leaves the
//! member present or removed is in `rust/shared/member_remove.rs`. Emptying a member (moving
//! its btree node copies) needs the allocator and the commit: it is done while mounted
//! (`dev-N/evacuate`); this tool refuses a member that still holds a copy.

use crate::crash_point::{copy_name, CrashPoint};
use crate::device::Device;
use crate::dump::walk;
use crate::show::read_probes;
use bucketfs_core::assemble::assemble_partial;
use bucketfs_core::journal_format::decode_header;
use bucketfs_core::member_remove::plan_remove;
use bucketfs_core::superblock::{Superblock, UuidFmt, BLOCK_SIZE, SB_OFFSETS, SB_SIZE};

/// Removes member `member` from the filesystem of `devs` (every member but it; its own device
/// may be given, and is not written).
pub fn remove(devs: &[Device], member: u32) -> Result<String, String> {
    let probes = read_probes(devs)?;
    let path = |i: usize| devs[i].path.display().to_string();
    let a = assemble_partial(&probes).map_err(|e| {
        format!("the devices do not make one filesystem ({e:?}); give every member")
    })?;
    let sb = probes[a.newest].sb;
    if let Some(m) = (0..sb.nr_members).find(|&m| m != member && a.is_missing(m as usize)) {
        return Err(format!(
            "member {m} is missing: give every member but {member}"
        ));
    }
    // Replay refuses a journal entry that changes a removed member's bucket: an unreplayed
    // journal (a filesystem not mounted read-write since it was written) must be replayed
    // by a mount first. Every member holds a whole copy of the journal: any copy with the
    // next entry at the journal position is enough to refuse.
    for (m, d) in a.device_of[..sb.nr_members as usize].iter().enumerate() {
        let (Some(dev), false) = (devs.get(*d), sb.members[m].is_removed()) else {
            continue;
        };
        if let Some(seq) = pending_entry(dev, &sb, m)? {
            return Err(format!(
                "the journal holds entries not replayed yet (seq {seq} on member {m}): mount \
                 the filesystem read-write once to replay them, then remove member {member}"
            ));
        }
    }
    let tree = walk(devs)?;
    if tree.sb.seq != sb.seq {
        return Err("the btree walk read another superblock than the assembly (a bug)".into());
    }
    let copies = tree.locations.iter().filter(|(m, _)| *m == member).count() as u64;
    let next = plan_remove(&sb, member, 0, copies).map_err(|e| {
        let mut msg = String::new();
        let _ = e.describe(&mut msg);
        format!("member {member}: {msg}")
    })?;
    // Every remaining member's primary, then every backup, each durable before the next;
    // nothing to the removed member.
    let mut crash = CrashPoint::from_env()?;
    let all: Vec<&Device> = devs.iter().collect();
    let mut buf = vec![0u8; SB_SIZE];
    for (i, off) in SB_OFFSETS.into_iter().enumerate() {
        for (m, d) in a.device_of[..sb.nr_members as usize].iter().enumerate() {
            if m as u32 == member || next.members[m].is_removed() {
                continue;
            }
            let Some(dev) = devs.get(*d) else {
                return Err(format!("member {m}: no device (a bug)"));
            };
            let mut copy = next;
            copy.member_index = m as u32;
            copy.encode(&mut buf);
            crash.before(&format!("member {m}'s {} superblock", copy_name(i)), &all)?;
            dev.write_at(off, &buf)
                .map_err(|e| format!("{e} (writing {})", path(*d)))?;
            dev.sync()?;
        }
    }
    crash.finish();
    Ok(format!(
        "removed member {member} of {} ({} member(s) left, superblock seq {})",
        UuidFmt(&sb.uuid),
        next.live_members(),
        next.seq
    ))
}

/// The sequence number of the entry at member `m`'s journal position, if a valid entry header
/// of this filesystem with the next sequence number (`journal_seq`) is there.
fn pending_entry(dev: &Device, sb: &Superblock, m: usize) -> Result<Option<u64>, String> {
    let geo = &sb.members[m];
    if sb.journal_offset >= geo.journal_blocks() {
        return Ok(None);
    }
    let at = geo.bucket_offset(geo.journal_start as u64) + sb.journal_offset * BLOCK_SIZE as u64;
    let mut block = vec![0u8; BLOCK_SIZE];
    dev.read_at(at, &mut block)?;
    Ok(decode_header(&sb.uuid, &block)
        .ok()
        .filter(|h| h.seq == sb.journal_seq)
        .map(|h| h.seq))
}

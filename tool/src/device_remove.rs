//! `bucketfs device remove --member N DEV...`: removes an empty member from an unmounted
//! filesystem.
//!
//! The plan (refusals, the new superblock) is `member_remove::plan_remove`, shared with the
//! module's `dev-N/remove` sysfs file; the write order and why a crash at any point leaves the
//! member present or removed is in `rust/shared/member_remove.rs`. Emptying a member (moving
//! its btree node copies) needs the allocator and the commit: it is done while mounted
//! (`dev-N/evacuate`); this tool refuses a member that still holds a copy.

use crate::device::Device;
use crate::dump::walk;
use crate::show::read_super;
use bucketfs_core::assemble::{assemble_partial, Probe};
use bucketfs_core::member_remove::plan_remove;
use bucketfs_core::superblock::{UuidFmt, SB_OFFSETS, SB_SIZE};

/// Removes member `member` from the filesystem of `devs` (every member but it; its own device
/// may be given, and is not written).
pub fn remove(devs: &[Device], member: u32) -> Result<String, String> {
    let mut probes = Vec::new();
    for d in devs {
        probes.push(Probe {
            sb: read_super(d)?.0,
            bytes: d.size,
        });
    }
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
    let mut buf = vec![0u8; SB_SIZE];
    for off in SB_OFFSETS {
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
            dev.write_at(off, &buf)
                .map_err(|e| format!("{e} (writing {})", path(*d)))?;
            dev.sync()?;
        }
    }
    Ok(format!(
        "removed member {member} of {} ({} member(s) left, superblock seq {})",
        UuidFmt(&sb.uuid),
        next.live_members(),
        next.seq
    ))
}

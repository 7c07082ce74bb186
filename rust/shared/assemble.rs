// SPDX-License-Identifier: GPL-2.0

//! Assembling a filesystem from the superblocks read off the devices of a mount source.
//!
//! Every device must belong to the same filesystem, each member of the newest member table
//! must be given exactly once, and each device must be at least as large as its member.

use crate::shared::superblock::{Superblock, MAX_MEMBERS};
use core::borrow::Borrow;

/// What was read off one device of the mount source. The superblock is held as `S`: by value
/// (host tools), or by reference (the kernel keeps superblocks on the heap: they are large).
#[derive(Clone, Copy, Debug)]
pub struct Probe<S = Superblock> {
    /// Its newest valid superblock copy.
    pub sb: S,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Why the devices do not make one filesystem. Devices are numbered by their position in the
/// mount source, members by the member table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssembleError {
    /// Device `.0` belongs to another filesystem than device 0.
    Foreign(usize),
    /// Device `.0` claims a member the newest member table does not have (index or uuid).
    UnknownMember(usize),
    /// Devices `.0` and `.1` are the same member.
    SameMember(usize, usize),
    /// Member `.0` is not among the devices.
    Missing(u32),
    /// Device `.0` is smaller than its member.
    TooSmall(usize),
    /// Devices `.0` and `.1` both carry the newest `seq` but different member tables: one of
    /// them was left by a member add that a crash interrupted, and the filesystem went on
    /// without it (see `member_add.rs`). Refused rather than chosen by device order.
    Conflict(usize, usize),
}

/// The assembled filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assembly {
    /// Device whose superblock is the newest: its copy describes the filesystem.
    pub newest: usize,
    /// Device of each member, for members `0..nr_members` (`usize::MAX`: none).
    pub device_of: [usize; MAX_MEMBERS],
    /// Removed members of the newest table (bit per member): no device gives them, and none
    /// is needed.
    pub removed: u32,
}

/// Assembles `probes` (one per device, in mount source order); every member must be given.
pub fn assemble(probes: &[Probe]) -> Result<Assembly, AssembleError> {
    let a = assemble_partial(probes)?;
    match a.first_missing(probes[a.newest].sb.nr_members) {
        Some(m) => Err(AssembleError::Missing(m)),
        None => Ok(a),
    }
}

impl Assembly {
    /// Whether member `m` has no device (see [`assemble_partial`]) and needs one: a removed
    /// member is not missing.
    pub fn is_missing(&self, m: usize) -> bool {
        self.device_of.get(m).map_or(true, |&d| d == usize::MAX) && !self.is_removed(m)
    }

    /// Whether member `m` is removed in the newest table.
    pub fn is_removed(&self, m: usize) -> bool {
        m < MAX_MEMBERS && self.removed & (1 << m) != 0
    }

    /// The members (bit per member) whose device's newest valid superblock copy is older than
    /// the one the filesystem was assembled from: a superblock write that a crash interrupted
    /// (a commit, a member add or removal) reached some members and not these. A read-write
    /// mount writes the superblock again to every member, so that every member carries the
    /// table it used (see `Documentation/on-disk-format.md`).
    pub fn behind<S: Borrow<Superblock>>(&self, probes: &[Probe<S>]) -> u32 {
        let Some(newest) = probes.get(self.newest) else {
            return 0;
        };
        let seq = newest.sb.borrow().seq;
        self.device_of
            .iter()
            .enumerate()
            .filter(|&(_, &d)| probes.get(d).is_some_and(|p| p.sb.borrow().seq < seq))
            .fold(0u32, |mask, (m, _)| mask | 1 << m)
    }

    /// The first of members `0..nr_members` that has no device.
    pub fn first_missing(&self, nr_members: u32) -> Option<u32> {
        (0..nr_members).find(|&m| self.is_missing(m as usize))
    }
}

/// Assembles `probes` as [`assemble`] does, but leaves members that no device gives missing
/// (`device_of` is `usize::MAX` for them): for a degraded mount, which decides what it can do
/// without them. The newest superblock is the newest among the devices given.
pub fn assemble_partial(probes: &[Probe]) -> Result<Assembly, AssembleError> {
    assemble_partial_of(probes)
}

/// [`assemble_partial`] for probes holding their superblocks as `S` (the kernel's hold
/// references to superblocks on the heap).
pub fn assemble_partial_of<S: Borrow<Superblock>>(
    probes: &[Probe<S>],
) -> Result<Assembly, AssembleError> {
    let sb = |i: usize| probes[i].sb.borrow();
    let Some(first) = probes.first() else {
        return Err(AssembleError::Missing(0));
    };
    let first = first.sb.borrow();
    if let Some(i) = probes.iter().position(|p| p.sb.borrow().uuid != first.uuid) {
        return Err(AssembleError::Foreign(i));
    }
    let mut newest = 0;
    for i in 0..probes.len() {
        if sb(i).seq > sb(newest).seq {
            newest = i;
        }
    }
    let table = sb(newest);
    let mut device_of = [usize::MAX; MAX_MEMBERS];
    let removed = table
        .member_table()
        .iter()
        .enumerate()
        .filter(|(_, m)| m.is_removed())
        .fold(0u32, |mask, (i, _)| mask | 1 << i);
    for (i, p) in probes.iter().enumerate() {
        let idx = sb(i).member_index as usize;
        // A removed entry has no uuid, and the device that was that member is no member.
        let known = table.member_table().get(idx).filter(|m| !m.is_removed());
        if known.map(|m| m.uuid) != Some(sb(i).this_member().uuid) {
            return Err(AssembleError::UnknownMember(i));
        }
        if device_of[idx] != usize::MAX {
            return Err(AssembleError::SameMember(device_of[idx], i));
        }
        if known.map_or(true, |m| p.bytes < m.bytes()) {
            return Err(AssembleError::TooSmall(i));
        }
        device_of[idx] = i;
    }
    // Checked once every device is known to be a member of the newest table: a device the
    // table does not name is reported as that.
    if let Some(i) = probes.iter().position(|p| {
        let sb = p.sb.borrow();
        sb.seq == table.seq
            && (sb.nr_members != table.nr_members || sb.member_table() != table.member_table())
    }) {
        return Err(AssembleError::Conflict(newest, i));
    }
    Ok(Assembly {
        newest,
        device_of,
        removed,
    })
}

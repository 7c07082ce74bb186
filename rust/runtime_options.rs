// SPDX-License-Identifier: GPL-2.0

//! Option writes while mounted: a write under `options/`, `dev-N/discard` or `dev-N/label`, and
//! a remount.
//!
//! Each change is checked against both the options in force and the stored ones, persisted in
//! every member's superblock (`commit.rs`), and only then put in force; then parked allocations
//! are woken to rebuild their inputs, and the discard worker is kicked. On any error nothing
//! changes.

use crate::fs::Fs;
use crate::shared::options::{MountOptions, Opt, OptError};
use crate::shared::superblock::MEMBER_DISCARD;
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
        let members = st.sb.nr_members;
        let mut live = st.live;
        let mut sb = st.sb;
        live.set_all(changes, members)
            .map_err(|e| (EINVAL, Some(e)))?;
        // A target being set must name a member (a stored one may name none, see
        // `Options::check_target_members`).
        if changes.get(Opt::MetadataTarget).is_some() {
            live.check_target_members(st.sb.member_labels())
                .map_err(|e| (EINVAL, Some((Opt::MetadataTarget, e))))?;
        }
        sb.options
            .set_all(changes, members)
            .map_err(|e| (EINVAL, Some(e)))?;
        self.write_next_superblock(&mut st, sb)
            .map_err(|e| (e, None))?;
        st.live = live;
        drop(st);
        // Parked allocations rebuild their inputs from the new value; a change of `discard`
        // may have made discards possible.
        self.alloc.wake_all();
        self.kick_discards();
        Ok(())
    }

    /// Turns discards on member `m` on or off; persisted in the member table.
    pub(crate) fn set_member_discard(&self, m: usize, on: bool) -> Result {
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
        self.update_superblock(|sb| {
            if m >= sb.nr_members as usize {
                return Err(EINVAL);
            }
            let l = sb.labels.get_mut(m).ok_or(EINVAL)?;
            *l = label;
            Ok(())
        })?;
        self.alloc.wake_all();
        Ok(())
    }
}

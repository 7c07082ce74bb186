// SPDX-License-Identifier: GPL-2.0

//! Option writes while mounted: a write under `options/` or `dev-N/discard`, and a remount.
//!
//! Each change is checked against both the options in force and the stored ones, persisted in
//! every member's superblock (`commit.rs`), and only then put in force; then parked allocations
//! are woken to rebuild their inputs, and the discard worker is kicked. On any error nothing
//! changes.

use crate::allocator::LiveInputs;
use crate::fs::Fs;
use crate::shared::options::{MountOptions, Opt, OptError};
use crate::shared::superblock::MEMBER_DISCARD;
use kernel::prelude::*;

impl Fs {
    /// Sets option `opt` at runtime: checked against both the live and the stored options,
    /// then persisted in every member's superblock. On any error nothing changes.
    pub(crate) fn set_option(&self, opt: Opt, value: u32) -> Result<(), (Error, Option<OptError>)> {
        self.set_options(&MountOptions::one(opt, value))
            .map_err(|(e, why)| (e, why.map(|(_, why)| why)))
    }

    /// Sets every option given in `changes` at runtime as one change (a remount may give
    /// several), as [`Fs::set_option`] does one; `Err` names the option blamed.
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
        sb.options
            .set_all(changes, members)
            .map_err(|e| (EINVAL, Some(e)))?;
        self.write_next_superblock(&mut st, sb)
            .map_err(|e| (e, None))?;
        st.live = live;
        self.live_inputs.publish(LiveInputs::of(&live));
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
}

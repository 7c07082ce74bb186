//! A testing knob for the member changes' crash reasoning (`tests/guest/t_addcrash.sh`).
//!
//! `BUCKETFS_CRASH_AFTER=K` in the environment of `bucketfs device add` or `device remove`
//! stops the write sequence after its K-th write, as a power cut there would leave the disks:
//! every write before it done and made durable, none after. The tool then fails, naming the
//! write it stopped before. Every write of the sequence counts (the new member's journal block
//! and bucket table, each of its superblock copies, each old member's primary, each backup), so
//! K from 0 to the number of writes covers every point; a K at or past that number lets the
//! sequence complete, and the tool says how many writes it made. Hidden: not in `--help`.

use crate::device::Device;

/// The environment variable.
pub const VAR: &str = "BUCKETFS_CRASH_AFTER";

/// Counts the writes of one sequence and stops it at the chosen point.
pub struct CrashPoint {
    after: Option<u64>,
    done: u64,
}

impl CrashPoint {
    /// Reads [`VAR`]; unset means never stop.
    pub fn from_env() -> Result<CrashPoint, String> {
        let after = match std::env::var(VAR) {
            Err(std::env::VarError::NotPresent) => None,
            Err(e) => return Err(format!("{VAR}: {e}")),
            Ok(s) => Some(
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("{VAR}={s}: not a write count"))?,
            ),
        };
        Ok(CrashPoint { after, done: 0 })
    }

    /// Called before each write of the sequence, `what` naming it. At the crash point, makes
    /// every device of `devs` durable (what was written so far survives the "power cut") and
    /// fails; otherwise counts the write.
    pub fn before(&mut self, what: &str, devs: &[&Device]) -> Result<(), String> {
        if self.after == Some(self.done) {
            for d in devs {
                d.sync()?;
            }
            return Err(format!(
                "{VAR}: stopped after {} write(s), before {what}",
                self.done
            ));
        }
        self.done += 1;
        Ok(())
    }

    /// At the end of a completed sequence: with the knob set, says how many writes it made
    /// (on stderr, so that the tool's report stays as it is).
    pub fn finish(&self) {
        if let Some(k) = self.after {
            eprintln!(
                "{VAR}={k}: not reached, the sequence made {} write(s)",
                self.done
            );
        }
    }
}

/// "primary" or "backup": superblock copy `i` (its offset in `SB_OFFSETS`).
pub fn copy_name(i: usize) -> &'static str {
    if i == 0 {
        "primary"
    } else {
        "backup"
    }
}

// SPDX-License-Identifier: GPL-2.0

//! What bucketfs offers to the VFS ([`FileSystem`]): mount option parsing, mount, remount
//! and statfs. Unmount is dropping [`Mounted`].

use crate::fs::{describe_option_error, Fs};
use crate::mount::Mounted;
use crate::shared::options::{lookup, Kind, MountFlag, MountOptions, Opt, OptError, When};
use crate::shared::superblock::UuidFmt;
use crate::text::{prefix, Text};
use crate::vfs::{FileSystem, Statfs};
use core::fmt::Write;
use kernel::{alloc::KBox, prelude::*, str::CStr};

/// The bucketfs filesystem type.
pub(crate) struct BucketFsType;

impl FileSystem for BucketFsType {
    type Options = MountOptions;
    type Data = KBox<Mounted>;

    fn parse_option(
        opts: &mut MountOptions,
        key: &CStr,
        value: Option<&CStr>,
        remount: bool,
        msg: &mut dyn Write,
    ) -> Result {
        let Ok(key) = key.to_str() else {
            return Err(ENOPARAM);
        };
        // A flag: `name` for a boolean is `name=1`, `noname` is `name=0`.
        let (name, text) = match value.map(|v| v.to_str()) {
            Some(Ok(v)) => (key, v),
            Some(Err(_)) => (key, "\u{fffd}"),
            None => match key.strip_prefix("no").filter(|n| lookup(n).is_some()) {
                Some(n) => (n, "0"),
                None => (key, "1"),
            },
        };
        let Some(opt) = lookup(name) else {
            return parse_flag(opts, key, value.is_some(), remount, msg);
        };
        let when = if remount { When::Runtime } else { When::Mount };
        // An option a remount may not change is refused as such, whatever its value.
        let result = match opt.desc().kind {
            _ if remount && !opt.desc().settable.runtime => Err(OptError::NotSettable),
            Kind::U32 { .. } | Kind::Target if value.is_none() => Err(OptError::NotANumber),
            _ => opts.parse_at(when, name, text),
        };
        result.map_err(|e| {
            let mut text_msg = Text::<120>::new();
            if e == OptError::NotSettable && remount {
                let _ = write!(
                    text_msg,
                    "{name}: cannot be changed by a remount (not a runtime option)"
                );
            } else {
                describe_option_error(&mut text_msg, name, prefix(text, 32), e);
            }
            let _ = msg.write_str(text_msg.as_str());
            EINVAL
        })
    }

    fn open(source: &CStr, opts: &MountOptions, read_only: bool) -> Result<KBox<Mounted>> {
        let Ok(source) = source.to_str() else {
            pr_err!("mount source is not UTF-8\n");
            return Err(EINVAL);
        };
        Fs::open(source, opts, read_only)
    }

    /// Goes read-only or read-write if asked, then applies the runtime options given (parsed
    /// by [`Self::parse_option`]) as one change, as a write under `options/` does: checked,
    /// persisted (in force only, on a read-only mount), then in force, waking parked
    /// allocations. No option and no ro/rw change given: nothing changes. An option refused
    /// undoes the ro/rw change (going read-only cannot fail; going read-write is refused for a
    /// mount that cannot write).
    fn reconfigure(mounted: &Mounted, opts: &MountOptions, read_only: Option<bool>) -> Result {
        let fs = mounted.fs();
        match read_only {
            Some(true) => {
                fs.set_read_only();
                pr_info!("{}: remount: read-only\n", UuidFmt(&fs.uuid));
            }
            Some(false) => {
                fs.set_read_write()?;
                pr_info!("{}: remount: read-write\n", UuidFmt(&fs.uuid));
            }
            None => {}
        }
        let undo = || match read_only {
            Some(true) => {
                // Back to read-write, as before the remount: it was, so it may.
                let _ = fs.set_read_write();
            }
            Some(false) => fs.set_read_only(),
            None => {}
        };
        if opts.is_empty() {
            return Ok(());
        }
        let mut msg = Text::<160>::new();
        match fs.set_options(opts) {
            Ok(()) => {
                for opt in Opt::ALL.into_iter().filter(|&o| opts.get(o).is_some()) {
                    let _ = write!(msg, " {}=", opt.desc().name);
                    let _ = opts.show(opt, &mut msg);
                }
                pr_info!("{}: remount: set{}\n", UuidFmt(&fs.uuid), msg.as_str());
                Ok(())
            }
            Err((err, why)) => {
                match why {
                    Some((opt, e)) => {
                        let mut num = Text::<40>::new();
                        let _ = match opts.get(opt) {
                            Some(_) => opts.show(opt, &mut num),
                            None => fs.state.lock().live.show(opt, &mut num),
                        };
                        describe_option_error(&mut msg, opt.desc().name, num.as_str(), e);
                    }
                    None => {
                        let _ = write!(msg, "options not changed");
                    }
                }
                pr_err!(
                    "{}: remount: {} ({})\n",
                    UuidFmt(&fs.uuid),
                    msg.as_str(),
                    err.to_errno()
                );
                undo();
                Err(err)
            }
        }
    }

    fn statfs(mounted: &Mounted) -> Statfs {
        let (blocks, empty, free) = mounted.fs().statfs();
        let mut fsid = [0u8; 8];
        for (i, b) in mounted.fs().uuid.iter().enumerate() {
            fsid[i % 8] ^= b;
        }
        Statfs {
            block_size: 4096,
            blocks,
            blocks_free: empty,
            blocks_avail: free,
            fsid: u64::from_le_bytes(fsid),
        }
    }
}

/// Parses mount-only flag `key` (`norecovery`, `degraded`): `ENOPARAM` if it is none (the VFS
/// handles it or reports it unknown); `EINVAL` with a message if it has a value or is given
/// to a remount.
fn parse_flag(
    opts: &mut MountOptions,
    key: &str,
    has_value: bool,
    remount: bool,
    msg: &mut dyn Write,
) -> Result {
    let Some(flag) = MountFlag::lookup(key) else {
        return Err(ENOPARAM);
    };
    if remount {
        let _ = write!(
            msg,
            "{key}: cannot be changed by a remount (a mount-only flag)"
        );
        return Err(EINVAL);
    }
    if has_value {
        let _ = write!(msg, "{key}: takes no value");
        return Err(EINVAL);
    }
    opts.set_flag(flag);
    Ok(())
}

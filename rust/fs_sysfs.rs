// SPDX-License-Identifier: GPL-2.0

//! What bucketfs offers to sysfs ([`SysfsFiles`]): the files of `/sys/fs/bucketfs/<uuid>/`,
//! one row each. Adding a file is one row here plus its line in
//! `Documentation/ABI/testing/sysfs-fs-bucketfs`.
//!
//! - `options/<name>`: one file per row of the option table ([`OPTIONS`]); reads give the
//!   value in force, writes (root only, runtime options only) are validated, applied and
//!   persisted.
//! - `internal/`: debugging knobs ([`INTERNAL`]).
//! - `dev-N/`: the member's device name, geometry, discard figures ([`DEV`]), then its
//!   buckets per state, one file per [`BucketState`].

use crate::fs::{describe_option_error, Fs, REPLAY_COMMITTED, REPLAY_IN_MEMORY, REPLAY_SKIPPED};
use crate::shared::bucket_table::BucketState;
use crate::shared::options::{parse_value, MountOptions, Opt, OptError, When, OPTIONS};
use crate::shared::superblock::UuidFmt;
use crate::shared::target::Label;
use crate::sysfs::{At, Dir, File, PageWriter, SysfsFiles};
use crate::text::{prefix, Text};
use core::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
};
use kernel::prelude::*;

impl SysfsFiles for Fs {
    fn file(dir: Dir, index: usize) -> Option<File<Fs>> {
        match dir {
            Dir::Top => TOP.get(index).copied(),
            Dir::Options => OPTIONS.get(index).map(|d| File {
                name: d.name,
                mode: if d.settable.runtime { 0o644 } else { 0o444 },
                show: Some(show_option),
                store: Some(store_option),
            }),
            Dir::Internal => INTERNAL.get(index).copied(),
            Dir::Dev => DEV.get(index).copied().or_else(|| {
                let state = BucketState::ALL.get(index.checked_sub(DEV.len())?)?;
                Some(File {
                    name: state.name(),
                    mode: 0o444,
                    show: Some(show_bucket_count),
                    store: None,
                })
            }),
        }
    }

    fn nr_devs(&self) -> usize {
        self.nr_members()
    }
}

/// The top directory: `device_add`.
const TOP: [File<Fs>; 1] = [write_only("device_add", store_device_add)];

/// `device_add`: adds the block device at the path written as a new member (`member_add.rs`).
fn store_device_add(fs: &Fs, _at: At, bytes: &[u8]) -> Result {
    let Ok(text) = core::str::from_utf8(bytes) else {
        pr_err!(
            "{}: device_add: the path is not UTF-8 (-22)\n",
            UuidFmt(&fs.uuid)
        );
        return Err(EINVAL);
    };
    fs.add_member(text.trim())
}

/// A read-only file showing one value: `|fs, at| value`.
macro_rules! value_file {
    ($name:literal, |$fs:ident, $at:ident| $value:expr) => {
        value_file!($name, 0o444, |$fs, $at| $value, None)
    };
    ($name:literal, $mode:literal, |$fs:ident, $at:ident| $value:expr, $store:expr) => {
        File {
            name: $name,
            mode: $mode,
            show: Some({
                fn show($fs: &Fs, $at: At, out: &mut PageWriter<'_>) -> core::fmt::Result {
                    writeln!(out, "{}", $value)
                }
                show
            }),
            store: $store,
        }
    };
}

/// A `dev-N/` file showing one value of a member: `|fs, m| value`, with `m < fs.nr_members()`
/// (a member out of range reads nothing; below it, `members` and `geometry` both have it).
macro_rules! dev_file {
    ($name:literal, |$fs:ident, $m:ident| $value:expr) => {
        dev_file!($name, 0o444, |$fs, $m| $value, None)
    };
    ($name:literal, $mode:literal, |$fs:ident, $m:ident| $value:expr, $store:expr) => {
        File {
            name: $name,
            mode: $mode,
            show: Some({
                fn show($fs: &Fs, at: At, out: &mut PageWriter<'_>) -> core::fmt::Result {
                    let $m = at.member;
                    if $m >= $fs.nr_members() {
                        return Ok(());
                    }
                    writeln!(out, "{}", $value)
                }
                show
            }),
            store: $store,
        }
    };
}

/// A root-only write-only file.
const fn write_only(name: &'static str, store: fn(&Fs, At, &[u8]) -> Result) -> File<Fs> {
    File {
        name,
        mode: 0o200,
        show: None,
        store: Some(store),
    }
}

/// `internal/`.
const INTERNAL: [File<Fs>; 7] = [
    value_file!("superblock_seq", |fs, _at| fs.state.lock().sb.seq),
    File {
        name: "alloc_debug",
        mode: 0o444,
        show: Some(|fs, _, out| fs.alloc.debug(out)),
        store: None,
    },
    File {
        name: "btree_stats",
        mode: 0o444,
        show: Some(|fs, _, out| {
            let p = &fs.progress;
            writeln!(
                out,
                "keys {}\nnodes {}\ndepth {}\ndigest {:016x}\nnamespace_keys {}",
                p.keys.load(Ordering::Relaxed),
                p.nodes.load(Ordering::Relaxed),
                p.depth.load(Ordering::Relaxed),
                p.digest.load(Ordering::Relaxed),
                p.namespace_keys.load(Ordering::Relaxed)
            )
        }),
        store: None,
    },
    File {
        name: "replay",
        mode: 0o444,
        show: Some(|fs, _, out| {
            let p = &fs.progress;
            let at = |v: &AtomicU64| v.load(Ordering::Relaxed);
            writeln!(
                out,
                "replayed {} of {} key(s) from {} journal bytes in {} us\nread_us {}\n\
                 apply_us {}\ncommit_us {}\nnodes_written {}\njournal_entries {} seq {}..={}\n\
                 mode {}",
                at(&p.replay_done),
                at(&p.replay_total),
                at(&p.replay_bytes),
                at(&p.replay_us),
                at(&p.read_us),
                at(&p.apply_us),
                at(&p.commit_us),
                at(&p.nodes_written),
                at(&p.journal_entries),
                at(&p.journal_first_seq),
                at(&p.journal_last_seq),
                match at(&p.replay_mode) {
                    REPLAY_IN_MEMORY => "in-memory (read-only mount: nothing committed)",
                    REPLAY_SKIPPED => "not-replayed (norecovery)",
                    REPLAY_COMMITTED => "committed",
                    _ => "?",
                }
            )
        }),
        store: None,
    },
    File {
        name: "degraded_nodes",
        mode: 0o444,
        show: Some(|fs, _, out| fs.show_degraded(out)),
        store: None,
    },
    write_only("abort_stuck_allocations", store_abort),
    write_only("trigger_discards", store_trigger_discards),
];

/// `dev-N/`, before the per-state bucket counts.
const DEV: [File<Fs>; 17] = [
    dev_file!("device", |fs, m| fs.members[m].name()),
    dev_file!("nbuckets", |fs, m| fs.geometry[m].nbuckets),
    dev_file!("bucket_size", |fs, m| fs.geometry[m].bucket_size),
    dev_file!("first_bucket", |fs, m| fs.geometry[m].first_bucket),
    dev_file!(
        "discard",
        0o644,
        |fs, m| fs.state.lock().sb.members[m].discard() as u32,
        Some(store_dev_discard)
    ),
    dev_file!("max_discard_bytes", |fs, m| fs.members[m]
        .dev()
        .map_or(0, |d| d.max_discard_bytes())),
    dev_file!("discard_buckets", |fs, m| fs.discard.counters[m]
        .buckets
        .load(Ordering::Relaxed)),
    dev_file!("discard_commands", |fs, m| fs.discard.counters[m]
        .commands
        .load(Ordering::Relaxed)),
    dev_file!("discard_bytes", |fs, m| fs.discard.counters[m]
        .bytes
        .load(Ordering::Relaxed)),
    dev_file!("freed_without_discard", |fs, m| fs.discard.counters[m]
        .without_io
        .load(Ordering::Relaxed)),
    dev_file!("discard_errors", |fs, m| fs.discard.counters[m]
        .errors
        .load(Ordering::Relaxed)),
    dev_file!("discard_ns", |fs, m| fs.discard.counters[m]
        .ns
        .load(Ordering::Relaxed)),
    dev_file!(
        "writable",
        0o644,
        |fs, m| fs.alloc.writable(m) as u32,
        Some(store_dev_writable)
    ),
    File {
        name: "label",
        mode: 0o644,
        show: Some(show_dev_label),
        store: Some(store_dev_label),
    },
    dev_file!("state", |fs, m| {
        let member = &fs.members[m];
        if member.is_removed() {
            "removed"
        } else if member.is_missing() {
            "missing"
        } else {
            "member"
        }
    }),
    write_only("evacuate", store_dev_evacuate),
    write_only("remove", store_dev_remove),
];

/// Refuses a write to `dev-N/<file>` of a removed member (`EINVAL`, naming it).
fn refuse_removed(fs: &Fs, at: At, file: &str) -> Result {
    if fs.members.get(at.member).is_some_and(|m| m.is_removed()) {
        pr_err!(
            "{}: dev-{}/{file}: member {} was removed (-22)\n",
            UuidFmt(&fs.uuid),
            at.member,
            at.member
        );
        return Err(EINVAL);
    }
    Ok(())
}

/// `dev-N/evacuate`: "1" moves every btree node copy off the member (`member_remove.rs`).
fn store_dev_evacuate(fs: &Fs, at: At, bytes: &[u8]) -> Result {
    if !parse_dev_bool(fs, at, "evacuate", bytes)? {
        return Err(EINVAL);
    }
    fs.evacuate_member(at.member)
}

/// `dev-N/remove`: "1" removes the member, which must be empty (`member_remove.rs`).
fn store_dev_remove(fs: &Fs, at: At, bytes: &[u8]) -> Result {
    if !parse_dev_bool(fs, at, "remove", bytes)? {
        return Err(EINVAL);
    }
    fs.remove_member(at.member)
}

/// `dev-N/<state>`: the member's buckets in the state of row `at.index - DEV.len()`.
fn show_bucket_count(fs: &Fs, at: At, out: &mut PageWriter<'_>) -> core::fmt::Result {
    let Some(state) = at
        .index
        .checked_sub(DEV.len())
        .and_then(|i| BucketState::ALL.get(i))
    else {
        return Ok(());
    };
    if at.member >= fs.nr_members() {
        return Ok(());
    }
    writeln!(out, "{}", bucket_count(fs, at.member, *state))
}

/// Buckets of member `m` in `state`, from the allocator's accounting (0 for a member it does
/// not account yet).
fn bucket_count(fs: &Fs, m: usize, state: BucketState) -> u64 {
    fs.alloc.counts(m).get(state as usize).copied().unwrap_or(0)
}

/// The option of row `at.index` of `options/`.
fn option_at(at: At) -> Option<Opt> {
    Opt::ALL.get(at.index).copied()
}

/// `options/<name>`: the value in force.
fn show_option(fs: &Fs, at: At, out: &mut PageWriter<'_>) -> core::fmt::Result {
    match option_at(at) {
        Some(opt) => {
            let live = fs.state.lock().live;
            live.show(opt, out)?;
            writeln!(out)
        }
        None => Ok(()),
    }
}

/// `options/<name>`: validated against the option table, then applied and persisted.
fn store_option(fs: &Fs, at: At, bytes: &[u8]) -> Result {
    let opt = option_at(at).ok_or(EINVAL)?;
    let text = core::str::from_utf8(bytes).unwrap_or("\u{fffd}");
    let mut change = MountOptions::default();
    // Parsed whole (a target keeps its label), as a remount parses it.
    let result = match change.parse_at(When::Runtime, opt.desc().name, text) {
        Err(OptError::NotSettable) => Err((EPERM, None)),
        Ok(()) => fs
            .set_options(&change)
            .map_err(|(e, why)| (e, why.map(|(_, why)| why))),
        Err(e) => Err((EINVAL, Some(e))),
    };
    match result {
        Ok(()) => {
            pr_info!(
                "{}: options/{} set to {}\n",
                UuidFmt(&fs.uuid),
                opt.desc().name,
                text.trim_end()
            );
            Ok(())
        }
        Err((err, why)) => {
            let mut msg = Text::<160>::new();
            match why {
                Some(e) => describe_option_error(&mut msg, opt.desc().name, prefix(text, 32), e),
                None => {
                    let _ = write!(msg, "{}: not changed", opt.desc().name);
                }
            }
            pr_err!(
                "{}: options/{} ({})\n",
                UuidFmt(&fs.uuid),
                msg.as_str(),
                err.to_errno()
            );
            Err(err)
        }
    }
}

/// Checks that a trigger file was given `1`; says which file did not otherwise.
fn check_one(fs: &Fs, file: &str, bytes: &[u8]) -> Result {
    if bytes != b"1" && bytes != b"1\n" {
        pr_err!("{}: internal/{file} takes 1 (-22)\n", UuidFmt(&fs.uuid));
        return Err(EINVAL);
    }
    Ok(())
}

/// `internal/abort_stuck_allocations`: "1" fails every allocation parked right now.
fn store_abort(fs: &Fs, _at: At, bytes: &[u8]) -> Result {
    check_one(fs, "abort_stuck_allocations", bytes)?;
    let n = fs.alloc.abort_parked();
    pr_warn!(
        "{}: abort_stuck_allocations: {n} parked allocation(s) fail with ECANCELED\n",
        UuidFmt(&fs.uuid)
    );
    Ok(())
}

/// `internal/trigger_discards`: "1" kicks the discard worker.
fn store_trigger_discards(fs: &Fs, _at: At, bytes: &[u8]) -> Result {
    check_one(fs, "trigger_discards", bytes)?;
    if fs.read_only() {
        pr_err!(
            "{}: internal/trigger_discards: read-only mount, no discards (-30)\n",
            UuidFmt(&fs.uuid)
        );
        return Err(EROFS);
    }
    fs.kick_discards();
    Ok(())
}

/// Parses a boolean written to `dev-N/<file>`, spelled as the `discard` option is.
fn parse_dev_bool(fs: &Fs, at: At, file: &str, bytes: &[u8]) -> Result<bool> {
    if at.member >= fs.nr_members() {
        return Err(EINVAL);
    }
    let text = core::str::from_utf8(bytes).unwrap_or("");
    match parse_value(Opt::Discard.desc(), text) {
        Ok(v) => Ok(v != 0),
        Err(_) => {
            pr_err!(
                "{}: dev-{}/{file}={}: not a valid value (-22)\n",
                UuidFmt(&fs.uuid),
                at.member,
                prefix(text.trim_end(), 32)
            );
            Err(EINVAL)
        }
    }
}

/// `dev-N/discard`: discards on the member on or off, persisted in the member table.
fn store_dev_discard(fs: &Fs, at: At, bytes: &[u8]) -> Result {
    let on = parse_dev_bool(fs, at, "discard", bytes)?;
    refuse_removed(fs, at, "discard")?;
    fs.set_member_discard(at.member, on)
}

/// `dev-N/label`: the member's label (empty for none).
fn show_dev_label(fs: &Fs, at: At, out: &mut PageWriter<'_>) -> core::fmt::Result {
    let label = fs.state.lock().sb.labels.get(at.member).copied();
    match label {
        Some(l) if at.member < fs.members.len() => writeln!(out, "{}", l.as_str()),
        _ => Ok(()),
    }
}

/// `dev-N/label`: sets the member's label (an empty write removes it), persisted in the
/// superblock; parked allocations are woken to re-read the members `metadata_target` names.
fn store_dev_label(fs: &Fs, at: At, bytes: &[u8]) -> Result {
    if at.member >= fs.members.len() {
        return Err(EINVAL);
    }
    refuse_removed(fs, at, "label")?;
    let text = core::str::from_utf8(bytes).unwrap_or("\u{fffd}");
    let label = Label::parse(text).map_err(|e| {
        pr_err!(
            "{}: dev-{}/label={}: {} (-22)\n",
            UuidFmt(&fs.uuid),
            at.member,
            prefix(text.trim_end(), 40),
            e.describe()
        );
        EINVAL
    })?;
    fs.set_member_label(at.member, label).inspect_err(|e| {
        pr_err!(
            "{}: dev-{}/label: not changed ({})\n",
            UuidFmt(&fs.uuid),
            at.member,
            e.to_errno()
        );
    })?;
    pr_info!(
        "{}: dev-{}/label set to '{}'\n",
        UuidFmt(&fs.uuid),
        at.member,
        label.as_str()
    );
    Ok(())
}

/// `dev-N/writable`: whether new metadata may go to the member.
fn store_dev_writable(fs: &Fs, at: At, bytes: &[u8]) -> Result {
    let on = parse_dev_bool(fs, at, "writable", bytes)?;
    refuse_removed(fs, at, "writable")?;
    // A member left out of a degraded mount has no device: never writable.
    if on && fs.members.get(at.member).map_or(true, |m| m.is_missing()) {
        pr_err!(
            "{}: dev-{}/writable: the member is missing from this mount (-6)\n",
            UuidFmt(&fs.uuid),
            at.member
        );
        return Err(ENXIO);
    }
    fs.alloc.set_writable(at.member, on);
    // A member that takes allocations again may let the re-replication pass go on.
    fs.kick_discards();
    Ok(())
}

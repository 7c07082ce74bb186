// SPDX-License-Identifier: GPL-2.0

//! The option table: every bucketfs option, once.
//!
//! Mount option parsing, the `options/` files in sysfs, the tool's `format` flags and the
//! superblock's option slots are all driven by [`OPTIONS`]. Adding an option here adds it
//! everywhere.
//!
//! Every value is a `u32` in its slot. A target ([`Kind::Target`]: `none`, `dev-N` or a
//! member label) is a slot code ([`Target::code`]) plus, for a label target, the label's text,
//! which [`Options`] and [`MountOptions`] keep beside the slots (and the superblock on disk).

use crate::shared::layout::same_name;
use crate::shared::target::{Label, LabelError, Target};

/// Where an option may be set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settable {
    /// At format time (`bucketfs format --name=value`).
    pub format: bool,
    /// At mount time (`mount -o name=value`); applies to that mount only, not persisted.
    pub mount: bool,
    /// At runtime, by writing `/sys/fs/bucketfs/<uuid>/options/<name>`; persisted in the
    /// superblock at once.
    pub runtime: bool,
}

/// When an option is being set, for the [`Settable`] check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// By `bucketfs format`.
    Format,
    /// By `mount -o`.
    Mount,
    /// While mounted: a write under `options/` in sysfs, or `mount -o remount`.
    Runtime,
}

impl Settable {
    /// Whether the option may be set at `when`.
    pub fn at(&self, when: When) -> bool {
        match when {
            When::Format => self.format,
            When::Mount => self.mount,
            When::Runtime => self.runtime,
        }
    }
}

/// An option's value type and range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An unsigned decimal integer in `min..=max`.
    U32 {
        /// Smallest value accepted.
        min: u32,
        /// Largest value accepted.
        max: u32,
    },
    /// A boolean: `0`/`1`, `false`/`true`, `no`/`yes`, `off`/`on`; shown as `0` or `1`.
    Bool,
    /// A set of members ([`Target`]): `none`, `dev-N`, or a member label; shown as given.
    Target,
}

/// One option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionDesc {
    /// Name in mount options, sysfs and the tool.
    pub name: &'static str,
    /// Value type and range.
    pub kind: Kind,
    /// Value a new filesystem gets.
    pub default: u32,
    /// Where it may be set.
    pub settable: Settable,
    /// Its slot in the superblock's option array.
    pub sb_slot: usize,
    /// One line for `--help` and the documentation.
    pub help: &'static str,
}

/// Number of option slots in the superblock.
pub const SB_OPTION_SLOTS: usize = 16;

/// Most copies of a btree node (pointer slots in a btree pointer).
pub const MAX_REPLICAS: u32 = 4;

const ALL: Settable = Settable {
    format: true,
    mount: true,
    runtime: true,
};

/// Declares every option once: one row per option generates the [`Opt`] enum (in row order),
/// the [`OPTIONS`] table, [`NR_OPTIONS`] and [`Opt::ALL`], so no list or length is kept by hand.
///
/// Each row is `Variant { name, kind, default, settable, sb_slot, help }` with the meaning of the
/// [`OptionDesc`] fields. Names and superblock slots are checked to be distinct at compile time.
macro_rules! options {
    ($(
        $variant:ident {
            name: $name:literal,
            kind: $kind:expr,
            default: $default:expr,
            settable: $settable:expr,
            sb_slot: $slot:expr,
            help: $help:literal $(,)?
        }
    ),* $(,)?) => {
        /// Index of each option in [`OPTIONS`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Opt {
            $(
                #[doc = concat!("`", $name, "`: ", $help, ".")]
                $variant,
            )*
        }

        /// Number of options.
        pub const NR_OPTIONS: usize = [$(Opt::$variant),*].len();

        /// Every option.
        pub const OPTIONS: [OptionDesc; NR_OPTIONS] = [$(
            OptionDesc {
                name: $name,
                kind: $kind,
                default: $default,
                settable: $settable,
                sb_slot: $slot,
                help: $help,
            },
        )*];

        impl Opt {
            /// Every option, in table order.
            pub const ALL: [Opt; NR_OPTIONS] = [$(Opt::$variant),*];
        }
    };
}

options! {
    MetadataReplicas {
        name: "metadata_replicas",
        kind: Kind::U32 { min: 1, max: MAX_REPLICAS },
        default: 1,
        settable: ALL,
        sb_slot: 0,
        help: "copies of each btree node, on distinct members (at most the member count)",
    },
    MetadataReplicasRequired {
        name: "metadata_replicas_required",
        kind: Kind::U32 { min: 1, max: MAX_REPLICAS },
        default: 1,
        settable: ALL,
        sb_slot: 1,
        help: "fewest copies a btree node write may succeed with (at most metadata_replicas)",
    },
    Discard {
        name: "discard",
        kind: Kind::Bool,
        default: 1,
        settable: ALL,
        sb_slot: 2,
        help: "issue block-device discards for buckets that become free",
    },
    AllocatorStuckTimeout {
        name: "allocator_stuck_timeout",
        kind: Kind::U32 { min: 0, max: 3600 },
        default: 30,
        settable: ALL,
        sb_slot: 3,
        help: "seconds a parked allocation waits before it is reported in dmesg (0: never)",
    },
    MetadataTarget {
        name: "metadata_target",
        kind: Kind::Target,
        default: crate::shared::target::TARGET_NONE,
        settable: ALL,
        sb_slot: 4,
        help: "members btree nodes go to: none, a member label (ssd, hdd...) or dev-N",
    },
    MetadataTargetFallback {
        name: "metadata_target_fallback",
        kind: Kind::Bool,
        default: 0,
        settable: ALL,
        sb_slot: 5,
        help: "copies the target's members cannot take now go to other members instead of \
               waiting",
    },
    MetadataDegradedWrites {
        name: "metadata_degraded_writes",
        kind: Kind::Bool,
        default: 0,
        settable: ALL,
        sb_slot: 6,
        help: "a btree node allocation parked past allocator_stuck_timeout takes fewer copies \
               (at least metadata_replicas_required), re-replicated later by the worker",
    },
    DataReplicas {
        name: "data_replicas",
        kind: Kind::U32 { min: 1, max: MAX_REPLICAS },
        default: 1,
        settable: ALL,
        sb_slot: 7,
        help: "copies of each file data extent written from now on, on distinct members (at \
               most the member count)",
    },
}

/// Whether every option has its own name and its own superblock slot, within the slots.
const fn table_is_consistent() -> bool {
    let mut i = 0;
    while i < NR_OPTIONS {
        if OPTIONS[i].sb_slot >= SB_OPTION_SLOTS {
            return false;
        }
        let mut j = 0;
        while j < i {
            if OPTIONS[j].sb_slot == OPTIONS[i].sb_slot
                || same_name(OPTIONS[j].name, OPTIONS[i].name)
            {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

// Evaluated at compile time only, as the kernel's `static_assert!` does.
const _: () = assert!(
    table_is_consistent(),
    "option names and slots must be distinct"
);

/// Why an option or value was refused. [`OptError::describe`] gives the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptError {
    /// No option has this name.
    Unknown,
    /// The value is not a number (or boolean) of the option's kind.
    NotANumber,
    /// The value is outside the option's range.
    OutOfRange {
        /// Smallest value accepted.
        min: u32,
        /// Largest value accepted.
        max: u32,
    },
    /// The option cannot be set at this point (format, mount or runtime).
    NotSettable,
    /// `metadata_replicas` is larger than the number of members.
    MoreReplicasThanMembers {
        /// The filesystem's member count.
        members: u32,
    },
    /// `metadata_replicas_required` is larger than `metadata_replicas`.
    RequiredAboveReplicas {
        /// `metadata_replicas`.
        replicas: u32,
        /// `metadata_replicas_required`.
        required: u32,
    },
    /// A target's text is not `none`, `dev-N` or a label.
    BadTarget(LabelError),
    /// A target `dev-N` with N not below the member count.
    NoSuchMember {
        /// The filesystem's member count.
        members: u32,
    },
    /// A label target that no member's label is within.
    NoMemberLabelled,
}

impl OptError {
    /// A message for dmesg and the tool, to follow `name=value: `.
    pub fn describe(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        match *self {
            OptError::Unknown => write!(out, "unknown option"),
            OptError::NotANumber => write!(out, "not a valid value"),
            OptError::OutOfRange { min, max } => write!(out, "out of range {min}..={max}"),
            OptError::NotSettable => write!(out, "cannot be set here"),
            OptError::MoreReplicasThanMembers { members } => {
                write!(out, "more than the {members} member(s)")
            }
            // Neutral wording: either option may be the one being set.
            OptError::RequiredAboveReplicas { replicas, required } => write!(
                out,
                "metadata_replicas_required ({required}) would exceed metadata_replicas \
                 ({replicas}); lower metadata_replicas_required first"
            ),
            OptError::BadTarget(e) => {
                write!(out, "not none, dev-N or a label: {}", e.describe())
            }
            OptError::NoSuchMember { members } => {
                write!(out, "no such member (the filesystem has {members})")
            }
            OptError::NoMemberLabelled => write!(out, "no member carries this label"),
        }
    }
}

/// Finds an option by name.
pub fn lookup(name: &str) -> Option<Opt> {
    OPTIONS
        .iter()
        .position(|d| d.name == name)
        .map(Opt::from_index)
}

impl Opt {
    /// The option at `i` in [`OPTIONS`]; `i` must be a valid index.
    pub fn from_index(i: usize) -> Opt {
        Self::ALL[i]
    }

    /// Its row in [`OPTIONS`].
    pub fn desc(self) -> &'static OptionDesc {
        &OPTIONS[self as usize]
    }
}

/// Parses `text` as a value of `desc`'s kind and range.
///
/// Accepts exactly the value, optionally followed by one newline (as `echo` writes to sysfs).
/// No sign, no spaces, no leading `+`, nothing after the number. A target gives its slot code
/// only: a label target's text is kept by [`MountOptions::parse_at`] and
/// [`Options::with_target`], which parse targets whole.
pub fn parse_value(desc: &OptionDesc, text: &str) -> Result<u32, OptError> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    match desc.kind {
        Kind::Target => Target::parse(text)
            .map(|t| t.code().0)
            .map_err(OptError::BadTarget),
        Kind::Bool => match text {
            "1" | "true" | "yes" | "on" => Ok(1),
            "0" | "false" | "no" | "off" => Ok(0),
            _ => Err(OptError::NotANumber),
        },
        Kind::U32 { min, max } => {
            if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(OptError::NotANumber);
            }
            let v = text
                .bytes()
                .try_fold(0u32, |acc, b| {
                    acc.checked_mul(10)?.checked_add((b - b'0') as u32)
                })
                .ok_or(OptError::OutOfRange { min, max })?;
            check_range(desc, v).map(|()| v)
        }
    }
}

/// Parses `text` for `desc` set at `when`: [`OptError::NotSettable`] if the option may not be
/// set then, else as [`parse_value`].
pub fn parse_value_at(desc: &OptionDesc, when: When, text: &str) -> Result<u32, OptError> {
    if !desc.settable.at(when) {
        return Err(OptError::NotSettable);
    }
    parse_value(desc, text)
}

/// Checks `value` against `desc`'s range alone.
pub fn check_range(desc: &OptionDesc, value: u32) -> Result<(), OptError> {
    match desc.kind {
        Kind::Bool if value > 1 => Err(OptError::OutOfRange { min: 0, max: 1 }),
        Kind::U32 { min, max } if value < min || value > max => {
            Err(OptError::OutOfRange { min, max })
        }
        Kind::Target if !Target::code_valid(value) => Err(OptError::NotANumber),
        _ => Ok(()),
    }
}

/// A full set of option values, indexed by [`Opt`], with the text of a label target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    values: [u32; NR_OPTIONS],
    /// `metadata_target`'s label when its code is a label target, else none.
    target_label: Label,
}

/// Writes `value` of `opt` as sysfs and messages show it (`label` is a label target's text).
fn show_value(
    opt: Opt,
    value: u32,
    label: &Label,
    out: &mut dyn core::fmt::Write,
) -> core::fmt::Result {
    match opt.desc().kind {
        Kind::Target => match Target::from_code(value, label) {
            Some(t) => write!(out, "{t}"),
            None => write!(out, "?{value}"),
        },
        _ => write!(out, "{value}"),
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::DEFAULT
    }
}

impl Options {
    /// Every option at its default (a constant, so a superblock slot can be set up from it
    /// without building one on the stack).
    pub const DEFAULT: Options = {
        let mut values = [0; NR_OPTIONS];
        let mut i = 0;
        while i < NR_OPTIONS {
            values[i] = OPTIONS[i].default;
            i += 1;
        }
        Options {
            values,
            target_label: Label::NONE,
        }
    };

    /// The value of `opt` (for a target, its slot code: see [`Options::target`]).
    pub fn get(&self, opt: Opt) -> u32 {
        self.values[opt as usize]
    }

    /// `metadata_target`.
    pub fn target(&self) -> Target {
        Target::from_code(self.get(Opt::MetadataTarget), &self.target_label).unwrap_or(Target::None)
    }

    /// The label kept beside the slots: `metadata_target`'s when it is a label target.
    pub fn target_label(&self) -> Label {
        self.target_label
    }

    /// `self` with `metadata_target` set to `t` (rules between options left to a later
    /// [`Options::validate`]).
    pub fn with_target(mut self, t: Target) -> Options {
        let (code, label) = t.code();
        self.values[Opt::MetadataTarget as usize] = code;
        self.target_label = label;
        self
    }

    /// Writes the value of `opt` as sysfs shows it (a target as `none`, `dev-N` or its label).
    pub fn show(&self, opt: Opt, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        show_value(opt, self.get(opt), &self.target_label, out)
    }

    /// Checks that a label `metadata_target` names at least one of the members, which carry
    /// `labels` (by member index). Not a rule of [`Options::validate`]: a stored target may
    /// outlive the labels it named (a member relabelled since), and then names no member
    /// (see `Documentation/mount-options.md`); only a target being set is checked.
    pub fn check_target_members(&self, labels: &[Label]) -> Result<(), OptError> {
        match self.target() {
            t @ Target::Label(_) if t.members(labels) == 0 => Err(OptError::NoMemberLabelled),
            _ => Ok(()),
        }
    }

    /// Sets `opt` to `value` if the result is a valid set for a filesystem of `members`
    /// members (range and the rules between options); otherwise changes nothing.
    pub fn set(&mut self, opt: Opt, value: u32, members: u32) -> Result<(), OptError> {
        check_range(opt.desc(), value)?;
        let mut next = *self;
        next.values[opt as usize] = value;
        next.validate(members)?;
        *self = next;
        Ok(())
    }

    /// `self` with `opt` set to `value` (range-checked by the caller), leaving the rules
    /// between options to a later [`Options::validate`]: for callers that set several
    /// options at once.
    pub fn with_unchecked(mut self, opt: Opt, value: u32) -> Options {
        self.values[opt as usize] = value;
        self
    }

    /// Copies `opt` from `changes` (given there), with a target's label.
    fn take_given(&mut self, opt: Opt, changes: &MountOptions) -> Option<u32> {
        let v = changes.get(opt)?;
        self.values[opt as usize] = v;
        if opt == Opt::MetadataTarget {
            self.target_label = changes.target_label;
        }
        Some(v)
    }

    /// Sets every option given in `changes` at once, all or none, if the result is a valid set
    /// for `members` members (so `metadata_replicas` and `metadata_replicas_required` can be
    /// lowered together, in any order). `Err` names the option blamed; nothing changes then.
    pub fn set_all(&mut self, changes: &MountOptions, members: u32) -> Result<(), (Opt, OptError)> {
        let mut next = *self;
        for opt in Opt::ALL {
            if let Some(v) = next.take_given(opt, changes) {
                check_range(opt.desc(), v).map_err(|e| (opt, e))?;
            }
        }
        next.validate(members)
            .map_err(|e| (blame(e, changes, &next), e))?;
        *self = next;
        Ok(())
    }

    /// Checks every value's range and the rules between options, for `members` members.
    pub fn validate(&self, members: u32) -> Result<(), OptError> {
        for opt in Opt::ALL {
            check_range(opt.desc(), self.get(opt))?;
        }
        let replicas = self.get(Opt::MetadataReplicas);
        if replicas > members {
            return Err(OptError::MoreReplicasThanMembers { members });
        }
        if self.get(Opt::DataReplicas) > members {
            return Err(OptError::MoreReplicasThanMembers { members });
        }
        let required = self.get(Opt::MetadataReplicasRequired);
        if required > replicas {
            return Err(OptError::RequiredAboveReplicas { replicas, required });
        }
        match Target::from_code(self.get(Opt::MetadataTarget), &self.target_label) {
            None => Err(OptError::NotANumber),
            Some(Target::Member(m)) if m >= members => Err(OptError::NoSuchMember { members }),
            Some(_) => Ok(()),
        }
    }

    /// The values as stored in the superblock's option slots.
    pub fn to_slots(&self) -> [u32; SB_OPTION_SLOTS] {
        let mut slots = [0; SB_OPTION_SLOTS];
        for opt in Opt::ALL {
            slots[opt.desc().sb_slot] = self.get(opt);
        }
        slots
    }

    /// Reads the values from superblock option slots; `Err(opt)` names the first value out of
    /// its range. Rules between options are checked by [`Options::validate`].
    pub fn from_slots(slots: &[u32; SB_OPTION_SLOTS]) -> Result<Options, Opt> {
        Self::from_disk(slots, &Label::NONE)
    }

    /// [`Options::from_slots`] with the label kept beside the slots on disk: it must be a
    /// valid label when `metadata_target` is a label target, and zero otherwise.
    pub fn from_disk(slots: &[u32; SB_OPTION_SLOTS], label: &Label) -> Result<Options, Opt> {
        let mut o = Options::default();
        for opt in Opt::ALL {
            let mut v = slots[opt.desc().sb_slot];
            // Written before the slot existed (format 2 images made before file data): one
            // copy, which is what such a filesystem had no data of.
            if opt == Opt::DataReplicas && v == 0 {
                v = 1;
            }
            check_range(opt.desc(), v).map_err(|_| opt)?;
            o.values[opt as usize] = v;
        }
        let t = Target::from_code(o.get(Opt::MetadataTarget), label).ok_or(Opt::MetadataTarget)?;
        Ok(o.with_target(t))
    }
}

/// A mount-only flag: given by name alone (`-o norecovery`), for one mount, never stored,
/// never a runtime option (a remount refuses it). The flags are not options of the table above:
/// they have no value, no superblock slot and no `options/` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MountFlag {
    /// `norecovery`: mount without replaying the journal (requires `ro`).
    NoRecovery,
    /// `degraded`: mount with members missing from the source (requires `ro`).
    Degraded,
}

impl MountFlag {
    /// Every flag.
    pub const ALL: [MountFlag; 2] = [MountFlag::NoRecovery, MountFlag::Degraded];

    /// Its name in mount options.
    pub fn name(self) -> &'static str {
        match self {
            MountFlag::NoRecovery => "norecovery",
            MountFlag::Degraded => "degraded",
        }
    }

    /// One line for the documentation.
    pub fn help(self) -> &'static str {
        match self {
            MountFlag::NoRecovery => {
                "mount without replaying the journal, to inspect a filesystem whose replay \
                 cannot finish (requires ro)"
            }
            MountFlag::Degraded => {
                "mount with members missing from the source when every btree node has a copy on \
                 the members given (requires ro)"
            }
        }
    }

    /// The flag called `name`.
    pub fn lookup(name: &str) -> Option<MountFlag> {
        MountFlag::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Options given at mount time: which were given, and their values; and the mount-only flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    given: [Option<u32>; NR_OPTIONS],
    /// Mount-only flags given, bit `1 << flag`.
    flags: u32,
    /// The label of a given label `metadata_target`.
    target_label: Label,
}

/// Which option to name when `o` broke rule `e`: a given option when one is involved, else
/// the others.
fn blame(e: OptError, given: &MountOptions, o: &Options) -> Opt {
    match e {
        OptError::RequiredAboveReplicas { .. }
            if given.get(Opt::MetadataReplicasRequired).is_some() =>
        {
            Opt::MetadataReplicasRequired
        }
        OptError::MoreReplicasThanMembers { .. }
            if given.get(Opt::DataReplicas).is_some()
                && o.get(Opt::DataReplicas) >= o.get(Opt::MetadataReplicas) =>
        {
            Opt::DataReplicas
        }
        OptError::RequiredAboveReplicas { .. } | OptError::MoreReplicasThanMembers { .. } => {
            Opt::MetadataReplicas
        }
        OptError::BadTarget(_) | OptError::NoSuchMember { .. } | OptError::NoMemberLabelled => {
            Opt::MetadataTarget
        }
        _ => Opt::ALL
            .into_iter()
            .find(|&opt| check_range(opt.desc(), o.get(opt)).is_err())
            .unwrap_or(Opt::MetadataReplicas),
    }
}

impl MountOptions {
    /// Parses one `name=value` mount option (range only: the member count is not known yet).
    pub fn parse(&mut self, name: &str, value: &str) -> Result<(), OptError> {
        self.parse_at(When::Mount, name, value)
    }

    /// Parses one `name=value` option given at `when`: [`When::Mount`] for a mount,
    /// [`When::Runtime`] for a remount, which takes runtime options only.
    pub fn parse_at(&mut self, when: When, name: &str, value: &str) -> Result<(), OptError> {
        let opt = lookup(name).ok_or(OptError::Unknown)?;
        let v = parse_value_at(opt.desc(), when, value)?;
        if opt.desc().kind == Kind::Target {
            // `parse_value_at` accepted it: a target whole.
            let t = Target::parse(value).map_err(OptError::BadTarget)?;
            self.target_label = t.code().1;
        }
        self.given[opt as usize] = Some(v);
        Ok(())
    }

    /// Only `metadata_target` given, as `t`.
    pub fn target(t: Target) -> MountOptions {
        let (code, label) = t.code();
        let mut m = MountOptions::one(Opt::MetadataTarget, code);
        m.target_label = label;
        m
    }

    /// Writes the value given for `opt` as sysfs shows it (nothing if it was not given).
    pub fn show(&self, opt: Opt, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        match self.get(opt) {
            Some(v) => show_value(opt, v, &self.target_label, out),
            None => Ok(()),
        }
    }

    /// Only `opt` given, as `value`: one runtime change.
    pub fn one(opt: Opt, value: u32) -> MountOptions {
        let mut m = MountOptions::default();
        m.given[opt as usize] = Some(value);
        m
    }

    /// Whether no option was given (mount-only flags aside).
    pub fn is_empty(&self) -> bool {
        self.given.iter().all(Option::is_none)
    }

    /// Records mount-only flag `flag` as given.
    pub fn set_flag(&mut self, flag: MountFlag) {
        self.flags |= 1 << flag as u32;
    }

    /// Whether mount-only flag `flag` was given.
    pub fn flag(&self, flag: MountFlag) -> bool {
        self.flags & (1 << flag as u32) != 0
    }

    /// The value given for `opt`, if any.
    pub fn get(&self, opt: Opt) -> Option<u32> {
        self.given[opt as usize]
    }

    /// [`MountOptions::apply`] for a filesystem whose members carry `labels` (by member
    /// index): a given `metadata_target` must also name one of them.
    pub fn apply_for(&self, base: &Options, labels: &[Label]) -> Result<Options, (Opt, OptError)> {
        let o = self.apply(base, labels.len() as u32)?;
        if self.get(Opt::MetadataTarget).is_some() {
            o.check_target_members(labels)
                .map_err(|e| (Opt::MetadataTarget, e))?;
        }
        Ok(o)
    }

    /// `base` with the given options applied, checked for `members` members. `Err` names the
    /// option that made the set invalid. A given `metadata_replicas` below the stored
    /// `metadata_replicas_required` lowers the latter too, unless it is given as well.
    pub fn apply(&self, base: &Options, members: u32) -> Result<Options, (Opt, OptError)> {
        let mut o = *base;
        for opt in Opt::ALL {
            o.take_given(opt, self);
        }
        // The rescue `-o metadata_replicas=1` must not fail because the stored
        // metadata_replicas_required is higher: unless that is given too, it follows the
        // given replica count down for this mount.
        let (replicas, required) = (Opt::MetadataReplicas, Opt::MetadataReplicasRequired);
        if self.get(replicas).is_some() && self.get(required).is_none() {
            o.values[required as usize] = o.get(required).min(o.get(replicas));
        }
        o.validate(members)
            .map(|()| o)
            .map_err(|e| (blame(e, self, &o), e))
    }
}

// SPDX-License-Identifier: GPL-2.0

//! Member labels and allocation targets.
//!
//! A member may carry a [`Label`] (`ssd`, `hdd`, `hdd.hdd1`): up to [`LABEL_MAX`] bytes of
//! `[a-z0-9._-]`, stored zero-padded in [`LABEL_BYTES`] bytes (all zero: no label). A
//! [`Target`] names a set of members: none, one member (`dev-N`), or a label, which takes
//! every member whose label is that label or starts with it followed by `.` (so `hdd` takes
//! `hdd` and `hdd.hdd1`, as bcachefs's group labels do).
//!
//! In the option table a target is one `u32` slot ([`Target::code`]); a label target's text
//! is kept beside the slots ([`crate::shared::options::Options`]), and on disk in the
//! superblock's `metadata_target_label`.

use crate::shared::layout::Field;
use crate::shared::superblock::MAX_MEMBERS;

/// Bytes a label takes on disk.
pub const LABEL_BYTES: usize = 32;
/// Most bytes of a label's text (the rest of [`LABEL_BYTES`] is zero).
pub const LABEL_MAX: usize = LABEL_BYTES - 1;

/// A member label: text of `[a-z0-9._-]`, zero-padded; all zero means no label.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Label([u8; LABEL_BYTES]);

/// Why a label's text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelError {
    /// More than [`LABEL_MAX`] bytes.
    TooLong,
    /// A byte outside `[a-z0-9._-]`, or a `.` at either end or next to another.
    BadByte,
    /// `none` or `dev-N`: those name targets, not labels.
    Reserved,
}

impl LabelError {
    /// What is wrong, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            LabelError::TooLong => "a label has at most 31 bytes",
            LabelError::BadByte => {
                "a label is made of a-z, 0-9, '.', '_' and '-' (no '.' at an end or doubled)"
            }
            LabelError::Reserved => "'none' and 'dev-N' name targets, not labels",
        }
    }
}

fn label_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
}

/// `dev-N` with N decimal digits (no sign, no leading zero but `0`): N, if it is one.
fn dev_index(text: &str) -> Option<u32> {
    let n = text.strip_prefix("dev-")?;
    if n.is_empty() || n.len() > 2 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if n.len() > 1 && n.starts_with('0') {
        return None;
    }
    n.bytes()
        .try_fold(0u32, |a, b| Some(a * 10 + (b - b'0') as u32))
}

/// Whether `text` has the shape `dev-` followed by digits (reserved for member targets).
fn dev_like(text: &str) -> bool {
    text.strip_prefix("dev-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn check_text(t: &[u8]) -> Result<(), LabelError> {
    if t.len() > LABEL_MAX {
        return Err(LabelError::TooLong);
    }
    if !t.iter().all(|&b| label_byte(b))
        || t.first() == Some(&b'.')
        || t.last() == Some(&b'.')
        || t.windows(2).any(|w| w == b"..")
    {
        return Err(LabelError::BadByte);
    }
    let s = core::str::from_utf8(t).map_err(|_| LabelError::BadByte)?;
    if s == "none" || dev_like(s) {
        return Err(LabelError::Reserved);
    }
    Ok(())
}

impl Label {
    /// No label.
    pub const NONE: Label = Label([0; LABEL_BYTES]);

    /// Parses a label's text, optionally followed by one newline (as `echo` writes to sysfs);
    /// empty text is no label.
    pub fn parse(text: &str) -> Result<Label, LabelError> {
        let t = text.strip_suffix('\n').unwrap_or(text).as_bytes();
        check_text(t)?;
        let mut l = [0; LABEL_BYTES];
        l[..t.len()].copy_from_slice(t);
        Ok(Label(l))
    }

    /// Whether these bytes (as read from disk) are a label: its text, then zeros only.
    pub fn is_valid(&self) -> bool {
        let len = self.len();
        self.0[len..].iter().all(|&b| b == 0) && check_text(&self.0[..len]).is_ok()
    }

    fn len(&self) -> usize {
        self.0.iter().position(|&b| b == 0).unwrap_or(LABEL_BYTES)
    }

    /// Whether there is no label.
    pub fn is_none(&self) -> bool {
        self.0[0] == 0
    }

    /// The label's text (empty for none).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0[..self.len()]).unwrap_or("?")
    }

    /// Whether a member labelled `self` belongs to the label target `target`: the same label,
    /// or `target` followed by `.` and more. No label belongs to no target.
    pub fn within(&self, target: &Label) -> bool {
        let (l, t) = (self.as_str(), target.as_str());
        !t.is_empty()
            && l.strip_prefix(t)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    }
}

impl Field for Label {
    const SIZE: usize = LABEL_BYTES;

    fn read(b: &[u8]) -> Self {
        Label(<[u8; LABEL_BYTES]>::read(b))
    }

    fn write(&self, b: &mut [u8]) {
        self.0.write(b);
    }
}

/// Option slot value of the target `none`.
pub const TARGET_NONE: u32 = 0;
/// Option slot value of the target `dev-N`: this plus N (N below [`MAX_MEMBERS`]).
pub const TARGET_MEMBER: u32 = 1;
/// Option slot value of a label target (its text kept beside the slot).
pub const TARGET_LABEL: u32 = 256;

/// A set of members named by an option: none, one member, or a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// No target: every member.
    None,
    /// Member `dev-N`.
    Member(u32),
    /// Every member whose label is within this one ([`Label::within`]).
    Label(Label),
}

impl Target {
    /// Parses `none`, `dev-N` or a label (optionally followed by one newline).
    pub fn parse(text: &str) -> Result<Target, LabelError> {
        let t = text.strip_suffix('\n').unwrap_or(text);
        if t == "none" {
            return Ok(Target::None);
        }
        if let Some(n) = dev_index(t) {
            return if (n as usize) < MAX_MEMBERS {
                Ok(Target::Member(n))
            } else {
                Err(LabelError::Reserved)
            };
        }
        match Label::parse(t)? {
            l if l.is_none() => Err(LabelError::BadByte),
            l => Ok(Target::Label(l)),
        }
    }

    /// The slot value, and the label text to keep beside it (none unless a label target).
    pub fn code(&self) -> (u32, Label) {
        match *self {
            Target::None => (TARGET_NONE, Label::NONE),
            Target::Member(n) => (TARGET_MEMBER + n, Label::NONE),
            Target::Label(l) => (TARGET_LABEL, l),
        }
    }

    /// Whether `v` is a slot value of some target.
    pub fn code_valid(v: u32) -> bool {
        v == TARGET_NONE
            || (TARGET_MEMBER..TARGET_MEMBER + MAX_MEMBERS as u32).contains(&v)
            || v == TARGET_LABEL
    }

    /// The target of slot value `v` with `label` kept beside it; `None` if they do not make a
    /// target (an unknown value, a label target without a valid label, or a label left
    /// beside another target).
    pub fn from_code(v: u32, label: &Label) -> Option<Target> {
        match v {
            TARGET_LABEL if !label.is_none() && label.is_valid() => Some(Target::Label(*label)),
            TARGET_LABEL => None,
            _ if !label.is_none() => None,
            TARGET_NONE => Some(Target::None),
            _ if Target::code_valid(v) => Some(Target::Member(v - TARGET_MEMBER)),
            _ => None,
        }
    }

    /// The members of a filesystem whose members carry `labels` (by member index) that the
    /// target names, one bit per member; 0 for [`Target::None`] and for a target that names
    /// no member.
    pub fn members(&self, labels: &[Label]) -> u32 {
        let n = labels.len().min(MAX_MEMBERS);
        match self {
            Target::None => 0,
            Target::Member(m) if (*m as usize) < n => 1 << m,
            Target::Member(_) => 0,
            Target::Label(t) => labels[..n]
                .iter()
                .enumerate()
                .filter(|(_, l)| l.within(t))
                .fold(0, |mask, (i, _)| mask | 1 << i),
        }
    }
}

impl core::fmt::Display for Target {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Target::None => f.write_str("none"),
            Target::Member(n) => write!(f, "dev-{n}"),
            Target::Label(l) => f.write_str(l.as_str()),
        }
    }
}

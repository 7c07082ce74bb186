// SPDX-License-Identifier: GPL-2.0

//! The mount source: member devices joined by `:`, as in `/dev/vdb:/dev/vdc`.
//!
//! Shared by the module and the host tools; depends on `core` only.

/// Most member devices one filesystem may have.
pub const MAX_MEMBERS: usize = crate::shared::superblock::MAX_MEMBERS;

/// Longest device path accepted in a mount source, in bytes (`PATH_MAX` less the NUL).
pub const MAX_DEVICE_PATH: usize = 4095;

/// Why a mount source was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceError {
    /// The source is empty.
    Empty,
    /// Member number `.0` (from 0) is an empty path, as in `a::b` or `a:`.
    EmptyMember(usize),
    /// Member number `.0` is longer than [`MAX_DEVICE_PATH`].
    PathTooLong(usize),
    /// More than [`MAX_MEMBERS`] members.
    TooManyMembers,
    /// Members `.0` and `.1` name the same path.
    Duplicate(usize, usize),
}

/// Splits a mount source into its member device paths, in order.
///
/// Every member must be a non-empty path, no path may repeat, and there may be at most
/// [`MAX_MEMBERS`]. `visit` is called once per member after the whole source has been checked,
/// so nothing is opened for a source that is then refused.
pub fn for_each_member<'a>(
    source: &'a str,
    mut visit: impl FnMut(usize, &'a str),
) -> Result<usize, SourceError> {
    let count = check(source)?;
    for (i, member) in source.split(':').enumerate() {
        visit(i, member);
    }
    Ok(count)
}

/// Checks a mount source; returns how many members it has.
pub fn check(source: &str) -> Result<usize, SourceError> {
    if source.is_empty() {
        return Err(SourceError::Empty);
    }
    let mut count = 0;
    for (i, member) in source.split(':').enumerate() {
        if i >= MAX_MEMBERS {
            return Err(SourceError::TooManyMembers);
        }
        if member.is_empty() {
            return Err(SourceError::EmptyMember(i));
        }
        if member.len() > MAX_DEVICE_PATH {
            return Err(SourceError::PathTooLong(i));
        }
        if let Some(j) = source
            .split(':')
            .take(i)
            .position(|earlier| earlier == member)
        {
            return Err(SourceError::Duplicate(j, i));
        }
        count += 1;
    }
    Ok(count)
}

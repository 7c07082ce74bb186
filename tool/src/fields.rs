//! Where on-disk fields lie, for the debug commands that damage or rewrite single fields: every
//! position comes from the structures' `layout!` declarations (their `FIELDS` tables), never
//! from a hand-written offset.

use bucketfs_core::layout::{offset_of, Field, FieldDesc};
use bucketfs_core::superblock::{Member, SbDisk};
use std::ops::Range;

/// Byte range of field `name` of a structure with fields `fields`, starting at `base`.
pub fn field(fields: &[FieldDesc], base: usize, name: &str) -> Range<usize> {
    let f = fields
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no declared field {name}"));
    base + f.offset..base + f.offset + f.size
}

/// Byte offset of field `name` of a structure with fields `fields`.
pub fn offset_in(fields: &[FieldDesc], name: &str) -> usize {
    offset_of(fields, name).unwrap_or_else(|| panic!("no declared field {name}"))
}

/// Byte range of field `name` of the superblock.
pub fn sb(name: &str) -> Range<usize> {
    field(SbDisk::FIELDS, 0, name)
}

/// Byte range of field `name` of member `i`'s entry in the superblock's member table.
pub fn member(i: usize, name: &str) -> Range<usize> {
    field(
        Member::FIELDS,
        offset_in(SbDisk::FIELDS, "members") + i * Member::SIZE,
        name,
    )
}

/// Writes the low `width` bytes of `v` (1, 2, 4 or 8) at `off`, as a field of that width.
pub fn put(b: &mut [u8], off: usize, width: usize, v: u64) {
    let b = &mut b[off..];
    match width {
        1 => (v as u8).write(b),
        2 => (v as u16).write(b),
        4 => (v as u32).write(b),
        8 => v.write(b),
        _ => panic!("no field is {width} bytes wide"),
    }
}

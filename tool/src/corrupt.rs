//! `debug corrupt-super`: damage one class of superblock field on a member, for tests.
//!
//! Both copies are damaged the same way. Except for `checksum`, the checksum is recomputed so
//! the field itself, not the checksum, is what a mount must refuse.

use crate::device::Device;
use bucketfs_core::crc32c::block_crc;
use bucketfs_core::layout::{offset_of, Field, FieldDesc};
use bucketfs_core::superblock::{Member, SbDisk, SB_OFFSETS, SB_SIZE};

/// Byte range of field `name` of a structure with fields `fields`, starting at `base`.
fn field(fields: &[FieldDesc], base: usize, name: &str) -> std::ops::Range<usize> {
    let f = fields
        .iter()
        .find(|f| f.name == name)
        .expect("a declared field");
    base + f.offset..base + f.offset + f.size
}

/// Byte range of field `name` of the superblock.
fn sb(name: &str) -> std::ops::Range<usize> {
    field(SbDisk::FIELDS, 0, name)
}

/// Byte range of field `name` of member `i`'s entry in the superblock's member table.
fn member(i: usize, name: &str) -> std::ops::Range<usize> {
    let table = offset_of(SbDisk::FIELDS, "members").expect("the member table");
    field(Member::FIELDS, table + i * Member::SIZE, name)
}

pub const FIELDS: [&str; 6] = [
    "magic",
    "checksum",
    "member-table",
    "sizes",
    "options",
    "root",
];

pub fn corrupt(dev: &Device, field: &str) -> Result<(), String> {
    for off in SB_OFFSETS {
        let mut b = vec![0u8; SB_SIZE];
        dev.read_at(off, &mut b)?;
        match field {
            "magic" => b[sb("magic").start] ^= 0xff,
            // A bit of `seq` flips and the checksum is left as it was.
            "checksum" => b[sb("seq").start] ^= 0x01,
            // Member 0's uuid becomes member 1's: a duplicate member (or, with one member,
            // nr_members 0).
            "member-table" => {
                let nr = sb("nr_members");
                if u32::read(&b[nr.clone()]) > 1 {
                    let u = b[member(1, "uuid")].to_vec();
                    b[member(0, "uuid")].copy_from_slice(&u);
                } else {
                    0u32.write(&mut b[nr]);
                }
            }
            // Member 0's bucket size is no longer a power of two.
            "sizes" => 12345u32.write(&mut b[member(0, "bucket_size")]),
            // Option slot 0 (metadata_replicas) out of range.
            "options" => 99u32.write(&mut b[sb("options")]),
            // The root's level (its first byte) out of range.
            "root" => b[sb("root").start] = 200,
            _ => {
                return Err(format!(
                    "unknown field class {field}; one of {}",
                    FIELDS.join(", ")
                ))
            }
        }
        if field != "checksum" {
            let crc = sb("crc");
            block_crc(&b, crc.start).write(&mut b[crc]);
        }
        dev.write_at(off, &b)?;
    }
    dev.sync()
}

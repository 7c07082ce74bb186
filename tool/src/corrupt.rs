//! `debug corrupt-super`: damage one class of superblock field on a member, for tests.
//!
//! Both copies are damaged the same way. Except for `checksum`, the checksum is recomputed so
//! the field itself, not the checksum, is what a mount must refuse.

use crate::device::Device;
use crate::fields::{member, sb};
use bucketfs_core::crc32c::block_crc;
use bucketfs_core::layout::Field;
use bucketfs_core::superblock::{SB_OFFSETS, SB_SIZE};

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

//! `debug corrupt-super`: damage one class of superblock field on a member, for tests.
//!
//! Both copies are damaged the same way. Except for `checksum`, the checksum is recomputed so
//! the field itself, not the checksum, is what a mount must refuse.

use crate::device::Device;
use bucketfs_core::crc32c::block_crc;
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
            "magic" => b[0] ^= 0xff,
            "checksum" => b[0x20] ^= 0x01,
            // Member 0's uuid becomes member 1's: a duplicate member (or, with one member,
            // nr_members 0).
            "member-table" => {
                if u32::from_le_bytes(b[0x2c..0x30].try_into().unwrap()) > 1 {
                    let u = b[0x140..0x150].to_vec();
                    b[0x100..0x110].copy_from_slice(&u);
                } else {
                    b[0x2c..0x30].copy_from_slice(&0u32.to_le_bytes());
                }
            }
            // Member 0's bucket size is no longer a power of two.
            "sizes" => b[0x100 + 24..0x100 + 28].copy_from_slice(&12345u32.to_le_bytes()),
            "options" => b[0x30..0x34].copy_from_slice(&99u32.to_le_bytes()),
            "root" => b[0x78] = 200,
            _ => {
                return Err(format!(
                    "unknown field class {field}; one of {}",
                    FIELDS.join(", ")
                ))
            }
        }
        if field != "checksum" {
            let crc = block_crc(&b, 12);
            b[12..16].copy_from_slice(&crc.to_le_bytes());
        }
        dev.write_at(off, &b)?;
    }
    dev.sync()
}

// SPDX-License-Identifier: GPL-2.0

//! CRC-32C (Castagnoli), the checksum of every bucketfs metadata block.
//!
//! A table-driven software implementation: the module and the host tools compute the same
//! value without depending on the kernel's crypto API.

const POLY: u32 = 0x82f6_3b78; // reflected 0x1EDC6F41

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Continues a CRC-32C over `data`; start with `!0` and finish with `!crc` (see [`crc32c`]).
pub fn update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// The CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    !update(!0, data)
}

/// The CRC-32C of `block` with the 4 bytes at `crc_offset` taken as zero: how every bucketfs
/// block checksums itself.
pub fn block_crc(block: &[u8], crc_offset: usize) -> u32 {
    let crc = update(!0, &block[..crc_offset]);
    let crc = update(crc, &[0; 4]);
    !update(crc, &block[crc_offset + 4..])
}

// SPDX-License-Identifier: GPL-2.0

//! CRC-32C (Castagnoli), the checksum of every bucketfs metadata block.
//!
//! A table-driven software implementation (slicing-by-8): the module and the host tools compute
//! the same value without depending on the kernel's crypto API.

const POLY: u32 = 0x82f6_3b78; // reflected 0x1EDC6F41

/// `TABLES[0]` is the byte-at-a-time table; `TABLES[k][b]` is the CRC of byte `b` followed by
/// `k` zero bytes, so eight bytes are folded in at once (slicing-by-8).
const TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
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
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

/// Continues a CRC-32C over `data`; start with `!0` and finish with `!crc` (see [`crc32c`]).
pub fn update(crc: u32, data: &[u8]) -> u32 {
    update_words(crc, data, |_| {})
}

/// [`update`], which also gives `each` every whole 8-byte word of `data` (little-endian, from
/// its start; a tail of fewer than 8 bytes is not given): a caller that must look at every
/// word of a block anyway does it in the same pass as the checksum.
pub fn update_words(mut crc: u32, data: &[u8], mut each: impl FnMut(u64)) -> u32 {
    let t = &TABLES;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        each(w);
        let lo = crc ^ w as u32;
        let hi = (w >> 32) as u32;
        crc = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = t[0][((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
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

// SPDX-License-Identifier: GPL-2.0

//! Little-endian field access on byte slices, for the on-disk encoders and decoders.
//!
//! Offsets come from the format's own layout constants, never from disk, and every block is
//! checked to be the full size before a field is touched, so these never go out of bounds.

/// Reads a `u8` at `off`.
pub fn get_u8(b: &[u8], off: usize) -> u8 {
    b[off]
}

/// Reads a little-endian `u16` at `off`.
pub fn get_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// Reads a little-endian `u32` at `off`.
pub fn get_u32(b: &[u8], off: usize) -> u32 {
    let mut v = [0; 4];
    v.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(v)
}

/// Reads a little-endian `u64` at `off`.
pub fn get_u64(b: &[u8], off: usize) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(v)
}

/// Writes `v` at `off`.
pub fn put_u8(b: &mut [u8], off: usize, v: u8) {
    b[off] = v;
}

/// Writes `v` little-endian at `off`.
pub fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` little-endian at `off`.
pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` little-endian at `off`.
pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

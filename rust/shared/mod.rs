// SPDX-License-Identifier: GPL-2.0

//! Code shared by the kernel module and the host tools: safe Rust on `core` only.
//!
//! Everything here is compiled into `bucketfs.ko` and `bucketfs_kunit.ko`, and into the host
//! crate `bucketfs-core` (`core-lib/`), where `cargo test` tests it.

pub mod mount_source;

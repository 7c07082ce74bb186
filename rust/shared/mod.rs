// SPDX-License-Identifier: GPL-2.0

//! Code shared by the kernel module and the host tools: safe Rust on `core` only.
//!
//! Everything here is compiled into `bucketfs.ko` and `bucketfs_kunit.ko`, and into the host
//! crate `bucketfs-core` (`core-lib/`), where `cargo test` tests it.

pub mod alloc_policy;
pub mod assemble;
pub mod bkey;
pub mod btree_format;
pub mod bucket_table;
pub mod crc32c;
pub mod extent;
pub mod free_index;
pub mod journal_format;
pub mod layout;
pub mod member_add;
pub mod member_remove;
pub mod mount_source;
pub mod namespace;
pub mod namespace_format;
pub mod options;
pub mod superblock;
pub mod target;

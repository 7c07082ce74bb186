// SPDX-License-Identifier: GPL-2.0

//! Bindings to bucketfs's own C glue and to `struct closure`.
//!
//! Generated at build time by bindgen from `include/bucketfs_glue.h` (see
//! `Kbuild`), including the types of the ops tables through which C calls Rust.
//! Only the thin abstraction files use this module: `closure.rs`, `bdev.rs`,
//! `vfs.rs` and `sysfs.rs`, the module root's registration code
//! (`bucketfs_main.rs`), and the KUnit crate's `test.rs` (the KUnit and
//! benchmark crates compile `closure.rs` too).

#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    missing_docs,
    improper_ctypes,
    unsafe_op_in_unsafe_fn,
    unreachable_pub,
    clippy::all
)]
mod generated {
    include!("../generated/glue_bindings.rs");
}

pub(crate) use generated::*;

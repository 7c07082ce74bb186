// SPDX-License-Identifier: GPL-2.0

//! Bindings to bucketfs's own C glue and to `struct closure`.
//!
//! Generated at build time by bindgen from `include/bucketfs_glue.h` (see
//! `Kbuild`). Only the thin abstraction files (`closure.rs`, the module root's
//! registration code, the KUnit glue) use this module.

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

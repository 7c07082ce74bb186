// SPDX-License-Identifier: GPL-2.0

//! The `core`-only files under `rust/shared/`, compiled for the host.
//!
//! The kernel module compiles the very same files; this crate lets the host tools use them and
//! `cargo test` test them.

#![no_std]

#[path = "../../rust/shared/mod.rs"]
mod shared;

pub use shared::*;

// SPDX-License-Identifier: GPL-2.0

//! KUnit tests for bucketfs, built as their own module (`bucketfs_kunit.ko`).
//!
//! The suites are declared in `suites.c`; each case calls a `bucketfs_kunit_<case>` function
//! defined here in Rust. The module compiles the bucketfs sources it tests with `#[path]`, so it
//! tests the same code that goes into `bucketfs.ko`.

/// Fails the current KUnit case (without aborting it) if `$cond` is false.
macro_rules! check {
    ($test:expr, $cond:expr) => {
        if !$cond {
            $test.fail(
                kernel::c_str!(file!()),
                line!(),
                kernel::c_str!(concat!("expected ", stringify!($cond))),
            );
        }
    };
}

#[allow(dead_code, reason = "the tests use only part of the code they test")]
#[path = "../../rust/allocator.rs"]
mod allocator;
#[allow(dead_code, reason = "the tests use only part of the code they test")]
#[path = "../../rust/closure.rs"]
mod closure;
#[path = "../../rust/glue.rs"]
mod glue;
#[path = "../../rust/shared/mod.rs"]
pub mod shared;

mod allocator_tests;
mod closure_tests;
mod test;
#[allow(dead_code, reason = "the tests use only part of the code they test")]
#[path = "../../rust/text.rs"]
mod text;
#[allow(dead_code, reason = "the tests use only part of the code they test")]
#[path = "../../rust/vec_ext.rs"]
mod vec_ext;

use kernel::prelude::*;

module! {
    type: BucketFsKunit,
    name: "bucketfs_kunit",
    author: "bucketfs developers",
    description: "KUnit tests for bucketfs",
    license: "GPL",
}

struct BucketFsKunit;

impl kernel::Module for BucketFsKunit {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(BucketFsKunit)
    }
}

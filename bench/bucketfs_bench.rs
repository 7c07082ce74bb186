// SPDX-License-Identifier: GPL-2.0

//! In-kernel benchmarks for `make bench`, built as `bucketfs_bench.ko`: loading the module
//! runs them and prints table rows; it is not a test and asserts nothing.
//!
//! - allocation fast path: one btree node allocated through a restartable request and
//!   released, against a `kmalloc(64)` + `kfree` pair, in the same loop;
//! - allocation cost as devices grow (10k, 100k, 1M buckets, half of them in use).

#[allow(dead_code, reason = "the benchmarks use only part of the allocator")]
#[path = "../rust/allocator.rs"]
mod allocator;
#[allow(
    dead_code,
    reason = "the benchmarks use only part of the closure wrapper"
)]
#[path = "../rust/closure.rs"]
mod closure;
#[path = "../rust/glue.rs"]
mod glue;
#[path = "../rust/shared/mod.rs"]
pub mod shared;
#[allow(dead_code, reason = "the benchmarks use only part of it")]
#[path = "../rust/text.rs"]
mod text;
#[allow(dead_code, reason = "the benchmarks use only part of it")]
#[path = "../rust/vec_ext.rs"]
mod vec_ext;

use allocator::{Allocator, DeviceBuckets, LiveInputs, NodeAlloc};
use core::hint::black_box;
use kernel::{alloc::KVec, prelude::*, time::Ktime};
use shared::alloc_policy::Watermark;
use shared::bucket_table::BucketState;
use vec_ext::VecExt;

module! {
    type: BucketFsBench,
    name: "bucketfs_bench",
    author: "bucketfs developers",
    description: "bucketfs in-kernel benchmarks",
    license: "GPL",
}

const ROUNDS: u32 = 100_000;

fn ns_since(t: Ktime) -> i64 {
    Ktime::ktime_get().to_ns() - t.to_ns()
}

/// Two devices of `buckets` buckets; every other bucket in use when `half_full`.
fn allocator(buckets: u32, half_full: bool) -> Result<Pin<KBox<Allocator>>> {
    let mut devices = KVec::new();
    for name in ["bench0", "bench1"] {
        devices.push(
            DeviceBuckets::new(buckets, 0, name, |b| {
                if half_full && b % 2 == 1 {
                    BucketState::Data
                } else {
                    BucketState::Free
                }
            })?,
            GFP_KERNEL,
        )?;
    }
    KBox::pin_init(Allocator::new([0xbe; 16], devices), GFP_KERNEL)
}

/// Nanoseconds per allocate-and-release of one single-copy btree node.
fn alloc_free_ns(a: &Allocator, rounds: u32) -> Result<i64> {
    let inputs = || LiveInputs {
        replicas: 1,
        stuck_timeout_s: 0,
    };
    let mut out: KVec<NodeAlloc> = KVec::with_capacity(1, GFP_KERNEL)?;
    let t = Ktime::ktime_get();
    for _ in 0..rounds {
        a.alloc_nodes(1, Watermark::Btree, inputs, &mut out)?;
        a.release_nodes(&out);
        out.clear();
    }
    Ok(ns_since(t) / rounds as i64)
}

struct BucketFsBench;

impl kernel::Module for BucketFsBench {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let a = allocator(16384, false)?;
        let alloc_ns = alloc_free_ns(&a, ROUNDS)?;
        let t = Ktime::ktime_get();
        for _ in 0..ROUNDS {
            drop(black_box(KBox::new([0u8; 64], GFP_KERNEL)?));
        }
        let kmalloc_ns = ns_since(t) / ROUNDS as i64;
        // Ratios in hundredths: no floating point in the kernel.
        let r = alloc_ns * 100 / kmalloc_ns.max(1);
        pr_info!(
            "| allocation fast path ({ROUNDS} rounds) | {alloc_ns} ns per node allocate+release \
             vs {kmalloc_ns} ns per kmalloc(64)+kfree | {}.{:02}x (target <= 2x: {}) |\n",
            r / 100,
            r % 100,
            if r <= 200 { "met" } else { "missed" }
        );
        for buckets in [10_000u32, 100_000, 1_000_000] {
            let a = allocator(buckets, true)?;
            let ns = alloc_free_ns(&a, 20_000)?;
            let r = ns * 100 / alloc_ns.max(1);
            pr_info!(
                "| allocation cost, {buckets} buckets per device, half in use | {ns} ns per node \
                 | {}.{:02}x the 16384-bucket figure |\n",
                r / 100,
                r % 100
            );
        }
        Ok(BucketFsBench)
    }
}

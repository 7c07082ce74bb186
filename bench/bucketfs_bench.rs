// SPDX-License-Identifier: GPL-2.0

//! In-kernel benchmarks for `make bench`, built as `bucketfs_bench.ko`: loading the module
//! runs them and prints table rows; it is not a test and asserts nothing.
//!
//! The allocation fast path, as the filesystem takes it: [`Allocator::alloc_nodes`] for one
//! single-copy btree node, its inputs read through a closure that reads the live options'
//! allocation inputs from their [`LiveCell`] (as `Fs::live` does), then [`Allocator::release_nodes`]; on two devices 99.9 %
//! full (one bucket in a thousand free, spread pseudo-randomly), at 16k, 1M and 16M buckets
//! per device. The reference is a `kmalloc(64)` + `kfree` pair in the same kind of loop;
//! `make bench` loads this module on the bench kernel (`kernel/bench.config`), whose slab
//! allocator is the production SLUB, not tinyconfig's `SLUB_TINY`, which takes a lock on every
//! allocation. Every figure is the median of [`RUNS`] loops; each loop is timed as a whole
//! (far more than 100 ticks of the nanosecond clock).

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

use allocator::{Allocator, DeviceBuckets, LiveCell, LiveInputs, NodeAlloc};
use core::hint::black_box;
use kernel::{alloc::KVec, prelude::*, time::Ktime};
use shared::alloc_policy::Watermark;
use shared::bucket_table::BucketState;
use shared::options::{Opt, Options};
use vec_ext::VecExt;

module! {
    type: BucketFsBench,
    name: "bucketfs_bench",
    author: "bucketfs developers",
    description: "bucketfs in-kernel benchmarks",
    license: "GPL",
}

/// Loops whose median each figure is.
const RUNS: usize = 5;
/// Rounds of one loop.
const ROUNDS: u32 = 20_000;
/// Bucket counts per device.
const SIZES: [(u32, &str); 3] = [(16_384, "16k"), (1 << 20, "1M"), (1 << 24, "16M")];

/// The slab allocator the reference ran on.
const SLAB: &str = if cfg!(CONFIG_SLUB_TINY) {
    "SLUB_TINY (test kernel: flatters the ratio)"
} else {
    "production SLUB"
};

fn ns_since(t: Ktime) -> i64 {
    Ktime::ktime_get().to_ns() - t.to_ns()
}

/// Median of `RUNS` figures from `run`.
fn median(mut run: impl FnMut() -> Result<i64>) -> Result<i64> {
    let mut v = [0i64; RUNS];
    for x in v.iter_mut() {
        *x = run()?;
    }
    v.sort_unstable();
    Ok(v[RUNS / 2])
}

/// Whether bucket `b` of device `dev` is free: one in a thousand, spread pseudo-randomly.
fn is_free(dev: u32, b: u32) -> bool {
    let mut x = (b as u64) << 8 | dev as u64;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) % 1000 == 0
}

/// Two devices of `buckets` buckets, 99.9 % of them holding data.
fn allocator(buckets: u32) -> Result<Pin<KBox<Allocator>>> {
    let mut devices = KVec::new();
    for (i, name) in ["bench0", "bench1"].into_iter().enumerate() {
        devices.push(
            DeviceBuckets::new(buckets, 0, name, |b| {
                if is_free(i as u32, b) {
                    BucketState::Free
                } else {
                    BucketState::Data
                }
            })?,
            GFP_KERNEL,
        )?;
    }
    KBox::pin_init(Allocator::new([0xbe; 16], devices), GFP_KERNEL)
}

/// The live options' allocation inputs, in the cell `Fs::live` reads.
struct Live {
    cell: LiveCell,
}

impl Live {
    /// What `Fs::live` reads.
    fn inputs(&self) -> LiveInputs {
        self.cell.read()
    }
}

/// Nanoseconds per allocate-and-release of one single-copy btree node, live options read on
/// every allocation. The reclaim watermark: at 99.9 % full a 16k-bucket device has fewer free
/// buckets than the btree reserve, which the other watermarks hold back.
fn alloc_free_ns(a: &Allocator, live: &Live) -> Result<i64> {
    let mut out: KVec<NodeAlloc> = KVec::with_capacity(1, GFP_KERNEL)?;
    let t = Ktime::ktime_get();
    for _ in 0..ROUNDS {
        a.alloc_nodes(1, Watermark::Reclaim, || live.inputs(), &mut out)?;
        a.release_nodes(&out);
        out.clear();
    }
    Ok(ns_since(t) / ROUNDS as i64)
}

/// Nanoseconds per `kmalloc(64)` + `kfree`.
fn kmalloc_ns() -> Result<i64> {
    let t = Ktime::ktime_get();
    for _ in 0..ROUNDS {
        drop(black_box(KBox::<[u8; 64]>::new_uninit(GFP_KERNEL)?));
    }
    Ok(ns_since(t) / ROUNDS as i64)
}

/// `a / b` in hundredths, printed as a ratio: no floating point in the kernel.
struct Ratio(i64);

impl Ratio {
    fn of(a: i64, b: i64) -> Ratio {
        Ratio(a * 100 / b.max(1))
    }
}

impl core::fmt::Display for Ratio {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{:02}x", self.0 / 100, self.0 % 100)
    }
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "missed"
    }
}

struct BucketFsBench;

impl kernel::Module for BucketFsBench {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let live = Live {
            cell: LiveCell::new(LiveInputs::of(
                &Options::default().with_unchecked(Opt::MetadataReplicas, 1),
                &[],
            )),
        };
        let kmalloc = median(kmalloc_ns)?;
        let mut figures = [None; SIZES.len()];
        for (slot, (buckets, label)) in figures.iter_mut().zip(SIZES) {
            let a = match allocator(buckets) {
                Ok(a) => a,
                Err(e) => {
                    pr_info!(
                        "| allocation fast path, {label} buckets per device, 99.9% full | not \
                         measured: the allocator's state for {buckets} buckets could not be \
                         built ({}) | target <= 1.5x: not measured | |\n",
                        e.to_errno()
                    );
                    continue;
                }
            };
            let ns = median(|| alloc_free_ns(&a, &live))?;
            *slot = Some(ns);
            let r = Ratio::of(ns, kmalloc);
            pr_info!(
                "| allocation fast path, {label} buckets per device, 99.9% full (median of \
                 {RUNS} x {ROUNDS}) | {ns} ns per node allocate+release (live options read) vs \
                 {kmalloc} ns per kmalloc(64)+kfree ({SLAB}) | {r} (target <= 1.5x: {}) | 2 \
                 devices, 1 copy, reclaim watermark |\n",
                met(r.0 <= 150)
            );
        }
        match (figures[0], figures[SIZES.len() - 1]) {
            (Some(small), Some(big)) => {
                let r = Ratio::of(big, small);
                pr_info!(
                    "| allocation flatness at 99.9% full, 16M vs 16k buckets | {big} ns vs \
                     {small} ns | {r} (target <= 1.2x: {}) | |\n",
                    met(r.0 <= 120)
                );
            }
            _ => pr_info!(
                "| allocation flatness at 99.9% full, 16M vs 16k buckets | not measured: a size \
                 could not be built | target <= 1.2x: not measured | |\n"
            ),
        }
        Ok(BucketFsBench)
    }
}

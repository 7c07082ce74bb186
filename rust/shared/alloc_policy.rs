// SPDX-License-Identifier: GPL-2.0

//! Bucket allocation decisions: watermarks, per-device reserves and replica placement.
//!
//! Every decision is a pure function of a snapshot of the devices and the request's inputs,
//! so the kernel can rebuild both on every wakeup and get a fresh answer, and the host can
//! test the policy.

use crate::shared::options::MAX_REPLICAS;
use crate::shared::superblock::MAX_MEMBERS;

/// How deep into a device's reserves a request may dig (bcachefs's watermarks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Watermark {
    /// Ordinary allocations, and journal replay (as in bcachefs, whose replay runs at the
    /// normal watermark and so can park while reserve buckets remain).
    Normal,
    /// Copying garbage collection.
    Copygc,
    /// Btree node allocations outside replay.
    Btree,
    /// Allocations that free space; may take the last bucket.
    Reclaim,
}

impl Watermark {
    /// Name for reports and sysfs.
    pub fn name(self) -> &'static str {
        match self {
            Watermark::Normal => "normal",
            Watermark::Copygc => "copygc",
            Watermark::Btree => "btree",
            Watermark::Reclaim => "reclaim",
        }
    }
}

/// Buckets a device keeps back for btree node allocations: 1/256 of its allocatable
/// buckets, at least 2 and at most 512 (sized so small test devices have a real reserve).
#[inline]
pub fn btree_reserve(allocatable: u64) -> u64 {
    (allocatable / 256).clamp(2, 512)
}

/// Buckets a device keeps back from requests at `wm` (the bcachefs table, with the reserve
/// above).
#[inline]
pub fn held_back(allocatable: u64, wm: Watermark) -> u64 {
    let reserve = btree_reserve(allocatable);
    match wm {
        Watermark::Normal => allocatable / 64 + 2 * reserve,
        Watermark::Copygc => 2 * reserve,
        Watermark::Btree => reserve,
        Watermark::Reclaim => 0,
    }
}

/// One device as the allocator sees it at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceSnapshot {
    /// Buckets after the metadata areas.
    pub allocatable: u64,
    /// Free buckets.
    pub free: u64,
    /// Empty buckets waiting for the discard worker.
    pub need_discard: u64,
    /// Whether the device takes new allocations.
    pub writable: bool,
}

impl DeviceSnapshot {
    /// Free buckets a request at `wm` may take.
    #[inline]
    pub fn available(&self, wm: Watermark) -> u64 {
        self.free.saturating_sub(held_back(self.allocatable, wm))
    }
}

/// Everything a request's decision depends on, re-read from live state at every attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestInputs {
    /// Btree nodes wanted.
    pub nodes: u32,
    /// Copies of each node, on distinct devices (the live `metadata_replicas`).
    pub replicas: u32,
    /// How deep into reserves the request may go.
    pub watermark: Watermark,
}

/// Why one device cannot take part in a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The device does not take allocations.
    ReadOnly,
    /// No free bucket at all.
    NoFreeBuckets,
    /// Free buckets, but not more than the reserve held back at this watermark.
    BelowWatermark {
        /// Free buckets.
        free: u64,
        /// Buckets held back.
        held_back: u64,
    },
}

impl Refusal {
    /// A short reason for reports.
    pub fn describe(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        match *self {
            Refusal::ReadOnly => write!(out, "read-only"),
            Refusal::NoFreeBuckets => write!(out, "no free buckets"),
            Refusal::BelowWatermark { free, held_back } => {
                write!(out, "below watermark ({free} free, {held_back} held back)")
            }
        }
    }
}

/// The outcome of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Take `nodes` buckets from each of these devices (one copy of every node on each).
    Allocate {
        /// The chosen devices, best first; `count` are used.
        devices: [u8; MAX_REPLICAS as usize],
        /// Number of devices chosen (the request's replica count).
        count: u32,
    },
    /// Not enough devices can serve now: wait for buckets to be freed or for the inputs to
    /// change. `refused[d]` says why device `d` could not take part.
    Blocked {
        /// Devices that could take part.
        usable: u32,
        /// Per device, why it was refused.
        refused: [Option<Refusal>; MAX_MEMBERS],
    },
    /// The request can never succeed with this device set (more replicas than devices, or a
    /// request for nothing).
    Impossible,
}

/// Decides a request against a snapshot: `replicas` distinct devices, each with at least
/// `nodes` buckets available at the watermark. Devices with the most available buckets are
/// chosen first; ties go to the lower index.
///
/// The allocation path: one pass over the devices with no per-device array; the reasons for
/// refusals are worked out only when the request is blocked.
#[inline]
pub fn decide(devices: &[DeviceSnapshot], req: &RequestInputs) -> Decision {
    let n = devices.len().min(MAX_MEMBERS);
    if req.replicas == 0
        || req.nodes == 0
        || req.replicas > MAX_REPLICAS
        || req.replicas as usize > n
    {
        return Decision::Impossible;
    }
    // Bit `i`: device `i` can take part (writable, `nodes` buckets available; `nodes` >= 1,
    // so it has a free bucket). The first choice (most available, the lower index on a tie)
    // is found in the same pass.
    let mut usable = 0u32;
    let mut first: Option<(usize, u64)> = None;
    for (i, d) in devices[..n].iter().enumerate() {
        let avail = d.available(req.watermark);
        if d.writable && avail >= req.nodes as u64 {
            usable |= 1 << i;
            if first.map_or(true, |(_, b)| avail > b) {
                first = Some((i, avail));
            }
        }
    }
    let count = usable.count_ones();
    let (Some((first, _)), true) = (first, count >= req.replicas) else {
        return Decision::Blocked {
            usable: count,
            refused: refusals(&devices[..n], req),
        };
    };
    let mut chosen = [0u8; MAX_REPLICAS as usize];
    chosen[0] = first as u8;
    usable &= !(1 << first);
    for slot in chosen.iter_mut().take(req.replicas as usize).skip(1) {
        let mut best: Option<(usize, u64)> = None;
        let mut left = usable;
        while left != 0 {
            let i = left.trailing_zeros() as usize;
            left &= left - 1;
            let avail = devices.get(i).map_or(0, |d| d.available(req.watermark));
            if best.map_or(true, |(_, b)| avail > b) {
                best = Some((i, avail));
            }
        }
        if let Some((b, _)) = best {
            usable &= !(1 << b);
            *slot = b as u8;
        }
    }
    Decision::Allocate {
        devices: chosen,
        count: req.replicas,
    }
}

/// Why each device cannot take part in `req` (`None`: it can).
fn refusals(devices: &[DeviceSnapshot], req: &RequestInputs) -> [Option<Refusal>; MAX_MEMBERS] {
    let mut refused = [None; MAX_MEMBERS];
    for (r, d) in refused.iter_mut().zip(devices) {
        *r = if !d.writable {
            Some(Refusal::ReadOnly)
        } else if d.free == 0 {
            Some(Refusal::NoFreeBuckets)
        } else if d.available(req.watermark) < req.nodes as u64 {
            Some(Refusal::BelowWatermark {
                free: d.free,
                held_back: held_back(d.allocatable, req.watermark),
            })
        } else {
            None
        };
    }
    refused
}

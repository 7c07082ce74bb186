// SPDX-License-Identifier: GPL-2.0

//! Bucket allocation decisions: watermarks, per-device reserves and replica placement.
//!
//! Placement with a target (`metadata_target`: the members it names, [`RequestInputs::target`]):
//! a node's copies go to usable target members first, most available buckets first, and the
//! copies the target cannot hold (it has fewer members than `replicas`) to the other members.
//! When fewer target members can serve now than the target has members (up to `replicas`),
//! the request waits for them (strict, the default), or, with `metadata_target_fallback`
//! ([`RequestInputs::fallback`]), puts those copies on other members at once, as bcachefs's
//! foreground writes do. A target that names no member places as no target.
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

    /// Empty buckets (free, or waiting for discard) beyond what `wm` holds back: what the
    /// device can give a request at `wm` once its discards are done.
    #[inline]
    pub fn spare(&self, wm: Watermark) -> u64 {
        (self.free + self.need_discard).saturating_sub(held_back(self.allocatable, wm))
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
    /// The members the live `metadata_target` names, one bit per member (0: no target).
    pub target: u32,
    /// The live `metadata_target_fallback`: copies the target's members cannot take now go to
    /// other members instead of waiting.
    pub fallback: bool,
}

impl RequestInputs {
    /// A request with no target.
    pub fn new(nodes: u32, replicas: u32, watermark: Watermark) -> RequestInputs {
        RequestInputs {
            nodes,
            replicas,
            watermark,
            target: 0,
            fallback: false,
        }
    }
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
/// chosen first; ties go to the lower index. With a target, its members come first (see the
/// module doc); a strict request is blocked while fewer of them can serve than it needs.
///
/// The allocation path: device sets are bit masks (no per-device array); the reasons for
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
    // so it has a free bucket).
    let mut usable = 0u32;
    for (i, d) in devices[..n].iter().enumerate() {
        if d.writable && d.available(req.watermark) >= req.nodes as u64 {
            usable |= 1 << i;
        }
    }
    let all = (1u32 << n) - 1;
    let target = req.target & all;
    let count = usable.count_ones();
    // Copies that must be on target members: as many as it has, up to `replicas`.
    let wanted = if req.fallback {
        0
    } else {
        target.count_ones().min(req.replicas)
    };
    let target_usable = (usable & target).count_ones();
    if count < req.replicas || target_usable < wanted {
        // Devices that could take part: with a strict target short of members, only those.
        let usable = if target_usable < wanted {
            target_usable
        } else {
            count
        };
        return Decision::Blocked {
            usable,
            refused: refusals(&devices[..n], req),
        };
    }
    let mut chosen = [0u8; MAX_REPLICAS as usize];
    let mut picked = 0;
    // Target members first (every member when there is no target), then the others.
    let pools = if target == 0 {
        [usable, 0]
    } else {
        [usable & target, usable & !target]
    };
    for mut pool in pools {
        while picked < req.replicas as usize && pool != 0 {
            let mut best: Option<(usize, u64)> = None;
            let mut left = pool;
            while left != 0 {
                let i = left.trailing_zeros() as usize;
                left &= left - 1;
                let avail = devices.get(i).map_or(0, |d| d.available(req.watermark));
                if best.map_or(true, |(_, b)| avail > b) {
                    best = Some((i, avail));
                }
            }
            let Some((b, _)) = best else { break };
            pool &= !(1 << b);
            chosen[picked] = b as u8;
            picked += 1;
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

/// Whether a blocked request may proceed with fewer copies than it asks for
/// (`metadata_degraded_writes`): the option is on (`enabled`), the stuck timer is on
/// (`stuck_timeout_s` > 0: with the timer off a request is never "stuck", so it never degrades),
/// fewer copies are allowed at all (`required` < `replicas`), and either the request has been
/// parked for at least the timeout (`parked_ms`) or the allocator is `degrading` already (the
/// last request that could not get its full copies degraded and none got them since: the
/// shortage that made one request wait the timeout does not make each of the next wait it
/// again, so a replay that needs many allocations waits once).
#[inline]
pub fn may_degrade(
    enabled: bool,
    stuck_timeout_s: u32,
    parked_ms: i64,
    replicas: u32,
    required: u32,
    degrading: bool,
) -> bool {
    enabled
        && stuck_timeout_s > 0
        && required < replicas
        && (degrading || parked_ms >= stuck_timeout_s as i64 * 1000)
}

/// A degraded decision for a request `decide` blocked: the most copies, fewer than
/// `req.replicas` and at least `required` (and at least one), that the devices can serve now,
/// placed as `decide` places them (target first). `None` if even `required` copies cannot be
/// served now.
pub fn decide_degraded(
    devices: &[DeviceSnapshot],
    req: &RequestInputs,
    required: u32,
) -> Option<Decision> {
    let lowest = required.max(1);
    let mut r = req.replicas;
    while r > lowest {
        r -= 1;
        let fewer = RequestInputs {
            replicas: r,
            ..*req
        };
        if let d @ Decision::Allocate { .. } = decide(devices, &fewer) {
            return Some(d);
        }
    }
    None
}

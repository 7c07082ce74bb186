// SPDX-License-Identifier: GPL-2.0

//! The allocator's text: the stuck report a parked request prints, and `internal/alloc_debug`.
//!
//! Kept apart from the park/retry loop in `allocator.rs`; a child module, so it reads the
//! allocator's private state under its lock and changes nothing but the report's rate limit.

use super::{Allocator, REPORT_INTERVAL_MS};
use crate::shared::alloc_policy::{btree_reserve, held_back, Decision, RequestInputs, Watermark};
use crate::shared::bucket_table::BucketState;
use crate::shared::superblock::UuidFmt;
use crate::text::Text;
use core::fmt::Write;
use core::sync::atomic::Ordering;
use kernel::{
    prelude::*,
    time::{ktime_ms_delta, Ktime},
};

impl Allocator {
    /// Prints the stuck report, unless another one went out less than
    /// [`REPORT_INTERVAL_MS`] ago. Returns `None` if it printed, else in how many milliseconds
    /// (at least 1) a report may go out again.
    pub(super) fn report_stuck(
        &self,
        id: u64,
        req: &RequestInputs,
        decision: &Decision,
        start: Ktime,
    ) -> Option<i64> {
        let now = Ktime::ktime_get();
        let st = &mut *self.state.lock();
        if let Some(t) = st.last_report {
            let since = ktime_ms_delta(now, t);
            if since < REPORT_INTERVAL_MS {
                return Some((REPORT_INTERVAL_MS - since).max(1));
            }
        }
        st.last_report = Some(now);
        let uuid = UuidFmt(&self.uuid);
        pr_warn!(
            "{uuid}: allocator stuck for {} ms: request {id} wants {} btree node(s) x {} \
             replica(s) at watermark {}\n",
            ktime_ms_delta(now, start),
            req.nodes,
            req.replicas,
            req.watermark.name()
        );
        if req.target != 0 {
            pr_warn!(
                "{uuid}:   metadata_target members {}, {}\n",
                Members(req.target),
                if req.fallback {
                    "fallback on"
                } else {
                    "strict: waits for them"
                }
            );
        }
        let refused = match decision {
            Decision::Blocked { refused, .. } => Some(refused),
            _ => None,
        };
        for (i, d) in st.devices.iter().enumerate() {
            let s = d.snapshot();
            let mut why = Text::<96>::new();
            match refused.and_then(|r| r[i]) {
                Some(r) => {
                    let _ = r.describe(&mut why);
                }
                None => {
                    let _ = write!(why, "could serve");
                }
            }
            pr_warn!(
                "{uuid}:   dev-{i} ({}): free {}, need_discard {}, btree reserve {}, held back at \
             {} {}: {}\n",
                d.name(),
                s.free,
                s.need_discard,
                btree_reserve(s.allocatable),
                req.watermark.name(),
                held_back(s.allocatable, req.watermark),
                why.as_str()
            );
        }
        pr_warn!(
            "{uuid}:   waiting for free buckets or an option change under options/; \
             internal/abort_stuck_allocations fails it\n"
        );
        None
    }

    /// Writes the allocator state for `internal/alloc_debug`.
    pub(crate) fn debug(&self, out: &mut dyn Write) -> core::fmt::Result {
        let now = Ktime::ktime_get();
        let st = self.state.lock();
        writeln!(out, "parked requests: {}", st.parked.len())?;
        for p in st.parked.iter() {
            writeln!(
                out,
                "  request {}: {} node(s) x {} replica(s), watermark {}, waiting {} ms, wakeups {}",
                p.id,
                p.inputs.nodes,
                p.inputs.replicas,
                p.inputs.watermark.name(),
                ktime_ms_delta(now, p.since),
                p.wakeups
            )?;
            if p.inputs.target != 0 {
                writeln!(
                    out,
                    "    metadata_target members {}{}",
                    Members(p.inputs.target),
                    if p.inputs.fallback { ", fallback" } else { "" }
                )?;
            }
        }
        writeln!(
            out,
            "parks: {}\nwakeups: {}\naborted: {}\ntimeouts: {}\ndegraded allocations: {} \
             (node copies short: {})",
            self.parks.load(Ordering::Relaxed),
            self.wakeups.load(Ordering::Relaxed),
            self.aborted.load(Ordering::Relaxed),
            self.timeouts.load(Ordering::Relaxed),
            self.degraded_allocs.load(Ordering::Relaxed),
            self.degraded_copies_short.load(Ordering::Relaxed)
        )?;
        for (i, d) in st.devices.iter().enumerate() {
            let s = d.snapshot();
            write!(out, "dev-{i} ({}): allocatable {}", d.name(), s.allocatable)?;
            for state in BucketState::ALL {
                write!(out, " {} {}", state.name(), d.count(state))?;
            }
            writeln!(
                out,
                " btree_reserve {} held_back_normal {}",
                btree_reserve(s.allocatable),
                held_back(s.allocatable, Watermark::Normal)
            )?;
        }
        Ok(())
    }
}

/// A set of members (bit `i`: member `i`) shown as `dev-0,dev-2`.
struct Members(u32);

impl core::fmt::Display for Members {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut left = self.0;
        let mut sep = "";
        while left != 0 {
            let i = left.trailing_zeros();
            left &= left - 1;
            write!(f, "{sep}dev-{i}")?;
            sep = ",";
        }
        Ok(())
    }
}

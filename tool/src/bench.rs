//! `bench`: measurements run in the guest by `make bench`. Each prints table rows whose
//! figures are ratios of two things measured side by side in the same run: the filesystem's
//! work against the raw device doing the same I/O (the same bytes read, the same ranges
//! discarded, the same number of blocks written and flushes).
//!
//! Every row ends with the clocksource and its tick (the smallest step the clock takes). A
//! ratio's reference is timed over a window of at least [`MIN_TICKS`] ticks, the work repeated
//! back to back until the window is that long; a reference that cannot be (one mount) is
//! printed without a ratio when it is shorter. Figures are medians of [`RUNS`] runs.

use crate::device::Device;
use crate::show::read_super;
use bucketfs_core::bucket_table::{decode_block, table_blocks, BucketState, TableBlockId};
use bucketfs_core::superblock::{Superblock, BLOCK_SIZE, TABLE_ENTRIES_PER_BLOCK};
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Writes the scenario with the devices open only meanwhile: the mount that follows needs
/// them unclaimed.
fn write_scenario(spec: &str, paths: &[PathBuf]) -> Result<(), String> {
    let mut devs = paths
        .iter()
        .map(|p| Device::open(p, true))
        .collect::<Result<Vec<_>, _>>()?;
    crate::scenario::scenario_quiet(spec, &mut devs).map(|_| ())
}

fn source_of(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// The one mounted (or mounting) bucketfs's sysfs directory.
fn fs_dir() -> Option<String> {
    fs::read_dir("/sys/fs/bucketfs")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .map(|p| p.display().to_string())
}

fn parked() -> bool {
    fs_dir()
        .and_then(|d| fs::read_to_string(format!("{d}/internal/alloc_debug")).ok())
        .is_some_and(|t| t.lines().any(|l| l == "parked requests: 1"))
}

/// Forks a child that calls mount(2); returns its pid.
fn spawn_mount(source: &str, opts: &str) -> Result<libc::pid_t, String> {
    let (src, target, fstype, data) = (cstr(source), cstr("/mnt"), cstr("bucketfs"), cstr(opts));
    // SAFETY: fork in a single-threaded process; the child only calls async-signal-safe
    // functions (mount, _exit) on memory prepared before the fork.
    match unsafe { libc::fork() } {
        -1 => Err("fork failed".into()),
        0 => unsafe {
            let r = libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                data.as_ptr().cast(),
            );
            libc::_exit(if r == 0 { 0 } else { 1 })
        },
        pid => Ok(pid),
    }
}

/// Waits for `pid`; returns whether it exited with status 0.
fn wait_child(pid: libc::pid_t) -> bool {
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is valid for writes.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

fn umount() {
    let t = cstr("/mnt");
    // SAFETY: a plain syscall on a NUL-terminated path.
    unsafe { libc::umount2(t.as_ptr(), 0) };
}

/// The current clocksource.
const CLOCKSOURCE: &str = "/sys/devices/system/clocksource/clocksource0/current_clocksource";

/// Shortest window, in clock ticks, that may serve as a ratio's reference.
const MIN_TICKS: u32 = 100;

/// Runs whose median the drain and replay rows report.
const RUNS: usize = 5;

/// The clock the measurements read.
struct Clock {
    /// Smallest non-zero step between two readings.
    tick: Duration,
}

impl Clock {
    fn probe() -> Clock {
        let mut tick = Duration::MAX;
        for _ in 0..20 {
            let a = Instant::now();
            let mut b = Instant::now();
            while b <= a {
                b = Instant::now();
            }
            tick = tick.min(b - a);
        }
        Clock { tick }
    }

    /// The shortest reference window.
    fn min_window(&self) -> Duration {
        self.tick * MIN_TICKS
    }

    /// The last cell of a row: the clocksource now, and the tick.
    fn cell(&self) -> String {
        let name = fs::read_to_string(CLOCKSOURCE)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        format!("{name} (tick {} ns)", self.tick.as_nanos())
    }

    /// Times `work` repeated back to back until the window lasts at least [`MIN_TICKS`]
    /// ticks; returns the time of one repetition.
    fn reference(&self, mut work: impl FnMut() -> Result<(), String>) -> Result<Duration, String> {
        let mut reps = 1u32;
        loop {
            let t0 = Instant::now();
            for _ in 0..reps {
                work()?;
            }
            let elapsed = t0.elapsed();
            if elapsed >= self.min_window() {
                return Ok(elapsed / reps);
            }
            if reps >= 1 << 16 {
                return Err(format!(
                    "{reps} repetitions still shorter than {MIN_TICKS} ticks"
                ));
            }
            reps *= 2;
        }
    }

    /// `value / reference` for a reference timed in one window of its own, or `None` when
    /// that window is shorter than [`MIN_TICKS`] ticks.
    fn ratio(&self, value: f64, reference: Duration) -> Option<f64> {
        (reference >= self.min_window()).then(|| value / reference.as_secs_f64())
    }
}

/// Medians of `RUNS` figures.
fn median(v: &mut [f64]) -> f64 {
    percentile(v, 0.5)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Unstick latency: time from the action (sysfs write, abort knob, SIGKILL) to the parked
/// mount returning, `runs` times each, beside the time of a mount that never parks.
pub fn unstick(spec: &str, devs: &[PathBuf], runs: usize) -> Result<(), String> {
    let clock = Clock::probe();
    let source = source_of(devs);
    let mut plain = Vec::new();
    for _ in 0..runs.min(5) {
        write_scenario(spec, devs)?;
        let t0 = Instant::now();
        let pid = spawn_mount(&source, "metadata_replicas=1")?;
        if !wait_child(pid) {
            return Err("plain mount failed".into());
        }
        plain.push(t0.elapsed().as_secs_f64() * 1e3);
        umount();
    }
    let plain_p50 = percentile(&mut plain, 0.5);
    for mode in ["sysfs", "abort", "kill"] {
        let mut lat = Vec::new();
        for _ in 0..runs {
            write_scenario(spec, devs)?;
            let pid = spawn_mount(&source, "")?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while !parked() {
                if Instant::now() > deadline {
                    return Err(format!("{mode}: the mount did not park"));
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            let d = fs_dir().ok_or("no sysfs dir")?;
            let t0 = Instant::now();
            match mode {
                "sysfs" => fs::write(format!("{d}/options/metadata_replicas"), "1")
                    .map_err(|e| e.to_string())?,
                "abort" => fs::write(format!("{d}/internal/abort_stuck_allocations"), "1")
                    .map_err(|e| e.to_string())?,
                // SAFETY: `pid` is our child.
                _ => unsafe {
                    libc::kill(pid, libc::SIGKILL);
                },
            }
            let ok = wait_child(pid);
            lat.push(t0.elapsed().as_secs_f64() * 1e3);
            if ok != (mode == "sysfs") {
                return Err(format!(
                    "{mode}: the mount {}",
                    if ok { "succeeded" } else { "failed" }
                ));
            }
            if ok {
                umount();
            }
        }
        let (p50, p99) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99));
        // One mount cannot be repeated inside one window: a reference this short is refused.
        let ratio = match clock.ratio(p99 / 1e3, Duration::from_secs_f64(plain_p50 / 1e3)) {
            Some(r) => format!("{r:.2}"),
            None => format!("refused (reference < {MIN_TICKS} ticks)"),
        };
        println!(
            "| unstick by {mode} ({runs} runs) | p50 {p50:.1} ms, p99 {p99:.1} ms | p99 / unparked \
             mount p50 ({plain_p50:.1} ms) = {ratio} | p99 < 50 ms: {} | {} |",
            if p99 < 50.0 { "met" } else { "missed" },
            clock.cell()
        );
    }
    Ok(())
}

fn read_u64(path: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "missed"
    }
}

/// A ratio cell: the ratio against its target, or why there is none (`None`: the reference
/// is a single event shorter than [`MIN_TICKS`] ticks).
fn ratio_cell(ratio: Option<f64>, target: &str, ok: impl Fn(f64) -> bool) -> String {
    match ratio {
        Some(r) => format!("{r:.2}x (target {target}: {})", met(ok(r))),
        None => format!("refused: reference < {MIN_TICKS} ticks (target {target}: not measured)"),
    }
}

fn ms(s: f64) -> f64 {
    s * 1e3
}

/// The superblock of the filesystem on `path` and the member it describes there.
fn member_of(path: &PathBuf) -> Result<(Superblock, usize), String> {
    let dev = Device::open(path, false)?;
    let (sb, _) = read_super(&dev)?;
    Ok((sb, sb.member_index as usize))
}

/// An O_DIRECT file on `path` and a 4096-aligned buffer of `len` bytes.
struct Direct {
    file: fs::File,
    buf: *mut u8,
    layout: std::alloc::Layout,
}

impl Direct {
    fn open(path: &PathBuf, write: bool, len: usize) -> Result<Direct, String> {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let layout = std::alloc::Layout::from_size_align(len.max(4096), 4096).unwrap();
        // SAFETY: a non-zero-sized layout; freed in `drop`.
        let buf = unsafe { std::alloc::alloc_zeroed(layout) };
        if buf.is_null() {
            return Err("no memory for the I/O buffer".into());
        }
        Ok(Direct { file, buf, layout })
    }

    fn fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.file)
    }

    /// Reads `len` bytes (at most the buffer) at `off`.
    fn read(&self, off: u64, len: usize) -> Result<(), String> {
        // SAFETY: `buf` holds at least `len` bytes.
        let n = unsafe { libc::pread(self.fd(), self.buf.cast(), len, off as i64) };
        if n == len as isize {
            Ok(())
        } else {
            Err(format!("read of {len} bytes at {off} failed"))
        }
    }

    /// Writes the first `len` bytes of the buffer at `off`.
    fn write(&self, off: u64, len: usize) -> Result<(), String> {
        // SAFETY: `buf` holds at least `len` bytes.
        let n = unsafe { libc::pwrite(self.fd(), self.buf.cast(), len, off as i64) };
        if n == len as isize {
            Ok(())
        } else {
            Err(format!("write of {len} bytes at {off} failed"))
        }
    }

    /// One cache flush of the device.
    fn flush(&self) -> Result<(), String> {
        // SAFETY: a plain syscall on an open descriptor.
        if unsafe { libc::fdatasync(self.fd()) } == 0 {
            Ok(())
        } else {
            Err(format!("flush failed: {}", std::io::Error::last_os_error()))
        }
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        // SAFETY: allocated in `open` with the same layout.
        unsafe { std::alloc::dealloc(self.buf, self.layout) };
    }
}

// SAFETY: the buffer is only read by the kernel during pwrite; threads share it read-only.
unsafe impl Sync for Direct {}

/// Discard drain: the worker's time draining the scenario's `need_discard` buckets (filled
/// with data first), against BLKDISCARD of exactly the same ranges followed by as many
/// flushes as the worker's table writes, the ranges refilled before each reference run.
///
/// The scenario is written without its journal: the mount then kicks the worker once, and
/// that one pass is the drain (with a journal, the replay's commit starts a second pass for
/// the old btree nodes, which is not the backlog). The pass is over for a device when its
/// `dev-N/discard_ns` is set: the worker adds it after the device's table write, its last
/// step; no polling interval enters the figure, which is the kernel's own time.
pub fn drain(spec: &str, devs: &[PathBuf]) -> Result<(), String> {
    let clock = Clock::probe();
    let drain_spec = drain_spec(spec)?;
    let mut worker_ms = Vec::new();
    let mut ref_ms = Vec::new();
    let mut notes = Vec::new();
    let (mut buckets, mut commands, mut flushes) = (0, 0, 0);
    for _ in 0..RUNS {
        write_scenario(&drain_spec, devs)?;
        let runs = devs
            .iter()
            .map(need_discard_runs)
            .collect::<Result<Vec<_>, _>>()?;
        let expect_buckets: u64 = runs.iter().flatten().map(|r| r.2).sum();
        let expect_commands: u64 = runs.iter().map(|r| r.len() as u64).sum();
        let (ns, b, c, f) = drain_once(devs, &runs)?;
        if (b, c) != (expect_buckets, expect_commands) {
            notes.push(format!(
                "worker: {b} buckets in {c} commands, the table said {expect_buckets} in \
                 {expect_commands}"
            ));
        }
        (buckets, commands, flushes) = (b, c, f);
        worker_ms.push(ns as f64 / 1e6);
        ref_ms.push(ms(reference_discard(&clock, devs, &runs, f)?));
    }
    let (worker, reference) = (median(&mut worker_ms), median(&mut ref_ms));
    notes.dedup();
    println!(
        "| discard drain of the seed's backlog ({buckets} buckets filled with data, median of \
         {RUNS}) | worker {worker:.1} ms: {commands} commands + {flushes} table writes vs \
         BLKDISCARD of the same {commands} ranges + {flushes} flushes {reference:.1} ms | {} | \
         {commands} commands, 1 per {:.0} buckets (target <= 1/64: {}){} | {} |",
        // The reference's timed windows add up to at least MIN_TICKS ticks.
        ratio_cell(Some(worker / reference), "<= 1.5x", |r| r <= 1.5),
        buckets as f64 / commands.max(1) as f64,
        met(commands * 64 <= buckets),
        if notes.is_empty() {
            String::new()
        } else {
            format!("; {}", notes.join("; "))
        },
        clock.cell()
    );
    Ok(())
}

/// The drain's spec: `spec` without journal keys, every device's need_discard buckets filled.
fn drain_spec(spec: &str) -> Result<String, String> {
    let text = fs::read_to_string(spec).map_err(|e| format!("{spec}: {e}"))?;
    let mut t: toml::Table = text.parse().map_err(|e| format!("{spec}: {e}"))?;
    t.insert("journal_keys".into(), toml::Value::Integer(0));
    if let Some(toml::Value::Array(devices)) = t.get_mut("device") {
        for d in devices.iter_mut().filter_map(|d| d.as_table_mut()) {
            d.insert("fill".into(), toml::Value::Boolean(true));
        }
    }
    let path = "/tmp/bench-drain.toml".to_string();
    fs::write(&path, t.to_string()).map_err(|e| format!("{path}: {e}"))?;
    Ok(path)
}

/// The discard commands the worker issues on `path`: runs of contiguous `need_discard`
/// buckets in its bucket table, cut as the worker cuts them (256 MiB, the device's largest
/// discard, 65536 buckets). (byte offset, byte length, buckets) each.
fn need_discard_runs(path: &PathBuf) -> Result<Vec<(u64, u64, u64)>, String> {
    let dev = Device::open(path, false)?;
    let (sb, _) = read_super(&dev)?;
    let i = sb.member_index;
    let m = sb.members[i as usize];
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let dev_max = read_u64(&format!("/sys/block/{name}/queue/discard_max_bytes"));
    let mut cap_bytes: u64 = 256 << 20;
    if dev_max > 0 {
        cap_bytes = cap_bytes.min(dev_max);
    }
    let cap = (cap_bytes / m.bucket_size as u64).clamp(1, 1 << 16);
    let blocks = table_blocks(m.nbuckets);
    let mut buf = vec![0u8; blocks as usize * BLOCK_SIZE];
    dev.read_at(m.bucket_offset(m.table_start as u64), &mut buf)?;
    let mut runs: Vec<(u64, u64, u64)> = Vec::new();
    let mut cur: Option<(u64, u64)> = None; // (first bucket, length)
    for block in 0..blocks {
        let id = TableBlockId {
            uuid: sb.uuid,
            member: i,
            block: block as u32,
        };
        let o = block as usize * BLOCK_SIZE;
        let mut states = Vec::new();
        decode_block(&id, m.nbuckets, &buf[o..o + BLOCK_SIZE], |_, e| {
            states.push(e.state)
        })
        .map_err(|e| format!("bucket table block {block}: {e:?}"))?;
        for (j, st) in states.into_iter().enumerate() {
            let b = block * TABLE_ENTRIES_PER_BLOCK + j as u64;
            cur = match (cur, st == BucketState::NeedDiscard) {
                (Some((f, l)), true) if l < cap => Some((f, l + 1)),
                (Some(r), true) => {
                    runs.push((r.0, r.1, 0));
                    Some((b, 1))
                }
                (None, true) => Some((b, 1)),
                (Some(r), false) => {
                    runs.push((r.0, r.1, 0));
                    None
                }
                (None, false) => None,
            };
        }
    }
    if let Some(r) = cur {
        runs.push((r.0, r.1, 0));
    }
    Ok(runs
        .into_iter()
        .map(|(f, l, _)| (m.bucket_offset(f), l * m.bucket_size as u64, l))
        .collect())
}

/// One drain: the worker's nanoseconds, buckets, commands, and devices it drained (one table
/// write each).
fn drain_once(
    devs: &[PathBuf],
    runs: &[Vec<(u64, u64, u64)>],
) -> Result<(u64, u64, u64, u64), String> {
    let source = source_of(devs);
    let pid = spawn_mount(&source, "")?;
    if !wait_child(pid) {
        return Err("mount failed".into());
    }
    let d = fs_dir().ok_or("no sysfs dir")?;
    // Members by device order: the scenario makes device i member i.
    let deadline = Instant::now() + Duration::from_secs(300);
    while (0..devs.len())
        .any(|i| !runs[i].is_empty() && read_u64(&format!("{d}/dev-{i}/discard_ns")) == 0)
    {
        if Instant::now() > deadline {
            umount();
            return Err("the drain did not finish in 300 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let sum = |name: &str| -> u64 {
        (0..devs.len())
            .map(|i| read_u64(&format!("{d}/dev-{i}/{name}")))
            .sum()
    };
    let drained = (0..devs.len())
        .filter(|i| read_u64(&format!("{d}/dev-{i}/discard_ns")) > 0)
        .count() as u64;
    let figures = (
        sum("discard_ns"),
        sum("discard_buckets"),
        sum("discard_commands"),
        drained,
    );
    umount();
    Ok(figures)
}

/// Seconds of one reference drain: BLKDISCARD of `runs` on each device, then one flush per
/// drained device (`flushes` in all). The ranges are refilled with data before each
/// repetition, outside the timed window; repetitions go on until the timed windows add up to
/// at least [`MIN_TICKS`] ticks.
fn reference_discard(
    clock: &Clock,
    devs: &[PathBuf],
    runs: &[Vec<(u64, u64, u64)>],
    flushes: u64,
) -> Result<f64, String> {
    let files = devs
        .iter()
        .map(|p| {
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_EXCL)
                .open(p)
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let chunk = vec![0xa5u8; 8 << 20];
    let (mut total, mut reps) = (Duration::ZERO, 0u32);
    while total < clock.min_window() || reps == 0 {
        // Refill: real data in every range, on the device (written and flushed).
        for (f, runs) in files.iter().zip(runs) {
            for &(off, len, _) in runs {
                let mut done = 0;
                while done < len {
                    let n = (len - done).min(chunk.len() as u64) as usize;
                    std::os::unix::fs::FileExt::write_all_at(f, &chunk[..n], off + done)
                        .map_err(|e| e.to_string())?;
                    done += n as u64;
                }
            }
            f.sync_all().map_err(|e| e.to_string())?;
        }
        let t0 = Instant::now();
        let mut flushed = 0;
        for (f, runs) in files.iter().zip(runs) {
            let fd = std::os::fd::AsRawFd::as_raw_fd(f);
            for &(off, len, _) in runs {
                let range: [u64; 2] = [off, len];
                // SAFETY: BLKDISCARD reads a [start, len] pair through a valid pointer.
                if unsafe { libc::ioctl(fd, 0x1277, range.as_ptr()) } != 0 {
                    return Err(format!(
                        "BLKDISCARD failed: {}",
                        std::io::Error::last_os_error()
                    ));
                }
            }
            if !runs.is_empty() && flushed < flushes {
                // SAFETY: a plain syscall on an open descriptor.
                unsafe { libc::fdatasync(fd) };
                flushed += 1;
            }
        }
        total += t0.elapsed();
        reps += 1;
        if reps >= 64 {
            break;
        }
    }
    Ok(total.as_secs_f64() / reps as f64)
}

/// What `internal/replay` says after a mount.
#[derive(Clone, Copy, Default)]
struct ReplayFigures {
    keys: u64,
    bytes: u64,
    total_us: u64,
    read_us: u64,
    apply_us: u64,
    commit_us: u64,
    nodes_written: u64,
}

fn replay_figures(d: &str) -> Result<ReplayFigures, String> {
    let text = fs::read_to_string(format!("{d}/internal/replay")).map_err(|e| e.to_string())?;
    let mut lines = text.lines();
    // "replayed N of M key(s) from B journal bytes in T us"
    let first: Vec<u64> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [keys, _, bytes, total_us] = first[..] else {
        return Err(format!("unexpected replay figures: {text}"));
    };
    let mut f = ReplayFigures {
        keys,
        bytes,
        total_us,
        ..Default::default()
    };
    for l in lines {
        let mut w = l.split_whitespace();
        let (Some(name), Some(v)) = (w.next(), w.next().and_then(|v| v.parse().ok())) else {
            continue;
        };
        match name {
            "read_us" => f.read_us = v,
            "apply_us" => f.apply_us = v,
            "commit_us" => f.commit_us = v,
            "nodes_written" => f.nodes_written = v,
            _ => {}
        }
    }
    Ok(f)
}

/// Journal replay, split: (a) reading and decoding the journal, against an O_DIRECT
/// sequential read of the same bytes from the journal's place on the same device; (b)
/// applying the entries and committing, against raw O_DIRECT writes of as many node blocks
/// (all in flight) and one flush.
pub fn replay(spec: &str, devs: &[PathBuf], label: &str) -> Result<(), String> {
    let clock = Clock::probe();
    let (mut read, mut seq, mut apply, mut raw, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut f = ReplayFigures::default();
    for _ in 0..RUNS {
        f = replay_once(spec, devs, "metadata_replicas=1")?.0;
        read.push(f.read_us as f64 / 1e6);
        apply.push((f.apply_us + f.commit_us) as f64 / 1e6);
        total.push(f.total_us as f64 / 1e6);
        let (sb, i) = member_of(&devs[0])?;
        let m = sb.members[i];
        seq.push(sequential_read(
            &clock,
            &devs[0],
            &[(m.bucket_offset(m.journal_start as u64), f.bytes)],
        )?);
        raw.push(raw_writes(&clock, &devs[0], &sb, i, f.nodes_written)?);
    }
    let (read, seq, apply, raw, total) = (
        median(&mut read),
        median(&mut seq),
        median(&mut apply),
        median(&mut raw),
        median(&mut total),
    );
    // (a): the read's speed relative to the raw read's, so >= 0.5 is the target. The
    // references come from `Clock::reference`: windows of at least MIN_TICKS ticks.
    let ra = if read > 0.0 {
        let r = seq / read;
        format!("{r:.2} (target >= 0.5: {})", met(r >= 0.5))
    } else {
        "not measured: no journal read time".to_string()
    };
    println!(
        "| replay {label}, journal read+decode (median of {RUNS}) | {} KiB in {:.2} ms ({:.1} \
         MB/s) vs O_DIRECT sequential read of the same bytes {:.2} ms ({:.1} MB/s) | speed \
         ratio {ra} | {} keys, whole replay {:.1} ms, {:.0} keys/s | {} |",
        f.bytes / 1024,
        ms(read),
        f.bytes as f64 / read.max(1e-9) / 1e6,
        ms(seq),
        f.bytes as f64 / seq / 1e6,
        f.keys,
        ms(total),
        f.keys as f64 / total.max(1e-9),
        clock.cell()
    );
    println!(
        "| replay {label}, apply+commit (median of {RUNS}) | {:.2} ms for {} node blocks vs raw \
         O_DIRECT writes of {} blocks + 1 flush {:.2} ms | {} | apply {:.2} ms, commit {:.2} ms \
         (last run) | {} |",
        ms(apply),
        f.nodes_written,
        f.nodes_written,
        ms(raw),
        ratio_cell(Some(apply / raw), "<= 2x", |r| r <= 2.0),
        f.apply_us as f64 / 1e3,
        f.commit_us as f64 / 1e3,
        clock.cell()
    );
    Ok(())
}

/// One replay: the figures, and the mount's wall time in seconds.
fn replay_once(spec: &str, devs: &[PathBuf], opts: &str) -> Result<(ReplayFigures, f64), String> {
    let source = source_of(devs);
    write_scenario(spec, devs)?;
    let t0 = Instant::now();
    let pid = spawn_mount(&source, opts)?;
    if !wait_child(pid) {
        return Err("mount failed".into());
    }
    let mount_s = t0.elapsed().as_secs_f64();
    let d = fs_dir().ok_or("no sysfs dir")?;
    let f = replay_figures(&d);
    umount();
    Ok((f?, mount_s))
}

/// Seconds of one O_DIRECT sequential read of every `(offset, bytes)` range of `path`, one
/// after another (each rounded up to 4 KiB), repeated until the window is long enough.
fn sequential_read(clock: &Clock, path: &PathBuf, ranges: &[(u64, u64)]) -> Result<f64, String> {
    const CHUNK: usize = 4 << 20;
    let d = Direct::open(path, false, CHUNK)?;
    let t = clock.reference(|| {
        for &(off, bytes) in ranges {
            let len = bytes.next_multiple_of(4096);
            let mut done = 0;
            while done < len {
                let n = (len - done).min(CHUNK as u64) as usize;
                d.read(off + done, n)?;
                done += n as u64;
            }
        }
        Ok(())
    })?;
    Ok(t.as_secs_f64())
}

/// Seconds of `blocks` O_DIRECT block writes (each at the start of its own bucket from the
/// member's first allocatable bucket, as the allocator places nodes; up to 8 in flight) and
/// one flush, repeated until the window is long enough.
fn raw_writes(
    clock: &Clock,
    path: &PathBuf,
    sb: &Superblock,
    i: usize,
    blocks: u64,
) -> Result<f64, String> {
    let m = sb.members[i];
    let d = Direct::open(path, true, BLOCK_SIZE)?;
    let threads = blocks.clamp(1, 8);
    let t = clock.reference(|| {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let d = &d;
                    s.spawn(move || -> Result<(), String> {
                        let mut b = t;
                        while b < blocks {
                            d.write(m.bucket_offset(m.first_bucket as u64 + b), BLOCK_SIZE)?;
                            b += threads;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().map_err(|_| "writer panicked".to_string())?)
        })?;
        d.flush()
    })?;
    Ok(t.as_secs_f64())
}

/// A big member: mount time against an O_DIRECT sequential read of its bucket table and live
/// journal bytes, and the commit after the replay against the same replay on a small member.
/// `big` and `small` are (label, spec, device); rows it cannot measure say why.
pub fn scale(
    big: (&str, &str, &PathBuf),
    small: (&str, &str, &PathBuf),
    runs: usize,
) -> Result<(), String> {
    let clock = Clock::probe();
    let measure = |spec: &str, dev: &PathBuf| -> Result<(f64, f64, f64, ReplayFigures), String> {
        let (mut mount, mut reference, mut commit) = (Vec::new(), Vec::new(), Vec::new());
        let mut f = ReplayFigures::default();
        for _ in 0..runs {
            let (fig, mount_s) = replay_once(spec, std::slice::from_ref(dev), "")?;
            f = fig;
            let (sb, i) = member_of(dev)?;
            let m = sb.members[i];
            let table = table_blocks(m.nbuckets) * BLOCK_SIZE as u64;
            reference.push(sequential_read(
                &clock,
                dev,
                &[
                    (m.bucket_offset(m.table_start as u64), table),
                    (m.bucket_offset(m.journal_start as u64), f.bytes),
                ],
            )?);
            mount.push(mount_s);
            commit.push(f.commit_us as f64 / 1e6);
        }
        Ok((
            median(&mut mount),
            median(&mut reference),
            median(&mut commit),
            f,
        ))
    };
    let (big_label, big_spec, big_dev) = big;
    let (small_label, small_spec, small_dev) = small;
    let big_r = measure(big_spec, big_dev);
    match &big_r {
        Ok((mount, reference, _, f)) => {
            let (sb, i) = member_of(big_dev)?;
            let m = sb.members[i];
            println!(
                "| mount of {big_label} ({} buckets of {} KiB, median of {runs}) | mount {:.1} ms \
                 vs O_DIRECT sequential read of its bucket table ({} KiB) + live journal ({} \
                 KiB) {:.1} ms | {} | replayed {} keys | {} |",
                m.nbuckets,
                m.bucket_size / 1024,
                ms(*mount),
                table_blocks(m.nbuckets) * BLOCK_SIZE as u64 / 1024,
                f.bytes / 1024,
                ms(*reference),
                ratio_cell(Some(mount / reference), "<= 2x", |r| r <= 2.0),
                f.keys,
                clock.cell()
            );
        }
        Err(e) => println!(
            "| mount of {big_label} | not measured: {e} | target <= 2x: not measured | | {} |",
            clock.cell()
        ),
    }
    let small_r = measure(small_spec, small_dev);
    match (&big_r, &small_r) {
        (Ok((_, _, b, fb)), Ok((_, _, s, _))) => {
            println!(
            "| commit after replaying {} keys, {big_label} vs {small_label} (median of {runs}) | \
             {:.1} ms vs {:.1} ms | {} | commit time, kernel-timed | {} |",
            fb.keys,
            ms(*b),
            ms(*s),
            // The 16k commit is one event: refused when shorter than MIN_TICKS ticks.
            ratio_cell(clock.ratio(*b, Duration::from_secs_f64(*s)), "<= 1.2x", |r| r <= 1.2),
            clock.cell()
        )
        }
        (Err(e), _) | (_, Err(e)) => println!(
            "| commit after replaying 20000 keys, {big_label} vs {small_label} | not measured: \
             {e} | target <= 1.2x: not measured | | {} |",
            clock.cell()
        ),
    }
    Ok(())
}

/// The metadata workload: `dirs` directories of `per_dir` files each.
#[derive(Clone, Copy)]
pub struct MetaWork {
    pub dirs: usize,
    pub per_dir: usize,
}

impl MetaWork {
    pub fn files(&self) -> usize {
        self.dirs * self.per_dir
    }

    /// Every operation the timed part makes: the mkdirs, a create, a rename and an unlink per
    /// file, the rmdirs.
    fn ops(&self) -> usize {
        2 * self.dirs + 3 * self.files()
    }

    fn dir(&self, d: usize) -> String {
        format!("/mnt/d{d:03}")
    }

    /// File `i` (in directory `i / per_dir`) before the rename.
    fn created(&self, i: usize) -> String {
        format!("{}/f{i:05}", self.dir(i / self.per_dir))
    }

    /// File `i` after the rename: an even `i` moves to the directory half the tree away, an
    /// odd one stays in its directory under its new name.
    fn renamed(&self, i: usize) -> String {
        let d = i / self.per_dir;
        let to = if i % 2 == 0 {
            (d + self.dirs / 2) % self.dirs
        } else {
            d
        };
        format!("{}/r{i:05}", self.dir(to))
    }
}

/// The two filesystems compared.
#[derive(Clone, Copy, PartialEq)]
enum MetaSide {
    Bucketfs,
    Ext4,
}

/// ext4's format: the e2fsprogs defaults (Debian's /etc/mke2fs.conf in the guest) with the
/// inode tables and the journal zeroed by mkfs, so no lazy init runs in the background while
/// the work is timed.
const MKFS_EXT4: &[&str] = &[
    "-q",
    "-F",
    "-t",
    "ext4",
    "-E",
    "lazy_itable_init=0,lazy_journal_init=0",
];

impl MetaSide {
    fn name(self) -> &'static str {
        match self {
            MetaSide::Bucketfs => "bucketfs",
            MetaSide::Ext4 => "ext4",
        }
    }

    /// A new, empty filesystem on `dev`.
    fn make(self, dev: &PathBuf) -> Result<(), String> {
        match self {
            MetaSide::Bucketfs => {
                let devs = [Device::open(dev, true)?];
                let layout = crate::format::plan(
                    &devs,
                    &crate::format::FormatSpec {
                        options: bucketfs_core::options::Options::default(),
                        bucket_size: 64 << 10,
                        labels: vec![bucketfs_core::target::Label::NONE],
                    },
                )?;
                crate::format::write(&devs, &layout)
            }
            MetaSide::Ext4 => {
                let out = std::process::Command::new("mkfs.ext4")
                    .args(MKFS_EXT4)
                    .arg(dev)
                    .output()
                    .map_err(|e| format!("mkfs.ext4: {e}"))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "mkfs.ext4 {}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ))
                }
            }
        }
    }
}

/// A disk's I/O counters (/sys/block/NAME/stat).
#[derive(Clone, Copy, Default)]
struct DiskIo {
    writes: u64,
    sectors: u64,
    flushes: u64,
    discards: u64,
}

impl DiskIo {
    fn read(dev: &PathBuf) -> Result<DiskIo, String> {
        let name = dev
            .file_name()
            .ok_or_else(|| format!("{}: no device name", dev.display()))?
            .to_string_lossy();
        let path = format!("/sys/block/{name}/stat");
        let text = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let f: Vec<u64> = text
            .split_whitespace()
            .map(|w| w.parse().unwrap_or(0))
            .collect();
        // Fields (Documentation/block/stat.rst): 4 write I/Os, 6 sectors written,
        // 11 discard I/Os, 15 flush requests.
        if f.len() < 17 {
            return Err(format!("{path}: {} fields, 17 expected", f.len()));
        }
        Ok(DiskIo {
            writes: f[4],
            sectors: f[6],
            flushes: f[15],
            discards: f[11],
        })
    }

    fn since(self, before: DiskIo) -> DiskIo {
        DiskIo {
            writes: self.writes - before.writes,
            sectors: self.sectors - before.sectors,
            flushes: self.flushes - before.flushes,
            discards: self.discards - before.discards,
        }
    }
}

/// One timed run: the phases' times (create, rename, unlink + sync) in seconds, and the
/// disk's I/O during them.
struct MetaRun {
    phases: [f64; 3],
    io: DiskIo,
}

fn sys(what: &str, path: &str, r: std::io::Result<()>) -> Result<(), String> {
    r.map_err(|e| format!("{what} {path}: {e}"))
}

fn sync_all() {
    // SAFETY: a plain syscall.
    unsafe { libc::sync() };
}

/// Writes back and drops the block device's page cache: what mkfs or the format wrote
/// through it is on the disk and no stale page of an earlier run is read by the mount.
fn flush_bdev(dev: &PathBuf) -> Result<(), String> {
    let f = fs::File::open(dev).map_err(|e| format!("{}: {e}", dev.display()))?;
    const BLKFLSBUF: libc::c_ulong = 0x1261;
    // SAFETY: BLKFLSBUF takes no argument.
    let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&f), BLKFLSBUF, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(format!(
            "{}: BLKFLSBUF: {}",
            dev.display(),
            std::io::Error::last_os_error()
        ))
    }
}

/// The timed work on the filesystem mounted at /mnt.
fn meta_timed(work: MetaWork, dev: &PathBuf) -> Result<MetaRun, String> {
    let before = DiskIo::read(dev)?;
    let t0 = Instant::now();
    for d in 0..work.dirs {
        let dir = work.dir(d);
        sys("mkdir", &dir, fs::create_dir(&dir))?;
    }
    for i in 0..work.files() {
        let p = work.created(i);
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&p);
        sys("create", &p, f.map(drop))?;
    }
    let t1 = Instant::now();
    for i in 0..work.files() {
        let (from, to) = (work.created(i), work.renamed(i));
        sys("rename", &format!("{from} to {to}"), fs::rename(&from, &to))?;
    }
    let t2 = Instant::now();
    for i in 0..work.files() {
        let p = work.renamed(i);
        sys("unlink", &p, fs::remove_file(&p))?;
    }
    for d in 0..work.dirs {
        let dir = work.dir(d);
        sys("rmdir", &dir, fs::remove_dir(&dir))?;
    }
    sync_all();
    let t3 = Instant::now();
    let io = DiskIo::read(dev)?.since(before);
    Ok(MetaRun {
        phases: [
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t3 - t2).as_secs_f64(),
        ],
        io,
    })
}

/// Makes the filesystem, mounts it on /mnt, runs the timed work, unmounts; on bucketfs, then
/// runs `bucketfs fsck` (untimed).
fn meta_once(side: MetaSide, work: MetaWork, dev: &PathBuf) -> Result<MetaRun, String> {
    side.make(dev)?;
    sync_all();
    flush_bdev(dev)?;
    let (src, target, fstype, data) = (
        cstr(&dev.display().to_string()),
        cstr("/mnt"),
        cstr(side.name()),
        cstr(""),
    );
    // SAFETY: NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(format!(
            "mount: {} (see dmesg)",
            std::io::Error::last_os_error()
        ));
    }
    // What the mount wrote is not part of the work.
    sync_all();
    let run = meta_timed(work, dev);
    // SAFETY: a plain syscall on a NUL-terminated path.
    let u = unsafe { libc::umount2(target.as_ptr(), 0) };
    let run = run?;
    if u != 0 {
        return Err(format!("umount: {}", std::io::Error::last_os_error()));
    }
    // Every operation returned success; the checker says whether what bucketfs left on the
    // disk is consistent too (an empty root: the work removes all it made).
    if side == MetaSide::Bucketfs {
        flush_bdev(dev)?;
        let report = crate::fsck::fsck(&[Device::open(dev, false)?])?;
        if let Some(p) = report.problems.first() {
            return Err(format!(
                "bucketfs fsck after the run: {} problem(s), the first: {p}",
                report.problems.len()
            ));
        }
    }
    Ok(run)
}

/// Medians of the runs of one side: the total time, each phase, each I/O counter.
struct MetaFigures {
    total: f64,
    phases: [f64; 3],
    io: DiskIo,
}

fn meta_figures(runs: &[MetaRun]) -> MetaFigures {
    let med = |f: &dyn Fn(&MetaRun) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
    MetaFigures {
        total: med(&|r| r.phases.iter().sum()),
        phases: [
            med(&|r| r.phases[0]),
            med(&|r| r.phases[1]),
            med(&|r| r.phases[2]),
        ],
        io: DiskIo {
            writes: med(&|r| r.io.writes as f64) as u64,
            sectors: med(&|r| r.io.sectors as f64) as u64,
            flushes: med(&|r| r.io.flushes as f64) as u64,
            discards: med(&|r| r.io.discards as f64) as u64,
        },
    }
}

/// Metadata operations: the same tree of files created, renamed (half of them into another
/// directory) and unlinked, then one sync(2), on bucketfs and on ext4 made in turn on the same
/// disk, `runs` times each, alternating (the side that goes first alternates too). The time
/// is that of the whole work with its final sync; the row gives operations per second and
/// bucketfs's rate over ext4's, with each side's disk writes, flushes and discards during the
/// timed part (the disk's own counters). Each bucketfs run is checked by `bucketfs fsck` after
/// its unmount: a run that leaves an inconsistent filesystem is a failure, not a figure.
pub fn meta(dev: &PathBuf, work: MetaWork, runs: usize) -> Result<(), String> {
    let clock = Clock::probe();
    let (mut b_runs, mut e_runs) = (Vec::new(), Vec::new());
    let (mut b_err, mut e_err) = (None, None);
    for round in 0..runs {
        let order = if round % 2 == 0 {
            [MetaSide::Bucketfs, MetaSide::Ext4]
        } else {
            [MetaSide::Ext4, MetaSide::Bucketfs]
        };
        for side in order {
            let (results, err) = match side {
                MetaSide::Bucketfs => (&mut b_runs, &mut b_err),
                MetaSide::Ext4 => (&mut e_runs, &mut e_err),
            };
            // A side that failed once is not tried again: its error is the row's figure.
            if err.is_some() {
                continue;
            }
            match meta_once(side, work, dev) {
                Ok(r) => results.push(r),
                Err(e) => *err = Some(format!("round {}: {e}", round + 1)),
            }
        }
    }
    let ops = work.ops();
    let label = format!(
        "metadata: {} files in {} dirs, create + rename ({} into another dir) + unlink, then sync \
         (median of {runs})",
        work.files(),
        work.dirs,
        work.files().div_ceil(2)
    );
    let side_cell = |name: &str, err: &Option<String>, f: &Option<MetaFigures>| match (err, f) {
        (Some(e), _) => format!("{name} failed: {}", e.replace('|', "/")),
        (None, Some(f)) => format!(
            "{name} {:.0} ops/s ({:.2} s)",
            ops as f64 / f.total,
            f.total
        ),
        (None, None) => format!("{name}: no run"),
    };
    let detail = |name: &str, f: &Option<MetaFigures>| match f {
        Some(f) => format!(
            "{name} {:.2} / {:.2} / {:.2} s, {} writes ({:.1} MiB), {} flushes, {} discards",
            f.phases[0],
            f.phases[1],
            f.phases[2],
            f.io.writes,
            f.io.sectors as f64 * 512.0 / (1 << 20) as f64,
            f.io.flushes,
            f.io.discards
        ),
        None => format!("{name} not measured"),
    };
    let figures = |runs: &[MetaRun], err: &Option<String>| {
        (err.is_none() && !runs.is_empty()).then(|| meta_figures(runs))
    };
    let (b, e) = (figures(&b_runs, &b_err), figures(&e_runs, &e_err));
    let ratio = match (&b, &e) {
        // The rate ratio is ext4's time over bucketfs's: both are single windows, each far
        // longer than MIN_TICKS ticks or refused.
        (Some(b), Some(e)) => ratio_cell(
            clock
                .ratio(e.total, Duration::from_secs_f64(b.total))
                .filter(|_| Duration::from_secs_f64(e.total) >= clock.min_window()),
            ">= 0.5x",
            |r| r >= 0.5,
        ),
        _ => "not measured (target >= 0.5x: not measured)".to_string(),
    };
    println!(
        "| {label} | {} vs {} | {ratio} | {ops} ops ({} mkdir, {} each of create, rename, unlink, \
         {} rmdir), timed as one run ending in one sync(2), each bucketfs run checked by bucketfs fsck after its \
         unmount; mkfs.ext4 {}, default mount options; \
         phases create / rename / unlink+sync and disk I/O in the timed part: {}; {} | {} |",
        side_cell("bucketfs", &b_err, &b),
        side_cell("ext4", &e_err, &e),
        work.dirs,
        work.files(),
        work.dirs,
        MKFS_EXT4.join(" "),
        detail("bucketfs", &b),
        detail("ext4", &e),
        clock.cell()
    );
    Ok(())
}

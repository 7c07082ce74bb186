//! `bench`: measurements run in the guest by `make bench`. Each prints one table row whose
//! figures are ratios of two things measured side by side in the same run.
//!
//! Every row ends with the clocksource and its tick (the smallest step the clock takes). A
//! ratio's reference is timed over a window of at least [`MIN_TICKS`] ticks, the work repeated
//! back to back until the window is that long; a reference that cannot be (one mount) is
//! printed without a ratio when it is shorter. Figures are medians of [`RUNS`] runs.

use crate::device::Device;
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
            "| unstick by {mode} ({runs} runs) | p50 {p50:.1} ms, p99 {p99:.1} ms | p99 / unparked mount p50 ({plain_p50:.1} ms) = {ratio} | p99 < 50 ms: {} | {} |",
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

/// Discard drain: the worker's busy time draining every need_discard bucket, against a
/// whole-device BLKDISCARD of the same devices in the same guest.
pub fn drain(spec: &str, devs: &[PathBuf]) -> Result<(), String> {
    let clock = Clock::probe();
    let mut worker_ms = Vec::new();
    let mut whole_ms = Vec::new();
    let (mut buckets, mut commands) = (0, 0);
    for _ in 0..RUNS {
        let (busy_ns, b, c) = drain_once(spec, devs)?;
        (buckets, commands) = (b, c);
        worker_ms.push(busy_ns as f64 / 1e6);
        // The reference: a whole-device BLKDISCARD of every device, repeated back to back
        // until the window is long enough.
        let whole = clock.reference(|| discard_whole(devs))?;
        whole_ms.push(whole.as_secs_f64() * 1e3);
    }
    let (worker, whole) = (median(&mut worker_ms), median(&mut whole_ms));
    // `Clock::reference` timed each figure over a window of at least MIN_TICKS ticks.
    let ratio = worker / whole;
    println!(
        "| discard drain ({buckets} buckets, median of {RUNS}) | worker {worker:.1} ms vs blkdiscard of the whole devices {whole:.1} ms | {ratio:.2}x (target <= 1.5x: {}) | {commands} commands, 1 per {:.0} buckets (target <= 1/64: {}) | {} |",
        if ratio <= 1.5 { "met" } else { "missed" },
        buckets as f64 / commands.max(1) as f64,
        if commands * 64 <= buckets { "met" } else { "missed" },
        clock.cell()
    );
    Ok(())
}

/// One drain: the worker's busy nanoseconds, buckets and commands.
fn drain_once(spec: &str, devs: &[PathBuf]) -> Result<(u64, u64, u64), String> {
    let source = source_of(devs);
    write_scenario(spec, devs)?;
    let pid = spawn_mount(&source, "")?;
    if !wait_child(pid) {
        return Err("mount failed".into());
    }
    let d = fs_dir().ok_or("no sysfs dir")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let n = devs.len();
    while (0..n).any(|i| read_u64(&format!("{d}/dev-{i}/need_discard")) > 0) {
        if Instant::now() > deadline {
            return Err("need_discard did not drain".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let sum = |name: &str| -> u64 {
        (0..n)
            .map(|i| read_u64(&format!("{d}/dev-{i}/{name}")))
            .sum()
    };
    let figures = (
        sum("discard_ns"),
        sum("discard_buckets"),
        sum("discard_commands"),
    );
    umount();
    Ok(figures)
}

/// BLKDISCARD of every whole device, one after another.
fn discard_whole(devs: &[PathBuf]) -> Result<(), String> {
    for path in devs {
        let size = Device::open(path, true)?.size;
        let f = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_EXCL)
            .open(path)
            .map_err(|e| e.to_string())?;
        let range: [u64; 2] = [0, size];
        // SAFETY: BLKDISCARD reads a [start, len] pair through a valid pointer.
        let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&f), 0x1277, range.as_ptr()) };
        if r != 0 {
            return Err(format!(
                "BLKDISCARD failed: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Journal replay: bytes of journal replayed per second, against a sequential read of the
/// same device in the same guest; keys per second too.
pub fn replay(spec: &str, devs: &[PathBuf], label: &str) -> Result<(), String> {
    let clock = Clock::probe();
    let mut replay_s = Vec::new();
    let mut read_s = Vec::new();
    let (mut keys, mut bytes) = (0, 0);
    for _ in 0..RUNS {
        let (k, b, us) = replay_once(spec, devs)?;
        (keys, bytes) = (k, b);
        replay_s.push(us as f64 / 1e6);
        read_s.push(sequential_read(&clock, &devs[0], b)?);
    }
    let (replay_s, read_s) = (median(&mut replay_s), median(&mut read_s));
    // Sequential read of as many bytes as the journal, rounded up to 1 MiB.
    let len = (bytes.max(1 << 20) as usize).next_multiple_of(1 << 20);
    let replay_bps = bytes as f64 / replay_s;
    let read_bps = len as f64 / read_s;
    let ratio = replay_bps / read_bps;
    println!(
        "| replay {label} (median of {RUNS}) | {keys} keys in {:.1} ms: {:.0} keys/s, {:.1} MB/s of journal | sequential read {:.1} MB/s; ratio {ratio:.2} (target >= 0.5: {}) | {} |",
        replay_s * 1e3,
        keys as f64 / replay_s,
        replay_bps / 1e6,
        read_bps / 1e6,
        if ratio >= 0.5 { "met" } else { "missed" },
        clock.cell()
    );
    Ok(())
}

/// One replay: keys, journal bytes and microseconds, as the mount reports them.
fn replay_once(spec: &str, devs: &[PathBuf]) -> Result<(u64, u64, u64), String> {
    let source = source_of(devs);
    write_scenario(spec, devs)?;
    let pid = spawn_mount(&source, "metadata_replicas=1")?;
    if !wait_child(pid) {
        return Err("mount failed".into());
    }
    let d = fs_dir().ok_or("no sysfs dir")?;
    let text = fs::read_to_string(format!("{d}/internal/replay")).map_err(|e| e.to_string())?;
    umount();
    // "replayed N of M key(s) from B journal bytes in T us"
    let nums: Vec<u64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [keys, _, bytes, us] = nums[..] else {
        return Err(format!("unexpected replay figures: {text}"));
    };
    Ok((keys, bytes, us))
}

/// Seconds of one O_DIRECT sequential read of `bytes` (at least 1 MiB, rounded up to 1 MiB)
/// from the start of `path`, repeated until the window is long enough.
fn sequential_read(clock: &Clock, path: &PathBuf, bytes: u64) -> Result<f64, String> {
    let len = (bytes.max(1 << 20) as usize).next_multiple_of(1 << 20);
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| e.to_string())?;
    let layout = std::alloc::Layout::from_size_align(len, 4096).unwrap();
    // SAFETY: a non-zero-sized layout; freed below.
    let buf = unsafe { std::alloc::alloc(layout) };
    if buf.is_null() {
        return Err("no memory for the read buffer".into());
    }
    let t = clock.reference(|| {
        // SAFETY: `buf` holds `len` bytes.
        let n = unsafe { libc::pread(std::os::fd::AsRawFd::as_raw_fd(&f), buf.cast(), len, 0) };
        if n == len as isize {
            Ok(())
        } else {
            Err("sequential read failed".into())
        }
    });
    // SAFETY: allocated above with the same layout.
    unsafe { std::alloc::dealloc(buf, layout) };
    Ok(t?.as_secs_f64())
}

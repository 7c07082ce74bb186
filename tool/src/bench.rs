//! `bench`: measurements run in the guest by `make bench`. Each prints one table row whose
//! figures are ratios of two things measured side by side in the same run.

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

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Unstick latency: time from the action (sysfs write, abort knob, SIGKILL) to the parked
/// mount returning, `runs` times each, beside the time of a mount that never parks.
pub fn unstick(spec: &str, devs: &[PathBuf], runs: usize) -> Result<(), String> {
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
        println!(
            "| unstick by {mode} ({runs} runs) | p50 {p50:.1} ms, p99 {p99:.1} ms | p99 / unparked \
             mount p50 ({plain_p50:.1} ms) = {:.2} | p99 < 50 ms: {} |",
            p99 / plain_p50,
            if p99 < 50.0 { "met" } else { "missed" }
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
    let busy_ns: u64 = (0..n)
        .map(|i| read_u64(&format!("{d}/dev-{i}/discard_ns")))
        .sum();
    let buckets: u64 = (0..n)
        .map(|i| read_u64(&format!("{d}/dev-{i}/discard_buckets")))
        .sum();
    let commands: u64 = (0..n)
        .map(|i| read_u64(&format!("{d}/dev-{i}/discard_commands")))
        .sum();
    umount();
    let mut whole_ns = 0u128;
    for path in devs {
        let size = Device::open(path, true)?.size;
        let f = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_EXCL)
            .open(path)
            .map_err(|e| e.to_string())?;
        let range: [u64; 2] = [0, size];
        let t0 = Instant::now();
        // SAFETY: BLKDISCARD reads a [start, len] pair through a valid pointer.
        let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&f), 0x1277, range.as_ptr()) };
        whole_ns += t0.elapsed().as_nanos();
        if r != 0 {
            return Err(format!(
                "BLKDISCARD failed: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    let ratio = busy_ns as f64 / whole_ns as f64;
    println!(
        "| discard drain ({buckets} buckets) | worker {:.1} ms vs blkdiscard of the whole devices \
         {:.1} ms | {ratio:.2}x (target <= 1.5x: {}) | {commands} commands, 1 per {:.0} buckets \
         (target <= 1/64: {}) |",
        busy_ns as f64 / 1e6,
        whole_ns as f64 / 1e6,
        if ratio <= 1.5 { "met" } else { "missed" },
        buckets as f64 / commands.max(1) as f64,
        if commands * 64 <= buckets {
            "met"
        } else {
            "missed"
        }
    );
    Ok(())
}

/// Journal replay: bytes of journal replayed per second, against a sequential read of the
/// same device in the same guest; keys per second too.
pub fn replay(spec: &str, devs: &[PathBuf], label: &str) -> Result<(), String> {
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
    // Sequential read of as many bytes of the first device, O_DIRECT.
    let len = (bytes.max(1 << 20) as usize).next_multiple_of(1 << 20);
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&devs[0])
        .map_err(|e| e.to_string())?;
    let layout = std::alloc::Layout::from_size_align(len, 4096).unwrap();
    // SAFETY: a non-zero-sized layout; freed below.
    let buf = unsafe { std::alloc::alloc(layout) };
    let t0 = Instant::now();
    // SAFETY: `buf` holds `len` bytes.
    let n = unsafe { libc::pread(std::os::fd::AsRawFd::as_raw_fd(&f), buf.cast(), len, 0) };
    let read_s = t0.elapsed().as_secs_f64();
    // SAFETY: allocated above with the same layout.
    unsafe { std::alloc::dealloc(buf, layout) };
    if n != len as isize {
        return Err("sequential read failed".into());
    }
    let replay_s = us as f64 / 1e6;
    let replay_bps = bytes as f64 / replay_s;
    let read_bps = len as f64 / read_s;
    println!(
        "| replay {label} | {keys} keys in {:.1} ms: {:.0} keys/s, {:.1} MB/s of journal | \
         sequential read {:.1} MB/s; ratio {:.2} (target >= 0.5: {}) |",
        replay_s * 1e3,
        keys as f64 / replay_s,
        replay_bps / 1e6,
        read_bps / 1e6,
        replay_bps / read_bps,
        if replay_bps / read_bps >= 0.5 {
            "met"
        } else {
            "missed"
        }
    );
    Ok(())
}

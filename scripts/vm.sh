#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Run a script in a QEMU guest on the bucketfs test kernel.
#
#   scripts/vm.sh [--disk SIZE]... [--keep-disks DIR] [--file SRC[:DEST]]...
#                 [--bin NAME_OR_PATH]... [--kill-at MARKER:DELAY_MS]
#                 [--timeout SECS] [--interactive] GUEST_SCRIPT [ARGS...]
#
# The guest is the cached test kernel (scripts/kernel.sh) with a busybox
# initramfs holding /modules/bucketfs.ko, /modules/bucketfs_kunit.ko, the
# bucketfs tool on PATH (when built), GUEST_SCRIPT as /guest.sh and the
# --file extras. Each --disk adds a sparse raw virtio disk with
# discard=unmap: /dev/vda, /dev/vdb, ... in order.
#
# --keep-disks DIR  keep the disk images in DIR (diskN.img). An image that is
#                   already there is reused as it is, so a later run can
#                   remount what an earlier one wrote.
# --interactive     give the guest a shell on this terminal after the script.
# --bin NAME_OR_PATH  copy a host binary (found with `command -v` when NAME has no
#                   slash) into the initramfs at its host path, with every shared
#                   library ldd lists for it (the dynamic loader too), symlinks
#                   followed, so Debian binaries (stress-ng, fio, mkfs.ext4) run in
#                   the busybox guest. /usr/sbin and /usr/bin come first on the
#                   guest's PATH, so a --bin binary wins over a busybox applet.
#                   Libraries a binary opens with dlopen are not seen by ldd.
# --kill-at MARKER:DELAY_MS  a power cut: when a console line containing MARKER
#                   appears, wait DELAY_MS milliseconds (0 for none) and SIGKILL
#                   QEMU; vm.sh then says so and exits with 137 (125 if the console
#                   showed a kernel splat before the kill). If the guest ends
#                   before the kill, the exit status is the usual one. With
#                   --keep-disks a second run boots on what the guest had written.
# --fault N:RULES   put disk N (0 for vda) behind QEMU's blkdebug driver with the
#                   rules file RULES (inject-error on reads, writes or discards).
# --throttle N:BPS  put disk N behind QEMU's throttle filter: writes and
#                   discards together move at most BPS bytes per second (a slow
#                   device, for tests that time discards).
#
# The console is printed as it comes. Exit status: GUEST_SCRIPT's, or 124 on
# timeout, or 137 after a --kill-at kill, or 125 if the console shows a kernel splat (oops, BUG, WARNING,
# KASAN, lockdep, hung task, kmemleak) or the guest died before the script
# ended. The console log is also kept in $BUCKETFS_VM_LOG when that is set.
#
# The guest kernel gets tsc=reliable: a VM's TSC is otherwise sometimes declared
# unstable by the watchdog and the clocksource falls back to refined-jiffies
# (4 ms steps), which makes every timing in a test or benchmark coarse.
# Under TCG it also gets tsc_early_khz: the guest's TSC is the host's, and the
# guest kernel (no HPET or ACPI PM timer to calibrate against) cannot measure
# its rate, so it would mark the TSC unstable and fall back to refined-jiffies.
#
# BUCKETFS_ACCEL=kvm|tcg forces the accelerator; by default KVM is used
# when a quick probe shows it works, and TCG otherwise.
# BUCKETFS_VARIANT=NAME boots that kernel variant (scripts/kernel.sh --variant)
# with the modules built for it by scripts/build-modules.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
disks=()
keep=
files=()
bins=()
faults=()
throttles=()
timeout=600
interactive=0
kill_at=
usage() {
	sed -n '4,8p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
while [ $# -gt 0 ]; do
	case "$1" in
	--disk) disks+=("$2"); shift 2 ;;
	--keep-disks) keep=$2; shift 2 ;;
	--file) files+=("$2"); shift 2 ;;
	--bin) bins+=("$2"); shift 2 ;;
	--fault) faults+=("$2"); shift 2 ;;
	--throttle) throttles+=("$2"); shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--interactive) interactive=1; shift ;;
	--kill-at) kill_at=$2; shift 2 ;;
	-h|--help) usage ;;
	--) shift; break ;;
	-*) echo "vm.sh: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || usage
script=$1
shift
[ -f "$script" ] || { echo "vm.sh: no such guest script: $script" >&2; exit 2; }
kill_marker=
kill_delay=
if [ -n "$kill_at" ]; then
	kill_marker=${kill_at%:*}
	kill_delay=${kill_at##*:}
	case "$kill_delay" in
	'' | *[!0-9]*) echo "vm.sh: --kill-at $kill_at: DELAY_MS must be a whole number of ms" >&2; exit 2 ;;
	esac
	[ "$kill_marker" != "$kill_at" ] && [ -n "$kill_marker" ] ||
		{ echo "vm.sh: --kill-at $kill_at: expected MARKER:DELAY_MS" >&2; exit 2; }
	[ $interactive = 0 ] || { echo "vm.sh: --kill-at and --interactive do not go together" >&2; exit 2; }
fi

variant=${BUCKETFS_VARIANT:-}
kdir=$("$here/scripts/kernel.sh" ${variant:+--variant "$variant"} --dir)
bzimage=$kdir/arch/x86/boot/bzImage
[ -f "$kdir/.bucketfs-built" ] || "$here/scripts/kernel.sh" ${variant:+--variant "$variant"}
modules=$here
[ -n "$variant" ] && modules=$here/out/build-$variant
for ko in bucketfs.ko bucketfs_kunit.ko; do
	[ -f "$modules/$ko" ] || { echo "vm.sh: $modules/$ko is not built; run make (or scripts/build-modules.sh)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/bucketfs-vm.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# The initramfs.
root=$work/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,mnt,modules,etc,root}
cp /bin/busybox "$root/bin/busybox"
cp "$modules/bucketfs.ko" "$modules/bucketfs_kunit.ko" "$root/modules/"
[ -f "$modules/bucketfs_bench.ko" ] && cp "$modules/bucketfs_bench.ko" "$root/modules/"
tool=${BUCKETFS_TOOL:-$here/target/guest/bucketfs}
[ -x "$tool" ] && cp "$tool" "$root/bin/bucketfs"
cp "$script" "$root/guest.sh"
printf '%q ' "$@" >"$root/guest.args"
for f in "${files[@]}"; do
	src=${f%%:*}
	dest=${f#*:}
	[ "$dest" = "$f" ] && dest=/root/$(basename "$src")
	mkdir -p "$root$(dirname "$dest")"
	cp -r "$src" "$root$dest"
done
# --bin: each binary and its shared libraries, at their host paths.
copy_host_file() { # copy_host_file PATH: PATH's content (symlinks followed) to the same path
	mkdir -p "$root$(dirname "$1")"
	cp -L "$1" "$root$1"
}
for b in "${bins[@]}"; do
	case "$b" in
	*/*) path=$b ;;
	*) path=$(command -v "$b") || { echo "vm.sh: --bin $b: not found on PATH" >&2; exit 2; } ;;
	esac
	[ -f "$path" ] && [ -x "$path" ] || { echo "vm.sh: --bin $b: $path is not an executable file" >&2; exit 2; }
	path=$(realpath -s "$path")
	copy_host_file "$path"
	# ldd lines: "libX.so => /path (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)", and
	# "linux-vdso.so.1 (0x...)" (in the kernel, nothing to copy). A "not found" is an error.
	libs=$(ldd "$path" 2>&1) || libs=
	if echo "$libs" | grep -q 'not found'; then
		echo "vm.sh: --bin $b: ldd cannot resolve every library:" >&2
		echo "$libs" | grep 'not found' >&2
		exit 2
	fi
	for lib in $(echo "$libs" | sed -n -e 's/.*=> \(\/[^ ]*\) (0x.*/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p'); do
		[ -e "$root$lib" ] || copy_host_file "$lib"
	done
done
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
cd /root
echo "BUCKETFS-GUEST-START"
eval "set -- $(cat /guest.args)"
sh /guest.sh "$@"
rc=$?
echo "BUCKETFS-GUEST-EXIT=$rc"
if [ -e /interactive ]; then
	echo "guest script exited with $rc; shell follows (exit to power off)"
	setsid cttyhack sh
fi
sync
reboot -f
EOF
chmod +x "$root/init"
[ $interactive = 1 ] && touch "$root/interactive"
(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$work/initrd.gz"

# The disks.
drives=()
ddir=$work
if [ -n "$keep" ]; then
	mkdir -p "$keep"
	ddir=$keep
fi
i=0
for size in "${disks[@]}"; do
	img=$ddir/disk$i.img
	[ -n "$keep" ] && [ -f "$img" ] || truncate -s "$size" "$img"
		file=$img
	for f in "${faults[@]}"; do
		[ "${f%%:*}" = "$i" ] && file="blkdebug:$(realpath "${f#*:}"):$img"
	done
	# cache=writeback: QEMU writes the guest's data through the host page cache and
	# advertises a volatile write cache, so the guest sends flushes (and FUA), which
	# QEMU turns into an fdatasync of the image. A write the guest saw complete is in
	# the host page cache and survives a SIGKILL of QEMU (--kill-at); a flushed one
	# survives a host crash too. A QEMU kill loses what the guest had not written
	# out yet (its page cache, requests in flight), as a power cut does; unlike a
	# real disk's cache it does not lose writes that completed but were not flushed.
	# (cache=unsafe would drop the flushes; cache=none would bypass the page cache.)
	drive="file=$file,if=virtio,format=raw,discard=unmap,cache=writeback"
	for t in "${throttles[@]}"; do
		if [ "${t%%:*}" = "$i" ]; then
			drives+=(-object "throttle-group,id=throttle$i,x-bps-write=${t#*:}")
			drive="driver=throttle,throttle-group=throttle$i,file.driver=raw,file.file.driver=file"
			drive+=",file.file.filename=$img,if=virtio,discard=unmap,cache=writeback"
		fi
	done
	drives+=(-drive "$drive")
	i=$((i + 1))
done

# KVM when it really boots a kernel here, TCG otherwise. The probe boots the
# test kernel with no initramfs; it panics at once and QEMU exits.
cache=${BUCKETFS_CACHE:-$HOME/.cache/bucketfs}
accel=${BUCKETFS_ACCEL:-}
if [ -z "$accel" ]; then
	probe=$cache/kvm-probe-$(uname -r)
	if [ ! -f "$probe" ]; then
		result=tcg
		if [ -r /dev/kvm ] && [ -w /dev/kvm ] &&
			timeout -k 2 20 qemu-system-x86_64 -accel kvm -cpu host -m 256 \
				-display none -serial stdio -monitor none -no-reboot \
				-kernel "$bzimage" -append "console=ttyS0 panic=-1" \
				</dev/null 2>&1 | grep -q "Kernel panic"; then
			result=kvm
		fi
		mkdir -p "$cache"
		echo "$result" >"$probe"
	fi
	accel=$(cat "$probe")
fi
cpu=max
[ "$accel" = kvm ] && cpu=host
cmdline="console=ttyS0 panic=-1 loglevel=7 rdinit=/init tsc=reliable"
if [ "$accel" = tcg ] && grep -qw constant_tsc /proc/cpuinfo; then
	# TCG's rdtsc reads the host's TSC. A rate that is off by a little scales every
	# time alike (the benchmarks' ratios do not move).
	khz=$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)
	[ -n "$khz" ] && [ "$khz" -gt 0 ] && cmdline+=" tsc_early_khz=$khz"
fi

log=${BUCKETFS_VM_LOG:-$work/console.log}
echo "vm.sh: booting $(basename "$kdir") with $accel, ${#disks[@]} disk(s), timeout ${timeout}s" >&2
qemu=(qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -smp 2 -m 1024
	-display none -monitor none -no-reboot
	-kernel "$bzimage" -initrd "$work/initrd.gz"
	-append "$cmdline"
	"${drives[@]}")
# kill_watch: pass the console through; at the first line with $kill_marker, start the
# killer: after $kill_delay ms it SIGKILLs QEMU (by its pidfile) and leaves $work/killed.
# A killer still sleeping when the console ends (the guest finished first) is stopped.
kill_watch() {
	local line killer= secs
	secs=$(printf '%d.%03d' $((kill_delay / 1000)) $((kill_delay % 1000)))
	while IFS= read -r line || [ -n "$line" ]; do
		printf '%s\n' "$line"
		if [ -z "$killer" ] && [[ "$line" == *"$kill_marker"* ]]; then
			(
				sleep "$secs"
				# The mark first: the console ends with the kill, and the watcher then stops
				# this subshell, which must not be before the mark is written.
				pid=$(cat "$work/qemu.pid" 2>/dev/null) &&
					echo "$(date +%s.%N)" >"$work/killed" &&
					{ kill -KILL "$pid" 2>/dev/null || rm -f "$work/killed"; }
			) &
			killer=$!
		fi
	done
	[ -n "$killer" ] && kill "$killer" 2>/dev/null
	return 0
}
set +e
if [ $interactive = 1 ]; then
	"${qemu[@]}" -serial mon:stdio | tee "$log"
	status=${PIPESTATUS[0]}
elif [ -n "$kill_marker" ]; then
	# In a subshell whose own stderr (bash's "Killed" job line) is dropped; QEMU's is kept.
	{ (timeout -k 5 "$timeout" "${qemu[@]}" -pidfile "$work/qemu.pid" -serial stdio </dev/null 2>&3
		exit $?) 2>/dev/null; } 3>&2 | tee "$log" | kill_watch
	status=${PIPESTATUS[0]}
else
	timeout -k 5 "$timeout" "${qemu[@]}" -serial stdio </dev/null | tee "$log"
	status=${PIPESTATUS[0]}
fi
set -e

if [ "$status" = 124 ]; then
	echo "vm.sh: TIMEOUT after ${timeout}s" >&2
	exit 124
fi
splat='Oops|BUG:|WARNING:|KASAN:|UBSAN:|kernel BUG|Kernel panic|general protection fault'
splat+='|possible circular locking|possible recursive locking|inconsistent lock state'
splat+='|INFO: task .* blocked|suspected memory leak|unreferenced object|Call Trace:'
if grep -Eq "$splat" "$log"; then
	echo "vm.sh: kernel splat on the console:" >&2
	grep -En "$splat" "$log" | head -5 >&2
	exit 125
fi
if [ -f "$work/killed" ]; then
	echo "vm.sh: killed the guest as asked (--kill-at): SIGKILL to QEMU ${kill_delay} ms after the console showed '$kill_marker'" >&2
	exit 137
fi
rc=$(sed -n 's/.*BUCKETFS-GUEST-EXIT=\([0-9]*\).*/\1/p' "$log" | tail -n1)
if [ -z "$rc" ]; then
	echo "vm.sh: the guest died before the script ended (qemu status $status)" >&2
	exit 125
fi
exit "$rc"

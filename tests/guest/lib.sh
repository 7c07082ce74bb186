# SPDX-License-Identifier: GPL-2.0
# Helpers for guest test scripts (busybox sh). Each test prints one line,
# "GUEST-TEST ok NAME" or "GUEST-TEST FAIL NAME: WHY", that scripts/check.sh counts.

guest_failures=0

# pass NAME / fail NAME WHY
pass() { echo "GUEST-TEST ok $1"; }
fail() {
	echo "GUEST-TEST FAIL $1: $2"
	guest_failures=$((guest_failures + 1))
}

# t NAME CMD...: one test that passes when CMD succeeds.
t() {
	name=$1
	shift
	if out=$("$@" 2>&1); then
		pass "$name"
	else
		fail "$name" "'$*' failed: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
	fi
}

# dmesg_has PATTERN: the kernel log has a line matching PATTERN (grep -E).
dmesg_has() { dmesg | grep -Eq "$1"; }

# run_kunit MODULE: load a KUnit test module between markers scripts/check.sh
# cuts the console at, so only this module's KTAP document is parsed.
run_kunit() {
	echo "BUCKETFS-KUNIT-BEGIN $1" >/dev/kmsg
	insmod "/modules/$1.ko"
	echo "BUCKETFS-KUNIT-END $1" >/dev/kmsg
	rmmod "$1"
}

guest_exit() { exit $((guest_failures > 0)); }

# expect_fail NAME ERRNO_TEXT CMD...: CMD must fail and say ERRNO_TEXT
# (e.g. "Invalid argument").
expect_fail() {
	name=$1
	want=$2
	shift 2
	if out=$("$@" 2>&1); then
		fail "$name" "'$*' succeeded"
	elif ! echo "$out" | grep -q "$want"; then
		fail "$name" "'$*' failed without '$want': $out"
	else
		pass "$name"
	fi
}

# sysfs_write FILE VALUE: write VALUE (echo adds a newline) to a sysfs file.
sysfs_write() { sh -c 'echo "$2" > "$1"' _ "$1" "$2"; }

# fs_dir: the sysfs directory of the one mounted bucketfs.
fs_dir() { ls -d /sys/fs/bucketfs/*-*-*-*-* 2>/dev/null | head -n 1; }

# now_ms: milliseconds since boot (10 ms resolution).
now_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }

# wait_for SECS CMD...: poll CMD every 50 ms until it succeeds or SECS pass.
wait_for() {
	secs=$1
	shift
	end=$(( $(now_ms) + secs * 1000 ))
	until "$@" >/dev/null 2>&1; do
		[ "$(now_ms)" -ge "$end" ] && return 1
		usleep 50000
	done
}

# parked N: the mounted-or-mounting filesystem has N parked allocations.
parked() { grep -q "^parked requests: $1\$" "$(fs_dir)/internal/alloc_debug"; }

# btree_figures: "keys N digest D" of the mounted filesystem's btree (internal/btree_stats),
# in the form `bucketfs scenario` prints as its expectation.
btree_figures() {
	bf_dir=$(fs_dir)
	echo "keys $(sed -n 's/^keys //p' $bf_dir/internal/btree_stats) digest $(sed -n 's/^digest //p' $bf_dir/internal/btree_stats)"
}

# fsck_clean DEV...: `bucketfs fsck` exits 0 (else its last lines and status are printed).
fsck_clean() {
	fc_out=$(bucketfs fsck "$@" 2>&1)
	fc_st=$?
	[ $fc_st = 0 ] && return 0
	echo "$fc_out" | tail -n 4
	echo "fsck exit $fc_st"
	return 1
}

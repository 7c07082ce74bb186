#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Discard checks that need the host: holes in the kept disk images exactly where discarded
# buckets are and nowhere live metadata is, and crashes (sysrq-b, no sync) in the middle of
# draining followed by a remount that must find every key.
#
#   tests/host/discard.sh LOGDIR
#
# Prints "HOST-TEST ok NAME" / "HOST-TEST FAIL NAME: WHY" lines.
NAME=discard
. "$(dirname "$0")/lib.sh"

# 1. Drain with discard on, then inspect the images.
cat >"$work/drain.sh" <<'G'
. /root/tests/lib.sh
insmod /modules/bucketfs.ko
bucketfs scenario /root/scenarios/seed-small-discard.toml /dev/vda /dev/vdb
timeout -s KILL 60 mount -t bucketfs /dev/vda:/dev/vdb /mnt || exit 1
d=$(fs_dir)
wait_for 30 sh -c "test \$(cat $d/dev-0/need_discard) = 0 && test \$(cat $d/dev-1/need_discard) = 0" || exit 1
for n in 0 1; do
	echo "COUNTERS $n $(cat $d/dev-$n/discard_buckets) $(cat $d/dev-$n/discard_commands)"
done
umount /mnt
bucketfs dump-btree --nodes /dev/vda /dev/vdb
for dev in vda vdb; do echo "SUPER $(bucketfs show-super --json /dev/$dev | tr -d ' \n')"; done
G
BUCKETFS_VM_LOG=$logs/drain-console.log vm --keep-disks "$work/drain" "$work/drain.sh" >"$logs/drain.log" 2>&1
status=$?
if [ $status = 0 ]; then
	ok drain_boot
	python3 tests/host/check_holes.py "$logs/drain-console.log" "$work/drain/disk0.img" "$work/drain/disk1.img"
else
	fail drain_boot "vm.sh exited $status (see $logs/drain.log)"
fi

# 2. Crash in the middle of draining, replay and its splits, and commit; remount.
# CRASH_DELAYS: microseconds after the mount starts at which to crash (make check-full
# passes seeded random ones and prints the seed).
# Each delay runs on two shapes: seed-small-discard, and crash-offset (the journal at a
# non-zero journal_offset, pinned and settled need_discard buckets). After the remount that
# must find every key, a second remount checks that what the first one committed (its
# journal_offset, its dirty table blocks) mounts again.
for shape in seed-small-discard crash-offset; do
for delay in ${CRASH_DELAYS:-1000 10000 25000 300000}; do
	tag=$delay
	[ $shape = seed-small-discard ] || tag=$shape-$delay
	cat >"$work/crash.sh" <<G
. /root/tests/lib.sh
insmod /modules/bucketfs.ko
bucketfs scenario /root/scenarios/$shape.toml /dev/vda /dev/vdb | sed -n 's/^scenario: expect /EXPECT /p'
mount -t bucketfs /dev/vda:/dev/vdb /mnt &
usleep $delay
d=\$(fs_dir)
echo "CRASH after ${delay} us: dev-0 need_discard \$(cat \$d/dev-0/need_discard 2>/dev/null), \$(cat \$d/internal/replay 2>/dev/null)"
echo b >/proc/sysrq-trigger
G
	rm -rf "$work/crash"
	BUCKETFS_VM_LOG=$logs/crash-$tag-console.log vm --keep-disks "$work/crash" "$work/crash.sh" >"$logs/crash-$tag.log" 2>&1
	BUCKETFS_VM_LOG=$logs/remount-$tag-console.log vm --keep-disks "$work/crash" tests/guest/remount.sh >"$logs/remount-$tag.log" 2>&1
	status=$?
	expect=$(sed -n 's/^EXPECT //p' "$logs/crash-$tag-console.log" | tr -d '\r')
	got=$(sed -n 's/^GOT //p' "$logs/remount-$tag-console.log" | tr -d '\r')
	grep -h '^CRASH' "$logs/crash-$tag-console.log" | tr -d '\r' | sed "s/^CRASH/CRASH ($shape)/"
	if [ $status = 0 ] && [ -n "$expect" ] && [ "$got" = "$expect" ]; then
		ok "crash_after_${tag}us_remount_has_every_key"
	else
		fail "crash_after_${tag}us_remount_has_every_key" "expected '$expect', got '$got' (remount status $status)"
	fi
	if [ $shape != seed-small-discard ]; then
		BUCKETFS_VM_LOG=$logs/remount2-$tag-console.log vm --keep-disks "$work/crash" tests/guest/remount.sh >"$logs/remount2-$tag.log" 2>&1
		status=$?
		got=$(sed -n 's/^GOT //p' "$logs/remount2-$tag-console.log" | tr -d '\r')
		if [ $status = 0 ] && [ -n "$expect" ] && [ "$got" = "$expect" ]; then
			ok "crash_after_${tag}us_second_remount_has_every_key"
		else
			fail "crash_after_${tag}us_second_remount_has_every_key" "expected '$expect', got '$got' (remount status $status)"
		fi
	fi
done
done

# 3. A slow device (QEMU's throttle filter: 1 GiB/s for discards and writes together)
# with a big settled need_discard backlog (7000 buckets of 1 MiB, discard on): an unmount in
# the middle of the drain, and a kill of a mount parked in replay while the drain runs, each
# return within a second (the worker stops between two commands, and one command is bounded).
cat >"$work/slow.sh" <<'G'
. /root/tests/lib.sh
insmod /modules/bucketfs.ko
cat >/tmp/slow.toml <<'EOF2'
bucket_size = "1M"
metadata_replicas = 1
discard = true
[[device]]
free = 100
need_discard = 7000
EOF2
bucketfs scenario /tmp/slow.toml /dev/vdb >/dev/null || exit 1
mount -t bucketfs /dev/vdb /mnt || exit 1
usleep 500000
d=$(fs_dir)
echo "SLOW umount: need_discard $(cat $d/dev-0/need_discard) after 0.5 s, $(cat $d/dev-0/discard_commands) command(s)"
t0=$(now_ms)
umount /mnt
echo "SLOW umount took $(( $(now_ms) - t0 )) ms"
# Replay parks (two replicas; vda has one free bucket and a journal-pinned backlog) while
# the worker drains vdb's settled backlog; then the mount is killed.
cat >/tmp/slow2.toml <<'EOF2'
bucket_size = "1M"
metadata_replicas = 2
discard = true
allocator_stuck_timeout = 30
journal_keys = 3000
[[device]]
free = 1
need_discard_pinned = 200
[[device]]
free = 100
need_discard = 7000
EOF2
bucketfs scenario /tmp/slow2.toml /dev/vda /dev/vdb >/dev/null || exit 1
mount -t bucketfs /dev/vda:/dev/vdb /mnt &
m=$!
wait_for 10 parked 1 || echo "SLOW kill: the mount did not park"
usleep 300000
d=$(fs_dir)
echo "SLOW kill: vdb need_discard $(cat $d/dev-1/need_discard), $(cat $d/dev-1/discard_commands) command(s)"
t0=$(now_ms)
kill -9 $m
wait $m
echo "SLOW kill took $(( $(now_ms) - t0 )) ms"
rmmod bucketfs
G
BUCKETFS_VM_LOG=$logs/slow-console.log scripts/vm.sh --disk 256M --disk 8G --throttle 1:1073741824 \
	--timeout 300 --file tests/guest:/root/tests "$work/slow.sh" >"$logs/slow.log" 2>&1
status=$?
tr -d '\r' <"$logs/slow-console.log" | grep '^SLOW'
for what in umount kill; do
	ms=$(tr -d '\r' <"$logs/slow-console.log" | sed -n "s/^SLOW $what took \([0-9]*\) ms/\1/p")
	if [ $status = 0 ] && [ -n "$ms" ] && [ "$ms" -lt 1000 ]; then
		ok "slow_device_${what}_mid_drain_within_1s"
	else
		fail "slow_device_${what}_mid_drain_within_1s" "took '${ms}' ms (vm status $status, see $logs/slow.log)"
	fi
done

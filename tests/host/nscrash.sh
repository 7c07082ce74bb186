#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Power cuts during namespace operations, from the host (scripts/vm.sh --kill-at): boot 1
# formats two members (metadata_replicas=2), mounts, prints a marker and runs a random
# workload of mkdir, touch, ln, ln -s, mv (over files and across directories too), rm, rmdir
# and chmod (2000 operations, tests/host/nscrash_model.py gen), with a sync, a syncfs (sync -f)
# or an fsync (sync FILE) every 10 operations, printing "SYNCED k end" once the
# sync after operation k returned; QEMU is killed at a seeded random delay after the marker.
# Boot 2, on the kept disks: `bucketfs fsck` before mounting (the journal applied in memory
# gives a consistent tree: exit 0), mount (replay), the listing of every path (inode, type,
# link count, mode, size, symlink target) is the model's state after some prefix of the
# workload at least as long as the last synced one (nscrash_model.py check), unmount, fsck
# exit 0 again.
#
#   tests/host/nscrash.sh LOGDIR
#
# 4 power cuts (BUCKETFS_FULL=1: 16). The seed of the workloads and delays is printed;
# BUCKETFS_NSCRASH_SEED repeats it (where the guest is when the kill lands still varies).
# Prints "HOST-TEST ok NAME" / "HOST-TEST FAIL NAME: WHY" lines.
NAME=nscrash
. "$(dirname "$0")/lib.sh"

seed=${BUCKETFS_NSCRASH_SEED:-$(date +%s)}
points=${BUCKETFS_NSCRASH_POINTS:-4}
[ "${BUCKETFS_FULL:-0}" = 1 ] && [ -z "${BUCKETFS_NSCRASH_POINTS:-}" ] && points=16
nops=${BUCKETFS_NSCRASH_OPS:-2000}
sync_every=10
# The delays: within the workload (2000 operations: about 3.5 s under TCG here).
max_delay_ms=${BUCKETFS_NSCRASH_MAX_MS:-3000}
delays=$(awk -v seed="$seed" -v max="$max_delay_ms" -v n="$points" \
	'BEGIN { srand(seed); for (i = 0; i < n; i++) printf "%d ", int(rand() * max) }')
echo "nscrash: seed $seed: $points power cuts at ${delays}ms after the marker, $nops operations, a sync every $sync_every (BUCKETFS_NSCRASH_SEED=$seed repeats them)"

# Boot 1: the workload, read from /root/ops.txt, until the kill.
cat >"$work/workload.sh" <<'G'
insmod /modules/bucketfs.ko || exit 1
bucketfs format --bucket-size 4k --metadata-replicas 2 /dev/vda /dev/vdb >/dev/null || exit 1
mount -t bucketfs /dev/vda:/dev/vdb /mnt || exit 1
cd /mnt || exit 1
echo "NSCRASH-MARKER"
k=0
start=$(awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime)
while read -r op a b; do
	case $op in
	mkdir) mkdir "$a" ;;
	touch) touch "$a" ;;
	ln) ln "$a" "$b" ;;
	sym) ln -s "$a" "$b" ;;
	mv) mv "$a" "$b" ;;
	rm) rm "$a" ;;
	rmdir) rmdir "$a" ;;
	chmod) chmod "$a" "$b" ;;
	sync) sync ;;
	syncfs) sync -f . ;;
	fsync) sync "$a" ;;
	*) echo "unknown operation $op"; exit 1 ;;
	esac
	rc=$?
	if [ $rc != 0 ]; then
		echo "OPFAIL $k: $op $a $b: status $rc"
		exit 1
	fi
	case $op in
	sync | syncfs | fsync) echo "SYNCED $k end" ;;
	*) k=$((k + 1)) ;;
	esac
done </root/ops.txt
echo "WORKLOAD-DONE $k ops in $(( $(awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime) - start )) ms"
# Wait for the kill.
sleep 600
G

# Boot 2: fsck, mount (replay), listing, unmount, fsck.
cat >"$work/check.sh" <<'G'
insmod /modules/bucketfs.ko || exit 1
bucketfs fsck /dev/vda /dev/vdb >/tmp/fsck1 2>&1
echo "FSCK-BEFORE $? end"
tail -n 5 /tmp/fsck1
mount -t bucketfs /dev/vda:/dev/vdb /mnt || { echo "MOUNT-FAILED"; exit 1; }
echo "MOUNTED end"
echo "LISTING-BEGIN"
(cd /mnt && find . -exec stat -c 'LST %i|%F|%h|%a|%s|%N' {} +)
echo "LISTING-END"
umount /mnt || { echo "UMOUNT-FAILED"; exit 1; }
bucketfs fsck /dev/vda /dev/vdb >/tmp/fsck2 2>&1
echo "FSCK-AFTER $? end"
tail -n 5 /tmp/fsck2
G

run=0
for delay in $delays; do
	run=$((run + 1))
	tag="cut${run}_${delay}ms"
	python3 tests/host/nscrash_model.py gen "$seed$run" "$nops" "$sync_every" >"$work/ops.txt"
	cp "$work/ops.txt" "$logs/$tag-ops.txt"
	rm -rf "$work/disks"
	BUCKETFS_VM_LOG=$logs/$tag-boot1.log scripts/vm.sh --disk 64M --disk 64M \
		--keep-disks "$work/disks" --kill-at NSCRASH-MARKER:"$delay" --timeout 300 \
		--file "$work/ops.txt:/root/ops.txt" "$work/workload.sh" >"$logs/$tag-vm1.log" 2>&1
	status=$?
	c1=$(tr -d '\r' <"$logs/$tag-boot1.log")
	# vm.sh says 137 after its kill; if the console ended before the killer noted the kill, it
	# says the guest died, with QEMU's status 137 (SIGKILL: only the killer sends it).
	if { [ $status = 137 ] || { [ $status = 125 ] &&
		grep -q 'the guest died before the script ended (qemu status 137)' "$logs/$tag-vm1.log"; }; } &&
		! echo "$c1" | grep -q '^OPFAIL'; then
		ok "${tag}_workload_cut_by_a_power_cut"
	else
		fail "${tag}_workload_cut_by_a_power_cut" \
			"vm.sh exited $status, not 137; $(echo "$c1" | grep -E '^OPFAIL|splat' | head -n 2) (see $logs/$tag-vm1.log)"
		continue
	fi
	last=$(echo "$c1" | sed -n 's/^SYNCED \([0-9]*\) end$/\1/p' | tail -n 1)
	echo "nscrash: $tag: last synced operation ${last:-none}; $(echo "$c1" | grep -c '^SYNCED .* end$') sync(s) returned$(echo "$c1" | sed -n 's/^WORKLOAD-DONE/; workload done:/p')"

	BUCKETFS_VM_LOG=$logs/$tag-boot2.log scripts/vm.sh --disk 64M --disk 64M \
		--keep-disks "$work/disks" --timeout 300 "$work/check.sh" >"$logs/$tag-vm2.log" 2>&1
	status=$?
	c2=$(tr -d '\r' <"$logs/$tag-boot2.log")
	if [ $status = 0 ]; then
		ok "${tag}_boot_after_the_cut"
	else
		fail "${tag}_boot_after_the_cut" "vm.sh exited $status (see $logs/$tag-vm2.log)"
	fi
	if echo "$c2" | grep -q '^FSCK-BEFORE 0 end$'; then
		ok "${tag}_fsck_clean_before_mount"
	else
		fail "${tag}_fsck_clean_before_mount" "$(echo "$c2" | grep -A3 '^FSCK-BEFORE' | tr '\n' ' ')"
	fi
	if echo "$c2" | grep -q '^MOUNTED end$'; then
		ok "${tag}_mount_replays"
	else
		fail "${tag}_mount_replays" "the mount failed (see $logs/$tag-boot2.log)"
		continue
	fi
	cat "$logs/$tag-boot1.log" "$logs/$tag-boot2.log" >"$work/both.log"
	if out=$(python3 tests/host/nscrash_model.py check "$work/ops.txt" "$work/both.log"); then
		echo "$out"
		ok "${tag}_synced_operations_present_tree_consistent"
	else
		echo "$out"
		fail "${tag}_synced_operations_present_tree_consistent" "$(echo "$out" | head -n 3 | tr '\n' ' ')"
	fi
	if echo "$c2" | grep -q '^FSCK-AFTER 0 end$'; then
		ok "${tag}_fsck_clean_after_unmount"
	else
		fail "${tag}_fsck_clean_after_unmount" "$(echo "$c2" | grep -A3 '^FSCK-AFTER' | tr '\n' ' ')"
	fi
done

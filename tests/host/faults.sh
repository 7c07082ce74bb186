#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# I/O faults injected with QEMU's blkdebug on one member: the mount fails or degrades as
# documented (Documentation/mount-options.md), says so in dmesg, and loses nothing that was
# committed. Each case starts from the same freshly written scenario.
#
#   tests/host/faults.sh LOGDIR
#
# Prints "HOST-TEST ok NAME" / "HOST-TEST FAIL NAME: WHY" lines.
NAME=faults
. "$(dirname "$0")/lib.sh"

# The pristine scenario, and where things are on it.
cat >"$work/setup.sh" <<'G'
bucketfs scenario /root/scenarios/faults.toml /dev/vda /dev/vdb | sed -n 's/^scenario: expect /EXPECT /p'
echo "FIRST $(bucketfs show-super --json /dev/vda | sed -n 's/.*"first_bucket": \([0-9]*\).*/\1/p' | head -n 1)"
G
BUCKETFS_VM_LOG=$logs/setup-console.log vm --keep-disks "$work/pristine" "$work/setup.sh" >"$logs/setup.log" 2>&1
expect=$(sed -n 's/^EXPECT //p' "$logs/setup-console.log" | tr -d '\r')
first=$(sed -n 's/^FIRST //p' "$logs/setup-console.log" | tr -d '\r')
if [ -z "$expect" ] || [ -z "$first" ]; then
	fail faults_setup "no scenario (see $logs/setup.log)"
	exit 0
fi
# The root leaf sits at each member's first allocatable bucket (4 KiB buckets: 8 sectors).
root_sector=$((first * 8))

# case NAME DISK RULES GUEST_SCRIPT: run GUEST_SCRIPT on a fresh copy with disk DISK faulty.
case_run() {
	local name=$1 disk=$2 rules=$3 script=$4
	rm -rf "$work/$name"
	cp -r --sparse=always "$work/pristine" "$work/$name"
	printf '%b' "$rules" >"$work/$name.rules"
	BUCKETFS_VM_LOG=$logs/$name-console.log vm --keep-disks "$work/$name" \
		--fault "$disk:$work/$name.rules" "$script" >"$logs/$name.log" 2>&1
}
# remount_has_every_key NAME: boot without faults; every key must be there.
remount_has_every_key() {
	BUCKETFS_VM_LOG=$logs/$1-remount-console.log vm --keep-disks "$work/$1" tests/guest/remount.sh >"$logs/$1-remount.log" 2>&1
	local got
	got=$(sed -n 's/^GOT //p' "$logs/$1-remount-console.log" | tr -d '\r')
	[ "$got" = "$expect" ] && ok "$1_remount_has_every_key" || fail "$1_remount_has_every_key" "expected '$expect', got '$got'"
}
console_has() { tr -d '\r' <"$logs/$1-console.log" | grep -Eq "$2"; }

cat >"$work/mount.sh" <<'G'
. /root/tests/lib.sh
insmod /modules/bucketfs.ko
if err=$(timeout -s KILL 60 mount -t bucketfs /dev/vda:/dev/vdb /mnt 2>&1); then
	d=$(fs_dir)
	wait_for 20 sh -c "test \$(cat $d/dev-0/need_discard) = 0 && test \$(cat $d/dev-1/need_discard) = 0"
	echo "MOUNTED $(btree_figures)"
	echo "DISCARD errors $(cat $d/dev-1/discard_errors) need_discard $(cat $d/dev-1/need_discard)"
	umount /mnt
else
	echo "FAILED $err"
fi
G

# 1. One superblock copy unreadable on vdb: the other copy is used.
case_run sb_primary_unreadable 1 '[inject-error]\nevent = "read_aio"\niotype = "read"\nerrno = "5"\nsector = "8"\n' "$work/mount.sh"
console_has sb_primary_unreadable "^MOUNTED $expect" && ok sb_primary_unreadable_mounts || fail sb_primary_unreadable_mounts "did not mount with every key"
console_has sb_primary_unreadable "superblock copy at 4096 refused \(read error\)" && ok sb_primary_unreadable_warned || fail sb_primary_unreadable_warned "no warning"

# 2. Both superblock copies unreadable on vdb: EIO with a dmesg line; nothing lost.
case_run sb_both_unreadable 1 '[inject-error]\nevent = "read_aio"\niotype = "read"\nerrno = "5"\nsector = "8"\n[inject-error]\nevent = "read_aio"\niotype = "read"\nerrno = "5"\nsector = "16"\n' "$work/mount.sh"
console_has sb_both_unreadable "^FAILED .*Input/output error" && ok sb_both_unreadable_fails_eio || fail sb_both_unreadable_fails_eio "did not fail with EIO"
console_has sb_both_unreadable "/dev/vdb: cannot read the superblock" && ok sb_both_unreadable_logged || fail sb_both_unreadable_logged "no dmesg line"
remount_has_every_key sb_both_unreadable

# 3. vda's copy of the root node unreadable: vdb's copy is used.
case_run root_copy_unreadable 0 "[inject-error]\nevent = \"read_aio\"\niotype = \"read\"\nerrno = \"5\"\nsector = \"$root_sector\"\n" "$work/mount.sh"
console_has root_copy_unreadable "^MOUNTED $expect" && ok root_copy_unreadable_mounts || fail root_copy_unreadable_mounts "did not mount with every key"
console_has root_copy_unreadable "btree node copy at member 0 bucket $first unreadable" && ok root_copy_unreadable_warned || fail root_copy_unreadable_warned "no warning"

# 4. Every write to vdb fails: node copies there fail (one good copy is required and
#    enough), but the superblock cannot be written: the mount fails with EIO, nothing lost.
case_run writes_fail 1 '[inject-error]\nevent = "read_aio"\niotype = "write"\nerrno = "5"\n' "$work/mount.sh"
console_has writes_fail "^FAILED .*Input/output error" && ok writes_fail_mount_fails_eio || fail writes_fail_mount_fails_eio "did not fail with EIO"
console_has writes_fail "superblock write at 4096 failed" && ok writes_fail_logged || fail writes_fail_logged "no dmesg line"
remount_has_every_key writes_fail

# 5. Discards fail on vdb: counted, logged, and the buckets are freed all the same.
case_run discards_fail 1 '[inject-error]\nevent = "read_aio"\niotype = "discard"\nerrno = "5"\n' "$work/mount.sh"
console_has discards_fail "^MOUNTED $expect" && ok discards_fail_mount_completes || fail discards_fail_mount_completes "did not mount with every key"
console_has discards_fail "^DISCARD errors [1-9][0-9]* need_discard 0" && ok discards_fail_counted_and_freed || fail discards_fail_counted_and_freed "$(tr -d '\r' <"$logs/discards_fail-console.log" | grep '^DISCARD')"
console_has discards_fail "discard of buckets .* failed" && ok discards_fail_logged || fail discards_fail_logged "no dmesg line"

# The commit writes every changed node to both copies in one batch and waits once; each
# copy's own result must come back. An error injected into a batch must be seen by it: a
# batch that returned before all its bios completed would count the failed copy as good.
cat >"$work/mount-opts.sh" <<'G'
. /root/tests/lib.sh
insmod /modules/bucketfs.ko
if err=$(timeout -s KILL 60 mount -t bucketfs -o "$(cat /root/opts)" /dev/vda:/dev/vdb /mnt 2>&1); then
	echo "MOUNTED $(btree_figures)"
	umount /mnt
else
	echo "FAILED $err"
fi
G
# 6. The first write to vdb fails (a copy of a node in the replay's commit): the node
#    commits with its vda copy (one is required), the failed copy is reported.
case_run_opts() {
	local name=$1 opts=$2 rules=$3
	rm -rf "$work/$name"
	cp -r --sparse=always "$work/pristine" "$work/$name"
	printf '%b' "$rules" >"$work/$name.rules"
	echo "$opts" >"$work/$name.opts"
	BUCKETFS_VM_LOG=$logs/$name-console.log vm --keep-disks "$work/$name" \
		--file "$work/$name.opts:/root/opts" \
		--fault "1:$work/$name.rules" "$work/mount-opts.sh" >"$logs/$name.log" 2>&1
}
case_run_opts node_copy_fails metadata_replicas_required=1 '[inject-error]\nevent = "read_aio"\niotype = "write"\nerrno = "5"\nonce = "on"\n'
console_has node_copy_fails "^MOUNTED $expect" && ok node_copy_fails_commits_with_other_copy || fail node_copy_fails_commits_with_other_copy "did not mount with every key"
console_has node_copy_fails "btree node write to member 1 bucket [0-9]+ failed \(-5\)" && ok node_copy_fails_seen_by_batch || fail node_copy_fails_seen_by_batch "the failed copy was not reported"
remount_has_every_key node_copy_fails
# The failed copy was dropped before its parent (or the superblock) was written: the next
# mount finds no pointer to it, so it has no copy to drop.
tr -d '\r' <"$logs/node_copy_fails-remount-console.log" | grep -Eq "btree node copy .* dropped" &&
	fail node_copy_fails_pointer_not_written "the remount found a pointer to the failed copy" ||
	ok node_copy_fails_pointer_not_written

# 7. Every write to vdb fails and both copies are required: the node batch fails the commit
#    with EIO before any superblock is written (no superblock write is attempted).
case_run_opts node_copies_required metadata_replicas_required=2 '[inject-error]\nevent = "read_aio"\niotype = "write"\nerrno = "5"\n'
console_has node_copies_required "^FAILED .*Input/output error" && ok node_copies_required_fails_eio || fail node_copies_required_fails_eio "did not fail with EIO"
console_has node_copies_required "btree node write to member 1 bucket [0-9]+ failed \(-5\)" && ok node_copies_required_reported || fail node_copies_required_reported "no node write error"
console_has node_copies_required "superblock write at" && fail node_copies_required_stops_before_superblock "a superblock write was attempted" || ok node_copies_required_stops_before_superblock
remount_has_every_key node_copies_required

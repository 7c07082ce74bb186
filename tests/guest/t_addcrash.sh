# SPDX-License-Identifier: GPL-2.0
# A crash at every point of an offline member add and remove, end to end: the tool's testing
# knob BUCKETFS_CRASH_AFTER=K stops the write sequence after its K-th write (the writes before
# it durable, none after, as a power cut would leave the disks). For every K, the next mount
# must see the member added or not added (present or removed), never half: the mount with the
# new set of devices works, or else the one with the old set; the member table agrees with
# the outcome, and every key is there.
#
# The add: seed-small.toml on vda+vdb (the #1108 state), vdc added. The old two-member state
# parks a read-write mount at two replicas (that is the #1108 shape, not a half add): the
# two-device mounts take -o metadata_replicas=1 (a mount option, for that mount only).
# The remove: the same state replayed once, vdc added (it holds no copy), then removed.

insmod /modules/bucketfs.ko
spec=/root/scenarios/seed-small.toml
abc=/dev/vda:/dev/vdb:/dev/vdc
ab=/dev/vda:/dev/vdb

# ac_scenario NAME: the seed-small state on vda+vdb, an empty vdc; sets $expect.
ac_scenario() {
	expect=$(bucketfs scenario $spec /dev/vda /dev/vdb | sed -n 's/^scenario: expect //p')
	[ -n "$expect" ] || fail "$1_scenario" "no expectation printed"
	dd if=/dev/zero of=/dev/vdc bs=64k count=16 2>/dev/null
}

# ac_run NAME K CMD...: CMD with the knob at K. Sets $done to 1 when the sequence completed
# (K was not reached: K is past the last write), 0 when it stopped at K; fails otherwise.
ac_run() {
	n=$1
	k=$2
	shift 2
	if out=$(BUCKETFS_CRASH_AFTER=$k "$@" 2>&1); then
		done=1
		echo "$out" | grep -q "BUCKETFS_CRASH_AFTER=$k: not reached, the sequence made $k write" ||
			{ fail "$n" "completed at K=$k without making exactly $k writes: $out"; done=2; }
	else
		done=0
		echo "$out" | grep -q "stopped after $k write(s)" ||
			{ fail "$n" "failed other than at the crash point: $out"; done=2; }
	fi
	stopped=$(echo "$out" | sed -n 's/.*stopped after [0-9]* write(s), before //p')
	[ -n "$stopped" ] || stopped="(completed)"
}

# ac_mount NEW_STATE OLD_STATE: mounts the new device set ($abc), or else the old one ($ab);
# sets $outcome to NEW_STATE, OLD_STATE or "neither".
ac_mount() {
	if timeout -s KILL 60 mount -t bucketfs $abc /mnt 2>/dev/null; then
		outcome=$1
		devs="/dev/vda /dev/vdb /dev/vdc"
	elif timeout -s KILL 60 mount -t bucketfs -o metadata_replicas=1 $ab /mnt 2>/dev/null; then
		outcome=$2
		devs="/dev/vda /dev/vdb"
	else
		outcome=neither
	fi
}

# ac_check NAME WANT_STATE: the mounted filesystem holds every key and its member 2 reads
# WANT_STATE ("member", "removed", or "" for no member 2); after the unmount, the superblock
# of every device mounted names the same member table (3 entries with member 2 a member or
# removed, or 2 entries) and the offline walk of that set finds every key.
ac_check() {
	t "$1_every_key" test "$(btree_figures)" = "$expect"
	d=$(fs_dir)
	if [ -z "$2" ]; then
		t "$1_no_member_2" test ! -e $d/dev-2
		want_n=2
	else
		t "$1_member_2_$2" test "$(cat $d/dev-2/state)" = "$2"
		want_n=3
	fi
	umount /mnt
	t "$1_table_${want_n}_entries" sh -c "for v in $devs; do bucketfs show-super --json \$v | grep -q '\"nr_members\": $want_n,' || exit 1; done"
	if [ "$2" = removed ]; then
		t "$1_table_says_removed" sh -c "for v in $devs; do bucketfs show-super \$v | grep -q 'member 2: removed' || exit 1; done"
	else
		t "$1_table_no_removed" sh -c "for v in $devs; do bucketfs show-super \$v | grep -q 'member [0-9]*: removed' && exit 1; done; exit 0"
	fi
	t "$1_offline_walk" sh -c "bucketfs dump-btree $devs | grep -q '$expect'"
	# Settled by that mount: the other outcome is gone for good. With member 2 a member, the
	# two old devices alone are refused for it; with member 2 removed, so is its device
	# beside member 1 (a degraded mount of those two must not find a table naming it).
	case $2 in
	member)
		expect_fail "$1_settled_old_set_refused" "No such device" mount -t bucketfs -o metadata_replicas=1 $ab /mnt
		t "$1_settled_member_2_missing" dmesg_has "$ab: member 2 is missing from the source"
		;;
	removed)
		expect_fail "$1_settled_degraded_refused" "Invalid argument" mount -t bucketfs -o ro,degraded /dev/vdb:/dev/vdc /mnt
		t "$1_settled_vdc_no_member" sh -c "dmesg | tail -n 2 | grep -q '/dev/vdb:/dev/vdc: /dev/vdc: not a member of this filesystem'"
		;;
	esac
	# (Unmounted if one was wrongly accepted, so the next K starts clean.)
	umount /mnt 2>/dev/null
}

# The add, K = 0, 1, ... until the sequence completes.
k=0
done=0
prev=""
report=""
while [ $done = 0 ] && [ $k -le 40 ]; do
	ac_scenario add$k
	ac_run add${k}_knob $k bucketfs device add --new /dev/vdc /dev/vda /dev/vdb
	ac_mount added not_added
	echo "add K=$k (stopped before: $stopped): $outcome"
	report="$report $k:$outcome"
	case $outcome in
	added)
		pass "add${k}_mounts_added"
		ac_check add${k} member
		;;
	not_added)
		pass "add${k}_mounts_not_added"
		ac_check add${k} ""
		;;
	*) fail "add${k}_mounts" "neither $abc nor $ab mounts: $(dmesg | tail -n 4 | tr '\n' ' ')" ;;
	esac
	# A crash later in the sequence never undoes the add.
	if [ "$prev" = added ] && [ "$outcome" != added ]; then
		fail "add${k}_monotonic" "added at K=$((k - 1)), $outcome at K=$k"
	fi
	prev=$outcome
	k=$((k + 1))
done
echo "add outcomes:$report"
t add_sequence_completed test $done = 1
t add_first_point_not_added test "${report%% [1-9]*}" = " 0:not_added"
t add_completed_added test "${report##*:}" = added
# Every write of the add: the new member's journal block, bucket table and two superblocks,
# two old primaries and two backups.
t add_every_write_counted test $((k - 1)) = 8

# The remove, K = 0, 1, ... until the sequence completes. The state each time: the scenario,
# replayed by one read-write mount, then vdc added offline (it holds no node copy).
k=0
done=0
prev=""
report=""
while [ $done = 0 ] && [ $k -le 40 ]; do
	ac_scenario rm$k
	timeout -s KILL 60 mount -t bucketfs -o metadata_replicas=1 $ab /mnt &&
		umount /mnt &&
		bucketfs device add --new /dev/vdc /dev/vda /dev/vdb >/dev/null ||
		fail "rm${k}_prepare" "replay mount or add failed"
	ac_run rm${k}_knob $k bucketfs device remove --member 2 /dev/vda /dev/vdb /dev/vdc
	ac_mount present removed
	echo "remove K=$k (stopped before: $stopped): $outcome"
	report="$report $k:$outcome"
	case $outcome in
	present)
		pass "rm${k}_mounts_present"
		ac_check rm${k} member
		;;
	removed)
		pass "rm${k}_mounts_removed"
		ac_check rm${k} removed
		;;
	*) fail "rm${k}_mounts" "neither $abc nor $ab mounts: $(dmesg | tail -n 4 | tr '\n' ' ')" ;;
	esac
	if [ "$prev" = removed ] && [ "$outcome" != removed ]; then
		fail "rm${k}_monotonic" "removed at K=$((k - 1)), $outcome at K=$k"
	fi
	prev=$outcome
	k=$((k + 1))
done
echo "remove outcomes:$report"
t rm_sequence_completed test $done = 1
t rm_first_point_present test "${report%% [1-9]*}" = " 0:present"
t rm_completed_removed test "${report##*:}" = removed
# Every write of the remove: the two remaining members' primaries, then their backups.
t rm_every_write_counted test $((k - 1)) = 4
t addcrash_rmmod rmmod bucketfs

# SPDX-License-Identifier: GPL-2.0
# metadata_degraded_writes: the #1108 state (tests/scenarios/seed-small.toml on vda+vdb: two
# replicas, dev-0 starved, stuck timeout 2 s) mounts by itself with fewer copies once the
# parked replay is past the timeout; the degraded nodes are named in dmesg and
# internal/degraded_nodes and re-replicated by the background worker as soon as buckets allow;
# a remount keeps every key. With the option off (the default) the mount stays parked.

insmod /modules/bucketfs.ko
spec=/root/scenarios/seed-small.toml

# heal_scenario NAME: write the crash state; sets $expect to "keys N digest D".
heal_scenario() {
	expect=$(bucketfs scenario $spec /dev/vda /dev/vdb | sed -n 's/^scenario: expect //p')
	if [ -n "$expect" ]; then pass "heal_$1_scenario"; else fail "heal_$1_scenario" "no expectation printed"; fi
}

# heal_mount NAME [OPTS]: mount in the background (with a watchdog) as $pid.
heal_mount() {
	mount -t bucketfs ${2:+-o $2} /dev/vda:/dev/vdb /mnt 2>/tmp/mount.err &
	pid=$!
	(sleep 60; kill -9 $pid 2>/dev/null) &
}

# degraded N: internal/degraded_nodes counts N degraded nodes (a pattern: [1-9][0-9]* ...).
degraded() { grep -Eq "^degraded nodes: $1\$" "$(fs_dir)/internal/degraded_nodes"; }

# dump_degraded N: the unmounted images' btree has N degraded nodes.
dump_degraded() { bucketfs dump-btree /dev/vda /dev/vdb | grep -Eq "degraded nodes $1\)"; }

# heal_keys NAME: the mounted btree, the on-disk one after unmount and a remount hold every
# key, and the remount has nothing degraded.
heal_keys() {
	t heal_$1_btree_has_every_key test "$(btree_figures)" = "$expect"
	umount /mnt
	t heal_$1_dump_has_every_key sh -c "bucketfs dump-btree /dev/vda /dev/vdb | grep -q '$expect'"
	t heal_$1_dump_full_replication dump_degraded 0
	t heal_$1_remount mount -t bucketfs /dev/vda:/dev/vdb /mnt
	t heal_$1_keys_persist_after_remount test "$(btree_figures)" = "$expect"
	t heal_$1_remount_nothing_degraded degraded 0
	umount /mnt
}

# Path a: the option on at mount: the mount completes by itself after the stuck timeout with
# one copy of the nodes it wrote; the worker brings them back to two copies.
heal_scenario a
start=$(now_ms)
heal_mount a metadata_degraded_writes=1
wait $pid
rc=$?
took=$(( $(now_ms) - start ))
echo "degraded mount took ${took} ms"
t heal_a_mounts_by_itself test $rc = 0
t heal_a_not_before_the_timeout test $took -ge 2000
d=$(fs_dir)
u=$(basename "$d")
t heal_a_stuck_report dmesg_has "$u: allocator stuck for [0-9]+ ms: request [0-9]+ wants 1 btree node\(s\) x 2"
t heal_a_degraded_allocation_line dmesg_has "$u: allocator: [0-9]+ btree node\(s\) allocated degraded, 1 of 2 copies, after [0-9]{4,} ms parked"
t heal_a_degraded_nodes_named_at_mount dmesg_has "$u: [1-9][0-9]* btree node\(s\) have fewer copies than metadata_replicas=2 \(fewest 1\): queued for re-replication"
t heal_a_degraded_allocations_counted grep -Eq "^degraded allocations: [1-9]" $d/internal/degraded_nodes
t heal_a_rereplicated wait_for 20 degraded 0
t heal_a_rereplicated_counted grep -Eq "^re-replicated nodes: [1-9]" $d/internal/degraded_nodes
t heal_a_rereplicated_line dmesg_has "$u: re-replicated [1-9][0-9]* degraded btree node\(s\) to metadata_replicas=2 .* 0 degraded left"
heal_keys a

# Path b: degraded without healing (dev-0 taken out of allocation while the mount is parked,
# so the worker cannot get two copies): listed in sysfs and on disk; a remount without the
# option sees them, reports them once and keeps every key; turning the option on heals them.
heal_scenario b
heal_mount b metadata_degraded_writes=1
t heal_b_mount_parks wait_for 20 parked 1
d=$(fs_dir)
u=$(basename "$d")
sysfs_write $d/dev-0/writable 0
wait $pid
t heal_b_mounts_by_itself test $? = 0
t heal_b_degraded_listed degraded "[1-9][0-9]*"
t heal_b_listed_with_level_seq_copies grep -Eq "^  level [0-9]+ seq [0-9]+ copies 1 " $d/internal/degraded_nodes
t heal_b_worker_waits_for_buckets wait_for 5 grep -q "^worker: waiting for buckets" $d/internal/degraded_nodes
t heal_b_keys_before_healing test "$(btree_figures)" = "$expect"
umount /mnt
t heal_b_degraded_on_disk dump_degraded "[1-9][0-9]*"
t heal_b_remount_without_the_option mount -t bucketfs /dev/vda:/dev/vdb /mnt
d=$(fs_dir)
t heal_b_remount_sees_degraded degraded "[1-9][0-9]*"
t heal_b_remount_worker_off grep -q "^worker: off" $d/internal/degraded_nodes
t heal_b_remount_reported_once test "$(dmesg | grep -c "$u: [0-9]* btree node(s) have fewer copies than metadata_replicas=2 (fewest 1); not re-replicated: metadata_degraded_writes is off")" = 1
t heal_b_remount_keeps_every_key test "$(btree_figures)" = "$expect"
t heal_b_option_on sysfs_write $d/options/metadata_degraded_writes 1
t heal_b_rereplicated_after_option_write wait_for 20 degraded 0
heal_keys b

# Path c: the option off (the default): the mount stays parked past the timeout, as before;
# turning the option on releases it at once (it is past the timeout), with fewer copies.
heal_scenario c
heal_mount c
t heal_c_mount_parks wait_for 20 parked 1
d=$(fs_dir)
u=$(basename "$d")
t heal_c_stuck_report wait_for 10 dmesg_has "$u: allocator stuck for"
usleep 500000
t heal_c_still_parked_past_the_timeout parked 1
t heal_c_mount_not_done kill -0 $pid
t heal_c_nothing_degraded grep -q "^degraded allocations: 0 " $d/internal/alloc_debug
sysfs_write $d/options/metadata_degraded_writes 1
wait $pid
t heal_c_option_write_releases_the_mount test $? = 0
t heal_c_rereplicated wait_for 20 degraded 0
heal_keys c
t heal_rmmod rmmod bucketfs

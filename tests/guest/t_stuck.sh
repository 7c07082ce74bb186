# SPDX-License-Identifier: GPL-2.0
# The #1108 state (tests/scenarios/seed-small.toml on vda+vdb) and its four ways out:
# a runtime write of metadata_replicas, the mount option, the abort knob, SIGKILL.

insmod /modules/bucketfs.ko
spec=/root/scenarios/seed-small.toml

# scenario NAME: write the crash state; sets $expect to "keys N digest D".
scenario() {
	expect=$(bucketfs scenario $spec /dev/vda /dev/vdb | sed -n 's/^scenario: expect //p')
	if [ -n "$expect" ]; then pass "$1_scenario"; else fail "$1_scenario" "no expectation printed"; fi
}

# btree_matches NAME: the mounted btree and, after unmount, the on-disk one hold every key.
btree_matches() {
	d=$(fs_dir)
	got=$(btree_figures)
	t "$1_btree_has_every_key" test "$got" = "$expect"
	umount /mnt
	t "$1_remount" mount -t bucketfs /dev/vda:/dev/vdb /mnt
	d=$(fs_dir)
	got=$(btree_figures)
	t "$1_keys_persist_after_remount" test "$got" = "$expect"
	t "$1_nothing_left_to_replay" grep -q "replayed 0 of 0" $d/internal/replay
	umount /mnt
	t "$1_dump_btree_offline" sh -c "bucketfs dump-btree /dev/vda /dev/vdb | grep -q '$expect'"
}

# start_stuck_mount NAME: mount in the background and wait until it parks.
start_stuck_mount() {
	mount -t bucketfs /dev/vda:/dev/vdb /mnt 2>/tmp/mount.err &
	pid=$!
	# A watchdog, so a mount that never returns fails the test instead of hanging the run.
	(sleep 60; kill -9 $pid 2>/dev/null) &
	t "$1_mount_parks" wait_for 20 parked 1
}

# Path a: the mount parks; lowering metadata_replicas in sysfs completes it.
scenario a
start_stuck_mount a
d=$(fs_dir)
t a_sysfs_present_during_replay test -d "$d/options"
t a_replay_progress_readable grep -q "replayed 0 of 3000" $d/internal/replay
t a_alloc_debug_shows_request grep -q "1 node(s) x 2 replica(s), watermark normal" $d/internal/alloc_debug
t a_stuck_report_after_timeout wait_for 10 dmesg_has "allocator stuck for [0-9]+ ms: request [0-9]+ wants 1 btree node\(s\) x 2 replica\(s\)"
t a_pinned_backlog_not_discarded test "$(cat $d/dev-0/need_discard)" = 8000
t a_stuck_report_names_device dmesg_has "dev-0 \(vda\): free 1, need_discard 8000, .*below watermark"
# Another option write wakes the request; it re-reads its inputs and parks again.
sysfs_write $d/options/allocator_stuck_timeout 3
t a_other_option_wakes_and_reparks wait_for 5 grep -q "wakeups: [1-9]" $d/internal/alloc_debug
t a_still_parked parked 1
t a_mount_not_done kill -0 $pid
start=$(now_ms)
sysfs_write $d/options/metadata_replicas 1
wait $pid
rc=$?
took=$(( $(now_ms) - start ))
echo "rescue by sysfs write took ${took} ms"
t a_mount_completes test $rc = 0
t a_mount_completes_within_a_second test $took -lt ${RESCUE_MS:-1000}
btree_matches a

# Path b: the mount option: no parking at all.
scenario b
t b_mount_with_replicas_1 mount -t bucketfs -o metadata_replicas=1 /dev/vda:/dev/vdb /mnt
t b_never_parked grep -q "^parks: 0" $(fs_dir)/internal/alloc_debug
btree_matches b

# Path c: the abort knob fails the parked mount cleanly; a retry with (b) succeeds.
scenario c
seq_before=$(bucketfs show-super --json /dev/vda | sed -n 's/.*"seq": \([0-9]*\).*/\1/p')
start_stuck_mount c
sysfs_write $(fs_dir)/internal/abort_stuck_allocations 1
wait $pid
rc=$?
t c_mount_fails test $rc != 0
t c_mount_fails_with_ecanceled grep -q "Operation canceled" /tmp/mount.err
t c_abort_logged dmesg_has "journal replay stopped after 0 of 3000 key\(s\): btree node allocation aborted"
t c_no_sysfs_left test -z "$(fs_dir)"
seq_after=$(bucketfs show-super --json /dev/vda | sed -n 's/.*"seq": \([0-9]*\).*/\1/p')
t c_nothing_written test "$seq_before" = "$seq_after"
t c_btree_untouched sh -c "bucketfs dump-btree /dev/vda /dev/vdb | grep -q 'keys 0 .* journal_seq 1'"
t c_retry_with_mount_option mount -t bucketfs -o metadata_replicas=1 /dev/vda:/dev/vdb /mnt
expect_fail c_abort_knob_takes_only_1 "Invalid argument" sysfs_write $(fs_dir)/internal/abort_stuck_allocations 2
t c_abort_with_nothing_parked sysfs_write $(fs_dir)/internal/abort_stuck_allocations 1
btree_matches c

# A device state change wakes parked requests too: with dev-1 not writable, lowering the
# replica count is not enough; making dev-1 writable again completes the mount.
scenario e
start_stuck_mount e
d=$(fs_dir)
t e_dev_writable_file test "$(stat -c %a $d/dev-1/writable)" = 644
t e_dev1_read_only sysfs_write $d/dev-1/writable 0
sysfs_write $d/options/metadata_replicas 1
t e_still_parked_without_a_writable_device wait_for 5 sh -c "grep -q 'wakeups: [1-9]' $d/internal/alloc_debug && grep -q '^parked requests: 1' $d/internal/alloc_debug"
expect_fail e_dev_writable_garbage "Invalid argument" sysfs_write $d/dev-1/writable maybe
t e_dev1_writable_again sysfs_write $d/dev-1/writable 1
wait $pid
t e_device_state_change_completes_the_mount test $? = 0
btree_matches e

# Path d: SIGKILL of the parked mount; then the same retry, and the module unloads.
scenario d
start_stuck_mount d
kill -9 $pid
wait $pid
rc=$?
t d_killed_mount_returns test $rc != 0
t d_kill_logged dmesg_has "btree node allocation killed while waiting"
t d_no_sysfs_left test -z "$(fs_dir)"
t d_retry_with_mount_option mount -t bucketfs -o metadata_replicas=1 /dev/vda:/dev/vdb /mnt
btree_matches d
t d_rmmod rmmod bucketfs

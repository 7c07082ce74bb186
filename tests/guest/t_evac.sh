# SPDX-License-Identifier: GPL-2.0
# Removing a member (the end of the bcachefs #1105 way out): the #1108 state (seed-small.toml on
# vda+vdb, two metadata replicas, vda starved) parks; a third device (vdc) added through
# device_add releases it; discards drain the starved member; then vdc is evacuated
# (dev-2/evacuate) and removed (dev-2/remove), and the two original devices mount alone with
# every key. Then the refusals, and the offline `bucketfs device remove`.

insmod /modules/bucketfs.ko
spec=/root/scenarios/seed-small.toml

expect=$(bucketfs scenario $spec /dev/vda /dev/vdb | sed -n 's/^scenario: expect //p')
if [ -n "$expect" ]; then pass ev_scenario; else fail ev_scenario "no expectation printed"; fi
dd if=/dev/zero of=/dev/vdc bs=64k count=16 2>/dev/null

# Parked, released by device_add.
mount -t bucketfs /dev/vda:/dev/vdb /mnt 2>/tmp/ev-mount.err &
pid=$!
(sleep 60; kill -9 $pid 2>/dev/null) &
t ev_mount_parks wait_for 20 parked 1
d=$(fs_dir)
uuid=${d##*/}
# Before recovery has finished: EAGAIN, nothing written.
expect_fail ev_refuse_during_replay "temporarily unavailable" sysfs_write $d/dev-1/evacuate 1
t ev_refuse_during_replay_logged dmesg_has "$uuid: dev-1/evacuate \(vdb\): the mount has not finished recovery.*\(-11\)"
t ev_device_add sysfs_write $d/device_add /dev/vdc
wait $pid
t ev_mount_completes test $? = 0
t ev_keys_after_add test "$(btree_figures)" = "$expect"
t ev_new_member_holds_copies test "$(cat $d/dev-2/btree)" -gt 0
t ev_state_member test "$(cat $d/dev-2/state)" = member
t ev_files_root_only test "$(stat -c %a $d/dev-2/evacuate):$(stat -c %a $d/dev-2/remove)" = 200:200

# Remove before evacuate: EBUSY, naming the copies; nothing written.
seq_before=$(cat $d/internal/superblock_seq)
expect_fail ev_refuse_not_empty "busy" sysfs_write $d/dev-2/remove 1
t ev_refuse_not_empty_logged dmesg_has "$uuid: dev-2/remove \(vdc\): [0-9]+ btree node cop(y is|ies are) still on the member; evacuate it first \(-16\)"
t ev_refuse_not_empty_wrote_nothing test "$(cat $d/internal/superblock_seq)" = "$seq_before"
t ev_refuse_not_empty_still_writable test "$(cat $d/dev-2/writable)" = 1
expect_fail ev_refuse_bad_value "Invalid argument" sysfs_write $d/dev-2/evacuate 2
# Read-only: EROFS.
t ev_remount_ro mount -o remount,ro /mnt
expect_fail ev_refuse_ro "Read-only" sysfs_write $d/dev-2/evacuate 1
t ev_refuse_ro_logged dmesg_has "$uuid: dev-2/evacuate \(vdc\): read-only mount.*\(-30\)"
t ev_remount_rw mount -o remount,rw /mnt

# metadata_target naming the member: EBUSY (its copies would wait for it).
t ev_target_dev2 sysfs_write $d/options/metadata_target dev-2
expect_fail ev_refuse_target "busy" sysfs_write $d/dev-2/evacuate 1
t ev_refuse_target_logged dmesg_has "$uuid: dev-2/evacuate \(vdc\): metadata_target names this member.*\(-16\)"
t ev_target_none sysfs_write $d/options/metadata_target none
t ev_still_writable test "$(cat $d/dev-2/writable)" = 1

# Discards drain the starved member.
t ev_discard_on sysfs_write $d/options/discard 1
t ev_starved_drained wait_for 20 sh -c "test \$(cat $d/dev-0/need_discard) = 0"
echo "dev-0: free $(cat $d/dev-0/free) need_discard $(cat $d/dev-0/need_discard); dev-2 btree $(cat $d/dev-2/btree)"

# Evacuate: every copy on vdc moves to vda+vdb (two replicas each), the member takes no new
# copies, every key is kept.
t ev_evacuate sysfs_write $d/dev-2/evacuate 1
t ev_evacuated_logged dmesg_has "$uuid: dev-2 \(vdc\) evacuated: [0-9]+ btree node\(s\) rewritten"
t ev_no_copy_left test "$(cat $d/dev-2/btree)" = 0
t ev_not_writable test "$(cat $d/dev-2/writable)" = 0
t ev_keys_after_evacuate test "$(btree_figures)" = "$expect"
t ev_two_copies_each test "$(cat $d/dev-0/btree)" = "$(cat $d/dev-1/btree)"
# Remove: the member table names it removed; dev-2 stays, reading "removed".
t ev_remove sysfs_write $d/dev-2/remove 1
t ev_removed_logged dmesg_has "$uuid: removed member 2 \(vdc, uuid [0-9a-f-]+\)"
t ev_state_removed test "$(cat $d/dev-2/state)" = removed
t ev_superblock_says_removed sh -c "bucketfs show-super /dev/vda | grep -q 'member 2: removed'"
t ev_keys_after_remove test "$(btree_figures)" = "$expect"
# Refusals after: removed already (EINVAL); two members left for two replicas (ENOSPC);
# writable on a removed member (EINVAL).
expect_fail ev_refuse_removed_again "Invalid argument" sysfs_write $d/dev-2/remove 1
t ev_refuse_removed_again_logged dmesg_has "$uuid: dev-2/remove \(vdc\): the member was removed already \(-22\)"
expect_fail ev_refuse_too_few "No space left" sysfs_write $d/dev-0/evacuate 1
t ev_refuse_too_few_logged dmesg_has "$uuid: dev-0/evacuate \(vda\): 1 member\(s\) would be left for metadata_replicas=2 .*\(-28\)"
expect_fail ev_refuse_writable_removed "Invalid argument" sysfs_write $d/dev-2/writable 1
t ev_option_change_after_remove sysfs_write $d/options/allocator_stuck_timeout 5
umount /mnt

# The two original devices alone: every key there, nothing to replay.
t ev_mount_two mount -t bucketfs /dev/vda:/dev/vdb /mnt
t ev_keys_two test "$(btree_figures)" = "$expect"
t ev_nothing_to_replay grep -q "replayed 0 of 0" $(fs_dir)/internal/replay
t ev_dev2_removed_at_mount test "$(cat $(fs_dir)/dev-2/state)" = removed
umount /mnt
t ev_dump_two sh -c "bucketfs dump-btree /dev/vda /dev/vdb | grep -q '$expect'"
# The removed device is no member any more: given to a mount, it is refused.
expect_fail ev_removed_device_refused "Invalid argument" mount -t bucketfs /dev/vda:/dev/vdb:/dev/vdc /mnt
t ev_removed_device_named dmesg_has "/dev/vdc: not a member of this filesystem"
# ... and it may be added again (online, a new member index: removed slots are not reused).
t ev_mount_again mount -t bucketfs /dev/vda:/dev/vdb /mnt
d=$(fs_dir)
t ev_readd sysfs_write $d/device_add /dev/vdc
t ev_readd_index test "$(cat $d/dev-3/device)" = vdc
umount /mnt

# Offline: `bucketfs device remove` refuses a member that holds copies, and removes an empty
# one (vdc, member 3, holds none: nothing was allocated since the add).
expect_fail off_refuse_not_empty "evacuate it first" bucketfs device remove --member 0 /dev/vda /dev/vdb /dev/vdc
t off_remove bucketfs device remove --member 3 /dev/vda /dev/vdb /dev/vdc
expect_fail off_refuse_too_few "1 member(s) would be left" bucketfs device remove --member 0 /dev/vda /dev/vdb
expect_fail off_refuse_removed "removed already" bucketfs device remove --member 3 /dev/vda /dev/vdb
t off_mount_two mount -t bucketfs /dev/vda:/dev/vdb /mnt
t off_keys_two test "$(btree_figures)" = "$expect"
t off_dev3_removed test "$(cat $(fs_dir)/dev-3/state)" = removed
umount /mnt

# An unreplayed journal: replay would refuse its entries' bucket updates on a removed member,
# so the offline remove is refused until a read-write mount has replayed the journal.
bucketfs scenario $spec /dev/vda /dev/vdb >/dev/null
t off_add_pending bucketfs device add --new /dev/vdc /dev/vda /dev/vdb
expect_fail off_refuse_pending_journal "not replayed yet" bucketfs device remove --member 2 /dev/vda /dev/vdb /dev/vdc
t off_pending_mount timeout -s KILL 60 mount -t bucketfs /dev/vda:/dev/vdb:/dev/vdc /mnt
t off_pending_every_key test "$(btree_figures)" = "$expect"
umount /mnt
if out=$(bucketfs device remove --member 2 /dev/vda /dev/vdb /dev/vdc 2>&1); then
	pass off_pending_replayed_then_removable
else
	t off_pending_replayed_then_refused_for_copies_only sh -c "echo '$out' | grep -q 'evacuate it first'"
fi
rm -f /tmp/ev-*
t evac_rmmod rmmod bucketfs

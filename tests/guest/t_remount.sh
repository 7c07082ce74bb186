# SPDX-License-Identifier: GPL-2.0
# mount -o remount: runtime options apply as a write under options/ does (checked, in force,
# persisted); bad values, unknown options and rule breaks are refused with EINVAL and a
# dmesg line and change nothing; ro and rw switch between read-only and read-write (t_ro.sh
# tests what a read-only mount does).
# Disks: vda, vdb.

insmod /modules/bucketfs.ko
t remount_format bucketfs format --metadata-replicas 2 --metadata-replicas-required 2 --bucket-size 4k /dev/vda /dev/vdb
t remount_mount mount -t bucketfs /dev/vda:/dev/vdb /mnt
d=$(fs_dir)
seq0=$(cat $d/internal/superblock_seq)
t remount_without_options mount -o remount /mnt
t remount_without_options_writes_nothing test "$(cat $d/internal/superblock_seq)" = "$seq0"

# Below the stored required count alone: refused, as the sysfs write is.
dmesg -c >/dev/null
expect_fail remount_replicas_below_required "Invalid argument" mount -o remount,metadata_replicas=1 /mnt
t remount_replicas_below_required_logged dmesg_has "remount: metadata_replicas=1: metadata_replicas_required \(2\) would exceed metadata_replicas \(1\).*\(-22\)"
t remount_refusal_changed_nothing test "$(cat $d/options/metadata_replicas) $(cat $d/internal/superblock_seq)" = "2 $seq0"
# Both at once: one change, in force and persisted.
t remount_replicas mount -o remount,metadata_replicas=1,metadata_replicas_required=1 /mnt
t remount_replicas_in_force test "$(cat $d/options/metadata_replicas)" = 1
t remount_required_in_force test "$(cat $d/options/metadata_replicas_required)" = 1
t remount_persisted_at_once test "$(cat $d/internal/superblock_seq)" -gt "$seq0"
t remount_logged dmesg_has "remount: set metadata_replicas=1 metadata_replicas_required=1"
t remount_other_options sh -c "mount -o remount,allocator_stuck_timeout=9,discard=0 /mnt && test \$(cat $d/options/allocator_stuck_timeout) = 9 && test \$(cat $d/options/discard) = 0"

# Refusals: EINVAL, a dmesg line naming the option, nothing changed.
seq1=$(cat $d/internal/superblock_seq)
dmesg -c >/dev/null
expect_fail remount_bad_value "Invalid argument" mount -o remount,metadata_replicas=abc /mnt
t remount_bad_value_logged dmesg_has "metadata_replicas=abc: not a valid value"
expect_fail remount_out_of_range "Invalid argument" mount -o remount,allocator_stuck_timeout=99999 /mnt
t remount_out_of_range_logged dmesg_has "allocator_stuck_timeout=99999: out of range"
expect_fail remount_more_than_members "Invalid argument" mount -o remount,metadata_replicas=3 /mnt
t remount_more_than_members_logged dmesg_has "remount: metadata_replicas=3: more than the 2 member"
expect_fail remount_unknown_option "Invalid argument" mount -o remount,bogus=1 /mnt
t remount_unknown_option_logged dmesg_has "Unknown parameter 'bogus'"
t remount_ro mount -o remount,ro /mnt
t remount_ro_is_ro grep -q " /mnt bucketfs ro" /proc/mounts
t remount_ro_logged dmesg_has "remount: read-only"
t remount_rw_again mount -o remount,rw /mnt
t remount_rw_again_is_rw grep -q " /mnt bucketfs rw" /proc/mounts
t remount_refusals_changed_nothing test "$(cat $d/options/metadata_replicas) $(cat $d/options/allocator_stuck_timeout) $(cat $d/internal/superblock_seq)" = "1 9 $seq1"
t remount_rw_is_a_no_op mount -o remount,rw /mnt
t remount_umount umount /mnt

# Persisted: in the superblock, and in force at the next mount without options.
t remount_show_super sh -c 'bucketfs show-super --json /dev/vdb | grep -q "\"metadata_replicas\": 1"'
t remount_next_mount mount -t bucketfs /dev/vda:/dev/vdb /mnt
t remount_next_mount_replicas test "$(cat $(fs_dir)/options/metadata_replicas) $(cat $(fs_dir)/options/allocator_stuck_timeout)" = "1 9"
t remount_next_umount umount /mnt
dmesg -c >/dev/null
t mount_ro mount -t bucketfs -o ro /dev/vda:/dev/vdb /mnt
t mount_ro_is_ro grep -q " /mnt bucketfs ro" /proc/mounts
t mount_ro_logged dmesg_has "mounted .* read-only"
t mount_ro_umount umount /mnt
t mount_ro_left_nothing test -z "$(fs_dir)"
t remount_rmmod rmmod bucketfs

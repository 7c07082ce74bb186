# SPDX-License-Identifier: GPL-2.0
# Format, mount, options through mount and sysfs, persistence, refusals.
# Disks: vda, vdb (the filesystem), vdc (a second, foreign filesystem).

insmod /modules/bucketfs.ko
t format_two_devices bucketfs format --metadata-replicas 2 --bucket-size 4k --allocator-stuck-timeout 20 /dev/vda /dev/vdb
t format_foreign bucketfs format --bucket-size 4k /dev/vdc
t mount_two_devices mount -t bucketfs /dev/vda:/dev/vdb /mnt
d=$(fs_dir)
t sysfs_dir_created test -n "$d"
t root_dir_is_empty_dir sh -c 'test -d /mnt && test -z "$(ls -A /mnt)"'

# Every option is readable and has the value it was formatted with.
t option_metadata_replicas_read test "$(cat $d/options/metadata_replicas)" = 2
t option_metadata_replicas_required_read test "$(cat $d/options/metadata_replicas_required)" = 1
t option_discard_read test "$(cat $d/options/discard)" = 1
t option_allocator_stuck_timeout_read test "$(cat $d/options/allocator_stuck_timeout)" = 20
t option_files_root_writable_only test "$(stat -c %a $d/options/metadata_replicas)" = 644
t dev_files_read_only test "$(stat -c %a $d/dev-0/free)" = 444

# dev-N: device names, and bucket counts that add up to the device.
t dev0_device test "$(cat $d/dev-0/device)" = vda
t dev1_device test "$(cat $d/dev-1/device)" = vdb
for n in 0 1; do
	sum=0
	for s in free need_discard btree journal superblock data; do
		sum=$((sum + $(cat $d/dev-$n/$s)))
	done
	t dev${n}_bucket_counts_add_up test "$sum" = "$(cat $d/dev-$n/nbuckets)"
done
t dev0_one_btree_bucket test "$(cat $d/dev-0/btree)" = 1

# statfs: allocatable buckets, all free on a new filesystem.
blocks=$(stat -f -c %b /mnt)
want=$(( ($(cat $d/dev-0/nbuckets) - $(cat $d/dev-0/first_bucket)) + ($(cat $d/dev-1/nbuckets) - $(cat $d/dev-1/first_bucket)) ))
t statfs_blocks_from_buckets test "$blocks" = "$want"
t statfs_free_from_buckets test "$(stat -f -c %f /mnt)" = $(( $(cat $d/dev-0/free) + $(cat $d/dev-0/need_discard) + $(cat $d/dev-1/free) + $(cat $d/dev-1/need_discard) ))
# Available: what file data may take, free buckets beyond the data watermark's holdback
# (1/64 of the allocatable buckets plus twice the btree reserve, per member).
avail=0
for n in 0 1; do
	a=$(( $(cat $d/dev-$n/nbuckets) - $(cat $d/dev-$n/first_bucket) ))
	r=$(( a / 256 )); [ $r -lt 2 ] && r=2; [ $r -gt 512 ] && r=512
	f=$(( $(cat $d/dev-$n/free) - a / 64 - 2 * r )); [ $f -lt 0 ] && f=0
	avail=$((avail + f))
done
t statfs_avail_below_data_watermark test "$(stat -f -c %a /mnt)" = $avail

# Runtime writes: applied, persisted (superblock seq moves), read back.
seq0=$(cat $d/internal/superblock_seq)
t runtime_write_timeout sysfs_write $d/options/allocator_stuck_timeout 7
t runtime_read_back_timeout test "$(cat $d/options/allocator_stuck_timeout)" = 7
t runtime_write_replicas sysfs_write $d/options/metadata_replicas 1
t runtime_read_back_replicas test "$(cat $d/options/metadata_replicas)" = 1
t runtime_write_persists_superblock test "$(cat $d/internal/superblock_seq)" -gt "$seq0"
t runtime_write_logged dmesg_has "options/metadata_replicas set to 1"

# Garbage gets EINVAL and changes nothing.
long=$(head -c 4096 /dev/zero | tr '\0' 7)
for opt in metadata_replicas metadata_replicas_required allocator_stuck_timeout discard; do
	before=$(cat $d/options/$opt)
	i=0
	for v in "" 0 -1 99 abc "$long" 99999 " 1" 1x; do
		i=$((i + 1))
		# 0 is valid for some options: skip the values a given option accepts.
		case "$opt:$v" in allocator_stuck_timeout:0 | allocator_stuck_timeout:99 | discard:0) continue ;; esac
		expect_fail "garbage_${opt}_$i" "Invalid argument" sysfs_write $d/options/$opt "$v"
	done
	t "garbage_${opt}_unchanged" test "$(cat $d/options/$opt)" = "$before"
done
# Root only: an unprivileged user can read the knobs but not write them.
echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >>/etc/passwd
echo 'nogroup:x:65534:' >>/etc/group
t unprivileged_can_read su -s /bin/sh nobody -c "cat $d/options/metadata_replicas"
for knob in options/metadata_replicas options/discard internal/abort_stuck_allocations internal/trigger_discards dev-0/discard dev-0/writable; do
	expect_fail "unprivileged_cannot_write_$(echo $knob | tr / _)" "Permission denied" su -s /bin/sh nobody -c "echo 1 > $d/$knob"
done
t unprivileged_write_changed_nothing test "$(cat $d/options/metadata_replicas)" = 1
t garbage_logged dmesg_has "options/metadata_replicas=abc: not a valid value"
expect_fail required_above_replicas "Invalid argument" sysfs_write $d/options/metadata_replicas_required 2
expect_fail replicas_above_members "Invalid argument" sysfs_write $d/options/metadata_replicas 3

t umount umount /mnt
t sysfs_dir_removed_on_umount test ! -e "$d"

# Remount: runtime writes persisted.
t remount mount -t bucketfs /dev/vda:/dev/vdb /mnt
d=$(fs_dir)
t persisted_timeout test "$(cat $d/options/allocator_stuck_timeout)" = 7
t persisted_replicas test "$(cat $d/options/metadata_replicas)" = 1
expect_fail busy_second_mount_refused "busy" mount -t bucketfs /dev/vda:/dev/vdb /mnt
t umount_again umount /mnt
t show_super_persisted sh -c 'bucketfs show-super --json /dev/vdb | grep -q "\"allocator_stuck_timeout\": 7"'

# Mount options: accepted, in force for that mount only.
t mount_option_replicas mount -t bucketfs -o metadata_replicas=2 /dev/vda:/dev/vdb /mnt
d=$(fs_dir)
t mount_option_in_force test "$(cat $d/options/metadata_replicas)" = 2
t mount_option_logged dmesg_has "metadata_replicas=2\)"
umount /mnt
mount -t bucketfs /dev/vda:/dev/vdb /mnt
t mount_option_not_persisted test "$(cat $(fs_dir)/options/metadata_replicas)" = 1
umount /mnt

# The rescue option works even when the stored required count is higher: it follows down.
bucketfs format --bucket-size 4k --metadata-replicas 2 --metadata-replicas-required 2 /dev/vda /dev/vdb >/dev/null
t rescue_option_with_required_2 mount -t bucketfs -o metadata_replicas=1 /dev/vda:/dev/vdb /mnt
t rescue_option_lowers_required test "$(cat $(fs_dir)/options/metadata_replicas_required)" = 1
t rescue_option_required_logged dmesg_has "metadata_replicas_required lowered to 1 for this mount"
umount /mnt
mount -t bucketfs /dev/vda:/dev/vdb /mnt
t stored_required_unchanged test "$(cat $(fs_dir)/options/metadata_replicas_required)" = 2
expect_fail runtime_replicas_below_required "Invalid argument" sysfs_write $(fs_dir)/options/metadata_replicas 1
t runtime_replicas_below_required_explained dmesg_has "metadata_replicas_required \(2\) would exceed metadata_replicas \(1\); lower metadata_replicas_required first"
umount /mnt
bucketfs format --bucket-size 4k --metadata-replicas 2 /dev/vda /dev/vdb >/dev/null

# Bad mount options and sources: EINVAL (or ENXIO) with a dmesg line, no sysfs left behind.
expect_fail mount_opt_too_many_replicas "Invalid argument" mount -t bucketfs -o metadata_replicas=3 /dev/vda:/dev/vdb /mnt
t mount_opt_too_many_replicas_logged dmesg_has "metadata_replicas=3: more than the 2 member"
expect_fail mount_opt_zero_replicas "Invalid argument" mount -t bucketfs -o metadata_replicas=0 /dev/vda:/dev/vdb /mnt
expect_fail mount_opt_not_a_number "Invalid argument" mount -t bucketfs -o metadata_replicas=abc /dev/vda:/dev/vdb /mnt
t mount_opt_not_a_number_logged dmesg_has "metadata_replicas=abc: not a valid value"
expect_fail mount_opt_no_value "Invalid argument" mount -t bucketfs -o allocator_stuck_timeout /dev/vda:/dev/vdb /mnt
expect_fail mount_opt_unknown "Invalid argument" mount -t bucketfs -o bogus=1 /dev/vda:/dev/vdb /mnt
t mount_opt_unknown_logged dmesg_has "Unknown parameter 'bogus'"
expect_fail mount_missing_member "No such device or address" mount -t bucketfs /dev/vda /mnt
t mount_missing_member_logged dmesg_has "member 1 is missing"
expect_fail mount_foreign_member "Invalid argument" mount -t bucketfs /dev/vda:/dev/vdc /mnt
t mount_foreign_member_logged dmesg_has "/dev/vdc: belongs to another filesystem"
expect_fail mount_same_device_twice "Invalid argument" mount -t bucketfs /dev/vda:/dev/vda /mnt
expect_fail mount_empty_member "Invalid argument" mount -t bucketfs /dev/vda::/dev/vdb /mnt
t no_sysfs_after_failed_mounts test -z "$(fs_dir)"
t single_member_mount sh -c 'mount -t bucketfs /dev/vdc /mnt && umount /mnt'

# Corrupted superblocks, one field class at a time: refused, with a dmesg line naming it.
for field in magic checksum member-table sizes options root; do
	bucketfs format --bucket-size 4k /dev/vdc >/dev/null
	bucketfs debug corrupt-super --field $field /dev/vdc
	expect_fail "corrupt_${field}_refused" "Invalid argument" mount -t bucketfs /dev/vdc /mnt
	t "corrupt_${field}_logged" dmesg_has "/dev/vdc: bad superblock: "
done
t corrupt_sizes_names_field dmesg_has "bad superblock: bucket_size"
t corrupt_checksum_names_field dmesg_has "bad superblock: checksum"

# Only one copy damaged: the other is used, with a warning.
bucketfs format --bucket-size 4k /dev/vdc >/dev/null
dd if=/dev/zero of=/dev/vdc bs=4096 seek=1 count=1 conv=notrunc 2>/dev/null
t one_bad_copy_mounts sh -c 'mount -t bucketfs /dev/vdc /mnt && umount /mnt'
t one_bad_copy_warned dmesg_has "superblock copy at 4096 refused"

t rmmod_after_mounts rmmod bucketfs
t sysfs_gone_after_rmmod test ! -e /sys/fs/bucketfs

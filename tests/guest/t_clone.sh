# SPDX-License-Identifier: GPL-2.0
# Clones: a dd copy of every member has the same filesystem uuid. While the original is
# mounted (or being mounted) the clone is refused with EBUSY and one dmesg line naming both,
# before it reaches /sys/fs/bucketfs/<uuid>/ (which used to give "cannot create duplicate
# filename" and a stack dump); once the original is unmounted the clone mounts. A copy of
# one member mixed with the original's other members is refused by assembly.
# Disks: vda holds a one-member filesystem, vdb and vdc its clones; then vda+vdb hold a
# two-member one and vdc a copy of its member 0.

insmod /modules/bucketfs.ko
mkdir -p /mnt2
t clone_format bucketfs format --bucket-size 4k /dev/vda
t clone_copy_vdb dd if=/dev/vda of=/dev/vdb bs=1M conv=fsync
t clone_copy_vdc dd if=/dev/vda of=/dev/vdc bs=1M conv=fsync
t clone_original_mounts mount -t bucketfs /dev/vda /mnt
d=$(fs_dir)
uuid=${d##*/}
dmesg -c >/dev/null
expect_fail clone_refused_ebusy "busy" mount -t bucketfs /dev/vdb /mnt2
t clone_refusal_names_both dmesg_has "/dev/vdb: filesystem $uuid is already mounted from /dev/vda; .*\(-16\)"
t clone_refusal_one_line test "$(dmesg | grep -c 'bucketfs: ')" = 1
t clone_no_duplicate_sysfs sh -c '! dmesg | grep -q "duplicate filename"'
t clone_original_untouched sh -c "test \$(ls -d /sys/fs/bucketfs/*-* | wc -l) = 1 && test -e $d/options/metadata_replicas && grep -q ' /mnt bucketfs ' /proc/mounts"
t clone_not_mounted sh -c '! grep -q " /mnt2 " /proc/mounts'
# Refused again: the failed attempt left no claim behind, and the original still holds it.
expect_fail clone_refused_again "busy" mount -t bucketfs /dev/vdc /mnt2
t original_umount umount /mnt

# Two clones mounted at once: exactly one gets the uuid, the other EBUSY.
dmesg -c >/dev/null
(mount -t bucketfs /dev/vdb /mnt >/tmp/clone-b.out 2>&1; echo $? >/tmp/clone-b.rc) &
(mount -t bucketfs /dev/vdc /mnt2 >/tmp/clone-c.out 2>&1; echo $? >/tmp/clone-c.rc) &
wait
rcs="$(cat /tmp/clone-b.rc) $(cat /tmp/clone-c.rc)"
case "$rcs" in
"0 "[1-9]* | [1-9]*" 0") pass concurrent_clones_one_mounts ;;
*) fail concurrent_clones_one_mounts "exit codes $rcs: $(cat /tmp/clone-b.out /tmp/clone-c.out)" ;;
esac
t concurrent_clones_loser_busy grep -q busy /tmp/clone-b.out /tmp/clone-c.out
t concurrent_clones_one_sysfs_dir test "$(ls -d /sys/fs/bucketfs/*-* | wc -l)" = 1
umount /mnt 2>/dev/null
umount /mnt2 2>/dev/null

# Every error path after the claim gives the uuid back: a mount refused for a bad option
# value (checked after the claim), then the clone mounts.
expect_fail clone_bad_option_refused "Invalid argument" mount -t bucketfs -o metadata_replicas=2 /dev/vda /mnt
t clone_mounts_after_failed_original mount -t bucketfs /dev/vdb /mnt
t clone_umount umount /mnt
t original_mounts_after_clone_umount mount -t bucketfs /dev/vda /mnt
t original_umount_again umount /mnt

# One member copied, mixed with the original's other member: two devices claim member 0.
t mixed_format bucketfs format --bucket-size 4k /dev/vda /dev/vdb
t mixed_copy_member0 dd if=/dev/vda of=/dev/vdc bs=1M conv=fsync
expect_fail mixed_same_member_refused "Invalid argument" mount -t bucketfs /dev/vda:/dev/vdc:/dev/vdb /mnt
t mixed_same_member_logged dmesg_has "/dev/vda and /dev/vdc are the same member"
t mixed_original_mounts mount -t bucketfs /dev/vda:/dev/vdb /mnt
# With the original mounted, its other member is busy (held exclusively).
expect_fail mixed_with_mounted_member_busy "busy" mount -t bucketfs /dev/vdc:/dev/vdb /mnt2
t mixed_umount umount /mnt
t clone_rmmod rmmod bucketfs

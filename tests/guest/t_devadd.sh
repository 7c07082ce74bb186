# SPDX-License-Identifier: GPL-2.0
# Adding a member (the bcachefs #1105 way out): the #1108 state (seed-small.toml on vda+vdb,
# two metadata replicas, vda starved) gets a third, empty device (vdc), offline with
# `bucketfs device add` and online through /sys/fs/bucketfs/<uuid>/device_add while the
# mount is parked in replay; then the refusals.

insmod /modules/bucketfs.ko
spec=/root/scenarios/seed-small.toml

# da_scenario NAME: write the crash state; sets $expect to "keys N digest D".
da_scenario() {
	expect=$(bucketfs scenario $spec /dev/vda /dev/vdb | sed -n 's/^scenario: expect //p')
	if [ -n "$expect" ]; then pass "$1_scenario"; else fail "$1_scenario" "no expectation printed"; fi
	# An empty third device (a former member of another filesystem would do as well).
	dd if=/dev/zero of=/dev/vdc bs=64k count=16 2>/dev/null
}

# da_keys_kept NAME: the mounted three-member filesystem holds every key, and so does a
# remount of all three and the offline walk.
da_keys_kept() {
	t "$1_btree_has_every_key" test "$(btree_figures)" = "$expect"
	umount /mnt
	t "$1_remount_three" mount -t bucketfs /dev/vda:/dev/vdb:/dev/vdc /mnt
	t "$1_keys_after_remount" test "$(btree_figures)" = "$expect"
	t "$1_three_members" test -d "$(fs_dir)/dev-2"
	t "$1_nothing_left_to_replay" grep -q "replayed 0 of 0" $(fs_dir)/internal/replay
	umount /mnt
	t "$1_dump_btree_offline" sh -c "bucketfs dump-btree /dev/vda /dev/vdb /dev/vdc | grep -q '$expect'"
	# The new member is required now: the two old ones alone are refused, naming it.
	expect_fail "$1_old_members_alone_refused" "No such device" mount -t bucketfs /dev/vda:/dev/vdb /mnt
	t "$1_missing_member_named" dmesg_has "member 2 is missing from the source"
}

# Offline: `bucketfs device add`, then the mount replays at once on the three members.
da_scenario off
t off_device_add bucketfs device add --new /dev/vdc /dev/vda /dev/vdb
t off_new_member_index sh -c "bucketfs show-super --json /dev/vdc | grep -q '\"member_index\": 2'"
t off_members_know_it sh -c "bucketfs show-super --json /dev/vda | grep -q '\"nr_members\": 3'"
t off_mount_three mount -t bucketfs /dev/vda:/dev/vdb:/dev/vdc /mnt
t off_never_parked grep -q "^parks: 0" $(fs_dir)/internal/alloc_debug
t off_replay_done grep -q "replayed 3000 of 3000" $(fs_dir)/internal/replay
t off_new_member_holds_copies test "$(cat $(fs_dir)/dev-2/btree)" -gt 0
da_keys_kept off
# Refusals of the tool: a mounted filesystem (its devices are claimed), a current member.
t off_remount mount -t bucketfs /dev/vda:/dev/vdb:/dev/vdc /mnt
dd if=/dev/zero of=/tmp/da-spare bs=1M count=64 2>/dev/null
spare=$(losetup -f)
losetup $spare /tmp/da-spare
expect_fail off_refused_while_mounted "in use" bucketfs device add --new $spare /dev/vda /dev/vdb /dev/vdc
umount /mnt
expect_fail off_refused_a_member "already a member" bucketfs device add --new /dev/vdb /dev/vda /dev/vdb /dev/vdc
losetup -d $spare
rm -f /tmp/da-spare

# Online, while the mount is parked in replay (the #1105 shape): a write of the third device's
# path to device_add; the parked request takes the new member at once and replay completes.
da_scenario on
mount -t bucketfs /dev/vda:/dev/vdb /mnt 2>/tmp/da-mount.err &
pid=$!
(sleep 60; kill -9 $pid 2>/dev/null) &
t on_mount_parks wait_for 20 parked 1
d=$(fs_dir)
t on_device_add_root_write_only test "$(stat -c %a $d/device_add)" = 200
# Refusals while parked: each with its errno and a dmesg line naming the filesystem; the
# mount stays parked and the members' superblocks stay as they were.
uuid=${d##*/}
seq_before=$(cat $d/internal/superblock_seq)
expect_fail on_refuse_member "Invalid argument" sysfs_write $d/device_add /dev/vdb
t on_refuse_member_logged dmesg_has "$uuid: device_add /dev/vdb: vdb is member 1 already \(-22\)"
expect_fail on_refuse_missing_path "No such file" sysfs_write $d/device_add /no/such/device
t on_refuse_missing_path_logged dmesg_has "$uuid: device_add /no/such/device: cannot open the device \(-2\)"
expect_fail on_refuse_garbage "Invalid argument" sysfs_write $d/device_add "   "
t on_refuse_garbage_logged dmesg_has "$uuid: device_add : not a device path \(-22\)"
: >/tmp/da-regular
expect_fail on_refuse_regular_file "Invalid argument" sysfs_write $d/device_add /tmp/da-regular
t on_refuse_regular_file_logged dmesg_has "$uuid: device_add /tmp/da-regular: not a block device \(-22\)"
dd if=/dev/zero of=/tmp/da-small bs=1k count=256 2>/dev/null
small=$(losetup -f)
losetup $small /tmp/da-small
expect_fail on_refuse_too_small "Invalid argument" sysfs_write $d/device_add $small
t on_refuse_too_small_logged dmesg_has "$uuid: device_add $small: .*too small"
t on_small_untouched sh -c "! bucketfs show-super $small"
losetup -d $small
# A device claimed by another mount: EBUSY.
dd if=/dev/zero of=/tmp/da-other bs=1M count=8 2>/dev/null
other=$(losetup -f)
losetup $other /tmp/da-other
bucketfs format --bucket-size 4k $other >/dev/null
mkdir -p /mnt2
t on_other_mount mount -t bucketfs $other /mnt2
expect_fail on_refuse_busy "busy" sysfs_write $d/device_add $other
t on_refuse_busy_logged dmesg_has "$uuid: device_add $other: the device is in use .*\(-16\)"
umount /mnt2
losetup -d $other
t on_refusals_wrote_nothing test "$(cat $d/internal/superblock_seq)" = "$seq_before"
t on_still_parked parked 1
t on_no_dev2_yet test ! -e $d/dev-2
start=$(now_ms)
t on_device_add sysfs_write $d/device_add /dev/vdc
wait $pid
rc=$?
took=$(( $(now_ms) - start ))
echo "rescue by device_add took ${took} ms"
t on_mount_completes test $rc = 0
t on_mount_completes_within_a_second test $took -lt ${RESCUE_MS:-1000}
t on_added_logged dmesg_has "$uuid: added /dev/vdc \(vdc\) as member 2"
t on_dev2_dir test "$(cat $d/dev-2/device)" = vdc
t on_dev2_geometry test "$(cat $d/dev-2/nbuckets)" = 16384
t on_new_member_holds_copies test "$(cat $d/dev-2/btree)" -gt 0
t on_superblocks_name_it sh -c "bucketfs show-super --json /dev/vda | grep -q '\"nr_members\": 3'"
expect_fail on_refuse_member_after "Invalid argument" sysfs_write $d/device_add /dev/vdc
da_keys_kept on

# From the moment the file appears: device_add written again and again while the mount
# starts (before its bucket tables are read it refuses with EAGAIN; after one add succeeds,
# the device is a member and further writes are refused): the mount completes with vdc as
# member 2, every key there.
da_scenario early
uuid=$(bucketfs show-super --json /dev/vda | sed -n 's/^  "uuid": "\([^"]*\)".*/\1/p')
f=/sys/fs/bucketfs/$uuid/device_add
rm -f /tmp/da-mounted /tmp/da-early.log
(
	until [ -e $f ] || [ -e /tmp/da-mounted ]; do :; done
	until [ -e /tmp/da-mounted ]; do sh -c "echo /dev/vdc > $f" 2>>/tmp/da-early.log; done
) &
h=$!
# The mount at the lowest priority, so the writer runs in its window.
timeout -s KILL 60 sh -c 'renice -n 19 -p $$ >/dev/null && exec mount -t bucketfs /dev/vda:/dev/vdb /mnt'
st=$?
touch /tmp/da-mounted
wait $h
t early_mount_completes test $st = 0
t early_added_once test "$(dmesg | grep -c "$uuid: added /dev/vdc")" = 1
t early_only_expected_refusals sh -c "! grep -v -e 'Resource temporarily unavailable' -e 'Invalid argument' /tmp/da-early.log"
echo "early device_add: $(grep -c 'temporarily' /tmp/da-early.log) EAGAIN, $(grep -c 'Invalid' /tmp/da-early.log) EINVAL"
t early_three_members test "$(cat $(fs_dir)/dev-2/device)" = vdc
t early_btree_has_every_key test "$(btree_figures)" = "$expect"
umount /mnt

# Sixteen members at most: loop devices fill the table of the mounted filesystem; the next
# add is refused with ENOSPC.
t full_mount mount -t bucketfs /dev/vda:/dev/vdb:/dev/vdc /mnt
d=$(fs_dir)
loops=""
added=0
for i in $(seq 3 15); do
	dd if=/dev/zero of=/tmp/da-loop$i bs=1M count=1 2>/dev/null
	l=$(losetup -f) && losetup $l /tmp/da-loop$i || break
	loops="$loops $l"
	sysfs_write $d/device_add $l || break
	added=$((added + 1))
done
t full_thirteen_added test $added = 13
t full_dev15_dir test -d $d/dev-15
dd if=/dev/zero of=/tmp/da-loop16 bs=1M count=1 2>/dev/null
l=$(losetup -f) && losetup $l /tmp/da-loop16
loops="$loops $l"
expect_fail full_refused_enospc "No space left" sysfs_write $d/device_add $l
t full_refused_logged dmesg_has "device_add $l: the member table has 16 entries already \(removed members keep theirs\) \(-28\)"
t full_still_mounted test "$(btree_figures)" = "$expect"
umount /mnt
t full_no_sysfs_left test -z "$(fs_dir)"
for l in $loops; do losetup -d $l; done
rm -f /tmp/da-*
t devadd_rmmod rmmod bucketfs

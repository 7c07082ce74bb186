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
t devadd_rmmod rmmod bucketfs

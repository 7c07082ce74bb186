# SPDX-License-Identifier: GPL-2.0
# Read-only mounts write nothing (every member image's checksum, read with O_DIRECT, is the
# same before and after): a journal replayed in memory only, a parked in-memory replay
# released by an option write, discard on with need_discard buckets; writes through the
# mount fail with EROFS; norecovery mounts the wedged seed at once and a later read-write
# mount still replays every key; remount ro/rw; degraded mounts with a member left out.
# Disks: vda, vdb, vdc.

insmod /modules/bucketfs.ko

# sums DEV...: an md5 of each device's contents, read past the page cache (O_DIRECT); the
# devices are hashed in parallel.
sums() {
	s_i=0
	for s_dev in "$@"; do
		s_i=$((s_i + 1))
		(dd if=$s_dev bs=4M iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1 >/tmp/ro-sum.$s_i) &
	done
	wait
	s_j=0
	while [ $s_j -lt $s_i ]; do
		s_j=$((s_j + 1))
		printf '%s ' "$(cat /tmp/ro-sum.$s_j)"
	done
}

# scenario SPEC DEV...: write a crash state; sets $expect to "keys N digest D".
ro_scenario() {
	ro_spec=$1
	shift
	expect=$(bucketfs scenario /root/scenarios/$ro_spec "$@" | sed -n 's/^scenario: expect //p')
}

# member_uuid DEV: the uuid of the member DEV holds.
member_uuid() {
	bucketfs show-super --json $1 | tr -d ' \n' |
		sed "s/.*\"member_index\":\([0-9]*\).*/\1/" >/tmp/ro-idx
	bucketfs show-super --json $1 | tr -d ' \n' |
		sed "s/.*\"index\":$(cat /tmp/ro-idx),[^}]*\"uuid\":\"\([^\"]*\)\".*/\1/"
}

mounted_ro() { grep -q " /mnt bucketfs ro[, ]" /proc/mounts; }
mounted_rw() { grep -q " /mnt bucketfs rw[, ]" /proc/mounts; }

# 1. A journal to replay, discard on, settled need_discard buckets: ro replays in memory.
ro_scenario seed-small-discard.toml /dev/vda /dev/vdb
before=$(sums /dev/vda /dev/vdb)
dmesg -c >/dev/null
t ro_replay_mount timeout -s KILL 60 mount -t bucketfs -o ro,metadata_replicas=1 /dev/vda:/dev/vdb /mnt
d=$(fs_dir)
t ro_replay_in_memory_has_every_key test "$(btree_figures)" = "$expect"
t ro_replay_mode_in_memory grep -q "^mode in-memory" $d/internal/replay
t ro_replay_logged dmesg_has "read-only: replayed 3000 key\(s\) in memory only, nothing written"
t ro_mounted_ro mounted_ro
expect_fail ro_mkdir_erofs "Read-only file system" mkdir /mnt/x
expect_fail ro_touch_erofs "Read-only file system" touch /mnt
sleep 1
t ro_no_discard_commands test "$(cat $d/dev-0/discard_commands) $(cat $d/dev-1/discard_commands)" = "0 0"
t ro_need_discard_kept test "$(cat $d/dev-0/need_discard)" = 8000
# Option writes: in force for this mount only, nothing written.
seq=$(cat $d/internal/superblock_seq)
t ro_option_write_in_memory sysfs_write $d/options/allocator_stuck_timeout 5
t ro_option_in_force test "$(cat $d/options/allocator_stuck_timeout)" = 5
t ro_option_not_written test "$(cat $d/internal/superblock_seq)" = "$seq"
t ro_option_logged dmesg_has "read-only mount: the option change is in force for this mount only, not written"
t ro_remount_option_in_memory mount -o remount,allocator_stuck_timeout=6 /mnt
t ro_remount_option_in_force test "$(cat $d/options/allocator_stuck_timeout) $(cat $d/internal/superblock_seq)" = "6 $seq"
t ro_remount_option_stays_ro mounted_ro
expect_fail ro_dev_discard_erofs "Read-only file system" sysfs_write $d/dev-0/discard 0
t ro_dev_discard_logged dmesg_has "dev-0/discard: read-only mount, the member table is not written \(-30\)"
expect_fail ro_trigger_discards_erofs "Read-only file system" sysfs_write $d/internal/trigger_discards 1
t ro_trigger_discards_logged dmesg_has "trigger_discards: read-only mount, no discards \(-30\)"
# The replayed btree is not kept past recovery: this mount cannot go read-write.
expect_fail ro_replayed_remount_rw_refused "Read-only file system" mount -o remount,rw /mnt
t ro_replayed_remount_rw_logged dmesg_has "remount,rw refused: the journal was replayed in memory only"
t ro_replayed_still_ro mounted_ro
t ro_replay_umount umount /mnt
t ro_replay_wrote_nothing test "$(sums /dev/vda /dev/vdb)" = "$before"

# 2. The same state without the rescue option: discard would free the starved device, but a
# ro mount issues none, so the in-memory replay parks; an option write releases it.
mount -t bucketfs -o ro /dev/vda:/dev/vdb /mnt 2>/tmp/ro-mount.err &
pid=$!
(sleep 60; kill -9 $pid 2>/dev/null) &
t ro_parked_replay_parks wait_for 20 parked 1
d=$(fs_dir)
t ro_parked_no_discards test "$(cat $d/dev-0/discard_commands)" = 0
sysfs_write $d/options/metadata_replicas 1
wait $pid
t ro_parked_released_by_option_write test $? = 0
t ro_parked_has_every_key test "$(btree_figures)" = "$expect"
t ro_parked_umount umount /mnt
t ro_parked_wrote_nothing test "$(sums /dev/vda /dev/vdb)" = "$before"

# 3. norecovery: the wedged seed mounts at once, never parks, shows the journal left.
ro_scenario seed-small.toml /dev/vda /dev/vdb
before=$(sums /dev/vda /dev/vdb)
dmesg -c >/dev/null
start=$(now_ms)
t norecovery_mount timeout -s KILL 30 mount -t bucketfs -o ro,norecovery /dev/vda:/dev/vdb /mnt
took=$(( $(now_ms) - start ))
echo "norecovery mount took ${took} ms"
t norecovery_mount_quick test $took -lt 5000
d=$(fs_dir)
t norecovery_never_parked grep -q "^parks: 0" $d/internal/alloc_debug
t norecovery_replay_shows_journal grep -q "^replayed 0 of 3000 key(s)" $d/internal/replay
t norecovery_mode grep -q "^mode not-replayed (norecovery)" $d/internal/replay
t norecovery_entries_shown grep -q "^journal_entries [1-9][0-9]* seq 1\.\.=[1-9]" $d/internal/replay
t norecovery_btree_as_committed grep -q "^keys 0$" $d/internal/btree_stats
t norecovery_logged dmesg_has "norecovery: the journal is not replayed: 3000 key\(s\) in [0-9]+ entries"
t norecovery_mounted_ro mounted_ro
expect_fail norecovery_mkdir_erofs "Read-only file system" mkdir /mnt/x
expect_fail norecovery_remount_rw_refused "Read-only file system" mount -o remount,rw /mnt
t norecovery_remount_rw_logged dmesg_has "remount,rw refused: the journal was not replayed \(norecovery\)"
expect_fail norecovery_remount_flag_refused "Invalid argument" mount -o remount,norecovery /mnt
t norecovery_remount_flag_logged dmesg_has "norecovery: cannot be changed by a remount"
t norecovery_umount umount /mnt
t norecovery_wrote_nothing test "$(sums /dev/vda /dev/vdb)" = "$before"
# Refused combinations: EINVAL and a dmesg line, nothing left behind.
expect_fail norecovery_without_ro "Invalid argument" mount -t bucketfs -o norecovery /dev/vda:/dev/vdb /mnt
t norecovery_without_ro_logged dmesg_has "norecovery: requires ro"
expect_fail norecovery_with_value "Invalid argument" mount -t bucketfs -o ro,norecovery=1 /dev/vda:/dev/vdb /mnt
t norecovery_with_value_logged dmesg_has "norecovery: takes no value"
expect_fail degraded_without_ro "Invalid argument" mount -t bucketfs -o degraded /dev/vda:/dev/vdb /mnt
t degraded_without_ro_logged dmesg_has "degraded: requires ro"
t refusals_left_no_sysfs test -z "$(fs_dir)"
# A read-only block device (blockdev --setro): a read-write mount is refused by the block
# layer (mount -w: without it mount(8) retries read-only by itself, as util-linux does);
# ro,norecovery opens it for reading only and inspects it; remount,rw is refused.
t setro_devices blockdev --setro /dev/vda
t setro_devices_b blockdev --setro /dev/vdb
expect_fail setro_rw_mount_refused "Permission denied" mount -w -t bucketfs /dev/vda:/dev/vdb /mnt
t setro_rw_mount_logged dmesg_has "/dev/vda: cannot open the device for writing \(a read-only block device\? mount -o ro\) \(-13\)"
t setro_ro_mount timeout -s KILL 30 mount -t bucketfs -o ro,norecovery /dev/vda:/dev/vdb /mnt
t setro_ro_mount_shows_journal grep -q "^journal_entries [1-9]" $(fs_dir)/internal/replay
expect_fail setro_remount_rw_refused "Read-only file system" mount -o remount,rw /mnt
t setro_remount_rw_logged dmesg_has "remount,rw refused: a member's block device is read-only"
t setro_umount umount /mnt
t setro_ro_replay_in_memory timeout -s KILL 60 mount -t bucketfs -o ro,metadata_replicas=1 /dev/vda:/dev/vdb /mnt
t setro_ro_replay_every_key test "$(btree_figures)" = "$expect"
t setro_ro_replay_umount umount /mnt
t setro_devices_back blockdev --setrw /dev/vda
t setro_devices_back_b blockdev --setrw /dev/vdb
t setro_wrote_nothing test "$(sums /dev/vda /dev/vdb)" = "$before"
# A later read-write mount with the rescue option replays every key (and writes: the
# checksums above can tell).
t rescue_after_norecovery timeout -s KILL 60 mount -t bucketfs -o metadata_replicas=1 /dev/vda:/dev/vdb /mnt
t rescue_after_norecovery_every_key test "$(btree_figures)" = "$expect"
t rescue_after_norecovery_mode grep -q "^mode committed" $(fs_dir)/internal/replay
umount /mnt
t rw_mount_changes_the_checksums test "$(sums /dev/vda /dev/vdb)" != "$before"
t rescue_after_norecovery_persisted sh -c "bucketfs dump-btree /dev/vda /dev/vdb | grep -q '$expect'"

# 4. Discard on, settled need_discard, clean journal: ro discards nothing; remount rw starts
# the worker; remount ro stops it and option writes stay in memory.
ro_scenario ro-discard.toml /dev/vda /dev/vdb
before=$(sums /dev/vda /dev/vdb)
t ro_discard_mount mount -t bucketfs -o ro /dev/vda:/dev/vdb /mnt
d=$(fs_dir)
sleep 1
t ro_discard_none test "$(cat $d/dev-0/discard_commands) $(cat $d/dev-0/need_discard) $(cat $d/dev-1/need_discard)" = "0 500 500"
t ro_discard_umount umount /mnt
t ro_discard_wrote_nothing test "$(sums /dev/vda /dev/vdb)" = "$before"
t ro_discard_mount_again mount -t bucketfs -o ro /dev/vda:/dev/vdb /mnt
d=$(fs_dir)
dmesg -c >/dev/null
t remount_rw mount -o remount,rw /mnt
t remount_rw_is_rw mounted_rw
t remount_rw_logged dmesg_has "remount: read-write"
t remount_rw_starts_discards wait_for 20 sh -c "test \$(cat $d/dev-0/need_discard) = 0 && test \$(cat $d/dev-1/need_discard) = 0"
t remount_rw_discarded test "$(cat $d/dev-0/discard_commands)" -gt 0
t remount_rw_mkdir_not_erofs sh -c "! mkdir /mnt/x 2>&1 | grep -q 'Read-only'"
seq=$(cat $d/internal/superblock_seq)
t remount_rw_option_persisted sh -c "echo 7 > $d/options/allocator_stuck_timeout && test \$(cat $d/internal/superblock_seq) -gt $seq"
t remount_ro mount -o remount,ro /mnt
t remount_ro_is_ro mounted_ro
t remount_ro_logged dmesg_has "remount: read-only"
expect_fail remount_ro_mkdir_erofs "Read-only file system" mkdir /mnt/made_after_remount_ro
during=$(sums /dev/vda /dev/vdb)
seq=$(cat $d/internal/superblock_seq)
t remount_ro_option_in_memory sysfs_write $d/options/allocator_stuck_timeout 8
t remount_ro_option_not_written test "$(cat $d/internal/superblock_seq) $(cat $d/options/allocator_stuck_timeout)" = "$seq 8"
expect_fail remount_ro_trigger_discards_erofs "Read-only file system" sysfs_write $d/internal/trigger_discards 1
t remount_ro_umount umount /mnt
t remount_ro_and_umount_wrote_nothing test "$(sums /dev/vda /dev/vdb)" = "$during"
t remount_ro_option_was_not_persisted sh -c 'bucketfs show-super --json /dev/vda | grep -q "\"allocator_stuck_timeout\": 7"'

# 5. degraded: three members, two metadata replicas; any one may be left out.
ro_scenario ro-three.toml /dev/vda /dev/vdb /dev/vdc
uuid_c=$(member_uuid /dev/vdc)
dmesg -c >/dev/null
expect_fail degraded_missing_refused "No such device or address" mount -t bucketfs /dev/vda:/dev/vdb /mnt
t degraded_missing_names_member dmesg_has "member 2 is missing from the source \(uuid $uuid_c\); mount -o ro,degraded can do without it"
# A journal to replay: in memory, on the two members present.
before=$(sums /dev/vda /dev/vdb)
t degraded_replay_mount timeout -s KILL 60 mount -t bucketfs -o ro,degraded /dev/vda:/dev/vdb /mnt
t degraded_replay_every_key test "$(btree_figures)" = "$expect"
t degraded_logged dmesg_has "member 2 is missing from the source \(uuid $uuid_c\): mounting degraded, read-only"
t degraded_missing_dev_named test "$(cat $(fs_dir)/dev-2/device)" = missing
expect_fail degraded_missing_not_writable "No such device or address" sysfs_write $(fs_dir)/dev-2/writable 1
t degraded_missing_not_writable_logged dmesg_has "dev-2/writable: the member is missing from this mount \(-6\)"
t degraded_missing_still_not_writable test "$(cat $(fs_dir)/dev-2/writable)" = 0
umount /mnt
t degraded_replay_wrote_nothing test "$(sums /dev/vda /dev/vdb)" = "$before"
# Two members left out: the replay in memory caps metadata_replicas to the one present (the
# empty root leaf has a copy on each of vda and vdb).
t degraded_one_member_replay_mount timeout -s KILL 60 mount -t bucketfs -o ro,degraded /dev/vda /mnt
t degraded_one_member_replicas_capped dmesg_has "degraded: metadata_replicas capped to the 1 member\(s\) present for this mount"
t degraded_one_member_every_key test "$(btree_figures)" = "$expect"
t degraded_one_member_in_force test "$(cat $(fs_dir)/options/metadata_replicas)" = 1
umount /mnt
t degraded_one_member_wrote_nothing test "$(sums /dev/vda /dev/vdb)" = "$before"
# Replayed and committed with all three; then each member left out in turn.
t degraded_full_mount mount -t bucketfs /dev/vda:/dev/vdb:/dev/vdc /mnt
umount /mnt
before=$(sums /dev/vda /dev/vdb /dev/vdc)
for left in a b c; do
	case $left in
	a) src=/dev/vdb:/dev/vdc ;;
	b) src=/dev/vda:/dev/vdc ;;
	c) src=/dev/vda:/dev/vdb ;;
	esac
	t degraded_without_vd${left}_mounts mount -t bucketfs -o ro,degraded $src /mnt
	t degraded_without_vd${left}_every_key test "$(btree_figures)" = "$expect"
	t degraded_without_vd${left}_ro mounted_ro
	expect_fail degraded_without_vd${left}_mkdir_erofs "Read-only file system" mkdir /mnt/x
	umount /mnt
done
t degraded_mounts_wrote_nothing test "$(sums /dev/vda /dev/vdb /dev/vdc)" = "$before"
t degraded_mount mount -t bucketfs -o ro,degraded /dev/vda:/dev/vdb /mnt
dmesg -c >/dev/null
expect_fail degraded_remount_rw_refused "Read-only file system" mount -o remount,rw /mnt
t degraded_remount_rw_logged dmesg_has "remount,rw refused: a member is missing \(degraded\)"
umount /mnt
t degraded_full_mount_after mount -t bucketfs /dev/vda:/dev/vdb:/dev/vdc /mnt
t degraded_full_mount_every_key test "$(btree_figures)" = "$expect"
umount /mnt
# One replica: the root leaf's only copy is on member 0; without it, refused with the node.
bucketfs format --bucket-size 4k --metadata-replicas 1 /dev/vda /dev/vdb /dev/vdc >/dev/null
uuid_a=$(member_uuid /dev/vda)
dmesg -c >/dev/null
expect_fail degraded_no_copy_refused "No such device or address" mount -t bucketfs -o ro,degraded /dev/vdb:/dev/vdc /mnt
t degraded_no_copy_names_node dmesg_has "level 0 btree node \(seq at most [0-9]+\) has all its copies on missing member\(s\): member 0 bucket [0-9]+"
t degraded_no_copy_names_member dmesg_has "the btree needs missing member 0 \(uuid $uuid_a\)"
expect_fail degraded_one_replica_hint "No such device or address" mount -t bucketfs /dev/vdb:/dev/vdc /mnt
t degraded_one_replica_hint_logged dmesg_has "member 0 is missing from the source \(uuid $uuid_a\); with fewer metadata_replicas than members missing"
t degraded_refusals_left_no_sysfs test -z "$(fs_dir)"
t degraded_member_not_needed sh -c 'mount -t bucketfs -o ro,degraded /dev/vda:/dev/vdb /mnt && umount /mnt'
t ro_rmmod rmmod bucketfs

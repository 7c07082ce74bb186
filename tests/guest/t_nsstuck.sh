# SPDX-License-Identifier: GPL-2.0
# The runtime stuck case: a mkdir on a mounted filesystem whose second member cannot give a
# metadata bucket (metadata_replicas=2) parks in the allocator (killable, outside the tree
# lock), shows in internal/alloc_debug, and each way out releases it, one per mount:
# (a) a write to options/metadata_replicas, (b) mount -o remount,metadata_replicas=1, (c) the
# abort knob (the mkdir fails with ECANCELED, nothing created), (d) SIGKILL of the mkdir
# (nothing created), (e) a member added while it is parked (device_add: new empty buckets).
# After each: unmount, `bucketfs fsck` exit 0, mount, the tree is what the way out implies.
# Also: a member starved by need_discard buckets does not park a mkdir at all, discard off:
# the discard worker frees them at mount, without I/O.
#
# How the second member is starved: its allocatable buckets are set to `data` offline
# (`bucketfs debug set-bucket-state`), all but 3, which the normal watermark holds back
# (held_back_normal 4 with 1 MiB buckets on 64 MiB), so no metadata request of the normal
# watermark is served on it; the first member has free buckets, so it is not ENOSPC.
# `need_discard` cannot starve it: the discard worker frees such buckets at mount (without a
# discard when discard is off), see the last case. Disks: vda, vdb (members), vdc (added).

insmod /modules/bucketfs.ko 2>/dev/null
umount /mnt 2>/dev/null
NSS_DEVS=/dev/vda:/dev/vdb

# The starved state is made once (formatting and 50 bucket writes take seconds on TCG) and
# its first 11 MiB (superblocks, tables, journals, the root leaf in bucket 10) kept, then put
# back before each case.
nss_make() {
	bucketfs format --bucket-size 1M --metadata-replicas 2 --no-discard /dev/vda /dev/vdb \
		>/dev/null || return 1
	nss_b=14
	while [ $nss_b -lt 64 ]; do
		bucketfs debug set-bucket-state --bucket $nss_b --state data /dev/vdb >/dev/null ||
			return 1
		nss_b=$((nss_b + 1))
	done
	dd if=/dev/vda of=/tmp/nss-a.img bs=1M count=11 2>/dev/null &&
		dd if=/dev/vdb of=/tmp/nss-b.img bs=1M count=11 2>/dev/null
}
nss_restore() {
	dd if=/tmp/nss-a.img of=/dev/vda bs=1M conv=notrunc,fsync 2>/dev/null &&
		dd if=/tmp/nss-b.img of=/dev/vdb bs=1M conv=notrunc,fsync 2>/dev/null
}

# nss_listing: the names under /mnt with their type and link count, sorted.
nss_listing() { (cd /mnt && find . -exec stat -c '%F %h %n' {} + | sort); }

# nss_park CASE NAME: restore the state, mount, start `mkdir /mnt/NAME` in the background and
# check that it parks: sets $nss_pid.
nss_park() {
	nss_restore
	t "$1_mount" mount -t bucketfs $NSS_DEVS /mnt
	nss_d=$(fs_dir)
	t "$1_second_member_starved" test "$(cat $nss_d/dev-1/free)" -le 3
	# The first change of a mount copies the root leaf: 1 node x 2 replicas, parked.
	mkdir /mnt/$2 2>/tmp/nss-mkdir.err &
	nss_pid=$!
	# A watchdog, so a mkdir that never returns fails the test instead of hanging the run.
	(sleep 90; kill -9 $nss_pid 2>/dev/null) &
	nss_dog=$!
	t "$1_mkdir_parks" wait_for 20 parked 1
	t "$1_alloc_debug_names_request" \
		grep -q "1 node(s) x 2 replica(s), watermark normal" $nss_d/internal/alloc_debug
	nss_state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' /proc/$nss_pid/status 2>/dev/null)
	t "$1_mkdir_sleeps_in_the_kernel" sh -c "test '$nss_state' = D || test '$nss_state' = S"
	t "$1_mkdir_not_done" kill -0 $nss_pid
	t "$1_name_not_visible_while_parked" test ! -e /mnt/$2
}

# nss_wait: the mkdir's status, at most 30 s after the way out; sets $nss_rc and $nss_took.
nss_wait() {
	nss_start=$(now_ms)
	wait $nss_pid
	nss_rc=$?
	nss_took=$(( $(now_ms) - nss_start ))
	kill $nss_dog 2>/dev/null
	wait $nss_dog 2>/dev/null
}

# nss_after CASE EXPECTED_LISTING DEVS: unmount, fsck clean, mount, the tree is the one expected.
nss_after() {
	t "$1_nothing_parked_after" parked 0
	nss_before=$(nss_listing)
	t "$1_tree_is_expected" test "$nss_before" = "$2"
	t "$1_umount" umount /mnt
	t "$1_fsck_clean" fsck_clean $(echo $3 | tr : ' ')
	t "$1_mount_again" mount -t bucketfs $3 /mnt
	t "$1_tree_persists" test "$(nss_listing)" = "$2"
	umount /mnt
}

root_only="directory 2 ."
with_p() { printf '%s\n' "directory 3 ." "directory 2 ./$1" | sort; }

t nss_make_starved_state nss_make

# (a) A write to options/metadata_replicas.
nss_park a pa
sysfs_write $nss_d/options/metadata_replicas 1
nss_wait
echo "rescue of a parked mkdir by sysfs write took $nss_took ms"
t a_mkdir_completes test $nss_rc = 0
t a_mkdir_completes_within_5s test $nss_took -lt 5000
nss_after a "$(with_p pa)" $NSS_DEVS

# (b) A remount with metadata_replicas=1.
nss_park b pb
t b_remount_while_parked mount -o remount,metadata_replicas=1 /mnt
nss_wait
t b_mkdir_completes test $nss_rc = 0
t b_replicas_now_1 test "$(cat $nss_d/options/metadata_replicas)" = 1
nss_after b "$(with_p pb)" $NSS_DEVS

# (c) The abort knob: ECANCELED, and nothing created.
nss_park c pc
sysfs_write $nss_d/internal/abort_stuck_allocations 1
nss_wait
t c_mkdir_fails test $nss_rc != 0
t c_mkdir_fails_with_ecanceled grep -q "Operation canceled" /tmp/nss-mkdir.err
t c_nothing_created test ! -e /mnt/pc
t c_lookup_enoent_after_abort sh -c "! stat /mnt/pc 2>/dev/null"
t c_still_two_replicas test "$(cat $nss_d/options/metadata_replicas)" = 2
nss_after c "$root_only" $NSS_DEVS

# (d) SIGKILL of the parked mkdir: it dies, nothing created.
nss_park d pd
kill -9 $nss_pid
nss_wait
t d_mkdir_killed test $nss_rc = 137
t d_killed_within_5s test $nss_took -lt 5000
t d_nothing_created test ! -e /mnt/pd
nss_after d "$root_only" $NSS_DEVS

# (e) New buckets: a member added while the mkdir is parked.
dd if=/dev/zero of=/dev/vdc bs=1M count=1 conv=fsync 2>/dev/null
nss_park e pe
t e_device_add_while_parked sysfs_write $nss_d/device_add /dev/vdc
nss_wait
t e_mkdir_completes test $nss_rc = 0
nss_after e "$(with_p pe)" /dev/vda:/dev/vdb:/dev/vdc

# need_discard does not starve a member: with discard off the worker frees the buckets at
# mount without a discard, so the mkdir does not park.
bucketfs format --bucket-size 1M --metadata-replicas 2 --no-discard /dev/vda /dev/vdb >/dev/null
nss_b=11
while [ $nss_b -lt 64 ]; do
	bucketfs debug set-bucket-state --bucket $nss_b --state need_discard /dev/vdb >/dev/null
	nss_b=$((nss_b + 1))
done
t f_mount mount -t bucketfs $NSS_DEVS /mnt
nss_d=$(fs_dir)
t f_need_discard_freed_at_mount wait_for 10 sh -c "test \$(cat $nss_d/dev-1/need_discard) = 0"
t f_freed_without_discard test "$(cat $nss_d/dev-1/freed_without_discard)" = 53
t f_mkdir_does_not_park timeout -s KILL 20 mkdir /mnt/pf
t f_never_parked grep -q "^parks: 0" $nss_d/internal/alloc_debug
nss_after f "$(with_p pf)" $NSS_DEVS
rm -f /tmp/nss-a.img /tmp/nss-b.img

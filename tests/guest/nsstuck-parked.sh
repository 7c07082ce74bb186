# SPDX-License-Identifier: GPL-2.0
# The runtime stuck case, parked (run by tests/host/nsstuck.sh in a boot of its own, with vdb
# behind QEMU's throttle filter at 1 MiB/s for writes and discards together).
#
# Two members, metadata_replicas=2, discard on, 4 KiB buckets; the second member (vdb) has no
# free bucket, 256 settled need_discard ones and data buckets for the rest; the first has free
# buckets. Before the mount an 8 MiB blkdiscard of vdb's data buckets fills the throttle's
# leaky bucket (QEMU lets one request through at once and makes the next ones wait until the
# bytes have drained), so the discard worker's discard of the backlog, issued at mount, waits
# about 8 s. A mkdir meanwhile needs a node copy on each member
# (the first change of a mount copies the root leaf), cannot have one on vdb, and parks in the
# allocator (killable, outside the tree lock): internal/alloc_debug shows it, the task sleeps.
# Then each way out, one per mount:
#   (a) echo 1 > options/metadata_replicas: the mkdir completes;
#   (b) mount -o remount,metadata_replicas=1: completes;
#   (c) echo 1 > internal/abort_stuck_allocations: mkdir fails with ECANCELED, no directory;
#   (d) kill -9 of the mkdir: it dies, nothing created;
#   (e) the discard: the worker's discard ends, the buckets are free, the mkdir completes by
#       itself (the runtime #1108 way out; with discard off the worker frees need_discard
#       buckets without I/O, at once, so a member cannot stay starved by them).
# After each: unmount, `bucketfs fsck` exit 0, mount, the tree is what the way out implies.
. /root/tests/lib.sh
insmod /modules/bucketfs.ko
NSP_DEVS=/dev/vda:/dev/vdb
cat >/tmp/nsp.toml <<'EOF'
bucket_size = "4k"
metadata_replicas = 2
discard = true
allocator_stuck_timeout = 30
[[device]]
free = 4000
[[device]]
free = 0
need_discard = 256
EOF

# nsp_listing: the names under /mnt with their type and link count, sorted.
nsp_listing() { (cd /mnt && find . -exec stat -c '%F %h %n' {} + | sort); }
root_only="directory 2 ."
with_p() { printf '%s\n' "directory 3 ." "directory 2 ./$1" | sort; }

# nsp_park CASE NAME: write the state, mount, start `mkdir /mnt/NAME` in the background and
# check that it parks: sets $nsp_pid, $nsp_d.
nsp_park() {
	t "$1_scenario" sh -c "bucketfs scenario /tmp/nsp.toml /dev/vda /dev/vdb >/dev/null && sync"
	# 8 MiB of vdb's data buckets (from 40 MiB): the throttle holds vdb's next request ~8 s.
	t "$1_slow_vdb" blkdiscard -o $((40 << 20)) -l $((8 << 20)) /dev/vdb
	t "$1_mount" mount -t bucketfs $NSP_DEVS /mnt
	nsp_d=$(fs_dir)
	mkdir /mnt/$2 2>/tmp/nsp-mkdir.err &
	nsp_pid=$!
	# A watchdog, so a mkdir that never returns fails the test instead of hanging the run.
	(sleep 90; kill -9 $nsp_pid 2>/dev/null) &
	nsp_dog=$!
	t "$1_mkdir_parks" wait_for 5 parked 1
	t "$1_alloc_debug_names_request" \
		grep -q "1 node(s) x 2 replica(s), watermark btree" $nsp_d/internal/alloc_debug
	nsp_state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' /proc/$nsp_pid/status 2>/dev/null)
	echo "nsstuck: $1: the parked mkdir's state: $nsp_state; vdb need_discard $(cat $nsp_d/dev-1/need_discard), free $(cat $nsp_d/dev-1/free)"
	t "$1_mkdir_sleeps_in_the_kernel" sh -c "test '$nsp_state' = D || test '$nsp_state' = S"
	t "$1_mkdir_not_done" kill -0 $nsp_pid
	t "$1_name_not_visible_while_parked" test ! -e /mnt/$2
	# The parked request holds no filesystem lock: a stat and a syncfs (which takes the tree
	# lock to write the journal) return. (A readdir of /mnt would wait: the VFS holds the
	# parent directory's lock for the whole mkdir, on any filesystem.)
	t "$1_stat_while_parked" timeout -s KILL 5 stat /mnt
	t "$1_syncfs_while_parked" timeout -s KILL 5 sync -f /mnt
}

# nsp_wait: the mkdir's status; sets $nsp_rc and $nsp_took.
nsp_wait() {
	nsp_start=$(now_ms)
	wait $nsp_pid
	nsp_rc=$?
	nsp_took=$(( $(now_ms) - nsp_start ))
	kill $nsp_dog 2>/dev/null
	wait $nsp_dog 2>/dev/null
}

# nsp_after CASE EXPECTED_LISTING: unmount, fsck clean, mount, the tree is the one expected.
nsp_after() {
	t "$1_nothing_parked_after" parked 0
	t "$1_tree_is_expected" test "$(nsp_listing)" = "$2"
	t "$1_umount" umount /mnt
	t "$1_fsck_clean" fsck_clean /dev/vda /dev/vdb
	t "$1_mount_again" mount -t bucketfs $NSP_DEVS /mnt
	t "$1_tree_persists" test "$(nsp_listing)" = "$2"
	umount /mnt
}

# (a) A write to options/metadata_replicas.
nsp_park a pa
sysfs_write $nsp_d/options/metadata_replicas 1
nsp_wait
echo "nsstuck: rescue of a parked mkdir by a sysfs write took $nsp_took ms"
t a_mkdir_completes test $nsp_rc = 0
t a_mkdir_completes_within_2s test $nsp_took -lt 2000
nsp_after a "$(with_p pa)"

# (b) A remount with metadata_replicas=1.
nsp_park b pb
t b_remount_while_parked mount -o remount,metadata_replicas=1 /mnt
nsp_wait
t b_mkdir_completes test $nsp_rc = 0
t b_mkdir_completes_within_2s test $nsp_took -lt 2000
t b_replicas_now_1 test "$(cat $nsp_d/options/metadata_replicas)" = 1
nsp_after b "$(with_p pb)"

# (c) The abort knob: ECANCELED, and nothing created.
nsp_park c pc
sysfs_write $nsp_d/internal/abort_stuck_allocations 1
nsp_wait
t c_mkdir_fails test $nsp_rc != 0
t c_mkdir_fails_with_ecanceled grep -q "Operation canceled" /tmp/nsp-mkdir.err
t c_nothing_created test ! -e /mnt/pc
t c_still_two_replicas test "$(cat $nsp_d/options/metadata_replicas)" = 2
nsp_after c "$root_only"

# (d) SIGKILL of the parked mkdir: it dies, nothing created.
nsp_park d pd
kill -9 $nsp_pid
nsp_wait
t d_mkdir_killed test $nsp_rc = 137
t d_killed_within_2s test $nsp_took -lt 2000
t d_nothing_created test ! -e /mnt/pd
nsp_after d "$root_only"

# (e) The discard worker: the mkdir completes by itself once vdb's discard is done.
nsp_park e pe
nsp_wait
echo "nsstuck: the discard released the parked mkdir after $nsp_took ms more"
t e_mkdir_completes_after_the_discard test $nsp_rc = 0
t e_buckets_were_discarded test "$(cat $nsp_d/dev-1/discard_buckets)" -ge 256
nsp_after e "$(with_p pe)"
rmmod bucketfs
guest_exit

# SPDX-License-Identifier: GPL-2.0
# The runtime stuck case with file data, parked (run by tests/host/datastuck.sh in a boot of its
# own, with vdb behind QEMU's throttle filter at 1 MiB/s for writes and discards together).
#
# Two members, metadata_replicas=2, data_replicas=1, discard on, 4 KiB buckets. vda is large
# with free buckets; vdb is small (400 buckets: 332 allocatable) with 3 free buckets (its btree
# reserve is 2) and every other one need_discard. Before the mount an 8 MiB blkdiscard of vdb
# (past the filesystem's end) fills the throttle's leaky bucket, so the discard worker's discard
# of vdb's backlog, issued at mount, waits about 8 s. Then:
# - creating /mnt/f copies the root leaf: vdb's third free bucket; vdb now holds only its
#   reserve free, which the namespace's btree watermark leaves alone;
# - dd writes 200 blocks of 4 KiB, one write() each: each allocates one data block (an
#   unwritten extent) on vda (vdb's free buckets are below the data watermark, so data never
#   asks vdb) and inserts its extent key in the leaf; when the leaf is full, the key's
#   transaction needs a split (2 nodes x 2 replicas), cannot have vdb's copies, and parks in
#   the allocator (killable, outside the tree lock): internal/alloc_debug shows it, the writer
#   sleeps in the kernel, the blocks written before it read back, and a readdir returns.
# Then each way out, one per mount:
#   (a) echo 1 > options/metadata_replicas: the write completes, all 200 blocks;
#   (b) mount -o remount,metadata_replicas=1: the same;
#   (c) echo 1 > internal/abort_stuck_allocations: the write fails with ECANCELED; the file
#       is the blocks written before the park, nothing of the failed one (size, i_blocks);
#   (d) kill -9 of the writer: it dies; the file is the blocks written before;
#   (e) the discard: the worker's discard ends, vdb's buckets are free, the write completes by
#       itself.
# After each: the file's bytes equal the source's (as long as the file), unmount, `bucketfs
# fsck` exit 0, mount, the same bytes and size read from disk.
. /root/tests/lib.sh
insmod /modules/bucketfs.ko
DSP_DEVS=/dev/vda:/dev/vdb
# Blocks dd writes (the leaf fills after about 80 extent keys).
DSP_BLOCKS=200
cat >/tmp/dsp.toml <<'EOF'
bucket_size = "4k"
metadata_replicas = 2
data_replicas = 1
discard = true
allocator_stuck_timeout = 30
[[device]]
free = 4000
[[device]]
buckets = 400
free = 3
need_discard = 328
EOF
head -c $((DSP_BLOCKS * 4096)) /dev/urandom >/tmp/dsp-src

# dsp_intact CASE WHEN SIZE: /mnt/f is SIZE bytes, equal to the source's first SIZE bytes.
dsp_intact() {
	t "$1_$2_size_is_$3" test "$(stat -c %s /mnt/f)" = "$3"
	t "$1_$2_bytes_equal_the_source" cmp -n "$3" /mnt/f /tmp/dsp-src
}

# dsp_park CASE: write the state, mount, create /mnt/f, start dd in the background and check
# that it parks on a split: sets $dsp_pid, $dsp_d, $dsp_before (bytes written before the park).
dsp_park() {
	t "$1_scenario" sh -c "bucketfs scenario /tmp/dsp.toml /dev/vda /dev/vdb >/dev/null && sync"
	# 8 MiB of vdb past the filesystem: the throttle holds vdb's next request ~8 s.
	t "$1_slow_vdb" blkdiscard -o $((40 << 20)) -l $((8 << 20)) /dev/vdb
	t "$1_mount" mount -t bucketfs $DSP_DEVS /mnt
	dsp_d=$(fs_dir)
	t "$1_create" touch /mnt/f
	t "$1_vdb_keeps_only_its_reserve" test "$(cat $dsp_d/dev-1/free)" = 2
	dd if=/tmp/dsp-src of=/mnt/f bs=4096 count=$DSP_BLOCKS 2>/tmp/dsp-dd.err &
	dsp_pid=$!
	# A watchdog, so a write that never returns fails the test instead of hanging the run.
	(sleep 90; kill -9 $dsp_pid 2>/dev/null) &
	dsp_dog=$!
	t "$1_write_parks" wait_for 5 parked 1
	# A split: two new nodes (a copy of a node would be one), two copies each.
	t "$1_alloc_debug_names_a_split" \
		grep -q "request [0-9]*: 2 node(s) x 2 replica(s), watermark btree" $dsp_d/internal/alloc_debug
	dsp_state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' /proc/$dsp_pid/status 2>/dev/null)
	dsp_before=$(stat -c %s /mnt/f)
	echo "datastuck: $1: the parked writer's state: $dsp_state; $dsp_before bytes written before the park; vdb free $(cat $dsp_d/dev-1/free), need_discard $(cat $dsp_d/dev-1/need_discard)"
	t "$1_writer_sleeps_in_the_kernel" sh -c "test '$dsp_state' = D || test '$dsp_state' = S"
	t "$1_writer_not_done" kill -0 $dsp_pid
	# Some blocks went in before the leaf was full, not all of them.
	t "$1_parked_part_way" sh -c "test $dsp_before -gt 0 && test $dsp_before -lt $((DSP_BLOCKS * 4096)) && test $((dsp_before % 4096)) = 0"
	# The parked request holds no filesystem lock: the blocks written read back, a stat and a
	# readdir (which reads the tree under its lock) return. (Not a syncfs: its journal write
	# to vdb waits behind the throttled discard, as any write to vdb does here.)
	t "$1_read_while_parked" timeout -s KILL 5 cmp -n $dsp_before /mnt/f /tmp/dsp-src
	t "$1_stat_while_parked" timeout -s KILL 5 stat /mnt/f
	t "$1_readdir_while_parked" timeout -s KILL 5 ls -l /mnt
	t "$1_still_parked" parked 1
}

# dsp_wait: the writer's status; sets $dsp_rc and $dsp_took.
dsp_wait() {
	dsp_start=$(now_ms)
	wait $dsp_pid
	dsp_rc=$?
	dsp_took=$(( $(now_ms) - dsp_start ))
	kill $dsp_dog 2>/dev/null
	wait $dsp_dog 2>/dev/null
}

# dsp_after CASE SIZE: nothing parked, the file is SIZE bytes of the source, before and after
# an unmount, a clean fsck and a mount; i_blocks covers exactly those blocks.
dsp_after() {
	t "$1_nothing_parked_after" parked 0
	dsp_intact "$1" after "$2"
	t "$1_umount" umount /mnt
	t "$1_fsck_clean" fsck_clean /dev/vda /dev/vdb
	t "$1_mount_again" mount -t bucketfs $DSP_DEVS /mnt
	dsp_intact "$1" on_disk "$2"
	t "$1_blocks_are_the_size" test "$(stat -c %b /mnt/f)" = $(($2 / 512))
	umount /mnt
}

# (a) A write to options/metadata_replicas.
dsp_park a
sysfs_write $dsp_d/options/metadata_replicas 1
dsp_wait
echo "datastuck: rescue of a parked file write by a sysfs write took $dsp_took ms"
t a_write_completes test $dsp_rc = 0
t a_write_completes_within_2s test $dsp_took -lt 2000
dsp_after a $((DSP_BLOCKS * 4096))

# (b) A remount with metadata_replicas=1.
dsp_park b
t b_remount_while_parked mount -o remount,metadata_replicas=1 /mnt
dsp_wait
t b_write_completes test $dsp_rc = 0
t b_write_completes_within_2s test $dsp_took -lt 2000
t b_replicas_now_1 test "$(cat $dsp_d/options/metadata_replicas)" = 1
dsp_after b $((DSP_BLOCKS * 4096))

# (c) The abort knob: ECANCELED, and nothing of the parked write.
dsp_park c
sysfs_write $dsp_d/internal/abort_stuck_allocations 1
dsp_wait
t c_write_fails test $dsp_rc != 0
t c_write_fails_with_ecanceled grep -q "Operation canceled" /tmp/dsp-dd.err
t c_still_two_replicas test "$(cat $dsp_d/options/metadata_replicas)" = 2
dsp_after c $dsp_before

# (d) SIGKILL of the parked writer: it dies; the blocks written before stay.
dsp_park d
kill -9 $dsp_pid
dsp_wait
t d_writer_killed test $dsp_rc = 137
t d_killed_within_2s test $dsp_took -lt 2000
dsp_after d $dsp_before

# (e) The discard worker: the write completes by itself once vdb's discard is done.
dsp_park e
dsp_wait
echo "datastuck: the discard released the parked file write after $dsp_took ms more"
t e_write_completes_after_the_discard test $dsp_rc = 0
t e_buckets_were_discarded test "$(cat $dsp_d/dev-1/discard_buckets)" -ge 328
dsp_after e $((DSP_BLOCKS * 4096))
rm -f /tmp/dsp.toml /tmp/dsp-src /tmp/dsp-dd.err
rmmod bucketfs
guest_exit

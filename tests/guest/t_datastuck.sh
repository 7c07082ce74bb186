# SPDX-License-Identifier: GPL-2.0
# A starved metadata member at runtime, with file data, in make check's main boot (the parked
# ways out need a slow discard, so they run in a boot of their own: tests/host/datastuck.sh
# with tests/guest/datastuck-parked.sh):
# (1) a member with nothing left to give (16 allocatable buckets, every one free at mount, no
#     need_discard) and metadata_replicas=2: dd writes 400 blocks of 4 KiB, one write() each,
#     each an extent key; data blocks go to both members in turn until vdb is down to the data
#     watermark; when the leaf is full, the write's transaction needs a split (2 nodes x 2
#     copies) that vdb cannot give beyond its btree reserve and the headroom left for
#     deletions, and has no need_discard to wait for: the write fails with ENOSPC at once (no
#     park, no hang); the blocks written before read back as they were written; echo 1 >
#     options/metadata_replicas, and the rest of the file is written; the whole file equals
#     its source; unmount, fsck clean, mount, the same bytes from disk.
# (2) a member starved by need_discard buckets, discard off: the discard worker frees them at
#     mount without I/O, so the same write does not park and completes; fsck clean.
# Disks: vda, vdb.

insmod /modules/bucketfs.ko 2>/dev/null
umount /mnt 2>/dev/null
DSS_DEVS=/dev/vda:/dev/vdb
DSS_BLOCKS=400
head -c $((DSS_BLOCKS * 4096)) /dev/urandom >/tmp/dss-src

# (1) Nothing left on vdb: 84 buckets (68 below its first bucket: tables, journal), 15 free
# and the root.
cat >/tmp/dss-full.toml <<'EOF'
bucket_size = "4k"
metadata_replicas = 2
data_replicas = 1
discard = false
[[device]]
free = 4000
[[device]]
buckets = 84
free = 15
EOF
t dfull_scenario sh -c "bucketfs scenario /tmp/dss-full.toml /dev/vda /dev/vdb >/dev/null"
t dfull_mount mount -t bucketfs $DSS_DEVS /mnt
dss_d=$(fs_dir)
t dfull_second_member_is_all_free_and_small \
	test "$(cat $dss_d/dev-1/free) $(cat $dss_d/dev-1/need_discard)" = "15 0"
dss_start=$(now_ms)
expect_fail dfull_write_enospc "No space left on device" \
	timeout -s KILL 60 dd if=/tmp/dss-src of=/mnt/f bs=4096 count=$DSS_BLOCKS
dss_size=$(stat -c %s /mnt/f)
echo "datastuck: ENOSPC after $(( $(now_ms) - dss_start )) ms, $dss_size bytes written before it; vdb free $(cat $dss_d/dev-1/free)"
t dfull_enospc_without_parking grep -q "^parks: 0" $dss_d/internal/alloc_debug
# A leaf's worth of extent keys went in before, and the failed write left nothing half done:
# whole blocks, the source's.
t dfull_written_part_way sh -c "test $dss_size -gt $((40 * 4096)) && test $dss_size -lt $((DSS_BLOCKS * 4096)) && test $((dss_size % 4096)) = 0"
t dfull_blocks_before_intact cmp -n $dss_size /mnt/f /tmp/dss-src
t dfull_replicas_1 sysfs_write $dss_d/options/metadata_replicas 1
dss_done=$((dss_size / 4096))
t dfull_rest_with_one_replica timeout -s KILL 60 dd if=/tmp/dss-src of=/mnt/f bs=4096 \
	skip=$dss_done seek=$dss_done count=$((DSS_BLOCKS - dss_done)) conv=notrunc
t dfull_file_is_the_source cmp /mnt/f /tmp/dss-src
t dfull_umount umount /mnt
t dfull_fsck_clean fsck_clean /dev/vda /dev/vdb
t dfull_mount_again mount -t bucketfs $DSS_DEVS /mnt
t dfull_file_persists cmp /mnt/f /tmp/dss-src
t dfull_blocks_are_the_size test "$(stat -c %b /mnt/f)" = $((DSS_BLOCKS * 8))
umount /mnt

# (2) need_discard on vdb, discard off.
cat >/tmp/dss-nd.toml <<'EOF'
bucket_size = "4k"
metadata_replicas = 2
data_replicas = 1
discard = false
[[device]]
free = 4000
[[device]]
buckets = 400
free = 3
need_discard = 328
EOF
t dnd_scenario sh -c "bucketfs scenario /tmp/dss-nd.toml /dev/vda /dev/vdb >/dev/null"
t dnd_mount mount -t bucketfs $DSS_DEVS /mnt
dss_d=$(fs_dir)
t dnd_need_discard_freed_at_mount wait_for 10 sh -c "test \$(cat $dss_d/dev-1/need_discard) = 0"
t dnd_freed_without_discard test "$(cat $dss_d/dev-1/freed_without_discard)" = 328
t dnd_write_does_not_park timeout -s KILL 60 dd if=/tmp/dss-src of=/mnt/f bs=4096 count=$DSS_BLOCKS
t dnd_never_parked grep -q "^parks: 0" $dss_d/internal/alloc_debug
t dnd_file_is_the_source cmp /mnt/f /tmp/dss-src
t dnd_umount umount /mnt
t dnd_fsck_clean fsck_clean /dev/vda /dev/vdb
t dnd_mount_again mount -t bucketfs $DSS_DEVS /mnt
t dnd_file_persists cmp /mnt/f /tmp/dss-src
umount /mnt
rm -f /tmp/dss-full.toml /tmp/dss-nd.toml /tmp/dss-src

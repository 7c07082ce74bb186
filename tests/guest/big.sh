# SPDX-License-Identifier: GPL-2.0
# Real disk sizes (run by scripts/check.sh in its own guest boot, not with the t_*.sh files):
# format, scenario, mount (replay), unmount and remount with every key of
# (a) one 1 TiB member (vda, sparse: 16M buckets of 64 KiB), its journal written from block
#     1000 of the area (the superblock's journal_offset), with the mount time and the memory
#     it takes measured;
# (b) a 16-member filesystem (vdb .. vdq, 1 GiB each) whose first journal copies are damaged
#     at some entries, so replay must take those entries from other copies;
# and a re-format of each, which must replay nothing of the old journal.
# Disks: vda 1T, vdb .. vdq 1G.

. /root/tests/lib.sh
insmod /modules/bucketfs.ko

mem_avail() { sed -n 's/^MemAvailable: *\([0-9]*\) kB/\1/p' /proc/meminfo; }

# sample_min_mem FILE STOP: the lowest MemAvailable seen, into FILE, until STOP exists.
sample_min_mem() {
	sm_min=$(mem_avail)
	while [ ! -e "$2" ]; do
		sm_a=$(mem_avail)
		[ "$sm_a" -lt "$sm_min" ] && sm_min=$sm_a
		echo "$sm_min" >"$1"
		usleep 2000
	done
}

# member_geometry DEV: "bucket_size journal_start table_start table_buckets" of DEV's member.
member_geometry() {
	mg_idx=$(bucketfs show-super "$1" | sed -n 's/^  member: *\([0-9]*\) of.*/\1/p')
	bucketfs show-super "$1" | sed -n "s/^ *$mg_idx: [0-9a-f-]* [0-9]* buckets x \([0-9]*\) B; table \([0-9]*\)+\([0-9]*\), journal \([0-9]*\)+.*/\1 \4 \2 \3/p"
}

# zero_journal_block DEV BLOCK: zero block BLOCK of DEV's journal area (a torn entry).
zero_journal_block() {
	set -- "$1" "$2" $(member_geometry "$1")
	dd if=/dev/zero of="$1" bs=4096 count=1 seek=$(($4 * $3 / 4096 + $2)) conv=notrunc 2>/dev/null
}

# figures_keys: the mounted filesystem's key count.
figures_keys() { sed -n 's/^keys //p' "$(fs_dir)/internal/btree_stats"; }

# (a) one 1 TiB member.
t0=$(now_ms)
t big1t_format bucketfs format --bucket-size 64k /dev/vda
format_ms=$(($(now_ms) - t0))
t0=$(now_ms)
out=$(bucketfs scenario /root/scenarios/big-1t.toml /dev/vda)
scenario_ms=$(($(now_ms) - t0))
expect=$(echo "$out" | sed -n 's/^scenario: expect //p')
t big1t_scenario test -n "$expect"
set -- $(member_geometry /dev/vda)
table_mib=$(($4 * $1 / 1048576))
dmesg -c >/dev/null
sync
echo 3 >/proc/sys/vm/drop_caches
rm -f /tmp/mem-stop
before=$(mem_avail)
sample_min_mem /tmp/mem-min /tmp/mem-stop &
sampler=$!
usleep 50000
t0=$(now_ms)
mount -t bucketfs /dev/vda /mnt
st=$?
mount_ms=$(($(now_ms) - t0))
touch /tmp/mem-stop
wait $sampler
lowest=$(cat /tmp/mem-min)
t big1t_mount test $st = 0
got=$(btree_figures)
t big1t_replayed_every_key test "$got" = "$expect"
t big1t_journal_read_from_its_offset dmesg_has "replaying 6000 key\(s\) from [0-9]+ journal entries .* read from block 1000\)"
journal_kib=$(dmesg | sed -n 's/.*; \([0-9]*\) KiB read from block.*/\1/p' | tail -n 1)
used_kib=$((before - lowest))
# The allocator's per-bucket state (one byte per bucket: 16 MiB here) and the btree are what
# a mount may hold; nothing sized by the journal area (1 GiB) or the table (66 MiB).
t big1t_mount_memory_bounded test "$used_kib" -lt $((96 * 1024))
umount /mnt
dmesg -c >/dev/null
t big1t_remount mount -t bucketfs /dev/vda /mnt
t big1t_remount_every_key test "$(btree_figures)" = "$expect"
t big1t_remount_replays_nothing sh -c '! dmesg | grep -q replaying'
umount /mnt
# Reference: a sequential read of the bucket table's bytes (after dropping caches).
echo 3 >/proc/sys/vm/drop_caches
t0=$(now_ms)
dd if=/dev/vda of=/dev/null bs=$1 skip=$3 count=$4 2>/dev/null
ref_ms=$(($(now_ms) - t0))
echo "big: 1 TiB member: format $format_ms ms, scenario $scenario_ms ms; mount with replay of 6000 keys $mount_ms ms (bucket table $table_mib MiB, journal $journal_kib KiB read; a sequential read of the table takes $ref_ms ms); MemAvailable before $before kB, lowest during the mount $lowest kB ($used_kib kB used)"
t0=$(now_ms)
t big1t_reformat bucketfs format --bucket-size 64k /dev/vda
reformat_ms=$(($(now_ms) - t0))
t big1t_reformat_mount mount -t bucketfs /dev/vda /mnt
t big1t_reformat_replays_nothing test "$(figures_keys)" = 0
umount /mnt
echo "big: 1 TiB member: re-format $reformat_ms ms"

# (b) sixteen members.
devs=""
for l in b c d e f g h i j k l m n o p q; do devs="$devs /dev/vd$l"; done
src=$(echo $devs | tr ' ' ':')
t0=$(now_ms)
t big16_format bucketfs format --bucket-size 64k --metadata-replicas 2 $devs
format_ms=$(($(now_ms) - t0))
expect=$(bucketfs scenario /root/scenarios/big-16.toml $devs | sed -n 's/^scenario: expect //p')
t big16_scenario test -n "$expect"
# Entries of 500 keys are 2 blocks: entry k (seq k + 1) is at block 2k. The first copy loses
# entries 1 and 6, the second entry 6 and 10: replay must take them from other copies.
zero_journal_block /dev/vdb 0
zero_journal_block /dev/vdb 10
zero_journal_block /dev/vdc 10
zero_journal_block /dev/vdc 18
dmesg -c >/dev/null
t0=$(now_ms)
t big16_mount mount -t bucketfs $src /mnt
mount_ms=$(($(now_ms) - t0))
t big16_replayed_every_key_from_other_copies test "$(btree_figures)" = "$expect"
journal_kib=$(dmesg | sed -n 's/.*; \([0-9]*\) KiB read from block.*/\1/p' | tail -n 1)
# One copy read a window at a time, plus an entry's worth from another copy where one was
# damaged, and a look at each other copy where the journal ends: not 16 areas of 16 MiB.
t big16_journal_read_from_one_copy test "${journal_kib:-99999}" -le 4096
umount /mnt
dmesg -c >/dev/null
t big16_remount mount -t bucketfs $src /mnt
t big16_remount_every_key test "$(btree_figures)" = "$expect"
t big16_remount_replays_nothing sh -c '! dmesg | grep -q replaying'
umount /mnt
echo "big: 16 members of 1 GiB: format $format_ms ms; mount with replay of 8000 keys $mount_ms ms, journal $journal_kib KiB read"
t big16_reformat bucketfs format --bucket-size 64k --metadata-replicas 2 $devs
t big16_reformat_mount mount -t bucketfs $src /mnt
t big16_reformat_replays_nothing test "$(figures_keys)" = 0
umount /mnt
t big_rmmod rmmod bucketfs
guest_exit

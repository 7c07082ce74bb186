# SPDX-License-Identifier: GPL-2.0
# File data semantics on the filesystem under test (DATA_FS, tests/guest/datafs.sh: bucketfs by
# default, ext4 for the reference), each result checked byte for byte against a copy in /tmp
# (tmpfs) with cmp: write and read back, overwrite in place, append, pwrite past the end (the
# hole reads zeros, takes no space), a stale tail past a truncated end reads zeros, truncate down
# and up, fallocate (allocate, keep-size, punch a hole), mmap write and read (fio's mmap engine),
# O_DIRECT both ways, fsync/fdatasync, every file intact after a remount, the checker clean after
# the unmount, df and du agree with what was written (within 2 MiB), space comes back after
# the files are deleted; on bucketfs, data_replicas=2 keeps a copy of every block on each of two
# members (each member alone, mounted ro,degraded, reads every file). Disks: vda, vdb.
. /root/tests/datafs.sh
insmod /modules/bucketfs.ko 2>/dev/null
umount /mnt 2>/dev/null

# Patterns: random bytes, so a block read from the wrong place cannot match.
dd if=/dev/urandom of=/tmp/d_p1 bs=65536 count=16 2>/dev/null # 1 MiB
dd if=/dev/urandom of=/tmp/d_p4k bs=4096 count=1 2>/dev/null
dd if=/dev/zero of=/tmp/d_z1 bs=65536 count=16 2>/dev/null # 1 MiB of zeros
d_dmesg=$(dmesg | wc -l)

# d_same FILE EXPECTED: FILE's bytes are EXPECTED's (cmp says where they differ).
d_same() { cmp "$1" "$2"; }
# d_size FILE BYTES: FILE is BYTES long.
d_size() {
	ds=$(stat -c %s "$1")
	[ "$ds" = "$2" ] || { echo "$1 is $ds bytes, expected $2"; return 1; }
}
# d_blocks_kib FILE: the space FILE takes (st_blocks), in KiB.
d_blocks_kib() { echo $(($(stat -c %b "$1") * $(stat -c %B "$1") / 1024)); }
# d_blocks_between FILE MIN_KIB MAX_KIB: FILE takes between MIN and MAX KiB.
d_blocks_between() {
	db=$(d_blocks_kib "$1")
	[ "$db" -ge "$2" ] && [ "$db" -le "$3" ] ||
		{ echo "$1 takes $db KiB, expected $2..$3"; return 1; }
}
t data_format datafs_format /dev/vda
t data_mount datafs_mount /dev/vda
d_used0=$(datafs_used_kib)

# 1. write, read back, overwrite in place, append.
t data_write_1m cp /tmp/d_p1 /mnt/f1
t data_read_back d_same /mnt/f1 /tmp/d_p1
t data_fsync_returns sync /mnt/f1
cp /tmp/d_p1 /tmp/d_f1
dd if=/tmp/d_p4k of=/tmp/d_f1 bs=1 seek=123456 conv=notrunc 2>/dev/null
t data_overwrite_unaligned dd if=/tmp/d_p4k of=/mnt/f1 bs=1 seek=123456 conv=notrunc
t data_overwrite_reads_back d_same /mnt/f1 /tmp/d_f1
cat /tmp/d_p4k >>/tmp/d_f1
head -c 1000 /tmp/d_p1 >>/tmp/d_f1
t data_append sh -c "cat /tmp/d_p4k >>/mnt/f1 && head -c 1000 /tmp/d_p1 >>/mnt/f1"
t data_append_reads_back d_same /mnt/f1 /tmp/d_f1
t data_fdatasync_returns sync -d /mnt/f1

# 2. pwrite past the end: the gap reads zeros and takes no space.
cp /tmp/d_z1 /tmp/d_hole
cat /tmp/d_p4k >>/tmp/d_hole
t data_pwrite_past_eof dd if=/tmp/d_p4k of=/mnt/hole bs=4096 seek=256 conv=notrunc
t data_hole_size d_size /mnt/hole 1052672
t data_hole_reads_zeros d_same /mnt/hole /tmp/d_hole
sync
t data_hole_takes_no_space d_blocks_between /mnt/hole 4 64
# Unaligned: 3000 bytes at byte 5000 of a new file.
head -c 5000 /tmp/d_z1 >/tmp/d_ua
head -c 3000 /tmp/d_p1 >>/tmp/d_ua
t data_pwrite_unaligned sh -c "head -c 3000 /tmp/d_p1 | dd of=/mnt/ua bs=3000 seek=5000 oflag=seek_bytes conv=notrunc"
t data_pwrite_unaligned_reads_back d_same /mnt/ua /tmp/d_ua

# 3. A stale tail: 10000 bytes, truncated to 5000, then 100 bytes written at 9000: bytes
# 5000..9000 (in the same block as the old data) read zeros.
head -c 10000 /tmp/d_p1 >/mnt/tail
t data_tail_truncate truncate -s 5000 /mnt/tail
t data_tail_extend sh -c "head -c 100 /tmp/d_p4k | dd of=/mnt/tail bs=100 seek=9000 oflag=seek_bytes conv=notrunc"
{ head -c 5000 /tmp/d_p1; head -c 4000 /tmp/d_z1; head -c 100 /tmp/d_p4k; } >/tmp/d_tail
t data_stale_tail_reads_zeros d_same /mnt/tail /tmp/d_tail

# 4. truncate down (unaligned) and up again: past the cut reads zeros.
cp /tmp/d_p1 /mnt/tr
sync
t data_truncate_down truncate -s 300000 /mnt/tr
t data_truncate_down_size d_size /mnt/tr 300000
t data_truncate_up truncate -s 1048576 /mnt/tr
{ head -c 300000 /tmp/d_p1; head -c 748576 /tmp/d_z1; } >/tmp/d_tr
t data_truncate_up_reads_zeros d_same /mnt/tr /tmp/d_tr
sync
t data_truncate_frees_space d_blocks_between /mnt/tr 290 400
t data_truncate_zero truncate -s 0 /mnt/tr
sync
t data_truncate_zero_no_space d_blocks_between /mnt/tr 0 0

# 5. fallocate: allocated space reads zeros; keep-size; punch a hole (util-linux fallocate, by
# its path: busybox's sh runs its own applet before anything on PATH).
d_fallocate=fallocate
[ -x /usr/bin/fallocate ] && d_fallocate=/usr/bin/fallocate
t data_fallocate $d_fallocate -l 4194304 /mnt/fa
t data_fallocate_size d_size /mnt/fa 4194304
t data_fallocate_takes_space d_blocks_between /mnt/fa 4096 4160
{ cat /tmp/d_z1 /tmp/d_z1 /tmp/d_z1 /tmp/d_z1; } >/tmp/d_fa
t data_fallocate_reads_zeros d_same /mnt/fa /tmp/d_fa
dd if=/tmp/d_p1 of=/tmp/d_fa bs=65536 count=2 seek=8 conv=notrunc 2>/dev/null
t data_write_into_fallocated dd if=/tmp/d_p1 of=/mnt/fa bs=65536 count=2 seek=8 conv=notrunc
t data_fallocated_reads_back d_same /mnt/fa /tmp/d_fa
if $d_fallocate --help 2>&1 | grep -q punch-hole; then
	t data_fallocate_keep_size $d_fallocate -n -o 4194304 -l 1048576 /mnt/fa
	t data_keep_size_size d_size /mnt/fa 4194304
	t data_keep_size_takes_space d_blocks_between /mnt/fa 5120 5184
	dd if=/dev/zero of=/tmp/d_fa bs=65536 count=3 seek=7 conv=notrunc 2>/dev/null
	t data_punch_hole $d_fallocate -p -o 458752 -l 196608 /mnt/fa
	t data_punch_size_kept d_size /mnt/fa 4194304
	t data_punch_reads_zeros d_same /mnt/fa /tmp/d_fa
	sync
	t data_punch_frees_space d_blocks_between /mnt/fa 4928 4992
	# A punch that is not block aligned zeroes the partial blocks and keeps their other bytes.
	cp /tmp/d_p1 /mnt/pu
	cp /tmp/d_p1 /tmp/d_pu
	dd if=/dev/zero of=/tmp/d_pu bs=1 count=10000 seek=1000 conv=notrunc 2>/dev/null
	t data_punch_unaligned $d_fallocate -p -o 1000 -l 10000 /mnt/pu
	t data_punch_unaligned_reads_back d_same /mnt/pu /tmp/d_pu
else
	echo "data: util-linux fallocate is not in the guest (scripts/vm.sh --bin fallocate): keep-size and punch not tested"
fi

# 6. mmap: fio writes through a shared mapping of a new (sparse) file with its crc32c
# headers; verify_only reads it back with plain reads (here and after the remount below); a
# file fio wrote with pwrite is verified through a mapping.
d_fio() { fio --output=/tmp/d_fio.log "$@" || { tail -n 12 /tmp/d_fio.log; return 1; }; }
d_mmap_job="--name=mm --filename=/mnt/mm --size=1M --bs=4k --rw=randwrite --randseed=16 --verify=crc32c --do_verify=0"
d_pw_job="--name=pw --filename=/mnt/pw --size=1M --bs=4k --rw=randwrite --randseed=17 --verify=crc32c --do_verify=0"
command -v fio >/dev/null || echo "data: fio is not in the guest (scripts/vm.sh --bin fio)"
# shellcheck disable=SC2086
t data_mmap_write d_fio --ioengine=mmap $d_mmap_job
# shellcheck disable=SC2086
t data_mmap_written_verifies d_fio --ioengine=psync $d_mmap_job --verify_only
# shellcheck disable=SC2086
t data_pwrite_for_mmap_read d_fio --ioengine=psync $d_pw_job
# shellcheck disable=SC2086
t data_mmap_read_verifies d_fio --ioengine=mmap $d_pw_job --verify_only

# 7. O_DIRECT: written direct, read buffered and direct; a buffered file read direct.
cp /tmp/d_p1 /tmp/d_dio
t data_direct_write dd if=/tmp/d_p1 of=/mnt/dio bs=65536 oflag=direct
t data_direct_written_buffered_read d_same /mnt/dio /tmp/d_p1
t data_direct_read sh -c "dd if=/mnt/dio bs=65536 iflag=direct 2>/dev/null | cmp - /tmp/d_p1"
t data_buffered_written_direct_read sh -c "dd if=/mnt/f1 bs=4096 iflag=direct 2>/dev/null | cmp - /tmp/d_f1"
dd if=/tmp/d_p4k of=/tmp/d_dio bs=4096 seek=100 conv=notrunc 2>/dev/null
t data_direct_overwrite dd if=/tmp/d_p4k of=/mnt/dio bs=4096 seek=100 oflag=direct conv=notrunc
t data_direct_overwrite_reads_back d_same /mnt/dio /tmp/d_dio
t data_direct_past_eof dd if=/tmp/d_p4k of=/mnt/diohole bs=4096 seek=64 oflag=direct
t data_direct_hole_reads_zeros sh -c "{ head -c 262144 /tmp/d_z1; cat /tmp/d_p4k; } | cmp - /mnt/diohole"

# 8. df and du: what was written (about 3 MiB of files here; 8 MiB more now).
sync
d_used1=$(datafs_used_kib)
t data_write_8m sh -c "cat /tmp/d_p1 /tmp/d_p1 /tmp/d_p1 /tmp/d_p1 /tmp/d_p1 /tmp/d_p1 /tmp/d_p1 /tmp/d_p1 >/mnt/big && sync"
d_used2=$(datafs_used_kib)
d_du=$(du -k /mnt/big | cut -f1)
echo "data: df used ${d_used0} KiB empty, ${d_used1} KiB before and ${d_used2} KiB after 8192 KiB written; du of the file ${d_du} KiB"
t data_du_is_what_was_written sh -c "test $d_du -ge 8192 && test $d_du -le 8256"
t data_df_grows_by_what_was_written sh -c "test $((d_used2 - d_used1)) -ge 8192 && test $((d_used2 - d_used1)) -le 10240"

# 9. Remount: every file intact; the checker clean after the unmount.
t data_umount umount /mnt
t data_fsck_clean datafs_fsck /dev/vda
t data_remount datafs_mount /dev/vda
t data_remount_f1 d_same /mnt/f1 /tmp/d_f1
t data_remount_hole d_same /mnt/hole /tmp/d_hole
t data_remount_unaligned d_same /mnt/ua /tmp/d_ua
t data_remount_tail d_same /mnt/tail /tmp/d_tail
t data_remount_fa d_same /mnt/fa /tmp/d_fa
[ -e /mnt/pu ] && t data_remount_punched d_same /mnt/pu /tmp/d_pu
t data_remount_dio d_same /mnt/dio /tmp/d_dio
t data_remount_big sh -c "cat /tmp/d_p1 /tmp/d_p1 /tmp/d_p1 /tmp/d_p1 /tmp/d_p1 /tmp/d_p1 /tmp/d_p1 /tmp/d_p1 | cmp - /mnt/big"
# shellcheck disable=SC2086
t data_remount_mmap_written_verifies d_fio --ioengine=psync $d_mmap_job --verify_only
t data_remount_hole_no_space d_blocks_between /mnt/hole 4 64

# 10. Deleting gives the space back (statfs): within 2 MiB of the empty filesystem's figure
# (bucketfs: once the discard worker has discarded the freed buckets; 20 s at most).
d_used_at_most() { [ "$(datafs_used_kib)" -le "$1" ]; }
t data_delete_all sh -c "find /mnt -maxdepth 1 -type f -exec rm -f {} + && sync"
t data_df_space_back wait_for 20 d_used_at_most $((d_used0 + 2048))
echo "data: df used $(datafs_used_kib) KiB after deleting every file (${d_used0} KiB empty)"
t data_umount_again umount /mnt
t data_fsck_clean_after_delete datafs_fsck /dev/vda

# 11. data_replicas=2 (bucketfs): every block on each of two members; each member alone
# (mounted ro,degraded) reads every file. With one copy, the member left out would hold some
# of the data.
if [ "$DATA_FS" = bucketfs ]; then
	d_repl_format="--metadata-replicas 2"
	d_repl_mount=data_replicas=2
	# The format tool takes the option from the option table once it is there.
	bucketfs format --help 2>&1 | grep -q -- --data-replicas && d_repl_format="$d_repl_format --data-replicas 2" && d_repl_mount=rw
	# shellcheck disable=SC2086
	t data_replicas_format bucketfs format --bucket-size 64k $d_repl_format /dev/vda /dev/vdb
	t data_replicas_mount mount -t bucketfs -o $d_repl_mount /dev/vda:/dev/vdb /mnt
	t data_replicas_write sh -c "grep -q ' /mnt bucketfs ' /proc/mounts && cp /tmp/d_p1 /mnt/r1 && dd if=/tmp/d_p1 of=/mnt/r2 bs=65536 oflag=direct 2>/dev/null && cat /tmp/d_p1 /tmp/d_p1 >/mnt/r3 && sync"
	t data_replicas_umount umount /mnt
	t data_replicas_fsck_clean fsck_clean /dev/vda /dev/vdb
	for d_dev in vda vdb; do
		t data_replicas_only_${d_dev}_mounts mount -t bucketfs -o ro,degraded /dev/$d_dev /mnt
		t data_replicas_only_${d_dev}_reads_every_file sh -c "cmp /mnt/r1 /tmp/d_p1 && cmp /mnt/r2 /tmp/d_p1 && cat /tmp/d_p1 /tmp/d_p1 | cmp - /mnt/r3"
		umount /mnt
	done
fi
t data_no_kernel_warning datafs_no_new_warnings $d_dmesg
rm -f /tmp/d_*

# SPDX-License-Identifier: GPL-2.0
# Debian's I/O tools on the filesystem under test (DATA_FS, tests/guest/datafs.sh): fio with
# verify=crc32c (each block written carries a checksum and its offset, read back and checked)
# sequential and random, buffered and O_DIRECT, two jobs at once, then after a remount
# fio --verify_only over what the last runs wrote; stress-ng's file stressors (hdd with
# --verify, seek, fallocate, mmap on a file, sync-file, readahead) two instances
# each for a bounded time: exit 0, every stressor did work. No kernel warning; the checker
# clean after the unmount. Sizes: DATAFIO_MB per fio job (default 4), STRESS_DATA_SECS
# (default 8); make check-full sets more. Disks: vda.
. /root/tests/datafs.sh
insmod /modules/bucketfs.ko 2>/dev/null
umount /mnt 2>/dev/null
df_mb=${DATAFIO_MB:-4}
df_secs=${STRESS_DATA_SECS:-8}
df_dmesg=$(dmesg | wc -l)

# df_fio NAME ARGS...: one fio run (two jobs) in /mnt/fio; its log's tail on failure. fio
# exits non-zero on a verify failure or an I/O error.
df_fio() {
	df_name=$1
	shift
	mkdir -p /mnt/fio || return 1
	fio --name="$df_name" --directory=/mnt/fio --numjobs=2 --size=${df_mb}M --verify=crc32c \
		--group_reporting --output=/tmp/df_fio.log "$@" ||
		{ tail -n 15 /tmp/df_fio.log; return 1; }
}

t datafio_format datafs_format /dev/vda
t datafio_mount datafs_mount /dev/vda
command -v fio >/dev/null || echo "datafio: fio is not in the guest (scripts/vm.sh --bin fio)"
# df_fio_figures NAME: the bandwidth lines of the last fio run.
df_fio_figures() { grep -E '^ *(READ|WRITE): bw=' /tmp/df_fio.log | sed "s/^ */datafio: $1: /"; }
t datafio_seq_buffered df_fio seqbuf --rw=write --bs=64k --unlink=1
df_fio_figures seqbuf
t datafio_rand_buffered df_fio randbuf --rw=randwrite --bs=4k --fsync=32 --unlink=1
df_fio_figures randbuf
t datafio_seq_direct df_fio seqdio --rw=write --bs=64k --direct=1 --unlink=1
df_fio_figures seqdio
t datafio_rand_direct df_fio randdio --rw=randwrite --bs=4k --direct=1 --unlink=1
df_fio_figures randdio
# Random writes, buffered, an fdatasync every 16 writes; kept for the remount.
t datafio_randwrite_fdatasync_kept df_fio keep --rw=randwrite --bs=16k --fdatasync=16 --randseed=1616
df_fio_figures keep
t datafio_umount umount /mnt
t datafio_fsck_clean datafs_fsck /dev/vda
t datafio_remount datafs_mount /dev/vda
t datafio_remount_verify_only df_fio keep --rw=randwrite --bs=16k --randseed=1616 --verify_only
df_fio_figures keep
rm -rf /mnt/fio

# stress-ng's file stressors for df_secs seconds, two instances each, with its --timeout and a
# watchdog (SIGINT 10 s after the timeout, SIGKILL 60 s after).
df_stress() {
	command -v stress-ng >/dev/null || { echo "stress-ng is not in the guest (--bin stress-ng)"; return 1; }
	mkdir -p /mnt/stress || return 1
	stress-ng --temp-path /mnt/stress --timeout ${df_secs}s --metrics-brief --verify \
		--hdd 2 --hdd-bytes 2M --seek 2 --seek-size 2M --fallocate 2 --fallocate-bytes 2M \
		--mmap 2 --mmap-file --mmap-bytes 1M --sync-file 2 --sync-file-bytes 2M \
		--readahead 2 --readahead-bytes 2M \
		>/tmp/df_stress.log 2>&1 &
	dfs_pid=$!
	dfs_s=0
	while kill -0 $dfs_pid 2>/dev/null; do
		[ $dfs_s = $((df_secs + 10)) ] && { echo "stress-ng past its timeout: SIGINT"; kill -INT $dfs_pid; }
		[ $dfs_s = $((df_secs + 60)) ] && { echo "stress-ng still running: SIGKILL"; kill -KILL $dfs_pid; }
		sleep 1
		dfs_s=$((dfs_s + 1))
	done
	wait $dfs_pid
	dfs_rc=$?
	grep -E 'metrc|fail|error' /tmp/df_stress.log | head -n 20
	[ $dfs_rc = 0 ] || { tail -n 8 /tmp/df_stress.log; echo "stress-ng exited $dfs_rc"; return 1; }
	for dfs_st in hdd seek fallocate mmap sync-file readahead; do
		dfs_ops=$(sed -n "s/^stress-ng: metrc: \[[0-9]*\] $dfs_st  *\([0-9][0-9]*\) .*/\1/p" /tmp/df_stress.log)
		[ -n "$dfs_ops" ] && [ "$dfs_ops" -gt 0 ] || { echo "no bogo ops for the $dfs_st stressor"; return 1; }
	done
}
df_t0=$(now_ms)
t datafio_stress_ng_file_stressors df_stress
echo "datafio: stress-ng ran $(($(now_ms) - df_t0)) ms"
grep -E '^stress-ng: metrc: ' /tmp/df_stress.log
rm -rf /mnt/stress
t datafio_umount_again umount /mnt
t datafio_fsck_clean_after_stress datafs_fsck /dev/vda
t datafio_no_kernel_warning datafs_no_new_warnings $df_dmesg
rm -f /tmp/df_fio.log /tmp/df_stress.log

# SPDX-License-Identifier: GPL-2.0
# Debian's stress-ng (copied into the guest by scripts/vm.sh --bin stress-ng) runs its
# directory and rename stressors, two instances each, for 10 s with its working directory on
# a mounted bucketfs: exit 0, both stressors did work, no kernel warning, and after the
# unmount `bucketfs fsck` is clean and the filesystem mounts again. Disks: vda, vdb.

insmod /modules/bucketfs.ko 2>/dev/null
umount /mnt 2>/dev/null

# stress_run SECS: stress-ng on /mnt/stress for SECS seconds; its log in /tmp/stress.log.
stress_run() {
	command -v stress-ng >/dev/null ||
		{ echo "stress-ng is not in the guest (scripts/vm.sh --bin stress-ng)"; return 1; }
	mkdir -p /mnt/stress || return 1
	stress-ng --temp-path /mnt/stress --dir 2 --rename 2 --timeout ${1}s --metrics-brief \
		>/tmp/stress.log 2>&1 &
	st_pid=$!
	# The test kernel has no CONFIG_POSIX_TIMERS, so no alarm(): --timeout never fires there.
	# SIGINT ends the run the same way (metrics, status 0): sent 2 s after the timeout.
	st_s=0
	while kill -0 $st_pid 2>/dev/null; do
		[ $st_s = $(($1 + 2)) ] && kill -INT $st_pid
		[ $st_s = $(($1 + 60)) ] && { echo "stress-ng still running $st_s s after it started: SIGKILL"; kill -KILL $st_pid; }
		sleep 1
		st_s=$((st_s + 1))
	done
	wait $st_pid
	st_rc=$?
	tail -n 6 /tmp/stress.log
	[ $st_rc = 0 ] || { echo "stress-ng exited $st_rc"; return 1; }
	for st in dir rename; do
		st_ops=$(sed -n "s/^stress-ng: metrc: \[[0-9]*\] $st  *\([0-9][0-9]*\) .*/\1/p" /tmp/stress.log)
		[ -n "$st_ops" ] && [ "$st_ops" -gt 0 ] || { echo "no bogo ops for the $st stressor"; return 1; }
	done
}

# no_new_warnings N: the kernel log has no warning, bug or oops past its first N lines.
no_new_warnings() {
	st_new=$(dmesg | tail -n +$(($1 + 1)) | grep -E 'WARNING:|BUG:|Oops|Call Trace:|bucketfs.*(error|corrupt)')
	[ -z "$st_new" ] || { echo "$st_new" | head -n 5; return 1; }
}

t stress_format bucketfs format --bucket-size 4k --metadata-replicas 2 /dev/vda /dev/vdb
t stress_mount mount -t bucketfs /dev/vda:/dev/vdb /mnt
st_dmesg=$(dmesg | wc -l)
st_start=$(now_ms)
t stress_ng_dir_rename_on_bucketfs stress_run 10
echo "stress: stress-ng ran $(( $(now_ms) - st_start )) ms"
grep -E '^stress-ng: metrc: .* (dir|rename) ' /tmp/stress.log
t stress_no_kernel_warning no_new_warnings $st_dmesg
t stress_tree_walks sh -c "find /mnt >/dev/null"
t stress_umount umount /mnt
t stress_fsck_clean fsck_clean /dev/vda /dev/vdb
t stress_mount_again mount -t bucketfs /dev/vda:/dev/vdb /mnt
t stress_umount_again umount /mnt
rm -f /tmp/stress.log

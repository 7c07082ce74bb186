# SPDX-License-Identifier: GPL-2.0
# Debian's stress-ng and fio run in the busybox guest (scripts/vm.sh --bin stress-ng --bin fio
# copies them with their shared libraries), on tmpfs: the tools the filesystem tests use.

# stress-ng's directory and rename stressors for 5 s; status 0, and both did work.
tools_stress() {
	command -v stress-ng >/dev/null ||
		{ echo "stress-ng is not in the guest (scripts/vm.sh --bin stress-ng)"; return 1; }
	rm -rf /tmp/tools-stress /tmp/tools-stress.note
	mkdir -p /tmp/tools-stress
	stress-ng --temp-path /tmp/tools-stress --dir 1 --rename 1 --timeout 5s --metrics-brief \
		>/tmp/tools-stress.log 2>&1 &
	tools_pid=$!
	# A kernel without CONFIG_POSIX_TIMERS (the test kernel) has no alarm(): --timeout then
	# never fires. A SIGINT ends the run the same way (metrics, status 0): sent at 7 s (the
	# debug kernel then takes ~7 s more to stop); SIGKILL, and a failure, at 60 s.
	tools_s=0
	while kill -0 $tools_pid 2>/dev/null; do
		[ $tools_s = 7 ] && { echo "tools: stress-ng still running after 7 s (no alarm()?): SIGINT" >>/tmp/tools-stress.note; kill -INT $tools_pid; }
		[ $tools_s = 60 ] && { echo "tools: stress-ng still running after 60 s: SIGKILL" >>/tmp/tools-stress.note; kill -KILL $tools_pid; }
		sleep 1
		tools_s=$((tools_s + 1))
	done
	wait $tools_pid
	tools_rc=$?
	tail -n 5 /tmp/tools-stress.log
	[ $tools_rc = 0 ] || { echo "stress-ng exited $tools_rc"; return 1; }
	for tools_st in dir rename; do
		tools_ops=$(sed -n "s/^stress-ng: metrc: \[[0-9]*\] $tools_st  *\([0-9][0-9]*\) .*/\1/p" /tmp/tools-stress.log)
		[ -n "$tools_ops" ] && [ "$tools_ops" -gt 0 ] ||
			{ echo "no bogo ops for the $tools_st stressor"; return 1; }
	done
	rm -rf /tmp/tools-stress
}
t tools_stress_ng_dir_rename tools_stress
cat /tmp/tools-stress.note 2>/dev/null
grep -E '^stress-ng: metrc: .* (dir|rename) ' /tmp/tools-stress.log 2>/dev/null

# A tiny fio job that writes 4 MiB in random 4 KiB blocks and reads them back verified.
tools_fio() {
	command -v fio >/dev/null || { echo "fio is not in the guest (scripts/vm.sh --bin fio)"; return 1; }
	rm -f /tmp/tools-fio.dat
	fio --name=verify --filename=/tmp/tools-fio.dat --size=4m --bs=4k --rw=randwrite \
		--ioengine=psync --verify=crc32c --do_verify=1 --verify_fatal=1 >/tmp/tools-fio.log 2>&1
	tools_rc=$?
	tail -n 5 /tmp/tools-fio.log
	rm -f /tmp/tools-fio.dat
	[ $tools_rc = 0 ] || { echo "fio exited $tools_rc"; return 1; }
	# The verify pass read the blocks back.
	grep -q 'READ: bw=' /tmp/tools-fio.log || { echo "fio did not read back (no verify pass)"; return 1; }
}
# fio keeps its job state in SysV shared memory: a kernel without CONFIG_SYSVIPC (the test
# kernel today) cannot run it at all, which is said on the console and not counted.
if [ -d /proc/sysvipc ]; then
	t tools_fio_verify tools_fio
else
	echo "GUEST-TEST skip tools_fio_verify: this kernel has no SysV IPC (CONFIG_SYSVIPC), which fio needs"
fi

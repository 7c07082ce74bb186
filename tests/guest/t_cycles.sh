# SPDX-License-Identifier: GPL-2.0
# Abort/kill/retry cycles on the stuck mount: CYCLES (default 5) times, alternately abort
# the parked replay or SIGKILL the mount, then retry with -o metadata_replicas=1, unmount,
# and unload and reload the module. On the debug kernel, t_zz_kmemleak then looks for leaks.

cycles=${CYCLES:-5}
i=0
ok=0
while [ $i -lt $cycles ]; do
	i=$((i + 1))
	insmod /modules/bucketfs.ko || break
	bucketfs scenario /root/scenarios/seed-small.toml /dev/vda /dev/vdb >/dev/null || break
	mount -t bucketfs /dev/vda:/dev/vdb /mnt 2>/dev/null &
	pid=$!
	(sleep 60; kill -9 $pid 2>/dev/null) &
	wait_for 20 parked 1 || { echo "cycle $i: the mount did not park"; break; }
	if [ $((i % 2)) = 1 ]; then
		sysfs_write "$(fs_dir)/internal/abort_stuck_allocations" 1
	else
		kill -9 $pid
	fi
	wait $pid && { echo "cycle $i: the mount succeeded"; break; }
	test -z "$(fs_dir)" || { echo "cycle $i: sysfs left behind"; break; }
	mount -t bucketfs -o metadata_replicas=1 /dev/vda:/dev/vdb /mnt || { echo "cycle $i: retry failed"; break; }
	umount /mnt || break
	rmmod bucketfs || { echo "cycle $i: rmmod failed"; break; }
	ok=$((ok + 1))
done
lsmod | grep -q '^bucketfs' && rmmod bucketfs
echo "abort/kill/retry cycles: $ok of $cycles completed"
t abort_kill_retry_cycles test $ok = $cycles

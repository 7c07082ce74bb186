# SPDX-License-Identifier: GPL-2.0
# Module load/unload, registration and the KUnit suites.

run_kunit bucketfs_kunit

t insmod insmod /modules/bucketfs.ko
t registered_in_proc_filesystems grep -qw bucketfs /proc/filesystems
t sysfs_root_exists test -d /sys/fs/bucketfs

t rmmod rmmod bucketfs
t unregistered_from_proc_filesystems sh -c '! grep -qw bucketfs /proc/filesystems'
t sysfs_root_removed test ! -e /sys/fs/bucketfs

cycles=0
while [ $cycles -lt 20 ]; do
	insmod /modules/bucketfs.ko || break
	test -d /sys/fs/bucketfs || break
	rmmod bucketfs || break
	test ! -e /sys/fs/bucketfs || break
	cycles=$((cycles + 1))
done
if [ $cycles = 20 ]; then
	pass load_unload_20_cycles
else
	fail load_unload_20_cycles "cycle $cycles failed"
fi


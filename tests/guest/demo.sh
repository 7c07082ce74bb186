# SPDX-License-Identifier: GPL-2.0
# The demo, run in the guest by `make demo`.
set -e
echo "== bucketfs demo =="
echo "-- loading bucketfs.ko"
insmod /modules/bucketfs.ko
grep -w bucketfs /proc/filesystems
ls -ld /sys/fs/bucketfs
echo "-- mounting /dev/vda:/dev/vdb (not implemented yet: expect EOPNOTSUPP)"
mount -t bucketfs /dev/vda:/dev/vdb /mnt || true
dmesg | grep 'bucketfs:' | tail -n 3
rmmod bucketfs
echo "== demo done =="

# SPDX-License-Identifier: GPL-2.0
# Used by the host-side tests after a crash or a fault: mount vda:vdb without faults and
# print the btree figures ("GOT keys N digest D") for the host to compare.
. /root/tests/lib.sh
insmod /modules/bucketfs.ko
timeout -s KILL 60 mount -t bucketfs /dev/vda:/dev/vdb /mnt || exit 1
echo "GOT $(btree_figures)"
umount /mnt

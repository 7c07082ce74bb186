# SPDX-License-Identifier: GPL-2.0
# A bucket table block that does not check out (torn by a crash, or damaged): the mount says
# so, takes its buckets as in use (never free), keeps every key and rewrites the block, so
# the next mount is clean. Read errors and tables that contradict the layout still refuse.
insmod /modules/bucketfs.ko
expect=$(bucketfs scenario /root/scenarios/damage.toml /dev/vda | sed -n 's/^scenario: expect //p')
tstart=$(bucketfs show-super /dev/vda | sed -n 's/.* table \([0-9]*\)+.*/\1/p')
# damage.toml has 4 KiB buckets: table block 1 is bucket tstart + 1.
printf '\377\377\377\377' | dd of=/dev/vda bs=1 seek=$(((tstart + 1) * 4096 + 1000)) conv=notrunc 2>/dev/null
dmesg -c >/dev/null
if mount -t bucketfs /dev/vda /mnt; then
	pass torn_table_block_mounts
	t torn_table_block_keys_kept test "$(btree_figures)" = "$expect"
	t torn_table_block_reported dmesg_has "1 bucket table block\(s\) refused \(first: block 1,"
	t torn_table_block_buckets_in_use test "$(cat "$(fs_dir)/dev-0/data")" -gt 0
	umount /mnt
	dmesg -c >/dev/null
	if mount -t bucketfs /dev/vda /mnt; then
		t torn_table_block_rewritten sh -c '! dmesg | grep -q "bucket table block"'
		t torn_table_block_remount_keys test "$(btree_figures)" = "$expect"
		umount /mnt
	else
		fail torn_table_block_rewritten "the second mount was refused"
	fi
else
	fail torn_table_block_mounts "refused: $(dmesg | tail -n 2 | tr '\n' ' ')"
fi
rmmod bucketfs

# SPDX-License-Identifier: GPL-2.0
# Damaged images: a seeded generator damages one piece of metadata (superblocks, bucket
# table, journal entry, btree node) of a pristine image, which is then mounted. Each must be
# refused with an errno and a dmesg line, or mount consistently (the btree the kernel shows
# is the one `dump-btree` walks after unmount). Never an oops or a splat (vm.sh checks).
# DAMAGE_IMAGES (default 40) images; their seeds are printed so a failure reproduces:
#   bucketfs debug damage --seed N DEV
# Disks: vda is the target, vdb and vdc hold the two templates (before and after replay).

insmod /modules/bucketfs.ko
images=${DAMAGE_IMAGES:-40}
bucketfs scenario /root/scenarios/damage.toml /dev/vdb >/dev/null
bucketfs scenario /root/scenarios/damage.toml /dev/vdc >/dev/null
mount -t bucketfs /dev/vdc /mnt && umount /mnt   # vdc: replayed and committed

refused=0
mounted=0
bad=0
i=1
while [ $i -le $images ]; do
	template=/dev/vdb
	[ $((i % 2)) = 0 ] && template=/dev/vdc
	dd if=$template of=/dev/vda bs=1M count=8 2>/dev/null
	what=$(bucketfs debug damage --seed $i /dev/vda 2>&1)
		dmesg -c >/dev/null
	if err=$(timeout -s KILL 60 mount -t bucketfs /dev/vda /mnt 2>&1); then
		d=$(fs_dir)
		kernel=$(btree_figures)
		umount /mnt
		offline=$(bucketfs dump-btree /dev/vda 2>&1 | sed -n 's/^btree: \(keys [0-9]* digest [0-9a-f]*\).*/\1/p')
		if [ "$kernel" = "$offline" ]; then
			mounted=$((mounted + 1))
		else
			echo "damage $what: mounted, but the kernel showed '$kernel' and dump-btree '$offline'"
			bad=$((bad + 1))
		fi
	else
				if dmesg | grep -q "bucketfs: "; then
			refused=$((refused + 1))
		else
			echo "damage $what: refused ($err) without a dmesg line"
			bad=$((bad + 1))
		fi
	fi
	i=$((i + 1))
done
echo "damaged images: $images tried, $refused refused with a message, $mounted mounted consistently, $bad bad"
t damaged_images_refused_or_consistent test $bad = 0
t damaged_images_some_refused test $refused -gt 0
t damage_rmmod rmmod bucketfs

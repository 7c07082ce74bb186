# SPDX-License-Identifier: GPL-2.0
# A tree of about 10 000 names built with mkdir, touch, ln, ln -s, mv and rm on three members
# (metadata_replicas=2): directories of files, hard links, symbolic links, renames across
# directories and over existing names, removals (of hard-linked names too), a path 100
# directories deep, names of 255 bytes, names with every byte but '/' and NUL. Its listing
# (a find walk: inode number, type, link count, mode, size, name and symlink target of every
# path, sorted) is recorded, then must come back the same after sync + unmount + mount, after
# a clean `bucketfs fsck`, on a read-only mount (where mkdir gets EROFS), and across
# remount,ro / remount,rw. Then ENOSPC: on a small filesystem (a 1 MiB loop device) a loop
# creating files ends with "No space left on device" and does not hang; rm -rf frees the
# space, creation works again, fsck is clean. Disks: vda, vdb, vdc.

insmod /modules/bucketfs.ko 2>/dev/null
umount /mnt 2>/dev/null
NST_DEVS=/dev/vda:/dev/vdb:/dev/vdc
# 20 top directories make about 10 000 names (482 each, 400 more elsewhere); check.sh's debug
# boot (KASAN) asks for fewer with NSTREE_DIRS.
NSTREE_DIRS=${NSTREE_DIRS:-20}

# nst_listing FILE: the canonical listing of /mnt into FILE.
nst_listing() {
	(cd /mnt && find . -exec stat -c '%i %F %h %a %s %N' {} + | sort) >"$1"
}
# nst_same NAME FILE: the listing now is the one in FILE (else the first differences).
nst_same_as() {
	nst_listing /tmp/nst.now || return 1
	cmp -s "$1" /tmp/nst.now && return 0
	echo "$(diff "$1" /tmp/nst.now | grep -c '^[-+][^-+]') line(s) differ:"
	diff "$1" /tmp/nst.now | grep '^[-+][^-+]' | head -n 6
	return 1
}

# The names: $NSTREE_DIRS directories of 10 subdirectories of $NST_FILES files; hard links,
# symbolic links, renames over existing names and across directories, removals; a few forks per
# directory (each touch, ln, mv or rm takes many names). Run as a script of its own, with -e.
cat >/tmp/nst-build.sh <<'EOF'
# Run with sh -e: any command that fails ends it. $1: how many top directories.
NST_FILES=50
NST_DIRS=$1
cd /mnt
nst_f=
nst_k=0
while [ $nst_k -lt $NST_FILES ]; do
	nst_f="$nst_f f$nst_k"
	nst_k=$((nst_k + 1))
done
nst_i=0
while [ $nst_i -lt $NST_DIRS ]; do
	D=/mnt/d$nst_i
	mkdir $D
	cd $D
	mkdir s0 s1 s2 s3 s4 s5 s6 s7 s8 s9 L S
	for nst_s in s0 s1 s2 s3 s4 s5 s6 s7 s8 s9; do
		cd $D/$nst_s
		touch $nst_f
	done
	# Hard links: 20 of s0's files in L (link count 2).
	cd $D/s0
	ln f0 f1 f2 f3 f4 f5 f6 f7 f8 f9 f10 f11 f12 f13 f14 f15 f16 f17 f18 f19 $D/L/
	# Symbolic links: relative, absolute, dangling.
	cd $D/S
	ln -s ../s1/f0 ../s1/f1 ../s1/f2 ../s1/f3 ../s1/f4 .
	ln -s $D/s1 abs
	ln -s ../nowhere/at/all dangling
	# Renames over existing names across directories (s4's f30..f39 are replaced).
	cd $D/s3
	mv f30 f31 f32 f33 f34 f35 f36 f37 f38 f39 $D/s4/
	# A directory renamed into another; a hard link renamed over a file.
	mv $D/s5 $D/s6/moved_s5
	mv $D/L/f0 $D/s7/f0
	# Removals: plain files, one name of a hard-linked file, a whole tree (every other).
	cd $D/s8
	rm f0 f1 f2 f3 f4 f5 f6 f7 f8 f9 f10 f11 f12 f13 f14 f15 f16 f17 f18 f19
	rm $D/s0/f1
	[ $((nst_i % 2)) = 1 ] || rm -r $D/s9
	# chmod of a few.
	chmod 600 $D/s2/f0
	chmod 711 $D/s2
	nst_i=$((nst_i + 1))
done

# Names with every byte but '/' and NUL: "n<byte>e" for each, and one of 255 bytes
# holding them all; both made from printf octal escapes, NUL-separated for xargs -0.
mkdir /mnt/w
cd /mnt/w
nst_fmt=
nst_all='x'
nst_b=1
while [ $nst_b -le 255 ]; do
	if [ $nst_b != 47 ]; then
		nst_o="$((nst_b / 64))$((nst_b / 8 % 8))$((nst_b % 8))"
		nst_fmt="${nst_fmt}n\\${nst_o}e\\0"
		nst_all="${nst_all}\\${nst_o}"
	fi
	nst_b=$((nst_b + 1))
done
printf "$nst_fmt" | xargs -0 touch
printf "$nst_all\\0" | xargs -0 mkdir
# A file in that directory, and a symlink to it whose target is that name.
printf "$nst_all/in\\0" | xargs -0 touch
printf "$nst_all\\0/mnt/w/all\\0" | xargs -0 ln -s

# Names of 255 bytes: 30 files and a directory holding one.
mkdir /mnt/long
cd /mnt/long
nst_base=
nst_k=0
while [ $nst_k -lt 25 ]; do
	nst_base="${nst_base}abcdefghij"
	nst_k=$((nst_k + 1))
done
nst_f=
nst_k=10000
while [ $nst_k -lt 10030 ]; do
	nst_f="$nst_f $nst_base$nst_k"
	nst_k=$((nst_k + 1))
done
touch $nst_f
mkdir ${nst_base}dir00
touch ${nst_base}dir00/${nst_base}10000
ln ${nst_base}10000 ${nst_base}dir00/${nst_base}10001

# A path 100 directories deep (about 2 600 bytes), with a file and a symlink at the bottom.
nst_p=/mnt/deep
nst_k=0
while [ $nst_k -lt 100 ]; do
	nst_p="$nst_p/level_component_$nst_k"
	nst_k=$((nst_k + 1))
done
mkdir -p $nst_p
touch $nst_p/bottom
ln -s bottom $nst_p/to_bottom
# A long symlink target (4000 bytes: several pieces).
ln -s "$(printf '%04000d' 7)" /mnt/longlink
cd /
EOF

t nst_format bucketfs format --bucket-size 4k --metadata-replicas 2 /dev/vda /dev/vdb /dev/vdc
t nst_mount mount -t bucketfs $NST_DEVS /mnt
nst_start=$(now_ms)
t nst_build_tree sh -e /tmp/nst-build.sh $NSTREE_DIRS
echo "nstree: tree built in $(( $(now_ms) - nst_start )) ms"
nst_listing /tmp/nst.before
nst_names=$(( $(find /mnt | wc -l) - 1 ))
echo "nstree: $nst_names names"
t nst_every_name_made test $nst_names -ge $((NSTREE_DIRS * 482 + 400))

# The user-visible errors on the tree.
expect_fail nst_mkdir_eexist "File exists" mkdir /mnt/d0
expect_fail nst_rmdir_enotempty "Directory not empty" rmdir /mnt/d0
expect_fail nst_stat_enoent "No such file or directory" stat /mnt/d0/s8/f0
expect_fail nst_name_256_enametoolong "too long" touch /mnt/long/$(printf '%0256d' 1)
t nst_link_counts sh -c "test \$(stat -c %h /mnt/d0/s0/f0) = 2 && test \$(stat -c %h /mnt/d0/s0/f2) = 2 && test \$(stat -c %h /mnt/d0/L/f1) = 1 && test \$(stat -c %h /mnt/d0/s6) = 3 && test ! -e /mnt/d0/s0/f1"
t nst_rename_over_replaced test -e /mnt/d0/s4/f30 -a ! -e /mnt/d0/s3/f30
t nst_all_bytes_name_resolves sh -c 'cd /mnt/w && test -f "$(readlink all)/in"'
t nst_weird_names_count test "$(ls /mnt/w | grep -c '^n')" -ge 254

t nst_sync sync
t nst_umount umount /mnt
t nst_remount mount -t bucketfs $NST_DEVS /mnt
t nst_same_after_remount nst_same_as /tmp/nst.before
t nst_umount_2 umount /mnt
t nst_fsck_clean fsck_clean /dev/vda /dev/vdb /dev/vdc

t nst_mount_ro mount -t bucketfs -o ro $NST_DEVS /mnt
t nst_same_read_only nst_same_as /tmp/nst.before
expect_fail nst_mkdir_erofs "Read-only file system" mkdir /mnt/new
expect_fail nst_rm_erofs "Read-only file system" rm -f /mnt/d0/s0/f2
umount /mnt

# remount,ro then remount,rw on a read-write mount.
t nst_mount_rw mount -t bucketfs $NST_DEVS /mnt
t nst_remount_ro mount -o remount,ro /mnt
t nst_same_after_remount_ro nst_same_as /tmp/nst.before
expect_fail nst_mkdir_erofs_after_remount_ro "Read-only file system" mkdir /mnt/new
t nst_remount_rw mount -o remount,rw /mnt
t nst_same_after_remount_rw nst_same_as /tmp/nst.before
t nst_change_after_remount_rw sh -c "mkdir /mnt/new && mv /mnt/d1/s0/f2 /mnt/new/f2 && rm /mnt/d1/s0/f3"
nst_listing /tmp/nst.changed
t nst_listing_changed sh -c "! cmp -s /tmp/nst.before /tmp/nst.changed"
t nst_umount_3 umount /mnt
t nst_fsck_clean_after_remounts fsck_clean /dev/vda /dev/vdb /dev/vdc
t nst_mount_again mount -t bucketfs $NST_DEVS /mnt
t nst_changes_persist nst_same_as /tmp/nst.changed
t nst_moved_file_there test -f /mnt/new/f2 -a ! -e /mnt/d1/s0/f2 -a ! -e /mnt/d1/s0/f3
umount /mnt
rm -f /tmp/nst.before /tmp/nst.changed /tmp/nst.now /tmp/nst-build.sh

# ENOSPC on a small filesystem: a 1 MiB loop device with 4 KiB buckets.
cat >/tmp/nst-fill.sh <<'EOF'
# Creates files 100 at a time until a touch fails; prints how many were made and its error.
n=0
while [ $n -lt 100000 ]; do
	batch=
	k=0
	while [ $k -lt 100 ]; do
		batch="$batch f$n.$k"
		k=$((k + 1))
	done
	cd /mnt/fill || exit 2
	touch $batch 2>/tmp/nst-fill.err || break
	n=$((n + 1))
done
echo "nstree: ENOSPC fill: $n batches of 100 files, then: $(tail -n 1 /tmp/nst-fill.err)" >/tmp/nst-fill.out
grep -q "No space left on device" /tmp/nst-fill.err
EOF
dd if=/dev/zero of=/tmp/nst-small.img bs=1k count=1024 2>/dev/null
nst_loop=$(losetup -f)
losetup $nst_loop /tmp/nst-small.img
t nst_small_format bucketfs format --bucket-size 4k $nst_loop
t nst_small_mount mount -t bucketfs $nst_loop /mnt
mkdir /mnt/fill
t nst_enospc_not_a_hang timeout -s KILL 60 sh /tmp/nst-fill.sh
cat /tmp/nst-fill.out
t nst_enospc_rm_rf_frees timeout -s KILL 60 rm -rf /mnt/fill
t nst_enospc_create_again timeout -s KILL 60 sh -c "mkdir /mnt/again && touch /mnt/again/a /mnt/again/b"
t nst_enospc_umount umount /mnt
t nst_enospc_fsck_clean fsck_clean $nst_loop
t nst_enospc_mount_again mount -t bucketfs $nst_loop /mnt
t nst_enospc_created_there test -f /mnt/again/b -a ! -e /mnt/fill
umount /mnt
losetup -d $nst_loop
rm -f /tmp/nst-small.img /tmp/nst-fill.sh /tmp/nst-fill.err /tmp/nst-fill.out

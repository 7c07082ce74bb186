# SPDX-License-Identifier: GPL-2.0
# The namespace through the VFS, as a user sees it from busybox: mkdir, rmdir, touch, ln,
# ln -s, readlink, mv (within and across directories, over a file, a directory over an empty
# one, onto a non-empty one), rm, mknod, ls; chmod, chown, touch -d and truncate with stat
# checks; the errors (EEXIST, ENOTEMPTY, ENOENT, ENAMETOOLONG, ENOTDIR, EISDIR, EROFS); names
# of 255 bytes and with every byte but '/' and NUL; a few thousand names; link counts.
# After the changes everything is checked again with the inode and dentry caches dropped
# (what is seen comes from the btree, not from the VFS caches), and after unmount and mount.
# Disks: vda.

insmod /modules/bucketfs.ko
umount /mnt 2>/dev/null
t names_format bucketfs format --bucket-size 4k /dev/vda
t names_mount mount -t bucketfs /dev/vda /mnt
M=/mnt

# drop_caches: forget every unused dentry and inode, so the next look reads the store.
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# links PATH N / mode PATH OCTAL / ino PATH
links() { test "$(stat -c %h "$1")" = "$2"; }
ino() { stat -c %i "$1"; }

t names_root_empty test -z "$(ls -A $M)"
t names_root_links links $M 2

# mkdir, rmdir, link counts of directories (2 + subdirectories).
t names_mkdir mkdir $M/d
t names_mkdir_is_dir test -d $M/d
t names_root_links_after_mkdir links $M 3
t names_mkdir_sub mkdir $M/d/s1 $M/d/s2 $M/d/s3
t names_dir_links_subdirs links $M/d 5
t names_rmdir rmdir $M/d/s3
t names_rmdir_gone test ! -e $M/d/s3
t names_dir_links_after_rmdir links $M/d 4
t names_new_dir_links links $M/d/s1 2
expect_fail names_mkdir_eexist "File exists" mkdir $M/d
expect_fail names_rmdir_enotempty "Directory not empty" rmdir $M/d
expect_fail names_rmdir_enoent "No such file or directory" rmdir $M/nothing
expect_fail names_ls_enoent "No such file or directory" ls $M/nothing
expect_fail names_mkdir_parent_enoent "No such file or directory" mkdir $M/nothing/x

# touch, regular files, ENOTDIR, EISDIR.
t names_touch touch $M/f
t names_touch_regular test "$(stat -c %F $M/f)" = "regular empty file"
t names_touch_size0 test "$(stat -c %s $M/f)" = 0
t names_file_links links $M/f 1
expect_fail names_mkdir_under_file_enotdir "Not a directory" mkdir $M/f/x
expect_fail names_rmdir_file_enotdir "Not a directory" rmdir $M/f
expect_fail names_rename_dir_over_file_enotdir "Not a directory" mv -T $M/d $M/f
expect_fail names_unlink_dir_eisdir "Is a directory" unlink $M/d
expect_fail names_open_dir_write_eisdir "Is a directory" sh -c "echo x > $M/d"
expect_fail names_mkdir_over_file_eexist "File exists" mkdir $M/f
t names_read_empty test -z "$(cat $M/f)"
# Regular files hold data (t_data tests it): a write reads back; then empty again.
t names_write sh -c "echo x >> $M/f"
t names_write_reads_back test "$(cat $M/f)" = x
t names_write_size test "$(stat -c %s $M/f)" = 2
t names_write_truncate_empty truncate -s 0 $M/f
t names_write_empty_again test "$(stat -c %F $M/f)" = "regular empty file"

# Hard links.
t names_ln ln $M/f $M/d/hard
t names_ln_same_inode test "$(ino $M/f)" = "$(ino $M/d/hard)"
t names_ln_links links $M/f 2
expect_fail names_ln_eexist "File exists" ln $M/f $M/d/hard
expect_fail names_ln_dir_eperm "not permitted" ln $M/d $M/d2

# Symbolic links.
t names_symlink ln -s some/where $M/sl
t names_readlink test "$(readlink $M/sl)" = some/where
t names_symlink_size test "$(stat -c %s $M/sl)" = 10
t names_symlink_type test "$(stat -c %F $M/sl)" = "symbolic link"
t names_symlink_dir ln -s d $M/sld
t names_symlink_follow test -d $M/sld/s1
long_target=$(printf '%04000d' 7)
t names_symlink_long ln -s "$long_target" $M/sllong
t names_readlink_long test "$(readlink $M/sllong)" = "$long_target"
expect_fail names_symlink_eexist "File exists" ln -s x $M/sl

# Special files.
t names_mkfifo mkfifo $M/fifo
t names_fifo_type test -p $M/fifo
t names_mknod_char mknod $M/null c 1 3
t names_char_type test -c $M/null
t names_char_rdev test "$(stat -c '%t %T' $M/null)" = "1 3"
t names_char_opens sh -c "echo x > $M/null"

# rename: within a directory, across directories, over a file, a directory over an empty
# directory, onto a non-empty directory (ENOTEMPTY, nothing changed).
t names_mv_touch touch $M/a
a_ino=$(ino $M/a)
t names_mv_within mv $M/a $M/b
t names_mv_within_old_gone test ! -e $M/a
t names_mv_within_same_inode test "$(ino $M/b)" = "$a_ino"
t names_mv_across mv $M/b $M/d/b
t names_mv_across_gone test ! -e $M/b
t names_mv_across_there test "$(ino $M/d/b)" = "$a_ino"
t names_mv_over_prepare touch $M/x $M/y
x_ino=$(ino $M/x)
t names_mv_over_file mv $M/x $M/y
t names_mv_over_file_replaced test "$(ino $M/y)" = "$x_ino"
t names_mv_over_file_old_gone test ! -e $M/x
t names_mv_over_hardlink_prepare ln $M/y $M/y2
t names_mv_over_hardlink_prepare2 touch $M/z
t names_mv_over_hardlink mv $M/z $M/y2
t names_mv_over_hardlink_drops_link links $M/y 1
t names_dir_over_empty_prepare sh -c "mkdir $M/e1 $M/e2 && touch $M/e1/inside"
t names_dir_over_empty mv -T $M/e1 $M/e2
t names_dir_over_empty_moved test -e $M/e2/inside
t names_dir_over_empty_old_gone test ! -e $M/e1
t names_dir_over_empty_root_links links $M 4
t names_dir_onto_full_prepare sh -c "mkdir $M/n1 $M/n2 && touch $M/n2/z"
expect_fail names_dir_onto_full_enotempty "Directory not empty" mv -T $M/n1 $M/n2
t names_dir_onto_full_unchanged sh -c "test -d $M/n1 && test -e $M/n2/z"
t names_dir_onto_full_root_links links $M 6
t names_mv_dir_across_prepare sh -c "mkdir $M/p1 $M/p2 $M/p1/c"
t names_mv_dir_across mv $M/p1/c $M/p2/c
t names_mv_dir_across_old_parent links $M/p1 2
t names_mv_dir_across_new_parent links $M/p2 3
t names_mv_dir_dotdot test "$(ino $M/p2/c/..)" = "$(ino $M/p2)"
expect_fail names_mv_enoent "No such file or directory" mv $M/nothing $M/x2

# Attributes: chmod, chown, utimes, truncate of an empty file.
t names_attr_touch touch $M/g
t names_chmod chmod 640 $M/g
t names_chmod_read test "$(stat -c %a $M/g)" = 640
t names_chmod_suid chmod 4755 $M/g
t names_chmod_suid_read test "$(stat -c %a $M/g)" = 4755
t names_chown chown 12:34 $M/g
t names_chown_read test "$(stat -c %u:%g $M/g)" = 12:34
t names_chown_clears_suid test "$(stat -c %a $M/g)" = 755
t names_utimes touch -d "2001-02-03 04:05:06" $M/g
want_mtime=$(date -d "2001-02-03 04:05:06" +%s)
t names_utimes_read test "$(stat -c %Y $M/g)" = "$want_mtime"
t names_utimes_atime test "$(stat -c %X $M/g)" = "$want_mtime"
t names_utimes_kept touch -d "2001-02-03 04:05:06" $M/tm
t names_truncate truncate -s 12345 $M/g
t names_truncate_size test "$(stat -c %s $M/g)" = 12345
t names_truncate_reads_zeros sh -c "head -c 12345 /dev/zero | cmp - $M/g"
t names_truncate_sets_mtime test "$(stat -c %Y $M/g)" -gt "$want_mtime"
t names_chmod_dir chmod 700 $M/d
t names_chmod_dir_read test "$(stat -c %a $M/d)" = 700

# Names: 255 bytes, 256 bytes (ENAMETOOLONG), spaces, newlines, high bytes, every byte but
# '/' and NUL (each between two letters: a command substitution drops trailing newlines).
n255=$(printf '%0255d' 5)
n256=$(printf '%0256d' 6)
t names_255_touch touch $M/$n255
t names_255_exists test -e $M/$n255
t names_255_listed sh -c "ls $M | grep -qx $n255"
t names_255_mkdir mkdir $M/d/$n255
t names_255_rename mv $M/$n255 $M/d/s1/$n255
expect_fail names_256_touch "File name too long" touch $M/$n256
expect_fail names_256_mkdir "File name too long" mkdir $M/$n256
expect_fail names_256_rename "File name too long" mv $M/f $M/$n256
expect_fail names_256_stat "File name too long" stat $M/$n256
t names_odd_dir mkdir $M/odd
sp="with  spaces "
nl=$(printf 'new\nline')
hi=$(printf 'x\001\177\200\351\377y')
t names_space touch "$M/odd/$sp"
t names_newline touch "$M/odd/$nl"
t names_high touch "$M/odd/$hi"
t names_space_exists test -e "$M/odd/$sp"
t names_newline_exists test -e "$M/odd/$nl"
t names_high_exists test -e "$M/odd/$hi"
t names_every_byte_dir mkdir $M/bytes
i=1
while [ $i -le 255 ]; do
	[ $i != 47 ] && touch "$M/bytes/a$(printf "\\$(printf %03o $i)")b"
	i=$((i + 1))
done
# count DIR: entries of DIR, whatever bytes their names hold (a glob, no ls parsing).
count() {
	c=0
	for e in "$1"/* "$1"/.[!.]* "$1"/..?*; do
		[ -e "$e" ] || [ -L "$e" ] && c=$((c + 1))
	done
	echo $c
}
t names_every_byte_count test "$(count $M/bytes)" = 254
names_check_bytes() {
	i=1
	while [ $i -le 255 ]; do
		if [ $i != 47 ] && ! [ -e "$M/bytes/a$(printf "\\$(printf %03o $i)")b" ]; then
			echo "byte $i missing"
			return 1
		fi
		i=$((i + 1))
	done
}
t names_every_byte_each names_check_bytes

# A few thousand names, listed (readdir over many getdents calls) and removed.
t names_many_dir mkdir $M/many
t names_many_create sh -c "seq 1 3000 | sed 's|^|$M/many/f|' | xargs touch"
t names_many_count test "$(ls $M/many | wc -l)" = 3000
t names_many_exact sh -c "test \"\$(ls $M/many | sort | md5sum)\" = \"\$(seq 1 3000 | sed 's/^/f/' | sort | md5sum)\""
t names_many_dirs sh -c "seq 1 300 | sed 's|^|$M/many/d|' | xargs mkdir"
t names_many_dir_links links $M/many 302

# statfs: inodes in use (files less free files) grow by one with a file; free files are
# no more than before (the buckets its nodes took, if any).
used=$(( $(stat -f -c %c $M) - $(stat -f -c %d $M) ))
ffree=$(stat -f -c %d $M)
t names_statfs_touch touch $M/one_more
t names_statfs_used test $(( $(stat -f -c %c $M) - $(stat -f -c %d $M) )) = $((used + 1))
t names_statfs_ffree test "$(stat -f -c %d $M)" -le "$ffree"

# Everything again from the store: with the caches dropped, then after unmount and mount.
# names_store_checks WHEN
names_store_checks() {
	t names_${1}_root_links links $M 11
	t names_${1}_dir_links links $M/d 5
	t names_${1}_hard_same_inode test "$(ino $M/f)" = "$(ino $M/d/hard)"
	t names_${1}_hard_links links $M/d/hard 2
	t names_${1}_readlink test "$(readlink $M/sl)" = some/where
	t names_${1}_readlink_long test "$(readlink $M/sllong)" = "$long_target"
	t names_${1}_fifo test -p $M/fifo
	t names_${1}_char_rdev test "$(stat -c '%t %T' $M/null)" = "1 3"
	t names_${1}_renamed test "$(ino $M/d/b)" = "$a_ino"
	t names_${1}_over_file test "$(ino $M/y)" = "$x_ino"
	t names_${1}_dir_over_empty test -e $M/e2/inside
	t names_${1}_onto_full_unchanged sh -c "test -d $M/n1 && test -e $M/n2/z"
	t names_${1}_dir_across links $M/p2 3
	t names_${1}_mode test "$(stat -c %a $M/g)" = 755
	t names_${1}_owner test "$(stat -c %u:%g $M/g)" = 12:34
	t names_${1}_size test "$(stat -c %s $M/g)" = 12345
	t names_${1}_dir_mode test "$(stat -c %a $M/d)" = 700
	t names_${1}_255 test -e $M/d/s1/$n255
	t names_${1}_odd sh -c "test -e '$M/odd/$sp' && test -e \"$M/odd/\$(printf 'new\nline')\""
	t names_${1}_every_byte names_check_bytes
	t names_${1}_many_count test "$(ls $M/many | wc -l)" = 3300
	t names_${1}_many_links links $M/many 302
	t names_${1}_mtime test "$(stat -c %Y $M/tm)" = "$want_mtime"
	t names_${1}_statfs_used test $(( $(stat -f -c %c $M) - $(stat -f -c %d $M) )) = $((used + 1))
}
drop_caches
names_store_checks store
t names_remount_umount umount $M
t names_remount_mount mount -t bucketfs /dev/vda $M
names_store_checks mounted

# rm: files, links, directories, the lot.
t names_rm_file rm $M/f
t names_rm_file_gone test ! -e $M/f
t names_rm_hard_left links $M/d/hard 1
t names_rm_symlink rm $M/sl
t names_rm_symlink_gone test ! -L $M/sl
expect_fail names_rm_enoent "No such file or directory" rm $M/f
t names_rm_many rm -r $M/many
t names_rm_many_gone test ! -e $M/many
t names_rm_tree rm -r $M/bytes $M/odd $M/d $M/p1 $M/p2
t names_rm_root_links links $M 5

# Read-only: every change refused with EROFS; reading works.
t names_ro_prepare sh -c "mkdir $M/rod && touch $M/rof && ln -s rof $M/rol"
t names_remount_ro mount -o remount,ro $M
t names_ro_ls test "$(ls $M/rod | wc -l)" = 0
expect_fail names_ro_mkdir "Read-only file system" mkdir $M/x
expect_fail names_ro_touch_new "Read-only file system" touch $M/newfile
expect_fail names_ro_utimes "Read-only file system" touch $M/rof
expect_fail names_ro_rmdir "Read-only file system" rmdir $M/rod
expect_fail names_ro_rm "Read-only file system" rm -f $M/rof
expect_fail names_ro_mv "Read-only file system" mv $M/rof $M/rof2
expect_fail names_ro_ln "Read-only file system" ln $M/rof $M/rof3
expect_fail names_ro_symlink "Read-only file system" ln -s x $M/rol2
expect_fail names_ro_mkfifo "Read-only file system" mkfifo $M/fifo2
expect_fail names_ro_chmod "Read-only file system" chmod 600 $M/rof
expect_fail names_ro_chown "Read-only file system" chown 1:1 $M/rof
expect_fail names_ro_truncate "Read-only file system" truncate -s 5 $M/rof
expect_fail names_ro_write "Read-only file system" sh -c "echo y >> $M/rof"
t names_ro_unchanged sh -c "test -e $M/rof && test -d $M/rod && test \"\$(readlink $M/rol)\" = rof && test ! -e $M/x"
t names_remount_rw mount -o remount,rw $M
t names_rw_again mkdir $M/x
t names_umount umount $M
t names_mount_ro mount -t bucketfs -o ro /dev/vda $M
t names_mount_ro_reads sh -c "test -d $M/x && test -e $M/rof && test \"\$(readlink $M/rol)\" = rof"
expect_fail names_mount_ro_rm "Read-only file system" rm -f $M/rof
expect_fail names_mount_ro_mkdir "Read-only file system" mkdir $M/made_on_ro
expect_fail names_mount_ro_chmod "Read-only file system" chmod 700 $M
t names_umount_ro umount $M
t names_rmmod rmmod bucketfs

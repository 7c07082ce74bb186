# SPDX-License-Identifier: GPL-2.0
# Deleted names give their buckets back: the commit takes the btree's emptied nodes out of the
# tree (Btree::prune_empty), so a tree that grew to many leaves shrinks again once its keys are
# deleted, and the buckets count as free again.

modprobe_bucketfs() { lsmod | grep -q '^bucketfs' || insmod /modules/bucketfs.ko; }
modprobe_bucketfs
M=/mnt
t prune_format bucketfs format /dev/vda
t prune_mount mount -t bucketfs /dev/vda $M
d=$(fs_dir)
nodes_of() { sed -n 's/^nodes //p' "$d/internal/btree_stats"; }
free_of() { cat "$d/dev-0/free"; }
t prune_create sh -c "mkdir $M/dir && cd $M/dir && i=0; while [ \$i -lt 3000 ]; do : > file_with_a_longer_name_\$i; i=\$((i + 1)); done"
t prune_umount_full umount $M
t prune_mount_full mount -t bucketfs /dev/vda $M
d=$(fs_dir)
full=$(nodes_of)
free_full=$(free_of)
t prune_grew test "$full" -gt 20
t prune_delete rm -rf $M/dir
t prune_umount_empty umount $M
t prune_mount_empty mount -t bucketfs /dev/vda $M
d=$(fs_dir)
empty=$(nodes_of)
t prune_shrank sh -c "test $empty -lt 5 || { echo nodes $full then $empty; false; }"
# Every pruned node's bucket is free or waits for discard again.
back=$(( $(free_of) + $(cat $d/dev-0/need_discard) ))
t prune_buckets_back sh -c "test $back -ge $((free_full + full - empty)) || { echo free $free_full then $back; false; }"
t prune_ls_empty sh -c "test -z \"\$(ls -A $M)\""
t prune_umount umount $M
t prune_fsck bucketfs fsck /dev/vda

# A middle part of the tree emptied: three directories of 1500 names, the middle one removed;
# the commit takes out the subtrees that held only its keys (first children among them), and
# the next mount loads the tree (every node's keys within the range its parent gives it) with
# the other two directories whole.
t prune_mid_format bucketfs format /dev/vda
t prune_mid_mount mount -t bucketfs /dev/vda $M
t prune_mid_create sh -c "for d in a b c; do mkdir $M/\$d; i=0; while [ \$i -lt 1500 ]; do : > $M/\$d/name_of_some_length_\$i; i=\$((i + 1)); done; done"
t prune_mid_rm rm -rf $M/b
t prune_mid_umount umount $M
t prune_mid_mount_again mount -t bucketfs /dev/vda $M
t prune_mid_a_whole sh -c "test \$(ls $M/a | wc -l) = 1500 && test \$(ls $M/c | wc -l) = 1500 && test ! -e $M/b"
t prune_mid_create_in_gap sh -c "mkdir $M/b && : > $M/b/again && ls $M/b/again"
t prune_mid_umount2 umount $M
t prune_mid_fsck bucketfs fsck /dev/vda
t prune_mid_mount3 mount -t bucketfs /dev/vda $M
t prune_mid_again_there ls $M/b/again
t prune_mid_umount3 umount $M

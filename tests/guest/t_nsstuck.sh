# SPDX-License-Identifier: GPL-2.0
# A starved metadata member at runtime, in make check's main boot (the parked ways out need a
# slow discard, so they run in a boot of their own: tests/host/nsstuck.sh with
# tests/guest/nsstuck-parked.sh):
# (1) a member with no empty bucket at all (free 0, need_discard 0: data buckets) and
#     metadata_replicas=2: a mkdir fails at once with ENOSPC (no hang, nothing created);
#     echo 1 > options/metadata_replicas, and it succeeds; unmount, fsck clean, mount, there.
# (2) a member starved by need_discard buckets, discard off: the discard worker frees them at
#     mount without I/O, so a mkdir does not park; unmount, fsck clean.
# Disks: vda, vdb.

insmod /modules/bucketfs.ko 2>/dev/null
umount /mnt 2>/dev/null
NSS_DEVS=/dev/vda:/dev/vdb

# nss_listing: the names under /mnt with their type and link count, sorted.
nss_listing() { (cd /mnt && find . -exec stat -c '%F %h %n' {} + | sort); }

# (1) No empty bucket on vdb.
cat >/tmp/nss-full.toml <<'EOF'
bucket_size = "4k"
metadata_replicas = 2
discard = false
[[device]]
free = 4000
[[device]]
free = 0
EOF
t full_scenario sh -c "bucketfs scenario /tmp/nss-full.toml /dev/vda /dev/vdb >/dev/null"
t full_mount mount -t bucketfs $NSS_DEVS /mnt
nss_d=$(fs_dir)
t full_second_member_has_no_empty_bucket \
	test "$(cat $nss_d/dev-1/free) $(cat $nss_d/dev-1/need_discard)" = "0 0"
nss_start=$(now_ms)
expect_fail full_mkdir_enospc "No space left on device" timeout -s KILL 30 mkdir /mnt/x
echo "nsstuck: ENOSPC after $(( $(now_ms) - nss_start )) ms"
t full_mkdir_enospc_without_parking grep -q "^parks: 0" $nss_d/internal/alloc_debug
t full_nothing_created test ! -e /mnt/x
t full_replicas_1 sysfs_write $nss_d/options/metadata_replicas 1
t full_mkdir_with_one_replica timeout -s KILL 30 mkdir /mnt/x
t full_umount umount /mnt
t full_fsck_clean fsck_clean /dev/vda /dev/vdb
t full_mount_again mount -t bucketfs $NSS_DEVS /mnt
t full_tree_persists test "$(nss_listing)" = "$(printf '%s\n' 'directory 3 .' 'directory 2 ./x' | sort)"
umount /mnt

# (2) need_discard on vdb, discard off.
cat >/tmp/nss-nd.toml <<'EOF'
bucket_size = "4k"
metadata_replicas = 2
discard = false
[[device]]
free = 4000
[[device]]
free = 0
need_discard = 2000
EOF
t nd_scenario sh -c "bucketfs scenario /tmp/nss-nd.toml /dev/vda /dev/vdb >/dev/null"
t nd_mount mount -t bucketfs $NSS_DEVS /mnt
nss_d=$(fs_dir)
t nd_need_discard_freed_at_mount wait_for 10 sh -c "test \$(cat $nss_d/dev-1/need_discard) = 0"
t nd_freed_without_discard test "$(cat $nss_d/dev-1/freed_without_discard)" = 2000
t nd_mkdir_does_not_park timeout -s KILL 30 mkdir /mnt/y
t nd_never_parked grep -q "^parks: 0" $nss_d/internal/alloc_debug
t nd_umount umount /mnt
t nd_fsck_clean fsck_clean /dev/vda /dev/vdb
t nd_mount_again mount -t bucketfs $NSS_DEVS /mnt
t nd_tree_persists test "$(nss_listing)" = "$(printf '%s\n' 'directory 3 .' 'directory 2 ./y' | sort)"
umount /mnt
rm -f /tmp/nss-full.toml /tmp/nss-nd.toml

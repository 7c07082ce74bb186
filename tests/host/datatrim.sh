#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# fstrim gives deleted file data back to the device: holes in the host's disk image where the
# data was. The filesystem under test (DATA_FS: bucketfs, or ext4 for the reference) on one
# 64 MiB disk, mounted with nodiscard, in three boots on the kept image:
#   1. format, write 40 MiB of files whose every 4 KiB block starts with a marker, sync, unmount;
#      the host finds the marker blocks in the image (where the data is);
#   2. mount, delete every file, sync, unmount: with nodiscard the data is still on the image
#      (so what the third boot changes is fstrim's doing);
#   3. mount, fstrim -v, unmount, the checker clean: every block that held the marker is now a
#      hole in the image, or (reused by the filesystem since) holds something else; at least
#      90% of them are holes.
#
#   tests/host/datatrim.sh LOGDIR
#
# Prints "HOST-TEST ok NAME" / "HOST-TEST FAIL NAME: WHY" lines.
NAME=datatrim
. "$(dirname "$0")/lib.sh"

fs=${DATA_FS:-bucketfs}
marker="BUCKETFS-DATATRIM-$(date +%s)"
bins=(--bin fstrim)
[ "$fs" = ext4 ] && bins+=(--bin mkfs.ext4 --bin e2fsck --file /etc/mke2fs.conf:/etc/mke2fs.conf)
echo "$marker" >"$work/marker"

# guest BOOT_SCRIPT TAG: one boot on the kept disk; its exit status.
guest() {
	BUCKETFS_VM_LOG=$logs/$2-console.log scripts/vm.sh --disk 64M --keep-disks "$work/disks" \
		--timeout 300 --file tests/guest:/root/tests --file "$work/marker:/root/marker" \
		"${bins[@]}" "$1" DATA_FS="$fs" >"$logs/$2.log" 2>&1
}
head_lines='for a in "$@"; do [ -n "$a" ] && export "$a"; done
. /root/tests/lib.sh
. /root/tests/datafs.sh
insmod /modules/bucketfs.ko 2>/dev/null'

cat >"$work/fill.sh" <<G
$head_lines
datafs_format /dev/vda || exit 1
datafs_mount -o nodiscard /dev/vda || exit 1
# One 4 KiB block: the marker, then random bytes; a 1 MiB file is 256 of them.
{ printf '%s' "\$(cat /root/marker)"; head -c \$((4096 - \$(cat /root/marker | tr -d '\n' | wc -c))) /dev/urandom; } >/tmp/blk
for i in \$(seq 256); do cat /tmp/blk; done >/tmp/mib
for i in \$(seq 40); do cp /tmp/mib /mnt/f\$i || exit 1; done
sync
echo "FILLED 40 MiB, df: \$(df -k /mnt | tail -n 1)"
umount /mnt || exit 1
G
cat >"$work/delete.sh" <<G
$head_lines
datafs_mount -o nodiscard /dev/vda || exit 1
rm -f /mnt/f* && sync || exit 1
echo "DELETED, df: \$(df -k /mnt | tail -n 1)"
umount /mnt || exit 1
G
cat >"$work/trim.sh" <<G
$head_lines
datafs_mount -o nodiscard /dev/vda || exit 1
trim=\$(/usr/sbin/fstrim -v /mnt 2>&1)
trim_st=\$?
echo "FSTRIM \$trim (status \$trim_st)"
echo "TRIMMED, df: \$(df -k /mnt | tail -n 1)"
umount /mnt || exit 1
datafs_fsck /dev/vda && echo "FSCK-CLEAN"
G

# markers IMAGE: the 4 KiB block numbers of IMAGE that start with the marker, one a line.
markers() {
	python3 - "$1" "$marker" <<'P'
import sys
img, marker = sys.argv[1], sys.argv[2].encode()
with open(img, "rb") as f:
    b = 0
    while True:
        blk = f.read(4096)
        if not blk:
            break
        if blk.startswith(marker):
            print(b)
        b += 1
P
}

rm -rf "$work/disks"
guest "$work/fill.sh" fill
status=$?
tr -d '\r' <"$logs/fill-console.log" | grep -E '^FILLED' | sed "s/^/datatrim: $fs: /"
markers "$work/disks/disk0.img" >"$work/m1"
n1=$(grep -c . "$work/m1")
echo "datatrim: $fs: $n1 marker blocks on the image after the fill"
if [ $status = 0 ] && [ "$n1" -ge 10240 ]; then
	ok "${fs}_fill_40mib_on_the_image"
else
	fail "${fs}_fill_40mib_on_the_image" "vm.sh exited $status, $n1 marker blocks (10240 written; see $logs/fill.log)"
	exit 0
fi

guest "$work/delete.sh" delete
status=$?
tr -d '\r' <"$logs/delete-console.log" | grep -E '^DELETED' | sed "s/^/datatrim: $fs: /"
n2=$(markers "$work/disks/disk0.img" | grep -c .)
echo "datatrim: $fs: $n2 marker blocks on the image after deleting with nodiscard"
if [ $status = 0 ] && [ "$n2" -ge $((n1 / 2)) ]; then
	ok "${fs}_nodiscard_delete_leaves_the_data"
else
	fail "${fs}_nodiscard_delete_leaves_the_data" "vm.sh exited $status; $n2 of $n1 marker blocks left before fstrim"
fi

guest "$work/trim.sh" trim
status=$?
c3=$(tr -d '\r' <"$logs/trim-console.log")
echo "$c3" | grep -E '^(FSTRIM|TRIMMED)' | sed "s/^/datatrim: $fs: /"
if [ $status = 0 ] && echo "$c3" | grep -q '^FSTRIM .*(status 0)$'; then
	ok "${fs}_fstrim_succeeds"
else
	fail "${fs}_fstrim_succeeds" "vm.sh exited $status: $(echo "$c3" | grep '^FSTRIM')"
fi
if echo "$c3" | grep -q '^FSCK-CLEAN$'; then
	ok "${fs}_checker_clean_after_fstrim"
else
	fail "${fs}_checker_clean_after_fstrim" "see $logs/trim-console.log"
fi
out=$(python3 - "$work/disks/disk0.img" "$work/m1" "$marker" <<'P'
import os, sys
img, listing, marker = sys.argv[1], sys.argv[2], sys.argv[3].encode()
blocks = [int(x) for x in open(listing).read().split()]
fd = os.open(img, os.O_RDONLY)
def hole(b):
    try:
        return os.lseek(fd, b * 4096, os.SEEK_DATA) >= (b + 1) * 4096
    except OSError:
        return True
holes = marker_left = other = 0
left = []
for b in blocks:
    if hole(b):
        holes += 1
        continue
    os.lseek(fd, b * 4096, os.SEEK_SET)
    if os.read(fd, len(marker)) == marker:
        marker_left += 1
        left.append(b)
    else:
        other += 1
print(f"{len(blocks)} {holes} {marker_left} {other} {left[:5]}")
P
)
read -r nb holes left other first <<<"$out"
echo "datatrim: $fs: of the $nb blocks the data was in: $holes holes, $other reused, $left still hold the deleted data ${first}"
if [ "$left" = 0 ] && [ $((holes * 10)) -ge $((nb * 9)) ]; then
	ok "${fs}_fstrim_leaves_holes_where_the_data_was"
else
	fail "${fs}_fstrim_leaves_holes_where_the_data_was" "$holes of $nb are holes, $left still hold deleted data (e.g. blocks $first)"
fi

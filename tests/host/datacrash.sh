#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Power cuts while file data is written, from the host (scripts/vm.sh --kill-at). Boot 1 formats
# the filesystem under test (DATA_FS: bucketfs, metadata_replicas=2 over vda and vdb; or ext4 on
# vda), mounts it, starts fio in the background (4 KiB random writes with an fsync every 4, so
# the kill lands in the middle of fio's I/O as well) and runs a seeded workload
# (tests/host/datacrash_model.py gen): 4 KiB records written to 4 files (appends, overwrites,
# writes past the end, a quarter of them O_DIRECT), each record's content following from its
# file, block, generation and the seed, with an fsync, an fdatasync or a syncfs every few
# writes, printing "SYNCED k end" once sync k returned. QEMU is killed at a seeded random delay
# after the workload starts. Boot 2 on the kept disks: (bucketfs) `bucketfs fsck` before the
# mount is clean, the mount replays, each file is copied to a scratch disk for the host to read,
# the unmount, then the checker is clean again. The host checks every block of every file: each
# block covered by a returned sync holds its last synced record or a later one, never anything
# else; each file is at least as long as what was synced (datacrash_model.py check).
#
#   tests/host/datacrash.sh LOGDIR
#
# 3 power cuts (BUCKETFS_FULL=1: 12; BUCKETFS_DATACRASH_POINTS sets it). The seed of the
# workloads and the delays is printed; BUCKETFS_DATACRASH_SEED repeats it (where the guest is
# when the kill lands still varies). DATA_FS=ext4 runs the same on ext4 (needs mkfs.ext4 and
# e2fsck on the host for --bin).
# Prints "HOST-TEST ok NAME" / "HOST-TEST FAIL NAME: WHY" lines.
NAME=datacrash
. "$(dirname "$0")/lib.sh"

seed=${BUCKETFS_DATACRASH_SEED:-$(date +%s)}
points=${BUCKETFS_DATACRASH_POINTS:-3}
[ "${BUCKETFS_FULL:-0}" = 1 ] && [ -z "${BUCKETFS_DATACRASH_POINTS:-}" ] && points=12
nops=${BUCKETFS_DATACRASH_OPS:-3000}
fs=${DATA_FS:-bucketfs}
max_delay_ms=${BUCKETFS_DATACRASH_MAX_MS:-4000}
delays=$(awk -v seed="$seed" -v max="$max_delay_ms" -v n="$points" \
	'BEGIN { srand(seed); for (i = 0; i < n; i++) printf "%d ", 300 + int(rand() * max) }')
echo "datacrash: $fs: seed $seed: $points power cuts at ${delays}ms after the workload starts, $nops operations (BUCKETFS_DATACRASH_SEED=$seed repeats them)"

bins=(--bin fio)
[ "$fs" = ext4 ] && bins+=(--bin mkfs.ext4 --bin e2fsck --file /etc/mke2fs.conf:/etc/mke2fs.conf)

# Boot 1: the workload, read from /root/ops.txt, until the kill.
cat >"$work/workload.sh" <<'G'
for a in "$@"; do [ -n "$a" ] && export "$a"; done
. /root/tests/lib.sh
. /root/tests/datafs.sh
insmod /modules/bucketfs.ko 2>/dev/null
seed=$(cat /root/seed)
DATA_FORMAT_ARGS="--bucket-size 64k --metadata-replicas 2"
datafs_format /dev/vda /dev/vdb || exit 1
datafs_mount /dev/vda /dev/vdb || exit 1
mkdir /mnt/bg || exit 1
fio --name=bg --directory=/mnt/bg --rw=randwrite --bs=4k --size=4M --fsync=4 --time_based \
	--runtime=600 --output=/tmp/bg.log &
echo "DATACRASH-SEED $seed"
echo "DATACRASH-MARKER"
k=0
start=$(now_ms)
while read -r op f b g d; do
	case $op in
	w)
		printf '%-4095s\n' "datacrash $seed file $f block $b gen $g" >/tmp/rec
		if [ "$d" = 1 ]; then
			dd if=/tmp/rec of=/mnt/f$f bs=4096 seek=$b conv=notrunc oflag=direct 2>/tmp/dd.err
		else
			dd if=/tmp/rec of=/mnt/f$f bs=4096 seek=$b conv=notrunc 2>/tmp/dd.err
		fi ;;
	s) sync /mnt/f$f ;;
	d) sync -d /mnt/f$f ;;
	S) sync -f /mnt ;;
	*) echo "unknown operation $op"; exit 1 ;;
	esac
	rc=$?
	if [ $rc != 0 ]; then
		echo "OPFAIL $k: $op $f $b $g $d: status $rc $(cat /tmp/dd.err 2>/dev/null | tail -n 1)"
		exit 1
	fi
	case $op in
	s | d | S) echo "SYNCED $k end" ;;
	esac
	k=$((k + 1))
done </root/ops.txt
echo "WORKLOAD-DONE $k ops in $(( $(now_ms) - start )) ms"
sleep 600
G

# Boot 2: the checker before the mount (bucketfs), mount, each file to vdc, unmount, checker.
cat >"$work/check.sh" <<'G'
for a in "$@"; do [ -n "$a" ] && export "$a"; done
. /root/tests/lib.sh
. /root/tests/datafs.sh
insmod /modules/bucketfs.ko 2>/dev/null
if [ "$DATA_FS" = bucketfs ]; then
	bucketfs fsck /dev/vda /dev/vdb >/tmp/fsck1 2>&1
	echo "FSCK-BEFORE $? end"
	tail -n 5 /tmp/fsck1
fi
datafs_mount /dev/vda /dev/vdb || { echo "MOUNT-FAILED"; exit 1; }
echo "MOUNTED end"
for f in 0 1 2 3; do
	[ -e /mnt/f$f ] || continue
	echo "SIZE $f $(stat -c %s /mnt/f$f)"
	dd if=/mnt/f$f of=/dev/vdc bs=4096 seek=$((f * 512)) conv=notrunc 2>/dev/null || echo "READFAIL $f"
done
sync
ls -la /mnt /mnt/bg
umount /mnt || { echo "UMOUNT-FAILED"; exit 1; }
datafs_fsck /dev/vda /dev/vdb >/tmp/fsck2 2>&1
echo "FSCK-AFTER $? end"
tail -n 5 /tmp/fsck2
G

run=0
for delay in $delays; do
	run=$((run + 1))
	tag="cut${run}_${delay}ms"
	python3 tests/host/datacrash_model.py gen "$seed$run" "$nops" >"$work/ops.txt"
	echo "$seed$run" >"$work/seed"
	cp "$work/ops.txt" "$logs/$tag-ops.txt"
	rm -rf "$work/disks"
	BUCKETFS_VM_LOG=$logs/$tag-boot1.log scripts/vm.sh --disk 64M --disk 64M \
		--keep-disks "$work/disks" --kill-at DATACRASH-MARKER:"$delay" --timeout 300 \
		--file tests/guest:/root/tests --file "$work/ops.txt:/root/ops.txt" \
		--file "$work/seed:/root/seed" "${bins[@]}" "$work/workload.sh" DATA_FS="$fs" \
		>"$logs/$tag-vm1.log" 2>&1
	status=$?
	c1=$(tr -d '\r' <"$logs/$tag-boot1.log")
	# vm.sh says 137 after its kill; if the console ended before the killer noted the kill, it
	# says the guest died, with QEMU's status 137 (SIGKILL: only the killer sends it).
	if { [ $status = 137 ] || { [ $status = 125 ] &&
		grep -q 'the guest died before the script ended (qemu status 137)' "$logs/$tag-vm1.log"; }; } &&
		! echo "$c1" | grep -q '^OPFAIL'; then
		ok "${tag}_workload_cut_by_a_power_cut"
	else
		fail "${tag}_workload_cut_by_a_power_cut" \
			"vm.sh exited $status, not 137; $(echo "$c1" | grep -E '^OPFAIL|WORKLOAD-DONE' | head -n 2) (see $logs/$tag-vm1.log, seed $seed)"
		continue
	fi
	nsync=$(echo "$c1" | grep -c '^SYNCED .* end$')
	echo "datacrash: $tag: $nsync sync(s) returned, last after op $(echo "$c1" | sed -n 's/^SYNCED \([0-9]*\) end$/\1/p' | tail -n 1)$(echo "$c1" | sed -n 's/^WORKLOAD-DONE/; workload done:/p')"

	BUCKETFS_VM_LOG=$logs/$tag-boot2.log scripts/vm.sh --disk 64M --disk 64M --disk 8M \
		--keep-disks "$work/disks" --timeout 300 --file tests/guest:/root/tests "${bins[@]}" \
		"$work/check.sh" DATA_FS="$fs" >"$logs/$tag-vm2.log" 2>&1
	status=$?
	c2=$(tr -d '\r' <"$logs/$tag-boot2.log")
	if [ $status = 0 ]; then
		ok "${tag}_boot_after_the_cut"
	else
		fail "${tag}_boot_after_the_cut" "vm.sh exited $status (see $logs/$tag-vm2.log, seed $seed)"
	fi
	if [ "$fs" = bucketfs ]; then
		if echo "$c2" | grep -q '^FSCK-BEFORE 0 end$'; then
			ok "${tag}_fsck_clean_before_mount"
		else
			fail "${tag}_fsck_clean_before_mount" "$(echo "$c2" | grep -A3 '^FSCK-BEFORE' | tr '\n' ' ') (seed $seed)"
		fi
	fi
	if echo "$c2" | grep -q '^MOUNTED end$'; then
		ok "${tag}_mount_after_the_cut"
	else
		fail "${tag}_mount_after_the_cut" "the mount failed (see $logs/$tag-boot2.log, seed $seed)"
		continue
	fi
	cat "$logs/$tag-boot1.log" "$logs/$tag-boot2.log" >"$work/both.log"
	if out=$(python3 tests/host/datacrash_model.py check "$work/ops.txt" "$work/both.log" \
		"$work/disks/disk2.img") && ! echo "$c2" | grep -q '^READFAIL'; then
		echo "$out"
		ok "${tag}_every_synced_block_intact"
	else
		echo "$out"
		fail "${tag}_every_synced_block_intact" "$(echo "$c2" | grep '^READFAIL' | head -n 2) $(echo "$out" | sed -n 2,4p | tr '\n' ' ') (seed $seed)"
	fi
	if echo "$c2" | grep -q '^FSCK-AFTER 0 end$'; then
		ok "${tag}_fsck_clean_after_unmount"
	else
		fail "${tag}_fsck_clean_after_unmount" "$(echo "$c2" | grep -A3 '^FSCK-AFTER' | tr '\n' ' ') (seed $seed)"
	fi
done

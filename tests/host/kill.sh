#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The power-cut harness (scripts/vm.sh --kill-at) on raw disks, no filesystem: the guest writes
# numbered 4 KiB records to /dev/vda, each with an fsync, and prints "SYNCED n end" once a
# record's write and fsync have returned; after the first few it prints the marker and goes on
# writing until QEMU is killed from the host at a seeded random delay. The kept image must hold
# every record the console called synced. A control on /dev/vdb shows that the kill is a power
# cut and not a shutdown: records written there through the guest's page cache without a sync
# (the device held open, so no close writes them back) must not all be on the image.
#
#   tests/host/kill.sh LOGDIR
#
# Three runs; the delays come from a seed that is printed (BUCKETFS_KILL_SEED repeats the delays;
# where the guest is when the kill lands still varies from run to run).
# Prints "HOST-TEST ok NAME" / "HOST-TEST FAIL NAME: WHY" lines.
NAME=kill
. "$(dirname "$0")/lib.sh"

seed=${BUCKETFS_KILL_SEED:-$(date +%s)}
max_delay_ms=2000
delays=$(awk -v seed="$seed" -v max=$max_delay_ms \
	'BEGIN { srand(seed); for (i = 0; i < 3; i++) printf "%d ", int(rand() * max) }')
echo "kill: seed $seed: kills ${delays}ms after the marker (BUCKETFS_KILL_SEED=$seed repeats them)"

# record RUN N: the 4096 bytes of record N of run RUN (the guest makes them the same way).
record() { printf '%-4095s\n' "bucketfs kill test $1 record $2"; }

run=0
for delay in $delays; do
	run=$((run + 1))
	tag="run${run}_${delay}ms"
	id="$seed-$run"
	cat >"$work/writer.sh" <<G
record() { printf '%-4095s\n' "bucketfs kill test $id record \$1"; }
# The control: 8 records through the page cache of a device held open, never synced.
exec 3<>/dev/vdb
n=0
while [ \$n -lt 8 ]; do
	record \$n >/tmp/rec
	dd if=/tmp/rec of=/dev/vdb bs=4096 seek=\$n count=1 conv=notrunc 2>/dev/null || exit 1
	echo "WROTE \$n end"
	n=\$((n + 1))
done
n=0
while [ \$n -lt 16384 ]; do
	record \$n >/tmp/rec
	dd if=/tmp/rec of=/dev/vda bs=4096 seek=\$n count=1 conv=notrunc,fsync 2>/dev/null || exit 1
	echo "SYNCED \$n end"
	[ \$n = 4 ] && echo "KILL-TEST-MARKER"
	n=\$((n + 1))
done
echo "the disk is full and no kill came"
exit 1
G
	rm -rf "$work/disks"
	BUCKETFS_VM_LOG=$logs/$tag-console.log scripts/vm.sh --disk 64M --disk 1M \
		--keep-disks "$work/disks" --kill-at KILL-TEST-MARKER:"$delay" --timeout 120 \
		"$work/writer.sh" >"$logs/$tag.log" 2>&1
	status=$?
	console=$(tr -d '\r' <"$logs/$tag-console.log")
	# Complete lines only: a line the kill cut short has no "end".
	synced=$(echo "$console" | sed -n 's/^SYNCED \([0-9]*\) end$/\1/p')
	wrote=$(echo "$console" | sed -n 's/^WROTE \([0-9]*\) end$/\1/p')
	nsynced=$(echo "$synced" | grep -c .)
	if [ $status = 137 ] && grep -q "killed the guest as asked" "$logs/$tag.log"; then
		ok "${tag}_guest_killed_from_the_host"
	else
		fail "${tag}_guest_killed_from_the_host" "vm.sh exited $status, not 137 (see $logs/$tag.log)"
		continue
	fi

	bad=
	for n in $synced; do
		if ! cmp -s <(dd if="$work/disks/disk0.img" bs=4096 skip="$n" count=1 2>/dev/null) \
			<(record "$id" "$n"); then
			bad="$bad $n"
		fi
	done
	echo "kill: $tag: $nsynced record(s) synced before the kill, last $(echo "$synced" | tail -n 1)"
	if [ "$nsynced" -ge 5 ] && [ -z "$bad" ]; then
		ok "${tag}_every_synced_record_on_the_image"
	else
		fail "${tag}_every_synced_record_on_the_image" \
			"$nsynced synced on the console; $(echo $bad | wc -w) missing or wrong on the image:$(echo "${bad:- none}" | cut -d' ' -f1-11)"
	fi

	lost=0
	for n in $wrote; do
		cmp -s <(dd if="$work/disks/disk1.img" bs=4096 skip="$n" count=1 2>/dev/null) \
			<(record "$id" "$n") || lost=$((lost + 1))
	done
	if [ "$(echo "$wrote" | grep -c .)" = 8 ] && [ $lost -gt 0 ]; then
		ok "${tag}_unsynced_records_lost_as_in_a_power_cut"
	else
		fail "${tag}_unsynced_records_lost_as_in_a_power_cut" \
			"$(echo "$wrote" | grep -c .) written without a sync, $lost lost (a clean shutdown?)"
	fi
done

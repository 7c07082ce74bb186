# SPDX-License-Identifier: GPL-2.0
# `make bench`'s file data rows (run by tests/guest/bench.sh; busybox sh):
#   sh bench_data.sh DEV
# fio on bucketfs and on ext4 made in turn on the same disk DEV, RUNS rounds (the side that goes
# first alternates), each side freshly made each round: a sequential write of SIZE MiB in 1 MiB
# blocks ending in one fsync (end_fsync=1), the same file read back in 1 MiB blocks after a
# remount (cold cache), and RAND_IOS random 4 KiB overwrites of a RAND_MB MiB file (written
# and synced by an untimed fio job first) each followed by an fsync (fsync=1). Both sides run the same fio
# jobs: the same bytes and the same fsync calls; the rows print each side's median throughput
# and time, the ratio bucketfs/ext4, and the disk's own counters (writes, MiB written, flushes)
# over each timed job, so the I/O each side did is shown too. fio's runtime includes the final
# fsync. Environment: BENCH_DATA_MB (256), BENCH_DATA_RAND_MB (64), BENCH_DATA_RAND_IOS (2000),
# BENCH_DATA_RUNS (3), BENCH_DATA_BUCKET (bucketfs format --bucket-size, 1M).
bd_dev=$1
bd_name=${bd_dev##*/}
bd_mb=${BENCH_DATA_MB:-256}
bd_rmb=${BENCH_DATA_RAND_MB:-64}
bd_rios=${BENCH_DATA_RAND_IOS:-2000}
bd_runs=${BENCH_DATA_RUNS:-3}
bd_bucket=${BENCH_DATA_BUCKET:-1M}
bd_cs=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)
bd_out=/tmp/bench_data
rm -rf $bd_out
mkdir -p $bd_out

# bd_make SIDE: a new filesystem on the disk, mounted on /mnt.
bd_make() {
	case $1 in
	bucketfs) bucketfs format --bucket-size "$bd_bucket" "$bd_dev" >/dev/null ;;
	ext4) mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$bd_dev" ;;
	esac || return 1
	sync
	blockdev --flushbufs "$bd_dev" 2>/dev/null
	mount -t "$1" "$bd_dev" /mnt
}
# bd_io: "writes sectors flushes" of the disk (Documentation/block/stat.rst fields 5, 7, 16).
bd_io() { awk '{ print $5, $7, $16 }' /sys/block/$bd_name/stat; }
# bd_job SIDE ROUND JOB FIO_ARGS...: one timed fio job; appends "bw_kib runtime_ms iops writes
# sectors flushes" to $bd_out/SIDE-JOB.
bd_job() {
	bj_side=$1 bj_job=$3
	shift 3
	bj_before=$(bd_io)
	fio --output-format=terse --terse-version=3 --output=$bd_out/terse "$@" >$bd_out/fio.err 2>&1 ||
		{ echo "fio $bj_job on $bj_side: $(tail -n 2 $bd_out/fio.err | tr '\n|' ' /')" >$bd_out/$bj_side.err; return 1; }
	bj_after=$(bd_io)
	# Terse v3: field 7 read bandwidth (KiB/s), 8 read IOPS, 9 read runtime (ms); 48, 49, 50 the
	# same for writes.
	case $bj_job in
	seqread) bj_f=$(awk -F';' '/^3;/ { print $7, $9, $8 }' $bd_out/terse | tail -n 1) ;;
	*) bj_f=$(awk -F';' '/^3;/ { print $48, $50, $49 }' $bd_out/terse | tail -n 1) ;;
	esac
	echo "$bj_f $(echo "$bj_before $bj_after" | awk '{ print $4 - $1, $5 - $2, $6 - $3 }')" >>$bd_out/$bj_side-$bj_job
}
# bd_round SIDE ROUND: the three jobs on a new filesystem.
bd_round() {
	[ -e $bd_out/$1.err ] && return 0
	bd_make "$1" || { echo "making $1 failed" >$bd_out/$1.err; return 1; }
	bd_common="--ioengine=psync --fallocate=none"
	bd_job "$1" "$2" seqwrite --name=seqwrite --filename=/mnt/seq --rw=write --bs=1M \
		--size=${bd_mb}M --end_fsync=1 $bd_common || { umount /mnt; return 1; }
	umount /mnt && mount -t "$1" "$bd_dev" /mnt || { echo "remount of $1 failed" >$bd_out/$1.err; return 1; }
	echo 3 >/proc/sys/vm/drop_caches
	bd_job "$1" "$2" seqread --name=seqread --filename=/mnt/seq --rw=read --bs=1M \
		--size=${bd_mb}M $bd_common || { umount /mnt; return 1; }
	rm -f /mnt/seq
	sync
	# The file the random writes overwrite, written and synced before the timed job.
	fio --name=layout --filename=/mnt/rand --rw=write --bs=1M --size=${bd_rmb}M --end_fsync=1 \
		$bd_common >$bd_out/fio.err 2>&1 ||
		{ echo "fio layout on $1: $(tail -n 2 $bd_out/fio.err | tr '\n|' ' /')" >$bd_out/$1.err; umount /mnt; return 1; }
	bd_job "$1" "$2" randwrite --name=randwrite --filename=/mnt/rand --rw=randwrite --bs=4k \
		--size=${bd_rmb}M --io_size=$((bd_rios * 4))k --fsync=1 --randseed=4096 \
		$bd_common || { umount /mnt; return 1; }
	umount /mnt
	# Each bucketfs run is checked after its unmount: an inconsistent result is not a figure.
	if [ "$1" = bucketfs ] && ! bucketfs fsck "$bd_dev" >$bd_out/fsck 2>&1; then
		echo "bucketfs fsck after round $2: $(tail -n 1 $bd_out/fsck | tr '|' '/')" >$bd_out/$1.err
	fi
}
bd_r=1
while [ $bd_r -le "$bd_runs" ]; do
	if [ $((bd_r % 2)) = 1 ]; then bd_order="bucketfs ext4"; else bd_order="ext4 bucketfs"; fi
	for bd_side in $bd_order; do bd_round $bd_side $bd_r; done
	bd_r=$((bd_r + 1))
done

# bd_median FILE COLUMN: the median of a column.
bd_median() { awk -v c="$2" '{ print $c }' "$1" | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
# bd_side_cell SIDE JOB UNIT: "SIDE X MiB/s (T s)" or "SIDE X IOPS (T s)", or the side's error.
bd_side_cell() {
	if [ -e $bd_out/$1.err ]; then
		echo "$1 failed: $(cat $bd_out/$1.err)"
	elif [ -s $bd_out/$1-$2 ]; then
		bs_bw=$(bd_median $bd_out/$1-$2 1)
		bs_ms=$(bd_median $bd_out/$1-$2 2)
		bs_iops=$(bd_median $bd_out/$1-$2 3)
		if [ "$3" = iops ]; then
			echo "$1 $bs_iops IOPS, $(awk -v k="$bs_bw" 'BEGIN { printf "%.1f", k / 1024 }') MiB/s ($(awk -v m="$bs_ms" 'BEGIN { printf "%.2f", m / 1000 }') s)"
		else
			echo "$1 $(awk -v k="$bs_bw" 'BEGIN { printf "%.1f", k / 1024 }') MiB/s ($(awk -v m="$bs_ms" 'BEGIN { printf "%.2f", m / 1000 }') s)"
		fi
	else
		echo "$1: no run"
	fi
}
# bd_io_cell SIDE JOB: the disk's counters over the job (medians).
bd_io_cell() {
	[ -s $bd_out/$1-$2 ] || { echo "$1 not measured"; return; }
	echo "$1 $(bd_median $bd_out/$1-$2 4) writes ($(awk -v s="$(bd_median $bd_out/$1-$2 5)" 'BEGIN { printf "%.1f", s * 512 / 1048576 }') MiB), $(bd_median $bd_out/$1-$2 6) flushes"
}
# bd_row JOB LABEL TARGET UNIT: one table row.
bd_row() {
	br_ratio="not measured (target >= $3x: not measured)"
	if [ ! -e $bd_out/bucketfs.err ] && [ ! -e $bd_out/ext4.err ] && [ -s $bd_out/bucketfs-$1 ] && [ -s $bd_out/ext4-$1 ]; then
		br_ratio=$(awk -v b="$(bd_median $bd_out/bucketfs-$1 1)" -v e="$(bd_median $bd_out/ext4-$1 1)" -v t="$3" \
			'BEGIN { r = e > 0 ? b / e : 0; printf "%.2fx (target >= %sx: %s)", r, t, (r >= t ? "met" : "missed") }')
	fi
	echo "| $2 (median of $bd_runs) | $(bd_side_cell bucketfs $1 $4) vs $(bd_side_cell ext4 $1 $4) | $br_ratio | disk I/O in the timed job: $(bd_io_cell bucketfs $1); $(bd_io_cell ext4 $1); bucketfs format --bucket-size $bd_bucket, mkfs.ext4 -E lazy_itable_init=0,lazy_journal_init=0, default mount options, the same fio job on both (psync, fallocate=none) on the same disk | $bd_cs |"
}
bd_row seqwrite "fio sequential write, 1 MiB blocks, $bd_mb MiB, one fsync at the end (end_fsync=1)" 0.8 mibs
bd_row seqread "fio sequential read, 1 MiB blocks, $bd_mb MiB, after a remount (cold cache)" 0.8 mibs
bd_row randwrite "fio random write, 4 KiB blocks, $bd_rios writes each followed by fsync (fsync=1) in a $bd_rmb MiB file" 0.5 iops

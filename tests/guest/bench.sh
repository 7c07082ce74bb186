# SPDX-License-Identifier: GPL-2.0
# `make bench` in the guest, on the bench kernel (kernel/bench.config). Disks: vda vdb 64M
# (unstick), vdc 48M + vdd 192M (the seed's numbers: drain, replay), vde 40M, vdf 400M, vdg 4G
# (10k, 100k, 1M buckets: replay scaling; 16k buckets of 64 KiB), vdh 1T sparse (16M buckets of
# 64 KiB), vdi 1G (metadata operations, then file data with fio: bucketfs and ext4 made in turn
# on the same disk).
set -e
# Timings need a fine clocksource; early in boot it may still be jiffies (4 ms steps), and
# without tsc=reliable (scripts/vm.sh sets it) the TSC may be dropped for refined-jiffies.
# Every row names the clocksource it was measured with.
cs=/sys/devices/system/clocksource/clocksource0/current_clocksource
i=0
# tsc-early is as fine as tsc, but the switch to tsc follows within seconds: wait for it.
while grep -q 'jiffies\|tsc-early' $cs && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
echo "BENCH-CLOCKSOURCE $(cat $cs)"
echo "BENCH-KERNEL $(uname -r)"
insmod /modules/bucketfs.ko
s=/root/scenarios
b=/root/bench-scenarios
# The rows are collected in a file and printed at the end: kernel messages (mounts) would
# otherwise land in the middle of a row on the console.
rows=/tmp/rows
: >$rows
bucketfs bench unstick --runs 20 $s/seed-small.toml /dev/vda /dev/vdb >>$rows
bucketfs bench drain $s/seed-discard.toml /dev/vdc /dev/vdd >>$rows
bucketfs bench replay --label "seed, 5000 keys" $s/seed-discard.toml /dev/vdc /dev/vdd >>$rows
bucketfs bench replay --label "18000 keys, 10k buckets" $s/scale-10k.toml /dev/vde >>$rows
bucketfs bench replay --label "18000 keys, 100k buckets" $s/scale-100k.toml /dev/vdf >>$rows
bucketfs bench replay --label "18000 keys, 1M buckets" $s/scale-1m.toml /dev/vdg >>$rows
# The 1 TiB member needs big-member support in the format and the mount: when the tool cannot
# write it (or dies trying), the rows say so.
rc=0
timeout 2400 bucketfs bench scale --big-label "a 1 TiB member" --small-label "16k buckets" \
	$b/scale-1t.toml /dev/vdh $b/scale-16k.toml /dev/vdg >/tmp/scale.out 2>/tmp/scale.err || rc=$?
cat /tmp/scale.out >>$rows
if [ $rc != 0 ]; then
	why="bucketfs bench scale exited with status $rc ($(grep -v -e '^Aborted' -e RUST_BACKTRACE \
		/tmp/scale.err | grep . | tail -n 1 | tr '|' '/'))"
	grep -q '^| mount of' /tmp/scale.out ||
		echo "| mount of a 1 TiB member | not measured: $why | target <= 2x: not measured | | $(cat $cs) |" >>$rows
	grep -q '^| commit after' /tmp/scale.out ||
		echo "| commit after replaying 20000 keys, a 1 TiB member vs 16k buckets | not measured: $why | target <= 1.2x: not measured | | $(cat $cs) |" >>$rows
fi
# Metadata operations, bucketfs against ext4 made in turn on the same disk (vdi, 1G): the
# tool says in the row when a side fails; when the tool itself dies or hangs, this does.
rc=0
timeout 2400 bucketfs bench meta --runs 3 /dev/vdi >/tmp/meta.out 2>/tmp/meta.err || rc=$?
cat /tmp/meta.out >>$rows
if [ $rc != 0 ]; then
	umount /mnt 2>/dev/null || true
	why="bucketfs bench meta exited with status $rc ($(grep -v -e '^Aborted' -e RUST_BACKTRACE \
		/tmp/meta.err | grep . | tail -n 1 | tr '|' '/'))"
	grep -q '^| metadata' /tmp/meta.out ||
		echo "| metadata: 10000 files in 100 dirs, create + rename + unlink, then sync | not measured: $why | target >= 0.5x: not measured | | $(cat $cs) |" >>$rows
fi
# File data: fio on bucketfs and ext4 made in turn on the same disk (vdi, 1G), sequential write
# and read in 1 MiB blocks and 4 KiB random writes each with an fsync (tests/guest/bench_data.sh).
rc=0
timeout 3600 sh /root/tests/bench_data.sh /dev/vdi >/tmp/data.out 2>/tmp/data.err || rc=$?
umount /mnt 2>/dev/null || true
cat /tmp/data.out >>$rows
if [ $rc != 0 ] || ! grep -q '^| fio' /tmp/data.out; then
	echo "| fio file data rows | not measured: bench_data.sh exited with status $rc ($(grep . /tmp/data.err | tail -n 1 | tr '|' '/')) | targets >= 0.8x / 0.5x: not measured | | $(cat $cs) |" >>$rows
fi
sleep 1
cat $rows
# The in-kernel rows time with ktime: say which clock they read.
echo "BENCH-CLOCKSOURCE-KERNEL $(cat $cs)"
insmod /modules/bucketfs_bench.ko
rmmod bucketfs_bench
rmmod bucketfs

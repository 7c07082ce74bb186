# SPDX-License-Identifier: GPL-2.0
# `make bench` in the guest. Disks: vda vdb 64M (unstick), vdc 48M + vdd 192M (the seed's
# numbers: drain, replay), vde 40M, vdf 400M, vdg 4G (10k, 100k, 1M buckets: replay scaling).
set -e
# Timings need a fine clocksource; early in boot it may still be jiffies (4 ms steps), and
# without tsc=reliable (scripts/vm.sh sets it) the TSC may be dropped for refined-jiffies.
# Every row names the clocksource it was measured with.
cs=/sys/devices/system/clocksource/clocksource0/current_clocksource
i=0
while grep -q jiffies $cs && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
echo "BENCH-CLOCKSOURCE $(cat $cs)"
insmod /modules/bucketfs.ko
s=/root/scenarios
bucketfs bench unstick --runs 20 $s/seed-small.toml /dev/vda /dev/vdb
bucketfs bench drain $s/seed-discard.toml /dev/vdc /dev/vdd
bucketfs bench replay --label "seed, 5000 keys" $s/seed-discard.toml /dev/vdc /dev/vdd
bucketfs bench replay --label "20000 keys, 10k buckets" $s/scale-10k.toml /dev/vde
bucketfs bench replay --label "20000 keys, 100k buckets" $s/scale-100k.toml /dev/vdf
bucketfs bench replay --label "20000 keys, 1M buckets" $s/scale-1m.toml /dev/vdg
# The in-kernel rows time with ktime: say which clock they read.
echo "BENCH-CLOCKSOURCE-KERNEL $(cat $cs)"
insmod /modules/bucketfs_bench.ko
rmmod bucketfs_bench
rmmod bucketfs

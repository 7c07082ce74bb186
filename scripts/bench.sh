#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: run the benchmarks in a guest; print the table and keep it in
# out/bench/table.md. Every figure is measured side by side with its reference in the
# same run; nothing here is a pass/fail test.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/deps.sh >/dev/null
make tool >/dev/null
# The bench kernel (kernel/bench.config: the production SLUB, not SLUB_TINY) and the modules
# built for it; a cold kernel build takes ~10 minutes.
scripts/build-modules.sh bench >/dev/null
out=out/bench
mkdir -p "$out"
# vdh is a sparse 1 TiB image: only what the format and the mounts write takes room. vdi holds
# the metadata row's two filesystems in turn: bucketfs, and ext4 made by Debian's mkfs.ext4
# (copied into the guest with its libraries and its /etc/mke2fs.conf defaults), then the file
# data rows' fio runs on each in turn.
BUCKETFS_VARIANT=bench BUCKETFS_VM_LOG=$out/console.log scripts/vm.sh \
	--disk 64M --disk 64M --disk 48M --disk 192M --disk 40M --disk 400M --disk 4G --disk 1T \
	--disk 1G --bin mkfs.ext4 --bin fio --file /etc/mke2fs.conf:/etc/mke2fs.conf \
	--timeout 7200 --file tests/guest:/root/tests --file tests/scenarios:/root/scenarios \
	--file bench/scenarios:/root/bench-scenarios tests/guest/bench.sh \
	>"$out/vm.log" 2>&1 || { tail -n 30 "$out/vm.log"; exit 1; }
accel=$(grep -o 'with [a-z]*' "$out/vm.log" | head -n 1 | cut -d' ' -f2)
clock=$(tr -d '\r' <"$out/console.log" | sed -n 's/^BENCH-CLOCKSOURCE //p')
kclock=$(tr -d '\r' <"$out/console.log" | sed -n 's/^BENCH-CLOCKSOURCE-KERNEL //p')
{
	echo "bucketfs benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), QEMU $accel guest on the bench kernel (production SLUB; clocksource $clock)"
	echo
	echo "Figures are medians of repeated runs; a ratio's reference is timed over at least 100"
	echo "ticks of the clock named in the last column (a single-event reference shorter than"
	echo "that is refused). Each reference is the raw device doing the same I/O in the same"
	echo "guest: the same bytes read, the same ranges discarded, as many blocks written and"
	echo "flushes."
	echo
	echo "| measure | figures | ratio | notes | clocksource |"
	echo "|---|---|---|---|---|"
	# The tool's rows end with their clocksource; the in-kernel rows (bucketfs_bench.ko)
	# get the one the guest read before loading it, after padding to four cells.
	tr -d '\r' <"$out/console.log" |
		sed -n 's/^\(\[[ 0-9.]*\] \)\{0,1\}\(bucketfs_bench: \)\{0,1\}\(| .*|\)$/\2\3/p' |
		awk -v k="$kclock" '
			/^bucketfs_bench: / {
				sub(/^bucketfs_bench: /, "")
				n = gsub(/\|/, "|") - 1
				for (; n < 4; n++) $0 = $0 " |"
				print $0 " " k " (ktime, in-kernel) |"
				next
			}
			{ print }'
} >"$out/table.md"
cat "$out/table.md"

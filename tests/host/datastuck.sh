#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The runtime stuck case with file data, parked (tests/guest/datastuck-parked.sh): a boot of
# its own whose second disk is behind QEMU's throttle filter (1 MiB/s for writes and discards
# together), so the discard worker's drain of its backlog lasts long enough for a file write
# whose extent key needs a btree split to park on it and for each way out to be tried while it
# is parked. The guest's GUEST-TEST lines are reported as HOST-TEST lines.
#
#   tests/host/datastuck.sh LOGDIR
NAME=datastuck
. "$(dirname "$0")/lib.sh"

BUCKETFS_VM_LOG=$logs/console.log scripts/vm.sh --disk 64M --disk 64M --throttle 1:1048576 \
	--timeout 600 --file tests/guest:/root/tests tests/guest/datastuck-parked.sh >"$logs/vm.log" 2>&1
status=$?
tr -d '\r' <"$logs/console.log" | grep '^datastuck: '
tr -d '\r' <"$logs/console.log" | sed -n 's/^GUEST-TEST \(ok\|FAIL\) /HOST-TEST \1 /p'
if [ $status = 0 ]; then
	ok boot_ran_every_case_no_kernel_splat
else
	fail boot_ran_every_case_no_kernel_splat "vm.sh exited $status (see $logs/vm.log)"
fi

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Every bucketfs test: host tests, rustfmt, the module build (warnings are
# errors), then one guest boot running the KUnit suites and the guest tests.
# Prints each result and a summary ending in "N passed, N failed"; exits
# non-zero if anything failed. Logs go to out/check/.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=$here/out/check
rm -rf "$out"
mkdir -p "$out"

passed=0
failed=0
failures=()
record() { # record pass|fail NAME [WHY]
	if [ "$1" = pass ]; then
		passed=$((passed + 1))
		echo "check: PASS $2"
	else
		failed=$((failed + 1))
		failures+=("$2${3:+: $3}")
		echo "check: FAIL $2${3:+: $3}"
	fi
}
# step NAME LOG CMD...: run CMD with its output in out/check/LOG.
step() {
	local name=$1 log=$out/$2
	shift 2
	echo "check: ... $name"
	if "$@" >"$log" 2>&1; then
		record pass "$name"
	else
		tail -n 30 "$log"
		record fail "$name" "see $log"
		return 1
	fi
}

# Host tests: count each cargo test.
echo "check: ... host tests (cargo test)"
if cargo test --workspace >"$out/cargo-test.log" 2>&1; then cargo_ok=1; else cargo_ok=0; fi
grep -E "^test .* \.\.\. (ok|FAILED)$" "$out/cargo-test.log" | while read -r _ name _ result; do
	echo "$result $name"
done >"$out/cargo-results"
while read -r result name; do
	[ "$result" = ok ] && record pass "host: $name" || record fail "host: $name"
done <"$out/cargo-results"
if [ $cargo_ok = 0 ] || [ ! -s "$out/cargo-results" ]; then
	tail -n 30 "$out/cargo-test.log"
	record fail "host: cargo test" "see $out/cargo-test.log"
fi

step "rustfmt --check" rustfmt.log scripts/fmt.sh --check
step "test kernel (cached after the first build)" kernel.log scripts/kernel.sh
kdir=$(scripts/kernel.sh --dir)

step "bucketfs tool (static, for the guest)" tool.log make tool
# record_boot LABEL STATUS VMLOG: one result for a guest boot (vm.sh exit 0 or 1: the guest ran
# its script to the end without a kernel splat; its tests are recorded one by one).
record_boot() {
	if [ "$2" = 0 ] || [ "$2" = 1 ]; then
		record pass "$1: booted, ran the tests, no kernel splat"
	else
		tail -n 40 "$3"
		record fail "$1: booted, ran the tests, no kernel splat" "vm.sh exited $2, see $3"
	fi
}
# record_guest_tests LABEL CONSOLE: the GUEST-TEST lines of a guest console.
record_guest_tests() {
	while read -r _ result rest; do
		case "$result" in
		ok) record pass "$1: $rest" ;;
		FAIL) record fail "$1: ${rest%%:*}" "${rest#*: }" ;;
		esac
	done < <(tr -d '\r' <"$2" 2>/dev/null | grep -E '^GUEST-TEST (ok|FAIL) ')
}
# guest_run LABEL VARIANT ARGS...: one guest boot running every guest test (and KUnit) on a
# kernel variant ("" for the default one); records each result under LABEL.
guest_run() {
	local label=$1 variant=$2
	shift 2
	local log=$out/console$variant.log
	echo "check: ... $label guest boot (KUnit and guest tests; console in $log)"
	BUCKETFS_VARIANT=$variant BUCKETFS_VM_LOG=$log scripts/vm.sh --disk 64M --disk 64M \
		--disk 64M --timeout 1800 --bin stress-ng --bin fio --bin fallocate --bin fstrim \
		--file tests/guest:/root/tests \
		--file tests/scenarios:/root/scenarios tests/guest/check.sh "$@" >"$out/vm$variant.log" 2>&1
	record_boot "$label" $? "$out/vm$variant.log"

	# KUnit: each KTAP document between its markers, parsed by the kernel's kunit.py.
	for module in $(sed -n 's/.*BUCKETFS-KUNIT-BEGIN \([a-z_]*\).*/\1/p' "$log" 2>/dev/null); do
		sed -n "/BUCKETFS-KUNIT-BEGIN $module/,/BUCKETFS-KUNIT-END $module/p" "$log" \
			>"$out/ktap-$module$variant.log"
		python3 "$kdir/tools/testing/kunit/kunit.py" parse "$out/ktap-$module$variant.log" \
			>"$out/kunit-$module$variant.log" 2>&1
		kunit_status=$?
		cases=$(sed -E 's/\x1b\[[0-9;]*m//g' "$out/kunit-$module$variant.log" |
			sed -n -E 's/.*\[(PASSED|FAILED|SKIPPED|CRASHED)\] ([A-Za-z0-9_]+)$/\1 \2/p')
		while read -r result name; do
			[ -z "$name" ] && continue
			case "$result" in
			PASSED) record pass "$label kunit: $module: $name" ;;
			*) record fail "$label kunit: $module: $name" "$result" ;;
			esac
		done <<<"$cases"
		if [ $kunit_status != 0 ]; then
			cat "$out/kunit-$module$variant.log"
			record fail "$label kunit: $module: kunit.py parse" "exit $kunit_status"
		fi
	done
	grep -q "BUCKETFS-KUNIT-BEGIN" "$log" 2>/dev/null ||
		record fail "$label kunit: suites ran" "no KTAP output in the guest console"

	record_guest_tests "$label" "$log"
	tr -d '\r' <"$log" 2>/dev/null | grep -E '^(damaged images|abort/kill/retry cycles|rescue by)' |
		sed "s/^/check:   $label: /" | tee -a "$out/figures.part"
}

# guest_big: the real-size tests (tests/guest/big.sh) in a boot of their own, with their own
# sparse disks: vda of 1 TiB and vdb .. vdq of 1 GiB (16 members).
guest_big() {
	local log=$out/console-big.log disks=(--disk 1T) i
	for i in $(seq 16); do disks+=(--disk 1G); done
	echo "check: ... big guest boot (a 1 TiB member, 16 members; console in $log)"
	BUCKETFS_VM_LOG=$log scripts/vm.sh "${disks[@]}" --timeout 1200 \
		--file tests/guest:/root/tests --file tests/scenarios:/root/scenarios \
		tests/guest/big.sh >"$out/vm-big.log" 2>&1
	record_boot big $? "$out/vm-big.log"
	record_guest_tests big "$log"
	tr -d '\r' <"$log" 2>/dev/null | grep -E '^big: ' | sed 's/^/check:   /' | tee -a "$out/figures.part"
}

# host_suite LABEL TITLE SCRIPT: a host-side test script; records its HOST-TEST lines.
host_suite() {
	local label=$1 title=$2 script=$3
	echo "check: ... $title ($script)"
	while read -r _ result rest; do
		case "$result" in
		ok) record pass "$label: $rest" ;;
		FAIL) record fail "$label: ${rest%%:*}" "${rest#*: }" ;;
		esac
	done < <("$script" "$out/$label" 2>&1 | tee "$out/$label.log" | grep -E '^HOST-TEST (ok|FAIL) ')
}

# make check-full: more damaged images and cycles (see README, Testing).
if [ "${BUCKETFS_FULL:-0}" = 1 ]; then
	# Crashes at 16 random points in the first 80 ms of the mount (replay, splits, commit,
	# draining); BUCKETFS_CRASH_SEED repeats a run.
	crash_seed=${BUCKETFS_CRASH_SEED:-$(date +%s)}
	CRASH_DELAYS=$(awk -v seed="$crash_seed" 'BEGIN { srand(seed); for (i = 0; i < 16; i++) printf "%d ", int(rand() * 80000) }')
	export CRASH_DELAYS
	echo "check: crash points from seed $crash_seed: $CRASH_DELAYS us" | tee -a "$out/figures.part"
	guest_args=(DAMAGE_IMAGES=1000 CYCLES=100 DATAFIO_MB=16 STRESS_DATA_SECS=60)
	debug_args=(DAMAGE_IMAGES=200 CYCLES=100 RESCUE_MS=5000 NSTREE_DIRS=4 DATAFIO_MB=8 STRESS_DATA_SECS=30)
else
	guest_args=(DAMAGE_IMAGES=40 CYCLES=6)
	debug_args=(DAMAGE_IMAGES=20 CYCLES=6 RESCUE_MS=5000 NSTREE_DIRS=4)
fi

if step "module build (-Werror, -Dwarnings)" build.log make modules; then
	# Host side: every function's stack frame in bucketfs.ko at most 2048 bytes.
	step "stack frames at most 2048 bytes (scripts/frame-check.sh)" frame-check.log \
		scripts/frame-check.sh
	guest_run guest "" "${guest_args[@]}"
	guest_big

	host_suite discard "discard holes and crash consistency" tests/host/discard.sh
	grep -E '^(holes|dev-[0-9]|CRASH)' "$out/discard.log" | sed 's/^/check:   /' | tee -a "$out/figures.part"
	host_suite faults "I/O faults" tests/host/faults.sh
	host_suite kill "power cuts from the host (vm.sh --kill-at)" tests/host/kill.sh
	grep -E '^kill: seed' "$out/kill.log" | sed 's/^/check:   /' | tee -a "$out/figures.part"
	host_suite nsstuck "the runtime stuck case, parked on a slow discard" tests/host/nsstuck.sh
	host_suite datastuck "the runtime stuck case with file data, a write parked on a split" \
		tests/host/datastuck.sh
	host_suite nscrash "power cuts during namespace operations (vm.sh --kill-at)" tests/host/nscrash.sh
	grep -E '^nscrash: seed' "$out/nscrash.log" | sed 's/^/check:   /' | tee -a "$out/figures.part"
	host_suite datacrash "power cuts while file data is written and synced (vm.sh --kill-at)" \
		tests/host/datacrash.sh
	grep -E '^datacrash: (bucketfs|ext4): seed' "$out/datacrash.log" | sed 's/^/check:   /' |
		tee -a "$out/figures.part"
	host_suite datatrim "fstrim: holes in the image where deleted file data was" tests/host/datatrim.sh
	grep -E '^datatrim: .*(holes|FSTRIM)' "$out/datatrim.log" | sed 's/^/check:   /' | tee -a "$out/figures.part"
fi

# The same guest tests on the debug kernel (KASAN, lockdep, atomic-sleep checks, kmemleak).
if step "debug kernel and modules (KASAN, PROVE_LOCKING, DEBUG_ATOMIC_SLEEP, DEBUG_KMEMLEAK)" \
	debug-build.log scripts/build-modules.sh debug; then
	guest_run debug debug "${debug_args[@]}"
fi

# The figures the README's testing section quotes, as this run measured them.
{
	date -u '+run of %Y-%m-%d %H:%M UTC'
	cat "$out/figures.part" 2>/dev/null
	echo "$passed passed, $failed failed"
} >"$out/figures.txt"

echo
echo "check: summary"
for f in "${failures[@]}"; do
	echo "  FAILED: $f"
done
echo "$passed passed, $failed failed"
[ $failed = 0 ]

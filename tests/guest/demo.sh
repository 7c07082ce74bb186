# SPDX-License-Identifier: GPL-2.0
# The demo (`make demo`): the #1108 stuck mount in bucketfs, and the four ways out; then the
# ways out bcachefs users asked for since: a metadata_target write (bcachefs-tools #628) and a
# device added while the mount is parked (#1105); and, opt-in, a way out that needs nobody.
# Exits non-zero if any step does not behave as described.
. /root/tests/lib.sh
set -u
failed=0
step() { printf '\n[%8s ms] == %s\n' "$(now_ms)" "$*"; }
say() { printf '[%8s ms] %s\n' "$(now_ms)" "$*"; }
bad() { say "UNEXPECTED: $*"; failed=1; }
seed=/root/scenarios/seed.toml
devs=/dev/vda:/dev/vdb

# build SPEC [DEV...]: write a crash state (default: the two-device #1108 state on vda, vdb).
build() {
	spec=$1
	shift
	[ $# -gt 0 ] || set -- /dev/vda /dev/vdb
	step "build a $#-device filesystem in a crash state ($spec)"
	out=$(bucketfs scenario "$spec" "$@") || { bad "scenario failed"; return 1; }
	echo "$out"
	expect=$(echo "$out" | sed -n 's/^scenario: expect //p')
}
verify() {
	step "unmount, remount, check every journal key is in the btree"
	umount /mnt || bad "umount failed"
	mount -t bucketfs $devs /mnt || { bad "remount failed"; return; }
	got=$(btree_figures)
	say "btree: $got"
	[ "$got" = "$expect" ] && say "all $(echo "$expect" | cut -d' ' -f2) keys present" || bad "expected $expect"
	umount /mnt
}
park() {
	step "mount -t bucketfs $devs /mnt   (replay needs btree nodes on 2 devices)"
	mount -t bucketfs $devs /mnt 2>/tmp/mount.err &
	pid=$!
	(sleep 120; kill -9 $pid 2>/dev/null) &
	if wait_for 30 parked 1; then
		say "the mount is parked: pid $pid in state $(cut -d' ' -f3 /proc/$pid/stat) (D, but killable)"
	else
		bad "the mount did not park"
	fi
	d=$(fs_dir)
	say "sysfs is up during replay: $d"
	say "$(cat $d/internal/replay)"
	cat $d/internal/alloc_debug | sed 's/^/    /'
	uuid=$(basename $d)
	wait_for 10 dmesg_has "$uuid: allocator stuck" || bad "no stuck report"
	say "dmesg after allocator_stuck_timeout:"
	dmesg | grep "$uuid: allocator stuck" -A3 | tail -n 4 | sed 's/^/    /'
}

insmod /modules/bucketfs.ko

build $seed
park
step "rescue (a): echo 1 > $d/options/metadata_replicas"
start=$(now_ms)
echo 1 >$d/options/metadata_replicas
wait $pid && say "the parked mount completed, $(( $(now_ms) - start )) ms after the write" || bad "mount failed: $(cat /tmp/mount.err)"
dmesg | grep -E "replayed|mounted" | tail -n 2 | sed 's/^/    /'
verify

build $seed
step "rescue (b): mount -o metadata_replicas=1 (a mount option, for this mount only)"
start=$(now_ms)
mount -t bucketfs -o metadata_replicas=1 $devs /mnt && say "mounted in $(( $(now_ms) - start )) ms" || bad "mount failed"
grep -q "^parks: 0" $(fs_dir)/internal/alloc_debug && say "no allocation ever parked" || bad "an allocation parked"
verify
mount -t bucketfs $devs /mnt && say "stored metadata_replicas is still $(cat $(fs_dir)/options/metadata_replicas)" && umount /mnt

build /root/scenarios/seed-discard.toml
step "rescue (c): discard on, nobody touches sysfs: the discard worker drains need_discard during replay"
start=$(now_ms)
timeout -s KILL 120 mount -t bucketfs $devs /mnt && say "mounted by itself in $(( $(now_ms) - start )) ms" || bad "mount failed"
d=$(fs_dir)
for n in 0 1; do
	wait_for 60 sh -c "test \$(cat $d/dev-$n/need_discard) = 0" || bad "dev-$n did not drain"
	say "dev-$n ($(cat $d/dev-$n/device)): $(cat $d/dev-$n/discard_buckets) buckets discarded with $(cat $d/dev-$n/discard_commands) discard command(s), $(cat $d/dev-$n/free) free now"
done
verify

build $seed
park
step "rescue (d): echo 1 > $d/internal/abort_stuck_allocations"
echo 1 >$d/internal/abort_stuck_allocations
if wait $pid; then bad "the mount succeeded"; else say "the mount failed cleanly: $(cat /tmp/mount.err)"; fi
dmesg | grep -E "abort_stuck|replay stopped" | tail -n 2 | sed 's/^/    /'
say "on disk, nothing was written: $(bucketfs dump-btree /dev/vda /dev/vdb)"
step "retry with mount -o metadata_replicas=1"
start=$(now_ms)
mount -t bucketfs -o metadata_replicas=1 $devs /mnt && say "mounted in $(( $(now_ms) - start )) ms" || bad "retry failed"
verify

build /root/scenarios/target-628.toml /dev/vda /dev/vdb /dev/vdc
devs=/dev/vda:/dev/vdb:/dev/vdc
say "labels: dev-0 ssd (starved), dev-1 hdd.hdd1, dev-2 hdd.hdd2; metadata_target=ssd"
park
say "the stuck report names the target:"
dmesg | grep "$uuid:   metadata_target" | tail -n 1 | sed 's/^/    /'
step "rescue (e), bcachefs-tools #628: echo hdd > $d/options/metadata_target"
start=$(now_ms)
echo hdd >$d/options/metadata_target
wait $pid && say "the parked mount completed, $(( $(now_ms) - start )) ms after the write" || bad "mount failed: $(cat /tmp/mount.err)"
dmesg | grep -E "replay progress|replayed|mounted" | tail -n 2 | sed 's/^/    /'
verify

build $seed
devs=/dev/vda:/dev/vdb
park
step "rescue (f), bcachefs #1105: add a third device while the mount is parked: echo /dev/vdc > $d/device_add"
start=$(now_ms)
echo /dev/vdc >$d/device_add || bad "device_add refused"
wait $pid && say "the parked mount completed, $(( $(now_ms) - start )) ms after the write" || bad "mount failed: $(cat /tmp/mount.err)"
dmesg | grep -E "device_add|replayed|mounted" | tail -n 3 | sed 's/^/    /'
say "dev-2 ($(cat $(fs_dir)/dev-2/device)): $(cat $(fs_dir)/dev-2/btree) btree bucket(s)"
devs=/dev/vda:/dev/vdb:/dev/vdc
verify
step "then the temporary member goes: discards drain the starved dev-0, dev-2 is evacuated and removed"
mount -t bucketfs -o discard=1 $devs /mnt || bad "mount failed"
d=$(fs_dir)
wait_for 60 sh -c "test \$(cat $d/dev-0/need_discard) = 0" || bad "dev-0 did not drain"
say "dev-0: $(cat $d/dev-0/free) free buckets now"
echo 1 >$d/dev-2/evacuate && say "evacuated: $(dmesg | grep -o 'dev-2 (vdc) evacuated.*' | tail -n 1)" || bad "evacuate refused"
echo 1 >$d/dev-2/remove && say "$(dmesg | grep -o 'removed member 2 .*' | tail -n 1); dev-2/state: $(cat $d/dev-2/state)" || bad "remove refused"
devs=/dev/vda:/dev/vdb
verify

build $seed
devs=/dev/vda:/dev/vdb
step "rescue (g), nobody: mount -o metadata_degraded_writes (opt-in): past allocator_stuck_timeout the replay goes on with 1 copy, and a worker re-replicates"
start=$(now_ms)
timeout -s KILL 120 mount -t bucketfs -o metadata_degraded_writes $devs /mnt && say "mounted by itself in $(( $(now_ms) - start )) ms" || bad "mount failed"
d=$(fs_dir)
uuid=$(basename $d)
dmesg | grep -E "$uuid: (allocator: .*degraded|.*fewer copies than|.*re-replicat)" | tail -n 3 | sed 's/^/    /'
wait_for 30 grep -q "^degraded nodes: 0$" $d/internal/degraded_nodes && say "every node has 2 copies again: $(head -n 1 $d/internal/degraded_nodes)" || bad "not re-replicated: $(head -n 3 $d/internal/degraded_nodes)"
verify
say "on disk: $(bucketfs dump-btree /dev/vda /dev/vdb | grep -o 'copies per node.*')"

rmmod bucketfs || bad "rmmod failed"
if [ $failed = 0 ]; then step "demo done: every step behaved as described"; else step "demo FAILED"; fi
exit $failed

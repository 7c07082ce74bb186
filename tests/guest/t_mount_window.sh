# SPDX-License-Identifier: GPL-2.0
# Knobs written during a mount, from the moment the sysfs directory appears (it is up before
# the bucket tables are read and before recovery): each write must take effect, and none may
# act on inputs that do not exist yet. Also: mounts that fail after sysfs is up while the
# discard worker is kicked, each followed by rmmod (the worker may not outlive its filesystem
# or the module; the debug kernel's KASAN checks that).
# Disks: vda, vdb.

# uuid DEV: the filesystem uuid on DEV.
uuid_of() { bucketfs show-super --json "$1" | sed -n 's/^  "uuid": "\([^"]*\)".*/\1/p'; }

# nice_mount SOURCE: mount SOURCE on /mnt at the lowest CPU priority.
nice_mount() {
	timeout -s KILL 30 sh -c 'renice -n 19 -p $$ >/dev/null && exec mount -t bucketfs "$1" /mnt' _ "$1"
}

# hammer FILE DONE: from the moment FILE appears until DONE exists, write 1 to it again and
# again. Run in the background.
hammer() {
	until [ -e "$1" ] || [ -e "$2" ]; do :; done
	[ -e "$1" ] && echo "hammer: $1 appeared" >>/tmp/hammered
	until [ -e "$2" ]; do echo 1 >"$1"; done 2>/dev/null
}

insmod /modules/bucketfs.ko

# 1. internal/trigger_discards during the mount, with a live node's bucket table entry
# damaged to need_discard: no discard before the discard rule has its inputs (the btree
# loaded, bucket states reconciled with it), so the node survives and every key is there
# after a remount.
cat >/tmp/window.toml <<'EOF'
bucket_size = "4k"
metadata_replicas = 1
discard = true
journal_keys = 3000

[[device]]
free = 8000
need_discard = 2000
EOF
tries=5
lost=0
rm -f /tmp/hammered
for i in $(seq 1 $tries); do
	expect=$(bucketfs scenario /tmp/window.toml /dev/vda | sed -n 's/^scenario: expect //p')
	# Replay and commit: the btree now holds the keys, the journal is empty.
	mount -t bucketfs /dev/vda /mnt || { lost=$((lost + 1)); echo "try $i: first mount failed"; continue; }
	umount /mnt
	bucketfs debug set-bucket-state --bucket root --state need_discard /dev/vda
	f=/sys/fs/bucketfs/$(uuid_of /dev/vda)/internal/trigger_discards
	rm -f /tmp/mounted
	hammer "$f" /tmp/mounted &
	h=$!
	timeout -s KILL 30 mount -t bucketfs /dev/vda /mnt
	st=$?
	touch /tmp/mounted
	wait $h
	[ $st = 0 ] && umount /mnt
	got=none
	if mount -t bucketfs /dev/vda /mnt; then
		got=$(btree_figures)
		umount /mnt
	fi
	if [ $st != 0 ] || [ "$got" != "$expect" ]; then
		lost=$((lost + 1))
		echo "try $i: mount status $st, expected '$expect', remount has '$got'"
	fi
done
t early_trigger_discards_keeps_live_nodes test $lost = 0
t early_trigger_discards_written_during_mount test "$(wc -l </tmp/hammered)" = $tries

# 2. dev-N/writable written as soon as dev-1/ appears, before the bucket tables are read:
# the write holds after the mount, and replay's node allocations avoid the device (which has
# the most free buckets, so it would be chosen otherwise).
cat >/tmp/writable.toml <<'EOF'
bucket_size = "4k"
metadata_replicas = 1
discard = false
journal_keys = 3000

[[device]]
free = 4000

[[device]]
free = 12000
EOF
# Whether a try's write came before the bucket tables were read depends on scheduling: the
# writer notes the free buckets dev-1 shows right after its write (0 until the tables are
# read); such early tries must keep the write and keep replay off the device, later ones
# must keep the write. Up to 12 tries, until 2 early ones.
bad=0
early=0
i=0
while [ $i -lt 12 ] && [ $early -lt 2 ]; do
	i=$((i + 1))
	bucketfs scenario /tmp/writable.toml /dev/vda /dev/vdb >/dev/null
	f=/sys/fs/bucketfs/$(uuid_of /dev/vda)/dev-1/writable
	rm -f /tmp/mounted /tmp/free_at_write
	(
		until [ -e $f ] || [ -e /tmp/mounted ]; do :; done
		echo 0 >$f || echo "writable try $i: the write was not made"
		cat ${f%/writable}/free >/tmp/free_at_write 2>/dev/null
	) &
	h=$!
	# The writer spins before the mount starts, and the mount yields the CPU to it (the
	# guest may have one CPU), so the write often lands when the mount first sleeps, on
	# the bucket table read.
	usleep 20000
	nice_mount /dev/vda:/dev/vdb
	st=$?
	touch /tmp/mounted
	wait $h
	if [ $st != 0 ]; then
		bad=$((bad + 1))
		echo "writable try $i: mount failed"
		continue
	fi
	d=$(fs_dir)
	w=$(cat $d/dev-1/writable)
	nodes=$(cat $d/dev-1/btree)
	fw=$(cat /tmp/free_at_write 2>/dev/null)
	echo "writable try $i: dev-1/writable $w, btree buckets on dev-1: $nodes, dev-1 free buckets seen after the write: $fw"
	if [ "$fw" = 0 ]; then
		early=$((early + 1))
		[ "$w" = 0 ] && [ "$nodes" = 0 ] || bad=$((bad + 1))
	else
		[ "$w" = 0 ] || bad=$((bad + 1))
	fi
	umount /mnt
done
t early_dev_writable_written_before_tables test $early -ge 1
t early_dev_writable_write_kept test $bad = 0

# Every other knob written as soon as the directory appears takes effect too.
bucketfs scenario /tmp/writable.toml /dev/vda /dev/vdb >/dev/null
d=/sys/fs/bucketfs/$(uuid_of /dev/vda)
rm -f /tmp/mounted
(
	until [ -e $d/dev-1/discard ] || [ -e /tmp/mounted ]; do :; done
	echo 0 >$d/dev-1/discard
	echo 7 >$d/options/allocator_stuck_timeout
	echo 1 >$d/options/discard
) &
h=$!
usleep 20000
t early_knobs_mount nice_mount /dev/vda:/dev/vdb
touch /tmp/mounted
wait $h
t early_dev_discard_kept test "$(cat $d/dev-1/discard)" = 0
t early_option_kept test "$(cat $d/options/allocator_stuck_timeout)" = 7
t early_discard_option_kept test "$(cat $d/options/discard)" = 1
umount /mnt
mount -t bucketfs /dev/vda:/dev/vdb /mnt
t early_knobs_persisted test "$(cat $d/dev-1/discard) $(cat $d/options/allocator_stuck_timeout)" = "0 7"
umount /mnt
rmmod bucketfs

# 3. Mounts that fail after sysfs is up, with trigger_discards written in a loop, each followed
# at once by rmmod: a bucket table that calls a metadata bucket free (read_bucket_tables
# fails), a zeroed root node (recovery fails), a mount parked in replay and killed while the
# worker frees need_discard buckets, and one killed whenever while it really discards.
fails=0
for i in 1 2 3 4; do
	insmod /modules/bucketfs.ko || break
	case $i in
	1)
		bucketfs scenario /tmp/window.toml /dev/vda >/dev/null
		bucketfs debug set-bucket-state --bucket 0 --state free /dev/vda >/dev/null
		src=/dev/vda
		;;
	2)
		bucketfs scenario /tmp/window.toml /dev/vda >/dev/null
		root=$(bucketfs show-super /dev/vda | sed -n 's/.*copies: member 0 bucket \([0-9]*\);.*/\1/p')
		dd if=/dev/zero of=/dev/vda bs=4096 seek="$root" count=1 conv=notrunc 2>/dev/null
		src=/dev/vda
		;;
	3)
		bucketfs scenario /root/scenarios/seed-small.toml /dev/vda /dev/vdb >/dev/null
		src=/dev/vda:/dev/vdb
		;;
	4)
		bucketfs scenario /root/scenarios/seed-small-discard.toml /dev/vda /dev/vdb >/dev/null
		src=/dev/vda:/dev/vdb
		;;
	esac
	f=/sys/fs/bucketfs/$(uuid_of /dev/vda)/internal/trigger_discards
	rm -f /tmp/mounted
	hammer "$f" /tmp/mounted &
	h=$!
	if [ $i -le 2 ]; then
		if mount -t bucketfs $src /mnt 2>/dev/null; then
			fails=$((fails + 1))
			echo "failed mount $i: mounted"
			umount /mnt
		fi
	else
		mount -t bucketfs $src /mnt 2>/dev/null &
		m=$!
		usleep $(((i - 2) * 20000))
		kill -9 $m
		wait $m
		# The discard scenario may have mounted before the kill.
		grep -q " /mnt bucketfs " /proc/mounts && umount /mnt
	fi
	touch /tmp/mounted
	wait $h
	rmmod bucketfs || { fails=$((fails + 1)); echo "failed mount $i: rmmod failed"; break; }
done
t failed_mounts_with_triggers_then_rmmod test $fails = 0
t failed_mounts_no_sysfs_left test ! -e /sys/fs/bucketfs

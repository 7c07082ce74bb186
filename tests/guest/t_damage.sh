# SPDX-License-Identifier: GPL-2.0
# Damaged images: a seeded generator damages one piece of metadata (superblocks, bucket
# table, journal entry, btree node; stray copy pointers into metadata areas or out of range;
# sequence numbers at the limit; journal entries that free buckets; key records with a bad
# header or value, out of order or a deletion in a leaf, in a journal entry; journal entries
# that leave the namespace odd) of a pristine image, which is then mounted. Each must be
# refused with an errno and a dmesg line, or mount consistently (the btree the kernel shows,
# map keys, their digest and the namespace keys, is the one `dump-btree` walks after unmount)
# and then hold: it unmounts, mounts again and shows the same keys (nothing a mount writes may
# make the next mount fail). Never an oops or a splat (vm.sh checks).
# DAMAGE_IMAGES (default 40) images; their seeds are printed so a failure reproduces:
#   bucketfs debug damage --seed N DEV
# Disks: vda is the target, vdb and vdc hold the two templates (before and after replay).

insmod /modules/bucketfs.ko
images=${DAMAGE_IMAGES:-40}
bucketfs scenario /root/scenarios/damage.toml /dev/vdb >/dev/null
bucketfs scenario /root/scenarios/damage.toml /dev/vdc >/dev/null
mount -t bucketfs /dev/vdc /mnt && umount /mnt   # vdc: replayed and committed

# figures: "keys N digest D namespace_keys M" of the mounted filesystem (internal/btree_stats:
# map keys and their digest, then the other keys).
figures() {
	echo "$(btree_figures) namespace_keys $(sed -n 's/^namespace_keys //p' "$(fs_dir)/internal/btree_stats")"
}

# offline_figures DEV: the same figures as dump-btree walks them.
offline_figures() {
	bucketfs dump-btree "$1" 2>&1 |
		sed -n 's/^btree: \(keys [0-9]* digest [0-9a-f]* namespace_keys [0-9]*\).*/\1/p'
}

# remount_holds WHAT FIGURES: the unmounted vda mounts again and shows FIGURES; prints why not.
remount_holds() {
	if ! rh_err=$(timeout -s KILL 60 mount -t bucketfs /dev/vda /mnt 2>&1); then
		echo "$1: mounted once, but the next mount failed ($rh_err): $(dmesg | grep 'bucketfs' | tail -n 2 | tr '\n' ' ')"
		return 1
	fi
	rh_again=$(figures)
	umount /mnt
	if [ "$rh_again" != "$2" ]; then
		echo "$1: mounted with '$2', then again with '$rh_again'"
		return 1
	fi
	rh_offline=$(offline_figures /dev/vda)
	if [ "$rh_offline" != "$2" ]; then
		echo "$1: mounted twice with '$2', then dump-btree shows '$rh_offline'"
		return 1
	fi
}

refused=0
mounted=0
remounted=0
remount_bad=0
bad=0
# mount_damaged WHAT: mounts the damaged vda and counts the outcome (refused with a message,
# mounted consistently and again, or bad); prints why when bad.
mount_damaged() {
	dmesg -c >/dev/null
	if md_err=$(timeout -s KILL 60 mount -t bucketfs /dev/vda /mnt 2>&1); then
		md_kernel=$(figures)
		umount /mnt
		md_offline=$(offline_figures /dev/vda)
		if [ "$md_kernel" != "$md_offline" ]; then
			echo "damage $1: mounted, but the kernel showed '$md_kernel' and dump-btree '$md_offline'"
			bad=$((bad + 1))
		elif md_why=$(remount_holds "damage $1" "$md_kernel"); then
			mounted=$((mounted + 1))
			remounted=$((remounted + 1))
		else
			echo "$md_why"
			mounted=$((mounted + 1))
			remount_bad=$((remount_bad + 1))
			bad=$((bad + 1))
		fi
	else
		if dmesg | grep -q "bucketfs: "; then
			refused=$((refused + 1))
		else
			echo "damage $1: refused ($md_err) without a dmesg line"
			bad=$((bad + 1))
		fi
	fi
}
i=1
while [ $i -le $images ]; do
	template=/dev/vdb
	[ $((i % 2)) = 0 ] && template=/dev/vdc
	dd if=$template of=/dev/vda bs=1M count=8 2>/dev/null
	mount_damaged "$(bucketfs debug damage --seed $i /dev/vda 2>&1)"
	i=$((i + 1))
done
echo "damaged images: $images tried, $refused refused with a message, $mounted mounted consistently, $remounted mounted again with the same keys, $remount_bad failed the remount, $bad bad"
t damaged_images_refused_or_consistent test $bad = 0
t damaged_images_remount_with_the_same_keys test $remount_bad = 0
t damaged_images_some_refused test $refused -gt 0

# Every variant of the key record damage (format 2), once each: records in a leaf of the
# replayed template, children of its interior node, records appended to the journal of the
# other; each refused with a message or mounted consistently, and again.
refused=0
mounted=0
remounted=0
remount_bad=0
bad=0
tried=0
for template in /dev/vdc /dev/vdb; do
	case $template in
	/dev/vdc) classes='^(leaf-record|interior)/' ;;
	*) classes='^(journal-record|journal-ns)/' ;;
	esac
	dd if=$template of=/dev/vda bs=1M count=8 2>/dev/null
	for class in $(bucketfs debug damage --list --seed 1 /dev/vda | grep -E "$classes"); do
		dd if=$template of=/dev/vda bs=1M count=8 2>/dev/null
		mount_damaged "$(bucketfs debug damage --seed 1 --class "$class" /dev/vda 2>&1)"
		tried=$((tried + 1))
	done
done
echo "record damage: $tried variants tried, $refused refused with a message, $mounted mounted consistently, $remounted mounted again with the same keys, $remount_bad failed the remount, $bad bad"
t record_damage_every_variant_tried test $tried -ge 50
t record_damage_refused_or_consistent test $bad = 0
t record_damage_remount_with_the_same_keys test $remount_bad = 0

# damage_mounts_twice NAME TEMPLATE CLASS [DMESG]: an image of TEMPLATE with damage CLASS
# mounts (logging DMESG if given), and then holds: unmount, mount again, same keys.
damage_mounts_twice() {
	dd if=$2 of=/dev/vda bs=1M count=8 2>/dev/null
	dm_what=$(bucketfs debug damage --seed 1 --class "$3" /dev/vda 2>&1)
	dmesg -c >/dev/null
	if ! dm_err=$(timeout -s KILL 60 mount -t bucketfs /dev/vda /mnt 2>&1); then
		fail "$1" "$dm_what: refused ($dm_err): $(dmesg | grep bucketfs | tail -n 2 | tr '\n' ' ')"
		return
	fi
	dm_figures=$(figures)
	umount /mnt
	dm_log=$(dmesg)
	if ! dm_why=$(remount_holds "$dm_what" "$dm_figures"); then
		fail "$1" "$dm_why"
	elif [ -n "$4" ] && ! echo "$dm_log" | grep -Eq "$4"; then
		fail "$1" "$dm_what: mounted twice, but without a dmesg line matching '$4'"
	else
		pass "$1"
	fi
}

# Issue 11 item 1: a second (or first) copy pointer of a btree node into a metadata area or
# out of range is dropped with a message, never marked btree or freed to need_discard.
damage_mounts_twice stray_copy_into_superblock_area_dropped /dev/vdc stray-copy/second/superblock \
	"copy 1 at member 0 bucket 1 dropped: in the metadata area"
damage_mounts_twice stray_copy_into_journal_dropped /dev/vdc stray-copy/second/journal "dropped: in the metadata area"
damage_mounts_twice stray_first_copy_into_table_dropped /dev/vdc stray-copy/first/table "copy 0 .* dropped: in the metadata area"
damage_mounts_twice stray_copy_beyond_device_dropped /dev/vdc stray-copy/second/beyond "dropped: beyond the end"
damage_mounts_twice stray_copy_into_free_bucket_dropped /dev/vdc stray-copy/second/in-range "dropped"
damage_mounts_twice stray_copy_into_another_node_dropped /dev/vdc stray-copy/second/other-node "dropped"

# Issue 11 item 2: journal entries up to the largest sequence the superblock accepts.
damage_mounts_twice journal_seq_at_limit_refused /dev/vdb seq-limit/journal-1-below \
	"sequence number [0-9]* is above the largest replayable one"
damage_mounts_twice journal_seq_just_below_limit_replays /dev/vdb seq-limit/journal-2-below
# A commit whose superblock would be refused is itself refused; the image stays readable.
for class in seq-limit/superblock seq-limit/node; do
	name=commit_refused_at_$(echo $class | tr '/-' '__')
	dd if=/dev/vdb of=/dev/vda bs=1M count=8 2>/dev/null
	bucketfs debug damage --seed 1 --class $class /dev/vda >/dev/null 2>&1
	dmesg -c >/dev/null
	if timeout -s KILL 60 mount -t bucketfs /dev/vda /mnt 2>/dev/null; then
		umount /mnt
		fail $name "mounted, committing a superblock at the sequence limit"
	elif ! dmesg_has "cannot commit: the next superblock would be refused"; then
		fail $name "refused without the commit message: $(dmesg | grep bucketfs | tail -n 2 | tr '\n' ' ')"
	elif ! bucketfs show-super /dev/vda >/dev/null 2>&1; then
		fail $name "the superblocks no longer decode"
	else
		pass $name
	fi
done

# Issue 11 item 11: buckets a journal entry frees to `free` hold data the pre-replay state
# still uses: the replay neither allocates nor discards them; the commit frees them.
cat >/tmp/free-pinned.toml <<'EOF'
bucket_size = "4k"
journal_keys = 1200
keys_per_entry = 300
allocator_stuck_timeout = 0

[[device]]
buckets = 2048
free_pinned = 20
free = 1500
fill = true
EOF
bucketfs scenario /tmp/free-pinned.toml /dev/vda >/tmp/free-pinned.out
# The first filled run is the free_pinned one (the scenario lays it out first).
range=$(sed -n 's/^scenario: filled dev 0 buckets \([0-9]*\)\.\.\([0-9]*\)$/\1 \2/p' /tmp/free-pinned.out | head -n 1)
expect=$(sed -n 's/^scenario: expect //p' /tmp/free-pinned.out)
# first_block_pattern B: bucket B's first 4 KiB still hold the scenario's 0xa5 fill.
dd if=/dev/zero bs=4096 count=1 2>/dev/null | tr '\000' '\245' >/tmp/a5-block
first_block_pattern() {
	dd if=/dev/vda bs=4096 skip=$1 count=1 2>/dev/null | cmp -s - /tmp/a5-block
}
if ! timeout -s KILL 60 mount -t bucketfs /dev/vda /mnt; then
	fail journal_freed_buckets_not_written_before_commit "mount failed: $(dmesg | grep bucketfs | tail -n 2 | tr '\n' ' ')"
else
	got=$(btree_figures)
	umount /mnt
	overwritten=""
	b=${range% *}
	while [ "$b" -lt "${range#* }" ]; do
		first_block_pattern $b || overwritten="$overwritten $b"
		b=$((b + 1))
	done
	if [ -z "$range" ] || [ "${range% *}" -ge "${range#* }" ]; then
		fail journal_freed_buckets_not_written_before_commit "no filled run in the scenario's report"
	elif [ "$got" != "$expect" ]; then
		fail journal_freed_buckets_not_written_before_commit "keys: got '$got', want '$expect'"
	elif [ -n "$overwritten" ]; then
		fail journal_freed_buckets_not_written_before_commit "buckets written during replay:$overwritten"
	else
		pass journal_freed_buckets_not_written_before_commit
	fi
	# The scenario's namespace is the root directory alone.
	t journal_freed_buckets_remount remount_holds "free-pinned scenario" "$expect namespace_keys 1"
fi
t damage_rmmod rmmod bucketfs

# SPDX-License-Identifier: GPL-2.0
# Member labels and metadata_target (issue 14; bcachefs-tools #628): a pool parked in replay
# because metadata_target names a starved label is released by a write of the target, of a
# label, or of metadata_target_fallback; labels persist; garbage is refused; the knobs work
# from the moment sysfs appears. Also the replay progress line in dmesg.
# Disks: vda, vdb, vdc.

lsmod | grep -q '^bucketfs ' || insmod /modules/bucketfs.ko
tspec=/root/scenarios/target-628.toml
devs="/dev/vda /dev/vdb /dev/vdc"
src=/dev/vda:/dev/vdb:/dev/vdc

# tscenario NAME: write the #628 state; sets $expect ("keys N digest D") and $uuid.
tscenario() {
	out=$(bucketfs scenario $tspec $devs)
	expect=$(echo "$out" | sed -n 's/^scenario: expect //p')
	uuid=$(echo "$out" | sed -n 's/^scenario: uuid //p')
	if [ -n "$expect" ]; then pass "$1_scenario"; else fail "$1_scenario" "$out"; fi
}

# tmount_parks NAME: mount in the background and wait until the replay parks.
tmount_parks() {
	mount -t bucketfs $src /mnt 2>/tmp/mount.err &
	pid=$!
	(sleep 60; kill -9 $pid 2>/dev/null) &
	t "$1_mount_parks" wait_for 20 parked 1
	d=$(fs_dir)
}

# tkeys NAME: every journal key is in the btree, also after unmount and a remount.
tkeys() {
	t "$1_btree_has_every_key" test "$(btree_figures)" = "$expect"
	umount /mnt
	t "$1_remount" mount -t bucketfs $src /mnt
	t "$1_keys_after_remount" test "$(btree_figures)" = "$expect"
	t "$1_nothing_left_to_replay" grep -q "replayed 0 of 0" $(fs_dir)/internal/replay
	umount /mnt
}

# show_super_has DEV PATTERN: `bucketfs show-super DEV` prints a line matching PATTERN (grep -E).
show_super_has() { bucketfs show-super "$1" | grep -Eq -- "$2"; }

# Format: a label per device, the target among the format options; bad ones refused.
t fmt_labels bucketfs format --bucket-size 4k --metadata-replicas 2 --metadata-target hdd \
	--label ssd /dev/vda --label hdd.hdd1 /dev/vdb /dev/vdc
t fmt_label_dev0 show_super_has /dev/vda "^    0: .*, label 'ssd'$"
t fmt_label_dev1 show_super_has /dev/vda "^    1: .*, label 'hdd.hdd1'$"
t fmt_no_label_dev2 show_super_has /dev/vda "^    2: .*, label ''$"
t fmt_target show_super_has /dev/vdc "metadata_target +hdd$"
expect_fail fmt_bad_label "a label is made of" bucketfs format --label SSD /dev/vda
expect_fail fmt_reserved_label "name targets" bucketfs format --label dev-1 /dev/vda
expect_fail fmt_target_of_nobody "no member carries this label" \
	bucketfs format --metadata-target nvme --label ssd /dev/vda

# A: the #628 shape parks; a write of the target releases it.
tscenario a
tmount_parks a
t a_target_shown test "$(cat $d/options/metadata_target)" = ssd
t a_fallback_off test "$(cat $d/options/metadata_target_fallback)" = 0
t a_labels_shown test "$(cat $d/dev-0/label) $(cat $d/dev-1/label) $(cat $d/dev-2/label)" = "ssd hdd.hdd1 hdd.hdd2"
t a_alloc_debug_names_target grep -q "metadata_target members dev-0$" $d/internal/alloc_debug
t a_stuck_report_names_target wait_for 10 dmesg_has "$uuid:   metadata_target members dev-0, strict"
# Garbage and targets of nobody are refused, with a dmesg line each; the mount stays parked.
expect_fail a_target_garbage "Invalid argument" sysfs_write $d/options/metadata_target "Hdd"
t a_target_garbage_logged dmesg_has "$uuid: options/metadata_target=Hdd: not none, dev-N or a label.*\(-22\)"
expect_fail a_target_nobody "Invalid argument" sysfs_write $d/options/metadata_target nvme
t a_target_nobody_logged dmesg_has "$uuid: options/metadata_target=nvme: no member carries this label \(-22\)"
expect_fail a_target_no_member "Invalid argument" sysfs_write $d/options/metadata_target dev-3
t a_target_no_member_logged dmesg_has "options/metadata_target=dev-3: no such member"
expect_fail a_label_garbage "Invalid argument" sysfs_write $d/dev-1/label "a b"
t a_label_garbage_logged dmesg_has "$uuid: dev-1/label=a b: a label is made of.*\(-22\)"
expect_fail a_label_too_long "Invalid argument" sysfs_write $d/dev-1/label "$(printf 'x%.0s' $(seq 32))"
expect_fail a_label_reserved "Invalid argument" sysfs_write $d/dev-1/label none
t a_target_unchanged test "$(cat $d/options/metadata_target)" = ssd
# A label write wakes the request, which re-reads the target's members and parks again.
w0=$(sed -n 's/^wakeups: //p' $d/internal/alloc_debug)
t a_label_write sysfs_write $d/dev-2/label hdd.hdd2
t a_label_write_wakes wait_for 5 sh -c "[ \$(sed -n 's/^wakeups: //p' $d/internal/alloc_debug) -gt $w0 ]"
t a_still_parked parked 1
t a_mount_not_done kill -0 $pid
start=$(now_ms)
t a_release_by_target sysfs_write $d/options/metadata_target hdd
wait $pid
rc=$?
echo "#628 rescue by a metadata_target write took $(( $(now_ms) - start )) ms"
t a_mount_completes test $rc = 0
t a_target_in_force test "$(cat $(fs_dir)/options/metadata_target)" = hdd
t a_replay_progress_line dmesg_has "$uuid: replay progress: [0-9]+ of 3000 key\(s\) \([0-9]+%\), [0-9]+ keys/s in the last [0-9]+ ms"
t a_replay_final_line dmesg_has "$uuid: replayed 3000 key\(s\) in [0-9]+ ms \([0-9]+ keys/s\)"
tkeys a
t a_target_persisted show_super_has /dev/vdb "metadata_target +hdd$"

# B: metadata_target_fallback (a mount option here) puts the copies the starved target cannot
# take on other members at once: no park. A short replay prints no progress flood.
tscenario b
t b_mount_with_fallback mount -t bucketfs -o metadata_target_fallback $src /mnt
t b_never_parked grep -q "^parks: 0" $(fs_dir)/internal/alloc_debug
ms=$(dmesg | sed -n "s/.*$uuid: replayed 3000 key(s) in \([0-9]*\) ms.*/\1/p" | tail -n 1)
lines=$(dmesg | grep -c "$uuid: replay progress")
echo "short replay: $ms ms, $lines progress line(s)"
t b_short_replay_does_not_flood test "$lines" -le $(( ${ms:-0} / 1000 + 1 ))
t b_unmount umount /mnt
t b_fallback_not_persisted show_super_has /dev/vda "metadata_target_fallback +0$"
t b_remount mount -t bucketfs $src /mnt
t b_keys_after_remount test "$(btree_figures)" = "$expect"
umount /mnt

# C: relabelling the starved member releases the parked mount (the target then names nobody,
# which places as no target); the label write persists.
tscenario c
tmount_parks c
w0=$(sed -n 's/^wakeups: //p' $d/internal/alloc_debug)
t c_relabel_within_target sysfs_write $d/dev-0/label ssd.old
t c_relabel_wakes wait_for 5 sh -c "[ \$(sed -n 's/^wakeups: //p' $d/internal/alloc_debug) -gt $w0 ]"
t c_still_parked_under_a_sub_label parked 1
t c_release_by_relabel sysfs_write $d/dev-0/label old
wait $pid
t c_mount_completes test $? = 0
t c_label_shown test "$(cat $(fs_dir)/dev-0/label)" = old
tkeys c
t c_label_persisted show_super_has /dev/vdc "^    0: .*, label 'old'$"
t c_label_remount mount -t bucketfs $src /mnt
t c_label_after_remount test "$(cat $(fs_dir)/dev-0/label)" = old
t c_label_cleared sysfs_write $(fs_dir)/dev-0/label ""
t c_label_cleared_shown test -z "$(cat $(fs_dir)/dev-0/label)"
# Mount options and remount: a target of nobody is refused, a member target taken.
t c_remount_target mount -o remount,metadata_target=dev-2 /mnt
t c_remount_target_shown test "$(cat $(fs_dir)/options/metadata_target)" = dev-2
expect_fail c_remount_target_garbage "Invalid argument" mount -o remount,metadata_target=A.B /mnt
umount /mnt
expect_fail c_mount_target_nobody "Invalid argument" mount -t bucketfs -o metadata_target=nvme $src /mnt
t c_mount_target_nobody_logged dmesg_has "metadata_target=nvme: no member carries this label"
t c_target_after_remount show_super_has /dev/vda "metadata_target +dev-2$"

# D: the knobs from the moment sysfs appears (before the bucket tables are read): a label
# and the target written again and again during a parked-then-released mount all hold.
tscenario d
f=/sys/fs/bucketfs/$uuid
rm -f /tmp/tdone
( until [ -e $f/dev-0/label ] || [ -e /tmp/tdone ]; do :; done
  until [ -e /tmp/tdone ]; do echo fast >$f/dev-0/label; echo hdd >$f/options/metadata_target; done 2>/dev/null ) &
h=$!
timeout -s KILL 60 mount -t bucketfs $src /mnt
st=$?
touch /tmp/tdone
wait $h
t d_mount_with_early_writes test $st = 0
t d_early_label_holds test "$(cat $(fs_dir)/dev-0/label)" = fast
t d_early_target_holds test "$(cat $(fs_dir)/options/metadata_target)" = hdd
tkeys d

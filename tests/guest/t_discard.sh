# SPDX-License-Identifier: GPL-2.0
# The discard worker, inside the guest: a settled need_discard backlog drains by itself with
# merged discards; a journal-pinned one waits for the commit, then drains without I/O when
# discard is off; the knobs.

insmod /modules/bucketfs.ko

expect=$(bucketfs scenario /root/scenarios/seed-small-discard.toml /dev/vda /dev/vdb | sed -n 's/^scenario: expect //p')
t discard_on_mount_completes_by_itself timeout -s KILL 60 mount -t bucketfs /dev/vda:/dev/vdb /mnt
d=$(fs_dir)
t discard_on_drains_dev0 wait_for 30 sh -c "test \$(cat $d/dev-0/need_discard) = 0"
t discard_on_drains_dev1 wait_for 30 sh -c "test \$(cat $d/dev-1/need_discard) = 0"
got=$(btree_figures)
t discard_on_btree_has_every_key test "$got" = "$expect"
b=$(cat $d/dev-0/discard_buckets)
c=$(cat $d/dev-0/discard_commands)
echo "dev-0: $b buckets discarded with $c commands, $(cat $d/dev-0/discard_bytes) bytes"
t discard_on_dev0_discarded_backlog test "$b" -ge 8000
t discard_on_commands_merged test $((c * 64)) -le "$b"
t discard_on_bytes_counted test "$(cat $d/dev-0/discard_bytes)" = $((b * 4096))
t discard_on_no_errors test "$(cat $d/dev-0/discard_errors)" = 0
t trigger_discards_knob sysfs_write $d/internal/trigger_discards 1
expect_fail trigger_discards_takes_only_1 "Invalid argument" sysfs_write $d/internal/trigger_discards 2
t dev_discard_file_writable test "$(stat -c %a $d/dev-0/discard)" = 644
t dev_discard_off sysfs_write $d/dev-0/discard 0
t dev_discard_reads_off test "$(cat $d/dev-0/discard)" = 0
expect_fail dev_discard_garbage "Invalid argument" sysfs_write $d/dev-0/discard maybe
umount /mnt
mount -t bucketfs /dev/vda:/dev/vdb /mnt
t dev_discard_persisted test "$(cat $(fs_dir)/dev-0/discard)" = 0
umount /mnt

# Journal-pinned backlog, discard off: freed only after the commit, and without I/O.
bucketfs scenario /root/scenarios/seed-small.toml /dev/vda /dev/vdb >/dev/null
t pinned_mount_with_replicas_1 timeout -s KILL 60 mount -t bucketfs -o metadata_replicas=1 /dev/vda:/dev/vdb /mnt
d=$(fs_dir)
t pinned_drained_after_commit wait_for 30 sh -c "test \$(cat $d/dev-0/need_discard) = 0"
t discard_off_frees_without_io test "$(cat $d/dev-0/freed_without_discard)" -ge 8000
t discard_off_issues_no_discard test "$(cat $d/dev-0/discard_commands)" = 0
umount /mnt
t discard_rmmod rmmod bucketfs

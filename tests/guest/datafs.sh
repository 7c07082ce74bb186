# SPDX-License-Identifier: GPL-2.0
# The filesystem under test for the file data tests (t_data.sh, t_datafio.sh, t_enospc.sh and
# the host scripts' guest halves): DATA_FS=bucketfs (the default) or DATA_FS=ext4, so each test
# can be checked against ext4 in the same guest (mkfs.ext4 and e2fsck from Debian, copied in
# with scripts/vm.sh --bin mkfs.ext4 --bin e2fsck --file /etc/mke2fs.conf:/etc/mke2fs.conf).
# Sourced after lib.sh (fsck_clean). Busybox sh.

DATA_FS=${DATA_FS:-bucketfs}
# bucketfs format arguments before the devices (the bucket size sets the granularity du/df
# may differ by).
DATA_FORMAT_ARGS=${DATA_FORMAT_ARGS:---bucket-size 64k}

# datafs_format [--data-replicas N] DEV...: a new filesystem over DEV... (ext4: the first one
# only, 4 KiB blocks as bucketfs has, and data replicas are refused: the caller skips what ext4
# cannot do).
datafs_format() {
	dfo_extra=
	if [ "$1" = --data-replicas ]; then
		dfo_extra="--data-replicas $2"
		shift 2
	fi
	case $DATA_FS in
	bucketfs)
		# shellcheck disable=SC2086
		bucketfs format $DATA_FORMAT_ARGS $dfo_extra "$@" >/tmp/datafs-format.log 2>&1 ||
			{ tail -n 3 /tmp/datafs-format.log; return 1; }
		;;
	ext4)
		[ -z "$dfo_extra" ] || { echo "ext4 has no data replicas"; return 1; }
		mkfs.ext4 -q -F -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 "$1" >/tmp/datafs-format.log 2>&1 ||
			{ tail -n 3 /tmp/datafs-format.log; return 1; }
		;;
	*) echo "DATA_FS=$DATA_FS: bucketfs or ext4"; return 1 ;;
	esac
}

# datafs_source DEV...: the mount source (bucketfs: DEV1:DEV2:..., ext4: DEV1).
datafs_source() {
	case $DATA_FS in
	bucketfs) echo "$*" | tr ' ' ':' ;;
	*) echo "$1" ;;
	esac
}

# datafs_mount [-o OPTS] DEV...: mounts DEV... on /mnt. "nodiscard" and "ro" mean the same on
# both; bucketfs-only options (data_replicas=N, degraded) are the caller's business.
datafs_mount() {
	dm_opts=
	if [ "$1" = -o ]; then
		dm_opts="-o $2"
		shift 2
	fi
	# shellcheck disable=SC2086
	mount -t $DATA_FS $dm_opts "$(datafs_source "$@")" /mnt
}

# datafs_fsck DEV...: the filesystem's checker finds nothing (bucketfs fsck exit 0; e2fsck -fn
# exit 0), its last lines printed otherwise.
datafs_fsck() {
	case $DATA_FS in
	bucketfs) fsck_clean "$@" ;;
	ext4)
		command -v e2fsck >/dev/null || { echo "e2fsck is not in the guest (--bin e2fsck)"; return 1; }
		dfk_out=$(e2fsck -fn "$1" 2>&1)
		dfk_st=$?
		[ $dfk_st = 0 ] && return 0
		echo "$dfk_out" | tail -n 4
		echo "e2fsck exit $dfk_st"
		return 1
		;;
	esac
}

# datafs_used_kib: KiB used on /mnt as statfs says (df).
datafs_used_kib() { df -k /mnt | awk 'NR == 2 { print $3 }'; }
# datafs_free_kib: KiB available on /mnt (df).
datafs_free_kib() { df -k /mnt | awk 'NR == 2 { print $4 }'; }

# datafs_no_new_warnings N: no kernel warning, bug, oops or filesystem error past the first N
# lines of the kernel log.
datafs_no_new_warnings() {
	dnw=$(dmesg | tail -n +$(($1 + 1)) |
		grep -E 'WARNING:|BUG:|Oops|Call Trace:|(bucketfs|EXT4-fs).*(error|corrupt)')
	[ -z "$dnw" ] || { echo "$dnw" | head -n 5; return 1; }
}

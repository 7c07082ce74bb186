#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build (or reuse) the bucketfs test kernel.
#
#   scripts/kernel.sh [--variant NAME] [--dir]
#
# Extracts Debian's linux-source-6.12 into a cache directory outside the
# repository, merges kernel/bucketfs.config (plus kernel/NAME.config for a
# variant) onto tinyconfig and builds bzImage and modules with
# LLVM=1 RUSTC=/usr/bin/rustc. The cache directory is keyed by the source
# package version, the fragments and the rustc/bindgen versions, so a second
# run with the same inputs returns at once.
#
# --dir prints the build directory for these inputs without building.
# BUCKETFS_CACHE overrides the cache root (default ~/.cache/bucketfs).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
variant=
print_dir=0
while [ $# -gt 0 ]; do
	case "$1" in
	--variant) variant=$2; shift 2 ;;
	--dir) print_dir=1; shift ;;
	*) echo "usage: $0 [--variant NAME] [--dir]" >&2; exit 2 ;;
	esac
done

cache=${BUCKETFS_CACHE:-$HOME/.cache/bucketfs}
rustc=/usr/bin/rustc
bindgen=${BINDGEN:-${CARGO_HOME:-$HOME/.cargo}/bin/bindgen}
tarball=/usr/src/linux-source-6.12.tar.xz
fragments=("$here/kernel/bucketfs.config")
[ -n "$variant" ] && fragments+=("$here/kernel/$variant.config")

srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || echo none)
key=$( {
	echo "recipe 1"
	echo "source $srcver"
	cat "${fragments[@]}"
	"$rustc" --version 2>/dev/null || echo no-rustc
	"$bindgen" --version 2>/dev/null || echo no-bindgen
} | sha256sum | cut -c1-16)
dir="$cache/linux-6.12${variant:+-$variant}-$key"

if [ $print_dir = 1 ]; then
	echo "$dir"
	exit 0
fi

start=$(date +%s)
phase() { printf 'kernel: [%4ds] %s\n' $(( $(date +%s) - start )) "$*"; }

if [ -f "$dir/.bucketfs-built" ]; then
	phase "cached build reused: $dir"
	exit 0
fi

[ -f "$tarball" ] || { echo "kernel: $tarball missing; run scripts/deps.sh" >&2; exit 1; }
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
# Another run may have finished the build while we waited for the lock.
if [ -f "$dir/.bucketfs-built" ]; then
	phase "cached build reused: $dir"
	exit 0
fi

make_k() {
	make -C "$dir" LLVM=1 RUSTC="$rustc" BINDGEN="$bindgen" "$@"
}

if [ ! -f "$dir/Makefile" ]; then
	phase "extracting $tarball (linux-source-6.12 $srcver)"
	rm -rf "$dir.tmp"
	mkdir -p "$dir.tmp"
	tar -xf "$tarball" -C "$dir.tmp" --strip-components=1
	mv "$dir.tmp" "$dir"
fi

phase "checking the Rust toolchain"
make_k -s rustavailable

phase "configuring: tinyconfig + ${fragments[*]##*/}"
make_k -s tinyconfig >/dev/null
(cd "$dir" && ./scripts/kconfig/merge_config.sh -m .config "${fragments[@]}" >/dev/null)
make_k -s olddefconfig >/dev/null
# Every line of every fragment must have survived olddefconfig, or the
# kernel silently lacks something a test relies on.
bad=0
for f in "${fragments[@]}"; do
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=n) opt=${line%%=*}; grep -q "^$opt=" "$dir/.config" && { echo "kernel: $opt still set" >&2; bad=1; } ;;
		CONFIG_*) grep -qx "$line" "$dir/.config" || { echo "kernel: $line did not stick" >&2; bad=1; } ;;
		esac
	done <"$f"
done
[ $bad = 0 ] || exit 1

jobs=$(( $(nproc) + 1 ))
phase "building bzImage and modules with -j$jobs (a cold build takes ~10 minutes on 2 cores)"
log="$dir/.bucketfs-build.log"
make_k -j"$jobs" bzImage modules >"$log" 2>&1 &
pid=$!
while kill -0 $pid 2>/dev/null; do
	sleep 30
	kill -0 $pid 2>/dev/null && phase "still building: $(tail -n1 "$log" | cut -c1-100)"
done
if ! wait $pid; then
	tail -n 40 "$log" >&2
	phase "build FAILED (full log: $log)"
	exit 1
fi
touch "$dir/.bucketfs-built"
phase "built $dir/arch/x86/boot/bzImage"

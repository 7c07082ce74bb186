#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install everything bucketfs needs to build and test, skipping what is there.
# Debian 12 (bookworm) host; run as root or with sudo available.
set -euo pipefail

PKGS=(linux-source-6.12 rustc-web rust-web-src libclang-dev clang lld llvm
      flex bison bc libelf-dev libssl-dev cpio kmod qemu-system-x86
      busybox-static xz-utils python3 make gcc rsync
      stress-ng fio e2fsprogs util-linux)
# stress-ng, fio, mkfs.ext4, e2fsck and util-linux's fallocate and fstrim run in the guest
# too: scripts/vm.sh --bin copies a host binary and its shared libraries into the initramfs.
BINDGEN_VERSION=0.69.5

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
	echo "deps: Debian packages present"
fi

BINDGEN="${CARGO_HOME:-$HOME/.cargo}/bin/bindgen"
if ! "$BINDGEN" --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
	echo "deps: installing bindgen-cli $BINDGEN_VERSION"
	cargo install --locked --quiet bindgen-cli --version "$BINDGEN_VERSION"
else
	echo "deps: bindgen-cli $BINDGEN_VERSION present"
fi

# rustfmt for the host workspace: the rustup toolchain has it; the kernel
# build uses /usr/bin/rustc (rustc-web) because it ships the core sources.
/usr/bin/rustc --version
"$BINDGEN" --version

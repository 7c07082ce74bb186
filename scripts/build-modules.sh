#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the modules for a kernel variant (scripts/kernel.sh --variant NAME) in
# out/build-NAME/, leaving the default build in the repository alone. Prints the directory.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
variant=$1
kdir=$("$here/scripts/kernel.sh" --variant "$variant" --dir)
"$here/scripts/kernel.sh" --variant "$variant" >&2
dir=$here/out/build-$variant
mkdir -p "$dir"
# --relative keeps tests/kunit/ at the same place under "$dir" as in the repository.
rsync -a --relative --delete --exclude generated --exclude '*.o' --exclude '*.ko' --exclude '.*.cmd' \
	"$here"/./{Kbuild,rust,c,include,tests/kunit,bench} "$dir"/ >&2
make -C "$kdir" M="$dir" LLVM=1 RUSTC=/usr/bin/rustc BINDGEN="${BINDGEN:-$HOME/.cargo/bin/bindgen}" \
	modules >&2
echo "$dir"

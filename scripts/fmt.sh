#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# rustfmt every Rust file with the kernel's .rustfmt.toml; --check only reports.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
mode=()
[ "${1:-}" = --check ] && mode=(--check)
kdir=$(scripts/kernel.sh --dir)
config=()
[ -f "$kdir/.rustfmt.toml" ] && config=(--config-path "$kdir/.rustfmt.toml")
mapfile -t files < <(git ls-files -co --exclude-standard '*.rs' | grep -v '^generated/')
rustfmt --edition 2021 "${config[@]}" "${mode[@]}" "${files[@]}"

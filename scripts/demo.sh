#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The README's first command: set everything up, then tell the #1108 story in a guest.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/deps.sh
make modules tool
exec scripts/vm.sh --disk 48M --disk 192M --disk 64M --timeout 900 \
	--file tests/guest:/root/tests --file tests/scenarios:/root/scenarios tests/guest/demo.sh

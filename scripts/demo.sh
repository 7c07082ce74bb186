#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The README's first command: set everything up, then run the demo in a guest.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/deps.sh
make modules tool
exec scripts/vm.sh --disk 64M --disk 64M --timeout 600 \
	--file tests/guest:/root/tests tests/guest/demo.sh

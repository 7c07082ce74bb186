# SPDX-License-Identifier: GPL-2.0
# Shared by the host-side test scripts: sourced with NAME set, it moves to the top of the
# repository, takes LOGDIR ($1, default out/NAME), makes a scratch directory removed on exit,
# and defines the VM runner and the result lines scripts/check.sh counts.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$here"
logs=${1:-out/$NAME}
mkdir -p "$logs"
work=$(mktemp -d "/tmp/bucketfs-$NAME.XXXXXX")
trap 'rm -rf "$work"' EXIT

# vm ARGS...: scripts/vm.sh with two 64 MiB disks, the guest helpers and the scenarios.
vm() {
	scripts/vm.sh --disk 64M --disk 64M --timeout 300 --file tests/guest:/root/tests \
		--file tests/scenarios:/root/scenarios "$@"
}
ok() { echo "HOST-TEST ok $1"; }
fail() { echo "HOST-TEST FAIL $1: $2"; }

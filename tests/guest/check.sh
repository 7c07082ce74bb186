# SPDX-License-Identifier: GPL-2.0
# The guest half of `make check`: every test file, then the result.
. /root/tests/lib.sh
# Arguments NAME=VALUE become variables the tests read (e.g. DAMAGE_IMAGES=1000).
for a in "$@"; do export "$a"; done
for t in /root/tests/t_*.sh; do
	echo "== $t"
	. "$t"
done
guest_exit

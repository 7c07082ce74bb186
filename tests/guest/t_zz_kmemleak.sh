# SPDX-License-Identifier: GPL-2.0
# Last: on a kernel with kmemleak (the debug variant), scan for leaks after every test has
# mounted, failed, aborted, killed and unloaded. Any unreferenced object fails the run.
if [ -e /sys/kernel/debug/kmemleak ]; then
	# Objects freed by RCU or still in flight need a moment and two scans to settle.
	sleep 2
	echo scan >/sys/kernel/debug/kmemleak
	sleep 1
	echo scan >/sys/kernel/debug/kmemleak
	leaks=$(grep -c "unreferenced object" /sys/kernel/debug/kmemleak)
	if [ "$leaks" = 0 ]; then
		pass kmemleak_no_leaks
	else
		head -n 40 /sys/kernel/debug/kmemleak
		fail kmemleak_no_leaks "$leaks unreferenced object(s)"
	fi
fi

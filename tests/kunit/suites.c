// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit suite tables for bucketfs. The test bodies are Rust
 * (tests/kunit/closure_tests.rs and friends); this file only declares the suites, which KUnit
 * runs when bucketfs_kunit.ko is loaded.
 */
#include <kunit/test.h>
#include <linux/sched/signal.h>

#include "bucketfs_glue.h"

void bucketfs_kunit_fail(struct kunit *test, const char *file, int line,
			 const char *what)
{
	KUNIT_FAIL(test, "%s:%d: %s", file, line, what);
}

/*
 * A kthread ignores every signal unless it allows it; once allowed, SIGKILL is
 * only queued (the handler is not SIG_DFL, so it does not kill the thread),
 * which is what fatal_signal_pending() looks at.
 */
bool bucketfs_kunit_kill_self(void)
{
	allow_signal(SIGKILL);
	send_sig(SIGKILL, current, 1);
	return fatal_signal_pending(current);
}

void bucketfs_kunit_clear_kill(void)
{
	flush_signals(current);
	disallow_signal(SIGKILL);
}

#define BUCKETFS_CASE(name)					\
	void bucketfs_kunit_##name(struct kunit *test);		\
	static void name(struct kunit *test)			\
	{							\
		bucketfs_kunit_##name(test);			\
	}

BUCKETFS_CASE(closure_wake_between_park_and_sync)
BUCKETFS_CASE(closure_wake_with_nobody_parked_is_lost)
BUCKETFS_CASE(closure_wake_after_sync)
BUCKETFS_CASE(closure_timeout_keeps_it_parked)
BUCKETFS_CASE(closure_many_waiters_released_fifo)
BUCKETFS_CASE(closure_dropped_guard_wakes_the_list)
BUCKETFS_CASE(closure_forgotten_guard_left_on_drop)
BUCKETFS_CASE(closure_is_empty_follows_parks_and_wakes)
BUCKETFS_CASE(closure_killed_sync_hands_the_guard_back)

BUCKETFS_CASE(alloc_rereads_options_on_wakeup)
BUCKETFS_CASE(alloc_wake_before_park_not_lost)
BUCKETFS_CASE(alloc_many_parked_all_released)
BUCKETFS_CASE(alloc_abort_fails_all_parked)
BUCKETFS_CASE(alloc_free_path_and_reserves)
BUCKETFS_CASE(alloc_races)
BUCKETFS_CASE(alloc_abort_between_wake_and_park)
BUCKETFS_CASE(alloc_rate_limited_report_does_not_poll)
BUCKETFS_CASE(alloc_degraded_after_the_stuck_timeout)
BUCKETFS_CASE(alloc_index_16m_nearly_full)

static struct kunit_case bucketfs_closure_cases[] = {
	KUNIT_CASE(closure_wake_between_park_and_sync),
	KUNIT_CASE(closure_wake_with_nobody_parked_is_lost),
	KUNIT_CASE(closure_wake_after_sync),
	KUNIT_CASE(closure_timeout_keeps_it_parked),
	KUNIT_CASE(closure_many_waiters_released_fifo),
	KUNIT_CASE(closure_dropped_guard_wakes_the_list),
	KUNIT_CASE(closure_forgotten_guard_left_on_drop),
	KUNIT_CASE(closure_is_empty_follows_parks_and_wakes),
	KUNIT_CASE(closure_killed_sync_hands_the_guard_back),
	{}
};

static struct kunit_suite bucketfs_closure_suite = {
	.name = "bucketfs_closure",
	.test_cases = bucketfs_closure_cases,
};

static struct kunit_case bucketfs_allocator_cases[] = {
	KUNIT_CASE(alloc_rereads_options_on_wakeup),
	KUNIT_CASE(alloc_wake_before_park_not_lost),
	KUNIT_CASE(alloc_many_parked_all_released),
	KUNIT_CASE(alloc_abort_fails_all_parked),
	KUNIT_CASE(alloc_free_path_and_reserves),
	KUNIT_CASE(alloc_races),
	KUNIT_CASE(alloc_abort_between_wake_and_park),
	KUNIT_CASE_SLOW(alloc_rate_limited_report_does_not_poll),
	KUNIT_CASE_SLOW(alloc_degraded_after_the_stuck_timeout),
	KUNIT_CASE_SLOW(alloc_index_16m_nearly_full),
	{}
};

static struct kunit_suite bucketfs_allocator_suite = {
	.name = "bucketfs_allocator",
	.test_cases = bucketfs_allocator_cases,
};

kunit_test_suites(&bucketfs_closure_suite, &bucketfs_allocator_suite);

// SPDX-License-Identifier: GPL-2.0
/*
 * Callable forms of the static inlines of include/linux/closure.h (which
 * bindgen cannot call), a sync that can time out or be killed and reports a
 * wake ticket, and small time helpers. The safe Rust wrapper is
 * rust/closure.rs; the KUnit and bench modules include this file to carry their
 * own copy.
 */
#define pr_fmt(fmt) "bucketfs: " fmt

#include <linux/atomic.h>
#include <linux/delay.h>
#include <linux/jiffies.h>
#include <linux/rcupdate.h>
#include <linux/sched/signal.h>

#include "bucketfs_glue.h"

void bucketfs_closure_init_stack(struct closure *cl)
{
	closure_init_stack(cl);
}

bool bucketfs_closure_park(struct closure *cl, struct closure_waitlist *list)
{
	return closure_wait(list, cl);
}

bool bucketfs_closure_is_parked(struct closure *cl)
{
	return atomic_read(&cl->remaining) & CLOSURE_WAITING;
}

void bucketfs_waitlist_wake_all(struct closure_waitlist *list)
{
	closure_wake_up(list);
}

bool bucketfs_waitlist_is_empty(struct closure_waitlist *list)
{
	return llist_empty(&list->list);
}

void bucketfs_msleep(unsigned int msecs)
{
	msleep(msecs);
}

void bucketfs_cond_resched(void)
{
	cond_resched();
}

/*
 * Our own syncer rather than __closure_sync_timeout(): we need a killable
 * sleep (a parked mount must die on SIGKILL), and a wake ticket, a global
 * sequence number taken in the waker's context, so callers and tests can see
 * the order in which one wake released its waiters.
 */
struct bucketfs_syncer {
	struct task_struct *task;
	u64 ticket;
	int done;
};

static atomic64_t bucketfs_wake_ticket = ATOMIC64_INIT(0);

static void bucketfs_closure_sync_fn(struct work_struct *ws)
{
	struct closure *cl = container_of(ws, struct closure, work);
	struct bucketfs_syncer *s = (struct bucketfs_syncer *)cl->s;
	struct task_struct *p;

	rcu_read_lock();
	p = READ_ONCE(s->task);
	s->ticket = atomic64_inc_return(&bucketfs_wake_ticket);
	/* After this store the waiter may return and @s may be gone. */
	smp_store_release(&s->done, 1);
	wake_up_process(p);
	rcu_read_unlock();
}

/*
 * Take back the continue_at() of bucketfs_closure_sync() unless the final put
 * already happened. Returns true if the closure is still parked.
 */
static bool bucketfs_closure_unsync(struct closure *cl)
{
	unsigned int old, new, v = atomic_read(&cl->remaining);

	do {
		old = v;
		if (!old || (old & CLOSURE_RUNNING))
			return false;
		new = old + CLOSURE_REMAINING_INITIALIZER;
	} while ((v = atomic_cmpxchg(&cl->remaining, old, new)) != old);
	return true;
}

/**
 * bucketfs_closure_sync - sleep until @cl's wait list releases it
 * @cl: a stack closure, parked or not
 * @timeout: jiffies, or MAX_SCHEDULE_TIMEOUT
 * @killable: whether a fatal signal ends the sleep
 * @ticket: set to the wake ticket when woken, 0 if @cl was never parked
 *
 * Return: 0 when released, -ETIME on timeout, -EINTR on a fatal signal. On
 * the two errors @cl is still parked and may be synced again.
 */
int bucketfs_closure_sync(struct closure *cl, long timeout, bool killable,
			  u64 *ticket)
{
	struct bucketfs_syncer s = { .task = current };
	int ret = 0;

	*ticket = 0;
	if (!cl->closure_get_happened)
		return 0;

	cl->s = (struct closure_syncer *)&s;
	continue_at(cl, bucketfs_closure_sync_fn, NULL);

	for (;;) {
		set_current_state(killable ? TASK_KILLABLE : TASK_UNINTERRUPTIBLE);
		/* Pairs with the smp_store_release() in bucketfs_closure_sync_fn(). */
		if (smp_load_acquire(&s.done))
			break;
		if (!timeout || (killable && fatal_signal_pending(current))) {
			if (bucketfs_closure_unsync(cl)) {
				ret = timeout ? -EINTR : -ETIME;
				break;
			}
			/*
			 * The wake won the race and the callback is about to
			 * run: it writes to @s, which lives in this frame, so
			 * wait for it (a short, bounded wait). Upstream's
			 * __closure_sync_timeout() returns here without
			 * waiting.
			 */
			timeout = MAX_SCHEDULE_TIMEOUT;
			killable = false;
			continue;
		}
		timeout = schedule_timeout(timeout);
	}
	__set_current_state(TASK_RUNNING);
	if (!ret)
		*ticket = s.ticket;
	return ret;
}

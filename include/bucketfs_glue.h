/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C side of bucketfs, as seen from Rust.
 *
 * Local bindgen reads this header (see Kbuild) so the Rust code gets the
 * exact layout of struct closure and the prototypes of the C glue below,
 * generated rather than hand-written. The C glue exists because the kernel
 * APIs it wraps are static inlines or macro-built tables (closure_init_stack,
 * closure_wake_up, file_system_type/fs_context, kobj_attribute), which
 * bindgen cannot turn into callable Rust.
 */
#ifndef _BUCKETFS_GLUE_H
#define _BUCKETFS_GLUE_H

#include <linux/closure.h>
#include <linux/types.h>

struct kunit;

/* c/closure_glue.c: lib/closure.c's static inlines, and a killable sync. */
void bucketfs_closure_init_stack(struct closure *cl);
bool bucketfs_closure_park(struct closure *cl, struct closure_waitlist *list);
bool bucketfs_closure_is_parked(struct closure *cl);
void bucketfs_waitlist_wake_all(struct closure_waitlist *list);
bool bucketfs_waitlist_is_empty(struct closure_waitlist *list);
int bucketfs_closure_sync(struct closure *cl, long timeout, bool killable,
			  u64 *ticket);
long bucketfs_max_schedule_timeout(void);
unsigned long bucketfs_msecs_to_jiffies(unsigned int msecs);
void bucketfs_msleep(unsigned int msecs);

/* c/vfs.c: the file_system_type. */
int bucketfs_register_fs(void);
void bucketfs_unregister_fs(void);

/* c/sysfs.c: /sys/fs/bucketfs. */
int bucketfs_sysfs_init(void);
void bucketfs_sysfs_exit(void);

/* tests-kunit/suites.c: report a failed expectation from Rust. */
void bucketfs_kunit_fail(struct kunit *test, const char *file, int line,
			 const char *what);

#endif /* _BUCKETFS_GLUE_H */

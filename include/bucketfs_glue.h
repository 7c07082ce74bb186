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

/* c/closure_glue.c: closure.h's static inlines, and a killable, ticketed sync. */
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

/* c/bdev.c: member block devices. Buffers are kmalloc or vmalloc memory. */
struct file;
int bucketfs_bdev_open(const char *path, void *holder, struct file **out);
void bucketfs_bdev_close(struct file *f);
u64 bucketfs_bdev_bytes(struct file *f);
u64 bucketfs_bdev_max_discard_bytes(struct file *f);
void bucketfs_bdev_name(struct file *f, char *buf, size_t len);
int bucketfs_bdev_read(struct file *f, u64 off, void *buf, size_t len);
int bucketfs_bdev_write(struct file *f, u64 off, const void *buf, size_t len,
			bool fua);
int bucketfs_bdev_flush(struct file *f);
int bucketfs_bdev_discard(struct file *f, u64 off, u64 len);
/*
 * The discard workers' workqueue (a struct workqueue_struct *): created at
 * module init, drained and destroyed at module exit.
 */
int bucketfs_discard_wq_init(void);
void bucketfs_discard_wq_exit(void);
void *bucketfs_discard_wq_get(void);

/* c/vfs.c: the file_system_type, and the uuids of the filesystems mounted. */
int bucketfs_register_fs(void);
void bucketfs_unregister_fs(void);
struct bucketfs_uuid_claim;
struct bucketfs_uuid_claim *bucketfs_uuid_claim(const u8 *uuid,
						const char *source,
						char *holder, size_t holder_len,
						int *err);
void bucketfs_uuid_release(struct bucketfs_uuid_claim *c);

/* c/sysfs.c: /sys/fs/bucketfs and its per-filesystem directories. */
enum bucketfs_sysfs_kind {
	BUCKETFS_SYSFS_TOP,
	BUCKETFS_SYSFS_OPTIONS,
	BUCKETFS_SYSFS_INTERNAL,
	BUCKETFS_SYSFS_DEV,
};
#define BUCKETFS_SYSFS_MAX_DIRS 18
struct bucketfs_sysfs;
int bucketfs_sysfs_init(void);
void bucketfs_sysfs_exit(void);
struct bucketfs_sysfs *bucketfs_sysfs_add(const char *name, void *fs,
					  unsigned int nr_members, int *err);
void bucketfs_sysfs_remove(struct bucketfs_sysfs *s);

/*
 * Rust entry points (rust/vfs.rs, rust/sysfs.rs), called by the C glue. The
 * Rust definitions are checked against these prototypes at build time.
 */
struct bucketfs_statfs {
	u64 block_size;
	u64 blocks;
	u64 blocks_free;
	u64 blocks_avail;
	u64 fsid;
};
void *bucketfs_rs_mount_options_new(void);
void bucketfs_rs_mount_options_free(void *opts);
int bucketfs_rs_parse_option(void *opts, const char *key, const char *value,
			     bool remount, char *msg, size_t msg_len);
int bucketfs_rs_fs_open(const char *source, void *opts, void **fs);
int bucketfs_rs_fs_reconfigure(void *fs, void *opts);
void bucketfs_rs_fs_close(void *fs);
void bucketfs_rs_statfs(void *fs, struct bucketfs_statfs *st);
bool bucketfs_rs_sysfs_attr(unsigned int kind, unsigned int index,
			    const char **name, size_t *name_len, umode_t *mode);
ssize_t bucketfs_rs_sysfs_show(void *fs, unsigned int kind, unsigned int member,
			       unsigned int index, char *buf);
ssize_t bucketfs_rs_sysfs_store(void *fs, unsigned int kind,
				unsigned int member, unsigned int index,
				const char *buf, size_t len);

/* tests/kunit/suites.c: report a failed expectation from Rust. */
void bucketfs_kunit_fail(struct kunit *test, const char *file, int line,
			 const char *what);
/*
 * tests/kunit/suites.c: send SIGKILL to the running case's own kthread (which
 * ignores signals until allowed); returns whether it is now pending. The clear
 * drops it and ignores SIGKILL again.
 */
bool bucketfs_kunit_kill_self(void);
void bucketfs_kunit_clear_kill(void);

#endif /* _BUCKETFS_GLUE_H */

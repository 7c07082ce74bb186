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
void bucketfs_msleep(unsigned int msecs);
void bucketfs_cond_resched(void);


/* c/bdev.c: member block devices. Buffers are kmalloc or vmalloc memory. */
struct file;
int bucketfs_bdev_open(const char *path, void *holder, bool write,
		       struct file **out);
bool bucketfs_bdev_read_only(struct file *f);
void bucketfs_bdev_close(struct file *f);
u64 bucketfs_bdev_bytes(struct file *f);
u64 bucketfs_bdev_max_discard_bytes(struct file *f);
void bucketfs_bdev_name(struct file *f, char *buf, size_t len);
int bucketfs_bdev_read(struct file *f, u64 off, void *buf, size_t len);
int bucketfs_bdev_write(struct file *f, u64 off, const void *buf, size_t len,
			bool fua);

/*
 * A batch of requests (c/bdev.c), run by bucketfs_io_run(): all submitted
 * under one plug, then waited for once. @buf is kmalloc or vmalloc memory of
 * @len bytes (READ, WRITE, WRITE_FUA), unused (FLUSH: an empty preflush), or
 * @len pairs of u64 (byte offset, byte length) for DISCARD: one device's
 * discards, chained so they complete together. Returns -EINVAL (a request is
 * misaligned or past its device) or -ENOMEM with nothing submitted, else 0
 * once every request is done, with each request's first error (or 0) in its
 * @status. The buffers must stay put until it returns; it never keeps them.
 */
enum bucketfs_io_op {
	BUCKETFS_IO_READ,
	BUCKETFS_IO_WRITE,
	BUCKETFS_IO_WRITE_FUA,
	BUCKETFS_IO_FLUSH,
	BUCKETFS_IO_DISCARD,
};

struct bucketfs_io_req {
	struct file *file;
	u64 off;
	void *buf;
	size_t len;
	unsigned int op;
	int status;
};

int bucketfs_io_run(struct bucketfs_io_req *reqs, size_t nr);
/*
 * bucketfs_io_run() in two steps, so the submitter can work while the I/O is
 * in flight: bucketfs_io_submit() returns NULL with -EINVAL or -ENOMEM in
 * *@err and nothing submitted, or a handle that must be given, with the same
 * @reqs and @nr, to bucketfs_io_wait() exactly once; that returns once every
 * request is done, with its @status set, and frees the handle. The buffers
 * must stay put until then (@reqs itself is read by the submit and written by
 * the wait only).
 */
struct bucketfs_io_wait;
struct bucketfs_io_wait *bucketfs_io_submit(struct bucketfs_io_req *reqs,
					    size_t nr, int *err);
void bucketfs_io_wait(struct bucketfs_io_wait *w, struct bucketfs_io_req *reqs,
		      size_t nr);
/*
 * The discard workers' workqueue (a struct workqueue_struct *): created at
 * module init, drained and destroyed at module exit.
 */
int bucketfs_discard_wq_init(void);
void bucketfs_discard_wq_exit(void);
void *bucketfs_discard_wq_get(void);

/*
 * A delayed call of @fn(@ctx) on the module's workqueue (c/bdev.c): armed
 * again and again, cancelled and waited for by bucketfs_timer_free(), after
 * which @fn is not running and will not run. The journal's flush interval.
 */
struct bucketfs_timer;
struct bucketfs_timer *bucketfs_timer_new(void (*fn)(void *ctx), void *ctx);
void bucketfs_timer_arm(struct bucketfs_timer *t, unsigned int ms);
void bucketfs_timer_free(struct bucketfs_timer *t);

/*
 * The Rust side of the boundary: C calls into Rust only through the two ops
 * tables below, filled by rust/vfs.rs and rust/sysfs.rs with `unsafe extern
 * "C" fn` callbacks whose `# Safety` sections state what this glue
 * guarantees. bindgen generates the tables' Rust types from this header, so
 * the Rust callbacks' signatures are checked against these prototypes at
 * build time (a mismatch does not compile).
 */

/* Figures for statfs, filled by the filesystem. */
struct bucketfs_statfs {
	u64 block_size;
	u64 blocks;
	u64 blocks_free;
	u64 blocks_avail;
	u64 fsid;
};

/*
 * What the VFS glue (c/vfs.c) calls. @opts is an fs_context's mount options,
 * owned by the fs_context from options_new to options_free; @fs is a mounted
 * filesystem, owned by the fs_context (fc->s_fs_info) or the super_block
 * (s_fs_info) from a successful open to close.
 */
struct bucketfs_fs_ops {
	void *(*options_new)(void);
	void (*options_free)(void *opts);
	int (*parse_option)(void *opts, const char *key, const char *value,
			    bool remount, char *msg, size_t msg_len);
	int (*open)(const char *source, void *opts, bool read_only, void **fs);
	/* @read_only: 1 to go read-only, 0 to go read-write, -1 to stay as it is. */
	int (*reconfigure)(void *fs, void *opts, int read_only);
	void (*close)(void *fs);
	void (*statfs)(void *fs, struct bucketfs_statfs *st);
};

/* c/vfs.c: the file_system_type, and the uuids of the filesystems mounted. */
int bucketfs_register_fs(const struct bucketfs_fs_ops *ops);
void bucketfs_unregister_fs(void);
struct bucketfs_uuid_claim;
struct bucketfs_uuid_claim *bucketfs_uuid_claim(const u8 *uuid,
						const char *source,
						char *holder, size_t holder_len,
						int *err);
void bucketfs_uuid_release(struct bucketfs_uuid_claim *c);
/* c/vfs.c: a random (version 4) uuid, for a member added while mounted. */
void bucketfs_random_uuid(u8 *out);

/* c/sysfs.c: /sys/fs/bucketfs and its per-filesystem directories. */
enum bucketfs_sysfs_kind {
	BUCKETFS_SYSFS_TOP,
	BUCKETFS_SYSFS_OPTIONS,
	BUCKETFS_SYSFS_INTERNAL,
	BUCKETFS_SYSFS_DEV,
};

/*
 * What the sysfs glue (c/sysfs.c) calls. attr names file @index of a
 * directory of @kind (false past the last); @fs is the data given to
 * bucketfs_sysfs_add(), valid until bucketfs_sysfs_remove(); @member is the N
 * of dev-N (0 elsewhere); @buf is a sysfs page.
 */
struct bucketfs_sysfs_ops {
	bool (*attr)(unsigned int kind, unsigned int index, const char **name,
		     size_t *name_len, umode_t *mode);
	ssize_t (*show)(void *fs, unsigned int kind, unsigned int member,
			unsigned int index, char *buf);
	ssize_t (*store)(void *fs, unsigned int kind, unsigned int member,
			 unsigned int index, const char *buf, size_t len);
	/*
	 * The number of dev-N directories @fs wants now: after every successful
	 * store to a file of the top directory (device_add), the glue creates
	 * the missing ones, up to the max_members given to bucketfs_sysfs_add().
	 */
	unsigned int (*nr_devs)(void *fs);
};

struct bucketfs_sysfs;
int bucketfs_sysfs_init(void);
void bucketfs_sysfs_exit(void);
struct bucketfs_sysfs *bucketfs_sysfs_add(const char *name,
					  const struct bucketfs_sysfs_ops *ops,
					  void *fs, unsigned int nr_members,
					  unsigned int max_members, int *err);
void bucketfs_sysfs_remove(struct bucketfs_sysfs *s);

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

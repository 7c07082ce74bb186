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
/* The block device of @f, for the bios of file data (c/file.c). */
struct block_device;
struct block_device *bucketfs_bdev_of(struct file *f);

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
	u64 files;
	u64 files_free;
	u64 fsid;
};

/*
 * An inode as the namespace callbacks see it: its number and attributes. uid
 * and gid are from_kuid()/from_kgid() in init_user_ns, rdev is
 * new_encode_dev(), times are seconds and nanoseconds (below 10^9).
 */
struct bucketfs_attr {
	u64 ino;
	u64 size;
	s64 atime_sec;
	s64 mtime_sec;
	s64 ctime_sec;
	u32 atime_nsec;
	u32 mtime_nsec;
	u32 ctime_nsec;
	u32 mode;
	u32 uid;
	u32 gid;
	u32 nlink;
	u32 rdev;
};

/*
 * File data (c/file.c). A mapping for iomap: @length bytes of the file from
 * @offset (block aligned), of @type; for BUCKETFS_MAP_MAPPED and
 * BUCKETFS_MAP_UNWRITTEN, on @bdev at byte @addr. @new_blocks: blocks the
 * call allocated (added to i_blocks).
 */
enum bucketfs_map_type {
	BUCKETFS_MAP_HOLE,
	BUCKETFS_MAP_MAPPED,
	BUCKETFS_MAP_UNWRITTEN,
};

/* bucketfs_fs_ops.data_map flags (iomap's, translated by c/file.c). */
#define BUCKETFS_MAP_WRITE	1	/* a write: a hole is allocated */
#define BUCKETFS_MAP_DIRECT	2	/* direct I/O */
#define BUCKETFS_MAP_ZERO	4	/* zeroing: never allocates */
#define BUCKETFS_MAP_REPORT	8	/* SEEK_HOLE/SEEK_DATA: never allocates */
#define BUCKETFS_MAP_FAULT	16	/* a page fault (page_mkwrite) */

struct bucketfs_map {
	u64 offset;
	u64 length;
	u64 addr;
	struct block_device *bdev;
	u8 type;
	u64 new_blocks;
};

/* One piece of a write: @len bytes of the file at @offset go to @bdev at @addr. */
struct bucketfs_seg {
	u64 offset;
	u64 len;
	struct block_device *bdev;
	u64 addr;
};

/* bucketfs_fs_ops.update_times: which times of the inode to write. */
#define BUCKETFS_TIME_ATIME	1
#define BUCKETFS_TIME_MTIME	2
#define BUCKETFS_TIME_CTIME	4

/* c/namespace.c: the first inode, the root directory. */
#define BUCKETFS_ROOT_INO 1

/*
 * c/namespace.c, for the readdir callback: emits one entry of @ctx with
 * readdir position @cookie (ctx->pos is set to @cookie first, so an entry that
 * does not fit is emitted again by the next call); false once the caller's
 * buffer is full. bucketfs_dir_pos() is the position a readdir starts from,
 * bucketfs_dir_set_pos() sets it (past the last entry, at the end).
 */
struct dir_context;
bool bucketfs_dir_emit(struct dir_context *ctx, const u8 *name, size_t len,
		       u64 cookie, u64 ino, u8 dtype);
u64 bucketfs_dir_pos(struct dir_context *ctx);
void bucketfs_dir_set_pos(struct dir_context *ctx, u64 cookie);

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

	/*
	 * The namespace (c/namespace.c). Names are (@name, @len), not
	 * NUL-terminated, 1 to 255 bytes. The *_after attributes are the
	 * inodes' states after the operation, computed by the glue (link
	 * counts, times); the glue applies them to its inodes only when the
	 * callback returns 0, and a callback that fails has changed nothing.
	 * Every callback returns 0 or a negative errno.
	 */
	/* @ino's attributes into *@attr. */
	int (*read_inode)(void *fs, u64 ino, struct bucketfs_attr *attr);
	/* The inode @name in directory @dir_ino points at; -ENOENT if none. */
	int (*lookup)(void *fs, u64 dir_ino, const u8 *name, size_t len,
		      u64 *ino);
	/*
	 * A new inode *@inode (its number set by the callback) named @name in
	 * directory @dir_after; @target is a symbolic link's target (@inode's
	 * size bytes), NULL for other types.
	 */
	int (*create)(void *fs, const struct bucketfs_attr *dir_after,
		      const u8 *name, size_t len, struct bucketfs_attr *inode,
		      const u8 *target, size_t target_len);
	/* A new name for an existing inode (not a directory). */
	int (*link)(void *fs, const struct bucketfs_attr *dir_after,
		    const u8 *name, size_t len,
		    const struct bucketfs_attr *inode_after);
	/* Removes @name; @rmdir: it is an empty directory (else not one). */
	int (*unlink)(void *fs, const struct bucketfs_attr *dir_after,
		      const u8 *name, size_t len,
		      const struct bucketfs_attr *inode_after, bool rmdir);
	/*
	 * Moves @oname of @old_dir_after to @nname of @new_dir_after (the same
	 * directory: both point at one attribute), replacing @replaced_after's
	 * inode if it is not NULL.
	 */
	int (*rename)(void *fs, const struct bucketfs_attr *old_dir_after,
		      const u8 *oname, size_t olen,
		      const struct bucketfs_attr *new_dir_after,
		      const u8 *nname, size_t nlen,
		      const struct bucketfs_attr *moved_after,
		      const struct bucketfs_attr *replaced_after);
	/* New attributes of an existing inode (chmod, chown, utimes, truncate). */
	int (*setattr)(void *fs, const struct bucketfs_attr *inode_after);
	/*
	 * The entries of directory @dir_ino from bucketfs_dir_pos(@ctx) on,
	 * through bucketfs_dir_emit(); "." and ".." (positions 0 and 1) are
	 * emitted by the glue.
	 */
	int (*readdir)(void *fs, u64 dir_ino, struct dir_context *ctx);
	/* Symbolic link @ino's target into @buf (@size bytes); its length in *@len. */
	int (*read_link)(void *fs, u64 ino, u8 *buf, size_t size, size_t *len);
	/* Makes every operation done so far durable (@wait: before returning). */
	int (*sync_fs)(void *fs, bool wait);
	/*
	 * The times @which (BUCKETFS_TIME_*) of inode @inode->ino, from
	 * @inode; its other attributes are kept as stored (a write's or a page
	 * fault's time update, which holds no lock that orders it against the
	 * namespace callbacks).
	 */
	int (*update_times)(void *fs, const struct bucketfs_attr *inode,
			    unsigned int which);

	/*
	 * File data (c/file.c). @pos, @len, @start, @end are bytes of the file;
	 * block devices given back stay open until close. Every callback
	 * returns 0 or a negative errno.
	 */
	/*
	 * The mapping of [@pos, @pos + @len) of @ino from @pos on (it may be
	 * shorter); with BUCKETFS_MAP_WRITE (and not ZERO or REPORT) a hole at
	 * @pos is allocated as an unwritten extent.
	 */
	int (*data_map)(void *fs, u64 ino, u64 pos, u64 len, u32 flags,
			struct bucketfs_map *map);
	/*
	 * The pieces a write of [@pos, @pos + @len) (block aligned, within
	 * extents) goes to, every replica of every extent, in file order: up
	 * to @nr into @segs, their count into *@filled, and in *@next where
	 * the next call starts (@pos + @len once all are given; a piece's
	 * replicas are never split between two calls).
	 */
	int (*data_segments)(void *fs, u64 ino, u64 pos, u64 len,
			     struct bucketfs_seg *segs, size_t nr,
			     size_t *filled, u64 *next);
	/*
	 * The data of [@pos, @pos + @len) is on disk (@len is exact at the end
	 * of the file: the blocks it touches are meant): unwritten extents
	 * there become written, the size on disk grows to min(@isize, @pos +
	 * @len).
	 */
	int (*data_written)(void *fs, u64 ino, u64 pos, u64 len, u64 isize);
	/*
	 * Frees the blocks of [@start, @end) (U64_MAX: the rest of the file),
	 * also of an inode with no key left (unlinked); the blocks freed (per
	 * file block) into *@freed.
	 */
	int (*data_punch)(void *fs, u64 ino, u64 start, u64 end, u64 *freed);
	/* Blocks allocated to @ino (per file block) into *@blocks. */
	int (*data_blocks)(void *fs, u64 ino, u64 *blocks);
	/*
	 * FITRIM: discards free space overlapping [@start, @start + @len) in
	 * runs of at least @minlen bytes; the bytes discarded into *@trimmed.
	 */
	int (*data_trim)(void *fs, u64 start, u64 len, u64 minlen,
			 u64 *trimmed);
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

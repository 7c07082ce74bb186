/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Between c/vfs.c (the filesystem type, the super_block) and c/namespace.c
 * (inodes, directories, files). Not read by bindgen.
 */
#ifndef _BUCKETFS_NAMESPACE_H
#define _BUCKETFS_NAMESPACE_H

#include <linux/fs.h>
#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "bucketfs_glue.h"

/* The Rust callbacks, set while the filesystem type is registered (c/vfs.c). */
extern const struct bucketfs_fs_ops *bucketfs_ops;

/*
 * A mount as the C glue holds it (s_fs_info, or fc->s_fs_info until a
 * super_block takes it): the filesystem the callbacks are given, and the
 * workqueue that completes buffered writes (c/file.c), which is drained
 * before the filesystem is closed.
 */
struct bucketfs_sb {
	void *fs;
	struct workqueue_struct *wq;
	spinlock_t ioend_lock;
	struct list_head ioends;
	struct work_struct ioend_work;
};

static inline void *bucketfs_fs(const struct super_block *sb)
{
	return ((struct bucketfs_sb *)sb->s_fs_info)->fs;
}

/* c/file.c: a mount's C side around @fs (NULL: -ENOMEM), and its end. */
struct bucketfs_sb *bucketfs_sb_new(void *fs);
void bucketfs_sb_free(struct bucketfs_sb *sbi);
/* c/file.c: the bio_set of the write clones, for the module's lifetime. */
int bucketfs_file_init(void);
void bucketfs_file_exit(void);

/* c/namespace.c: sets up the root dentry of a new super_block. */
int bucketfs_fill_root(struct super_block *sb);
/* c/namespace.c: super_operations. */
void bucketfs_free_inode(struct inode *inode);
int bucketfs_sync_fs(struct super_block *sb, int wait);

/* c/file.c: regular files. */
extern const struct address_space_operations bucketfs_file_aops;
extern const struct file_operations bucketfs_file_fops;
long bucketfs_ioctl(struct file *file, unsigned int cmd, unsigned long arg);
void bucketfs_evict_inode(struct inode *inode);
/* Sets up a regular file's mapping; reads its i_blocks if @read. */
int bucketfs_file_init_inode(struct inode *inode, bool read);
/*
 * A size change of regular file @inode (i_rwsem held), around persisting it:
 * _begin (invalidate lock taken; on an error dropped) zeroes what the new size
 * exposes or cuts, _end sets the page cache to @size, frees the blocks past
 * it and drops the lock.
 */
int bucketfs_file_resize_begin(struct inode *inode, loff_t size);
int bucketfs_file_resize_end(struct inode *inode, loff_t size, bool persisted);
/*
 * c/namespace.c: persists @inode's attributes with size @size and, if @times,
 * new mtime and ctime, then applies them (i_rwsem held).
 */
int bucketfs_persist_size(struct inode *inode, loff_t size, bool times);

/* Most links an inode may have (a directory: 2 plus its subdirectories). */
#define BUCKETFS_LINK_MAX	65000

#endif /* _BUCKETFS_NAMESPACE_H */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Between c/vfs.c (the filesystem type, the super_block) and c/namespace.c
 * (inodes, directories, files). Not read by bindgen.
 */
#ifndef _BUCKETFS_NAMESPACE_H
#define _BUCKETFS_NAMESPACE_H

#include <linux/fs.h>

#include "bucketfs_glue.h"

/* The Rust callbacks, set while the filesystem type is registered (c/vfs.c). */
extern const struct bucketfs_fs_ops *bucketfs_ops;

/* c/namespace.c: sets up the root dentry of a new super_block. */
int bucketfs_fill_root(struct super_block *sb);
/* c/namespace.c: super_operations. */
void bucketfs_free_inode(struct inode *inode);
int bucketfs_sync_fs(struct super_block *sb, int wait);

/* Most links an inode may have (a directory: 2 plus its subdirectories). */
#define BUCKETFS_LINK_MAX	65000

#endif /* _BUCKETFS_NAMESPACE_H */

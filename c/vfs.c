// SPDX-License-Identifier: GPL-2.0
/*
 * VFS glue: the bucketfs file_system_type and its fs_context operations.
 * Mounting is not implemented yet; it fails with EOPNOTSUPP and says so.
 */
#define pr_fmt(fmt) "bucketfs: " fmt

#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/module.h>

#include "bucketfs_glue.h"

static int bucketfs_get_tree(struct fs_context *fc)
{
	errorfc(fc, "mounting %s: not implemented yet (-EOPNOTSUPP)",
		fc->source ?: "(no source)");
	return -EOPNOTSUPP;
}

static const struct fs_context_operations bucketfs_context_ops = {
	.get_tree	= bucketfs_get_tree,
};

static int bucketfs_init_fs_context(struct fs_context *fc)
{
	fc->ops = &bucketfs_context_ops;
	return 0;
}

static struct file_system_type bucketfs_fs_type = {
	.owner			= THIS_MODULE,
	.name			= "bucketfs",
	.init_fs_context	= bucketfs_init_fs_context,
	.kill_sb		= kill_anon_super,
	.fs_flags		= FS_REQUIRES_DEV,
};

int bucketfs_register_fs(void)
{
	return register_filesystem(&bucketfs_fs_type);
}

void bucketfs_unregister_fs(void)
{
	unregister_filesystem(&bucketfs_fs_type);
}

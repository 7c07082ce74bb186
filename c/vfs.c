// SPDX-License-Identifier: GPL-2.0
/*
 * VFS glue: the bucketfs file_system_type, fs_context operations and
 * super_operations. Option parsing, opening the members and everything the
 * filesystem knows are in Rust (rust/vfs.rs); this file hands over.
 */
#define pr_fmt(fmt) "bucketfs: " fmt

#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/module.h>
#include <linux/statfs.h>

#include "bucketfs_glue.h"

#define BUCKETFS_MAGIC	0x42554b54	/* "BUKT" */

static int bucketfs_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	struct bucketfs_statfs st;

	bucketfs_rs_statfs(dentry->d_sb->s_fs_info, &st);
	buf->f_type = BUCKETFS_MAGIC;
	buf->f_bsize = st.block_size;
	buf->f_blocks = st.blocks;
	buf->f_bfree = st.blocks_free;
	buf->f_bavail = st.blocks_avail;
	buf->f_files = 1;
	buf->f_ffree = 0;
	buf->f_namelen = NAME_MAX;
	buf->f_fsid = u64_to_fsid(st.fsid);
	return 0;
}

static const struct super_operations bucketfs_super_ops = {
	.statfs		= bucketfs_statfs,
};

static int bucketfs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	struct inode *root;

	sb->s_magic = BUCKETFS_MAGIC;
	sb->s_op = &bucketfs_super_ops;
	sb->s_blocksize = PAGE_SIZE;
	sb->s_blocksize_bits = PAGE_SHIFT;
	sb->s_maxbytes = MAX_LFS_FILESIZE;
	sb->s_time_gran = 1;

	root = new_inode(sb);
	if (!root)
		return -ENOMEM;
	root->i_ino = 1;
	root->i_mode = S_IFDIR | 0755;
	root->i_op = &simple_dir_inode_operations;
	root->i_fop = &simple_dir_operations;
	simple_inode_init_ts(root);
	set_nlink(root, 2);
	sb->s_root = d_make_root(root);
	return sb->s_root ? 0 : -ENOMEM;
}

static int bucketfs_parse_param(struct fs_context *fc,
				struct fs_parameter *param)
{
	char msg[128];
	int ret;

	if (param->type != fs_value_is_string && param->type != fs_value_is_flag)
		return invalfc(fc, "%s: only text values are accepted", param->key);
	ret = bucketfs_rs_parse_option(fc->fs_private, param->key,
				       param->type == fs_value_is_string ?
				       param->string : NULL, msg, sizeof(msg));
	if (ret == -EINVAL)
		return invalfc(fc, "%s", msg);
	return ret;
}

static int bucketfs_get_tree(struct fs_context *fc)
{
	int ret;

	if (!fc->source)
		return invalfc(fc, "no source: give member devices as dev1:dev2:...");
	ret = bucketfs_rs_fs_open(fc->source, fc->fs_private, &fc->s_fs_info);
	if (ret)
		return ret;
	/* sget_fc() moves s_fs_info to the new super_block, or leaves it to .free. */
	return get_tree_nodev(fc, bucketfs_fill_super);
}

static void bucketfs_free_fc(struct fs_context *fc)
{
	if (fc->s_fs_info)
		bucketfs_rs_fs_close(fc->s_fs_info);
	bucketfs_rs_mount_options_free(fc->fs_private);
}

static const struct fs_context_operations bucketfs_context_ops = {
	.parse_param	= bucketfs_parse_param,
	.get_tree	= bucketfs_get_tree,
	.free		= bucketfs_free_fc,
};

static int bucketfs_init_fs_context(struct fs_context *fc)
{
	fc->fs_private = bucketfs_rs_mount_options_new();
	if (!fc->fs_private)
		return -ENOMEM;
	fc->ops = &bucketfs_context_ops;
	return 0;
}

static void bucketfs_kill_sb(struct super_block *sb)
{
	void *fs = sb->s_fs_info;

	kill_anon_super(sb);
	if (fs)
		bucketfs_rs_fs_close(fs);
}

static struct file_system_type bucketfs_fs_type = {
	.owner			= THIS_MODULE,
	.name			= "bucketfs",
	.init_fs_context	= bucketfs_init_fs_context,
	.kill_sb		= bucketfs_kill_sb,
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

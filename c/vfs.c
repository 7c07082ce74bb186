// SPDX-License-Identifier: GPL-2.0
/*
 * VFS glue: the bucketfs file_system_type, fs_context operations and
 * super_operations (the inodes and directories are in c/namespace.c). Option parsing, opening the members and everything the
 * filesystem knows are in Rust, reached through the ops table given to
 * bucketfs_register_fs() (rust/vfs.rs); this file hands over.
 */
#define pr_fmt(fmt) "bucketfs: " fmt

#include <linux/backing-dev.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/statfs.h>
#include <linux/string.h>
#include <linux/uuid.h>

#include "bucketfs_glue.h"
#include "namespace.h"

#define BUCKETFS_MAGIC	0x42554b54	/* "BUKT" */

/*
 * The uuids of the filesystems mounted or being mounted. A second filesystem
 * with a uuid already here (a dd copy of every member, a snapshot) is refused
 * before it gets anywhere near /sys/fs/bucketfs/<uuid>/, which the first one
 * holds. The check and the registration are one step under the mutex, so of
 * two clones mounted at once only one gets through.
 */
struct bucketfs_uuid_claim {
	struct list_head list;
	u8 uuid[16];
	char source[];		/* the mount source, for the message */
};

/* The Rust callbacks, set while the filesystem type is registered. */
const struct bucketfs_fs_ops *bucketfs_ops;

static LIST_HEAD(bucketfs_uuids);
static DEFINE_MUTEX(bucketfs_uuids_lock);

/**
 * bucketfs_uuid_claim - claim a filesystem uuid for one mount
 * @uuid: the 16-byte filesystem uuid
 * @source: the mount source, kept to name it to a later clone
 * @holder: on -EBUSY, receives the source of the mount holding @uuid
 * @holder_len: size of @holder
 * @err: -EBUSY if another mount holds @uuid, -ENOMEM
 *
 * Return: the claim, to give to bucketfs_uuid_release(), or NULL.
 */
struct bucketfs_uuid_claim *bucketfs_uuid_claim(const u8 *uuid,
						const char *source,
						char *holder, size_t holder_len,
						int *err)
{
	size_t len = strlen(source) + 1;
	struct bucketfs_uuid_claim *c, *other;

	c = kmalloc(struct_size(c, source, len), GFP_KERNEL);
	if (!c) {
		*err = -ENOMEM;
		return NULL;
	}
	memcpy(c->uuid, uuid, sizeof(c->uuid));
	memcpy(c->source, source, len);
	mutex_lock(&bucketfs_uuids_lock);
	list_for_each_entry(other, &bucketfs_uuids, list) {
		if (!memcmp(other->uuid, uuid, sizeof(other->uuid))) {
			strscpy(holder, other->source, holder_len);
			mutex_unlock(&bucketfs_uuids_lock);
			kfree(c);
			*err = -EBUSY;
			return NULL;
		}
	}
	list_add_tail(&c->list, &bucketfs_uuids);
	mutex_unlock(&bucketfs_uuids_lock);
	return c;
}

void bucketfs_uuid_release(struct bucketfs_uuid_claim *c)
{
	mutex_lock(&bucketfs_uuids_lock);
	list_del(&c->list);
	mutex_unlock(&bucketfs_uuids_lock);
	kfree(c);
}

static int bucketfs_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	struct bucketfs_statfs st;

	bucketfs_ops->statfs(bucketfs_fs(dentry->d_sb), &st);
	buf->f_type = BUCKETFS_MAGIC;
	buf->f_bsize = st.block_size;
	buf->f_blocks = st.blocks;
	buf->f_bfree = st.blocks_free;
	buf->f_bavail = st.blocks_avail;
	buf->f_files = st.files;
	buf->f_ffree = st.files_free;
	buf->f_namelen = NAME_MAX;
	buf->f_fsid = u64_to_fsid(st.fsid);
	return 0;
}

static const struct super_operations bucketfs_super_ops = {
	.free_inode	= bucketfs_free_inode,
	.evict_inode	= bucketfs_evict_inode,
	.statfs		= bucketfs_statfs,
	.sync_fs	= bucketfs_sync_fs,
};

static int bucketfs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	int ret;

	/*
	 * A backing_dev_info of its own: file data is written back through
	 * it (an anonymous super_block's noop one writes nothing back).
	 */
	ret = super_setup_bdi(sb);
	if (ret)
		return ret;
	sb->s_magic = BUCKETFS_MAGIC;
	sb->s_op = &bucketfs_super_ops;
	sb->s_blocksize = PAGE_SIZE;
	sb->s_blocksize_bits = PAGE_SHIFT;
	sb->s_maxbytes = MAX_LFS_FILESIZE;
	sb->s_time_gran = 1;
	sb->s_max_links = BUCKETFS_LINK_MAX;
	/*
	 * Access times are not kept: an inode's atime is what its creation or
	 * its last change wrote (a read would change it in the inode cache
	 * only, and lose it at eviction).
	 */
	sb->s_flags |= SB_NOATIME | SB_NODIRATIME;
	return bucketfs_fill_root(sb);
}

static int bucketfs_parse_param(struct fs_context *fc,
				struct fs_parameter *param)
{
	char msg[128];
	int ret;

	if (param->type != fs_value_is_string && param->type != fs_value_is_flag)
		return invalfc(fc, "%s: only text values are accepted", param->key);
	ret = bucketfs_ops->parse_option(fc->fs_private, param->key,
					 param->type == fs_value_is_string ?
					 param->string : NULL,
					 fc->purpose == FS_CONTEXT_FOR_RECONFIGURE,
					 msg, sizeof(msg));
	if (ret == -EINVAL)
		return invalfc(fc, "%s", msg);
	return ret;
}

static int bucketfs_get_tree(struct fs_context *fc)
{
	struct bucketfs_sb *sbi;
	void *fs = NULL;
	int ret;

	if (!fc->source)
		return invalfc(fc, "no source: give member devices as dev1:dev2:...");
	/*
	 * ro: bucketfs writes nothing (no commit, no superblock, no bucket
	 * table, no discard); sget_fc() gives the super_block these sb_flags,
	 * so SB_RDONLY is set and the VFS refuses writes with EROFS.
	 */
	ret = bucketfs_ops->open(fc->source, fc->fs_private,
				 fc->sb_flags & SB_RDONLY, &fs);
	if (ret)
		return ret;
	sbi = bucketfs_sb_new(fs);
	if (!sbi) {
		pr_err("%s: no memory for the write completion workqueue\n",
		       fc->source);
		bucketfs_ops->close(fs);
		return -ENOMEM;
	}
	fc->s_fs_info = sbi;
	/* sget_fc() moves s_fs_info to the new super_block, or leaves it to .free. */
	return get_tree_nodev(fc, bucketfs_fill_super);
}

/*
 * mount -o remount: the options parsed into fc->fs_private (runtime options
 * only) are applied as a write under options/ in sysfs would be, and a change
 * between ro and rw is made (rw->ro stops the discard worker; ro->rw is refused
 * for a mount that cannot write: norecovery, degraded, a journal replayed in
 * memory only). The VFS applies the flags afterwards, SB_RDONLY included, and
 * has already checked for writers before a rw->ro change. An emergency
 * read-only remount (sysrq-u, SB_FORCE) goes through the same rw->ro path,
 * which cannot fail.
 */
static int bucketfs_reconfigure(struct fs_context *fc)
{
	struct super_block *sb = fc->root->d_sb;
	int read_only = -1;

	if (fc->sb_flags_mask & SB_RDONLY) {
		bool ro = fc->sb_flags & SB_RDONLY;

		if (ro != sb_rdonly(sb))
			read_only = ro;
	}
	return bucketfs_ops->reconfigure(bucketfs_fs(sb), fc->fs_private,
					 read_only);
}

static void bucketfs_free_fc(struct fs_context *fc)
{
	if (fc->s_fs_info)
		bucketfs_sb_free(fc->s_fs_info);
	bucketfs_ops->options_free(fc->fs_private);
}

static const struct fs_context_operations bucketfs_context_ops = {
	.parse_param	= bucketfs_parse_param,
	.get_tree	= bucketfs_get_tree,
	.reconfigure	= bucketfs_reconfigure,
	.free		= bucketfs_free_fc,
};

static int bucketfs_init_fs_context(struct fs_context *fc)
{
	fc->fs_private = bucketfs_ops->options_new();
	if (!fc->fs_private)
		return -ENOMEM;
	fc->ops = &bucketfs_context_ops;
	return 0;
}

static void bucketfs_kill_sb(struct super_block *sb)
{
	struct bucketfs_sb *sbi = sb->s_fs_info;

	/*
	 * Writes back and evicts every inode: the write completions queued
	 * on the workqueue are done then (writeback waits for them), and the
	 * workqueue is drained before the filesystem is closed.
	 */
	kill_anon_super(sb);
	if (sbi)
		bucketfs_sb_free(sbi);
}

static struct file_system_type bucketfs_fs_type = {
	.owner			= THIS_MODULE,
	.name			= "bucketfs",
	.init_fs_context	= bucketfs_init_fs_context,
	.kill_sb		= bucketfs_kill_sb,
	.fs_flags		= FS_REQUIRES_DEV,
};

/**
 * bucketfs_register_fs - register the bucketfs filesystem type
 * @ops: the Rust callbacks; static, used until bucketfs_unregister_fs()
 */
int bucketfs_register_fs(const struct bucketfs_fs_ops *ops)
{
	int ret;

	ret = bucketfs_file_init();
	if (ret)
		return ret;
	bucketfs_ops = ops;
	ret = register_filesystem(&bucketfs_fs_type);
	if (ret) {
		bucketfs_ops = NULL;
		bucketfs_file_exit();
	}
	return ret;
}

void bucketfs_unregister_fs(void)
{
	unregister_filesystem(&bucketfs_fs_type);
	/*
	 * Inodes are freed by RCU callbacks (.free_inode) queued at eviction:
	 * every one of them has run before the module's code goes.
	 */
	rcu_barrier();
	bucketfs_ops = NULL;
	bucketfs_file_exit();
}

void bucketfs_random_uuid(u8 *out)
{
	generate_random_uuid(out);
}

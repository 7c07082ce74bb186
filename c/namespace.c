// SPDX-License-Identifier: GPL-2.0
/*
 * Namespace glue: the inode cache, directory, file and symbolic link
 * operations. What the namespace holds and every change to it are in Rust,
 * reached through the ops table (struct bucketfs_fs_ops, rust/vfs.rs) with
 * plain data: inode attributes (struct bucketfs_attr) and names.
 *
 * A change is computed here as the attributes of every inode it touches after
 * it (link counts, times), handed to Rust, which makes it one transaction, and
 * applied to the VFS inodes only once Rust returned 0: a failed operation
 * leaves nothing half-done visible. The VFS holds the locks that make those
 * attributes current: the parent directories' i_rwsem and the inodes' own for
 * every name change, the inode's for setattr.
 *
 * Read-only mounts: every operation below that changes something is reached
 * only after mnt_want_write() (or may_open() for a truncating open), which
 * refuses a read-only super_block with EROFS; Rust refuses too.
 */
#define pr_fmt(fmt) "bucketfs: " fmt

#include <linux/fs.h>
#include <linux/kdev_t.h>
#include <linux/mnt_idmapping.h>
#include <linux/namei.h>
#include <linux/slab.h>
#include <linux/splice.h>
#include <linux/uidgid.h>
#include <linux/uio.h>

#include "bucketfs_glue.h"
#include "namespace.h"

static const struct inode_operations bucketfs_dir_iops;
static const struct inode_operations bucketfs_file_iops;
static const struct inode_operations bucketfs_symlink_iops;
static const struct inode_operations bucketfs_special_iops;
static const struct file_operations bucketfs_dir_fops;

static void *fs_of(const struct inode *inode)
{
	return bucketfs_fs(inode->i_sb);
}

/* The attributes of @inode as the VFS holds them. */
static void attr_of(struct inode *inode, struct bucketfs_attr *a)
{
	struct timespec64 at = inode_get_atime(inode);
	struct timespec64 mt = inode_get_mtime(inode);
	struct timespec64 ct = inode_get_ctime(inode);

	*a = (struct bucketfs_attr) {
		.ino = inode->i_ino,
		.size = i_size_read(inode),
		.atime_sec = at.tv_sec,
		.mtime_sec = mt.tv_sec,
		.ctime_sec = ct.tv_sec,
		.atime_nsec = at.tv_nsec,
		.mtime_nsec = mt.tv_nsec,
		.ctime_nsec = ct.tv_nsec,
		.mode = inode->i_mode,
		.uid = from_kuid(&init_user_ns, inode->i_uid),
		.gid = from_kgid(&init_user_ns, inode->i_gid),
		.nlink = inode->i_nlink,
		.rdev = new_encode_dev(inode->i_rdev),
	};
}

static void set_mtime_ctime(struct bucketfs_attr *a, struct timespec64 ts)
{
	a->mtime_sec = a->ctime_sec = ts.tv_sec;
	a->mtime_nsec = a->ctime_nsec = ts.tv_nsec;
}

static void set_ctime(struct bucketfs_attr *a, struct timespec64 ts)
{
	a->ctime_sec = ts.tv_sec;
	a->ctime_nsec = ts.tv_nsec;
}

/* What a name change alters: the link count, mtime and ctime. */
static void apply_links_times(struct inode *inode,
			      const struct bucketfs_attr *a)
{
	set_nlink(inode, a->nlink);
	inode_set_mtime(inode, a->mtime_sec, a->mtime_nsec);
	inode_set_ctime(inode, a->ctime_sec, a->ctime_nsec);
}

/* Every attribute but the file type (an inode read, a setattr). */
static void apply_attr(struct inode *inode, const struct bucketfs_attr *a)
{
	inode->i_mode = (inode->i_mode & S_IFMT) | (a->mode & ~S_IFMT);
	inode->i_uid = make_kuid(&init_user_ns, a->uid);
	inode->i_gid = make_kgid(&init_user_ns, a->gid);
	i_size_write(inode, a->size);
	inode_set_atime(inode, a->atime_sec, a->atime_nsec);
	apply_links_times(inode, a);
}

/*
 * The operations of @inode by its type; -EUCLEAN for a type bucketfs has not.
 * A regular file's i_blocks is read if @read.
 */
static int set_ops(struct inode *inode, u32 rdev, bool read)
{
	switch (inode->i_mode & S_IFMT) {
	case S_IFDIR:
		inode->i_op = &bucketfs_dir_iops;
		inode->i_fop = &bucketfs_dir_fops;
		return 0;
	case S_IFREG:
		inode->i_op = &bucketfs_file_iops;
		inode->i_fop = &bucketfs_file_fops;
		return bucketfs_file_init_inode(inode, read);
	case S_IFLNK:
		inode->i_op = &bucketfs_symlink_iops;
		return 0;
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		inode->i_op = &bucketfs_special_iops;
		init_special_inode(inode, inode->i_mode, new_decode_dev(rdev));
		return 0;
	default:
		return -EUCLEAN;
	}
}

/* Reads symbolic link @inode's target into i_link (freed by free_inode). */
static int read_link_target(struct inode *inode)
{
	size_t len = 0;
	char *buf;
	int ret;

	buf = kzalloc(PATH_MAX, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	ret = bucketfs_ops->read_link(fs_of(inode), inode->i_ino, buf,
				      PATH_MAX - 1, &len);
	if (!ret && (len == 0 || len >= PATH_MAX || len != inode->i_size)) {
		pr_err("inode %lu: symbolic link target of %zu bytes, size %lld\n",
		       inode->i_ino, len, inode->i_size);
		ret = -EUCLEAN;
	}
	if (!ret) {
		inode->i_link = kmemdup_nul(buf, len, GFP_KERNEL);
		if (!inode->i_link)
			ret = -ENOMEM;
	}
	kfree(buf);
	return ret;
}

/* Inode @ino, from the inode cache or read. */
static struct inode *bucketfs_iget(struct super_block *sb, u64 ino)
{
	struct bucketfs_attr a;
	struct inode *inode;
	int ret;

	inode = iget_locked(sb, ino);
	if (!inode)
		return ERR_PTR(-ENOMEM);
	if (!(inode->i_state & I_NEW))
		return inode;
	ret = bucketfs_ops->read_inode(bucketfs_fs(sb), ino, &a);
	if (ret)
		goto fail;
	inode->i_mode = a.mode;
	apply_attr(inode, &a);
	ret = set_ops(inode, a.rdev, true);
	if (ret == -EUCLEAN)
		pr_err("inode %llu: mode %o is no file type\n", ino, a.mode);
	if (ret)
		goto fail;
	if (S_ISLNK(a.mode)) {
		ret = read_link_target(inode);
		if (ret)
			goto fail;
	}
	unlock_new_inode(inode);
	return inode;
fail:
	iget_failed(inode);
	return ERR_PTR(ret);
}

static struct dentry *bucketfs_lookup(struct inode *dir, struct dentry *dentry,
				      unsigned int flags)
{
	struct inode *inode = NULL;
	u64 ino;
	int ret;

	if (dentry->d_name.len > NAME_MAX)
		return ERR_PTR(-ENAMETOOLONG);
	ret = bucketfs_ops->lookup(fs_of(dir), dir->i_ino, dentry->d_name.name,
				   dentry->d_name.len, &ino);
	if (!ret)
		inode = bucketfs_iget(dir->i_sb, ino);
	else if (ret != -ENOENT)
		return ERR_PTR(ret);
	return d_splice_alias(inode, dentry);
}

/*
 * A new inode of @mode named @dentry in @dir: a device number @dev for a
 * device, a @target for a symbolic link. Rust gives it its number; on an error
 * the new inode is dropped (no link, never hashed).
 */
static int bucketfs_make(struct mnt_idmap *idmap, struct inode *dir,
			 struct dentry *dentry, umode_t mode, dev_t dev,
			 const char *target)
{
	struct super_block *sb = dir->i_sb;
	struct bucketfs_attr dir_after, attr;
	struct timespec64 ts;
	struct inode *inode;
	size_t tlen = 0;
	int ret;

	if (dentry->d_name.len > NAME_MAX)
		return -ENAMETOOLONG;
	if (target) {
		tlen = strlen(target);
		if (tlen >= PATH_MAX)
			return -ENAMETOOLONG;
	}
	inode = new_inode(sb);
	if (!inode)
		return -ENOMEM;
	inode_init_owner(idmap, inode, dir, mode);
	ts = simple_inode_init_ts(inode);
	if (S_ISDIR(mode))
		set_nlink(inode, 2);
	ret = set_ops(inode, new_encode_dev(dev), false);
	if (ret)
		goto drop;
	if (target) {
		inode->i_link = kmemdup_nul(target, tlen, GFP_KERNEL);
		if (!inode->i_link) {
			ret = -ENOMEM;
			goto drop;
		}
		i_size_write(inode, tlen);
	}
	attr_of(inode, &attr);
	attr_of(dir, &dir_after);
	set_mtime_ctime(&dir_after, ts);
	if (S_ISDIR(mode))
		dir_after.nlink++;
	ret = bucketfs_ops->create(bucketfs_fs(sb), &dir_after,
				   dentry->d_name.name, dentry->d_name.len,
				   &attr, target, tlen);
	if (ret)
		goto drop;
	inode->i_ino = attr.ino;
	if (insert_inode_locked(inode) < 0) {
		/* A number in use: the namespace gave it twice. */
		pr_err("new inode %llu is already in use\n", attr.ino);
		ret = -EUCLEAN;
		goto drop;
	}
	apply_links_times(dir, &dir_after);
	d_instantiate_new(dentry, inode);
	return 0;
drop:
	clear_nlink(inode);
	iput(inode);
	return ret;
}

static int bucketfs_create(struct mnt_idmap *idmap, struct inode *dir,
			   struct dentry *dentry, umode_t mode, bool excl)
{
	return bucketfs_make(idmap, dir, dentry, mode, 0, NULL);
}

static int bucketfs_mkdir(struct mnt_idmap *idmap, struct inode *dir,
			  struct dentry *dentry, umode_t mode)
{
	return bucketfs_make(idmap, dir, dentry, mode | S_IFDIR, 0, NULL);
}

static int bucketfs_mknod(struct mnt_idmap *idmap, struct inode *dir,
			  struct dentry *dentry, umode_t mode, dev_t dev)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return bucketfs_make(idmap, dir, dentry, mode, 0, NULL);
	case S_IFCHR:
	case S_IFBLK:
		return bucketfs_make(idmap, dir, dentry, mode, dev, NULL);
	case S_IFIFO:
	case S_IFSOCK:
		return bucketfs_make(idmap, dir, dentry, mode, 0, NULL);
	default:
		return -EINVAL;
	}
}

static int bucketfs_symlink(struct mnt_idmap *idmap, struct inode *dir,
			    struct dentry *dentry, const char *target)
{
	return bucketfs_make(idmap, dir, dentry, S_IFLNK | 0777, 0, target);
}

static int bucketfs_link(struct dentry *old_dentry, struct inode *dir,
			 struct dentry *dentry)
{
	struct inode *inode = d_inode(old_dentry);
	struct bucketfs_attr dir_after, inode_after;
	struct timespec64 ts = current_time(dir);
	int ret;

	if (dentry->d_name.len > NAME_MAX)
		return -ENAMETOOLONG;
	attr_of(dir, &dir_after);
	set_mtime_ctime(&dir_after, ts);
	attr_of(inode, &inode_after);
	inode_after.nlink++;
	set_ctime(&inode_after, ts);
	ret = bucketfs_ops->link(fs_of(dir), &dir_after, dentry->d_name.name,
				 dentry->d_name.len, &inode_after);
	if (ret)
		return ret;
	apply_links_times(dir, &dir_after);
	apply_links_times(inode, &inode_after);
	ihold(inode);
	d_instantiate(dentry, inode);
	return 0;
}

static int bucketfs_remove(struct inode *dir, struct dentry *dentry, bool rmdir)
{
	struct inode *inode = d_inode(dentry);
	struct bucketfs_attr dir_after, inode_after;
	struct timespec64 ts = current_time(dir);
	int ret;

	attr_of(dir, &dir_after);
	set_mtime_ctime(&dir_after, ts);
	attr_of(inode, &inode_after);
	set_ctime(&inode_after, ts);
	if (rmdir) {
		dir_after.nlink--;
		inode_after.nlink = 0;
	} else {
		inode_after.nlink--;
	}
	ret = bucketfs_ops->unlink(fs_of(dir), &dir_after, dentry->d_name.name,
				   dentry->d_name.len, &inode_after, rmdir);
	if (ret)
		return ret;
	apply_links_times(dir, &dir_after);
	apply_links_times(inode, &inode_after);
	return 0;
}

static int bucketfs_unlink(struct inode *dir, struct dentry *dentry)
{
	return bucketfs_remove(dir, dentry, false);
}

static int bucketfs_rmdir(struct inode *dir, struct dentry *dentry)
{
	return bucketfs_remove(dir, dentry, true);
}

/*
 * rename, also over an existing name (the VFS has checked that a directory
 * replaces a directory and a non-directory a non-directory; Rust refuses a
 * non-empty directory). RENAME_NOREPLACE: the VFS has checked the new name is
 * free. RENAME_EXCHANGE and RENAME_WHITEOUT are not offered.
 */
static int bucketfs_rename(struct mnt_idmap *idmap, struct inode *old_dir,
			   struct dentry *old_dentry, struct inode *new_dir,
			   struct dentry *new_dentry, unsigned int flags)
{
	struct inode *moved = d_inode(old_dentry);
	struct inode *replaced = d_inode(new_dentry);
	struct bucketfs_attr od, nd, mv, rp;
	struct bucketfs_attr *ndp = old_dir == new_dir ? &od : &nd;
	struct timespec64 ts = current_time(old_dir);
	int ret;

	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;
	if (new_dentry->d_name.len > NAME_MAX)
		return -ENAMETOOLONG;
	attr_of(old_dir, &od);
	if (ndp == &nd)
		attr_of(new_dir, &nd);
	if (S_ISDIR(moved->i_mode)) {
		od.nlink--;
		ndp->nlink++;
	}
	set_mtime_ctime(&od, ts);
	set_mtime_ctime(ndp, ts);
	attr_of(moved, &mv);
	set_ctime(&mv, ts);
	if (replaced) {
		attr_of(replaced, &rp);
		set_ctime(&rp, ts);
		if (S_ISDIR(replaced->i_mode)) {
			ndp->nlink--;
			rp.nlink = 0;
		} else {
			rp.nlink--;
		}
	}
	ret = bucketfs_ops->rename(fs_of(old_dir), &od,
				   old_dentry->d_name.name,
				   old_dentry->d_name.len, ndp,
				   new_dentry->d_name.name,
				   new_dentry->d_name.len, &mv,
				   replaced ? &rp : NULL);
	if (ret)
		return ret;
	apply_links_times(old_dir, &od);
	if (ndp == &nd)
		apply_links_times(new_dir, &nd);
	inode_set_ctime(moved, mv.ctime_sec, mv.ctime_nsec);
	if (replaced)
		apply_links_times(replaced, &rp);
	return 0;
}

/*
 * chmod, chown, utimes and truncate: the new attributes are worked out as
 * setattr_copy() would set them, persisted, then applied.
 */
static int bucketfs_setattr(struct mnt_idmap *idmap, struct dentry *dentry,
			    struct iattr *ia)
{
	struct inode *inode = d_inode(dentry);
	unsigned int valid = ia->ia_valid;
	struct bucketfs_attr a;
	bool resize;
	int ret;

	ret = setattr_prepare(idmap, dentry, ia);
	if (ret)
		return ret;
	if ((valid & ATTR_SIZE) && !S_ISREG(inode->i_mode))
		return -EINVAL;
	/*
	 * A size change: the page cache and the blocks follow it (c/file.c),
	 * under the invalidate lock from here to the end.
	 */
	resize = (valid & ATTR_SIZE) && ia->ia_size != i_size_read(inode);
	if (resize) {
		ret = bucketfs_file_resize_begin(inode, ia->ia_size);
		if (ret)
			return ret;
	}
	attr_of(inode, &a);
	if (valid & ATTR_UID)
		a.uid = from_kuid(&init_user_ns,
				  from_vfsuid(idmap, i_user_ns(inode),
					      ia->ia_vfsuid));
	if (valid & ATTR_GID)
		a.gid = from_kgid(&init_user_ns,
				  from_vfsgid(idmap, i_user_ns(inode),
					      ia->ia_vfsgid));
	if (valid & ATTR_ATIME) {
		a.atime_sec = ia->ia_atime.tv_sec;
		a.atime_nsec = ia->ia_atime.tv_nsec;
	}
	if (valid & ATTR_MTIME) {
		a.mtime_sec = ia->ia_mtime.tv_sec;
		a.mtime_nsec = ia->ia_mtime.tv_nsec;
	}
	if (valid & ATTR_CTIME)
		set_ctime(&a, ia->ia_ctime);
	if (valid & ATTR_MODE) {
		umode_t mode = ia->ia_mode;
		vfsgid_t vfsgid = valid & ATTR_GID ? ia->ia_vfsgid :
				  i_gid_into_vfsgid(idmap, inode);

		if (!in_group_or_capable(idmap, inode, vfsgid))
			mode &= ~S_ISGID;
		a.mode = (inode->i_mode & S_IFMT) | (mode & ~S_IFMT);
	}
	if (valid & ATTR_SIZE) {
		/* truncate(2) gives no times: a size change sets both. */
		if (ia->ia_size != a.size &&
		    !(valid & (ATTR_MTIME | ATTR_CTIME)))
			set_mtime_ctime(&a, current_time(inode));
		a.size = ia->ia_size;
	}
	/*
	 * An inode with no name left (unlinked, still open) has no key: its
	 * attributes live in the inode cache only, until it is evicted.
	 */
	if (inode->i_nlink) {
		ret = bucketfs_ops->setattr(fs_of(inode), &a);
		if (ret) {
			if (resize)
				bucketfs_file_resize_end(inode, ia->ia_size,
							 false);
			return ret;
		}
	}
	if (!resize) {
		apply_attr(inode, &a);
		return 0;
	}
	/* truncate_setsize() wants the old size: it goes first. */
	ret = bucketfs_file_resize_end(inode, ia->ia_size, true);
	apply_attr(inode, &a);
	return ret;
}

/*
 * Time updates of a write, a page fault (file_update_time): only the times
 * are written (the rest as stored), since a page fault holds no lock that
 * orders it against the other changes of the inode.
 */
static int bucketfs_update_time(struct inode *inode, int flags)
{
	struct timespec64 now = current_time(inode);
	unsigned int which = 0;
	struct bucketfs_attr a;
	int ret;

	attr_of(inode, &a);
	if (flags & S_ATIME) {
		a.atime_sec = now.tv_sec;
		a.atime_nsec = now.tv_nsec;
		which |= BUCKETFS_TIME_ATIME;
	}
	if (flags & S_MTIME) {
		a.mtime_sec = now.tv_sec;
		a.mtime_nsec = now.tv_nsec;
		which |= BUCKETFS_TIME_MTIME;
	}
	if (flags & S_CTIME) {
		set_ctime(&a, now);
		which |= BUCKETFS_TIME_CTIME;
	}
	if (!which)
		return 0;
	/* No name left: no key (see bucketfs_setattr). */
	if (inode->i_nlink) {
		ret = bucketfs_ops->update_times(fs_of(inode), &a, which);
		if (ret)
			return ret;
	}
	if (which & BUCKETFS_TIME_ATIME)
		inode_set_atime(inode, a.atime_sec, a.atime_nsec);
	if (which & BUCKETFS_TIME_MTIME)
		inode_set_mtime(inode, a.mtime_sec, a.mtime_nsec);
	if (which & BUCKETFS_TIME_CTIME)
		inode_set_ctime(inode, a.ctime_sec, a.ctime_nsec);
	return 0;
}

int bucketfs_persist_size(struct inode *inode, loff_t size, bool times)
{
	struct bucketfs_attr a;
	int ret;

	attr_of(inode, &a);
	a.size = size;
	if (times)
		set_mtime_ctime(&a, current_time(inode));
	if (inode->i_nlink) {
		ret = bucketfs_ops->setattr(fs_of(inode), &a);
		if (ret)
			return ret;
	}
	apply_attr(inode, &a);
	return 0;
}

static int bucketfs_getattr(struct mnt_idmap *idmap, const struct path *path,
			    struct kstat *stat, u32 request_mask,
			    unsigned int flags)
{
	generic_fillattr(idmap, request_mask, d_inode(path->dentry), stat);
	return 0;
}

static const struct inode_operations bucketfs_dir_iops = {
	.lookup		= bucketfs_lookup,
	.create		= bucketfs_create,
	.mkdir		= bucketfs_mkdir,
	.mknod		= bucketfs_mknod,
	.symlink	= bucketfs_symlink,
	.link		= bucketfs_link,
	.unlink		= bucketfs_unlink,
	.rmdir		= bucketfs_rmdir,
	.rename		= bucketfs_rename,
	.setattr	= bucketfs_setattr,
	.getattr	= bucketfs_getattr,
};

static const struct inode_operations bucketfs_file_iops = {
	.setattr	= bucketfs_setattr,
	.getattr	= bucketfs_getattr,
	.update_time	= bucketfs_update_time,
};

static const struct inode_operations bucketfs_symlink_iops = {
	.get_link	= simple_get_link,
	.setattr	= bucketfs_setattr,
	.getattr	= bucketfs_getattr,
};

static const struct inode_operations bucketfs_special_iops = {
	.setattr	= bucketfs_setattr,
	.getattr	= bucketfs_getattr,
};

/* fsync of a directory: every change made so far, durable. */
static int bucketfs_dir_fsync(struct file *file, loff_t start, loff_t end,
			      int datasync)
{
	return bucketfs_ops->sync_fs(fs_of(file_inode(file)), true);
}

/* Positions 0 and 1 are "." and "..", the entries' are their slot + 2. */
static int bucketfs_iterate(struct file *file, struct dir_context *ctx)
{
	struct inode *dir = file_inode(file);

	if (!dir_emit_dots(file, ctx))
		return 0;
	return bucketfs_ops->readdir(fs_of(dir), dir->i_ino, ctx);
}

/* Any position is a valid cookie (a slot, or past the last one). */
static loff_t bucketfs_dir_llseek(struct file *file, loff_t off, int whence)
{
	return generic_file_llseek_size(file, off, whence, LLONG_MAX,
					 LLONG_MAX);
}

static const struct file_operations bucketfs_dir_fops = {
	.llseek		= bucketfs_dir_llseek,
	.read		= generic_read_dir,
	.iterate_shared	= bucketfs_iterate,
	.fsync		= bucketfs_dir_fsync,
	.unlocked_ioctl	= bucketfs_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

bool bucketfs_dir_emit(struct dir_context *ctx, const u8 *name, size_t len,
		       u64 cookie, u64 ino, u8 dtype)
{
	ctx->pos = cookie;
	if (!dir_emit(ctx, name, len, ino, dtype))
		return false;
	/* Emitted: a later call (after an error, say) goes on after it. */
	ctx->pos = cookie + 1;
	return true;
}

u64 bucketfs_dir_pos(struct dir_context *ctx)
{
	return ctx->pos;
}

void bucketfs_dir_set_pos(struct dir_context *ctx, u64 cookie)
{
	ctx->pos = cookie;
}

void bucketfs_free_inode(struct inode *inode)
{
	if (S_ISLNK(inode->i_mode))
		kfree(inode->i_link);
	free_inode_nonrcu(inode);
}

int bucketfs_sync_fs(struct super_block *sb, int wait)
{
	return bucketfs_ops->sync_fs(bucketfs_fs(sb), wait);
}

int bucketfs_fill_root(struct super_block *sb)
{
	struct inode *root;

	root = bucketfs_iget(sb, BUCKETFS_ROOT_INO);
	if (IS_ERR(root)) {
		pr_err("cannot read the root directory (%ld)\n", PTR_ERR(root));
		return PTR_ERR(root);
	}
	if (!S_ISDIR(root->i_mode)) {
		pr_err("the root inode is not a directory (mode %o)\n",
		       root->i_mode);
		iput(root);
		return -EUCLEAN;
	}
	sb->s_root = d_make_root(root);
	return sb->s_root ? 0 : -ENOMEM;
}

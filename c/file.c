// SPDX-License-Identifier: GPL-2.0
/*
 * Regular files: their data through the page cache and iomap. Where the data
 * is (extents, allocation, the conversion of unwritten extents, punching) is
 * in Rust, reached through the data_* callbacks of struct bucketfs_fs_ops
 * (rust/vfs.rs); this file is the VFS, page cache and bio side.
 *
 * An extent may have replicas on several members, and iomap knows one block
 * device per mapping: reads go to the member the mapping names, writes are
 * re-routed at submission (buffered writeback in prepare_ioend, direct I/O in
 * submit_io) through data_segments, which names every replica of every piece:
 * the bio goes to one of them, a clone of it to each other one. iomap 6.12
 * also merges the folios of two mappings into one bio when their sectors are
 * contiguous, whatever their devices, which the re-routing undoes for writes;
 * readahead builds its bios here for that reason (one device per bio).
 *
 * A buffered write allocates (unwritten extents) when it is copied into the
 * page cache (iomap_begin with IOMAP_WRITE); writeback only maps. When a write
 * is on disk, its completion, on the mount's workqueue, tells Rust
 * (data_written: unwritten extents become written, the size on disk grows)
 * before the folios' writeback ends, so fsync, which waits for that, then
 * makes it durable with sync_fs.
 *
 * Transactions allocate memory under the tree lock: the mapping's gfp mask
 * has no __GFP_FS, and the callbacks made from writeback run with
 * memalloc_nofs_save().
 */
#define pr_fmt(fmt) "bucketfs: " fmt

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/iomap.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/uio.h>
#include <linux/workqueue.h>

#include "bucketfs_glue.h"
#include "namespace.h"

/* Blocks are 4096 bytes; the super_block's block size is PAGE_SIZE. */
#define BUCKETFS_BLOCK_SHIFT	12
#define BUCKETFS_BLOCK_SIZE	(1U << BUCKETFS_BLOCK_SHIFT)

/* Segments asked for per data_segments call (more than a piece's replicas). */
#define BUCKETFS_SEG_BATCH	8

/* The clones of a write that go to the other replicas. */
static struct bio_set bucketfs_clone_set;

static void *fs_of(const struct inode *inode)
{
	return bucketfs_fs(inode->i_sb);
}

/*
 * Checks a mapping Rust gave for @pos and fills @iomap from it; -EIO with a
 * line in dmesg if it does not map @pos (or a write finds a hole).
 */
static int bucketfs_fill_iomap(struct inode *inode, loff_t pos,
			       const struct bucketfs_map *m, bool alloc,
			       struct iomap *iomap)
{
	bool blocks = m->type == BUCKETFS_MAP_MAPPED ||
		      m->type == BUCKETFS_MAP_UNWRITTEN;

	if (m->length == 0 || m->offset > pos ||
	    m->offset + m->length <= pos || m->offset + m->length < m->offset ||
	    (m->offset | m->length) & (BUCKETFS_BLOCK_SIZE - 1) ||
	    (m->type != BUCKETFS_MAP_HOLE && !blocks) ||
	    (blocks && (!m->bdev || m->addr & (BUCKETFS_BLOCK_SIZE - 1)))) {
		pr_err_ratelimited("inode %lu: bad mapping at %lld (offset %llu length %llu type %u)\n",
				   inode->i_ino, pos, m->offset, m->length,
				   m->type);
		return -EIO;
	}
	if (alloc && !blocks) {
		pr_err_ratelimited("inode %lu: a write at %lld was given a hole\n",
				   inode->i_ino, pos);
		return -EIO;
	}
	iomap->offset = m->offset;
	iomap->length = m->length;
	iomap->flags = 0;
	if (blocks) {
		iomap->type = m->type == BUCKETFS_MAP_MAPPED ? IOMAP_MAPPED :
							      IOMAP_UNWRITTEN;
		iomap->addr = m->addr;
		iomap->bdev = m->bdev;
	} else {
		iomap->type = IOMAP_HOLE;
		iomap->addr = IOMAP_NULL_ADDR;
		iomap->bdev = NULL;
	}
	return 0;
}

/*
 * A file with no blocks (i_blocks counts every extent, also past the size) is
 * one hole: no need to look.
 */
static bool bucketfs_no_blocks(struct inode *inode)
{
	return !inode_get_bytes(inode);
}

static void bucketfs_map_all_hole(struct inode *inode, loff_t pos,
				  struct bucketfs_map *m)
{
	*m = (struct bucketfs_map) {
		.offset = round_down(pos, BUCKETFS_BLOCK_SIZE),
		.length = round_up(inode->i_sb->s_maxbytes, BUCKETFS_BLOCK_SIZE) -
			  round_down(pos, BUCKETFS_BLOCK_SIZE),
		.type = BUCKETFS_MAP_HOLE,
	};
}

static int bucketfs_iomap_begin(struct inode *inode, loff_t pos, loff_t length,
				unsigned int flags, struct iomap *iomap,
				struct iomap *srcmap)
{
	struct bucketfs_map m = {};
	bool alloc;
	u32 f = 0;
	int ret;

	/* Every mapping may wait for the tree lock. */
	if (flags & IOMAP_NOWAIT)
		return -EAGAIN;
	if (flags & IOMAP_WRITE)
		f |= BUCKETFS_MAP_WRITE;
	if (flags & IOMAP_DIRECT)
		f |= BUCKETFS_MAP_DIRECT;
	if (flags & IOMAP_ZERO)
		f |= BUCKETFS_MAP_ZERO;
	if (flags & IOMAP_REPORT)
		f |= BUCKETFS_MAP_REPORT;
	if (flags & IOMAP_FAULT)
		f |= BUCKETFS_MAP_FAULT;
	alloc = (flags & IOMAP_WRITE) && !(flags & (IOMAP_ZERO | IOMAP_REPORT));
	if (!alloc && bucketfs_no_blocks(inode)) {
		bucketfs_map_all_hole(inode, pos, &m);
		return bucketfs_fill_iomap(inode, pos, &m, false, iomap);
	}
	ret = bucketfs_ops->data_map(fs_of(inode), inode->i_ino, pos, length, f,
				     &m);
	if (ret)
		return ret;
	if (m.new_blocks)
		inode_add_bytes(inode, m.new_blocks << BUCKETFS_BLOCK_SHIFT);
	ret = bucketfs_fill_iomap(inode, pos, &m, alloc, iomap);
	if (ret)
		return ret;
	if (m.new_blocks)
		iomap->flags |= IOMAP_F_NEW;
	/* A write past the size needs the size on disk: no FUA shortcut. */
	if ((flags & IOMAP_WRITE) &&
	    iomap->offset + iomap->length > i_size_read(inode))
		iomap->flags |= IOMAP_F_DIRTY;
	return 0;
}

static const struct iomap_ops bucketfs_iomap_ops = {
	.iomap_begin	= bucketfs_iomap_begin,
};

/*
 * Sends write @bio, of the file's bytes [@pos, @pos + its size), to every
 * replica: a clone of it (chained to it, submitted here) per piece but one,
 * which @bio itself is trimmed and pointed to, for its caller to submit.
 * Returns 0, or an errno with a line in dmesg (clones already submitted
 * complete with @bio, whose caller ends it with the error).
 */
static int bucketfs_route_write(struct inode *inode, struct bio *bio, loff_t pos)
{
	struct bucketfs_seg segs[BUCKETFS_SEG_BATCH];
	u64 end = pos + bio->bi_iter.bi_size;
	u64 q = round_down(pos, BUCKETFS_BLOCK_SIZE);
	u64 qend = round_up(end, BUCKETFS_BLOCK_SIZE);
	u64 covered = pos, kept_lo = 0, kept_len = 0, kept_sector = 0;
	struct block_device *kept_bdev = NULL;
	const char *why;
	int ret = 0;

	while (q < qend) {
		size_t n = 0, i;
		u64 next = 0;

		ret = bucketfs_ops->data_segments(fs_of(inode), inode->i_ino, q,
						  qend - q, segs,
						  ARRAY_SIZE(segs), &n, &next);
		if (ret) {
			why = "no segments";
			goto fail;
		}
		why = "segments out of order";
		ret = -EIO;
		if (!n || n > ARRAY_SIZE(segs) || next <= q || next > qend)
			goto fail;
		for (i = 0; i < n; i++) {
			const struct bucketfs_seg *s = &segs[i];
			u64 lo = max_t(u64, s->offset, pos);
			u64 hi = min_t(u64, s->offset + s->len, end);
			u64 sector;
			struct bio *clone;

			if (!s->len || s->offset < q || s->offset + s->len > next ||
			    (s->offset | s->len | s->addr) & (SECTOR_SIZE - 1) ||
			    !s->bdev)
				goto fail;
			if (lo >= hi)
				continue;
			/* Pieces come in file order, each with its replicas. */
			if (lo > covered) {
				why = "a piece without blocks";
				goto fail;
			}
			covered = max(covered, hi);
			sector = (s->addr + (lo - s->offset)) >> SECTOR_SHIFT;
			if (!kept_bdev) {
				kept_bdev = s->bdev;
				kept_lo = lo;
				kept_len = hi - lo;
				kept_sector = sector;
				continue;
			}
			/* From the untrimmed @bio: it is trimmed last. */
			clone = bio_alloc_clone(s->bdev, bio, GFP_NOFS,
						&bucketfs_clone_set);
			if (!clone) {
				why = "no memory for a replica's bio";
				ret = -ENOMEM;
				goto fail;
			}
			bio_trim(clone, (lo - pos) >> SECTOR_SHIFT,
				 (hi - lo) >> SECTOR_SHIFT);
			clone->bi_iter.bi_sector = sector;
			bio_chain(clone, bio);
			submit_bio(clone);
		}
		q = next;
	}
	if (covered != end || !kept_bdev) {
		why = "a piece without blocks";
		ret = -EIO;
		goto fail;
	}
	bio_trim(bio, (kept_lo - pos) >> SECTOR_SHIFT,
		 kept_len >> SECTOR_SHIFT);
	bio_set_dev(bio, kept_bdev);
	bio->bi_iter.bi_sector = kept_sector;
	return 0;
fail:
	pr_err_ratelimited("inode %lu: write of %llu bytes at %lld: %s (%d)\n",
			   inode->i_ino, end - pos, pos, why, ret);
	return ret;
}

/* Readahead: bios built here, one device each (see the top of this file). */

static void bucketfs_read_end_io(struct bio *bio)
{
	int err = blk_status_to_errno(bio->bi_status);
	struct folio_iter fi;

	if (err)
		pr_err_ratelimited("read error %d at sector %llu of %pg\n", err,
				   (u64)bio->bi_iter.bi_sector, bio->bi_bdev);
	bio_for_each_folio_all(fi, bio)
		folio_end_read(fi.folio, !err);
	bio_put(bio);
}

static void bucketfs_readahead(struct readahead_control *rac)
{
	struct inode *inode = rac->mapping->host;
	gfp_t gfp = mapping_gfp_constraint(rac->mapping, GFP_KERNEL);
	u64 end = readahead_pos(rac) + readahead_length(rac);
	struct bucketfs_map m = { .length = 0 };
	struct bio *bio = NULL;
	struct folio *folio;

	while ((folio = readahead_folio(rac))) {
		u64 pos = folio_pos(folio);
		struct iomap iomap;
		sector_t sector;
		int ret;

		/* No large folios: a folio is a block. */
		if (folio_size(folio) != BUCKETFS_BLOCK_SIZE)
			goto skip;
		if (pos >= i_size_read(inode))
			goto zero;
		if (pos < m.offset || pos >= m.offset + m.length) {
			if (bucketfs_no_blocks(inode)) {
				bucketfs_map_all_hole(inode, pos, &m);
				goto zero;
			}
			ret = bucketfs_ops->data_map(fs_of(inode), inode->i_ino,
						     pos, end - pos, 0, &m);
			if (!ret)
				ret = bucketfs_fill_iomap(inode, pos, &m, false,
							  &iomap);
			if (ret) {
				m.length = 0;
				goto skip;
			}
		}
		if (m.type != BUCKETFS_MAP_MAPPED)
			goto zero;
		sector = (m.addr + (pos - m.offset)) >> SECTOR_SHIFT;
		if (bio && (bio->bi_bdev != m.bdev ||
			    bio_end_sector(bio) != sector ||
			    !bio_add_folio(bio, folio, BUCKETFS_BLOCK_SIZE, 0))) {
			submit_bio(bio);
			bio = NULL;
		}
		if (!bio) {
			unsigned int left = (end - pos) >> BUCKETFS_BLOCK_SHIFT;

			bio = bio_alloc(m.bdev, bio_max_segs(left),
					REQ_OP_READ | REQ_RAHEAD, gfp);
			bio->bi_iter.bi_sector = sector;
			bio->bi_end_io = bucketfs_read_end_io;
			bio_add_folio_nofail(bio, folio, BUCKETFS_BLOCK_SIZE, 0);
		}
		continue;
zero:
		folio_zero_range(folio, 0, folio_size(folio));
		folio_mark_uptodate(folio);
skip:
		/* Not uptodate (skipped): a read of it goes to read_folio. */
		folio_unlock(folio);
	}
	if (bio)
		submit_bio(bio);
}

static int bucketfs_read_folio(struct file *file, struct folio *folio)
{
	/* One block: one mapping, one bio. */
	return iomap_read_folio(folio, &bucketfs_iomap_ops);
}

/* Writeback. */

static int bucketfs_map_blocks(struct iomap_writepage_ctx *wpc,
			       struct inode *inode, loff_t offset,
			       unsigned int len)
{
	struct bucketfs_map m = {};
	unsigned int nofs;
	int ret;

	/* The blocks only: the devices are the ioend's (bucketfs_route_write). */
	if (offset >= wpc->iomap.offset &&
	    offset < wpc->iomap.offset + wpc->iomap.length)
		return 0;
	nofs = memalloc_nofs_save();
	ret = bucketfs_ops->data_map(fs_of(inode), inode->i_ino, offset, len, 0,
				     &m);
	memalloc_nofs_restore(nofs);
	if (ret) {
		pr_err_ratelimited("inode %lu: writeback at %lld: cannot map (%d)\n",
				   inode->i_ino, offset, ret);
		return ret;
	}
	/* The write allocated them: a hole here is a bug. */
	return bucketfs_fill_iomap(inode, offset, &m, true, &wpc->iomap);
}

/* In interrupt context: the rest is done on the mount's workqueue. */
static void bucketfs_ioend_end_io(struct bio *bio)
{
	struct iomap_ioend *ioend = iomap_ioend_from_bio(bio);
	struct bucketfs_sb *sbi = ioend->io_inode->i_sb->s_fs_info;
	unsigned long flags;

	spin_lock_irqsave(&sbi->ioend_lock, flags);
	list_add_tail(&ioend->io_list, &sbi->ioends);
	spin_unlock_irqrestore(&sbi->ioend_lock, flags);
	queue_work(sbi->wq, &sbi->ioend_work);
}

static void bucketfs_ioend_done(struct iomap_ioend *ioend)
{
	struct inode *inode = ioend->io_inode;
	int err = blk_status_to_errno(ioend->io_bio.bi_status);
	unsigned int nofs;

	if (!err) {
		nofs = memalloc_nofs_save();
		err = bucketfs_ops->data_written(fs_of(inode), inode->i_ino,
						 ioend->io_offset,
						 ioend->io_size,
						 i_size_read(inode));
		memalloc_nofs_restore(nofs);
		if (err)
			pr_err_ratelimited("inode %lu: %zu bytes at %lld written, but not recorded (%d)\n",
					   inode->i_ino, ioend->io_size,
					   ioend->io_offset, err);
	}
	/* An error is set on the mapping, for fsync to return. */
	iomap_finish_ioends(ioend, err);
}

static void bucketfs_ioend_work(struct work_struct *work)
{
	struct bucketfs_sb *sbi = container_of(work, struct bucketfs_sb,
					       ioend_work);
	struct iomap_ioend *ioend;
	LIST_HEAD(done);

	spin_lock_irq(&sbi->ioend_lock);
	list_splice_init(&sbi->ioends, &done);
	spin_unlock_irq(&sbi->ioend_lock);
	while ((ioend = list_first_entry_or_null(&done, struct iomap_ioend,
						 io_list))) {
		list_del_init(&ioend->io_list);
		bucketfs_ioend_done(ioend);
		cond_resched();
	}
}

static int bucketfs_prepare_ioend(struct iomap_ioend *ioend, int status)
{
	unsigned int nofs;

	/* Also on an error: the completion path is the same. */
	ioend->io_bio.bi_end_io = bucketfs_ioend_end_io;
	if (status)
		return status;
	nofs = memalloc_nofs_save();
	status = bucketfs_route_write(ioend->io_inode, &ioend->io_bio,
				      ioend->io_offset);
	memalloc_nofs_restore(nofs);
	return status;
}

static const struct iomap_writeback_ops bucketfs_writeback_ops = {
	.map_blocks	= bucketfs_map_blocks,
	.prepare_ioend	= bucketfs_prepare_ioend,
};

static int bucketfs_writepages(struct address_space *mapping,
			       struct writeback_control *wbc)
{
	struct iomap_writepage_ctx wpc = {};

	return iomap_writepages(mapping, wbc, &wpc, &bucketfs_writeback_ops);
}

const struct address_space_operations bucketfs_file_aops = {
	.read_folio		= bucketfs_read_folio,
	.readahead		= bucketfs_readahead,
	.writepages		= bucketfs_writepages,
	.dirty_folio		= iomap_dirty_folio,
	.release_folio		= iomap_release_folio,
	.invalidate_folio	= iomap_invalidate_folio,
	.migrate_folio		= filemap_migrate_folio,
	.is_partially_uptodate	= iomap_is_partially_uptodate,
	.error_remove_folio	= generic_error_remove_folio,
};

/* Direct I/O. */

static void bucketfs_dio_submit_io(const struct iomap_iter *iter,
				   struct bio *bio, loff_t file_offset)
{
	int ret;

	if (bio_op(bio) == REQ_OP_WRITE) {
		ret = bucketfs_route_write(iter->inode, bio, file_offset);
		if (ret) {
			bio->bi_status = errno_to_blk_status(ret);
			bio_endio(bio);
			return;
		}
	}
	submit_bio(bio);
}

/*
 * In task context (iomap completes writes on a workqueue, or in the caller);
 * a write that grows the file is waited for under i_rwsem.
 */
static int bucketfs_dio_write_end_io(struct kiocb *iocb, ssize_t size,
				     int error, unsigned int flags)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	loff_t pos = iocb->ki_pos;
	bool grows;
	int ret;

	if (error || !size)
		return error;
	grows = pos + size > i_size_read(inode);
	if (grows)
		i_size_write(inode, pos + size);
	if (!grows && !(flags & IOMAP_DIO_UNWRITTEN))
		return 0;
	ret = bucketfs_ops->data_written(fs_of(inode), inode->i_ino, pos, size,
					 i_size_read(inode));
	if (ret)
		pr_err_ratelimited("inode %lu: %zd bytes at %lld written directly, but not recorded (%d)\n",
				   inode->i_ino, size, pos, ret);
	return ret;
}

static const struct iomap_dio_ops bucketfs_dio_write_ops = {
	.submit_io	= bucketfs_dio_submit_io,
	.end_io		= bucketfs_dio_write_end_io,
};

/* File operations. */

static int bucketfs_file_open(struct inode *inode, struct file *file)
{
	file->f_mode |= FMODE_CAN_ODIRECT;
	return generic_file_open(inode, file);
}

static ssize_t bucketfs_file_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	ssize_t ret;

	if (!iov_iter_count(to))
		return 0;
	if (!(iocb->ki_flags & IOCB_DIRECT))
		return filemap_read(iocb, to, 0);
	if (iocb->ki_flags & IOCB_NOWAIT) {
		if (!inode_trylock_shared(inode))
			return -EAGAIN;
	} else {
		inode_lock_shared(inode);
	}
	/* No submit_io: a read's bio is within one mapping, one device. */
	ret = iomap_dio_rw(iocb, to, &bucketfs_iomap_ops, NULL, 0, NULL, 0);
	inode_unlock_shared(inode);
	return ret;
}

/*
 * A write at @pos past the size: what lies between reads as zeros, also
 * blocks left past the size (a truncate cut by a crash). Direct I/O: written
 * before (the size on disk may grow past it when the direct write is done).
 */
static int bucketfs_zero_gap(struct inode *inode, loff_t pos, bool direct)
{
	loff_t size = i_size_read(inode);
	bool did_zero = false;
	int ret;

	if (pos <= size)
		return 0;
	ret = iomap_zero_range(inode, size, pos - size, &did_zero,
			       &bucketfs_iomap_ops);
	if (!ret && did_zero && direct)
		ret = filemap_write_and_wait_range(inode->i_mapping, size,
						   pos - 1);
	return ret;
}

static ssize_t bucketfs_dio_write(struct kiocb *iocb, struct iov_iter *from)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	size_t count = iov_iter_count(from);
	unsigned int flags = 0;

	/*
	 * Part of a block: iomap zeroes the rest of a new one, which must not
	 * meet another write in flight to it; waited for, as one that grows
	 * the file (its end_io sets the size under i_rwsem).
	 */
	if ((iocb->ki_pos | count) & (BUCKETFS_BLOCK_SIZE - 1)) {
		if (iocb->ki_flags & IOCB_NOWAIT)
			return -EAGAIN;
		inode_dio_wait(inode);
		flags |= IOMAP_DIO_FORCE_WAIT;
	}
	if (iocb->ki_pos + count > i_size_read(inode))
		flags |= IOMAP_DIO_FORCE_WAIT;
	return iomap_dio_rw(iocb, from, &bucketfs_iomap_ops,
			    &bucketfs_dio_write_ops, flags, NULL, 0);
}

static ssize_t bucketfs_file_write_iter(struct kiocb *iocb,
					struct iov_iter *from)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	bool direct = iocb->ki_flags & IOCB_DIRECT;
	ssize_t ret;

	if (iocb->ki_flags & IOCB_NOWAIT) {
		if (!inode_trylock(inode))
			return -EAGAIN;
	} else {
		inode_lock(inode);
	}
	ret = generic_write_checks(iocb, from);
	if (ret <= 0)
		goto out;
	ret = file_modified(iocb->ki_filp);
	if (ret)
		goto out;
	ret = bucketfs_zero_gap(inode, iocb->ki_pos, direct);
	if (ret)
		goto out;
	if (direct) {
		ret = bucketfs_dio_write(iocb, from);
		/* -ENOTBLK: the page cache could not be dropped; buffered. */
		if (ret != -ENOTBLK)
			goto out;
		direct = false;
	}
	ret = iomap_file_buffered_write(iocb, from, &bucketfs_iomap_ops, NULL);
out:
	inode_unlock(inode);
	/* iomap_dio_rw syncs a direct write itself. */
	if (ret > 0 && !direct)
		ret = generic_write_sync(iocb, ret);
	return ret;
}

static int bucketfs_file_fsync(struct file *file, loff_t start, loff_t end,
			       int datasync)
{
	struct inode *inode = file_inode(file);
	int ret;

	/* Written back and recorded (data_written), then durable. */
	ret = file_write_and_wait_range(file, start, end);
	if (ret)
		return ret;
	return bucketfs_ops->sync_fs(fs_of(inode), true);
}

static loff_t bucketfs_file_llseek(struct file *file, loff_t offset,
				   int whence)
{
	struct inode *inode = file_inode(file);

	switch (whence) {
	case SEEK_HOLE:
	case SEEK_DATA:
		inode_lock_shared(inode);
		if (whence == SEEK_HOLE)
			offset = iomap_seek_hole(inode, offset,
						 &bucketfs_iomap_ops);
		else
			offset = iomap_seek_data(inode, offset,
						 &bucketfs_iomap_ops);
		inode_unlock_shared(inode);
		if (offset < 0)
			return offset;
		return vfs_setpos(file, offset, inode->i_sb->s_maxbytes);
	default:
		return generic_file_llseek(file, offset, whence);
	}
}

static vm_fault_t bucketfs_page_mkwrite(struct vm_fault *vmf)
{
	struct inode *inode = file_inode(vmf->vma->vm_file);
	vm_fault_t ret;

	sb_start_pagefault(inode->i_sb);
	filemap_invalidate_lock_shared(inode->i_mapping);
	/* Under the lock: no truncate in between. */
	if (file_update_time(vmf->vma->vm_file)) {
		ret = VM_FAULT_SIGBUS;
		goto out;
	}
	ret = iomap_page_mkwrite(vmf, &bucketfs_iomap_ops);
out:
	filemap_invalidate_unlock_shared(inode->i_mapping);
	sb_end_pagefault(inode->i_sb);
	return ret;
}

static const struct vm_operations_struct bucketfs_vm_ops = {
	.fault		= filemap_fault,
	.map_pages	= filemap_map_pages,
	.page_mkwrite	= bucketfs_page_mkwrite,
};

static int bucketfs_file_mmap(struct file *file, struct vm_area_struct *vma)
{
	file_accessed(file);
	vma->vm_ops = &bucketfs_vm_ops;
	return 0;
}

/* Frees [@start, @end) of @inode's blocks; i_blocks follows. */
static int bucketfs_punch(struct inode *inode, u64 start, u64 end)
{
	u64 freed = 0, blocks = 0;
	int ret;

	if (bucketfs_no_blocks(inode))
		return 0;
	ret = bucketfs_ops->data_punch(fs_of(inode), inode->i_ino, start, end,
				       &freed);
	if (!ret) {
		inode_sub_bytes(inode, freed << BUCKETFS_BLOCK_SHIFT);
		return 0;
	}
	pr_err("inode %lu: cannot free its blocks from %llu (%d)\n",
	       inode->i_ino, start, ret);
	/* Some may be freed: i_blocks as the extents say, if they can be read. */
	if (!bucketfs_ops->data_blocks(fs_of(inode), inode->i_ino, &blocks))
		inode_set_bytes(inode, blocks << BUCKETFS_BLOCK_SHIFT);
	return ret;
}

static int bucketfs_zero(struct inode *inode, loff_t pos, loff_t len)
{
	if (len <= 0)
		return 0;
	return iomap_zero_range(inode, pos, len, NULL, &bucketfs_iomap_ops);
}

/* fallocate PUNCH_HOLE|KEEP_SIZE, under i_rwsem and the invalidate lock. */
static int bucketfs_punch_hole(struct inode *inode, loff_t offset, loff_t len)
{
	loff_t end = offset + len;
	loff_t first = round_up(offset, BUCKETFS_BLOCK_SIZE);
	loff_t last = round_down(end, BUCKETFS_BLOCK_SIZE);
	loff_t size = i_size_read(inode);
	int ret;

	ret = filemap_write_and_wait_range(inode->i_mapping, offset, end - 1);
	if (ret)
		return ret;
	/* Partial blocks are zeroed (within the size: past it nothing reads). */
	if (first >= last) {
		ret = bucketfs_zero(inode, offset, min(end, size) - offset);
	} else {
		ret = bucketfs_zero(inode, offset, min(first, size) - offset);
		if (!ret)
			ret = bucketfs_zero(inode, last, min(end, size) - last);
	}
	if (ret || first >= last)
		return ret;
	truncate_pagecache_range(inode, first, last - 1);
	return bucketfs_punch(inode, first, last);
}

/* fallocate 0 or KEEP_SIZE: unwritten extents over the holes. */
static int bucketfs_allocate(struct inode *inode, loff_t offset, loff_t len,
			     int mode)
{
	u64 pos = round_down(offset, BUCKETFS_BLOCK_SIZE);
	u64 end = offset + len;
	struct bucketfs_map m;
	struct iomap iomap;
	int ret;

	while (pos < end) {
		if (fatal_signal_pending(current))
			return -EINTR;
		m = (struct bucketfs_map) {};
		ret = bucketfs_ops->data_map(fs_of(inode), inode->i_ino, pos,
					     end - pos, BUCKETFS_MAP_WRITE, &m);
		if (ret)
			return ret;
		if (m.new_blocks)
			inode_add_bytes(inode,
					m.new_blocks << BUCKETFS_BLOCK_SHIFT);
		ret = bucketfs_fill_iomap(inode, pos, &m, true, &iomap);
		if (ret)
			return ret;
		pos = m.offset + m.length;
		cond_resched();
	}
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > i_size_read(inode)) {
		loff_t old = i_size_read(inode);

		/*
		 * The rest of the old last block (bytes an mmap may have
		 * written past the size) reads as zeros once the size grows,
		 * as in a truncate up.
		 */
		if (old & (BUCKETFS_BLOCK_SIZE - 1)) {
			ret = bucketfs_zero(inode, old,
					    round_up(old, BUCKETFS_BLOCK_SIZE) - old);
			if (ret)
				return ret;
		}
		return bucketfs_persist_size(inode, end, true);
	}
	return 0;
}

static long bucketfs_fallocate(struct file *file, int mode, loff_t offset,
			       loff_t len)
{
	struct inode *inode = file_inode(file);
	int ret;

	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE))
		return -EOPNOTSUPP;
	/* The VFS allows PUNCH_HOLE only with KEEP_SIZE. */
	inode_lock(inode);
	ret = file_modified(file);
	if (ret)
		goto out;
	inode_dio_wait(inode);
	filemap_invalidate_lock(inode->i_mapping);
	if (mode & FALLOC_FL_PUNCH_HOLE)
		ret = bucketfs_punch_hole(inode, offset, len);
	else
		ret = bucketfs_allocate(inode, offset, len, mode);
	filemap_invalidate_unlock(inode->i_mapping);
out:
	inode_unlock(inode);
	return ret;
}

/* FITRIM, on a regular file or a directory (fstrim opens the mount point). */
long bucketfs_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct super_block *sb = file_inode(file)->i_sb;
	struct fstrim_range __user *uarg = (struct fstrim_range __user *)arg;
	struct fstrim_range range;
	u64 trimmed = 0;
	int ret;

	if (cmd != FITRIM)
		return -ENOTTY;
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (sb_rdonly(sb))
		return -EROFS;
	if (copy_from_user(&range, uarg, sizeof(range)))
		return -EFAULT;
	ret = bucketfs_ops->data_trim(bucketfs_fs(sb), range.start, range.len,
				      range.minlen, &trimmed);
	if (ret)
		return ret;
	range.len = trimmed;
	if (copy_to_user(uarg, &range, sizeof(range)))
		return -EFAULT;
	return 0;
}

const struct file_operations bucketfs_file_fops = {
	.open		= bucketfs_file_open,
	.llseek		= bucketfs_file_llseek,
	.read_iter	= bucketfs_file_read_iter,
	.write_iter	= bucketfs_file_write_iter,
	.splice_read	= filemap_splice_read,
	.splice_write	= iter_file_splice_write,
	.mmap		= bucketfs_file_mmap,
	.fsync		= bucketfs_file_fsync,
	.fallocate	= bucketfs_fallocate,
	.unlocked_ioctl	= bucketfs_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

/* Size changes (setattr), inodes, the mount. */

int bucketfs_file_resize_begin(struct inode *inode, loff_t size)
{
	loff_t old = i_size_read(inode);
	int ret;

	inode_dio_wait(inode);
	filemap_invalidate_lock(inode->i_mapping);
	if (size > old)
		/* Blocks past the old size (a truncate cut by a crash) read as zeros. */
		ret = bucketfs_zero(inode, old, size - old);
	else
		/* The rest of the new last block is zeros, for a later growth. */
		ret = iomap_truncate_page(inode, size, NULL,
					  &bucketfs_iomap_ops);
	/*
	 * Shrinking: everything from the new last block on is written back and
	 * its completions are done before the new size is persisted, so no
	 * completion (data_written, which raises the size on disk up to the
	 * in-memory size) runs between that and truncate_setsize() with the old
	 * size. Writes and faults are held off by i_rwsem and the invalidate
	 * lock until then.
	 */
	if (!ret && size < old)
		ret = filemap_write_and_wait_range(inode->i_mapping,
						   round_down(size, PAGE_SIZE),
						   LLONG_MAX);
	if (ret)
		filemap_invalidate_unlock(inode->i_mapping);
	return ret;
}

int bucketfs_file_resize_end(struct inode *inode, loff_t size, bool persisted)
{
	loff_t old = i_size_read(inode);
	int ret = 0;

	if (persisted) {
		truncate_setsize(inode, size);
		/* A crash before this leaves blocks past the size: allowed. */
		if (size < old)
			ret = bucketfs_punch(inode,
					     round_up(size, BUCKETFS_BLOCK_SIZE),
					     U64_MAX);
	}
	filemap_invalidate_unlock(inode->i_mapping);
	return ret;
}

int bucketfs_file_init_inode(struct inode *inode, bool read)
{
	u64 blocks = 0;
	int ret;

	inode->i_mapping->a_ops = &bucketfs_file_aops;
	/* Transactions allocate under the tree lock: no reclaim into the fs. */
	mapping_set_gfp_mask(inode->i_mapping,
			     mapping_gfp_mask(inode->i_mapping) & ~__GFP_FS);
	if (!read)
		return 0;
	ret = bucketfs_ops->data_blocks(fs_of(inode), inode->i_ino, &blocks);
	if (ret) {
		pr_err("inode %lu: cannot count its blocks (%d)\n",
		       inode->i_ino, ret);
		return ret;
	}
	inode_set_bytes(inode, blocks << BUCKETFS_BLOCK_SHIFT);
	return 0;
}

void bucketfs_evict_inode(struct inode *inode)
{
	truncate_inode_pages_final(&inode->i_data);
	/*
	 * The last name is gone (its key too): the blocks go. An inode never
	 * hashed is a create that failed, with no blocks.
	 */
	if (S_ISREG(inode->i_mode) && !inode->i_nlink && !is_bad_inode(inode) &&
	    !inode_unhashed(inode))
		bucketfs_punch(inode, 0, U64_MAX);
	clear_inode(inode);
}

struct bucketfs_sb *bucketfs_sb_new(void *fs)
{
	struct bucketfs_sb *sbi;

	sbi = kzalloc(sizeof(*sbi), GFP_KERNEL);
	if (!sbi)
		return NULL;
	sbi->wq = alloc_workqueue("bucketfs-write", WQ_MEM_RECLAIM, 0);
	if (!sbi->wq) {
		kfree(sbi);
		return NULL;
	}
	sbi->fs = fs;
	spin_lock_init(&sbi->ioend_lock);
	INIT_LIST_HEAD(&sbi->ioends);
	INIT_WORK(&sbi->ioend_work, bucketfs_ioend_work);
	return sbi;
}

void bucketfs_sb_free(struct bucketfs_sb *sbi)
{
	/* Every write is done (unmounted, or never mounted): drained first. */
	destroy_workqueue(sbi->wq);
	bucketfs_ops->close(sbi->fs);
	kfree(sbi);
}

int bucketfs_file_init(void)
{
	return bioset_init(&bucketfs_clone_set, BIO_POOL_SIZE, 0, 0);
}

void bucketfs_file_exit(void)
{
	bioset_exit(&bucketfs_clone_set);
}

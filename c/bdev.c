// SPDX-License-Identifier: GPL-2.0
/*
 * Block device glue: open a member exclusively, synchronous reads and writes
 * with real bios, flush, discard. The safe Rust side is rust/bdev.rs.
 */
#define pr_fmt(fmt) "bucketfs: " fmt

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/err.h>
#include <linux/file.h>
#include <linux/mm.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>

#include "bucketfs_glue.h"

int bucketfs_bdev_open(const char *path, void *holder, struct file **out)
{
	struct file *f;

	f = bdev_file_open_by_path(path, BLK_OPEN_READ | BLK_OPEN_WRITE, holder,
				   NULL);
	if (IS_ERR(f))
		return PTR_ERR(f);
	*out = f;
	return 0;
}

void bucketfs_bdev_close(struct file *f)
{
	bdev_fput(f);
}

u64 bucketfs_bdev_bytes(struct file *f)
{
	return bdev_nr_bytes(file_bdev(f));
}

u64 bucketfs_bdev_max_discard_bytes(struct file *f)
{
	return (u64)bdev_max_discard_sectors(file_bdev(f)) << SECTOR_SHIFT;
}

void bucketfs_bdev_name(struct file *f, char *buf, size_t len)
{
	snprintf(buf, len, "%pg", file_bdev(f));
}

static struct page *bucketfs_buf_page(void *p)
{
	return is_vmalloc_addr(p) ? vmalloc_to_page(p) : virt_to_page(p);
}

/*
 * One synchronous bio per up to BIO_MAX_VECS pages, built straight from the
 * caller's buffer (kmalloc or vmalloc memory; never the stack).
 */
static int bucketfs_bdev_rw(struct file *f, blk_opf_t opf, u64 off, void *buf,
			    size_t len)
{
	struct block_device *bdev = file_bdev(f);
	int ret = 0;

	if (!IS_ALIGNED(off, SECTOR_SIZE) || !IS_ALIGNED(len, SECTOR_SIZE) ||
	    off + len > bdev_nr_bytes(bdev) || off + len < off)
		return -EINVAL;

	while (len && !ret) {
		unsigned int nr = min_t(size_t, BIO_MAX_VECS,
					DIV_ROUND_UP(offset_in_page(buf) + len, PAGE_SIZE));
		struct bio *bio = bio_alloc(bdev, nr, opf, GFP_KERNEL);

		bio->bi_iter.bi_sector = off >> SECTOR_SHIFT;
		while (len) {
			size_t chunk = min_t(size_t, len, PAGE_SIZE - offset_in_page(buf));

			if (bio_add_page(bio, bucketfs_buf_page(buf), chunk,
					 offset_in_page(buf)) != chunk)
				break;
			buf += chunk;
			off += chunk;
			len -= chunk;
		}
		ret = submit_bio_wait(bio);
		bio_put(bio);
	}
	return ret;
}

int bucketfs_bdev_read(struct file *f, u64 off, void *buf, size_t len)
{
	return bucketfs_bdev_rw(f, REQ_OP_READ | REQ_META, off, buf, len);
}

int bucketfs_bdev_write(struct file *f, u64 off, const void *buf, size_t len,
			bool fua)
{
	blk_opf_t opf = REQ_OP_WRITE | REQ_META | REQ_SYNC;

	if (fua)
		opf |= REQ_PREFLUSH | REQ_FUA;
	return bucketfs_bdev_rw(f, opf, off, (void *)buf, len);
}

int bucketfs_bdev_discard(struct file *f, u64 off, u64 len)
{
	if (!IS_ALIGNED(off, SECTOR_SIZE) || !IS_ALIGNED(len, SECTOR_SIZE))
		return -EINVAL;
	return blkdev_issue_discard(file_bdev(f), off >> SECTOR_SHIFT,
				    len >> SECTOR_SHIFT, GFP_KERNEL);
}

/*
 * The discard workers' workqueue. The module owns it so that module exit can
 * wait for every work item to finish its last instruction (a worker that has
 * told its filesystem it is done still returns through module code).
 */
static struct workqueue_struct *bucketfs_discard_wq;

int bucketfs_discard_wq_init(void)
{
	bucketfs_discard_wq = alloc_workqueue("bucketfs_discard", WQ_UNBOUND, 0);
	if (!bucketfs_discard_wq) {
		pr_err("cannot create the discard workqueue (-ENOMEM)\n");
		return -ENOMEM;
	}
	return 0;
}

/* Waits for every queued or running work item, then frees the queue. */
void bucketfs_discard_wq_exit(void)
{
	destroy_workqueue(bucketfs_discard_wq);
	bucketfs_discard_wq = NULL;
}

void *bucketfs_discard_wq_get(void)
{
	return bucketfs_discard_wq;
}

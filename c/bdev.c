// SPDX-License-Identifier: GPL-2.0
/*
 * Block device glue: open a member exclusively, synchronous reads and writes
 * with real bios, and batches of reads, writes, flushes and discards submitted
 * together and waited for once. The safe Rust side is rust/bdev.rs.
 */
#define pr_fmt(fmt) "bucketfs: " fmt

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/err.h>
#include <linux/file.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>

#include "bucketfs_glue.h"

int bucketfs_bdev_open(const char *path, void *holder, bool write,
		       struct file **out)
{
	struct file *f;

	f = bdev_file_open_by_path(path,
				   BLK_OPEN_READ | (write ? BLK_OPEN_WRITE : 0),
				   holder, NULL);
	if (IS_ERR(f))
		return PTR_ERR(f);
	*out = f;
	return 0;
}

void bucketfs_bdev_close(struct file *f)
{
	bdev_fput(f);
}

struct block_device *bucketfs_bdev_of(struct file *f)
{
	return file_bdev(f);
}

bool bucketfs_bdev_read_only(struct file *f)
{
	return bdev_read_only(file_bdev(f));
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
 * Batches: every request of a batch is turned into bios and submitted under
 * one plug, then the submitter waits once for all of them. Each request has a
 * slot that its bios' completions share: it keeps the request's first error,
 * so the caller can tell which requests failed (which copies of a node).
 */
struct bucketfs_io_wait;

struct bucketfs_io_slot {
	struct bucketfs_io_wait *w;
	int status;
	bool discard;
};

struct bucketfs_io_wait {
	/* Bios in flight, plus one held by the submitter until all are out. */
	atomic_t pending;
	struct completion done;
	struct bucketfs_io_slot slots[];
};

static void bucketfs_io_end(struct bio *bio)
{
	struct bucketfs_io_slot *s = bio->bi_private;
	struct bucketfs_io_wait *w = s->w;
	int err = blk_status_to_errno(bio->bi_status);

	/* As blkdev_issue_discard: a device that stopped discarding is no error. */
	if (s->discard && err == -EOPNOTSUPP)
		err = 0;
	if (err)
		cmpxchg(&s->status, 0, err);
	bio_put(bio);
	if (atomic_dec_and_test(&w->pending))
		complete(&w->done);
}

static void bucketfs_io_submit_bio(struct bio *bio, struct bucketfs_io_slot *s)
{
	bio->bi_private = s;
	bio->bi_end_io = bucketfs_io_end;
	atomic_inc(&s->w->pending);
	submit_bio(bio);
}

static bool bucketfs_io_range_ok(struct block_device *bdev, u64 off, u64 len)
{
	return IS_ALIGNED(off, SECTOR_SIZE) && IS_ALIGNED(len, SECTOR_SIZE) &&
	       off + len >= off && off + len <= bdev_nr_bytes(bdev);
}

static bool bucketfs_io_req_ok(const struct bucketfs_io_req *r)
{
	struct block_device *bdev = file_bdev(r->file);
	const u64 *range = r->buf;
	size_t i;

	switch (r->op) {
	case BUCKETFS_IO_READ:
	case BUCKETFS_IO_WRITE:
	case BUCKETFS_IO_WRITE_FUA:
		return r->buf && bucketfs_io_range_ok(bdev, r->off, r->len);
	case BUCKETFS_IO_FLUSH:
		return true;
	case BUCKETFS_IO_DISCARD:
		for (i = 0; i < r->len; i++)
			if (!bucketfs_io_range_ok(bdev, range[2 * i], range[2 * i + 1]))
				return false;
		return true;
	}
	return false;
}

/* A read or write: one bio per up to BIO_MAX_VECS pages of the buffer. */
static void bucketfs_io_submit_rw(const struct bucketfs_io_req *r,
				  struct bucketfs_io_slot *s)
{
	struct block_device *bdev = file_bdev(r->file);
	blk_opf_t opf = REQ_META | REQ_SYNC;
	void *buf = r->buf;
	u64 off = r->off;
	size_t len = r->len;

	if (r->op == BUCKETFS_IO_READ)
		opf |= REQ_OP_READ;
	else if (r->op == BUCKETFS_IO_WRITE)
		opf |= REQ_OP_WRITE;
	else
		opf |= REQ_OP_WRITE | REQ_FUA;

	while (len) {
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
		bucketfs_io_submit_bio(bio, s);
	}
}

/* A device's discards, chained into one bio that completes after all of them. */
static void bucketfs_io_submit_discard(const struct bucketfs_io_req *r,
				       struct bucketfs_io_slot *s)
{
	struct block_device *bdev = file_bdev(r->file);
	const u64 *range = r->buf;
	struct bio *bio = NULL;
	size_t i;

	for (i = 0; i < r->len; i++)
		__blkdev_issue_discard(bdev, range[2 * i] >> SECTOR_SHIFT,
				       range[2 * i + 1] >> SECTOR_SHIFT,
				       GFP_KERNEL, &bio);
	if (bio)
		bucketfs_io_submit_bio(bio, s);
}

struct bucketfs_io_wait *bucketfs_io_submit(struct bucketfs_io_req *reqs,
					    size_t nr, int *err)
{
	struct bucketfs_io_wait *w;
	struct blk_plug plug;
	size_t i;

	for (i = 0; i < nr; i++) {
		if (!bucketfs_io_req_ok(&reqs[i])) {
			*err = -EINVAL;
			return NULL;
		}
	}
	w = kvzalloc(struct_size(w, slots, nr), GFP_KERNEL);
	if (!w) {
		*err = -ENOMEM;
		return NULL;
	}
	atomic_set(&w->pending, 1);
	init_completion(&w->done);

	blk_start_plug(&plug);
	for (i = 0; i < nr; i++) {
		struct bucketfs_io_slot *s = &w->slots[i];
		struct bio *bio;

		s->w = w;
		switch (reqs[i].op) {
		case BUCKETFS_IO_FLUSH:
			bio = bio_alloc(file_bdev(reqs[i].file), 0,
					REQ_OP_WRITE | REQ_PREFLUSH, GFP_KERNEL);
			bucketfs_io_submit_bio(bio, s);
			break;
		case BUCKETFS_IO_DISCARD:
			s->discard = true;
			bucketfs_io_submit_discard(&reqs[i], s);
			break;
		default:
			bucketfs_io_submit_rw(&reqs[i], s);
		}
	}
	blk_finish_plug(&plug);
	*err = 0;
	return w;
}

void bucketfs_io_wait(struct bucketfs_io_wait *w, struct bucketfs_io_req *reqs,
		      size_t nr)
{
	size_t i;

	if (!atomic_dec_and_test(&w->pending))
		wait_for_completion_io(&w->done);
	for (i = 0; i < nr; i++)
		reqs[i].status = w->slots[i].status;
	kvfree(w);
}

int bucketfs_io_run(struct bucketfs_io_req *reqs, size_t nr)
{
	struct bucketfs_io_wait *w;
	int err;

	w = bucketfs_io_submit(reqs, nr, &err);
	if (!w)
		return err;
	bucketfs_io_wait(w, reqs, nr);
	return 0;
}

/*
 * Synchronous reads and writes are batches of one request (two for a write
 * that must follow a cache flush): one bio-building path for everything.
 */
static int bucketfs_bdev_rw(struct file *f, unsigned int op, bool preflush,
			    u64 off, void *buf, size_t len)
{
	struct bucketfs_io_req reqs[2] = {
		{ .file = f, .op = BUCKETFS_IO_FLUSH },
		{ .file = f, .op = op, .off = off, .buf = buf, .len = len },
	};
	int ret;

	if (preflush)
		ret = bucketfs_io_run(reqs, 2);
	else
		ret = bucketfs_io_run(reqs + 1, 1);
	if (ret)
		return ret;
	return (preflush ? reqs[0].status : 0) ?: reqs[1].status;
}

int bucketfs_bdev_read(struct file *f, u64 off, void *buf, size_t len)
{
	return bucketfs_bdev_rw(f, BUCKETFS_IO_READ, false, off, buf, len);
}

/*
 * With @fua, the cache flush and the FUA write go out together: every write
 * that completed before this call and this write are durable when it returns
 * (what REQ_PREFLUSH | REQ_FUA on the write gives).
 */
int bucketfs_bdev_write(struct file *f, u64 off, const void *buf, size_t len,
			bool fua)
{
	return bucketfs_bdev_rw(f, fua ? BUCKETFS_IO_WRITE_FUA : BUCKETFS_IO_WRITE,
				fua, off, (void *)buf, len);
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

struct bucketfs_timer {
	struct delayed_work dw;
	void (*fn)(void *ctx);
	void *ctx;
};

static void bucketfs_timer_fn(struct work_struct *ws)
{
	struct bucketfs_timer *t = container_of(to_delayed_work(ws),
						struct bucketfs_timer, dw);

	t->fn(t->ctx);
}

struct bucketfs_timer *bucketfs_timer_new(void (*fn)(void *ctx), void *ctx)
{
	struct bucketfs_timer *t = kzalloc(sizeof(*t), GFP_KERNEL);

	if (!t)
		return NULL;
	INIT_DELAYED_WORK(&t->dw, bucketfs_timer_fn);
	t->fn = fn;
	t->ctx = ctx;
	return t;
}

/* Queues the call @ms milliseconds from now, unless one is already queued. */
void bucketfs_timer_arm(struct bucketfs_timer *t, unsigned int ms)
{
	queue_delayed_work(bucketfs_discard_wq, &t->dw, msecs_to_jiffies(ms));
}

/* Cancels a queued call and waits for a running one; then frees @t. */
void bucketfs_timer_free(struct bucketfs_timer *t)
{
	if (!t)
		return;
	cancel_delayed_work_sync(&t->dw);
	kfree(t);
}

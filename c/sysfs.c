// SPDX-License-Identifier: GPL-2.0
/*
 * sysfs glue: /sys/fs/bucketfs/ and, per mounted filesystem,
 * /sys/fs/bucketfs/<uuid>/{options,internal,dev-N}/. Which files a directory
 * has, and what reading or writing them does, is decided in Rust, reached
 * through the ops table given to bucketfs_sysfs_add() (rust/sysfs.rs); this
 * file only builds kobjects and forwards show/store.
 */
#define pr_fmt(fmt) "bucketfs: " fmt

#include <linux/fs.h>
#include <linux/kobject.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/sysfs.h>

#include "bucketfs_glue.h"

static struct kset *bucketfs_kset;

struct bucketfs_sysfs_attr {
	struct attribute attr;
	unsigned int index;
};

struct bucketfs_sysfs;

struct bucketfs_sysfs_dir {
	struct kobject kobj;
	/* The filesystem's directories this one belongs to. */
	struct bucketfs_sysfs *sysfs;
	const struct bucketfs_sysfs_ops *ops;
	/* The Rust filesystem; valid while the directory is in sysfs. */
	void *fs;
	unsigned int kind;
	unsigned int member;
	unsigned int nr_attrs;
	struct bucketfs_sysfs_attr attrs[];
};

struct bucketfs_sysfs {
	struct bucketfs_sysfs_dir *top;
	const struct bucketfs_sysfs_ops *ops;
	void *fs;
	/*
	 * Held while directories are added (at creation, and after a store to
	 * the top directory adds a member) and while removal starts: no
	 * directory is added once @dead is set.
	 */
	struct mutex lock;
	bool dead;
	unsigned int nr_dirs, max_dirs;
	/* options, internal, then one per member: up to max_members + 2. */
	struct bucketfs_sysfs_dir *dirs[];
};

#define to_dir(k) container_of(k, struct bucketfs_sysfs_dir, kobj)
#define to_attr(a) container_of(a, struct bucketfs_sysfs_attr, attr)

static ssize_t bucketfs_dir_show(struct kobject *kobj, struct attribute *attr,
				 char *buf)
{
	struct bucketfs_sysfs_dir *d = to_dir(kobj);

	return d->ops->show(d->fs, d->kind, d->member, to_attr(attr)->index,
			    buf);
}

static void bucketfs_sysfs_add_devs(struct bucketfs_sysfs *s);

static ssize_t bucketfs_dir_store(struct kobject *kobj, struct attribute *attr,
				  const char *buf, size_t len)
{
	struct bucketfs_sysfs_dir *d = to_dir(kobj);
	ssize_t ret;

	ret = d->ops->store(d->fs, d->kind, d->member, to_attr(attr)->index,
			    buf, len);
	/*
	 * A store to the top directory may have added a member: its dev-N
	 * directory goes up now. bucketfs_sysfs_remove() takes the lock and sets
	 * dead before it removes anything, and removes the top directory (which
	 * waits for this store) before it frees @s.
	 */
	if (ret >= 0 && d->kind == BUCKETFS_SYSFS_TOP)
		bucketfs_sysfs_add_devs(d->sysfs);
	return ret;
}

static void bucketfs_dir_release(struct kobject *kobj)
{
	struct bucketfs_sysfs_dir *d = to_dir(kobj);
	unsigned int i;

	for (i = 0; i < d->nr_attrs; i++)
		kfree(d->attrs[i].attr.name);
	kfree(d);
}

static const struct sysfs_ops bucketfs_dir_ops = {
	.show	= bucketfs_dir_show,
	.store	= bucketfs_dir_store,
};

static const struct kobj_type bucketfs_dir_ktype = {
	.release	= bucketfs_dir_release,
	.sysfs_ops	= &bucketfs_dir_ops,
};

static void bucketfs_dir_remove(struct bucketfs_sysfs_dir *d)
{
	/* kobject_del() waits for show/store calls in flight to return. */
	kobject_del(&d->kobj);
	kobject_put(&d->kobj);
}

static struct bucketfs_sysfs_dir *
bucketfs_dir_add(struct bucketfs_sysfs *s, struct kobject *parent,
		 const char *name, unsigned int kind, unsigned int member,
		 int *err)
{
	const struct bucketfs_sysfs_ops *ops = s->ops;
	void *fs = s->fs;
	struct bucketfs_sysfs_dir *d;
	const char *attr_name;
	unsigned int i, nr = 0;
	size_t name_len;
	umode_t mode;

	while (ops->attr(kind, nr, &attr_name, &name_len, &mode))
		nr++;
	d = kzalloc(struct_size(d, attrs, nr), GFP_KERNEL);
	if (!d) {
		*err = -ENOMEM;
		return NULL;
	}
	d->sysfs = s;
	d->ops = ops;
	d->fs = fs;
	d->kind = kind;
	d->member = member;
	for (i = 0; i < nr; i++) {
		struct bucketfs_sysfs_attr *a = &d->attrs[i];

		ops->attr(kind, i, &attr_name, &name_len, &a->attr.mode);
		a->attr.name = kmemdup_nul(attr_name, name_len, GFP_KERNEL);
		a->index = i;
		d->nr_attrs = i + 1;
		if (!a->attr.name) {
			kobject_init(&d->kobj, &bucketfs_dir_ktype);
			kobject_put(&d->kobj);
			*err = -ENOMEM;
			return NULL;
		}
		sysfs_attr_init(&a->attr);
	}
	if (!parent)
		d->kobj.kset = bucketfs_kset;
	*err = kobject_init_and_add(&d->kobj, &bucketfs_dir_ktype, parent, "%s",
				    name);
	if (*err) {
		kobject_put(&d->kobj);
		return NULL;
	}
	for (i = 0; i < nr; i++) {
		*err = sysfs_create_file(&d->kobj, &d->attrs[i].attr);
		if (*err) {
			bucketfs_dir_remove(d);
			return NULL;
		}
	}
	return d;
}

/* Adds the dev-N directories @s lacks; @s->lock held, @s not dead. */
static int bucketfs_sysfs_add_devs_locked(struct bucketfs_sysfs *s,
					  unsigned int nr_members)
{
	char dev[16];
	int err = 0;

	while (s->nr_dirs < s->max_dirs && s->nr_dirs - 2 < nr_members) {
		unsigned int i = s->nr_dirs - 2;

		snprintf(dev, sizeof(dev), "dev-%u", i);
		s->dirs[s->nr_dirs] = bucketfs_dir_add(s, &s->top->kobj, dev,
						       BUCKETFS_SYSFS_DEV, i,
						       &err);
		if (!s->dirs[s->nr_dirs])
			return err;
		s->nr_dirs++;
	}
	return 0;
}

static void bucketfs_sysfs_add_devs(struct bucketfs_sysfs *s)
{
	int err = 0;

	mutex_lock(&s->lock);
	if (!s->dead && s->nr_dirs >= 2)
		err = bucketfs_sysfs_add_devs_locked(s, s->ops->nr_devs(s->fs));
	mutex_unlock(&s->lock);
	if (err)
		pr_err("%s: cannot create a dev-N directory (%d)\n",
		       kobject_name(&s->top->kobj), err);
}

/**
 * bucketfs_sysfs_add - create /sys/fs/bucketfs/@name/ for a filesystem
 * @name: the filesystem uuid
 * @ops: the Rust callbacks naming the files and reading or writing them
 * @fs: passed back to @ops' show/store callbacks
 * @nr_members: number of dev-N directories
 * @max_members: most dev-N directories it may have (members added later)
 * @err: errno on failure
 */
struct bucketfs_sysfs *bucketfs_sysfs_add(const char *name,
					  const struct bucketfs_sysfs_ops *ops,
					  void *fs, unsigned int nr_members,
					  unsigned int max_members, int *err)
{
	struct bucketfs_sysfs *s;
	unsigned int max_dirs;

	if (nr_members > max_members) {
		*err = -EINVAL;
		return NULL;
	}
	max_dirs = size_add(max_members, 2);
	s = kzalloc(struct_size(s, dirs, max_dirs), GFP_KERNEL);
	if (!s) {
		*err = -ENOMEM;
		return NULL;
	}
	s->ops = ops;
	s->fs = fs;
	s->max_dirs = max_dirs;
	mutex_init(&s->lock);
	/* A store to the top directory waits until every directory is up. */
	mutex_lock(&s->lock);
	s->top = bucketfs_dir_add(s, NULL, name, BUCKETFS_SYSFS_TOP, 0, err);
	if (!s->top)
		goto fail;
	s->dirs[s->nr_dirs] = bucketfs_dir_add(s, &s->top->kobj, "options",
					       BUCKETFS_SYSFS_OPTIONS, 0, err);
	if (!s->dirs[s->nr_dirs++])
		goto fail;
	s->dirs[s->nr_dirs] = bucketfs_dir_add(s, &s->top->kobj, "internal",
					       BUCKETFS_SYSFS_INTERNAL, 0, err);
	if (!s->dirs[s->nr_dirs++])
		goto fail;
	*err = bucketfs_sysfs_add_devs_locked(s, nr_members);
	if (*err)
		goto fail;
	mutex_unlock(&s->lock);
	return s;
fail:
	mutex_unlock(&s->lock);
	pr_err("%s: cannot create sysfs directory (%d)\n", name, *err);
	bucketfs_sysfs_remove(s);
	return NULL;
}

void bucketfs_sysfs_remove(struct bucketfs_sysfs *s)
{
	unsigned int i;

	/* No directory is added from here on (a store in flight finds dead). */
	mutex_lock(&s->lock);
	s->dead = true;
	mutex_unlock(&s->lock);
	for (i = 0; i < s->nr_dirs; i++)
		if (s->dirs[i])
			bucketfs_dir_remove(s->dirs[i]);
	/* Waits for stores to the top directory in flight; none uses @s after. */
	if (s->top)
		bucketfs_dir_remove(s->top);
	mutex_destroy(&s->lock);
	kfree(s);
}

int bucketfs_sysfs_init(void)
{
	bucketfs_kset = kset_create_and_add("bucketfs", NULL, fs_kobj);
	if (!bucketfs_kset) {
		pr_err("cannot create /sys/fs/bucketfs (-ENOMEM)\n");
		return -ENOMEM;
	}
	return 0;
}

void bucketfs_sysfs_exit(void)
{
	kset_unregister(bucketfs_kset);
	bucketfs_kset = NULL;
}

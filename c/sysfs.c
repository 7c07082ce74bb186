// SPDX-License-Identifier: GPL-2.0
/*
 * sysfs glue: the /sys/fs/bucketfs kset that per-filesystem directories
 * (/sys/fs/bucketfs/<uuid>/) will hang from.
 */
#define pr_fmt(fmt) "bucketfs: " fmt

#include <linux/fs.h>
#include <linux/kobject.h>

#include "bucketfs_glue.h"

static struct kset *bucketfs_kset;

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

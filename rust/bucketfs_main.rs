// SPDX-License-Identifier: GPL-2.0

//! bucketfs: a multi-device filesystem whose stuck metadata allocations can be restarted.
//!
//! This module registers the `bucketfs` filesystem type and `/sys/fs/bucketfs/`, mounts
//! multi-device filesystems made by the `bucketfs` tool, and shows them in sysfs.

// `try_pin_init!` of `Fs` (one field per concept) expands past the default limit.
#![recursion_limit = "256"]

mod allocator;
mod append_vec;
mod bdev;
mod btree;
mod closure;
mod commit;
mod data;
mod data_space;
mod discard;
mod fs;
mod fs_sysfs;
mod fs_vfs;
mod glue;
mod heal;
mod journal;
mod journal_writer;
mod member_add;
mod member_remove;
mod mount;
mod namespace;
mod node_move;
mod recovery;
mod runtime_options;
pub mod shared;
mod sysfs;
mod text;
mod timer;
mod transaction;
mod vec_ext;
mod vfs;

use kernel::{error::to_result, prelude::*};
use vfs::FsVTable;

module! {
    type: BucketFs,
    name: "bucketfs",
    author: "bucketfs developers",
    description: "bucketfs: multi-device filesystem with restartable metadata allocation",
    license: "GPL",
}

struct BucketFs;

impl kernel::Module for BucketFs {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: Called once at module init, before any filesystem can queue discard work.
        to_result(unsafe { glue::bucketfs_discard_wq_init() })?;
        // SAFETY: Called once at module init, before anything else touches the kset.
        if let Err(e) = to_result(unsafe { glue::bucketfs_sysfs_init() }) {
            // SAFETY: Created above; nothing was queued on it.
            unsafe { glue::bucketfs_discard_wq_exit() };
            return Err(e);
        }
        let ops = FsVTable::<fs_vfs::BucketFsType>::build();
        // SAFETY: The filesystem type and its ops table are static; registered once, here.
        if let Err(e) = to_result(unsafe { glue::bucketfs_register_fs(ops) }) {
            // SAFETY: The kset and the queue were created above and nothing uses them yet.
            unsafe {
                glue::bucketfs_sysfs_exit();
                glue::bucketfs_discard_wq_exit();
            }
            return Err(e);
        }
        pr_info!("loaded\n");
        Ok(BucketFs)
    }
}

impl Drop for BucketFs {
    fn drop(&mut self) {
        // SAFETY: Registered in `init`; unregistering waits for no superblock to be left.
        unsafe { glue::bucketfs_unregister_fs() };
        // SAFETY: Created in `init`; every filesystem is gone and stopped its worker, so this
        // only waits for work items finishing their last instructions, then frees the queue.
        unsafe { glue::bucketfs_discard_wq_exit() };
        // SAFETY: Created in `init`; the filesystem type that would add children is gone.
        unsafe { glue::bucketfs_sysfs_exit() };
        pr_info!("unloaded\n");
    }
}

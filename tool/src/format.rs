//! Writing a new filesystem: superblocks, bucket tables, an empty journal and a root leaf
//! holding the root directory (one inode key, [`ROOT_INO`]).
//!
//! Only what must be written is: the bucket tables (in chunks of [`CHUNK_BYTES`], never a
//! buffer the size of the table), the root leaf, the superblocks, and one zero block where the
//! journal starts. The rest of the journal area is left as it is: an old entry there cannot be
//! replayed, because
//! - every format draws a new random filesystem uuid (`Uuid::new_v4`; there is no option to
//!   keep the old one), and the kernel refuses an entry of another uuid;
//! - replay starts at `journal_offset` (0 here) expecting `journal_seq` (1), and stops at the
//!   first block that is not that entry: the zero block written there ends the journal before
//!   any other block is looked at, even if a uuid ever repeated.

use crate::device::Device;
use bucketfs_core::bkey::{encode, record_size};
use bucketfs_core::btree_format::encode_leaf;
use bucketfs_core::bucket_table::{
    encode_block, entries_in_block, table_blocks, BucketEntry, BucketState, TableBlockId,
};
use bucketfs_core::layout::Field;
use bucketfs_core::namespace_format::{inode_pos, InodeDisk, INODE_SIZE, ROOT_INO, S_IFDIR};
use bucketfs_core::options::{Opt, Options};
use bucketfs_core::superblock::*;
use bucketfs_core::target::Label;

/// Largest buffer the tool writes in one go: a bucket table is written this much at a time.
pub const CHUNK_BYTES: usize = 1 << 20;

/// What `format` is asked for.
pub struct FormatSpec {
    pub options: Options,
    pub bucket_size: u32,
    /// Each device's label, in device order (missing ones: none).
    pub labels: Vec<Label>,
}

/// The layout chosen for a set of devices, before anything is written.
pub struct Layout {
    pub sb: Superblock,
}

/// Plans a filesystem over `devs`: one member per device, root leaf on the first
/// `metadata_replicas` members.
pub fn plan(devs: &[Device], spec: &FormatSpec) -> Result<Layout, String> {
    if devs.is_empty() || devs.len() > MAX_MEMBERS {
        return Err(format!(
            "need 1 to {MAX_MEMBERS} devices, got {}",
            devs.len()
        ));
    }
    for (i, d) in devs.iter().enumerate() {
        if devs[..i].iter().any(|o| o.path == d.path) {
            return Err(format!("{} is given twice", d.path.display()));
        }
    }
    let nr = devs.len() as u32;
    if spec.labels.len() > devs.len() {
        return Err(format!(
            "{} labels for {} device(s)",
            spec.labels.len(),
            devs.len()
        ));
    }
    let mut labels = [Label::NONE; MAX_MEMBERS];
    labels[..spec.labels.len()].copy_from_slice(&spec.labels);
    spec.options
        .validate(nr)
        .and_then(|()| spec.options.check_target_members(&labels[..devs.len()]))
        .map_err(|e| {
            let mut msg = String::new();
            let _ = e.describe(&mut msg);
            format!("options: {msg}")
        })?;
    let mut members = [Member::default(); MAX_MEMBERS];
    for (m, d) in members.iter_mut().zip(devs) {
        *m = Member::layout(d.size, spec.bucket_size, *uuid::Uuid::new_v4().as_bytes()).map_err(
            |f| match f {
                MemberField::BucketSize => format!(
                    "bad bucket size {} (power of two, {MIN_BUCKET_SIZE}..={MAX_BUCKET_SIZE})",
                    spec.bucket_size
                ),
                _ => format!(
                    "{}: too small ({} bytes) for {}-byte buckets",
                    d.path.display(),
                    d.size,
                    spec.bucket_size
                ),
            },
        )?;
        if spec.options.get(Opt::Discard) == 0 {
            m.flags &= !MEMBER_DISCARD;
        }
    }
    let replicas = spec.options.get(Opt::MetadataReplicas) as usize;
    let mut root = BtreeRoot {
        level: 0,
        nr_ptrs: replicas as u8,
        node_seq: 1,
        ..Default::default()
    };
    for (i, p) in root.ptrs.iter_mut().take(replicas).enumerate() {
        *p = NodePtr {
            member: i as u32,
            bucket: members[i].first_bucket,
        };
    }
    let sb = Superblock {
        uuid: *uuid::Uuid::new_v4().as_bytes(),
        seq: 1,
        member_index: 0,
        nr_members: nr,
        options: spec.options,
        journal_seq: 1,
        journal_offset: 0,
        root,
        members,
        labels,
    };
    sb.validate()
        .map_err(|e| format!("internal error: planned superblock invalid: {}", e.field()))?;
    Ok(Layout { sb })
}

/// The state a new filesystem gives `bucket` of member `index`.
pub fn initial_state(sb: &Superblock, index: u32, bucket: u64) -> BucketState {
    let m = &sb.members[index as usize];
    if sb.root.ptrs[..sb.root.nr_ptrs as usize]
        .iter()
        .any(|p| p.member == index && p.bucket as u64 == bucket)
    {
        BucketState::Btree
    } else {
        // The metadata areas, and free: as for a member added later.
        bucketfs_core::member_add::new_member_state(m, bucket)
    }
}

/// Writes member `index`'s bucket table from `state_of(bucket)`.
pub fn write_table(
    dev: &Device,
    sb: &Superblock,
    index: u32,
    state_of: impl Fn(u64) -> BucketState,
) -> Result<(), String> {
    let m = &sb.members[index as usize];
    let blocks = table_blocks(m.nbuckets);
    let per_chunk = (CHUNK_BYTES / BLOCK_SIZE) as u64;
    let mut buf = vec![0u8; CHUNK_BYTES.min(BLOCK_SIZE * blocks as usize)];
    let mut entries = Vec::with_capacity(TABLE_ENTRIES_PER_BLOCK as usize);
    let at = m.bucket_offset(m.table_start as u64);
    for chunk in (0..blocks).step_by(per_chunk as usize) {
        let n = per_chunk.min(blocks - chunk);
        for block in chunk..chunk + n {
            let first = block * TABLE_ENTRIES_PER_BLOCK;
            entries.clear();
            entries.extend(
                (0..entries_in_block(m.nbuckets, block) as u64).map(|i| BucketEntry {
                    state: state_of(first + i),
                    gen: 0,
                }),
            );
            let id = TableBlockId {
                uuid: sb.uuid,
                member: index,
                block: block as u32,
            };
            let o = (block - chunk) as usize * BLOCK_SIZE;
            encode_block(&id, sb.seq, &entries, &mut buf[o..o + BLOCK_SIZE]);
        }
        let len = n as usize * BLOCK_SIZE;
        dev.write_at(at + chunk * BLOCK_SIZE as u64, &buf[..len])?;
    }
    Ok(())
}

/// Writes one zero block at block `offset` of member `index`'s journal area: replay, starting
/// there, finds no entry (see the module doc).
pub fn end_journal_at(
    dev: &Device,
    sb: &Superblock,
    index: u32,
    offset: u64,
) -> Result<(), String> {
    let m = &sb.members[index as usize];
    if offset >= m.journal_blocks() {
        return Ok(());
    }
    let at = m.bucket_offset(m.journal_start as u64) + offset * BLOCK_SIZE as u64;
    dev.write_at(at, &[0u8; BLOCK_SIZE])
}

/// Writes the superblock copies of member `index`.
pub fn write_superblocks(dev: &Device, sb: &Superblock, index: u32) -> Result<(), String> {
    let mut copy = *sb;
    copy.member_index = index;
    let mut buf = vec![0u8; SB_SIZE];
    copy.encode(&mut buf);
    for off in SB_OFFSETS {
        dev.write_at(off, &buf)?;
    }
    Ok(())
}

/// The root directory's attributes in a new filesystem made at `now` (seconds since the epoch):
/// mode `S_IFDIR | 0755`, owned by root, `nlink` 2 (its own `.` and its name), size 0.
pub fn root_inode(now: u64) -> InodeDisk {
    InodeDisk {
        mode: S_IFDIR | 0o755,
        uid: 0,
        gid: 0,
        nlink: 2,
        size: 0,
        atime_sec: now,
        mtime_sec: now,
        ctime_sec: now,
        ..Default::default()
    }
}

/// The seconds since the epoch now (0 if the clock is before it).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The root leaf of a new filesystem: the root directory's inode key only (see [`root_inode`]).
pub fn root_leaf(sb: &Superblock, now: u64) -> Result<Vec<u8>, String> {
    let mut val = [0u8; INODE_SIZE];
    root_inode(now).write(&mut val);
    let mut rec = vec![0u8; record_size(INODE_SIZE)];
    let n = encode(inode_pos(ROOT_INO), false, &val, &mut rec)
        .ok_or("internal error: the root inode does not encode")?;
    let mut node = vec![0u8; BLOCK_SIZE];
    if !encode_leaf(&sb.uuid, sb.root.node_seq, 1, &rec[..n], &mut node) {
        return Err("internal error: the root leaf does not encode".into());
    }
    Ok(node)
}

/// Writes a whole new filesystem as planned.
pub fn write(devs: &[Device], layout: &Layout) -> Result<(), String> {
    let sb = &layout.sb;
    let node = root_leaf(sb, now_secs())?;
    for (i, d) in devs.iter().enumerate() {
        let i = i as u32;
        let m = &sb.members[i as usize];
        // An empty journal: one zero block where replay starts (see the module doc).
        end_journal_at(d, sb, i, sb.journal_offset)?;
        write_table(d, sb, i, |b| initial_state(sb, i, b))?;
        for p in sb.root.ptrs[..sb.root.nr_ptrs as usize]
            .iter()
            .filter(|p| p.member == i)
        {
            d.write_at(m.bucket_offset(p.bucket as u64), &node)?;
        }
    }
    // Superblocks last: until they are written, the devices are not a bucketfs.
    for (i, d) in devs.iter().enumerate() {
        d.sync()?;
        write_superblocks(d, sb, i as u32)?;
        d.sync()?;
    }
    Ok(())
}

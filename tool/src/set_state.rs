//! `debug set-bucket-state`: rewrite one entry of a member's bucket table (checksum
//! recomputed), for tests that need a table which contradicts the btree, such as a live btree
//! node's bucket called `need_discard`.

use crate::device::Device;
use crate::show::read_super;
use bucketfs_core::bucket_table::{
    decode_block, encode_block, BucketEntry, BucketState, TableBlockId, TableHeaderDisk,
};
use bucketfs_core::layout::Field;
use bucketfs_core::superblock::{BLOCK_SIZE, TABLE_ENTRIES_PER_BLOCK};

/// Sets the table entry of `bucket` (a number, or `root`: the bucket of the root node's copy
/// on this member) to the state named `state`; returns what it did.
pub fn set_bucket_state(dev: &Device, bucket: &str, state: &str) -> Result<String, String> {
    let (sb, _) = read_super(dev)?;
    let index = sb.member_index;
    let m = sb
        .members
        .get(index as usize)
        .ok_or_else(|| format!("member index {index} out of range"))?;
    let bucket: u64 = if bucket == "root" {
        sb.root.ptrs[..sb.root.nr_ptrs as usize]
            .iter()
            .find(|p| p.member == index)
            .map(|p| p.bucket as u64)
            .ok_or_else(|| format!("the root node has no copy on member {index}"))?
    } else {
        bucket
            .parse()
            .map_err(|_| format!("bucket: expected a number or root, got {bucket}"))?
    };
    if bucket >= m.nbuckets {
        return Err(format!(
            "bucket {bucket} is outside the member ({} buckets)",
            m.nbuckets
        ));
    }
    let new = BucketState::ALL
        .iter()
        .copied()
        .find(|s| s.name() == state)
        .ok_or_else(|| format!("unknown state {state}"))?;
    let block = bucket / TABLE_ENTRIES_PER_BLOCK;
    let off = m.bucket_offset(m.table_start as u64) + block * BLOCK_SIZE as u64;
    let mut buf = vec![0u8; BLOCK_SIZE];
    dev.read_at(off, &mut buf)?;
    let id = TableBlockId {
        uuid: sb.uuid,
        member: index,
        block: block as u32,
    };
    let mut entries: Vec<BucketEntry> = Vec::new();
    decode_block(&id, m.nbuckets, &buf, |_, e| entries.push(e))
        .map_err(|e| format!("bucket table block {block}: {e:?}"))?;
    let i = (bucket % TABLE_ENTRIES_PER_BLOCK) as usize;
    let old = entries[i].state;
    entries[i].state = new;
    // The block keeps its sequence number (read through the header's declaration).
    let seq = TableHeaderDisk::read(&buf).seq;
    encode_block(&id, seq, &entries, &mut buf);
    dev.write_at(off, &buf)?;
    dev.sync()?;
    Ok(format!(
        "member {index} bucket {bucket}: {} -> {}",
        old.name(),
        new.name()
    ))
}

//! `dump-btree`: walk the btree of an unmounted filesystem and print its figures.

use crate::device::Device;
use crate::show::read_super;
use bucketfs_core::btree_format::{decode_node, Child};
use bucketfs_core::journal_format::{key_digest, Key};
use bucketfs_core::superblock::{check_ptr, NodePtr, Superblock, BLOCK_SIZE};

struct Walk<'a> {
    sb: Superblock,
    by_member: Vec<Option<&'a Device>>,
    keys: Vec<Key>,
    nodes: u64,
    /// Every copy of every node: (member, bucket).
    locations: Vec<(u32, u32)>,
    /// Nodes by the number of copies their pointer names (index: copies).
    by_copies: [u64; 5],
}

impl Walk<'_> {
    fn node(&mut self, ptrs: &[NodePtr], level: u8) -> Result<(), String> {
        let mut last = String::from("no copies");
        for p in ptrs {
            let Some(Some(dev)) = self.by_member.get(p.member as usize) else {
                last = format!("member {} not given", p.member);
                continue;
            };
            // The same rule as the kernel: a pointer outside its member's allocatable buckets
            // is never followed, and a copy that cannot be read is passed over.
            if let Err(e) = check_ptr(self.sb.member_table(), *p) {
                last = format!("member {} bucket {}: {}", p.member, p.bucket, e.describe());
                continue;
            }
            let m = &self.sb.members[p.member as usize];
            let mut buf = vec![0u8; BLOCK_SIZE];
            if let Err(e) = dev.read_at(m.bucket_offset(p.bucket as u64), &mut buf) {
                last = format!("member {} bucket {}: {e}", p.member, p.bucket);
                continue;
            }
            let (mut keys, mut children): (Vec<Key>, Vec<Child>) = (Vec::new(), Vec::new());
            match decode_node(
                &self.sb.uuid,
                level,
                &buf,
                |k| keys.push(k),
                |c| children.push(c),
            ) {
                Ok(_) => {
                    self.nodes += 1;
                    if let Some(c) = self.by_copies.get_mut(ptrs.len()) {
                        *c += 1;
                    }
                    self.locations
                        .extend(ptrs.iter().map(|p| (p.member, p.bucket)));
                    self.keys.extend(keys);
                    for c in children {
                        self.node(&c.ptrs[..c.nr_ptrs as usize], level - 1)?;
                    }
                    return Ok(());
                }
                Err(e) => last = format!("member {} bucket {}: {e:?}", p.member, p.bucket),
            }
        }
        Err(format!("level {level} node unreadable: {last}"))
    }
}

/// The tree of the filesystem of `devs` (the newest superblock among them): its keys in order,
/// how many nodes, and every copy of every node as (member, bucket).
pub struct Tree {
    pub sb: Superblock,
    pub keys: Vec<Key>,
    pub nodes: u64,
    pub locations: Vec<(u32, u32)>,
    /// Nodes by the number of copies their pointer names (index: copies).
    pub by_copies: [u64; 5],
}

/// Walks the btree of the filesystem of `devs`, as [`dump`] prints it.
pub fn walk(devs: &[Device]) -> Result<Tree, String> {
    let mut sbs = Vec::new();
    for d in devs {
        sbs.push(read_super(d)?.0);
    }
    let sb = *sbs.iter().max_by_key(|s| s.seq).ok_or("no device")?;
    let mut by_member = vec![None; sb.nr_members as usize];
    for (d, s) in devs.iter().zip(&sbs) {
        if s.uuid == sb.uuid {
            if let Some(slot) = by_member.get_mut(s.member_index as usize) {
                *slot = Some(d);
            }
        }
    }
    let mut w = Walk {
        sb,
        by_member,
        keys: Vec::new(),
        nodes: 0,
        locations: Vec::new(),
        by_copies: [0; 5],
    };
    w.node(&sb.root.ptrs[..sb.root.nr_ptrs as usize], sb.root.level)?;
    if w.keys.windows(2).any(|p| p[0].key >= p[1].key) {
        return Err("keys are not in order across leaves".into());
    }
    Ok(Tree {
        sb,
        keys: w.keys,
        nodes: w.nodes,
        locations: w.locations,
        by_copies: w.by_copies,
    })
}

pub fn dump(devs: &[Device], print_keys: bool, print_nodes: bool) -> Result<(), String> {
    let w = walk(devs)?;
    let sb = w.sb;
    let digest = w
        .keys
        .iter()
        .fold(0u64, |a, k| a.wrapping_add(key_digest(k)));
    println!(
        "btree: keys {} digest {digest:016x} nodes {} depth {} journal_seq {}",
        w.keys.len(),
        w.nodes,
        sb.root.level + 1,
        sb.journal_seq
    );
    // Degraded nodes: fewer copies than the stored metadata_replicas (on-disk-format.md).
    let replicas = sb
        .options
        .get(bucketfs_core::options::Opt::MetadataReplicas) as usize;
    let copies: Vec<String> = (1..w.by_copies.len())
        .filter(|&c| w.by_copies[c] > 0)
        .map(|c| format!("{c}:{}", w.by_copies[c]))
        .collect();
    let degraded: u64 = w.by_copies[..replicas.min(w.by_copies.len())].iter().sum();
    println!(
        "copies per node: {} (metadata_replicas {replicas}, degraded nodes {degraded})",
        copies.join(" ")
    );
    if print_nodes {
        for (m, b) in &w.locations {
            println!("node member {m} bucket {b}");
        }
    }
    if print_keys {
        for k in &w.keys {
            println!("{:016x} {}", k.key, k.val);
        }
    }
    Ok(())
}

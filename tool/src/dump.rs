//! `dump-btree`: walk the btree of an unmounted filesystem and print its figures.
//!
//! The figures follow the kernel's `internal/btree_stats`: `keys` and `digest` count the map
//! keys only (the keys a replay test writes and compares: `bucketfs scenario` prints the same
//! two figures as its expectation), `namespace_keys` counts every other key (inodes, directory
//! entries, symbolic link pieces, file extents).

use crate::device::Device;
use crate::show::read_super;
use bucketfs_core::bkey::{key_digest, Kind, Pos};
use bucketfs_core::btree_format::{decode_node, Child};
use bucketfs_core::extent::Extent;
use bucketfs_core::layout::Field;
use bucketfs_core::namespace_format::{decode_dirent, InodeDisk, INODE_SIZE};
use bucketfs_core::superblock::{check_ptr, NodePtr, Superblock, BLOCK_SIZE};

/// A key of the tree and its value, copied out of its leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Where it sorts.
    pub pos: Pos,
    /// Its value (checked by the leaf decoder).
    pub val: Vec<u8>,
}

impl Record {
    /// Whether it is a map key.
    pub fn is_map(&self) -> bool {
        self.pos.kind == Kind::Map as u8
    }
}

/// The figures of a set of keys, as `internal/btree_stats` reports them: map keys and the sum
/// of their digest terms, and the other keys.
pub fn figures(keys: &[Record]) -> (u64, u64, u64) {
    let mut map = 0u64;
    let mut digest = 0u64;
    for k in keys.iter().filter(|k| k.is_map()) {
        map += 1;
        digest = digest.wrapping_add(key_digest(k.pos, &k.val));
    }
    (map, digest, keys.len() as u64 - map)
}

/// Bytes of `b` as text: printable ASCII as it is, the rest escaped; at most `max` bytes shown.
fn bytes_text(b: &[u8], max: usize) -> String {
    let mut t: String = b[..b.len().min(max)].escape_ascii().to_string();
    if b.len() > max {
        t.push_str("...");
    }
    t
}

/// One line of `dump-btree --keys`: a map key as `KEY VALUE` (hexadecimal key, decimal value,
/// as before format 2), any other as `KIND INO OFF VALUE-TEXT`.
pub fn key_line(k: &Record) -> String {
    let Some(kind) = Kind::from_u8(k.pos.kind) else {
        return format!("kind{} {} {}", k.pos.kind, k.pos.ino, k.pos.off);
    };
    let (ino, off) = (k.pos.ino, k.pos.off);
    match kind {
        Kind::Map => {
            let mut v = [0u8; 8];
            let n = k.val.len().min(8);
            v[..n].copy_from_slice(&k.val[..n]);
            format!("{off:016x} {}", u64::from_le_bytes(v))
        }
        Kind::Inode if k.val.len() == INODE_SIZE => {
            let i = InodeDisk::read(&k.val);
            format!(
                "inode {ino} {off} mode {:o} nlink {} uid {} gid {} size {} rdev {} mtime {}.{:09}",
                i.mode, i.nlink, i.uid, i.gid, i.size, i.rdev, i.mtime_sec as i64, i.mtime_nsec
            )
        }
        Kind::Dirent => match decode_dirent(&k.val) {
            Some(d) => format!(
                "dirent {ino} {off:x} ino {} type {} name \"{}\"",
                d.ino,
                d.dtype,
                bytes_text(d.name, 255)
            ),
            None => format!("dirent {ino} {off:x} (bad value)"),
        },
        Kind::Symlink => format!(
            "symlink {ino} {off} {} bytes \"{}\"",
            k.val.len(),
            bytes_text(&k.val, 64)
        ),
        Kind::Extent => match Extent::decode(k.pos, &k.val) {
            Some(e) => {
                let mut t = format!(
                    "extent {ino} {}..{} len {} {}",
                    e.start,
                    e.end(),
                    e.len,
                    if e.unwritten { "unwritten" } else { "written" }
                );
                for p in e.ptrs() {
                    t.push_str(&format!(" m{}:{}", p.member, p.block));
                }
                t
            }
            None => format!("extent {ino} {off} (bad value)"),
        },
        Kind::Inode => format!("inode {ino} {off} (bad value)"),
    }
}

struct Walk<'a> {
    sb: Superblock,
    by_member: Vec<Option<&'a Device>>,
    keys: Vec<Record>,
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
            let (mut keys, mut children): (Vec<Record>, Vec<Child>) = (Vec::new(), Vec::new());
            match decode_node(
                &self.sb.uuid,
                level,
                &buf,
                |k| {
                    keys.push(Record {
                        pos: k.pos,
                        val: k.val.to_vec(),
                    })
                },
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
    pub keys: Vec<Record>,
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
    if w.keys.windows(2).any(|p| p[0].pos >= p[1].pos) {
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
    let (keys, digest, namespace_keys) = figures(&w.keys);
    println!(
        "btree: keys {keys} digest {digest:016x} namespace_keys {namespace_keys} nodes {} depth {} \
         journal_seq {}",
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
            println!("{}", key_line(k));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bucketfs_core::extent::{DataPtr, MAX_DATA_REPLICAS, MAX_EXTENT_VAL};

    #[test]
    fn extents_print_readably() {
        let mut e = Extent {
            start: 8,
            len: 4,
            unwritten: true,
            nr: 2,
            ptrs: [DataPtr::default(); MAX_DATA_REPLICAS],
        };
        e.ptrs[0] = DataPtr {
            member: 0,
            block: 4096,
        };
        e.ptrs[1] = DataPtr {
            member: 2,
            block: 300,
        };
        let mut v = vec![0u8; MAX_EXTENT_VAL];
        let n = e.encode(&mut v);
        v.truncate(n);
        let k = Record {
            pos: e.pos(7),
            val: v,
        };
        assert_eq!(
            key_line(&k),
            "extent 7 8..12 len 4 unwritten m0:4096 m2:300"
        );
        let bad = Record {
            pos: e.pos(7),
            val: vec![0; 8],
        };
        assert_eq!(key_line(&bad), "extent 7 12 (bad value)");
    }
}

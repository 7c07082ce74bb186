//! `debug damage`: damage one piece of metadata of a single-member filesystem, chosen and
//! done by a seeded generator, so the kernel's checks can be exercised and a failure
//! reproduced from its seed.
//!
//! Targets: a superblock copy or both, a bucket table block, a journal entry, a btree node
//! copy. Kinds: a flipped bit, a zeroed block, the tail half zeroed (a torn write), or a
//! field set to a wrong value (length, offset, count, level, sequence number, pointer) with
//! the checksum recomputed, so the field check rather than the checksum must catch it.

use crate::device::Device;
use crate::show::read_super;
use bucketfs_core::btree_format::{decode_node, Child};
use bucketfs_core::bucket_table::table_blocks;
use bucketfs_core::crc32c::block_crc;
use bucketfs_core::journal_format::decode_header;
use bucketfs_core::superblock::{NodePtr, BLOCK_SIZE, SB_OFFSETS, SB_SIZE};

/// splitmix64: a small, seedable generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// A damageable block: where it is, how big, where its checksum sits.
struct Target {
    what: String,
    offsets: Vec<u64>,
    len: usize,
    crc_at: usize,
    /// (name, offset within the block, width in bytes, wrong values to pick from)
    fields: Vec<(&'static str, usize, usize, Vec<u64>)>,
}

fn put(b: &mut [u8], off: usize, width: usize, v: u64) {
    b[off..off + width].copy_from_slice(&v.to_le_bytes()[..width]);
}

fn node_ptrs(dev: &Device, sb: &bucketfs_core::superblock::Superblock) -> Vec<(NodePtr, u8)> {
    let mut out = Vec::new();
    let mut stack: Vec<(Vec<NodePtr>, u8)> = vec![(
        sb.root.ptrs[..sb.root.nr_ptrs as usize].to_vec(),
        sb.root.level,
    )];
    while let Some((ptrs, level)) = stack.pop() {
        for p in ptrs.iter().filter(|p| p.member == sb.member_index) {
            let m = &sb.members[p.member as usize];
            let mut buf = vec![0u8; BLOCK_SIZE];
            if dev
                .read_at(m.bucket_offset(p.bucket as u64), &mut buf)
                .is_err()
            {
                continue;
            }
            out.push((*p, level));
            let mut children: Vec<Child> = Vec::new();
            if decode_node(&sb.uuid, level, &buf, |_| {}, |c| children.push(c)).is_ok() && level > 0
            {
                for c in children {
                    stack.push((c.ptrs[..c.nr_ptrs as usize].to_vec(), level - 1));
                }
            }
            break;
        }
    }
    out
}

pub fn damage(dev: &Device, seed: u64) -> Result<String, String> {
    let (sb, _) = read_super(dev)?;
    let m = sb.members[sb.member_index as usize];
    let mut rng = Rng(seed);
    let mut targets = vec![
        Target {
            what: "both superblocks".into(),
            offsets: SB_OFFSETS.to_vec(),
            len: SB_SIZE,
            crc_at: 12,
            fields: vec![
                ("nr_members", 0x2c, 4, vec![0, 17, 2]),
                ("member_index", 0x28, 4, vec![1, 16, u32::MAX as u64]),
                (
                    "bucket_size",
                    0x100 + 24 + 64 * sb.member_index as usize,
                    4,
                    vec![0, 12345, 1 << 30],
                ),
                (
                    "nbuckets",
                    0x100 + 16 + 64 * sb.member_index as usize,
                    8,
                    vec![0, u64::MAX, m.nbuckets * 2],
                ),
                (
                    "journal_start",
                    0x100 + 36 + 64 * sb.member_index as usize,
                    4,
                    vec![0, m.journal_start as u64 + 1],
                ),
                ("root level", 0x78, 1, vec![9, sb.root.level as u64 + 1]),
                ("root copies", 0x79, 1, vec![0, 5]),
                (
                    "root bucket",
                    0x78 + 20,
                    4,
                    vec![0, m.nbuckets + 5, m.journal_start as u64],
                ),
                (
                    "journal_seq",
                    0x70,
                    8,
                    vec![0, u64::MAX, sb.journal_seq + 1000],
                ),
                ("metadata_replicas", 0x30, 4, vec![0, 9]),
            ],
        },
        Target {
            what: "primary superblock".into(),
            offsets: vec![SB_OFFSETS[0]],
            len: SB_SIZE,
            crc_at: 12,
            fields: vec![("seq", 0x20, 8, vec![u64::MAX])],
        },
    ];
    let blocks = table_blocks(m.nbuckets);
    let block = rng.below(blocks);
    targets.push(Target {
        what: format!("bucket table block {block}"),
        offsets: vec![m.bucket_offset(m.table_start as u64) + block * BLOCK_SIZE as u64],
        len: BLOCK_SIZE,
        crc_at: 8,
        fields: vec![
            (
                "entry state",
                48 + 4 * rng.below(64) as usize,
                1,
                vec![9, 0],
            ),
            ("entry count", 20, 4, vec![0, 5000]),
            ("member", 12, 4, vec![7]),
            ("block number", 16, 4, vec![block + 1]),
        ],
    });
    // Journal entries present on this member.
    let jlen = m.journal_buckets as usize * m.bucket_size as usize;
    let mut journal = vec![0u8; jlen];
    dev.read_at(m.bucket_offset(m.journal_start as u64), &mut journal)?;
    let mut entries = Vec::new();
    let mut off = 0;
    while off + BLOCK_SIZE <= jlen {
        match decode_header(&sb.uuid, &journal[off..off + BLOCK_SIZE]) {
            Ok(h) => {
                entries.push((off, h));
                off += h.blocks as usize * BLOCK_SIZE;
            }
            Err(_) => off += BLOCK_SIZE,
        }
    }
    if !entries.is_empty() {
        let (off, h) = entries[rng.below(entries.len() as u64) as usize];
        let first_update = 64 + 16 * h.nr_keys as usize;
        let mut fields = vec![
            ("seq", 16, 8, vec![0, h.seq + 1000, u64::MAX]),
            ("length", 12, 4, vec![0, 17, h.blocks as u64 + 1]),
            ("key count", 40, 4, vec![u32::MAX as u64, 100_000]),
        ];
        if h.nr_updates > 0 {
            fields.push(("update member", first_update, 4, vec![7]));
            fields.push((
                "update bucket",
                first_update + 4,
                4,
                vec![0, m.nbuckets + 1, sb.root.ptrs[0].bucket as u64],
            ));
            fields.push(("update state", first_update + 8, 1, vec![9, 3]));
        }
        targets.push(Target {
            what: format!("journal entry seq {}", h.seq),
            offsets: vec![m.bucket_offset(m.journal_start as u64) + off as u64],
            len: h.blocks as usize * BLOCK_SIZE,
            crc_at: 8,
            fields,
        });
    }
    let nodes = node_ptrs(dev, &sb);
    if !nodes.is_empty() {
        let (p, level) = nodes[rng.below(nodes.len() as u64) as usize];
        let mut fields = vec![
            ("level", 12, 1, vec![level as u64 + 1, 9]),
            ("key count", 14, 2, vec![300, 0xffff]),
            ("uuid", 24, 1, vec![sb.uuid[0] as u64 ^ 1]),
            ("first key", 64, 8, vec![u64::MAX]),
        ];
        if level > 0 {
            fields.push(("child copies", 64 + 8, 4, vec![0, 9]));
            fields.push((
                "child bucket",
                64 + 20,
                4,
                vec![0, m.nbuckets + 3, p.bucket as u64],
            ));
            fields.push(("child member", 64 + 16, 4, vec![3]));
        }
        targets.push(Target {
            what: format!("level {level} btree node at bucket {}", p.bucket),
            offsets: vec![m.bucket_offset(p.bucket as u64)],
            len: BLOCK_SIZE,
            crc_at: 8,
            fields,
        });
    }

    let t = &targets[rng.below(targets.len() as u64) as usize];
    let kind = rng.below(4);
    let mut done = String::new();
    let field = &t.fields[rng.below(t.fields.len() as u64) as usize];
    let value = field.3[rng.below(field.3.len() as u64) as usize];
    let bit = rng.below(t.len as u64 * 8) as usize;
    for &o in &t.offsets {
        let mut b = vec![0u8; t.len];
        dev.read_at(o, &mut b)?;
        match kind {
            0 => {
                b[bit / 8] ^= 1 << (bit % 8);
                done = format!("{}: bit {bit} flipped", t.what);
            }
            1 => {
                b[..BLOCK_SIZE.min(t.len)].fill(0);
                done = format!("{}: first block zeroed", t.what);
            }
            2 => {
                let half = t.len / 2;
                b[half..].fill(0);
                done = format!("{}: torn (tail half zeroed)", t.what);
            }
            _ => {
                put(&mut b, field.1, field.2, value);
                let crc = block_crc(&b, t.crc_at);
                b[t.crc_at..t.crc_at + 4].copy_from_slice(&crc.to_le_bytes());
                done = format!(
                    "{}: {} set to {value} (checksum recomputed)",
                    t.what, field.0
                );
            }
        }
        dev.write_at(o, &b)?;
    }
    dev.sync()?;
    Ok(done)
}

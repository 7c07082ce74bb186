//! `debug damage`: damage one piece of metadata of a single-member filesystem, chosen and
//! done by a seeded generator, so the kernel's checks can be exercised and a failure
//! reproduced from its seed.
//!
//! Classes (one is chosen uniformly, then one of its variants; `--class` narrows the choice
//! to one class or variant, named as printed):
//! - `superblocks`, `primary-superblock`, `table`, `journal-entry`, `btree-node`: one block
//!   damaged. Kinds: a flipped bit, a zeroed block, the tail half zeroed (a torn write), or a
//!   field set to a wrong value (length, offset, count, level, sequence number, pointer) with
//!   the checksum recomputed, so the field check rather than the checksum must catch it.
//! - `stray-copy/{second,first}/WHERE`: an interior node's child gets one more copy pointer,
//!   after (or before) the good one, pointing WHERE: into the superblock, bucket table or
//!   journal area, just below `first_bucket`, beyond the device, at a missing member, at a
//!   bucket in range that holds no copy of that node, at another node, or at the good copy's
//!   own bucket; a journal entry with keys in that child's range is appended, so the replay
//!   rewrites the child and the commit frees its old copies.
//! - `root-stray/WHERE`: the same for the superblock's root pointers (both copies).
//! - `seq-limit/...`: sequence numbers at or near the largest the superblock accepts: every
//!   journal entry and `journal_seq` shifted so the last entry to replay lands `d` below
//!   `MAX_SEQ` (or at `u64::MAX`), or the superblock's own `seq` or the root's `node_seq` one
//!   below it, with a journal entry to replay so the mount must commit.
//! - `journal-free/WHAT`: an appended journal entry (with keys, so the replay allocates nodes)
//!   frees buckets to `free`: data, free, `need_discard` buckets, or ones it may not (a btree
//!   node, a metadata bucket, a bucket beyond the device).

use crate::device::Device;
use crate::fields::{field, member, offset_in, put, sb as sb_field};
use crate::show::read_super;
use bucketfs_core::btree_format::{decode_node, encode_interior, Child, NodeHeaderDisk};
use bucketfs_core::bucket_table::{
    decode_block, table_blocks, BucketState, TableBlockId, TableHeaderDisk,
};
use bucketfs_core::crc32c::block_crc;
use bucketfs_core::journal_format::{
    decode_header, encode_entry, BucketUpdate, EntryHeader, EntryHeaderDisk, Key, UpdateDisk,
    MAX_ENTRY_BLOCKS,
};
use bucketfs_core::layout::{Field, FieldDesc};
use bucketfs_core::options::Opt;
use bucketfs_core::superblock::{
    BtreeRoot, Member, NodePtr, SbDisk, Superblock, BLOCK_SIZE, MAX_SEQ, SB_OFFSETS, SB_SIZE,
};

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

/// A field to damage: (name, offset within the block, width in bytes, wrong values to pick from).
type DamageField = (&'static str, usize, usize, Vec<u64>);

/// A [`DamageField`] called `name` at `(offset, width)`.
fn f(name: &'static str, (off, width): (usize, usize), values: Vec<u64>) -> DamageField {
    (name, off, width, values)
}

/// A damageable block: where it is, how big, where its checksum sits.
struct Target {
    class: &'static str,
    what: String,
    offsets: Vec<u64>,
    len: usize,
    crc_at: usize,
    fields: Vec<DamageField>,
}

/// (offset, width) of field `name` of a structure with fields `fields`, at `base`.
fn spot(fields: &[FieldDesc], base: usize, name: &str) -> (usize, usize) {
    let r = field(fields, base, name);
    (r.start, r.len())
}

/// (offset, width) of field `name` of the `i`th [`NodePtr`] of an array of them at `base`.
fn ptr_spot(base: usize, i: usize, name: &str) -> (usize, usize) {
    spot(NodePtr::FIELDS, base + i * NodePtr::SIZE, name)
}

/// (offset, width) of field `name` of member `i` in the superblock.
fn member_spot(i: usize, name: &str) -> (usize, usize) {
    let r = member(i, name);
    (r.start, r.len())
}

/// (offset, width) of field `name` of the superblock.
fn sb_spot(name: &str) -> (usize, usize) {
    let r = sb_field(name);
    (r.start, r.len())
}

/// (offset, 1): the first byte of a field, for damage narrower than the field.
fn first_byte((off, _): (usize, usize)) -> (usize, usize) {
    (off, 1)
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

pub fn damage(dev: &Device, seed: u64, class: Option<&str>) -> Result<String, String> {
    let (sb, _) = read_super(dev)?;
    let m = sb.members[sb.member_index as usize];
    let mut rng = Rng(seed);
    let me = sb.member_index as usize;
    let root = offset_in(SbDisk::FIELDS, "root");
    let root_ptrs = root + offset_in(BtreeRoot::FIELDS, "ptrs");
    let options = sb_spot("options").0;
    let replicas_slot = options + Opt::MetadataReplicas.desc().sb_slot * u32::SIZE;
    let sb_crc = sb_spot("crc").0;
    let mut targets = vec![
        Target {
            class: "superblocks",
            what: "both superblocks".into(),
            offsets: SB_OFFSETS.to_vec(),
            len: SB_SIZE,
            crc_at: sb_crc,
            fields: vec![
                f("nr_members", sb_spot("nr_members"), vec![0, 17, 2]),
                f(
                    "member_index",
                    sb_spot("member_index"),
                    vec![1, 16, u32::MAX as u64],
                ),
                f(
                    "bucket_size",
                    member_spot(me, "bucket_size"),
                    vec![0, 12345, 1 << 30],
                ),
                f(
                    "nbuckets",
                    member_spot(me, "nbuckets"),
                    vec![0, u64::MAX, m.nbuckets * 2],
                ),
                f(
                    "journal_start",
                    member_spot(me, "journal_start"),
                    vec![0, m.journal_start as u64 + 1],
                ),
                f(
                    "root level",
                    spot(BtreeRoot::FIELDS, root, "level"),
                    vec![9, sb.root.level as u64 + 1],
                ),
                f(
                    "root copies",
                    spot(BtreeRoot::FIELDS, root, "nr_ptrs"),
                    vec![0, 5],
                ),
                f(
                    "root bucket",
                    ptr_spot(root_ptrs, 0, "bucket"),
                    vec![0, m.nbuckets + 5, m.journal_start as u64],
                ),
                f(
                    "journal_seq",
                    sb_spot("journal_seq"),
                    vec![0, u64::MAX, sb.journal_seq + 1000],
                ),
                f("metadata_replicas", (replicas_slot, u32::SIZE), vec![0, 9]),
            ],
        },
        Target {
            class: "primary-superblock",
            what: "primary superblock".into(),
            offsets: vec![SB_OFFSETS[0]],
            len: SB_SIZE,
            crc_at: sb_crc,
            fields: vec![f("seq", sb_spot("seq"), vec![u64::MAX])],
        },
    ];
    let blocks = table_blocks(m.nbuckets);
    let block = rng.below(blocks);
    targets.push(Target {
        class: "table",
        what: format!("bucket table block {block}"),
        offsets: vec![m.bucket_offset(m.table_start as u64) + block * BLOCK_SIZE as u64],
        len: BLOCK_SIZE,
        crc_at: offset_in(TableHeaderDisk::FIELDS, "crc"),
        fields: vec![
            // An entry's state is its low byte (see `BucketEntry::to_raw`).
            f(
                "entry state",
                (
                    TableHeaderDisk::SIZE + u32::SIZE * rng.below(64) as usize,
                    1,
                ),
                vec![9, 0],
            ),
            f(
                "entry count",
                spot(TableHeaderDisk::FIELDS, 0, "nr"),
                vec![0, 5000],
            ),
            f(
                "member",
                spot(TableHeaderDisk::FIELDS, 0, "member"),
                vec![7],
            ),
            f(
                "block number",
                spot(TableHeaderDisk::FIELDS, 0, "block"),
                vec![block + 1],
            ),
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
        let first_update = EntryHeaderDisk::SIZE + Key::SIZE * h.nr_keys as usize;
        let hdr = |name| spot(EntryHeaderDisk::FIELDS, 0, name);
        let upd = |name| spot(UpdateDisk::FIELDS, first_update, name);
        let mut fields = vec![
            f("seq", hdr("seq"), vec![0, h.seq + 1000, u64::MAX]),
            f("length", hdr("blocks"), vec![0, 17, h.blocks as u64 + 1]),
            f("key count", hdr("nr_keys"), vec![u32::MAX as u64, 100_000]),
        ];
        if h.nr_updates > 0 {
            fields.push(f("update member", upd("member"), vec![7]));
            fields.push(f(
                "update bucket",
                upd("bucket"),
                vec![0, m.nbuckets + 1, sb.root.ptrs[0].bucket as u64],
            ));
            fields.push(f("update state", upd("state"), vec![9, 3]));
        }
        targets.push(Target {
            class: "journal-entry",
            what: format!("journal entry seq {}", h.seq),
            offsets: vec![m.bucket_offset(m.journal_start as u64) + off as u64],
            len: h.blocks as usize * BLOCK_SIZE,
            crc_at: offset_in(EntryHeaderDisk::FIELDS, "crc"),
            fields,
        });
    }
    let nodes = node_ptrs(dev, &sb);
    if !nodes.is_empty() {
        let (p, level) = nodes[rng.below(nodes.len() as u64) as usize];
        let node = |name| spot(NodeHeaderDisk::FIELDS, 0, name);
        // The first entry: a key in a leaf, a child in an interior node (both begin with it).
        let first = NodeHeaderDisk::SIZE;
        let child = |name| spot(Child::FIELDS, first, name);
        let child_ptrs = first + offset_in(Child::FIELDS, "ptrs");
        let mut fields = vec![
            f("level", node("level"), vec![level as u64 + 1, 9]),
            f("key count", node("nr"), vec![300, 0xffff]),
            f(
                "uuid",
                first_byte(node("uuid")),
                vec![sb.uuid[0] as u64 ^ 1],
            ),
            f("first key", spot(Key::FIELDS, first, "key"), vec![u64::MAX]),
        ];
        if level > 0 {
            fields.push(f("child copies", child("nr_ptrs"), vec![0, 9]));
            fields.push(f(
                "child bucket",
                ptr_spot(child_ptrs, 0, "bucket"),
                vec![0, m.nbuckets + 3, p.bucket as u64],
            ));
            fields.push(f(
                "child member",
                ptr_spot(child_ptrs, 0, "member"),
                vec![3],
            ));
        }
        targets.push(Target {
            class: "btree-node",
            what: format!("level {level} btree node at bucket {}", p.bucket),
            offsets: vec![m.bucket_offset(p.bucket as u64)],
            len: BLOCK_SIZE,
            crc_at: offset_in(NodeHeaderDisk::FIELDS, "crc"),
            fields,
        });
    }

    // Every damage the generator can do here: (class/variant, what).
    let mut candidates: Vec<(String, Action)> = Vec::new();
    for (i, name) in targets.iter().map(|t| t.class).enumerate() {
        candidates.push((name.to_string(), Action::Block(i)));
    }
    compound_candidates(dev, &sb, &nodes, &mut candidates)?;
    if let Some(c) = class {
        candidates.retain(|(n, _)| n == c || n.starts_with(&format!("{c}/")));
        if candidates.is_empty() {
            return Err(format!("no damage of class {c} applies to this image"));
        }
    }
    let mut classes: Vec<&str> = candidates
        .iter()
        .map(|(n, _)| n.split('/').next().unwrap_or(n))
        .collect();
    classes.dedup();
    let chosen = classes[rng.below(classes.len() as u64) as usize].to_string();
    let variants: Vec<&(String, Action)> = candidates
        .iter()
        .filter(|(n, _)| n.split('/').next() == Some(chosen.as_str()))
        .collect();
    let (name, action) = variants[rng.below(variants.len() as u64) as usize];
    let t = match action {
        Action::Block(i) => &targets[*i],
        other => {
            let done = compound(dev, &sb, other, &mut rng)?;
            dev.sync()?;
            return Ok(format!("{name}: {done}"));
        }
    };
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
                block_crc(&b, t.crc_at).write(&mut b[t.crc_at..]);
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

/// Where a stray copy pointer points.
#[derive(Clone, Copy, Debug)]
enum StrayAt {
    /// Bucket 1: reserved area and superblocks.
    Superblock,
    /// The first bucket table bucket.
    Table,
    /// A journal bucket.
    Journal,
    /// The last metadata bucket, just below `first_bucket`.
    LastMetadata,
    /// Just beyond the device.
    Beyond,
    /// The largest bucket number.
    Far,
    /// A member the filesystem does not have.
    Member,
    /// An allocatable bucket that holds no copy of the node.
    InRange,
    /// A bucket of another node.
    OtherNode,
    /// The good copy's own bucket, a second time.
    Own,
}

const STRAYS: [(&str, StrayAt); 10] = [
    ("superblock", StrayAt::Superblock),
    ("table", StrayAt::Table),
    ("journal", StrayAt::Journal),
    ("last-metadata", StrayAt::LastMetadata),
    ("beyond", StrayAt::Beyond),
    ("far", StrayAt::Far),
    ("member", StrayAt::Member),
    ("in-range", StrayAt::InRange),
    ("other-node", StrayAt::OtherNode),
    ("own", StrayAt::Own),
];

/// A damage chosen from the candidates.
enum Action {
    /// One block of `targets`, damaged by a random kind.
    Block(usize),
    /// A stray copy pointer for a child of the interior node at `node`.
    StrayCopy {
        node: NodePtr,
        level: u8,
        at: StrayAt,
        first: bool,
    },
    /// A stray copy pointer for the root, in both superblocks.
    RootStray(StrayAt),
    /// Journal entries and `journal_seq` shifted so the last entry to replay is this.
    JournalSeq(u64),
    /// The superblock's `seq` set to this, with something to replay.
    SuperblockSeq(u64),
    /// The root's `node_seq` set to this, with something to replay.
    NodeSeq(u64),
    /// An appended entry frees buckets of this state (or ones it may not free) to `free`.
    JournalFree(&'static str),
}

fn compound_candidates(
    dev: &Device,
    sb: &Superblock,
    nodes: &[(NodePtr, u8)],
    out: &mut Vec<(String, Action)>,
) -> Result<(), String> {
    let _ = dev;
    for &(node, level) in nodes.iter().filter(|(_, l)| *l > 0).take(1) {
        for first in [false, true] {
            for (name, at) in STRAYS {
                let pos = if first { "first" } else { "second" };
                out.push((
                    format!("stray-copy/{pos}/{name}"),
                    Action::StrayCopy {
                        node,
                        level,
                        at,
                        first,
                    },
                ));
            }
        }
    }
    for (name, at) in STRAYS {
        out.push((format!("root-stray/{name}"), Action::RootStray(at)));
    }
    for d in [3u64, 2, 1, 0] {
        out.push((
            format!("seq-limit/journal-{d}-below"),
            Action::JournalSeq(MAX_SEQ - d),
        ));
    }
    out.push(("seq-limit/journal-max".into(), Action::JournalSeq(u64::MAX)));
    out.push((
        "seq-limit/superblock".into(),
        Action::SuperblockSeq(MAX_SEQ - 1),
    ));
    out.push(("seq-limit/node".into(), Action::NodeSeq(MAX_SEQ - 1)));
    let _ = sb;
    for what in ["data", "free", "need-discard", "node", "metadata", "beyond"] {
        out.push((format!("journal-free/{what}"), Action::JournalFree(what)));
    }
    Ok(())
}

/// The journal area of this member and the entries in it.
fn read_journal(
    dev: &Device,
    m: &Member,
    sb: &Superblock,
) -> Result<(u64, Vec<u8>, Vec<(usize, EntryHeader)>), String> {
    let at = m.bucket_offset(m.journal_start as u64);
    let mut area = vec![0u8; m.journal_buckets as usize * m.bucket_size as usize];
    dev.read_at(at, &mut area)?;
    let mut entries = Vec::new();
    let mut off = 0;
    while off + BLOCK_SIZE <= area.len() {
        match decode_header(&sb.uuid, &area[off..off + BLOCK_SIZE]) {
            Ok(h) => {
                entries.push((off, h));
                off += h.blocks as usize * BLOCK_SIZE;
            }
            Err(_) => off += BLOCK_SIZE,
        }
    }
    Ok((at, area, entries))
}

/// Appends an entry continuing the run of entries to replay; returns its sequence number.
fn append_entry(
    dev: &Device,
    sb: &Superblock,
    keys: &[Key],
    updates: &[BucketUpdate],
) -> Result<u64, String> {
    let m = sb.members[sb.member_index as usize];
    let (at, area, entries) = read_journal(dev, &m, sb)?;
    let mut seq = sb.journal_seq;
    while entries.iter().any(|(_, h)| h.seq == seq) {
        seq += 1;
    }
    let end = entries
        .iter()
        .map(|(o, h)| o + h.blocks as usize * BLOCK_SIZE)
        .max()
        .unwrap_or(0);
    let mut buf = vec![0u8; MAX_ENTRY_BLOCKS as usize * BLOCK_SIZE];
    let len = encode_entry(&sb.uuid, seq, keys, updates, &mut buf).ok_or("entry too large")?;
    if end + len > area.len() {
        return Err("no room in the journal for another entry".into());
    }
    dev.write_at(at + end as u64, &buf[..len])?;
    Ok(seq)
}

/// Changes both superblock copies with `change` and writes them back, sealed.
fn change_superblocks(dev: &Device, change: impl Fn(&mut Superblock)) -> Result<(), String> {
    for off in SB_OFFSETS {
        let mut b = vec![0u8; SB_SIZE];
        dev.read_at(off, &mut b)?;
        let mut sb = Superblock::decode(&b).map_err(|e| format!("superblock at {off}: {e:?}"))?;
        change(&mut sb);
        sb.encode(&mut b);
        dev.write_at(off, &b)?;
    }
    Ok(())
}

/// Bucket states of this member, from its table.
fn read_states(dev: &Device, sb: &Superblock) -> Result<Vec<BucketState>, String> {
    let m = sb.members[sb.member_index as usize];
    let blocks = table_blocks(m.nbuckets);
    let mut buf = vec![0u8; blocks as usize * BLOCK_SIZE];
    dev.read_at(m.bucket_offset(m.table_start as u64), &mut buf)?;
    let mut states = Vec::new();
    for block in 0..blocks as usize {
        let id = TableBlockId {
            uuid: sb.uuid,
            member: sb.member_index,
            block: block as u32,
        };
        decode_block(
            &id,
            m.nbuckets,
            &buf[block * BLOCK_SIZE..(block + 1) * BLOCK_SIZE],
            |_, e| states.push(e.state),
        )
        .map_err(|e| format!("bucket table block {block}: {e:?}"))?;
    }
    Ok(states)
}

/// Some keys no scenario writes (the scenario's keys are pseudo-random 64-bit numbers).
fn extra_keys(rng: &mut Rng, n: usize) -> Vec<Key> {
    (0..n)
        .map(|i| Key {
            key: rng.next(),
            val: 0xda3a_0000 + i as u64,
        })
        .collect()
}

fn stray_ptr(
    dev: &Device,
    sb: &Superblock,
    at: StrayAt,
    good: NodePtr,
    rng: &mut Rng,
) -> Result<NodePtr, String> {
    let me = sb.member_index;
    let m = sb.members[me as usize];
    let bucket = match at {
        StrayAt::Superblock => 1,
        StrayAt::Table => m.table_start,
        StrayAt::Journal => m.journal_start + rng.below(m.journal_buckets as u64) as u32,
        StrayAt::LastMetadata => m.first_bucket - 1,
        StrayAt::Beyond => (m.nbuckets + rng.below(4)) as u32,
        StrayAt::Far => u32::MAX,
        StrayAt::Member => {
            return Ok(NodePtr {
                member: sb.nr_members,
                bucket: m.first_bucket,
            })
        }
        StrayAt::InRange => {
            let states = read_states(dev, sb)?;
            let free: Vec<u32> = (m.first_bucket..m.nbuckets as u32)
                .filter(|&b| states.get(b as usize) == Some(&BucketState::Free))
                .collect();
            if free.is_empty() {
                m.nbuckets as u32 - 1
            } else {
                free[rng.below(free.len() as u64) as usize]
            }
        }
        StrayAt::OtherNode => {
            let others: Vec<u32> = node_ptrs(dev, sb)
                .iter()
                .map(|(p, _)| p.bucket)
                .filter(|&b| b != good.bucket)
                .collect();
            if others.is_empty() {
                good.bucket
            } else {
                others[rng.below(others.len() as u64) as usize]
            }
        }
        StrayAt::Own => good.bucket,
    };
    Ok(NodePtr { member: me, bucket })
}

fn compound(
    dev: &Device,
    sb: &Superblock,
    action: &Action,
    rng: &mut Rng,
) -> Result<String, String> {
    let m = sb.members[sb.member_index as usize];
    match *action {
        Action::Block(_) => Err("not a compound damage".into()),
        Action::StrayCopy {
            node,
            level,
            at,
            first,
        } => {
            let off = m.bucket_offset(node.bucket as u64);
            let mut b = vec![0u8; BLOCK_SIZE];
            dev.read_at(off, &mut b)?;
            let mut children: Vec<Child> = Vec::new();
            decode_node(&sb.uuid, level, &b, |_| {}, |c| children.push(c))
                .map_err(|e| format!("node at bucket {}: {e:?}", node.bucket))?;
            let i = rng.below(children.len() as u64) as usize;
            let mut c = children[i];
            let good = c.ptrs[0];
            let stray = stray_ptr(dev, sb, at, good, rng)?;
            c.nr_ptrs = 2;
            c.ptrs[0] = if first { stray } else { good };
            c.ptrs[1] = if first { good } else { stray };
            children[i] = c;
            let seq = NodeHeaderDisk::read(&b).seq;
            encode_interior(&sb.uuid, seq, level, &children, &mut b);
            dev.write_at(off, &b)?;
            // Keys in the child's range, so the replay rewrites it and frees its old copies.
            let lo = c.key;
            let hi = children.get(i + 1).map_or(u64::MAX, |n| n.key);
            let mut keys: Vec<Key> = (1..=5u64)
                .map(|j| lo.saturating_add(j))
                .filter(|&k| k < hi)
                .map(|k| Key {
                    key: k,
                    val: k ^ 0x5a5a,
                })
                .collect();
            if keys.is_empty() {
                keys.push(Key { key: lo, val: 7 });
            }
            let jseq = append_entry(dev, sb, &keys, &[])?;
            Ok(format!(
                "level {level} node at bucket {}: child {i} copies now {{{}, {}}} (stray member {} \
                 bucket {}); journal entry {jseq} appended with {} key(s) in its range",
                node.bucket,
                c.ptrs[0].bucket,
                c.ptrs[1].bucket,
                stray.member,
                stray.bucket,
                keys.len()
            ))
        }
        Action::RootStray(at) => {
            let good = sb.root.ptrs[0];
            let stray = stray_ptr(dev, sb, at, good, rng)?;
            change_superblocks(dev, |s| {
                s.root.nr_ptrs = 2;
                s.root.ptrs[1] = stray;
            })?;
            Ok(format!(
                "root copies now {{{}, member {} bucket {}}}",
                good.bucket, stray.member, stray.bucket
            ))
        }
        Action::JournalSeq(target) => {
            let (_, _, entries) = read_journal(dev, &m, sb)?;
            if !entries.iter().any(|(_, h)| h.seq >= sb.journal_seq) {
                append_entry(dev, sb, &extra_keys(rng, 20), &[])?;
            }
            let (at, mut area, entries) = read_journal(dev, &m, sb)?;
            let last = entries.iter().map(|(_, h)| h.seq).max().unwrap_or(0);
            let delta = target - last;
            let seq_at = offset_in(EntryHeaderDisk::FIELDS, "seq");
            let crc_at = offset_in(EntryHeaderDisk::FIELDS, "crc");
            for (o, h) in &entries {
                let e = &mut area[*o..*o + h.blocks as usize * BLOCK_SIZE];
                (h.seq + delta).write(&mut e[seq_at..]);
                block_crc(e, crc_at).write(&mut e[crc_at..]);
            }
            dev.write_at(at, &area)?;
            let journal_seq = sb.journal_seq + delta;
            change_superblocks(dev, |s| s.journal_seq = journal_seq)?;
            Ok(format!(
                "{} journal entries shifted by {delta}: the last is {target}, journal_seq \
                 {journal_seq}",
                entries.len()
            ))
        }
        Action::SuperblockSeq(v) | Action::NodeSeq(v) => {
            let (_, _, entries) = read_journal(dev, &m, sb)?;
            if !entries.iter().any(|(_, h)| h.seq >= sb.journal_seq) {
                append_entry(dev, sb, &extra_keys(rng, 20), &[])?;
            }
            let node = matches!(action, Action::NodeSeq(_));
            change_superblocks(dev, |s| {
                if node {
                    s.root.node_seq = v;
                } else {
                    s.seq = v;
                }
            })?;
            Ok(format!(
                "{} set to {v}, with journal entries to replay",
                if node {
                    "root node_seq"
                } else {
                    "superblock seq"
                }
            ))
        }
        Action::JournalFree(what) => {
            let states = read_states(dev, sb)?;
            let of = |st: BucketState| -> Vec<u32> {
                (m.first_bucket..m.nbuckets as u32)
                    .filter(|&b| states.get(b as usize) == Some(&st))
                    .take(3)
                    .collect()
            };
            let buckets = match what {
                "data" => of(BucketState::Data),
                "free" => of(BucketState::Free),
                "need-discard" => of(BucketState::NeedDiscard),
                "node" => node_ptrs(dev, sb)
                    .iter()
                    .map(|(p, _)| p.bucket)
                    .take(1)
                    .collect(),
                "metadata" => vec![1, m.journal_start],
                _ => vec![(m.nbuckets + 1) as u32],
            };
            let updates: Vec<BucketUpdate> = buckets
                .iter()
                .map(|&bucket| BucketUpdate {
                    member: sb.member_index,
                    bucket,
                    state: BucketState::Free,
                    gen: 0,
                })
                .collect();
            let seq = append_entry(dev, sb, &extra_keys(rng, 300), &updates)?;
            Ok(format!(
                "journal entry {seq} appended: 300 keys, frees buckets {buckets:?} to free"
            ))
        }
    }
}

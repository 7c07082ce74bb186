//! `debug damage`: damage one piece of metadata of a single-member filesystem, chosen and
//! done by a seeded generator, so the kernel's checks can be exercised and a failure
//! reproduced from its seed.
//!
//! Classes (one is chosen uniformly, then one of its variants; `--class` narrows the choice
//! to one class or variant, named as printed; `--list` prints those that apply to an image):
//! - `superblocks`, `primary-superblock`, `table`, `journal-entry`, `btree-node`: one block
//!   damaged. Kinds: a flipped bit, a zeroed block, the tail half zeroed (a torn write), or a
//!   field set to a wrong value (length, offset, count, `bytes`/`key_bytes`, level, sequence
//!   number, pointer, the first record's kind, flags, length, inode or offset, the first
//!   child's position) with the checksum recomputed, so the field check rather than the
//!   checksum must catch it.
//! - `leaf-record/WHAT`: a leaf rewritten (checksum recomputed) with a record inserted at its
//!   place that the leaf decoder must refuse: a bad value (`bad-value/...`: a directory entry
//!   whose name holds '/' or NUL or is "." or too long for its header, an inode with nlink 0,
//!   an unknown type or nanoseconds past a second, a map value of 4 bytes, ...), a bad header
//!   (unknown kind or flags, a deletion with a value, a length past `MAX_VAL`), a deletion
//!   (which only a journal entry may hold), or records out of order or repeated.
//! - `interior/out-of-order`: two children of an interior node swapped.
//! - `journal-record/WHAT`: an appended journal entry (map keys to replay and one bad record,
//!   checksum recomputed) whose bad record the entry decoder must refuse: the same bad values
//!   and headers as `leaf-record`.
//! - `journal-ns/WHAT`: an appended, valid journal entry whose records leave the namespace
//!   odd but the format intact: the root inode deleted, a deletion of a key that is not there,
//!   a directory entry naming no inode, an inode no name points at, a key put, deleted and put
//!   again in one entry.
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
use crate::scenario::{map_records, MapKey};
use crate::show::read_super;
use bucketfs_core::bkey::{
    decode_at, record_size, KeyHeaderDisk, Kind, Pos, FLAG_DELETE, KEY_HEADER, MAX_VAL,
};
use bucketfs_core::btree_format::{
    decode_node, leaf_body, write_interior_raw, Child, NodeHeaderDisk, LEAF_BYTES,
};
use bucketfs_core::bucket_table::{
    decode_block, table_blocks, BucketState, TableBlockId, TableHeaderDisk,
};
use bucketfs_core::crc32c::block_crc;
use bucketfs_core::journal_format::{
    decode_header, encode_entry, BucketUpdate, EntryHeader, EntryHeaderDisk, UpdateDisk,
    MAX_ENTRY_BLOCKS,
};
use bucketfs_core::layout::{Field, FieldDesc};
use bucketfs_core::namespace_format::{
    dirent_hash, dirent_pos, hash_seed, inode_pos, symlink_pos, DirentHeaderDisk, InodeDisk,
    INODE_SIZE, ROOT_INO, S_IFDIR, S_IFREG,
};
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

/// The damage classes and variants that apply to the image on `dev`, one per line, as
/// `--class` takes them.
pub fn list(dev: &Device) -> Result<String, String> {
    damage_or_list(dev, 1, None, true)
}

/// Damages the image on `dev` as the generator seeded with `seed` chooses (among `class`, a
/// class or class/variant, if given); returns what it did.
pub fn damage(dev: &Device, seed: u64, class: Option<&str>) -> Result<String, String> {
    damage_or_list(dev, seed, class, false)
}

fn damage_or_list(
    dev: &Device,
    seed: u64,
    class: Option<&str>,
    list: bool,
) -> Result<String, String> {
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
        let first_update = EntryHeaderDisk::SIZE + h.key_bytes as usize;
        let hdr = |name| spot(EntryHeaderDisk::FIELDS, 0, name);
        let upd = |name| spot(UpdateDisk::FIELDS, first_update, name);
        let (nr, kb) = (h.nr_keys as u64, h.key_bytes as u64);
        let mut fields = vec![
            f("seq", hdr("seq"), vec![0, h.seq + 1000, u64::MAX]),
            f("length", hdr("blocks"), vec![0, 17, h.blocks as u64 + 1]),
            f(
                "key count",
                hdr("nr_keys"),
                vec![u32::MAX as u64, 100_000, nr + 1, nr.saturating_sub(1)],
            ),
            f(
                "key bytes",
                hdr("key_bytes"),
                vec![
                    u32::MAX as u64,
                    kb + 8,
                    kb + 4,
                    kb.saturating_sub(8),
                    if nr > 0 { 0 } else { 24 },
                ],
            ),
        ];
        if h.nr_keys > 0 {
            record_fields(EntryHeaderDisk::SIZE, &mut fields);
        }
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
        let mut head = vec![0u8; BLOCK_SIZE];
        dev.read_at(m.bucket_offset(p.bucket as u64), &mut head)?;
        let hd = NodeHeaderDisk::read(&head);
        let (nr, bytes) = (hd.nr as u64, hd.bytes as u64);
        // The first entry: a record in a leaf, a child in an interior node.
        let first = NodeHeaderDisk::SIZE;
        let child = |name| spot(Child::FIELDS, first, name);
        let child_ptrs = first + offset_in(Child::FIELDS, "ptrs");
        let mut fields = vec![
            f("level", node("level"), vec![level as u64 + 1, 9]),
            f(
                "key count",
                node("nr"),
                vec![300, 0xffff, nr + 1, nr.saturating_sub(1)],
            ),
            f(
                "bytes",
                node("bytes"),
                vec![
                    0,
                    bytes + 8,
                    bytes.saturating_sub(8),
                    bytes + Child::SIZE as u64,
                    LEAF_BYTES as u64 + 8,
                    u32::MAX as u64,
                ],
            ),
            f(
                "uuid",
                first_byte(node("uuid")),
                vec![sb.uuid[0] as u64 ^ 1],
            ),
        ];
        if level == 0 {
            if nr > 0 {
                record_fields(first, &mut fields);
            }
        } else {
            fields.push(f("first child kind", child("kind"), vec![0, 5, 0xff]));
            fields.push(f("first child offset", child("off"), vec![u64::MAX]));
            fields.push(f("first child inode", child("ino"), vec![u64::MAX]));
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
    if list {
        let names: Vec<&str> = candidates.iter().map(|(n, _)| n.as_str()).collect();
        return Ok(names.join("\n"));
    }
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
    /// A leaf rewritten with a record it may not hold (see [`LEAF_ONLY`], [`BAD_RECORDS`]).
    Leaf(&'static str),
    /// Two children of an interior node swapped.
    InteriorOrder,
    /// An appended journal entry with a record of [`BAD_RECORDS`].
    JournalRecord(&'static str),
    /// An appended valid journal entry that leaves the namespace odd (see [`NS_ODD`]).
    JournalNs(&'static str),
}

/// Records every decoder must refuse, by name: a bad value for its kind, or a bad header.
const BAD_RECORDS: [&str; 21] = [
    "bad-value/dirent-slash",
    "bad-value/dirent-nul",
    "bad-value/dirent-dotdot",
    "bad-value/dirent-name-len",
    "bad-value/dirent-ino-0",
    "bad-value/dirent-type",
    "bad-value/dirent-slot",
    "bad-value/inode-nlink-0",
    "bad-value/inode-type",
    "bad-value/inode-nsec",
    "bad-value/inode-number-0",
    "bad-value/inode-short",
    "bad-value/inode-offset",
    "bad-value/symlink-empty",
    "bad-value/symlink-piece",
    "bad-value/map-short",
    "bad-value/map-inode",
    "bad-header/kind",
    "bad-header/flags",
    "bad-header/deletion-with-value",
    "bad-header/len",
];

/// Damage only a leaf can have: a deletion (valid in a journal entry), records out of order or
/// repeated.
const LEAF_ONLY: [&str; 3] = ["deletion", "out-of-order", "duplicate"];

/// Valid journal entries that leave the namespace odd.
const NS_ODD: [&str; 5] = [
    "delete-root",
    "delete-missing",
    "dangling-dirent",
    "orphan-inode",
    "put-delete-put",
];

/// The bytes of a record with this header and value (the value padded with zeros to 8 bytes;
/// `len` is written as given, whatever the value's length).
fn raw_record(kind: u8, flags: u8, len: u16, ino: u64, off: u64, val: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; record_size(val.len())];
    KeyHeaderDisk {
        kind,
        flags,
        len,
        ino,
        off,
    }
    .write(&mut b);
    b[KEY_HEADER..KEY_HEADER + val.len()].copy_from_slice(val);
    b
}

/// A record with a good header and value `val` at `pos`.
fn record_at(pos: Pos, val: &[u8]) -> Vec<u8> {
    raw_record(pos.kind, 0, val.len() as u16, pos.ino, pos.off, val)
}

/// An inode value: a regular file (or `mode`), one link, unless changed by `change`.
fn inode_val(change: impl FnOnce(&mut InodeDisk)) -> Vec<u8> {
    let mut i = InodeDisk {
        mode: S_IFREG | 0o644,
        nlink: 1,
        ..Default::default()
    };
    change(&mut i);
    let mut v = vec![0u8; INODE_SIZE];
    i.write(&mut v);
    v
}

/// A directory entry value written field by field (so a bad one can be written too).
fn dirent_val(ino: u64, dtype: u8, name_len: u8, name: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; DirentHeaderDisk::SIZE];
    DirentHeaderDisk {
        ino,
        dtype,
        name_len,
    }
    .write(&mut v);
    v.extend_from_slice(name);
    v
}

/// The record [`BAD_RECORDS`] names `what` (its position, for sorting, and its bytes).
fn bad_record(sb: &Superblock, what: &str) -> Option<(Pos, Vec<u8>)> {
    let seed = hash_seed(&sb.uuid);
    let dt_reg = (S_IFREG >> 12) as u8;
    let dirent = |name: &[u8], v: Vec<u8>| {
        let pos = dirent_pos(ROOT_INO, dirent_hash(seed, name));
        (pos, record_at(pos, &v))
    };
    let named = |name: &[u8]| dirent(name, dirent_val(2, dt_reg, name.len() as u8, name));
    let inode = |ino: u64, v: Vec<u8>| (inode_pos(ino), record_at(inode_pos(ino), &v));
    let map = Pos::map(0x0bad_0000_0000_0001);
    Some(match what {
        "bad-value/dirent-slash" => named(b"a/b"),
        "bad-value/dirent-nul" => named(b"a\0b"),
        "bad-value/dirent-dotdot" => named(b".."),
        "bad-value/dirent-name-len" => dirent(b"abc", dirent_val(2, dt_reg, 5, b"abc")),
        "bad-value/dirent-ino-0" => dirent(b"zero", dirent_val(0, dt_reg, 4, b"zero")),
        "bad-value/dirent-type" => dirent(b"type", dirent_val(2, 3, 4, b"type")),
        "bad-value/dirent-slot" => {
            let pos = dirent_pos(ROOT_INO, bucketfs_core::namespace_format::HASH_LIMIT);
            (pos, record_at(pos, &dirent_val(2, dt_reg, 4, b"slot")))
        }
        "bad-value/inode-nlink-0" => inode(2, inode_val(|i| i.nlink = 0)),
        "bad-value/inode-type" => inode(2, inode_val(|i| i.mode = 0o644)),
        "bad-value/inode-nsec" => inode(2, inode_val(|i| i.mtime_nsec = 1_000_000_000)),
        "bad-value/inode-number-0" => inode(0, inode_val(|_| {})),
        "bad-value/inode-short" => inode(2, inode_val(|_| {})[..32].to_vec()),
        "bad-value/inode-offset" => {
            let pos = Pos::new(Kind::Inode, 2, 1);
            (
                pos,
                record_at(pos, &inode_val(|i| i.mode = S_IFDIR | 0o755)),
            )
        }
        "bad-value/symlink-empty" => (symlink_pos(2, 0), record_at(symlink_pos(2, 0), &[])),
        "bad-value/symlink-piece" => (symlink_pos(2, 4), record_at(symlink_pos(2, 4), b"x")),
        "bad-value/map-short" => (map, record_at(map, &[1, 2, 3, 4])),
        "bad-value/map-inode" => {
            let pos = Pos { ino: 1, ..map };
            (pos, record_at(pos, &7u64.to_le_bytes()))
        }
        "bad-header/kind" => {
            let pos = Pos {
                kind: 9,
                ino: 0,
                off: 1,
            };
            (pos, record_at(pos, &7u64.to_le_bytes()))
        }
        "bad-header/flags" => (map, raw_record(map.kind, 2, 8, 0, map.off, &[7; 8])),
        "bad-header/deletion-with-value" => (
            map,
            raw_record(map.kind, FLAG_DELETE, 8, 0, map.off, &[7; 8]),
        ),
        // Only the header: the decoder refuses the length before it looks for the value.
        "bad-header/len" => (
            map,
            raw_record(map.kind, 0, MAX_VAL as u16 + 1, 0, map.off, &[]),
        ),
        _ => return None,
    })
}

/// The records of the leaf at `p` (level 0): (position, bytes) each.
fn leaf_records(dev: &Device, sb: &Superblock, p: NodePtr) -> Result<Vec<(Pos, Vec<u8>)>, String> {
    let m = sb.members[sb.member_index as usize];
    let mut b = vec![0u8; BLOCK_SIZE];
    dev.read_at(m.bucket_offset(p.bucket as u64), &mut b)?;
    let h = decode_node(&sb.uuid, 0, &b, |_| {}, |_| {})
        .map_err(|e| format!("leaf at bucket {}: {e:?}", p.bucket))?;
    let body = leaf_body(&b, &h);
    let mut out = Vec::new();
    let mut at = 0;
    for _ in 0..h.nr {
        let (k, next) = decode_at(body, at).map_err(|e| format!("record at {at}: {e:?}"))?;
        out.push((k.pos, body[at..next].to_vec()));
        at = next;
    }
    Ok(out)
}

/// Writes the leaf at `p` again holding `records` as they are (nothing checked: the point is
/// to write what the decoder must refuse), with its header's counts and checksum to match.
/// Records are dropped from the front, except record `keep`, until they fit.
fn write_raw_leaf(
    dev: &Device,
    sb: &Superblock,
    p: NodePtr,
    mut records: Vec<(Pos, Vec<u8>)>,
    mut keep: usize,
) -> Result<usize, String> {
    let m = sb.members[sb.member_index as usize];
    let off = m.bucket_offset(p.bucket as u64);
    let mut b = vec![0u8; BLOCK_SIZE];
    dev.read_at(off, &mut b)?;
    let mut dropped = 0;
    while records.iter().map(|r| r.1.len()).sum::<usize>() > LEAF_BYTES && records.len() > 1 {
        let i = if keep == 0 { 1 } else { 0 };
        records.remove(i);
        if i < keep {
            keep -= 1;
        }
        dropped += 1;
    }
    let mut h = NodeHeaderDisk::read(&b);
    let body: Vec<u8> = records.iter().flat_map(|r| r.1.iter().copied()).collect();
    h.nr = records.len() as u16;
    h.bytes = body.len() as u32;
    b.fill(0);
    h.write(&mut b);
    b[NodeHeaderDisk::SIZE..NodeHeaderDisk::SIZE + body.len()].copy_from_slice(&body);
    let crc_at = offset_in(NodeHeaderDisk::FIELDS, "crc");
    block_crc(&b, crc_at).write(&mut b[crc_at..]);
    dev.write_at(off, &b)?;
    Ok(dropped)
}

/// Appends a journal entry holding `keys` as map records, then `extra` (records as they are,
/// `nr_extra` of them, not checked), with a header and checksum to match.
fn append_raw_entry(
    dev: &Device,
    sb: &Superblock,
    keys: &[MapKey],
    nr_extra: usize,
    extra: &[u8],
) -> Result<u64, String> {
    let (nr, mut records) = map_records(keys, &[]);
    records.extend_from_slice(extra);
    let nr = nr + nr_extra;
    append_with(dev, sb, |seq, buf| {
        let blocks = bucketfs_core::journal_format::entry_blocks(records.len(), 0)?;
        let b = buf.get_mut(..blocks as usize * BLOCK_SIZE)?;
        b.fill(0);
        EntryHeaderDisk {
            magic: bucketfs_core::journal_format::JOURNAL_MAGIC,
            crc: 0,
            blocks,
            seq,
            uuid: sb.uuid,
            nr_keys: nr as u32,
            nr_updates: 0,
            key_bytes: records.len() as u32,
        }
        .write(b);
        b[EntryHeaderDisk::SIZE..EntryHeaderDisk::SIZE + records.len()].copy_from_slice(&records);
        let crc_at = offset_in(EntryHeaderDisk::FIELDS, "crc");
        block_crc(b, crc_at).write(&mut b[crc_at..]);
        Some(b.len())
    })
}

/// Damage fields of the record whose header is at `at`: its kind, flags, length, inode and
/// offset.
fn record_fields(at: usize, fields: &mut Vec<DamageField>) {
    let r = |name| spot(KeyHeaderDisk::FIELDS, at, name);
    fields.push(f("first record kind", r("kind"), vec![0, 5, 0xff]));
    fields.push(f(
        "first record flags",
        r("flags"),
        vec![FLAG_DELETE as u64, 2, 0x80],
    ));
    fields.push(f(
        "first record length",
        r("len"),
        vec![0, 4, 9, MAX_VAL as u64 + 1, 0xffff],
    ));
    fields.push(f(
        "first record inode",
        r("ino"),
        vec![0, 1 << 40, u64::MAX],
    ));
    fields.push(f("first record offset", r("off"), vec![u64::MAX]));
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
    if nodes.iter().any(|(_, l)| *l == 0) {
        for what in BAD_RECORDS.into_iter().chain(LEAF_ONLY) {
            out.push((format!("leaf-record/{what}"), Action::Leaf(what)));
        }
    }
    if nodes.iter().any(|(_, l)| *l > 0) {
        out.push(("interior/out-of-order".into(), Action::InteriorOrder));
    }
    for what in BAD_RECORDS {
        out.push((
            format!("journal-record/{what}"),
            Action::JournalRecord(what),
        ));
    }
    for what in NS_ODD {
        out.push((format!("journal-ns/{what}"), Action::JournalNs(what)));
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
    nr: usize,
    records: &[u8],
    updates: &[BucketUpdate],
) -> Result<u64, String> {
    append_with(dev, sb, |seq, buf| {
        encode_entry(&sb.uuid, seq, nr, records, updates, buf)
    })
}

/// Appends the entry `encode(seq, buf)` writes into `buf` (returning its length) after the
/// entries to replay; returns its sequence number.
fn append_with(
    dev: &Device,
    sb: &Superblock,
    encode: impl FnOnce(u64, &mut [u8]) -> Option<usize>,
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
    let len = encode(seq, &mut buf).ok_or("entry too large or records refused")?;
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

/// Some map keys no scenario writes (the scenario's keys are pseudo-random 64-bit numbers).
fn extra_keys(rng: &mut Rng, n: usize) -> Vec<MapKey> {
    (0..n)
        .map(|i| MapKey {
            key: rng.next(),
            val: 0xda3a_0000 + i as u64,
        })
        .collect()
}

/// Appends an entry of map keys `keys` (and bucket updates) to the journal.
fn append_keys(
    dev: &Device,
    sb: &Superblock,
    keys: &[MapKey],
    updates: &[BucketUpdate],
) -> Result<u64, String> {
    let (nr, records) = map_records(keys, &[]);
    append_entry(dev, sb, nr, &records, updates)
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
            // A child whose range holds map keys, so the appended entry's keys land in it.
            let map = Kind::Map as u8;
            let with_map: Vec<usize> = (0..children.len())
                .filter(|&i| children[i].kind <= map)
                .collect();
            if with_map.is_empty() {
                return Err(format!(
                    "node at bucket {}: no child covers map keys",
                    node.bucket
                ));
            }
            let i = with_map[rng.below(with_map.len() as u64) as usize];
            let mut c = children[i];
            let good = c.ptrs[0];
            let stray = stray_ptr(dev, sb, at, good, rng)?;
            c.nr_ptrs = 2;
            c.ptrs[0] = if first { stray } else { good };
            c.ptrs[1] = if first { good } else { stray };
            children[i] = c;
            let seq = NodeHeaderDisk::read(&b).seq;
            write_interior_raw(&sb.uuid, seq, level, &children, &mut b);
            dev.write_at(off, &b)?;
            // Keys in the child's range, so the replay rewrites it and frees its old copies.
            let lo = if c.kind == map { c.off } else { 0 };
            let hi = children.get(i + 1).map(|n| n.pos());
            let mut keys: Vec<MapKey> = (1..=5u64)
                .map(|j| lo.saturating_add(j))
                .filter(|&k| hi.is_none_or(|h| Pos::map(k) < h))
                .map(|k| MapKey {
                    key: k,
                    val: k ^ 0x5a5a,
                })
                .collect();
            if keys.is_empty() {
                keys.push(MapKey { key: lo, val: 7 });
            }
            let jseq = append_keys(dev, sb, &keys, &[])?;
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
                append_keys(dev, sb, &extra_keys(rng, 20), &[])?;
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
                append_keys(dev, sb, &extra_keys(rng, 20), &[])?;
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
        Action::Leaf(what) => {
            let leaves: Vec<NodePtr> = node_ptrs(dev, sb)
                .iter()
                .filter(|(_, l)| *l == 0)
                .map(|(p, _)| *p)
                .collect();
            if leaves.is_empty() {
                return Err("no leaf".into());
            }
            let p = leaves[rng.below(leaves.len() as u64) as usize];
            let mut records = leaf_records(dev, sb, p)?;
            let n = records.len();
            let (done, keep) = match what {
                "out-of-order" if n >= 2 => {
                    let i = rng.below(n as u64 - 1) as usize;
                    records.swap(i, i + 1);
                    (format!("records {i} and {} swapped", i + 1), i)
                }
                "out-of-order" | "duplicate" if n >= 1 => {
                    let i = rng.below(n as u64) as usize;
                    let r = records[i].clone();
                    records.insert(i + 1, r);
                    (format!("record {i} repeated"), i + 1)
                }
                "out-of-order" | "duplicate" => {
                    return Err(format!("leaf at bucket {}: no record", p.bucket));
                }
                _ => {
                    let (pos, bytes) = if what == "deletion" {
                        // A deletion of a key the leaf holds, or of a map key.
                        let pos = match records.len() {
                            0 => Pos::map(1),
                            n => records[rng.below(n as u64) as usize].0,
                        };
                        (
                            pos,
                            raw_record(pos.kind, FLAG_DELETE, 0, pos.ino, pos.off, &[]),
                        )
                    } else {
                        bad_record(sb, what).ok_or_else(|| format!("no record {what}"))?
                    };
                    let i = records.partition_point(|r| r.0 <= pos);
                    records.insert(i, (pos, bytes));
                    (format!("record {i} of {} inserted", n + 1), i)
                }
            };
            let dropped = write_raw_leaf(dev, sb, p, records, keep)?;
            Ok(format!(
                "leaf at bucket {} ({n} records): {done}{}",
                p.bucket,
                if dropped > 0 {
                    format!(", {dropped} records dropped to make room")
                } else {
                    String::new()
                }
            ))
        }
        Action::InteriorOrder => {
            let Some((node, level)) = node_ptrs(dev, sb).into_iter().find(|(_, l)| *l > 0) else {
                return Err("no interior node".into());
            };
            let off = m.bucket_offset(node.bucket as u64);
            let mut b = vec![0u8; BLOCK_SIZE];
            dev.read_at(off, &mut b)?;
            let mut children: Vec<Child> = Vec::new();
            decode_node(&sb.uuid, level, &b, |_| {}, |c| children.push(c))
                .map_err(|e| format!("node at bucket {}: {e:?}", node.bucket))?;
            let done = if children.len() >= 2 {
                let i = rng.below(children.len() as u64 - 1) as usize;
                children.swap(i, i + 1);
                format!("children {i} and {} swapped", i + 1)
            } else {
                children.push(children[0]);
                "child 0 repeated".to_string()
            };
            // Written as given (not sorted, not checked).
            let seq = NodeHeaderDisk::read(&b).seq;
            write_interior_raw(&sb.uuid, seq, level, &children, &mut b);
            dev.write_at(off, &b)?;
            Ok(format!(
                "level {level} node at bucket {}: {done}",
                node.bucket
            ))
        }
        Action::JournalRecord(what) => {
            let (_, bytes) = bad_record(sb, what).ok_or_else(|| format!("no record {what}"))?;
            let keys = extra_keys(rng, 10);
            let seq = append_raw_entry(dev, sb, &keys, 1, &bytes)?;
            Ok(format!(
                "journal entry {seq} appended: 10 map keys, then the bad record"
            ))
        }
        Action::JournalNs(what) => {
            let keys = extra_keys(rng, 10);
            let (mut nr, mut records) = map_records(&keys, &[]);
            let mut add = |pos: Pos, deleted: bool, val: &[u8]| -> Result<(), String> {
                let mut r = vec![0u8; record_size(val.len())];
                let n = bucketfs_core::bkey::encode(pos, deleted, val, &mut r)
                    .ok_or_else(|| format!("record at {pos:?} does not encode"))?;
                records.extend_from_slice(&r[..n]);
                nr += 1;
                Ok(())
            };
            let seed = hash_seed(&sb.uuid);
            match what {
                "delete-root" => add(inode_pos(ROOT_INO), true, &[])?,
                "delete-missing" => {
                    add(Pos::map(rng.next()), true, &[])?;
                    add(dirent_pos(ROOT_INO, 12345), true, &[])?;
                    add(inode_pos(4242), true, &[])?;
                }
                "dangling-dirent" => {
                    let name = b"dangling";
                    let v = dirent_val(77, (S_IFREG >> 12) as u8, name.len() as u8, name);
                    add(dirent_pos(ROOT_INO, dirent_hash(seed, name)), false, &v)?;
                }
                "orphan-inode" => add(inode_pos(77), false, &inode_val(|_| {}))?,
                _ => {
                    let k = Pos::map(rng.next());
                    add(k, false, &1u64.to_le_bytes())?;
                    add(k, true, &[])?;
                    add(k, false, &2u64.to_le_bytes())?;
                    let gone = Pos::map(rng.next());
                    add(gone, false, &3u64.to_le_bytes())?;
                    add(gone, true, &[])?;
                }
            }
            let seq = append_entry(dev, sb, nr, &records, &[])?;
            Ok(format!(
                "journal entry {seq} appended: 10 map keys, then the {what} records"
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
            let seq = append_keys(dev, sb, &extra_keys(rng, 300), &updates)?;
            Ok(format!(
                "journal entry {seq} appended: 300 keys, frees buckets {buckets:?} to free"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bucketfs_core::journal_format::{decode_entry, JournalError};
    use std::path::PathBuf;

    /// An image file holding `tests/scenarios/damage.toml` (before replay: one leaf with the
    /// root directory, journal entries with map keys and bucket updates); removed on drop.
    struct Image(PathBuf);

    impl Image {
        fn new(name: &str) -> Image {
            let p = std::env::temp_dir()
                .join(format!("bucketfs-damage-{name}-{}.img", std::process::id()));
            std::fs::File::create(&p).unwrap().set_len(8 << 20).unwrap();
            let spec = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/scenarios/damage.toml"
            );
            let mut devs = vec![Device::open(&p, true).unwrap()];
            crate::scenario::scenario_quiet(spec, &mut devs).unwrap();
            Image(p)
        }

        fn dev(&self) -> Device {
            Device::open(&self.0, true).unwrap()
        }

        /// Decodes every journal entry from `journal_seq` on, in order, until the first that
        /// is not there: each entry's result.
        fn entries(&self) -> Vec<Result<u64, JournalError>> {
            let dev = self.dev();
            let (sb, _) = read_super(&dev).unwrap();
            let m = sb.members[sb.member_index as usize];
            let (_, area, headers) = read_journal(&dev, &m, &sb).unwrap();
            headers
                .iter()
                .map(|(off, h)| {
                    let end = off + h.blocks as usize * BLOCK_SIZE;
                    decode_entry(&sb.uuid, &area[*off..end], |_| {}, |_| {}).map(|h| h.seq)
                })
                .collect()
        }
    }

    impl Drop for Image {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn every_leaf_record_damage_makes_the_leaf_refused() {
        let img = Image::new("leaf");
        let pristine = std::fs::read(&img.0).unwrap();
        assert!(crate::dump::walk(&[img.dev()]).is_ok());
        for what in BAD_RECORDS.into_iter().chain(LEAF_ONLY) {
            std::fs::write(&img.0, &pristine).unwrap();
            let class = format!("leaf-record/{what}");
            let done = damage(&img.dev(), 1, Some(&class)).unwrap();
            let walk = crate::dump::walk(&[img.dev()]);
            assert!(walk.is_err(), "{done}: the leaf still decodes");
        }
    }

    #[test]
    fn every_bad_journal_record_is_refused_at_that_record() {
        let img = Image::new("journal");
        let pristine = std::fs::read(&img.0).unwrap();
        let before = img.entries();
        assert!(before.iter().all(|e| e.is_ok()), "{before:?}");
        for what in BAD_RECORDS {
            std::fs::write(&img.0, &pristine).unwrap();
            let class = format!("journal-record/{what}");
            let done = damage(&img.dev(), 1, Some(&class)).unwrap();
            let after = img.entries();
            assert_eq!(after.len(), before.len() + 1, "{done}");
            let want = if what.starts_with("bad-header") {
                bucketfs_core::bkey::KeyError::Header
            } else {
                bucketfs_core::bkey::KeyError::Value
            };
            // The ten map keys before it decode; the bad record is refused.
            assert_eq!(
                after.last(),
                Some(&Err(JournalError::Key(10, want))),
                "{done}"
            );
        }
    }

    #[test]
    fn namespace_journal_damage_is_valid_format() {
        let img = Image::new("ns");
        let pristine = std::fs::read(&img.0).unwrap();
        for what in NS_ODD {
            std::fs::write(&img.0, &pristine).unwrap();
            let class = format!("journal-ns/{what}");
            let done = damage(&img.dev(), 1, Some(&class)).unwrap();
            let after = img.entries();
            assert!(after.iter().all(|e| e.is_ok()), "{done}: {after:?}");
        }
    }

    #[test]
    fn list_names_every_variant_and_damages_nothing() {
        let img = Image::new("list");
        let pristine = std::fs::read(&img.0).unwrap();
        let names = list(&img.dev()).unwrap();
        assert_eq!(std::fs::read(&img.0).unwrap(), pristine);
        let names: Vec<&str> = names.lines().collect();
        for what in BAD_RECORDS.into_iter().chain(LEAF_ONLY) {
            assert!(
                names.contains(&format!("leaf-record/{what}").as_str()),
                "{what}"
            );
        }
        for what in BAD_RECORDS {
            assert!(
                names.contains(&format!("journal-record/{what}").as_str()),
                "{what}"
            );
        }
        for what in NS_ODD {
            assert!(
                names.contains(&format!("journal-ns/{what}").as_str()),
                "{what}"
            );
        }
        // Every name listed applies.
        for name in names {
            std::fs::write(&img.0, &pristine).unwrap();
            damage(&img.dev(), 7, Some(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn seeded_damage_always_applies() {
        let img = Image::new("seeds");
        let pristine = std::fs::read(&img.0).unwrap();
        for seed in 1..=120 {
            std::fs::write(&img.0, &pristine).unwrap();
            if let Err(e) = damage(&img.dev(), seed, None) {
                panic!("seed {seed}: {e}");
            }
        }
    }

    #[test]
    fn record_field_damage_is_refused_or_decodes() {
        // Field damage of a journal entry's first record: whatever value is written, the
        // entry either decodes (a different but valid record) or is refused; never a panic.
        let img = Image::new("fields");
        let pristine = std::fs::read(&img.0).unwrap();
        for seed in 1..=60 {
            std::fs::write(&img.0, &pristine).unwrap();
            damage(&img.dev(), seed, Some("journal-entry")).unwrap();
            let _ = img.entries();
            std::fs::write(&img.0, &pristine).unwrap();
            damage(&img.dev(), seed, Some("btree-node")).unwrap();
            let _ = crate::dump::walk(&[img.dev()]);
        }
    }
}

//! `fsck`: check an unmounted filesystem, read-only.
//!
//! 1. The superblocks: the newest one among the devices names the members; each device given
//!    is the member its own superblock names (devices of another filesystem are an error).
//! 2. The btree, walked from the root: every copy of every node is read and decoded (a copy
//!    refused is reported; the first good one is used), every pointer is checked against its
//!    member's allocatable buckets, no bucket holds two node copies, every key lies in the
//!    range its parent gives its node, and keys ascend across leaves.
//! 3. The journal, as a mount reads it (`rust/journal.rs`): from the superblock's
//!    `journal_offset`, the entries with consecutive sequence numbers from `journal_seq`, each
//!    from the first copy (members in order, starting with the copy last read from) that has
//!    it; an older entry of this filesystem is skipped by its length once it checks out; the
//!    journal ends where no copy has the expected entry. Their records (puts and deletions)
//!    are applied in order to the keys in memory, as a replay would.
//! 4. The namespace: [`namespace::check`] over those keys.
//! 5. The file extents: [`extent::check`] (each decodes, lies in its members' data buckets,
//!    one bucket per replica, overlaps no other extent of its inode, belongs to a regular
//!    file), and no device block is used by two extents or by an extent and a btree node.
//!    Extents of an inode whose key is missing are a note, not a problem: a crash cut the
//!    unlink or eviction that was deleting them, and the next read-write mount deletes them.
//!
//! Nothing is written. Every problem is printed on a line of its own, then a summary line.
//! Exit status as fsck's convention: 0 clean, 4 problems found (left uncorrected), 8 an
//! operational error (a device or superblock that cannot be read, members that do not
//! assemble, a journal block no copy can read), 16 a usage error.

use crate::device::Device;
use crate::show::read_super;
use bucketfs_core::bkey::{records, Kind, Pos, MAX_VAL};
use bucketfs_core::btree_format::{decode_node, Child};
use bucketfs_core::extent::{self, Extent, MemberBlocks};
use bucketfs_core::journal_format::{
    decode_entry, decode_entry_records, decode_header, JournalError,
};
use bucketfs_core::namespace::{check, Names, NsError, Problem, Store, Tallies, Tally};
use bucketfs_core::superblock::{check_ptr, Member, NodePtr, Superblock, UuidFmt, BLOCK_SIZE};
use std::collections::{BTreeMap, HashMap};

/// Exit status: no problem.
pub const EXIT_CLEAN: u8 = 0;
/// Exit status: problems found, left uncorrected.
pub const EXIT_PROBLEMS: u8 = 4;
/// Exit status: operational error.
pub const EXIT_ERROR: u8 = 8;
/// Exit status: usage error.
pub const EXIT_USAGE: u8 = 16;

/// What a check found.
pub struct Report {
    /// One line per problem.
    pub problems: Vec<String>,
    /// Lines that are not problems (a member not given, entries past a journal gap).
    pub notes: Vec<String>,
    /// The summary line.
    pub summary: String,
}

impl Report {
    /// The exit status.
    pub fn status(&self) -> u8 {
        if self.problems.is_empty() {
            EXIT_CLEAN
        } else {
            EXIT_PROBLEMS
        }
    }
}

/// A position as text.
fn pos_text(p: Pos) -> String {
    let kind = match Kind::from_u8(p.kind) {
        Some(Kind::Map) => "map",
        Some(Kind::Inode) => "inode",
        Some(Kind::Dirent) => "dirent",
        Some(Kind::Symlink) => "symlink",
        Some(Kind::Extent) => "extent",
        None => return format!("kind{}:{}:{}", p.kind, p.ino, p.off),
    };
    format!("{kind}:{}:{}", p.ino, p.off)
}

/// The keys in memory, as the namespace checker reads them.
#[derive(Default)]
pub struct Keys(pub BTreeMap<Pos, Vec<u8>>);

impl Store for Keys {
    fn get(&self, pos: Pos, buf: &mut [u8; MAX_VAL]) -> Result<Option<usize>, NsError> {
        Ok(self.0.get(&pos).map(|v| {
            let n = v.len().min(MAX_VAL);
            buf[..n].copy_from_slice(&v[..n]);
            n
        }))
    }

    fn scan(
        &self,
        from: Pos,
        to: Pos,
        f: &mut dyn FnMut(Pos, &[u8]) -> bool,
    ) -> Result<(), NsError> {
        if from < to {
            for (p, v) in self.0.range(from..to) {
                if !f(*p, v) {
                    break;
                }
            }
        }
        Ok(())
    }

    fn put(&mut self, _: Pos, _: &[u8]) -> Result<(), NsError> {
        Err(NsError::Errno(libc::EROFS))
    }

    fn delete(&mut self, _: Pos) -> Result<(), NsError> {
        Err(NsError::Errno(libc::EROFS))
    }
}

/// The checker's working memory.
#[derive(Default)]
struct TallyMap(HashMap<u64, Tally>);

impl Tallies for TallyMap {
    fn get(&self, ino: u64) -> Tally {
        self.0.get(&ino).copied().unwrap_or_default()
    }

    fn set(&mut self, ino: u64, t: Tally) -> Result<(), NsError> {
        self.0.insert(ino, t);
        Ok(())
    }
}

/// The btree walk.
struct Walk<'a> {
    sb: &'a Superblock,
    by_member: &'a [Option<&'a Device>],
    keys: Keys,
    last: Option<Pos>,
    nodes: u64,
    /// Every node copy's bucket, and which node (its level and range) it holds.
    used: HashMap<(u32, u32), String>,
    problems: Vec<String>,
}

/// A node's range as text.
fn range_text(level: u8, lo: Pos, hi: Option<Pos>) -> String {
    format!(
        "level {level} node [{}, {})",
        pos_text(lo),
        hi.map_or("end".into(), pos_text)
    )
}

impl Walk<'_> {
    /// Reads the node at `ptrs` expected at `level`, covering `[lo, hi)`, and below it.
    fn node(&mut self, ptrs: &[NodePtr], level: u8, lo: Pos, hi: Option<Pos>) {
        let what = range_text(level, lo, hi);
        let mut good: Option<(Vec<Pos>, Vec<(Pos, Vec<u8>)>, Vec<Child>)> = None;
        for p in ptrs {
            let at = format!("member {} bucket {}", p.member, p.bucket);
            if let Err(e) = check_ptr(self.sb.member_table(), *p) {
                self.problems
                    .push(format!("btree: {what}: copy at {at}: {}", e.describe()));
                continue;
            }
            if let Some(other) = self.used.insert((p.member, p.bucket), what.clone()) {
                self.problems.push(format!(
                    "btree: {at} holds two node copies: {other} and {what}"
                ));
                continue;
            }
            let Some(Some(dev)) = self.by_member.get(p.member as usize) else {
                continue;
            };
            let m = &self.sb.members[p.member as usize];
            let mut buf = vec![0u8; BLOCK_SIZE];
            if let Err(e) = dev.read_at(m.bucket_offset(p.bucket as u64), &mut buf) {
                self.problems
                    .push(format!("btree: {what}: copy at {at} unreadable: {e}"));
                continue;
            }
            let (mut order, mut keys, mut children) = (Vec::new(), Vec::new(), Vec::new());
            let decoded = decode_node(
                &self.sb.uuid,
                level,
                &buf,
                |k| {
                    order.push(k.pos);
                    keys.push((k.pos, k.val.to_vec()));
                },
                |c| children.push(c),
            );
            match decoded {
                Ok(_) if good.is_none() => good = Some((order, keys, children)),
                Ok(_) => {}
                Err(e) => self
                    .problems
                    .push(format!("btree: {what}: copy at {at} refused: {e:?}")),
            }
        }
        let Some((_, keys, children)) = good else {
            self.problems.push(format!(
                "btree: {what}: no copy could be read; its keys are missing"
            ));
            return;
        };
        self.nodes += 1;
        for (pos, val) in keys {
            if pos < lo || hi.is_some_and(|h| pos >= h) {
                self.problems.push(format!(
                    "btree: {what}: key {} outside the node's range",
                    pos_text(pos)
                ));
            }
            if let Some(last) = self.last {
                if pos <= last {
                    self.problems.push(format!(
                        "btree: key {} follows {} across leaves",
                        pos_text(pos),
                        pos_text(last)
                    ));
                }
            }
            self.last = Some(pos);
            self.keys.0.insert(pos, val);
        }
        if let Some(first) = children.first() {
            if first.pos() < lo {
                self.problems.push(format!(
                    "btree: {what}: first child starts at {}, before the node's range",
                    pos_text(first.pos())
                ));
            }
        }
        for (i, c) in children.iter().enumerate() {
            let next = children.get(i + 1).map(|n| n.pos()).or(hi);
            let nr = (c.nr_ptrs as usize).min(c.ptrs.len());
            // The first child covers the node's whole lower range (a lookup below its key goes
            // to it), as the kernel's loader has it.
            let from = if i == 0 { lo } else { c.pos() };
            self.node(&c.ptrs[..nr], level - 1, from, next);
        }
    }
}

/// One member's copy of the journal.
struct JCopy<'a> {
    dev: &'a Device,
    member: &'a Member,
    index: usize,
}

/// What one copy holds at a position (as in `rust/journal.rs`).
enum Found {
    /// The expected entry: its length in blocks, its records (position, deletion, value).
    Entry(u32, Vec<(Pos, bool, Vec<u8>)>),
    /// An older entry of this filesystem, this many blocks long.
    Old(u32),
    /// The journal ends here on this copy.
    End(End),
}

/// Why a copy has no expected entry at a position.
enum End {
    /// No valid entry (or past the area), or a refused one.
    Nothing(Option<JournalError>),
    /// An entry with a later sequence number.
    Gap,
    /// A read error.
    Io(String),
}

/// Blocks `pos..pos + n` of copy `c`'s area; `None` past its end.
fn blocks(c: &JCopy<'_>, pos: u64, n: u64) -> Result<Option<Vec<u8>>, String> {
    let m = c.member;
    if pos
        .checked_add(n)
        .is_none_or(|end| end > m.journal_blocks())
    {
        return Ok(None);
    }
    let mut buf = vec![0u8; n as usize * BLOCK_SIZE];
    let off = m.bucket_offset(m.journal_start as u64) + pos * BLOCK_SIZE as u64;
    c.dev.read_at(off, &mut buf)?;
    Ok(Some(buf))
}

fn entry_at(uuid: &[u8; 16], c: &JCopy<'_>, pos: u64, expected: u64) -> Found {
    let h = match blocks(c, pos, 1) {
        Ok(Some(b)) => match decode_header(uuid, &b) {
            Ok(h) => h,
            Err(e) => return Found::End(End::Nothing(Some(e))),
        },
        Ok(None) => return Found::End(End::Nothing(None)),
        Err(e) => return Found::End(End::Io(e)),
    };
    if h.seq < expected {
        let whole = matches!(blocks(c, pos, h.blocks as u64),
            Ok(Some(b)) if decode_entry(uuid, &b, |_| {}, |_| {}).is_ok());
        return Found::Old(if whole { h.blocks } else { 1 });
    }
    if h.seq > expected {
        return Found::End(End::Gap);
    }
    let body = match blocks(c, pos, h.blocks as u64) {
        Ok(Some(b)) => b,
        Ok(None) => return Found::End(End::Nothing(Some(JournalError::Truncated))),
        Err(e) => return Found::End(End::Io(e)),
    };
    match decode_entry_records(uuid, &body, |_| {}) {
        Ok((h, recs)) => {
            let mut out = Vec::new();
            for r in records(recs, h.nr_keys as usize) {
                // Checked by the decoder.
                let Ok(k) = r else {
                    return Found::End(End::Nothing(Some(JournalError::Truncated)));
                };
                out.push((k.pos, k.deleted, k.val.to_vec()));
            }
            Found::Entry(h.blocks, out)
        }
        Err(e) => Found::End(End::Nothing(Some(e))),
    }
}

/// What the journal held.
struct Replayed {
    entries: u64,
    records: u64,
    first: u64,
    last: u64,
}

/// Reads the live journal as a mount does and applies its records to `keys`.
fn replay(
    sb: &Superblock,
    copies: &[JCopy<'_>],
    keys: &mut Keys,
    notes: &mut Vec<String>,
) -> Result<Replayed, String> {
    let mut r = Replayed {
        entries: 0,
        records: 0,
        first: sb.journal_seq,
        last: 0,
    };
    if copies.is_empty() {
        return Ok(r);
    }
    let (mut pos, mut expected, mut cur) = (sb.journal_offset, sb.journal_seq, 0usize);
    loop {
        let mut found = None;
        let (mut io_error, mut not_io, mut gap) = (None, false, false);
        for k in 0..copies.len() {
            let c = (cur + k) % copies.len();
            match entry_at(&sb.uuid, &copies[c], pos, expected) {
                Found::End(End::Io(e)) => io_error = Some(e),
                Found::End(why) => {
                    not_io = true;
                    gap |= matches!(why, End::Gap);
                    if let End::Nothing(Some(JournalError::Sequence(s))) = why {
                        notes.push(format!(
                            "journal: entry header at block {pos} of member {} refused: \
                             sequence number {s} too large",
                            copies[c].index
                        ));
                    }
                }
                f => {
                    found = Some(f);
                    cur = c;
                    break;
                }
            }
        }
        match found {
            Some(Found::Entry(blocks, recs)) => {
                pos += blocks as u64;
                r.entries += 1;
                r.last = expected;
                expected += 1;
                for (p, deleted, val) in recs {
                    r.records += 1;
                    if deleted {
                        keys.0.remove(&p);
                    } else {
                        keys.0.insert(p, val);
                    }
                }
            }
            Some(Found::Old(blocks)) => pos += blocks as u64,
            _ => {
                if let (Some(e), false) = (io_error, not_io) {
                    return Err(format!(
                        "journal: no copy of block {pos} could be read: {e}"
                    ));
                }
                let later = later_entries(sb, &copies[cur], pos, expected);
                if later > 0 || gap {
                    notes.push(format!(
                        "journal: entry {expected} is missing or damaged; {} later entr{} \
                         after it not replayed (as a mount does)",
                        later.max(1),
                        if later.max(1) == 1 { "y" } else { "ies" }
                    ));
                }
                return Ok(r);
            }
        }
    }
}

/// Entry headers of this filesystem with a sequence number above `seq` in copy `c`'s area from
/// block `pos` on.
fn later_entries(sb: &Superblock, c: &JCopy<'_>, mut pos: u64, seq: u64) -> u64 {
    let mut n = 0;
    while let Ok(Some(b)) = blocks(c, pos, 1) {
        match decode_header(&sb.uuid, &b) {
            Ok(h) => {
                n += (h.seq > seq) as u64;
                pos += h.blocks as u64;
            }
            Err(_) => pos += 1,
        }
    }
    n
}

/// The extents among `keys`: [`extent::check`] (decoding, placement, overlaps within an
/// inode, the owning inode), then every device block used by two extents or by an extent and a
/// btree node copy (whose buckets are `nodes`). Returns the number of extents.
fn check_extents(
    sb: &Superblock,
    keys: &Keys,
    nodes: &HashMap<(u32, u32), String>,
    problems: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<u64, String> {
    let table = sb.member_table();
    let member = |m: u32| table.get(m as usize).and_then(MemberBlocks::of);
    let count = extent::check(keys, &member, &mut |p| {
        let mut s = String::from("extents: ");
        let _ = p.describe(&mut s);
        if p.is_error() {
            problems.push(s);
        } else {
            notes.push(s);
        }
    })
    .map_err(|e| format!("extent check failed: errno {}", e.errno()))?;

    // Every replica run: (member, first device block, end, inode, first file block).
    let mut runs: Vec<(u32, u64, u64, u64, u64)> = Vec::new();
    let kinds = Pos::new(Kind::Extent, 0, 0)..Pos::new(Kind::Extent, u64::MAX, u64::MAX);
    for (p, v) in keys.0.range(kinds) {
        if let Some(e) = Extent::decode(*p, v) {
            for r in e.ptrs() {
                runs.push((r.member, r.block, r.block + e.len as u64, p.ino, e.start));
            }
        }
    }
    runs.sort_unstable();
    // The run reaching furthest so far on the current member.
    let mut reach: Option<(u32, u64, u64, u64, u64)> = None;
    for r in &runs {
        if let Some(q) = reach.filter(|q| q.0 == r.0 && r.1 < q.2) {
            problems.push(format!(
                "extents: member {} blocks {}..{} used twice: by inode {} (extent from file \
                 block {}) and inode {} (extent from file block {})",
                r.0,
                r.1,
                r.2.min(q.2),
                q.3,
                q.4,
                r.3,
                r.4
            ));
        }
        if reach.is_none_or(|q| q.0 != r.0 || r.2 > q.2) {
            reach = Some(*r);
        }
    }
    let node_buckets: BTreeMap<(u32, u64), &String> = nodes
        .iter()
        .map(|(&(m, b), what)| ((m, b as u64), what))
        .collect();
    for &(m, block, end, ino, start) in &runs {
        let Some(g) = member(m).filter(|g| g.bucket_blocks > 0) else {
            continue;
        };
        let buckets = (m, block / g.bucket_blocks)..=(m, (end - 1) / g.bucket_blocks);
        for (&(_, b), what) in node_buckets.range(buckets) {
            problems.push(format!(
                "extents: inode {ino} extent from file block {start}: member {m} bucket {b} \
                 also holds a btree node copy ({what})"
            ));
        }
    }
    Ok(count)
}

/// Checks the filesystem whose members are `devs` (opened read-only). `Err` is an operational
/// error (exit status 8).
pub fn fsck(devs: &[Device]) -> Result<Report, String> {
    let mut notes = Vec::new();
    let mut sbs = Vec::new();
    for d in devs {
        sbs.push(read_super(d)?.0);
    }
    let sb = *sbs.iter().max_by_key(|s| s.seq).ok_or("no device given")?;
    let mut by_member: Vec<Option<&Device>> = vec![None; sb.nr_members as usize];
    for (d, s) in devs.iter().zip(&sbs) {
        if s.uuid != sb.uuid {
            return Err(format!(
                "{}: member of another filesystem ({}, not {})",
                d.path.display(),
                UuidFmt(&s.uuid),
                UuidFmt(&sb.uuid)
            ));
        }
        match by_member.get_mut(s.member_index as usize) {
            Some(slot @ None) => *slot = Some(d),
            Some(Some(o)) => {
                return Err(format!(
                    "{} and {} are both member {}",
                    o.path.display(),
                    d.path.display(),
                    s.member_index
                ))
            }
            None => {
                return Err(format!(
                    "{}: member index {} beyond the {} members",
                    d.path.display(),
                    s.member_index,
                    sb.nr_members
                ))
            }
        }
    }
    let table = sb.member_table();
    for (i, d) in by_member.iter().enumerate() {
        if d.is_none() && !table[i].is_removed() {
            notes.push(format!(
                "member {i} ({}) not given: its copies are not checked",
                UuidFmt(&table[i].uuid)
            ));
        }
    }

    let mut w = Walk {
        sb: &sb,
        by_member: &by_member,
        keys: Keys::default(),
        last: None,
        nodes: 0,
        used: HashMap::new(),
        problems: Vec::new(),
    };
    let nr = (sb.root.nr_ptrs as usize).min(sb.root.ptrs.len());
    w.node(&sb.root.ptrs[..nr], sb.root.level, Pos::MIN, None);
    let Walk {
        mut keys,
        mut problems,
        nodes,
        used,
        ..
    } = w;
    let btree_keys = keys.0.len();

    let copies: Vec<JCopy<'_>> = by_member
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let d = (*d)?;
            (!table[i].is_removed()).then_some(JCopy {
                dev: d,
                member: &table[i],
                index: i,
            })
        })
        .collect();
    let j = replay(&sb, &copies, &mut keys, &mut notes)?;

    let names = Names::for_uuid(&sb.uuid);
    let mut tallies = TallyMap::default();
    check(&keys, &names, &mut tallies, &mut |p: Problem| {
        let mut s = String::from("namespace: ");
        let _ = p.describe(&mut s);
        problems.push(s);
    })
    .map_err(|e| format!("namespace check failed: errno {}", e.errno()))?;
    let extents = check_extents(&sb, &keys, &used, &mut problems, &mut notes)?;

    let ns_keys = keys.0.keys().filter(|p| p.kind != Kind::Map as u8).count();
    let journal = if j.entries == 0 {
        "journal: no entry to replay".to_string()
    } else {
        format!(
            "journal: {} entr{} (seq {}..={}), {} records applied in memory",
            j.entries,
            if j.entries == 1 { "y" } else { "ies" },
            j.first,
            j.last,
            j.records
        )
    };
    let summary = format!(
        "bucketfs fsck {}: {}; btree: {nodes} nodes, {btree_keys} keys; {journal}; {} keys \
         checked ({ns_keys} namespace, {extents} extents)",
        UuidFmt(&sb.uuid),
        if problems.is_empty() {
            "clean".to_string()
        } else {
            format!("{} problem(s) found, not corrected", problems.len())
        },
        keys.0.len(),
    );
    Ok(Report {
        problems,
        notes,
        summary,
    })
}

/// `bucketfs fsck DEV...`: prints the problems and the summary; returns the exit status.
pub fn run(paths: &[std::path::PathBuf]) -> u8 {
    let devs: Result<Vec<Device>, String> = paths.iter().map(|p| Device::open(p, false)).collect();
    let report = devs.and_then(|d| fsck(&d));
    match report {
        Ok(r) => {
            for n in &r.notes {
                println!("note: {n}");
            }
            for p in &r.problems {
                println!("{p}");
            }
            println!("{}", r.summary);
            r.status()
        }
        Err(e) => {
            eprintln!("bucketfs fsck: {e}");
            EXIT_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{plan, write, write_superblocks, FormatSpec};
    use bucketfs_core::bkey::{encode, record_size};
    use bucketfs_core::btree_format::{encode_interior, encode_leaf};
    use bucketfs_core::journal_format::encode_entry;
    use bucketfs_core::layout::Field;
    use bucketfs_core::namespace::create;
    use bucketfs_core::namespace_format::*;
    use bucketfs_core::options::Options;
    use bucketfs_core::target::Label;
    use std::path::PathBuf;

    const MIB: u64 = 1 << 20;

    /// Image files formatted as one filesystem; removed on drop.
    struct Img {
        dir: PathBuf,
        paths: Vec<PathBuf>,
    }

    impl Img {
        fn new(tag: &str, n: usize) -> Img {
            let dir =
                std::env::temp_dir().join(format!("bucketfs-fsck-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let paths: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("m{i}"))).collect();
            for p in &paths {
                std::fs::File::create(p).unwrap().set_len(64 * MIB).unwrap();
            }
            let img = Img { dir, paths };
            let devs = img.devs(true);
            let spec = FormatSpec {
                options: Options::default(),
                bucket_size: 64 << 10,
                labels: vec![Label::NONE; n],
            };
            write(&devs, &plan(&devs, &spec).unwrap()).unwrap();
            img
        }

        fn devs(&self, write: bool) -> Vec<Device> {
            self.paths
                .iter()
                .map(|p| Device::open(p, write).unwrap())
                .collect()
        }

        fn sb(&self) -> Superblock {
            read_super(&self.devs(false)[0]).unwrap().0
        }

        /// Checks, and checks that nothing was written.
        fn fsck(&self) -> Report {
            let before: Vec<Vec<u8>> = self
                .paths
                .iter()
                .map(|p| std::fs::read(p).unwrap())
                .collect();
            let r = fsck(&self.devs(false)).unwrap();
            let after: Vec<Vec<u8>> = self
                .paths
                .iter()
                .map(|p| std::fs::read(p).unwrap())
                .collect();
            assert!(before == after, "fsck wrote to a device");
            r
        }

        /// The keys of the btree as written.
        fn keys(&self) -> Keys {
            let t = crate::dump::walk(&self.devs(false)).unwrap();
            Keys(t.keys.into_iter().map(|r| (r.pos, r.val)).collect())
        }

        /// Writes `entries` (each a list of puts and deletions) as journal entries from the
        /// superblock's `journal_seq + skip` at its `journal_offset`, on the members in `on`,
        /// then a zero block.
        fn journal(&self, entries: &[Vec<Rec>], skip: u64, on: &[usize]) {
            let sb = self.sb();
            let mut bytes = Vec::new();
            let mut buf = vec![0u8; 16 * BLOCK_SIZE];
            for (i, e) in entries.iter().enumerate() {
                let mut recs = Vec::new();
                for (pos, val) in e {
                    let mut r = vec![0u8; record_size(val.as_ref().map_or(0, |v| v.len()))];
                    let n =
                        encode(*pos, val.is_none(), val.as_deref().unwrap_or(&[]), &mut r).unwrap();
                    recs.extend_from_slice(&r[..n]);
                }
                let seq = sb.journal_seq + skip + i as u64;
                let len = encode_entry(&sb.uuid, seq, e.len(), &recs, &[], &mut buf).unwrap();
                bytes.extend_from_slice(&buf[..len]);
            }
            bytes.extend_from_slice(&[0u8; BLOCK_SIZE]);
            let devs = self.devs(true);
            for &i in on {
                let m = &sb.members[i];
                let at =
                    m.bucket_offset(m.journal_start as u64) + sb.journal_offset * BLOCK_SIZE as u64;
                devs[i].write_at(at, &bytes).unwrap();
            }
        }
    }

    impl Drop for Img {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A put (`Some`) or a deletion (`None`).
    type Rec = (Pos, Option<Vec<u8>>);

    /// A store that records what the namespace writes, as journal records.
    struct Recording<'a> {
        keys: &'a mut Keys,
        log: Vec<Rec>,
    }

    impl Store for Recording<'_> {
        fn get(&self, pos: Pos, buf: &mut [u8; MAX_VAL]) -> Result<Option<usize>, NsError> {
            self.keys.get(pos, buf)
        }
        fn scan(
            &self,
            from: Pos,
            to: Pos,
            f: &mut dyn FnMut(Pos, &[u8]) -> bool,
        ) -> Result<(), NsError> {
            self.keys.scan(from, to, f)
        }
        fn put(&mut self, pos: Pos, val: &[u8]) -> Result<(), NsError> {
            self.keys.0.insert(pos, val.to_vec());
            self.log.push((pos, Some(val.to_vec())));
            Ok(())
        }
        fn delete(&mut self, pos: Pos) -> Result<(), NsError> {
            self.keys.0.remove(&pos);
            self.log.push((pos, None));
            Ok(())
        }
    }

    fn inode_val(mode: u32, nlink: u32) -> Vec<u8> {
        let mut b = vec![0u8; INODE_SIZE];
        InodeDisk {
            mode,
            nlink,
            ..Default::default()
        }
        .write(&mut b);
        b
    }

    /// The records of `mkdir NAME` (inode `ino`) and `touch NAME/f` (inode `ino + 1`) in the
    /// root of `img`, made by the namespace operations.
    fn mkdir_records(img: &Img, name: &[u8], ino: u64) -> Vec<Rec> {
        let mut keys = img.keys();
        let names = Names::for_uuid(&img.sb().uuid);
        let mut r = Recording {
            keys: &mut keys,
            log: Vec::new(),
        };
        let mut root = bucketfs_core::namespace::read_inode(&r, ROOT_INO).unwrap();
        root.attr.nlink += 1;
        let dir = Inode {
            ino,
            attr: InodeDisk::read(&inode_val(S_IFDIR | 0o755, 2)),
        };
        create(&mut r, &names, &root, name, &dir, None).unwrap();
        let file = Inode {
            ino: ino + 1,
            attr: InodeDisk::read(&inode_val(S_IFREG | 0o644, 1)),
        };
        create(&mut r, &names, &dir, b"f", &file, None).unwrap();
        r.log
    }

    fn has(r: &Report, text: &str) {
        assert_eq!(r.status(), EXIT_PROBLEMS, "{:?}", r.problems);
        assert!(
            r.problems.iter().any(|p| p.contains(text)),
            "{text:?} not in {:?}",
            r.problems
        );
    }

    #[test]
    fn a_new_filesystem_is_clean() {
        let img = Img::new("clean", 2);
        let r = img.fsck();
        assert_eq!(r.status(), EXIT_CLEAN, "{:?}", r.problems);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        assert!(r.summary.contains("clean"), "{}", r.summary);
        assert_eq!(run(&img.paths), EXIT_CLEAN);
        assert_eq!(run(&[img.dir.join("missing")]), EXIT_ERROR);
    }

    #[test]
    fn journal_entries_are_applied_and_checked() {
        let img = Img::new("journal", 2);
        let mk = mkdir_records(&img, b"dir", 2);
        img.journal(&[mk.clone()], 0, &[0, 1]);
        let r = img.fsck();
        assert_eq!(r.status(), EXIT_CLEAN, "{:?}", r.problems);
        assert!(r.summary.contains("1 entry"), "{}", r.summary);
        // 1 root + (dir inode, dirent) + (file inode, dirent).
        assert!(r.summary.contains("5 keys checked"), "{}", r.summary);

        // A later entry deletes the directory's inode: its entry dangles, the file is lost.
        img.journal(&[mk.clone(), vec![(inode_pos(2), None)]], 0, &[0, 1]);
        let r = img.fsck();
        has(&r, "points at inode 2, which does not exist");
        has(&r, "inode 3: no entry points at it");

        // The same entries on member 1 only: member 0's copy has none, the mount reads
        // member 1's (the kernel's rule: the first copy that has the entry).
        let img = Img::new("journal-copy", 2);
        img.journal(&[mk.clone(), vec![(inode_pos(2), None)]], 0, &[1]);
        has(&img.fsck(), "points at inode 2, which does not exist");

        // Entries that do not start at journal_seq are not replayed.
        let img = Img::new("journal-gap", 2);
        img.journal(&[vec![(inode_pos(ROOT_INO), None)]], 1, &[0, 1]);
        let r = img.fsck();
        assert_eq!(r.status(), EXIT_CLEAN, "{:?}", r.problems);
        assert!(
            r.notes.iter().any(|n| n.contains("entry 1 is missing")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn namespace_damage_is_reported() {
        let cases: Vec<(Vec<Rec>, &str)> = vec![
            (
                vec![(inode_pos(ROOT_INO), None)],
                "root inode 1 does not exist",
            ),
            (
                vec![(inode_pos(ROOT_INO), Some(inode_val(S_IFDIR | 0o755, 5)))],
                "inode 1: nlink 5, expected 2",
            ),
            (
                vec![(inode_pos(9), Some(inode_val(S_IFREG | 0o644, 1)))],
                "inode 9: no entry points at it",
            ),
            (
                vec![(symlink_pos(ROOT_INO, 0), Some(b"x".to_vec()))],
                "symlink piece of an inode that is not a symlink",
            ),
        ];
        for (i, (recs, text)) in cases.into_iter().enumerate() {
            let img = Img::new(&format!("ns{i}"), 1);
            img.journal(&[recs], 0, &[0]);
            has(&img.fsck(), text);
        }
        // A directory entry written at a slot outside its name's window.
        let img = Img::new("ns-slot", 1);
        let mut mk = mkdir_records(&img, b"d", 2);
        let names = Names::for_uuid(&img.sb().uuid);
        let far = names.slot(b"d") + DIRENT_PROBE + 3;
        for (p, _) in mk.iter_mut() {
            if p.kind == Kind::Dirent as u8 && p.ino == ROOT_INO {
                p.off = far;
            }
        }
        img.journal(&[mk], 0, &[0]);
        has(
            &img.fsck(),
            &format!("directory 1 slot {far}: entry outside its name's hash window"),
        );
    }

    /// Rewrites the tree of `img` (1 member) as an interior root over two leaves: `left`
    /// covering from the start, `right` from `split`; `buckets` are where the root and the two
    /// leaves go, `extra` adds a second copy pointer to the right leaf.
    fn two_leaves(
        img: &Img,
        left: &[Rec],
        split: Pos,
        right: &[Rec],
        buckets: [u32; 3],
        extra: Option<u32>,
    ) {
        let mut sb = img.sb();
        let dev = &img.devs(true)[0];
        let m = sb.members[0];
        let leaf = |recs: &[Rec]| {
            let mut bytes = Vec::new();
            for (pos, val) in recs {
                let val = val.as_deref().unwrap();
                let mut r = vec![0u8; record_size(val.len())];
                let n = encode(*pos, false, val, &mut r).unwrap();
                bytes.extend_from_slice(&r[..n]);
            }
            let mut node = vec![0u8; BLOCK_SIZE];
            assert!(encode_leaf(
                &sb.uuid,
                sb.root.node_seq,
                recs.len(),
                &bytes,
                &mut node
            ));
            node
        };
        dev.write_at(m.bucket_offset(buckets[1] as u64), &leaf(left))
            .unwrap();
        dev.write_at(m.bucket_offset(buckets[2] as u64), &leaf(right))
            .unwrap();
        let child = |pos: Pos, b: u32, extra: Option<u32>| {
            let mut c = Child {
                kind: pos.kind,
                ino: pos.ino,
                off: pos.off,
                nr_ptrs: 1,
                ..Default::default()
            };
            c.ptrs[0] = NodePtr {
                member: 0,
                bucket: b,
            };
            if let Some(e) = extra {
                c.ptrs[1] = NodePtr {
                    member: 0,
                    bucket: e,
                };
                c.nr_ptrs = 2;
            }
            c
        };
        let mut node = vec![0u8; BLOCK_SIZE];
        let children = [
            child(Pos::MIN, buckets[1], None),
            child(split, buckets[2], extra),
        ];
        assert!(encode_interior(
            &sb.uuid,
            sb.root.node_seq,
            1,
            &children,
            &mut node
        ));
        dev.write_at(m.bucket_offset(buckets[0] as u64), &node)
            .unwrap();
        sb.root.level = 1;
        sb.root.nr_ptrs = 1;
        sb.root.ptrs[0] = NodePtr {
            member: 0,
            bucket: buckets[0],
        };
        write_superblocks(dev, &sb, 0).unwrap();
    }

    fn map_rec(k: u64) -> Rec {
        (Pos::map(k), Some(k.to_le_bytes().to_vec()))
    }

    #[test]
    fn btree_structure_problems_are_reported() {
        let root = || (inode_pos(ROOT_INO), Some(inode_val(S_IFDIR | 0o755, 2)));
        let img = Img::new("bt", 1);
        let b = img.sb().root.ptrs[0].bucket + 1;
        let nb = img.sb().members[0].nbuckets as u32;

        // A good two-level tree.
        two_leaves(
            &img,
            &[map_rec(1), map_rec(2)],
            Pos::map(10),
            &[map_rec(10), root()],
            [b, b + 1, b + 2],
            None,
        );
        let r = img.fsck();
        assert_eq!(r.status(), EXIT_CLEAN, "{:?}", r.problems);
        assert!(r.summary.contains("3 nodes"), "{}", r.summary);

        // A key outside its leaf's range, and out of order across the leaves.
        two_leaves(
            &img,
            &[map_rec(1), map_rec(20)],
            Pos::map(10),
            &[map_rec(10), root()],
            [b, b + 1, b + 2],
            None,
        );
        let r = img.fsck();
        has(&r, "key map:0:20 outside the node's range");
        has(&r, "key map:0:10 follows map:0:20 across leaves");

        // Two node copies in one bucket.
        two_leaves(
            &img,
            &[map_rec(1)],
            Pos::map(10),
            &[map_rec(10), root()],
            [b, b + 1, b + 2],
            Some(b + 1),
        );
        has(
            &img.fsck(),
            &format!("member 0 bucket {} holds two node copies", b + 1),
        );

        // A pointer beyond the member.
        two_leaves(
            &img,
            &[map_rec(1)],
            Pos::map(10),
            &[map_rec(10), root()],
            [b, b + 1, b + 2],
            Some(nb + 5),
        );
        has(&img.fsck(), &format!("copy at member 0 bucket {}", nb + 5));

        // A copy that does not decode (the other one does).
        two_leaves(
            &img,
            &[map_rec(1)],
            Pos::map(10),
            &[map_rec(10), root()],
            [b, b + 1, b + 2],
            Some(b + 3),
        );
        has(
            &img.fsck(),
            &format!("copy at member 0 bucket {} refused: Magic", b + 3),
        );

        // A leaf no copy of which decodes: its keys (the root inode) are missing.
        two_leaves(
            &img,
            &[map_rec(1)],
            Pos::map(10),
            &[map_rec(10), root()],
            [b, b + 1, b + 2],
            None,
        );
        let m = img.sb().members[0];
        img.devs(true)[0]
            .write_at(m.bucket_offset((b + 2) as u64) + 100, &[0xff; 8])
            .unwrap();
        let r = img.fsck();
        has(&r, "refused: Checksum");
        has(&r, "no copy could be read");
        has(&r, "root inode 1 does not exist");
    }

    /// The record of an extent of `ino`: file blocks `[start, start + len)` at device block
    /// `block` of member 0.
    fn extent_rec(ino: u64, start: u64, len: u32, block: u64, unwritten: bool) -> Rec {
        let mut e = Extent {
            start,
            len,
            unwritten,
            nr: 1,
            ptrs: [Default::default(); extent::MAX_DATA_REPLICAS],
        };
        e.ptrs[0].block = block;
        let mut v = vec![0u8; extent::MAX_EXTENT_VAL];
        let n = e.encode(&mut v);
        assert!(n > 0);
        v.truncate(n);
        (e.pos(ino), Some(v))
    }

    #[test]
    fn extents_are_checked() {
        // A directory (inode 2) holding a regular file (inode 3); 64 KiB buckets: 16 blocks.
        let img = Img::new("ext", 1);
        let sb = img.sb();
        let m = sb.members[0];
        assert_eq!(m.bucket_size, 65536);
        let node = sb.root.ptrs[0].bucket as u64;
        // A data bucket well away from the btree's.
        let data = (m.first_bucket as u64 + 40) * 16;
        assert!(node < m.first_bucket as u64 + 30);

        let with = |tag: &str, extents: Vec<Rec>| {
            let img = Img::new(&format!("ext-{tag}"), 1);
            let mut recs = mkdir_records(&img, b"d", 2);
            recs.extend(extents);
            img.journal(&[recs], 0, &[0]);
            img.fsck()
        };

        // Good: a written and an unwritten extent, in one bucket and the next.
        let r = with(
            "good",
            vec![
                extent_rec(3, 0, 4, data, false),
                extent_rec(3, 4, 16, data + 16, true),
            ],
        );
        assert_eq!(r.status(), EXIT_CLEAN, "{:?}", r.problems);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        assert!(r.summary.contains("2 extents"), "{}", r.summary);

        // Overlapping file blocks of one inode.
        has(
            &with(
                "overlap",
                vec![
                    extent_rec(3, 0, 4, data, false),
                    extent_rec(3, 2, 4, data + 4, false),
                ],
            ),
            "inode 3 extent 2..6: overlaps the extent before it (ending at 4)",
        );
        // Out of range, and across a bucket boundary.
        let end = m.nbuckets * 16;
        for (block, len, text) in [
            (10, 1, "below the member's first data bucket"),
            (end - 1, 2, "past the member's end"),
            (end, 1, "past the member's end"),
            (data + 14, 4, "across a bucket boundary"),
        ] {
            has(
                &with("range", vec![extent_rec(3, 0, len, block, false)]),
                &format!("inode 3 extent 0..{len}: replica on member 0 at block {block} {text}"),
            );
        }
        // Device blocks used by two extents, and by an extent and a btree node.
        has(
            &with(
                "twice",
                vec![
                    extent_rec(3, 0, 4, data, false),
                    extent_rec(3, 10, 4, data + 2, false),
                ],
            ),
            &format!(
                "member 0 blocks {}..{} used twice: by inode 3 (extent from file block 0) and \
                 inode 3 (extent from file block 10)",
                data + 2,
                data + 4
            ),
        );
        has(
            &with("node", vec![extent_rec(3, 0, 4, node * 16 + 3, false)]),
            &format!("member 0 bucket {node} also holds a btree node copy"),
        );
        // Extents of a directory are an error.
        has(
            &with("dir", vec![extent_rec(2, 0, 4, data, false)]),
            "inode 2: 1 extent(s) of an inode that is not a regular file (mode 40755)",
        );
        // Extents of a missing inode are a note: a crash cut the unlink that deleted them.
        let r = with(
            "orphan",
            vec![
                extent_rec(9, 0, 4, data, false),
                extent_rec(9, 8, 2, data + 4, true),
            ],
        );
        assert_eq!(r.status(), EXIT_CLEAN, "{:?}", r.problems);
        assert!(
            r.notes.iter().any(|n| n.contains(
                "inode 9: 2 extent(s), 6 block(s), of an inode that does not exist: left by a \
                 crash; the next read-write mount deletes them"
            )),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn members_of_two_filesystems_are_an_error() {
        let a = Img::new("two-a", 1);
        let b = Img::new("two-b", 1);
        let devs = vec![
            Device::open(&a.paths[0], false).unwrap(),
            Device::open(&b.paths[0], false).unwrap(),
        ];
        assert!(fsck(&devs).is_err());
    }
}

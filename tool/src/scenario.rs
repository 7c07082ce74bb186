//! `scenario`: write a filesystem in a given crash state, from a TOML spec.
//!
//! ```toml
//! bucket_size = "4k"          # default 64k
//! metadata_replicas = 2       # any option of the option table may be set here
//! discard = false
//! journal_keys = 3000         # map keys in the journal, not yet in the btree
//! keys_per_entry = 500        # default 500 (at most 2046: an entry's most records)
//! journal_deletes = 0         # the first N of those keys deleted again by deletion records
//!                             # in entries after them (default 0)
//! seed = 1                    # key generator seed, default 1
//! journal_offset = 0          # block of the journal area where the journal starts (the
//!                             # superblock's journal_offset); default 0
//!
//! [[device]]                  # one per device given, in order
//! buckets = 16384             # default: as many as fit
//! free = 1                    # free buckets
//! need_discard = 9000         # buckets waiting for discard (bucket table says so)
//! need_discard_pinned = 0     # buckets freed by a journal entry not replayed yet: the
//!                             # bucket table says data, the journal frees them; they may
//!                             # not be discarded before replay commits (the #1108 state)
//! free_pinned = 0             # the same, but the journal frees them to `free`: they may
//!                             # be neither discarded nor allocated before replay commits
//! fill = false                # write a pattern into need_discard buckets, so discards
//!                             # show as holes in a sparse image
//! label = "ssd"               # the member's label; default none
//! ```
//!
//! A target option is a string: `metadata_target = "ssd"` (or `"dev-0"`, `"none"`).
//!
//! Every device's allocatable buckets are laid out as: the root node (on the first
//! `metadata_replicas` devices), a run of `free_pinned` buckets, a run of `need_discard`
//! buckets, a run of `need_discard_pinned` buckets, a run of `free` buckets, and `data`
//! buckets for the rest (`fill` writes the pattern into the `free_pinned` run too).
//! The journal starts at sequence 1 with entries freeing the pinned buckets, then holds
//! `journal_keys` distinct map keys (`Pos::map(key)`, an 8-byte value) in entries of
//! `keys_per_entry`, then `journal_deletes` deletions of the first keys, in entries of
//! `keys_per_entry`; the btree is one leaf holding the root directory (as `format` writes
//! it). So mounting must replay every key, and with more keys than a leaf holds, split leaves.
//! The expectation printed (`expect keys N digest D`) is over the map keys left after the
//! deletions, as `internal/btree_stats` and `dump-btree` count them.
//!
//! Nothing device-sized is held in memory: bucket states are computed from the runs above, the
//! bucket table and the fill pattern are written in chunks. Only the journal's own bytes are
//! written (from `journal_offset`, followed by one zero block that ends it), plus a zero block
//! at block 0 when `journal_offset` is not 0, so a reader that ignored the offset would find no
//! entry.

use crate::device::Device;
use crate::format::{
    end_journal_at, now_secs, plan, root_leaf, write_superblocks, write_table, FormatSpec,
    CHUNK_BYTES,
};
use bucketfs_core::bkey::{encode, key_digest, record_size, Pos, KEY_HEADER};
use bucketfs_core::bucket_table::BucketState;
use bucketfs_core::journal_format::{encode_entry, BucketUpdate, MAX_KEY_BYTES};
use bucketfs_core::options::{lookup, parse_value, Kind, Options};
use bucketfs_core::superblock::{UuidFmt, BLOCK_SIZE, MAX_MEMBERS};
use bucketfs_core::target::{Label, Target};

struct DeviceSpec {
    buckets: Option<u64>,
    free: u64,
    need_discard: u64,
    pinned: u64,
    free_pinned: u64,
    fill: bool,
    label: Label,
}

/// A map key and its value, as the scenario and the damage generator write them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MapKey {
    /// The key: the map position's offset.
    pub key: u64,
    /// Its value (8 bytes, little-endian, on disk).
    pub val: u64,
}

impl MapKey {
    /// Its position.
    pub fn pos(&self) -> Pos {
        Pos::map(self.key)
    }

    /// Its digest term, as the kernel's `btree_stats` sums it.
    pub fn digest(&self) -> u64 {
        key_digest(self.pos(), &self.val.to_le_bytes())
    }
}

/// Most map records one journal entry holds.
pub const MAX_MAP_KEYS_PER_ENTRY: usize = MAX_KEY_BYTES / record_size(8);

/// Encodes `keys` as map records (and `deletes` as deletion records after them); returns
/// (the number of records, their bytes).
pub fn map_records(keys: &[MapKey], deletes: &[u64]) -> (usize, Vec<u8>) {
    let mut out = vec![0u8; keys.len() * record_size(8) + deletes.len() * KEY_HEADER];
    let mut at = 0;
    for k in keys {
        // A map key's 8-byte value always encodes.
        at += encode(k.pos(), false, &k.val.to_le_bytes(), &mut out[at..]).unwrap_or(0);
    }
    for &d in deletes {
        at += encode(Pos::map(d), true, &[], &mut out[at..]).unwrap_or(0);
    }
    out.truncate(at);
    (keys.len() + deletes.len(), out)
}

/// A key generator: distinct 64-bit keys in no particular order.
pub fn scenario_key(seed: u64, i: u64) -> MapKey {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    MapKey {
        key: x ^ (x >> 31),
        val: i + 1,
    }
}

fn get_u64(t: &toml::Table, k: &str) -> Result<Option<u64>, String> {
    match t.get(k) {
        None => Ok(None),
        Some(toml::Value::Integer(v)) if *v >= 0 => Ok(Some(*v as u64)),
        Some(v) => Err(format!("{k}: expected a non-negative integer, got {v}")),
    }
}

/// Writes the scenario and prints what it wrote and what a mount must then show.
pub fn scenario(spec_path: &str, devs: &mut [Device]) -> Result<(), String> {
    print!("{}", scenario_quiet(spec_path, devs)?);
    Ok(())
}

/// Writes the scenario; returns the report `scenario` prints.
pub fn scenario_quiet(spec_path: &str, devs: &mut [Device]) -> Result<String, String> {
    use std::fmt::Write as _;
    let mut report = String::new();
    let text = std::fs::read_to_string(spec_path).map_err(|e| format!("{spec_path}: {e}"))?;
    let t: toml::Table = text.parse().map_err(|e| format!("{spec_path}: {e}"))?;
    let bucket_size = match t.get("bucket_size") {
        None => 64 << 10,
        Some(toml::Value::String(s)) => crate::parse_size(s)?,
        Some(toml::Value::Integer(v)) => {
            u32::try_from(*v).map_err(|_| "bucket_size: too large".to_string())?
        }
        Some(v) => return Err(format!("bucket_size: bad value {v}")),
    };
    let mut options = Options::default();
    for (k, v) in &t {
        let Some(opt) = lookup(k) else { continue };
        let text = match (v, opt.desc().kind) {
            (toml::Value::String(t), Kind::Target) => {
                let t = Target::parse(t).map_err(|e| format!("{k}: {}", e.describe()))?;
                options = options.with_target(t);
                continue;
            }
            (toml::Value::Boolean(b), Kind::Bool) => (*b as u32).to_string(),
            (toml::Value::Integer(i), _) => i.to_string(),
            _ => return Err(format!("{k}: bad value {v}")),
        };
        let value = parse_value(opt.desc(), &text).map_err(|e| {
            let mut msg = String::new();
            let _ = e.describe(&mut msg);
            format!("{k} = {text}: {msg}")
        })?;
        options = options.with_unchecked(opt, value);
    }
    let known = [
        "bucket_size",
        "journal_keys",
        "keys_per_entry",
        "journal_deletes",
        "seed",
        "journal_offset",
        "device",
    ];
    if let Some(k) = t
        .keys()
        .find(|k| lookup(k).is_none() && !known.contains(&k.as_str()))
    {
        return Err(format!("{spec_path}: unknown key {k}"));
    }
    let journal_keys = get_u64(&t, "journal_keys")?.unwrap_or(0);
    let per_entry = get_u64(&t, "keys_per_entry")?
        .unwrap_or(500)
        .clamp(1, MAX_MAP_KEYS_PER_ENTRY as u64);
    let journal_deletes = get_u64(&t, "journal_deletes")?.unwrap_or(0);
    if journal_deletes > journal_keys {
        return Err(format!(
            "journal_deletes {journal_deletes}: more than journal_keys {journal_keys}"
        ));
    }
    let seed = get_u64(&t, "seed")?.unwrap_or(1);
    let journal_offset = get_u64(&t, "journal_offset")?.unwrap_or(0);
    let specs: Vec<DeviceSpec> = match t.get("device") {
        Some(toml::Value::Array(a)) => {
            a.iter()
                .map(|d| {
                    let d = d.as_table().ok_or("device: expected tables")?;
                    Ok(DeviceSpec {
                        buckets: get_u64(d, "buckets")?,
                        free: get_u64(d, "free")?.unwrap_or(0),
                        need_discard: get_u64(d, "need_discard")?.unwrap_or(0),
                        pinned: get_u64(d, "need_discard_pinned")?.unwrap_or(0),
                        free_pinned: get_u64(d, "free_pinned")?.unwrap_or(0),
                        fill: d.get("fill").and_then(|v| v.as_bool()).unwrap_or(false),
                        label: match d.get("label") {
                            None => Label::NONE,
                            Some(toml::Value::String(t)) => Label::parse(t)
                                .map_err(|e| format!("label {t:?}: {}", e.describe()))?,
                            Some(v) => return Err(format!("label: expected a string, got {v}")),
                        },
                    })
                })
                .collect::<Result<_, String>>()?
        }
        _ => return Err(format!("{spec_path}: needs one [[device]] per device")),
    };
    if specs.len() != devs.len() || devs.len() > MAX_MEMBERS {
        return Err(format!(
            "{} [[device]] table(s) for {} device(s)",
            specs.len(),
            devs.len()
        ));
    }
    // A device described with fewer buckets than it has is used only that far.
    for (d, s) in devs.iter_mut().zip(&specs) {
        if let Some(b) = s.buckets {
            let bytes = b * bucket_size as u64;
            if bytes > d.size {
                return Err(format!(
                    "{}: {b} buckets do not fit in {} bytes",
                    d.path.display(),
                    d.size
                ));
            }
            d.size = bytes;
        }
    }
    let layout = plan(
        devs,
        &FormatSpec {
            options,
            bucket_size,
            labels: specs.iter().map(|s| s.label).collect(),
        },
    )?;
    let mut sb = layout.sb;
    sb.journal_offset = journal_offset;
    sb.validate().map_err(|_| {
        format!(
            "journal_offset {journal_offset}: beyond a member's journal area ({} blocks)",
            sb.member_table()
                .iter()
                .map(|m| m.journal_blocks())
                .min()
                .unwrap_or(0)
        )
    })?;

    // Bucket states: root, need_discard run, free run, data; as runs (first, end, state) after
    // the metadata areas, data elsewhere.
    let mut states: Vec<Vec<(u64, u64, BucketState)>> = Vec::new();
    let mut updates: Vec<BucketUpdate> = Vec::new();
    let mut fills: Vec<(usize, usize, usize)> = Vec::new(); // (device, first bucket, count)
    for (i, s) in specs.iter().enumerate() {
        let m = &sb.members[i];
        let mut v = Vec::new();
        let mut next = m.first_bucket as usize;
        if sb.root.ptrs[..sb.root.nr_ptrs as usize]
            .iter()
            .any(|p| p.member == i as u32)
        {
            v.push((next as u64, next as u64 + 1, BucketState::Btree));
            next += 1;
        }
        let room = m.nbuckets as usize - next;
        if (s.free_pinned + s.need_discard + s.pinned + s.free) as usize > room {
            return Err(format!(
                "device {i}: {} free_pinned + {} need_discard + {} pinned + {} free > {room} \
                 allocatable buckets",
                s.free_pinned, s.need_discard, s.pinned, s.free
            ));
        }
        // Pinned to free: data on disk, freed to `free` by the journal.
        for b in next..next + s.free_pinned as usize {
            updates.push(BucketUpdate {
                member: i as u32,
                bucket: b as u32,
                state: BucketState::Free,
                gen: 0,
            });
        }
        if s.fill && s.free_pinned > 0 {
            fills.push((i, next, s.free_pinned as usize));
        }
        next += s.free_pinned as usize;
        let run = |a: usize, n: u64, st| (a as u64, a as u64 + n, st);
        v.push(run(next, s.need_discard, BucketState::NeedDiscard));
        if s.fill {
            fills.push((i, next, s.need_discard as usize));
        }
        next += s.need_discard as usize;
        // Pinned: data on disk, freed by the journal.
        for b in next..next + s.pinned as usize {
            updates.push(BucketUpdate {
                member: i as u32,
                bucket: b as u32,
                state: BucketState::NeedDiscard,
                gen: 0,
            });
        }
        if s.fill {
            fills.push((i, next, s.pinned as usize));
        }
        next += s.pinned as usize;
        v.push(run(next, s.free, BucketState::Free));
        states.push(v);
    }

    // The journal, identical on every member.
    let keys: Vec<MapKey> = (0..journal_keys).map(|i| scenario_key(seed, i)).collect();
    let deletes: Vec<u64> = keys[..journal_deletes as usize]
        .iter()
        .map(|k| k.key)
        .collect();
    let mut journal = Vec::new();
    let mut entry = vec![0u8; 16 * BLOCK_SIZE];
    let mut seq = 1;
    for chunk in updates.chunks(2000) {
        let len = encode_entry(&sb.uuid, seq, 0, &[], chunk, &mut entry)
            .ok_or("journal entry too large")?;
        journal.extend_from_slice(&entry[..len]);
        seq += 1;
    }
    for chunk in keys.chunks(per_entry as usize) {
        let (nr, records) = map_records(chunk, &[]);
        let len = encode_entry(&sb.uuid, seq, nr, &records, &[], &mut entry)
            .ok_or("journal entry too large")?;
        journal.extend_from_slice(&entry[..len]);
        seq += 1;
    }
    for chunk in deletes.chunks(per_entry as usize) {
        let (nr, records) = map_records(&[], chunk);
        let len = encode_entry(&sb.uuid, seq, nr, &records, &[], &mut entry)
            .ok_or("journal entry too large")?;
        journal.extend_from_slice(&entry[..len]);
        seq += 1;
    }
    for (i, d) in devs.iter().enumerate() {
        let m = &sb.members[i];
        let room = m.journal_blocks() as usize * BLOCK_SIZE;
        let start = journal_offset as usize * BLOCK_SIZE;
        if start + journal.len() > room {
            return Err(format!(
                "{journal_keys} keys need {} journal bytes from block {journal_offset}; member \
                 {i} has {room}",
                journal.len()
            ));
        }
        let area = m.bucket_offset(m.journal_start as u64);
        d.write_at(area + start as u64, &journal)?;
        end_journal_at(
            d,
            &sb,
            i as u32,
            journal_offset + (journal.len() / BLOCK_SIZE) as u64,
        )?;
        if journal_offset > 0 {
            end_journal_at(d, &sb, i as u32, 0)?;
        }
        let runs = &states[i];
        write_table(d, &sb, i as u32, |b| {
            if b < m.journal_start as u64 {
                BucketState::Superblock
            } else if b < m.first_bucket as u64 {
                BucketState::Journal
            } else {
                runs.iter()
                    .find(|(first, end, _)| (*first..*end).contains(&b))
                    .map_or(BucketState::Data, |r| r.2)
            }
        })?;
    }
    for &(i, first, count) in &fills {
        let m = &sb.members[i];
        let bytes = m.bucket_size as u64 * count as u64;
        let pattern = vec![0xa5u8; CHUNK_BYTES.min(bytes as usize)];
        let at = m.bucket_offset(first as u64);
        let mut done = 0;
        while done < bytes {
            let n = (bytes - done).min(pattern.len() as u64);
            devs[i].write_at(at + done, &pattern[..n as usize])?;
            done += n;
        }
    }
    let node = root_leaf(&sb, now_secs())?;
    for p in &sb.root.ptrs[..sb.root.nr_ptrs as usize] {
        let m = &sb.members[p.member as usize];
        devs[p.member as usize].write_at(m.bucket_offset(p.bucket as u64), &node)?;
    }
    for (i, d) in devs.iter().enumerate() {
        d.sync()?;
        write_superblocks(d, &sb, i as u32)?;
        d.sync()?;
    }
    let left = &keys[journal_deletes as usize..];
    let digest = left.iter().fold(0u64, |a, k| a.wrapping_add(k.digest()));
    let left = left.len();
    let _ = writeln!(report, "scenario: uuid {}", UuidFmt(&sb.uuid));
    let _ = writeln!(
        report,
        "scenario: journal keys {journal_keys}, deletions {journal_deletes}, pinned buckets {}, \
         {} entries",
        updates.len(),
        seq - 1
    );
    for (i, first, count) in &fills {
        let _ = writeln!(
            report,
            "scenario: filled dev {i} buckets {first}..{}",
            first + count
        );
    }
    let _ = writeln!(report, "scenario: expect keys {left} digest {digest:016x}");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::{figures, walk, Record};
    use bucketfs_core::journal_format::decode_entry;
    use bucketfs_core::namespace_format::{inode_pos, InodeDisk, ROOT_INO, S_IFDIR};
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let d = std::env::temp_dir()
                .join(format!("bucketfs-scenario-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Scratch(d)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Replays the journal of the image `dev` onto its tree, as the kernel does: records in
    /// entry order, a deletion removing its key. Returns every key after the replay.
    fn replayed(dev: &Device) -> Vec<Record> {
        let tree = walk(std::slice::from_ref(dev)).unwrap();
        let sb = tree.sb;
        let mut keys: BTreeMap<Pos, Vec<u8>> =
            tree.keys.into_iter().map(|r| (r.pos, r.val)).collect();
        let m = sb.members[0];
        let mut area = vec![0u8; m.journal_blocks() as usize * BLOCK_SIZE];
        dev.read_at(m.bucket_offset(m.journal_start as u64), &mut area)
            .unwrap();
        let mut off = 0;
        let mut seq = sb.journal_seq;
        while off < area.len() {
            let Ok(h) = decode_entry(
                &sb.uuid,
                &area[off..],
                |k| {
                    if k.deleted {
                        keys.remove(&k.pos);
                    } else {
                        keys.insert(k.pos, k.val.to_vec());
                    }
                },
                |_| {},
            ) else {
                break;
            };
            assert_eq!(h.seq, seq);
            seq += 1;
            off += h.blocks as usize * BLOCK_SIZE;
        }
        keys.into_iter()
            .map(|(pos, val)| Record { pos, val })
            .collect()
    }

    #[test]
    fn the_expectation_is_what_a_replay_of_the_journal_gives() {
        let dir = Scratch::new("deletes");
        let img = dir.0.join("a.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        for (keys, deletes) in [(700, 0), (700, 250), (300, 300), (0, 0)] {
            let spec = dir.0.join("s.toml");
            std::fs::write(
                &spec,
                format!(
                    "bucket_size = \"4k\"\njournal_keys = {keys}\nkeys_per_entry = 100\n\
                     journal_deletes = {deletes}\n[[device]]\nfree = 100\n"
                ),
            )
            .unwrap();
            let mut devs = vec![Device::open(&img, true).unwrap()];
            let report = scenario_quiet(spec.to_str().unwrap(), &mut devs).unwrap();
            let after = replayed(&devs[0]);
            let (n, digest, ns) = figures(&after);
            let want = format!("scenario: expect keys {n} digest {digest:016x}\n");
            assert!(report.ends_with(&want), "{report} vs {want}");
            assert_eq!(n, keys - deletes);
            // The root directory, and nothing else of the namespace.
            assert_eq!(ns, 1);
            assert!(after.iter().any(|r| r.pos == inode_pos(ROOT_INO)));
        }
        // More deletions than keys are refused.
        let spec = dir.0.join("bad.toml");
        std::fs::write(&spec, "journal_keys = 3\njournal_deletes = 4\n[[device]]\n").unwrap();
        let mut devs = vec![Device::open(&img, true).unwrap()];
        assert!(scenario_quiet(spec.to_str().unwrap(), &mut devs).is_err());
    }

    #[test]
    fn format_writes_the_root_directory() {
        let dir = Scratch::new("format");
        let img = dir.0.join("a.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        let devs = vec![Device::open(&img, true).unwrap()];
        let layout = plan(
            &devs,
            &FormatSpec {
                options: Options::default(),
                bucket_size: 4096,
                labels: Vec::new(),
            },
        )
        .unwrap();
        let before = now_secs();
        crate::format::write(&devs, &layout).unwrap();
        let after = now_secs();
        let tree = walk(&devs).unwrap();
        assert_eq!(tree.keys.len(), 1);
        let k = &tree.keys[0];
        assert_eq!(k.pos, inode_pos(ROOT_INO));
        let i = <InodeDisk as bucketfs_core::layout::Field>::read(&k.val);
        assert_eq!(
            (i.mode, i.nlink, i.uid, i.gid, i.size, i.rdev),
            (S_IFDIR | 0o755, 2, 0, 0, 0, 0)
        );
        assert!((before..=after).contains(&i.mtime_sec));
        assert_eq!((i.atime_sec, i.ctime_sec), (i.mtime_sec, i.mtime_sec));
        assert_eq!((i.atime_nsec, i.mtime_nsec, i.ctime_nsec), (0, 0, 0));
        assert_eq!(figures(&tree.keys), (0, 0, 1));
    }
}

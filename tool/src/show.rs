//! `show-super`: print a member's superblock.

use crate::device::Device;
use bucketfs_core::assemble::Probe;
use bucketfs_core::options::{Opt, OPTIONS};
use bucketfs_core::superblock::*;
use serde_json::json;

/// The superblock (the newest valid copy) and size of each device, for assembly.
pub fn read_probes(devs: &[Device]) -> Result<Vec<Probe>, String> {
    devs.iter()
        .map(|d| {
            Ok(Probe {
                sb: read_super(d)?.0,
                bytes: d.size,
            })
        })
        .collect()
}

/// Reads the newest valid superblock copy of `dev`, with a note for each copy refused.
pub fn read_super(dev: &Device) -> Result<(Superblock, Vec<String>), String> {
    let mut notes = Vec::new();
    let mut best: Option<Superblock> = None;
    for (copy, off) in ["primary", "backup"].iter().zip(SB_OFFSETS) {
        let mut buf = vec![0u8; SB_SIZE];
        dev.read_at(off, &mut buf)?;
        match Superblock::decode(&buf) {
            Ok(sb) if best.map_or(true, |b| sb.seq > b.seq) => best = Some(sb),
            Ok(_) => {}
            Err(e) => notes.push(format!(
                "{copy} superblock at {off} refused: bad {} ({e:?})",
                e.field()
            )),
        }
    }
    best.map(|sb| (sb, notes.clone())).ok_or_else(|| {
        format!(
            "{}: no valid superblock: {}",
            dev.path.display(),
            notes.join("; ")
        )
    })
}

pub fn show(dev: &Device, as_json: bool) -> Result<(), String> {
    let (sb, notes) = read_super(dev)?;
    let uuid = UuidFmt(&sb.uuid).to_string();
    let options: serde_json::Map<String, serde_json::Value> = Opt::ALL
        .iter()
        .map(|&o| {
            let v = match o.desc().kind {
                bucketfs_core::options::Kind::Target => json!(sb.options.target().to_string()),
                _ => json!(sb.options.get(o)),
            };
            (o.desc().name.to_string(), v)
        })
        .collect();
    let root_ptrs: Vec<_> = sb.root.ptrs[..sb.root.nr_ptrs as usize]
        .iter()
        .map(|p| json!({"member": p.member, "bucket": p.bucket}))
        .collect();
    let members: Vec<_> = sb
        .member_table()
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if m.is_removed() {
                return json!({"index": i, "removed": true});
            }
            json!({
                "index": i, "uuid": UuidFmt(&m.uuid).to_string(), "nbuckets": m.nbuckets,
                "bucket_size": m.bucket_size, "table_start": m.table_start,
                "table_buckets": m.table_buckets, "journal_start": m.journal_start,
                "journal_buckets": m.journal_buckets, "first_bucket": m.first_bucket,
                "discard": m.discard(), "label": sb.labels[i].as_str(),
            })
        })
        .collect();
    if as_json {
        let v = json!({
            "uuid": uuid, "seq": sb.seq, "member_index": sb.member_index,
            "nr_members": sb.nr_members, "options": options, "journal_seq": sb.journal_seq,
            "btree_root": {"level": sb.root.level, "node_seq": sb.root.node_seq, "ptrs": root_ptrs},
            "members": members, "notes": notes,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
        return Ok(());
    }
    println!(
        "{}: bucketfs superblock (format version {VERSION})",
        dev.path.display()
    );
    println!("  uuid:          {uuid}");
    println!("  seq:           {}", sb.seq);
    println!("  member:        {} of {}", sb.member_index, sb.nr_members);
    println!("  journal seq:   {}", sb.journal_seq);
    print!(
        "  btree root:    level {}, node seq {}, copies:",
        sb.root.level, sb.root.node_seq
    );
    for p in &sb.root.ptrs[..sb.root.nr_ptrs as usize] {
        print!(" member {} bucket {};", p.member, p.bucket);
    }
    println!();
    println!("  options:");
    for d in OPTIONS.iter() {
        let o = bucketfs_core::options::lookup(d.name).unwrap();
        let mut v = String::new();
        let _ = sb.options.show(o, &mut v);
        println!("    {:<28} {v}", d.name);
    }
    println!("  members:");
    for (i, m) in sb.member_table().iter().enumerate() {
        if m.is_removed() {
            println!("    member {i}: removed");
            continue;
        }
        println!(
            "    {i}: {} {} buckets x {} B; table {}+{}, journal {}+{}, first bucket {}, discard \
             {}, label '{}'",
            UuidFmt(&m.uuid),
            m.nbuckets,
            m.bucket_size,
            m.table_start,
            m.table_buckets,
            m.journal_start,
            m.journal_buckets,
            m.first_bucket,
            if m.discard() { "on" } else { "off" },
            sb.labels[i].as_str()
        );
    }
    for n in notes {
        println!("  note: {n}");
    }
    Ok(())
}

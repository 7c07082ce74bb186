//! `Documentation/on-disk-format.md` agrees with the code: every structure table lists exactly
//! the fields `layout!` declares, at the same offsets and sizes; the option slots and the bucket
//! state values are those of the code.

use bucketfs_core::bkey::{self, KeyHeaderDisk};
use bucketfs_core::btree_format::{self, Child, NodeHeaderDisk};
use bucketfs_core::bucket_table::{BucketState, TableHeaderDisk};
use bucketfs_core::extent::{self, DataPtrDisk, ExtentHeaderDisk};
use bucketfs_core::journal_format::{self, EntryHeaderDisk, UpdateDisk};
use bucketfs_core::layout::{Field, FieldDesc};
use bucketfs_core::namespace_format::{self as ns, DirentHeaderDisk, InodeDisk};
use bucketfs_core::options::{Kind, OPTIONS};
use bucketfs_core::superblock::{BtreeRoot, Member, NodePtr, SbDisk};

const DOC: &str = include_str!("../../Documentation/on-disk-format.md");

/// The cells of the table rows that follow `marker` (header and separator rows skipped).
fn table(marker: &str) -> Vec<Vec<String>> {
    let at = DOC
        .find(&format!("<!-- {marker} -->"))
        .unwrap_or_else(|| panic!("no <!-- {marker} --> in the document"));
    DOC[at..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

fn unquote(s: &str) -> &str {
    s.trim_matches('`')
}

#[test]
fn structure_tables_match_the_declarations() {
    let structs: [(&str, &[FieldDesc]); 14] = [
        ("SbDisk", SbDisk::FIELDS),
        ("Member", Member::FIELDS),
        ("BtreeRoot", BtreeRoot::FIELDS),
        ("NodePtr", NodePtr::FIELDS),
        ("TableHeaderDisk", TableHeaderDisk::FIELDS),
        ("EntryHeaderDisk", EntryHeaderDisk::FIELDS),
        ("UpdateDisk", UpdateDisk::FIELDS),
        ("KeyHeaderDisk", KeyHeaderDisk::FIELDS),
        ("InodeDisk", InodeDisk::FIELDS),
        ("DirentHeaderDisk", DirentHeaderDisk::FIELDS),
        ("NodeHeaderDisk", NodeHeaderDisk::FIELDS),
        ("Child", Child::FIELDS),
        ("ExtentHeaderDisk", ExtentHeaderDisk::FIELDS),
        ("DataPtrDisk", DataPtrDisk::FIELDS),
    ];
    for (name, fields) in structs {
        let rows = table(&format!("layout: {name}"));
        let documented: Vec<(String, usize, usize)> = rows
            .iter()
            .map(|r| {
                let off = usize::from_str_radix(r[0].trim_start_matches("0x"), 16)
                    .unwrap_or_else(|_| panic!("{name}: bad offset {:?}", r[0]));
                let size = r[1]
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: bad size {:?}", r[1]));
                (unquote(&r[3]).to_string(), off, size)
            })
            .collect();
        let declared: Vec<(String, usize, usize)> = fields
            .iter()
            .map(|f| (f.name.to_string(), f.offset, f.size))
            .collect();
        assert_eq!(documented, declared, "{name}");
    }
}

#[test]
fn option_slots_match_the_option_table() {
    let rows = table("options");
    assert_eq!(rows.len(), OPTIONS.len());
    for (r, d) in rows.iter().zip(OPTIONS.iter()) {
        assert_eq!(r[0], d.sb_slot.to_string(), "{}", d.name);
        assert_eq!(unquote(&r[1]), d.name);
        let range = match d.kind {
            Kind::U32 { min, max } => format!("{min} ..= {max}"),
            Kind::Bool => "0 or 1".to_string(),
            Kind::Target => "0 (none), 1 ..= 16 (`dev-0` ..= `dev-15`), 256 (a label)".to_string(),
        };
        assert!(
            r[2].starts_with(&range),
            "{}: {:?} vs {range}",
            d.name,
            r[2]
        );
        assert_eq!(r[3], d.default.to_string(), "{}", d.name);
    }
}

#[test]
fn bucket_state_values_match() {
    let rows = table("states");
    assert_eq!(rows.len(), BucketState::ALL.len());
    for (r, s) in rows.iter().zip(BucketState::ALL) {
        assert_eq!(r[0], (s as u8).to_string());
        assert_eq!(unquote(&r[1]), s.name());
    }
}

#[test]
fn layout_example_matches() {
    let m = Member::layout(64 << 20, 4096, [1; 16]).unwrap();
    let big = Member::layout(64 << 20, 65536, [1; 16]).unwrap();
    let sizes = |m: &Member| {
        [
            m.nbuckets,
            m.table_start as u64,
            m.table_buckets as u64,
            m.journal_start as u64,
            m.journal_buckets as u64,
            m.first_bucket as u64,
        ]
    };
    assert_eq!(sizes(&m), [16384, 3, 17, 20, 256, 276]);
    assert_eq!(sizes(&big), [1024, 1, 1, 2, 16, 18]);
    let tib = Member::layout(1 << 40, 65536, [1; 16]).unwrap();
    assert_eq!(sizes(&tib), [16777216, 1, 1037, 1038, 16384, 17422]);
    assert!(DOC.contains(
        "Example: 64 MiB with 4096-byte buckets gives `nbuckets` 16384, `table_start` 3,\n\
         `table_buckets` 17, `journal_start` 20, `journal_buckets` 256, `first_bucket` 276; with\n\
         65536-byte buckets, 1024, 1, 1, 2, 16, 18. 1 TiB with 65536-byte buckets gives \
         `nbuckets`\n\
         16777216, `table_start` 1, `table_buckets` 1037, `journal_start` 1038, `journal_buckets`\n\
         16384 (1 GiB, the cap), `first_bucket` 17422."
    ));
}

#[test]
fn sequence_limits_match() {
    use bucketfs_core::journal_format::MAX_ENTRY_SEQ;
    use bucketfs_core::superblock::MAX_SEQ;
    assert_eq!(MAX_SEQ, 1 << 62);
    assert_eq!(MAX_ENTRY_SEQ, (1 << 62) - 2);
    // The document states both limits and the rule that links them, in the journal entry's
    // table and in the sequence number rules.
    assert!(DOC.contains("`<= 2^62 - 2` (`MAX_ENTRY_SEQ`)"));
    assert!(DOC.contains("`MAX_ENTRY_SEQ` = 2^62 - 2"));
    assert!(DOC.contains("below `2^62` (`MAX_SEQ`)"));
    let seq_rows = |marker: &str| -> String {
        table(marker)
            .into_iter()
            .find(|r| unquote(&r[3]) == "seq")
            .map(|r| r[5].clone())
            .unwrap_or_else(|| panic!("{marker}: no seq row"))
    };
    // Every sequence number read from disk is bounded; only the table block's is not checked.
    assert_eq!(seq_rows("layout: SbDisk"), "`< 2^62`");
    assert_eq!(seq_rows("layout: NodeHeaderDisk"), "`< 2^62`");
    assert_eq!(
        seq_rows("layout: EntryHeaderDisk"),
        "`<= 2^62 - 2` (`MAX_ENTRY_SEQ`)"
    );
    assert_eq!(seq_rows("layout: TableHeaderDisk"), "not checked");
}

#[test]
fn member_flags_match() {
    use bucketfs_core::superblock::{MEMBER_DISCARD, MEMBER_REMOVED};
    let flags = table("layout: Member")
        .into_iter()
        .find(|r| unquote(&r[3]) == "flags")
        .expect("no flags row");
    for (bit, name, value) in [
        (0, "MEMBER_DISCARD", MEMBER_DISCARD),
        (1, "MEMBER_REMOVED", MEMBER_REMOVED),
    ] {
        assert_eq!(value, 1 << bit, "{name}");
        assert!(
            flags[4].contains(&format!("bit {bit} (`{name}`)")),
            "{name}: {:?}",
            flags[4]
        );
    }
    // The removed entry is described as the code builds it.
    let r = Member::removed();
    assert_eq!(r.flags, 2);
    assert!(DOC.contains("is 64 zero bytes but `flags` =\n`0x2`"));
    assert!(flags[5].contains("with bit 1, exactly `0x2`"));
}

#[test]
fn key_kinds_match() {
    let rows = table("kinds");
    let kinds = [
        bkey::Kind::Map,
        bkey::Kind::Inode,
        bkey::Kind::Dirent,
        bkey::Kind::Symlink,
        bkey::Kind::Extent,
    ];
    assert_eq!(rows.len(), kinds.len());
    for (r, k) in rows.iter().zip(kinds) {
        assert_eq!(r[0], (k as u8).to_string());
        assert_eq!(bkey::Kind::from_u8(k as u8), Some(k));
        assert_eq!(unquote(&r[1]), format!("{k:?}"));
    }
    // No other code is a kind.
    assert!((0..=255u8)
        .filter(|&c| bkey::Kind::from_u8(c).is_some())
        .eq(1..=5));
}

#[test]
fn format_2_figures_match() {
    use bucketfs_core::superblock::{BLOCK_SIZE, VERSION};
    assert_eq!(VERSION, 2);
    assert!(DOC.contains("This describes format version 2"));
    assert!(DOC.contains("The superblock's `version` is 2"));
    // Record sizes and limits.
    assert_eq!(bkey::KEY_HEADER, 24);
    assert_eq!(bkey::MAX_VAL, 1024);
    assert_eq!(bkey::FLAG_DELETE, 1);
    assert_eq!(bkey::record_size(5), 24 + 8);
    assert!(DOC.contains("`24 + ceil(len / 8) × 8` bytes"));
    assert!(DOC.contains("at most 1024 bytes (`MAX_VAL`)"));
    assert!(DOC.contains("bit 0 (`FLAG_DELETE`)"));
    // Leaves and children.
    assert_eq!(btree_format::LEAF_BYTES, 4032);
    assert_eq!(btree_format::LEAF_BYTES / bkey::record_size(8), 126);
    assert_eq!(btree_format::INTERIOR_CAPACITY, 63);
    assert_eq!(Child::SIZE, 64);
    assert!(DOC.contains("leaf `<= 4032` (`LEAF_BYTES`); interior `nr × 64`"));
    assert!(DOC.contains("(4032 bytes at most: 126 map keys)"));
    assert!(DOC.contains("children of 64 bytes, at most 63 (`INTERIOR_CAPACITY`)"));
    // Journal entries.
    assert_eq!(journal_format::MAX_KEY_BYTES, 65472);
    assert_eq!(journal_format::MAX_KEY_BYTES / bkey::record_size(8), 2046);
    assert_eq!(
        journal_format::MAX_KEY_BYTES,
        16 * BLOCK_SIZE - EntryHeaderDisk::SIZE
    );
    assert!(DOC.contains("`needed = ceil((64 + key_bytes + 16 × nr_updates) / 4096)`"));
    assert!(DOC.contains("65472 bytes of records, `MAX_KEY_BYTES`:\n2046 map keys"));
    // Namespace constants.
    assert_eq!(ns::ROOT_INO, 1);
    assert_eq!(ns::MAX_INO, (1 << 32) - 1);
    assert_eq!(ns::MAX_NAME, 255);
    assert_eq!(ns::DIRENT_PROBE, 32);
    assert_eq!(ns::HASH_LIMIT, 1 << 30);
    assert!(DOC.contains("`< 2^30` (`HASH_LIMIT`)"));
    assert_eq!(ns::SYMLINK_PIECE, 1024);
    assert_eq!(ns::MAX_SYMLINK, 4095);
    assert_eq!(ns::MAX_SIZE, (1 << 63) - 1);
    assert_eq!(ns::INODE_SIZE, 64);
    assert_eq!(ns::DIRENT_HEADER, 16);
    assert_eq!(ns::MAX_SYMLINK.div_ceil(ns::SYMLINK_PIECE), 4);
    // Extents.
    assert_eq!(extent::MAX_DATA_REPLICAS, 4);
    assert_eq!(extent::EXTENT_UNWRITTEN, 1);
    assert_eq!(extent::MAX_FILE_BLOCKS, 1 << 51);
    assert_eq!(extent::EXTENT_HEADER, 8);
    assert_eq!(extent::DATA_PTR_SIZE, 16);
    for text in [
        "bit 0 (`EXTENT_UNWRITTEN`)",
        "1 ..= 4 (`MAX_DATA_REPLICAS`)",
        "exactly `8 + 16 × nr_ptrs` bytes",
        "above 2^51 (`MAX_FILE_BLOCKS`",
        "`len ..= 2^51` (`MAX_FILE_BLOCKS`)",
        "Bytes 0x6 .. 0x8 are zero",
        "Bytes 0x4 .. 0x8 are zero",
    ] {
        assert!(DOC.contains(text), "{text:?}");
    }
    for text in [
        "Inode 1 (`ROOT_INO`)",
        "1 ..= 2^32 - 1 (`MAX_INO`)",
        "1 to 255 bytes\n(`MAX_NAME`)",
        "32\n(`DIRENT_PROBE`)",
        "`< 2^30` (`HASH_LIMIT`)",
        "modulo\n`2^30 - 32`",
        "1 to 4095 bytes, `MAX_SYMLINK`",
        "at most 1024 bytes: keys",
        "up to piece 3",
        "1 ..= 1024 bytes of the target (`SYMLINK_PIECE`)",
        "`<= 2^63 - 1`; a symbolic link 1 ..= 4095",
    ] {
        assert!(DOC.contains(text), "{text:?}");
    }
}

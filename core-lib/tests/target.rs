//! Issue 14: member labels and `metadata_target`: the label and target syntax, their encoding
//! in the option table and the superblock, the decoder's checks, and old superblocks.

use bucketfs_core::crc32c::block_crc;
use bucketfs_core::options::*;
use bucketfs_core::superblock::*;
use bucketfs_core::target::*;

fn label(s: &str) -> Label {
    Label::parse(s).unwrap()
}

#[test]
fn labels_take_lowercase_names_up_to_31_bytes() {
    for ok in [
        "ssd",
        "hdd",
        "hdd.hdd1",
        "a_b-c.0",
        &"x".repeat(31),
        "nonex",
        "dev-x",
        "dev",
    ] {
        let l = label(ok);
        assert_eq!(l.as_str(), ok);
        assert!(l.is_valid(), "{ok}");
    }
    assert_eq!(Label::parse("ssd\n"), Ok(label("ssd")));
    assert_eq!(Label::parse(""), Ok(Label::NONE));
    assert_eq!(Label::parse("\n"), Ok(Label::NONE));
    assert_eq!(Label::parse(&"x".repeat(32)), Err(LabelError::TooLong));
    for bad in [
        "SSD", "s d", "ssd\n\n", ".ssd", "ssd.", "a..b", "é", "a/b", "a\0b", "ssd\r",
    ] {
        assert_eq!(Label::parse(bad), Err(LabelError::BadByte), "{bad:?}");
    }
    for reserved in ["none", "dev-0", "dev-15", "dev-99", "dev-007"] {
        assert_eq!(
            Label::parse(reserved),
            Err(LabelError::Reserved),
            "{reserved}"
        );
    }
}

#[test]
fn a_label_target_takes_the_label_and_its_sub_labels() {
    let hdd = label("hdd");
    assert!(label("hdd").within(&hdd));
    assert!(label("hdd.hdd1").within(&hdd));
    assert!(!label("hdd2").within(&hdd));
    assert!(!label("ssd").within(&hdd));
    assert!(!Label::NONE.within(&hdd));
    assert!(!label("hdd").within(&label("hdd.hdd1")));
    let labels = [
        label("ssd"),
        label("hdd.hdd1"),
        Label::NONE,
        label("hdd.hdd2"),
    ];
    assert_eq!(Target::Label(hdd).members(&labels), 0b1010);
    assert_eq!(Target::Label(label("ssd")).members(&labels), 0b0001);
    assert_eq!(Target::Label(label("nvme")).members(&labels), 0);
    assert_eq!(Target::Member(2).members(&labels), 0b0100);
    assert_eq!(Target::Member(4).members(&labels), 0);
    assert_eq!(Target::None.members(&labels), 0);
}

#[test]
fn targets_parse_and_round_trip_through_their_code() {
    for (text, t) in [
        ("none", Target::None),
        ("dev-0", Target::Member(0)),
        ("dev-15\n", Target::Member(15)),
        ("hdd", Target::Label(label("hdd"))),
        ("hdd.hdd1", Target::Label(label("hdd.hdd1"))),
    ] {
        assert_eq!(Target::parse(text), Ok(t), "{text}");
        let (code, l) = t.code();
        assert!(Target::code_valid(code));
        assert_eq!(Target::from_code(code, &l), Some(t));
        assert_eq!(t.to_string(), text.trim_end());
    }
    for bad in ["", "\n", "dev-16", "dev-01", "HDD", "a b", "dev-1 "] {
        assert!(Target::parse(bad).is_err(), "{bad:?}");
    }
    // A label beside a non-label code, or a label code without a valid label: no target.
    assert_eq!(Target::from_code(TARGET_LABEL, &Label::NONE), None);
    assert_eq!(Target::from_code(TARGET_NONE, &label("hdd")), None);
    assert_eq!(Target::from_code(TARGET_MEMBER + 16, &Label::NONE), None);
    assert_eq!(Target::from_code(7777, &Label::NONE), None);
}

#[test]
fn metadata_target_is_an_option_of_the_table() {
    let d = Opt::MetadataTarget.desc();
    assert_eq!(lookup("metadata_target"), Some(Opt::MetadataTarget));
    assert_eq!(d.kind, Kind::Target);
    assert!(d.settable.format && d.settable.mount && d.settable.runtime);
    assert_eq!(Options::default().target(), Target::None);
    assert_eq!(Options::default().get(Opt::MetadataTargetFallback), 0);
    // Parsed whole by the mount/remount/sysfs parser: the label is kept.
    let mut m = MountOptions::default();
    m.parse_at(When::Runtime, "metadata_target", "hdd\n")
        .unwrap();
    let o = m.apply(&Options::default(), 3).unwrap();
    assert_eq!(o.target(), Target::Label(label("hdd")));
    let mut shown = String::new();
    o.show(Opt::MetadataTarget, &mut shown).unwrap();
    assert_eq!(shown, "hdd");
    let mut shown = String::new();
    m.show(Opt::MetadataTarget, &mut shown).unwrap();
    assert_eq!(shown, "hdd");
    // Garbage is refused with a reason.
    for bad in ["HDD", "a b", "", "dev-16", "x".repeat(40).as_str()] {
        assert!(matches!(
            MountOptions::default().parse_at(When::Mount, "metadata_target", bad),
            Err(OptError::BadTarget(_))
        ));
    }
    // A runtime change applies with its label, all or none.
    let mut live = Options::default();
    live.set_all(&MountOptions::target(Target::Label(label("ssd"))), 2)
        .unwrap();
    assert_eq!(live.target(), Target::Label(label("ssd")));
    live.set_all(&MountOptions::target(Target::None), 2)
        .unwrap();
    assert_eq!(live.target(), Target::None);
    assert_eq!(live.target_label(), Label::NONE);
}

#[test]
fn a_target_must_name_a_member() {
    let labels = [label("ssd"), label("hdd.a")];
    let base = Options::default();
    let given = |t: &str| {
        let mut m = MountOptions::default();
        m.parse_at(When::Mount, "metadata_target", t).unwrap();
        m
    };
    assert!(given("hdd").apply_for(&base, &labels).is_ok());
    assert!(given("hdd.a").apply_for(&base, &labels).is_ok());
    assert!(given("dev-1").apply_for(&base, &labels).is_ok());
    assert_eq!(
        given("nvme").apply_for(&base, &labels),
        Err((Opt::MetadataTarget, OptError::NoMemberLabelled))
    );
    assert_eq!(
        given("dev-2").apply_for(&base, &labels),
        Err((Opt::MetadataTarget, OptError::NoSuchMember { members: 2 }))
    );
    // A stored target that names no member (relabelled since) is not a mount error.
    let stored = base.with_target(Target::Label(label("nvme")));
    assert!(MountOptions::default().apply_for(&stored, &labels).is_ok());
    let mut msg = String::new();
    OptError::NoMemberLabelled.describe(&mut msg).unwrap();
    assert_eq!(msg, "no member carries this label");
}

fn two_member_sb() -> Superblock {
    let mut members = [Member::default(); MAX_MEMBERS];
    members[0] = Member::layout(8 << 20, 4096, [1; 16]).unwrap();
    members[1] = Member::layout(8 << 20, 4096, [2; 16]).unwrap();
    let mut root = BtreeRoot {
        level: 0,
        nr_ptrs: 1,
        node_seq: 1,
        ..Default::default()
    };
    root.ptrs[0] = NodePtr {
        member: 0,
        bucket: members[0].first_bucket,
    };
    Superblock {
        uuid: [9; 16],
        seq: 1,
        member_index: 0,
        nr_members: 2,
        options: Options::default(),
        journal_seq: 1,
        journal_offset: 0,
        root,
        members,
        labels: Default::default(),
    }
}

/// Sets bytes of an encoded superblock and fixes its checksum, as a damaged disk could.
fn poke(b: &mut [u8], at: usize, bytes: &[u8]) {
    b[at..at + bytes.len()].copy_from_slice(bytes);
    let crc = block_crc(&b[..SB_SIZE], 12);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn the_decoder_refuses_bad_labels_and_targets() {
    let mut sb = two_member_sb();
    sb.labels[0] = label("ssd");
    sb.labels[1] = label("hdd");
    sb.options = sb.options.with_target(Target::Label(label("hdd")));
    let mut good = vec![0u8; SB_SIZE];
    sb.encode(&mut good);
    assert_eq!(Superblock::decode(&good), Ok(sb));
    let refused = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        poke(&mut b, at, bytes);
        Superblock::decode(&b)
    };
    // Member 1's label: an uppercase byte, bytes after the end, no terminating zero, reserved.
    assert_eq!(refused(0x520, b"HDD"), Err(SbError::Label(1)));
    assert_eq!(refused(0x525, b"x"), Err(SbError::Label(1)));
    assert_eq!(refused(0x520, &[b'a'; 32]), Err(SbError::Label(1)));
    assert_eq!(refused(0x520, b"none"), Err(SbError::Label(1)));
    assert_eq!(refused(0x520, b"dev-1"), Err(SbError::Label(1)));
    assert_eq!(SbError::Label(1).field(), "label");
    // Labels past the member table are not looked at (read as none).
    let past = refused(0x540, b"GARBAGE").unwrap();
    assert_eq!(past.labels[2], Label::NONE);
    // The target's label: bad, missing, or beside a code that is not a label target.
    assert_eq!(
        refused(0x700, b"H"),
        Err(SbError::Option(Opt::MetadataTarget))
    );
    assert_eq!(
        refused(0x700, &[0; 32]),
        Err(SbError::Option(Opt::MetadataTarget))
    );
    assert_eq!(
        refused(0x040, &[0, 0, 0, 0]),
        Err(SbError::Option(Opt::MetadataTarget))
    );
    assert_eq!(
        refused(0x040, &[9, 1, 0, 0]),
        Err(SbError::Option(Opt::MetadataTarget))
    );
    // dev-N beyond the members; the fallback flag is a boolean.
    let mut member_target = sb;
    member_target.options = sb.options.with_target(Target::Member(1));
    let mut b = vec![0u8; SB_SIZE];
    member_target.encode(&mut b);
    assert_eq!(Superblock::decode(&b), Ok(member_target));
    poke(&mut b, 0x040, &[3, 0, 0, 0]);
    assert_eq!(
        Superblock::decode(&b),
        Err(SbError::Option(Opt::MetadataTarget))
    );
    assert_eq!(
        refused(0x044, &[2, 0, 0, 0]),
        Err(SbError::Option(Opt::MetadataTargetFallback))
    );
}

#[test]
fn a_superblock_from_before_labels_mounts_with_no_labels_and_no_target() {
    // Bytes 0x040..0x048 and 0x500..0x1000 zero, as every superblock written before.
    let sb = two_member_sb();
    let mut b = vec![0u8; SB_SIZE];
    sb.encode(&mut b);
    assert!(b[0x040..0x048].iter().all(|&x| x == 0));
    assert!(b[0x500..].iter().all(|&x| x == 0));
    let d = Superblock::decode(&b).unwrap();
    assert!(d.labels.iter().all(|l| l.is_none()));
    assert_eq!(d.options.target(), Target::None);
    assert_eq!(d.options.get(Opt::MetadataTargetFallback), 0);
}

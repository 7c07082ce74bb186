use bucketfs_core::assemble::*;
use bucketfs_core::options::Options;
use bucketfs_core::superblock::*;

fn fs(uuid: u8, nr: u32, seq: u64) -> Vec<Probe> {
    let mut members = [Member::default(); MAX_MEMBERS];
    for (i, m) in members.iter_mut().take(nr as usize).enumerate() {
        *m = Member::layout(64 << 20, 4096, [i as u8 + 1; 16]).unwrap();
    }
    let mut root = BtreeRoot {
        nr_ptrs: 1,
        ..Default::default()
    };
    root.ptrs[0] = NodePtr {
        member: 0,
        bucket: members[0].first_bucket,
    };
    (0..nr)
        .map(|i| Probe {
            sb: Superblock {
                uuid: [uuid; 16],
                seq,
                member_index: i,
                nr_members: nr,
                options: Options::default(),
                journal_seq: 1,
                journal_offset: 0,
                root,
                members,
                labels: Default::default(),
            },
            bytes: 64 << 20,
        })
        .collect()
}

#[test]
fn assembles_in_any_order_and_picks_the_newest() {
    let mut p = fs(7, 3, 4);
    p.swap(0, 2);
    p[1].sb.seq = 9;
    let a = assemble(&p).unwrap();
    assert_eq!(a.newest, 1);
    assert_eq!(&a.device_of[..3], &[2, 1, 0]);
}

#[test]
fn refuses_foreign_missing_duplicate_unknown_and_small() {
    let mut p = fs(7, 2, 1);
    p[1] = fs(8, 2, 1)[1];
    assert_eq!(assemble(&p), Err(AssembleError::Foreign(1)));

    let p = fs(7, 3, 1);
    assert_eq!(assemble(&p[..2]), Err(AssembleError::Missing(2)));

    let mut p = fs(7, 2, 1);
    p[1] = p[0];
    assert_eq!(assemble(&p), Err(AssembleError::SameMember(0, 1)));

    let mut p = fs(7, 2, 1);
    p[1].sb.members[1].uuid = [0xee; 16];
    assert_eq!(assemble(&p), Err(AssembleError::UnknownMember(1)));

    let mut p = fs(7, 2, 1);
    p[0].bytes = 1 << 20;
    assert_eq!(assemble(&p), Err(AssembleError::TooSmall(0)));

    assert_eq!(assemble(&[]), Err(AssembleError::Missing(0)));
}

#[test]
fn partial_assembly_leaves_missing_members_out() {
    let mut p = fs(7, 3, 1);
    p.remove(1);
    let a = assemble_partial(&p).unwrap();
    assert!(!a.is_missing(0));
    assert!(a.is_missing(1));
    assert!(!a.is_missing(2));
    assert_eq!(a.first_missing(3), Some(1));
    assert_eq!(&a.device_of[..3], &[0, usize::MAX, 1]);
    // The other refusals stay.
    let mut q = fs(7, 3, 1);
    q[1] = fs(8, 3, 1)[1];
    assert_eq!(assemble_partial(&q), Err(AssembleError::Foreign(1)));
    assert_eq!(assemble_partial(&[]), Err(AssembleError::Missing(0)));
    assert_eq!(assemble(&p), Err(AssembleError::Missing(1)));
}

#[test]
fn members_behind_the_newest_superblock_are_named() {
    // Every member at one seq: none behind.
    let p = fs(7, 3, 4);
    let a = assemble(&p).unwrap();
    assert_eq!(a.behind(&p), 0);
    // An interrupted superblock write: member 1 (given first) got seq 5, members 0 and 2 not.
    let mut p = fs(7, 3, 4);
    p.swap(0, 1);
    p[0].sb.seq = 5;
    let a = assemble(&p).unwrap();
    assert_eq!(a.behind(&p), 0b101);
    // A partial (degraded) assembly names only the members given.
    let a = assemble_partial(&p[..2]).unwrap();
    assert_eq!(a.behind(&p[..2]), 0b001);
}

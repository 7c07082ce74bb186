//! Removing a member (`member_remove.rs`): the on-disk representation of a removed entry, the
//! plan and its refusals, the decoder's rules for removed entries, and what the mount's
//! assembly makes of every state a crash can leave during the removal's writes.

use bucketfs_core::assemble::*;
use bucketfs_core::member_remove::*;
use bucketfs_core::options::{Opt, Options};
use bucketfs_core::superblock::*;
use bucketfs_core::target::{Label, Target};

const MIB: u64 = 1 << 20;

/// `nr` members, two replicas (or fewer members), the root on member 0.
fn fs(nr: u32, seq: u64) -> Superblock {
    let mut members = [Member::default(); MAX_MEMBERS];
    for (i, m) in members.iter_mut().take(nr as usize).enumerate() {
        *m = Member::layout(64 * MIB, 4096, [i as u8 + 1; 16]).unwrap();
    }
    let mut options = Options::default();
    options.set(Opt::MetadataReplicas, 2.min(nr), nr).unwrap();
    let mut root = BtreeRoot {
        nr_ptrs: 1,
        node_seq: 3,
        ..Default::default()
    };
    root.ptrs[0] = NodePtr {
        member: 0,
        bucket: members[0].first_bucket + 5,
    };
    Superblock {
        uuid: [7; 16],
        seq,
        member_index: 0,
        nr_members: nr,
        options,
        journal_seq: 9,
        journal_offset: 4,
        root,
        members,
        labels: Default::default(),
    }
}

fn roundtrip(sb: &Superblock) -> Result<Superblock, SbError> {
    let mut buf = vec![0u8; SB_SIZE];
    sb.encode(&mut buf);
    Superblock::decode(&buf)
}

#[test]
fn removed_entry_is_the_flag_and_zeros() {
    let r = Member::removed();
    assert!(r.is_removed());
    assert_eq!(r.flags, MEMBER_REMOVED);
    assert_eq!(Member { flags: 0, ..r }, Member::default());
    assert_eq!(r.validate(), Ok(()));
    // Any other field or flag set with it is refused.
    for bad in [
        Member { nbuckets: 1, ..r },
        Member { uuid: [1; 16], ..r },
        Member {
            flags: MEMBER_REMOVED | MEMBER_DISCARD,
            ..r
        },
        Member {
            first_bucket: 9,
            ..r
        },
    ] {
        assert_eq!(bad.validate(), Err(MemberField::Removed), "{bad:?}");
    }
    // The flag bit on a laid-out member is not a removal.
    let mut m = Member::layout(64 * MIB, 4096, [1; 16]).unwrap();
    m.flags |= MEMBER_REMOVED;
    assert_eq!(m.validate(), Err(MemberField::Removed));
    // Bits above it stay unknown.
    m.flags = MEMBER_DISCARD | 4;
    assert_eq!(m.validate(), Err(MemberField::Flags));
}

#[test]
fn old_superblocks_decode_as_before() {
    // No entry has the flag: nothing changes for images written before removal existed.
    let sb = fs(3, 5);
    let d = roundtrip(&sb).unwrap();
    assert_eq!(d, sb);
    assert_eq!(d.live_members(), 3);
}

#[test]
fn plan_removes_one_member_and_changes_nothing_else() {
    let sb = fs(3, 10);
    let next = plan_remove(&sb, 2, 2, 0).unwrap();
    assert_eq!(next.seq, 11);
    assert_eq!(next.nr_members, 3, "the index stays taken");
    assert_eq!(next.members[2], Member::removed());
    assert_eq!(&next.members[..2], &sb.members[..2]);
    assert_eq!(next.live_members(), 2);
    assert_eq!(
        (
            next.root,
            next.journal_seq,
            next.journal_offset,
            next.options
        ),
        (sb.root, sb.journal_seq, sb.journal_offset, sb.options)
    );
    // It decodes, as every remaining member's copy.
    for i in 0..2 {
        let mut copy = next;
        copy.member_index = i;
        assert_eq!(roundtrip(&copy), Ok(copy));
    }
    // A removed member's own copy would be refused: none is written.
    let mut copy = next;
    copy.member_index = 2;
    assert_eq!(roundtrip(&copy), Err(SbError::MemberIndex(2)));
    // A member in the middle: the others keep their indices.
    let next = plan_remove(&fs(4, 1), 1, 2, 0).unwrap();
    assert_eq!(next.members[1], Member::removed());
    assert_eq!(next.members[3], fs(4, 1).members[3]);
    // Member 0 removed: the copy's own index is the first remaining member.
    let mut sb = fs(3, 1);
    sb.root.ptrs[0].member = 1;
    sb.root.ptrs[0].bucket = sb.members[1].first_bucket;
    let next = plan_remove(&sb, 0, 2, 0).unwrap();
    assert_eq!(next.member_index, 1);
    assert_eq!(roundtrip(&next), Ok(next));
}

#[test]
fn refusals() {
    let sb = fs(3, 10);
    assert_eq!(
        plan_remove(&sb, 2, 2, 4),
        Err(RemoveError::NotEmpty(4)),
        "copies still on it"
    );
    assert_eq!(plan_remove(&sb, 3, 2, 0), Err(RemoveError::NoSuchMember));
    let next = plan_remove(&sb, 2, 2, 0).unwrap();
    assert_eq!(
        plan_remove(&next, 2, 2, 0),
        Err(RemoveError::AlreadyRemoved)
    );
    // Two members, two replicas: one left cannot hold two copies.
    assert_eq!(
        plan_remove(&fs(2, 1), 1, 2, 0),
        Err(RemoveError::TooFewMembers {
            left: 1,
            replicas: 2
        })
    );
    // The larger of the live and the stored replicas counts.
    assert_eq!(
        plan_remove(&sb, 2, 3, 0),
        Err(RemoveError::TooFewMembers {
            left: 2,
            replicas: 3
        })
    );
    let mut one = fs(2, 1);
    one.options.set(Opt::MetadataReplicas, 1, 2).unwrap();
    assert!(plan_remove(&one, 1, 1, 0).is_ok());
    // The last member is never removed.
    let last = plan_remove(&one, 1, 1, 0).unwrap();
    assert_eq!(
        plan_remove(&last, 0, 1, 0),
        Err(RemoveError::TooFewMembers {
            left: 0,
            replicas: 1
        })
    );
    // A dev-N target naming it.
    let mut t = fs(3, 1);
    t.options = t.options.with_target(Target::Member(2));
    assert_eq!(t.options.validate(3), Ok(()));
    assert_eq!(plan_remove(&t, 2, 2, 0), Err(RemoveError::Target));
    // A label is dropped with the member.
    let mut l = fs(3, 1);
    l.labels[2] = Label::parse("tmp").unwrap();
    assert_eq!(plan_remove(&l, 2, 2, 0).unwrap().labels[2], Label::NONE);
    // Every refusal has a message.
    for e in [
        RemoveError::NoSuchMember,
        RemoveError::AlreadyRemoved,
        RemoveError::Target,
        RemoveError::NotEmpty(1),
        RemoveError::TooFewMembers {
            left: 1,
            replicas: 2,
        },
    ] {
        let mut s = String::new();
        e.describe(&mut s).unwrap();
        assert!(!s.is_empty());
    }
}

#[test]
fn decoder_refuses_what_names_a_removed_member() {
    let next = plan_remove(&fs(3, 10), 2, 2, 0).unwrap();
    // A root pointer to it.
    let mut bad = next;
    bad.root.nr_ptrs = 2;
    bad.root.ptrs[1] = NodePtr {
        member: 2,
        bucket: fs(3, 1).members[2].first_bucket,
    };
    assert_eq!(roundtrip(&bad), Err(SbError::Root));
    // Every node pointer goes through check_ptr.
    assert_eq!(
        check_ptr(next.member_table(), bad.root.ptrs[1]),
        Err(PtrError::Removed)
    );
    assert_eq!(PtrError::Removed.describe(), "on a removed member");
    // A label on it.
    let mut bad = next;
    bad.labels[2] = Label::parse("x").unwrap();
    assert_eq!(roundtrip(&bad), Err(SbError::Label(2)));
    // A dev-N target naming it.
    let mut bad = next;
    bad.options = bad.options.with_target(Target::Member(2));
    assert_eq!(roundtrip(&bad), Err(SbError::Option(Opt::MetadataTarget)));
    // More replicas than the members left.
    let mut bad = next;
    bad.options = bad.options.with_unchecked(Opt::MetadataReplicas, 3);
    assert_eq!(roundtrip(&bad), Err(SbError::Option(Opt::MetadataReplicas)));
    // Two removed entries (both without a uuid) are not duplicates.
    let two = plan_remove(&fs(4, 1), 3, 2, 0).unwrap();
    let two = plan_remove(&two, 2, 2, 0).unwrap();
    assert_eq!(roundtrip(&two), Ok(two));
    // journal_offset is not checked against a removed entry (it has no journal).
    let mut j = two;
    j.journal_offset = two.members[0].journal_blocks() - 1;
    assert_eq!(roundtrip(&j), Ok(j));
}

/// The superblock each of `nr` devices carries, as `member_index` `i` of `sb`.
fn probes_of(sbs: &[Superblock]) -> Vec<Probe> {
    sbs.iter()
        .enumerate()
        .map(|(i, sb)| {
            let mut sb = *sb;
            sb.member_index = i as u32;
            Probe {
                sb,
                bytes: 64 * MIB,
            }
        })
        .collect()
}

#[test]
fn a_crash_leaves_the_member_present_or_removed() {
    let old = fs(3, 10);
    let new = plan_remove(&old, 2, 2, 0).unwrap();
    // Before any remaining member has the new superblock: present, and required.
    let p = probes_of(&[old, old, old]);
    assert!(assemble(&p).is_ok());
    assert_eq!(assemble(&p[..2]), Err(AssembleError::Missing(2)));
    // Once one remaining member has it (the other not yet): removed, whatever is given.
    for done in [[true, false], [false, true], [true, true]] {
        let sbs = [
            if done[0] { new } else { old },
            if done[1] { new } else { old },
            old,
        ];
        let p = probes_of(&sbs);
        let a = assemble(&p[..2]).unwrap();
        assert!(a.is_removed(2) && !a.is_missing(2));
        assert_eq!(p[a.newest].sb.members[2], Member::removed());
        assert_eq!(a.first_missing(3), None);
        // The removed device given too: refused as not a member (never "half").
        assert_eq!(assemble(&p), Err(AssembleError::UnknownMember(2)));
    }
}

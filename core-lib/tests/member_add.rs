//! Adding a member (`member_add.rs`): the plan, its refusals, and what the mount's assembly
//! makes of every state a crash can leave during the add's writes.

use bucketfs_core::assemble::*;
use bucketfs_core::bucket_table::BucketState;
use bucketfs_core::member_add::*;
use bucketfs_core::options::{Opt, Options};
use bucketfs_core::superblock::*;

const MIB: u64 = 1 << 20;

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

#[test]
fn plan_adds_one_member_and_changes_nothing_else() {
    let sb = fs(2, 10);
    let p = plan_add(&sb, 32 * MIB, 4096, [0xaa; 16]).unwrap();
    assert_eq!(p.index, 2);
    assert_eq!(p.member, {
        let mut m = Member::layout(32 * MIB, 4096, [0xaa; 16]).unwrap();
        // The filesystem's discard option is on (the default): the flag follows it.
        m.flags |= MEMBER_DISCARD;
        m
    });
    assert_eq!(p.sb.seq, 11);
    assert_eq!(p.sb.nr_members, 3);
    assert_eq!(p.sb.member_index, 2);
    assert_eq!(&p.sb.members[..2], &sb.members[..2]);
    assert_eq!(p.sb.members[2], p.member);
    assert_eq!(
        (
            p.sb.root,
            p.sb.journal_seq,
            p.sb.journal_offset,
            p.sb.options,
            p.sb.uuid
        ),
        (
            sb.root,
            sb.journal_seq,
            sb.journal_offset,
            sb.options,
            sb.uuid
        )
    );
    // What the decoder reads back is the plan.
    let mut buf = vec![0u8; SB_SIZE];
    p.sb.encode(&mut buf);
    assert_eq!(Superblock::decode(&buf).unwrap(), p.sb);
}

#[test]
fn discard_flag_follows_the_option() {
    let mut sb = fs(1, 1);
    sb.options.set(Opt::Discard, 0, 1).unwrap();
    let p = plan_add(&sb, 32 * MIB, 4096, [0xaa; 16]).unwrap();
    assert!(!p.member.discard());
}

#[test]
fn refusals() {
    assert_eq!(
        plan_add(&fs(16, 1), 64 * MIB, 4096, [0xaa; 16]),
        Err(AddError::Full)
    );
    assert!(matches!(
        plan_add(&fs(2, 1), 100 * 1024, 4096, [0xaa; 16]),
        Err(AddError::Layout(_))
    ));
    assert_eq!(
        plan_add(&fs(2, 1), 64 * MIB, 4096, [1; 16]),
        Err(AddError::DuplicateUuid)
    );
    // A member whose journal does not reach the journal position cannot hold the journal.
    let mut sb = fs(2, 1);
    sb.journal_offset = 300;
    let small = Member::layout(16 * MIB, 4096, [0xaa; 16]).unwrap();
    assert!(small.journal_blocks() <= 300);
    assert_eq!(
        plan_add(&sb, 16 * MIB, 4096, [0xaa; 16]),
        Err(AddError::JournalTooShort {
            blocks: small.journal_blocks(),
            offset: 300
        })
    );
    // Fifteen members: the sixteenth is the last.
    assert_eq!(
        plan_add(&fs(15, 1), 64 * MIB, 4096, [0xaa; 16])
            .unwrap()
            .index,
        15
    );
}

#[test]
fn new_member_buckets_are_metadata_then_free() {
    let m = Member::layout(64 * MIB, 4096, [1; 16]).unwrap();
    assert_eq!(new_member_state(&m, 0), BucketState::Superblock);
    assert_eq!(
        new_member_state(&m, m.journal_start as u64 - 1),
        BucketState::Superblock
    );
    assert_eq!(
        new_member_state(&m, m.journal_start as u64),
        BucketState::Journal
    );
    assert_eq!(
        new_member_state(&m, m.first_bucket as u64 - 1),
        BucketState::Journal
    );
    assert_eq!(
        new_member_state(&m, m.first_bucket as u64),
        BucketState::Free
    );
    assert_eq!(new_member_state(&m, m.nbuckets - 1), BucketState::Free);
}

#[test]
fn claims_member_only_for_a_current_member() {
    let sb = fs(2, 5);
    let mut member1 = sb;
    member1.member_index = 1;
    assert!(claims_member(&sb, &member1));
    // Left by an add that did not complete: this filesystem, a member the table lacks.
    let leftover = plan_add(&sb, 64 * MIB, 4096, [0xaa; 16]).unwrap().sb;
    assert!(!claims_member(&sb, &leftover));
    // Another filesystem.
    let mut other = member1;
    other.uuid = [8; 16];
    assert!(!claims_member(&sb, &other));
}

/// One device during the add: its two superblock copies (`None`: never written, or torn).
#[derive(Clone, Copy)]
struct Dev {
    copies: [Option<Superblock>; 2],
}

impl Dev {
    fn newest(&self) -> Option<Superblock> {
        self.copies.iter().flatten().copied().max_by_key(|s| s.seq)
    }
}

fn mount(devs: &[Dev]) -> Result<Superblock, String> {
    let mut probes = Vec::new();
    for (i, d) in devs.iter().enumerate() {
        let sb = d.newest().ok_or(format!("device {i}: no superblock"))?;
        probes.push(Probe {
            sb,
            bytes: 64 * MIB,
        });
    }
    let a = assemble(&probes).map_err(|e| format!("{e:?}"))?;
    Ok(probes[a.newest].sb)
}

/// Every prefix of the add's writes (`member_add.rs`, "Write order"), each write also torn:
/// mounted with or without the new device, the filesystem is the old one or the new one.
#[test]
fn every_crash_point_leaves_added_or_not_added() {
    let old = fs(3, 20);
    let plan = plan_add(&old, 64 * MIB, 4096, [0xaa; 16]).unwrap();
    let copy = |sb: &Superblock, i: u32| {
        let mut c = *sb;
        c.member_index = i;
        c
    };
    let start: Vec<Dev> = (0..3)
        .map(|i| Dev {
            copies: [Some(copy(&old, i)); 2],
        })
        .chain([Dev {
            copies: [None, None],
        }])
        .collect();
    // (device, copy) in write order: the new member's two, then old primaries, old backups.
    let mut order = vec![(3, 0), (3, 1)];
    order.extend((0..3).map(|d| (d, 0)));
    order.extend((0..3).map(|d| (d, 1)));
    let mut seen_added = false;
    for done in 0..=order.len() {
        for torn in [false, true] {
            if torn && done == order.len() {
                continue;
            }
            let mut devs = start.clone();
            for &(d, c) in &order[..done] {
                devs[d].copies[c] = Some(copy(&plan.sb, d as u32));
            }
            if torn {
                let (d, c) = order[done];
                devs[d].copies[c] = None;
            }
            let with = mount(&devs);
            let without = mount(&devs[..3]);
            let added = |r: &Result<Superblock, String>| {
                r.as_ref()
                    .is_ok_and(|s| s.nr_members == 4 && s.member_table() == plan.sb.member_table())
            };
            let not_added = |r: &Result<Superblock, String>| {
                r.as_ref()
                    .is_ok_and(|s| s.nr_members == 3 && s.member_table() == old.member_table())
            };
            let what = format!("after {done} write(s), torn {torn}: {with:?} / {without:?}");
            // Whatever mounts is one of the two, with every other field the old one's.
            for r in [&with, &without].into_iter().flatten() {
                assert_eq!(
                    (r.root, r.journal_seq),
                    (old.root, old.journal_seq),
                    "{what}"
                );
            }
            assert!(with.is_err() || added(&with), "{what}");
            assert!(without.is_err() || not_added(&without), "{what}");
            // Some way to mount always exists.
            assert!(with.is_ok() || without.is_ok(), "{what}");
            // Once an old member has the new table, the new member is required.
            if order[..done].iter().any(|&(d, _)| d < 3) {
                assert!(added(&with) && without.is_err(), "{what}");
                seen_added = true;
            }
            if done == 0 {
                // The new member has no superblock yet: not added.
                assert!(with.is_err() && not_added(&without), "{what}");
            }
        }
    }
    assert!(seen_added);
}

/// A crash after the new member's superblocks, then a mount without it that writes a
/// superblock: the left-over device has the same `seq` and another table. Given to a mount
/// with the members, in either order, it is refused, not chosen by its position.
#[test]
fn leftover_with_the_same_seq_is_a_conflict() {
    let old = fs(2, 20);
    let plan = plan_add(&old, 64 * MIB, 4096, [0xaa; 16]).unwrap();
    let mut moved_on = old;
    moved_on.seq = 21;
    moved_on.journal_seq = 30;
    let probe = |sb: Superblock, i: u32| {
        let mut sb = sb;
        sb.member_index = i;
        Probe {
            sb,
            bytes: 64 * MIB,
        }
    };
    let members = [probe(moved_on, 0), probe(moved_on, 1)];
    let leftover = probe(plan.sb, 2);
    // Listed after the members, whose table wins the tie: not a member of that table.
    let mut p = vec![members[0], members[1], leftover];
    assert_eq!(assemble(&p), Err(AssembleError::UnknownMember(2)));
    // Listed first, its table would win the tie: the members disagree with it.
    p.rotate_right(1);
    assert!(matches!(assemble(&p), Err(AssembleError::Conflict(..))));
    // Without it, the members mount; once they have written again, it is simply not a member.
    assert!(assemble(&members).is_ok());
    let mut later = moved_on;
    later.seq = 22;
    let p = [probe(later, 0), probe(later, 1), leftover];
    assert_eq!(assemble(&p), Err(AssembleError::UnknownMember(2)));
}

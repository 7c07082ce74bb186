use bucketfs_core::options::*;
use bucketfs_core::target::LabelError;

fn desc(name: &str) -> &'static OptionDesc {
    lookup(name).unwrap().desc()
}

#[test]
fn every_option_has_a_unique_name_and_slot_and_valid_default() {
    for (i, d) in OPTIONS.iter().enumerate() {
        assert_eq!(lookup(d.name).map(|o| o as usize), Some(i));
        assert!(d.sb_slot < SB_OPTION_SLOTS);
        assert!(OPTIONS[..i]
            .iter()
            .all(|o| o.sb_slot != d.sb_slot && o.name != d.name));
        assert_eq!(check_range(d, d.default), Ok(()), "{}", d.name);
    }
    assert_eq!(Options::default().validate(1), Ok(()));
}

#[test]
fn integers_parse_strictly() {
    let d = desc("metadata_replicas");
    assert_eq!(parse_value(d, "2"), Ok(2));
    assert_eq!(parse_value(d, "1\n"), Ok(1));
    for bad in [
        "", "\n", "abc", "-1", "+1", " 1", "1 ", "1\n\n", "0x2", "2a", "1.0",
    ] {
        assert_eq!(parse_value(d, bad), Err(OptError::NotANumber), "{bad:?}");
    }
    assert_eq!(
        parse_value(d, "0"),
        Err(OptError::OutOfRange {
            min: 1,
            max: MAX_REPLICAS
        })
    );
    assert_eq!(
        parse_value(d, "99"),
        Err(OptError::OutOfRange {
            min: 1,
            max: MAX_REPLICAS
        })
    );
    assert_eq!(
        parse_value(d, "4294967296"),
        Err(OptError::OutOfRange {
            min: 1,
            max: MAX_REPLICAS
        })
    );
    assert_eq!(parse_value(d, &"9".repeat(4096)), Err(OptError::NotANumber));
    let t = desc("allocator_stuck_timeout");
    assert_eq!(parse_value(t, "0"), Ok(0));
    assert_eq!(parse_value(t, "3600"), Ok(3600));
    assert!(parse_value(t, "3601").is_err());
}

#[test]
fn booleans() {
    let d = desc("discard");
    for (text, v) in [
        ("1", 1),
        ("0", 0),
        ("yes", 1),
        ("no", 0),
        ("on", 1),
        ("off", 0),
        ("true\n", 1),
    ] {
        assert_eq!(parse_value(d, text), Ok(v), "{text}");
    }
    for bad in ["", "2", "-1", "Yes", "abc"] {
        assert!(parse_value(d, bad).is_err(), "{bad}");
    }
}

#[test]
fn set_checks_rules_between_options_and_changes_nothing_on_error() {
    let mut o = Options::default();
    o.set(Opt::MetadataReplicas, 2, 2).unwrap();
    o.set(Opt::MetadataReplicasRequired, 2, 2).unwrap();
    let before = o;
    assert_eq!(
        o.set(Opt::MetadataReplicas, 3, 2),
        Err(OptError::MoreReplicasThanMembers { members: 2 })
    );
    assert_eq!(
        o.set(Opt::MetadataReplicas, 1, 2),
        Err(OptError::RequiredAboveReplicas {
            replicas: 1,
            required: 2
        })
    );
    assert_eq!(
        o.set(Opt::Discard, 2, 2),
        Err(OptError::OutOfRange { min: 0, max: 1 })
    );
    assert_eq!(o, before);
}

#[test]
fn slots_round_trip_and_reject_out_of_range() {
    let mut o = Options::default();
    o.set(Opt::AllocatorStuckTimeout, 7, 1).unwrap();
    o.set(Opt::Discard, 0, 1).unwrap();
    assert_eq!(Options::from_slots(&o.to_slots()), Ok(o));
    let mut slots = o.to_slots();
    slots[Opt::MetadataReplicas.desc().sb_slot] = 0;
    assert_eq!(Options::from_slots(&slots), Err(Opt::MetadataReplicas));
}

#[test]
fn mount_options_override_and_are_checked_against_members() {
    let mut m = MountOptions::default();
    assert_eq!(m.parse("nosuch", "1"), Err(OptError::Unknown));
    assert_eq!(
        m.parse("metadata_replicas", "abc"),
        Err(OptError::NotANumber)
    );
    m.parse("metadata_replicas", "1").unwrap();
    let mut base = Options::default();
    base.set(Opt::MetadataReplicas, 2, 2).unwrap();
    let live = m.apply(&base, 2).unwrap();
    assert_eq!(live.get(Opt::MetadataReplicas), 1);
    assert_eq!(base.get(Opt::MetadataReplicas), 2);

    let mut too_many = MountOptions::default();
    too_many.parse("metadata_replicas", "3").unwrap();
    assert_eq!(
        too_many.apply(&base, 2),
        Err((
            Opt::MetadataReplicas,
            OptError::MoreReplicasThanMembers { members: 2 }
        ))
    );
    let mut required = MountOptions::default();
    required.parse("metadata_replicas_required", "2").unwrap();
    required.parse("metadata_replicas", "1").unwrap();
    assert_eq!(
        required.apply(&base, 2),
        Err((
            Opt::MetadataReplicasRequired,
            OptError::RequiredAboveReplicas {
                replicas: 1,
                required: 2
            }
        ))
    );
}

#[test]
fn a_lower_replica_count_at_mount_lowers_the_stored_required_count() {
    let mut base = Options::default();
    base.set(Opt::MetadataReplicas, 2, 2).unwrap();
    base.set(Opt::MetadataReplicasRequired, 2, 2).unwrap();
    let mut m = MountOptions::default();
    m.parse("metadata_replicas", "1").unwrap();
    let live = m.apply(&base, 2).unwrap();
    assert_eq!(
        (
            live.get(Opt::MetadataReplicas),
            live.get(Opt::MetadataReplicasRequired)
        ),
        (1, 1)
    );
    // Given explicitly, the required count is taken as it is, and refused.
    m.parse("metadata_replicas_required", "2").unwrap();
    assert_eq!(
        m.apply(&base, 2),
        Err((
            Opt::MetadataReplicasRequired,
            OptError::RequiredAboveReplicas {
                replicas: 1,
                required: 2
            }
        ))
    );
}

#[test]
fn required_above_replicas_message_is_one_line() {
    let mut s = String::new();
    let e = OptError::RequiredAboveReplicas {
        replicas: 1,
        required: 2,
    };
    e.describe(&mut s).unwrap();
    assert_eq!(
        s,
        "metadata_replicas_required (2) would exceed metadata_replicas (1); \
         lower metadata_replicas_required first"
    );
}

#[test]
fn a_remount_takes_runtime_options_only() {
    // Every option of today's table is settable at runtime, so the refusal is checked on a
    // row that is not.
    let mount_only = OptionDesc {
        settable: Settable {
            format: true,
            mount: true,
            runtime: false,
        },
        ..*desc("metadata_replicas")
    };
    assert_eq!(parse_value_at(&mount_only, When::Mount, "1"), Ok(1));
    assert_eq!(
        parse_value_at(&mount_only, When::Runtime, "1"),
        Err(OptError::NotSettable)
    );
    let format_only = OptionDesc {
        settable: Settable {
            format: true,
            mount: false,
            runtime: false,
        },
        ..mount_only
    };
    assert_eq!(parse_value_at(&format_only, When::Format, "2"), Ok(2));
    assert_eq!(
        parse_value_at(&format_only, When::Mount, "2"),
        Err(OptError::NotSettable)
    );
    // The table's rows follow their `settable`, and a bad value is refused at any time.
    for d in OPTIONS.iter() {
        let mut m = MountOptions::default();
        let ok = m.parse_at(When::Runtime, d.name, "1");
        assert_eq!(ok.is_ok(), d.settable.runtime, "{}", d.name);
        // "abc" is a label, so a target takes it; "Abc" is garbage to every kind.
        let (bad, why) = match d.kind {
            Kind::Target => ("Abc", OptError::BadTarget(LabelError::BadByte)),
            _ => ("abc", OptError::NotANumber),
        };
        assert_eq!(
            m.parse_at(When::Runtime, d.name, bad),
            Err(if d.settable.runtime {
                why
            } else {
                OptError::NotSettable
            })
        );
    }
    let mut m = MountOptions::default();
    assert!(m.is_empty());
    assert_eq!(
        m.parse_at(When::Runtime, "nosuch", "1"),
        Err(OptError::Unknown)
    );
    assert!(m.is_empty());
    m.parse_at(When::Runtime, "metadata_replicas", "1").unwrap();
    assert!(!m.is_empty());
    assert_eq!(m, MountOptions::one(Opt::MetadataReplicas, 1));
}

#[test]
fn runtime_changes_apply_all_or_none() {
    let mut o = Options::default();
    o.set(Opt::MetadataReplicas, 2, 2).unwrap();
    o.set(Opt::MetadataReplicasRequired, 2, 2).unwrap();
    let before = o;

    // Lowering the replica count alone is refused, naming it, and changes nothing.
    assert_eq!(
        o.set_all(&MountOptions::one(Opt::MetadataReplicas, 1), 2),
        Err((
            Opt::MetadataReplicas,
            OptError::RequiredAboveReplicas {
                replicas: 1,
                required: 2
            }
        ))
    );
    assert_eq!(o, before);
    // Raising the required count alone above it names the required count.
    let mut low = Options::default();
    assert_eq!(
        low.set_all(&MountOptions::one(Opt::MetadataReplicasRequired, 2), 2),
        Err((
            Opt::MetadataReplicasRequired,
            OptError::RequiredAboveReplicas {
                replicas: 1,
                required: 2
            }
        ))
    );
    assert_eq!(low, Options::default());
    // More replicas than members: refused as a whole, even with a valid option beside it.
    let mut m = MountOptions::default();
    m.parse("allocator_stuck_timeout", "5").unwrap();
    m.parse("metadata_replicas", "3").unwrap();
    assert_eq!(
        o.set_all(&m, 2),
        Err((
            Opt::MetadataReplicas,
            OptError::MoreReplicasThanMembers { members: 2 }
        ))
    );
    assert_eq!(o, before);

    // Both lowered together: accepted, whatever the order they were given in.
    for names in [
        ["metadata_replicas", "metadata_replicas_required"],
        ["metadata_replicas_required", "metadata_replicas"],
    ] {
        let mut o = before;
        let mut m = MountOptions::default();
        for n in names {
            m.parse_at(When::Runtime, n, "1").unwrap();
        }
        o.set_all(&m, 2).unwrap();
        assert_eq!(o.get(Opt::MetadataReplicas), 1);
        assert_eq!(o.get(Opt::MetadataReplicasRequired), 1);
        assert_eq!(
            o.get(Opt::AllocatorStuckTimeout),
            before.get(Opt::AllocatorStuckTimeout)
        );
    }
    // Nothing given: nothing changes.
    o.set_all(&MountOptions::default(), 2).unwrap();
    assert_eq!(o, before);
}

#[test]
fn mount_flags_are_distinct_from_options_and_not_stored() {
    use bucketfs_core::options::{lookup, MountFlag, MountOptions};
    for f in MountFlag::ALL {
        assert!(lookup(f.name()).is_none(), "{} is also an option", f.name());
        assert_eq!(MountFlag::lookup(f.name()), Some(f));
    }
    let mut m = MountOptions::default();
    assert!(!m.flag(MountFlag::NoRecovery));
    m.set_flag(MountFlag::NoRecovery);
    assert!(m.flag(MountFlag::NoRecovery));
    assert!(!m.flag(MountFlag::Degraded));
    // Flags are no option values: nothing to apply or persist.
    assert!(m.is_empty());
}

use bucketfs_core::alloc_policy::*;

fn dev(allocatable: u64, free: u64) -> DeviceSnapshot {
    DeviceSnapshot {
        allocatable,
        free,
        need_discard: 0,
        writable: true,
    }
}

fn req(nodes: u32, replicas: u32) -> RequestInputs {
    RequestInputs::new(nodes, replicas, Watermark::Normal)
}

#[test]
fn reserves_follow_the_watermark_table() {
    assert_eq!(btree_reserve(100), 2);
    assert_eq!(btree_reserve(25_600), 100);
    assert_eq!(btree_reserve(1 << 30), 512);
    let a = 25_600;
    assert_eq!(held_back(a, Watermark::Normal), a / 64 + 200);
    assert_eq!(held_back(a, Watermark::Copygc), 200);
    assert_eq!(held_back(a, Watermark::Btree), 100);
    assert_eq!(held_back(a, Watermark::Reclaim), 0);
}

#[test]
fn the_seed_state_blocks_two_replicas_and_allows_one() {
    // #1108: device 0 has 1 free bucket (thousands need_discard), device 1 thousands free.
    let devs = [
        DeviceSnapshot {
            allocatable: 16_000,
            free: 1,
            need_discard: 9_416,
            writable: true,
        },
        DeviceSnapshot {
            allocatable: 16_000,
            free: 5_109,
            need_discard: 4_000,
            writable: true,
        },
    ];
    match decide(&devs, &req(3, 2)) {
        Decision::Blocked { usable, refused } => {
            assert_eq!(usable, 1);
            assert_eq!(
                refused[0],
                Some(Refusal::BelowWatermark {
                    free: 1,
                    held_back: 16_000 / 64 + 2 * 62
                })
            );
            assert_eq!(refused[1], None);
        }
        d => panic!("expected blocked, got {d:?}"),
    }
    assert_eq!(
        decide(&devs, &req(3, 1)),
        Decision::Allocate {
            devices: [1, 0, 0, 0],
            count: 1
        }
    );
    // Even the reclaim watermark needs as many buckets as nodes on each replica.
    let reclaim = RequestInputs {
        watermark: Watermark::Reclaim,
        ..req(3, 2)
    };
    assert!(matches!(decide(&devs, &reclaim), Decision::Blocked { .. }));
    let reclaim_one_node = RequestInputs {
        watermark: Watermark::Reclaim,
        ..req(1, 2)
    };
    assert_eq!(
        decide(&devs, &reclaim_one_node),
        Decision::Allocate {
            devices: [1, 0, 0, 0],
            count: 2
        }
    );
}

#[test]
fn replicas_go_to_distinct_devices_with_most_room_first() {
    let devs = [
        dev(1000, 500),
        dev(1000, 900),
        dev(1000, 700),
        dev(1000, 900),
    ];
    assert_eq!(
        decide(&devs, &req(1, 3)),
        Decision::Allocate {
            devices: [1, 3, 2, 0],
            count: 3
        }
    );
}

#[test]
fn refusals_say_why() {
    let devs = [
        DeviceSnapshot {
            writable: false,
            ..dev(1000, 900)
        },
        dev(1000, 0),
        dev(1000, 20),
    ];
    match decide(&devs, &req(1, 1)) {
        Decision::Blocked { usable: 0, refused } => {
            assert_eq!(refused[0], Some(Refusal::ReadOnly));
            assert_eq!(refused[1], Some(Refusal::NoFreeBuckets));
            assert!(matches!(
                refused[2],
                Some(Refusal::BelowWatermark { free: 20, .. })
            ));
        }
        d => panic!("{d:?}"),
    }
}

#[test]
fn impossible_requests() {
    let devs = [dev(1000, 900), dev(1000, 900)];
    assert_eq!(decide(&devs, &req(1, 3)), Decision::Impossible);
    assert_eq!(decide(&devs, &req(0, 1)), Decision::Impossible);
    assert_eq!(decide(&devs, &req(1, 0)), Decision::Impossible);
    assert_eq!(decide(&[], &req(1, 1)), Decision::Impossible);
}

fn targeted(nodes: u32, replicas: u32, target: u32, fallback: bool) -> RequestInputs {
    RequestInputs {
        target,
        fallback,
        ..req(nodes, replicas)
    }
}

#[test]
fn copies_go_to_the_target_first_then_elsewhere() {
    // dev 0 has the most room; the target is devs 2 and 3.
    let devs = [
        dev(1000, 900),
        dev(1000, 800),
        dev(1000, 500),
        dev(1000, 600),
    ];
    assert_eq!(
        decide(&devs, &targeted(1, 2, 0b1100, false)),
        Decision::Allocate {
            devices: [3, 2, 0, 0],
            count: 2
        }
    );
    // A target of one member holds one copy; the others go where there is most room.
    assert_eq!(
        decide(&devs, &targeted(1, 3, 0b0100, false)),
        Decision::Allocate {
            devices: [2, 0, 1, 0],
            count: 3
        }
    );
    // No target: as before.
    assert_eq!(
        decide(&devs, &targeted(1, 2, 0, false)),
        Decision::Allocate {
            devices: [0, 1, 0, 0],
            count: 2
        }
    );
}

#[test]
fn a_strict_target_waits_for_its_starved_members_and_fallback_does_not() {
    // The #628 shape: the target (dev 0, "ssd") is starved; devs 1 and 2 ("hdd") have room.
    let devs = [
        DeviceSnapshot {
            need_discard: 8000,
            ..dev(16_000, 1)
        },
        dev(16_000, 4000),
        dev(16_000, 4000),
    ];
    match decide(&devs, &targeted(1, 2, 0b001, false)) {
        Decision::Blocked { usable, refused } => {
            assert_eq!(usable, 0);
            assert!(matches!(
                refused[0],
                Some(Refusal::BelowWatermark { free: 1, .. })
            ));
            assert_eq!(refused[1], None);
        }
        d => panic!("expected blocked, got {d:?}"),
    }
    // Fallback on: the copy the target cannot take goes to another member at once.
    assert_eq!(
        decide(&devs, &targeted(1, 2, 0b001, true)),
        Decision::Allocate {
            devices: [1, 2, 0, 0],
            count: 2
        }
    );
    // The rescue: the target re-pointed at the members with room ("hdd"), or none.
    assert_eq!(
        decide(&devs, &targeted(1, 2, 0b110, false)),
        Decision::Allocate {
            devices: [1, 2, 0, 0],
            count: 2
        }
    );
    assert!(matches!(
        decide(&devs, &targeted(1, 2, 0, false)),
        Decision::Allocate { count: 2, .. }
    ));
    // A target member that is read-only is waited for too (strict), not with fallback.
    let ro = [
        dev(1000, 900),
        DeviceSnapshot {
            writable: false,
            ..dev(1000, 900)
        },
    ];
    assert!(matches!(
        decide(&ro, &targeted(1, 1, 0b10, false)),
        Decision::Blocked { usable: 0, .. }
    ));
    assert_eq!(
        decide(&ro, &targeted(1, 1, 0b10, true)),
        Decision::Allocate {
            devices: [0, 0, 0, 0],
            count: 1
        }
    );
}

#[test]
fn fallback_still_needs_enough_devices_and_a_target_of_nobody_is_no_target() {
    let devs = [dev(1000, 1), dev(1000, 900)];
    assert!(matches!(
        decide(&devs, &targeted(1, 2, 0b01, true)),
        Decision::Blocked { usable: 1, .. }
    ));
    assert_eq!(
        decide(&devs, &targeted(1, 1, 0b1000, false)),
        decide(&devs, &req(1, 1))
    );
    assert_eq!(
        decide(&devs, &targeted(1, 3, 0b01, true)),
        Decision::Impossible
    );
}

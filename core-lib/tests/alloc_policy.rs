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

/// The decision as the policy states it, written plainly (one refusal per device, then the
/// replicas chosen by most available buckets, ties to the lower index): `decide`, which takes
/// a one-pass path for the allocation fast path, must agree with it on every input.
fn model(devices: &[DeviceSnapshot], req: &RequestInputs) -> Decision {
    use bucketfs_core::options::MAX_REPLICAS;
    use bucketfs_core::superblock::MAX_MEMBERS;
    let n = devices.len().min(MAX_MEMBERS);
    if req.replicas == 0
        || req.nodes == 0
        || req.replicas > MAX_REPLICAS
        || req.replicas as usize > n
    {
        return Decision::Impossible;
    }
    let mut refused = [None; MAX_MEMBERS];
    for (i, d) in devices[..n].iter().enumerate() {
        refused[i] = if !d.writable {
            Some(Refusal::ReadOnly)
        } else if d.free == 0 {
            Some(Refusal::NoFreeBuckets)
        } else if d.available(req.watermark) < req.nodes as u64 {
            Some(Refusal::BelowWatermark {
                free: d.free,
                held_back: held_back(d.allocatable, req.watermark),
            })
        } else {
            None
        };
    }
    let usable: Vec<usize> = (0..n).filter(|&i| refused[i].is_none()).collect();
    // With a target: its members (bit `i` of `target`, below `n`) take the copies first; a
    // strict request needs as many usable target members as it wants on the target
    // (min(target members, replicas)).
    let in_target = |i: usize| req.target & (1 << i) != 0;
    let target_members = (0..n).filter(|&i| in_target(i)).count() as u32;
    let wanted = if req.fallback {
        0
    } else {
        target_members.min(req.replicas)
    };
    let target_usable = usable.iter().filter(|&&i| in_target(i)).count() as u32;
    if usable.len() < req.replicas as usize || target_usable < wanted {
        let usable = if target_usable < wanted {
            target_usable
        } else {
            usable.len() as u32
        };
        return Decision::Blocked { usable, refused };
    }
    // The order of choice: target members first (all members when there is none), then the
    // rest; within each, most available first, ties to the lower index.
    let mut order: Vec<usize> = Vec::new();
    for first in [true, false] {
        let mut pool: Vec<usize> = usable
            .iter()
            .copied()
            .filter(|&i| req.target & ((1u32 << n) - 1) == 0 || in_target(i) == first)
            .filter(|i| !order.contains(i))
            .collect();
        // Stable sort: equal availability keeps index order.
        pool.sort_by_key(|&i| core::cmp::Reverse(devices[i].available(req.watermark)));
        order.extend(pool);
    }
    let mut chosen = [0u8; MAX_REPLICAS as usize];
    for (slot, &i) in chosen
        .iter_mut()
        .zip(order.iter())
        .take(req.replicas as usize)
    {
        *slot = i as u8;
    }
    Decision::Allocate {
        devices: chosen,
        count: req.replicas,
    }
}

mod against_model {
    use super::*;
    use proptest::prelude::*;

    fn snapshot() -> impl Strategy<Value = DeviceSnapshot> {
        // Small counts so ties, reserves and the watermark edges come up often.
        (
            0u64..2000,
            0u64..40,
            any::<bool>(),
            prop::bool::weighted(0.9),
        )
            .prop_map(|(allocatable, free, big, writable)| {
                let allocatable = if big { allocatable * 1000 } else { allocatable };
                DeviceSnapshot {
                    allocatable,
                    free: if big { free * 100 } else { free },
                    need_discard: 0,
                    writable,
                }
            })
    }

    fn watermark() -> impl Strategy<Value = Watermark> {
        prop_oneof![
            Just(Watermark::Normal),
            Just(Watermark::Copygc),
            Just(Watermark::Btree),
            Just(Watermark::Reclaim),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn decide_agrees_with_the_model(
            devices in prop::collection::vec(snapshot(), 0..18),
            nodes in 0u32..6,
            replicas in 0u32..6,
            watermark in watermark(),
            target in prop_oneof![Just(0u32), any::<u32>(), 0u32..8],
            fallback in any::<bool>(),
        ) {
            let req = RequestInputs { nodes, replicas, watermark, target, fallback };
            prop_assert_eq!(decide(&devices, &req), model(&devices, &req));
        }
    }
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

#[test]
fn a_request_degrades_only_when_on_parked_past_the_timeout_and_allowed_fewer() {
    // Off by default: never.
    assert!(!may_degrade(false, 2, 60_000, 2, 1, false));
    assert!(!may_degrade(false, 2, 60_000, 2, 1, true));
    // On: only once parked for the stuck timeout...
    assert!(!may_degrade(true, 2, 1_999, 2, 1, false));
    assert!(may_degrade(true, 2, 2_000, 2, 1, false));
    assert!(may_degrade(true, 2, 2_001, 3, 2, false));
    // ... or at once while the allocator is degrading already.
    assert!(may_degrade(true, 2, 0, 2, 1, true));
    // The stuck timer off (0): never stuck, so never degraded.
    assert!(!may_degrade(true, 0, 1_000_000, 2, 1, false));
    assert!(!may_degrade(true, 0, 0, 2, 1, true));
    // metadata_replicas_required = metadata_replicas: no fewer copies allowed.
    assert!(!may_degrade(true, 2, 60_000, 2, 2, false));
    assert!(!may_degrade(true, 2, 60_000, 1, 1, true));
}

#[test]
fn a_degraded_decision_takes_as_many_copies_as_the_devices_allow() {
    // The seed state: device 0 starved, device 1 with room; two replicas wanted, one required.
    let starved = dev(16_000, 1);
    let roomy = dev(16_000, 5_000);
    let devs = [starved, roomy];
    assert!(matches!(
        decide(&devs, &req(3, 2)),
        Decision::Blocked { .. }
    ));
    match decide_degraded(&devs, &req(3, 2), 1) {
        Some(Decision::Allocate { devices, count }) => {
            assert_eq!(count, 1);
            assert_eq!(devices[0], 1, "the copy goes to the device with room");
        }
        d => panic!("expected one copy, got {d:?}"),
    }
    // Required 2 of 2: nothing fewer.
    assert_eq!(decide_degraded(&devs, &req(3, 2), 2), None);
    // Four wanted, two required, three devices with room of four: three copies, not two.
    let devs = [roomy, roomy, starved, roomy];
    match decide_degraded(&devs, &req(1, 4), 2) {
        Some(Decision::Allocate { devices, count }) => {
            assert_eq!(count, 3);
            let mut d = devices[..3].to_vec();
            d.sort();
            assert_eq!(d, [0, 1, 3]);
        }
        d => panic!("expected three copies, got {d:?}"),
    }
    // Only one device with room, two required: still blocked.
    let devs = [starved, roomy, starved];
    assert_eq!(decide_degraded(&devs, &req(1, 3), 2), None);
    // Nothing at all: blocked.
    assert_eq!(decide_degraded(&[starved, starved], &req(1, 2), 1), None);
    // required 0 is taken as 1 (a node has at least one copy).
    assert!(matches!(
        decide_degraded(&devs, &req(1, 3), 0),
        Some(Decision::Allocate { count: 1, .. })
    ));
}

#[test]
fn a_degraded_decision_keeps_a_strict_target() {
    // Target dev-0 (starved), strict: one copy must be on the target; fewer copies do not
    // move it elsewhere.
    let devs = [dev(16_000, 1), dev(16_000, 5_000), dev(16_000, 5_000)];
    let r = RequestInputs {
        target: 1,
        ..req(1, 2)
    };
    assert_eq!(decide_degraded(&devs, &r, 1), None);
    // With fallback the copies go elsewhere without degrading: decide serves it.
    let r = RequestInputs {
        fallback: true,
        ..r
    };
    assert!(matches!(
        decide(&devs, &r),
        Decision::Allocate { count: 2, .. }
    ));
}

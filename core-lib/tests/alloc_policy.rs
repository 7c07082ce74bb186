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
    RequestInputs {
        nodes,
        replicas,
        watermark: Watermark::Normal,
    }
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
    let mut usable: Vec<usize> = (0..n).filter(|&i| refused[i].is_none()).collect();
    if usable.len() < req.replicas as usize {
        return Decision::Blocked {
            usable: usable.len() as u32,
            refused,
        };
    }
    let mut chosen = [0u8; MAX_REPLICAS as usize];
    for slot in chosen.iter_mut().take(req.replicas as usize) {
        // The first of the most available: `max_by_key` keeps the last maximum, so reverse.
        let (k, _) = usable
            .iter()
            .enumerate()
            .rev()
            .max_by_key(|&(_, &i)| devices[i].available(req.watermark))
            .unwrap();
        *slot = usable.remove(k) as u8;
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
        ) {
            let req = RequestInputs { nodes, replicas, watermark };
            prop_assert_eq!(decide(&devices, &req), model(&devices, &req));
        }
    }
}

use bucketfs_core::mount_source::{check, for_each_member, SourceError, MAX_MEMBERS};

#[test]
fn splits_members_in_order() {
    let mut seen = Vec::new();
    let n = for_each_member("/dev/vdb:/dev/vdc:/dev/vdd", |i, m| seen.push((i, m))).unwrap();
    assert_eq!(n, 3);
    assert_eq!(seen, [(0, "/dev/vdb"), (1, "/dev/vdc"), (2, "/dev/vdd")]);
}

#[test]
fn single_member() {
    assert_eq!(check("/dev/vda"), Ok(1));
}

#[test]
fn refuses_empty_and_empty_members() {
    assert_eq!(check(""), Err(SourceError::Empty));
    assert_eq!(check(":"), Err(SourceError::EmptyMember(0)));
    assert_eq!(check("/dev/a:"), Err(SourceError::EmptyMember(1)));
    assert_eq!(check("/dev/a::/dev/b"), Err(SourceError::EmptyMember(1)));
}

#[test]
fn refuses_duplicates_and_visits_nothing() {
    let mut visited = 0;
    let r = for_each_member("/dev/a:/dev/b:/dev/a", |_, _| visited += 1);
    assert_eq!(r, Err(SourceError::Duplicate(0, 2)));
    assert_eq!(visited, 0);
}

#[test]
fn member_count_limit() {
    let ok: Vec<String> = (0..MAX_MEMBERS).map(|i| format!("/dev/d{i}")).collect();
    assert_eq!(check(&ok.join(":")), Ok(MAX_MEMBERS));
    let too_many: Vec<String> = (0..=MAX_MEMBERS).map(|i| format!("/dev/d{i}")).collect();
    assert_eq!(check(&too_many.join(":")), Err(SourceError::TooManyMembers));
}

#[test]
fn path_length_limit() {
    let long = "x".repeat(4096);
    assert_eq!(
        check(&format!("/dev/a:{long}")),
        Err(SourceError::PathTooLong(1))
    );
    assert_eq!(check(&"y".repeat(4095)), Ok(1));
}

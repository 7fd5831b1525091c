//! The organisation generator: deterministic, nested as asked, adversarial, and its reference
//! agrees with what the control plane makes of the generated catalog, read both as a YAML
//! directory and as processed Backstage entities. Small sizes: these run in seconds.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions may panic"
)]

use std::path::{Path, PathBuf};

use meshgate_control_plane::catalog::{
    load_dir, to_snapshot_input, CatalogIndex, CatalogWarning, Entity, RelationSource,
};
use meshgate_core::snapshot::{encode, DecodeLimits, SigningKey, Snapshot, SnapshotInput};
use meshgate_test_harness::orggen::{
    check_snapshot, CatalogFile, CheckReport, Nesting, Org, OrgGenError, OrgSpec, Reference,
};

fn spec(nesting: Nesting) -> OrgSpec {
    OrgSpec {
        users: 1_500,
        groups: 303,
        entities: 400,
        nesting,
        seed: 11,
        huge_group_members: 40,
    }
}

fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orggen-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn decode(input: &SnapshotInput) -> Snapshot {
    let key = SigningKey::from_seed("orggen-test", [7; 32]).unwrap();
    let bytes = encode(input, 1, 0, &key).unwrap();
    Snapshot::decode(&bytes, &[key.trusted_key()], &DecodeLimits::default()).unwrap()
}

/// What the control plane makes of the catalog directory, checked against the reference.
fn check_dir(org: &Org, dir: &Path) -> (CheckReport, Vec<CatalogWarning>, SnapshotInput) {
    let (input, warnings) = to_snapshot_input(&load_dir(dir).unwrap());
    let report = check_snapshot(&decode(&input), org, &Reference::build(org));
    (report, warnings, input)
}

fn assert_clean(report: &CheckReport, org: &Org) {
    assert_eq!(report.total(), 0, "{:#?}", report.samples);
    assert_eq!(report.users_checked, org.user_count());
    assert_eq!(report.owned_checked, org.owned_count());
}

#[test]
fn same_seed_same_catalog_other_seed_other_catalog() {
    let one = Org::generate(&spec(Nesting::Deep)).unwrap();
    let two = Org::generate(&spec(Nesting::Deep)).unwrap();
    assert_eq!(one, two);
    let (a, b) = (scratch("det-a"), scratch("det-b"));
    one.write_dir(&a).unwrap();
    two.write_dir(&b).unwrap();
    for file in one.files() {
        let name = file.file_name();
        assert_eq!(
            std::fs::read(a.join(&name)).unwrap(),
            std::fs::read(b.join(&name)).unwrap(),
            "{name}"
        );
    }
    let other = Org::generate(&OrgSpec {
        seed: 12,
        ..spec(Nesting::Deep)
    })
    .unwrap();
    assert_ne!(one, other);
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

#[test]
fn nesting_depth_follows_the_mode() {
    let wide = OrgSpec {
        groups: 2_003,
        ..spec(Nesting::Shallow)
    };
    let shallow = Org::generate(&wide).unwrap();
    let deep = Org::generate(&OrgSpec {
        nesting: Nesting::Deep,
        ..wide
    })
    .unwrap();
    assert!(shallow.depth() <= 8, "{}", shallow.depth());
    assert!(shallow.depth() >= 5, "{}", shallow.depth());
    // 2,000 groups, parents within 50 before: chains of about 2,000 / 25 levels.
    assert!(deep.depth() >= 50, "{}", deep.depth());
}

#[test]
fn the_control_plane_reading_the_yaml_agrees_with_the_reference() {
    for nesting in [Nesting::Shallow, Nesting::Deep] {
        let org = Org::generate(&spec(nesting)).unwrap();
        let dir = scratch(&format!("yaml-{nesting:?}"));
        org.write_dir(&dir).unwrap();
        let (report, warnings, _) = check_dir(&org, &dir);
        assert_clean(&report, &org);
        // The adversarial content is there, and the control plane saw it.
        let has = |wanted: fn(&CatalogWarning) -> bool| warnings.iter().any(wanted);
        assert!(has(
            |w| matches!(w, CatalogWarning::GroupCycle { groups } if groups.len() == 3)
        ));
        assert!(has(
            |w| matches!(w, CatalogWarning::DanglingRef { target, .. } if target.starts_with("group:default/ghost-team-"))
        ));
        assert!(has(
            |w| matches!(w, CatalogWarning::DanglingRef { target, .. } if target.starts_with("user:default/ghost-user-"))
        ));
        assert!(has(
            |w| matches!(w, CatalogWarning::DanglingRef { target, .. } if target.starts_with("user:default/huge-ghost-"))
        ));
        assert!(has(|w| matches!(w, CatalogWarning::DuplicateEntity { .. })));
        let text: String = org.files().into_iter().map(|f| org.render(f)).collect();
        assert!(text.contains("Group:Default/"));
        assert!(text.contains("User:Default/"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn the_check_finds_a_wrong_snapshot() {
    let org = Org::generate(&spec(Nesting::Deep)).unwrap();
    let dir = scratch("wrong");
    org.write_dir(&dir).unwrap();
    let (_, _, input) = check_dir(&org, &dir);
    let reference = Reference::build(&org);
    type Break = fn(&mut SnapshotInput);
    let breaks: &[(&str, Break)] = &[
        ("a user loses their groups", |i| {
            // Losing one group an ancestor list restores is not a difference; losing all is.
            let user = i.users.iter_mut().find(|u| u.groups.len() > 2).unwrap();
            user.groups.clear();
        }),
        ("a user gains a group", |i| {
            let user = i
                .users
                .iter_mut()
                .find(|u| !u.groups.contains(&"group:default/ci".to_owned()))
                .unwrap();
            user.groups.push("group:default/ci".into());
        }),
        ("a user is missing", |i| {
            i.users.pop();
        }),
        ("an owner changes", |i| {
            let owned = i.owned.iter_mut().find(|o| !o.owners.is_empty()).unwrap();
            owned.owners = vec!["group:default/ci".into()];
        }),
        ("an email changes", |i| {
            i.users.first_mut().unwrap().email = Some("someone@else.example".into());
        }),
        ("users hold one group each", |i| {
            for user in &mut i.users {
                user.groups.truncate(1);
            }
        }),
    ];
    for (name, apply) in breaks {
        let mut broken = input.clone();
        apply(&mut broken);
        let report = check_snapshot(&decode(&broken), &org, &reference);
        assert!(report.total() > 0, "{name}: not detected");
        assert!(!report.samples.is_empty(), "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn processed_entities_carry_the_same_answer() {
    let org = Org::generate(&spec(Nesting::Deep)).unwrap();
    let path = scratch("json").with_extension("json");
    org.write_backstage_json(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let page: serde_json::Value = serde_json::from_str(&text).unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(page["totalItems"].as_u64(), Some(items.len() as u64));
    // One of each: the duplicates appear once, plus the huge group.
    assert_eq!(
        items.len(),
        org.user_count() + org.group_count() + org.owned_count() + 1
    );
    let entities: Vec<Entity> = items
        .iter()
        .map(|item| {
            let (entity, _) = Entity::from_value(item, "api", RelationSource::Relations);
            entity.unwrap()
        })
        .collect();
    let (input, _) = to_snapshot_input(&CatalogIndex::new(entities, Vec::new()));
    let report = check_snapshot(&decode(&input), &org, &Reference::build(&org));
    assert_clean(&report, &org);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn moving_a_user_rewrites_one_file_atomically() {
    let mut org = Org::generate(&spec(Nesting::Deep)).unwrap();
    let dir = scratch("move");
    org.write_dir(&dir).unwrap();
    let reference = Reference::build(&org);
    let user = (0..org.user_count())
        .find(|u| {
            !org.memberships_granting(&reference, *u, &["data-eng"])
                .is_empty()
        })
        .unwrap();
    assert!(reference.user_in(&org, user, "data-eng"));
    let before: Vec<(String, Vec<u8>)> = org
        .files()
        .into_iter()
        .map(|f| {
            (
                f.file_name(),
                std::fs::read(dir.join(f.file_name())).unwrap(),
            )
        })
        .collect();

    let mut touched = Vec::new();
    for group in org.memberships_granting(&reference, user, &["data-eng"]) {
        touched.extend(org.move_out(user, group).unwrap());
    }
    touched.sort();
    touched.dedup();
    org.rewrite_files(&dir, &touched).unwrap();
    assert!(!reference.user_in(&org, user, "data-eng"));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    let changed: Vec<&String> = before
        .iter()
        .filter(|(name, bytes)| std::fs::read(dir.join(name)).unwrap() != *bytes)
        .map(|(name, _)| name)
        .collect();
    let expected: Vec<String> = touched.iter().map(|f| f.file_name()).collect();
    assert_eq!(changed.len(), expected.len(), "{changed:?} vs {expected:?}");
    // The control plane sees the user out of data-eng, and everything else unchanged.
    let (report, _, _) = check_dir(&org, &dir);
    assert_clean(&report, &org);

    // Errors name the problem.
    let group = org.direct_groups(user).first().copied().unwrap_or(0);
    let outside = (0..org.group_count())
        .find(|g| !org.direct_groups(user).contains(g))
        .unwrap();
    let cases: Vec<(Result<Vec<CatalogFile>, OrgGenError>, &str)> = vec![
        (org.move_out(usize::MAX, 0), "no user"),
        (org.move_in(user, usize::MAX), "no group"),
        (org.move_out(user, outside), "not a direct member"),
    ];
    for (result, message) in cases {
        let error = result.unwrap_err().to_string();
        assert!(error.contains(message), "{error}");
    }
    if org.direct_groups(user).contains(&group) {
        let error = org.move_in(user, group).unwrap_err().to_string();
        assert!(error.contains("already"), "{error}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn specs_too_small_and_bad_nesting_are_refused() {
    let small = [
        OrgSpec {
            users: 0,
            ..spec(Nesting::Deep)
        },
        OrgSpec {
            groups: 3,
            ..spec(Nesting::Deep)
        },
        OrgSpec {
            entities: 1,
            ..spec(Nesting::Deep)
        },
    ];
    for spec in small {
        assert!(matches!(
            Org::generate(&spec),
            Err(OrgGenError::TooSmall { .. })
        ));
    }
    for text in ["", "Deep", "deep ", "shallow\0", "very-deep"] {
        assert!(text.parse::<Nesting>().is_err(), "{text:?}");
    }
    assert_eq!("deep".parse::<Nesting>().unwrap(), Nesting::Deep);
}

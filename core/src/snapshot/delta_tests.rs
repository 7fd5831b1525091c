//! Deltas: random base/target pairs round trip to the target's exact image; tampered,
//! truncated, untrusted, misplaced and lying deltas are refused with the right error; a
//! one-user change at 100k users stays small.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::delta::{
    read_changes, write_changes, BodyLimits, Changes, DeltaEnvelope, RulesChange, UserChange,
};
use super::test_org::Org;
use super::*;
use crate::request::UnixTime;

const AT: i64 = 1_700_000_000;

fn key() -> SigningKey {
    SigningKey::from_seed("cp-1", [7; 32]).unwrap()
}

fn trusted() -> [TrustedKey; 1] {
    [key().trusted_key()]
}

fn decode_at(input: &SnapshotInput, version: u64) -> Snapshot {
    let bytes = encode(input, version, AT + version as i64, &key()).unwrap();
    Snapshot::decode(&bytes, &trusted(), &DecodeLimits::default()).unwrap()
}

fn apply(base: &Snapshot, delta: &[u8]) -> Result<Snapshot, DeltaError> {
    base.apply_delta(delta, &trusted(), &DecodeLimits::default())
}

/// A small random catalog drawn from fixed pools, so two draws overlap and differ in every
/// way a catalog can: users, emails, memberships, groups, hierarchy, owners, rules.
pub(super) fn random_input(rng: &mut StdRng) -> SnapshotInput {
    let mut groups: Vec<String> = (0..16)
        .filter(|_| rng.gen_bool(0.6))
        .map(|k| format!("group:default/g{k:02}"))
        .collect();
    if groups.is_empty() {
        groups.push("group:default/g00".into());
    }
    // Each group may have a parent among those before it; ancestors are closed.
    let mut above: Vec<Vec<String>> = Vec::new();
    for i in 0..groups.len() {
        let list = if i > 0 && rng.gen_bool(0.6) {
            let parent = rng.gen_range(0..i);
            let mut list = above[parent].clone();
            list.push(groups[parent].clone());
            list
        } else {
            Vec::new()
        };
        above.push(list);
    }
    let present: Vec<usize> = (0..20).filter(|_| rng.gen_bool(0.7)).collect();
    let users: Vec<UserInput> = present
        .into_iter()
        .map(|k| {
            let name = format!("u{k:02}");
            UserInput {
                entity_ref: format!("user:default/{name}"),
                email: match rng.gen_range(0..4) {
                    0 => None,
                    1 => Some("ops@example.com".into()),
                    2 => Some(format!("{name}@example.com")),
                    _ => Some(format!("{name}@other.example")),
                },
                groups: (0..rng.gen_range(0..=3))
                    .map(|_| groups.choose(rng).unwrap().clone())
                    .collect(),
            }
        })
        .collect();
    let present: Vec<usize> = (0..8).filter(|_| rng.gen_bool(0.6)).collect();
    let owned = present
        .into_iter()
        .map(|k| {
            let owners = (0..rng.gen_range(1..=2))
                .map(|_| match rng.gen_range(0..3) {
                    0 => format!("user:default/u{:02}", rng.gen_range(0..20)),
                    1 => format!("group:default/owner-{}", rng.gen_range(0..3)),
                    _ => groups.choose(rng).unwrap().clone(),
                })
                .collect();
            OwnedInput {
                kind: ["airflow.dag", "buildkite.pipeline"][k % 2].into(),
                id: format!("r{k}"),
                owners,
            }
        })
        .collect();
    SnapshotInput {
        users,
        owned,
        groups: groups
            .into_iter()
            .zip(above)
            .map(|(entity_ref, ancestors)| GroupInput {
                entity_ref,
                ancestors,
            })
            .collect(),
        rules: match rng.gen_range(0..3) {
            0 => None,
            1 => Some("[]".into()),
            _ => Some(r#"[{"id":"x","action":"allow"}]"#.into()),
        },
    }
}

/// One small edit of a catalog.
fn edited(input: &SnapshotInput, rng: &mut StdRng) -> SnapshotInput {
    let mut out = input.clone();
    match rng.gen_range(0..6) {
        0 if !out.users.is_empty() => {
            let i = rng.gen_range(0..out.users.len());
            out.users[i].groups = vec!["group:default/moved-here".into()];
        }
        1 if !out.users.is_empty() => {
            let i = rng.gen_range(0..out.users.len());
            out.users[i].email = Some("new@example.com".into());
        }
        2 if !out.users.is_empty() => {
            out.users.remove(rng.gen_range(0..out.users.len()));
        }
        3 if !out.groups.is_empty() => {
            let i = rng.gen_range(0..out.groups.len());
            out.groups[i]
                .ancestors
                .push("group:default/new-root".into());
        }
        4 if !out.owned.is_empty() => {
            let i = rng.gen_range(0..out.owned.len());
            out.owned[i].owners = vec!["user:default/u00".into()];
        }
        _ => out.users.push(UserInput {
            entity_ref: "user:default/zz-new".into(),
            email: None,
            groups: vec!["group:default/g00".into()],
        }),
    }
    out
}

fn assert_round_trip(base: &Snapshot, target: &Snapshot, what: &str) -> usize {
    let delta = encode_delta(base, target, &key()).unwrap();
    assert_eq!(
        delta,
        encode_delta(base, target, &key()).unwrap(),
        "{what}: deterministic"
    );
    let result = apply(base, &delta).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(result.image() == target.image(), "{what}: images differ");
    assert_eq!(result.version(), target.version(), "{what}");
    assert_eq!(result.generated_at(), target.generated_at(), "{what}");
    assert_eq!(result.content_hash(), target.content_hash(), "{what}");
    assert_eq!(result.encoded_len(), target.encoded_len(), "{what}");
    let header = DeltaHeader::peek(&delta).unwrap();
    assert_eq!(
        (header.base_version, header.target_version),
        (base.version(), target.version())
    );
    delta.len()
}

/// Users, resources and ancestor lists a delta rewrites or removes.
fn changed_entries(delta: &[u8]) -> usize {
    let envelope = DeltaEnvelope::parse(delta).unwrap();
    let limits = BodyLimits {
        max_string_bytes: usize::MAX,
        max_rules_bytes: usize::MAX,
    };
    let changes = read_changes(envelope.body, &limits).unwrap();
    changes.ancestors.len()
        + changes.users_removed.len()
        + changes.users_upserted.len()
        + changes.owned_removed.len()
        + changes.owned_upserted.len()
}

#[test]
fn random_pairs_apply_to_the_exact_target_image() {
    let mut rng = StdRng::seed_from_u64(17);
    for round in 0..300 {
        let base_input = random_input(&mut rng);
        let target_input = if round % 2 == 0 {
            random_input(&mut rng)
        } else {
            edited(&base_input, &mut rng)
        };
        let base = decode_at(&base_input, 10);
        let target = decode_at(&target_input, 11);
        assert_round_trip(&base, &target, &format!("round {round}"));
        if round % 2 == 1 {
            // One edit is one changed entry, however the group table shifted around it.
            let changed = changed_entries(&encode_delta(&base, &target, &key()).unwrap());
            assert!(
                changed <= 1,
                "round {round}: {changed} entries for one edit"
            );
        }
    }
    // No change at all: an empty delta still moves the version.
    let same = decode_at(&random_input(&mut rng), 1);
    let later = decode_at(&SnapshotInput::default(), 2);
    let empty = decode_at(&SnapshotInput::default(), 3);
    assert_round_trip(&same, &same, "identity");
    assert_round_trip(&same, &later, "to empty");
    assert_round_trip(&later, &same, "from empty");
    assert_round_trip(&later, &empty, "empty to empty");
}

/// Grants drawn from a fixed pool, so two draws overlap, differ, and sometimes keep an id
/// with another end time.
fn random_grants(rng: &mut StdRng) -> Grants {
    let mut picked: Vec<(i64, u32)> = Vec::new();
    for k in 0..12 {
        if rng.gen_bool(0.4) {
            picked.push((rng.gen_range(1..3), k));
        }
    }
    Grants::new(
        picked
            .into_iter()
            .map(|(minutes, k)| Grant {
                id: format!("grant-{k}"),
                user: format!("user:default/u{:02}", k % 5),
                target: if k % 3 == 0 {
                    GrantTarget::Group(format!("group:default/g{k:02}"))
                } else {
                    GrantTarget::Resource {
                        kind: "airflow.dag".into(),
                        id: format!("r{k}"),
                    }
                },
                not_after: UnixTime::from_secs(AT + 60 * minutes),
            })
            .collect(),
    )
}

fn decode_indexed_at(input: &IndexedInput, version: u64) -> Snapshot {
    let bytes = encode_indexed(input, version, AT + version as i64, &key()).unwrap();
    Snapshot::decode(&bytes, &trusted(), &DecodeLimits::default()).unwrap()
}

#[test]
fn grant_changes_travel_as_small_deltas() {
    let mut rng = StdRng::seed_from_u64(23);
    let catalog = random_input(&mut rng).interned();
    let mut previous = decode_indexed_at(&catalog, 1);
    for round in 0..200u64 {
        let mut input = catalog.clone();
        input.grants = random_grants(&mut rng);
        let target = decode_indexed_at(&input, round + 2);
        assert_eq!(target.grants().unwrap(), input.grants, "round {round}");
        assert_round_trip(&previous, &target, &format!("grants round {round}"));
        previous = target;
    }
    // One approval on an unchanged catalog costs the grant, not the catalog.
    let before = decode_indexed_at(&catalog, 500);
    let mut input = catalog.clone();
    input.grants = Grants::new(vec![Grant {
        id: "g-1".into(),
        user: "user:default/carol".into(),
        target: GrantTarget::Resource {
            kind: "airflow.dag".into(),
            id: "etl_daily".into(),
        },
        not_after: UnixTime::from_secs(AT + 900),
    }]);
    let after = decode_indexed_at(&input, 501);
    let size = assert_round_trip(&before, &after, "one approval");
    let body = size - DELTA_HEADER_BYTES - 1 - key().kid().len() - SIGNATURE_BYTES;
    assert!(body < 80, "one grant took {body} body bytes");
    // A delta removing a grant the base does not hold is refused.
    let removal = Changes {
        grants: super::delta::GrantsChange {
            removed: vec![("user:default/nobody".into(), "g-x".into())],
            added: Grants::default(),
        },
        ..Changes::default()
    };
    let bad = with_body(&before, &after, &removal);
    assert!(
        matches!(apply(&before, &bad), Err(DeltaError::Missing { .. })),
        "{:?}",
        apply(&before, &bad)
    );
}

/// A delta's signed part with its signature and key id replaced, for tampering.
fn resigned(delta: &[u8], edit: impl FnOnce(&mut Vec<u8>), key: &SigningKey) -> Vec<u8> {
    let kid_len = usize::from(delta[delta.len() - SIGNATURE_BYTES - 1 - key_id_len(delta)]);
    let mut signed = delta[..delta.len() - SIGNATURE_BYTES - 1 - kid_len].to_vec();
    edit(&mut signed);
    let signature = key.sign(&signed);
    signed.push(u8::try_from(key.kid().len()).unwrap());
    signed.extend_from_slice(key.kid().as_bytes());
    signed.extend_from_slice(&signature);
    signed
}

fn key_id_len(delta: &[u8]) -> usize {
    let body_len = u32::from_le_bytes(
        delta[DELTA_HEADER_BYTES - 4..DELTA_HEADER_BYTES]
            .try_into()
            .unwrap(),
    );
    usize::from(delta[DELTA_HEADER_BYTES + body_len as usize])
}

/// A signed delta from `base` with any body.
fn with_body(base: &Snapshot, target: &Snapshot, changes: &Changes) -> Vec<u8> {
    let delta = encode_delta(base, target, &key()).unwrap();
    resigned(
        &delta,
        |signed| {
            let body = write_changes(changes).unwrap();
            signed.truncate(DELTA_HEADER_BYTES - 4);
            signed.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
            signed.extend_from_slice(&body);
        },
        &key(),
    )
}

#[test]
fn bad_deltas_are_refused_with_the_right_error() {
    let mut rng = StdRng::seed_from_u64(3);
    let base_input = random_input(&mut rng);
    let base = decode_at(&base_input, 10);
    let target = decode_at(&edited(&base_input, &mut rng), 11);
    let other = decode_at(&random_input(&mut rng), 9);
    let delta = encode_delta(&base, &target, &key()).unwrap();
    assert!(apply(&base, &delta).is_ok());

    // Any changed byte.
    for at in 0..delta.len() {
        let mut bad = delta.clone();
        bad[at] ^= 0x01;
        let err = apply(&base, &bad).unwrap_err();
        let expected = match at {
            0..=6 => matches!(err, DeltaError::NotADelta),
            7 | 8 => matches!(err, DeltaError::UnsupportedFormat { .. }),
            _ if at >= delta.len() - SIGNATURE_BYTES => {
                matches!(err, DeltaError::BadSignature { .. })
            }
            _ => matches!(
                err,
                DeltaError::BadSignature { .. }
                    | DeltaError::UnknownKey { .. }
                    | DeltaError::InvalidKeyId { .. }
                    | DeltaError::Truncated { .. }
                    | DeltaError::TrailingBytes { .. }
            ),
        };
        assert!(expected, "byte {at}: {err}");
    }
    // Every truncation, and an extra byte.
    for len in 0..delta.len() {
        let err = apply(&base, &delta[..len]).unwrap_err();
        assert!(
            matches!(
                err,
                DeltaError::Truncated { .. }
                    | DeltaError::InvalidKeyId { .. }
                    | DeltaError::NotADelta
            ),
            "{len}: {err}"
        );
    }
    let mut longer = delta.clone();
    longer.push(0);
    assert_eq!(
        apply(&base, &longer).unwrap_err(),
        DeltaError::TrailingBytes { extra: 1 }
    );
    assert_eq!(
        apply(&base, b"MGSNAP\x02\x00").unwrap_err(),
        DeltaError::NotADelta
    );
    assert_eq!(
        apply(&base, &delta).and(Ok(())),
        Ok(()),
        "the original still applies"
    );

    // Keys: unknown id, and another key under a trusted id.
    let stranger = SigningKey::from_seed("cp-9", [1; 32]).unwrap();
    let impostor = SigningKey::from_seed("cp-1", [2; 32]).unwrap();
    assert_eq!(
        apply(&base, &encode_delta(&base, &target, &stranger).unwrap()).unwrap_err(),
        DeltaError::UnknownKey { kid: "cp-9".into() }
    );
    assert_eq!(
        apply(&base, &encode_delta(&base, &target, &impostor).unwrap()).unwrap_err(),
        DeltaError::BadSignature { kid: "cp-1".into() }
    );

    // Applied to another snapshot than its base.
    assert_eq!(
        apply(&other, &delta).unwrap_err(),
        DeltaError::BaseMismatch {
            delta_base_version: 10,
            loaded_version: 9
        }
    );

    // A signed delta whose result is not the image it names.
    let lying = resigned(&delta, |signed| signed[DELTA_HEADER_BYTES - 5] ^= 1, &key());
    assert_eq!(
        apply(&base, &lying).unwrap_err(),
        DeltaError::ResultMismatch { version: 11 }
    );
    // Signed bodies that break the format or name unknown groups.
    let garbage = resigned(&delta, |signed| signed.push(0xff), &key());
    assert!(matches!(
        apply(&base, &garbage).unwrap_err(),
        DeltaError::Truncated { .. }
    ));
    let mut body_garbage = with_body(&base, &target, &Changes::default());
    let body_start = DELTA_HEADER_BYTES;
    body_garbage = resigned(
        &body_garbage,
        |signed| {
            signed.truncate(body_start - 4);
            signed.extend_from_slice(&3u32.to_le_bytes());
            signed.extend_from_slice(&[0x80, 0x80, 0x80]);
        },
        &key(),
    );
    assert!(matches!(
        apply(&base, &body_garbage).unwrap_err(),
        DeltaError::Malformed { .. }
    ));
    let unknown = Changes {
        users_upserted: vec![UserChange {
            entity_ref: "user:default/x".into(),
            email: None,
            groups: vec!["group:default/not-there".into()],
        }],
        ..Changes::default()
    };
    assert_eq!(
        apply(&base, &with_body(&base, &target, &unknown)).unwrap_err(),
        DeltaError::UnknownGroup {
            group_ref: "group:default/not-there".into()
        }
    );
    let twice = Changes {
        groups_added: vec![base.group_ref(0).unwrap().into()],
        ..Changes::default()
    };
    assert!(matches!(
        apply(&base, &with_body(&base, &target, &twice)).unwrap_err(),
        DeltaError::Duplicate { what: "group", .. }
    ));
    let rules_only = Changes {
        rules: RulesChange::Replaced("[]".into()),
        ..Changes::default()
    };
    assert!(matches!(
        apply(&base, &with_body(&base, &target, &rules_only)).unwrap_err(),
        DeltaError::ResultMismatch { .. }
    ));
    // Limits: the size before anything else, and the result's counts.
    let limits = DecodeLimits {
        max_bytes: delta.len() - 1,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        base.apply_delta(&delta, &trusted(), &limits).unwrap_err(),
        DeltaError::TooLarge { .. }
    ));
    let limits = DecodeLimits {
        max_users: target.user_count() - 1,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        base.apply_delta(&delta, &trusted(), &limits).unwrap_err(),
        DeltaError::TooMany { what: "users", .. }
    ));
}

#[test]
fn random_deltas_never_panic() {
    let mut rng = StdRng::seed_from_u64(8);
    let base_input = random_input(&mut rng);
    let base = decode_at(&base_input, 10);
    let target = decode_at(&random_input(&mut rng), 11);
    let delta = encode_delta(&base, &target, &key()).unwrap();
    let body_len = delta.len() - DELTA_HEADER_BYTES - 1 - 4 - SIGNATURE_BYTES;
    for _ in 0..2000 {
        // Mutated bodies, re-signed so that the body reader and the applier see them.
        let bad = resigned(
            &delta,
            |signed| {
                for _ in 0..rng.gen_range(1..4) {
                    let at = DELTA_HEADER_BYTES + rng.gen_range(0..body_len);
                    signed[at] = rng.gen();
                }
            },
            &key(),
        );
        let _ = apply(&base, &bad);
        let _ = DeltaHeader::peek(&bad);
    }
}

#[test]
fn a_one_user_change_at_100k_users_is_small() {
    let input = Org {
        users: 100_001,
        groups: 2_000,
        parent_window: 0,
        max_direct: 3,
        owned: 100,
        seed: 4,
    }
    .build();
    let base = decode_at(&input, 1);
    let mut moved = input.clone();
    moved.users[50_000].groups = vec![input.users[7].groups[0].clone()];
    let target = decode_at(&moved, 2);
    let size = assert_round_trip(&base, &target, "one user moved");
    assert!(size <= 4096, "one-user delta is {size} bytes");
}

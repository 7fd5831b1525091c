use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sha2::{Digest as _, Sha256};

use super::wire::Writer;
use super::*;

const V: u64 = 7;
const AT: i64 = 1_700_000_000;

fn key() -> SigningKey {
    SigningKey::from_seed("cp-1", [7; 32]).unwrap()
}

fn other_key() -> SigningKey {
    SigningKey::from_seed("cp-2", [9; 32]).unwrap()
}

fn user(entity_ref: &str, email: Option<&str>, groups: &[&str]) -> UserInput {
    UserInput {
        entity_ref: entity_ref.into(),
        email: email.map(Into::into),
        groups: groups.iter().map(|group| (*group).into()).collect(),
    }
}

fn owned(kind: &str, id: &str, owners: &[&str]) -> OwnedInput {
    OwnedInput {
        kind: kind.into(),
        id: id.into(),
        owners: owners.iter().map(|owner| (*owner).into()).collect(),
    }
}

fn input() -> SnapshotInput {
    SnapshotInput {
        users: vec![
            user(
                "user:default/alice",
                Some("Alice@Example.com"),
                &["group:default/data-eng", "group:default/analytics"],
            ),
            user(
                "user:default/bob",
                Some("bob@example.com"),
                &["group:default/platform-team"],
            ),
            user("user:default/carol", None, &[]),
            user(
                "user:default/dave",
                Some("ops@example.com"),
                &["group:default/ci-admins"],
            ),
            user(
                "user:default/erin",
                Some("ops@example.com"),
                &["group:default/ci-admins", "group:default/platform-team"],
            ),
        ],
        owned: vec![
            owned("airflow.dag", "etl_daily", &["group:default/analytics"]),
            owned("airflow.dag", "billing", &["group:default/data-eng"]),
            owned(
                "buildkite.pipeline",
                "acme/deploy",
                &["group:default/platform-team", "group:default/ci-admins"],
            ),
            owned("airbyte.connection", "3f2a", &["group:default/owners-only"]),
        ],
        ..SnapshotInput::default()
    }
}

fn encoded(input: &SnapshotInput) -> Vec<u8> {
    encode(input, V, AT, &key()).unwrap()
}

fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    Snapshot::decode(bytes, &[key().trusted_key()], &DecodeLimits::default())
}

fn names(set: GroupSet<'_>) -> Vec<&str> {
    set.iter().collect()
}

/// A validly signed snapshot around arbitrary content, to reach the content checks.
fn signed(content: &[u8], key: &SigningKey) -> Vec<u8> {
    signed_as(FORMAT_VERSION, content, key)
}

/// [`signed`] with any format number in the header.
fn signed_as(format: u16, content: &[u8], key: &SigningKey) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&V.to_le_bytes());
    out.extend_from_slice(&AT.to_le_bytes());
    out.extend_from_slice(&u32::try_from(content.len()).unwrap().to_le_bytes());
    out.extend_from_slice(&Sha256::digest(content));
    out.extend_from_slice(content);
    let signature = key.sign(&out);
    out.push(u8::try_from(key.kid().len()).unwrap());
    out.extend_from_slice(key.kid().as_bytes());
    out.extend_from_slice(&signature);
    out
}

/// The content section of an encoded snapshot.
fn content_of(bytes: &[u8]) -> Vec<u8> {
    let len = u32::from_le_bytes(bytes[24..28].try_into().unwrap()) as usize;
    bytes[HEADER_BYTES..HEADER_BYTES + len].to_vec()
}

fn sections(parts: &[(u64, &[u8])]) -> Vec<u8> {
    let mut writer = Writer::default();
    for (tag, payload) in parts {
        writer.section(*tag, payload);
    }
    writer.buf
}

fn front_coded_table(strings: &[&str]) -> Vec<u8> {
    let mut writer = Writer::default();
    writer.len(strings.len());
    let mut previous = "";
    for string in strings {
        writer.front_coded(previous.as_bytes(), string.as_bytes());
        previous = string;
    }
    writer.buf
}

fn malformed(bytes: &[u8]) -> Violation {
    match decode(bytes) {
        Err(SnapshotError::Malformed { violation, .. }) => violation,
        other => panic!("expected a malformed snapshot, got {other:?}"),
    }
}

#[test]
fn round_trip_answers_lookups() {
    let bytes = encoded(&input());
    let snap = decode(&bytes).unwrap();
    assert_eq!(snap.version(), V);
    assert_eq!(snap.generated_at(), AT);
    assert_eq!(snap.key_id(), "cp-1");
    assert_eq!(snap.encoded_len(), bytes.len());
    assert_eq!(
        (snap.user_count(), snap.group_count(), snap.owned_count()),
        (5, 5, 4)
    );
    assert_eq!(
        names(snap.groups_of_user("user:default/alice").unwrap()),
        ["group:default/analytics", "group:default/data-eng"]
    );
    assert!(snap
        .groups_of_user("user:default/carol")
        .unwrap()
        .is_empty());
    assert!(snap.groups_of_user("user:default/zed").is_none());
    assert!(snap.groups_of_user("User:default/alice").is_none());

    // Emails are case-insensitive; a shared email maps to nobody.
    let alice = snap.user_by_email("alice@example.COM").unwrap();
    assert_eq!(alice.entity_ref, "user:default/alice");
    assert!(alice.groups.contains("group:default/data-eng"));
    assert!(!alice.groups.contains("group:default/ci-admins"));
    assert!(!alice.groups.contains("group:default/nope"));
    assert_eq!(
        snap.user_by_email("bob@example.com").unwrap().entity_ref,
        "user:default/bob"
    );
    assert!(snap.user_by_email("ops@example.com").is_none());
    assert_eq!(snap.ambiguous_email_count(), 1);
    assert!(snap.user_by_email("carol@example.com").is_none());

    let dag = snap.owners_of("airflow.dag", "etl_daily").unwrap();
    assert_eq!(names(dag), ["group:default/analytics"]);
    assert!(alice.groups.intersects(&dag));
    let bob = snap.groups_of_user("user:default/bob").unwrap();
    assert!(!bob.intersects(&dag));
    let pipeline = snap.owners_of("buildkite.pipeline", "acme/deploy").unwrap();
    assert_eq!(pipeline.len(), 2);
    assert!(bob.intersects(&pipeline));
    assert!(snap.owners_of("airflow.dag", "acme/deploy").is_none());
    assert!(snap.owners_of("airflow.dags", "etl_daily").is_none());

    // Groups only named as owners are in the table too.
    let index = snap.group_index("group:default/owners-only").unwrap();
    assert_eq!(snap.group_ref(index), Some("group:default/owners-only"));
    assert_eq!(snap.group_ref(99), None);
    assert_eq!(snap.group_index("group:default/nope"), None);
    assert!(snap
        .owners_of("airbyte.connection", "3f2a")
        .unwrap()
        .contains_index(index));
}

#[test]
fn unusual_emails_round_trip() {
    let emails = [
        "alice@example.com",
        "a.b+tag@sub.example.com",
        "x@y@z",
        "@leading",
        "trailing@",
        "no-at-sign",
        "zoë@bücher.example",
        "user:default/weird@example.com",
    ];
    let input = SnapshotInput {
        users: emails
            .iter()
            .enumerate()
            .map(|(i, email)| user(&format!("user:default/u{i}"), Some(email), &[]))
            .collect(),
        ..SnapshotInput::default()
    };
    let snap = decode(&encoded(&input)).unwrap();
    for (i, email) in emails.iter().enumerate() {
        let found = snap.user_by_email(email).unwrap();
        assert_eq!(found.entity_ref, format!("user:default/u{i}"), "{email}");
    }
}

#[test]
fn empty_input_round_trips() {
    let snap = decode(&encoded(&SnapshotInput::default())).unwrap();
    assert_eq!(
        (snap.user_count(), snap.group_count(), snap.owned_count()),
        (0, 0, 0)
    );
}

#[test]
fn the_same_content_in_any_order_gives_the_same_bytes() {
    let reference = encoded(&input());
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..20 {
        let mut shuffled = input();
        shuffled.users.shuffle(&mut rng);
        shuffled.owned.shuffle(&mut rng);
        for user in &mut shuffled.users {
            user.groups.shuffle(&mut rng);
            // Duplicates and case in emails do not change the content.
            if let Some(group) = user.groups.first().cloned() {
                user.groups.push(group);
            }
            user.email = user.email.as_ref().map(|email| email.to_uppercase());
        }
        for entry in &mut shuffled.owned {
            entry.owners.shuffle(&mut rng);
        }
        assert_eq!(encoded(&shuffled), reference);
    }
    // Split owner lists for the same resource merge.
    let mut split = input();
    split
        .owned
        .retain(|entry| entry.kind != "buildkite.pipeline");
    split.owned.push(owned(
        "buildkite.pipeline",
        "acme/deploy",
        &["group:default/ci-admins"],
    ));
    split.owned.push(owned(
        "buildkite.pipeline",
        "acme/deploy",
        &["group:default/platform-team"],
    ));
    assert_eq!(encoded(&split), reference);
}

#[test]
fn content_hash_follows_content_not_version() {
    let a = decode(&encode(&input(), 1, AT, &key()).unwrap()).unwrap();
    let b = decode(&encode(&input(), 2, AT + 60, &key()).unwrap()).unwrap();
    assert_eq!(a.content_hash(), b.content_hash());
    assert_eq!(a.content_hash_hex().len(), 64);
    let mut changed = input();
    changed.users.pop();
    let c = decode(&encode(&changed, 3, AT, &key()).unwrap()).unwrap();
    assert_ne!(a.content_hash(), c.content_hash());
    assert!(b.is_newer_than(&a) && !a.is_newer_than(&b) && !a.is_newer_than(&a));
    assert!(c.is_newer_than(&b));
}

#[test]
fn peek_reads_the_header_without_a_key() {
    let bytes = encode(&input(), 42, AT, &other_key()).unwrap();
    let header = SnapshotHeader::peek(&bytes).unwrap();
    assert_eq!((header.version, header.generated_at), (42, AT));
    assert_eq!(
        header.content_hash,
        <[u8; 32]>::from(Sha256::digest(content_of(&bytes)))
    );
}

#[test]
fn any_changed_byte_is_rejected() {
    let bytes = encoded(&input());
    for position in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut tampered = bytes.clone();
            tampered[position] ^= flip;
            assert!(
                decode(&tampered).is_err(),
                "flipping {flip:#x} at {position} of {} was accepted",
                bytes.len()
            );
        }
    }
}

#[test]
fn tampering_is_reported_by_part() {
    let bytes = encoded(&input());
    let kid_at = bytes.len() - SIGNATURE_BYTES - "cp-1".len();
    let cases = [
        (0, "bad magic"),
        (6, "unsupported format"),
        (8, "version"),
        (HEADER_BYTES + 3, "content"),
        (30, "content hash"),
        (kid_at, "key id"),
        (bytes.len() - 1, "signature"),
    ];
    for (position, part) in cases {
        let mut tampered = bytes.clone();
        tampered[position] ^= 0x01;
        let err = decode(&tampered).unwrap_err();
        let expected = match part {
            "bad magic" => matches!(err, SnapshotError::NotASnapshot),
            "unsupported format" => matches!(
                err,
                SnapshotError::UnsupportedFormat {
                    found: 3,
                    supported: 2
                }
            ),
            "key id" => matches!(err, SnapshotError::UnknownKey { .. }),
            _ => matches!(err, SnapshotError::BadSignature { .. }),
        };
        assert!(expected, "{part}: {err}");
    }
}

#[test]
fn a_hash_that_does_not_match_is_rejected_even_when_signed() {
    let bytes = encoded(&input());
    let mut body = bytes[..bytes.len() - 1 - 4 - SIGNATURE_BYTES].to_vec();
    body[HEADER_BYTES - 1] ^= 1;
    let key = key();
    let signature = key.sign(&body);
    body.push(4);
    body.extend_from_slice(b"cp-1");
    body.extend_from_slice(&signature);
    assert_eq!(decode(&body).unwrap_err(), SnapshotError::HashMismatch);
}

#[test]
fn untrusted_keys_are_rejected() {
    let bytes = encode(&input(), V, AT, &other_key()).unwrap();
    assert_eq!(
        decode(&bytes).unwrap_err(),
        SnapshotError::UnknownKey { kid: "cp-2".into() }
    );
    // A different key under a trusted key id.
    let impostor = SigningKey::from_seed("cp-1", [8; 32]).unwrap();
    let bytes = encode(&input(), V, AT, &impostor).unwrap();
    let err = decode(&bytes).unwrap_err();
    assert_eq!(err, SnapshotError::BadSignature { kid: "cp-1".into() });
    assert_eq!(
        err.to_string(),
        "snapshot signature does not verify with trusted key `cp-1`"
    );
    // With several trusted keys, the one named by the snapshot is used.
    let trusted = [key().trusted_key(), other_key().trusted_key()];
    let bytes = encode(&input(), V, AT, &other_key()).unwrap();
    let snap = Snapshot::decode(&bytes, &trusted, &DecodeLimits::default()).unwrap();
    assert_eq!(snap.key_id(), "cp-2");
    assert!(Snapshot::decode(&bytes, &[], &DecodeLimits::default()).is_err());
}

#[test]
fn truncated_and_extended_snapshots_are_rejected() {
    let bytes = encoded(&input());
    for len in 0..bytes.len() {
        let err = decode(&bytes[..len]).unwrap_err();
        assert!(
            matches!(
                err,
                SnapshotError::Truncated { .. } | SnapshotError::InvalidKeyId { .. }
            ),
            "{len}: {err}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        decode(&longer).unwrap_err(),
        SnapshotError::TrailingBytes { extra: 1 }
    );
    assert_eq!(
        decode(b"PK\x03\x04 not a snapshot at all, but long enough to hold a header......")
            .unwrap_err(),
        SnapshotError::NotASnapshot
    );
    assert_eq!(decode(b"{}").unwrap_err(), SnapshotError::NotASnapshot);
}

#[test]
fn oversized_snapshots_are_rejected_before_parsing() {
    let bytes = encoded(&input());
    let limits = DecodeLimits {
        max_bytes: bytes.len() - 1,
        ..DecodeLimits::default()
    };
    let err = Snapshot::decode(&bytes, &[key().trusted_key()], &limits).unwrap_err();
    assert_eq!(
        err,
        SnapshotError::TooLarge {
            len: bytes.len(),
            max: bytes.len() - 1
        }
    );
    let limits = DecodeLimits {
        max_bytes: bytes.len(),
        ..DecodeLimits::default()
    };
    assert!(Snapshot::decode(&bytes, &[key().trusted_key()], &limits).is_ok());
}

#[test]
fn count_and_string_limits_apply() {
    let bytes = encoded(&input());
    let trusted = [key().trusted_key()];
    for (limits, what) in [
        (
            DecodeLimits {
                max_users: 4,
                ..DecodeLimits::default()
            },
            "user count",
        ),
        (
            DecodeLimits {
                max_groups: 4,
                ..DecodeLimits::default()
            },
            "group count",
        ),
        (
            DecodeLimits {
                max_owned: 3,
                ..DecodeLimits::default()
            },
            "resource count",
        ),
    ] {
        match Snapshot::decode(&bytes, &trusted, &limits) {
            Err(SnapshotError::Malformed {
                violation: Violation::TooMany { what: found, .. },
                ..
            }) => assert_eq!(found, what),
            other => panic!("{what}: {other:?}"),
        }
    }
    let limits = DecodeLimits {
        max_string_bytes: 20,
        ..DecodeLimits::default()
    };
    match Snapshot::decode(&bytes, &trusted, &limits) {
        Err(SnapshotError::Malformed {
            violation: Violation::StringTooLong { max: 20, .. },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn encoder_refuses_bad_input() {
    let mut twice = input();
    twice.users.push(user("user:default/bob", None, &[]));
    assert_eq!(
        encode(&twice, V, AT, &key()).unwrap_err(),
        EncodeError::DuplicateUser {
            entity_ref: "user:default/bob".into()
        }
    );
    let mut empty = input();
    empty.owned.push(owned("airflow.dag", "", &[]));
    assert_eq!(
        encode(&empty, V, AT, &key()).unwrap_err(),
        EncodeError::EmptyString {
            what: "resource id"
        }
    );
    let mut long = input();
    long.users[0].groups.push("g".repeat(MAX_STRING_BYTES + 1));
    let err = encode(&long, V, AT, &key()).unwrap_err();
    assert!(
        matches!(err, EncodeError::StringTooLong { what: "group ref", len, .. } if len == MAX_STRING_BYTES + 1),
        "{err}"
    );
    // An empty email is no email.
    let mut blank = input();
    blank.users[2].email = Some(String::new());
    assert_eq!(encoded(&blank), encoded(&input()));
}

#[test]
fn signed_but_malformed_content_is_rejected() {
    let k = key();
    let groups = front_coded_table(&["group:default/a", "group:default/b"]);
    let user_with = |groups: &[u32]| {
        let mut w = Writer::default();
        w.len(0); // email domains
        w.len(1);
        w.front_coded(b"", b"user:default/u");
        w.varint(0);
        w.indices(groups);
        w.buf
    };
    let owned_none = {
        let mut w = Writer::default();
        w.len(0);
        w.buf
    };
    let good_users = user_with(&[1]);
    let good = sections(&[(1, &groups), (2, &good_users), (3, &owned_none)]);
    let snap = decode(&signed(&good, &k)).unwrap();
    assert_eq!(
        names(snap.groups_of_user("user:default/u").unwrap()),
        ["group:default/b"]
    );

    // Out-of-range group index.
    let users = user_with(&[2]);
    let content = sections(&[(1, &groups), (2, &users), (3, &owned_none)]);
    assert!(matches!(
        malformed(&signed(&content, &k)),
        Violation::IndexOutOfRange {
            what: "user group",
            index: 2,
            len: 2
        }
    ));

    // Duplicate and unsorted tables.
    let dup = front_coded_table(&["group:default/a", "group:default/a"]);
    let content = sections(&[(1, &dup), (2, &good_users), (3, &owned_none)]);
    assert!(matches!(
        malformed(&signed(&content, &k)),
        Violation::Duplicate {
            what: "group ref",
            ..
        }
    ));
    let unsorted = front_coded_table(&["group:default/b", "group:default/a"]);
    let content = sections(&[(1, &unsorted), (2, &good_users), (3, &owned_none)]);
    assert!(matches!(
        malformed(&signed(&content, &k)),
        Violation::OutOfOrder { .. }
    ));
    let mut users = Writer::default();
    users.len(0);
    users.len(2);
    for _ in 0..2 {
        users.front_coded(b"", b"user:default/u");
        users.varint(0);
        users.indices(&[]);
    }
    let content = sections(&[(1, &groups), (2, &users.buf), (3, &owned_none)]);
    let violation = malformed(&signed(&content, &k));
    assert_eq!(
        violation.to_string(),
        "user ref `user:default/u` appears twice"
    );

    // An email domain that is not in the domain table.
    let mut users = Writer::default();
    users.len(1);
    users.front_coded(b"", b"example.com");
    users.len(1);
    users.front_coded(b"", b"user:default/u");
    users.len(3);
    users.front_coded(b"u", b"u");
    users.indices(&[]);
    let content = sections(&[(1, &groups), (2, &users.buf), (3, &owned_none)]);
    assert!(matches!(
        malformed(&signed(&content, &k)),
        Violation::IndexOutOfRange {
            what: "email domain",
            index: 1,
            len: 1
        }
    ));

    // Sections: missing, out of order, unknown, optional, not consumed.
    let content = sections(&[(1, &groups), (2, &good_users)]);
    assert!(matches!(
        malformed(&signed(&content, &k)),
        Violation::MissingSection { tag: 3, .. }
    ));
    let content = sections(&[(1, &groups), (3, &owned_none), (2, &good_users)]);
    assert!(matches!(
        malformed(&signed(&content, &k)),
        Violation::SectionOrder { .. }
    ));
    let content = sections(&[(1, &groups), (2, &good_users), (3, &owned_none), (4, b"x")]);
    assert!(matches!(
        malformed(&signed(&content, &k)),
        Violation::UnknownSection { tag: 4 }
    ));
    let content = sections(&[
        (1, &groups),
        (2, &good_users),
        (3, &owned_none),
        (200, b"future"),
    ]);
    assert!(decode(&signed(&content, &k)).is_ok());
    let mut padded = groups.clone();
    padded.push(0);
    let content = sections(&[(1, &padded), (2, &good_users), (3, &owned_none)]);
    assert!(matches!(
        malformed(&signed(&content, &k)),
        Violation::SectionNotConsumed { tag: 1, extra: 1 }
    ));

    // Invalid UTF-8 in a ref.
    let mut bad = Writer::default();
    bad.len(1);
    bad.front_coded(b"", b"group:\xff");
    let content = sections(&[(1, &bad.buf), (2, &good_users), (3, &owned_none)]);
    assert!(matches!(
        malformed(&signed(&content, &k)),
        Violation::InvalidUtf8 { .. }
    ));

    // A huge count does not reserve memory; it runs out of bytes.
    let mut huge = Writer::default();
    huge.varint(900_000);
    let content = sections(&[(1, &huge.buf), (2, &good_users), (3, &owned_none)]);
    assert!(matches!(
        malformed(&signed(&content, &k)),
        Violation::Truncated { .. }
    ));
}

#[test]
fn decoding_random_and_mutated_input_never_panics() {
    let mut rng = StdRng::seed_from_u64(42);
    let trusted = [key().trusted_key()];
    let limits = DecodeLimits::default();
    let valid = encoded(&input());
    let content = content_of(&valid);
    for round in 0..3000 {
        let bytes: Vec<u8> = match round % 3 {
            0 => (0..rng.gen_range(0..200)).map(|_| rng.gen()).collect(),
            // Random header fields on a valid prefix.
            1 => {
                let mut bytes = valid.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..bytes.len());
                    bytes[at] = rng.gen();
                }
                bytes
            }
            // Mutated content, re-signed so that the content parser sees it.
            _ => {
                let mut content = content.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..content.len());
                    content[at] = rng.gen();
                }
                if rng.gen_bool(0.2) {
                    content.truncate(rng.gen_range(0..content.len()));
                }
                signed(&content, &key())
            }
        };
        let _ = Snapshot::decode(&bytes, &trusted, &limits);
        let _ = SnapshotHeader::peek(&bytes);
    }
}

#[test]
fn keys_round_trip_through_their_text_forms() {
    let signing = key();
    let spec = signing.trusted_key().to_spec();
    assert_eq!(spec.kid, "cp-1");
    assert_eq!(spec.public_key.len(), 43);
    let trusted = TrustedKey::from_spec(&spec).unwrap();
    assert_eq!(trusted, signing.trusted_key());
    let json = serde_json::to_string(&spec).unwrap();
    let parsed: PublicKeySpec = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, spec);

    let reloaded = SigningKey::from_base64url("cp-1", &signing.private_key_base64url()).unwrap();
    assert_eq!(
        encoded(&input()),
        encode(&input(), V, AT, &reloaded).unwrap()
    );
    // Debug output never shows the private key.
    assert!(!format!("{signing:?}").contains(&signing.private_key_base64url()));
}

#[test]
fn bad_keys_are_refused() {
    let good = key().private_key_base64url();
    for kid in ["", "has space", &"k".repeat(65), "ünïcode"] {
        assert!(
            matches!(
                SigningKey::from_seed(kid, [1; 32]),
                Err(KeyError::InvalidKeyId { .. })
            ),
            "{kid:?}"
        );
    }
    assert!(matches!(
        SigningKey::from_seed("k", [0; 32]),
        Err(KeyError::Invalid { .. })
    ));
    assert_eq!(
        SigningKey::from_base64url("k", "not base64!").unwrap_err(),
        KeyError::Base64 {
            what: "private key"
        }
    );
    assert_eq!(
        SigningKey::from_base64url("k", &good[..40]).unwrap_err(),
        KeyError::Length {
            what: "private key",
            len: 30,
            expected: 64
        }
    );
    // A public half that does not belong to the seed.
    let mut bytes = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        good.as_bytes(),
    )
    .unwrap();
    bytes[40] ^= 1;
    assert!(matches!(
        SigningKey::from_private_key("k", &bytes),
        Err(KeyError::Invalid { .. })
    ));
    // Small-order and non-canonical public keys.
    assert!(matches!(
        TrustedKey::new("k", &[0; 32]),
        Err(KeyError::Invalid { .. })
    ));
    assert!(TrustedKey::new("k", &[1; 31]).is_err());
    let spec = PublicKeySpec {
        kid: "k".into(),
        public_key: "AAAA".into(),
    };
    assert!(TrustedKey::from_spec(&spec).is_err());
    assert!(
        serde_json::from_str::<PublicKeySpec>(r#"{"kid":"k","public_key":"x","alg":"EdDSA"}"#)
            .is_err()
    );
}

/// Size, load and lookup times at organisation scale with a deep hierarchy. Slow unoptimized;
/// run with `cargo test -p meshgate-core --release --lib snapshot::tests::scale -- --ignored
/// --nocapture` (and in Wasm, see `docs/snapshot.md`).
#[test]
#[ignore = "slow in debug builds; measures size, load, lookup and delta times"]
fn scale_deep_hierarchy_100k_users() {
    let org = super::test_org::Org {
        users: 100_001,
        groups: 10_004,
        parent_window: 50,
        max_direct: 3,
        owned: 50_000,
        seed: 11,
    };
    let input = org.build();
    let key = key();
    let started = std::time::Instant::now();
    let bytes = encode(&input, 1, AT, &key).unwrap();
    let encode_time = started.elapsed();
    let trusted = [key.trusted_key()];
    let limits = DecodeLimits::default();

    let snap = Snapshot::decode(&bytes, &trusted, &limits).unwrap();
    let memory_before = memory_kib();
    let held = [
        Snapshot::decode(&bytes, &trusted, &limits).unwrap(),
        Snapshot::decode(&bytes, &trusted, &limits).unwrap(),
    ];
    let memory_after = memory_kib();
    drop(held);
    let best_of = |runs: usize, mut run: Box<dyn FnMut() + '_>| {
        let mut best = std::time::Duration::MAX;
        for _ in 0..runs {
            let started = std::time::Instant::now();
            run();
            best = best.min(started.elapsed());
        }
        best
    };
    let decode_time = best_of(
        5,
        Box::new(|| drop(Snapshot::decode(&bytes, &trusted, &limits).unwrap())),
    );
    let image = snap.image().to_vec();
    // Adopting the image: only `from_image` is timed, not the copy it takes ownership of.
    let mut from_image_time = std::time::Duration::MAX;
    for _ in 0..5 {
        let copy = image.clone();
        let started = std::time::Instant::now();
        let adopted = Snapshot::from_image(copy).unwrap();
        from_image_time = from_image_time.min(started.elapsed());
        drop(adopted);
    }
    let adopted = Snapshot::from_image(image.clone()).unwrap();

    let depth = input
        .groups
        .iter()
        .map(|g| g.ancestors.len())
        .max()
        .unwrap_or(0);
    let mut rng = StdRng::seed_from_u64(3);
    let mut refs: Vec<&str> = input.users.iter().map(|u| u.entity_ref.as_str()).collect();
    refs.shuffle(&mut rng);
    let started = std::time::Instant::now();
    let views: Vec<UserView<'_>> = refs.iter().map(|r| adopted.user(r).unwrap()).collect();
    let user_lookup = started.elapsed() / u32::try_from(refs.len()).unwrap();
    let probes: Vec<u32> = (0..views.len())
        .map(|_| rng.gen_range(0..adopted.group_count() as u32))
        .collect();
    let started = std::time::Instant::now();
    let mut hits = 0usize;
    for (view, &probe) in views.iter().zip(&probes) {
        hits += usize::from(view.groups.contains_index(probe));
    }
    let contains = started.elapsed() / u32::try_from(views.len()).unwrap();
    let mut owned: Vec<(&str, &str)> = input
        .owned
        .iter()
        .map(|o| (o.kind.as_str(), o.id.as_str()))
        .collect();
    owned.shuffle(&mut rng);
    let started = std::time::Instant::now();
    let owner_sets: Vec<GroupSet<'_>> = owned
        .iter()
        .map(|(kind, id)| adopted.owners_of(kind, id).unwrap())
        .collect();
    let owners_lookup = started.elapsed() / u32::try_from(owned.len()).unwrap();
    let started = std::time::Instant::now();
    let mut owns = 0usize;
    for (view, owners) in views.iter().zip(owner_sets.iter().cycle()) {
        owns += usize::from(view.groups.intersects(owners));
    }
    let intersects = started.elapsed() / u32::try_from(views.len()).unwrap();
    let closed: usize = views.iter().take(1000).map(|v| v.groups.len()).sum();

    // A one-user change: user 50,000 moves to another group.
    let mut moved = input.clone();
    moved.users[50_000].groups = vec![input.users[7].groups[0].clone()];
    let target =
        Snapshot::decode(&encode(&moved, 2, AT + 1, &key).unwrap(), &trusted, &limits).unwrap();
    let started = std::time::Instant::now();
    let delta = encode_delta(&snap, &target, &key).unwrap();
    let delta_encode = started.elapsed();
    let mut applied = None;
    let apply_time = best_of(
        3,
        Box::new(|| applied = Some(adopted.apply_delta(&delta, &trusted, &limits).unwrap())),
    );
    assert!(applied.unwrap().image() == target.image());

    println!(
        "users {} groups {} (deepest chain {depth} ancestors) owned {}; closed groups per user ~{} \
         (hits {hits}, owns {owns})",
        snap.user_count(),
        snap.group_count(),
        snap.owned_count(),
        closed / 1000
    );
    println!(
        "wire {} bytes ({:.2} MiB)",
        bytes.len(),
        bytes.len() as f64 / 1048576.0
    );
    let content = content_of(&bytes);
    let mut reader = super::wire::Reader::new(&content, 0);
    while !reader.is_empty() {
        let tag = reader.varint("tag").unwrap();
        let len = reader.varint("len").unwrap();
        reader.take(len, "section").unwrap();
        println!("  section {tag}: {len} bytes");
    }
    println!(
        "image {} bytes ({:.2} MiB), heap_size {}",
        image.len(),
        image.len() as f64 / 1048576.0,
        snap.heap_size()
    );
    println!("encode+sign {encode_time:?}");
    println!("decode (verify + hash + parse + image), best of 5: {decode_time:?}");
    println!("from_image, best of 5: {from_image_time:?}");
    println!(
        "user() {user_lookup:?}, closed contains_index {contains:?}, owners_of {owners_lookup:?}, \
         user groups intersect owners {intersects:?} (per lookup, random order)"
    );
    println!(
        "one-user delta {} bytes, encode_delta {delta_encode:?}, apply_delta best of 3 {apply_time:?}",
        delta.len()
    );
    if let (Some(before), Some(after)) = (memory_before, memory_after) {
        println!(
            "measured memory per decoded snapshot: ~{:.1} MiB",
            after.saturating_sub(before) as f64 / 2048.0
        );
    }
    assert_eq!(snap.user_count(), 100_001);
    assert_eq!(snap.owned_count(), 50_000);
    assert!(delta.len() <= 4096);
}

/// Resident set size natively, linear memory size in Wasm (which never shrinks).
fn memory_kib() -> Option<usize> {
    #[cfg(target_arch = "wasm32")]
    {
        Some(core::arch::wasm32::memory_size(0) * 64)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

fn group(entity_ref: &str, ancestors: &[&str]) -> GroupInput {
    GroupInput {
        entity_ref: entity_ref.into(),
        ancestors: ancestors.iter().map(|a| (*a).into()).collect(),
    }
}

#[test]
fn hierarchy_and_rules_round_trip() {
    let rules = r#"[{"id":"r1","action":"allow","hosts":["a"]}]"#;
    let mut with = input();
    with.groups = vec![
        group(
            "group:default/analytics",
            &["group:default/data-eng", "group:default/engineering"],
        ),
        // The group itself and duplicates are dropped; entries merge.
        group(
            "group:default/analytics",
            &["group:default/analytics", "group:default/data-eng"],
        ),
        group("group:default/data-eng", &["group:default/engineering"]),
        group("group:default/engineering", &[]),
    ];
    with.rules = Some(rules.into());
    let snap = decode(&encoded(&with)).unwrap();
    let ancestors = |g: &str| names(snap.ancestors_of(snap.group_index(g).unwrap()));
    assert_eq!(
        ancestors("group:default/analytics"),
        ["group:default/data-eng", "group:default/engineering"]
    );
    assert_eq!(
        ancestors("group:default/data-eng"),
        ["group:default/engineering"]
    );
    assert!(ancestors("group:default/engineering").is_empty());
    assert!(ancestors("group:default/ci-admins").is_empty());
    assert!(snap.ancestors_of(u32::MAX).is_empty());
    assert_eq!(snap.rules_json(), Some(rules));

    // Without them the snapshot is what it was: no hierarchy, no rules, same bytes.
    let plain = decode(&encoded(&input())).unwrap();
    assert!(plain.rules_json().is_none());
    assert!(plain
        .ancestors_of(plain.group_index("group:default/analytics").unwrap())
        .is_empty());
    let mut empty_groups = input();
    empty_groups.groups = vec![group("group:default/analytics", &[])];
    assert_eq!(encoded(&empty_groups), encoded(&input()));
}

#[test]
fn malformed_hierarchy_and_rules_are_rejected() {
    let k = key();
    let groups = front_coded_table(&["group:default/a", "group:default/b"]);
    let users = {
        let mut w = Writer::default();
        w.len(0);
        w.len(0);
        w.buf
    };
    let owned_none = users[..1].to_vec();
    let entries = |list: &[(usize, &[u32])]| {
        let mut w = Writer::default();
        w.len(list.len());
        for (group, above) in list {
            w.len(*group);
            w.indices(above);
        }
        w.buf
    };
    let with = |ancestors: &[u8], rules: &[u8]| {
        signed(
            &sections(&[
                (1, &groups),
                (2, &users),
                (3, &owned_none),
                (128, ancestors),
                (129, rules),
            ]),
            &k,
        )
    };
    let good = with(&entries(&[(0, &[1])]), b"[]");
    let snap = decode(&good).unwrap();
    assert_eq!(names(snap.ancestors_of(0)), ["group:default/b"]);

    type Expect<'f> = &'f dyn Fn(&Violation) -> bool;
    let cases: [(&str, Vec<u8>, Expect<'_>); 5] = [
        (
            "group index out of range",
            with(&entries(&[(2, &[0])]), b"[]"),
            &|v| {
                matches!(
                    v,
                    Violation::IndexOutOfRange {
                        what: "ancestor group",
                        ..
                    }
                )
            },
        ),
        (
            "ancestor index out of range",
            with(&entries(&[(0, &[5])]), b"[]"),
            &|v| {
                matches!(
                    v,
                    Violation::IndexOutOfRange {
                        what: "ancestor",
                        ..
                    }
                )
            },
        ),
        (
            "groups out of order",
            with(&entries(&[(1, &[0]), (0, &[1])]), b"[]"),
            &|v| {
                matches!(
                    v,
                    Violation::OutOfOrder {
                        what: "ancestor group",
                        ..
                    }
                )
            },
        ),
        (
            "more entries than groups",
            with(&entries(&[(0, &[1]), (1, &[0]), (1, &[0])]), b"[]"),
            &|v| matches!(v, Violation::TooMany { .. } | Violation::OutOfOrder { .. }),
        ),
        (
            "rules not UTF-8",
            with(&entries(&[]), &[0xff, 0xfe]),
            &|v| matches!(v, Violation::InvalidUtf8 { what: "rules" }),
        ),
    ];
    for (name, bytes, expected) in cases {
        let violation = malformed(&bytes);
        assert!(expected(&violation), "{name}: got {violation:?}");
    }
    let limits = DecodeLimits {
        max_rules_bytes: 1,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        Snapshot::decode(&good, &[k.trusted_key()], &limits),
        Err(SnapshotError::Malformed {
            violation: Violation::StringTooLong { what: "rules", .. },
            ..
        })
    ));
}

/// A deep hierarchy: `engineering` > `data-eng` > `analytics` > `bi`, and `platform` apart.
fn nested() -> SnapshotInput {
    SnapshotInput {
        users: vec![
            user("user:default/ann", None, &["group:default/bi"]),
            user(
                "user:default/ben",
                None,
                &["group:default/data-eng", "group:default/platform"],
            ),
            user("user:default/cid", None, &[]),
        ],
        groups: vec![
            group(
                "group:default/bi",
                &[
                    "group:default/analytics",
                    "group:default/data-eng",
                    "group:default/engineering",
                ],
            ),
            group(
                "group:default/analytics",
                &["group:default/data-eng", "group:default/engineering"],
            ),
            group("group:default/data-eng", &["group:default/engineering"]),
        ],
        owned: vec![
            owned("airflow.dag", "top", &["group:default/engineering"]),
            owned("airflow.dag", "bi", &["group:default/bi"]),
            owned("airflow.dag", "ops", &["group:default/platform"]),
        ],
        rules: None,
    }
}

#[test]
fn a_users_groups_are_closed_over_their_direct_groups_ancestors() {
    let snap = decode(&encoded(&nested())).unwrap();
    let index = |g: &str| snap.group_index(g).unwrap();
    let ann = snap.groups_of_user("user:default/ann").unwrap();
    let closed = [
        "group:default/analytics",
        "group:default/bi",
        "group:default/data-eng",
        "group:default/engineering",
    ];
    assert_eq!(names(ann), closed);
    assert_eq!(ann.len(), 4);
    let mut expected: Vec<u32> = closed.iter().map(|g| index(g)).collect();
    expected.sort_unstable();
    assert_eq!(ann.indices(), expected);
    for group in closed {
        assert!(ann.contains_index(index(group)), "{group}");
        assert!(ann.contains(group), "{group}");
    }
    assert!(!ann.contains("group:default/platform"));
    assert!(!ann.contains_index(u32::MAX));

    let ben = snap.user("user:default/ben").unwrap().groups;
    assert_eq!(
        names(ben),
        [
            "group:default/data-eng",
            "group:default/engineering",
            "group:default/platform"
        ]
    );
    assert!(!ben.contains("group:default/bi"), "ancestors only go up");
    let cid = snap.groups_of_user("user:default/cid").unwrap();
    assert!(cid.is_empty() && names(cid).is_empty());
    assert_eq!(cid.len(), 0);

    let owners = |id: &str| snap.owners_of("airflow.dag", id).unwrap();
    let cases = [
        (ann, "top", true),
        (ann, "bi", true),
        (ann, "ops", false),
        (ben, "top", true),
        (ben, "bi", false),
        (ben, "ops", true),
        (cid, "top", false),
    ];
    for (set, id, expected) in cases {
        assert_eq!(set.intersects(&owners(id)), expected, "{set:?} owns {id}");
        assert_eq!(
            owners(id).intersects(&set),
            expected,
            "{id} owned by {set:?}"
        );
    }
    // Two closed sets meet through a shared ancestor.
    assert!(ann.intersects(&ben));
    assert!(!ann.intersects(&cid));
    // Ancestor sets stay plain.
    let above_bi = snap.ancestors_of(index("group:default/bi"));
    assert_eq!(above_bi.len(), 3);
    assert!(!above_bi.contains("group:default/bi"));
}

#[test]
fn closed_lists_and_format_1_give_the_same_answers() {
    // Format 1 stored closed lists; the same lists in format 2 are unioned idempotently.
    let mut closed = nested();
    closed.users[0].groups = [
        "group:default/bi",
        "group:default/analytics",
        "group:default/data-eng",
        "group:default/engineering",
    ]
    .map(String::from)
    .to_vec();
    let direct = decode(&encoded(&nested())).unwrap();
    let format_2 = decode(&encoded(&closed)).unwrap();
    let format_1 = decode(&signed_as(1, &content_of(&encoded(&closed)), &key())).unwrap();
    for snap in [&format_2, &format_1] {
        for user in ["user:default/ann", "user:default/ben", "user:default/cid"] {
            assert_eq!(
                names(snap.groups_of_user(user).unwrap()),
                names(direct.groups_of_user(user).unwrap()),
                "{user}"
            );
        }
    }
    for format in [0, 3, u16::MAX] {
        assert_eq!(
            decode(&signed_as(format, &content_of(&encoded(&closed)), &key())).unwrap_err(),
            SnapshotError::UnsupportedFormat {
                found: format,
                supported: FORMAT_VERSION
            }
        );
    }
}

#[test]
fn listing_accessors_walk_every_user_and_resource() {
    let mut with_groups = input();
    with_groups.groups = vec![GroupInput {
        entity_ref: "group:default/analytics".into(),
        ancestors: vec!["group:default/data-eng".into()],
    }];
    with_groups.users.push(user(
        "user:default/fay",
        Some("fay@example.com"),
        &["group:default/analytics"],
    ));
    let snap = decode(&encoded(&with_groups)).unwrap();
    let users: Vec<&str> = snap.users().map(|user| user.entity_ref).collect();
    assert_eq!(
        users,
        [
            "user:default/alice",
            "user:default/bob",
            "user:default/carol",
            "user:default/dave",
            "user:default/erin",
            "user:default/fay"
        ]
    );
    let fay = snap.user("user:default/fay").unwrap();
    assert_eq!(names(fay.groups.direct()), ["group:default/analytics"]);
    assert_eq!(
        names(fay.groups),
        ["group:default/analytics", "group:default/data-eng"]
    );
    assert_eq!(
        snap.user_email("user:default/alice"),
        Some("alice@example.com")
    );
    // Shared emails are listed for each user, though neither is found by it.
    assert_eq!(
        snap.user_email("user:default/dave"),
        Some("ops@example.com")
    );
    assert_eq!(snap.user_email("user:default/carol"), None);
    assert_eq!(snap.user_email("user:default/nobody"), None);

    let owned: Vec<(&str, &str, Vec<&str>)> = snap
        .owned()
        .map(|entry| (entry.kind, entry.id, names(entry.owners)))
        .collect();
    assert_eq!(
        owned,
        [
            (
                "airbyte.connection",
                "3f2a",
                vec!["group:default/owners-only"]
            ),
            ("airflow.dag", "billing", vec!["group:default/data-eng"]),
            ("airflow.dag", "etl_daily", vec!["group:default/analytics"]),
            (
                "buildkite.pipeline",
                "acme/deploy",
                vec!["group:default/ci-admins", "group:default/platform-team"]
            ),
        ]
    );
    // `direct` leaves sets that are not a user's closure alone.
    let dag = snap.owners_of("airflow.dag", "etl_daily").unwrap();
    assert_eq!(names(dag.direct()), names(dag));
    assert_eq!(
        SnapshotHeader::peek_format(&encoded(&input())),
        Ok(FORMAT_VERSION)
    );
    assert_eq!(
        SnapshotHeader::peek_format(&signed_as(1, &content_of(&encoded(&input())), &key())),
        Ok(1)
    );
    assert_eq!(
        SnapshotHeader::peek_format(b"MGSNAP"),
        Err(SnapshotError::Truncated {
            what: "header",
            needed: HEADER_BYTES - 6
        })
    );
}

#[test]
fn unverified_decoding_skips_only_the_signature() {
    let bytes = encode(&input(), V, AT, &other_key()).unwrap();
    assert!(matches!(
        decode(&bytes),
        Err(SnapshotError::UnknownKey { .. })
    ));
    let unverified = UnverifiedSnapshot::decode(&bytes, &DecodeLimits::default()).unwrap();
    let snap = unverified.contents();
    assert_eq!((snap.key_id(), snap.user_count()), ("cp-2", 5));
    // A broken signature is not checked, but the content still must match its hash and parse.
    let mut bad_signature = bytes.clone();
    *bad_signature.last_mut().unwrap() ^= 1;
    assert!(UnverifiedSnapshot::decode(&bad_signature, &DecodeLimits::default()).is_ok());
    let mut tampered = bytes.clone();
    tampered[HEADER_BYTES + 3] ^= 1;
    assert_eq!(
        UnverifiedSnapshot::decode(&tampered, &DecodeLimits::default()).err(),
        Some(SnapshotError::HashMismatch)
    );
    let small = DecodeLimits {
        max_bytes: 10,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        UnverifiedSnapshot::decode(&bytes, &small),
        Err(SnapshotError::TooLarge { .. })
    ));
    for hostile in [
        &b""[..],
        b"MGSNA",
        b"PK\x03\x04 not a snapshot at all, longer than a header.......",
    ] {
        assert!(UnverifiedSnapshot::decode(hostile, &DecodeLimits::default()).is_err());
    }
    let malformed = signed(&sections(&[(TAG_GROUPS, &[5])]), &other_key());
    assert!(matches!(
        UnverifiedSnapshot::decode(&malformed, &DecodeLimits::default()),
        Err(SnapshotError::Malformed { .. })
    ));
}

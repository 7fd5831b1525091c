//! The canonical image: round trip through `from_image`, determinism, the content hash, and
//! refusal of bad envelopes. Corrupt images never panic a lookup.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const AT: i64 = 1_700_000_000;

fn key() -> SigningKey {
    SigningKey::from_seed("cp-1", [7; 32]).unwrap()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

fn input() -> SnapshotInput {
    let user = |r: &str, email: Option<&str>, groups: &[&str]| UserInput {
        entity_ref: r.into(),
        email: email.map(Into::into),
        groups: strings(groups),
    };
    SnapshotInput {
        users: vec![
            user(
                "user:default/ann",
                Some("ann@example.com"),
                &["group:default/bi"],
            ),
            user(
                "user:default/ben",
                Some("ops@example.com"),
                &["group:default/ops"],
            ),
            user("user:default/cid", Some("OPS@example.com"), &[]),
            user("user:default/dee", None, &["group:default/eng"]),
        ],
        groups: vec![
            GroupInput {
                entity_ref: "group:default/bi".into(),
                ancestors: strings(&["group:default/data", "group:default/eng"]),
            },
            GroupInput {
                entity_ref: "group:default/data".into(),
                ancestors: strings(&["group:default/eng"]),
            },
        ],
        owned: vec![
            OwnedInput {
                kind: "airflow.dag".into(),
                id: "etl".into(),
                owners: strings(&["group:default/data", "user:default/dee"]),
            },
            OwnedInput {
                kind: "buildkite.pipeline".into(),
                id: "acme/deploy".into(),
                owners: strings(&["group:default/ops"]),
            },
        ],
        rules: Some(r#"[{"id":"r","action":"allow"}]"#.into()),
    }
}

fn decode_at(input: &SnapshotInput, version: u64) -> Snapshot {
    let bytes = encode(input, version, AT, &key()).unwrap();
    Snapshot::decode(&bytes, &[key().trusted_key()], &DecodeLimits::default()).unwrap()
}

/// Every answer a snapshot gives, as text, to compare two snapshots.
fn answers(snap: &Snapshot) -> Vec<String> {
    let mut out = vec![
        format!("{snap:?}"),
        format!("{:?} {}", snap.header(), snap.encoded_len()),
        format!("{:?} {}", snap.rules_json(), snap.ambiguous_email_count()),
    ];
    for user in [
        "user:default/ann",
        "user:default/ben",
        "user:default/dee",
        "user:x",
    ] {
        out.push(format!("{user}: {:?}", snap.user(user)));
    }
    for email in ["ann@example.com", "ops@example.com", "nobody@example.com"] {
        out.push(format!("{email}: {:?}", snap.user_by_email(email)));
    }
    for (kind, id) in [
        ("airflow.dag", "etl"),
        ("buildkite.pipeline", "acme/deploy"),
    ] {
        out.push(format!("{kind}/{id}: {:?}", snap.owners_of(kind, id)));
    }
    for index in 0..snap.group_count() as u32 + 1 {
        out.push(format!(
            "{index}: {:?} {:?}",
            snap.group_ref(index),
            snap.ancestors_of(index)
        ));
    }
    out
}

#[test]
fn an_adopted_image_answers_like_the_decoded_snapshot() {
    let snap = decode_at(&input(), 3);
    let adopted = Snapshot::from_image(snap.image().to_vec()).unwrap();
    assert_eq!(answers(&adopted), answers(&snap));
    assert_eq!(adopted.image(), snap.image());
    assert_eq!(adopted.key_id(), "cp-1");
    assert_eq!(adopted.heap_size(), snap.image().len());
    assert_eq!(
        adopted.user_by_email("ann@example.com").unwrap().entity_ref,
        "user:default/ann"
    );
    assert!(adopted.user_by_email("ops@example.com").is_none());
    assert_eq!(adopted.ambiguous_email_count(), 1);
    let ann = adopted.groups_of_user("user:default/ann").unwrap();
    let etl = adopted.owners_of("airflow.dag", "etl").unwrap();
    assert!(ann.intersects(&etl));
    assert_eq!(etl.len(), 2);
}

#[test]
fn the_image_depends_on_content_only() {
    let a = decode_at(&input(), 3);
    let mut shuffled = input();
    shuffled.users.reverse();
    shuffled.owned.reverse();
    shuffled.groups.reverse();
    let b = decode_at(&shuffled, 3);
    assert_eq!(a.image(), b.image(), "same content, same bytes");

    // The version is in the envelope: the content hash of the image stays.
    let later = decode_at(&input(), 4);
    assert_ne!(a.image(), later.image());
    assert_eq!(a.image_content_hash(), later.image_content_hash());

    let mut changed = input();
    changed.users.pop();
    assert_ne!(
        a.image_content_hash(),
        decode_at(&changed, 3).image_content_hash()
    );
    let mut no_rules = input();
    no_rules.rules = None;
    let mut empty_rules = input();
    empty_rules.rules = Some(String::new());
    assert_ne!(
        decode_at(&no_rules, 3).image_content_hash(),
        decode_at(&empty_rules, 3).image_content_hash()
    );
    assert_eq!(decode_at(&empty_rules, 3).rules_json(), Some(""));
    assert_eq!(decode_at(&no_rules, 3).rules_json(), None);
}

/// Offsets of the envelope and directory, as `docs/snapshot.md` describes them.
const LAYOUT_AT: usize = 8;
const CONTENT_LEN_AT: usize = 12;
const KID_LEN_AT: usize = 72;
const DIRECTORY_AT: usize = 144;

fn patched(image: &[u8], at: usize, value: u32) -> Vec<u8> {
    let mut image = image.to_vec();
    image[at..at + 4].copy_from_slice(&value.to_le_bytes());
    image
}

#[test]
fn bad_envelopes_and_directories_are_refused() {
    let image = decode_at(&input(), 3).image().to_vec();
    let len = image.len() as u32;
    let content_len = len - DIRECTORY_AT as u32;
    let mut longer = image.clone();
    longer.push(0);
    let mut bad_magic = image.clone();
    bad_magic[0] = b'X';
    let cases: Vec<(&str, Vec<u8>, ImageError)> = vec![
        ("empty", Vec::new(), ImageError::Truncated { needed: 144 }),
        (
            "magic only",
            b"MGIMAGE".to_vec(),
            ImageError::Truncated { needed: 137 },
        ),
        ("not an image", b"MGSNAP".to_vec(), ImageError::NotAnImage),
        ("bad magic", bad_magic, ImageError::NotAnImage),
        (
            "layout 1 (u32 lists)",
            patched(&image, LAYOUT_AT, 1),
            ImageError::UnsupportedLayout {
                found: 1,
                supported: IMAGE_LAYOUT,
            },
        ),
        (
            "layout 2 (no grants part)",
            patched(&image, LAYOUT_AT, 2),
            ImageError::UnsupportedLayout {
                found: 2,
                supported: IMAGE_LAYOUT,
            },
        ),
        (
            "trailing byte",
            longer,
            ImageError::LengthMismatch {
                declared: content_len as usize,
                actual: content_len as usize + 1,
            },
        ),
        (
            "truncated",
            image[..image.len() - 1].to_vec(),
            ImageError::LengthMismatch {
                declared: content_len as usize,
                actual: content_len as usize - 1,
            },
        ),
        (
            "empty key id",
            patched(&image, KID_LEN_AT, 0),
            ImageError::InvalidKeyId { max: 64 },
        ),
        (
            "key id too long",
            patched(&image, KID_LEN_AT, 65),
            ImageError::InvalidKeyId { max: 64 },
        ),
        (
            "part past the end",
            patched(&image, DIRECTORY_AT + 8 * 8 + 4, content_len),
            ImageError::PartOutOfBounds { part: "rules" },
        ),
        (
            "part over the directory",
            patched(&image, DIRECTORY_AT + 8, 0),
            ImageError::PartOutOfBounds { part: "groups" },
        ),
        (
            "offset overflows",
            patched(&image, DIRECTORY_AT + 8, u32::MAX),
            ImageError::PartOutOfBounds { part: "groups" },
        ),
        (
            "part not whole records",
            patched(&image, DIRECTORY_AT + 2 * 8 + 4, 23),
            ImageError::PartSize { part: "users" },
        ),
        (
            "meta of the wrong size",
            patched(&image, DIRECTORY_AT + 4, 4),
            ImageError::PartSize { part: "meta" },
        ),
        (
            "content length lies",
            patched(&image, CONTENT_LEN_AT, content_len + 4),
            ImageError::LengthMismatch {
                declared: content_len as usize + 4,
                actual: content_len as usize,
            },
        ),
    ];
    for (name, bytes, expected) in cases {
        assert_eq!(Snapshot::from_image(bytes).unwrap_err(), expected, "{name}");
    }
}

/// Calls every accessor; none may panic, whatever the image holds.
fn exercise(snap: &Snapshot) -> usize {
    let mut seen = answers(snap).len();
    seen += snap.key_id().len() + snap.content_hash_hex().len() + snap.user_count();
    seen += snap.owned_count() + snap.image_content_hash().len();
    for index in [0, 1, 2, 5, u32::MAX] {
        let set = snap.ancestors_of(index);
        seen += set.len() + set.indices().len() + usize::from(set.contains_index(index));
    }
    if let Some(user) = snap.user("user:default/ann") {
        let owners = snap.owners_of("airflow.dag", "etl");
        seen += user.groups.len() + user.groups.iter().count();
        seen += usize::from(
            owners.is_some_and(|o| user.groups.intersects(&o) || o.intersects(&user.groups)),
        );
        seen += usize::from(
            user.groups.intersects(&user.groups) || user.groups.contains("group:default/eng"),
        );
    }
    seen += snap.to_sorted().map_or(0, |content| content.users.len());
    // A delta is applied straight from the image: a corrupt base gives an error or a result
    // the delta's image hash refuses, never a panic.
    let _ = snap.apply_delta(&delta(), &[key().trusted_key()], &DecodeLimits::default());
    seen
}

/// A delta from `input()` (version 3) that moves users, drops a group and changes owners.
fn delta() -> Vec<u8> {
    thread_local! {
        static DELTA: Vec<u8> = {
            let mut target = input();
            target.users.retain(|u| u.entity_ref != "user:default/ben");
            target.users.push(UserInput {
                entity_ref: "user:default/bob".into(),
                email: Some("bob@example.com".into()),
                groups: strings(&["group:default/ops", "group:default/eng"]),
            });
            target.groups.retain(|g| g.entity_ref != "group:default/bi");
            for user in &mut target.users {
                user.groups.retain(|g| g != "group:default/bi");
            }
            for entry in &mut target.owned {
                entry.owners.retain(|g| g != "group:default/bi");
                entry.owners.push("group:default/ops".into());
            }
            encode_delta(&decode_at(&input(), 3), &decode_at(&target, 4), &key()).unwrap()
        };
    }
    DELTA.with(Clone::clone)
}

#[test]
fn corrupt_images_never_panic() {
    let base = decode_at(&input(), 3);
    let applied = base.apply_delta(&delta(), &[key().trusted_key()], &DecodeLimits::default());
    assert_eq!(
        applied.unwrap().version(),
        4,
        "the delta applies to the sound image"
    );
    let image = base.image().to_vec();
    let mut rng = StdRng::seed_from_u64(5);
    let mut adopted = 0;
    // Every truncation, and every byte flipped three ways.
    for len in 0..image.len() {
        let _ = Snapshot::from_image(image[..len].to_vec()).map(|s| exercise(&s));
    }
    for at in 0..image.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut bad = image.clone();
            bad[at] ^= flip;
            if let Ok(snap) = Snapshot::from_image(bad) {
                adopted += 1;
                exercise(&snap);
            }
        }
    }
    // Random words written over the directory and records, and random bytes.
    for round in 0..3000 {
        let bytes = if round % 4 == 0 {
            (0..rng.gen_range(0..400)).map(|_| rng.gen()).collect()
        } else {
            let mut bad = image.clone();
            for _ in 0..rng.gen_range(1..5) {
                let at = rng.gen_range(DIRECTORY_AT..bad.len() - 4);
                let value: u32 = if rng.gen_bool(0.5) {
                    rng.gen()
                } else {
                    rng.gen_range(0..300)
                };
                bad[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
            bad
        };
        if let Ok(snap) = Snapshot::from_image(bytes) {
            adopted += 1;
            exercise(&snap);
        }
    }
    assert!(
        adopted > 1000,
        "the mutations must reach the lookups ({adopted})"
    );
}

/// Random snapshots: the image gives back exactly what the plain decoder parsed, and every
/// lookup (closed groups, membership of every group, ancestors, owners) answers from the
/// delta-coded lists as from the decoder's `u32` lists.
#[test]
fn images_of_random_snapshots_answer_like_the_plain_decoder() {
    let mut rng = StdRng::seed_from_u64(23);
    for round in 0..300 {
        let input = super::delta_tests::random_input(&mut rng);
        let bytes = encode(&input, 3, AT, &key()).unwrap();
        let plain = super::decode::plain_content(&bytes).unwrap();
        let snap =
            Snapshot::decode(&bytes, &[key().trusted_key()], &DecodeLimits::default()).unwrap();
        assert_eq!(snap.to_sorted().as_ref(), Some(&plain), "round {round}");
        let group_count = plain.groups.len() as u32;
        for (index, above) in (0..).zip(&plain.ancestors) {
            assert_eq!(snap.ancestors_of(index).indices(), *above, "round {round}");
        }
        for user in &plain.users {
            let mut closed = user.groups.clone();
            for &direct in &user.groups {
                closed.extend(&plain.ancestors[direct as usize]);
            }
            closed.sort_unstable();
            closed.dedup();
            if let Some(email) = &user.email {
                let sharing = plain.users.iter().filter(|u| u.email == user.email).count();
                let by_email = snap.user_by_email(&email.to_ascii_uppercase());
                assert_eq!(
                    by_email.map(|u| u.entity_ref),
                    (sharing == 1).then_some(&*user.entity_ref),
                    "round {round}: {email}"
                );
                assert_eq!(snap.user_email(&user.entity_ref), Some(&**email));
            }
            let found = snap.groups_of_user(&user.entity_ref).unwrap();
            assert_eq!(found.indices(), closed, "round {round}");
            assert_eq!(found.direct().indices(), user.groups, "round {round}");
            for index in 0..group_count + 1 {
                assert_eq!(
                    found.contains_index(index),
                    closed.contains(&index),
                    "round {round}: {} and group {index}",
                    user.entity_ref
                );
            }
        }
        for entry in &plain.owned {
            let owners = snap.owners_of(&entry.kind, &entry.id).unwrap();
            assert_eq!(owners.indices(), entry.owners, "round {round}");
        }
    }
}

#[test]
fn snapshots_can_be_shared_between_threads() {
    fn shareable<T: Clone + std::fmt::Debug + Send + Sync>() {}
    shareable::<Snapshot>();
}

/// Prints the size of each image part for the snapshot in `MESHGATE_IMAGE_SIZES` (for example
/// `/tmp/orgsnap.bin` from `meshgate snapshot build`); does nothing without it.
/// `MESHGATE_IMAGE_SIZES=/tmp/orgsnap.bin cargo test -p meshgate-core --release image_part_sizes -- --nocapture`
#[test]
fn image_part_sizes() {
    let Ok(path) = std::env::var("MESHGATE_IMAGE_SIZES") else {
        return;
    };
    let bytes = std::fs::read(path).unwrap();
    let decoded = UnverifiedSnapshot::decode(&bytes, &DecodeLimits::default()).unwrap();
    let snap = decoded.contents();
    let layout = image::parse_layout(snap.image()).unwrap();
    println!("wire {} B, image {} B", bytes.len(), snap.image().len());
    for (part, range) in image::PARTS.iter().zip(&layout.parts) {
        println!("{part:?}: {} B", range.len());
    }
    let (mut refs, mut emails, mut name_emails) = (0, 0, 0);
    for user in snap.users() {
        refs += user.entity_ref.len();
        if let Some(email) = snap.user_email(user.entity_ref) {
            emails += email.len();
            let name = user.entity_ref.rsplit('/').next().unwrap_or_default();
            name_emails += usize::from(email.split('@').next() == Some(name));
        }
    }
    let ids: usize = snap.owned().map(|o| o.id.len()).sum();
    println!("strings: user refs {refs} B, emails {emails} B ({name_emails} local part = name), owned ids {ids} B");
}

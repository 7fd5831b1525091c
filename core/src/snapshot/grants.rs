//! Time-bound access grants carried by a snapshot: for its lifetime, a granted group counts as
//! a group of the user, and a granted resource as owned by the user. The control plane writes
//! the active ones into the signed snapshot; the filter stops honouring each at `not_after`
//! by its own clock, so expiry never waits for the control plane.
//!
//! Wire form (optional section 130): a count, then each grant sorted by (user, id): the user
//! front-coded against the previous one, the id, `not_after` (Unix seconds), and the target
//! (`0` and a group ref, or `1`, a resource kind and id). Strings are length-prefixed UTF-8.

use std::cmp::Ordering;

use super::err::{checked, EncodeError, SnapshotError, Violation};
use super::wire::{Reader, Writer};
use super::MAX_STRING_BYTES;
use crate::request::UnixTime;

/// Most grants a snapshot may carry.
pub const MAX_GRANTS: usize = 1_000_000;

const TARGET_GROUP: u64 = 0;
const TARGET_RESOURCE: u64 = 1;

/// What a grant gives its user.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GrantTarget {
    /// Membership of a catalog group (a normalized ref, `group:default/data-eng`), with the
    /// groups above it.
    Group(String),
    /// Ownership of one resource, as rules check it with `when.owns`
    /// (`airflow.dag`, `etl_daily`).
    Resource { kind: String, id: String },
}

impl GrantTarget {
    /// `group:default/data-eng` or `airflow.dag/etl_daily`, for logs.
    pub fn describe(&self) -> String {
        match self {
            GrantTarget::Group(group) => group.clone(),
            GrantTarget::Resource { kind, id } => format!("{kind}/{id}"),
        }
    }
}

/// One active grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    /// Stable id from the control plane's store; named in decisions and headers.
    pub id: String,
    /// Normalized user ref, `user:default/carol`.
    pub user: String,
    pub target: GrantTarget,
    /// The first moment the grant no longer holds.
    pub not_after: UnixTime,
}

impl Grant {
    pub fn is_active(&self, now: UnixTime) -> bool {
        now < self.not_after
    }
}

/// Grants sorted by (user, id): a user's grants are one binary search away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    entries: Vec<Grant>,
}

impl Grants {
    /// Sorts by (user, id); a repeated (user, id) keeps the first.
    pub fn new(mut entries: Vec<Grant>) -> Grants {
        entries.sort_by(|a, b| (&a.user, &a.id).cmp(&(&b.user, &b.id)));
        entries.dedup_by(|b, a| a.user == b.user && a.id == b.id);
        Grants { entries }
    }

    /// Every grant of `user`, expired or not (the caller filters by its own clock).
    pub fn of_user(&self, user: &str) -> &[Grant] {
        let start = self
            .entries
            .partition_point(|grant| grant.user.as_str() < user);
        let rest = self.entries.get(start..).unwrap_or_default();
        let len = rest.partition_point(|grant| grant.user == user);
        rest.get(..len).unwrap_or_default()
    }

    pub fn as_slice(&self) -> &[Grant] {
        &self.entries
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Grant> + '_ {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many are active at `now`.
    pub fn active_count(&self, now: UnixTime) -> usize {
        self.entries.iter().filter(|g| g.is_active(now)).count()
    }

    /// The section payload: canonical, so the same grants give the same bytes.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        if self.entries.len() > MAX_GRANTS {
            return Err(EncodeError::TooMany {
                what: "grants",
                count: self.entries.len(),
                max: MAX_GRANTS,
            });
        }
        let mut w = Writer::default();
        w.len(self.entries.len());
        let mut previous_user: &[u8] = &[];
        for grant in &self.entries {
            let user = checked(&grant.user, "grant user")?;
            w.front_coded(previous_user, user.as_bytes());
            previous_user = user.as_bytes();
            text(&mut w, checked(&grant.id, "grant id")?);
            let not_after = u64::try_from(grant.not_after.secs()).unwrap_or(0);
            w.varint(not_after);
            match &grant.target {
                GrantTarget::Group(group) => {
                    w.varint(TARGET_GROUP);
                    text(&mut w, checked(group, "grant group")?);
                }
                GrantTarget::Resource { kind, id } => {
                    w.varint(TARGET_RESOURCE);
                    text(&mut w, checked(kind, "grant resource kind")?);
                    text(&mut w, checked(id, "grant resource id")?);
                }
            }
        }
        Ok(w.buf)
    }

    /// Reads a section payload written by [`Grants::encode`]: every string bounded and valid,
    /// grants strictly increasing by (user, id). `base` is the payload's offset in the
    /// content, for error positions.
    pub(crate) fn decode(payload: &[u8], base: usize) -> Result<Grants, SnapshotError> {
        let mut r = Reader::new(payload, base);
        // A grant takes at least six bytes: a bad count must not reserve memory.
        let count = r.bounded("grant count", MAX_GRANTS.min(r.remaining() / 6))?;
        let mut entries: Vec<Grant> = Vec::with_capacity(count);
        let mut user = Vec::new();
        for _ in 0..count {
            let order = r.front_coded(&mut user, "grant user", MAX_STRING_BYTES)?;
            let user_text = r.utf8(&user, "grant user")?.to_owned();
            let id = read_text(&mut r, "grant id")?;
            let order = order.then_with(|| {
                entries
                    .last()
                    .filter(|last| last.user == user_text)
                    .map_or(Ordering::Greater, |last| id.as_str().cmp(&last.id))
            });
            if !entries.is_empty() && order != Ordering::Greater {
                let what = "grant";
                let value = format!("{user_text} {id}");
                return Err(r.fail(if order == Ordering::Equal {
                    Violation::Duplicate { what, value }
                } else {
                    Violation::OutOfOrder { what, value }
                }));
            }
            let not_after = r.varint("grant not_after")?;
            let not_after = i64::try_from(not_after).map_err(|_| {
                r.fail(Violation::TooMany {
                    what: "grant not_after",
                    value: not_after,
                    max: i64::MAX as u64,
                })
            })?;
            let target = match r.varint("grant target")? {
                TARGET_GROUP => GrantTarget::Group(read_text(&mut r, "grant group")?),
                TARGET_RESOURCE => GrantTarget::Resource {
                    kind: read_text(&mut r, "grant resource kind")?,
                    id: read_text(&mut r, "grant resource id")?,
                },
                other => {
                    return Err(r.fail(Violation::TooMany {
                        what: "grant target",
                        value: other,
                        max: TARGET_RESOURCE,
                    }))
                }
            };
            entries.push(Grant {
                id,
                user: user_text,
                target,
                not_after: UnixTime::from_secs(not_after),
            });
        }
        if !r.is_empty() {
            return Err(r.fail(Violation::SectionNotConsumed {
                tag: super::TAG_GRANTS,
                extra: r.remaining(),
            }));
        }
        Ok(Grants { entries })
    }
}

fn text(w: &mut Writer, value: &str) {
    w.len(value.len());
    w.buf.extend_from_slice(value.as_bytes());
}

fn read_text(r: &mut Reader<'_>, what: &'static str) -> Result<String, SnapshotError> {
    let len = r.bounded(what, MAX_STRING_BYTES)?;
    if len == 0 {
        return Err(r.fail(Violation::EmptyString { what }));
    }
    let bytes = r.take(len as u64, what)?;
    Ok(r.utf8(bytes, what)?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(user: &str, id: &str, target: GrantTarget, not_after: i64) -> Grant {
        Grant {
            id: id.into(),
            user: user.into(),
            target,
            not_after: UnixTime::from_secs(not_after),
        }
    }

    fn sample() -> Grants {
        Grants::new(vec![
            grant(
                "user:default/carol",
                "g2",
                GrantTarget::Resource {
                    kind: "airflow.dag".into(),
                    id: "etl_daily".into(),
                },
                2_000,
            ),
            grant(
                "user:default/bob",
                "g9",
                GrantTarget::Group("group:default/data-eng".into()),
                1_000,
            ),
            grant(
                "user:default/carol",
                "g1",
                GrantTarget::Group("group:default/ops".into()),
                500,
            ),
        ])
    }

    #[test]
    fn grants_round_trip_and_are_found_by_user() {
        let grants = sample();
        let bytes = grants.encode().unwrap();
        let back = Grants::decode(&bytes, 0).unwrap();
        assert_eq!(back, grants);
        let carol: Vec<&str> = back
            .of_user("user:default/carol")
            .iter()
            .map(|g| g.id.as_str())
            .collect();
        assert_eq!(carol, ["g1", "g2"]);
        assert_eq!(back.of_user("user:default/bob").len(), 1);
        assert!(back.of_user("user:default/alice").is_empty());
        assert!(back.of_user("user:default/zed").is_empty());
        assert_eq!(back.active_count(UnixTime::from_secs(999)), 2);
    }

    #[test]
    fn a_grant_ends_at_not_after() {
        let g = grant("user:default/a", "g", GrantTarget::Group("g".into()), 100);
        assert!(g.is_active(UnixTime::from_secs(99)));
        assert!(!g.is_active(UnixTime::from_secs(100)));
    }

    #[test]
    fn the_same_grants_in_any_order_give_the_same_bytes() {
        let mut entries: Vec<Grant> = sample().iter().cloned().collect();
        entries.reverse();
        assert_eq!(
            Grants::new(entries).encode().unwrap(),
            sample().encode().unwrap()
        );
    }

    #[test]
    fn bad_grant_sections_are_refused_not_panicked_on() {
        let good = sample().encode().unwrap();
        // Every truncation fails.
        for cut in 0..good.len() {
            assert!(
                Grants::decode(good.get(..cut).unwrap(), 0).is_err(),
                "cut at {cut}"
            );
        }
        // Trailing bytes.
        let mut long = good.clone();
        long.push(0);
        assert!(Grants::decode(&long, 0).is_err());
        // A duplicate (user, id) and an out-of-order pair, written by hand.
        let one = grant("user:default/a", "g", GrantTarget::Group("x".into()), 5);
        let mut w = Writer::default();
        w.len(2);
        for _ in 0..2 {
            w.front_coded(b"", one.user.as_bytes());
            text(&mut w, &one.id);
            w.varint(5);
            w.varint(TARGET_GROUP);
            text(&mut w, "x");
        }
        let err = Grants::decode(&w.buf, 0).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
        // An unknown target tag.
        let mut w = Writer::default();
        w.len(1);
        w.front_coded(b"", b"user:default/a");
        text(&mut w, "g");
        w.varint(5);
        w.varint(7);
        assert!(Grants::decode(&w.buf, 0).is_err());
        // A huge count with nothing behind it.
        let mut w = Writer::default();
        w.varint(u64::MAX >> 1);
        assert!(Grants::decode(&w.buf, 0).is_err());
        // Empty strings are refused on both sides.
        let empty = Grants::new(vec![grant("", "g", GrantTarget::Group("x".into()), 1)]);
        assert!(empty.encode().is_err());
    }
}

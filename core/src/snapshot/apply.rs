//! Applying a delta: verify it like a snapshot, check it starts from the loaded snapshot,
//! turn the image back into sorted content, apply the changes by ref, lay the result out with
//! the same builder as [`Snapshot::decode`], and check it is exactly the image the delta
//! names.

use super::decode::{verify_signature, DecodeLimits, SignatureFailure};
use super::delta::UserChange;
use super::delta::{
    malformed, read_changes, BodyLimits, Changes, DeltaEnvelope, GrantsChange, RulesChange,
};
use super::envelope::SnapshotHeader;
use super::err::DeltaError;
use super::err::SnapshotError;
use super::grants::Grants;
use super::image::ImageBuilder;
use super::image::Stamp;
use super::keys::TrustedKey;
use super::lookup::IndexList;
use super::lookup::Snapshot;

impl Snapshot {
    /// Verifies a delta made by [`super::encode_delta`] and applies it to this snapshot. The
    /// result reports the target's version, time, size and content hash, and its image is
    /// byte for byte the target's. [`DeltaError::BaseMismatch`] when the delta starts from
    /// other content, [`DeltaError::ResultMismatch`] when the result is not what the delta
    /// names: then the caller fetches the full snapshot.
    pub fn apply_delta(
        &self,
        delta: &[u8],
        trusted: &[TrustedKey],
        limits: &DecodeLimits,
    ) -> Result<Snapshot, DeltaError> {
        if delta.len() > limits.max_bytes {
            return Err(DeltaError::TooLarge {
                len: delta.len(),
                max: limits.max_bytes,
            });
        }
        let envelope = DeltaEnvelope::parse(delta)?;
        verify_signature(envelope.kid, envelope.signed, envelope.signature, trusted).map_err(
            |failure| match failure {
                SignatureFailure::UnknownKey => DeltaError::UnknownKey {
                    kid: envelope.kid.to_owned(),
                },
                SignatureFailure::BadSignature => DeltaError::BadSignature {
                    kid: envelope.kid.to_owned(),
                },
            },
        )?;
        let header = envelope.header;
        if header.base_content_hash != *self.content_hash() {
            return Err(DeltaError::BaseMismatch {
                delta_base_version: header.base_version,
                loaded_version: self.version(),
            });
        }
        let changes = read_changes(
            envelope.body,
            &BodyLimits {
                max_string_bytes: limits.max_string_bytes,
                max_rules_bytes: limits.max_rules_bytes,
            },
        )?;
        let stamp = Stamp {
            header: SnapshotHeader {
                version: header.target_version,
                generated_at: header.target_generated_at,
                content_hash: header.target_content_hash,
            },
            key_id: envelope.kid,
            encoded_len: usize::try_from(header.target_encoded_len).unwrap_or(usize::MAX),
        };
        let image = apply(self, &changes, limits, delta.len())?
            .finish(&stamp)
            .ok_or(DeltaError::Build(SnapshotError::ImageTooLarge))?;
        let result =
            Snapshot::from_image(image).map_err(|e| DeltaError::Build(SnapshotError::Image(e)))?;
        if result.image_content_hash() != header.target_image_hash {
            return Err(DeltaError::ResultMismatch {
                version: header.target_version,
            });
        }
        Ok(result)
    }
}

/// The result of `changes` on `base`, laid out straight from the base image: tables merged in
/// order, lists remapped as they are copied. Only the group table and the changes themselves
/// are held apart from the two images, so applying a delta costs about the base image again,
/// not an editable copy of the whole content.
fn apply(
    base: &Snapshot,
    changes: &Changes,
    limits: &DecodeLimits,
    delta_len: usize,
) -> Result<ImageBuilder, DeltaError> {
    // The new group table, and where each old index went (`None`: removed).
    let mut removed: Vec<&str> = changes.groups_removed.iter().map(String::as_str).collect();
    removed.sort_unstable();
    let base_groups: Vec<(&str, IndexList<'_>)> = base
        .group_entries()
        .collect::<Option<_>>()
        .ok_or(DeltaError::CorruptBase)?;
    let mut groups: Vec<&str> = base_groups
        .iter()
        .map(|(g, _)| *g)
        .filter(|g| removed.binary_search(g).is_err())
        .chain(changes.groups_added.iter().map(String::as_str))
        .collect();
    groups.sort_unstable();
    if let Some(pair) = groups.windows(2).find(|pair| pair.first() == pair.get(1)) {
        return Err(duplicate(
            "group",
            pair.first().copied().unwrap_or_default(),
        ));
    }
    check_count("groups", groups.len(), limits.max_groups)?;
    let index_of = |group: &str| -> Option<u32> {
        groups
            .binary_search(&group)
            .ok()
            .and_then(|i| u32::try_from(i).ok())
    };
    let moved: Vec<Option<u32>> = base_groups.iter().map(|(g, _)| index_of(g)).collect();
    // Old lists keep their order: the mapping is monotone.
    let remap = |list: IndexList<'_>, out: &mut Vec<u32>| -> Result<(), DeltaError> {
        let mut old = Vec::new();
        if !list.read_into(&mut old) {
            return Err(DeltaError::CorruptBase);
        }
        out.clear();
        out.extend(
            old.iter()
                .filter_map(|&i| moved.get(i as usize).copied().flatten()),
        );
        Ok(())
    };
    let resolve = |refs: &[String], out: &mut Vec<u32>| -> Result<(), DeltaError> {
        out.clear();
        for r in refs {
            out.push(index_of(r).ok_or_else(|| DeltaError::UnknownGroup {
                group_ref: r.clone(),
            })?);
        }
        out.sort_unstable();
        out.dedup();
        Ok(())
    };

    let mut out = ImageBuilder::new(base.image().len().saturating_add(delta_len));
    for group in &groups {
        out.group(group);
    }
    let mut list = Vec::new();

    let mut touched: Vec<&str> = changes
        .users_removed
        .iter()
        .chain(changes.users_upserted.iter().map(|u| &u.entity_ref))
        .map(String::as_str)
        .collect();
    touched.sort_unstable();
    let mut upserted: Vec<&UserChange> = changes.users_upserted.iter().collect();
    upserted.sort_by(|a, b| a.entity_ref.cmp(&b.entity_ref));
    if let Some(pair) = upserted
        .windows(2)
        .find(|pair| pair.first().map(|u| &u.entity_ref) == pair.get(1).map(|u| &u.entity_ref))
    {
        let value = pair.first().map(|u| u.entity_ref.as_str());
        return Err(duplicate("user", value.unwrap_or_default()));
    }
    let kept = base.user_entries().filter(|entry| {
        entry.is_none_or(|(entity_ref, _, _)| touched.binary_search(&entity_ref).is_err())
    });
    let users = merge_sorted(
        kept,
        upserted,
        |(entity_ref, _, _), change| *entity_ref < change.entity_ref.as_str(),
        |entry| match entry {
            Merged::Kept((entity_ref, email, groups)) => {
                remap(groups, &mut list)?;
                out.user(entity_ref, email, &list);
                Ok(())
            }
            Merged::Changed(change) => {
                resolve(&change.groups, &mut list)?;
                out.user(&change.entity_ref, change.email.as_deref(), &list);
                Ok(())
            }
        },
    )?;
    check_count("users", users, limits.max_users)?;

    let mut touched: Vec<(&str, &str)> = changes
        .owned_removed
        .iter()
        .map(|(kind, id)| (kind.as_str(), id.as_str()))
        .chain(
            changes
                .owned_upserted
                .iter()
                .map(|(kind, id, _)| (kind.as_str(), id.as_str())),
        )
        .collect();
    touched.sort_unstable();
    let mut upserted: Vec<(&str, &str, &[String])> = changes
        .owned_upserted
        .iter()
        .map(|(kind, id, owners)| (kind.as_str(), id.as_str(), owners.as_slice()))
        .collect();
    upserted.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    if let Some(pair) = upserted.windows(2).find(|pair| match pair {
        [a, b] => (a.0, a.1) == (b.0, b.1),
        _ => false,
    }) {
        let value = pair
            .first()
            .map(|e| format!("{}/{}", e.0, e.1))
            .unwrap_or_default();
        return Err(duplicate("resource", &value));
    }
    let kept = base.owned_entries().filter(|entry| {
        entry.is_none_or(|(kind, id, _)| touched.binary_search(&(kind, id)).is_err())
    });
    let owned = merge_sorted(
        kept,
        upserted,
        |(kind, id, _), change| (*kind, *id) < (change.0, change.1),
        |entry| match entry {
            Merged::Kept((kind, id, owners)) => {
                remap(owners, &mut list)?;
                out.owned(kind, id, &list);
                Ok(())
            }
            Merged::Changed((kind, id, owners)) => {
                resolve(owners, &mut list)?;
                out.owned(kind, id, &list);
                Ok(())
            }
        },
    )?;
    check_count("resources", owned, limits.max_owned)?;

    // Ancestors by new index: a change replaces the group's whole list (the last change for
    // a group wins), otherwise the base list is carried over.
    let mut replaced: Vec<Option<&[String]>> = vec![None; groups.len()];
    for (group, above) in &changes.ancestors {
        let slot = index_of(group).and_then(|index| replaced.get_mut(index as usize));
        let Some(slot) = slot else {
            return Err(DeltaError::UnknownGroup {
                group_ref: group.clone(),
            });
        };
        *slot = Some(above.as_slice());
    }
    let mut carried: Vec<Option<IndexList<'_>>> = vec![None; groups.len()];
    for ((_, above), new) in base_groups.iter().zip(&moved) {
        if let Some(slot) = new.and_then(|new| carried.get_mut(new as usize)) {
            *slot = Some(*above);
        }
    }
    for (index, (change, base_list)) in replaced.into_iter().zip(carried).enumerate() {
        match (change, base_list) {
            (Some(above), _) => resolve(above, &mut list)?,
            (None, Some(above)) => remap(above, &mut list)?,
            (None, None) => list.clear(),
        }
        out.ancestors(index, &list);
    }

    match &changes.rules {
        RulesChange::Unchanged => {
            if let Some(rules) = base.rules_json() {
                out.rules(rules);
            }
        }
        RulesChange::Removed => {}
        RulesChange::Replaced(rules) => out.rules(rules),
    }
    if let Some(grants) = apply_grants(base.grants_bytes(), &changes.grants)? {
        out.grants(&grants);
    }
    Ok(out)
}

/// The base's grants without those removed, with those added; each removed one must be there
/// and each added one new. `None` when no grant remains.
fn apply_grants(base: &[u8], change: &GrantsChange) -> Result<Option<Vec<u8>>, DeltaError> {
    if change.removed.is_empty() && change.added.is_empty() {
        return Ok((!base.is_empty()).then(|| base.to_vec()));
    }
    let before = match base {
        [] => Grants::default(),
        bytes => Grants::decode(bytes, 0).map_err(malformed)?,
    };
    let mut kept: Vec<_> = before.as_slice().to_vec();
    for (user, id) in &change.removed {
        let Some(at) = kept.iter().position(|g| &g.user == user && &g.id == id) else {
            return Err(DeltaError::Missing {
                what: "grant",
                value: format!("{user} {id}"),
            });
        };
        kept.remove(at);
    }
    for grant in change.added.iter() {
        if kept
            .iter()
            .any(|g| g.user == grant.user && g.id == grant.id)
        {
            return Err(duplicate("grant", &format!("{} {}", grant.user, grant.id)));
        }
    }
    kept.extend(change.added.iter().cloned());
    let after = Grants::new(kept);
    if after.is_empty() {
        return Ok(None);
    }
    // Every grant was read within the encoder's bounds, so this encodes.
    let bytes = after.encode().map_err(|_| DeltaError::TooMany {
        what: "grants",
        count: after.len(),
        max: super::MAX_GRANTS,
    })?;
    Ok(Some(bytes))
}

/// One entry of a merge: carried over from the base, or upserted by the delta.
enum Merged<K, U> {
    Kept(K),
    Changed(U),
}

/// Merges the base's kept entries and the delta's upserts, both ascending by key, calling
/// `emit` once per entry in key order; `kept_first(k, u)` says the kept entry sorts before
/// the upsert. A kept entry that is `None` could not be read: the base is corrupt. Returns
/// how many entries were emitted.
fn merge_sorted<K, U>(
    mut kept: impl Iterator<Item = Option<K>>,
    upserted: impl IntoIterator<Item = U>,
    kept_first: impl Fn(&K, &U) -> bool,
    mut emit: impl FnMut(Merged<K, U>) -> Result<(), DeltaError>,
) -> Result<usize, DeltaError> {
    let mut upserted = upserted.into_iter().peekable();
    let mut next_kept = kept.next();
    let mut count = 0usize;
    loop {
        let take_kept = match (&next_kept, upserted.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(entry), Some(change)) => {
                kept_first(entry.as_ref().ok_or(DeltaError::CorruptBase)?, change)
            }
        };
        if take_kept {
            let entry = next_kept.take().flatten().ok_or(DeltaError::CorruptBase)?;
            emit(Merged::Kept(entry))?;
            next_kept = kept.next();
        } else if let Some(change) = upserted.next() {
            emit(Merged::Changed(change))?;
        }
        count = count.saturating_add(1);
    }
    Ok(count)
}

fn duplicate(what: &'static str, value: &str) -> DeltaError {
    DeltaError::Duplicate {
        what,
        value: value.to_owned(),
    }
}

fn check_count(what: &'static str, count: usize, max: usize) -> Result<(), DeltaError> {
    if count > max {
        return Err(DeltaError::TooMany { what, count, max });
    }
    Ok(())
}

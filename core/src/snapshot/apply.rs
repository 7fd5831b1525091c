//! Applying a delta: verify it like a snapshot, check it starts from the loaded snapshot,
//! turn the image back into sorted content, apply the changes by ref, lay the result out with
//! the same builder as [`Snapshot::decode`], and check it is exactly the image the delta
//! names.

use super::decode::{verify_signature, DecodeLimits, SignatureFailure};
use super::delta::{
    malformed, read_changes, BodyLimits, Changes, DeltaEnvelope, GrantsChange, RulesChange,
};
use super::envelope::SnapshotHeader;
use super::err::DeltaError;
use super::grants::Grants;
use super::image::Stamp;
use super::keys::TrustedKey;
use super::lookup::Snapshot;
use super::sorted::{OwnedEntry, SortedContent, UserEntry};

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
        let base = self.to_sorted().ok_or(DeltaError::CorruptBase)?;
        let content = apply(base, changes)?;
        check_limits(&content, limits)?;
        let stamp = Stamp {
            header: SnapshotHeader {
                version: header.target_version,
                generated_at: header.target_generated_at,
                content_hash: header.target_content_hash,
            },
            key_id: envelope.kid,
            encoded_len: usize::try_from(header.target_encoded_len).unwrap_or(usize::MAX),
        };
        let result = Snapshot::build(&content, &stamp).map_err(DeltaError::Build)?;
        if result.image_content_hash() != header.target_image_hash {
            return Err(DeltaError::ResultMismatch {
                version: header.target_version,
            });
        }
        Ok(result)
    }
}

/// The content after `changes`, still canonical: tables sorted, lists sorted by index.
fn apply(base: SortedContent, changes: Changes) -> Result<SortedContent, DeltaError> {
    // The new group table, and where each old index went (`None`: removed).
    let mut removed: Vec<&str> = changes.groups_removed.iter().map(String::as_str).collect();
    removed.sort_unstable();
    let mut groups: Vec<Box<str>> = base
        .groups
        .iter()
        .filter(|g| removed.binary_search(&&***g).is_err())
        .cloned()
        .chain(changes.groups_added.iter().map(|g| Box::from(g.as_str())))
        .collect();
    groups.sort_unstable();
    if let Some(pair) = groups.windows(2).find(|pair| pair.first() == pair.get(1)) {
        return Err(DeltaError::Duplicate {
            what: "group",
            value: pair.first().map(|g| g.to_string()).unwrap_or_default(),
        });
    }
    let index_of = |group: &str| -> Option<u32> {
        groups
            .binary_search_by(|g| (**g).cmp(group))
            .ok()
            .and_then(|i| u32::try_from(i).ok())
    };
    let moved: Vec<Option<u32>> = base.groups.iter().map(|g| index_of(g)).collect();
    // Old lists keep their order: the mapping is monotone.
    let remap = |list: &[u32]| -> Vec<u32> {
        list.iter()
            .filter_map(|&i| moved.get(i as usize).copied().flatten())
            .collect()
    };
    let resolve = |refs: &[String]| -> Result<Vec<u32>, DeltaError> {
        let mut list = refs
            .iter()
            .map(|r| {
                index_of(r).ok_or_else(|| DeltaError::UnknownGroup {
                    group_ref: r.clone(),
                })
            })
            .collect::<Result<Vec<u32>, DeltaError>>()?;
        list.sort_unstable();
        list.dedup();
        Ok(list)
    };

    let mut ancestors = vec![Vec::new(); groups.len()];
    for (old, above) in base.ancestors.iter().enumerate() {
        let slot = moved
            .get(old)
            .copied()
            .flatten()
            .and_then(|new| ancestors.get_mut(new as usize));
        if let Some(slot) = slot {
            *slot = remap(above);
        }
    }
    for (group, above) in &changes.ancestors {
        let index = index_of(group).ok_or_else(|| DeltaError::UnknownGroup {
            group_ref: group.clone(),
        })?;
        if let Some(slot) = ancestors.get_mut(index as usize) {
            *slot = resolve(above)?;
        }
    }

    let mut touched: Vec<&str> = changes
        .users_removed
        .iter()
        .chain(changes.users_upserted.iter().map(|u| &u.entity_ref))
        .map(String::as_str)
        .collect();
    touched.sort_unstable();
    let mut users: Vec<UserEntry> = Vec::with_capacity(base.users.len());
    for user in base.users {
        if touched.binary_search(&&*user.entity_ref).is_err() {
            let groups = remap(&user.groups);
            users.push(UserEntry { groups, ..user });
        }
    }
    for user in &changes.users_upserted {
        users.push(UserEntry {
            entity_ref: Box::from(user.entity_ref.as_str()),
            email: user.email.as_deref().map(Box::from),
            groups: resolve(&user.groups)?,
        });
    }
    users.sort_unstable_by(|a, b| a.entity_ref.cmp(&b.entity_ref));
    if let Some(pair) = users
        .windows(2)
        .find(|pair| pair.first().map(|u| &u.entity_ref) == pair.get(1).map(|u| &u.entity_ref))
    {
        return Err(DeltaError::Duplicate {
            what: "user",
            value: pair
                .first()
                .map(|u| u.entity_ref.to_string())
                .unwrap_or_default(),
        });
    }

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
    let mut owned: Vec<OwnedEntry> = Vec::with_capacity(base.owned.len());
    for entry in base.owned {
        if touched.binary_search(&(&*entry.kind, &*entry.id)).is_err() {
            let owners = remap(&entry.owners);
            owned.push(OwnedEntry { owners, ..entry });
        }
    }
    for (kind, id, owners) in &changes.owned_upserted {
        owned.push(OwnedEntry {
            kind: Box::from(kind.as_str()),
            id: Box::from(id.as_str()),
            owners: resolve(owners)?,
        });
    }
    owned.sort_unstable_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
    if let Some(pair) = owned.windows(2).find(|pair| match pair {
        [a, b] => (&a.kind, &a.id) == (&b.kind, &b.id),
        _ => false,
    }) {
        return Err(DeltaError::Duplicate {
            what: "resource",
            value: pair
                .first()
                .map(|e| format!("{}/{}", e.kind, e.id))
                .unwrap_or_default(),
        });
    }

    let rules = match changes.rules {
        RulesChange::Unchanged => base.rules,
        RulesChange::Removed => None,
        RulesChange::Replaced(rules) => Some(rules.into_boxed_str()),
    };
    let grants = apply_grants(base.grants, changes.grants)?;
    Ok(SortedContent {
        groups,
        ancestors,
        users,
        owned,
        rules,
        grants,
    })
}

/// The base's grants without those removed, with those added; each removed one must be there
/// and each added one new.
fn apply_grants(
    base: Option<Box<[u8]>>,
    change: GrantsChange,
) -> Result<Option<Box<[u8]>>, DeltaError> {
    if change.removed.is_empty() && change.added.is_empty() {
        return Ok(base);
    }
    let before = match &base {
        Some(bytes) => Grants::decode(bytes, 0).map_err(malformed)?,
        None => Grants::default(),
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
            return Err(DeltaError::Duplicate {
                what: "grant",
                value: format!("{} {}", grant.user, grant.id),
            });
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
    Ok(Some(bytes.into_boxed_slice()))
}

fn check_limits(content: &SortedContent, limits: &DecodeLimits) -> Result<(), DeltaError> {
    for (what, count, max) in [
        ("users", content.users.len(), limits.max_users),
        ("groups", content.groups.len(), limits.max_groups),
        ("resources", content.owned.len(), limits.max_owned),
    ] {
        if count > max {
            return Err(DeltaError::TooMany { what, count, max });
        }
    }
    Ok(())
}

//! Encoding and signing. Everything is sorted before it is written, so the bytes depend only
//! on the input's content, never on its order: control-plane replicas reading the same catalog
//! publish identical snapshots (same content hash, same signature, same ETag).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest as _, Sha256};

use super::envelope::{FORMAT_VERSION, HEADER_BYTES, MAGIC};
use super::err::{checked, EncodeError};
use super::indexed::IndexedInput;
use super::keys::{append_trailer, SigningKey, SIGNATURE_BYTES};
use super::model::SnapshotInput;
use super::wire::Writer;
use super::{TAG_ANCESTORS, TAG_GRANTS, TAG_GROUPS, TAG_OWNED, TAG_RULES, TAG_USERS};

/// Encodes and signs a snapshot.
///
/// Normalization: group lists and owner lists are sets (duplicates dropped); entries for the
/// same (kind, id) are merged; emails are lowercased (ASCII) and an empty email is none. A user
/// listed twice is an error, as are empty refs, kinds or ids and strings longer than
/// [`super::MAX_STRING_BYTES`].
pub fn encode(
    input: &SnapshotInput,
    version: u64,
    generated_at: i64,
    key: &SigningKey,
) -> Result<Vec<u8>, EncodeError> {
    encode_indexed(&input.interned(), version, generated_at, key)
}

/// [`encode`] for input whose refs are already interned: the same bytes for the same content,
/// without turning every membership into a string first.
pub fn encode_indexed(
    input: &IndexedInput,
    version: u64,
    generated_at: i64,
    key: &SigningKey,
) -> Result<Vec<u8>, EncodeError> {
    let content = encode_content(input)?;
    let content_len = u32::try_from(content.len()).map_err(|_| EncodeError::TooMany {
        what: "content byte",
        count: content.len(),
        max: u32::MAX as usize,
    })?;
    let kid_len = key.kid().len();
    let mut out = Vec::with_capacity(HEADER_BYTES + content.len() + 1 + kid_len + SIGNATURE_BYTES);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&generated_at.to_le_bytes());
    out.extend_from_slice(&content_len.to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&content));
    out.extend_from_slice(&content);
    append_trailer(&mut out, key);
    Ok(out)
}

/// The sorted, interned content: three tagged sections.
fn encode_content(input: &IndexedInput) -> Result<Vec<u8>, EncodeError> {
    // Group table: every ref a list points at, sorted, referenced by position.
    let table = RefTable::new(input)?;
    let groups: Vec<&str> = table.sorted.iter().map(|&(name, _)| name).collect();
    // Every position was checked by `RefTable::new`, so no lookup misses.
    let indices = |ids: &[u32]| -> Vec<u32> {
        let mut mapped: Vec<u32> = ids
            .iter()
            .filter_map(|&id| table.new_position(id))
            .collect();
        mapped.sort_unstable();
        mapped.dedup();
        mapped
    };

    let mut users = Vec::with_capacity(input.users.len());
    for user in &input.users {
        let entity_ref = checked(&user.entity_ref, "user ref")?;
        let email = match user.email.as_deref() {
            None | Some("") => None,
            Some(email) => Some(checked(email, "email")?.to_ascii_lowercase()),
        };
        users.push((entity_ref, email, indices(&user.groups)));
    }
    users.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if let Some(pair) = users.windows(2).find(|pair| match pair {
        [a, b] => a.0 == b.0,
        _ => false,
    }) {
        let entity_ref = pair.first().map(|user| user.0).unwrap_or_default();
        return Err(EncodeError::DuplicateUser {
            entity_ref: entity_ref.to_owned(),
        });
    }

    let mut owned: BTreeMap<&str, BTreeMap<&str, BTreeSet<u32>>> = BTreeMap::new();
    for entry in &input.owned {
        let kind = checked(&entry.kind, "resource kind")?;
        let id = checked(&entry.id, "resource id")?;
        owned
            .entry(kind)
            .or_default()
            .entry(id)
            .or_default()
            .extend(indices(&entry.owners));
    }

    let mut section = Writer::default();
    section.len(groups.len());
    let mut previous = "";
    for group in &groups {
        section.front_coded(previous.as_bytes(), group.as_bytes());
        previous = group;
    }
    let mut content = Writer::default();
    content.section(TAG_GROUPS, &section.buf);

    // Emails: the domain is interned, the local part is front-coded against the user's own
    // name, which it usually equals (`user:default/alice` → `alice@example.com`).
    let domains: Vec<&str> = users
        .iter()
        .filter_map(|(_, email, _)| split_email(email.as_deref()?))
        .map(|(_, domain)| domain)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let domain_index: HashMap<&str, usize> = domains.iter().copied().zip(0..).collect();
    let mut section = Writer::default();
    section.len(domains.len());
    let mut previous = "";
    for domain in &domains {
        section.front_coded(previous.as_bytes(), domain.as_bytes());
        previous = domain;
    }
    section.len(users.len());
    let mut previous = "";
    for (entity_ref, email, groups) in &users {
        section.front_coded(previous.as_bytes(), entity_ref.as_bytes());
        previous = entity_ref;
        // 0: no email; 1: an email kept whole; 2 + i: local part at domain i.
        let (code, local) = match email.as_deref() {
            None => (0, ""),
            Some(email) => match split_email(email) {
                Some((local, domain)) => (
                    domain_index.get(domain).map_or(1, |&index| index + 2),
                    local,
                ),
                None => (1, email),
            },
        };
        section.len(code);
        if code != 0 {
            section.front_coded(user_name(entity_ref).as_bytes(), local.as_bytes());
        }
        section.indices(groups);
    }
    content.section(TAG_USERS, &section.buf);

    let mut section = Writer::default();
    section.len(owned.len());
    let mut previous_kind = "";
    for (kind, entries) in &owned {
        section.front_coded(previous_kind.as_bytes(), kind.as_bytes());
        previous_kind = kind;
        section.len(entries.len());
        let mut previous_id = "";
        for (id, owners) in entries {
            section.front_coded(previous_id.as_bytes(), id.as_bytes());
            previous_id = id;
            let owners: Vec<u32> = owners.iter().copied().collect();
            section.indices(&owners);
        }
    }
    content.section(TAG_OWNED, &section.buf);

    // Ancestors: only groups that have any, by group index; entries for one group merge.
    let mut ancestors: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for group in &input.groups {
        let Some(own) = table.new_position(group.group) else {
            continue;
        };
        let above: BTreeSet<u32> = indices(&group.ancestors)
            .into_iter()
            .filter(|&i| i != own)
            .collect();
        if !above.is_empty() {
            ancestors.entry(own).or_default().extend(above);
        }
    }
    if !ancestors.is_empty() {
        let mut section = Writer::default();
        section.len(ancestors.len());
        for (group, above) in &ancestors {
            section.len(*group as usize);
            let above: Vec<u32> = above.iter().copied().collect();
            section.indices(&above);
        }
        content.section(TAG_ANCESTORS, &section.buf);
    }
    if let Some(rules) = &input.rules {
        content.section(TAG_RULES, rules.as_bytes());
    }
    if !input.grants.is_empty() {
        content.section(TAG_GRANTS, &input.grants.encode()?);
    }
    Ok(content.buf)
}

/// `local@domain` when both parts are non-empty, split at the last `@`.
fn split_email(email: &str) -> Option<(&str, &str)> {
    email
        .rsplit_once('@')
        .filter(|(local, domain)| !local.is_empty() && !domain.is_empty())
}

/// The name part of an entity ref: what follows the last `/`.
pub(crate) fn user_name(entity_ref: &str) -> &str {
    entity_ref
        .rsplit_once('/')
        .map_or(entity_ref, |(_, name)| name)
}

/// The refs the lists point at, sorted and deduplicated, and where each input position went.
struct RefTable<'a> {
    /// Distinct refs in order, each with its first input position.
    sorted: Vec<(&'a str, u32)>,
    /// Per input position, its position in `sorted` (`u32::MAX` when nothing points at it).
    renumbered: Vec<u32>,
}

impl<'a> RefTable<'a> {
    fn new(input: &'a IndexedInput) -> Result<RefTable<'a>, EncodeError> {
        let len = input.refs.len();
        let mut used = vec![false; len];
        let mut mark = |ids: &[u32], what: &'static str| -> Result<(), EncodeError> {
            for &id in ids {
                let slot = usize::try_from(id)
                    .ok()
                    .and_then(|i| used.get_mut(i))
                    .ok_or(EncodeError::UnknownRef {
                        what,
                        position: id,
                        refs: len,
                    })?;
                *slot = true;
            }
            Ok(())
        };
        for user in &input.users {
            mark(&user.groups, "user group")?;
        }
        for entry in &input.owned {
            mark(&entry.owners, "owner")?;
        }
        for group in &input.groups {
            mark(std::slice::from_ref(&group.group), "group")?;
            mark(&group.ancestors, "ancestor")?;
        }
        let mut order: Vec<(&str, u32)> = Vec::new();
        for ((name, used), position) in input.refs.iter().zip(&used).zip(0u32..) {
            if *used {
                order.push((checked(name, "group ref")?, position));
            }
        }
        order.sort_unstable();
        let mut renumbered = vec![u32::MAX; len];
        let mut sorted: Vec<(&str, u32)> = Vec::with_capacity(order.len());
        for (name, position) in order {
            if sorted.last().is_none_or(|&(last, _)| last != name) {
                sorted.push((name, position));
            }
            let new = u32::try_from(sorted.len().saturating_sub(1)).map_err(|_| {
                EncodeError::TooMany {
                    what: "group",
                    count: sorted.len(),
                    max: u32::MAX as usize,
                }
            })?;
            if let Some(slot) = usize::try_from(position)
                .ok()
                .and_then(|p| renumbered.get_mut(p))
            {
                *slot = new;
            }
        }
        Ok(RefTable { sorted, renumbered })
    }

    fn new_position(&self, position: u32) -> Option<u32> {
        let position = usize::try_from(position).ok()?;
        self.renumbered
            .get(position)
            .copied()
            .filter(|&p| p != u32::MAX)
    }
}

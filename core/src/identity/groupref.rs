//! Group names as rules and tokens write them, and as the catalog stores them.
//!
//! Backstage names groups by entity ref, `group:default/data-eng`, compared case-insensitively;
//! IdPs put plain names (`data-eng`) in tokens, compared exactly. A rule may use either form:
//! `data-eng` and `group:default/data-eng` name the same catalog group (default kind `group`,
//! default namespace `default`, as Backstage's `parseEntityRef` reads a short name).

/// The kind prefix of a group entity ref.
const GROUP_KIND: &str = "group:";
pub const DEFAULT_NAMESPACE: &str = "default";

/// A group a rule names: as written, and the catalog ref it stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupName {
    /// As written in the rule; compared with token groups as before (exactly, or ignoring
    /// ASCII case when the provider says so).
    pub name: String,
    /// `group:<namespace>/<name>`, lowercased.
    pub catalog_ref: String,
}

impl GroupName {
    /// `None` when `name` is empty or names an entity of another kind (`user:default/alice`).
    pub fn parse(name: &str) -> Option<GroupName> {
        Some(GroupName {
            catalog_ref: rule_group_ref(name)?,
            name: name.to_owned(),
        })
    }
}

fn is_group_ref(name: &str) -> bool {
    name.get(..GROUP_KIND.len())
        .is_some_and(|kind| kind.eq_ignore_ascii_case(GROUP_KIND))
}

/// `namespace/name` or `name` → (namespace, name); both non-empty.
fn split_namespace(rest: &str) -> Option<(&str, &str)> {
    let (namespace, name) = rest.split_once('/').unwrap_or((DEFAULT_NAMESPACE, rest));
    (!namespace.is_empty() && !name.is_empty() && !name.contains('/')).then_some((namespace, name))
}

/// The catalog ref a rule's group stands for: Backstage semantics, case-insensitive.
fn rule_group_ref(name: &str) -> Option<String> {
    let rest = if is_group_ref(name) {
        name.get(GROUP_KIND.len()..)?
    } else if name.contains(':') {
        return None;
    } else {
        name
    };
    let (namespace, name) = split_namespace(rest)?;
    Some(format!("group:{namespace}/{name}").to_lowercase())
}

/// The catalog ref a token's group stands for. A token group written as an entity ref
/// (Backstage's `ent` claim) follows Backstage and ignores case; a plain IdP group name keeps
/// its case unless the provider compares groups case-insensitively, so an exact-match
/// configuration never matches `Data-Eng` to `data-eng` through the catalog either.
pub fn token_group_ref(name: &str, case_insensitive: bool) -> Option<String> {
    if is_group_ref(name) {
        return rule_group_ref(name);
    }
    if name.contains(':') {
        return None;
    }
    let (namespace, short) = split_namespace(name)?;
    let namespace = namespace.to_lowercase();
    Some(if case_insensitive {
        format!("group:{namespace}/{}", short.to_lowercase())
    } else {
        format!("group:{namespace}/{short}")
    })
}

/// A user entity ref from a token subject or a username: `user:default/alice`, lowercased.
/// `None` for refs of another kind and malformed refs.
pub fn user_ref(value: &str, namespace: &str) -> Option<String> {
    const USER_KIND: &str = "user:";
    let rest = match value.get(..USER_KIND.len()) {
        Some(kind) if kind.eq_ignore_ascii_case(USER_KIND) => value.get(USER_KIND.len()..)?,
        _ if value.contains(':') => return None,
        _ => value,
    };
    let (ns, name) = match rest.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (namespace, rest),
    };
    (!ns.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| format!("user:{ns}/{name}").to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_groups_name_catalog_refs() {
        let cases = [
            ("data-eng", Some("group:default/data-eng")),
            ("Data-Eng", Some("group:default/data-eng")),
            ("group:default/data-eng", Some("group:default/data-eng")),
            ("Group:Default/Data-Eng", Some("group:default/data-eng")),
            ("group:data-eng", Some("group:default/data-eng")),
            ("platform/sre", Some("group:platform/sre")),
            ("user:default/alice", None),
            ("component:x", None),
            ("", None),
            ("group:", None),
            ("group:/x", None),
            ("a/b/c", None),
        ];
        for (name, expected) in cases {
            assert_eq!(
                GroupName::parse(name).map(|g| g.catalog_ref),
                expected.map(str::to_owned),
                "{name}"
            );
        }
    }

    #[test]
    fn token_groups_keep_their_case_unless_told() {
        let cases = [
            ("data-eng", false, Some("group:default/data-eng")),
            ("Data-Eng", false, Some("group:default/Data-Eng")),
            ("Data-Eng", true, Some("group:default/data-eng")),
            (
                "group:default/Data-Eng",
                false,
                Some("group:default/data-eng"),
            ),
            ("user:default/alice", false, None),
            ("/admins", false, None),
        ];
        for (name, folded, expected) in cases {
            assert_eq!(
                token_group_ref(name, folded).as_deref(),
                expected,
                "{name} {folded}"
            );
        }
    }

    #[test]
    fn user_refs() {
        let cases = [
            ("alice", Some("user:default/alice")),
            ("Alice", Some("user:default/alice")),
            ("user:default/alice", Some("user:default/alice")),
            ("User:Default/Alice", Some("user:default/alice")),
            ("user:ops/alice", Some("user:ops/alice")),
            ("group:default/alice", None),
            ("00u1abc", Some("user:default/00u1abc")),
            ("", None),
            ("user:", None),
        ];
        for (value, expected) in cases {
            assert_eq!(user_ref(value, "default").as_deref(), expected, "{value}");
        }
    }
}

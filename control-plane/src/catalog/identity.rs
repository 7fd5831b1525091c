//! Mapping a token's identity to a catalog user, like Backstage's sign-in resolvers:
//!
//! - `email` (`emailMatchingUserEntityProfileEmail`): the user whose `spec.profile.email`
//!   equals the token's email, compared case-insensitively; two users with that email is an
//!   error, never a guess.
//! - `username` (`usernameMatchingUserEntityName`): the user entity named by the username in
//!   the configured namespace (`user:default/<username>`), compared case-insensitively.
//! - `email_local_part` (`emailLocalPartMatchingUserEntityName`): the user entity named by the
//!   part of the email before `@`.
//!
//! Configured per provider as `{"resolve_by": "email" | "username" | "email_local_part",
//! "namespace": "default"}`. These are lookups over [`UserInput`]s, the same data the filter
//! finds in a snapshot.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::model::{EntityRef, DEFAULT_NAMESPACE};
use super::snapshot_input::{normalize_email, UserInput};

/// Which token value finds the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveBy {
    Email,
    Username,
    EmailLocalPart,
}

/// A provider's identity mapping.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IdentityMapping {
    pub resolve_by: ResolveBy,
    /// Namespace of user entities for name lookups.
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_owned()
}

/// Why no single user was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no catalog user matches {by} `{value}`")]
    NotFound { by: &'static str, value: String },
    #[error("{by} `{value}` matches several catalog users: {}", users.join(", "))]
    Ambiguous {
        by: &'static str,
        value: String,
        users: Vec<String>,
    },
    #[error("`{value}` cannot be a {by}")]
    Invalid { by: &'static str, value: String },
}

/// Users indexed for identity lookups.
#[derive(Debug, Clone, Default)]
pub struct UserDirectory<'a> {
    by_ref: BTreeMap<&'a str, &'a UserInput>,
    by_email: BTreeMap<&'a str, Vec<&'a UserInput>>,
}

impl<'a> UserDirectory<'a> {
    /// Indexes `users`, whose refs and emails are normalized (lowercase) as in
    /// [`super::SnapshotInput`].
    pub fn new(users: &'a [UserInput]) -> UserDirectory<'a> {
        let mut directory = UserDirectory::default();
        for user in users {
            directory.by_ref.insert(user.entity_ref.as_str(), user);
            if let Some(email) = user.email.as_deref() {
                directory.by_email.entry(email).or_default().push(user);
            }
        }
        directory
    }

    /// The one user whose email is `email`, compared case-insensitively.
    pub fn by_email(&self, email: &str) -> Result<&'a UserInput, ResolveError> {
        let by = "email";
        let key = normalize_email(email).ok_or_else(|| ResolveError::Invalid {
            by,
            value: email.to_owned(),
        })?;
        match self.by_email.get(key.as_str()).map(Vec::as_slice) {
            Some([user]) => Ok(user),
            Some(users) if !users.is_empty() => Err(ResolveError::Ambiguous {
                by,
                value: email.to_owned(),
                users: users.iter().map(|user| user.entity_ref.clone()).collect(),
            }),
            _ => Err(ResolveError::NotFound {
                by,
                value: email.to_owned(),
            }),
        }
    }

    /// The user entity named `username` in `namespace`, compared case-insensitively. A
    /// username that is not a plain entity name (contains `:` or `/`) is refused rather than
    /// read as a reference, so a token cannot pick another kind or namespace.
    pub fn by_username(
        &self,
        username: &str,
        namespace: &str,
    ) -> Result<&'a UserInput, ResolveError> {
        let by = "username";
        let invalid = || ResolveError::Invalid {
            by,
            value: username.to_owned(),
        };
        if username.contains([':', '/']) {
            return Err(invalid());
        }
        let entity_ref = EntityRef::new("user", namespace, username).map_err(|_| invalid())?;
        self.by_ref
            .get(entity_ref.to_string().as_str())
            .copied()
            .ok_or_else(|| ResolveError::NotFound {
                by,
                value: username.to_owned(),
            })
    }

    /// The user entity named by the local part of `email`.
    pub fn by_email_local_part(
        &self,
        email: &str,
        namespace: &str,
    ) -> Result<&'a UserInput, ResolveError> {
        match email.trim().split_once('@') {
            Some((local, _)) if !local.is_empty() => self.by_username(local, namespace),
            _ => Err(ResolveError::Invalid {
                by: "email",
                value: email.to_owned(),
            }),
        }
    }

    /// Resolves `value` (the token's email, or its username for `username`) as `mapping` says.
    pub fn resolve(
        &self,
        mapping: &IdentityMapping,
        value: &str,
    ) -> Result<&'a UserInput, ResolveError> {
        match mapping.resolve_by {
            ResolveBy::Email => self.by_email(value),
            ResolveBy::Username => self.by_username(value, &mapping.namespace),
            ResolveBy::EmailLocalPart => self.by_email_local_part(value, &mapping.namespace),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(entity_ref: &str, email: Option<&str>) -> UserInput {
        UserInput {
            entity_ref: entity_ref.into(),
            email: email.map(Into::into),
            groups: vec![],
        }
    }

    fn users() -> Vec<UserInput> {
        vec![
            user("user:default/alice", Some("alice@example.com")),
            user("user:default/bob", Some("shared@example.com")),
            user("user:default/carol", Some("shared@example.com")),
            user("user:ops/dave", Some("dave@example.com")),
            user("user:default/nomail", None),
        ]
    }

    #[test]
    fn email_matches_case_insensitively_and_refuses_ambiguity() {
        let users = users();
        let directory = UserDirectory::new(&users);
        assert_eq!(
            directory.by_email(" Alice@EXAMPLE.com").unwrap().entity_ref,
            "user:default/alice"
        );
        assert!(matches!(
            directory.by_email("shared@example.com"),
            Err(ResolveError::Ambiguous { users, .. }) if users.len() == 2
        ));
        assert!(matches!(
            directory.by_email("nobody@example.com"),
            Err(ResolveError::NotFound { .. })
        ));
        assert!(matches!(
            directory.by_email(""),
            Err(ResolveError::Invalid { .. })
        ));
    }

    #[test]
    fn username_matches_the_entity_name_in_a_namespace() {
        let users = users();
        let directory = UserDirectory::new(&users);
        assert_eq!(
            directory
                .by_username("ALICE", "default")
                .unwrap()
                .entity_ref,
            "user:default/alice"
        );
        assert_eq!(
            directory.by_username("dave", "ops").unwrap().entity_ref,
            "user:ops/dave"
        );
        assert!(directory.by_username("dave", "default").is_err());
        for sneaky in ["ops/dave", "user:dave", "group:default/x", ""] {
            assert!(
                matches!(
                    directory.by_username(sneaky, "default"),
                    Err(ResolveError::Invalid { .. })
                ),
                "{sneaky}"
            );
        }
        assert_eq!(
            directory
                .by_email_local_part("Alice@corp.example", "default")
                .unwrap()
                .entity_ref,
            "user:default/alice"
        );
        assert!(directory.by_email_local_part("@x", "default").is_err());
    }

    #[test]
    fn mapping_config_selects_the_resolver() {
        let users = users();
        let directory = UserDirectory::new(&users);
        let by_email: IdentityMapping = serde_json::from_str(r#"{"resolve_by": "email"}"#).unwrap();
        assert_eq!(by_email.namespace, "default");
        assert_eq!(
            directory
                .resolve(&by_email, "dave@example.com")
                .unwrap()
                .entity_ref,
            "user:ops/dave"
        );
        let by_name: IdentityMapping =
            serde_json::from_str(r#"{"resolve_by": "username", "namespace": "ops"}"#).unwrap();
        assert_eq!(
            directory.resolve(&by_name, "Dave").unwrap().entity_ref,
            "user:ops/dave"
        );
        let local: IdentityMapping =
            serde_json::from_str(r#"{"resolve_by": "email_local_part"}"#).unwrap();
        assert_eq!(
            directory
                .resolve(&local, "nomail@x.example")
                .unwrap()
                .entity_ref,
            "user:default/nomail"
        );
        assert!(serde_json::from_str::<IdentityMapping>(r#"{"resolve_by": "sub"}"#).is_err());
    }
}

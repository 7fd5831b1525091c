//! An identity provider (issuer): its keys, where its tokens are read from, and the
//! claim checks and identity mapping applied after the signature verifies.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::identity::backstage::{self, BackstageProfile};
use crate::identity::claims::{self, ClaimError, ClaimPath};
use crate::identity::groupref::{token_group_ref, user_ref};
use crate::identity::principal::{CatalogKey, Principal};
use crate::token::jwks::KeySet;

pub const DEFAULT_CLOCK_SKEW_S: i64 = 60;
pub const DEFAULT_MAX_GROUPS: usize = 1024;

/// Where a provider's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Local(Arc<KeySet>),
    Remote(RemoteJwks),
}

/// A JWKS fetched over HTTP through an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    pub cluster: String,
    pub uri: String,
    /// `:authority` for the fetch, from the URI.
    pub authority: String,
    /// `:path` for the fetch, from the URI.
    pub path: String,
    pub cache_duration_s: u64,
    pub timeout_ms: u64,
    pub on_unknown_kid: UnknownKid,
    pub refetch_min_interval_s: u64,
}

/// What to do about a token signed with a key the current set doesn't have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownKid {
    /// Refetch now and hold the request until the keys land (bounded by the fetch timeout).
    Wait,
    /// Refetch now; deny this request.
    Background,
    /// Deny; keys refresh on their schedule only.
    Off,
}

/// How a token's caller is found in the catalog, like Backstage's sign-in resolvers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveBy {
    /// `sub` is a user entity ref (`user:default/alice`, as in Backstage tokens).
    EntityRef,
    /// The email claim equals the user's `spec.profile.email`.
    Email,
    /// The username claim is the user entity's name.
    Username,
    /// The email's local part is the user entity's name.
    EmailLocalPart,
    /// `sub` is the user entity's name.
    Subject,
}

/// Copies a claim into a request header for the upstream (jwt_authn's `claim_to_headers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToHeader {
    pub header_name: String,
    pub claim: ClaimPath,
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    /// `None`: any issuer (Envoy's `jwt_authn` without `issuer`); chosen for a token by where
    /// the token was found (see [`crate::policy::config::Policy::providers_for`]).
    pub issuer: Option<String>,
    /// Any-of; empty means `aud` is not checked.
    pub audiences: Vec<String>,
    pub keys: KeySource,
    /// Indices into the policy's token source list that this provider accepts.
    pub sources: Vec<usize>,
    /// Keep the token header for the upstream (default: remove it).
    pub forward: bool,
    pub groups_claim: Option<ClaimPath>,
    pub email_claim: Option<ClaimPath>,
    pub username_claim: Option<ClaimPath>,
    pub clock_skew_s: i64,
    pub max_lifetime_s: Option<i64>,
    pub require_expiration: bool,
    pub max_groups: usize,
    /// Some IdPs change the case of group names; off by default (exact comparison).
    pub groups_case_insensitive: bool,
    pub claim_to_headers: Vec<ClaimToHeader>,
    /// Catalog lookups for this provider's callers, first match wins.
    pub resolve_by: Vec<ResolveBy>,
    /// Namespace of user entities for name lookups (`default`).
    pub user_namespace: String,
    /// A provider of kind `backstage`: its tokens are Backstage user tokens.
    pub backstage: Option<BackstageProfile>,
}

/// The validity window of a verified token, skew included: valid while
/// `not_before <= now < expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub expires: i64,
}

impl Validity {
    pub fn check(&self, now: i64, skew_s: i64) -> Result<(), ClaimError> {
        if now >= self.expires {
            return Err(ClaimError::Expired {
                exp: self.expires.saturating_sub(skew_s),
                now,
                skew_s,
            });
        }
        if now < self.not_before {
            return Err(ClaimError::NotYetValid {
                nbf: self.not_before.saturating_add(skew_s),
                now,
                skew_s,
            });
        }
        Ok(())
    }
}

impl Provider {
    /// Checks `exp`, `nbf`, `iat`, lifetime and audience. Returns the validity window so
    /// a cached token can be re-checked without its claims.
    pub fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<Validity, ClaimError> {
        let skew = self.clock_skew_s;
        let exp = claims::numeric_date(claims, "exp")?;
        let nbf = claims::numeric_date(claims, "nbf")?;
        let iat = claims::numeric_date(claims, "iat")?;
        if exp.is_none() && self.require_expiration {
            return Err(ClaimError::Missing { claim: "exp" });
        }
        if let Some(iat) = iat {
            if iat > now.saturating_add(skew) {
                return Err(ClaimError::IssuedInFuture {
                    iat,
                    now,
                    skew_s: skew,
                });
            }
        }
        if let (Some(max), Some(exp)) = (self.max_lifetime_s, exp) {
            let start = iat.or(nbf).unwrap_or(now);
            let lifetime_s = exp.saturating_sub(start);
            if lifetime_s > max {
                return Err(ClaimError::LifetimeTooLong {
                    lifetime_s,
                    max_s: max,
                });
            }
        }
        let validity = Validity {
            not_before: nbf.map_or(i64::MIN, |nbf| nbf.saturating_sub(skew)),
            expires: exp.map_or(i64::MAX, |exp| exp.saturating_add(skew)),
        };
        validity.check(now, skew)?;
        self.check_audience(claims)?;
        Ok(validity)
    }

    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), ClaimError> {
        if self.audiences.is_empty() {
            return Ok(());
        }
        let found = claims::audiences(claims)?;
        if found
            .iter()
            .any(|aud| self.audiences.iter().any(|a| a == aud))
        {
            return Ok(());
        }
        let shown: Vec<String> = found
            .iter()
            .take(5)
            .map(|a| format!("`{}`", a.chars().take(100).collect::<String>()))
            .collect();
        Err(ClaimError::AudienceNotAccepted {
            found: if shown.is_empty() {
                String::from("(none)")
            } else {
                shown.join(", ")
            },
        })
    }

    /// The configured email and username claims, where the token has them as strings.
    fn email_and_username(&self, claims: &Map<String, Value>) -> (Option<String>, Option<String>) {
        let lookup_string = |path: &Option<ClaimPath>| {
            path.as_ref()
                .and_then(|p| p.lookup(claims))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        (
            lookup_string(&self.email_claim),
            lookup_string(&self.username_claim),
        )
    }

    /// Maps verified claims to the caller's identity.
    pub fn principal(&self, claims: Map<String, Value>) -> Result<Principal, ClaimError> {
        if let Some(profile) = self.backstage {
            return self.backstage_principal(profile, claims);
        }
        let subject = claims::string_claim(&claims, "sub")?.map(str::to_owned);
        let (email, username) = self.email_and_username(&claims);
        let groups = match &self.groups_claim {
            Some(path) => claims::string_list(&claims, path, self.max_groups)?,
            None => Vec::new(),
        };
        let groups_overage = groups.is_empty()
            && self
                .groups_claim
                .as_ref()
                .is_some_and(|path| has_claim_source(&claims, path.as_str()));
        let mut group_refs: Vec<String> = groups
            .iter()
            .filter_map(|g| token_group_ref(g, self.groups_case_insensitive))
            .collect();
        group_refs.sort_unstable();
        group_refs.dedup();
        let catalog_keys =
            self.catalog_keys(subject.as_deref(), email.as_deref(), username.as_deref());
        Ok(Principal {
            provider: self.name.clone(),
            subject,
            email,
            username,
            groups,
            group_refs,
            catalog_keys,
            groups_overage,
            claims,
            groups_case_insensitive: self.groups_case_insensitive,
            user_ref: None,
        })
    }

    /// A Backstage user token: `sub` is the user's entity ref (normalized as the catalog
    /// stores refs), the catalog is looked up by it, and the `group:` refs of `ent` count
    /// only when the provider trusts token groups.
    fn backstage_principal(
        &self,
        profile: BackstageProfile,
        claims: Map<String, Value>,
    ) -> Result<Principal, ClaimError> {
        let not_a_user = || ClaimError::WrongType {
            claim: String::from("sub"),
            expected: "a user entity ref (`user:default/alice`)",
        };
        let sub =
            claims::string_claim(&claims, "sub")?.ok_or(ClaimError::Missing { claim: "sub" })?;
        let entity_ref = user_ref(sub, &self.user_namespace).ok_or_else(not_a_user)?;
        let groups = if profile.trust_token_groups {
            backstage::ent_groups(&claims, self.max_groups)?
        } else {
            Vec::new()
        };
        // Sign-in resolvers may add claims; an email one helps `resolve_by: [email]`.
        let (email, username) = self.email_and_username(&claims);
        let catalog_keys =
            self.catalog_keys(Some(&entity_ref), email.as_deref(), username.as_deref());
        Ok(Principal {
            provider: self.name.clone(),
            subject: Some(entity_ref.clone()),
            email,
            username,
            group_refs: groups.clone(),
            groups,
            catalog_keys,
            groups_overage: false,
            claims,
            groups_case_insensitive: true,
            user_ref: Some(entity_ref),
        })
    }

    fn catalog_keys(
        &self,
        subject: Option<&str>,
        email: Option<&str>,
        username: Option<&str>,
    ) -> Vec<CatalogKey> {
        let ns = self.user_namespace.as_str();
        let by_name = |name: Option<&str>| {
            name.filter(|n| !n.contains(':'))
                .and_then(|n| user_ref(n, ns))
                .map(CatalogKey::UserRef)
        };
        self.resolve_by
            .iter()
            .filter_map(|how| match how {
                ResolveBy::EntityRef => subject
                    .filter(|s| s.contains(':'))
                    .and_then(|s| user_ref(s, ns))
                    .map(CatalogKey::UserRef),
                ResolveBy::Email => email
                    .filter(|e| e.contains('@'))
                    .map(|e| CatalogKey::Email(e.to_owned())),
                ResolveBy::Username => by_name(username),
                ResolveBy::EmailLocalPart => by_name(
                    email
                        .and_then(|e| e.rsplit_once('@'))
                        .map(|(local, _)| local),
                ),
                ResolveBy::Subject => by_name(subject),
            })
            .collect()
    }
}

/// Entra ID group overage: instead of `groups`, the token names a claim source for it in
/// `_claim_names` (`{"_claim_names": {"groups": "src1"}}`).
fn has_claim_source(claims: &Map<String, Value>, claim: &str) -> bool {
    claims
        .get("_claim_names")
        .and_then(Value::as_object)
        .is_some_and(|names| names.contains_key(claim))
}

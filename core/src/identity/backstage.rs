//! Backstage user tokens, as Backstage's auth backend issues them and its proxy plugin forwards
//! them (`credentials: forward`): what a provider of this kind derives from the backend's base
//! URL, and how a user token is told apart from the other tokens Backstage signs.
//!
//! - User token: header `typ` `vnd.backstage.user`, `iss` `{base_url}/api/auth`, `aud`
//!   `backstage`, `sub` the user's entity ref, `ent` (ownership refs) only when the backend is
//!   configured to include it. Older releases issued the same token without `typ`.
//! - Limited-user token: `typ` `vnd.backstage.limited-user`, only `sub`, `iat`, `exp`; signed by
//!   the same key as the user token it was cut from, so it verifies, and must still be refused.
//! - Plugin token: `typ` `vnd.backstage.plugin`, signed with a plugin's own key, no `iss`.

use serde_json::{Map, Value};

use crate::identity::claims::ClaimError;
use crate::identity::groupref::token_group_ref;

pub const TYP_USER: &str = "vnd.backstage.user";
pub const TYP_LIMITED_USER: &str = "vnd.backstage.limited-user";
pub const TYP_PLUGIN: &str = "vnd.backstage.plugin";
/// `aud` of every Backstage user token.
pub const USER_AUDIENCE: &str = "backstage";
/// The auth backend under the backend's base URL; also the tokens' `iss`.
pub const AUTH_PATH: &str = "/api/auth";
/// The auth backend's public keys, under the base URL.
pub const JWKS_PATH: &str = "/api/auth/.well-known/jwks.json";
/// Least time between two unknown-`kid` refetches. Short, because each auth-backend instance
/// signs with its own key and makes a new one every token lifetime, so new `kid`s are routine.
pub const DEFAULT_REFETCH_MIN_INTERVAL_S: u64 = 5;

/// What a token's header `typ` says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    User,
    LimitedUser,
    Plugin,
    /// No `typ`: a legacy user token, or not a Backstage token at all.
    Untyped,
    /// Any other `typ` (`JWT`, `at+jwt`, ...).
    Other,
}

impl TokenType {
    /// Media types compare ignoring case, and `application/` may be left out (RFC 7515 §4.1.9).
    pub fn of(typ: Option<&str>) -> TokenType {
        let Some(typ) = typ else {
            return TokenType::Untyped;
        };
        let prefix = "application/";
        let typ = match typ.get(..prefix.len()) {
            Some(start) if start.eq_ignore_ascii_case(prefix) => typ.get(prefix.len()..),
            _ => Some(typ),
        }
        .unwrap_or(typ);
        if typ.eq_ignore_ascii_case(TYP_USER) {
            TokenType::User
        } else if typ.eq_ignore_ascii_case(TYP_LIMITED_USER) {
            TokenType::LimitedUser
        } else if typ.eq_ignore_ascii_case(TYP_PLUGIN) {
            TokenType::Plugin
        } else {
            TokenType::Other
        }
    }
}

/// Why a token is not a Backstage user token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenTypeError {
    #[error("a Backstage limited-user token (`typ` `{TYP_LIMITED_USER}`) is not a user token")]
    LimitedUser,
    #[error("a Backstage plugin token (`typ` `{TYP_PLUGIN}`) is not a user token")]
    Plugin,
    #[error(
        "token has no `typ`, and legacy Backstage tokens are not accepted (`legacy_tokens` is off)"
    )]
    LegacyOff,
    #[error("token has no `typ`, and its `aud` is not `{USER_AUDIENCE}`, so it is not a legacy Backstage user token")]
    LegacyWrongAudience,
    #[error("token `typ` `{typ}` is not `{TYP_USER}`")]
    Other { typ: String },
}

/// How a provider of kind `backstage` treats its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackstageProfile {
    /// Accept tokens without `typ` whose `aud` is `backstage` (Backstage releases before the
    /// typed tokens).
    pub legacy_tokens: bool,
    /// Count the `group:` refs of the token's `ent` claim as the caller's groups. Default: off
    /// when a catalog snapshot is configured (the catalog is fresher than a token), on when not.
    pub trust_token_groups: bool,
}

impl BackstageProfile {
    /// The default for `trust_token_groups`: the token's `ent` is only a fallback for a filter
    /// without catalog snapshots.
    pub fn default_trust_token_groups(has_snapshot: bool) -> bool {
        !has_snapshot
    }

    /// Accepts a user token, and a token without `typ` only as a legacy one (`legacy_tokens`
    /// on and `aud` `backstage`).
    pub fn check_type(
        &self,
        typ: Option<&str>,
        claims: &Map<String, Value>,
    ) -> Result<(), TokenTypeError> {
        match TokenType::of(typ) {
            TokenType::User => Ok(()),
            TokenType::LimitedUser => Err(TokenTypeError::LimitedUser),
            TokenType::Plugin => Err(TokenTypeError::Plugin),
            TokenType::Untyped if !self.legacy_tokens => Err(TokenTypeError::LegacyOff),
            TokenType::Untyped if has_user_audience(claims) => Ok(()),
            TokenType::Untyped => Err(TokenTypeError::LegacyWrongAudience),
            TokenType::Other => Err(TokenTypeError::Other {
                typ: typ.unwrap_or_default().chars().take(64).collect(),
            }),
        }
    }
}

/// For a token no provider claims (limited-user and plugin tokens carry no `iss`): the reason
/// it is refused when it is one of Backstage's non-user tokens.
pub fn non_user_token(typ: Option<&str>) -> Option<TokenTypeError> {
    match TokenType::of(typ) {
        TokenType::LimitedUser => Some(TokenTypeError::LimitedUser),
        TokenType::Plugin => Some(TokenTypeError::Plugin),
        TokenType::User | TokenType::Untyped | TokenType::Other => None,
    }
}

fn has_user_audience(claims: &Map<String, Value>) -> bool {
    match claims.get("aud") {
        Some(Value::String(aud)) => aud == USER_AUDIENCE,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(USER_AUDIENCE)),
        _ => false,
    }
}

/// The group refs of the `ent` claim (the user's ownership refs: the user and their direct
/// groups), lowercased as the catalog stores them, sorted. Refs of other kinds are skipped.
pub fn ent_groups(claims: &Map<String, Value>, max: usize) -> Result<Vec<String>, ClaimError> {
    let wrong = || ClaimError::WrongType {
        claim: String::from("ent"),
        expected: "an array of entity refs",
    };
    let items = match claims.get("ent") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(wrong()),
    };
    if items.len() > max {
        return Err(ClaimError::TooManyGroups {
            claim: String::from("ent"),
            count: items.len(),
            max,
        });
    }
    let mut groups = Vec::new();
    for item in items {
        let text = item.as_str().ok_or_else(wrong)?;
        if is_group_kind(text) {
            if let Some(group) = token_group_ref(text, true) {
                groups.push(group);
            }
        }
    }
    groups.sort_unstable();
    groups.dedup();
    Ok(groups)
}

fn is_group_kind(entity_ref: &str) -> bool {
    entity_ref
        .split_once(':')
        .is_some_and(|(kind, _)| kind.eq_ignore_ascii_case("group"))
}

/// `base_url` as configured → the base without a trailing slash, or `None` when it is not an
/// absolute http(s) URL with a host and no query or fragment.
pub fn normalize_base_url(base_url: &str) -> Option<&str> {
    let base = base_url.trim_end_matches('/');
    let rest = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    let valid = !host.is_empty()
        && !host.contains('@')
        && !rest.contains(['?', '#', ' '])
        && !rest.contains("//");
    valid.then_some(base)
}

/// The `iss` of the backend's user tokens.
pub fn issuer(base: &str) -> String {
    format!("{base}{AUTH_PATH}")
}

/// Where the backend publishes its public keys.
pub fn jwks_uri(base: &str) -> String {
    format!("{base}{JWKS_PATH}")
}

#[cfg(test)]
mod tests;

//! Who is calling: the bearer token verified by core's providers exactly as the filter does.
//! The filter's plugin configuration (`auth.filter_config`) is compiled with its providers and
//! one allow rule that needs a verified caller of any of them, and core's `decide` runs over
//! the current catalog, so emails and names map to catalog users as at the edge.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use meshgate_core::authorize::{decide, Credential};
use meshgate_core::catalog::{Catalog, CatalogState};
use meshgate_core::jwks::{KeyOrigin, KeySet};
use meshgate_core::provider::KeySource;
use meshgate_core::{Effect, KeyStore, Policy, Request, TokenCache, UnixTime};

use super::err::ApiError;

/// Least time between two key fetches caused by an unknown `kid`.
pub const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(30);
/// Bound on one JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The id of the one rule the compiled configuration has.
const CALLER_RULE: &str = "access-api-caller";

/// Why the authenticator cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("cannot read `{}`", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` is not a JSON object", .path.display())]
    NotJson { path: PathBuf },
    #[error("`{}` does not compile: {source}", .path.display())]
    Compile {
        path: PathBuf,
        source: meshgate_core::ConfigError,
    },
    #[error("`{}` has no providers", .path.display())]
    NoProviders { path: PathBuf },
    #[error("no provider `{provider}` in the filter configuration")]
    UnknownProvider { provider: String },
    #[error("key set for provider `{provider}`: {detail}")]
    Keys { provider: String, detail: String },
}

/// What [`Authenticator::new`] reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthSettings {
    pub filter_config: PathBuf,
    pub jwks_files: BTreeMap<String, PathBuf>,
    pub jwks_urls: BTreeMap<String, String>,
}

pub struct Authenticator {
    policy: Policy,
    keys: RwLock<KeyStore>,
    /// Provider index → JWKS URL.
    urls: BTreeMap<usize, String>,
    last_fetch: Mutex<Option<Instant>>,
}

impl Authenticator {
    pub fn new(settings: &AuthSettings) -> Result<Authenticator, AuthSetupError> {
        let path = &settings.filter_config;
        let text = std::fs::read(path).map_err(|source| AuthSetupError::Read {
            path: path.clone(),
            source,
        })?;
        let mut config: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|_| AuthSetupError::NotJson { path: path.clone() })?;
        let object = config
            .as_object_mut()
            .ok_or_else(|| AuthSetupError::NotJson { path: path.clone() })?;
        let providers: Vec<String> = object
            .get("providers")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        if providers.is_empty() {
            return Err(AuthSetupError::NoProviders { path: path.clone() });
        }
        for key in ["mode", "mode_overrides", "decision_log", "default_action"] {
            object.remove(key);
        }
        object.insert(
            String::from("rules"),
            serde_json::json!([{
                "id": CALLER_RULE,
                "action": "allow",
                "when": {"providers": providers},
            }]),
        );
        let policy = Policy::from_json(config.to_string().as_bytes()).map_err(|source| {
            AuthSetupError::Compile {
                path: path.clone(),
                source,
            }
        })?;
        let index_of = |name: &str| {
            policy
                .providers
                .iter()
                .position(|p| p.name == name)
                .ok_or_else(|| AuthSetupError::UnknownProvider {
                    provider: name.to_owned(),
                })
        };
        let mut keys = KeyStore::new(&policy);
        for (provider, file) in &settings.jwks_files {
            let index = index_of(provider)?;
            let document = std::fs::read(file).map_err(|source| AuthSetupError::Read {
                path: file.clone(),
                source,
            })?;
            let set =
                KeySet::parse(&document, KeyOrigin::Remote).map_err(|e| AuthSetupError::Keys {
                    provider: provider.clone(),
                    detail: e.to_string(),
                })?;
            keys.set(index, Arc::new(set));
        }
        let mut urls = BTreeMap::new();
        for (provider, url) in &settings.jwks_urls {
            urls.insert(index_of(provider)?, url.clone());
        }
        if let Some(local) = policy.providers.iter().find(|p| {
            matches!(p.keys, KeySource::Local(_))
                && (settings.jwks_files.contains_key(&p.name)
                    || settings.jwks_urls.contains_key(&p.name))
        }) {
            return Err(AuthSetupError::Keys {
                provider: local.name.clone(),
                detail: String::from("this provider has local_jwks in the filter configuration"),
            });
        }
        let auth = Authenticator {
            policy,
            keys: RwLock::new(keys),
            urls,
            last_fetch: Mutex::new(None),
        };
        auth.fetch_all();
        Ok(auth)
    }

    /// Fetches every configured JWKS URL; a failed fetch keeps the keys there were.
    fn fetch_all(&self) {
        if let Ok(mut last) = self.last_fetch.lock() {
            *last = Some(Instant::now());
        }
        for (index, url) in &self.urls {
            let agent = ureq::AgentBuilder::new().timeout(FETCH_TIMEOUT).build();
            let Ok(response) = agent.get(url).call() else {
                continue;
            };
            let mut body = Vec::new();
            if std::io::Read::read_to_end(
                &mut std::io::Read::take(response.into_reader(), 1024 * 1024),
                &mut body,
            )
            .is_err()
            {
                continue;
            }
            if let Ok(set) = KeySet::parse(&body, KeyOrigin::Remote) {
                if let Ok(mut keys) = self.keys.write() {
                    keys.set(*index, Arc::new(set));
                }
            }
        }
    }

    /// Refetches on an unknown `kid`, at most once per [`REFETCH_MIN_INTERVAL`].
    fn refetch(&self) -> bool {
        if self.urls.is_empty() {
            return false;
        }
        let due = self
            .last_fetch
            .lock()
            .is_ok_and(|last| last.is_none_or(|at| at.elapsed() >= REFETCH_MIN_INTERVAL));
        if due {
            self.fetch_all();
        }
        due
    }

    /// The caller's user ref (`user:default/carol`) from `authorization`, or why not.
    pub fn caller(
        &self,
        authorization: Option<&str>,
        catalog: &Catalog,
        now: UnixTime,
    ) -> Result<String, ApiError> {
        let Some(authorization) = authorization.filter(|a| !a.trim().is_empty()) else {
            return Err(ApiError::MissingToken);
        };
        let headers = [(String::from("authorization"), authorization.to_owned())];
        let request = Request {
            method: "GET",
            authority: "meshgate-control-plane",
            path: "/v1/access",
            headers: &headers,
        };
        let run = || {
            let keys = self.keys.read().map_err(|_| ApiError::Internal {
                detail: String::from("key store lock poisoned"),
            })?;
            let mut cache = TokenCache::new(0);
            Ok::<_, ApiError>(decide(
                &self.policy,
                Credential::token(&keys, &mut cache),
                CatalogState::Ready(catalog),
                &request,
                now,
            ))
        };
        let mut verdict = run()?;
        if verdict.diagnostics.keys_wanted.is_some() && self.refetch() {
            verdict = run()?;
        }
        let decision = verdict.decision;
        match decision.effect {
            Effect::Allow(_) => decision
                .catalog_user
                .clone()
                .or_else(|| decision.principal.as_ref().and_then(|p| p.user_ref.clone()))
                .ok_or(ApiError::UnknownCaller),
            Effect::Deny(code) if code.http_status() == 401 => Err(ApiError::BadToken {
                code: code.as_str(),
                reason: decision.reason,
            }),
            Effect::Deny(_) => Err(ApiError::UnknownCaller),
        }
    }
}

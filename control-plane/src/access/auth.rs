//! Who is calling: the bearer token verified by core's providers exactly as the filter does.
//! The filter's plugin configuration (`auth.filter_config`) is compiled with its providers and
//! one allow rule that needs a verified caller of any of them, and core's `decide` runs over
//! the current catalog, so emails and names map to catalog users as at the edge. Keys are
//! refetched on an unknown `kid` under each provider's own `refetch_on_unknown_kid` and
//! `refetch_min_interval_s`, as the filter does (a Backstage provider: every 5 s at most), so a
//! Backstage that signs its first key after the control plane started is trusted within seconds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use meshgate_core::authorize::{decide, Credential};
use meshgate_core::catalog::{Catalog, CatalogState};
use meshgate_core::decision::verdict::{KeysWanted, MissingKeys};
use meshgate_core::jwks::{KeyOrigin, KeySet};
use meshgate_core::provider::{KeySource, UnknownKid};
use meshgate_core::{Effect, KeyStore, Policy, Request, TokenCache, UnixTime};

use super::err::ApiError;

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
    #[error("`{}`: {detail}", .path.display())]
    Find { path: PathBuf, detail: String },
    #[error("`{}` holds several meshgate configurations; name a file with one", .path.display())]
    Several { path: PathBuf },
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
    /// Provider index → where its keys come from and when they may be fetched again.
    fetches: BTreeMap<usize, KeyFetch>,
    /// Provider index → when its keys were last fetched.
    last_fetch: Mutex<BTreeMap<usize, Instant>>,
}

/// One provider's JWKS URL and its refetch settings from the filter configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyFetch {
    url: String,
    on_unknown_kid: UnknownKid,
    min_interval: Duration,
    /// Keys older than this are fetched again before the next verification.
    cache_duration: Duration,
}

impl Authenticator {
    pub fn new(settings: &AuthSettings) -> Result<Authenticator, AuthSetupError> {
        let path = &settings.filter_config;
        // The plugin JSON, or the Envoy bootstrap or Istio manifest that carries it, as
        // `meshgate check --config` reads them.
        let mut found = crate::validate::validate_file(path)
            .map_err(|error| AuthSetupError::Find {
                path: path.clone(),
                detail: error.to_string(),
            })?
            .into_iter();
        let text = match (found.next(), found.next()) {
            (Some(only), None) => only.text,
            _ => return Err(AuthSetupError::Several { path: path.clone() }),
        };
        let mut config: serde_json::Value = serde_json::from_str(&text)
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
        let mut fetches = BTreeMap::new();
        for (provider, url) in &settings.jwks_urls {
            let index = index_of(provider)?;
            let Some(KeySource::Remote(remote)) = policy.providers.get(index).map(|p| &p.keys)
            else {
                continue;
            };
            fetches.insert(
                index,
                KeyFetch {
                    url: url.clone(),
                    on_unknown_kid: remote.on_unknown_kid,
                    min_interval: Duration::from_secs(remote.refetch_min_interval_s),
                    cache_duration: Duration::from_secs(remote.cache_duration_s),
                },
            );
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
            fetches,
            last_fetch: Mutex::new(BTreeMap::new()),
        };
        for index in auth.fetches.keys() {
            auth.fetch(*index);
        }
        Ok(auth)
    }

    /// Fetches one provider's JWKS; a failed fetch keeps the keys there were.
    fn fetch(&self, index: usize) {
        let Some(fetch) = self.fetches.get(&index) else {
            return;
        };
        if let Ok(mut last) = self.last_fetch.lock() {
            last.insert(index, Instant::now());
        }
        let agent = ureq::AgentBuilder::new().timeout(FETCH_TIMEOUT).build();
        let Ok(response) = agent.get(&fetch.url).call() else {
            return;
        };
        let mut body = Vec::new();
        if std::io::Read::read_to_end(
            &mut std::io::Read::take(response.into_reader(), 1024 * 1024),
            &mut body,
        )
        .is_err()
        {
            return;
        }
        if let Ok(set) = KeySet::parse(&body, KeyOrigin::Remote) {
            if let Ok(mut keys) = self.keys.write() {
                keys.set(index, Arc::new(set));
            }
        }
    }

    /// Fetches again the key sets older than their provider's `cache_duration_s`.
    fn refresh_stale(&self) {
        let stale: Vec<usize> = match self.last_fetch.lock() {
            Ok(last) => self
                .fetches
                .iter()
                .filter(|(index, fetch)| {
                    last.get(index)
                        .is_none_or(|at| at.elapsed() >= fetch.cache_duration)
                })
                .map(|(index, _)| *index)
                .collect(),
            Err(_) => return,
        };
        for index in stale {
            self.fetch(index);
        }
    }

    /// Refetches the keys a decision lacked, when the provider's settings allow it now:
    /// `refetch_on_unknown_kid` not off for a rotated key (a set that never loaded is always
    /// retried), and no earlier fetch within its `refetch_min_interval_s`.
    fn refetch(&self, wanted: KeysWanted) -> bool {
        let index = wanted.provider.index();
        let Some(fetch) = self.fetches.get(&index) else {
            return false;
        };
        if wanted.missing == MissingKeys::UnknownKey && fetch.on_unknown_kid == UnknownKid::Off {
            return false;
        }
        let due = self.last_fetch.lock().is_ok_and(|last| {
            last.get(&index)
                .is_none_or(|at| at.elapsed() >= fetch.min_interval)
        });
        if due {
            self.fetch(index);
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
        self.refresh_stale();
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
        if verdict
            .diagnostics
            .keys_wanted
            .is_some_and(|wanted| self.refetch(wanted))
        {
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

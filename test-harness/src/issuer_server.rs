//! Mock OIDC issuer: discovery and JWKS from the demo key set, plus admin endpoints that let
//! tests rotate and retire keys and make the JWKS endpoint fail.
//!
//! Every key change is saved to the key file, so `meshgate token` run alongside signs with
//! the same keys the issuer publishes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use meshgate_control_plane::issuer::{KeySet, KeySetError, SIGNING_ALGS};
use serde_json::{json, Value};

use crate::ports::{discard_body, json_response, Bound, HarnessError, JsonResponse, Listener};
use crate::text::query_param;

/// What verifiers may cache the JWKS for; matches common providers' `Cache-Control`.
pub const JWKS_CACHE_CONTROL: &str = "max-age=300";

/// The mock issuer; stops when dropped.
pub struct IssuerServer {
    listener: Listener,
    state: Arc<Mutex<IssuerState>>,
}

struct IssuerState {
    keys: KeySet,
    keys_path: PathBuf,
    /// The server's own URL, for `jwks_uri`; the `issuer` claim may differ.
    url: String,
    jwks_requests: u64,
    discovery_requests: u64,
    /// Status the JWKS endpoint answers with instead of the keys, while set.
    failing: Option<u16>,
}

impl IssuerServer {
    /// Listens on `bind` (a loopback `ip:port`, port 0 for any) and serves the key set in
    /// `keys_path`. A missing key file is generated and saved, with `issuer` or else the
    /// server's own URL as issuer. An `issuer` that differs from an existing file's is saved
    /// into it, so tokens minted from the file carry what discovery announces.
    pub fn start(
        bind: &str,
        keys_path: PathBuf,
        issuer: Option<String>,
    ) -> Result<IssuerServer, HarnessError> {
        let bound = Bound::new(bind)?;
        let url = bound.url();
        let keys = if keys_path.exists() {
            let mut keys = KeySet::load(&keys_path)?;
            if let Some(issuer) = issuer.filter(|issuer| issuer != keys.issuer()) {
                keys.set_issuer(issuer);
                keys.save(&keys_path)?;
            }
            keys
        } else {
            let keys = KeySet::generate(issuer.as_deref().unwrap_or(&url))?;
            keys.save(&keys_path)?;
            keys
        };
        let state = Arc::new(Mutex::new(IssuerState {
            keys,
            keys_path,
            url,
            jwks_requests: 0,
            discovery_requests: 0,
            failing: None,
        }));
        let listener = {
            let state = Arc::clone(&state);
            bound.serve("issuer", move |request| handle(&state, request))?
        };
        Ok(IssuerServer { listener, state })
    }

    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.listener.url()
    }

    /// The `iss` of minted tokens and of discovery.
    pub fn issuer(&self) -> String {
        self.lock().keys.issuer().to_owned()
    }

    pub fn keys_path(&self) -> PathBuf {
        self.lock().keys_path.clone()
    }

    /// A copy of the current keys, for minting tokens in-process.
    pub fn keyset(&self) -> KeySet {
        self.lock().keys.clone()
    }

    /// Requests to `/jwks` so far, failed ones included.
    pub fn jwks_requests(&self) -> u64 {
        self.lock().jwks_requests
    }

    /// Same as `POST /admin/rotate?alg=...`.
    pub fn rotate(&self, alg: &str) -> Result<String, HarnessError> {
        self.lock().change(|keys| keys.rotate(alg))
    }

    /// Same as `POST /admin/retire?kid=...`.
    pub fn retire(&self, kid: &str) -> Result<(), HarnessError> {
        self.lock().change(|keys| keys.retire(kid))
    }

    /// `Some(status)` is `POST /admin/fail?status=...`; `None` is `POST /admin/recover`.
    pub fn set_jwks_failure(&self, status: Option<u16>) {
        self.lock().failing = status;
    }

    pub fn stop(&mut self) {
        self.listener.stop();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IssuerState> {
        lock(&self.state)
    }
}

// A handler that panicked mid-change leaves keys that were never saved; the copy in memory is
// still a valid key set, so carry on with it.
fn lock(state: &Mutex<IssuerState>) -> std::sync::MutexGuard<'_, IssuerState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl IssuerState {
    /// Applies `edit` to a copy of the keys and keeps it only once it is saved, so the file and
    /// what the server publishes never disagree.
    fn change<T>(
        &mut self,
        edit: impl FnOnce(&mut KeySet) -> Result<T, KeySetError>,
    ) -> Result<T, HarnessError> {
        let mut keys = self.keys.clone();
        let result = edit(&mut keys)?;
        keys.save(&self.keys_path)?;
        self.keys = keys;
        Ok(result)
    }

    fn discovery(&self) -> Value {
        json!({
            "issuer": self.keys.issuer(),
            "jwks_uri": format!("{}/jwks", self.url),
            "id_token_signing_alg_values_supported": SIGNING_ALGS,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
        })
    }
}

fn handle(state: &Mutex<IssuerState>, mut request: tiny_http::Request) {
    discard_body(&mut request);
    let response = respond(state, request.method(), request.url());
    // The client may have gone away; there is nobody left to tell.
    let _ = request.respond(response);
}

fn respond(state: &Mutex<IssuerState>, method: &tiny_http::Method, url: &str) -> JsonResponse {
    use tiny_http::Method::{Get, Post};

    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut state = lock(state);
    match (method, path) {
        (Get, "/.well-known/openid-configuration") => {
            state.discovery_requests = state.discovery_requests.saturating_add(1);
            json_response(200, &state.discovery(), None)
        }
        (Get, "/jwks") => {
            state.jwks_requests = state.jwks_requests.saturating_add(1);
            match state.failing {
                Some(status) => error(status, "injected failure"),
                None => json_response(200, &state.keys.public_jwks(), Some(JWKS_CACHE_CONTROL)),
            }
        }
        (Post, "/admin/rotate") => match query_param(query, "alg") {
            None => error(400, "missing query parameter `alg`"),
            Some(alg) => match state.change(|keys| keys.rotate(&alg)) {
                Ok(kid) => json_response(200, &json!({ "kid": kid }), None),
                Err(err) => harness_error(&err),
            },
        },
        (Post, "/admin/retire") => match query_param(query, "kid") {
            None => error(400, "missing query parameter `kid`"),
            Some(kid) => match state.change(|keys| keys.retire(&kid)) {
                Ok(()) => json_response(200, &json!({ "kid": kid, "published": false }), None),
                Err(err) => harness_error(&err),
            },
        },
        (Post, "/admin/fail") => {
            let status = query_param(query, "status");
            match status.as_deref().map_or(Ok(503), str::parse::<u16>) {
                Ok(status) if (400..=599).contains(&status) => {
                    state.failing = Some(status);
                    json_response(200, &json!({ "failing": status }), None)
                }
                _ => error(400, "`status` must be an HTTP error status (400-599)"),
            }
        }
        (Post, "/admin/recover") => {
            state.failing = None;
            json_response(200, &json!({ "failing": null }), None)
        }
        (Get, "/admin/stats") => json_response(
            200,
            &json!({
                "jwks_requests": state.jwks_requests,
                "discovery_requests": state.discovery_requests,
                "failing": state.failing,
            }),
            None,
        ),
        _ => error(404, "not found"),
    }
}

fn error(status: u16, message: &str) -> JsonResponse {
    json_response(status, &json!({ "error": message }), None)
}

/// Maps a failed admin change to a status: the caller's mistake, or the server's file.
fn harness_error(err: &HarnessError) -> JsonResponse {
    let status = match err {
        HarnessError::Keys(KeySetError::UnknownKid { .. }) => 404,
        HarnessError::Keys(KeySetError::UnsupportedAlg { .. }) => 400,
        _ => 500,
    };
    error(status, &err.to_string())
}

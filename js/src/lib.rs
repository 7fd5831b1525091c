//! meshgate-js: the filter's decision engine (`meshgate-core`) for JavaScript, built with
//! wasm-bindgen into the npm package `@meshgate/policy` (`scripts/js.sh build`).
//!
//! The boundary is JSON strings in and out; `js/npm/index.js` turns them into objects and
//! `js/npm/index.d.ts` types them. Nothing here panics on any input: bad input comes back
//! as `{"error": {"kind", "path", "message"}}`.
//!
//! Claims are taken as verified (`meshgate_core::Credential::Claims`): every check but the
//! signature and the token's location applies, exactly as in the filter.

mod input;

use meshgate_core::authorize::{decide, Credential};
use meshgate_core::explain::explain as explain_verdict;
use meshgate_core::{Effect, Mode, Policy};
use meshgate_core::{Request, UnixTime};
use serde_json::{json, Value};
use wasm_bindgen::prelude::wasm_bindgen;

use input::InputError;

/// Explains the decision the filter would make for `request` from a caller with `claims`,
/// under the plugin configuration `config`. All three are JSON documents; the result is
/// the explanation as JSON (`Explanation::to_json`, as `meshgate check --json` prints it,
/// plus the decision log's `mode` and `shadow`), or
/// `{"error": {"kind": "config"|"claims"|"request", "path", "message"}}`.
///
/// `request` is `{"method", "url"}` or `{"method", "host", "path", "headers"?}`, with an
/// optional `now` (Unix seconds); without it, the current time.
#[wasm_bindgen]
pub fn explain(config: &str, claims: &str, request: &str) -> String {
    explain_json(config, claims, request, now_s).to_string()
}

/// Compiles `config` as the filter's `on_configure` would: `{"ok": true, "providers",
/// "rules"}` or `{"ok": false, "path", "message"}`.
#[wasm_bindgen]
pub fn validate(config: &str) -> String {
    validate_json(config).to_string()
}

/// The version of meshgate this package was built from.
#[wasm_bindgen]
pub fn version() -> String {
    String::from(env!("CARGO_PKG_VERSION"))
}

/// [`explain`] as a JSON value, with the clock as an argument (used when the request has
/// no `now`).
pub fn explain_json(config: &str, claims: &str, request: &str, clock: fn() -> i64) -> Value {
    match explain_value(config, claims, request, clock) {
        Ok(explanation) => explanation,
        Err(e) => e.to_json(),
    }
}

fn explain_value(
    config: &str,
    claims: &str,
    request: &str,
    clock: fn() -> i64,
) -> Result<Value, InputError> {
    let policy = Policy::from_json(config.as_bytes()).map_err(InputError::from)?;
    let claims = input::parse_claims(claims)?;
    let request = input::parse_request(request)?;
    let now = request.now.unwrap_or_else(clock);
    // As Envoy presents headers (and as `meshgate check` builds them): pseudo-headers first.
    // A claims preview reads no header today; they are passed so it would see them.
    let mut headers = vec![
        (String::from(":method"), request.method.clone()),
        (String::from(":authority"), request.authority.clone()),
        (String::from(":path"), request.path.clone()),
    ];
    headers.extend(request.headers.iter().cloned());
    let req = Request {
        method: &request.method,
        authority: &request.authority,
        path: &request.path,
        headers: &headers,
    };
    // Previews see the claims given; catalog groups need a snapshot the package has no way to fetch.
    let state = meshgate_core::catalog::CatalogState::NotConfigured;
    let verdict = decide(
        &policy,
        Credential::Claims(claims),
        state,
        &req,
        UnixTime::from_secs(now),
    );
    let explanation = explain_verdict(&policy, state, &req, verdict, UnixTime::from_secs(now));
    let mut out = explanation.to_json();
    // `to_json` doesn't say whether the request is in shadow (it passes whatever the
    // decision) or what shadow rules would have done; the decision log does, in this form.
    let d = &explanation.verdict.decision;
    if let Value::Object(out) = &mut out {
        out.entry("mode").or_insert_with(|| {
            json!(match d.mode {
                Mode::Enforce => "enforce",
                Mode::Shadow => "shadow",
            })
        });
        out.entry("shadow").or_insert_with(|| match &d.shadow {
            None => Value::Null,
            Some(s) => json!({
                "decision": match s.effect { Effect::Allow(_) => "allow", Effect::Deny(_) => "deny" },
                "code": match s.effect { Effect::Allow(c) => c.as_str(), Effect::Deny(c) => c.as_str() },
                "rule_id": s.rule_id,
            }),
        });
    }
    Ok(out)
}

/// [`validate`] as a JSON value.
pub fn validate_json(config: &str) -> Value {
    match Policy::from_json(config.as_bytes()) {
        Ok(policy) => json!({
            "ok": true,
            "providers": policy.providers.len(),
            "rules": policy.rules.len(),
        }),
        Err(e) => json!({"ok": false, "path": e.path, "message": e.reason.to_string()}),
    }
}

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = Date, js_name = now)]
    fn date_now() -> f64;
}

/// Unix seconds from JavaScript's clock.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
fn now_s() -> i64 {
    input::seconds_from_f64(date_now() / 1000.0).unwrap_or(0)
}

/// Unix seconds from the system clock (native builds: tests, `cargo check`).
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;

//! The decision log line: one JSON object per decision, never the token or secrets.

use serde_json::{json, Value};

use crate::decision::verdict::{Decision, Effect, ShadowOutcome};
use crate::policy::config::Mode;
use crate::request::{normalize_host, Request};

/// Builds the decision log record. `request_id` is Envoy's `x-request-id`.
pub fn decision_record(
    decision: &Decision,
    req: &Request<'_>,
    request_id: Option<&str>,
    now: i64,
    latency_us: Option<i64>,
) -> Value {
    let principal = decision.principal.as_deref();
    json!({
        "ts": now,
        "latency_us": latency_us,
        "request_id": request_id,
        "decision": match decision.effect { Effect::Allow(_) => "allow", Effect::Deny(_) => "deny" },
        "code": decision.code_str(),
        "reason": decision.reason,
        "rule_id": decision.rule_id,
        "mode": match decision.mode { Mode::Enforce => "enforce", Mode::Shadow => "shadow" },
        "shadow": decision.shadow.as_ref().map(shadow_json),
        "method": req.method,
        // The host the rules matched: a proxy in front (Backstage's) sends `host:port`.
        "host": normalize_host(req.authority),
        "path": decision.normalized_path,
        "provider": decision.provider,
        "subject": principal.and_then(|p| p.subject.as_deref()),
        "user": decision.catalog_user.as_deref().or(principal.and_then(|p| p.user_ref.as_deref())),
        "groups": principal.map(|p| p.groups.as_slice()),
        "grant": decision.grant.as_ref().map(|g| json!({
            "id": g.id, "target": g.target, "not_after": g.not_after,
        })),
    })
}

/// A shadow outcome as it appears in the decision log and in explanations.
pub fn shadow_json(shadow: &ShadowOutcome) -> Value {
    let (decision, code) = match shadow.effect {
        Effect::Allow(c) => ("allow", c.as_str()),
        Effect::Deny(c) => ("deny", c.as_str()),
    };
    json!({"decision": decision, "code": code, "rule_id": shadow.rule_id})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DenyCode;

    #[test]
    fn the_logged_host_is_the_one_rules_match() {
        let decision = Decision::builder(Effect::Deny(DenyCode::TokenMissing), "no token")
            .request("/".into(), Mode::Enforce, None, None)
            .build();
        for (authority, logged) in [
            ("airflow.internal:10000", "airflow.internal"),
            ("Airflow.Internal.", "airflow.internal"),
            ("[::1]:8080", "[::1]"),
            ("airflow.internal", "airflow.internal"),
        ] {
            let req = Request {
                method: "GET",
                authority,
                path: "/",
                headers: &[],
            };
            let record = decision_record(&decision, &req, None, 0, None);
            assert_eq!(record["host"], logged, "{authority}");
        }
    }
}

//! The glue over a fake host: what Envoy would see for each kind of request.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_compact::alg::Ed25519;
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm, AlgorithmSignature};
use serde_json::{json, Value};

use crate::fake::FakeHost;
use crate::filter::{Filter, Next};
use meshgate_core::Policy;

const NOW: i64 = 1_700_000_000;
const ISSUER: &str = "https://idp.test";

struct Keys {
    secret: <Ed25519 as Algorithm>::SigningKey,
    public_jwk: Value,
}

fn keys() -> Keys {
    let (secret, public) = Ed25519::generate(&mut rand::thread_rng());
    let mut public_jwk = serde_json::to_value(JsonWebKey::from(&public)).unwrap();
    public_jwk["kid"] = json!("k1");
    public_jwk["alg"] = json!("EdDSA");
    Keys { secret, public_jwk }
}

fn token(keys: &Keys, claims: Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "kid": "k1"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let sig = Ed25519.sign(&keys.secret, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_bytes()))
}

fn alice(keys: &Keys, groups: &[&str]) -> String {
    token(
        keys,
        json!({"iss": ISSUER, "sub": "alice", "aud": "tools", "exp": NOW + 600, "groups": groups}),
    )
}

fn config(jwks: Value, extra: Value) -> Value {
    let mut config = json!({
        "providers": {"idp": {"issuer": ISSUER, "audiences": ["tools"], "local_jwks": {"inline": {"keys": [jwks]}}}},
        "rules": [
            {"id": "health", "action": "allow", "public": true, "paths": ["/health"]},
            {"id": "dags", "action": "allow", "methods": ["GET"], "paths": ["/api/v1/dags"], "when": {"groups_any": ["data-eng"]}}
        ]
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    config
}

fn filter(config: Value) -> Filter {
    Filter::new(Policy::from_json(config.to_string().as_bytes()).unwrap())
}

#[test]
fn allowed_request_gets_trusted_identity_only() {
    let keys = keys();
    let mut f = filter(config(keys.public_jwk.clone(), json!({})));
    let mut host = FakeHost::at(NOW)
        .with_request("GET", "airflow.internal", "/api/v1/dags")
        .with_header(
            "authorization",
            &format!("Bearer {}", alice(&keys, &["data-eng"])),
        )
        .with_header("x-meshgate-subject", "root")
        .with_header("x-meshgate-admin", "true")
        .with_header("x-request-id", "req-1");
    assert_eq!(f.on_request_headers(&mut host), Next::Continue);
    assert_eq!(host.reply, None);
    assert_eq!(host.header("x-meshgate-subject"), Some("alice"));
    assert_eq!(host.header("x-meshgate-groups"), Some("data-eng"));
    assert_eq!(host.header("x-meshgate-provider"), Some("idp"));
    assert_eq!(host.header("x-meshgate-admin"), None);
    assert_eq!(
        host.header("authorization"),
        None,
        "token is not forwarded by default"
    );
    assert_eq!(host.counter("meshgate.allowed"), 1);
    assert_eq!(host.counter("meshgate.denied"), 0);
}

#[test]
fn forward_keeps_the_token() {
    let keys = keys();
    let mut cfg = config(keys.public_jwk.clone(), json!({}));
    cfg["providers"]["idp"]["forward"] = json!(true);
    let mut f = filter(cfg);
    let bearer = format!("Bearer {}", alice(&keys, &["data-eng"]));
    let mut host = FakeHost::at(NOW)
        .with_request("GET", "a", "/api/v1/dags")
        .with_header("authorization", &bearer);
    assert_eq!(f.on_request_headers(&mut host), Next::Continue);
    assert_eq!(host.header("authorization"), Some(bearer.as_str()));
}

#[test]
fn denials_reply_with_status_challenge_and_code() {
    let keys = keys();
    let other = self::keys();
    // (name, token, status, code, part of the WWW-Authenticate challenge)
    type Case<'a> = (&'a str, Option<String>, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        (
            "no token",
            None,
            401,
            "token_missing",
            Some("Bearer realm=\"meshgate\""),
        ),
        (
            "forged",
            Some(alice(&other, &["data-eng"])),
            401,
            "signature_invalid",
            Some("error=\"invalid_token\""),
        ),
        (
            "garbage",
            Some("x.y.z".into()),
            401,
            "token_invalid",
            Some("error=\"invalid_token\""),
        ),
        (
            "expired",
            Some(token(
                &keys,
                json!({"iss": ISSUER, "aud": "tools", "exp": NOW - 3600}),
            )),
            401,
            "token_expired",
            Some("error_description=\"the token has expired\""),
        ),
        (
            "not in group",
            Some(alice(&keys, &["finance"])),
            403,
            "no_rule_matched",
            None,
        ),
    ];
    for (name, token, status, code, challenge) in cases {
        let mut f = filter(config(keys.public_jwk.clone(), json!({})));
        let mut host = FakeHost::at(NOW).with_request("GET", "a", "/api/v1/dags");
        if let Some(token) = &token {
            host = host.with_header("authorization", &format!("Bearer {token}"));
        }
        assert_eq!(f.on_request_headers(&mut host), Next::Stop, "{name}");
        let reply = host.reply.clone().unwrap();
        assert_eq!(reply.status, status, "{name}");
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["code"], code, "{name}");
        let www = reply
            .headers
            .iter()
            .find(|(k, _)| k == "www-authenticate")
            .map(|(_, v)| v.as_str());
        match challenge {
            Some(part) => assert!(www.unwrap_or_default().contains(part), "{name}: {www:?}"),
            None => assert_eq!(www, None, "{name}"),
        }
        if let Some(token) = &token {
            assert!(!reply.body.contains(token.as_str()), "{name}: token echoed");
            assert!(
                !host
                    .logs
                    .borrow()
                    .iter()
                    .any(|(_, m)| m.contains(token.as_str())),
                "{name}: token logged"
            );
        }
        assert_eq!(host.counter("meshgate.denied"), 1, "{name}");
        assert_eq!(
            host.counter(&format!("meshgate.denied.{code}")),
            1,
            "{name}"
        );
        assert!(
            host.logged(&format!("\"code\":\"{code}\"")),
            "{name}: decision not logged"
        );
    }
}

#[test]
fn shadow_mode_forwards_what_it_would_deny_without_identity() {
    let keys = keys();
    let mut f = filter(config(keys.public_jwk.clone(), json!({"mode": "shadow"})));
    let mut host = FakeHost::at(NOW)
        .with_request("GET", "a", "/api/v1/dags")
        .with_header(
            "authorization",
            &format!("Bearer {}", alice(&keys, &["finance"])),
        )
        .with_header("x-meshgate-groups", "data-eng");
    assert_eq!(f.on_request_headers(&mut host), Next::Continue);
    assert_eq!(host.reply, None);
    assert_eq!(
        host.header("x-meshgate-groups"),
        None,
        "spoofed header still stripped"
    );
    assert_eq!(
        host.header("x-meshgate-subject"),
        None,
        "no identity for a would-be denial"
    );
    assert_eq!(host.counter("meshgate.shadow.would_deny"), 1);
    assert_eq!(host.counter("meshgate.denied.no_rule_matched"), 1);
}

#[test]
fn remote_jwks_is_fetched_kept_and_retried() {
    let keys = keys();
    let mut cfg = config(Value::Null, json!({}));
    cfg["providers"]["idp"]
        .as_object_mut()
        .unwrap()
        .remove("local_jwks");
    cfg["providers"]["idp"]["remote_jwks"] = json!({"cluster": "idp_cluster", "uri": "http://idp.test:8080/keys?v=1", "cache_duration_s": 60});
    let mut f = filter(cfg);
    let request = |f: &mut Filter, now: i64| {
        let mut host = FakeHost::at(now)
            .with_request("GET", "a", "/api/v1/dags")
            .with_header(
                "authorization",
                &format!("Bearer {}", alice(&keys, &["data-eng"])),
            );
        f.on_request_headers(&mut host);
        host.reply.map_or(200, |r| r.status)
    };

    // Before the first fetch: fail closed.
    assert_eq!(request(&mut f, NOW), 401);

    let mut host = FakeHost::at(NOW);
    f.jwks.tick(&mut host);
    assert_eq!(host.dispatched.len(), 1);
    let call = host.dispatched[0].clone();
    assert_eq!(
        (
            call.cluster.as_str(),
            call.authority.as_str(),
            call.path.as_str()
        ),
        ("idp_cluster", "idp.test:8080", "/keys?v=1")
    );
    // While in flight, no second fetch.
    f.jwks.tick(&mut host);
    assert_eq!(host.dispatched.len(), 1);
    // A response for someone else's callout is not ours.
    assert!(!f
        .jwks
        .on_response(&mut host, &mut f.keys, 999, Some(200), Some(b"{}")));

    let jwks = json!({"keys": [keys.public_jwk]}).to_string();
    assert!(f.jwks.on_response(
        &mut host,
        &mut f.keys,
        call.token,
        Some(200),
        Some(jwks.as_bytes())
    ));
    assert_eq!(host.counter("meshgate.jwks.fetch_ok"), 1);
    assert_eq!(request(&mut f, NOW), 200);

    // Not due again until cache_duration_s has passed.
    host.now_ms += 59_000;
    f.jwks.tick(&mut host);
    assert_eq!(host.dispatched.len(), 1);
    host.now_ms += 2_000;
    f.jwks.tick(&mut host);
    assert_eq!(host.dispatched.len(), 2);

    // Failed and garbage refreshes keep the good keys and back off.
    let token = host.dispatched[1].token;
    assert!(f
        .jwks
        .on_response(&mut host, &mut f.keys, token, Some(503), Some(b"down")));
    assert_eq!(host.counter("meshgate.jwks.fetch_failed"), 1);
    assert_eq!(request(&mut f, NOW + 61), 200);
    f.jwks.tick(&mut host);
    assert_eq!(host.dispatched.len(), 2, "retry waits for the backoff");
    host.now_ms += 1_000;
    f.jwks.tick(&mut host);
    assert_eq!(host.dispatched.len(), 3);
    let token = host.dispatched[2].token;
    assert!(f.jwks.on_response(
        &mut host,
        &mut f.keys,
        token,
        Some(200),
        Some(br#"{"keys": []}"#)
    ));
    assert_eq!(host.counter("meshgate.jwks.fetch_failed"), 2);
    assert_eq!(request(&mut f, NOW + 62), 200);
    assert!(host.logged("keeping the current keys"));

    // A dispatch the host refuses is a failure too, and is retried.
    host.fail_dispatch = true;
    host.now_ms += 10_000;
    f.jwks.tick(&mut host);
    assert_eq!(host.counter("meshgate.jwks.fetch_failed"), 3);
}

#[test]
fn public_route_needs_no_token_and_strips_spoofing() {
    let keys = keys();
    let mut f = filter(config(keys.public_jwk.clone(), json!({})));
    let mut host = FakeHost::at(NOW)
        .with_request("GET", "a", "/health")
        .with_header("x-meshgate-subject", "root");
    assert_eq!(f.on_request_headers(&mut host), Next::Continue);
    assert_eq!(host.header("x-meshgate-subject"), None);
    assert_eq!(host.counter("meshgate.allowed"), 1);
}

//! The glue over a fake host: what Envoy would see for each kind of request.

use jwt_compact::alg::Ed25519;
use jwt_compact::jwk::JsonWebKey;
use serde_json::{json, Value};

use crate::fake::FakeHost;
use crate::filter::{Filter, Next};
use meshgate_core::Policy;

const NOW: i64 = 1_700_000_000;
const ISSUER: &str = "https://idp.test";

struct Keys {
    kid: &'static str,
    /// A fresh Ed25519 key per call, as a private JWK for the shared test signer.
    private_jwk: Value,
    public_jwk: Value,
}

fn keys() -> Keys {
    keys_with_kid("k1")
}

fn keys_with_kid(kid: &'static str) -> Keys {
    let (secret, public) = Ed25519::generate(&mut rand::thread_rng());
    let private_jwk = serde_json::to_value(JsonWebKey::from(&secret)).unwrap();
    let mut public_jwk = serde_json::to_value(JsonWebKey::from(&public)).unwrap();
    public_jwk["kid"] = json!(kid);
    public_jwk["alg"] = json!("EdDSA");
    Keys {
        kid,
        private_jwk,
        public_jwk,
    }
}

fn token(keys: &Keys, claims: Value) -> String {
    let header = json!({"alg": "EdDSA", "kid": keys.kid});
    meshgate_test_support::sign::sign("EdDSA", &keys.private_jwk, &header, &claims).unwrap()
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
    assert_eq!(f.on_request_headers(&mut host, 1), Next::Continue);
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
    assert_eq!(host.counter("meshgate.rule.dags.allowed"), 1);
    assert_eq!(host.counter("meshgate.token_cache.miss"), 1);

    // One token, twice: the second request is served from the verified-token cache.
    let bearer = format!("Bearer {}", alice(&keys, &["data-eng"]));
    let request = || {
        FakeHost::at(NOW)
            .with_request("GET", "airflow.internal", "/api/v1/dags")
            .with_header("authorization", &bearer)
    };
    let (mut first, mut second) = (request(), request());
    assert_eq!(f.on_request_headers(&mut first, 2), Next::Continue);
    assert_eq!(f.on_request_headers(&mut second, 3), Next::Continue);
    assert_eq!(first.counter("meshgate.token_cache.miss"), 1);
    assert_eq!(second.counter("meshgate.token_cache.hit"), 1);
    assert_eq!(second.header("x-meshgate-subject"), Some("alice"));
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
    assert_eq!(f.on_request_headers(&mut host, 1), Next::Continue);
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
        assert_eq!(f.on_request_headers(&mut host, 1), Next::Stop, "{name}");
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
    assert_eq!(f.on_request_headers(&mut host, 1), Next::Continue);
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

/// Shadow mode and shadow rules are counted apart, once each per request: a request in
/// shadow mode that a shadow rule would deny by name counts once under each meaning.
#[test]
fn shadow_mode_and_shadow_rules_have_a_counter_each() {
    let keys = keys();
    let mut cfg = config(keys.public_jwk.clone(), json!({}));
    cfg["rules"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "no-finance", "action": "deny", "mode": "shadow", "when": {"groups_any": ["finance"]}}));
    let ask = |mode: &str, groups: &[&str]| {
        let mut cfg = cfg.clone();
        cfg["mode"] = json!(mode);
        let mut f = filter(cfg);
        let mut host = FakeHost::at(NOW)
            .with_request("GET", "a", "/api/v1/dags")
            .with_header("authorization", &format!("Bearer {}", alice(&keys, groups)));
        assert_eq!(f.on_request_headers(&mut host, 1), Next::Continue);
        [
            "meshgate.shadow.would_deny",
            "meshgate.shadow_rule.would_deny",
            "meshgate.shadow_rule.would_allow",
        ]
        .map(|name| host.counter(name))
    };
    // In shadow mode, denied (no rule matched); the shadow rule would deny by name.
    assert_eq!(ask("shadow", &["finance"]), [1, 1, 0]);
    // Enforced and allowed; the shadow rule would deny.
    assert_eq!(ask("enforce", &["data-eng", "finance"]), [0, 1, 0]);
    // In shadow mode, denied; no shadow rule weighs in.
    assert_eq!(ask("shadow", &["ops"]), [1, 0, 0]);
}

#[test]
fn remote_jwks_is_fetched_kept_and_retried() {
    let keys = keys();
    let mut cfg = config(Value::Null, json!({}));
    cfg["providers"]["idp"]
        .as_object_mut()
        .unwrap()
        .remove("local_jwks");
    // `off`: this test is about the scheduled fetch; a token's own refetch is tested below.
    cfg["providers"]["idp"]["remote_jwks"] = json!({"cluster": "idp_cluster", "uri": "http://idp.test:8080/keys?v=1", "cache_duration_s": 60, "refetch_on_unknown_kid": "off"});
    let mut f = filter(cfg);
    let request = |f: &mut Filter, now: i64| {
        let mut host = FakeHost::at(now)
            .with_request("GET", "a", "/api/v1/dags")
            .with_header(
                "authorization",
                &format!("Bearer {}", alice(&keys, &["data-eng"])),
            );
        f.on_request_headers(&mut host, 1);
        host.reply.map_or(200, |r| r.status)
    };

    // Before the first fetch: fail closed.
    assert_eq!(request(&mut f, NOW), 401);

    let mut host = FakeHost::at(NOW);
    f.on_tick(&mut host);
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
    f.on_tick(&mut host);
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
    f.on_tick(&mut host);
    assert_eq!(host.dispatched.len(), 1);
    host.now_ms += 2_000;
    f.on_tick(&mut host);
    assert_eq!(host.dispatched.len(), 2);

    // Failed and garbage refreshes keep the good keys and back off.
    let token = host.dispatched[1].token;
    assert!(f
        .jwks
        .on_response(&mut host, &mut f.keys, token, Some(503), Some(b"down")));
    assert_eq!(host.counter("meshgate.jwks.fetch_failed"), 1);
    assert_eq!(request(&mut f, NOW + 61), 200);
    f.on_tick(&mut host);
    assert_eq!(host.dispatched.len(), 2, "retry waits for the backoff");
    host.now_ms += 1_000;
    f.on_tick(&mut host);
    assert_eq!(host.dispatched.len(), 3);
    let token = host.dispatched[2].token;
    assert!(f.jwks.on_response(
        &mut host,
        &mut f.keys,
        token,
        Some(200),
        Some(br#"{"keys": [1]}"#)
    ));
    assert_eq!(host.counter("meshgate.jwks.fetch_failed"), 2);
    assert_eq!(request(&mut f, NOW + 62), 200);
    assert!(host.logged("keeping the current keys"));

    // An empty set is no failure, and doesn't replace the keys either.
    host.now_ms += 2_000;
    f.on_tick(&mut host);
    let token = host.dispatched.last().unwrap().token;
    assert!(f.jwks.on_response(
        &mut host,
        &mut f.keys,
        token,
        Some(200),
        Some(br#"{"keys": []}"#)
    ));
    assert_eq!(host.counter("meshgate.jwks.fetch_failed"), 2);
    assert_eq!(host.counter("meshgate.jwks.empty"), 1);
    assert_eq!(request(&mut f, NOW + 64), 200);

    // A dispatch the host refuses is a failure, and is retried.
    host.fail_dispatch = true;
    host.now_ms += 70_000;
    f.on_tick(&mut host);
    assert_eq!(host.counter("meshgate.jwks.fetch_failed"), 3);
}

#[test]
fn public_route_needs_no_token_and_strips_spoofing() {
    let keys = keys();
    let mut f = filter(config(keys.public_jwk.clone(), json!({})));
    let mut host = FakeHost::at(NOW)
        .with_request("GET", "a", "/health")
        .with_header("x-meshgate-subject", "root");
    assert_eq!(f.on_request_headers(&mut host, 1), Next::Continue);
    assert_eq!(host.header("x-meshgate-subject"), None);
    assert_eq!(host.counter("meshgate.allowed"), 1);
}

fn remote_config(mode: &str) -> Value {
    let mut cfg = config(Value::Null, json!({}));
    cfg["providers"]["idp"]
        .as_object_mut()
        .unwrap()
        .remove("local_jwks");
    cfg["providers"]["idp"]["remote_jwks"] = json!({
        "cluster": "idp", "uri": "http://idp.test/keys", "cache_duration_s": 300,
        "timeout_ms": 2000, "refetch_on_unknown_kid": mode, "refetch_min_interval_s": 30
    });
    cfg
}

fn jwks_of(keys: &[&Keys]) -> String {
    json!({"keys": keys.iter().map(|k| k.public_jwk.clone()).collect::<Vec<_>>()}).to_string()
}

fn request_headers(token: &str) -> Vec<(String, String)> {
    vec![
        (":method".into(), "GET".into()),
        (":authority".into(), "a".into()),
        (":path".into(), "/api/v1/dags".into()),
        ("authorization".into(), format!("Bearer {token}")),
    ]
}

/// A worker whose remote keys hold `initial`, loaded through its first fetch.
fn loaded_worker(
    mode: &str,
    initial: &[&Keys],
    shared: &crate::fake::SharedData,
) -> (Filter, FakeHost) {
    let mut f = filter(remote_config(mode));
    let mut host = FakeHost::at(NOW).sharing(shared);
    f.on_tick(&mut host);
    let token = host.dispatched.last().unwrap().token;
    f.on_http_call_response(
        &mut host,
        token,
        &resp(Some(200), Some(jwks_of(initial).as_bytes())),
    );
    assert_eq!(host.counter("meshgate.jwks.fetch_ok"), 1);
    (f, host)
}

#[test]
fn unknown_kid_waits_for_one_refetch_and_all_waiters_pass() {
    let (old, new) = (keys_with_kid("old"), keys_with_kid("new"));
    let shared = crate::fake::SharedData::default();
    let (mut f, mut host) = loaded_worker("wait", &[&old], &shared);

    // Two requests with the rotated-in key: both wait, one fetch goes out.
    let token = alice(&new, &["data-eng"]);
    host.new_request(10, request_headers(&token));
    assert_eq!(f.on_request_headers(&mut host, 10), Next::Pause);
    host.new_request(11, request_headers(&token));
    assert_eq!(f.on_request_headers(&mut host, 11), Next::Pause);
    assert_eq!(host.dispatched.len(), 2, "one refetch for both requests");
    assert_eq!(f.waiting(), 2);
    assert_eq!(host.counter("meshgate.jwks.refetch_unknown_kid"), 1);

    // The IdP now publishes both keys: both requests go through, with identity.
    let refetch = host.dispatched[1].token;
    f.on_http_call_response(
        &mut host,
        refetch,
        &resp(Some(200), Some(jwks_of(&[&old, &new]).as_bytes())),
    );
    assert_eq!(f.waiting(), 0);
    for id in [10, 11] {
        let req = host.request(id);
        assert!(req.resumed, "request {id} not resumed");
        assert_eq!(req.reply, None);
        assert!(req
            .headers
            .iter()
            .any(|(k, v)| k == "x-meshgate-subject" && v == "alice"));
    }
    assert_eq!(host.counter("meshgate.denied"), 0);
}

#[test]
fn a_kid_still_unknown_after_the_refetch_is_denied_and_rate_limited() {
    let (old, rogue) = (keys_with_kid("old"), keys_with_kid("rogue"));
    let shared = crate::fake::SharedData::default();
    let (mut f, mut host) = loaded_worker("wait", &[&old], &shared);
    let token = alice(&rogue, &["data-eng"]);
    host.new_request(10, request_headers(&token));
    assert_eq!(f.on_request_headers(&mut host, 10), Next::Pause);
    let refetch = host.dispatched[1].token;
    f.on_http_call_response(
        &mut host,
        refetch,
        &resp(Some(200), Some(jwks_of(&[&old]).as_bytes())),
    );
    let req = host.request(10);
    assert_eq!(req.reply.as_ref().map(|r| r.status), Some(401));
    assert!(req.reply.unwrap().body.contains("key_unknown"));

    // Within refetch_min_interval_s, unknown kids are denied at once: no fetch storm.
    host.now_ms += 5_000;
    for id in 20..30 {
        host.new_request(id, request_headers(&token));
        assert_eq!(f.on_request_headers(&mut host, id), Next::Stop);
    }
    assert_eq!(host.dispatched.len(), 2);
    assert_eq!(host.counter("meshgate.jwks.refetch_unknown_kid"), 1);
    // After the interval, one more refetch is allowed.
    host.now_ms += 30_000;
    host.new_request(40, request_headers(&token));
    assert_eq!(f.on_request_headers(&mut host, 40), Next::Pause);
    assert_eq!(host.dispatched.len(), 3);
}

/// The bug this pins: after one unknown-`kid` refetch, further unknown `kid`s within the
/// fetch's timeout were held until their deadline although the refetch had already answered.
#[test]
fn once_the_refetch_has_answered_unknown_kids_are_denied_at_once() {
    for answer in [Some(200), Some(503), None] {
        let (old, rogue, other) = (
            keys_with_kid("old"),
            keys_with_kid("rogue"),
            keys_with_kid("other"),
        );
        let shared = crate::fake::SharedData::default();
        let (mut w1, mut h1) = loaded_worker("wait", &[&old], &shared);
        // Worker 2 takes the keys worker 1 published.
        let mut w2 = filter(remote_config("wait"));
        let mut h2 = FakeHost::at(NOW).sharing(&shared);
        w2.on_tick(&mut h2);

        h1.new_request(10, request_headers(&alice(&rogue, &["data-eng"])));
        assert_eq!(w1.on_request_headers(&mut h1, 10), Next::Pause);
        // Worker 2 meanwhile: the refetch is under way, so it waits for it.
        h2.new_request(20, request_headers(&alice(&other, &["data-eng"])));
        assert_eq!(
            w2.on_request_headers(&mut h2, 20),
            Next::Pause,
            "{answer:?}"
        );

        let refetch = h1.dispatched.last().unwrap().token;
        let jwks = jwks_of(&[&old]);
        match answer {
            Some(status) => w1.on_http_call_response(
                &mut h1,
                refetch,
                &resp(Some(status), Some(jwks.as_bytes())),
            ),
            None => {
                // No answer: the deadline (timeout_ms 2000 + 1 s) ends it.
                h1.now_ms += 3_000;
                h2.now_ms += 3_000;
                w1.on_tick(&mut h1);
            }
        }
        assert_eq!(h1.request(10).reply.map(|r| r.status), Some(401));

        // Still within the time a refetch may take, and within the rate limit: another
        // unknown kid is denied at once, in either worker, and nothing is fetched.
        h1.now_ms += 100;
        h2.now_ms += 100;
        for (worker, host, id) in [(&mut w1, &mut h1, 11), (&mut w2, &mut h2, 21)] {
            host.new_request(id, request_headers(&alice(&other, &["data-eng"])));
            assert_eq!(
                worker.on_request_headers(host, id),
                Next::Stop,
                "{answer:?}: request {id} held although the refetch is over"
            );
            let reply = host.request(id).reply.unwrap();
            assert!(reply.body.contains("key_unknown"), "{}", reply.body);
        }
        assert_eq!(h1.dispatched.len() + h2.dispatched.len(), 2, "{answer:?}");
        assert_eq!(h1.counter("meshgate.jwks.refetch_unknown_kid"), 1);
        // Worker 2's earlier waiter is answered on its next tick at the latest.
        h2.now_ms += 3_000;
        w2.on_tick(&mut h2);
        assert_eq!(h2.request(20).reply.map(|r| r.status), Some(401));
    }
}

/// A token for a provider whose keys never loaded (a Backstage auth backend publishes an
/// empty JWKS until its first sign-in) fetches them at once, like an unknown `kid`, instead
/// of waiting out the retry backoff.
#[test]
fn a_token_before_any_keys_fetches_them_and_waits() {
    let keys = keys_with_kid("k1");
    let mut f = filter(remote_config("wait"));
    let mut host = FakeHost::at(NOW);
    f.on_tick(&mut host);
    let first = host.dispatched[0].token;
    f.on_http_call_response(&mut host, first, &resp(Some(200), Some(b"{\"keys\": []}")));
    // An empty key set is no outage: counted apart, not as a failed fetch.
    assert_eq!(host.counter("meshgate.jwks.fetch_failed"), 0);
    assert_eq!(host.counter("meshgate.jwks.empty"), 1);

    host.new_request(10, request_headers(&alice(&keys, &["data-eng"])));
    assert_eq!(f.on_request_headers(&mut host, 10), Next::Pause);
    assert_eq!(host.dispatched.len(), 2, "no fetch for the waiting request");
    let refetch = host.dispatched[1].token;
    f.on_http_call_response(
        &mut host,
        refetch,
        &resp(Some(200), Some(jwks_of(&[&keys]).as_bytes())),
    );
    let req = host.request(10);
    assert!(req.resumed && req.reply.is_none(), "{:?}", req.reply);

    // With `off`, the same request fails closed without a fetch (no keys ever answered).
    let mut f = filter(remote_config("off"));
    let mut host = FakeHost::at(NOW);
    host.new_request(10, request_headers(&alice(&keys, &["data-eng"])));
    assert_eq!(f.on_request_headers(&mut host, 10), Next::Stop);
    assert!(host
        .request(10)
        .reply
        .unwrap()
        .body
        .contains("jwks_unavailable"));
    assert!(host.dispatched.is_empty());
}

#[test]
fn workers_share_one_fetch_and_waiters_elsewhere_wake_on_tick() {
    let (old, new) = (keys_with_kid("old"), keys_with_kid("new"));
    let shared = crate::fake::SharedData::default();
    let (mut w1, mut h1) = loaded_worker("wait", &[&old], &shared);

    // Worker 2 starts later: it takes worker 1's published keys, without fetching.
    let mut w2 = filter(remote_config("wait"));
    let mut h2 = FakeHost::at(NOW).sharing(&shared);
    w2.on_tick(&mut h2);
    assert_eq!(
        h2.dispatched.len(),
        0,
        "worker 2 fetched although keys were published"
    );
    h2.new_request(5, request_headers(&alice(&old, &["data-eng"])));
    assert_eq!(w2.on_request_headers(&mut h2, 5), Next::Continue);

    // A rotated key seen first on worker 1 triggers the refetch there; a request on worker 2
    // meanwhile waits for it instead of being denied by the rate limit.
    let token = alice(&new, &["data-eng"]);
    h1.new_request(10, request_headers(&token));
    assert_eq!(w1.on_request_headers(&mut h1, 10), Next::Pause);
    h2.new_request(6, request_headers(&token));
    assert_eq!(w2.on_request_headers(&mut h2, 6), Next::Pause);
    assert_eq!(h2.dispatched.len(), 0);

    let refetch = h1.dispatched.last().unwrap().token;
    w1.on_http_call_response(
        &mut h1,
        refetch,
        &resp(Some(200), Some(jwks_of(&[&old, &new]).as_bytes())),
    );
    assert!(h1.request(10).resumed);
    // Worker 2 picks the new keys up on its next tick and lets its waiter through.
    h2.now_ms += 500;
    w2.on_tick(&mut h2);
    assert!(h2.request(6).resumed, "worker 2's waiter not resumed");
    assert_eq!(h2.dispatched.len(), 0);

    // When the refresh is due, only one worker fetches.
    h1.now_ms += 301_000;
    h2.now_ms += 301_000;
    w1.on_tick(&mut h1);
    w2.on_tick(&mut h2);
    assert_eq!(
        h1.dispatched.len() + h2.dispatched.len(),
        3,
        "both workers fetched"
    );
}

#[test]
fn a_worker_that_has_not_ticked_yet_uses_keys_another_worker_published() {
    let old = keys_with_kid("old");
    let shared = crate::fake::SharedData::default();
    let _worker1 = loaded_worker("off", &[&old], &shared);

    // Worker 2's first tick hasn't come yet: its first request must not be denied with
    // `jwks_unavailable` while worker 1's keys sit in shared data.
    let mut w2 = filter(remote_config("off"));
    let mut h2 = FakeHost::at(NOW).sharing(&shared);
    h2.new_request(5, request_headers(&alice(&old, &["data-eng"])));
    assert_eq!(w2.on_request_headers(&mut h2, 5), Next::Continue);
    assert_eq!(h2.request(5).reply, None);
    assert_eq!(
        h2.dispatched.len(),
        0,
        "worker 2 fetched on the request path"
    );

    // With nothing published anywhere, the same request on a fresh worker fails closed.
    let mut lonely = filter(remote_config("off"));
    let mut h3 = FakeHost::at(NOW);
    h3.new_request(7, request_headers(&alice(&old, &["data-eng"])));
    assert_eq!(lonely.on_request_headers(&mut h3, 7), Next::Stop);
    assert!(h3
        .request(7)
        .reply
        .unwrap()
        .body
        .contains("jwks_unavailable"));
}

#[test]
fn waiters_are_denied_when_the_refetch_never_answers() {
    let (old, new) = (keys_with_kid("old"), keys_with_kid("new"));
    let shared = crate::fake::SharedData::default();
    let (mut f, mut host) = loaded_worker("wait", &[&old], &shared);
    host.new_request(10, request_headers(&alice(&new, &["data-eng"])));
    assert_eq!(f.on_request_headers(&mut host, 10), Next::Pause);
    host.now_ms += 3_100; // timeout_ms 2000 + 1 s grace
    f.on_tick(&mut host);
    assert_eq!(f.waiting(), 0);
    assert_eq!(host.request(10).reply.map(|r| r.status), Some(401));
    assert!(host.counter("meshgate.jwks.fetch_failed") >= 1);
}

#[test]
fn background_and_off_modes_deny_at_once() {
    let (old, new) = (keys_with_kid("old"), keys_with_kid("new"));
    for (mode, fetches) in [("background", 2), ("off", 1)] {
        let shared = crate::fake::SharedData::default();
        let (mut f, mut host) = loaded_worker(mode, &[&old], &shared);
        host.new_request(10, request_headers(&alice(&new, &["data-eng"])));
        assert_eq!(f.on_request_headers(&mut host, 10), Next::Stop, "{mode}");
        f.on_tick(&mut host);
        assert_eq!(host.dispatched.len(), fetches, "{mode}");
    }
}

#[test]
fn fail_open_route_passes_without_identity_and_is_counted() {
    let keys = keys();
    let mut cfg = remote_config("wait");
    cfg["rules"][1]["failure_mode"] = json!("open");
    let mut f = filter(cfg);
    let mut host = FakeHost::at(NOW)
        .with_request("GET", "a", "/api/v1/dags")
        .with_header(
            "authorization",
            &format!("Bearer {}", alice(&keys, &["data-eng"])),
        )
        .with_header("x-meshgate-subject", "root");
    assert_eq!(f.on_request_headers(&mut host, 1), Next::Continue);
    assert_eq!(host.header("x-meshgate-subject"), None);
    assert_eq!(host.counter("meshgate.fail_open"), 1);
    assert!(host.logged("\"code\":\"fail_open\""));
}

/// The filter decides once per request, and again only when keys the decision lacked
/// arrive (loaded from another worker, or fetched while the request waits). Core names the
/// provider whose keys are missing; the filter no longer reads deny codes and provider
/// names to guess it.
#[test]
fn a_request_is_decided_once_plus_once_per_key_arrival() {
    let (old, new, rogue) = (
        keys_with_kid("old"),
        keys_with_kid("new"),
        keys_with_kid("rogue"),
    );
    let shared = crate::fake::SharedData::default();
    let (mut w1, mut h1) = loaded_worker("wait", &[&old], &shared);

    // Keys at hand: one decision.
    let before = w1.decisions();
    h1.new_request(10, request_headers(&alice(&old, &["data-eng"])));
    assert_eq!(w1.on_request_headers(&mut h1, 10), Next::Continue);
    assert_eq!(w1.decisions() - before, 1);

    // Worker 2 has not ticked. Its first decision lacks keys; worker 1's published ones
    // arrive (second decision) but miss the token's key, so a refetch goes out and the
    // request waits; the answer brings the key (third decision).
    let mut w2 = filter(remote_config("wait"));
    let mut h2 = FakeHost::at(NOW).sharing(&shared);
    h2.new_request(20, request_headers(&alice(&new, &["data-eng"])));
    assert_eq!(w2.on_request_headers(&mut h2, 20), Next::Pause);
    assert_eq!(w2.decisions(), 2);
    let refetch = h2.dispatched.last().unwrap().token;
    w2.on_http_call_response(
        &mut h2,
        refetch,
        &resp(Some(200), Some(jwks_of(&[&old, &new]).as_bytes())),
    );
    assert!(h2.request(20).resumed);
    assert_eq!(w2.decisions(), 3);

    // A key still unknown within the refetch rate limit: denied on its one decision.
    h2.new_request(21, request_headers(&alice(&rogue, &["data-eng"])));
    assert_eq!(w2.on_request_headers(&mut h2, 21), Next::Stop);
    assert_eq!(w2.decisions(), 4);
}

/// A decision that lacked no keys is not made again because keys changed meanwhile: with
/// the catalog snapshot unavailable and `failure_mode: open`, a request is let through on
/// its first decision although another worker published newer keys since this worker's
/// last tick. (This filter used to map the fail-open decision's provider name back to
/// keys to load, and decided again.)
#[test]
fn a_fail_open_for_the_snapshot_is_decided_once() {
    let keys = keys_with_kid("k1");
    let public = meshgate_core::snapshot::SigningKey::from_seed("cp-1", [5; 32])
        .unwrap()
        .trusted_key()
        .to_spec();
    let mut cfg = remote_config("wait");
    cfg["failure_mode"] = json!("open");
    cfg["snapshot"] = json!({
        "cluster": "cp", "uri": "http://cp.test/v1/snapshots/default",
        "public_keys": [{"kid": public.kid, "public_key": public.public_key}]
    });
    let shared = crate::fake::SharedData::default();
    let fetch_keys = |f: &mut Filter, host: &mut FakeHost| {
        f.on_tick(host);
        let fetch = host.dispatched.iter().rev().find(|d| d.cluster == "idp");
        let token = fetch.unwrap().token;
        let body = jwks_of(&[&keys]);
        f.on_http_call_response(host, token, &resp(Some(200), Some(body.as_bytes())));
    };
    let (mut w1, mut h1) = (filter(cfg.clone()), FakeHost::at(NOW).sharing(&shared));
    fetch_keys(&mut w1, &mut h1);
    let (mut w2, mut h2) = (filter(cfg), FakeHost::at(NOW).sharing(&shared));
    w2.on_tick(&mut h2);
    // The refresh falls to worker 1; worker 2 does not tick before its next request.
    h1.now_ms += 301_000;
    h2.now_ms += 301_000;
    fetch_keys(&mut w1, &mut h1);
    assert_eq!(h1.counter("meshgate.jwks.fetch_ok"), 2);

    h2.new_request(5, request_headers(&alice(&keys, &["data-eng"])));
    assert_eq!(w2.on_request_headers(&mut h2, 5), Next::Continue);
    assert_eq!(h2.counter("meshgate.fail_open"), 1);
    assert_eq!(w2.decisions(), 1);
}

#[test]
fn decision_log_sampling_and_filter_state() {
    let keys = keys();
    let bearer = format!("Bearer {}", alice(&keys, &["data-eng"]));
    let run = |log: Value, id: &str, token: Option<&str>| {
        let mut f = filter(config(
            keys.public_jwk.clone(),
            json!({"decision_log": log}),
        ));
        let mut host = FakeHost::at(NOW)
            .with_request("GET", "a", "/api/v1/dags")
            .with_header("x-request-id", id);
        if let Some(t) = token {
            host = host.with_header("authorization", t);
        }
        f.on_request_headers(&mut host, 1);
        host
    };
    // Defaults: every denial, no allow.
    assert!(run(json!({}), "r1", None).logged("meshgate decision"));
    assert!(!run(json!({}), "r1", Some(&bearer)).logged("meshgate decision"));
    // All allows; no denials.
    let all = json!({"allow_sample_rate": 1.0, "deny_sample_rate": 0.0});
    assert!(run(all.clone(), "r1", Some(&bearer)).logged("\"decision\":\"allow\""));
    assert!(!run(all, "r1", None).logged("meshgate decision"));
    // Half of the allows, chosen by request id: the same id always gets the same answer,
    // and over many ids about half are logged.
    let half = json!({"allow_sample_rate": 0.5});
    let logged = (0..400)
        .filter(|i| {
            run(half.clone(), &format!("req-{i}"), Some(&bearer)).logged("meshgate decision")
        })
        .count();
    assert!(
        (120..=280).contains(&logged),
        "{logged} of 400 logged at 0.5"
    );
    let once = run(half.clone(), "req-7", Some(&bearer)).logged("meshgate decision");
    assert_eq!(
        run(half, "req-7", Some(&bearer)).logged("meshgate decision"),
        once
    );
    // Filter state for access logs, whatever the sampling.
    let host = run(
        json!({"filter_state": true, "deny_sample_rate": 0.0}),
        "r9",
        None,
    );
    let state: Value = serde_json::from_str(&host.filter_state["meshgate_decision"]).unwrap();
    assert_eq!(state["code"], "token_missing");
    assert_eq!(state["request_id"], "r9");
    // Bad rates are configuration errors.
    let bad = Policy::from_json(
        json!({"decision_log": {"allow_sample_rate": 2.0}})
            .to_string()
            .as_bytes(),
    )
    .unwrap_err();
    assert_eq!(bad.path, "decision_log.allow_sample_rate");
}

fn resp(status: Option<u16>, body: Option<&[u8]>) -> crate::host::CallResponse<'_> {
    crate::host::CallResponse {
        status,
        body,
        etag: None,
        held: false,
    }
}

mod snapshots {
    //! The catalog snapshot poller: load, 304, refusals, sharing, staleness.

    use meshgate_core::snapshot::{
        encode, encode_delta, DecodeLimits, GroupInput, SigningKey, Snapshot, SnapshotInput,
        UserInput,
    };

    use super::*;
    use crate::fake::SharedData;

    fn signing_key() -> SigningKey {
        SigningKey::from_seed("cp-1", [5; 32]).unwrap()
    }

    /// alice is in `analytics`, nested in `data-eng`.
    fn snapshot(version: u64, alice_groups: &[&str], key: &SigningKey) -> Vec<u8> {
        let input = SnapshotInput {
            users: vec![UserInput {
                entity_ref: "user:default/alice".into(),
                email: None,
                groups: alice_groups.iter().map(|g| (*g).into()).collect(),
            }],
            groups: vec![GroupInput {
                entity_ref: "group:default/analytics".into(),
                ancestors: vec!["group:default/data-eng".into()],
            }],
            ..SnapshotInput::default()
        };
        encode(&input, version, NOW, key).unwrap()
    }

    fn snapshot_config(keys: &Keys, max_staleness_s: Option<u64>) -> Value {
        let public = signing_key().trusted_key().to_spec();
        let mut source = json!({
            "cluster": "cp", "uri": "http://cp.test/v1/snapshots/default",
            "public_keys": [{"kid": public.kid, "public_key": public.public_key}],
            "poll_interval_s": 5
        });
        if let Some(max) = max_staleness_s {
            source["max_staleness_s"] = json!(max);
        }
        let mut cfg = config(keys.public_jwk.clone(), json!({"snapshot": source}));
        cfg["providers"]["idp"]["catalog_user"] = json!({"resolve_by": ["subject"]});
        cfg
    }

    /// Envoy's main-thread VM and one worker, sharing data, both polling `snapshot_config`.
    fn main_vm_and_worker(keys: &Keys) -> (Filter, FakeHost, Filter, FakeHost) {
        let shared = SharedData::default();
        (
            filter(snapshot_config(keys, None)),
            FakeHost::at(NOW).sharing(&shared),
            filter(snapshot_config(keys, None)),
            FakeHost::at(NOW).sharing(&shared),
        )
    }

    /// The headers of a poll that has `etag` and takes a delta.
    fn revalidate(etag: &str) -> Vec<(String, String)> {
        vec![
            ("if-none-match".to_owned(), etag.to_owned()),
            ("a-im".to_owned(), "meshgate-delta".to_owned()),
        ]
    }

    /// alice's token has no groups: only the catalog can let her in.
    fn ask(f: &mut Filter, host: &mut FakeHost, keys: &Keys, id: u32) -> Option<u16> {
        host.new_request(id, request_headers(&alice(keys, &[])));
        f.on_request_headers(host, id);
        host.request(id).reply.map(|r| r.status)
    }

    /// Answers the last poll; `held`: the server says it held it (`Preference-Applied`).
    fn reply(
        f: &mut Filter,
        host: &mut FakeHost,
        status: u16,
        body: &[u8],
        etag: &str,
        held: bool,
    ) {
        let token = host.dispatched.last().unwrap().token;
        let response = crate::host::CallResponse {
            status: Some(status),
            body: Some(body),
            etag: Some(etag),
            held,
        };
        f.on_http_call_response(host, token, &response);
    }

    fn answer(f: &mut Filter, host: &mut FakeHost, status: u16, body: &[u8], etag: &str) {
        reply(f, host, status, body, etag, false);
    }

    #[test]
    fn a_grant_holds_until_not_after_by_the_filters_own_clock() {
        use meshgate_core::snapshot::{encode_indexed, Grant, GrantTarget, Grants};
        use meshgate_core::UnixTime;

        let keys = keys();
        let mut f = filter(snapshot_config(&keys, None));
        let mut host = FakeHost::at(NOW);
        // alice is in no group; a grant gives her `analytics` (and so `data-eng`) for 60 s.
        let mut input = SnapshotInput {
            users: vec![UserInput {
                entity_ref: "user:default/alice".into(),
                email: None,
                groups: Vec::new(),
            }],
            groups: vec![GroupInput {
                entity_ref: "group:default/analytics".into(),
                ancestors: vec!["group:default/data-eng".into()],
            }],
            ..SnapshotInput::default()
        }
        .interned();
        input.grants = Grants::new(vec![Grant {
            id: "g-1".into(),
            user: "user:default/alice".into(),
            target: GrantTarget::Group("group:default/analytics".into()),
            not_after: UnixTime::from_secs(NOW + 60),
        }]);
        let bytes = encode_indexed(&input, 1, NOW, &signing_key()).unwrap();
        f.on_tick(&mut host);
        answer(&mut f, &mut host, 200, &bytes, "\"v1\"");

        assert_eq!(ask(&mut f, &mut host, &keys, 1), None, "granted");
        assert_eq!(host.counter("meshgate.allowed_by_grant"), 1);
        let forwarded = host.request(1).headers;
        let grant = forwarded.iter().find(|(k, _)| k == "x-meshgate-grant");
        assert_eq!(
            grant.map(|(_, v)| v.as_str()),
            Some(format!("g-1;target=group:default/analytics;not_after={}", NOW + 60).as_str())
        );
        assert!(host.logged("\"grant\":{\"id\":\"g-1\""));

        // No poll, no control plane: the grant ends at not_after by the sidecar's clock.
        host.now_ms += 59_000;
        assert_eq!(ask(&mut f, &mut host, &keys, 2), None, "one second left");
        host.now_ms += 1_000;
        assert_eq!(ask(&mut f, &mut host, &keys, 3), Some(403), "expired");
        assert_eq!(host.counter("meshgate.allowed_by_grant"), 2);
    }

    #[test]
    fn snapshots_load_confirm_and_refuse() {
        let keys = keys();
        let shared = SharedData::default();
        let mut f = filter(snapshot_config(&keys, None));
        let mut host = FakeHost::at(NOW).sharing(&shared);

        assert_eq!(
            ask(&mut f, &mut host, &keys, 1),
            Some(503),
            "no snapshot yet: fail closed"
        );
        assert_eq!(host.counter("meshgate.denied.snapshot_unavailable"), 1);

        f.on_tick(&mut host);
        let poll = host.dispatched.last().unwrap().clone();
        assert_eq!(
            (poll.cluster.as_str(), poll.path.as_str()),
            ("cp", "/v1/snapshots/default")
        );
        assert!(poll.headers.is_empty(), "nothing to revalidate yet");
        answer(
            &mut f,
            &mut host,
            200,
            &snapshot(
                1,
                &["group:default/analytics", "group:default/data-eng"],
                &signing_key(),
            ),
            "\"v1\"",
        );
        assert_eq!(host.counter("meshgate.snapshot.loaded"), 1);
        assert_eq!(
            ask(&mut f, &mut host, &keys, 2),
            None,
            "nested group from the catalog"
        );

        // Next poll revalidates; 304 keeps the snapshot.
        host.now_ms += 5_000;
        f.on_tick(&mut host);
        let poll = host.dispatched.last().unwrap().clone();
        assert_eq!(poll.headers, revalidate("\"v1\""));
        answer(&mut f, &mut host, 304, b"", "\"v1\"");
        assert_eq!(host.counter("meshgate.snapshot.not_modified"), 1);

        // Refused, the old one kept: wrong key, tampered, older, garbage.
        let other = SigningKey::from_seed("cp-1", [6; 32]).unwrap();
        let mut tampered = snapshot(3, &[], &signing_key());
        let last = tampered.len() - 70;
        tampered[last] ^= 1;
        let refusals: [(&str, Vec<u8>); 4] = [
            ("signed by another key", snapshot(2, &[], &other)),
            ("tampered", tampered),
            ("garbage", b"<html>bad gateway</html>".to_vec()),
            ("not newer", snapshot(1, &[], &signing_key())),
        ];
        for (i, (name, body)) in refusals.iter().enumerate() {
            host.now_ms += 5_000;
            f.on_tick(&mut host);
            answer(&mut f, &mut host, 200, body, "\"x\"");
            assert_eq!(
                host.counter("meshgate.snapshot.rejected"),
                i as u64 + 1,
                "{name}"
            );
            assert_eq!(
                ask(&mut f, &mut host, &keys, 10 + i as u32),
                None,
                "{name}: last good kept"
            );
        }

        // A newer snapshot without alice's group takes effect.
        host.now_ms += 5_000;
        f.on_tick(&mut host);
        answer(
            &mut f,
            &mut host,
            200,
            &snapshot(2, &[], &signing_key()),
            "\"v2\"",
        );
        assert_eq!(ask(&mut f, &mut host, &keys, 20), Some(403));

        // Another worker takes the published snapshot on its first request, without polling.
        let mut w2 = filter(snapshot_config(&keys, None));
        let mut h2 = FakeHost::at(NOW).sharing(&shared);
        assert_eq!(ask(&mut w2, &mut h2, &keys, 1), Some(403));
        assert_eq!(h2.counter("meshgate.denied.snapshot_unavailable"), 0);
        assert!(h2.dispatched.is_empty());
    }

    /// The flake this fixes: one worker denied a user removed from a group while the next
    /// one, whose tick had not come, still let them in.
    #[test]
    fn every_worker_switches_on_its_next_request_not_its_next_tick() {
        let keys = keys();
        let shared = SharedData::default();
        let (mut w1, mut w2) = (
            filter(snapshot_config(&keys, None)),
            filter(snapshot_config(&keys, None)),
        );
        let mut h1 = FakeHost::at(NOW).sharing(&shared);
        let mut h2 = FakeHost::at(NOW).sharing(&shared);
        w1.on_tick(&mut h1);
        let in_group = snapshot(1, &["group:default/data-eng"], &signing_key());
        answer(&mut w1, &mut h1, 200, &in_group, "\"v1\"");
        assert_eq!(ask(&mut w2, &mut h2, &keys, 1), None, "w2 follows v1");

        // w1 polls again and loads v2, in which alice left the group; w2 has no tick in between.
        h1.now_ms += 5_000;
        w1.on_tick(&mut h1);
        answer(
            &mut w1,
            &mut h1,
            200,
            &snapshot(2, &[], &signing_key()),
            "\"v2\"",
        );
        assert_eq!(ask(&mut w1, &mut h1, &keys, 2), Some(403));
        assert_eq!(
            ask(&mut w2, &mut h2, &keys, 2),
            Some(403),
            "w2 switched too"
        );
        assert_eq!(h2.counter("meshgate.snapshot.loaded"), 2);

        // Nothing new: later requests don't load again.
        assert_eq!(ask(&mut w2, &mut h2, &keys, 3), Some(403));
        assert_eq!(h2.counter("meshgate.snapshot.loaded"), 2);
        assert!(h2.dispatched.is_empty(), "w2 never polled");
    }

    /// Envoy's main-thread VM ticks (and may win the fetch lease) but serves no request: it
    /// publishes for the workers and keeps no copy.
    #[test]
    fn a_vm_that_serves_no_request_fetches_for_the_others_and_keeps_no_copy() {
        let keys = keys();
        let shared = SharedData::default();
        let mut main_vm = filter(snapshot_config(&keys, None));
        let mut hm = FakeHost::at(NOW).sharing(&shared);
        main_vm.on_tick(&mut hm);
        let v1 = snapshot(1, &["group:default/data-eng"], &signing_key());
        answer(&mut main_vm, &mut hm, 200, &v1, "\"v1\"");
        assert_eq!(hm.counter("meshgate.snapshot.loaded"), 1);
        assert!(!main_vm.snapshot.as_ref().unwrap().has_catalog());

        // It still revalidates what it published, and takes a 304 as a confirmation.
        hm.now_ms += 5_000;
        main_vm.on_tick(&mut hm);
        let poll = hm.dispatched.last().unwrap().clone();
        assert_eq!(poll.headers, revalidate("\"v1\""));
        answer(&mut main_vm, &mut hm, 304, b"", "\"v1\"");
        assert_eq!(hm.counter("meshgate.snapshot.not_modified"), 1);
        // The same content again is a confirmation, not a reload.
        hm.now_ms += 5_000;
        main_vm.on_tick(&mut hm);
        answer(&mut main_vm, &mut hm, 200, &v1, "\"v1\"");
        assert_eq!(hm.counter("meshgate.snapshot.loaded"), 1);

        let mut worker = filter(snapshot_config(&keys, None));
        let mut hw = FakeHost::at(NOW).sharing(&shared);
        assert_eq!(
            ask(&mut worker, &mut hw, &keys, 1),
            None,
            "the worker loads it"
        );
        assert!(worker.snapshot.as_ref().unwrap().has_catalog());
    }

    fn decoded(bytes: &[u8]) -> Snapshot {
        Snapshot::decode(
            bytes,
            &[signing_key().trusted_key()],
            &DecodeLimits::default(),
        )
        .unwrap()
    }

    /// A small change comes as a signed delta (226); every worker follows it; a delta that
    /// doesn't apply is refused and the whole snapshot is fetched instead.
    #[test]
    fn deltas_apply_and_a_refused_one_falls_back_to_the_whole_snapshot() {
        let keys = keys();
        // The fetcher is the main-thread VM: it applies deltas to the image in shared data.
        let (mut main_vm, mut hm, mut worker, mut hw) = main_vm_and_worker(&keys);
        let v1 = snapshot(1, &["group:default/data-eng"], &signing_key());
        let v2 = snapshot(2, &[], &signing_key());
        let v3 = snapshot(3, &["group:default/analytics"], &signing_key());
        main_vm.on_tick(&mut hm);
        answer(&mut main_vm, &mut hm, 200, &v1, "\"v1\"");
        assert_eq!(ask(&mut worker, &mut hw, &keys, 1), None);

        let delta = encode_delta(&decoded(&v1), &decoded(&v2), &signing_key()).unwrap();
        hm.now_ms += 5_000;
        main_vm.on_tick(&mut hm);
        answer(&mut main_vm, &mut hm, 226, &delta, "\"v2\"");
        assert_eq!(hm.counter("meshgate.snapshot.delta_applied"), 1);
        assert_eq!(
            ask(&mut worker, &mut hw, &keys, 2),
            Some(403),
            "v2 everywhere"
        );

        // A delta from another base (v1 again), then a tampered one: refused, v2 stays, and
        // the next poll asks for the whole snapshot (no a-im).
        let stale_base = encode_delta(&decoded(&v1), &decoded(&v3), &signing_key()).unwrap();
        let mut tampered = encode_delta(&decoded(&v2), &decoded(&v3), &signing_key()).unwrap();
        let middle = tampered.len() / 2;
        tampered[middle] ^= 1;
        for (i, bad) in [stale_base, tampered, b"garbage".to_vec()]
            .iter()
            .enumerate()
        {
            hm.now_ms += 5_000;
            main_vm.on_tick(&mut hm);
            answer(&mut main_vm, &mut hm, 226, bad, "\"v3\"");
            assert_eq!(hm.counter("meshgate.snapshot.delta_rejected"), i as u64 + 1);
            assert_eq!(ask(&mut worker, &mut hw, &keys, 10 + i as u32), Some(403));
            main_vm.on_tick(&mut hm);
            let poll = hm.dispatched.last().unwrap().clone();
            assert_eq!(
                poll.headers,
                [("if-none-match".to_owned(), "\"v2\"".to_owned())],
                "the whole snapshot next, at once"
            );
            answer(&mut main_vm, &mut hm, 304, b"", "\"v2\"");
        }
        hm.now_ms += 5_000;
        main_vm.on_tick(&mut hm);
        answer(&mut main_vm, &mut hm, 200, &v3, "\"v3\"");
        assert_eq!(ask(&mut worker, &mut hw, &keys, 20), None, "v3 everywhere");
        hm.now_ms += 5_000;
        main_vm.on_tick(&mut hm);
        assert_eq!(hm.dispatched.last().unwrap().headers, revalidate("\"v3\""));
    }

    /// The main-thread VM published v1 long ago; a worker fetched v2 since. When the main VM
    /// polls next, it asks for a delta from v2 (what shared data holds), and applies it.
    #[test]
    fn a_vm_that_serves_nothing_polls_from_what_others_published() {
        let keys = keys();
        let (mut main_vm, mut hm, mut worker, mut hw) = main_vm_and_worker(&keys);
        let v1 = snapshot(1, &["group:default/data-eng"], &signing_key());
        let v2 = snapshot(2, &[], &signing_key());
        let v3 = snapshot(3, &["group:default/data-eng"], &signing_key());
        main_vm.on_tick(&mut hm);
        answer(&mut main_vm, &mut hm, 200, &v1, "\"v1\"");
        assert_eq!(ask(&mut worker, &mut hw, &keys, 1), None);
        // The main-thread VM falls silent for longer than three intervals: the worker polls.
        hw.now_ms += 20_000;
        worker.on_tick(&mut hw);
        answer(&mut worker, &mut hw, 200, &v2, "\"v2\"");

        hm.now_ms += 25_000;
        main_vm.on_tick(&mut hm);
        assert_eq!(hm.dispatched.last().unwrap().headers, revalidate("\"v2\""));
        let delta = encode_delta(&decoded(&v2), &decoded(&v3), &signing_key()).unwrap();
        answer(&mut main_vm, &mut hm, 226, &delta, "\"v3\"");
        assert_eq!(hm.counter("meshgate.snapshot.delta_applied"), 1);
        assert_eq!(hm.counter("meshgate.snapshot.delta_rejected"), 0);
        assert_eq!(ask(&mut worker, &mut hw, &keys, 2), None, "v3 everywhere");
    }

    #[test]
    fn workers_leave_polling_to_the_main_thread_vm_while_it_polls() {
        let keys = keys();
        let (mut main_vm, mut hm, mut worker, mut hw) = main_vm_and_worker(&keys);
        let v1 = snapshot(1, &["group:default/data-eng"], &signing_key());
        main_vm.on_tick(&mut hm);
        answer(&mut main_vm, &mut hm, 200, &v1, "\"v1\"");
        assert_eq!(
            ask(&mut worker, &mut hw, &keys, 1),
            None,
            "adopted from shared data"
        );

        for _ in 0..4 {
            hw.now_ms += 5_000;
            worker.on_tick(&mut hw);
            hm.now_ms += 5_000;
            main_vm.on_tick(&mut hm);
            answer(&mut main_vm, &mut hm, 304, b"", "\"v1\"");
        }
        assert!(
            hw.dispatched.is_empty(),
            "the worker left every poll to the main-thread VM"
        );
        assert_eq!(hm.dispatched.len(), 5);

        // The main-thread VM falls silent: three intervals later the worker takes over.
        for _ in 0..3 {
            hw.now_ms += 5_000;
            worker.on_tick(&mut hw);
        }
        assert!(
            hw.dispatched.is_empty(),
            "up to three intervals: still the main thread's"
        );
        hw.now_ms += 5_000;
        worker.on_tick(&mut hw);
        assert_eq!(
            hw.dispatched.len(),
            1,
            "silent for longer: the worker polls"
        );
        assert_eq!(hw.dispatched.last().unwrap().headers, revalidate("\"v1\""));
    }

    /// [`snapshot_config`] asking the control plane to hold polls up to 20 s.
    fn long_poll_config(keys: &Keys) -> Value {
        let mut cfg = snapshot_config(keys, None);
        cfg["snapshot"]["long_poll_s"] = json!(20);
        cfg
    }

    fn held(f: &mut Filter, host: &mut FakeHost, status: u16, body: &[u8], etag: &str) {
        reply(f, host, status, body, etag, true);
    }

    #[test]
    fn a_held_poll_asks_to_wait_and_the_next_leaves_at_once() {
        let keys = keys();
        let mut f = filter(long_poll_config(&keys));
        let mut host = FakeHost::at(NOW);
        f.on_tick(&mut host);
        let first = host.dispatched.last().unwrap().clone();
        assert!(first.headers.is_empty(), "nothing loaded: a plain GET");
        assert_eq!(first.timeout, std::time::Duration::from_millis(5_000));
        let v1 = snapshot(1, &["group:default/data-eng"], &signing_key());
        answer(&mut f, &mut host, 200, &v1, "\"v1\"");

        // Plain polling until the control plane says it held a poll.
        host.now_ms += 5_000;
        f.on_tick(&mut host);
        let poll = host.dispatched.last().unwrap().clone();
        let mut expected = revalidate("\"v1\"");
        expected.push(("prefer".to_owned(), "wait=20".to_owned()));
        assert_eq!(poll.headers, expected);
        assert_eq!(
            poll.timeout,
            std::time::Duration::from_millis(25_000),
            "timeout + wait"
        );
        held(&mut f, &mut host, 304, b"", "\"v1\"");
        host.now_ms += 500;
        f.on_tick(&mut host);
        assert_eq!(
            host.dispatched.len(),
            3,
            "held: the next poll leaves at the next tick"
        );

        // A server that does not hold polls is polled at the interval, never in a loop.
        answer(&mut f, &mut host, 304, b"", "\"v1\"");
        host.now_ms += 500;
        f.on_tick(&mut host);
        assert_eq!(host.dispatched.len(), 3, "not held: wait for the interval");
        host.now_ms += 5_000;
        f.on_tick(&mut host);
        assert_eq!(host.dispatched.len(), 4);
    }

    #[test]
    fn workers_do_not_take_over_while_the_main_thread_vm_is_held() {
        let keys = keys();
        let shared = SharedData::default();
        let (mut main_vm, mut hm) = (
            filter(long_poll_config(&keys)),
            FakeHost::at(NOW).sharing(&shared),
        );
        let (mut worker, mut hw) = (
            filter(long_poll_config(&keys)),
            FakeHost::at(NOW).sharing(&shared),
        );
        let v1 = snapshot(1, &["group:default/data-eng"], &signing_key());
        main_vm.on_tick(&mut hm);
        answer(&mut main_vm, &mut hm, 200, &v1, "\"v1\"");
        assert_eq!(ask(&mut worker, &mut hw, &keys, 1), None, "adopted");
        hm.now_ms += 5_000;
        hw.now_ms += 5_000;
        main_vm.on_tick(&mut hm);
        assert_eq!(hm.dispatched.len(), 2, "the held poll is out");
        // 19 s of a held poll: far more than three intervals, but the main-thread VM ticks.
        for _ in 0..38 {
            hm.now_ms += 500;
            main_vm.on_tick(&mut hm);
            hw.now_ms += 500;
            worker.on_tick(&mut hw);
        }
        assert!(
            hw.dispatched.is_empty(),
            "the worker left the held poll alone"
        );
        assert_eq!(hm.dispatched.len(), 2, "one poll held, not a second");
        // The held poll ends (releasing the lease); the worker happens to tick first.
        hm.now_ms += 1_000;
        held(&mut main_vm, &mut hm, 304, b"", "\"v1\"");
        hw.now_ms += 2_000;
        worker.on_tick(&mut hw);
        assert!(
            hw.dispatched.is_empty(),
            "the main-thread VM was polling all along"
        );
        main_vm.on_tick(&mut hm);
        assert_eq!(hm.dispatched.len(), 3, "and polls again at once");
    }

    #[test]
    fn a_snapshot_unconfirmed_beyond_max_staleness_fails_closed() {
        let keys = keys();
        let mut f = filter(snapshot_config(&keys, Some(30)));
        let mut host = FakeHost::at(NOW);
        f.on_tick(&mut host);
        answer(
            &mut f,
            &mut host,
            200,
            &snapshot(1, &["group:default/data-eng"], &signing_key()),
            "\"v1\"",
        );
        assert_eq!(ask(&mut f, &mut host, &keys, 1), None);
        // The control plane goes away: polls fail, the snapshot serves until it is too old.
        for _ in 0..5 {
            host.now_ms += 5_000;
            f.on_tick(&mut host);
            let token = host.dispatched.last().unwrap().token;
            f.on_http_call_response(&mut host, token, &resp(Some(503), None));
        }
        assert_eq!(
            ask(&mut f, &mut host, &keys, 2),
            None,
            "25 s old: still good"
        );
        assert!(host.counter("meshgate.snapshot.fetch_failed") >= 5);
        host.now_ms += 10_000;
        assert_eq!(
            ask(&mut f, &mut host, &keys, 3),
            Some(503),
            "40 s old: too stale"
        );
    }
}

/// Every skipped key is logged with its `kid` and reason and counted once per document:
/// not again when a refresh brings the same document, nor in workers that load it from
/// shared data; again when the document changes.
#[test]
fn skipped_keys_are_logged_and_counted_once_per_document() {
    let good = keys_with_kid("good");
    let document = json!({"keys": [
        good.public_jwk.clone(),
        {"kty": "EC", "crv": "P-192", "kid": "old-curve", "x": "AA", "y": "AA"},
        {"kty": "RSA", "kid": "garbage", "n": "!!", "e": "AQAB"}
    ]})
    .to_string();
    let shared = crate::fake::SharedData::default();
    let mut f = filter(remote_config("wait"));
    let mut host = FakeHost::at(NOW).sharing(&shared);
    let fetch = |f: &mut Filter, host: &mut FakeHost, body: &str| {
        f.on_tick(host);
        let token = host.dispatched.last().unwrap().token;
        f.on_http_call_response(host, token, &resp(Some(200), Some(body.as_bytes())));
    };
    fetch(&mut f, &mut host, &document);
    assert_eq!(host.counter("meshgate.jwks.key_skipped"), 2);
    assert!(
        host.logged("skipped key `old-curve`: key type `EC` with curve `P-192` is not supported")
    );
    assert!(host.logged("skipped key `garbage`"));

    // The same document again at the next refresh: nothing new to say.
    host.now_ms += 301_000;
    fetch(&mut f, &mut host, &document);
    assert_eq!(host.counter("meshgate.jwks.fetch_ok"), 2);
    assert_eq!(host.counter("meshgate.jwks.key_skipped"), 2);

    // Another worker takes the published set silently.
    let mut w2 = filter(remote_config("wait"));
    let mut h2 = FakeHost::at(NOW).sharing(&shared);
    w2.on_tick(&mut h2);
    assert!(h2.dispatched.is_empty());
    assert_eq!(h2.counter("meshgate.jwks.key_skipped"), 0);

    // A changed document is reported.
    let changed = document.replace("garbage", "garbage-2");
    host.now_ms += 301_000;
    fetch(&mut f, &mut host, &changed);
    assert_eq!(host.counter("meshgate.jwks.key_skipped"), 4);
}

/// An empty key set is logged once at info, counted in `meshgate.jwks.empty`, and not as
/// a failure; once keys arrive, a later empty set is logged again.
#[test]
fn an_empty_key_set_is_logged_once_and_counted_apart() {
    let keys = keys_with_kid("k1");
    let mut f = filter(remote_config("wait"));
    let mut host = FakeHost::at(NOW);
    let answer = |f: &mut Filter, host: &mut FakeHost, body: &[u8]| {
        f.on_tick(host);
        let token = host.dispatched.last().unwrap().token;
        f.on_http_call_response(host, token, &resp(Some(200), Some(body)));
        host.now_ms += 301_000;
    };
    let empty_logs = |host: &FakeHost| {
        host.logs
            .borrow()
            .iter()
            .filter(|(level, line)| {
                *level == crate::host::LogLevel::Info && line.contains("has no keys yet")
            })
            .count()
    };
    answer(&mut f, &mut host, br#"{"keys": []}"#);
    let after_first = host.dispatched.len();
    answer(&mut f, &mut host, br#"{"keys": []}"#);
    assert_eq!(
        host.dispatched.len(),
        after_first + 1,
        "refreshed on the usual schedule"
    );
    assert_eq!(host.counter("meshgate.jwks.empty"), 2);
    assert_eq!(host.counter("meshgate.jwks.fetch_failed"), 0);
    assert_eq!(empty_logs(&host), 1);
    answer(&mut f, &mut host, jwks_of(&[&keys]).as_bytes());
    answer(&mut f, &mut host, br#"{"keys": []}"#);
    assert_eq!(empty_logs(&host), 2);
    assert_eq!(host.counter("meshgate.jwks.fetch_failed"), 0);
}

/// Keys a configured key set skips are logged with kid and reason, and counted.
#[test]
fn skipped_local_keys_are_reported_at_configure() {
    let keys = keys();
    let mut cfg = config(keys.public_jwk.clone(), json!({}));
    cfg["providers"]["idp"]["local_jwks"]["inline"]["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "RSA", "kid": "enc-key", "use": "enc", "n": "AQAB", "e": "AQAB"}));
    let policy = Policy::from_json(cfg.to_string().as_bytes()).unwrap();
    let mut host = FakeHost::at(NOW);
    crate::jwks_refresh::report_local_skips(&mut host, &policy);
    assert_eq!(host.counter("meshgate.jwks.key_skipped"), 1);
    assert!(host.logged("provider `idp`: skipped key `enc-key`: `use` is `enc`, not `sig`"));
}

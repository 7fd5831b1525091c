//! Fixtures shared by the fuzz targets and the seed generator (`examples/gen_seeds.rs`):
//! the RFC example keys, a token signer, and the fixed policies of the `authorize` target.
//!
//! Everything here is test data. The keys and the signer are `meshgate-test-support`'s (the
//! published examples of RFC 7515 and RFC 8037 in `testdata/keys/`, shared by every test
//! runner); the public halves are what the targets verify against.

use std::sync::LazyLock;

pub use meshgate_test_support::keys::{
    ec_private, ed25519_private, hs_jwk, hs_secret, other_rsa_public, public_jwk, rsa_private,
};
pub use meshgate_test_support::sign::b64;
use serde_json::{json, Value};

/// The fixed clock of every target (2023-11-14T22:13:20Z). Tokens carry times relative to
/// it, so they never expire and runs are reproducible.
pub const NOW: i64 = 1_700_000_000;

/// The signing key called `name` in fixtures: `rsa`, `ec`, `ed` or `hs`.
pub fn private_key(name: &str) -> Value {
    meshgate_test_support::keys::private_key(name).expect("a fixture key")
}

/// The JWKS of the `token` target: every key type, some pinned by `alg`, some by family.
/// `rsa` has no `alg`, so it verifies RS256/384/512 and PS256/384/512.
pub fn token_target_jwks() -> Value {
    json!({"keys": [
        public_jwk(&rsa_private(), "rsa", None),
        public_jwk(&other_rsa_public(), "rsa-other", Some("RS256")),
        public_jwk(&ec_private(), "ec", Some("ES256")),
        public_jwk(&ed25519_private(), "ed", None),
        hs_jwk("hs", "HS256"),
    ]})
}

/// The JWKS `$JWKS` stands for in `core/tests/cases` (see its README).
pub fn policy_jwks() -> Value {
    meshgate_test_support::keys::corpus_jwks()
}

/// `b64(header).b64(payload).b64(signature)` with the signature computed by `alg` and the
/// fixture key `key`. Nothing checks that the header agrees, so fixtures can lie in it.
pub fn sign_raw(alg: &str, key: &str, header: &[u8], payload: &[u8]) -> String {
    meshgate_test_support::sign::sign_raw(alg, &private_key(key), header, payload)
        .expect("the fixture signer knows the algorithm")
}

/// Signs `header` and `claims` (JSON, serialized as given).
pub fn mint(alg: &str, key: &str, header: &Value, claims: &Value) -> String {
    sign_raw(
        alg,
        key,
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    )
}

/// Replaces every `"$JWKS"` string in `value` by [`policy_jwks`].
pub fn substitute_jwks(value: &mut Value) {
    meshgate_test_support::corpus::substitute_jwks(value, &policy_jwks());
}

/// The providers and rules of the `authorize` target (modelled on
/// `core/tests/cases/vertical_slice.json`), with `$JWKS` substituted.
pub fn strict_policy_config() -> Value {
    let mut config = json!({
        "providers": {
            "demo": {
                "issuer": "https://idp.meshgate.test",
                "audiences": ["meshgate-demo"],
                "local_jwks": {"inline": "$JWKS"},
                "claim_to_headers": [{"header_name": "x-user-email", "claim_name": "email"}]
            },
            "keycloak": {
                "issuer": "https://keycloak.test/realms/data",
                "audiences": ["airflow"],
                "local_jwks": {"inline": "$JWKS"},
                "groups_claim": "realm_access.roles",
                "clock_skew_s": 0,
                "max_lifetime_s": 3600,
                "groups_case_insensitive": true,
                "from_params": ["access_token"],
                "from_cookies": ["kc_session"]
            },
            "buildkite": {
                "issuer": "https://agent.buildkite.com",
                "audiences": ["meshgate"],
                "local_jwks": {"inline": "$JWKS"},
                "from_headers": [{"name": "x-buildkite-token"}],
                "forward": true
            }
        },
        "rules": [
            {"id": "health", "action": "allow", "public": true, "paths": ["/health", {"exact": "/ready"}]},
            {"id": "block-admin", "action": "deny", "paths": ["/admin/**", {"prefix": "/internal"}]},
            {"id": "contractors-read-only", "action": "deny", "methods": ["POST", "PATCH", "DELETE"],
             "when": {"groups_any": ["contractors"]}},
            {"id": "airflow-read", "action": "allow", "hosts": ["airflow.internal"], "methods": ["GET"],
             "paths": ["/api/v1/dags", "/api/v1/dags/{dag_id}/dagRuns"],
             "when": {"groups_any": ["data-eng", "data-analysts"]}},
            {"id": "airflow-trigger", "action": "allow", "hosts": ["airflow.internal"], "methods": ["POST"],
             "paths": ["/api/v1/dags/{dag_id}/dagRuns"], "when": {"groups_any": ["data-eng"]}},
            {"id": "airbyte-sync", "action": "allow", "hosts": ["airbyte.internal"], "methods": ["POST"],
             "paths": ["/api/v1/connections/list", "/api/v1/connections/sync"],
             "when": {"groups_all": ["data-eng", "airbyte-operators"]}},
            {"id": "buildkite-ci", "action": "allow", "hosts": ["buildkite.internal"],
             "paths": ["/v2/organizations/acme/pipelines/**"],
             "when": {"providers": ["buildkite"], "claims": [{"claim": "organization_slug", "equals": "acme"}]}},
            {"id": "items-read", "action": "allow", "hosts": ["*.svc.internal"], "methods": ["GET"],
             "paths": ["/items/{id}", "/items/*/parts/{part}/"],
             "when": {"claims": [{"claim": "scope", "contains": "items:read"}]}},
            {"id": "alice-only", "action": "allow", "paths": ["/me/**"], "when": {"subjects": ["alice"]}},
            {"id": "keycloak-airflow-admins", "action": "allow", "hosts": ["airflow.internal"],
             "when": {"providers": ["keycloak"], "groups_any": ["airflow-admin"]}}
        ]
    });
    substitute_jwks(&mut config);
    config
}

/// [`strict_policy_config`] with everything relaxed: every ambiguous path encoding
/// accepted, default allow, shadow mode, no token cache, and one remote provider whose
/// keys never load (so `failure_mode` decides its tokens).
pub fn lenient_policy_config() -> Value {
    let mut config = strict_policy_config();
    config["default_action"] = json!("allow");
    config["mode"] = json!("shadow");
    config["jwt_cache_config"] = json!({"jwt_cache_size": 0});
    config["max_token_bytes"] = json!(4096);
    config["path_normalization"] = json!({
        "allow_encoded_slash": true,
        "allow_backslash": true,
        "allow_semicolon": true,
        "forward_normalized_path": false
    });
    config["providers"]["remote"] = json!({
        "issuer": "https://remote.idp.test",
        "remote_jwks": {"cluster": "idp", "uri": "https://remote.idp.test/.well-known/jwks.json"},
        "from_headers": [{"name": "x-remote-token", "value_prefix": "Token "}]
    });
    if let Some(rules) = config["rules"].as_array_mut() {
        rules.push(json!({
            "id": "status-fail-open", "action": "allow", "paths": ["/status/**"],
            "failure_mode": "open"
        }));
    }
    config
}

/// Tokens the `authorize` inputs refer to as `$T0` … `$T9`, minted once.
pub static TOKENS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let demo = "https://idp.meshgate.test";
    let keycloak = "https://keycloak.test/realms/data";
    let specs = [
        // $T0: a data engineer, RS256.
        (
            "RS256",
            "rsa",
            json!({
                "iss": demo, "sub": "alice", "aud": "meshgate-demo", "iat": NOW - 10, "exp": NOW + 3600,
                "email": "alice@example.com", "groups": ["data-eng"]
            }),
        ),
        // $T1: a contractor, ES256, with an OAuth scope.
        (
            "ES256",
            "ec",
            json!({
                "iss": demo, "sub": "bob", "aud": ["x", "meshgate-demo"], "exp": NOW + 3600,
                "groups": ["contractors", "data-eng"], "scope": "openid items:read"
            }),
        ),
        // $T2: a Keycloak admin, EdDSA, roles nested and in another case.
        (
            "EdDSA",
            "ed",
            json!({
                "iss": keycloak, "sub": "carol", "aud": "airflow", "iat": NOW - 10, "exp": NOW + 600,
                "realm_access": {"roles": ["Airflow-Admin", "data-eng"]}
            }),
        ),
        // $T3: a Buildkite job, HS256, read from `x-buildkite-token`.
        (
            "HS256",
            "hs",
            json!({
                "iss": "https://agent.buildkite.com", "sub": "pipeline:acme/app", "aud": "meshgate",
                "exp": NOW + 600, "organization_slug": "acme"
            }),
        ),
        // $T4: expired.
        (
            "RS256",
            "rsa",
            json!({
                "iss": demo, "sub": "expired", "aud": "meshgate-demo", "exp": NOW - 100,
                "groups": ["data-eng"]
            }),
        ),
        // $T5: from the remote provider, whose keys never load.
        (
            "RS256",
            "rsa",
            json!({"iss": "https://remote.idp.test", "sub": "dave", "exp": NOW + 600}),
        ),
        // $T6: unknown issuer.
        (
            "RS256",
            "rsa",
            json!({"iss": "https://evil.test", "sub": "eve", "exp": NOW + 600}),
        ),
        // $T7: wrong audience.
        (
            "RS256",
            "rsa",
            json!({
                "iss": demo, "sub": "wrong-aud", "aud": "someone-else", "exp": NOW + 600
            }),
        ),
        // $T8: signature tampered with (below).
        (
            "RS256",
            "rsa",
            json!({
                "iss": demo, "sub": "mallory", "aud": "meshgate-demo", "exp": NOW + 3600,
                "groups": ["data-eng"]
            }),
        ),
    ];
    let mut tokens: Vec<String> = specs
        .iter()
        .map(|(alg, key, claims)| {
            let header = json!({"alg": alg, "kid": key, "typ": "JWT"});
            mint(alg, key, &header, claims)
        })
        .collect();
    if let Some(t8) = tokens.get_mut(8) {
        let (input, sig) = t8.rsplit_once('.').expect("three parts");
        let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
        *t8 = format!("{input}.{flipped}{}", &sig[1..]);
    }
    // $T9: algorithm confusion: an HS256 header naming the RSA key.
    tokens.push(mint(
        "HS256",
        "hs",
        &json!({"alg": "HS256", "kid": "rsa"}),
        &json!({
            "iss": demo, "sub": "confused", "aud": "meshgate-demo", "exp": NOW + 600,
            "groups": ["data-eng"]
        }),
    ));
    assert_eq!(tokens.len(), 10);
    tokens
});

/// Subjects of the tokens in [`TOKENS`] that verify and are within their validity window
/// under [`NOW`]; every other token must be refused.
pub const VALID_SUBJECTS: [&str; 4] = ["alice", "bob", "carol", "pipeline:acme/app"];

/// Replaces `$T0` … `$T9` in `input` by [`TOKENS`].
pub fn substitute_tokens(input: &str) -> String {
    if !input.contains("$T") {
        return input.to_owned();
    }
    let mut out = String::with_capacity(input.len() + 512);
    let mut rest = input;
    while let Some(at) = rest.find("$T") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        match after.bytes().next().filter(u8::is_ascii_digit) {
            Some(d) => {
                out.push_str(&TOKENS[usize::from(d - b'0')]);
                rest = &after[1..];
            }
            None => {
                out.push_str("$T");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

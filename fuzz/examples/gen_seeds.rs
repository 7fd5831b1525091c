//! Writes the seed corpora in `fuzz/corpus/<target>/` (the committed files).
//!
//!     cargo +nightly run --manifest-path fuzz/Cargo.toml --example gen_seeds [-- --force]
//!
//! Seeds are small, named inputs that reach deep code: valid tokens of every algorithm
//! and the RFC examples, JWKS documents with each kind of skipped key, tricky paths,
//! compiling configurations (including every `core/tests/cases/*.json` config), and
//! requests that exercise each decision. Existing seeds are kept as they are unless
//! `--force` is given (some signatures are randomized: PS*, and EdDSA with jwt-compact's
//! noise, so rewriting them would churn the committed files).

use std::fs;
use std::path::{Path, PathBuf};

use meshgate_fuzz::{
    b64, ed25519_private, hs_jwk, hs_secret, lenient_policy_config, mint, other_rsa_public,
    policy_jwks, public_jwk, rsa_private, sign_raw, strict_policy_config, substitute_jwks,
    token_target_jwks, NOW,
};
use serde_json::{json, Value};

struct Writer {
    root: PathBuf,
    force: bool,
    written: usize,
    bytes: usize,
}

impl Writer {
    fn seed(&mut self, target: &str, name: &str, content: impl AsRef<[u8]>) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).expect("create corpus dir");
        let path = dir.join(name);
        let content = content.as_ref();
        self.bytes += content.len();
        if !self.force && path.exists() {
            return;
        }
        if fs::read(&path).ok().as_deref() != Some(content) {
            fs::write(&path, content).expect("write seed");
            self.written += 1;
        }
    }
}

fn main() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut w = Writer {
        root: fuzz_dir.join("corpus"),
        force: std::env::args().any(|a| a == "--force"),
        written: 0,
        bytes: 0,
    };
    token_seeds(&mut w);
    jwks_seeds(&mut w);
    path_seeds(&mut w);
    config_seeds(&mut w, &fuzz_dir.join("../core/tests/cases"));
    authorize_seeds(&mut w);
    println!(
        "gen_seeds: {} files written; the seeds generated total {} bytes",
        w.written, w.bytes
    );
}

fn token_seeds(w: &mut Writer) {
    let claims = json!({
        "iss": "https://idp.meshgate.test", "sub": "alice", "aud": "meshgate-demo",
        "iat": NOW - 10, "exp": NOW + 3600, "groups": ["data-eng"]
    });
    let header = |alg: &str, kid: &str| json!({"alg": alg, "kid": kid, "typ": "JWT"});
    for (name, alg, key, kid) in [
        ("rs256-rsa.jwt", "RS256", "rsa", "rsa"),
        ("rs512-rsa.jwt", "RS512", "rsa", "rsa"),
        ("ps256-rsa.jwt", "PS256", "rsa", "rsa"),
        ("es256-ec.jwt", "ES256", "ec", "ec"),
        ("eddsa-ed.jwt", "EdDSA", "ed", "ed"),
        ("hs256-hs.jwt", "HS256", "hs", "hs"),
        // Signed by `rsa` but naming `rsa-other`: bad signature.
        ("rs256-wrong-key.jwt", "RS256", "rsa", "rsa-other"),
        // HS256 keyed with the HMAC secret but naming the RSA key: algorithm not pinned.
        ("alg-confusion-hs256-rsa-kid.jwt", "HS256", "hs", "rsa"),
        ("unknown-kid.jwt", "RS256", "rsa", "nope"),
    ] {
        w.seed("token", name, mint(alg, key, &header(alg, kid), &claims));
    }
    w.seed(
        "token",
        "rs384-no-kid.jwt",
        mint("RS384", "rsa", &json!({"alg": "RS384"}), &claims),
    );
    w.seed(
        "token",
        "crit-header.jwt",
        mint(
            "RS256",
            "rsa",
            &json!({"alg": "RS256", "kid": "rsa", "crit": ["exp"], "exp": 1}),
            &claims,
        ),
    );
    // RFC 7515 A.2: exactly the RFC's RS256 example (PKCS#1 v1.5 is deterministic).
    w.seed(
        "token",
        "rfc7515-a2-rs256.jwt",
        sign_raw(
            "RS256",
            "rsa",
            br#"{"alg":"RS256"}"#,
            b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}",
        ),
    );
    // RFC 7515 A.3 (ECDSA signatures are not reproducible, so a fresh one over the same input).
    w.seed(
        "token",
        "rfc7515-a3-es256.jwt",
        sign_raw(
            "ES256",
            "ec",
            br#"{"alg":"ES256"}"#,
            b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}",
        ),
    );
    // RFC 8037 A.4, verbatim (jwt-compact adds noise to Ed25519 signatures, so it can't
    // reproduce it). The payload is not JSON, so parsing refuses it after the header.
    w.seed(
        "token",
        "rfc8037-a4-eddsa.jwt",
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.\
         hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
    );
    let body = b64(claims.to_string().as_bytes());
    w.seed(
        "token",
        "alg-none.jwt",
        format!("{}.{body}.", b64(br#"{"alg":"none"}"#)),
    );
    let valid = mint("RS256", "rsa", &header("RS256", "rsa"), &claims);
    let (input, sig) = valid.rsplit_once('.').expect("three parts");
    let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
    w.seed(
        "token",
        "tampered-signature.jwt",
        format!("{input}.{flipped}{}", &sig[1..]),
    );
    w.seed("token", "padded-base64.jwt", format!("{input}.{sig}=="));
    w.seed("token", "four-parts.jwt", format!("{valid}.x"));
    w.seed("token", "two-parts.jwt", input);

    // Structured inputs: header JSON, payload JSON, raw signature bytes (valid ones).
    for (name, alg, key, kid) in [
        ("structured-rs256.txt", "RS256", "rsa", "rsa"),
        ("structured-es256.txt", "ES256", "ec", "ec"),
        ("structured-eddsa.txt", "EdDSA", "ed", "ed"),
        ("structured-hs256.txt", "HS256", "hs", "hs"),
    ] {
        let h = json!({"alg": alg, "kid": kid}).to_string();
        let p = claims.to_string();
        let token = sign_raw(alg, key, h.as_bytes(), p.as_bytes());
        let sig = token.rsplit('.').next().expect("signature part");
        let mut seed = format!("{h}\n{p}\n").into_bytes();
        seed.extend(decode(sig));
        w.seed("token", name, seed);
    }
}

fn decode(part: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url")
}

fn jwks_seeds(w: &mut Writer) {
    let rsa = public_jwk(&rsa_private(), "rsa", Some("RS256"));
    let ec = public_jwk(&meshgate_fuzz::ec_private(), "ec", Some("ES256"));
    let ed = public_jwk(&ed25519_private(), "ed", None);
    w.seed("jwks", "policy-keys.json", policy_jwks().to_string());
    w.seed(
        "jwks",
        "token-target-keys.json",
        token_target_jwks().to_string(),
    );
    w.seed(
        "jwks",
        "asymmetric-only.json",
        json!({"keys": [rsa, ec, ed]}).to_string(),
    );
    w.seed(
        "jwks",
        "idp-style-use-sig.json",
        json!({"keys": [
            {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "a",
             "n": rsa["n"], "e": "AQAB"},
            {"kty": "RSA", "use": "sig", "alg": "PS256", "kid": "b",
             "n": other_rsa_public()["n"], "e": "AQAB", "x5t": "abc"}
        ]})
        .to_string(),
    );
    w.seed(
        "jwks",
        "oct-only.json",
        json!({"keys": [
            hs_jwk("hs", "HS256"),
            hs_jwk("hs512", "HS512")
        ]})
        .to_string(),
    );
    // One usable key and one of each reason to skip a key.
    let n = rsa["n"].as_str().expect("n");
    w.seed(
        "jwks",
        "every-skip.json",
        json!({"keys": [
            ed,
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "small", "n": &n[..171], "e": "AQAB"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
            {"kty": "EC", "crv": "P-256", "alg": "RS256", "kid": "mismatch",
             "x": ec["x"], "y": ec["y"]},
            {"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": "AA"},
            {"kty": "oct", "k": "c2hvcnQ", "alg": "HS256", "kid": "short"},
            {"kty": "oct", "k": hs_secret()["k"], "kid": "no-alg"},
            {"kty": "RSA", "kid": "no-n", "e": "AQAB"},
            {"kid": "no-kty"},
            "not an object"
        ]})
        .to_string(),
    );
    w.seed("jwks", "no-keys.json", r#"{"keys":[]}"#);
    w.seed("jwks", "keys-not-array.json", r#"{"keys":{"kty":"RSA"}}"#);
}

fn path_seeds(w: &mut Writer) {
    for (name, content) in [
        ("plain", "/api/v1/dags"),
        ("double-slash-admin", "//admin"),
        ("encoded-dotdot", "/%2e%2e/%2E%2E/etc/passwd"),
        ("encoded-slash", "/api/a%2Fb/%2f"),
        ("double-encoded-slash", "/api/%252F/x"),
        ("backslash", "/api\\..\\admin/%5c"),
        ("semicolon", "/admin;jsessionid=1/x;a=b"),
        ("dot-segments", "/a/./b/../../c/./"),
        ("unreserved-encoded", "/%61dmin/%7Euser/%3a%3A?x=1#frag"),
        ("bad-percent", "/a%zz/%4"),
        ("not-absolute", "api/v1"),
        ("dotdot-above-root", "/../../.."),
        (
            "template-param",
            "/api/v1/dags/{dag_id}/dagRuns\n/api/v1/dags/etl/dagRuns",
        ),
        ("template-rest", "/api/**\n/api/x/y/"),
        (
            "template-star-trailing",
            "/items/*/parts/{part}/\n/items/1/parts/2/",
        ),
        ("template-encoded-literal", "/%61pi/{x}\n/api/%2e"),
        ("template-bad", "/a/{b}{c}/**/x\n/a/b"),
    ] {
        w.seed("path", name, content);
    }
}

fn config_seeds(w: &mut Writer, cases: &Path) {
    let mut files: Vec<PathBuf> = fs::read_dir(cases)
        .expect("core/tests/cases")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for file in files {
        let case: Value = serde_json::from_slice(&fs::read(&file).expect("read case"))
            .expect("case file is JSON");
        let mut config = case["config"].clone();
        substitute_jwks(&mut config);
        let stem = file.file_stem().expect("stem").to_string_lossy();
        w.seed("config", &format!("case-{stem}.json"), config.to_string());
    }
    w.seed(
        "config",
        "fuzz-strict.json",
        strict_policy_config().to_string(),
    );
    w.seed(
        "config",
        "fuzz-lenient.json",
        lenient_policy_config().to_string(),
    );
    w.seed(
        "config",
        "remote-jwks.json",
        json!({
            "providers": {"idp": {
                "issuer": "https://idp.meshgate.test",
                "remote_jwks": {"cluster": "idp", "uri": "https://idp.meshgate.test:8443/jwks?v=1",
                                "cache_duration_s": 600, "timeout_ms": 1000,
                                "refetch_on_unknown_kid": "background", "refetch_min_interval_s": 10},
                "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "},
                                 {"name": "x-jwt"}],
                "from_params": ["token"], "from_cookies": ["session"],
                "email_claim": "email", "username_claim": "preferred_username",
                "require_expiration": false, "max_groups": 10
            }},
            "failure_mode": "open",
            "rules": [{"id": "r", "action": "allow", "paths": [{"prefix": "/api/"}],
                       "failure_mode": "closed"}]
        })
        .to_string(),
    );
    w.seed(
        "config",
        "inline-string.json",
        json!({
            "providers": {"p": {"issuer": "https://idp.meshgate.test",
                                "local_jwks": {"inline_string": policy_jwks().to_string()}}},
            "rules": [{"id": "all", "action": "allow", "hosts": ["*"], "methods": ["GET"],
                       "paths": [{"exact": "/api/v1/dags"}],
                       "when": {"claims": [{"claim": "groups", "contains": "data-eng"}]}}],
            "realm": "meshgate test",
            "max_token_bytes": 16384,
            "jwt_cache_config": {"jwt_cache_size": 1}
        })
        .to_string(),
    );
    w.seed("config", "empty.json", "{}");
}

fn authorize_seeds(w: &mut Writer) {
    for (name, content) in [
        ("alice-lists-dags", "GET\nairflow.internal\n/api/v1/dags\nauthorization: Bearer $T0"),
        ("alice-triggers-run", "POST\nairflow.internal:443\n/api/v1/dags/etl/dagRuns?x=1\nauthorization: bearer $T0\ncontent-type: application/json"),
        ("contractor-post-denied", "POST\nairflow.internal\n/api/v1/dags/etl/dagRuns\nauthorization: Bearer $T1"),
        ("items-scope", "GET\nitems.svc.internal.\n/items/42\nauthorization: Bearer $T1"),
        ("items-parts", "GET\na.svc.internal\n/items/4/parts/%61/\nauthorization: Bearer $T1"),
        ("keycloak-query-param", "GET\nAIRFLOW.internal\n/ui/home?access_token=$T2&x=y"),
        ("keycloak-cookie", "PATCH\nairflow.internal\n/variables/v\ncookie: a=b; kc_session=$T2"),
        ("buildkite-header", "GET\nbuildkite.internal\n/v2/organizations/acme/pipelines/app/builds\nx-buildkite-token: $T3"),
        ("alice-me", "GET\nanything\n/me/profile\nauthorization: Bearer $T0\nx-meshgate-subject: root\nx-user-email: spoof@example.com"),
        ("health-public", "GET\nairflow.internal\n/health"),
        ("ready-exact", "HEAD\n[::1]:8080\n/ready/"),
        ("admin-dotdot", "GET\nairflow.internal\n/api/../admin/users\nauthorization: Bearer $T0"),
        ("admin-encoded", "GET\nairflow.internal\n/%61dmin/x\nauthorization: Bearer $T0"),
        ("admin-double-slash", "GET\nairflow.internal\n//admin\nauthorization: Bearer $T0"),
        ("admin-encoded-slash", "GET\nairflow.internal\n/admin%2Fusers\nauthorization: Bearer $T0"),
        ("internal-prefix-semicolon", "GET\nairflow.internal\n/internal;x=1/metrics\nauthorization: Bearer $T0"),
        ("expired", "GET\nairflow.internal\n/api/v1/dags\nauthorization: Bearer $T4"),
        ("remote-fail-open", "GET\nstatus.internal\n/status/live\nx-remote-token: Token $T5"),
        ("unknown-issuer", "GET\nairflow.internal\n/api/v1/dags\nauthorization: Bearer $T6"),
        ("wrong-audience", "GET\nairflow.internal\n/api/v1/dags\nauthorization: Bearer $T7"),
        ("tampered", "GET\nairflow.internal\n/api/v1/dags\nauthorization: Bearer $T8"),
        ("alg-confusion", "GET\nairflow.internal\n/api/v1/dags\nauthorization: Bearer $T9"),
        ("repeated-authorization", "GET\nairflow.internal\n/api/v1/dags\nauthorization: Bearer $T0\nauthorization: Bearer $T1"),
        ("two-sources", "GET\nairflow.internal\n/api/v1/dags?access_token=$T2\nauthorization: Bearer $T6\nx-buildkite-token: $T3"),
    ] {
        w.seed("authorize", name, content);
    }
}

//! Differential test against Envoy's native `envoy.filters.http.jwt_authn` (issue 6).
//!
//! One Envoy (`configs/differential.yaml`) with two listeners in front of the echo stub: one
//! verifies tokens with jwt_authn, the other with meshgate (`dist/meshgate.wasm`), both
//! configured for the same issuer, audience and public keys (the RFC test keys from
//! `testdata/keys/`). Every probe below (a token, minted now, in an `Authorization` header)
//! goes to both, and the two answers are compared as allow (the stub answered) or deny.
//!
//! Clock skew: jwt_authn `clock_skew_seconds: 60` and meshgate `clock_skew_s: 60`, both the
//! defaults, written out in the config. Both apply it to `exp` and `nbf`; meshgate also to
//! `iat`, which jwt_authn does not check at all. `exp` is required on both sides
//! (`require_expiration: true`; jwt_authn's default is false, meshgate's true).
//!
//! Each probe states what meshgate must do, and jwt_authn must do the same except for the
//! probes in `EXPECTED_DIFFERENCES`, each with its explanation. The test fails when any
//! outcome changes, including when a listed difference disappears or a new one appears.
//! Only allow/deny is compared: the statuses of denials differ by design (jwt_authn answers
//! 403 for an audience mismatch, meshgate 401 with `audience_mismatch`); the failure message
//! shows both answers for every probe.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions may panic"
)]

use std::fmt::Write as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use meshgate_test_harness::corpus::{config_template, render_template};
use meshgate_test_harness::envoy::{Envoy, EnvoyOptions};
use meshgate_test_harness::http_client::{self, Response};
use meshgate_test_harness::ports::free_port;
use meshgate_test_harness::upstream::UpstreamServer;
use meshgate_test_support::keys::{ec_private, ed25519_private, hs_jwk, public_jwk, rsa_private};
use meshgate_test_support::sign::{b64, sign, sign_bytes};
use meshgate_test_support::unix_now;
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.differential.test";
const AUDIENCE: &str = "meshgate-differential";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allow,
    Deny,
}
use Outcome::{Allow, Deny};

/// A probe on which jwt_authn and meshgate are expected to disagree, and why.
struct Difference {
    probe: &'static str,
    jwt_authn: Outcome,
    meshgate: Outcome,
    why: &'static str,
}

const EXPECTED_DIFFERENCES: &[Difference] = &[
    Difference {
        probe: "iat in the future",
        jwt_authn: Allow,
        meshgate: Deny,
        why: "jwt_authn checks only `exp` and `nbf`; meshgate also refuses a token issued \
              more than the clock skew in the future (`token_not_yet_valid`), since such \
              an `iat` means a broken or hostile issuer clock",
    },
    Difference {
        probe: "crit header",
        jwt_authn: Allow,
        meshgate: Deny,
        why: "RFC 7515 4.1.11: a verifier must reject `crit` extensions it does not \
              understand; jwt_authn ignores `crit`, meshgate rejects any `crit` header",
    },
    Difference {
        probe: "padded signature segment",
        jwt_authn: Allow,
        meshgate: Deny,
        why: "JWS compact serialization is base64url without `=` padding (RFC 7515 2); \
              jwt_authn passes the header value through after the prefix and its decoder \
              accepts padded segments, meshgate refuses them (`token_invalid`)",
    },
    Difference {
        probe: "padded header, signed as sent",
        jwt_authn: Allow,
        meshgate: Deny,
        why: "as for the padded signature: the signature covers the padded text, so only \
              the padding rule decides",
    },
    Difference {
        probe: "oversized valid token (> 8 KiB)",
        jwt_authn: Allow,
        meshgate: Deny,
        why: "meshgate refuses tokens over `max_token_bytes` (8192) before decoding them; \
              jwt_authn has no token size limit below Envoy's header size limit (60 KiB)",
    },
    Difference {
        probe: "lowercase bearer scheme",
        jwt_authn: Deny,
        meshgate: Allow,
        why: "RFC 6750 / RFC 9110 auth schemes are case-insensitive and meshgate matches the \
              `Bearer ` prefix so; jwt_authn looks for `value_prefix` case-sensitively and \
              finds no token (`Jwt is missing`)",
    },
    Difference {
        probe: "valid PS256 with kid",
        jwt_authn: Allow,
        meshgate: Deny,
        why: "Envoy's `verify_signature` does PKCS#1 v1.5 only; the default `dist/meshgate.wasm` \
              has no Rust RSA (issue 18), so it verifies no PS256/384/512 token: \
              `dist/meshgate-portable.wasm` does",
    },
    Difference {
        probe: "valid PS256 without kid",
        jwt_authn: Allow,
        meshgate: Deny,
        why: "as for PS256 with kid",
    },
];

/// One request: the `Authorization` header values to send, and what meshgate must do.
struct Probe {
    name: &'static str,
    authorization: Vec<String>,
    meshgate: Outcome,
}

/// Mints tokens for the configured provider with the RFC test keys.
struct Minter {
    now: i64,
}

impl Minter {
    fn claims(&self) -> Value {
        json!({
            "iss": ISSUER,
            "sub": "alice",
            "aud": AUDIENCE,
            "iat": self.now,
            "exp": self.now + 3600,
        })
    }

    fn key_for(&self, alg: &str) -> Value {
        match alg {
            "ES256" => ec_private(),
            "EdDSA" => ed25519_private(),
            "HS256" => hs_jwk("hs", "HS256"),
            _ => rsa_private(),
        }
    }

    /// The kid a key is published under (see `jwks`).
    fn kid_for(alg: &str) -> &'static str {
        match alg {
            "ES256" => "ec",
            "EdDSA" => "ed",
            "HS256" => "hs",
            _ => "rsa",
        }
    }

    fn signed(&self, alg: &str, header: &Value, claims: &Value) -> String {
        sign(alg, &self.key_for(alg), header, claims).unwrap()
    }

    /// A valid token, with or without `kid`.
    fn valid(&self, alg: &str, with_kid: bool) -> String {
        let header = if with_kid {
            json!({"alg": alg, "typ": "JWT", "kid": Self::kid_for(alg)})
        } else {
            json!({"alg": alg, "typ": "JWT"})
        };
        self.signed(alg, &header, &self.claims())
    }

    /// RS256 with the `rsa` kid and `edit` applied to the valid claims.
    fn with_claims(&self, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut claims = self.claims();
        edit(claims.as_object_mut().unwrap());
        self.signed("RS256", &json!({"alg": "RS256", "kid": "rsa"}), &claims)
    }

    /// RS256 with `header` over the valid claims.
    fn with_header(&self, header: Value) -> String {
        self.signed("RS256", &header, &self.claims())
    }

    /// The public key set both sides verify with: the RSA key without `alg` (so every RSA
    /// algorithm may use it), the EC and Ed25519 keys pinned to ES256 and EdDSA, and the
    /// HMAC key (HS256) as a locally configured secret.
    fn jwks(&self) -> Value {
        json!({"keys": [
            public_jwk(&rsa_private(), "rsa", None),
            public_jwk(&ec_private(), "ec", Some("ES256")),
            public_jwk(&ed25519_private(), "ed", Some("EdDSA")),
            hs_jwk("hs", "HS256"),
        ]})
    }

    /// HS256 over the valid claims, keyed with the RSA public key as published in the JWKS
    /// (the classic RS/HS confusion: a verifier that lets the token pick the algorithm
    /// would use the public key text as the HMAC secret).
    fn hs256_with_rsa_public_key(&self, kid: Option<&str>) -> String {
        let secret = public_jwk(&rsa_private(), "rsa", None).to_string();
        let key = json!({"kty": "oct", "k": b64(secret.as_bytes())});
        let header = match kid {
            Some(kid) => json!({"alg": "HS256", "kid": kid}),
            None => json!({"alg": "HS256"}),
        };
        sign("HS256", &key, &header, &self.claims()).unwrap()
    }

    /// ES256 with the signature DER-encoded (`SEQUENCE { INTEGER r, INTEGER s }`) instead
    /// of the JWS form `r || s`.
    fn es256_der(&self) -> String {
        let header = json!({"alg": "ES256", "kid": "ec"});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(self.claims().to_string().as_bytes())
        );
        let raw = sign_bytes("ES256", &ec_private(), input.as_bytes()).unwrap();
        assert_eq!(raw.len(), 64);
        let mut body = der_integer(&raw[..32]);
        body.extend(der_integer(&raw[32..]));
        let mut der = vec![0x30, u8::try_from(body.len()).unwrap()];
        der.extend(body);
        format!("{input}.{}", b64(&der))
    }
}

fn der_integer(bytes: &[u8]) -> Vec<u8> {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    let mut value = bytes[start..].to_vec();
    if value[0] & 0x80 != 0 {
        value.insert(0, 0);
    }
    let mut out = vec![0x02, u8::try_from(value.len()).unwrap()];
    out.extend(value);
    out
}

fn unsigned(header: &str, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(header.as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn bearer(token: &str) -> Vec<String> {
    vec![format!("Bearer {token}")]
}

fn probes(m: &Minter) -> Vec<Probe> {
    let p = |name, authorization, meshgate| Probe {
        name,
        authorization,
        meshgate,
    };
    let valid = m.valid("RS256", true);
    let (input, signature) = valid.rsplit_once('.').unwrap();

    let tampered_payload = {
        let mut claims = m.claims();
        claims["sub"] = json!("mallory");
        let header = valid.split('.').next().unwrap();
        format!(
            "{header}.{}.{signature}",
            b64(claims.to_string().as_bytes())
        )
    };
    let tampered_signature = {
        let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
        sig[0] ^= 0x01;
        format!("{input}.{}", b64(&sig))
    };
    let padded = |segment: &str| {
        let pad = (4 - segment.len() % 4) % 4;
        format!("{segment}{}", "=".repeat(pad))
    };
    // 342 base64 characters for a 256-byte signature: two `=` of padding.
    let padded_signature = format!("{input}.{}", padded(signature));
    // A header whose base64url form needs padding (28 bytes: two `=`), padded, and signed
    // as sent.
    let padded_header = {
        let header = padded(&b64(br#"{"alg":"RS256", "kid":"rsa"}"#));
        assert!(header.ends_with('='));
        let input = format!("{header}.{}", b64(m.claims().to_string().as_bytes()));
        let sig = sign_bytes("RS256", &rsa_private(), input.as_bytes()).unwrap();
        format!("{input}.{}", b64(&sig))
    };
    let oversized = m.with_claims(|c| {
        c.insert("padding".into(), json!("x".repeat(9000)));
    });
    assert!(oversized.len() > 8 * 1024);

    let mut probes = Vec::new();
    for alg in ["RS256", "RS384", "RS512", "PS256", "ES256", "EdDSA"] {
        let (with, without) = match alg {
            "RS256" => ("valid RS256 with kid", "valid RS256 without kid"),
            "RS384" => ("valid RS384 with kid", "valid RS384 without kid"),
            "RS512" => ("valid RS512 with kid", "valid RS512 without kid"),
            "PS256" => ("valid PS256 with kid", "valid PS256 without kid"),
            "ES256" => ("valid ES256 with kid", "valid ES256 without kid"),
            _ => ("valid EdDSA with kid", "valid EdDSA without kid"),
        };
        // PS*: the default artifact has no verifier for it (EXPECTED_DIFFERENCES).
        let outcome = if alg == "PS256" { Deny } else { Allow };
        probes.push(p(with, bearer(&m.valid(alg, true)), outcome));
        probes.push(p(without, bearer(&m.valid(alg, false)), outcome));
    }
    probes.extend([
        p(
            "valid HS256 with the configured secret",
            bearer(&m.valid("HS256", true)),
            Allow,
        ),
        // Times.
        p(
            "expired",
            bearer(&m.with_claims(|c| {
                c.insert("iat".into(), json!(m.now - 7200));
                c.insert("exp".into(), json!(m.now - 3600));
            })),
            Deny,
        ),
        p(
            "expired within the clock skew",
            bearer(&m.with_claims(|c| {
                c.insert("exp".into(), json!(m.now - 30));
            })),
            Allow,
        ),
        p(
            "nbf in the future",
            bearer(&m.with_claims(|c| {
                c.insert("nbf".into(), json!(m.now + 3600));
            })),
            Deny,
        ),
        p(
            "nbf within the clock skew",
            bearer(&m.with_claims(|c| {
                c.insert("nbf".into(), json!(m.now + 30));
            })),
            Allow,
        ),
        p(
            "iat in the future",
            bearer(&m.with_claims(|c| {
                c.insert("iat".into(), json!(m.now + 3600));
            })),
            Deny,
        ),
        p(
            "missing exp",
            bearer(&m.with_claims(|c| {
                c.remove("exp");
            })),
            Deny,
        ),
        p(
            "exp as string",
            bearer(&m.with_claims(|c| {
                c.insert("exp".into(), json!((m.now + 3600).to_string()));
            })),
            Deny,
        ),
        p(
            "exp as float",
            bearer(&m.with_claims(|c| {
                c.insert("exp".into(), json!(m.now as f64 + 3600.5));
            })),
            Allow,
        ),
        // Audience and issuer.
        p(
            "wrong aud",
            bearer(&m.with_claims(|c| {
                c.insert("aud".into(), json!("someone-else"));
            })),
            Deny,
        ),
        p(
            "aud array containing the audience",
            bearer(&m.with_claims(|c| {
                c.insert("aud".into(), json!(["someone-else", AUDIENCE]));
            })),
            Allow,
        ),
        p(
            "no aud",
            bearer(&m.with_claims(|c| {
                c.remove("aud");
            })),
            Deny,
        ),
        p(
            "unknown issuer",
            bearer(&m.with_claims(|c| {
                c.insert("iss".into(), json!("https://evil.example"));
            })),
            Deny,
        ),
        p(
            "no iss",
            bearer(&m.with_claims(|c| {
                c.remove("iss");
            })),
            Deny,
        ),
        p(
            "non-string iss",
            bearer(&m.with_claims(|c| {
                c.insert("iss".into(), json!(42));
            })),
            Deny,
        ),
        // Keys, algorithms, signatures.
        p(
            "unknown kid",
            bearer(&m.with_header(json!({"alg": "RS256", "kid": "rotated-away"}))),
            Deny,
        ),
        p(
            "RS256 header claiming the EC kid",
            bearer(&m.with_header(json!({"alg": "RS256", "kid": "ec"}))),
            Deny,
        ),
        p(
            "HS256 signed with the RSA public key, RSA kid",
            bearer(&m.hs256_with_rsa_public_key(Some("rsa"))),
            Deny,
        ),
        p(
            "HS256 signed with the RSA public key, no kid",
            bearer(&m.hs256_with_rsa_public_key(None)),
            Deny,
        ),
        p("ES256 signature in DER", bearer(&m.es256_der()), Deny),
        p("tampered payload", bearer(&tampered_payload), Deny),
        p("tampered signature", bearer(&tampered_signature), Deny),
        p(
            "alg none",
            bearer(&unsigned(r#"{"alg":"none","typ":"JWT"}"#, &m.claims())),
            Deny,
        ),
        p(
            "alg None",
            bearer(&unsigned(r#"{"alg":"None","typ":"JWT"}"#, &m.claims())),
            Deny,
        ),
        p(
            "alg none keeping the RS256 signature",
            bearer(&format!(
                "{}.{}.{signature}",
                b64(br#"{"alg":"none","kid":"rsa"}"#),
                valid.split('.').nth(1).unwrap()
            )),
            Deny,
        ),
        p(
            "crit header",
            bearer(&m.with_header(json!({"alg": "RS256", "kid": "rsa", "crit": ["exp"]}))),
            Deny,
        ),
        p(
            "jku header pointing elsewhere (ignored)",
            bearer(&m.with_header(
                json!({"alg": "RS256", "kid": "rsa", "jku": "http://127.0.0.1:1/jwks"}),
            )),
            Allow,
        ),
        // Encoding and size.
        p("padded signature segment", bearer(&padded_signature), Deny),
        p(
            "padded header, signed as sent",
            bearer(&padded_header),
            Deny,
        ),
        p(
            "extra whitespace around the token",
            vec![format!("Bearer    {valid}   ")],
            Allow,
        ),
        p(
            "whitespace inside the token",
            bearer(&valid.replacen('.', ". ", 1)),
            Deny,
        ),
        p("3-part garbage", bearer("abc.def.ghi"), Deny),
        p("oversized valid token (> 8 KiB)", bearer(&oversized), Deny),
        // The Authorization header itself.
        p("no Authorization header", vec![], Deny),
        p("empty bearer", vec!["Bearer ".into()], Deny),
        p(
            "lowercase bearer scheme",
            vec![format!("bearer {valid}")],
            Allow,
        ),
        // Envoy's HTTP/1 codec joins repeated `authorization` headers into one value
        // (`Bearer A,Bearer A`), so neither filter sees two headers: jwt_authn fails on the
        // extra dots, meshgate too (`token_invalid`, "found 5 parts").
        p(
            "two Authorization headers, same valid token",
            [bearer(&valid), bearer(&valid)].concat(),
            Deny,
        ),
        p(
            "two Authorization headers, valid then garbage",
            [bearer(&valid), bearer("abc.def.ghi")].concat(),
            Deny,
        ),
        p(
            "two Authorization headers, garbage then valid",
            [bearer("abc.def.ghi"), bearer(&valid)].concat(),
            Deny,
        ),
    ]);
    probes
}

/// Allowed means the echo stub answered; meshgate and jwt_authn deny with local replies.
fn outcome(response: &Response) -> Outcome {
    let body = response.json();
    if response.status == 200 && body["headers"].is_object() && body["method"].is_string() {
        Allow
    } else {
        Deny
    }
}

fn short(response: &Response) -> String {
    let body = response.text();
    let body = body.trim();
    let body = body.get(..body.len().min(60)).unwrap_or(body);
    format!("{} {body}", response.status)
}

#[test]
fn meshgate_agrees_with_jwt_authn() {
    let m = Minter { now: unix_now() };
    let jwks = m.jwks().to_string();
    let upstream = UpstreamServer::start("127.0.0.1:0").unwrap();
    let (jwt_port, mesh_port, admin) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let yaml = render_template(
        &config_template("differential.yaml").unwrap(),
        &[
            ("ADMIN_PORT", admin.to_string()),
            ("JWT_AUTHN_PORT", jwt_port.to_string()),
            ("MESHGATE_PORT", mesh_port.to_string()),
            ("UPSTREAM_PORT", upstream.port().to_string()),
            ("ISSUER", ISSUER.to_owned()),
            ("AUDIENCE", AUDIENCE.to_owned()),
            ("JWKS", jwks.clone()),
            ("JWKS_AS_JSON_STRING", Value::String(jwks).to_string()),
        ],
    )
    .unwrap();
    let envoy = Envoy::start(EnvoyOptions::new(yaml, admin)).unwrap();

    let probes = probes(&m);
    let mut failures = Vec::new();
    let mut table = String::new();
    let mut differences = Vec::new();
    for probe in &probes {
        let headers: Vec<(&str, &str)> = probe
            .authorization
            .iter()
            .map(|v| ("authorization", v.as_str()))
            .collect();
        let send = |port| {
            http_client::send(port, "GET", "airflow.internal", "/api/v1/dags", &headers)
                .unwrap_or_else(|e| panic!("{}: {e}", probe.name))
        };
        let (jwt, mesh) = (send(jwt_port), send(mesh_port));
        let (jwt_outcome, mesh_outcome) = (outcome(&jwt), outcome(&mesh));
        let _ = writeln!(
            table,
            "  {:<48} jwt_authn {:<5} ({:<40}) meshgate {:<5} ({})",
            probe.name,
            format!("{jwt_outcome:?}"),
            short(&jwt),
            format!("{mesh_outcome:?}"),
            short(&mesh)
        );
        if mesh_outcome != probe.meshgate {
            failures.push(format!(
                "{}: meshgate should {:?}, did {mesh_outcome:?} ({})",
                probe.name,
                probe.meshgate,
                short(&mesh)
            ));
        }
        if jwt_outcome != mesh_outcome {
            differences.push((probe.name, jwt_outcome, mesh_outcome));
        }
    }
    drop(envoy);

    for (name, jwt, mesh) in &differences {
        match EXPECTED_DIFFERENCES.iter().find(|d| d.probe == *name) {
            Some(d) if d.jwt_authn == *jwt && d.meshgate == *mesh => {}
            Some(d) => failures.push(format!(
                "{name}: listed as jwt_authn {:?} / meshgate {:?}, got {jwt:?} / {mesh:?}",
                d.jwt_authn, d.meshgate
            )),
            None => failures.push(format!(
                "{name}: unexplained difference: jwt_authn {jwt:?}, meshgate {mesh:?}"
            )),
        }
    }
    for d in EXPECTED_DIFFERENCES {
        if !probes.iter().any(|p| p.name == d.probe) {
            failures.push(format!("{}: listed difference has no probe", d.probe));
        } else if !differences.iter().any(|(name, _, _)| *name == d.probe) {
            failures.push(format!(
                "{}: listed difference is gone (both sides agree now): {}",
                d.probe, d.why
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}\nall probes:\n{table}",
        failures.len(),
        failures.join("\n")
    );
}

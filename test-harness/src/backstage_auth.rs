//! The fake Backstage's auth backend: signing keys, the JWKS, an OpenID configuration, and the
//! tokens Backstage's auth backend issues, in their shapes (`@backstage/plugin-auth-backend`):
//!
//! - User tokens: header `{"typ": "vnd.backstage.user", "alg": "ES256", "kid"}`, payload `iss`
//!   (`{base}/api/auth`), `sub` (the user's entity ref), `ent` only when asked for (current
//!   Backstage leaves it out by default), `aud` `backstage`, `iat`, `exp` (1 h), `uip`.
//! - Limited-user tokens, cut from a user token as Backstage does: header `typ`
//!   `vnd.backstage.limited-user`, payload `sub`, `iat`, `exp`, and the user token's `uip` as
//!   signature, so they verify with the same key.
//! - Plugin tokens: `typ` `vnd.backstage.plugin`, `sub` the plugin id, `aud` the target plugin,
//!   signed with the plugin's own key, which the auth JWKS never lists.
//!
//! Like Backstage, the backend makes its first key when it issues its first token, so the JWKS
//! is empty until then; [`AuthBackend::rotate`] makes a new signing key at once (Backstage does
//! so every token lifetime), and old keys stay published.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_compact::alg::Es256;
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm, AlgorithmSignature as _};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Map, Value};

use crate::text::uuid_v4;

pub const TYP_USER: &str = "vnd.backstage.user";
pub const TYP_LIMITED_USER: &str = "vnd.backstage.limited-user";
pub const TYP_PLUGIN: &str = "vnd.backstage.plugin";
/// Backstage's default user token lifetime.
pub const TOKEN_LIFETIME_S: i64 = 3600;

type SigningKey = <Es256 as Algorithm>::SigningKey;

struct Key {
    kid: String,
    signing: SigningKey,
    /// The public JWK as Backstage publishes it: `kty`, `crv`, `x`, `y`, `kid`, `alg`.
    public: Value,
}

impl Key {
    fn generate(rng: &mut StdRng) -> Key {
        let signing = SigningKey::random(&mut *rng);
        let kid = uuid(rng);
        let mut public = serde_json::to_value(JsonWebKey::from(&signing).to_verifying_key())
            .unwrap_or_else(|_| json!({}));
        if let Some(object) = public.as_object_mut() {
            object.insert("kid".into(), Value::from(kid.as_str()));
            object.insert("alg".into(), Value::from("ES256"));
        }
        Key {
            kid,
            signing,
            public,
        }
    }

    /// `header.payload.signature`, both parts serialized exactly as given.
    fn sign(&self, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        format!("{input}.{}", self.signature(&input))
    }

    fn signature(&self, input: &str) -> String {
        b64(&Es256.sign(&self.signing, input.as_bytes()).as_bytes())
    }
}

/// What a user token says; `UserToken::new` gives Backstage's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserToken {
    /// `sub`, as the sign-in resolver wrote it (`user:default/alice`).
    pub sub: String,
    /// `ent`; `None` leaves the claim out, as current Backstage does by default.
    pub ent: Option<Vec<String>>,
    pub aud: String,
    /// Header `typ`; `None` leaves it out, as Backstage releases before typed tokens did.
    pub typ: Option<String>,
    pub ttl_s: i64,
    /// Unix seconds.
    pub now: i64,
}

impl UserToken {
    pub fn new(sub: impl Into<String>, now: i64) -> UserToken {
        UserToken {
            sub: sub.into(),
            ent: None,
            aud: String::from("backstage"),
            typ: Some(String::from(TYP_USER)),
            ttl_s: TOKEN_LIFETIME_S,
            now,
        }
    }
}

/// The auth backend's keys and counters.
pub struct AuthBackend {
    /// `{base}/api/auth`: `iss` of user tokens.
    issuer: String,
    /// Every key made so far, oldest first; the last one signs.
    keys: Vec<Key>,
    /// The plugin key (`catalog` plugin) that signs plugin tokens; never in the auth JWKS.
    plugin_key: Key,
    rng: StdRng,
    jwks_requests: u64,
}

impl AuthBackend {
    /// The auth backend of the Backstage at `base_url` (`http://127.0.0.1:7007`).
    pub fn new(base_url: &str) -> AuthBackend {
        let mut rng = StdRng::from_entropy();
        AuthBackend {
            issuer: format!("{}/api/auth", base_url.trim_end_matches('/')),
            keys: Vec::new(),
            plugin_key: Key::generate(&mut rng),
            rng,
            jwks_requests: 0,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The published keys (an empty set before the first token).
    pub fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().map(|k| k.public.clone()).collect::<Vec<_>>()})
    }

    pub fn count_jwks_request(&mut self) {
        self.jwks_requests = self.jwks_requests.saturating_add(1);
    }

    pub fn jwks_requests(&self) -> u64 {
        self.jwks_requests
    }

    /// The kid of the key that signs now, if one was made yet.
    pub fn current_kid(&self) -> Option<&str> {
        self.keys.last().map(|k| k.kid.as_str())
    }

    /// Makes a new signing key, published at once; the old ones stay in the JWKS.
    pub fn rotate(&mut self) -> String {
        let key = Key::generate(&mut self.rng);
        let kid = key.kid.clone();
        self.keys.push(key);
        kid
    }

    /// The OpenID configuration Backstage serves at `/api/auth/.well-known/openid-configuration`.
    pub fn openid_configuration(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "token_endpoint": format!("{}/v1/token", self.issuer),
            "userinfo_endpoint": format!("{}/v1/userinfo", self.issuer),
            "jwks_uri": format!("{}/.well-known/jwks.json", self.issuer),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": ["openid"],
            "token_endpoint_auth_methods_supported": [],
            "claims_supported": ["sub", "ent"],
            "grant_types_supported": [],
        })
    }

    /// A signed user token (making the first key if there is none yet).
    pub fn issue(&mut self, req: &UserToken) -> String {
        if self.keys.is_empty() {
            self.rotate();
        }
        let Some(key) = self.keys.last() else {
            return String::new();
        };
        let (iat, exp) = (req.now, req.now.saturating_add(req.ttl_s));
        // The identity proof: the signature of the limited-user token cut from this one.
        let uip = key.signature(&format!(
            "{}.{}",
            b64(limited_header(&key.kid).as_bytes()),
            b64(limited_payload(&req.sub, iat, exp).as_bytes())
        ));
        let mut header = Map::new();
        if let Some(typ) = &req.typ {
            header.insert("typ".into(), Value::from(typ.as_str()));
        }
        header.insert("alg".into(), Value::from("ES256"));
        header.insert("kid".into(), Value::from(key.kid.as_str()));
        let mut payload = Map::new();
        payload.insert("iss".into(), Value::from(self.issuer.as_str()));
        payload.insert("sub".into(), Value::from(req.sub.as_str()));
        if let Some(ent) = &req.ent {
            payload.insert("ent".into(), json!(ent));
        }
        payload.insert("aud".into(), Value::from(req.aud.as_str()));
        payload.insert("iat".into(), Value::from(iat));
        payload.insert("exp".into(), Value::from(exp));
        payload.insert("uip".into(), Value::from(uip));
        key.sign(
            &Value::Object(header).to_string(),
            &Value::Object(payload).to_string(),
        )
    }

    /// A plugin token from `plugin` to `target` (Backstage's service-to-service token).
    pub fn plugin_token(&self, plugin: &str, target: &str, now: i64) -> String {
        let header = json!({"typ": TYP_PLUGIN, "alg": "ES256", "kid": self.plugin_key.kid});
        let payload =
            json!({"sub": plugin, "aud": target, "iat": now, "exp": now + TOKEN_LIFETIME_S});
        self.plugin_key
            .sign(&header.to_string(), &payload.to_string())
    }
}

/// The limited-user token Backstage cuts from a user token: the user token's `kid`, `sub`,
/// `iat` and `exp` in a fixed layout, with its `uip` as signature. `None` for a token without
/// those.
pub fn limited_token(user_token: &str) -> Option<String> {
    let mut parts = user_token.split('.');
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
    let payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
    let kid = header.get("kid")?.as_str()?;
    let sub = payload.get("sub")?.as_str()?;
    let iat = payload.get("iat")?.as_i64()?;
    let exp = payload.get("exp")?.as_i64()?;
    let uip = payload.get("uip")?.as_str()?;
    Some(format!(
        "{}.{}.{uip}",
        b64(limited_header(kid).as_bytes()),
        b64(limited_payload(sub, iat, exp).as_bytes())
    ))
}

/// The limited token's header and payload, written in the one order both sides rebuild them.
fn limited_header(kid: &str) -> String {
    format!(
        r#"{{"typ":"{TYP_LIMITED_USER}","alg":"ES256","kid":{}}}"#,
        Value::from(kid)
    )
}

fn limited_payload(sub: &str, iat: i64, exp: i64) -> String {
    format!(r#"{{"sub":{},"iat":{iat},"exp":{exp}}}"#, Value::from(sub))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A random version-4 UUID, as Backstage uses for key ids.
fn uuid(rng: &mut StdRng) -> String {
    uuid_v4(rng.gen())
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshgate_core::jwks::{KeyOrigin, KeySet};
    use meshgate_core::token::UnverifiedToken;

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn tokens_have_backstage_shapes_and_verify_with_the_jwks() {
        let mut auth = AuthBackend::new("http://127.0.0.1:7007/");
        assert_eq!(
            auth.jwks(),
            json!({"keys": []}),
            "empty before the first token"
        );
        let token = auth.issue(&UserToken::new("user:default/alice", 1_000));
        let parts: Vec<&str> = token.split('.').collect();
        let kid = auth.current_kid().unwrap().to_owned();
        assert_eq!(
            decode(parts[0]),
            json!({"typ": TYP_USER, "alg": "ES256", "kid": kid})
        );
        let payload = decode(parts[1]);
        assert_eq!(payload["iss"], "http://127.0.0.1:7007/api/auth");
        assert_eq!(payload["aud"], "backstage");
        assert_eq!(payload["exp"], 1_000 + TOKEN_LIFETIME_S);
        assert!(payload.get("ent").is_none());
        let jwk = &auth.jwks()["keys"][0];
        assert_eq!(
            (&jwk["kty"], &jwk["crv"], &jwk["alg"]),
            (&json!("EC"), &json!("P-256"), &json!("ES256"))
        );
        assert!(jwk.get("use").is_none() && jwk.get("d").is_none());

        let keys = KeySet::parse(auth.jwks().to_string().as_bytes(), KeyOrigin::Remote).unwrap();
        let limited = limited_token(&token).unwrap();
        for token in [&token, &limited] {
            UnverifiedToken::parse(token, 8192)
                .unwrap()
                .verify(&keys)
                .unwrap();
        }
        assert_eq!(
            decode(limited.split('.').nth(1).unwrap()),
            json!({"sub": "user:default/alice", "iat": 1_000, "exp": 1_000 + TOKEN_LIFETIME_S})
        );
        // The plugin key is not the auth backend's.
        let plugin = auth.plugin_token("catalog", "proxy", 1_000);
        assert!(UnverifiedToken::parse(&plugin, 8192)
            .unwrap()
            .verify(&keys)
            .is_err());

        // Rotation: a new kid signs, the old one stays published.
        let new_kid = auth.rotate();
        assert_ne!(new_kid, kid);
        let mut req = UserToken::new("user:default/alice", 1_000);
        req.ent = Some(vec![
            "user:default/alice".into(),
            "group:default/data-eng".into(),
        ]);
        req.typ = None;
        let rotated = auth.issue(&req);
        let header = decode(rotated.split('.').next().unwrap());
        assert_eq!(header, json!({"alg": "ES256", "kid": new_kid}));
        assert_eq!(
            decode(rotated.split('.').nth(1).unwrap())["ent"][1],
            "group:default/data-eng"
        );
        assert_eq!(auth.jwks()["keys"].as_array().unwrap().len(), 2);
    }
}

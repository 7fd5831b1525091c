//! Test fixtures: the RFC 7515 / RFC 8037 example keys (public data from the RFCs) and a
//! signer that builds tokens with any header, so tests can forge exactly what they need.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs384, Hs512, Rsa, RsaPrivateKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm, AlgorithmSignature};
use serde_json::{json, Value};

/// RFC 7515 Appendix A.2.1: a 2048-bit RSA key.
pub fn rsa_private() -> Value {
    json!({
        "kty": "RSA",
        "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
        "e": "AQAB",
        "d": "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ",
        "p": "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc",
        "q": "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc",
        "dp": "BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0",
        "dq": "h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU",
        "qi": "IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U"
    })
}

/// RFC 7517 Appendix A.1: another 2048-bit RSA public key (no private part needed).
pub fn other_rsa_public() -> Value {
    json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB"
    })
}

/// RFC 7515 Appendix A.3.1: a P-256 key.
pub fn ec_private() -> Value {
    json!({
        "kty": "EC",
        "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
    })
}

/// RFC 8037 Appendix A.1: an Ed25519 key.
pub fn ed25519_private() -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    })
}

/// RFC 7515 Appendix A.1.1: a 64-byte HMAC key.
pub const HS_KEY_B64: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

/// The public half of a private JWK, with `kid` and (optionally) `alg` added.
pub fn public_jwk(private: &Value, kid: &str, alg: Option<&str>) -> Value {
    let mut public = private.clone();
    let obj = public.as_object_mut().unwrap();
    for member in ["d", "p", "q", "dp", "dq", "qi"] {
        obj.remove(member);
    }
    obj.insert("kid".into(), json!(kid));
    if let Some(alg) = alg {
        obj.insert("alg".into(), json!(alg));
    }
    public
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `header.claims` (both JSON values, serialized as given) with `alg` and `key`.
/// `alg` picks the signing operation; the header is not checked, so tests can lie in it.
pub fn sign(alg: &str, key: &Value, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign_bytes(alg, key, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

pub fn sign_bytes(alg: &str, key: &Value, message: &[u8]) -> Vec<u8> {
    let jwk: JsonWebKey<'_> = serde_json::from_value(key.clone()).unwrap();
    match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
            let sk = RsaPrivateKey::try_from(&jwk).unwrap();
            Rsa::with_name(alg).sign(&sk, message).as_bytes().to_vec()
        }
        "ES256" => {
            let sk = <Es256 as Algorithm>::SigningKey::try_from(&jwk).unwrap();
            Es256.sign(&sk, message).as_bytes().to_vec()
        }
        "EdDSA" => {
            let sk = <Ed25519 as Algorithm>::SigningKey::try_from(&jwk).unwrap();
            Ed25519.sign(&sk, message).as_bytes().to_vec()
        }
        "HS256" => Hs256
            .sign(
                &<Hs256 as Algorithm>::SigningKey::try_from(&jwk).unwrap(),
                message,
            )
            .as_bytes()
            .to_vec(),
        "HS384" => Hs384
            .sign(
                &<Hs384 as Algorithm>::SigningKey::try_from(&jwk).unwrap(),
                message,
            )
            .as_bytes()
            .to_vec(),
        "HS512" => Hs512
            .sign(
                &<Hs512 as Algorithm>::SigningKey::try_from(&jwk).unwrap(),
                message,
            )
            .as_bytes()
            .to_vec(),
        other => panic!("test signer has no algorithm {other}"),
    }
}

pub fn hs_key_jwk(alg: &str) -> Value {
    json!({"kty": "oct", "k": HS_KEY_B64, "alg": alg, "kid": "hs"})
}

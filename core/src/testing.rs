//! The test keys and signer of `meshgate-test-support` in the shape core's unit tests call
//! them: the keys as they are, the signer panicking (with the reason) instead of returning an
//! error, and the HMAC key as `kid: hs`.

pub use meshgate_test_support::keys::{
    ec384_private, ec521_private, ec_private, ed25519_private, other_rsa_public, public_jwk,
    rsa_private,
};
pub use meshgate_test_support::sign::b64;
use serde_json::Value;

/// [`meshgate_test_support::sign::sign`], panicking on a fixture that cannot sign.
pub fn sign(alg: &str, key: &Value, header: &Value, claims: &Value) -> String {
    meshgate_test_support::sign::sign(alg, key, header, claims)
        .unwrap_or_else(|e| panic!("test signer, {alg}: {e}"))
}

/// [`meshgate_test_support::sign::sign_bytes`], panicking on a fixture that cannot sign.
pub fn sign_bytes(alg: &str, key: &Value, message: &[u8]) -> Vec<u8> {
    meshgate_test_support::sign::sign_bytes(alg, key, message)
        .unwrap_or_else(|e| panic!("test signer, {alg}: {e}"))
}

/// The RFC 7515 A.1 HMAC key as a key set entry with `alg` and `kid: "hs"`.
pub fn hs_key_jwk(alg: &str) -> Value {
    meshgate_test_support::keys::hs_jwk("hs", alg)
}

/// `decide` on `claims` (a JSON object, as a verified token would carry them) for a
/// bodiless request without headers, with no catalog: what the rule tests ask.
pub fn decide_on_claims(
    policy: &crate::Policy,
    claims: &Value,
    method: &str,
    authority: &str,
    path: &str,
    now: i64,
) -> crate::Verdict {
    let claims = claims
        .as_object()
        .cloned()
        .unwrap_or_else(|| panic!("claims must be a JSON object: {claims}"));
    let req = crate::Request {
        method,
        authority,
        path,
        headers: &[],
    };
    crate::decide(
        policy,
        crate::Credential::Claims(claims),
        crate::policy::catalog::CatalogState::NotConfigured,
        &req,
        crate::UnixTime::from_secs(now),
    )
}

//! The known-answer test a signature backend must pass before it verifies any token: the
//! keys go through the same parsing and DER encoding as a provider's keys, so a wrong
//! encoding fails here, not on traffic.

use crate::token::alg::Algorithm;
use crate::token::jwks::{KeyOrigin, KeySet};
use crate::token::signature::{
    host_form, BackendError, HostForm, SignatureBackend, SignatureCheck,
};

/// Public keys of RFC 7515 Appendices A.2 (RSA) and A.3 (P-256), meshgate's P-384 test key
/// and RFC 7520 §3.2's P-521 key.
const SELF_TEST_JWKS: &str = r#"{"keys": [
{"kty": "RSA", "kid": "rsa", "e": "AQAB", "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"},
{"kty": "EC", "kid": "ec", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
{"kty": "EC", "kid": "ec384", "crv": "P-384", "x": "G-0VCQebNFg-D0Gw4zK2OzCtBhZXRTyCmXzUQaddeS9pmLwE1iCZhaplwXrBa3n8", "y": "Q9a--ydchrxxngl0KspVsxmY2fQsdgyZkWfiJK02gkLch5o3S7AvMMtbRGqWLeoN"},
{"kty": "EC", "kid": "bilbo.baggins@hobbiton.example", "crv": "P-521", "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt", "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1"}
]}"#;

/// RFC 7515 Appendix A.2: RS256.
pub(crate) const RFC7515_A2: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
/// RFC 7515 Appendix A.3: ES256 (raw `r ‖ s`).
pub(crate) const RFC7515_A3: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
/// The A.2 payload under an RS384 and an RS512 header, signed with the A.2 key
/// (`openssl dgst -sha384|-sha512 -sign`; PKCS#1 v1.5 is deterministic, and a unit test
/// checks both in Rust).
pub(crate) const RS384_A2_KEY: &str = "eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.UqgNjrJOGhk4wfoSG6Uvrt9GcKu-TgPwInExALrMBadg1pol1uTw7mZADTddAWsC6ZzdFiTFUmIi7DuD38ftLAZoW4qezdAO7RYf1yZDsbT20bt8DJJN1I4VovL2PLg80B6x6ug-kaW8k5LaM5ce0dk1zgWhjafKC3Mb4UNLL8f9fqVMkHpdWYRjF6QjTz12Ap-gq-tPyUoWSdvzCIYOcZ9-08SQQdUTTgsNF1Qwu3TqeWPqzNJwmWHiHMmaV8I4ktMFEX-AiEBa55KsfYTx0jSbTHP-odqmnLQJ4n-oQJ2RSXy0HQP6BkdiwDHdoMUk4z_wAeOsfDTs_mLxTgOInQ";
pub(crate) const RS512_A2_KEY: &str = "eyJhbGciOiJSUzUxMiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.ZatQfsb2gyCu3y9cDuz59a-IKm4bkqtT0HuT8BpNlPCmA3Y2eH91CVSI0TbkPqI9v2jaXuWvPcoJGNRtTpUXafTAbqzxWSMjqx8SkJRTuUz6imaHBctra42j2AvJ1t7qJwf2NN49y9PZbkYn3ejhU-iCmKJ3J-_GLsYp5VlximYm-o3sMul0tyCMvHUdmuWvadnVEaio-jix3pXYWfyFC8tp19zZrTaofxTAzCqlqundx22tfsuqchto_zVnZk_ZBr1R5lr29Qle5JgLmRkfDNbVSQZFdwg6mSlODL8BrOiM_vreMaPCO8U_JGezKUob0ONv7DA7XDfpbaXaFsHipQ";
/// The A.2 payload under an ES384 header, signed once with meshgate's P-384 test key
/// (`testing::ec384_private`) by Python's `cryptography` (OpenSSL). No RFC has an ES384
/// example.
pub(crate) const ES384_TEST_KEY: &str = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.n_qnPEeS44EDwZQdrFBThzonwXaDZusgYAo7-lbesPlDbzrEN_XmPeQNweZ94Ti5XiW4UXwWucFzAc7JocV0LGO99TRL5hrdCKK9LKL7YnZCod2wKVX7dkVxfjc8VFwg";
/// RFC 7520 §4.3: ES512 over the cookbook's text payload (not a JSON object, so it is not
/// a token meshgate would accept; the signature layer is what is tested).
pub(crate) const RFC7520_4_3: &str = "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kvAD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2";

/// The known answers of the self-test: a compact JWS, its algorithm, the key that signed
/// it, and whether the same signature over altered bytes is also tried.
const SELF_TEST_VECTORS: [(&str, Algorithm, &str, bool); 6] = [
    (RFC7515_A2, Algorithm::Rs256, "rsa", true),
    (RS384_A2_KEY, Algorithm::Rs384, "rsa", false),
    (RS512_A2_KEY, Algorithm::Rs512, "rsa", false),
    (RFC7515_A3, Algorithm::Es256, "ec", true),
    (ES384_TEST_KEY, Algorithm::Es384, "ec384", true),
    (
        RFC7520_4_3,
        Algorithm::Es512,
        "bilbo.baggins@hobbiton.example",
        true,
    ),
];

/// Why a backend is not trusted with signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelfTestError {
    #[error("{0}")]
    Unavailable(BackendError),
    #[error("it rejects a valid {alg} signature")]
    RejectsValid { alg: &'static str },
    #[error("it accepts a wrong {alg} signature")]
    AcceptsInvalid { alg: &'static str },
    /// The built-in vectors themselves didn't parse (a bug here, not in the backend).
    #[error("self-test vector `{alg}` is unusable")]
    Vector { alg: &'static str },
}

/// Checks a backend on known answers before it verifies any token: RFC 7515's RS256 and
/// ES256 examples, RFC 7520's ES512 example, an ES384 signature by meshgate's test key and
/// RS384/RS512 signatures by the RFC 7515 key must verify, and the same signatures over
/// other bytes must not. The keys go through the same parsing and DER encoding as a
/// provider's keys, so a wrong encoding fails here, not on traffic.
pub fn self_test(backend: &dyn SignatureBackend) -> Result<(), SelfTestError> {
    let keys = KeySet::parse(SELF_TEST_JWKS.as_bytes(), KeyOrigin::Remote)
        .map_err(|_| SelfTestError::Vector { alg: "JWKS" })?;
    for (token, alg, kid, also_tampered) in SELF_TEST_VECTORS {
        let vector = || SelfTestError::Vector { alg: alg.name() };
        let (message, signature) = token.rsplit_once('.').ok_or_else(vector)?;
        let signature =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
                .map_err(|_| vector())?;
        let key = keys.candidates(Some(kid)).next().ok_or_else(vector)?;
        let HostForm::Check {
            hash,
            public_key,
            signature,
        } = host_form(alg, key, &signature)
        else {
            return Err(vector());
        };
        let check = SignatureCheck {
            hash,
            public_key,
            signature: &signature,
            message: message.as_bytes(),
        };
        if !backend.verify(&check).map_err(SelfTestError::Unavailable)? {
            return Err(SelfTestError::RejectsValid { alg: alg.name() });
        }
        if also_tampered {
            let mut message = check.message.to_vec();
            if let Some(last) = message.last_mut() {
                *last ^= 0x01;
            }
            let tampered = SignatureCheck {
                message: &message,
                ..check
            };
            if backend
                .verify(&tampered)
                .map_err(SelfTestError::Unavailable)?
            {
                return Err(SelfTestError::AcceptsInvalid { alg: alg.name() });
            }
        }
    }
    Ok(())
}

#!/usr/bin/env python3
"""Writes core/tests/cases/interop.json: tokens and key sets as real IdPs publish them.

ES384/ES512 tokens, a key without `kid`, an `oct` key without `alg`, a key set in Google's
X.509 form, a provider without `issuer`, and the strict header and NumericDate rules.
Every token is built here as exact bytes (the corpus runner's `$JWKS` keys don't include
P-384/P-521 keys or certificates), signed with keys derived from fixed seeds, and expires
in 2100 so the cases also hold against a real clock (the corpus through Envoy). ECDSA
signatures are randomized, so regenerating changes the token bytes, not the outcomes.

    python3 core/tests/gen/interop.py      # regenerate after editing (needs `cryptography`)
"""
import base64
import datetime
import hashlib
import hmac
import json
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID

FAR = 4102444800  # 2100-01-01
EC_ISS = "https://ec.meshgate.test"
GOOGLE_ISS = "https://securetoken.google.com/meshgate-demo"
HS_KEY = hashlib.sha512(b"meshgate interop hmac key").digest()  # 64 bytes
ANY_KEY = hashlib.sha256(b"meshgate any-issuer hmac key").digest()  # 32 bytes


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ec_key(curve, name: str, size: int):
    d = int.from_bytes(hashlib.sha512(b"meshgate test key " + name.encode()).digest(), "big") % (2 ** (size * 8 - 8))
    return ec.derive_private_key(d, curve)


P384 = ec_key(ec.SECP384R1(), "P-384", 48)  # the key of testing::ec384_private
P521 = ec_key(ec.SECP521R1(), "P-521", 66)
RSA = rsa.generate_private_key(65537, 2048)  # only its certificate is published
RSA_NO_KID = rsa.generate_private_key(65537, 2048)


def ec_jwk(key, crv: str, size: int, kid: str) -> dict:
    n = key.public_key().public_numbers()
    return {"kty": "EC", "crv": crv, "kid": kid, "x": b64(n.x.to_bytes(size, "big")), "y": b64(n.y.to_bytes(size, "big"))}


def rsa_jwk(key, **extra) -> dict:
    n = key.public_key().public_numbers()
    return {"kty": "RSA", "n": b64(n.n.to_bytes(256, "big")), "e": b64(n.e.to_bytes(3, "big")), **extra}


def claims(iss=EC_ISS, **extra) -> bytes:
    body = {"iss": iss, "sub": "alice", "aud": "meshgate-demo", "exp": FAR, "groups": ["data-eng"]}
    body.update(extra)
    return json.dumps(body, separators=(",", ":")).encode()


def signed(header, payload: bytes, sign) -> str:
    header = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    signing_input = f"{b64(header)}.{b64(payload)}".encode()
    return f"{signing_input.decode()}.{b64(sign(signing_input))}"


def es(key, size, hash_alg):
    def sign(data):
        r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hash_alg)))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return sign


def rs(key):
    return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def hs(secret, digest=hashlib.sha256):
    return lambda data: hmac.new(secret, data, digest).digest()


def certificate(key) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.system.gserviceaccount.com")])
    start = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(start).not_valid_after(start + datetime.timedelta(days=14))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


ES384 = es(P384, 48, hashes.SHA384())
ES512 = es(P521, 66, hashes.SHA512())
GOOGLE_KID = "8d2c1f0e6b5a49d3c7e1f2a0b9d8c7e6f5a4b3c2"

config = {
    "providers": {
        "ec": {
            "issuer": EC_ISS,
            "audiences": ["meshgate-demo"],
            "local_jwks": {"inline": {"keys": [
                ec_jwk(P384, "P-384", 48, "p384"),
                ec_jwk(P521, "P-521", 66, "p521"),
                # No `kid`: a candidate for any token's kid (RFC 7515 §4.1.4).
                rsa_jwk(RSA_NO_KID, alg="RS256"),
                # No `alg`: HS256, HS384 and HS512 (64 bytes is enough for all three).
                {"kty": "oct", "kid": "hs", "k": b64(HS_KEY)},
            ]}},
        },
        "google": {
            "issuer": GOOGLE_ISS,
            "audiences": ["meshgate-demo"],
            # Google's X.509 form, as `securetoken@system.gserviceaccount.com` publishes it.
            "local_jwks": {"inline_string": json.dumps({GOOGLE_KID: certificate(RSA)})},
        },
        # No `issuer`: any issuer, for tokens found in `x-any-token`.
        "any": {
            "audiences": ["meshgate-demo"],
            "from_headers": [{"name": "x-any-token"}],
            "local_jwks": {"inline": {"keys": [{"kty": "oct", "kid": "any", "alg": "HS256", "k": b64(ANY_KEY)}]}},
        },
    },
    "rules": [
        {"id": "airflow-read", "action": "allow", "hosts": ["airflow.internal"], "methods": ["GET"],
         "paths": ["/api/v1/dags"], "when": {"groups_any": ["data-eng"]}},
    ],
}


def req(header=None):
    r = {"method": "GET", "host": "airflow.internal", "path": "/api/v1/dags"}
    if header:
        r["token_in"] = header
    return r


def deny(code, status=401):
    return {"decision": "deny", "code": code, "status": status}


ALLOW = {"decision": "allow", "code": "rule_allowed", "status": 200, "rule_id": "airflow-read"}
GOOD_HS = signed({"alg": "HS256", "kid": "hs"}, claims(), hs(HS_KEY))

cases = [
    # ES384 / ES512.
    ("ES384 token, P-384 key", signed({"alg": "ES384", "kid": "p384"}, claims(), ES384), req(), ALLOW),
    ("ES512 token, P-521 key", signed({"alg": "ES512", "kid": "p521"}, claims(), ES512), req(), ALLOW),
    ("ES384 header on the P-521 key", signed({"alg": "ES384", "kid": "p521"}, claims(), ES384), req(), deny("algorithm_not_allowed")),
    ("ES512 token signed by the P-384 key", signed({"alg": "ES512", "kid": "p521"}, claims(), lambda d: ES384(d) + ES384(d)[:36]), req(), deny("signature_invalid")),
    ("ES384 signature in DER, not r||s", signed({"alg": "ES384", "kid": "p384"}, claims(), lambda d: P384.sign(d, ec.ECDSA(hashes.SHA384()))), req(), deny("signature_invalid")),
    # A key without kid.
    ("token kid matches no key; the key without kid verifies it", signed({"alg": "RS256", "kid": "rotated-2026"}, claims(), rs(RSA_NO_KID)), req(), ALLOW),
    ("token without kid; the key without kid verifies it", signed({"alg": "RS256"}, claims(), rs(RSA_NO_KID)), req(), ALLOW),
    ("unknown kid, and the key without kid does not verify it", signed({"alg": "RS256", "kid": "rotated-2026"}, claims(), rs(RSA)), req(), deny("key_unknown")),
    # An oct key without alg.
    *[(f"{alg} with the oct key without alg", signed({"alg": alg, "kid": "hs"}, claims(), hs(HS_KEY, digest)), req(), ALLOW)
      for alg, digest in [("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)]],
    # Google's X.509 form.
    ("RS256 token, key from a certificate, kid from its map key", signed({"alg": "RS256", "kid": GOOGLE_KID}, claims(GOOGLE_ISS), rs(RSA)), req(), ALLOW),
    ("RS256 token naming another certificate", signed({"alg": "RS256", "kid": "not-published"}, claims(GOOGLE_ISS), rs(RSA)), req(), deny("key_unknown")),
    # A provider without issuer: chosen by where the token was found.
    ("any issuer, token in the any-issuer provider's header", signed({"alg": "HS256", "kid": "any"}, claims("https://whoever.example"), hs(ANY_KEY)), req("x-any-token"), ALLOW),
    ("no iss at all, token in the any-issuer provider's header", signed({"alg": "HS256", "kid": "any"}, json.dumps({"sub": "alice", "aud": "meshgate-demo", "exp": FAR, "groups": ["data-eng"]}).encode(), hs(ANY_KEY)), req("x-any-token"), ALLOW),
    ("unknown issuer as a bearer token: no provider without issuer reads it", signed({"alg": "HS256", "kid": "any"}, claims("https://whoever.example"), hs(ANY_KEY)), req(), deny("issuer_unknown")),
    ("any-issuer header, wrong key", signed({"alg": "HS256", "kid": "any"}, claims("https://whoever.example"), hs(HS_KEY)), req("x-any-token"), deny("signature_invalid")),
    ("a configured issuer in the any-issuer header goes to its own provider", GOOD_HS, req("x-any-token"), deny("token_location_not_allowed")),
    # Strict JWS headers.
    ("header is a JSON array", signed(b'["HS256","hs"]', claims(), hs(HS_KEY)), req(), deny("token_invalid")),
    ("crit present but empty", signed(b'{"alg":"HS256","kid":"hs","crit":[]}', claims(), hs(HS_KEY)), req(), deny("token_invalid")),
    ("zip on a JWS", signed(b'{"alg":"HS256","kid":"hs","zip":"DEF"}', claims(), hs(HS_KEY)), req(), deny("token_invalid")),
    # NumericDates no clock reaches.
    ("exp 1e300", signed({"alg": "HS256", "kid": "hs"}, claims(exp=1e300), hs(HS_KEY)), req(), deny("token_invalid")),
    ("exp 2^64", signed({"alg": "HS256", "kid": "hs"}, claims(exp=2 ** 64), hs(HS_KEY)), req(), deny("token_invalid")),
    ("exp a huge float with a fraction", signed({"alg": "HS256", "kid": "hs"}, claims(exp=1.5e19), hs(HS_KEY)), req(), deny("token_invalid")),
    ("nbf 2^64", signed({"alg": "HS256", "kid": "hs"}, claims(nbf=2 ** 64), hs(HS_KEY)), req(), deny("token_invalid")),
    ("negative iat", signed({"alg": "HS256", "kid": "hs"}, claims(iat=-1), hs(HS_KEY)), req(), deny("token_invalid")),
    ("exp in year 9999 is still a time", signed({"alg": "HS256", "kid": "hs"}, claims(exp=253402300799), hs(HS_KEY)), req(), ALLOW),
]

out = {
    "description": "tokens and key sets as real IdPs publish them (generated by core/tests/gen/interop.py)",
    "now": 1700000000,
    "config": config,
    "cases": [],
}
for description, token, request, expect in cases:
    out["cases"].append({"description": description, "token": token, "request": request, "expect": expect})

target = pathlib.Path(__file__).parent.parent / "cases" / "interop.json"
target.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {len(cases)} cases to {target}")

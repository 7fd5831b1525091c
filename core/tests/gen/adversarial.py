#!/usr/bin/env python3
"""Writes core/tests/cases/adversarial.json: the adversarial token, path and header corpus.

Tokens that need exact bytes (duplicate keys, whitespace, forged HMACs) are built here as
raw strings, signed with the RFC 7515 A.1 HMAC key (`hs`) where a valid signature matters,
and expire in 2100 so they also work against a real clock (the corpus through Envoy).
Tokens the runner can mint (`{alg, key, header, claims}`) are left to it.

    python3 core/tests/gen/adversarial.py      # regenerate after editing
"""
import base64
import hashlib
import hmac
import json
import pathlib

ISS = "https://idp.meshgate.test"
FAR = 4102444800  # 2100-01-01
HS_KEY = base64.urlsafe_b64decode(
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow=="
)
# RFC 7515 A.2 public key as the demo JWKS publishes it: the bytes an attacker would use as
# an HMAC secret in the key-confusion attack.
RSA_PUBLIC_JWK = json.dumps({
    "kty": "RSA",
    "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
    "e": "AQAB", "kid": "rsa", "alg": "RS256",
}, separators=(",", ":")).encode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_hs(header: bytes, payload: bytes, key: bytes = HS_KEY) -> str:
    """header and payload as exact bytes, HMAC-SHA256 signed."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def claims(**extra) -> bytes:
    body = {"iss": ISS, "sub": "alice", "aud": "meshgate-demo", "exp": FAR, "groups": ["data-eng"]}
    body.update(extra)
    return json.dumps(body, separators=(",", ":")).encode()


HS_HEADER = b'{"alg":"HS256","kid":"hs"}'
NONE_HEADER = b'{"alg":"none"}'
GOOD = raw_hs(HS_HEADER, claims())
GOOD_INPUT, GOOD_SIG = GOOD.rsplit(".", 1)


def minted(alg="RS256", key="rsa", header=None, **claim_overrides):
    body = {"iss": ISS, "sub": "alice", "aud": "meshgate-demo", "iat": "now-10", "exp": "now+3600", "groups": ["data-eng"]}
    body.update(claim_overrides)
    spec = {"alg": alg, "key": key, "claims": body}
    if header is not None:
        spec["header"] = header
    return spec


def req(path="/api/v1/dags", method="GET", host="airflow.internal", **kw):
    return {"method": method, "host": host, "path": path, **kw}


def deny(code, status=401):
    return {"decision": "deny", "code": code, "status": status}


ALLOW = {"decision": "allow", "code": "rule_allowed", "status": 200, "rule_id": "airflow-read"}

cases = [
    # The baseline the forgeries below are made from: it must pass, or they prove nothing.
    ("baseline HS256 token built by this generator", GOOD, req(), ALLOW),
    # alg none in every spelling, unsigned.
    *[(f"alg {alg}", f"{b64(json.dumps({'alg': alg}).encode())}.{b64(claims())}.", req(), deny("algorithm_not_allowed"))
      for alg in ["none", "None", "NONE", "nOnE"]],
    ("alg none with a signature attached", f"{b64(NONE_HEADER)}.{b64(claims())}.{GOOD_SIG}", req(), deny("algorithm_not_allowed")),
    # Key confusion: HS256 keyed with the RSA public key the JWKS publishes.
    ("HS256 signed with the RSA public key, kid of the RSA key", raw_hs(b'{"alg":"HS256","kid":"rsa"}', claims(), RSA_PUBLIC_JWK), req(), deny("algorithm_not_allowed")),
    ("HS256 signed with the RSA public key, no kid", raw_hs(b'{"alg":"HS256"}', claims(), RSA_PUBLIC_JWK), req(), deny("signature_invalid")),
    ("RS256 header claiming the EC key", minted(header={"alg": "RS256", "kid": "ec"}), req(), deny("algorithm_not_allowed")),
    ("ES256 header claiming the RSA key", minted("ES256", "ec", header={"alg": "ES256", "kid": "rsa"}), req(), deny("algorithm_not_allowed")),
    # kid tricks: never a path, a query or a URL; just a string that matches nothing.
    *[(f"kid {name}", minted(header={"alg": "RS256", "kid": kid}), req(), deny("key_unknown"))
      for name, kid in [("with path characters", "../../../../etc/passwd"), ("with SQL", "' OR '1'='1' --"),
                        ("with a NUL", "rsa\u0000"), ("as a URL", "https://evil.example/jwks.json"), ("4 KB long", "k" * 4096)]],
    ("kid as a number", minted(header={"alg": "RS256", "kid": 1}), req(), deny("token_invalid")),
    # Key-carrying headers are ignored: a valid token with them is still judged by our keys...
    ("jku, x5u and jwk headers on a valid token are ignored", minted(header={"alg": "RS256", "kid": "rsa", "jku": "https://evil.example/jwks", "x5u": "https://evil.example/cert.pem", "jwk": {"kty": "oct", "k": "AA"}}), req(), ALLOW),
    # ...and an attacker's embedded key never verifies anything.
    ("embedded jwk with the attacker's secret", raw_hs(json.dumps({"alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"attacker-secret-attacker-secret!")}}).encode(), claims(), b"attacker-secret-attacker-secret!"), req(), deny("signature_invalid")),
    ("crit header naming an unknown extension", raw_hs(b'{"alg":"HS256","kid":"hs","crit":["x-meshgate-ext"],"x-meshgate-ext":1}', claims()), req(), deny("token_invalid")),
    # Duplicate members: parsers disagree on which one counts.
    ("duplicate alg in the header", raw_hs(b'{"alg":"none","alg":"HS256","kid":"hs"}', claims()), req(), deny("token_invalid")),
    ("duplicate iss in the payload", raw_hs(HS_HEADER, b'{"iss":"https://evil.example","iss":"' + ISS.encode() + b'","sub":"alice","aud":"meshgate-demo","exp":4102444800,"groups":["data-eng"]}'), req(), deny("token_invalid")),
    ("duplicate groups in the payload", raw_hs(HS_HEADER, b'{"iss":"' + ISS.encode() + b'","sub":"alice","aud":"meshgate-demo","exp":4102444800,"groups":[],"groups":["data-eng"]}'), req(), deny("token_invalid")),
    # Claim types.
    ("iss as an array", raw_hs(HS_HEADER, claims(iss=[ISS])), req(), deny("token_invalid")),
    ("iss as a number", raw_hs(HS_HEADER, claims(iss=7)), req(), deny("token_invalid")),
    ("sub as an object", raw_hs(HS_HEADER, claims(sub={"id": "alice"})), req(), deny("token_invalid")),
    ("aud array with the right value among wrong ones", raw_hs(HS_HEADER, claims(aud=["a", "meshgate-demo", "b"])), req(), ALLOW),
    ("aud array of wrong values", raw_hs(HS_HEADER, claims(aud=["a", "b"])), req(), deny("audience_mismatch")),
    ("exp as a string", raw_hs(HS_HEADER, claims(exp=str(FAR))), req(), deny("token_invalid")),
    ("exp as a float", raw_hs(HS_HEADER, claims(exp=FAR + 0.5)), req(), ALLOW),
    # No clock reaches these: refused as malformed, never clamped to "never expires".
    ("exp huge", raw_hs(HS_HEADER, claims(exp=10**30)), req(), deny("token_invalid")),
    ("exp negative", raw_hs(HS_HEADER, claims(exp=-1)), req(), deny("token_invalid")),
    ("exp null", raw_hs(HS_HEADER, claims(exp=None)), req(), deny("token_invalid")),
    ("exp missing", raw_hs(HS_HEADER, json.dumps({"iss": ISS, "sub": "alice", "aud": "meshgate-demo", "groups": ["data-eng"]}).encode()), req(), deny("token_invalid")),
    ("nbf as a string", raw_hs(HS_HEADER, claims(nbf="0")), req(), deny("token_invalid")),
    ("groups with a non-string entry", raw_hs(HS_HEADER, claims(groups=["data-eng", 1])), req(), deny("token_invalid")),
    ("2,000-element groups claim (max_groups 1024)", raw_hs(HS_HEADER, claims(groups=[f"g{i}" for i in range(2000)])), req(), deny("token_invalid")),
    ("deeply nested payload", raw_hs(HS_HEADER, b'{"iss":"' + ISS.encode() + b'","exp":4102444800,"x":' + b"[" * 200 + b"]" * 200 + b"}"), req(), deny("token_invalid")),
    # Encoding and structure.
    ("signature of another token", f"{raw_hs(HS_HEADER, claims(sub='mallory')).rsplit('.', 1)[0]}.{GOOD_SIG}", req(), deny("signature_invalid")),
    ("padding on the signature", f"{GOOD}=", req(), deny("token_invalid")),
    ("standard base64 alphabet", GOOD.replace("-", "+").replace("_", "/") if ("-" in GOOD or "_" in GOOD) else GOOD + "+", req(), deny("token_invalid")),
    ("whitespace inside the token", f"{GOOD_INPUT[:10]} {GOOD_INPUT[10:]}.{GOOD_SIG}", req(), deny("token_invalid")),
    ("extra dot at the end", f"{GOOD}.", req(), deny("token_invalid")),
    ("five parts (JWE shape)", f"{GOOD}.a.b", req(), deny("token_invalid")),
    ("two parts", GOOD_INPUT, req(), deny("token_invalid")),
    ("empty parts", "..", req(), deny("token_invalid")),
    ("truncated signature (still valid base64url)", GOOD[:-4], req(), deny("signature_invalid")),
    ("signature cut to invalid base64url length", GOOD[:-1] if len(GOOD_SIG) % 4 == 2 else GOOD[:-2], req(), deny("token_invalid")),
    # Headers around the token.
    ("x-forwarded-* never carries identity", None, req(headers={"x-forwarded-user": "admin", "x-forwarded-email": "admin@example.com", "x-forwarded-groups": "data-eng"}), deny("token_missing")),
    ("Authorization with a Basic scheme", None, req(headers={"authorization": "Basic YWRtaW46YWRtaW4="}), deny("token_missing")),
    # Path tricks (with a valid token, so only the path decides).
    ("/api;foo/..", GOOD, req("/api;foo/../admin/users"), deny("path_rejected", 400)),
    ("%2F in the path", GOOD, req("/api/v1/dags%2F..%2F..%2Fadmin"), deny("path_rejected", 400)),
    ("%5C in the path", GOOD, req("/admin%5Cusers"), deny("path_rejected", 400)),
    ("double-encoded dot segment stays literal", GOOD, req("/%252e%252e/admin/users"), deny("no_rule_matched", 403)),
    ("dot segments above the root", GOOD, req("/../../admin/users"), deny("rule_denied", 403)),
]

config = json.loads((pathlib.Path(__file__).parent.parent / "cases" / "vertical_slice.json").read_text())["config"]
# Room for the large-groups token, so max_groups (not the size limit) is what refuses it.
config["max_token_bytes"] = 65536
out = {
    "description": "adversarial tokens, paths and headers (generated by core/tests/gen/adversarial.py)",
    "now": 1700000000,
    "config": config,
    "cases": [],
}
for description, token, request, expect in cases:
    case = {"description": description}
    if token is not None:
        case["token"] = token
    case["request"] = request
    case["expect"] = expect
    out["cases"].append(case)

target = pathlib.Path(__file__).parent.parent / "cases" / "adversarial.json"
target.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {len(cases)} cases to {target}")

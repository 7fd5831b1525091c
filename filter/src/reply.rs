//! The local reply for a denied request: status, RFC 6750 challenge, JSON body.

use meshgate_core::DenyCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Builds the reply for `code`. The body and challenge carry the code's fixed public
/// message, never the detailed reason, so no token contents leave the proxy.
pub fn denial(code: DenyCode, realm: &str) -> LocalReply {
    let status = code.http_status();
    let mut headers = vec![("content-type", String::from("application/json"))];
    if status == 401 {
        let challenge = if code.is_invalid_token() {
            format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                code.public_message()
            )
        } else {
            // RFC 6750 §3.1: no error attribute when the request had no credentials.
            format!("Bearer realm=\"{realm}\"")
        };
        headers.push(("www-authenticate", challenge));
    }
    let body = serde_json::json!({"code": code.as_str(), "message": code.public_message()});
    LocalReply {
        status,
        headers,
        body: body.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let cases = [
            (DenyCode::TokenMissing, 401, Some("Bearer realm=\"r\"")),
            (
                DenyCode::TokenExpired,
                401,
                Some("Bearer realm=\"r\", error=\"invalid_token\", error_description=\"the token has expired\""),
            ),
            (DenyCode::RuleDenied, 403, None),
            (DenyCode::PathRejected, 400, None),
        ];
        for (code, status, challenge) in cases {
            let reply = denial(code, "r");
            assert_eq!(reply.status, status);
            let got = reply
                .headers
                .iter()
                .find(|(n, _)| *n == "www-authenticate")
                .map(|(_, v)| v.as_str());
            assert_eq!(got, challenge, "{code}");
            let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(body["code"], code.as_str());
        }
    }
}

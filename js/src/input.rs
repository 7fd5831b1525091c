//! What comes in from JavaScript: claims and the request, checked field by field so an
//! error names the field the way configuration errors do.

use std::fmt;

use meshgate_core::ConfigError;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{json, Map, Value};

/// Bad input, reported to JavaScript instead of thrown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// `config`, `claims` or `request`.
    pub kind: &'static str,
    /// JSON path of the offending field, `(root)` for the document itself.
    pub path: String,
    pub message: String,
}

impl InputError {
    fn claims(path: impl Into<String>, message: impl Into<String>) -> InputError {
        InputError {
            kind: "claims",
            path: path.into(),
            message: message.into(),
        }
    }

    fn request(path: impl Into<String>, message: impl Into<String>) -> InputError {
        InputError {
            kind: "request",
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"error": {"kind": self.kind, "path": self.path, "message": self.message}})
    }
}

impl From<ConfigError> for InputError {
    fn from(e: ConfigError) -> InputError {
        InputError {
            kind: "config",
            path: e.path,
            message: e.reason.to_string(),
        }
    }
}

const ROOT: &str = "(root)";

/// A JSON object whose top-level keys are unique. The filter refuses a token with a
/// duplicate claim (`{"iss":"a","iss":"b"}`), so a preview must not quietly pick one.
struct UniqueClaims(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueClaims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ClaimsVisitor;
        impl<'de> Visitor<'de> for ClaimsVisitor {
            type Value = UniqueClaims;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of claims")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueClaims, A::Error> {
                let mut out = Map::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    if out.contains_key(&key) {
                        let shown: String = key.chars().take(64).collect();
                        return Err(de::Error::custom(format!("duplicate claim `{shown}`")));
                    }
                    out.insert(key, value);
                }
                Ok(UniqueClaims(out))
            }
        }
        deserializer.deserialize_map(ClaimsVisitor)
    }
}

/// The claims of a token taken as verified: one JSON object, keys unique.
pub(crate) fn parse_claims(text: &str) -> Result<Map<String, Value>, InputError> {
    serde_json::from_str::<UniqueClaims>(text)
        .map(|c| c.0)
        .map_err(|e| InputError::claims(ROOT, e.to_string()))
}

/// The request as the filter would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInput {
    pub method: String,
    /// `:authority`, as given (meshgate lowercases it and drops the port itself).
    pub authority: String,
    /// `:path`, raw: query included, not normalized.
    pub path: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub now: Option<i64>,
}

const REQUEST_FIELDS: [&str; 6] = ["method", "url", "host", "path", "headers", "now"];

pub(crate) fn parse_request(text: &str) -> Result<RequestInput, InputError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| InputError::request(ROOT, e.to_string()))?;
    let Value::Object(fields) = value else {
        return Err(InputError::request(
            ROOT,
            format!("expected an object, got {}", type_name(&value)),
        ));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !REQUEST_FIELDS.contains(&k.as_str()))
    {
        return Err(InputError::request(
            unknown.as_str(),
            format!(
                "unknown field `{unknown}`, expected one of {}",
                REQUEST_FIELDS.join(", ")
            ),
        ));
    }
    let method = method(&fields)?;
    let (authority, path) = match (fields.get("url"), fields.get("host"), fields.get("path")) {
        (Some(url), None, None) => split_url(string(url, "url")?)?,
        (None, Some(host), Some(path)) => {
            let host = string(host, "host")?;
            if host.is_empty() {
                return Err(InputError::request("host", "must not be empty"));
            }
            (host.to_owned(), string(path, "path")?.to_owned())
        }
        (Some(_), _, _) => {
            return Err(InputError::request(
                "url",
                "give either `url` or `host` and `path`, not both",
            ))
        }
        (None, None, _) => {
            return Err(InputError::request(
                ROOT,
                "missing `url` (or `host` and `path`)",
            ))
        }
        (None, Some(_), None) => return Err(InputError::request("path", "missing field")),
    };
    let headers = match fields.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(headers)) => headers
            .iter()
            .map(|(name, value)| {
                let path = format!("headers.{name}");
                let value = string(value, &path)?;
                Ok((name.to_ascii_lowercase(), value.to_owned()))
            })
            .collect::<Result<Vec<_>, InputError>>()?,
        Some(other) => {
            return Err(InputError::request(
                "headers",
                format!("expected an object of strings, got {}", type_name(other)),
            ))
        }
    };
    let now = match fields.get("now") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_i64()
                .or_else(|| n.as_f64().and_then(seconds_from_f64))
                .ok_or_else(|| InputError::request("now", format!("{n} is out of range")))?,
        ),
        Some(other) => {
            return Err(InputError::request(
                "now",
                format!("expected Unix seconds, got {}", type_name(other)),
            ))
        }
    };
    Ok(RequestInput {
        method,
        authority,
        path,
        headers,
        now,
    })
}

/// The method, upper-cased as `meshgate check` does. Rules compare methods exactly.
fn method(fields: &Map<String, Value>) -> Result<String, InputError> {
    let method = fields
        .get("method")
        .ok_or_else(|| InputError::request("method", "missing field"))
        .and_then(|m| string(m, "method"))?;
    // RFC 9110 `token` characters.
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if method.is_empty() || !method.chars().all(tchar) {
        return Err(InputError::request(
            "method",
            format!("`{}` is not an HTTP method", shorten(method)),
        ));
    }
    Ok(method.to_ascii_uppercase())
}

/// `http(s)://authority/path?query` → (`:authority`, `:path`). The path is kept raw, the
/// way a client sends it, so meshgate's own normalization is what gets previewed.
fn split_url(url: &str) -> Result<(String, String), InputError> {
    let bad = |why: &str| {
        InputError::request(
            "url",
            format!("`{}` is not an absolute http(s) URL: {why}", shorten(url)),
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no `scheme://`"))?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(bad("the scheme is not http or https"));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at_checked(end).unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if authority.contains('@') {
        return Err(bad("user information (`user@`) is not supported"));
    }
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Ok((authority.to_owned(), path))
}

fn string<'v>(value: &'v Value, path: &str) -> Result<&'v str, InputError> {
    value.as_str().ok_or_else(|| {
        InputError::request(path, format!("expected a string, got {}", type_name(value)))
    })
}

/// Whole seconds (floored) from a float, if it is finite and fits.
pub(crate) fn seconds_from_f64(seconds: f64) -> Option<i64> {
    // 2^53: beyond it, floats no longer hold every integer; far beyond any real clock.
    const LIMIT: f64 = 9_007_199_254_740_992.0;
    if !seconds.is_finite() || seconds.abs() > LIMIT {
        return None;
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "floored and range-checked above"
    )]
    Some(seconds.floor() as i64)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

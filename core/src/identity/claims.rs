//! Reading claims from a verified payload: typed access with clear errors, and claim paths
//! such as `realm_access.roles`.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("claim `{claim}` is missing")]
    Missing { claim: &'static str },
    #[error("claim `{claim}` must be {expected}")]
    WrongType {
        claim: String,
        expected: &'static str,
    },
    #[error("token expired at {exp} (now {now}, clock skew {skew_s}s)")]
    Expired { exp: i64, now: i64, skew_s: i64 },
    #[error("token not valid before {nbf} (now {now}, clock skew {skew_s}s)")]
    NotYetValid { nbf: i64, now: i64, skew_s: i64 },
    #[error("token issued in the future at {iat} (now {now}, clock skew {skew_s}s)")]
    IssuedInFuture { iat: i64, now: i64, skew_s: i64 },
    #[error("token lifetime {lifetime_s}s exceeds the {max_s}s allowed")]
    LifetimeTooLong { lifetime_s: i64, max_s: i64 },
    #[error("audience {found} is not one of the accepted audiences")]
    AudienceNotAccepted { found: String },
    #[error(
        "claim `{claim}` is {value}, a time no clock reaches (allowed: 0 to {MAX_NUMERIC_DATE})"
    )]
    DateOutOfRange { claim: &'static str, value: String },
    #[error("groups claim `{claim}` has {count} entries, more than the {max} allowed")]
    TooManyGroups {
        claim: String,
        count: usize,
        max: usize,
    },
}

/// A claim name, or a dotted path into nested objects (`realm_access.roles`). A claim
/// whose own name contains dots (`https://example.com/groups`) is found first by its
/// full name, so URL-shaped custom claims work as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    full: String,
    segments: Vec<String>,
}

impl ClaimPath {
    pub fn new(path: &str) -> Option<ClaimPath> {
        if path.is_empty() || path.split('.').any(str::is_empty) && !path.contains("://") {
            return None;
        }
        Some(ClaimPath {
            full: path.to_owned(),
            segments: path.split('.').map(str::to_owned).collect(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }

    pub fn lookup<'c>(&self, claims: &'c Map<String, Value>) -> Option<&'c Value> {
        if let Some(value) = claims.get(&self.full) {
            return Some(value);
        }
        let (first, rest) = self.segments.split_first()?;
        rest.iter()
            .try_fold(claims.get(first)?, |value, segment| value.get(segment))
    }
}

/// The latest NumericDate accepted: 9999-12-31T23:59:59Z.
pub const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// RFC 7519 NumericDate: a JSON number of seconds, possibly fractional; fractions are
/// dropped toward the past. Only 0 (1970) to [`MAX_NUMERIC_DATE`] (year 9999) is a time:
/// a negative value, `1e300` or `2^64` is refused, never clamped to "never expires".
pub fn numeric_date(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<i64>, ClaimError> {
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            let out_of_range = || ClaimError::DateOutOfRange {
                claim,
                value: n.to_string().chars().take(40).collect(),
            };
            let seconds = match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => i,
                // Compared as floats first, so the cast below can't saturate.
                #[expect(clippy::cast_possible_truncation, reason = "range checked first")]
                (None, Some(f)) if (0.0..MAX_NUMERIC_DATE as f64 + 1.0).contains(&f) => {
                    f.floor() as i64
                }
                _ => return Err(out_of_range()),
            };
            if (0..=MAX_NUMERIC_DATE).contains(&seconds) {
                Ok(Some(seconds))
            } else {
                Err(out_of_range())
            }
        }
        Some(_) => Err(ClaimError::WrongType {
            claim: claim.to_owned(),
            expected: "a number of seconds",
        }),
    }
}

pub fn string_claim<'c>(
    claims: &'c Map<String, Value>,
    claim: &'static str,
) -> Result<Option<&'c str>, ClaimError> {
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ClaimError::WrongType {
            claim: claim.to_owned(),
            expected: "a string",
        }),
    }
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
pub fn audiences(claims: &Map<String, Value>) -> Result<Vec<&str>, ClaimError> {
    let wrong = || ClaimError::WrongType {
        claim: String::from("aud"),
        expected: "a string or an array of strings",
    };
    match claims.get("aud") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items.iter().map(|v| v.as_str().ok_or_else(wrong)).collect(),
        Some(_) => Err(wrong()),
    }
}

/// Groups (or roles) from a claim: an array of strings, or one space-separated string
/// (the OAuth `scope` style). Non-string array entries are a type error, not skipped,
/// so a malformed claim can't silently shrink to a smaller set.
pub fn string_list(
    claims: &Map<String, Value>,
    path: &ClaimPath,
    max: usize,
) -> Result<Vec<String>, ClaimError> {
    let wrong = || ClaimError::WrongType {
        claim: path.as_str().to_owned(),
        expected: "an array of strings or a space-separated string",
    };
    let too_many = |count| ClaimError::TooManyGroups {
        claim: path.as_str().to_owned(),
        count,
        max,
    };
    let mut list: Vec<String> = match path.lookup(claims) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => {
            if items.len() > max {
                return Err(too_many(items.len()));
            }
            items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(wrong))
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err(wrong()),
    };
    if list.len() > max {
        return Err(too_many(list.len()));
    }
    list.sort_unstable();
    list.dedup();
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// Times no clock reaches are refused, never clamped (RFC 7519 §2 NumericDate).
    #[test]
    fn numeric_dates_outside_0_to_year_9999_are_refused() {
        let cases: Vec<(&str, Result<Option<i64>, ()>)> = vec![
            ("{}", Ok(None)),
            (r#"{"exp": 0}"#, Ok(Some(0))),
            (r#"{"exp": 1700000000}"#, Ok(Some(1_700_000_000))),
            (r#"{"exp": 1700000000.9}"#, Ok(Some(1_700_000_000))),
            (r#"{"exp": 253402300799}"#, Ok(Some(MAX_NUMERIC_DATE))),
            (r#"{"exp": 253402300799.5}"#, Ok(Some(MAX_NUMERIC_DATE))),
            (r#"{"exp": 253402300800}"#, Err(())),
            (r#"{"exp": 1e300}"#, Err(())),
            (r#"{"exp": 1.7e308}"#, Err(())),
            (r#"{"exp": 18446744073709551615}"#, Err(())),
            (r#"{"exp": 18446744073709551616}"#, Err(())),
            (r#"{"exp": 9223372036854775807}"#, Err(())),
            (r#"{"exp": 1000000000000000000000000000000}"#, Err(())),
            (r#"{"exp": -1}"#, Err(())),
            (r#"{"exp": -0.5}"#, Err(())),
            (r#"{"exp": -9223372036854775808}"#, Err(())),
            (r#"{"exp": -1e300}"#, Err(())),
        ];
        for (json, expected) in cases {
            let claims: Map<String, Value> = serde_json::from_str(json).unwrap();
            let got = numeric_date(&claims, "exp");
            match expected {
                Ok(v) => assert_eq!(got, Ok(v), "{json}"),
                Err(()) => assert!(
                    matches!(got, Err(ClaimError::DateOutOfRange { claim: "exp", .. })),
                    "{json}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn claim_paths() {
        let claims = map(json!({
            "groups": ["b", "a", "a"],
            "realm_access": {"roles": ["admin"]},
            "https://example.com/groups": ["url-claim"],
            "scope": "read write",
        }));
        let cases: &[(&str, Result<Vec<&str>, ()>)] = &[
            ("groups", Ok(vec!["a", "b"])),
            ("realm_access.roles", Ok(vec!["admin"])),
            ("https://example.com/groups", Ok(vec!["url-claim"])),
            ("scope", Ok(vec!["read", "write"])),
            ("absent", Ok(vec![])),
            ("realm_access", Err(())),
        ];
        for (path, expected) in cases {
            let got = string_list(&claims, &ClaimPath::new(path).unwrap(), 10);
            match expected {
                Ok(list) => assert_eq!(got.unwrap(), *list, "{path}"),
                Err(()) => assert!(got.is_err(), "{path}"),
            }
        }
    }

    #[test]
    fn group_limit_and_types() {
        let claims = map(json!({"g": ["a", "b", "c"], "mixed": ["a", 1]}));
        let g = ClaimPath::new("g").unwrap();
        assert!(matches!(
            string_list(&claims, &g, 2),
            Err(ClaimError::TooManyGroups { count: 3, .. })
        ));
        assert!(string_list(&claims, &ClaimPath::new("mixed").unwrap(), 10).is_err());
    }

    #[test]
    fn ten_thousand_groups_are_refused_not_truncated() {
        let groups: Vec<String> = (0..10_000).map(|i| format!("group-{i}")).collect();
        let claims = map(json!({ "groups": groups }));
        let path = ClaimPath::new("groups").unwrap();
        assert_eq!(
            string_list(&claims, &path, 1024),
            Err(ClaimError::TooManyGroups {
                claim: "groups".into(),
                count: 10_000,
                max: 1024
            })
        );
        // The same list as one space-separated string is counted after splitting.
        let joined = map(json!({ "groups": groups.join(" ") }));
        assert!(matches!(
            string_list(&joined, &path, 1024),
            Err(ClaimError::TooManyGroups { count: 10_000, .. })
        ));
    }

    #[test]
    fn numeric_dates() {
        let claims = map(json!({"a": 10, "b": 10.9, "c": "10", "d": 1e300, "e": -5}));
        assert_eq!(numeric_date(&claims, "a"), Ok(Some(10)));
        assert_eq!(numeric_date(&claims, "b"), Ok(Some(10)));
        assert!(numeric_date(&claims, "c").is_err());
        assert!(matches!(
            numeric_date(&claims, "d"),
            Err(ClaimError::DateOutOfRange { .. })
        ));
        assert!(matches!(
            numeric_date(&claims, "e"),
            Err(ClaimError::DateOutOfRange { .. })
        ));
        assert_eq!(numeric_date(&claims, "zz"), Ok(None));
    }

    #[test]
    fn audience_shapes() {
        assert_eq!(audiences(&map(json!({"aud": "x"}))).unwrap(), vec!["x"]);
        assert_eq!(
            audiences(&map(json!({"aud": ["x", "y"]}))).unwrap(),
            vec!["x", "y"]
        );
        assert!(audiences(&map(json!({"aud": 5}))).is_err());
        assert!(audiences(&map(json!({"aud": ["x", 5]}))).is_err());
    }

    #[test]
    fn bad_claim_paths() {
        for p in ["", ".", "a.", ".a", "a..b"] {
            assert!(ClaimPath::new(p).is_none(), "{p:?}");
        }
    }
}

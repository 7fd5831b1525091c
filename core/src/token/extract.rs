//! Finding the token in a request: headers (with a scheme prefix), query parameters, cookies.

/// Where a token may be read from. Mirrors Envoy jwt_authn's `from_headers`,
/// `from_params` and `from_cookies`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenSource {
    /// A header, lowercase, with an optional value prefix such as `Bearer `.
    /// The prefix matches case-insensitively: RFC 6750 schemes are case-insensitive.
    Header {
        name: String,
        value_prefix: String,
    },
    Param {
        name: String,
    },
    Cookie {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("header `{name}` appears {count} times; a token must be sent once")]
    RepeatedHeader { name: String, count: usize },
}

/// A token found in the request, and which source it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'r> {
    pub token: &'r str,
    pub source: usize,
}

/// Looks through `sources` in order; the first one present wins.
pub fn find_token<'r>(
    sources: &[TokenSource],
    headers: &'r [(String, String)],
    path: &'r str,
) -> Result<Option<Found<'r>>, ExtractError> {
    for (index, source) in sources.iter().enumerate() {
        let token = match source {
            TokenSource::Header { name, value_prefix } => {
                header_token(headers, name, value_prefix)?
            }
            TokenSource::Param { name } => query_param(path, name),
            TokenSource::Cookie { name } => cookie(headers, name),
        };
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            return Ok(Some(Found {
                token,
                source: index,
            }));
        }
    }
    Ok(None)
}

fn header_token<'r>(
    headers: &'r [(String, String)],
    name: &str,
    prefix: &str,
) -> Result<Option<&'r str>, ExtractError> {
    let mut values = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str());
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let extra = values.count();
    if extra > 0 {
        // Two credentials are ambiguous: proxies and upstreams may pick different ones.
        return Err(ExtractError::RepeatedHeader {
            name: name.to_owned(),
            count: extra.saturating_add(1),
        });
    }
    if prefix.is_empty() {
        return Ok(Some(value.trim()));
    }
    let Some(head) = value.get(..prefix.len()) else {
        return Ok(None);
    };
    if head.eq_ignore_ascii_case(prefix) {
        Ok(value.get(prefix.len()..).map(str::trim))
    } else {
        Ok(None)
    }
}

fn query_param<'r>(path: &'r str, name: &str) -> Option<&'r str> {
    let (_, query) = path.split_once('?')?;
    let query = query.split('#').next().unwrap_or_default();
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn cookie<'r>(headers: &'r [(String, String)], name: &str) -> Option<&'r str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sources() -> Vec<TokenSource> {
        vec![
            TokenSource::Header {
                name: "authorization".into(),
                value_prefix: "Bearer ".into(),
            },
            TokenSource::Header {
                name: "x-jwt".into(),
                value_prefix: String::new(),
            },
            TokenSource::Param {
                name: "access_token".into(),
            },
            TokenSource::Cookie {
                name: "session".into(),
            },
        ]
    }

    #[test]
    fn finds_tokens_in_order() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<(&'a str, usize)>);
        let cases: &[Case<'_>] = &[
            (&[("authorization", "Bearer abc")], "/", Some(("abc", 0))),
            (&[("authorization", "bearer abc")], "/", Some(("abc", 0))),
            (&[("authorization", "BEARER  abc ")], "/", Some(("abc", 0))),
            (&[("authorization", "Basic abc")], "/", None),
            (&[("authorization", "Bearer")], "/", None),
            (&[("authorization", "Bearer ")], "/", None),
            (&[("x-jwt", "tok")], "/", Some(("tok", 1))),
            (&[], "/a?x=1&access_token=qq#f", Some(("qq", 2))),
            (&[], "/a?access_tokenx=1", None),
            (&[("cookie", "a=1; session=cc")], "/", Some(("cc", 3))),
            (&[("cookie", "a=1")], "/", None),
            (
                &[("authorization", "Bearer first"), ("x-jwt", "second")],
                "/",
                Some(("first", 0)),
            ),
        ];
        for (headers, path, expected) in cases {
            let headers = h(headers);
            let got = find_token(&sources(), &headers, path)
                .unwrap()
                .map(|f| (f.token, f.source));
            assert_eq!(got, *expected, "{headers:?} {path}");
        }
    }

    #[test]
    fn repeated_authorization_is_refused() {
        let headers = h(&[("authorization", "Bearer a"), ("Authorization", "Bearer b")]);
        assert!(matches!(
            find_token(&sources(), &headers, "/"),
            Err(ExtractError::RepeatedHeader { count: 2, .. })
        ));
    }
}

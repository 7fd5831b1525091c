//! Small text encodings the fake servers share: `application/x-www-form-urlencoded` query
//! strings and version-4 UUIDs.

/// The query's `name=value` pairs, decoded, in order; empty pairs are skipped and a pair
/// without `=` has an empty value.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// The first value of `name` in a query string, decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query_pairs(query)
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// Form decoding: `%XX` escapes and `+` as a space; a `%` that starts no escape is kept as
/// written, and invalid UTF-8 is replaced.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut position = 0;
    while let Some(&byte) = bytes.get(position) {
        let hex = bytes
            .get(position + 1..position + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                position += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                position += 1;
            }
            _ => {
                out.push(byte);
                position += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `bytes` as a version-4 (random) UUID: the version and variant bits are set, the rest is
/// taken as given, so the same bytes always give the same UUID.
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    if let Some(b) = bytes.get_mut(6) {
        *b = (*b & 0x0f) | 0x40;
    }
    if let Some(b) = bytes.get_mut(8) {
        *b = (*b & 0x3f) | 0x80;
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let part = |range: std::ops::Range<usize>| hex.get(range).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0..8),
        part(8..12),
        part(12..16),
        part(16..20),
        part(20..32)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_split_and_decoded() {
        assert_eq!(
            query_pairs("filter=kind%3Duser&cursor=ab%2B%2F%3D&x&"),
            [
                ("filter".to_owned(), "kind=user".to_owned()),
                ("cursor".to_owned(), "ab+/=".to_owned()),
                ("x".to_owned(), String::new()),
            ]
        );
        assert_eq!(query_param("alg=RS256", "alg").as_deref(), Some("RS256"));
        assert_eq!(
            query_param("x=1&kid=rs256%2D2&kid=other", "kid").as_deref(),
            Some("rs256-2")
        );
        assert_eq!(query_param("kid", "kid").as_deref(), Some(""));
        assert_eq!(query_param("", "kid"), None);
        assert_eq!(query_param("a=b", "kid"), None);
    }

    #[test]
    fn percent_decoding_keeps_stray_percent_signs() {
        for (raw, decoded) in [
            ("a%20b+c", "a b c"),
            ("100%", "100%"),
            ("%zz%4", "%zz%4"),
            ("a+b%zz%4", "a b%zz%4"),
            ("%C3%A9", "é"),
        ] {
            assert_eq!(percent_decode(raw), decoded, "{raw}");
        }
    }

    #[test]
    fn uuids_carry_version_and_variant() {
        assert_eq!(uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
    }
}

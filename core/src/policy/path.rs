//! Request path normalization: the single canonical form that path rules match against.
//!
//! Envoy's HCM (`normalize_path` + `merge_slashes`) does much the same, but the filter can't
//! rely on the listener being configured that way, and an upstream may decode what Envoy left
//! encoded. So we normalize again and reject the encodings that different servers read
//! differently (encoded slash, backslash, matrix parameters) unless explicitly allowed.

use thiserror::Error;

/// Longest `:path` accepted, query included. Envoy's default header limit is 60 KiB, but no
/// legitimate API path comes near this, and the bound keeps normalization cost fixed.
pub const MAX_PATH_LEN: usize = 8192;

/// Ambiguous encodings to accept instead of rejecting. Everything accepted stays a literal
/// character inside its segment: none of them ever acts as a separator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathOptions {
    /// Accept `%2F`, kept encoded (as `%2F`).
    pub allow_encoded_slash: bool,
    /// Accept `\` (kept as is) and `%5C` (kept encoded, as `%5C`).
    pub allow_backslash: bool,
    /// Accept `;` as an ordinary character.
    pub allow_semicolon: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("path is {len} bytes, more than the {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error("path does not start with `/`")]
    NotAbsolute,
    #[error("path contains a control character, space or non-ASCII byte")]
    ControlCharacter,
    #[error("path has a `%` not followed by two hex digits")]
    InvalidPercentEncoding,
    #[error("path contains an encoded slash `%2F`")]
    EncodedSlash,
    #[error("path contains a backslash (`\\` or `%5C`)")]
    Backslash,
    #[error("path contains `;` (matrix parameters)")]
    Semicolon,
}

/// Normalizes `:path` (which may contain `?query` and `#fragment`) the way Envoy's HCM does with
/// `normalize_path: true` + `merge_slashes: true`, but rejecting ambiguous encodings by default.
///
/// The result starts with `/`, has no empty, `.` or `..` segments (a trailing `/` is kept),
/// has unreserved characters (`A-Z a-z 0-9 - . _ ~`) decoded and every other `%XX` in
/// uppercase hex, and excludes the query and fragment. Case is otherwise preserved.
/// Normalizing the result again gives the same string.
///
/// When a path has several problems, length, absoluteness and stray bytes are checked first;
/// after that the leftmost problem is reported.
pub fn normalize(raw: &str, opts: PathOptions) -> Result<String, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong {
            len: raw.len(),
            max: MAX_PATH_LEN,
        });
    }
    // The query and fragment never take part in matching.
    let path = raw.split(['?', '#']).next().unwrap_or_default();
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    check_bytes(path)?;

    // One pass: decode into `out` and resolve each segment as soon as it ends, so `out` only
    // ever holds finished segments (each followed by `/`) plus the one being decoded.
    let mut out = String::with_capacity(path.len());
    out.push('/');
    let mut seg_start = out.len();
    let mut bytes = rest.bytes();
    while let Some(b) = bytes.next() {
        if b == b'/' {
            close_segment(&mut out, seg_start, false);
            seg_start = out.len();
        } else {
            push_decoded(&mut out, b, &mut bytes, opts)?;
        }
    }
    close_segment(&mut out, seg_start, true);
    Ok(out)
}

/// Normalizes one segment of a pattern with the default options: the same decoding and
/// rejections as [`normalize`], but no `/`, `?` or `#` handling (the caller has split on them).
pub(crate) fn normalize_segment(segment: &str) -> Result<String, PathError> {
    check_bytes(segment)?;
    let mut out = String::with_capacity(segment.len());
    let mut bytes = segment.bytes();
    while let Some(b) = bytes.next() {
        push_decoded(&mut out, b, &mut bytes, PathOptions::default())?;
    }
    Ok(out)
}

/// Only visible ASCII: raw spaces, controls and UTF-8 are not valid in a request target, and
/// servers disagree on what to do with them.
fn check_bytes(s: &str) -> Result<(), PathError> {
    if s.bytes().all(|b| (0x21..=0x7E).contains(&b)) {
        Ok(())
    } else {
        Err(PathError::ControlCharacter)
    }
}

/// Appends byte `b` (not `/`) to `out`, reading the two hex digits from `rest` if it is `%`.
fn push_decoded(
    out: &mut String,
    b: u8,
    rest: &mut impl Iterator<Item = u8>,
    opts: PathOptions,
) -> Result<(), PathError> {
    match b {
        b'%' => {
            let (Some(hi), Some(lo)) = (rest.next(), rest.next()) else {
                return Err(PathError::InvalidPercentEncoding);
            };
            let (Some(h), Some(l)) = (hex_value(hi), hex_value(lo)) else {
                return Err(PathError::InvalidPercentEncoding);
            };
            let decoded = (h << 4) | l;
            // Only unreserved characters are decoded: they mean the same encoded or not
            // (RFC 3986 §2.3). Since `%` is not one of them, a second pass can't decode more,
            // so `%252F` stays `%252F` and never becomes a separator.
            if is_unreserved(decoded) {
                out.push(char::from(decoded));
                return Ok(());
            }
            match decoded {
                b'/' if !opts.allow_encoded_slash => return Err(PathError::EncodedSlash),
                b'\\' if !opts.allow_backslash => return Err(PathError::Backslash),
                _ => {}
            }
            // Uppercase hex so that `%3a` and `%3A` compare equal.
            out.push('%');
            out.push(char::from(hi.to_ascii_uppercase()));
            out.push(char::from(lo.to_ascii_uppercase()));
        }
        // Some servers (IIS, some Windows-backed stacks) treat `\` as `/`.
        b'\\' if !opts.allow_backslash => return Err(PathError::Backslash),
        // Java servers strip `;params` from segments, so `/admin;x/` reaches `/admin/` there.
        b';' if !opts.allow_semicolon => return Err(PathError::Semicolon),
        _ => out.push(char::from(b)),
    }
    Ok(())
}

/// Resolves the segment that starts at `start` in `out` (decoded, so `%2e` already is `.`).
/// A non-final segment gets its separator here; the last one keeps whatever `/` precedes it,
/// which is how `/a/b/`, `/a/b/.` and `/a/b/..` keep a trailing slash.
fn close_segment(out: &mut String, start: usize, last: bool) {
    match out.get(start..).unwrap_or_default() {
        // Merged slash: `out` already ends with `/`.
        "" => {}
        "." => out.truncate(start),
        ".." => {
            out.truncate(start);
            pop_segment(out);
        }
        _ => {
            if !last {
                out.push('/');
            }
        }
    }
}

/// Drops the last finished segment of `out` (which ends with `/`); `..` at the root stays there.
fn pop_segment(out: &mut String) {
    let parent_end = out.len().saturating_sub(1);
    if let Some(slash) = out.get(..parent_end).and_then(|s| s.rfind('/')) {
        out.truncate(slash + 1);
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::PathError::*;
    use super::*;

    const DEFAULT: PathOptions = PathOptions {
        allow_encoded_slash: false,
        allow_backslash: false,
        allow_semicolon: false,
    };
    const ALLOW_ALL: PathOptions = PathOptions {
        allow_encoded_slash: true,
        allow_backslash: true,
        allow_semicolon: true,
    };

    /// Default options.
    const CASES: &[(&str, Result<&str, PathError>)] = &[
        // Already canonical.
        ("/", Ok("/")),
        ("/admin", Ok("/admin")),
        ("/a/b/", Ok("/a/b/")),
        ("/Admin", Ok("/Admin")),
        ("/a-b_c~d.e", Ok("/a-b_c~d.e")),
        ("/a/b:c@d!$&'()*+,=", Ok("/a/b:c@d!$&'()*+,=")),
        // Slash merging.
        ("//admin", Ok("/admin")),
        ("/a//b///c", Ok("/a/b/c")),
        ("/a/b//", Ok("/a/b/")),
        ("///", Ok("/")),
        // Dot segments.
        ("/x/../admin", Ok("/admin")),
        ("/a/./b", Ok("/a/b")),
        ("/..", Ok("/")),
        ("/.", Ok("/")),
        ("/../admin", Ok("/admin")),
        ("/../../a/../../b", Ok("/b")),
        ("/a/b/..", Ok("/a/")),
        ("/a/b/.", Ok("/a/b/")),
        ("/a/b/../", Ok("/a/")),
        ("/a/..", Ok("/")),
        ("/a/b/../../..", Ok("/")),
        ("/a//..//b", Ok("/b")),
        ("/.a/..b/...", Ok("/.a/..b/...")),
        ("/a/.../b", Ok("/a/.../b")),
        // Percent-decoding of unreserved characters, before dot resolution.
        ("/%61dmin", Ok("/admin")),
        ("/%41dmin", Ok("/Admin")),
        ("/%2e%2e/admin", Ok("/admin")),
        ("/%2E%2e/admin", Ok("/admin")),
        ("/a/%2e/b", Ok("/a/b")),
        ("/a/b/%2e%2e", Ok("/a/")),
        ("/a/.%2E/b", Ok("/b")),
        ("/%7Euser", Ok("/~user")),
        ("/%7euser", Ok("/~user")),
        ("/%2D%5F%30", Ok("/-_0")),
        // Reserved and other characters stay encoded, hex uppercased.
        ("/a%3ab", Ok("/a%3Ab")),
        ("/a%3Ab", Ok("/a%3Ab")),
        ("/%252F", Ok("/%252F")),
        ("/%252f", Ok("/%252f")),
        ("/%25%32%46", Ok("/%252F")),
        ("/a%20b", Ok("/a%20b")),
        ("/%00", Ok("/%00")),
        ("/%3f", Ok("/%3F")),
        ("/%c3%a9", Ok("/%C3%A9")),
        ("/%3B", Ok("/%3B")),
        // Query and fragment are cut off and never influence the result.
        ("/items/5?x=/admin", Ok("/items/5")),
        ("/a#frag", Ok("/a")),
        ("/a?b#c", Ok("/a")),
        ("/a#b?c", Ok("/a")),
        ("/a/..?x", Ok("/")),
        ("/a?%zz", Ok("/a")),
        ("/a?\\;%2F", Ok("/a")),
        ("/?", Ok("/")),
        // Ambiguous encodings.
        ("/a%2Fb", Err(EncodedSlash)),
        ("/a%2fb", Err(EncodedSlash)),
        ("/%2F%2Fadmin", Err(EncodedSlash)),
        ("/a\\b", Err(Backslash)),
        ("/a%5cb", Err(Backslash)),
        ("/a%5Cb", Err(Backslash)),
        ("/api;foo/..", Err(Semicolon)),
        ("/admin;x/", Err(Semicolon)),
        // Broken percent-encoding.
        ("/a%zz", Err(InvalidPercentEncoding)),
        ("/a%4", Err(InvalidPercentEncoding)),
        ("/a%", Err(InvalidPercentEncoding)),
        ("/a%4?1", Err(InvalidPercentEncoding)),
        ("/a%/b", Err(InvalidPercentEncoding)),
        ("/a%g0", Err(InvalidPercentEncoding)),
        // Not origin-form.
        ("*", Err(NotAbsolute)),
        ("http://x/a", Err(NotAbsolute)),
        ("", Err(NotAbsolute)),
        ("a/b", Err(NotAbsolute)),
        ("?/a", Err(NotAbsolute)),
        ("#/a", Err(NotAbsolute)),
        // Bytes outside visible ASCII.
        ("/a b", Err(ControlCharacter)),
        ("/a\0b", Err(ControlCharacter)),
        ("/a\tb", Err(ControlCharacter)),
        ("/a\r\nb", Err(ControlCharacter)),
        ("/a\x7Fb", Err(ControlCharacter)),
        ("/caf\u{e9}", Err(ControlCharacter)),
        ("/\u{1F600}", Err(ControlCharacter)),
        // Stray bytes are reported before encoding problems.
        ("/a%zz b", Err(ControlCharacter)),
    ];

    #[test]
    fn default_options() {
        for (input, expected) in CASES {
            let expected = expected.clone().map(str::to_owned);
            assert_eq!(normalize(input, DEFAULT), expected, "{input:?}");
        }
    }

    #[test]
    fn allow_options() {
        let slash = PathOptions {
            allow_encoded_slash: true,
            ..DEFAULT
        };
        let backslash = PathOptions {
            allow_backslash: true,
            ..DEFAULT
        };
        let semicolon = PathOptions {
            allow_semicolon: true,
            ..DEFAULT
        };
        let cases: &[(&str, PathOptions, Result<&str, PathError>)] = &[
            // An allowed encoded slash stays a literal inside its segment.
            ("/a%2fb", slash, Ok("/a%2Fb")),
            ("/a%2Fb", slash, Ok("/a%2Fb")),
            ("/a/%2F/..", slash, Ok("/a/")),
            ("/%2e%2e%2fadmin", slash, Ok("/..%2Fadmin")),
            ("/a%2f..", slash, Ok("/a%2F..")),
            ("/a%2fb\\c", slash, Err(Backslash)),
            ("/a%2fb;c", slash, Err(Semicolon)),
            // An allowed backslash is an ordinary character, never a separator.
            ("/a\\b", backslash, Ok("/a\\b")),
            ("/a%5cb", backslash, Ok("/a%5Cb")),
            ("/a\\..\\b", backslash, Ok("/a\\..\\b")),
            ("/..\\admin", backslash, Ok("/..\\admin")),
            ("/a\\b%2F", backslash, Err(EncodedSlash)),
            // An allowed semicolon is an ordinary character.
            ("/api;foo/..", semicolon, Ok("/")),
            ("/admin;x/", semicolon, Ok("/admin;x/")),
            ("/a;b", semicolon, Ok("/a;b")),
            // Allowing things never relaxes the other checks.
            ("/a%zz", ALLOW_ALL, Err(InvalidPercentEncoding)),
            ("/a b", ALLOW_ALL, Err(ControlCharacter)),
            ("a", ALLOW_ALL, Err(NotAbsolute)),
            ("/%252F", ALLOW_ALL, Ok("/%252F")),
        ];
        for (input, opts, expected) in cases {
            let expected = expected.clone().map(str::to_owned);
            assert_eq!(normalize(input, *opts), expected, "{input:?} {opts:?}");
        }
    }

    #[test]
    fn length_limit() {
        let longest = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
        assert_eq!(
            normalize(&longest, DEFAULT).as_deref(),
            Ok(longest.as_str())
        );
        let too_long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        let err = Err(TooLong {
            len: MAX_PATH_LEN + 1,
            max: MAX_PATH_LEN,
        });
        assert_eq!(normalize(&too_long, DEFAULT), err);
        // The limit covers the query too: it bounds the whole header value.
        let long_query = format!("/a?{}", "q".repeat(MAX_PATH_LEN));
        assert!(matches!(
            normalize(&long_query, DEFAULT),
            Err(TooLong { .. })
        ));
        // Checked first, before anything else is looked at.
        let long_garbage = " ".repeat(MAX_PATH_LEN + 1);
        assert!(matches!(
            normalize(&long_garbage, DEFAULT),
            Err(TooLong { .. })
        ));
        // Deep `..` chains and slash runs at the limit.
        let dots = format!("/a{}", "/..".repeat((MAX_PATH_LEN - 2) / 3));
        assert_eq!(normalize(&dots, DEFAULT).as_deref(), Ok("/"));
        let slashes = "/".repeat(MAX_PATH_LEN);
        assert_eq!(normalize(&slashes, DEFAULT).as_deref(), Ok("/"));
    }

    #[test]
    fn segment_normalization() {
        assert_eq!(normalize_segment("%61b%3a").as_deref(), Ok("ab%3A"));
        assert_eq!(normalize_segment("%2e%2E").as_deref(), Ok(".."));
        assert_eq!(normalize_segment("a%2fb"), Err(EncodedSlash));
        assert_eq!(normalize_segment("a;b"), Err(Semicolon));
        assert_eq!(normalize_segment("a b"), Err(ControlCharacter));
        assert_eq!(normalize_segment("a%"), Err(InvalidPercentEncoding));
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            TooLong {
                len: 9000,
                max: 8192
            }
            .to_string(),
            "path is 9000 bytes, more than the 8192 allowed"
        );
        assert_eq!(
            EncodedSlash.to_string(),
            "path contains an encoded slash `%2F`"
        );
    }

    /// What every successful result must look like, whatever the input.
    fn check_invariants(input: &str, opts: PathOptions) {
        let Ok(out) = normalize(input, opts) else {
            return;
        };
        assert!(out.starts_with('/'), "{input:?} -> {out:?}");
        assert!(out.len() <= input.len(), "{input:?} -> {out:?}");
        for bad in ["//", "/./", "/../", "?", "#"] {
            assert!(!out.contains(bad), "{input:?} -> {out:?} contains {bad:?}");
        }
        assert!(
            !out.ends_with("/.") && !out.ends_with("/.."),
            "{input:?} -> {out:?}"
        );
        if !opts.allow_encoded_slash {
            assert!(!out.contains("%2F"), "{input:?} -> {out:?}");
        }
        if !opts.allow_backslash {
            assert!(
                !out.contains('\\') && !out.contains("%5C"),
                "{input:?} -> {out:?}"
            );
        }
        if !opts.allow_semicolon {
            assert!(!out.contains(';'), "{input:?} -> {out:?}");
        }
        // Every remaining escape is uppercase and not an unreserved character.
        for escape in out.split('%').skip(1) {
            let hex = escape.get(..2).unwrap();
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
                "{input:?} -> {out:?}"
            );
            let value = u8::from_str_radix(hex, 16).unwrap();
            assert!(!is_unreserved(value), "{input:?} -> {out:?}");
        }
        assert_eq!(
            normalize(&out, opts).as_ref(),
            Ok(&out),
            "not idempotent: {input:?}"
        );
    }

    /// Every string over `alphabet` of length `0..=max_len`.
    fn for_all_strings(alphabet: &[u8], max_len: usize, mut f: impl FnMut(&str)) {
        let mut buf: Vec<u8> = Vec::with_capacity(max_len);
        let mut digits = vec![0usize; max_len];
        for len in 0..=max_len {
            digits.iter_mut().for_each(|d| *d = 0);
            loop {
                buf.clear();
                buf.extend(digits[..len].iter().map(|&d| alphabet[d]));
                f(std::str::from_utf8(&buf).unwrap());
                // Odometer increment over the first `len` digits.
                let mut i = 0;
                while i < len {
                    digits[i] += 1;
                    if digits[i] < alphabet.len() {
                        break;
                    }
                    digits[i] = 0;
                    i += 1;
                }
                if i == len {
                    break;
                }
            }
        }
    }

    #[test]
    fn exhaustive_short_inputs() {
        let alphabet = b"/.%2efFa;\\?";
        // Relative inputs only ever fail; a few lengths are enough to show they don't panic.
        for_all_strings(alphabet, 3, |s| check_invariants(s, DEFAULT));
        // Absolute inputs are where the work is: `/` followed by up to 6 symbols (about
        // 2 million paths) with the default options, up to 5 with everything allowed.
        let mut count = 0usize;
        let mut path = String::new();
        for_all_strings(alphabet, 6, |s| {
            count += 1;
            path.clear();
            path.push('/');
            path.push_str(s);
            check_invariants(&path, DEFAULT);
            if s.len() <= 5 {
                check_invariants(&path, ALLOW_ALL);
            }
        });
        assert_eq!(count, (0..=6).map(|n| 11usize.pow(n)).sum::<usize>());
    }

    #[test]
    fn random_longer_inputs() {
        // A fixed-seed xorshift: reproducible without a dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"/.%2eEfF5cCa0;\\?# ~";
        let all_opts: Vec<PathOptions> = (0..8u8)
            .map(|bits| PathOptions {
                allow_encoded_slash: bits & 1 != 0,
                allow_backslash: bits & 2 != 0,
                allow_semicolon: bits & 4 != 0,
            })
            .collect();
        let mut input = String::new();
        for _ in 0..50_000 {
            input.clear();
            input.push('/');
            let len = (next() % 24) as usize;
            for _ in 0..len {
                input.push(char::from(
                    alphabet[(next() % alphabet.len() as u64) as usize],
                ));
            }
            for opts in &all_opts {
                check_invariants(&input, *opts);
            }
        }
    }
}

//! `path::normalize` under all 8 option combinations, and `PathPattern` compilation and
//! matching. Never panics; normalized paths are canonical (absolute, no empty, `.` or `..`
//! segments, no query), normalizing one again changes nothing, and relaxing an option
//! never changes the result for a path that was already accepted.
//!
//! Input: UTF-8. `TEMPLATE\nPATH` uses the first line as the pattern and the rest as the
//! request path; without a newline, the whole input is both.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshgate_core::path::{normalize, PathError, PathOptions, MAX_PATH_LEN};
use meshgate_core::pattern::PathPattern;

/// Paths every compiled pattern is also matched against.
const FIXED_PATHS: [&str; 6] = [
    "/",
    "/api",
    "/api/",
    "/api/v1/dags/x/dagRuns",
    "/a/b/c/",
    "/%2F",
];

fn all_options() -> impl Iterator<Item = PathOptions> {
    (0u8..8).map(|bits| PathOptions {
        allow_encoded_slash: bits & 1 != 0,
        allow_backslash: bits & 2 != 0,
        allow_semicolon: bits & 4 != 0,
    })
}

fn check_canonical(raw: &str, out: &str, opts: PathOptions) {
    let ctx = || format!("{raw:?} -> {out:?} with {opts:?}");
    assert!(out.starts_with('/'), "not absolute: {}", ctx());
    assert!(!out.contains("//"), "empty segment: {}", ctx());
    assert!(
        !out.contains("/./") && !out.ends_with("/."),
        "dot segment: {}",
        ctx()
    );
    assert!(
        !out.contains("/../") && !out.ends_with("/.."),
        "dot-dot segment: {}",
        ctx()
    );
    assert!(
        !out.contains(['?', '#']),
        "query or fragment kept: {}",
        ctx()
    );
    assert!(
        out.bytes().all(|b| (0x21..=0x7E).contains(&b)),
        "stray byte: {}",
        ctx()
    );
    assert!(out.len() <= raw.len().max(1), "grew: {}", ctx());
    if !opts.allow_encoded_slash {
        assert!(!out.contains("%2F"), "encoded slash: {}", ctx());
    }
    if !opts.allow_backslash {
        assert!(
            !out.contains('\\') && !out.contains("%5C"),
            "backslash: {}",
            ctx()
        );
    }
    if !opts.allow_semicolon {
        assert!(!out.contains(';'), "semicolon: {}", ctx());
    }
    assert_eq!(
        normalize(out, opts).as_deref(),
        Ok(out),
        "not idempotent: {}",
        ctx()
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (template, raw) = input.split_once('\n').unwrap_or((input, input));

    let mut normalized = Vec::new();
    let strict = normalize(raw, PathOptions::default());
    for opts in all_options() {
        let result = normalize(raw, opts);
        match &result {
            Ok(out) => {
                check_canonical(raw, out, opts);
                normalized.push(out.clone());
            }
            Err(PathError::TooLong { len, max }) => {
                assert_eq!((*len, *max), (raw.len(), MAX_PATH_LEN));
            }
            Err(_) => {}
        }
        // More permissive options only accept more; they never reinterpret.
        if let Ok(strict_out) = &strict {
            assert_eq!(result.as_ref(), Ok(strict_out), "{raw:?} with {opts:?}");
        }
    }

    let patterns = [
        PathPattern::template(template),
        PathPattern::exact(template),
        PathPattern::prefix(template),
    ];
    for pattern in patterns.iter().flatten() {
        let names: Vec<&str> = pattern.param_names().collect();
        for path in normalized.iter().map(String::as_str).chain(FIXED_PATHS) {
            let captures = pattern.matches(path);
            assert_eq!(
                captures.is_some(),
                pattern.is_match(path),
                "{template:?} on {path:?}"
            );
            if let Some(captures) = captures {
                if let PathPattern::Template(_) = pattern {
                    assert_eq!(captures.len(), names.len(), "{template:?} on {path:?}");
                }
                for (name, value) in captures.iter() {
                    assert!(names.contains(&name));
                    assert!(
                        !value.is_empty() && !value.contains('/'),
                        "{name}={value:?}"
                    );
                }
            }
        }
    }
});

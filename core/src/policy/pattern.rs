//! Path patterns used by RBAC rules: exact, prefix and segment templates.
//!
//! Patterns are normalized when compiled and matched against paths already produced by
//! [`crate::policy::path::normalize`], so matching is plain string comparison with no decoding.

use std::sync::Arc;

use thiserror::Error;

use crate::policy::path::{self, PathError, PathOptions};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    #[error("pattern `{pattern}` does not start with `/`")]
    NotAbsolute { pattern: String },
    #[error("pattern `{pattern}` contains `?` or `#`; patterns match the path only")]
    QueryOrFragment { pattern: String },
    // Not `#[source]`: the reason is part of the message, so callers printing only the
    // top-level error still see it.
    #[error("pattern `{pattern}` is not a valid path: {reason}")]
    InvalidPath { pattern: String, reason: PathError },
    #[error("parameter `{{}}` has an empty name")]
    EmptyParamName,
    #[error("parameter `{name}` appears more than once")]
    DuplicateParam { name: String },
    #[error("parameter name `{name}` is not an identifier ([A-Za-z_][A-Za-z0-9_]*)")]
    InvalidParamName { name: String },
    #[error("`**` may only be the last segment")]
    DoubleWildcardNotLast,
    #[error("segment `{segment}` has unbalanced braces")]
    UnbalancedBrace { segment: String },
    #[error("segment `{segment}` mixes a parameter with other text; a parameter must be a whole segment")]
    ParamNotWholeSegment { segment: String },
    #[error("segment `{segment}` mixes `*` with other text; a wildcard must be a whole segment")]
    WildcardNotWholeSegment { segment: String },
    #[error("segment `{segment}` is a dot segment, which a normalized path never contains")]
    DotSegment { segment: String },
}

/// Which paths a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// The whole path equals this normalized string (so a trailing `/` matters).
    Exact(String),
    /// The path starts with this normalized string. A plain string prefix, like Envoy RBAC's
    /// `prefix`: `/api` also matches `/apiary`. Use `/api/` or the template `/api/**` to stop
    /// at a segment boundary.
    Prefix(String),
    /// Segment by segment, see [`Template`].
    Template(Template),
}

impl PathPattern {
    /// Exact and prefix patterns are normalized with [`path::normalize`] default options at
    /// compile time (so a pattern written `/a//b` still means `/a/b`); templates too,
    /// segment-wise.
    pub fn exact(s: &str) -> Result<Self, PatternError> {
        normalize_pattern(s).map(Self::Exact)
    }

    /// See [`PathPattern::Prefix`]: `/api` also matches `/apiary`.
    pub fn prefix(s: &str) -> Result<Self, PatternError> {
        normalize_pattern(s).map(Self::Prefix)
    }

    /// See [`Template`] for the syntax.
    pub fn template(s: &str) -> Result<Self, PatternError> {
        Template::parse(s).map(Self::Template)
    }

    /// Matches a path already produced by `path::normalize`. Returns captured params for
    /// templates (empty for exact and prefix patterns).
    pub fn matches<'p>(&self, normalized_path: &'p str) -> Option<Captures<'p>> {
        match self {
            Self::Exact(s) => (normalized_path == s).then(Captures::empty),
            Self::Prefix(s) => normalized_path
                .starts_with(s.as_str())
                .then(Captures::empty),
            Self::Template(t) => t.matches(normalized_path),
        }
    }

    /// Like [`PathPattern::matches`] without collecting captures: never allocates.
    pub fn is_match(&self, normalized_path: &str) -> bool {
        match self {
            Self::Exact(s) => normalized_path == s,
            Self::Prefix(s) => normalized_path.starts_with(s.as_str()),
            Self::Template(t) => t.is_match(normalized_path),
        }
    }

    /// The whole path segments every matching path starts with (after the leading `/`), for
    /// rule indexes. A prefix's last, possibly partial, segment is left out.
    pub fn literal_segments(&self) -> Vec<&str> {
        match self {
            Self::Exact(s) => s.strip_prefix('/').unwrap_or(s).split('/').collect(),
            Self::Prefix(s) => {
                let rest = s.strip_prefix('/').unwrap_or(s);
                let mut segments: Vec<&str> = rest.split('/').collect();
                segments.pop();
                segments
            }
            Self::Template(t) => t
                .segments
                .iter()
                .map_while(|segment| match segment {
                    Segment::Literal(text) => Some(text.as_str()),
                    Segment::Param | Segment::Star | Segment::Rest => None,
                })
                .collect(),
        }
    }

    /// Parameter names in template order; none for exact and prefix patterns.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        let names: &[String] = match self {
            Self::Template(t) => &t.names,
            Self::Exact(_) | Self::Prefix(_) => &[],
        };
        names.iter().map(String::as_str)
    }
}

/// Exact and prefix patterns: a normalized path, so they compare against normalized paths.
fn normalize_pattern(s: &str) -> Result<String, PatternError> {
    // Silently dropping a query would widen the rule.
    if s.contains(['?', '#']) {
        return Err(PatternError::QueryOrFragment {
            pattern: s.to_owned(),
        });
    }
    path::normalize(s, PathOptions::default()).map_err(|e| invalid(s, e))
}

fn invalid(pattern: &str, reason: PathError) -> PatternError {
    match reason {
        PathError::NotAbsolute => PatternError::NotAbsolute {
            pattern: pattern.to_owned(),
        },
        reason => PatternError::InvalidPath {
            pattern: pattern.to_owned(),
            reason,
        },
    }
}

/// A path template such as `/api/v1/dags/{dag_id}/dagRuns`. Each `/`-separated segment is
/// one of:
/// - a literal, compared exactly (case-sensitive) after the same decoding as
///   [`path::normalize`] (so `%61dmin` is `admin` and `%3a` is `%3A`);
/// - `{name}`: exactly one non-empty segment, captured; `name` is `[A-Za-z_][A-Za-z0-9_]*`
///   and unique in the template;
/// - `*`: exactly one non-empty segment, not captured;
/// - `**`, only as the last segment: zero or more remaining segments, so `/api/**` matches
///   `/api`, `/api/` and `/api/x/y`.
///
/// Without `**` a path must have the same number of segments, and a trailing slash is
/// significant (`/items/{id}` does not match `/items/5/`; `/items/{id}/` does).
/// Repeated slashes in the template merge, as in paths; `.` and `..` segments are rejected,
/// since resolving them around parameters would be guesswork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
    /// Shared with every [`Captures`], so a match doesn't copy names.
    names: Arc<[String]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Normalized text; empty only as the last segment (trailing slash, or the root `/`).
    Literal(String),
    Param,
    Star,
    Rest,
}

impl Template {
    /// Compiles a template; see [`Template`] for the syntax.
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        if s.contains(['?', '#']) {
            return Err(PatternError::QueryOrFragment {
                pattern: s.to_owned(),
            });
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Err(PatternError::NotAbsolute {
                pattern: s.to_owned(),
            });
        };
        let mut segments = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut pieces = rest.split('/').peekable();
        while let Some(piece) = pieces.next() {
            if segments.last() == Some(&Segment::Rest) {
                return Err(PatternError::DoubleWildcardNotLast);
            }
            let last = pieces.peek().is_none();
            let segment = match piece {
                // Merge repeated slashes; a final empty piece is the trailing slash.
                "" if !last => continue,
                "**" => Segment::Rest,
                "*" => Segment::Star,
                _ => match param_name(piece)? {
                    Some(name) => {
                        if names.iter().any(|n| n == name) {
                            return Err(PatternError::DuplicateParam {
                                name: name.to_owned(),
                            });
                        }
                        names.push(name.to_owned());
                        Segment::Param
                    }
                    None => literal(s, piece)?,
                },
            };
            segments.push(segment);
        }
        Ok(Self {
            source: s.to_owned(),
            segments,
            names: names.into(),
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Parameter names in template order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Matches a normalized path, capturing parameters.
    pub fn matches<'p>(&self, normalized_path: &'p str) -> Option<Captures<'p>> {
        // Most rules don't match most requests: check first, allocate only on a match.
        if !self.is_match(normalized_path) {
            return None;
        }
        if self.names.is_empty() {
            return Some(Captures::empty());
        }
        let mut values = Vec::with_capacity(self.names.len());
        self.walk(normalized_path, |v| values.push(v));
        Some(Captures {
            names: Some(Arc::clone(&self.names)),
            values,
        })
    }

    /// Matches a normalized path without capturing: never allocates.
    pub fn is_match(&self, normalized_path: &str) -> bool {
        self.walk(normalized_path, |_| {})
    }

    /// Walks path segments alongside template segments, handing each parameter value to
    /// `on_param` in order. Returns whether the whole path matched.
    fn walk<'p>(&self, path: &'p str, mut on_param: impl FnMut(&'p str)) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = rest.split('/');
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::Literal(lit) => {
                    if parts.next() != Some(lit.as_str()) {
                        return false;
                    }
                }
                // Empty values can't come out of `normalize`, but must not match regardless.
                Segment::Star => match parts.next() {
                    Some(part) if !part.is_empty() => {}
                    _ => return false,
                },
                Segment::Param => match parts.next() {
                    Some(part) if !part.is_empty() => on_param(part),
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

/// `Some(name)` if `piece` is a `{name}` parameter, `None` if it has no braces at all.
fn param_name(piece: &str) -> Result<Option<&str>, PatternError> {
    let opens = piece.bytes().filter(|&b| b == b'{').count();
    let closes = piece.bytes().filter(|&b| b == b'}').count();
    if opens == 0 && closes == 0 {
        return Ok(None);
    }
    if opens == 1 && closes == 1 {
        if let Some(name) = piece.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            return valid_param_name(name).map(Some);
        }
    }
    // Tell "well-formed but not alone in its segment" from plain brace mismatch.
    let mut depth: i64 = 0;
    let mut balanced = true;
    for b in piece.bytes() {
        match b {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            _ => {}
        }
        balanced &= depth >= 0;
    }
    let segment = piece.to_owned();
    if balanced && depth == 0 {
        Err(PatternError::ParamNotWholeSegment { segment })
    } else {
        Err(PatternError::UnbalancedBrace { segment })
    }
}

fn valid_param_name(name: &str) -> Result<&str, PatternError> {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return Err(PatternError::EmptyParamName);
    };
    let ok = (first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(PatternError::InvalidParamName {
            name: name.to_owned(),
        })
    }
}

/// A literal segment, normalized the way the same text is in a request path.
fn literal(pattern: &str, piece: &str) -> Result<Segment, PatternError> {
    // `a*` is most likely meant as a glob; reject rather than match a literal `*`.
    if piece.contains('*') {
        return Err(PatternError::WildcardNotWholeSegment {
            segment: piece.to_owned(),
        });
    }
    let text = path::normalize_segment(piece).map_err(|e| invalid(pattern, e))?;
    if text == "." || text == ".." {
        return Err(PatternError::DotSegment {
            segment: piece.to_owned(),
        });
    }
    Ok(Segment::Literal(text))
}

/// Parameters captured by a template match: raw normalized segment text, so a value may still
/// hold uppercase `%XX` escapes for reserved characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captures<'p> {
    /// `None` for patterns without parameters, which saves touching a refcount.
    names: Option<Arc<[String]>>,
    values: Vec<&'p str>,
}

impl<'p> Captures<'p> {
    fn empty() -> Self {
        Self {
            names: None,
            values: Vec::new(),
        }
    }

    /// The value captured for parameter `name`.
    pub fn get(&self, name: &str) -> Option<&'p str> {
        self.iter().find(|&(n, _)| n == name).map(|(_, v)| v)
    }

    /// `(name, value)` pairs in template order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'p str)> + '_ {
        let names: &[String] = self.names.as_deref().unwrap_or_default();
        names
            .iter()
            .map(String::as_str)
            .zip(self.values.iter().copied())
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::PatternError::*;
    use super::*;
    use crate::policy::path::normalize;

    #[derive(Debug, Clone, Copy)]
    enum Kind {
        Exact,
        Prefix,
        Template,
    }

    fn compile(kind: Kind, s: &str) -> Result<PathPattern, PatternError> {
        match kind {
            Kind::Exact => PathPattern::exact(s),
            Kind::Prefix => PathPattern::prefix(s),
            Kind::Template => PathPattern::template(s),
        }
    }

    fn s(v: &str) -> String {
        v.to_owned()
    }

    #[test]
    fn compile_errors() {
        use Kind::*;
        let cases: Vec<(Kind, &str, PatternError)> = vec![
            (Exact, "", NotAbsolute { pattern: s("") }),
            (Exact, "api", NotAbsolute { pattern: s("api") }),
            (Prefix, "*", NotAbsolute { pattern: s("*") }),
            (Template, "", NotAbsolute { pattern: s("") }),
            (
                Template,
                "api/{id}",
                NotAbsolute {
                    pattern: s("api/{id}"),
                },
            ),
            (
                Exact,
                "/a?b=1",
                QueryOrFragment {
                    pattern: s("/a?b=1"),
                },
            ),
            (Prefix, "/a#x", QueryOrFragment { pattern: s("/a#x") }),
            (
                Template,
                "/a/{id}?x",
                QueryOrFragment {
                    pattern: s("/a/{id}?x"),
                },
            ),
            (
                Exact,
                "/a%2Fb",
                InvalidPath {
                    pattern: s("/a%2Fb"),
                    reason: PathError::EncodedSlash,
                },
            ),
            (
                Prefix,
                "/a;b",
                InvalidPath {
                    pattern: s("/a;b"),
                    reason: PathError::Semicolon,
                },
            ),
            (
                Template,
                "/a/{id}/b%zz",
                InvalidPath {
                    pattern: s("/a/{id}/b%zz"),
                    reason: PathError::InvalidPercentEncoding,
                },
            ),
            (
                Template,
                "/a\\b/{id}",
                InvalidPath {
                    pattern: s("/a\\b/{id}"),
                    reason: PathError::Backslash,
                },
            ),
            (
                Template,
                "/a b",
                InvalidPath {
                    pattern: s("/a b"),
                    reason: PathError::ControlCharacter,
                },
            ),
            (Template, "/a/{}", EmptyParamName),
            (Template, "/{id}/x/{id}", DuplicateParam { name: s("id") }),
            (Template, "/{1id}", InvalidParamName { name: s("1id") }),
            (
                Template,
                "/{dag-id}",
                InvalidParamName { name: s("dag-id") },
            ),
            (Template, "/{a b}", InvalidParamName { name: s("a b") }),
            (Template, "/{a*}", InvalidParamName { name: s("a*") }),
            (Template, "/{é}", InvalidParamName { name: s("é") }),
            (Template, "/**/x", DoubleWildcardNotLast),
            (Template, "/a/**/", DoubleWildcardNotLast),
            (Template, "/a/**/**", DoubleWildcardNotLast),
            (Template, "/{a", UnbalancedBrace { segment: s("{a") }),
            (Template, "/a}", UnbalancedBrace { segment: s("a}") }),
            (Template, "/}a{", UnbalancedBrace { segment: s("}a{") }),
            (Template, "/{{a}", UnbalancedBrace { segment: s("{{a}") }),
            (
                Template,
                "/a{b}",
                ParamNotWholeSegment { segment: s("a{b}") },
            ),
            (
                Template,
                "/{a}.json",
                ParamNotWholeSegment {
                    segment: s("{a}.json"),
                },
            ),
            (
                Template,
                "/{a}{b}",
                ParamNotWholeSegment {
                    segment: s("{a}{b}"),
                },
            ),
            (
                Template,
                "/{{a}}",
                ParamNotWholeSegment {
                    segment: s("{{a}}"),
                },
            ),
            (
                Template,
                "/a*",
                WildcardNotWholeSegment { segment: s("a*") },
            ),
            (
                Template,
                "/***",
                WildcardNotWholeSegment { segment: s("***") },
            ),
            (Template, "/a/./b", DotSegment { segment: s(".") }),
            (Template, "/a/../b", DotSegment { segment: s("..") }),
            (
                Template,
                "/a/%2e%2E",
                DotSegment {
                    segment: s("%2e%2E"),
                },
            ),
        ];
        for (kind, pattern, expected) in cases {
            assert_eq!(
                compile(kind, pattern),
                Err(expected),
                "{kind:?} {pattern:?}"
            );
        }
    }

    #[test]
    fn compiled_forms() {
        let cases: &[(Kind, &str, PathPattern)] = &[
            (Kind::Exact, "/a//b", PathPattern::Exact(s("/a/b"))),
            (Kind::Exact, "/a/./b/../c/", PathPattern::Exact(s("/a/c/"))),
            (
                Kind::Exact,
                "/%61dmin%3a",
                PathPattern::Exact(s("/admin%3A")),
            ),
            (Kind::Prefix, "/api//v1", PathPattern::Prefix(s("/api/v1"))),
            (Kind::Prefix, "/", PathPattern::Prefix(s("/"))),
        ];
        for (kind, pattern, expected) in cases {
            assert_eq!(
                compile(*kind, pattern).as_ref(),
                Ok(expected),
                "{pattern:?}"
            );
        }
        let t = PathPattern::template("/api//{id}/%61%3a/*/**").unwrap();
        let PathPattern::Template(t) = t else {
            panic!("not a template");
        };
        assert_eq!(t.as_str(), "/api//{id}/%61%3a/*/**");
        assert_eq!(
            t.segments,
            [
                Segment::Literal(s("api")),
                Segment::Param,
                Segment::Literal(s("a%3A")),
                Segment::Star,
                Segment::Rest,
            ]
        );
    }

    /// `(kind, pattern, path, None if no match else the captures)`.
    type MatchCase = (
        Kind,
        &'static str,
        &'static str,
        Option<&'static [(&'static str, &'static str)]>,
    );

    const MATCHES: &[MatchCase] = &[
        // Exact: whole path, trailing slash significant, case-sensitive.
        (Kind::Exact, "/admin", "/admin", Some(&[])),
        (Kind::Exact, "/admin", "/admin/", None),
        (Kind::Exact, "/admin/", "/admin/", Some(&[])),
        (Kind::Exact, "/admin/", "/admin", None),
        (Kind::Exact, "/admin", "/Admin", None),
        (Kind::Exact, "/admin", "/admin/x", None),
        (Kind::Exact, "/", "/", Some(&[])),
        (Kind::Exact, "/a%3ab", "/a%3Ab", Some(&[])),
        // Prefix: plain string prefix, as in Envoy RBAC.
        (Kind::Prefix, "/api", "/api", Some(&[])),
        (Kind::Prefix, "/api", "/api/x", Some(&[])),
        (Kind::Prefix, "/api", "/apiary", Some(&[])),
        (Kind::Prefix, "/api/", "/apiary", None),
        (Kind::Prefix, "/api/", "/api", None),
        (Kind::Prefix, "/api/", "/api/x/y", Some(&[])),
        (Kind::Prefix, "/", "/anything", Some(&[])),
        (Kind::Prefix, "/API", "/api", None),
        // Templates: literals and parameters.
        (
            Kind::Template,
            "/api/v1/dags/{dag_id}/dagRuns",
            "/api/v1/dags/etl/dagRuns",
            Some(&[("dag_id", "etl")]),
        ),
        (
            Kind::Template,
            "/api/v1/dags/{dag_id}/dagRuns",
            "/api/v1/dags/etl/dagRuns/x",
            None,
        ),
        (
            Kind::Template,
            "/api/v1/dags/{dag_id}/dagRuns",
            "/api/v1/dags/etl/dagRuns/",
            None,
        ),
        (
            Kind::Template,
            "/api/v1/dags/{dag_id}/dagRuns",
            "/api/v1/dags/etl",
            None,
        ),
        (
            Kind::Template,
            "/api/v1/dags/{dag_id}/dagRuns",
            "/api/v1/dags//dagRuns",
            None,
        ),
        (
            Kind::Template,
            "/api/v1/dags/{dag_id}/dagRuns",
            "/api/v1/DAGS/etl/dagRuns",
            None,
        ),
        (
            Kind::Template,
            "/api/v1/dags/{dag_id}/dagRuns",
            "/api/v1/dags/etl/dagruns",
            None,
        ),
        (
            Kind::Template,
            "/orgs/{org}/repos/{repo_name}",
            "/orgs/acme/repos/a%3Ab",
            Some(&[("org", "acme"), ("repo_name", "a%3Ab")]),
        ),
        (
            Kind::Template,
            "/items/{id}",
            "/items/5",
            Some(&[("id", "5")]),
        ),
        (Kind::Template, "/items/{id}", "/items/5/", None),
        (Kind::Template, "/items/{id}", "/items/", None),
        (Kind::Template, "/items/{id}", "/items", None),
        (
            Kind::Template,
            "/items/{id}/",
            "/items/5/",
            Some(&[("id", "5")]),
        ),
        (Kind::Template, "/items/{id}/", "/items/5", None),
        (Kind::Template, "/{_}", "/x", Some(&[("_", "x")])),
        (Kind::Template, "/%61dmin", "/admin", Some(&[])),
        // Root and trailing slashes.
        (Kind::Template, "/", "/", Some(&[])),
        (Kind::Template, "/", "/a", None),
        (Kind::Template, "/a", "/", None),
        (Kind::Template, "/a//b", "/a/b", Some(&[])),
        // `*`: one non-empty segment, not captured.
        (Kind::Template, "/a/*/c", "/a/b/c", Some(&[])),
        (Kind::Template, "/a/*/c", "/a//c", None),
        (Kind::Template, "/a/*/c", "/a/b/x/c", None),
        (Kind::Template, "/a/*", "/a/", None),
        (Kind::Template, "/a/*", "/a", None),
        (Kind::Template, "/*", "/", None),
        // `**`: zero or more trailing segments.
        (Kind::Template, "/api/**", "/api", Some(&[])),
        (Kind::Template, "/api/**", "/api/", Some(&[])),
        (Kind::Template, "/api/**", "/api/x", Some(&[])),
        (Kind::Template, "/api/**", "/api/x/y/", Some(&[])),
        (Kind::Template, "/api/**", "/apiary", None),
        (Kind::Template, "/api/**", "/ap", None),
        (Kind::Template, "/api/**", "/", None),
        (Kind::Template, "/**", "/", Some(&[])),
        (Kind::Template, "/**", "/a/b/c", Some(&[])),
        (Kind::Template, "/a/{id}/**", "/a/5", Some(&[("id", "5")])),
        (
            Kind::Template,
            "/a/{id}/**",
            "/a/5/x/y",
            Some(&[("id", "5")]),
        ),
        (Kind::Template, "/a/{id}/**", "/a/", None),
        (Kind::Template, "/a/{id}/**", "/a", None),
        // Inputs that are not normalized paths never match a template.
        (Kind::Template, "/**", "", None),
        (Kind::Template, "/**", "a/b", None),
    ];

    #[test]
    fn matching_and_captures() {
        for (kind, pattern, path, expected) in MATCHES {
            let compiled = compile(*kind, pattern).unwrap();
            let got = compiled.matches(path);
            assert_eq!(
                compiled.is_match(path),
                got.is_some(),
                "{pattern:?} {path:?}"
            );
            match (got, expected) {
                (None, None) => {}
                (Some(captures), Some(pairs)) => {
                    let found: Vec<(&str, &str)> = captures.iter().collect();
                    assert_eq!(found, *pairs, "{pattern:?} {path:?}");
                    assert_eq!(captures.len(), pairs.len());
                    for (name, value) in *pairs {
                        assert_eq!(captures.get(name), Some(*value), "{pattern:?} {path:?}");
                    }
                    assert_eq!(captures.get("absent"), None);
                }
                (got, _) => panic!("{pattern:?} {path:?}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn param_names() {
        let t = PathPattern::template("/orgs/{org}/*/repos/{repo}/**").unwrap();
        assert_eq!(t.param_names().collect::<Vec<_>>(), ["org", "repo"]);
        assert_eq!(PathPattern::exact("/a").unwrap().param_names().count(), 0);
        assert_eq!(PathPattern::prefix("/a").unwrap().param_names().count(), 0);
    }

    /// Patterns and request paths agree once both go through normalization.
    #[test]
    fn with_normalized_paths() {
        let t = PathPattern::template("/api/v1/dags/{dag_id}/dagRuns").unwrap();
        let cases: &[(&str, Option<&str>)] = &[
            ("/api/v1/dags/%65tl/dagRuns", Some("etl")),
            ("/api//v1/dags/etl/./dagRuns?x=/y", Some("etl")),
            ("/api/v1/x/../dags/a%3ab/dagRuns", Some("a%3Ab")),
            ("/api/v1/dags/etl/dagRuns/x/..", None),
            ("/api/v1/dags/etl/x/../dagRuns", Some("etl")),
        ];
        for (raw, expected) in cases {
            let path = normalize(raw, PathOptions::default()).unwrap();
            let got = t.matches(&path).and_then(|c| c.get("dag_id"));
            assert_eq!(got, *expected, "{raw:?} -> {path:?}");
        }
        // An allowed encoded slash stays inside its segment, so it lands in one parameter.
        let opts = PathOptions {
            allow_encoded_slash: true,
            ..PathOptions::default()
        };
        let path = normalize("/api/v1/dags/a%2fb/dagRuns", opts).unwrap();
        let captures = t.matches(&path).unwrap();
        assert_eq!(captures.get("dag_id"), Some("a%2Fb"));
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            DuplicateParam { name: s("id") }.to_string(),
            "parameter `id` appears more than once"
        );
        assert_eq!(
            EmptyParamName.to_string(),
            "parameter `{}` has an empty name"
        );
        assert_eq!(
            InvalidPath {
                pattern: s("/a%2F"),
                reason: PathError::EncodedSlash
            }
            .to_string(),
            "pattern `/a%2F` is not a valid path: path contains an encoded slash `%2F`"
        );
    }
}

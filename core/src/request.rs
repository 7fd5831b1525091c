//! What a decision is asked about: the request as the filter reads it, the facts rules match
//! it on, and when. A leaf: it names no other module of the crate.

/// What the filter reads from a request. Header names are lowercase (as Envoy gives them).
#[derive(Debug, Clone, Copy)]
pub struct Request<'r> {
    pub method: &'r str,
    pub authority: &'r str,
    /// The raw `:path`, query included.
    pub path: &'r str,
    pub headers: &'r [(String, String)],
}

/// What rules see of a request, already normalized.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'r> {
    /// The authority as [`normalize_host`] gives it.
    pub host: &'r str,
    pub method: &'r str,
    /// The normalized path, without query.
    pub path: &'r str,
}

/// The request authority as rules compare it: lowercase, no port, no trailing dot.
pub fn normalize_host(authority: &str) -> String {
    let without_port = if authority.starts_with('[') {
        // IPv6 literal: keep up to the closing bracket.
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

/// A moment as Unix seconds: when a decision is made (token lifetimes are checked against it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(i64);

impl UnixTime {
    pub const fn from_secs(secs: i64) -> UnixTime {
        UnixTime(secs)
    }

    pub const fn secs(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_normalization() {
        let cases = [
            ("Airflow.Internal:10000", "airflow.internal"),
            ("airflow.internal.", "airflow.internal"),
            ("airflow.internal.:443", "airflow.internal"),
            ("[::1]:8080", "[::1]"),
            ("127.0.0.1", "127.0.0.1"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize_host(raw), expected, "{raw}");
        }
    }
}

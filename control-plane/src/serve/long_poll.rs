//! Long polls (`Prefer: wait=N`, RFC 7240): a sidecar that already holds the current snapshot
//! may ask the control plane to hold its poll until a newer one is published, instead of
//! asking again every `poll_interval_s`. The answer then leaves as soon as the sync that
//! changed the catalog has published, so the poll interval no longer adds to the time a
//! catalog change takes to reach the edge. OPA's bundle long polling and xDS streams do the
//! same job. A client that does not ask, or names no entity tag, is answered at once.

use std::time::Duration;

use super::http::SNAPSHOTS_PREFIX;

/// The longest a poll is held, whatever the client asks: below the idle timeouts of common
/// proxies and load balancers (60 s), so a held poll is never cut by one.
pub const MAX_WAIT: Duration = Duration::from_secs(55);

/// Header set on an answer to a poll whose wait was honoured: the client may poll again at
/// once, since the server paces it.
pub const PREFERENCE_APPLIED: &str = "Preference-Applied";

/// A snapshot poll that asked to be held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LongPoll {
    /// The snapshot or view name.
    pub name: String,
    /// The client's `If-None-Match`.
    pub if_none_match: String,
    pub wait: Duration,
}

impl LongPoll {
    /// The long poll a request asks for: a GET of a snapshot with an `If-None-Match` naming
    /// entity tags (not `*`) and a `wait` preference.
    pub(crate) fn of(
        method: &str,
        url: &str,
        if_none_match: Option<&str>,
        prefer: Option<&str>,
    ) -> Option<LongPoll> {
        if method != "GET" {
            return None;
        }
        let path = url.split_once('?').map_or(url, |(path, _)| path);
        let name = path.strip_prefix(SNAPSHOTS_PREFIX)?;
        let if_none_match = if_none_match.map(str::trim).filter(|t| !t.is_empty())?;
        if if_none_match == "*" {
            return None;
        }
        Some(LongPoll {
            name: name.to_owned(),
            if_none_match: if_none_match.to_owned(),
            wait: wait_preference(prefer?)?,
        })
    }

    /// The `Preference-Applied` value for the answer.
    pub(crate) fn applied(&self) -> String {
        format!("wait={}", self.wait.as_secs())
    }
}

/// The `wait` preference of a `Prefer` header (RFC 7240 §4.3: `wait=<seconds>`, among other
/// preferences separated by commas, each possibly with `;` parameters), capped at
/// [`MAX_WAIT`]. `None` when absent, zero, repeated or not a number.
pub(crate) fn wait_preference(prefer: &str) -> Option<Duration> {
    let mut waits = prefer
        .split(',')
        .filter_map(|preference| preference.split(';').next())
        .filter_map(|token| {
            let (name, value) = token.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("wait")
                .then(|| value.trim().trim_matches('"'))
        });
    let value = waits.next()?;
    if waits.next().is_some() {
        return None;
    }
    let seconds: u64 = value.parse().ok().filter(|&s| s > 0)?;
    Some(Duration::from_secs(seconds).min(MAX_WAIT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_preferences_are_read_capped_and_bad_ones_ignored() {
        let cases: &[(&str, Option<u64>)] = &[
            ("wait=10", Some(10)),
            ("WAIT = 7", Some(7)),
            ("respond-async, wait=5", Some(5)),
            ("wait=\"3\";foo=bar", Some(3)),
            ("handling=lenient, wait=600", Some(MAX_WAIT.as_secs())),
            ("wait=0", None),
            ("wait=-1", None),
            ("wait=1.5", None),
            ("wait=", None),
            ("wait", None),
            ("wait=99999999999999999999999", None),
            ("wait=3, wait=4", None),
            ("return=minimal", None),
            ("", None),
        ];
        for (header, expected) in cases {
            assert_eq!(
                wait_preference(header).map(|d| d.as_secs()),
                *expected,
                "{header}"
            );
        }
    }

    #[test]
    fn only_conditional_snapshot_gets_are_held() {
        let poll = |method, url, inm, prefer| LongPoll::of(method, url, inm, prefer);
        let held = poll(
            "GET",
            "/v1/snapshots/default",
            Some("\"7-ab\""),
            Some("wait=20"),
        )
        .unwrap();
        assert_eq!(held.name, "default");
        assert_eq!(held.wait, Duration::from_secs(20));
        assert_eq!(held.applied(), "wait=20");
        assert_eq!(
            poll(
                "GET",
                "/v1/snapshots/five?x=1",
                Some("\"1\""),
                Some("wait=1")
            )
            .map(|p| p.name),
            Some("five".to_owned())
        );
        let not_held = [
            (
                "HEAD",
                "/v1/snapshots/default",
                Some("\"7\""),
                Some("wait=20"),
            ),
            ("GET", "/v1/snapshots/default", None, Some("wait=20")),
            ("GET", "/v1/snapshots/default", Some("*"), Some("wait=20")),
            ("GET", "/v1/snapshots/default", Some("  "), Some("wait=20")),
            ("GET", "/v1/snapshots/default", Some("\"7\""), None),
            (
                "GET",
                "/v1/snapshots/default",
                Some("\"7\""),
                Some("wait=0"),
            ),
            ("GET", "/metrics", Some("\"7\""), Some("wait=20")),
            (
                "POST",
                "/v1/snapshots/default",
                Some("\"7\""),
                Some("wait=20"),
            ),
        ];
        for (method, url, inm, prefer) in not_held {
            assert_eq!(
                poll(method, url, inm, prefer),
                None,
                "{method} {url} {inm:?} {prefer:?}"
            );
        }
    }
}

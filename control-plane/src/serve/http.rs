//! The HTTP endpoints, as a function from request to reply (no sockets here; `server.rs`
//! carries replies over hyper).
//!
//! | Method | Path | Reply |
//! |---|---|---|
//! | GET, HEAD | `/v1/snapshots/{name}` | 200 with the signed snapshot, `ETag`, `X-Meshgate-Snapshot-Version`; 304 when `If-None-Match` matches; 404 for another name; 503 before the first successful sync |
//! | GET, HEAD | `/healthz` | 200 while the process runs |
//! | GET, HEAD | `/readyz` | 200 once a snapshot is available, else 503 |
//! | GET, HEAD | `/metrics` | Prometheus text (`metrics.rs`) |
//! | POST | `/v1/sync` | runs a sync now and returns its [`SyncReport`] as JSON: 200 when it succeeded, 500 when it failed; `?force=true` publishes past the guards. With `access:` configured, only for an admin of the access policy (bearer token; 401/403 otherwise) |
//! | * | `/v1/access/...` | the access-request API (`crate::access::api`, docs/openapi/access.yaml); 404 without `access:` |
//!
//! Errors are JSON, `{"code": "...", "message": "..."}`, like the filter's (the access API's
//! are `{"error": {"code", "message"}}`).

use std::sync::Arc;

use serde_json::json;

use super::metrics;
use super::state::Shared;
use super::sync::{SyncReport, SyncStatus};

/// Snapshots are served under this prefix, followed by the snapshot name.
pub const SNAPSHOTS_PREFIX: &str = "/v1/snapshots/";
/// The version header of snapshot replies.
pub const VERSION_HEADER: &str = "X-Meshgate-Snapshot-Version";
/// `Content-Type` of snapshot replies.
pub const SNAPSHOT_CONTENT_TYPE: &str = "application/octet-stream";
/// `Content-Type` of delta replies (`226 IM Used`).
pub const DELTA_CONTENT_TYPE: &str = "application/vnd.meshgate.snapshot-delta";
/// The instance manipulation (RFC 3229) a filter asks for with `A-IM`.
pub const DELTA_ENCODING: &str = "meshgate-delta";

/// One request, as much of it as routing needs.
pub(crate) struct RequestParts<'a> {
    pub method: &'a str,
    /// Path and query, as received.
    pub url: &'a str,
    pub if_none_match: Option<&'a str>,
    /// `A-IM` (RFC 3229): the delta encodings the client takes.
    pub a_im: Option<&'a str>,
}

/// One reply. `length` is the `Content-Length` to announce: the body's, except for a 304,
/// which announces the length a 200 would have had and sends no body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Arc<[u8]>,
    pub length: usize,
}

impl Reply {
    fn new(status: u16, content_type: &str, body: impl Into<Arc<[u8]>>) -> Reply {
        let body = body.into();
        Reply {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            length: body.len(),
            body,
        }
    }

    fn text(status: u16, text: &str) -> Reply {
        Reply::new(status, "text/plain; charset=utf-8", text.as_bytes())
    }

    pub(crate) fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::new(status, "application/json", value.to_string().into_bytes())
    }

    fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::json(status, &json!({"code": code, "message": message}))
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// The value of the first header called `name` (case-insensitive).
    #[cfg(test)]
    pub(crate) fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Answers one request. `sync(force)` runs a sync and waits for its report; `None` when the
/// server is stopping.
pub(crate) fn route(
    shared: &Shared,
    request: &RequestParts<'_>,
    sync: &dyn Fn(bool) -> Option<SyncReport>,
) -> Reply {
    let (path, query) = request.url.split_once('?').unwrap_or((request.url, ""));
    let read = matches!(request.method, "GET" | "HEAD");
    let only = |allowed: &str| {
        Reply::error(
            405,
            "method_not_allowed",
            &format!("{path} accepts {allowed}"),
        )
        .header("Allow", allowed)
    };
    if let Some(name) = path.strip_prefix(SNAPSHOTS_PREFIX) {
        if !read {
            return only("GET, HEAD");
        }
        return snapshot(shared, name, request.if_none_match, request.a_im);
    }
    match path {
        "/healthz" if read => Reply::text(200, "ok\n"),
        "/readyz" if read => match shared.current() {
            Some(current) => Reply::text(200, &format!("ready: version {}\n", current.version)),
            None => Reply::text(503, "not ready: no snapshot yet\n"),
        },
        "/metrics" if read => Reply::new(
            200,
            metrics::CONTENT_TYPE,
            metrics::render(shared.name(), &shared.state()).into_bytes(),
        ),
        "/v1/sync" if request.method == "POST" => {
            let Some(force) = force_parameter(query) else {
                return Reply::error(400, "bad_request", "`force` must be `true` or `false`");
            };
            sync_reply(sync(force))
        }
        "/healthz" | "/readyz" | "/metrics" => only("GET, HEAD"),
        "/v1/sync" => only("POST"),
        _ => Reply::error(404, "not_found", &format!("no endpoint {path}")),
    }
}

/// `force` in a query string: absent or `false` is false, `true` is true, anything else (or
/// a repeated parameter) is `None`.
fn force_parameter(query: &str) -> Option<bool> {
    let mut values = query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .filter(|(key, _)| *key == "force")
        .map(|(_, value)| value);
    let force = match values.next() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return None,
    };
    values.next().is_none().then_some(force)
}

fn sync_reply(report: Option<SyncReport>) -> Reply {
    match report {
        Some(report) => {
            let status = if report.status == SyncStatus::Failed {
                500
            } else {
                200
            };
            let body = serde_json::to_value(&report).unwrap_or_default();
            Reply::json(status, &body)
        }
        None => Reply::error(503, "stopping", "the server is stopping"),
    }
}

fn snapshot(shared: &Shared, name: &str, if_none_match: Option<&str>, a_im: Option<&str>) -> Reply {
    if !shared.serves(name) {
        return Reply::error(
            404,
            "unknown_snapshot",
            &format!("no snapshot named `{name}`"),
        );
    }
    let served = shared.current().and_then(|whole| {
        if name == shared.name() {
            Some(whole)
        } else {
            whole.views.get(name).cloned()
        }
    });
    let Some(current) = served else {
        return Reply::error(
            503,
            "no_snapshot_yet",
            "no snapshot yet: the first sync has not succeeded",
        )
        .header("Retry-After", "5");
    };
    let headers = |reply: Reply| {
        reply
            .header("ETag", current.etag.clone())
            .header(VERSION_HEADER, current.version.to_string())
            .header("Cache-Control", "no-cache")
            .header("Vary", "A-IM")
    };
    if if_none_match.is_some_and(|tags| etag_matches(tags, &current.etag)) {
        return headers(Reply {
            status: 304,
            headers: Vec::new(),
            body: Arc::from(Vec::new()),
            length: current.bytes.len(),
        });
    }
    let delta = if_none_match
        .filter(|_| a_im.is_some_and(takes_delta))
        .and_then(|tags| delta_for(&current.deltas, tags));
    if let Some(delta) = delta {
        return headers(Reply::new(226, DELTA_CONTENT_TYPE, delta)).header("IM", DELTA_ENCODING);
    }
    headers(Reply::new(
        200,
        SNAPSHOT_CONTENT_TYPE,
        Arc::clone(&current.bytes),
    ))
}

/// Whether an `A-IM` list names meshgate's delta encoding (parameters ignored).
fn takes_delta(a_im: &str) -> bool {
    a_im.split(',').any(|item| {
        item.split(';')
            .next()
            .is_some_and(|im| im.trim().eq_ignore_ascii_case(DELTA_ENCODING))
    })
}

/// The delta from the first of the client's tags that one is kept for.
fn delta_for(deltas: &super::delta::Deltas, if_none_match: &str) -> Option<Arc<[u8]>> {
    if_none_match.split(',').find_map(|tag| {
        let tag = tag.trim().trim_start_matches("W/");
        deltas.get(tag).cloned()
    })
}

/// `If-None-Match` against the current entity tag: `*`, or a comma-separated list of tags, any
/// of which may be weak (`W/"…"`); the comparison is the weak one, as RFC 9110 requires for
/// `If-None-Match`.
pub(crate) fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let ours = opaque(etag);
    if_none_match.trim() == "*" || if_none_match.split(',').any(|tag| opaque(tag) == ours)
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;
    use super::super::sync::SyncStatus;
    use super::*;

    fn get<'a>(url: &'a str, if_none_match: Option<&'a str>) -> RequestParts<'a> {
        RequestParts {
            method: "GET",
            url,
            if_none_match,
            a_im: None,
        }
    }

    const ORG_WITHOUT_ALICE_IN_DATA_ENG: &str = "\
kind: Group
metadata: {name: data-eng}
spec: {type: team, children: []}
---
kind: Group
metadata: {name: analytics}
spec: {type: team, parent: data-eng, children: [], members: [bob]}
---
kind: User
metadata: {name: alice}
spec: {profile: {email: alice@example.com}, memberOf: []}
---
kind: User
metadata: {name: bob}
spec: {profile: {email: bob@example.com}, memberOf: []}
---
kind: Component
metadata: {name: etl-daily, annotations: {meshgate.io/airflow-dag: etl_daily}}
spec: {type: pipeline, owner: data-eng}
";

    fn no_sync(_force: bool) -> Option<SyncReport> {
        panic!("no sync expected")
    }

    fn body(reply: &Reply) -> String {
        String::from_utf8(reply.body.to_vec()).unwrap()
    }

    /// A server state after one good sync of the fixture.
    fn served(fixture: &Fixture) -> (Shared, std::sync::Arc<super::super::sync::Published>) {
        let shared = Shared::new("default");
        let mut syncer = fixture.syncer();
        let report = syncer.run();
        shared.record(&report, syncer.current().cloned());
        let current = shared.current().unwrap();
        (shared, current)
    }

    /// Scoped views are served by name; a poller that says `A-IM: meshgate-delta` and names
    /// an earlier version gets a signed delta (226) that turns it into the current one.
    #[test]
    fn views_and_deltas() {
        use meshgate_core::snapshot::{DecodeLimits, Snapshot};
        let fixture = Fixture::new("http-views");
        let mut config = fixture.config();
        config.views = vec![super::super::config::ViewConfig {
            name: "analytics".into(),
            groups: vec!["analytics".into()],
            ..Default::default()
        }];
        let shared = Shared::new("default").with_views(["analytics".to_owned()]);
        let mut syncer = fixture.syncer_for(&config);
        let mut sync = |shared: &Shared| {
            let report = syncer.run();
            assert_ne!(report.status, SyncStatus::Failed, "{report:?}");
            shared.record(&report, syncer.current().cloned());
        };
        let trusted = [fixture.key.trusted_key()];
        let decode =
            |bytes: &[u8]| Snapshot::decode(bytes, &trusted, &DecodeLimits::default()).unwrap();
        let ask = |url: &'static str, etag: Option<&str>, a_im: Option<&str>| {
            let request = RequestParts {
                method: "GET",
                url,
                if_none_match: etag,
                a_im,
            };
            route(&shared, &request, &no_sync)
        };
        assert_eq!(ask("/v1/snapshots/analytics", None, None).status, 503);
        assert_eq!(ask("/v1/snapshots/nope", None, None).status, 404);
        sync(&shared);

        let view_v1 = ask("/v1/snapshots/analytics", None, None);
        assert_eq!(view_v1.status, 200);
        let view = decode(&view_v1.body);
        assert_eq!(view.user_count(), 1, "bob only");
        assert!(view.user("user:default/bob").is_some());
        assert_eq!(ask("/v1/snapshots/nope", None, None).status, 404);
        let whole_v1 = ask("/v1/snapshots/default", None, None);
        let (etag_v1, view_etag) = (
            whole_v1.header_value("etag").unwrap().to_owned(),
            view_v1.header_value("etag").unwrap().to_owned(),
        );

        // alice leaves data-eng: the whole snapshot changes, the view does not.
        fixture.write_org(ORG_WITHOUT_ALICE_IN_DATA_ENG);
        fixture.set_now(1_700_000_100_000);
        sync(&shared);
        let delta = ask(
            "/v1/snapshots/default",
            Some(&etag_v1),
            Some("meshgate-delta"),
        );
        assert_eq!(delta.status, 226);
        assert_eq!(delta.header_value("im"), Some("meshgate-delta"));
        assert_eq!(
            delta.header_value("content-type"),
            Some("application/vnd.meshgate.snapshot-delta")
        );
        let whole_v2 = ask("/v1/snapshots/default", None, None);
        assert_eq!(delta.header_value("etag"), whole_v2.header_value("etag"));
        let applied = decode(&whole_v1.body)
            .apply_delta(&delta.body, &trusted, &DecodeLimits::default())
            .unwrap();
        assert_eq!(applied.image(), decode(&whole_v2.body).image());
        assert!(delta.body.len() < whole_v2.body.len());
        for (etag, a_im, why) in [
            (Some(etag_v1.as_str()), None, "no A-IM"),
            (Some(etag_v1.as_str()), Some("gzip"), "another encoding"),
            (
                Some("\"1-unknown\""),
                Some("meshgate-delta"),
                "unknown base",
            ),
            (None, Some("meshgate-delta"), "no base"),
        ] {
            let reply = ask("/v1/snapshots/default", etag, a_im);
            assert_eq!(reply.status, 200, "{why}");
        }
        assert_eq!(
            ask(
                "/v1/snapshots/default",
                Some(&etag_v1),
                Some("vcdiff, Meshgate-Delta;q=1")
            )
            .status,
            226
        );
        let same_view = ask(
            "/v1/snapshots/analytics",
            Some(&view_etag),
            Some("meshgate-delta"),
        );
        assert_eq!(same_view.status, 304, "the view did not change");
    }

    #[test]
    fn snapshots_with_etag_and_version() {
        let fixture = Fixture::new("http-snapshot");
        let (shared, current) = served(&fixture);
        let reply = route(&shared, &get("/v1/snapshots/default", None), &no_sync);
        assert_eq!(reply.status, 200);
        assert_eq!(&*reply.body, &*current.bytes);
        assert_eq!(reply.length, current.bytes.len());
        assert_eq!(
            reply.header_value("content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(reply.header_value("etag"), Some(current.etag.as_str()));
        assert!(current.etag.starts_with('"') && current.etag.ends_with('"'));
        assert_eq!(
            reply.header_value("x-meshgate-snapshot-version"),
            Some(current.version.to_string().as_str())
        );
        assert_eq!(reply.header_value("cache-control"), Some("no-cache"));
        // The query string does not matter; HEAD is answered like GET (the server drops the body).
        let head = RequestParts {
            method: "HEAD",
            url: "/v1/snapshots/default?x=1",
            if_none_match: None,
            a_im: None,
        };
        assert_eq!(route(&shared, &head, &no_sync), reply);
    }

    #[test]
    fn if_none_match_gives_304() {
        let fixture = Fixture::new("http-304");
        let (shared, current) = served(&fixture);
        let etag = current.etag.as_str();
        let weak = format!("W/{etag}");
        let listed = format!("\"1-abc\", {etag}");
        let cases = [
            (etag, 304),
            (weak.as_str(), 304),
            (listed.as_str(), 304),
            ("*", 304),
            ("\"1-abc\"", 200),
            ("", 200),
            (etag.trim_matches('"'), 200),
        ];
        for (if_none_match, status) in cases {
            let reply = route(
                &shared,
                &get("/v1/snapshots/default", Some(if_none_match)),
                &no_sync,
            );
            assert_eq!(reply.status, status, "{if_none_match}");
            assert_eq!(reply.header_value("etag"), Some(etag));
            if status == 304 {
                assert!(reply.body.is_empty());
                assert_eq!(reply.length, current.bytes.len());
                assert_eq!(reply.header_value("content-type"), None);
            }
        }
    }

    #[test]
    fn before_the_first_sync_snapshots_and_readiness_are_503() {
        let fixture = Fixture::new("http-503");
        let shared = Shared::new("default");
        let cases = [
            ("/v1/snapshots/default", 503, "no_snapshot_yet"),
            ("/v1/snapshots/other", 404, "unknown_snapshot"),
            ("/readyz", 503, "not ready"),
            ("/healthz", 200, "ok"),
        ];
        for (url, status, text) in cases {
            let reply = route(&shared, &get(url, None), &no_sync);
            assert_eq!(reply.status, status, "{url}");
            assert!(body(&reply).contains(text), "{url}: {}", body(&reply));
        }
        // A failed first sync changes nothing.
        std::fs::write(&fixture.rules, "{}").unwrap();
        let mut syncer = fixture.syncer();
        let report = syncer.run();
        shared.record(&report, syncer.current().cloned());
        assert_eq!(route(&shared, &get("/readyz", None), &no_sync).status, 503);
    }

    #[test]
    fn other_paths_and_methods() {
        let fixture = Fixture::new("http-routes");
        let (shared, current) = served(&fixture);
        let request = |method: &'static str, url: &'static str| RequestParts {
            method,
            url,
            if_none_match: None,
            a_im: None,
        };
        let cases = [
            (request("GET", "/readyz"), 200, None, "ready: version"),
            (request("GET", "/healthz"), 200, None, "ok"),
            (
                request("GET", "/v1/snapshots/"),
                404,
                None,
                "unknown_snapshot",
            ),
            (
                request("GET", "/v1/snapshots/default/x"),
                404,
                None,
                "unknown_snapshot",
            ),
            (
                request("GET", "/v1/snapshots/Default"),
                404,
                None,
                "unknown_snapshot",
            ),
            (request("GET", "/"), 404, None, "not_found"),
            (
                request("POST", "/v1/snapshots/default"),
                405,
                Some("GET, HEAD"),
                "method_not_allowed",
            ),
            (
                request("DELETE", "/healthz"),
                405,
                Some("GET, HEAD"),
                "method_not_allowed",
            ),
            (
                request("GET", "/v1/sync"),
                405,
                Some("POST"),
                "method_not_allowed",
            ),
        ];
        for (request, status, allow, text) in cases {
            let reply = route(&shared, &request, &no_sync);
            assert_eq!(reply.status, status, "{} {}", request.method, request.url);
            assert_eq!(reply.header_value("allow"), allow);
            assert!(body(&reply).contains(text), "{}", body(&reply));
        }
        assert!(body(&route(&shared, &request("GET", "/readyz"), &no_sync))
            .contains(&current.version.to_string()));
    }

    #[test]
    fn post_sync_returns_the_report() {
        let fixture = Fixture::new("http-sync");
        let (shared, current) = served(&fixture);
        let post = RequestParts {
            method: "POST",
            url: "/v1/sync",
            if_none_match: None,
            a_im: None,
        };
        let ok = SyncReport {
            status: SyncStatus::Unchanged,
            version: Some(current.version),
            serving_stale: false,
            warnings: 0,
            duration_ms: 3,
            forced: false,
            reason: None,
            guard: None,
            error: None,
        };
        let reply = route(&shared, &post, &|force| {
            assert!(!force);
            Some(ok.clone())
        });
        assert_eq!(reply.status, 200);
        let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": "unchanged", "version": current.version,
                "serving_stale": false, "warnings": 0, "duration_ms": 3, "forced": false})
        );
        let failed = SyncReport {
            status: SyncStatus::Failed,
            serving_stale: true,
            reason: Some("catalog"),
            error: Some("cannot read the catalog".into()),
            ..ok
        };
        let reply = route(&shared, &post, &|_| Some(failed.clone()));
        assert_eq!(reply.status, 500);
        let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(json["status"], "failed");
        assert_eq!(json["reason"], "catalog");
        assert_eq!(json["version"], current.version);
        assert_eq!(route(&shared, &post, &|_| None).status, 503);
        let refused = SyncReport {
            reason: Some("guard"),
            guard: Some("shrink"),
            ..failed
        };
        let json: serde_json::Value =
            serde_json::from_slice(&route(&shared, &post, &|_| Some(refused.clone())).body)
                .unwrap();
        assert_eq!(
            (&json["reason"], &json["guard"]),
            (&"guard".into(), &"shrink".into())
        );
    }

    #[test]
    fn force_is_true_false_or_a_bad_request() {
        let fixture = Fixture::new("http-force");
        let (shared, _) = served(&fixture);
        let cases = [
            ("/v1/sync", Some(false)),
            ("/v1/sync?force=false", Some(false)),
            ("/v1/sync?force=true", Some(true)),
            ("/v1/sync?x=1&force=true", Some(true)),
            ("/v1/sync?force=TRUE", None),
            ("/v1/sync?force=1", None),
            ("/v1/sync?force", None),
            ("/v1/sync?force=true&force=true", None),
        ];
        for (url, expected) in cases {
            let asked = std::cell::Cell::new(None);
            let post = RequestParts {
                method: "POST",
                url,
                if_none_match: None,
                a_im: None,
            };
            let reply = route(&shared, &post, &|force| {
                asked.set(Some(force));
                None
            });
            assert_eq!(asked.get(), expected, "{url}");
            assert_eq!(
                reply.status,
                if expected.is_some() { 503 } else { 400 },
                "{url}"
            );
        }
    }
}

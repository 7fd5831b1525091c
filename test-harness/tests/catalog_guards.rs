//! The control plane's Backstage reads against the fake backend: the cheap consistency check
//! (`fields=metadata.uid,metadata.etag`), `by-refs`, and the publish guards against a backend
//! that has just started.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "helpers outside #[test] fns should fail the test loudly too"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshgate_control_plane::catalog::RestSource;
use meshgate_control_plane::serve::{
    BackstageCatalog, CatalogSource, CatalogToken, Fraction, LogSink, ServeConfig, SyncStatus,
    Syncer,
};
use meshgate_core::snapshot::SigningKey;
use meshgate_test_harness::backstage::{BackstageServer, ColdStart, BY_REFS_PATH};
use serde_json::{json, Value};

const TOKEN: &str = "catalog-guard-token";

fn server() -> BackstageServer {
    BackstageServer::start_sample("127.0.0.1:0", TOKEN).unwrap()
}

struct Harness {
    syncer: Syncer,
    logs: Arc<Mutex<Vec<String>>>,
}

fn syncer(server: &BackstageServer, retries: u32) -> Harness {
    syncer_with(server, retries, |_| {})
}

fn syncer_with(
    server: &BackstageServer,
    retries: u32,
    adjust: impl FnOnce(&mut ServeConfig),
) -> Harness {
    let mut backstage = BackstageCatalog::new(server.url());
    backstage.token = Some(CatalogToken::Value(TOKEN.into()));
    let mut config = ServeConfig::new(CatalogSource::Backstage(backstage), "unused-key.json");
    config.guards.retries = retries;
    config.guards.retry_backoff = Duration::from_millis(5);
    adjust(&mut config);
    let logs = Arc::new(Mutex::new(Vec::new()));
    let log: LogSink = {
        let logs = Arc::clone(&logs);
        Arc::new(move |line: &str| logs.lock().unwrap().push(line.to_owned()))
    };
    let key = SigningKey::from_seed("guards", [7; 32]).unwrap();
    Harness {
        syncer: Syncer::new(&config, key, log),
        logs,
    }
}

fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let response = ureq::post(url)
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .send_json(body.clone());
    match response {
        Ok(response) => (response.status(), response.into_json().unwrap()),
        Err(ureq::Error::Status(status, response)) => (status, response.into_json().unwrap()),
        Err(error) => panic!("{error}"),
    }
}

#[test]
fn fields_and_by_refs_answer_like_backstage() {
    let server = server();
    let page: Value = ureq::get(&format!(
        "{}/api/catalog/entities/by-query?filter=kind=user&fields=metadata.uid,metadata.etag",
        server.url()
    ))
    .set("Authorization", &format!("Bearer {TOKEN}"))
    .call()
    .unwrap()
    .into_json()
    .unwrap();
    let items = page["items"].as_array().unwrap();
    assert!(!items.is_empty());
    for item in items {
        let metadata = item["metadata"].as_object().unwrap();
        assert_eq!(item.as_object().unwrap().len(), 1, "{item}");
        assert_eq!(metadata.len(), 2, "{item}");
        assert!(metadata["etag"]
            .as_str()
            .is_some_and(|etag| !etag.is_empty()));
    }

    let url = format!("{}{BY_REFS_PATH}", server.url());
    let (status, answer) = post_json(
        &url,
        &json!({"entityRefs": ["user:default/BOB", "user:default/nobody", 7],
                "fields": ["kind", "metadata.name"]}),
    );
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"items": [{"kind": "User", "metadata": {"name": "bob"}}, null, null]})
    );
    for (body, message) in [
        (json!({}), "Missing entityRefs array"),
        (
            json!({"entityRefs": [], "fields": "kind"}),
            "fields must be an array",
        ),
    ] {
        let (status, answer) = post_json(&url, &body);
        assert_eq!(status, 400);
        assert_eq!(answer["error"]["message"], message);
    }
    let unauthorized = ureq::post(&url).send_json(json!({"entityRefs": []}));
    assert!(matches!(unauthorized, Err(ureq::Error::Status(401, _))));
}

#[test]
fn the_consistency_check_moves_only_when_an_entity_does() {
    let server = server();
    let source = RestSource::new(server.url())
        .with_token(TOKEN)
        .with_page_size(2);
    let first = source.consistency_check().unwrap();
    assert_eq!(source.consistency_check().unwrap(), first);
    server.set_user_groups("bob", &["data-eng"]).unwrap();
    let changed = source.consistency_check().unwrap();
    assert_ne!(changed, first);
    assert_eq!(source.consistency_check().unwrap(), changed);
}

#[test]
fn an_unchanged_catalog_costs_only_the_check() {
    let server = server();
    let mut harness = syncer(&server, 0);
    assert_eq!(harness.syncer.run().status, SyncStatus::Updated);
    let before = server.requests().len();
    let report = harness.syncer.run();
    assert_eq!(report.status, SyncStatus::Unchanged);
    let requests = server.requests();
    let new = requests.get(before..).unwrap();
    assert!(!new.is_empty());
    assert!(
        new.iter()
            .all(|request| request.contains("fields=metadata.uid")),
        "{new:#?}"
    );
    server.set_user_groups("bob", &["data-eng"]).unwrap();
    assert_eq!(harness.syncer.run().status, SyncStatus::Updated);
}

#[test]
fn a_backstage_that_just_started_is_retried_then_published() {
    let server = server();
    // Two reads without users, then the catalog is processed: the retries cover it.
    server.cold_start(ColdStart::NoUsers, 2);
    let mut harness = syncer(&server, 3);
    let report = harness.syncer.run();
    assert_eq!(report.status, SyncStatus::Updated, "{report:?}");
    assert!(harness.syncer.current().unwrap().users > 0);
}

#[test]
fn a_backstage_that_just_started_is_never_published() {
    let cases = [
        // First sync after start: no users at all.
        (ColdStart::NoUsers, false, "empty"),
        // First sync: users missing while groups name them.
        (ColdStart::HalfTheUsers, false, "dangling"),
        // Later: a restarted backend answers with half the users.
        (ColdStart::HalfTheUsers, true, "dangling"),
    ];
    for (mode, published_before, guard) in cases {
        let server = server();
        let mut harness = syncer(&server, 2);
        let mut served = None;
        if published_before {
            assert_eq!(harness.syncer.run().status, SyncStatus::Updated);
            served = harness.syncer.current().map(|current| current.version);
        }
        server.cold_start(mode, 100);
        let report = harness.syncer.run();
        assert_eq!(
            (report.status, report.reason, report.guard),
            (SyncStatus::Failed, Some("guard"), Some(guard)),
            "{mode:?}: {report:?}"
        );
        assert_eq!(report.version, served);
        assert_eq!(report.serving_stale, published_before);
        let last = harness.logs.lock().unwrap().last().cloned().unwrap();
        assert!(last.contains(&format!("guard `{guard}` refused")), "{last}");
        // The operator knows better: force publishes what the backend says.
        let forced = harness.syncer.run_with(true);
        assert_eq!(forced.status, SyncStatus::Updated, "{forced:?}");
        // Processed at last: published again without force.
        server.cold_start(mode, 0);
        let warm = harness.syncer.run();
        assert_eq!(warm.status, SyncStatus::Updated, "{warm:?}");
    }
}

#[test]
fn the_shrink_guard_compares_with_the_last_published_read() {
    let server = server();
    // Removed users leave dangling `spec.members`; this test is about the shrink guard only.
    let mut harness = syncer_with(&server, 0, |config| {
        config.guards.max_dangling_fraction = Fraction::from_millionths(1_000_000);
    });
    assert_eq!(harness.syncer.run().status, SyncStatus::Updated);
    let users = harness.syncer.current().unwrap().users;
    // Remove most users from the catalog (not a cold start: a real edit, consistent).
    let yaml = meshgate_test_harness::backstage::read_catalog_dir(
        &meshgate_test_harness::backstage::sample_catalog_dir(),
    )
    .unwrap();
    let kept: Vec<&str> = yaml
        .split("\n---\n")
        .filter(|document| !document.contains("kind: User") || document.contains("name: alice"))
        .collect();
    server.reload_yaml(&kept.join("\n---\n")).unwrap();
    let report = harness.syncer.run();
    assert!(users > 2);
    assert_eq!(report.guard, Some("shrink"), "{report:?}");
    assert_eq!(harness.syncer.current().unwrap().users, users);
}

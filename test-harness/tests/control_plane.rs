//! `meshgate serve` against the fake Backstage backend: the REST source through the server
//! (token file, paging), changes in the catalog reaching a new version, keep-last-good while
//! the backend fails, and agreement with the YAML-directory source.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "helpers outside #[test] fns should fail the test loudly too"
)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use meshgate_control_plane::serve::{
    no_log, BackstageCatalog, CatalogSource, CatalogToken, RunningServer, ServeConfig, Server,
    SyncStatus,
};
use meshgate_control_plane::snapshot::{generate_signing_key, write_new_signing_key};
use meshgate_core::snapshot::{DecodeLimits, Snapshot};
use meshgate_test_harness::backstage::{sample_catalog_dir, BackstageServer, Failure};

const TOKEN: &str = "control-plane-test-token";
const READY: Duration = Duration::from_secs(20);

/// A scratch directory with a signing key and a token file.
struct Scratch {
    dir: PathBuf,
    key_file: PathBuf,
    token_file: PathBuf,
}

impl Scratch {
    fn new(label: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "meshgate-harness-cp-{label}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = generate_signing_key(Some("cp-harness"), &mut rand::rngs::OsRng).unwrap();
        let key_file = dir.join("key.json");
        write_new_signing_key(&key, &key_file).unwrap();
        let token_file = dir.join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        Scratch {
            dir,
            key_file,
            token_file,
        }
    }

    fn config(&self, catalog: CatalogSource) -> ServeConfig {
        let mut config = ServeConfig::new(catalog, &self.key_file);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.resync_interval = Duration::from_secs(3600);
        config
    }

    fn backstage(&self, backstage: &BackstageServer, token: CatalogToken) -> ServeConfig {
        let mut catalog = BackstageCatalog::new(backstage.url());
        catalog.token = Some(token);
        catalog.page_size = 2;
        self.config(CatalogSource::Backstage(catalog))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fetch(server: &RunningServer, if_none_match: Option<&str>) -> (u16, Option<String>, Vec<u8>) {
    let mut request = ureq::get(&server.snapshot_url()).timeout(Duration::from_secs(10));
    if let Some(tag) = if_none_match {
        request = request.set("If-None-Match", tag);
    }
    let response = match request.call() {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("{error}"),
    };
    let (status, etag) = (
        response.status(),
        response.header("ETag").map(str::to_owned),
    );
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut body).unwrap();
    (status, etag, body)
}

fn decode(server: &RunningServer, bytes: &[u8]) -> Snapshot {
    Snapshot::decode(bytes, &[server.trusted_key()], &DecodeLimits::default()).unwrap()
}

/// The user's closed groups: direct groups and the ancestors of each, as core unions them.
fn groups(snapshot: &Snapshot, user: &str) -> Vec<String> {
    snapshot
        .groups_of_user(user)
        .unwrap_or_else(|| panic!("no {user}"))
        .iter()
        .map(str::to_owned)
        .collect()
}

fn metric(server: &RunningServer, name: &str) -> String {
    let text = ureq::get(&format!("{}/metrics", server.url()))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .to_owned()
}

#[test]
fn serves_the_rest_catalog_and_keeps_the_last_good_snapshot_while_it_fails() {
    let backstage = BackstageServer::start_sample("127.0.0.1:0", TOKEN).unwrap();
    let scratch = Scratch::new("rest");
    let config = scratch.backstage(&backstage, CatalogToken::File(scratch.token_file.clone()));
    let mut server = Server::start_with_log(config, no_log()).unwrap();
    assert!(server.wait_ready(READY));
    // Paged with cursors, as configured.
    assert!(backstage.requests().iter().any(|r| r.contains("cursor=")));

    let (status, etag, body) = fetch(&server, None);
    assert_eq!(status, 200);
    let etag = etag.unwrap();
    let first = decode(&server, &body);
    assert_eq!(
        groups(&first, "user:default/bob"),
        ["group:default/analytics", "group:default/data-eng"]
    );
    assert_eq!(
        first
            .owners_of("buildkite.pipeline", "acme/deploy")
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        ["group:default/ci-admins"]
    );

    // bob moves from analytics (through relations only) to ci-admins.
    backstage.set_user_groups("bob", &["ci-admins"]).unwrap();
    let report = server.trigger_sync().unwrap();
    assert_eq!(report.status, SyncStatus::Updated, "{report:?}");
    let (status, new_etag, body) = fetch(&server, Some(&etag));
    assert_eq!(status, 200);
    let second = decode(&server, &body);
    assert!(second.is_newer_than(&first));
    assert_eq!(
        groups(&second, "user:default/bob"),
        ["group:default/ci-admins"]
    );
    let new_etag = new_etag.unwrap();

    // The backend fails in every way it can: the snapshot stays, marked stale.
    for (n, failure) in [
        Failure::Status(500),
        Failure::Status(503),
        Failure::Garbage,
        Failure::WrongShape,
    ]
    .into_iter()
    .enumerate()
    {
        backstage.fail_with(Some(failure.clone()));
        let report = server.trigger_sync().unwrap();
        assert_eq!(
            (
                report.status,
                report.reason,
                report.version,
                report.serving_stale
            ),
            (
                SyncStatus::Failed,
                Some("catalog"),
                Some(second.version()),
                true
            ),
            "{failure:?}"
        );
        assert_eq!(fetch(&server, Some(&new_etag)).0, 304, "{failure:?}");
        assert_eq!(metric(&server, "meshgate_cp_serving_stale"), "1");
        assert_eq!(
            metric(
                &server,
                "meshgate_cp_sync_failures_total{reason=\"catalog\"}"
            ),
            (n + 1).to_string()
        );
    }
    backstage.fail_with(None);

    // A rotated token file is read at the next sync: a wrong one fails, a right one works.
    std::fs::write(&scratch.token_file, "wrong").unwrap();
    let report = server.trigger_sync().unwrap();
    assert!(report.error.unwrap().contains("check the catalog token"));
    std::fs::write(&scratch.token_file, TOKEN).unwrap();
    let report = server.trigger_sync().unwrap();
    assert_eq!(
        (report.status, report.version),
        (SyncStatus::Unchanged, Some(second.version()))
    );
    assert_eq!(metric(&server, "meshgate_cp_serving_stale"), "0");
    server.stop();
}

#[test]
fn a_missing_token_variable_is_a_token_failure() {
    let backstage = BackstageServer::start_sample("127.0.0.1:0", TOKEN).unwrap();
    let scratch = Scratch::new("token-env");
    let config = scratch.backstage(
        &backstage,
        CatalogToken::Env("MESHGATE_HARNESS_TOKEN_NEVER_SET".into()),
    );
    let mut server = Server::start_with_log(config, no_log()).unwrap();
    let report = server.trigger_sync().unwrap();
    assert_eq!(
        (report.status, report.reason, report.version),
        (SyncStatus::Failed, Some("token"), None)
    );
    assert!(report
        .error
        .unwrap()
        .contains("MESHGATE_HARNESS_TOKEN_NEVER_SET"));
    assert_eq!(fetch(&server, None).0, 503);
    assert!(backstage.requests().is_empty());
    server.stop();
}

#[test]
fn rest_and_directory_sources_publish_the_same_content() {
    let backstage = BackstageServer::start_sample("127.0.0.1:0", TOKEN).unwrap();
    let scratch = Scratch::new("agree");
    let from_rest = Server::start_with_log(
        scratch.backstage(&backstage, CatalogToken::Value(TOKEN.into())),
        no_log(),
    )
    .unwrap();
    let from_dir = Server::start_with_log(
        scratch.config(CatalogSource::Directory(sample_catalog_dir())),
        no_log(),
    )
    .unwrap();
    assert!(from_rest.wait_ready(READY) && from_dir.wait_ready(READY));
    let (rest, dir) = (from_rest.current().unwrap(), from_dir.current().unwrap());
    assert_eq!(rest.content_hash, dir.content_hash);
    assert_eq!((rest.users, rest.groups, rest.owned), (5, 4, 5));
}

//! `meshgate serve` in-process: the example configuration over a copy of the sample catalog
//! (test-harness/catalog), fetched over HTTP and decoded the way the filter will, then changed,
//! resynced, broken and stopped.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "helpers outside #[test] fns should fail the test loudly too"
)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshgate_control_plane::serve::{
    BackstageCatalog, CatalogSource, LogSink, RunningServer, ServeConfig, Server, SyncStatus,
};
use meshgate_control_plane::snapshot::{
    generate_signing_key, public_key_line, write_new_signing_key, PublicKeySpec, TrustedKey,
};
use meshgate_core::snapshot::{DecodeLimits, Snapshot};

const READY: Duration = Duration::from_secs(20);

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory holding a copy of the sample catalog, the example rules and a new key.
struct Scratch {
    dir: PathBuf,
    catalog: PathBuf,
    key_file: PathBuf,
    /// The public key line `meshgate keygen` prints, as the filter is configured with it.
    public_key_line: String,
}

impl Scratch {
    fn new(label: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "meshgate-serve-it-{label}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let catalog = dir.join("catalog");
        std::fs::create_dir_all(&catalog).unwrap();
        let sample = manifest_dir().join("../test-harness/catalog");
        for entry in std::fs::read_dir(&sample).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, catalog.join(path.file_name().unwrap())).unwrap();
        }
        let key = generate_signing_key(Some("cp-it"), &mut rand::rngs::OsRng).unwrap();
        let key_file = dir.join("snapshot-key.json");
        write_new_signing_key(&key, &key_file).unwrap();
        Scratch {
            dir,
            catalog,
            key_file,
            public_key_line: public_key_line(&key),
        }
    }

    /// The example configuration, pointed at this copy, this key and any free port.
    fn config(&self) -> ServeConfig {
        let mut config = ServeConfig::load(manifest_dir().join("examples/cp.yaml")).unwrap();
        assert!(config
            .rules_file
            .as_ref()
            .unwrap()
            .ends_with("examples/rules.yaml"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.catalog = CatalogSource::Directory(self.catalog.clone());
        config.signing_key_file = self.key_file.clone();
        // Only triggered syncs after the first, so the test decides when content changes.
        config.resync_interval = Duration::from_secs(3600);
        config.watch_interval = None;
        config.guards.retry_backoff = Duration::from_millis(1);
        config
    }

    fn trusted(&self) -> TrustedKey {
        let spec: PublicKeySpec = serde_json::from_str(&self.public_key_line).unwrap();
        TrustedKey::from_spec(&spec).unwrap()
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.catalog.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn collect_logs() -> (LogSink, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let lines = Arc::clone(&lines);
        Arc::new(move |line: &str| lines.lock().unwrap().push(line.to_owned())) as LogSink
    };
    (sink, lines)
}

struct Reply {
    status: u16,
    etag: Option<String>,
    version: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

fn request(method: &str, url: &str, if_none_match: Option<&str>) -> Reply {
    let mut request = ureq::request(method, url).timeout(Duration::from_secs(10));
    if let Some(tag) = if_none_match {
        request = request.set("If-None-Match", tag);
    }
    let response = match request.call() {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("{method} {url}: {error}"),
    };
    let header = |name: &str| response.header(name).map(str::to_owned);
    let (status, etag, version, content_type) = (
        response.status(),
        header("ETag"),
        header("X-Meshgate-Snapshot-Version"),
        header("Content-Type"),
    );
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut body).unwrap();
    Reply {
        status,
        etag,
        version,
        content_type,
        body,
    }
}

fn get(server: &RunningServer, path: &str) -> Reply {
    request("GET", &format!("{}{path}", server.url()), None)
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

fn owners(snapshot: &Snapshot, kind: &str, id: &str) -> Vec<String> {
    snapshot
        .owners_of(kind, id)
        .unwrap_or_else(|| panic!("no {kind} {id}"))
        .iter()
        .map(str::to_owned)
        .collect()
}

fn metric(server: &RunningServer, name: &str) -> String {
    let text = String::from_utf8(get(server, "/metrics").body).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .to_owned()
}

#[test]
fn serves_the_sample_catalog_and_follows_changes() {
    let scratch = Scratch::new("follow");
    let (log, lines) = collect_logs();
    let mut server = Server::start_with_log(scratch.config(), log).unwrap();
    assert!(server.wait_ready(READY));
    assert_eq!(
        server.public_key(),
        serde_json::from_str(&scratch.public_key_line).unwrap()
    );
    assert_eq!(server.snapshot_path(), "/v1/snapshots/default");

    // The snapshot, decoded with the public key line as the filter will be configured.
    let first = request("GET", &server.snapshot_url(), None);
    assert_eq!(first.status, 200);
    assert_eq!(
        first.content_type.as_deref(),
        Some("application/octet-stream")
    );
    let etag = first.etag.clone().unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let snapshot =
        Snapshot::decode(&first.body, &[scratch.trusted()], &DecodeLimits::default()).unwrap();
    assert_eq!(first.version, Some(snapshot.version().to_string()));
    assert_eq!(server.current_version(), Some(snapshot.version()));
    // bob is listed only in analytics' members, and analytics is nested in data-eng.
    assert_eq!(
        groups(&snapshot, "user:default/bob"),
        ["group:default/analytics", "group:default/data-eng"]
    );
    assert_eq!(
        groups(&snapshot, "user:default/alice"),
        ["group:default/data-eng"]
    );
    assert_eq!(
        owners(&snapshot, "airflow.dag", "etl_daily"),
        ["group:default/data-eng"]
    );
    assert_eq!(
        owners(&snapshot, "airflow.dag", "marketing_report"),
        ["group:default/analytics"]
    );
    let analytics = snapshot.group_index("group:default/analytics").unwrap();
    let above: Vec<&str> = snapshot.ancestors_of(analytics).iter().collect();
    assert_eq!(above, ["group:default/data-eng"]);
    let rules: serde_json::Value = serde_json::from_str(snapshot.rules_json().unwrap()).unwrap();
    let ids: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| rule["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.first(), Some(&"health"));
    assert!(ids.contains(&"airflow-trigger-owners"), "{ids:?}");
    // What the filter will compile when it loads the snapshot.
    meshgate_core::config::compile_rules_json(snapshot.rules_json().unwrap()).unwrap();

    // Nothing changed: 304 with the same ETag, and a sync keeps the version.
    let again = request("GET", &server.snapshot_url(), Some(&etag));
    assert_eq!(
        (again.status, again.etag.as_deref()),
        (304, Some(etag.as_str()))
    );
    assert!(again.body.is_empty());
    let report = server.trigger_sync().unwrap();
    assert_eq!(
        (report.status, report.version),
        (SyncStatus::Unchanged, Some(snapshot.version()))
    );

    // bob leaves analytics: a newer version without analytics or data-eng for him.
    scratch.edit("org.yaml", "  members: [bob]\n", "  members: []\n");
    let report = server.trigger_sync().unwrap();
    assert_eq!(report.status, SyncStatus::Updated, "{report:?}");
    let changed = request("GET", &server.snapshot_url(), Some(&etag));
    assert_eq!(changed.status, 200);
    let newer = Snapshot::decode(
        &changed.body,
        &[scratch.trusted()],
        &DecodeLimits::default(),
    )
    .unwrap();
    assert!(newer.is_newer_than(&snapshot));
    assert_eq!(report.version, Some(newer.version()));
    assert_ne!(changed.etag.as_deref(), Some(etag.as_str()));
    assert!(groups(&newer, "user:default/bob").is_empty());
    assert_eq!(
        groups(&newer, "user:default/alice"),
        ["group:default/data-eng"]
    );
    let new_etag = changed.etag.unwrap();
    assert_eq!(
        request("GET", &server.snapshot_url(), Some(&new_etag)).status,
        304
    );

    // POST /v1/sync over HTTP.
    let posted = request("POST", &format!("{}/v1/sync", server.url()), None);
    assert_eq!(posted.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&posted.body).unwrap();
    assert_eq!(json["status"], "unchanged");
    assert_eq!(json["version"], newer.version());

    let logged = lines.lock().unwrap().clone();
    assert!(
        logged[0].starts_with("serving snapshot `default` at http://127.0.0.1:"),
        "{logged:?}"
    );
    assert_eq!(
        logged
            .iter()
            .filter(|l| l.starts_with("sync updated:"))
            .count(),
        2
    );
    server.stop();
}

#[test]
fn keeps_the_last_good_snapshot_while_the_catalog_or_rules_are_broken() {
    let scratch = Scratch::new("stale");
    let rules = scratch.dir.join("rules.yaml");
    std::fs::copy(manifest_dir().join("examples/rules.yaml"), &rules).unwrap();
    let mut config = scratch.config();
    config.rules_file = Some(rules.clone());
    let (log, lines) = collect_logs();
    let mut server = Server::start_with_log(config, log).unwrap();
    assert!(server.wait_ready(READY));
    let good = get(&server, "/v1/snapshots/default");
    let version = server.current_version().unwrap();
    assert_eq!(metric(&server, "meshgate_cp_serving_stale"), "0");

    let org = scratch.catalog.join("org.yaml");
    let original = std::fs::read_to_string(&org).unwrap();
    let breakages: [(&Path, &str, &str); 2] = [
        (&org, "kind: Group\nmetadata: [\n", "catalog"),
        (
            &rules,
            "- id: x\n  action: allow\n  when: {groups_any: 7}\n",
            "rules",
        ),
    ];
    for (failures, (file, garbage, reason)) in (1..).zip(breakages) {
        let before = std::fs::read_to_string(file).unwrap();
        std::fs::write(file, garbage).unwrap();
        let posted = request("POST", &format!("{}/v1/sync", server.url()), None);
        assert_eq!(posted.status, 500, "{reason}");
        let json: serde_json::Value = serde_json::from_slice(&posted.body).unwrap();
        assert_eq!(
            (
                &json["status"],
                &json["reason"],
                &json["version"],
                &json["serving_stale"]
            ),
            (
                &"failed".into(),
                &reason.into(),
                &version.into(),
                &true.into()
            )
        );
        let served = get(&server, "/v1/snapshots/default");
        assert_eq!(
            (served.status, &served.body, &served.etag),
            (200, &good.body, &good.etag)
        );
        assert_eq!(get(&server, "/readyz").status, 200);
        assert_eq!(metric(&server, "meshgate_cp_serving_stale"), "1");
        assert_eq!(
            metric(
                &server,
                &format!("meshgate_cp_sync_failures_total{{reason=\"{reason}\"}}")
            ),
            "1"
        );
        assert_eq!(
            failures,
            lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.starts_with("sync failed"))
                .count()
        );
        std::fs::write(file, before).unwrap();
        let report = server.trigger_sync().unwrap();
        assert_eq!(
            (report.status, report.version),
            (SyncStatus::Unchanged, Some(version))
        );
        assert_eq!(metric(&server, "meshgate_cp_serving_stale"), "0");
    }
    assert_eq!(std::fs::read_to_string(&org).unwrap(), original);
    assert_eq!(metric(&server, "meshgate_cp_sync_successes_total"), "3");
    server.stop();
}

#[test]
fn answers_while_a_sync_hangs_and_stops_cleanly() {
    // A catalog that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let scratch = Scratch::new("hang");
    let mut config = scratch.config();
    let mut backstage = BackstageCatalog::new(format!("http://{silent_addr}"));
    backstage.timeout = Duration::from_secs(2);
    config.catalog = CatalogSource::Backstage(backstage);
    config.rules_file = None;
    let (log, lines) = collect_logs();
    let mut server = Server::start_with_log(config, log).unwrap();
    let addr: SocketAddr = server.addr();

    // The first sync is stuck on the catalog; the endpoints answer anyway, at once.
    std::thread::sleep(Duration::from_millis(200));
    for (path, status) in [
        ("/healthz", 200),
        ("/readyz", 503),
        ("/v1/snapshots/default", 503),
    ] {
        let started = Instant::now();
        assert_eq!(get(&server, path).status, status, "{path}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{path}: {:?}",
            started.elapsed()
        );
    }
    assert!(!server.wait_ready(Duration::from_millis(100)));
    assert_eq!(server.current_version(), None);

    let started = Instant::now();
    server.stop();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!server.is_running());
    assert!(server.trigger_sync().is_none());
    // The port is free again, and nothing answers on it.
    drop(TcpListener::bind(addr).unwrap());
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    let logged = lines.lock().unwrap().clone();
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with("sync failed (catalog), no snapshot yet")),
        "{logged:?}"
    );
    assert_eq!(logged.last().map(String::as_str), Some("stopped"));
    drop(silent);
}

/// One request on a kept-alive connection: its status and `Content-Length`. The body is read
/// (and checked to be as long as announced) except after HEAD and 304, which have none.
fn keep_alive_request(
    stream: &mut std::io::BufReader<TcpStream>,
    method: &str,
    path: &str,
    if_none_match: Option<&str>,
) -> (u16, usize) {
    use std::io::{BufRead as _, Read as _, Write as _};
    let condition = if_none_match.map_or(String::new(), |tag| format!("If-None-Match: {tag}\r\n"));
    // One write: a request in pieces would wait on Nagle's algorithm.
    let head = format!("{method} {path} HTTP/1.1\r\nHost: meshgate\r\n{condition}\r\n");
    stream.get_mut().write_all(head.as_bytes()).unwrap();
    let mut status_line = String::new();
    assert!(stream.read_line(&mut status_line).unwrap() > 0, "closed");
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = None;
    loop {
        let mut line = String::new();
        assert!(stream.read_line(&mut line).unwrap() > 0, "closed");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        assert!(
            !(name.eq_ignore_ascii_case("connection") && value.trim() == "close"),
            "{method} {path}: the server closes the connection"
        );
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.trim().parse::<usize>().unwrap());
        }
    }
    let length = length.unwrap_or_else(|| panic!("{method} {path}: no Content-Length"));
    if method != "HEAD" && status != 304 {
        let mut body = vec![0; length];
        stream.read_exact(&mut body).unwrap();
    }
    (status, length)
}

/// A burst of keep-alive clients (Envoy sidecars polling after a control-plane restart) is
/// answered in full: tiny_http queued some connections behind others that never closed, so a
/// client waited until another one left.
#[test]
fn a_burst_of_keep_alive_clients_is_answered_without_starving_any() {
    const CLIENTS: usize = 8;
    const RUN: Duration = Duration::from_secs(2);
    let scratch = Scratch::new("keep-alive");
    let (log, _lines) = collect_logs();
    let mut server = Server::start_with_log(scratch.config(), log).unwrap();
    assert!(server.wait_ready(READY));
    let snapshot = get(&server, "/v1/snapshots/default");
    let etag = snapshot.etag.unwrap();
    let size = snapshot.body.len();
    let path = server.snapshot_path();
    struct Step {
        method: &'static str,
        path: String,
        if_none_match: Option<String>,
        status: u16,
        /// The `Content-Length` announced, when it matters.
        length: Option<usize>,
    }
    let step = |method, path: &str, if_none_match: Option<&str>, status, length| Step {
        method,
        path: path.to_owned(),
        if_none_match: if_none_match.map(str::to_owned),
        status,
        length,
    };
    // Each client sends these in turn, all on one connection: a body, none after HEAD and
    // 304 (which still announce the snapshot's length), and small replies.
    let cycle = Arc::new([
        step("GET", "/healthz", None, 200, None),
        step("GET", &path, None, 200, Some(size)),
        step("HEAD", &path, None, 200, Some(size)),
        step("GET", &path, Some(&etag), 304, Some(size)),
        step("GET", "/readyz", None, 200, None),
    ]);
    // All connected at once, as fast as one thread can.
    let streams: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    let clients: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            let cycle = Arc::clone(&cycle);
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut stream = std::io::BufReader::new(stream);
                let (mut done, mut longest) = (0_usize, Duration::ZERO);
                let began = Instant::now();
                for step in cycle.iter().cycle() {
                    if began.elapsed() >= RUN {
                        break;
                    }
                    let sent = Instant::now();
                    let (status, announced) = keep_alive_request(
                        &mut stream,
                        step.method,
                        &step.path,
                        step.if_none_match.as_deref(),
                    );
                    longest = longest.max(sent.elapsed());
                    let what = format!("{} {}", step.method, step.path);
                    assert_eq!(status, step.status, "{what}");
                    if let Some(length) = step.length {
                        assert_eq!(announced, length, "{what}");
                    }
                    done += 1;
                }
                (done, longest)
            })
        })
        .collect();
    let results: Vec<(usize, Duration)> = clients
        .into_iter()
        .map(|client| client.join().unwrap())
        .collect();
    assert!(
        results
            .iter()
            .all(|(done, longest)| *done >= 10 && *longest < Duration::from_secs(1)),
        "requests completed and longest wait per client: {results:?}"
    );
    server.stop();
}

/// The `meshgate serve` process: logs written from the sync thread must reach stderr while
/// the main thread waits (a stderr lock held by the main thread once blocked the first sync
/// forever), and the snapshot is served.
#[test]
fn the_meshgate_binary_serves_and_logs_from_its_threads() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};

    let scratch = Scratch::new("binary");
    let config = scratch.dir.join("cp.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ncatalog: {{directory: catalog}}\nsigning_key_file: {}\n",
            scratch.key_file.display()
        ),
    )
    .unwrap();
    /// Ends the server even when an assertion fails first.
    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Child)
        .unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || lines_rx.recv_timeout(READY).unwrap();
    let first = next();
    let url = first
        .strip_prefix("meshgate: serving snapshot `default` at ")
        .and_then(|rest| rest.split_once("/v1/snapshots/default"))
        .map(|(url, _)| url.to_owned())
        .unwrap_or_else(|| panic!("{first}"));
    let synced = next();
    assert!(
        synced.starts_with("meshgate: sync updated: snapshot `default` version "),
        "{synced}"
    );
    // The line is logged just before the snapshot is swapped in.
    let deadline = Instant::now() + READY;
    while request("GET", &format!("{url}/readyz"), None).status != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let reply = request("GET", &format!("{url}/v1/snapshots/default"), None);
    assert_eq!(reply.status, 200);
    let snapshot =
        Snapshot::decode(&reply.body, &[scratch.trusted()], &DecodeLimits::default()).unwrap();
    assert_eq!(snapshot.user_count(), 5);
    drop(child);
    reader.join().unwrap();
}

/// Polls `done` every 20 ms for at most `limit`; how long it took, or `None`.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn the_watch_publishes_a_change_without_waiting_for_the_resync() {
    let scratch = Scratch::new("watch");
    let mut config = scratch.config();
    config.watch_interval = Some(Duration::from_millis(50));
    let (log, lines) = collect_logs();
    let mut server = Server::start_with_log(config, log).unwrap();
    assert!(server.wait_ready(READY));
    let first = server.current_version().unwrap();
    // A burst of writes is read once, after it settles.
    for members in ["  members: []\n", "  members: [bob]\n", "  members: []\n"] {
        let from = if members.contains("bob") {
            "  members: []\n"
        } else {
            "  members: [bob]\n"
        };
        scratch.edit("org.yaml", from, members);
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = wait_for(Duration::from_secs(10), || {
        server
            .current_version()
            .is_some_and(|version| version != first)
    });
    assert!(took.is_some(), "the watch never synced");
    let updates = || {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.starts_with("sync updated"))
            .count()
    };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(updates(), 2, "{:?}", lines.lock().unwrap());
    // Without a change the watch stays quiet: no further syncs.
    let syncs = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("sync "))
        .count();
    std::thread::sleep(Duration::from_millis(400));
    let later = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("sync "))
        .count();
    assert_eq!(syncs, later);
    server.stop();
}

#[test]
fn a_refused_catalog_is_counted_and_an_operator_can_force_it() {
    let scratch = Scratch::new("guards");
    let (log, _lines) = collect_logs();
    let mut server = Server::start_with_log(scratch.config(), log).unwrap();
    assert!(server.wait_ready(READY));
    let version = server.current_version().unwrap();
    for entry in std::fs::read_dir(&scratch.catalog).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let posted = request("POST", &format!("{}/v1/sync", server.url()), None);
    assert_eq!(posted.status, 500);
    let json: serde_json::Value = serde_json::from_slice(&posted.body).unwrap();
    assert_eq!(
        (json["reason"].as_str(), json["guard"].as_str()),
        (Some("guard"), Some("empty"))
    );
    assert_eq!(json["serving_stale"], true);
    assert_eq!(server.current_version(), Some(version));
    assert_eq!(metric(&server, "meshgate_cp_serving_stale"), "1");
    assert_eq!(
        metric(&server, "meshgate_cp_guard_refusals_total{guard=\"empty\"}"),
        "1"
    );
    assert_eq!(
        metric(
            &server,
            "meshgate_cp_guard_refusals_total{guard=\"shrink\"}"
        ),
        "0"
    );
    assert_eq!(
        metric(&server, "meshgate_cp_sync_failures_total{reason=\"guard\"}"),
        "1"
    );
    let forced = request(
        "POST",
        &format!("{}/v1/sync?force=true", server.url()),
        None,
    );
    assert_eq!(forced.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&forced.body).unwrap();
    assert_eq!(
        (json["status"].as_str(), json["forced"].as_bool()),
        (Some("updated"), Some(true))
    );
    assert_eq!(
        metric(&server, "meshgate_cp_snapshot_users{snapshot=\"default\"}"),
        "0"
    );
    assert_eq!(metric(&server, "meshgate_cp_serving_stale"), "0");
    server.stop();
}

/// Peak resident memory of this process (`VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// An org-scale catalog: `users` users, `groups` groups in chains `depth` deep under four
/// roots, `owned` components each owned by a group. Files of at most 10,000 documents.
fn write_org_catalog(dir: &Path, users: usize, groups: usize, depth: usize, owned: usize) {
    use std::fmt::Write as _;
    let write_chunks = |name: &str, count: usize, document: &dyn Fn(usize) -> String| {
        for chunk in 0..count.div_ceil(10_000) {
            let mut text = String::new();
            for n in chunk * 10_000..((chunk + 1) * 10_000).min(count) {
                let _ = write!(text, "---\n{}", document(n));
            }
            std::fs::write(dir.join(format!("{name}-{chunk:03}.yaml")), text).unwrap();
        }
    };
    let roots = 4;
    write_chunks("groups", groups, &|n| {
        if n < roots {
            return format!("kind: Group\nmetadata: {{name: root{n}}}\nspec: {{type: org}}\n");
        }
        let level = (n - roots) % depth;
        let parent = if level == 0 {
            format!("root{}", n % roots)
        } else {
            format!("g{}", n - 1)
        };
        format!("kind: Group\nmetadata: {{name: g{n}}}\nspec: {{type: team, parent: {parent}}}\n")
    });
    let group_name = |n: usize| {
        let n = roots + n % (groups - roots);
        format!("g{n}")
    };
    write_chunks("users", users, &|n| {
        format!(
            "kind: User\nmetadata: {{name: user{n}}}\nspec: {{profile: {{email: user{n}@example.com}}, memberOf: [{}, {}]}}\n",
            group_name(n * 7),
            group_name(n * 13 + 1)
        )
    });
    write_chunks("components", owned, &|n| {
        format!(
            "kind: Component\nmetadata: {{name: dag{n}, annotations: {{meshgate.io/airflow-dag: dag_{n}}}}}\nspec: {{type: pipeline, owner: {}}}\n",
            group_name(n * 3)
        )
    });
}

/// The figures in docs/control-plane.md ("At organisation scale"). Run alone, in release:
/// `cargo test --release -p meshgate-control-plane --test serve -- --ignored --nocapture org_scale`
#[test]
#[ignore = "org-scale measurement: minutes in debug builds, run in release"]
fn org_scale_build_and_unchanged_resync() {
    let scratch = Scratch::new("org-scale");
    for entry in std::fs::read_dir(&scratch.catalog).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let started = Instant::now();
    write_org_catalog(&scratch.catalog, 100_001, 10_004, 400, 50_000);
    eprintln!("generated catalog in {:?}", started.elapsed());
    let mut config = scratch.config();
    config.rules_file = None;
    let key = meshgate_control_plane::snapshot::load_signing_key(&scratch.key_file).unwrap();
    let mut syncer = meshgate_control_plane::serve::Syncer::new(
        &config,
        key,
        Arc::new(|line: &str| eprintln!("{line}")),
    );
    let before = peak_rss_kib().unwrap_or(0);
    let full = syncer.run();
    assert_eq!(full.status, SyncStatus::Updated, "{full:?}");
    let peak = peak_rss_kib().unwrap_or(0);
    let unchanged = syncer.run();
    assert_eq!(unchanged.status, SyncStatus::Unchanged);
    // One user moves: one file re-parsed, the snapshot rebuilt.
    scratch.edit("users-005.yaml", "memberOf: [g", "memberOf: [root0, g");
    let one_file = syncer.run();
    assert_eq!(one_file.status, SyncStatus::Updated);
    let published = syncer.current().unwrap();
    eprintln!(
        "figures: full build {} ms, unchanged resync {} ms, one changed file {} ms, peak RSS {} MiB (before the build {} MiB), snapshot {} bytes, {} users, {} groups, {} owned",
        full.duration_ms,
        unchanged.duration_ms,
        one_file.duration_ms,
        peak / 1024,
        before / 1024,
        published.bytes.len(),
        published.users,
        published.groups,
        published.owned
    );
    assert!(unchanged.duration_ms <= 1000, "{unchanged:?}");
}

/// A snapshot GET with `If-None-Match` and `Prefer: wait=N`: status, ETag,
/// `Preference-Applied`, and how long it took.
fn long_poll(
    url: &str,
    etag: &str,
    wait_s: u64,
) -> (u16, Option<String>, Option<String>, Duration) {
    let started = Instant::now();
    let response = ureq::get(url)
        .timeout(Duration::from_secs(wait_s + 10))
        .set("If-None-Match", etag)
        .set("Prefer", &format!("wait={wait_s}"))
        .call();
    let response = match response {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("GET {url}: {error}"),
    };
    (
        response.status(),
        response.header("ETag").map(str::to_owned),
        response.header("Preference-Applied").map(str::to_owned),
        started.elapsed(),
    )
}

#[test]
fn a_long_poll_is_held_until_a_newer_snapshot_is_published() {
    let scratch = Scratch::new("long-poll");
    let mut server = Server::start(scratch.config()).unwrap();
    assert!(server.wait_ready(READY));
    let url = server.snapshot_url();
    let etag = get(&server, "/v1/snapshots/default").etag.unwrap();

    // Nothing changes: held for the wait, then a 304 that says the wait was applied.
    let (status, same, applied, took) = long_poll(&url, &etag, 1);
    assert_eq!((status, same.as_deref()), (304, Some(etag.as_str())));
    assert_eq!(applied.as_deref(), Some("wait=1"));
    assert!(
        took >= Duration::from_millis(900),
        "answered after {took:?}"
    );

    // A stale tag is answered at once, held or not.
    let (status, _, _, took) = long_poll(&url, "\"0-stale\"", 30);
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(5), "answered after {took:?}");

    // A change published while the poll is held ends it with the new snapshot.
    let held = {
        let (url, etag) = (url.clone(), etag.clone());
        std::thread::spawn(move || long_poll(&url, &etag, 30))
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(!held.is_finished(), "the poll was not held");
    scratch.edit("org.yaml", "  members: [bob]\n", "  members: []\n");
    let synced_at = Instant::now();
    let report = server.trigger_sync().unwrap();
    assert_eq!(report.status, SyncStatus::Updated, "{report:?}");
    let (status, new_etag, applied, _) = held.join().unwrap();
    assert_eq!(status, 200);
    assert_ne!(new_etag.as_deref(), Some(etag.as_str()));
    assert_eq!(applied.as_deref(), Some("wait=30"));
    assert!(
        synced_at.elapsed() < Duration::from_secs(10),
        "the held poll was not woken by the publish"
    );
    server.stop();
}

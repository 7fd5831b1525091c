//! The control plane reads a Backstage catalog over HTTPS: a fake catalog backend on
//! 127.0.0.1 (rustls server, certificate from a CA made at test time) answers the by-query
//! pages the REST source asks for. With `catalog.backstage.ca_file` naming that CA the sync
//! publishes the users and groups; without it the sync fails at once with a certificate
//! error, and the served snapshot stays.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "helpers outside #[test] fns should fail the test loudly too"
)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshgate_control_plane::serve::{no_log, ServeConfig, SyncStatus, Syncer};
use meshgate_control_plane::snapshot::generate_signing_key;
use meshgate_core::snapshot::{DecodeLimits, Snapshot};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::{json, Value};

const TOKEN: &str = "catalog-reader-token";
const QUERY_PATH: &str = "/api/catalog/entities/by-query";

/// A CA and a certificate for 127.0.0.1 signed by it, made for this run.
struct Pki {
    ca_pem: String,
    server: Arc<ServerConfig>,
}

fn make_pki(ca_name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "backstage.test");
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

    let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone(), ca.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let server =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server: Arc::new(server),
    }
}

/// The fake Backstage backend, serving until the test process ends.
struct FakeBackstage {
    addr: SocketAddr,
    /// Requests answered (TLS established, request read).
    answered: Arc<AtomicUsize>,
    /// Connections that ended before a request was read (a refused handshake).
    dropped: Arc<AtomicUsize>,
}

impl FakeBackstage {
    fn start(config: Arc<ServerConfig>) -> FakeBackstage {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let answered = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (ok, failed) = (Arc::clone(&answered), Arc::clone(&dropped));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                match answer(stream, Arc::clone(&config)) {
                    Ok(()) => ok.fetch_add(1, Ordering::SeqCst),
                    Err(_) => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        });
        FakeBackstage {
            addr,
            answered,
            dropped,
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// Answers one request on one connection, then closes it.
fn answer(stream: TcpStream, config: Arc<ServerConfig>) -> Result<(), Box<dyn std::error::Error>> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut tls = StreamOwned::new(ServerConnection::new(config)?, stream);
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte)?;
        head.push(byte[0]);
        if head.len() > 16 * 1024 {
            return Err("request head too long".into());
        }
    }
    let head = String::from_utf8(head)?;
    let target = head.split_whitespace().nth(1).unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let authorized = head
        .lines()
        .any(|line| line.eq_ignore_ascii_case(&format!("authorization: Bearer {TOKEN}")));
    let (status, body) = if !authorized {
        (
            "401 Unauthorized",
            json!({"error": {"name": "AuthenticationError", "message": "No token"}}),
        )
    } else if path != QUERY_PATH {
        ("404 Not Found", json!({"error": {"name": "NotFoundError"}}))
    } else {
        let kind = parameter(query, "filter")
            .and_then(|filter| filter.strip_prefix("kind=").map(str::to_owned))
            .unwrap_or_default();
        (
            "200 OK",
            json!({"items": entities(&kind), "totalItems": entities(&kind).len(), "pageInfo": {}}),
        )
    };
    let body = body.to_string();
    write!(
        tls,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(())
}

/// The decoded value of a query parameter (`%XX` and `+` as a form encoder writes them).
fn parameter(query: &str, name: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))?;
    let mut decoded = Vec::new();
    let mut rest = raw.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        rest = tail;
        match first {
            b'%' => {
                let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                rest = tail.get(2..)?;
            }
            b'+' => decoded.push(b' '),
            other => decoded.push(other),
        }
    }
    String::from_utf8(decoded).ok()
}

/// A tiny catalog as the by-query API returns it: alice in data-eng, bob in engineering,
/// data-eng nested in engineering; relations in both directions, as Backstage computes them.
fn entities(kind: &str) -> Vec<Value> {
    let relation = |kind: &str, target: &str| json!({"type": kind, "targetRef": target});
    let entity = |kind: &str, name: &str, relations: Vec<Value>| {
        json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "etag": format!("etag-{name}")},
            "spec": {},
            "relations": relations,
        })
    };
    match kind {
        "user" => vec![
            entity(
                "User",
                "alice",
                vec![relation("memberOf", "group:default/data-eng")],
            ),
            entity(
                "User",
                "bob",
                vec![relation("memberOf", "group:default/engineering")],
            ),
        ],
        "group" => vec![
            entity(
                "Group",
                "data-eng",
                vec![
                    relation("hasMember", "user:default/alice"),
                    relation("childOf", "group:default/engineering"),
                ],
            ),
            entity(
                "Group",
                "engineering",
                vec![
                    relation("hasMember", "user:default/bob"),
                    relation("parentOf", "group:default/data-eng"),
                ],
            ),
        ],
        _ => Vec::new(),
    }
}

/// A scratch directory with the CA, the token and a configuration file.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "meshgate-https-catalog-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("catalog-token"), format!("{TOKEN}\n")).unwrap();
        Scratch(dir)
    }

    /// Writes `cp.yaml` for the catalog at `url` (with `ca_file: ca.pem` when `ca` is set)
    /// and loads it the way `meshgate serve --config` does.
    fn config(&self, url: &str, ca: Option<&str>) -> ServeConfig {
        let ca_line = match ca {
            Some(pem) => {
                std::fs::write(self.0.join("ca.pem"), pem).unwrap();
                "    ca_file: ca.pem\n"
            }
            None => "",
        };
        let path = self.0.join("cp.yaml");
        std::fs::write(
            &path,
            format!(
                "catalog:\n  backstage:\n    base_url: {url}\n    token_file: catalog-token\n    kinds: [user, group]\n    timeout_s: 5\n{ca_line}\
                 signing_key_file: snapshot-key.json\nguards: {{retries: 0}}\n"
            ),
        )
        .unwrap();
        ServeConfig::load(&path).unwrap()
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn new_syncer(config: &ServeConfig) -> Syncer {
    let key = generate_signing_key(Some("https-it"), &mut rand::rngs::OsRng).unwrap();
    Syncer::new(config, key, no_log())
}

/// Waits until `counter` reaches `n` (the server counts after the client has its answer).
fn settles(counter: &AtomicUsize, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    while counter.load(Ordering::SeqCst) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    counter.load(Ordering::SeqCst)
}

fn groups(snapshot: &Snapshot, user: &str) -> Vec<String> {
    snapshot
        .groups_of_user(user)
        .unwrap_or_else(|| panic!("no {user}"))
        .iter()
        .map(str::to_owned)
        .collect()
}

#[test]
fn syncs_from_an_https_catalog_signed_by_a_private_ca() {
    let pki = make_pki("meshgate test private CA");
    let backstage = FakeBackstage::start(Arc::clone(&pki.server));
    let scratch = Scratch::new("trusted");
    let config = scratch.config(&backstage.url(), Some(&pki.ca_pem));
    assert!(scratch.path().join("ca.pem").exists());

    let mut syncer = new_syncer(&config);
    let report = syncer.run();
    assert_eq!(report.status, SyncStatus::Updated, "{:?}", report.error);
    let published = syncer.current().unwrap();
    assert_eq!((published.users, published.groups), (2, 2));
    let snapshot = Snapshot::decode(
        &published.bytes,
        &[syncer.trusted_key().clone()],
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(
        groups(&snapshot, "user:default/alice"),
        ["group:default/data-eng", "group:default/engineering"]
    );
    assert_eq!(
        groups(&snapshot, "user:default/bob"),
        ["group:default/engineering"]
    );
    // The consistency check and one page per kind, all over TLS.
    assert_eq!(settles(&backstage.answered, 4), 4);
    assert_eq!(backstage.dropped.load(Ordering::SeqCst), 0);

    // Nothing changed: only the consistency check is read again.
    assert_eq!(syncer.run().status, SyncStatus::Unchanged);
    assert_eq!(settles(&backstage.answered, 6), 6);
}

#[test]
fn without_the_ca_the_sync_fails_with_a_certificate_error() {
    let pki = make_pki("meshgate test private CA");
    let backstage = FakeBackstage::start(Arc::clone(&pki.server));
    let scratch = Scratch::new("untrusted");

    let config = scratch.config(&backstage.url(), None);
    let mut syncer = new_syncer(&config);
    let started = Instant::now();
    let report = syncer.run();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.status, SyncStatus::Failed);
    assert_eq!(report.reason, Some("catalog"));
    let error = report.error.unwrap();
    assert!(
        error.contains(&format!(
            "the catalog's TLS certificate at `{}{QUERY_PATH}` is not trusted",
            backstage.url()
        )) && error.contains("catalog.backstage.ca_file")
            && error.contains("UnknownIssuer"),
        "{error}"
    );
    assert_eq!(syncer.current().map(|published| published.version), None);
    assert_eq!(backstage.answered.load(Ordering::SeqCst), 0);

    // Another CA in `ca_file` does not help: only the one that signed the server's.
    let other = make_pki("another private CA").ca_pem;
    let report = new_syncer(&scratch.config(&backstage.url(), Some(&other))).run();
    assert_eq!(report.status, SyncStatus::Failed);
    let error = report.error.unwrap();
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert_eq!(backstage.answered.load(Ordering::SeqCst), 0);
    assert_eq!(settles(&backstage.dropped, 2), 2);
}

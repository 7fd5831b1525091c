//! The access store against both backends: each test body below runs once on a fresh SQLite
//! file and once on a fresh PostgreSQL database (`MESHGATE_TEST_POSTGRES_URL`, set by
//! `./build.sh test` through scripts/postgres.sh; without it the PostgreSQL runs print
//! `skipped` and pass).
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "the test bodies run on both backends are not #[test] fns; they should fail loudly too"
)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use meshgate_control_plane::access_store::{
    schema, AccessRequest, AccessStore, Grant, ListFilter, PostgresStore, RequestState, Review,
    SqliteStore, StoreConfig, StoreError, Target, Verdict,
};
use meshgate_control_plane::audit::{self, AuditDraft, EventKind};

const POSTGRES_URL: &str = "MESHGATE_TEST_POSTGRES_URL";
const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, empty database of one kind; opened as often as a test likes.
struct Db {
    config: StoreConfig,
    dir: Option<PathBuf>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(label: &str) -> String {
    format!(
        "{label}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

impl Db {
    /// `None` (after saying so) when PostgreSQL is not configured.
    fn fresh(kind: Kind, label: &str) -> Option<Db> {
        match kind {
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("meshgate-{}", unique(label)));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                Some(Db {
                    config: StoreConfig::Sqlite {
                        path: dir.join("access.db"),
                    },
                    dir: Some(dir),
                })
            }
            Kind::Postgres => {
                let Ok(base) = std::env::var(POSTGRES_URL) else {
                    println!("skipped: {label} on PostgreSQL ({POSTGRES_URL} is not set)");
                    return None;
                };
                let name = unique(&format!("mg_{label}"));
                let mut admin = ::postgres::Client::connect(&base, ::postgres::NoTls).unwrap();
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .unwrap();
                Some(Db {
                    config: StoreConfig::Postgres {
                        url: with_database(&base, &name),
                    },
                    dir: None,
                })
            }
        }
    }

    fn open(&self) -> Box<dyn AccessStore> {
        meshgate_control_plane::access_store::open(&self.config).unwrap()
    }

    /// Runs raw SQL on the database, outside the store (to inspect or damage it).
    fn raw(&self, sql: &str) -> Vec<i64> {
        match &self.config {
            StoreConfig::Sqlite { path } => {
                let connection = rusqlite::Connection::open(path).unwrap();
                if sql.trim_start().starts_with("SELECT") {
                    let mut statement = connection.prepare(sql).unwrap();
                    let rows = statement.query_map([], |row| row.get::<_, i64>(0)).unwrap();
                    rows.map(Result::unwrap).collect()
                } else {
                    connection.execute_batch(sql).unwrap();
                    Vec::new()
                }
            }
            StoreConfig::Postgres { url } => {
                let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
                if sql.trim_start().starts_with("SELECT") {
                    let rows = client.query(sql, &[]).unwrap();
                    rows.iter().map(|row| row.get::<_, i64>(0)).collect()
                } else {
                    client.batch_execute(sql).unwrap();
                    Vec::new()
                }
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let (StoreConfig::Postgres { url }, Ok(base)) =
            (&self.config, std::env::var(POSTGRES_URL))
        {
            let name = url.rsplit_once('/').unwrap().1.split('?').next().unwrap();
            if let Ok(mut admin) = ::postgres::Client::connect(&base, ::postgres::NoTls) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// `base` with its database name replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let (front, query) = base.split_once('?').unwrap_or((base, ""));
    let (authority, _) = front.rsplit_once('/').unwrap();
    if query.is_empty() {
        format!("{authority}/{name}")
    } else {
        format!("{authority}/{name}?{query}")
    }
}

fn request(id: &str, requester: &str, entry: &str) -> AccessRequest {
    AccessRequest {
        id: id.into(),
        requester: requester.into(),
        target: Target::Resource {
            resource_kind: "airflow_dag".into(),
            id: "etl_daily".into(),
        },
        entry: entry.into(),
        duration_s: 900,
        reason: "backfill after the outage".into(),
        state: RequestState::Pending,
        created_at: T0,
        decided_at: None,
        version: 0,
    }
}

fn grant(id: &str, request: &AccessRequest, start: i64, minutes: i64) -> Grant {
    Grant {
        id: id.into(),
        request_id: request.id.clone(),
        user: request.requester.clone(),
        target: request.target.clone(),
        not_before: start,
        not_after: start + minutes * MINUTE,
        revoked_at: None,
        revoked_by: None,
    }
}

fn draft(event: EventKind, actor: &str, request_id: &str, grant_id: Option<&str>) -> AuditDraft {
    AuditDraft {
        event,
        at_ms: T0,
        actor: actor.into(),
        request_id: Some(request_id.into()),
        grant_id: grant_id.map(str::to_owned),
        target: None,
        detail: serde_json::json!({}),
    }
}

/// The store's whole audit chain, as a file would hold it, checked by `audit::verify`.
fn verified_chain(store: &dyn AccessStore) -> Vec<String> {
    let lines: Vec<String> = store
        .audit_lines(0, 10_000)
        .unwrap()
        .into_iter()
        .map(|line| line.line)
        .collect();
    let text = lines
        .iter()
        .map(|line| format!("{line}\n"))
        .collect::<String>();
    let verified = audit::verify(text.as_bytes()).unwrap();
    assert_eq!(verified.lines, lines.len());
    lines
}

fn events(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["event"].as_str().unwrap().to_owned()
        })
        .collect()
}

// ---- the test bodies, each run on both backends ------------------------------------------

fn request_review_approve_expire(kind: Kind) {
    let Some(db) = Db::fresh(kind, "lifecycle") else {
        return;
    };
    let store = db.open();
    let carol = request("r1", "user:default/carol", "trigger_dags");
    let other = request("r2", "user:default/dave", "prod_read");
    store
        .create_request(
            &carol,
            &[draft(EventKind::Requested, &carol.requester, "r1", None)],
        )
        .unwrap();
    store.create_request(&other, &[]).unwrap();

    let record = store.get("r1").unwrap();
    assert_eq!(record.request.state, RequestState::Pending);
    assert_eq!(record.request.version, 1);
    assert_eq!(record.request.target, carol.target);
    assert!(record.reviews.is_empty() && record.grant.is_none());

    let mine = store
        .list(&ListFilter::ByRequester {
            requester: "user:default/carol".into(),
        })
        .unwrap();
    assert_eq!(
        mine.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["r1"]
    );
    let pending = store
        .list(&ListFilter::Pending {
            entries: Some(vec!["prod_read".into()]),
        })
        .unwrap();
    assert_eq!(
        pending.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["r2"]
    );
    assert_eq!(store.list(&ListFilter::All).unwrap().len(), 2);

    let review = Review {
        request_id: "r1".into(),
        reviewer: "user:default/alice".into(),
        verdict: Verdict::Approve,
        comment: "ok".into(),
        at: T0 + 1,
    };
    let (record, _) = store
        .add_review(
            &review,
            &[draft(EventKind::Reviewed, &review.reviewer, "r1", None)],
        )
        .unwrap();
    assert_eq!(record.request.state, RequestState::Pending);
    assert_eq!(record.reviews, [review]);
    assert_eq!(record.request.version, 2);

    let granted = grant("g1", &carol, T0 + MINUTE, 15);
    store
        .decide(
            "r1",
            RequestState::Approved,
            T0 + 2,
            Some(&granted),
            &[
                draft(EventKind::Approved, "user:default/alice", "r1", None),
                draft(EventKind::Granted, "system", "r1", Some("g1")),
            ],
        )
        .unwrap();
    let record = store.get("r1").unwrap();
    assert_eq!(record.request.state, RequestState::Approved);
    assert_eq!(record.request.decided_at, Some(T0 + 2));
    assert_eq!(record.grant.as_ref(), Some(&granted));

    // In force from not_before to not_after (exclusive).
    assert!(store.active_grants(T0).unwrap().is_empty());
    assert_eq!(
        store.active_grants(T0 + MINUTE).unwrap(),
        std::slice::from_ref(&granted)
    );
    assert!(store.active_grants(granted.not_after).unwrap().is_empty());

    // Expired once, with a `system` audit line.
    assert!(store.expire(granted.not_after - 1).unwrap().0.is_empty());
    let (expired, lines) = store.expire(granted.not_after).unwrap();
    assert_eq!(expired, std::slice::from_ref(&granted));
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].line.contains("\"actor\":\"system\""),
        "{}",
        lines[0].line
    );
    assert!(store
        .expire(granted.not_after + MINUTE)
        .unwrap()
        .0
        .is_empty());

    let chain = verified_chain(store.as_ref());
    assert_eq!(
        events(&chain),
        ["requested", "reviewed", "approved", "granted", "expired"]
    );
}

fn every_refusal_is_typed_and_changes_nothing(kind: Kind) {
    let Some(db) = Db::fresh(kind, "refusals") else {
        return;
    };
    let store = db.open();
    let carol = request("r1", "user:default/carol", "trigger_dags");
    store.create_request(&carol, &[]).unwrap();
    let review = Review {
        request_id: "r1".into(),
        reviewer: "user:default/alice".into(),
        verdict: Verdict::Deny,
        comment: String::new(),
        at: T0,
    };
    store.add_review(&review, &[]).unwrap();
    let granted = grant("g1", &carol, T0, 15);
    store
        .decide("r1", RequestState::Approved, T0, Some(&granted), &[])
        .unwrap();
    let before = store.get("r1").unwrap();
    let audited = store.audit_lines(0, 100).unwrap().len();
    let some_audit = [draft(EventKind::Approved, "user:default/bob", "r1", None)];

    let cases: Vec<(&str, Result<(), StoreError>, StoreError)> = vec![
        (
            "get unknown",
            store.get("nope").map(drop),
            StoreError::NotFound { id: "nope".into() },
        ),
        (
            "second approval",
            store
                .decide(
                    "r1",
                    RequestState::Approved,
                    T0,
                    Some(&grant("g2", &carol, T0, 15)),
                    &some_audit,
                )
                .map(drop),
            StoreError::AlreadyDecided {
                state: RequestState::Approved,
            },
        ),
        (
            "deny after approval",
            store
                .decide("r1", RequestState::Denied, T0, None, &some_audit)
                .map(drop),
            StoreError::AlreadyDecided {
                state: RequestState::Approved,
            },
        ),
        (
            "cancel after approval",
            store.cancel("r1", T0, &some_audit).map(drop),
            StoreError::AlreadyDecided {
                state: RequestState::Approved,
            },
        ),
        (
            "review after approval",
            store
                .add_review(
                    &Review {
                        reviewer: "user:default/bob".into(),
                        ..review.clone()
                    },
                    &some_audit,
                )
                .map(drop),
            StoreError::AlreadyDecided {
                state: RequestState::Approved,
            },
        ),
        (
            "decide unknown",
            store
                .decide("nope", RequestState::Denied, T0, None, &some_audit)
                .map(drop),
            StoreError::NotFound { id: "nope".into() },
        ),
        (
            "revoke unknown",
            store
                .revoke_grant("nope", "user:default/alice", T0, &some_audit)
                .map(drop),
            StoreError::NotFound { id: "nope".into() },
        ),
    ];
    for (name, got, want) in cases {
        assert_eq!(got, Err(want), "{name}");
    }
    // Conflicts carry the database's words; only the kind is checked.
    let conflicts: Vec<(&str, Result<(), StoreError>)> = vec![
        (
            "same id twice",
            store.create_request(&carol, &some_audit).map(drop),
        ),
        (
            "decision to pending",
            store
                .decide("r1", RequestState::Pending, T0, None, &some_audit)
                .map(drop),
        ),
    ];
    for (name, got) in conflicts {
        assert!(
            matches!(got, Err(StoreError::Conflict { .. })),
            "{name}: {got:?}"
        );
    }
    assert_eq!(store.get("r1").unwrap(), before);
    assert_eq!(store.audit_lines(0, 100).unwrap().len(), audited);

    // A reviewer reviews once.
    let second = request("r2", "user:default/carol", "trigger_dags");
    store.create_request(&second, &[]).unwrap();
    let review = Review {
        request_id: "r2".into(),
        ..review
    };
    store.add_review(&review, &[]).unwrap();
    let again = store.add_review(&review, &some_audit);
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );
    assert_eq!(store.get("r2").unwrap().reviews.len(), 1);

    // Revoked once; a revoked grant is neither active nor expired later.
    let (revoked, lines) = store
        .revoke_grant("g1", "user:default/alice", T0 + 1, &some_audit)
        .unwrap();
    assert_eq!(revoked.revoked_by.as_deref(), Some("user:default/alice"));
    assert_eq!(lines.len(), 1);
    let twice = store.revoke_grant("g1", "user:default/alice", T0 + 2, &some_audit);
    assert!(
        matches!(twice, Err(StoreError::Conflict { .. })),
        "{twice:?}"
    );
    assert!(store.active_grants(T0 + 1).unwrap().is_empty());
    assert!(store.expire(T0 + 60 * MINUTE).unwrap().0.is_empty());
    verified_chain(store.as_ref());
}

/// Two connections approve the same requests at the same moment: each request gets exactly
/// one grant and one `AlreadyDecided`, and the audit chain has no fork.
fn concurrent_approvals_make_one_grant(kind: Kind) {
    let Some(db) = Db::fresh(kind, "concurrent") else {
        return;
    };
    let stores: Vec<Arc<dyn AccessStore>> = vec![db.open().into(), db.open().into()];
    const ROUNDS: usize = 12;
    for round in 0..ROUNDS {
        let id = format!("r{round}");
        stores[0]
            .create_request(&request(&id, "user:default/carol", "e"), &[])
            .unwrap();
    }
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(who, store)| {
            let store = Arc::clone(store);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                (0..ROUNDS)
                    .map(|round| {
                        let id = format!("r{round}");
                        let req = request(&id, "user:default/carol", "e");
                        let grant_id = format!("g{round}-{who}");
                        barrier.wait();
                        store.decide(
                            &id,
                            RequestState::Approved,
                            T0,
                            Some(&grant(&grant_id, &req, T0, 15)),
                            &[
                                draft(EventKind::Approved, "user:default/alice", &id, None),
                                draft(EventKind::Granted, "system", &id, Some(&grant_id)),
                            ],
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Vec<_>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (round, outcomes) in results[0].iter().zip(&results[1]).enumerate() {
        let outcomes = [outcomes.0, outcomes.1];
        let won = outcomes.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes.iter().any(|r| matches!(
                r,
                Err(StoreError::AlreadyDecided {
                    state: RequestState::Approved
                })
            )),
            "round {round}: {outcomes:?}"
        );
    }
    assert_eq!(stores[1].active_grants(T0).unwrap().len(), ROUNDS);
    let chain = verified_chain(stores[1].as_ref());
    assert_eq!(chain.len(), 2 * ROUNDS);
}

fn survives_a_restart(kind: Kind) {
    let Some(db) = Db::fresh(kind, "restart") else {
        return;
    };
    let carol = request("r1", "user:default/carol", "e");
    let granted = grant("g1", &carol, T0, 15);
    {
        let store = db.open();
        store
            .create_request(
                &carol,
                &[draft(
                    EventKind::Requested,
                    "user:default/carol",
                    "r1",
                    None,
                )],
            )
            .unwrap();
        store
            .decide(
                "r1",
                RequestState::Approved,
                T0,
                Some(&granted),
                &[draft(EventKind::Granted, "system", "r1", Some("g1"))],
            )
            .unwrap();
        // Dropped without any shutdown step.
    }
    let store = db.open();
    let record = store.get("r1").unwrap();
    assert_eq!(record.request.state, RequestState::Approved);
    assert_eq!(store.active_grants(T0).unwrap(), [granted]);
    // The chain goes on where it stopped.
    store
        .create_request(
            &request("r2", "user:default/carol", "e"),
            &[draft(
                EventKind::Requested,
                "user:default/carol",
                "r2",
                None,
            )],
        )
        .unwrap();
    let chain = verified_chain(store.as_ref());
    assert_eq!(events(&chain), ["requested", "granted", "requested"]);
}

fn migrations_apply_once_and_refuse_a_newer_schema(kind: Kind) {
    let Some(db) = Db::fresh(kind, "migrations") else {
        return;
    };
    let known = match kind {
        Kind::Sqlite => schema::SQLITE,
        Kind::Postgres => schema::POSTGRES,
    };
    let latest = known.last().unwrap().version;
    drop(db.open());
    let versions = db.raw("SELECT version FROM schema_migrations ORDER BY version");
    assert_eq!(
        versions,
        known.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    // Opening again applies nothing and keeps the data.
    db.open()
        .create_request(&request("r1", "user:default/carol", "e"), &[])
        .unwrap();
    drop(db.open());
    assert_eq!(
        db.raw("SELECT version FROM schema_migrations ORDER BY version"),
        versions
    );
    assert_eq!(db.raw("SELECT COUNT(*) FROM access_requests"), [1]);

    db.raw(&format!(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ({}, 'future', 0)",
        latest + 1
    ));
    let refused = meshgate_control_plane::access_store::open(&db.config).map(drop);
    assert_eq!(
        refused,
        Err(StoreError::SchemaTooNew {
            found: latest + 1,
            supported: latest
        })
    );
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("newer than this binary"), "{message}");
}

/// Set in the child process of [`killed_mid_write_loses_nothing_committed`]: `sqlite:PATH` or
/// `postgres:URL`.
const CRASH_CHILD: &str = "MESHGATE_TEST_ACCESS_CRASH_CHILD";

/// The child of the crash test: requests and approves until killed, printing each id once
/// its transaction has committed. Does nothing in a normal run.
#[test]
fn crash_child_writes_until_killed() {
    let Ok(spec) = std::env::var(CRASH_CHILD) else {
        return;
    };
    let config = match spec.split_once(':') {
        Some(("sqlite", path)) => StoreConfig::Sqlite { path: path.into() },
        Some(("postgres", url)) => StoreConfig::Postgres { url: url.into() },
        _ => panic!("bad {CRASH_CHILD} `{spec}`"),
    };
    let store = meshgate_control_plane::access_store::open(&config).unwrap();
    for round in 0.. {
        let id = format!("r{round}");
        let req = request(&id, "user:default/carol", "e");
        let grant_id = format!("g{round}");
        store
            .create_request(
                &req,
                &[draft(EventKind::Requested, &req.requester, &id, None)],
            )
            .unwrap();
        store
            .decide(
                &id,
                RequestState::Approved,
                T0,
                Some(&grant(&grant_id, &req, T0, 15)),
                &[
                    draft(EventKind::Approved, "user:default/alice", &id, None),
                    draft(EventKind::Granted, "system", &id, Some(&grant_id)),
                ],
            )
            .unwrap();
        println!("committed {id}");
        std::io::Write::flush(&mut std::io::stdout()).unwrap();
    }
}

/// A process killed (SIGKILL) while writing: everything it reported committed is there after
/// reopening, nothing is half-applied (a request is pending without a grant, or approved with
/// one), and the audit chain holds.
fn killed_mid_write_loses_nothing_committed(kind: Kind) {
    let Some(db) = Db::fresh(kind, "crash") else {
        return;
    };
    let spec = match &db.config {
        StoreConfig::Sqlite { path } => format!("sqlite:{}", path.display()),
        StoreConfig::Postgres { url } => format!("postgres:{url}"),
    };
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child_writes_until_killed", "--nocapture"])
        .env(CRASH_CHILD, spec)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut committed = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        if let Some(id) = line.unwrap().strip_prefix("committed ") {
            committed.push(id.to_owned());
        }
        if committed.len() == 25 {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(committed.len(), 25);

    let store = db.open();
    for id in &committed {
        let record = store.get(id).unwrap();
        assert_eq!(record.request.state, RequestState::Approved, "{id}");
        assert!(record.grant.is_some(), "{id}");
    }
    let all = store.list(&ListFilter::All).unwrap();
    assert!(all.len() >= committed.len());
    for request in &all {
        let grant = store.get(&request.id).unwrap().grant;
        assert_eq!(
            grant.is_some(),
            request.state == RequestState::Approved,
            "{request:?}"
        );
    }
    let chain = verified_chain(store.as_ref());
    let requested = events(&chain).iter().filter(|e| *e == "requested").count();
    assert_eq!(requested, all.len());
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::Kind::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(super::Kind::Postgres) })*
        }
    };
}

on_both_backends!(
    request_review_approve_expire,
    every_refusal_is_typed_and_changes_nothing,
    concurrent_approvals_make_one_grant,
    survives_a_restart,
    migrations_apply_once_and_refuse_a_newer_schema,
    killed_mid_write_loses_nothing_committed,
);

/// One PostgreSQL store serves many threads at once on a bounded pool: every thread's writes
/// land (none starves behind the others), several connections are used, and never more than
/// `MAX_CONNECTIONS`.
#[test]
fn postgres_store_shares_a_bounded_pool_among_threads() {
    let Some(db) = Db::fresh(Kind::Postgres, "pool") else {
        return;
    };
    let store: Arc<dyn AccessStore> = db.open().into();
    const THREADS: usize = 16;
    const EACH: usize = 8;
    let barrier = Arc::new(Barrier::new(THREADS));
    let peak = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                (0..EACH)
                    .map(|n| {
                        let id = format!("t{thread}-{n}");
                        let drafts = [draft(EventKind::Requested, "user:default/carol", &id, None)];
                        store.create_request(&request(&id, "user:default/carol", "e"), &drafts)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    // Connections to this database while the threads run (the probe's own one excluded).
    let count_sql = "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND pid <> pg_backend_pid()";
    while threads.iter().any(|t| !t.is_finished()) {
        let now = db.raw(count_sql).first().copied().unwrap_or(0);
        peak.fetch_max(usize::try_from(now).unwrap(), Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(5));
    }
    for (thread, outcomes) in threads.into_iter().map(|t| t.join().unwrap()).enumerate() {
        for outcome in outcomes {
            assert!(outcome.is_ok(), "thread {thread}: {outcome:?}");
        }
    }
    let requests = db.raw("SELECT COUNT(*) FROM access_requests");
    assert_eq!(requests, [i64::try_from(THREADS * EACH).unwrap()]);
    let peak = peak.load(Ordering::SeqCst);
    let settled = usize::try_from(db.raw(count_sql).first().copied().unwrap_or(0)).unwrap();
    let max = meshgate_control_plane::access_store::POSTGRES_MAX_CONNECTIONS;
    assert!(
        (2..=max).contains(&peak.max(settled)),
        "connections in use: peak {peak}, after {settled}, pool of {max}"
    );
    assert_eq!(verified_chain(store.as_ref()).len(), THREADS * EACH);
}

// ---- faults ------------------------------------------------------------------------------

/// A port on 127.0.0.1 with nothing listening.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One store call, its answer reduced to success or the error.
type Operation<'a> = Box<dyn Fn() -> Result<(), StoreError> + 'a>;

/// A TCP relay to the test database that can be cut, as if the server went down.
struct Relay {
    port: u16,
    streams: Arc<std::sync::Mutex<Vec<TcpStream>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    fn to(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let streams = Arc::new(std::sync::Mutex::new(Vec::<TcpStream>::new()));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (held, is_down) = (Arc::clone(&streams), Arc::clone(&down));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let client = client.unwrap();
                if is_down.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let server = TcpStream::connect(&target).unwrap();
                let pairs = [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ];
                held.lock().unwrap().extend([client, server]);
                for (mut from, mut to) in pairs {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Relay {
            port,
            streams,
            down,
        }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn postgres_closed_port_is_unavailable_promptly() {
    let url = format!("postgresql://meshgate@127.0.0.1:{}/meshgate", closed_port());
    let started = Instant::now();
    let result = PostgresStore::open(&url).map(drop);
    assert!(
        matches!(result, Err(StoreError::Unavailable { .. })),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

/// The database goes down under an open store: every operation answers `Unavailable`
/// promptly (nothing hangs or panics), and nothing half-done is left.
#[test]
fn postgres_going_down_makes_every_operation_unavailable() {
    let Some(db) = Db::fresh(Kind::Postgres, "down") else {
        return;
    };
    let StoreConfig::Postgres { url } = &db.config else {
        unreachable!()
    };
    let config: ::postgres::Config = url.parse().unwrap();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let relay = Relay::to(format!("127.0.0.1:{port}"));
    let name = url.rsplit_once('/').unwrap().1.split('?').next().unwrap();
    let relayed = format!("postgresql://meshgate@127.0.0.1:{}/{name}", relay.port);
    let store = PostgresStore::open(&relayed).unwrap();
    let carol = request("r1", "user:default/carol", "e");
    store.create_request(&carol, &[]).unwrap();
    relay.cut();

    let audit = [draft(EventKind::Approved, "user:default/alice", "r1", None)];
    let operations: Vec<(&str, Operation<'_>)> = vec![
        ("get", Box::new(|| store.get("r1").map(drop))),
        ("list", Box::new(|| store.list(&ListFilter::All).map(drop))),
        (
            "create",
            Box::new(|| {
                store
                    .create_request(&request("r2", "user:default/carol", "e"), &audit)
                    .map(drop)
            }),
        ),
        (
            "decide",
            Box::new(|| {
                store
                    .decide(
                        "r1",
                        RequestState::Approved,
                        T0,
                        Some(&grant("g1", &carol, T0, 15)),
                        &audit,
                    )
                    .map(drop)
            }),
        ),
        (
            "active grants",
            Box::new(|| store.active_grants(T0).map(drop)),
        ),
        ("expire", Box::new(|| store.expire(T0).map(drop))),
    ];
    for (name, operation) in &operations {
        let started = Instant::now();
        let result = operation();
        assert!(
            matches!(result, Err(StoreError::Unavailable { .. })),
            "{name}: {result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{name}: {:?}",
            started.elapsed()
        );
    }
    // Nothing was decided while it was down.
    let store = db.open();
    assert_eq!(
        store.get("r1").unwrap().request.state,
        RequestState::Pending
    );
    assert!(store.active_grants(T0).unwrap().is_empty());
}

/// The server drops the store's connection (as a restart or failover does): the call that
/// finds it gone answers `Unavailable` or succeeds on a new connection, and the store is
/// usable again after.
#[test]
fn postgres_connection_loss_is_unavailable_then_recovers() {
    let Some(db) = Db::fresh(Kind::Postgres, "loss") else {
        return;
    };
    let store = db.open();
    store
        .create_request(&request("r1", "user:default/carol", "e"), &[])
        .unwrap();
    let StoreConfig::Postgres { url } = &db.config else {
        unreachable!()
    };
    let name = url.rsplit_once('/').unwrap().1.split('?').next().unwrap();
    let mut admin = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .unwrap();
    let started = Instant::now();
    match store.get("r1") {
        Ok(record) => assert_eq!(record.request.id, "r1"),
        Err(error) => assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(store.get("r1").unwrap().request.id, "r1");
}

#[test]
fn sqlite_in_a_missing_directory_is_unavailable() {
    let path = std::env::temp_dir()
        .join(format!("meshgate-{}", unique("missing")))
        .join("no/such/dir/access.db");
    let result = SqliteStore::open(&path).map(drop);
    assert!(
        matches!(result, Err(StoreError::Unavailable { .. })),
        "{result:?}"
    );
}

//! One sync: read the catalog, close memberships, attach the compiled rules, encode and sign,
//! and decide the version. A failed sync changes nothing: the last good snapshot stays.
//!
//! Versions are monotonic. Unchanged content (same content hash) keeps the current version
//! and bytes, so pollers see the same ETag. Changed content gets
//! `max(previous + 1, now in unix milliseconds)`, so a restarted server, which starts without
//! a previous version, still goes forward as long as the clock does.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meshgate_core::snapshot::{DecodeLimits, Snapshot, SnapshotHeader};
use serde::Serialize;

use super::config::{BackstageCatalog, CatalogSource, CatalogToken, ServeConfig};
use super::err::SyncError;
use super::log::{error_chain, LogSink};
use super::rules::load_rules;
use crate::catalog::{load_dir, to_snapshot_input, CatalogIndex, CatalogWarning, RestSource};
use crate::snapshot::{build, SigningKey, TrustedKey};

/// A signed snapshot ready to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The name it is served under, `/v1/snapshots/<name>`.
    pub name: String,
    pub version: u64,
    /// Unix seconds of the sync that produced this content.
    pub generated_at: i64,
    /// SHA-256 of the content, hex.
    pub content_hash: String,
    /// The HTTP entity tag, quoted: `"<version>-<first 32 hex digits of the content hash>"`.
    pub etag: String,
    /// The signed snapshot file.
    pub bytes: Arc<[u8]>,
    pub users: usize,
    pub groups: usize,
    pub owned: usize,
    /// Whether the snapshot carries rules.
    pub has_rules: bool,
}

impl Published {
    /// Checks `bytes` with `trusted` (signature, hash, every table) and describes them.
    pub fn from_bytes(
        name: &str,
        bytes: Arc<[u8]>,
        trusted: &TrustedKey,
    ) -> Result<Published, meshgate_core::snapshot::SnapshotError> {
        let snapshot = Snapshot::decode(
            &bytes,
            std::slice::from_ref(trusted),
            &DecodeLimits::default(),
        )?;
        let content_hash = snapshot.content_hash_hex();
        Ok(Published {
            name: name.to_owned(),
            version: snapshot.version(),
            generated_at: snapshot.generated_at(),
            etag: etag(snapshot.version(), &content_hash),
            content_hash,
            users: snapshot.user_count(),
            groups: snapshot.group_count(),
            owned: snapshot.owned_count(),
            has_rules: snapshot.rules_json().is_some(),
            bytes,
        })
    }
}

/// The strong ETag of a snapshot: its version and the start of its content hash, quoted.
pub fn etag(version: u64, content_hash_hex: &str) -> String {
    let short: String = content_hash_hex.chars().take(32).collect();
    format!("\"{version}-{short}\"")
}

/// The version for changed content: after `previous`, and at least the clock in unix
/// milliseconds (never 0).
pub fn next_version(previous: Option<u64>, now_unix_ms: u64) -> u64 {
    match previous {
        None => now_unix_ms.max(1),
        Some(previous) => previous.saturating_add(1).max(now_unix_ms),
    }
}

/// What one sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// New content, published under a new version.
    Updated,
    /// Same content as the snapshot served; version and bytes kept.
    Unchanged,
    /// The sync failed; the last good snapshot (if any) is still served.
    Failed,
}

/// The result of one sync, as `POST /v1/sync` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub status: SyncStatus,
    /// The version served after this sync; `null` when there is none yet.
    pub version: Option<u64>,
    /// True when the sync failed and an older snapshot is served.
    pub serving_stale: bool,
    /// Catalog warnings of this sync (0 when it failed before reading them).
    pub warnings: usize,
    pub duration_ms: u64,
    /// Why the sync failed: `catalog`, `token`, `rules` or `snapshot`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The failure, with its causes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A clock in unix milliseconds.
pub type Clock = Box<dyn FnMut() -> u64 + Send>;

/// The system clock in unix milliseconds (0 before 1970).
pub fn system_clock() -> Clock {
    Box::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    })
}

/// Runs syncs for one snapshot and remembers the last good one.
pub struct Syncer {
    name: String,
    catalog: CatalogSource,
    rules_file: Option<std::path::PathBuf>,
    key: SigningKey,
    trusted: TrustedKey,
    clock: Clock,
    log: LogSink,
    current: Option<Arc<Published>>,
    /// Warnings of the last good sync, already logged.
    logged: BTreeSet<CatalogWarning>,
}

/// A successful sync.
struct Synced {
    published: Arc<Published>,
    changed: bool,
    warnings: Vec<CatalogWarning>,
}

impl Syncer {
    /// A syncer for `config`, signing with `key`, on the system clock.
    pub fn new(config: &ServeConfig, key: SigningKey, log: LogSink) -> Syncer {
        let trusted = key.trusted_key();
        Syncer {
            name: config.snapshot_name.clone(),
            catalog: config.catalog.clone(),
            rules_file: config.rules_file.clone(),
            key,
            trusted,
            clock: system_clock(),
            log,
            current: None,
            logged: BTreeSet::new(),
        }
    }

    /// Uses `clock` (unix milliseconds) instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Syncer {
        self.clock = clock;
        self
    }

    /// Starts from `published`, as if a sync had produced it: same content keeps its version
    /// and bytes, and new versions come after it. `meshgate snapshot build` passes the file it
    /// is about to replace.
    pub fn with_current(mut self, published: Published) -> Syncer {
        self.current = Some(Arc::new(published));
        self
    }

    /// The public half of the signing key.
    pub fn trusted_key(&self) -> &TrustedKey {
        &self.trusted
    }

    /// The last good snapshot.
    pub fn current(&self) -> Option<&Arc<Published>> {
        self.current.as_ref()
    }

    /// Syncs once and logs the outcome: one line per sync, plus each catalog warning the first
    /// time it appears.
    pub fn run(&mut self) -> SyncReport {
        let started = Instant::now();
        let result = self.sync();
        let duration_ms = millis(started.elapsed());
        match result {
            Ok(synced) => {
                for warning in &synced.warnings {
                    if !self.logged.contains(warning) {
                        (self.log)(&format!("catalog warning: {warning}"));
                    }
                }
                self.logged = synced.warnings.iter().cloned().collect();
                let status = if synced.changed {
                    SyncStatus::Updated
                } else {
                    SyncStatus::Unchanged
                };
                let snapshot = &synced.published;
                (self.log)(&format!(
                    "sync {}: snapshot `{}` version {}, {} users, {} groups, {} owned, {} warnings, {} bytes, {duration_ms} ms",
                    if synced.changed { "updated" } else { "unchanged" },
                    snapshot.name,
                    snapshot.version,
                    snapshot.users,
                    snapshot.groups,
                    snapshot.owned,
                    synced.warnings.len(),
                    snapshot.bytes.len(),
                ));
                SyncReport {
                    status,
                    version: Some(snapshot.version),
                    serving_stale: false,
                    warnings: synced.warnings.len(),
                    duration_ms,
                    reason: None,
                    error: None,
                }
            }
            Err(error) => {
                let message = error_chain(&error);
                let serving = match &self.current {
                    Some(current) => format!("keeping version {}", current.version),
                    None => String::from("no snapshot yet"),
                };
                (self.log)(&format!(
                    "sync failed ({}), {serving}, {duration_ms} ms: {message}",
                    error.reason()
                ));
                SyncReport {
                    status: SyncStatus::Failed,
                    version: self.current.as_ref().map(|current| current.version),
                    serving_stale: self.current.is_some(),
                    warnings: 0,
                    duration_ms,
                    reason: Some(error.reason()),
                    error: Some(message),
                }
            }
        }
    }

    fn sync(&mut self) -> Result<Synced, SyncError> {
        let index = read_catalog(&self.catalog)?;
        let (mut input, warnings) = to_snapshot_input(&index);
        input.rules = match &self.rules_file {
            Some(path) => Some(load_rules(path)?),
            None => None,
        };
        let now_ms = (self.clock)();
        let version = next_version(self.current.as_ref().map(|c| c.version), now_ms);
        let generated_at = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        let bytes = build(input, version, generated_at, &self.key).map_err(SyncError::Encode)?;
        let header = SnapshotHeader::peek(&bytes).map_err(SyncError::SelfCheck)?;
        if let Some(current) = &self.current {
            if current.content_hash == header.content_hash_hex() {
                return Ok(Synced {
                    published: Arc::clone(current),
                    changed: false,
                    warnings,
                });
            }
        }
        let published = Arc::new(
            Published::from_bytes(&self.name, Arc::from(bytes), &self.trusted)
                .map_err(SyncError::SelfCheck)?,
        );
        self.current = Some(Arc::clone(&published));
        Ok(Synced {
            published,
            changed: true,
            warnings,
        })
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn read_catalog(source: &CatalogSource) -> Result<CatalogIndex, SyncError> {
    match source {
        CatalogSource::Directory(dir) => load_dir(dir).map_err(SyncError::Catalog),
        CatalogSource::Backstage(backstage) => {
            rest_source(backstage)?.load().map_err(SyncError::Catalog)
        }
    }
}

fn rest_source(backstage: &BackstageCatalog) -> Result<RestSource, SyncError> {
    let source = RestSource::new(backstage.base_url.as_str())
        .with_kinds(backstage.kinds.iter().cloned())
        .with_page_size(backstage.page_size)
        .with_timeout(backstage.timeout);
    Ok(match &backstage.token {
        None => source,
        Some(token) => source.with_token(resolve_token(token)?),
    })
}

fn resolve_token(token: &CatalogToken) -> Result<String, SyncError> {
    match token {
        CatalogToken::Value(value) => Ok(value.trim().to_owned()),
        CatalogToken::Env(var) => std::env::var(var)
            .ok()
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| SyncError::TokenEnv { var: var.clone() }),
        CatalogToken::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| SyncError::TokenFile {
                path: path.clone(),
                source,
            })?;
            let token = text.trim();
            if token.is_empty() {
                return Err(SyncError::TokenEmpty { path: path.clone() });
            }
            Ok(token.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use meshgate_core::snapshot::{DecodeLimits, Snapshot};

    use super::super::fixture::{Fixture, ORG};
    use super::*;

    fn decode(fixture: &Fixture, bytes: &[u8]) -> Snapshot {
        Snapshot::decode(
            bytes,
            &[fixture.key.trusted_key()],
            &DecodeLimits::default(),
        )
        .unwrap()
    }

    fn groups(snapshot: &Snapshot, user: &str) -> Vec<String> {
        snapshot
            .groups_of_user(user)
            .map(|set| set.iter().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    #[test]
    fn next_version_goes_forward() {
        let cases = [
            (None, 0, 1),
            (None, 1_700_000_000_000, 1_700_000_000_000),
            (Some(5), 1_700_000_000_000, 1_700_000_000_000),
            (
                Some(1_700_000_000_000),
                1_700_000_000_000,
                1_700_000_000_001,
            ),
            // The clock went back: still after the previous version.
            (
                Some(1_800_000_000_000),
                1_700_000_000_000,
                1_800_000_000_001,
            ),
            (Some(u64::MAX - 1), 0, u64::MAX),
        ];
        for (previous, now, expected) in cases {
            assert_eq!(next_version(previous, now), expected, "{previous:?} {now}");
        }
    }

    #[test]
    fn etags_are_quoted_and_follow_version_and_content() {
        let hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(etag(7, hash), "\"7-0123456789abcdef0123456789abcdef\"");
        assert_ne!(etag(8, hash), etag(7, hash));
        assert_ne!(etag(7, &hash.replace('0', "f")), etag(7, hash));
    }

    #[test]
    fn the_snapshot_carries_closed_groups_hierarchy_ownership_and_rules() {
        let fixture = Fixture::new("sync-content");
        let mut syncer = fixture.syncer();
        let report = syncer.run();
        assert_eq!(report.status, SyncStatus::Updated, "{report:?}");
        let published = syncer.current().unwrap();
        let snapshot = decode(&fixture, &published.bytes);
        assert_eq!(
            groups(&snapshot, "user:default/bob"),
            ["group:default/analytics", "group:default/data-eng"]
        );
        let analytics = snapshot.group_index("group:default/analytics").unwrap();
        let above: Vec<&str> = snapshot.ancestors_of(analytics).iter().collect();
        assert_eq!(above, ["group:default/data-eng"]);
        let owners: Vec<&str> = snapshot
            .owners_of("airflow.dag", "etl_daily")
            .unwrap()
            .iter()
            .collect();
        assert_eq!(owners, ["group:default/data-eng"]);
        assert_eq!(
            snapshot.rules_json(),
            Some(
                r#"[{"action":"allow","hosts":["airflow.internal"],"id":"dag-owners","when":{"groups_any":["group:default/data-eng"]}}]"#
            )
        );
        assert_eq!(
            (published.users, published.groups, published.owned),
            (2, 2, 1)
        );
        assert!(published.has_rules);
        assert_eq!(
            published.etag,
            etag(published.version, &published.content_hash)
        );
    }

    #[test]
    fn versions_move_only_when_content_does() {
        let fixture = Fixture::new("sync-versions");
        let mut syncer = fixture.syncer();
        fixture.set_now(1_000_000);
        assert_eq!(syncer.run().version, Some(1_000_000));
        let first = Arc::clone(syncer.current().unwrap());

        // Same catalog later: same version, same bytes.
        fixture.set_now(2_000_000);
        let report = syncer.run();
        assert_eq!(
            (report.status, report.version),
            (SyncStatus::Unchanged, Some(1_000_000))
        );
        assert!(Arc::ptr_eq(&first.bytes, &syncer.current().unwrap().bytes));

        // Bob leaves analytics while the clock stepped back: previous + 1.
        fixture.write_org(&ORG.replace("members: [bob]", "members: []"));
        fixture.set_now(500);
        let report = syncer.run();
        assert_eq!(
            (report.status, report.version),
            (SyncStatus::Updated, Some(1_000_001))
        );
        let snapshot = decode(&fixture, &syncer.current().unwrap().bytes);
        assert!(groups(&snapshot, "user:default/bob").is_empty());

        // A rules change is a content change too; the clock is ahead now.
        std::fs::write(&fixture.rules, "[]\n").unwrap();
        fixture.set_now(3_000_000);
        let report = syncer.run();
        assert_eq!(
            (report.status, report.version),
            (SyncStatus::Updated, Some(3_000_000))
        );

        // A restarted server (new syncer, no previous version) still goes forward.
        fixture.set_now(3_000_500);
        let mut restarted = fixture.syncer();
        let report = restarted.run();
        assert_eq!(report.version, Some(3_000_500));
        assert_eq!(
            restarted.current().unwrap().content_hash,
            syncer.current().unwrap().content_hash
        );
    }

    #[test]
    fn a_broken_catalog_keeps_the_last_good_snapshot() {
        let fixture = Fixture::new("sync-keep-catalog");
        let mut syncer = fixture.syncer();
        let good = syncer.run();
        let served = Arc::clone(syncer.current().unwrap());
        let org = fixture.catalog.join("org.yaml");
        let moved = fixture.dir.join("catalog-moved");
        type Step<'a> = Box<dyn Fn() + 'a>;
        let breakages: Vec<(&str, Step<'_>, Step<'_>)> = vec![
            (
                "is not valid YAML",
                Box::new(|| std::fs::write(&org, "kind: [unclosed\n").unwrap()),
                Box::new(|| std::fs::write(&org, ORG).unwrap()),
            ),
            (
                "cannot read catalog directory",
                Box::new(|| std::fs::rename(&fixture.catalog, &moved).unwrap()),
                Box::new(|| std::fs::rename(&moved, &fixture.catalog).unwrap()),
            ),
            (
                "cannot read catalog file",
                Box::new(|| {
                    std::fs::remove_file(&org).unwrap();
                    std::fs::create_dir(&org).unwrap();
                    std::fs::write(fixture.catalog.join("x.yml"), [0xff, 0xfe]).unwrap();
                }),
                Box::new(|| {
                    std::fs::remove_dir(&org).unwrap();
                    std::fs::remove_file(fixture.catalog.join("x.yml")).unwrap();
                    std::fs::write(&org, ORG).unwrap();
                }),
            ),
        ];
        for (expected, breakage, repair) in breakages {
            breakage();
            fixture.set_now(fixture.now_ms.load(std::sync::atomic::Ordering::SeqCst) + 1000);
            let report = syncer.run();
            assert_eq!(report.status, SyncStatus::Failed, "{expected}");
            assert_eq!(report.reason, Some("catalog"));
            assert_eq!((report.version, report.serving_stale), (good.version, true));
            assert!(
                report.error.as_deref().unwrap().contains(expected),
                "{report:?}"
            );
            assert!(Arc::ptr_eq(syncer.current().unwrap(), &served));
            let last = fixture.logged().pop().unwrap();
            assert!(
                last.starts_with("sync failed (catalog), keeping version")
                    && last.contains(expected),
                "{last}"
            );
            repair();
            // Back to the same content: the same version and bytes, not a new one.
            let report = syncer.run();
            assert_eq!(
                (report.status, report.version),
                (SyncStatus::Unchanged, good.version)
            );
        }
    }

    #[test]
    fn a_rules_file_that_stops_compiling_is_never_published() {
        let fixture = Fixture::new("sync-keep-rules");
        let mut syncer = fixture.syncer();
        let good = syncer.run();
        let served = Arc::clone(syncer.current().unwrap());
        // The catalog changes too, so a sync that ignored the rules would publish.
        fixture.write_org(&ORG.replace("members: [bob]", "members: []"));
        for (rules, expected) in [
            (
                "- {id: a, action: allow, when: {groups_any: yes}}\n",
                "`rules[0].when.groups_any`",
            ),
            (
                "- {id: a, action: allow}\n- {id: a, action: allow}\n",
                "`rules[1].id`",
            ),
            ("{}\n", "must hold a list of rules"),
        ] {
            std::fs::write(&fixture.rules, rules).unwrap();
            let report = syncer.run();
            assert_eq!(
                (report.status, report.reason, report.version),
                (SyncStatus::Failed, Some("rules"), good.version)
            );
            assert!(
                report.error.as_deref().unwrap().contains(expected),
                "{report:?}"
            );
            assert!(Arc::ptr_eq(syncer.current().unwrap(), &served));
        }
        std::fs::remove_file(&fixture.rules).unwrap();
        let report = syncer.run();
        assert_eq!(report.reason, Some("rules"));
        assert!(report.error.unwrap().contains("cannot read rules file"));
        std::fs::write(&fixture.rules, "[]\n").unwrap();
        assert_eq!(syncer.run().status, SyncStatus::Updated);
        let snapshot = decode(&fixture, &syncer.current().unwrap().bytes);
        assert_eq!(snapshot.rules_json(), Some("[]"));
    }

    #[test]
    fn without_a_first_good_sync_nothing_is_served() {
        let fixture = Fixture::new("sync-first-fails");
        std::fs::write(&fixture.rules, "nope").unwrap();
        let mut syncer = fixture.syncer();
        let report = syncer.run();
        assert_eq!(
            (report.status, report.version, report.serving_stale),
            (SyncStatus::Failed, None, false)
        );
        assert!(syncer.current().is_none());
        assert!(fixture.logged()[0].starts_with("sync failed (rules), no snapshot yet"));
    }

    #[test]
    fn each_sync_logs_one_line_and_warnings_once() {
        let fixture = Fixture::new("sync-log");
        let dangling = format!(
            "{ORG}---\nkind: User\nmetadata: {{name: carol}}\nspec: {{memberOf: [ghost]}}\n"
        );
        fixture.write_org(&dangling);
        let mut syncer = fixture.syncer();
        for _ in 0..3 {
            assert_eq!(syncer.run().warnings, 1);
        }
        fixture.write_org(&format!(
            "{dangling}---\nkind: User\nmetadata: {{name: dan}}\nspec: {{memberOf: [phantom]}}\n"
        ));
        assert_eq!(syncer.run().warnings, 2);
        let logged = fixture.logged();
        let warnings: Vec<&String> = logged
            .iter()
            .filter(|l| l.starts_with("catalog warning:"))
            .collect();
        assert_eq!(
            warnings,
            [
                "catalog warning: user:default/carol memberOf group:default/ghost, which is not in the catalog; ignored",
                "catalog warning: user:default/dan memberOf group:default/phantom, which is not in the catalog; ignored",
            ]
        );
        let syncs: Vec<&String> = logged.iter().filter(|l| l.starts_with("sync ")).collect();
        assert_eq!(syncs.len(), 4);
        assert!(
            syncs[0].starts_with("sync updated: snapshot `default` version 1700000000000, 3 users, 2 groups, 1 owned, 1 warnings, "),
            "{}",
            syncs[0]
        );
        assert!(syncs[1].starts_with("sync unchanged: snapshot `default` version 1700000000000,"));
        assert!(
            syncs[3].contains("4 users, 2 groups, 1 owned, 2 warnings"),
            "{}",
            syncs[3]
        );
    }

    #[test]
    fn tokens_come_from_env_files_or_values() {
        let fixture = Fixture::new("sync-token");
        let file = fixture.dir.join("token");
        std::fs::write(&file, "  s3cret\n").unwrap();
        assert_eq!(
            resolve_token(&CatalogToken::File(file.clone())).unwrap(),
            "s3cret"
        );
        std::fs::write(&file, "\n").unwrap();
        assert!(matches!(
            resolve_token(&CatalogToken::File(file.clone())),
            Err(SyncError::TokenEmpty { .. })
        ));
        assert!(matches!(
            resolve_token(&CatalogToken::File(fixture.dir.join("none"))),
            Err(SyncError::TokenFile { .. })
        ));
        assert_eq!(
            resolve_token(&CatalogToken::Value("v".into())).unwrap(),
            "v"
        );
        let missing = "MESHGATE_TEST_TOKEN_THAT_IS_NEVER_SET";
        let error = resolve_token(&CatalogToken::Env(missing.into())).unwrap_err();
        assert_eq!(error.reason(), "token");
        assert!(error.to_string().contains(missing));
    }
}

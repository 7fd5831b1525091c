//! One sync: read the catalog (only what changed, see `source.rs`), close the group
//! hierarchy, check the publish guards, attach the compiled rules, encode and sign, and decide
//! the version. A failed or refused sync changes nothing: the last good snapshot stays.
//!
//! Versions are monotonic. Unchanged content (same content hash) keeps the current version
//! and bytes, so pollers see the same ETag. Changed content gets
//! `max(previous + 1, now in unix milliseconds)`, so a restarted server, which starts without
//! a previous version, still goes forward as long as the clock does.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meshgate_core::snapshot::{DecodeLimits, Grants, IndexedInput, Snapshot, SnapshotHeader};
use meshgate_core::UnixTime;
use serde::Serialize;

use super::config::{ServeConfig, ViewConfig};
use super::delta::{DeltaHistory, Deltas};
use super::err::SyncError;
use super::guard::{check as check_guards, CatalogCounts, GuardConfig};
use super::log::{error_chain, LogSink};
use super::rules::load_rules;
use super::source::{CatalogReader, Read};
use crate::catalog::{
    build_snapshot_input_cached, resource_annotations, summarize, CatalogBuild, CatalogWarning,
    ClosureCache, DirFingerprint, OwnershipAnnotations, ResourceAnnotations,
};
use crate::snapshot::{build, SigningKey, TrustedKey};
use crate::view::{project, ViewScope};

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
    /// Signed deltas to this snapshot, by the ETag of the earlier version each applies to.
    pub deltas: Deltas,
    /// The scoped views published with this snapshot, by name (empty for a view itself).
    pub views: BTreeMap<String, Arc<Published>>,
    /// The annotations the access policy's `unless_annotation` conditions read, of the
    /// entities naming each owned resource, from the catalog read this snapshot came from
    /// (computed for no key in a view, or in a snapshot read back from a file).
    pub annotations: Arc<ResourceAnnotations>,
}

impl Published {
    /// Checks `bytes` with `trusted` (signature, hash, every table) and describes them.
    pub fn from_bytes(
        name: &str,
        bytes: Arc<[u8]>,
        trusted: &TrustedKey,
    ) -> Result<Published, meshgate_core::snapshot::SnapshotError> {
        Published::decoded(name, bytes, trusted).map(|(published, _)| published)
    }

    /// [`Published::from_bytes`], also handing back the decoded snapshot.
    fn decoded(
        name: &str,
        bytes: Arc<[u8]>,
        trusted: &TrustedKey,
    ) -> Result<(Published, Snapshot), meshgate_core::snapshot::SnapshotError> {
        let snapshot = Snapshot::decode(
            &bytes,
            std::slice::from_ref(trusted),
            &DecodeLimits::default(),
        )?;
        let content_hash = snapshot.content_hash_hex();
        let published = Published {
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
            deltas: Deltas::new(),
            views: BTreeMap::new(),
            annotations: Arc::default(),
        };
        Ok((published, snapshot))
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
    /// Whether the sync was asked to publish past the guards.
    pub forced: bool,
    /// Why the sync failed: `catalog`, `token`, `rules`, `guard` or `snapshot`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The guard that refused the read (`empty`, `shrink`, `dangling`) when `reason` is
    /// `guard`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<&'static str>,
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
    catalog: CatalogReader,
    /// Which annotation keys name which resource kind.
    annotations: OwnershipAnnotations,
    rules_file: Option<std::path::PathBuf>,
    guards: GuardConfig,
    key: SigningKey,
    trusted: TrustedKey,
    clock: Clock,
    log: LogSink,
    current: Option<Arc<Published>>,
    /// What the guards compare the next read with: the counts of the last published read.
    published_counts: Option<CatalogCounts>,
    /// The rules published with `current`.
    published_rules: Option<Option<String>>,
    /// Set when the last sync failed: the source's memory may be ahead of what is served, so
    /// the next sync builds whatever the source says.
    dirty: bool,
    /// Hashes of the warnings of the last good sync, already logged.
    logged: HashSet<u64>,
    /// Warnings of the last good sync.
    warning_count: usize,
    /// Earlier versions of the whole snapshot, to sign deltas from.
    history: DeltaHistory,
    views: Vec<ViewState>,
    /// The group closure of the last build, reused while the hierarchy does not change.
    closure_cache: ClosureCache,
    /// Where active access grants come from (the access API's store), if anywhere.
    grants_feed: Option<GrantsFeed>,
    /// The grants in `current`.
    published_grants: Grants,
    /// The last error reading grants, logged once.
    grants_error: Option<String>,
    /// The annotation keys published with each snapshot (see [`Published::annotations`]).
    annotation_keys: BTreeSet<String>,
}

/// The access grants in force at a moment (Unix milliseconds), from the access store; `Err`
/// says why they cannot be read now.
pub type GrantsFeed = Arc<dyn Fn(u64) -> Result<Grants, String> + Send + Sync>;

/// One configured view: its config, what it last published, and its own history.
struct ViewState {
    config: ViewConfig,
    current: Option<Arc<Published>>,
    history: DeltaHistory,
}

/// A successful sync.
struct Synced {
    published: Arc<Published>,
    changed: bool,
    /// `None` when the catalog was not read again (same warnings as before).
    warnings: Option<Vec<CatalogWarning>>,
    /// Where the time went.
    phases: PhaseTimes,
}

/// Milliseconds spent in each step of one sync, logged with it so an operator (and a
/// benchmark) sees what a slow sync spent its time on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PhaseTimes {
    read: u64,
    model: u64,
    encode: u64,
    check: u64,
    deltas: u64,
    views: u64,
}

impl PhaseTimes {
    /// `read 12, model 3, ...` with the steps that ran.
    fn describe(&self) -> String {
        [
            ("read", self.read),
            ("model", self.model),
            ("encode", self.encode),
            ("check", self.check),
            ("deltas", self.deltas),
            ("views", self.views),
        ]
        .iter()
        .filter(|(_, ms)| *ms > 0)
        .map(|(name, ms)| format!("{name} {ms}"))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// Times steps one after another.
struct Stopwatch(Instant);

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch(Instant::now())
    }

    /// Milliseconds since the last lap (or the start).
    fn lap(&mut self) -> u64 {
        let now = Instant::now();
        let elapsed = millis(now.duration_since(self.0));
        self.0 = now;
        elapsed
    }
}

/// Warning samples per kind in a log line.
const WARNING_SAMPLES: usize = 5;

impl Syncer {
    /// A syncer for `config`, signing with `key`, on the system clock.
    pub fn new(config: &ServeConfig, key: SigningKey, log: LogSink) -> Syncer {
        let trusted = key.trusted_key();
        Syncer {
            name: config.snapshot_name.clone(),
            catalog: CatalogReader::new(&config.catalog),
            annotations: config.ownership_annotations.clone(),
            rules_file: config.rules_file.clone(),
            guards: config.guards,
            key,
            trusted,
            clock: system_clock(),
            log,
            current: None,
            published_counts: None,
            published_rules: None,
            dirty: false,
            logged: HashSet::new(),
            warning_count: 0,
            history: DeltaHistory::new(config.delta_history),
            views: config
                .views
                .iter()
                .map(|view| ViewState {
                    config: view.clone(),
                    current: None,
                    history: DeltaHistory::new(config.delta_history),
                })
                .collect(),
            closure_cache: ClosureCache::default(),
            grants_feed: None,
            published_grants: Grants::default(),
            grants_error: None,
            annotation_keys: BTreeSet::new(),
        }
    }

    /// At every sync that reads the catalog, publishes the annotations among `keys` of the
    /// entities naming each owned resource (the access policy's `unless_annotation` keys).
    /// Without keys nothing is computed.
    pub fn with_annotation_keys(mut self, keys: BTreeSet<String>) -> Syncer {
        self.annotation_keys = keys;
        self
    }

    /// Publishes the grants `feed` says are in force with every snapshot; a sync that finds
    /// the catalog unchanged still publishes when they changed (a new version without reading
    /// the catalog again).
    pub fn with_grants(mut self, feed: GrantsFeed) -> Syncer {
        self.grants_feed = Some(feed);
        self
    }

    /// Uses `clock` (unix milliseconds) instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Syncer {
        self.clock = clock;
        self
    }

    /// Starts from `published`, as if a sync had produced it: same content keeps its version
    /// and bytes, new versions come after it, and the shrink guard compares with its counts.
    /// `meshgate snapshot build` passes the file it is about to replace.
    pub fn with_current(mut self, published: Published) -> Syncer {
        self.published_counts = Some(CatalogCounts {
            users: published.users,
            groups: published.groups,
            owned: published.owned,
        });
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

    /// Whether the catalog is watched between syncs (a directory).
    pub fn watches(&self) -> bool {
        self.catalog.watches()
    }

    /// The catalog directory's file stamps now (`None` for the API or an unreadable
    /// directory); a watcher compares two of them.
    pub fn watch_fingerprint(&self) -> Option<DirFingerprint> {
        self.catalog.watch_fingerprint()
    }

    /// Syncs once, guarded; see [`Syncer::run_with`].
    pub fn run(&mut self) -> SyncReport {
        self.run_with(false)
    }

    /// Syncs once and logs the outcome: one line per sync that read the catalog (a resync that
    /// found nothing changed is silent), plus one line per warning kind with
    /// warnings not logged before (a count and a few samples). `force` publishes past the
    /// guards (an operator's decision, `POST /v1/sync?force=true`).
    pub fn run_with(&mut self, force: bool) -> SyncReport {
        let started = Instant::now();
        let result = self.sync_with_retries(force);
        let duration_ms = millis(started.elapsed());
        match result {
            Ok(synced) => {
                self.dirty = false;
                if let Some(warnings) = &synced.warnings {
                    self.log_new_warnings(warnings);
                    self.warning_count = warnings.len();
                }
                let status = if synced.changed {
                    SyncStatus::Updated
                } else {
                    SyncStatus::Unchanged
                };
                let snapshot = &synced.published;
                // A resync that found no file stamp (or REST consistency check) moved did
                // nothing worth a line: with a 1 s resync that would be a line a second.
                let quiet = !synced.changed && synced.warnings.is_none() && !force;
                let phases = synced.phases.describe();
                let phases = if phases.is_empty() {
                    phases
                } else {
                    format!(" ({phases})")
                };
                if !quiet {
                    (self.log)(&format!(
                        "sync {}{}: snapshot `{}` version {}, {} users, {} groups, {} owned, {} warnings, {} bytes, {duration_ms} ms{phases}",
                        if synced.changed { "updated" } else { "unchanged" },
                        if force { " (forced past the guards)" } else { "" },
                        snapshot.name,
                        snapshot.version,
                        snapshot.users,
                        snapshot.groups,
                        snapshot.owned,
                        self.warning_count,
                        snapshot.bytes.len(),
                    ));
                }
                SyncReport {
                    status,
                    version: Some(snapshot.version),
                    serving_stale: false,
                    warnings: self.warning_count,
                    duration_ms,
                    forced: force,
                    reason: None,
                    guard: None,
                    error: None,
                }
            }
            Err(error) => {
                self.dirty = true;
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
                    forced: force,
                    reason: Some(error.reason()),
                    guard: error.guard(),
                    error: Some(message),
                }
            }
        }
    }

    /// One line per warning kind that has warnings not logged before; then remembers the
    /// warnings of this sync, so one that goes away and comes back is logged again.
    fn log_new_warnings(&mut self, warnings: &[CatalogWarning]) {
        let hashes: Vec<u64> = warnings.iter().map(warning_hash).collect();
        let new = warnings
            .iter()
            .zip(&hashes)
            .filter(|(_, hash)| !self.logged.contains(hash))
            .map(|(warning, _)| warning);
        for summary in summarize(new, WARNING_SAMPLES) {
            (self.log)(&format!("catalog warnings: {summary}"));
        }
        self.logged = hashes.into_iter().collect();
    }

    /// Syncs; a read the guards refuse (or, for the API, a read that fails) is read again
    /// after a backoff, up to `guards.retries` times.
    fn sync_with_retries(&mut self, force: bool) -> Result<Synced, SyncError> {
        let rules = match &self.rules_file {
            Some(path) => Some(load_rules(path)?),
            None => None,
        };
        let may_skip = !force
            && !self.dirty
            && self.current.is_some()
            && self.published_rules.as_ref() == Some(&rules);
        let mut backoff = self.guards.retry_backoff;
        let mut attempt = 0;
        loop {
            let result = self.sync(may_skip && attempt == 0, force, &rules);
            let retryable = match &result {
                Err(SyncError::Guard(_)) => true,
                Err(SyncError::Catalog(_)) => self.catalog.is_remote(),
                _ => false,
            };
            if !retryable || attempt >= self.guards.retries {
                return result;
            }
            attempt += 1;
            std::thread::sleep(backoff);
            backoff = backoff.saturating_mul(2);
        }
    }

    fn sync(
        &mut self,
        may_skip: bool,
        force: bool,
        rules: &Option<String>,
    ) -> Result<Synced, SyncError> {
        let mut phases = PhaseTimes::default();
        let mut watch = Stopwatch::start();
        if self.catalog.read(may_skip)? == Read::Unchanged {
            if let Some(current) = self.current.clone() {
                // The catalog is as published; the grants may not be.
                let now_ms = (self.clock)();
                let grants = self.grants_now(now_ms);
                if grants == self.published_grants {
                    return Ok(Synced {
                        published: current,
                        changed: false,
                        warnings: None,
                        phases,
                    });
                }
                let mut input = Snapshot::decode(
                    &current.bytes,
                    std::slice::from_ref(&self.trusted),
                    &DecodeLimits::default(),
                )
                .ok()
                .and_then(|snapshot| snapshot.to_indexed())
                .ok_or(SyncError::SelfCheck(
                    meshgate_core::snapshot::SnapshotError::HashMismatch,
                ))?;
                input.grants = grants;
                phases.read = watch.lap();
                let annotations = Arc::clone(&current.annotations);
                return self.publish(input, None, rules, None, annotations, phases, watch);
            }
            // Never reached: skipping needs a current snapshot. Read in full.
            self.catalog.read(false)?;
        }
        let index = self.catalog.take_index();
        phases.read = watch.lap();
        let CatalogBuild {
            mut input,
            warnings,
            relations,
        } = build_snapshot_input_cached(&index, &self.annotations, &mut self.closure_cache);
        let annotations = Arc::new(resource_annotations(
            &index,
            &self.annotations,
            &self.annotation_keys,
        ));
        drop(index);
        // Counted as the snapshot counts them (what `with_current` reads back from a file):
        // `groups` is the group table, which also holds owners that are users.
        let counts = CatalogCounts {
            users: input.users.len(),
            groups: input.refs.len(),
            owned: input.owned.len(),
        };
        if !force {
            check_guards(&self.guards, counts, relations, self.published_counts)?;
        }
        input.rules.clone_from(rules);
        let now_ms = (self.clock)();
        input.grants = self.grants_now(now_ms);
        self.publish(
            input,
            Some(counts),
            rules,
            Some(warnings),
            annotations,
            phases,
            watch,
        )
    }

    /// The grants in force at `now_ms`, from the access store. When the store cannot say,
    /// the ones published before that are still in force: an outage of the store neither
    /// drops approved access nor keeps expired access (the edge ends each at `not_after`).
    fn grants_now(&mut self, now_ms: u64) -> Grants {
        let Some(feed) = &self.grants_feed else {
            return Grants::default();
        };
        let now = UnixTime::from_secs(i64::try_from(now_ms / 1000).unwrap_or(i64::MAX));
        match feed(now_ms) {
            Ok(grants) => {
                self.grants_error = None;
                grants
            }
            Err(error) => {
                if self.grants_error.as_deref() != Some(error.as_str()) {
                    (self.log)(&format!(
                        "sync: cannot read the access grants ({error}); keeping the {} published",
                        self.published_grants.active_count(now)
                    ));
                }
                self.grants_error = Some(error);
                Grants::new(
                    self.published_grants
                        .iter()
                        .filter(|g| g.is_active(now))
                        .cloned()
                        .collect(),
                )
            }
        }
    }

    /// Encodes, checks and publishes `input` (with its views and deltas) and `annotations`.
    /// `counts` and `warnings` are `None` when the catalog was not read again (only grants
    /// changed).
    #[expect(
        clippy::too_many_arguments,
        reason = "one private step of a sync, called from its two paths"
    )]
    fn publish(
        &mut self,
        input: IndexedInput,
        counts: Option<CatalogCounts>,
        rules: &Option<String>,
        warnings: Option<Vec<CatalogWarning>>,
        annotations: Arc<ResourceAnnotations>,
        mut phases: PhaseTimes,
        mut watch: Stopwatch,
    ) -> Result<Synced, SyncError> {
        let now_ms = (self.clock)();
        let version = next_version(self.current.as_ref().map(|c| c.version), now_ms);
        let generated_at = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        phases.model = watch.lap();
        let bytes = build(&input, version, generated_at, &self.key).map_err(SyncError::Encode)?;
        let header = SnapshotHeader::peek(&bytes).map_err(SyncError::SelfCheck)?;
        phases.encode = watch.lap();
        let published_grants = input.grants.clone();
        let for_views = (!self.views.is_empty()).then_some(input);
        if counts.is_some() {
            self.published_counts = counts;
        }
        self.published_rules = Some(rules.clone());
        self.published_grants = published_grants;
        if let Some(current) = self.current.clone() {
            if current.content_hash == header.content_hash_hex() {
                // Same snapshot; a view's own rules file, or annotations the snapshot does
                // not carry, may still have changed.
                let views = match for_views {
                    Some(whole) => Some(self.publish_views(&whole, now_ms)?),
                    None => None,
                };
                let same_views = views.as_ref().is_none_or(|views| *views == current.views);
                let same_annotations = Arc::ptr_eq(&annotations, &current.annotations)
                    || annotations == current.annotations;
                let published = if same_views && same_annotations {
                    current
                } else {
                    let mut updated = (*current).clone();
                    if let Some(views) = views {
                        updated.views = views;
                    }
                    updated.annotations = annotations;
                    let updated = Arc::new(updated);
                    self.current = Some(Arc::clone(&updated));
                    updated
                };
                phases.views = watch.lap();
                return Ok(Synced {
                    published,
                    changed: false,
                    warnings,
                    phases,
                });
            }
        }
        let (mut published, snapshot) =
            Published::decoded(&self.name, Arc::from(bytes), &self.trusted)
                .map_err(SyncError::SelfCheck)?;
        phases.check = watch.lap();
        published.deltas = self
            .history
            .publish(
                &published.etag,
                Arc::new(snapshot),
                published.bytes.len(),
                &self.key,
            )
            .map_err(SyncError::Encode)?;
        phases.deltas = watch.lap();
        if let Some(whole) = for_views {
            published.views = self.publish_views(&whole, now_ms)?;
        }
        published.annotations = annotations;
        phases.views = watch.lap();
        let published = Arc::new(published);
        self.current = Some(Arc::clone(&published));
        Ok(Synced {
            published,
            changed: true,
            warnings,
            phases,
        })
    }
}

impl Syncer {
    /// Projects and publishes every view of a changed catalog. A view whose content did not
    /// change keeps its version and bytes, like the whole snapshot.
    fn publish_views(
        &mut self,
        whole: &IndexedInput,
        now_ms: u64,
    ) -> Result<BTreeMap<String, Arc<Published>>, SyncError> {
        let generated_at = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        let mut published = BTreeMap::new();
        for view in &mut self.views {
            let scope = view_scope(&view.config, whole.rules.as_deref())?;
            let input = project(whole, &scope);
            let version = next_version(view.current.as_ref().map(|c| c.version), now_ms);
            let bytes =
                build(&input, version, generated_at, &self.key).map_err(SyncError::Encode)?;
            let header = SnapshotHeader::peek(&bytes).map_err(SyncError::SelfCheck)?;
            let current = match &view.current {
                Some(current) if current.content_hash == header.content_hash_hex() => {
                    Arc::clone(current)
                }
                _ => {
                    let (mut fresh, snapshot) =
                        Published::decoded(&view.config.name, Arc::from(bytes), &self.trusted)
                            .map_err(SyncError::SelfCheck)?;
                    fresh.deltas = view
                        .history
                        .publish(
                            &fresh.etag,
                            Arc::new(snapshot),
                            fresh.bytes.len(),
                            &self.key,
                        )
                        .map_err(SyncError::Encode)?;
                    Arc::new(fresh)
                }
            };
            view.current = Some(Arc::clone(&current));
            published.insert(view.config.name.clone(), current);
        }
        Ok(published)
    }
}

/// What a view keeps: its groups and kinds, and what the rules it follows name.
fn view_scope(view: &ViewConfig, published_rules: Option<&str>) -> Result<ViewScope, SyncError> {
    let compile_error = |source| SyncError::ViewRules {
        view: view.name.clone(),
        source,
    };
    let mut scope = ViewScope {
        groups: view
            .groups
            .iter()
            .filter_map(|group| meshgate_core::groupref::GroupName::parse(group))
            .map(|group| group.catalog_ref)
            .collect(),
        kinds: view.kinds.iter().cloned().collect(),
    };
    if view.from_rules {
        if let Some(rules) = published_rules {
            scope = scope.union(ViewScope::from_rules_json(rules).map_err(compile_error)?);
        }
    }
    if let Some(file) = &view.rules_file {
        let rules = load_rules(file)?;
        scope = scope.union(ViewScope::from_rules_json(&rules).map_err(compile_error)?);
    }
    Ok(scope)
}

fn warning_hash(warning: &CatalogWarning) -> u64 {
    let mut hasher = DefaultHasher::new();
    warning.hash(&mut hasher);
    hasher.finish()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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

    /// The user's closed groups (direct groups and the ancestors of each, as core unions
    /// them); none for a user the snapshot does not hold.
    fn groups(snapshot: &Snapshot, user: &str) -> Vec<String> {
        snapshot
            .groups_of_user(user)
            .into_iter()
            .flat_map(|set| set.iter())
            .map(str::to_owned)
            .collect()
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
        // One dangling reference in a catalog this small is far above the default 1%.
        let mut config = fixture.config();
        config.guards.max_dangling_fraction =
            super::super::guard::Fraction::from_millionths(500_000);
        let mut syncer = fixture.syncer_for(&config);
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
            .filter(|l| l.starts_with("catalog warnings:"))
            .collect();
        // Each warning once, when it appears: carol's, then only dan's (new).
        assert_eq!(
            warnings,
            [
                "catalog warnings: 1 × dangling_ref, e.g. user:default/carol memberOf group:default/ghost, which is not in the catalog; ignored",
                "catalog warnings: 1 × dangling_ref, e.g. user:default/dan memberOf group:default/phantom, which is not in the catalog; ignored",
            ]
        );
        let syncs: Vec<&String> = logged.iter().filter(|l| l.starts_with("sync ")).collect();
        // The second and third syncs found nothing changed and read nothing: no line.
        assert_eq!(syncs.len(), 2, "{syncs:?}");
        assert!(
            syncs[0].starts_with("sync updated: snapshot `default` version 1700000000000, 3 users, 2 groups, 1 owned, 1 warnings, "),
            "{}",
            syncs[0]
        );
        assert!(
            syncs[1].contains("4 users, 2 groups, 1 owned, 2 warnings"),
            "{}",
            syncs[1]
        );
    }

    #[test]
    fn configured_annotation_keys_map_ownership_and_unmapped_ones_warn_once() {
        let fixture = Fixture::new("sync-annotations");
        let mut org = String::from(ORG);
        for n in 0..30 {
            org.push_str(&format!(
                "---\nkind: Component\nmetadata: {{name: dag{n}, annotations: {{airflow.apache.org/dag-id: dag_{n}}}}}\nspec: {{type: pipeline, owner: data-eng}}\n"
            ));
        }
        fixture.write_org(&org);
        // Defaults: the 30 custom keys map nothing, and one line says so.
        let mut syncer = fixture.syncer();
        for _ in 0..2 {
            assert_eq!(syncer.run().warnings, 30);
        }
        let logged = fixture.logged();
        let warnings: Vec<&String> = logged
            .iter()
            .filter(|l| l.starts_with("catalog warnings:"))
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(
            warnings[0].starts_with("catalog warnings: 30 × unmapped_annotation, e.g. component:default/dag0 carries `airflow.apache.org/dag-id` but no configured ownership annotation")
                && warnings[0].ends_with("… 25 more"),
            "{}",
            warnings[0]
        );
        let published = syncer.current().unwrap();
        assert_eq!(published.owned, 1);

        // Configured (keeping the default key too): 31 DAGs, no warning.
        let mut config = fixture.config();
        config.ownership_annotations = OwnershipAnnotations::new(&BTreeMap::from([(
            "airflow.dag".to_owned(),
            vec![
                "airflow.apache.org/dag-id".to_owned(),
                "meshgate.io/airflow-dag".to_owned(),
            ],
        )]))
        .unwrap();
        let fixture_logs = fixture.logged().len();
        let mut syncer = fixture.syncer_for(&config);
        let report = syncer.run();
        assert_eq!((report.status, report.warnings), (SyncStatus::Updated, 0));
        let snapshot = decode(&fixture, &syncer.current().unwrap().bytes);
        assert_eq!(snapshot.owned_count(), 31);
        assert!(snapshot.owners_of("airflow.dag", "dag_7").is_some());
        assert!(snapshot.owners_of("airflow.dag", "etl_daily").is_some());
        assert_eq!(fixture.logged().len(), fixture_logs + 1);
    }

    fn lenient(fixture: &Fixture) -> ServeConfig {
        let mut config = fixture.config();
        config.guards.max_dangling_fraction =
            super::super::guard::Fraction::from_millionths(1_000_000);
        config
    }

    #[test]
    fn a_group_with_300000_dangling_members_logs_a_few_short_lines() {
        let fixture = Fixture::new("sync-many-warnings");
        let members: Vec<String> = (0..300_000).map(|n| format!("ghost{n}")).collect();
        fixture.write_org(&format!(
            "{ORG}---\nkind: Group\nmetadata: {{name: big}}\nspec: {{members: [{}]}}\n",
            members.join(",")
        ));
        let mut syncer = fixture.syncer_for(&lenient(&fixture));
        let report = syncer.run();
        assert_eq!(
            (report.status, report.warnings),
            (SyncStatus::Updated, 300_000)
        );
        let logged = fixture.logged();
        assert!(logged.len() <= 3, "{}", logged.len());
        let bytes: usize = logged.iter().map(String::len).sum();
        assert!(bytes < 4096, "{bytes} bytes logged");
        assert!(logged.iter().any(|line| line
            .starts_with("catalog warnings: 300000 × dangling_ref, e.g. ")
            && line.ends_with("… 299995 more")));
        // The same warnings again are not logged again.
        fixture.set_now(1_800_000_000_000);
        std::fs::write(
            fixture.catalog.join("extra.yaml"),
            "kind: User\nmetadata: {name: zed}\n",
        )
        .unwrap();
        assert_eq!(syncer.run().status, SyncStatus::Updated);
        assert_eq!(fixture.logged().len(), logged.len() + 1);
    }

    /// Runs `syncer` and checks that the guard refused and the last good snapshot stays.
    fn assert_refused(
        fixture: &Fixture,
        syncer: &mut Syncer,
        guard: &str,
        served: Option<&Arc<Published>>,
    ) {
        let report = syncer.run();
        assert_eq!(
            (
                report.status,
                report.reason,
                report.guard,
                report.serving_stale
            ),
            (
                SyncStatus::Failed,
                Some("guard"),
                Some(guard),
                served.is_some()
            ),
            "{report:?}"
        );
        match served {
            Some(served) => assert!(Arc::ptr_eq(syncer.current().unwrap(), served)),
            None => assert!(syncer.current().is_none()),
        }
        let last = fixture.logged().pop().unwrap();
        assert!(
            last.starts_with("sync failed (guard), ")
                && last.contains(&format!("guard `{guard}` refused")),
            "{last}"
        );
    }

    #[test]
    fn an_empty_directory_is_never_published() {
        let fixture = Fixture::new("sync-guard-empty");
        let org = fixture.catalog.join("org.yaml");
        std::fs::remove_file(&org).unwrap();
        // The first sync: nothing to keep, nothing published.
        let mut syncer = fixture.syncer();
        assert_refused(&fixture, &mut syncer, "empty", None);
        std::fs::write(&org, ORG).unwrap();
        assert_eq!(syncer.run().status, SyncStatus::Updated);
        let served = Arc::clone(syncer.current().unwrap());
        // A failed mount or a git-sync swap: the directory is there, the files are not.
        std::fs::remove_file(&org).unwrap();
        assert_refused(&fixture, &mut syncer, "empty", Some(&served));
        // Groups but no users is just as empty.
        std::fs::write(&org, ORG.replace("kind: User", "kind: Robot")).unwrap();
        assert_refused(&fixture, &mut syncer, "empty", Some(&served));
        assert!(fixture
            .logged()
            .pop()
            .unwrap()
            .contains("0 users, 2 groups"));
    }

    /// 51 users, as in the report that showed a truncated `org.yaml` publishing 19 of them.
    fn org_with_users(users: usize) -> String {
        let mut text = String::from(ORG);
        for n in 0..users.saturating_sub(2) {
            text.push_str(&format!(
                "---\nkind: User\nmetadata: {{name: user{n}}}\nspec: {{memberOf: [analytics]}}\n"
            ));
        }
        text
    }

    #[test]
    fn a_truncated_org_file_that_is_still_yaml_is_not_published() {
        let fixture = Fixture::new("sync-guard-shrink");
        fixture.write_org(&org_with_users(51));
        let mut syncer = fixture.syncer();
        assert_eq!(syncer.run().status, SyncStatus::Updated);
        let served = Arc::clone(syncer.current().unwrap());
        let full = org_with_users(51);
        // Cut at a document boundary: valid YAML, 19 users.
        let cut = full.match_indices("---\n").nth(19 + 2).unwrap().0;
        fixture.write_org(&full[..cut]);
        assert_refused(&fixture, &mut syncer, "shrink", Some(&served));
        let last = fixture.logged().pop().unwrap();
        assert!(last.contains("users 51 → 19"), "{last}");
        // Shrinking by 10% at most is a normal change and is published.
        fixture.write_org(&org_with_users(46));
        assert_eq!(syncer.run().status, SyncStatus::Updated);
        // Retried before giving up: the file finished writing between two reads.
        let finish = std::thread::spawn({
            let path = fixture.catalog.join("org.yaml");
            let full = org_with_users(46);
            move || {
                std::thread::sleep(Duration::from_millis(30));
                std::fs::write(path, full).unwrap();
            }
        });
        fixture.write_org(&full[..cut]);
        let mut config = fixture.config();
        config.guards.retry_backoff = Duration::from_millis(100);
        let mut patient = fixture
            .syncer_for(&config)
            .with_current((**syncer.current().unwrap()).clone());
        let report = patient.run();
        finish.join().unwrap();
        assert_eq!(report.status, SyncStatus::Unchanged, "{report:?}");
    }

    #[test]
    fn an_operator_can_force_a_publish_past_the_guards() {
        let fixture = Fixture::new("sync-guard-force");
        fixture.write_org(&org_with_users(51));
        let mut syncer = fixture.syncer();
        syncer.run();
        fixture.write_org(&org_with_users(10));
        let served = Arc::clone(syncer.current().unwrap());
        assert_refused(&fixture, &mut syncer, "shrink", Some(&served));
        let report = syncer.run_with(true);
        assert_eq!((report.status, report.forced), (SyncStatus::Updated, true));
        assert_eq!(syncer.current().unwrap().users, 10);
        assert!(fixture
            .logged()
            .pop()
            .unwrap()
            .starts_with("sync updated (forced past the guards): "));
        // The forced snapshot is the new reference for the shrink guard.
        assert_eq!(syncer.run().status, SyncStatus::Unchanged);
        // Force publishes an empty catalog too, when that is what the operator wants.
        fixture.write_org("");
        assert_eq!(syncer.run().guard, Some("empty"));
        assert_eq!(syncer.run_with(true).status, SyncStatus::Updated);
        assert_eq!(syncer.current().unwrap().users, 0);
    }

    #[test]
    fn an_unchanged_directory_is_not_read_again() {
        let fixture = Fixture::new("sync-unchanged");
        let mut syncer = fixture.syncer();
        let first = syncer.run();
        // Made unreadable without changing its stamp: a sync that read it would fail.
        let org = fixture.catalog.join("org.yaml");
        let stamp = std::fs::metadata(&org).unwrap().modified().unwrap();
        std::fs::write(&org, ORG.replace("kind: Group", "kind: [Grou")).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&org)
            .unwrap()
            .set_modified(stamp)
            .unwrap();
        let report = syncer.run();
        assert_eq!(
            (report.status, report.version),
            (SyncStatus::Unchanged, first.version)
        );
        // Its stamp moves: read, and the broken YAML is reported.
        std::fs::File::options()
            .write(true)
            .open(&org)
            .unwrap()
            .set_modified(stamp + Duration::from_secs(1))
            .unwrap();
        assert_eq!(syncer.run().reason, Some("catalog"));
        // A rules change rebuilds even when the catalog did not change.
        fixture.write_org(ORG);
        assert_eq!(syncer.run().status, SyncStatus::Unchanged);
        std::fs::write(&fixture.rules, "[]\n").unwrap();
        assert_eq!(syncer.run().status, SyncStatus::Updated);
    }

    #[test]
    fn annotations_are_published_for_the_keys_asked_and_follow_the_catalog() {
        const ENV: &str = "meshgate.io/environment";
        let fixture = Fixture::new("sync-annotations");
        let grants = Arc::new(std::sync::Mutex::new(Grants::default()));
        let feed = Arc::clone(&grants);
        let mut syncer = fixture
            .syncer()
            .with_annotation_keys([ENV.to_owned()].into())
            .with_grants(Arc::new(move |_| Ok(feed.lock().unwrap().clone())));
        let env_of = |syncer: &Syncer| {
            let published = syncer.current().unwrap();
            let values = published
                .annotations
                .values("airflow.dag", "etl_daily", ENV);
            values.map(|values| values.join(","))
        };
        syncer.run();
        assert_eq!(env_of(&syncer).as_deref(), Some(""));
        // An annotation the snapshot does not carry: same version, new annotations.
        let version = syncer.current().unwrap().version;
        fixture.write_org(&ORG.replace(
            "{meshgate.io/airflow-dag: etl_daily}",
            "{meshgate.io/airflow-dag: etl_daily, meshgate.io/environment: production}",
        ));
        let report = syncer.run();
        assert_eq!(report.status, SyncStatus::Unchanged, "{report:?}");
        assert_eq!(syncer.current().unwrap().version, version);
        assert_eq!(env_of(&syncer).as_deref(), Some("production"));
        // Only the grants change: a new version, without reading the catalog, keeps them.
        *grants.lock().unwrap() = Grants::new(vec![meshgate_core::snapshot::Grant {
            id: String::from("g1"),
            user: String::from("user:default/bob"),
            target: meshgate_core::snapshot::GrantTarget::Resource {
                kind: String::from("airflow.dag"),
                id: String::from("etl_daily"),
            },
            not_after: UnixTime::from_secs(4_000_000_000),
        }]);
        let report = syncer.run();
        assert_eq!(report.status, SyncStatus::Updated, "{report:?}");
        assert_ne!(syncer.current().unwrap().version, version);
        assert_eq!(env_of(&syncer).as_deref(), Some("production"));
        // No keys: nothing computed, so nothing known.
        let mut plain = fixture.syncer();
        plain.run();
        assert_eq!(env_of(&plain), None);
        assert!(plain.current().unwrap().annotations.is_empty());
    }
}

//! Keeps the catalog snapshot current, off the request path, with one fetch per Envoy.
//!
//! Like the JWKS refresh: workers race for a short shared lease and the winner polls the
//! control plane (`If-None-Match` with the ETag it has). A verified snapshot newer than the
//! loaded one is published in shared data, and then a small `snapshot_current` key names it.
//! Every worker reads that key on each request that may consult the catalog (one small
//! shared-data read) and on each tick, and loads the published snapshot as soon as the key
//! moves: all workers of an Envoy switch together, so one worker can't deny a user the next
//! one still lets in. Anything that fails verification, is older than what is loaded, or
//! carries rules that don't compile here is refused, and the last good snapshot stays.
//!
//! A VM that has never served a request (Envoy's main-thread VM) keeps no copy: it may
//! still win the lease and fetch for the others, but it drops the decoded snapshot once it
//! has published it.

use std::time::Duration;

use meshgate_core::catalog::{Catalog, CatalogState};
use meshgate_core::config::{Policy, SnapshotSource};
use meshgate_core::snapshot::{Snapshot, SnapshotHeader};

use crate::host::{CallResponse, Callout, Host, LogLevel, Metric};
use crate::shared::{self, claim, decode_millis, encode_millis};

const FIRST_RETRY_MS: i64 = 1_000;
const MAX_BACKOFF_MS: i64 = 60_000;

/// The shared-data keys of one snapshot source.
#[derive(Debug)]
struct SharedKeys {
    /// `[etag length][etag][snapshot]`: the last verified snapshot.
    snapshot: String,
    /// Version and content hash of what `snapshot` holds, written after it: a worker whose
    /// loaded snapshot differs loads the published one.
    current: String,
    /// When the control plane last confirmed the snapshot (200 or 304).
    confirmed: String,
    /// The fetch lease.
    lease: String,
}

impl SharedKeys {
    fn new(source: &SnapshotSource) -> SharedKeys {
        let key = |kind| shared::shared_key(kind, &source.cluster, &source.uri);
        SharedKeys {
            snapshot: key("snapshot"),
            current: key("snapshot_current"),
            confirmed: key("snapshot_confirmed"),
            lease: key("snapshot_lease"),
        }
    }
}

/// What identifies a loaded snapshot, kept even by a VM that drops the snapshot itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loaded {
    version: u64,
    content_hash: [u8; 32],
}

impl Loaded {
    fn of(header: &SnapshotHeader) -> Loaded {
        Loaded {
            version: header.version,
            content_hash: header.content_hash,
        }
    }

    /// The `snapshot_current` value: version (8 bytes, big-endian) then content hash.
    fn stamp(&self) -> [u8; 40] {
        let mut stamp = [0; 40];
        let (version, hash) = stamp.split_at_mut(8);
        version.copy_from_slice(&self.version.to_be_bytes());
        hash.copy_from_slice(&self.content_hash);
        stamp
    }
}

#[derive(Debug)]
pub struct SnapshotSync {
    source: SnapshotSource,
    keys: SharedKeys,
    catalog: Option<Catalog>,
    /// The snapshot this VM loaded or published last, also when it holds no copy.
    loaded: Option<Loaded>,
    etag: Option<String>,
    /// Shared-data version of the `snapshot_current` entry this VM acted on last.
    seen_current: Option<u32>,
    /// Whether this VM serves requests; one that doesn't keeps no snapshot in memory.
    serving: bool,
    /// When the control plane last confirmed the loaded snapshot (200 or 304), Unix ms.
    confirmed_at_ms: Option<i64>,
    next_due_ms: i64,
    in_flight: Option<(u32, i64)>,
    consecutive_failures: u32,
}

impl SnapshotSync {
    pub fn new(policy: &Policy) -> Option<SnapshotSync> {
        let source = policy.snapshot.clone()?;
        Some(SnapshotSync {
            keys: SharedKeys::new(&source),
            source,
            catalog: None,
            loaded: None,
            etag: None,
            seen_current: None,
            serving: false,
            confirmed_at_ms: None,
            next_due_ms: 0,
            in_flight: None,
            consecutive_failures: 0,
        })
    }

    /// What the request path may use now.
    pub fn state(&self, now_ms: i64) -> CatalogState<'_> {
        let Some(catalog) = &self.catalog else {
            return CatalogState::Unavailable {
                reason: "no snapshot has loaded yet",
            };
        };
        let stale = match (self.source.max_staleness_s, self.confirmed_at_ms) {
            (Some(max_s), Some(confirmed)) => {
                now_ms.saturating_sub(confirmed)
                    > i64::try_from(max_s.saturating_mul(1000)).unwrap_or(i64::MAX)
            }
            _ => false,
        };
        if stale {
            return CatalogState::Unavailable {
                reason: "the control plane has not confirmed the snapshot within max_staleness_s",
            };
        }
        CatalogState::Ready(catalog)
    }

    pub fn has_catalog(&self) -> bool {
        self.catalog.is_some()
    }

    /// Called on every request before deciding: marks this VM as serving and loads the
    /// published snapshot when `snapshot_current` moved since this VM last looked. Costs one
    /// small shared-data read when nothing changed.
    pub fn follow_published<H: Host>(&mut self, host: &mut H, policy: &Policy) {
        self.serving = true;
        let Ok((Some(_), Some(version))) = host.get_shared(&self.keys.current) else {
            return;
        };
        if self.seen_current == Some(version) {
            return;
        }
        self.seen_current = Some(version);
        self.load_published(host, policy);
    }

    /// Loads what another worker published; true when a newer snapshot loaded.
    fn load_published<H: Host>(&mut self, host: &mut H, policy: &Policy) -> bool {
        let Ok((Some(value), _)) = host.get_shared(&self.keys.snapshot) else {
            return false;
        };
        let Some((etag, bytes)) = split_published(&value) else {
            return false;
        };
        let etag = etag.to_owned();
        self.accept(host, policy, bytes, Some(etag))
            .unwrap_or(false)
    }

    /// Follows published snapshots (in a serving VM), refreshes the confirmation time, polls
    /// when due.
    pub fn tick<H: Host>(&mut self, host: &mut H, policy: &Policy) {
        let now = host.now_millis();
        if self.serving {
            self.follow_published(host, policy);
        }
        if let Ok((Some(value), _)) = host.get_shared(&self.keys.confirmed) {
            if let Some(at) = decode_millis(&value) {
                self.confirmed_at_ms = Some(self.confirmed_at_ms.map_or(at, |c| c.max(at)));
            }
        }
        if let (Some(loaded), Some(confirmed)) = (self.loaded, self.confirmed_at_ms) {
            host.set_gauge(Metric::SnapshotVersion, loaded.version);
            let age_s = u64::try_from(now.saturating_sub(confirmed) / 1000).unwrap_or(0);
            host.set_gauge(Metric::SnapshotAgeSeconds, age_s);
        }
        if let Some((_, deadline)) = self.in_flight {
            if now < deadline {
                return;
            }
            self.in_flight = None;
            self.failed(host, now, "no response before the deadline");
        }
        if now < self.next_due_ms {
            return;
        }
        let hold = self.hold_ms();
        if !claim(host, &self.keys.lease, now, hold) {
            self.next_due_ms = now.saturating_add(self.poll_ms());
            return;
        }
        let etag = self.etag.clone().filter(|_| self.loaded.is_some());
        let headers: Vec<(&str, &str)> =
            etag.iter().map(|e| ("if-none-match", e.as_str())).collect();
        let callout = Callout {
            cluster: &self.source.cluster,
            authority: &self.source.authority,
            path: &self.source.path,
            timeout: Duration::from_millis(self.source.timeout_ms),
            headers: &headers,
        };
        match host.dispatch_get(&callout) {
            Ok(token) => self.in_flight = Some((token, now.saturating_add(hold))),
            Err(e) => self.failed(host, now, &e.to_string()),
        }
    }

    /// Handles a callout response; false when the token isn't this poller's.
    pub fn on_response<H: Host>(
        &mut self,
        host: &mut H,
        policy: &Policy,
        token: u32,
        response: &CallResponse<'_>,
    ) -> bool {
        if self.in_flight.is_none_or(|(t, _)| t != token) {
            return false;
        }
        self.in_flight = None;
        let now = host.now_millis();
        match (response.status, response.body) {
            (Some(304), _) if self.loaded.is_some() => {
                host.increment(Metric::SnapshotNotModified);
                self.confirmed(host, now);
            }
            (Some(200), Some(body)) => {
                let etag = response.etag.map(str::to_owned);
                match self.accept(host, policy, body, etag.clone()) {
                    Ok(loaded) => {
                        if loaded {
                            self.publish(host, body, etag.as_deref().unwrap_or(""));
                        }
                        self.confirmed(host, now);
                    }
                    Err(reason) => self.failed(host, now, &reason),
                }
            }
            (Some(status), _) => self.failed(host, now, &format!("HTTP status {status}")),
            (None, _) => self.failed(host, now, "no response (timeout or connection failure)"),
        }
        let _ = host.set_shared(&self.keys.lease, &encode_millis(now), None);
        true
    }

    /// Verifies, checks the version and compiles a snapshot, then swaps it in. `Ok(false)`:
    /// the same content is already loaded.
    fn accept<H: Host>(
        &mut self,
        host: &mut H,
        policy: &Policy,
        bytes: &[u8],
        etag: Option<String>,
    ) -> Result<bool, String> {
        let refuse = |host: &mut H, reason: String| {
            host.increment(Metric::SnapshotRejected);
            host.log(
                LogLevel::Warn,
                &format!("meshgate: snapshot refused, keeping the current one: {reason}"),
            );
            reason
        };
        let header = SnapshotHeader::peek(bytes).map_err(|e| refuse(host, e.to_string()))?;
        // A VM that dropped its copy compares against what it last published, but loads
        // that same content again when it now serves requests.
        let holds_current = self.catalog.is_some() || !self.serving;
        if let Some(current) = self.loaded.filter(|_| holds_current) {
            // Same content (another replica may number it differently): a confirmation.
            if header.content_hash == current.content_hash {
                self.etag = etag.or_else(|| self.etag.clone());
                return Ok(false);
            }
            if header.version <= current.version {
                return Err(refuse(
                    host,
                    format!(
                        "version {} is not newer than the loaded {}",
                        header.version, current.version
                    ),
                ));
            }
        }
        let snapshot = Snapshot::decode(bytes, &self.source.trusted_keys, &self.source.limits)
            .map_err(|e| refuse(host, e.to_string()))?;
        let catalog = Catalog::new(policy, snapshot).map_err(|e| refuse(host, e.to_string()))?;
        host.log(
            LogLevel::Info,
            &format!(
                "meshgate: snapshot {} loaded: {} users, {} groups, {} owned resources, {} rules, {} bytes in memory",
                catalog.snapshot.version(),
                catalog.snapshot.user_count(),
                catalog.snapshot.group_count(),
                catalog.snapshot.owned_count(),
                catalog.rules.len(),
                catalog.snapshot.heap_size()
            ),
        );
        host.increment(Metric::SnapshotLoaded);
        host.set_gauge(Metric::SnapshotVersion, catalog.snapshot.version());
        host.set_gauge(
            Metric::SnapshotMemoryBytes,
            u64::try_from(catalog.snapshot.heap_size()).unwrap_or(u64::MAX),
        );
        self.loaded = Some(Loaded::of(catalog.snapshot.header()));
        self.catalog = Some(catalog);
        self.etag = etag;
        Ok(true)
    }

    /// Shares a freshly verified snapshot with the other VMs: the bytes first, then the
    /// `snapshot_current` stamp that makes every worker switch to them.
    fn publish<H: Host>(&mut self, host: &mut H, bytes: &[u8], etag: &str) {
        let etag = etag.get(..usize::from(u8::MAX)).unwrap_or(etag);
        let mut value =
            Vec::with_capacity(bytes.len().saturating_add(etag.len()).saturating_add(1));
        value.push(u8::try_from(etag.len()).unwrap_or(0));
        value.extend_from_slice(etag.as_bytes());
        value.extend_from_slice(bytes);
        let stamp = self.loaded.map(|loaded| loaded.stamp());
        let shared =
            host.set_shared(&self.keys.snapshot, &value, None)
                .and_then(|_| match &stamp {
                    Some(stamp) => host.set_shared(&self.keys.current, stamp, None),
                    None => Ok(true),
                });
        drop(value);
        match shared {
            Ok(_) => {
                self.seen_current = host
                    .get_shared(&self.keys.current)
                    .ok()
                    .and_then(|(_, v)| v);
            }
            Err(e) => host.log(
                LogLevel::Warn,
                &format!("meshgate: could not share the snapshot with other workers: {e}"),
            ),
        }
        if !self.serving {
            // Envoy's main-thread VM fetches for the workers but serves no request.
            self.catalog = None;
            self.seen_current = None;
        }
    }

    fn confirmed<H: Host>(&mut self, host: &mut H, now: i64) {
        self.consecutive_failures = 0;
        self.confirmed_at_ms = Some(now);
        self.next_due_ms = now.saturating_add(self.poll_ms());
        let _ = host.set_shared(&self.keys.confirmed, &encode_millis(now), None);
    }

    fn failed<H: Host>(&mut self, host: &mut H, now: i64, reason: &str) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let exponent = self.consecutive_failures.saturating_sub(1).min(16);
        let backoff = FIRST_RETRY_MS
            .saturating_mul(1_i64 << exponent)
            .min(MAX_BACKOFF_MS)
            .min(self.poll_ms());
        self.next_due_ms = now.saturating_add(backoff);
        host.increment(Metric::SnapshotFetchFailed);
        host.log(
            LogLevel::Warn,
            &format!(
                "meshgate: snapshot poll of {} failed ({reason}); keeping the last good snapshot, retry in {backoff}ms",
                self.source.uri
            ),
        );
    }

    fn poll_ms(&self) -> i64 {
        i64::try_from(self.source.poll_interval_s.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    fn hold_ms(&self) -> i64 {
        i64::try_from(self.source.timeout_ms)
            .unwrap_or(i64::MAX)
            .saturating_add(1_000)
    }
}

/// `[etag length][etag][snapshot]`.
fn split_published(value: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = value.split_first()?;
    let (etag, bytes) = rest.split_at_checked(usize::from(len))?;
    Some((std::str::from_utf8(etag).ok()?, bytes))
}

//! Keeps the catalog snapshot current, off the request path, with one fetch per Envoy.
//!
//! Like the JWKS refresh: workers race for a short shared lease and the winner polls the
//! control plane (`If-None-Match` with the ETag it has). A verified snapshot newer than the
//! loaded one is published in shared data, and every worker loads it on its next tick (or
//! on a request, if it has none yet). Anything that fails verification, is older than what
//! is loaded, or carries rules that don't compile here is refused, and the last good
//! snapshot stays in force.

use std::time::Duration;

use meshgate_core::catalog::{Catalog, CatalogState};
use meshgate_core::config::{Policy, SnapshotSource};
use meshgate_core::snapshot::{Snapshot, SnapshotHeader};

use crate::host::{CallResponse, Callout, Host, LogLevel, Metric};
use crate::shared::{self, claim, decode_millis, encode_millis};

const FIRST_RETRY_MS: i64 = 1_000;
const MAX_BACKOFF_MS: i64 = 60_000;

#[derive(Debug)]
pub struct SnapshotSync {
    source: SnapshotSource,
    catalog: Option<Catalog>,
    etag: Option<String>,
    /// Shared-data version of the published snapshot this worker looked at last.
    seen_shared_version: Option<u32>,
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
            source,
            catalog: None,
            etag: None,
            seen_shared_version: None,
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

    /// Loads what another worker published; true when a newer snapshot loaded.
    pub fn load_published<H: Host>(&mut self, host: &mut H, policy: &Policy) -> bool {
        let key = shared_key("snapshot", &self.source);
        let Ok((Some(value), Some(version))) = host.get_shared(&key) else {
            return false;
        };
        if self.seen_shared_version == Some(version) {
            return false;
        }
        self.seen_shared_version = Some(version);
        let Some((etag, bytes)) = split_published(&value) else {
            return false;
        };
        let etag = etag.to_owned();
        self.accept(host, policy, bytes, Some(etag))
            .unwrap_or(false)
    }

    /// Loads published snapshots, refreshes the confirmation time, polls when due.
    pub fn tick<H: Host>(&mut self, host: &mut H, policy: &Policy) {
        let now = host.now_millis();
        self.load_published(host, policy);
        if let Ok((Some(value), _)) =
            host.get_shared(&shared_key("snapshot_confirmed", &self.source))
        {
            if let Some(at) = decode_millis(&value) {
                self.confirmed_at_ms = Some(self.confirmed_at_ms.map_or(at, |c| c.max(at)));
            }
        }
        if let (Some(catalog), Some(confirmed)) = (&self.catalog, self.confirmed_at_ms) {
            host.set_gauge(Metric::SnapshotVersion, catalog.snapshot.version());
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
        if !claim(host, &shared_key("snapshot_lease", &self.source), now, hold) {
            self.next_due_ms = now.saturating_add(self.poll_ms());
            return;
        }
        let etag = self.etag.clone().filter(|_| self.catalog.is_some());
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
            (Some(304), _) if self.catalog.is_some() => {
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
        let _ = host.set_shared(
            &shared_key("snapshot_lease", &self.source),
            &encode_millis(now),
            None,
        );
        true
    }

    /// Verifies, checks the version and compiles a snapshot, then swaps it in. `Ok(false)`:
    /// the same version is already loaded.
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
        if let Some(current) = &self.catalog {
            let loaded = current.snapshot.version();
            // Same content (another replica may number it differently): a confirmation.
            if header.content_hash == *current.snapshot.content_hash() {
                self.etag = etag.or_else(|| self.etag.clone());
                return Ok(false);
            }
            if header.version <= loaded {
                return Err(refuse(
                    host,
                    format!(
                        "version {} is not newer than the loaded {loaded}",
                        header.version
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
        self.catalog = Some(catalog);
        self.etag = etag;
        Ok(true)
    }

    fn publish<H: Host>(&mut self, host: &mut H, bytes: &[u8], etag: &str) {
        let key = shared_key("snapshot", &self.source);
        let etag = etag.get(..usize::from(u8::MAX)).unwrap_or(etag);
        let mut value =
            Vec::with_capacity(bytes.len().saturating_add(etag.len()).saturating_add(1));
        value.push(u8::try_from(etag.len()).unwrap_or(0));
        value.extend_from_slice(etag.as_bytes());
        value.extend_from_slice(bytes);
        match host.set_shared(&key, &value, None) {
            Ok(_) => {
                self.seen_shared_version = host.get_shared(&key).ok().and_then(|(_, v)| v);
            }
            Err(e) => host.log(
                LogLevel::Warn,
                &format!("meshgate: could not share the snapshot with other workers: {e}"),
            ),
        }
    }

    fn confirmed<H: Host>(&mut self, host: &mut H, now: i64) {
        self.consecutive_failures = 0;
        self.confirmed_at_ms = Some(now);
        self.next_due_ms = now.saturating_add(self.poll_ms());
        let _ = host.set_shared(
            &shared_key("snapshot_confirmed", &self.source),
            &encode_millis(now),
            None,
        );
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

fn shared_key(kind: &str, source: &SnapshotSource) -> String {
    shared::shared_key(kind, &source.cluster, &source.uri)
}

/// `[etag length][etag][snapshot]`.
fn split_published(value: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = value.split_first()?;
    let (etag, bytes) = rest.split_at_checked(usize::from(len))?;
    Some((std::str::from_utf8(etag).ok()?, bytes))
}

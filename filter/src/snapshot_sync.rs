//! Keeps the catalog snapshot current, off the request path, with one fetch and one decode
//! per Envoy.
//!
//! Like the JWKS refresh: VMs race for a short shared lease and the winner polls the control
//! plane, with the ETag it has in `If-None-Match` and `A-IM: meshgate-delta` (RFC 3229), so an
//! unchanged catalog costs a 304 and a small change a signed delta (226) instead of the whole
//! snapshot. The winner verifies the snapshot (or applies the delta to the one it has), checks
//! that it is newer and that its rules compile, and publishes its canonical *image* in shared
//! data; then a small `snapshot_current` stamp (version, content hash, ETag) names it.
//!
//! Every serving VM reads that stamp on each request (one small shared-data read) and on each
//! tick, and adopts the published image as soon as the stamp moves: all workers of an Envoy
//! switch together, so one worker can't deny a user whom the next one still lets in. Adopting
//! an image is a copy out of shared data, with no signature check and no decoding: the image
//! was verified by the VM that published it, and Envoy's shared data is private to the
//! process. Anything that fails verification, is older than what is loaded, or carries rules
//! that don't compile here is refused, and the last good snapshot stays.
//!
//! A VM that has never served a request (Envoy's main-thread VM) keeps no copy: it may still
//! win the lease and fetch for the others, but it drops the snapshot once it has published it.
//! While such a VM polls, serving VMs leave polling to it: a whole snapshot decoded in a
//! worker would raise that worker's Wasm memory high-water mark for good (Wasm memory never
//! shrinks), while the main-thread VM pays it once. Workers take over when it has not polled
//! for [`TAKEOVER_POLLS`] intervals, so a stuck main thread costs freshness, never the snapshot.

use std::time::Duration;

use meshgate_core::catalog::{Catalog, CatalogState};
use meshgate_core::config::{Policy, SnapshotSource};
use meshgate_core::snapshot::{Snapshot, SnapshotHeader};

use crate::host::{CallResponse, Callout, Host, LogLevel, Metric};
use crate::shared::{self, claim, decode_millis, encode_millis};

const FIRST_RETRY_MS: i64 = 1_000;
const MAX_BACKOFF_MS: i64 = 60_000;
/// The delta encoding meshgate's control plane serves (RFC 3229 instance manipulation).
pub const DELTA_ENCODING: &str = "meshgate-delta";
/// `226 IM Used`: the body is a delta against the snapshot named in `If-None-Match`.
const IM_USED: u16 = 226;
/// Poll intervals without a poll by a VM that serves nothing before serving VMs poll again.
const TAKEOVER_POLLS: i64 = 3;

/// The shared-data keys of one snapshot source.
#[derive(Debug)]
struct SharedKeys {
    /// The image of the last verified snapshot.
    image: String,
    /// [`Stamp`] of what `image` holds, written after it.
    current: String,
    /// When the control plane last confirmed the snapshot (200, 226 or 304).
    confirmed: String,
    /// The fetch lease.
    lease: String,
    /// When a VM that serves no request last started a poll, Unix ms.
    idle_polled: String,
}

impl SharedKeys {
    fn new(source: &SnapshotSource) -> SharedKeys {
        let key = |kind| shared::shared_key(kind, &source.cluster, &source.uri);
        SharedKeys {
            image: key("snapshot_image"),
            current: key("snapshot_current"),
            confirmed: key("snapshot_confirmed"),
            lease: key("snapshot_lease"),
            idle_polled: key("snapshot_idle_polled"),
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
}

/// The `snapshot_current` value: version (8 bytes, big-endian), content hash (32), then the
/// ETag the control plane gave the snapshot.
struct Stamp<'a> {
    loaded: Loaded,
    etag: &'a str,
}

impl<'a> Stamp<'a> {
    const FIXED: usize = 40;

    fn encode(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(Self::FIXED.saturating_add(self.etag.len()));
        value.extend_from_slice(&self.loaded.version.to_be_bytes());
        value.extend_from_slice(&self.loaded.content_hash);
        value.extend_from_slice(self.etag.as_bytes());
        value
    }

    fn decode(value: &'a [u8]) -> Option<Stamp<'a>> {
        let (version, rest) = value.split_first_chunk::<8>()?;
        let (content_hash, etag) = rest.split_first_chunk::<32>()?;
        Some(Stamp {
            loaded: Loaded {
                version: u64::from_be_bytes(*version),
                content_hash: *content_hash,
            },
            etag: std::str::from_utf8(etag).ok()?,
        })
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
    /// A delta failed: the next poll asks for the whole snapshot.
    want_full: bool,
    /// The `idle_polled` mark this VM wrote last, while it served nothing: a worker ticks
    /// before its first request, and must not later defer to its own mark.
    own_idle_mark: Option<i64>,
    /// When the control plane last confirmed the loaded snapshot, Unix ms.
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
            want_full: false,
            own_idle_mark: None,
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

    /// Called on every request before deciding: marks this VM as serving and adopts the
    /// published snapshot when `snapshot_current` moved since this VM last looked. Costs one
    /// small shared-data read when nothing changed.
    pub fn follow_published<H: Host>(&mut self, host: &mut H, policy: &Policy) {
        self.serving = true;
        let Ok((Some(value), Some(version))) = host.get_shared(&self.keys.current) else {
            return;
        };
        if self.seen_current == Some(version) {
            return;
        }
        let Some(stamp) = Stamp::decode(&value) else {
            return;
        };
        if self.catalog.is_some() && self.loaded == Some(stamp.loaded) {
            // This VM published it, or already adopted the same content.
            self.seen_current = Some(version);
            return;
        }
        let etag = stamp.etag.to_owned();
        if self.adopt_published(host, policy, etag) {
            self.seen_current = Some(version);
        }
    }

    /// A VM that serves no request keeps no snapshot, but it may poll for the others: it takes
    /// the version and ETag of what another VM published, so it asks for a delta from that (the
    /// base it will take from shared data), not from what it published itself long ago.
    fn follow_stamp<H: Host>(&mut self, host: &mut H) {
        let Ok((Some(value), _)) = host.get_shared(&self.keys.current) else {
            return;
        };
        if let Some(stamp) = Stamp::decode(&value) {
            if self.loaded != Some(stamp.loaded) {
                self.loaded = Some(stamp.loaded);
                self.etag = Some(stamp.etag.to_owned());
            }
        }
    }

    /// Adopts the published image. The old snapshot goes first, so a VM never holds two (Wasm
    /// memory keeps its high-water mark); the published image was verified and compiled with
    /// the same configuration, so this fails only if the configuration changed in between, and
    /// then the next request tries again.
    fn adopt_published<H: Host>(&mut self, host: &mut H, policy: &Policy, etag: String) -> bool {
        self.catalog = None;
        let image = match host.get_shared(&self.keys.image) {
            Ok((Some(image), _)) => image,
            Ok((None, _)) => return false,
            Err(e) => {
                host.log(LogLevel::Warn, &format!("meshgate: {e}"));
                return false;
            }
        };
        let loaded = Snapshot::from_image(image)
            .map_err(|e| e.to_string())
            .and_then(|snapshot| Catalog::new(policy, snapshot).map_err(|e| e.to_string()));
        match loaded {
            Ok(catalog) => {
                self.install(host, catalog, Some(etag));
                true
            }
            Err(reason) => {
                host.increment(Metric::SnapshotRejected);
                host.log(
                    LogLevel::Error,
                    &format!("meshgate: the published snapshot could not be adopted: {reason}"),
                );
                false
            }
        }
    }

    /// Follows published snapshots (in a serving VM), refreshes the confirmation time, polls
    /// when due.
    pub fn tick<H: Host>(&mut self, host: &mut H, policy: &Policy) {
        let now = host.now_millis();
        if self.serving {
            self.follow_published(host, policy);
        } else {
            self.follow_stamp(host);
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
                if !self.serving {
                    // A held poll is still this VM polling for the others: serving VMs must
                    // not take over while it waits.
                    self.mark_idle_poll(host, now);
                }
                return;
            }
            self.in_flight = None;
            self.failed(host, now, "no response before the deadline");
        }
        if now < self.next_due_ms {
            return;
        }
        if self.serving && self.idle_vm_polls(host, now) {
            self.next_due_ms = now.saturating_add(self.poll_ms());
            return;
        }
        let hold = self.hold_ms();
        if !claim(host, &self.keys.lease, now, hold) {
            self.next_due_ms = now.saturating_add(self.poll_ms());
            return;
        }
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(3);
        let wait = format!("wait={}", self.source.long_poll_s);
        let mut long_poll_ms = 0;
        if let Some(etag) = self.etag.as_deref().filter(|_| self.loaded.is_some()) {
            headers.push(("if-none-match", etag));
            if !self.want_full {
                headers.push(("a-im", DELTA_ENCODING));
            }
            if self.source.long_poll_s > 0 {
                headers.push(("prefer", &wait));
                long_poll_ms = self.long_poll_ms();
            }
        }
        let callout = Callout {
            cluster: &self.source.cluster,
            authority: &self.source.authority,
            path: &self.source.path,
            timeout: Duration::from_millis(self.source.timeout_ms)
                .saturating_add(Duration::from_millis(long_poll_ms.unsigned_abs())),
            headers: &headers,
        };
        match host.dispatch_get(&callout) {
            Ok(token) => self.in_flight = Some((token, now.saturating_add(hold))),
            Err(e) => self.failed(host, now, &e.to_string()),
        }
        if !self.serving {
            self.mark_idle_poll(host, now);
        }
    }

    /// Tells serving VMs that a VM serving no request is polling for them.
    fn mark_idle_poll<H: Host>(&mut self, host: &mut H, now: i64) {
        let _ = host.set_shared(&self.keys.idle_polled, &encode_millis(now), None);
        self.own_idle_mark = Some(now);
    }

    /// Whether a VM that serves no request has polled within the last [`TAKEOVER_POLLS`]
    /// intervals (it polls whether or not the control plane answers).
    fn idle_vm_polls<H: Host>(&self, host: &mut H, now: i64) -> bool {
        let Ok((Some(value), _)) = host.get_shared(&self.keys.idle_polled) else {
            return false;
        };
        let window = self.poll_ms().saturating_mul(TAKEOVER_POLLS);
        decode_millis(&value)
            .filter(|&at| Some(at) != self.own_idle_mark)
            .is_some_and(|at| now.saturating_sub(at) <= window)
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
        let etag = response.etag.map(str::to_owned);
        match (response.status, response.body) {
            (Some(304), _) if self.loaded.is_some() => {
                host.increment(Metric::SnapshotNotModified);
                self.confirmed(host, now);
            }
            (Some(200), Some(body)) => match self.accept_full(host, policy, body, etag) {
                Ok(()) => self.confirmed(host, now),
                Err(reason) => self.failed(host, now, &reason),
            },
            (Some(IM_USED), Some(body)) => match self.accept_delta(host, policy, body, etag) {
                Ok(()) => {
                    host.increment(Metric::SnapshotDeltaApplied);
                    self.confirmed(host, now);
                }
                Err(reason) => {
                    // The whole snapshot is always a way out: ask for it at the next tick.
                    host.increment(Metric::SnapshotDeltaRejected);
                    host.log(
                        LogLevel::Warn,
                        &format!("meshgate: snapshot delta refused ({reason}); fetching the whole snapshot"),
                    );
                    self.want_full = true;
                    self.next_due_ms = now;
                }
            },
            (Some(status), _) => self.failed(host, now, &format!("HTTP status {status}")),
            (None, _) => self.failed(host, now, "no response (timeout or connection failure)"),
        }
        if response.held && self.consecutive_failures == 0 {
            // The control plane paced this poll itself: the next one leaves at the next tick,
            // so a held poll is nearly always waiting when the catalog changes.
            self.next_due_ms = now;
        }
        let _ = host.set_shared(&self.keys.lease, &encode_millis(now), None);
        true
    }

    /// A whole snapshot: verified, checked to be newer, its rules compiled, then installed and
    /// published. The same content again is a confirmation.
    fn accept_full<H: Host>(
        &mut self,
        host: &mut H,
        policy: &Policy,
        bytes: &[u8],
        etag: Option<String>,
    ) -> Result<(), String> {
        let header = SnapshotHeader::peek(bytes).map_err(|e| refuse(host, e.to_string()))?;
        // A serving VM without a copy (its last adoption failed) loads even the same content.
        let holds_current = self.catalog.is_some() || !self.serving;
        if let Some(current) = self.loaded.filter(|_| holds_current) {
            // Same content (another replica may number it differently): a confirmation.
            if header.content_hash == current.content_hash {
                self.etag = etag.or_else(|| self.etag.clone());
                self.want_full = false;
                return Ok(());
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
        self.want_full = false;
        self.install(host, catalog, etag);
        self.publish(host);
        Ok(())
    }

    /// A delta against the loaded snapshot: verified and applied by core (which checks the
    /// base and the result), its rules compiled, then installed and published.
    fn accept_delta<H: Host>(
        &mut self,
        host: &mut H,
        policy: &Policy,
        delta: &[u8],
        etag: Option<String>,
    ) -> Result<(), String> {
        // A VM that dropped its copy takes the base back from shared data for the moment.
        let adopted;
        let base = match &self.catalog {
            Some(catalog) => &catalog.snapshot,
            None => {
                let image = match host.get_shared(&self.keys.image) {
                    Ok((Some(image), _)) => image,
                    _ => return Err(String::from("no base snapshot to apply the delta to")),
                };
                adopted = Snapshot::from_image(image).map_err(|e| e.to_string())?;
                &adopted
            }
        };
        let snapshot = base
            .apply_delta(delta, &self.source.trusted_keys, &self.source.limits)
            .map_err(|e| e.to_string())?;
        if self.loaded.is_some_and(|l| snapshot.version() <= l.version) {
            return Err(format!(
                "version {} is not newer than the loaded one",
                snapshot.version()
            ));
        }
        let catalog = Catalog::new(policy, snapshot).map_err(|e| refuse(host, e.to_string()))?;
        self.install(host, catalog, etag);
        self.publish(host);
        Ok(())
    }

    fn install<H: Host>(&mut self, host: &mut H, catalog: Catalog, etag: Option<String>) {
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
        log_linear_memory(host, "installed");
    }

    /// Shares the snapshot just installed: the image first, then the stamp that makes every
    /// worker switch to it. A VM that serves no request then drops its copy.
    fn publish<H: Host>(&mut self, host: &mut H) {
        let (Some(catalog), Some(loaded)) = (&self.catalog, self.loaded) else {
            return;
        };
        let stamp = Stamp {
            loaded,
            etag: self.etag.as_deref().unwrap_or(""),
        }
        .encode();
        let shared = host
            .set_shared(&self.keys.image, catalog.snapshot.image(), None)
            .and_then(|_| host.set_shared(&self.keys.current, &stamp, None));
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
            log_linear_memory(host, "published and dropped");
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

    fn long_poll_ms(&self) -> i64 {
        i64::try_from(self.source.long_poll_s.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// How long a poll holds the lease: its timeout, the wait it may be held for, and a
    /// second of slack.
    fn hold_ms(&self) -> i64 {
        i64::try_from(self.source.timeout_ms)
            .unwrap_or(i64::MAX)
            .saturating_add(self.long_poll_ms())
            .saturating_add(1_000)
    }
}

/// Logs this VM's Wasm linear memory at debug level after a snapshot swap: it only grows, so
/// it is the high-water mark of every decode, delta and adoption so far (`docs/snapshot.md`,
/// "Envoy memory").
fn log_linear_memory<H: Host>(host: &mut H, after: &str) {
    if let Some(pages) = linear_memory_pages() {
        host.log(
            LogLevel::Debug,
            &format!(
                "meshgate: snapshot {after}: linear memory {pages} pages ({} KiB)",
                pages.saturating_mul(64)
            ),
        );
    }
}

/// Pages of 64 KiB in this VM's linear memory; `None` off Wasm.
fn linear_memory_pages() -> Option<usize> {
    #[cfg(target_arch = "wasm32")]
    {
        Some(core::arch::wasm32::memory_size::<0>())
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        None
    }
}

/// Counts and logs a refused snapshot; returns the reason.
fn refuse<H: Host>(host: &mut H, reason: String) -> String {
    host.increment(Metric::SnapshotRejected);
    host.log(
        LogLevel::Warn,
        &format!("meshgate: snapshot refused, keeping the current one: {reason}"),
    );
    reason
}

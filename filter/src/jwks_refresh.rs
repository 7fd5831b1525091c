//! Keeps remote JWKS fresh, off the request path, with one fetch for all worker VMs.
//!
//! Envoy runs one Wasm VM per worker thread. Fetched key sets are published in Envoy
//! shared data, so a fetch by one worker serves all of them: on every tick each worker
//! loads a newer published set if there is one, and when a refresh is due the workers
//! race for a short lease; only the winner fetches. A token with an unknown `kid` can
//! trigger an early refetch, rate limited by a second shared lease. A failed or garbage
//! fetch never replaces keys that work. An empty key set (`{"keys": []}`, Backstage before
//! its first sign-in) is not a failure: it is counted apart, logged once, and stands in
//! for "no keys" only while nothing better was ever loaded.

use std::sync::Arc;
use std::time::Duration;

use meshgate_core::config::Policy;
use meshgate_core::decision::{KeysWanted, MissingKeys, ProviderId};
use meshgate_core::jwks::{JwksError, KeyOrigin, KeySet};
use meshgate_core::provider::{KeySource, RemoteJwks, UnknownKid};
use meshgate_core::KeyStore;

use crate::host::{Callout, Host, LogLevel, Metric};
use crate::shared::{self, claim, decode_millis, encode_millis};

/// Longest wait between retries after failures.
const MAX_BACKOFF_MS: i64 = 60_000;
const FIRST_RETRY_MS: i64 = 1_000;
/// How long a worker waits before re-checking when another worker holds the fetch lease.
const LEASE_RECHECK_MS: i64 = 1_000;

#[derive(Debug)]
struct Entry {
    provider: usize,
    provider_name: String,
    remote: RemoteJwks,
    next_due_ms: i64,
    in_flight: Option<InFlight>,
    consecutive_failures: u32,
    /// Shared-data version of the key set this worker loaded, and when it was fetched.
    loaded_version: Option<u32>,
    loaded_fetched_at_ms: Option<i64>,
    /// The document behind the keys this worker holds, so skipped keys are reported once
    /// per document, not on every refresh.
    loaded_fingerprint: Option<u64>,
    /// The IdP's key set was empty and that was logged; cleared when keys arrive.
    empty_logged: bool,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    token: u32,
    deadline_ms: i64,
    /// For a refetch caused by an unknown `kid`: the end of the rate-limit lease it holds,
    /// which names the lease when the fetch marks it done.
    refetch_until: Option<i64>,
}

/// What to do with a request whose decision lacked keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysAction {
    /// Newer keys were published by another worker and are now loaded: decide again.
    Arrived,
    /// A refetch is under way (here or in another worker): hold the request until keys
    /// load or this deadline (Unix ms) passes.
    Wait { deadline_ms: i64 },
    /// The decision stands: nothing is coming in time (a local provider, refetch off or in
    /// the background, the last refetch done without the key), or it may not wait.
    Stand,
}

#[derive(Debug, Default)]
pub struct JwksRefresh {
    entries: Vec<Entry>,
    /// Providers whose keys loaded or whose fetch failed since the last `take_settled`,
    /// so requests waiting on them can be decided again.
    settled: Vec<ProviderId>,
}

impl JwksRefresh {
    pub fn new(policy: &Policy) -> JwksRefresh {
        let entries = policy
            .providers
            .iter()
            .enumerate()
            .filter_map(|(index, p)| match &p.keys {
                KeySource::Remote(remote) => Some(Entry {
                    provider: index,
                    provider_name: p.name.clone(),
                    remote: remote.clone(),
                    next_due_ms: 0,
                    in_flight: None,
                    consecutive_failures: 0,
                    loaded_version: None,
                    loaded_fetched_at_ms: None,
                    loaded_fingerprint: None,
                    empty_logged: false,
                }),
                KeySource::Local(_) => None,
            })
            .collect();
        JwksRefresh {
            entries,
            settled: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Loads key sets other workers published, then fetches whatever is due.
    pub fn tick<H: Host>(&mut self, host: &mut H, keys: &mut KeyStore) {
        let now = host.now_millis();
        for entry in &mut self.entries {
            if sync_from_shared(entry, host, keys) {
                self.settled.push(ProviderId::new(entry.provider));
            }
            if let Some(fetched_at) = entry.loaded_fetched_at_ms {
                let age_s = u64::try_from(now.saturating_sub(fetched_at) / 1000).unwrap_or(0);
                host.set_gauge(Metric::JwksAgeSeconds(entry.provider_name.clone()), age_s);
            }
            if let Some(in_flight) = entry.in_flight {
                if now < in_flight.deadline_ms {
                    continue;
                }
                // The host never answered: count it and try again.
                entry.in_flight = None;
                record_failure(entry, host, now, "no response before the deadline");
                finish_refetch(host, &entry.remote, in_flight.refetch_until);
                self.settled.push(ProviderId::new(entry.provider));
            }
            if now < entry.next_due_ms {
                continue;
            }
            if !claim(
                host,
                &lease_key(&entry.remote),
                now,
                fetch_hold_ms(&entry.remote),
            ) {
                // Another worker is fetching; its result arrives through shared data.
                entry.next_due_ms = now.saturating_add(LEASE_RECHECK_MS);
                continue;
            }
            dispatch(entry, host, now);
        }
    }

    /// A decision lacked `wanted`: the provider's keys never loaded, or the token names a
    /// key they don't have. Keys another worker published since this one's last tick are
    /// loaded at once. Otherwise, when the request may wait (it was denied and can be
    /// held), a refetch is started or joined, rate limited across workers.
    pub fn keys_wanted<H: Host>(
        &mut self,
        host: &mut H,
        keys: &mut KeyStore,
        wanted: KeysWanted,
        may_wait: bool,
    ) -> KeysAction {
        let now = host.now_millis();
        let provider = wanted.provider.index();
        let Some(entry) = self.entries.iter_mut().find(|e| e.provider == provider) else {
            return KeysAction::Stand;
        };
        if sync_from_shared(entry, host, keys) {
            return KeysAction::Arrived;
        }
        let mode = entry.remote.on_unknown_kid;
        if !may_wait || mode == UnknownKid::Off {
            return KeysAction::Stand;
        }
        let hold_ms = fetch_hold_ms(&entry.remote);
        let wait = KeysAction::Wait {
            deadline_ms: now.saturating_add(hold_ms),
        };
        if entry.in_flight.is_some() {
            // This worker is already fetching: wait for that answer.
            return if mode == UnknownKid::Wait {
                wait
            } else {
                KeysAction::Stand
            };
        }
        let interval_ms = i64::try_from(entry.remote.refetch_min_interval_s.saturating_mul(1_000))
            .unwrap_or(i64::MAX);
        let key = refetch_key(&entry.remote);
        // One refetch per interval across all workers: an attacker sending random kids
        // gets at most that many fetches to the IdP.
        if claim(host, &key, now, interval_ms) {
            host.increment(Metric::JwksRefetchUnknownKid);
            let why = match wanted.missing {
                MissingKeys::UnknownKey => "unknown key id",
                MissingKeys::NotLoaded => "no keys yet",
            };
            host.log(
                LogLevel::Info,
                &format!(
                    "meshgate: provider `{}`: {why}, refetching {}",
                    entry.provider_name, entry.remote.uri
                ),
            );
            let until = now.saturating_add(interval_ms);
            let dispatched = dispatch(entry, host, now);
            match &mut entry.in_flight {
                Some(in_flight) if dispatched.is_some() => in_flight.refetch_until = Some(until),
                // Not sent: nothing is coming, so nobody should wait for it.
                _ => finish_refetch(host, &entry.remote, Some(until)),
            }
            return match (mode, dispatched) {
                (UnknownKid::Wait, Some(_)) => wait,
                // Background: the answer still loads the keys, this request is denied.
                _ => KeysAction::Stand,
            };
        }
        // Rate limited. While the refetch that holds the limit (maybe in another worker) is
        // under way, wait for its answer. Once it has finished, its keys (if any) were loaded
        // above and the key still isn't there: deny now rather than hold the request until
        // its deadline for nothing.
        let lease = host.get_shared(&key).ok().and_then(|(value, _)| value);
        let claimed_at = lease
            .as_deref()
            .and_then(decode_millis)
            .map(|until| until.saturating_sub(interval_ms));
        let finished = lease.as_deref().is_some_and(lease_done);
        match claimed_at {
            Some(at) if mode == UnknownKid::Wait && now.saturating_sub(at) < hold_ms => {
                if !finished {
                    wait
                } else if sync_from_shared(entry, host, keys) {
                    // Published by the refetch between this worker's look above and now.
                    KeysAction::Arrived
                } else {
                    KeysAction::Stand
                }
            }
            _ => KeysAction::Stand,
        }
    }

    /// Providers whose fetch settled (keys loaded, or a fetch failed) since the last call.
    pub fn take_settled(&mut self) -> Vec<ProviderId> {
        std::mem::take(&mut self.settled)
    }

    /// Handles a callout response. Returns false when the token isn't one of ours.
    pub fn on_response<H: Host>(
        &mut self,
        host: &mut H,
        keys: &mut KeyStore,
        token: u32,
        status: Option<u16>,
        body: Option<&[u8]>,
    ) -> bool {
        let now = host.now_millis();
        let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| e.in_flight.is_some_and(|f| f.token == token))
        else {
            return false;
        };
        let refetch_until = entry.in_flight.take().and_then(|f| f.refetch_until);
        let parsed = match (status, body) {
            (Some(200), Some(body)) => KeySet::parse(body, KeyOrigin::Remote)
                .map(|set| (set, body))
                .map_err(Failure::Parse),
            (Some(200), None) => Err(Failure::Other(String::from("empty body"))),
            (Some(status), _) => Err(Failure::Other(format!("HTTP status {status}"))),
            (None, _) => Err(Failure::Other(String::from(
                "no response status (timeout or connection failure)",
            ))),
        };
        match parsed {
            Ok((set, body)) => {
                publish(entry, host, now, body);
                report_skipped(entry, host, &set);
                load(entry, host, keys, set, now);
                host.increment(Metric::JwksFetchOk);
            }
            Err(Failure::Parse(JwksError::Empty)) => {
                if let Some(body) = body {
                    publish(entry, host, now, body);
                }
                record_empty(entry, host, keys, now);
            }
            Err(Failure::Parse(e)) => record_failure(entry, host, now, &e.to_string()),
            Err(Failure::Other(reason)) => record_failure(entry, host, now, &reason),
        }
        // After the keys are published, so a worker that sees the refetch done finds them.
        finish_refetch(host, &entry.remote, refetch_until);
        // Hand the lease back. After a failure or an empty set it stays taken until the
        // next try, so the other workers wait with this one instead of each asking the IdP.
        let until = if entry.consecutive_failures > 0 || entry.empty_logged {
            entry.next_due_ms
        } else {
            now
        };
        let _ = host.set_shared(&lease_key(&entry.remote), &encode_millis(until), None);
        self.settled.push(ProviderId::new(entry.provider));
        true
    }
}

/// Why a fetch brought no keys.
enum Failure {
    Parse(JwksError),
    Other(String),
}

fn shared_key(kind: &str, remote: &RemoteJwks) -> String {
    shared::shared_key(kind, &remote.cluster, &remote.uri)
}

fn doc_key(remote: &RemoteJwks) -> String {
    shared_key("jwks", remote)
}

fn lease_key(remote: &RemoteJwks) -> String {
    shared_key("jwks_lease", remote)
}

fn refetch_key(remote: &RemoteJwks) -> String {
    shared_key("jwks_refetch", remote)
}

/// The byte after the lease's end time that marks its refetch done.
const REFETCH_DONE: u8 = 1;

fn lease_done(value: &[u8]) -> bool {
    value.get(8) == Some(&REFETCH_DONE)
}

/// Marks the unknown-`kid` refetch lease ending at `until` as done (answered, failed or never
/// sent). The lease keeps limiting refetches until `until`; requests that come meanwhile are
/// denied at once instead of waiting for an answer that already came. A lease taken since
/// (another end time) is left alone.
fn finish_refetch<H: Host>(host: &mut H, remote: &RemoteJwks, until: Option<i64>) {
    let Some(until) = until else {
        return;
    };
    let key = refetch_key(remote);
    let Ok((Some(value), cas)) = host.get_shared(&key) else {
        return;
    };
    if decode_millis(&value) != Some(until) {
        return;
    }
    let mut done = encode_millis(until).to_vec();
    done.push(REFETCH_DONE);
    // A lost race means another worker changed the lease: its state stands.
    let _ = host.set_shared(&key, &done, cas);
}

fn fetch_hold_ms(remote: &RemoteJwks) -> i64 {
    i64::try_from(remote.timeout_ms)
        .unwrap_or(i64::MAX)
        .saturating_add(1_000)
}

fn sync_from_shared<H: Host>(entry: &mut Entry, host: &mut H, keys: &mut KeyStore) -> bool {
    let Ok((Some(value), Some(version))) = host.get_shared(&doc_key(&entry.remote)) else {
        return false;
    };
    if entry.loaded_version == Some(version) {
        return false;
    }
    entry.loaded_version = Some(version);
    let (Some(fetched_at), Some(body)) = (decode_millis(&value), value.get(8..)) else {
        return false;
    };
    match KeySet::parse(body, KeyOrigin::Remote) {
        Ok(set) => {
            // The worker that fetched it reported its skipped keys.
            entry.loaded_fingerprint = Some(set.fingerprint);
            load(entry, host, keys, set, fetched_at);
            true
        }
        Err(JwksError::Empty) if !keys.has_keys(entry.provider) => {
            keys.set(entry.provider, Arc::new(KeySet::default()));
            true
        }
        // Only sets that parsed are published; refuse anyway rather than trust that.
        Err(_) => false,
    }
}

/// Logs and counts the keys each provider's configured (`local_jwks`) key set skipped,
/// once per accepted configuration. (A set with no usable key fails the configuration.)
pub fn report_local_skips<H: Host>(host: &mut H, policy: &Policy) {
    for provider in &policy.providers {
        let KeySource::Local(set) = &provider.keys else {
            continue;
        };
        for skipped in &set.skipped {
            host.increment(Metric::JwksKeySkipped);
            host.log(
                LogLevel::Warn,
                &format!("meshgate: provider `{}`: skipped {skipped}", provider.name),
            );
        }
    }
}

/// Logs and counts each key a newly fetched document skips: once per document, in the
/// worker that fetched it.
fn report_skipped<H: Host>(entry: &Entry, host: &mut H, set: &KeySet) {
    if entry.loaded_fingerprint == Some(set.fingerprint) {
        return;
    }
    for skipped in &set.skipped {
        host.increment(Metric::JwksKeySkipped);
        host.log(
            LogLevel::Warn,
            &format!(
                "meshgate: provider `{}`: skipped {skipped}",
                entry.provider_name
            ),
        );
    }
}

/// The IdP answered with no keys. Not a failure (no backoff, `fetch_failed` untouched):
/// counted, logged once until keys arrive, and refreshed on the usual schedule. Keys
/// loaded before are kept; with none, the empty set is loaded, so tokens are refused as
/// `key_unknown` (which still triggers a refetch) rather than as an outage.
fn record_empty<H: Host>(entry: &mut Entry, host: &mut H, keys: &mut KeyStore, now: i64) {
    host.increment(Metric::JwksEmpty);
    let refresh_ms =
        i64::try_from(entry.remote.cache_duration_s.saturating_mul(1_000)).unwrap_or(i64::MAX);
    entry.consecutive_failures = 0;
    entry.next_due_ms = now.saturating_add(refresh_ms);
    if !keys.has_keys(entry.provider) {
        keys.set(entry.provider, Arc::new(KeySet::default()));
    }
    if !entry.empty_logged {
        entry.empty_logged = true;
        host.log(
            LogLevel::Info,
            &format!(
                "meshgate: provider `{}`: the key set at {} has no keys yet (Backstage \
                 publishes none before its first sign-in); asking again in {}s or on a \
                 token's unknown key id",
                entry.provider_name, entry.remote.uri, entry.remote.cache_duration_s
            ),
        );
    }
}

fn load<H: Host>(
    entry: &mut Entry,
    host: &mut H,
    keys: &mut KeyStore,
    set: KeySet,
    fetched_at: i64,
) {
    entry.loaded_fingerprint = Some(set.fingerprint);
    entry.empty_logged = false;
    host.log(
        LogLevel::Info,
        &format!(
            "meshgate: provider `{}`: loaded {} keys from {}",
            entry.provider_name,
            set.keys.len(),
            entry.remote.uri
        ),
    );
    keys.set(entry.provider, Arc::new(set));
    entry.consecutive_failures = 0;
    entry.loaded_fetched_at_ms = Some(fetched_at);
    let refresh_ms =
        i64::try_from(entry.remote.cache_duration_s.saturating_mul(1_000)).unwrap_or(i64::MAX);
    entry.next_due_ms = fetched_at.saturating_add(refresh_ms);
}

/// Publishes a fetched key set for the other workers.
fn publish<H: Host>(entry: &mut Entry, host: &mut H, now: i64, body: &[u8]) {
    let key = doc_key(&entry.remote);
    let mut value = Vec::with_capacity(body.len().saturating_add(8));
    value.extend_from_slice(&encode_millis(now));
    value.extend_from_slice(body);
    if let Err(e) = host.set_shared(&key, &value, None) {
        host.log(
            LogLevel::Warn,
            &format!("meshgate: could not share keys with other workers: {e}"),
        );
        return;
    }
    // Remember the version we wrote, so our own next sync doesn't parse it again.
    entry.loaded_version = host.get_shared(&key).ok().and_then(|(_, version)| version);
}

fn dispatch<H: Host>(entry: &mut Entry, host: &mut H, now: i64) -> Option<u32> {
    let callout = Callout {
        cluster: &entry.remote.cluster,
        authority: &entry.remote.authority,
        path: &entry.remote.path,
        timeout: Duration::from_millis(entry.remote.timeout_ms),
        headers: &[],
    };
    match host.dispatch_get(&callout) {
        Ok(token) => {
            entry.in_flight = Some(InFlight {
                token,
                deadline_ms: now.saturating_add(fetch_hold_ms(&entry.remote)),
                refetch_until: None,
            });
            Some(token)
        }
        Err(e) => {
            record_failure(entry, host, now, &e.to_string());
            None
        }
    }
}

fn record_failure<H: Host>(entry: &mut Entry, host: &mut H, now: i64, reason: &str) {
    entry.consecutive_failures = entry.consecutive_failures.saturating_add(1);
    let exponent = entry.consecutive_failures.saturating_sub(1).min(16);
    let backoff = FIRST_RETRY_MS
        .saturating_mul(1_i64 << exponent)
        .min(MAX_BACKOFF_MS);
    // Jitter (50-100% of the backoff) so workers and proxies don't retry in lockstep.
    let backoff = backoff / 2 + jitter(now, entry.provider, backoff / 2);
    entry.next_due_ms = now.saturating_add(backoff);
    host.increment(Metric::JwksFetchFailed);
    host.log(
        LogLevel::Warn,
        &format!(
            "meshgate: provider `{}`: JWKS fetch from {} failed ({reason}); keeping the current keys, retry in {}ms",
            entry.provider_name, entry.remote.uri, backoff
        ),
    );
}

/// A number in `0..=range` that differs between moments and providers. Not for secrets.
fn jitter(now: i64, provider: usize, range: i64) -> i64 {
    if range <= 0 {
        return 0;
    }
    let mixed = (now as u64 ^ (provider as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    i64::try_from((mixed >> 33) % (range as u64 + 1)).unwrap_or(0)
}

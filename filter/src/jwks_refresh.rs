//! Keeps remote JWKS fresh, off the request path: the root context asks what is due on
//! each tick, dispatches it, and hands responses back. A failed or garbage fetch never
//! replaces keys that work.

use std::sync::Arc;
use std::time::Duration;

use meshgate_core::config::Policy;
use meshgate_core::jwks::{KeyOrigin, KeySet};
use meshgate_core::provider::{KeySource, RemoteJwks};
use meshgate_core::KeyStore;

use crate::host::{Callout, Host, LogLevel, Metric};

/// Longest wait between retries after failures.
const MAX_BACKOFF_MS: i64 = 60_000;
const FIRST_RETRY_MS: i64 = 1_000;

#[derive(Debug)]
struct Entry {
    provider: usize,
    provider_name: String,
    remote: RemoteJwks,
    next_due_ms: i64,
    in_flight: Option<InFlight>,
    consecutive_failures: u32,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    token: u32,
    deadline_ms: i64,
}

#[derive(Debug, Default)]
pub struct JwksRefresh {
    entries: Vec<Entry>,
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
                }),
                KeySource::Local(_) => None,
            })
            .collect();
        JwksRefresh { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Dispatches every fetch that is due.
    pub fn tick<H: Host>(&mut self, host: &mut H) {
        let now = host.now_millis();
        for entry in &mut self.entries {
            if let Some(in_flight) = entry.in_flight {
                if now < in_flight.deadline_ms {
                    continue;
                }
                // The host never answered: count it and try again.
                entry.in_flight = None;
                record_failure(entry, host, now, "no response before the deadline");
            }
            if now < entry.next_due_ms {
                continue;
            }
            let timeout_ms = entry.remote.timeout_ms;
            let callout = Callout {
                cluster: &entry.remote.cluster,
                authority: &entry.remote.authority,
                path: &entry.remote.path,
                timeout: Duration::from_millis(timeout_ms),
            };
            match host.dispatch_get(&callout) {
                Ok(token) => {
                    entry.in_flight = Some(InFlight {
                        token,
                        deadline_ms: now
                            .saturating_add(i64::try_from(timeout_ms).unwrap_or(i64::MAX))
                            .saturating_add(1_000),
                    });
                }
                Err(e) => record_failure(entry, host, now, &e.to_string()),
            }
        }
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
        entry.in_flight = None;
        let parsed = match (status, body) {
            (Some(200), Some(body)) => {
                KeySet::parse(body, KeyOrigin::Remote).map_err(|e| e.to_string())
            }
            (Some(200), None) => Err(String::from("empty body")),
            (Some(status), _) => Err(format!("HTTP status {status}")),
            (None, _) => Err(String::from(
                "no response status (timeout or connection failure)",
            )),
        };
        match parsed {
            Ok(set) => {
                for skipped in &set.skipped {
                    host.log(
                        LogLevel::Warn,
                        &format!(
                            "meshgate: provider `{}`: skipped {skipped}",
                            entry.provider_name
                        ),
                    );
                }
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
                let refresh_ms = i64::try_from(entry.remote.cache_duration_s.saturating_mul(1_000))
                    .unwrap_or(i64::MAX);
                entry.next_due_ms = now.saturating_add(refresh_ms);
                host.increment(Metric::JwksFetchOk);
            }
            Err(reason) => record_failure(entry, host, now, &reason),
        }
        true
    }
}

fn record_failure<H: Host>(entry: &mut Entry, host: &mut H, now: i64, reason: &str) {
    entry.consecutive_failures = entry.consecutive_failures.saturating_add(1);
    let exponent = entry.consecutive_failures.saturating_sub(1).min(16);
    let backoff = FIRST_RETRY_MS
        .saturating_mul(1_i64 << exponent)
        .min(MAX_BACKOFF_MS);
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

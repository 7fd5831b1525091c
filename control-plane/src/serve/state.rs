//! What the HTTP side reads: the snapshot being served and the sync counters. The sync thread
//! swaps the snapshot (an `Arc`) under a mutex held only for the swap, so requests never wait
//! for a sync.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::err::SyncError;
use super::guard::GuardRefusal;
use super::http::etag_matches;
use super::long_poll::LongPoll;
use super::sync::{Published, SyncReport, SyncStatus};

/// The served snapshot and the sync counters, shared by the sync thread and the HTTP workers.
pub(crate) struct Shared {
    name: String,
    /// Names of the configured views, served next to `name`.
    views: Vec<String>,
    state: Mutex<State>,
    /// Signalled when a snapshot first becomes available.
    ready: Condvar,
    /// Counts the snapshots published; held polls wait for it to move.
    published: tokio::sync::watch::Sender<u64>,
}

/// Counters and gauges; see `metrics.rs` for their exported names.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct State {
    pub current: Option<Arc<Published>>,
    pub successes: u64,
    /// Failures by reason; every reason is present from the start.
    pub failures: BTreeMap<&'static str, u64>,
    /// Refused catalog reads by guard; every guard is present from the start.
    pub guard_refusals: BTreeMap<&'static str, u64>,
    /// Unix seconds of the last successful sync.
    pub last_success_unix: Option<f64>,
    pub last_duration: Duration,
    /// The last sync failed and an older snapshot is served.
    pub stale: bool,
    /// Catalog warnings of the last successful sync.
    pub warnings: usize,
}

impl Shared {
    pub(crate) fn new(name: &str) -> Shared {
        Shared {
            name: name.to_owned(),
            views: Vec::new(),
            state: Mutex::new(State {
                failures: SyncError::REASONS
                    .iter()
                    .map(|reason| (*reason, 0))
                    .collect(),
                guard_refusals: GuardRefusal::GUARDS
                    .iter()
                    .map(|guard| (*guard, 0))
                    .collect(),
                ..State::default()
            }),
            ready: Condvar::new(),
            published: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Also serves these views.
    pub(crate) fn with_views(mut self, views: impl IntoIterator<Item = String>) -> Shared {
        self.views = views.into_iter().collect();
        self
    }

    /// The snapshot name served.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether `name` is the whole snapshot or a configured view.
    pub(crate) fn serves(&self, name: &str) -> bool {
        name == self.name || self.views.iter().any(|view| view == name)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is plain data, consistent after every assignment; a panic elsewhere
        // cannot leave it half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The snapshot served now, if any.
    pub(crate) fn current(&self) -> Option<Arc<Published>> {
        self.lock().current.clone()
    }

    /// A copy of the counters and the served snapshot, for `/metrics`.
    pub(crate) fn state(&self) -> State {
        self.lock().clone()
    }

    /// Takes in the result of one sync and the syncer's last good snapshot.
    pub(crate) fn record(&self, report: &SyncReport, current: Option<Arc<Published>>) {
        let mut state = self.lock();
        state.last_duration = Duration::from_millis(report.duration_ms);
        match report.status {
            SyncStatus::Updated | SyncStatus::Unchanged => {
                state.successes = state.successes.saturating_add(1);
                state.last_success_unix = Some(unix_now());
                state.stale = false;
                state.warnings = report.warnings;
            }
            SyncStatus::Failed => {
                let reason = report.reason.unwrap_or("snapshot");
                let count = state.failures.entry(reason).or_insert(0);
                *count = count.saturating_add(1);
                if let Some(guard) = report.guard {
                    let count = state.guard_refusals.entry(guard).or_insert(0);
                    *count = count.saturating_add(1);
                }
                state.stale = report.serving_stale;
            }
        }
        let first = state.current.is_none() && current.is_some();
        let moved = match (&state.current, &current) {
            (Some(old), Some(new)) => !Arc::ptr_eq(old, new),
            (old, new) => old.is_some() != new.is_some(),
        };
        state.current = current;
        drop(state);
        if first {
            self.ready.notify_all();
        }
        if moved {
            // Wakes every held poll; each looks at its own snapshot or view again.
            self.published
                .send_modify(|count| *count = count.wrapping_add(1));
        }
    }

    /// The entity tag of snapshot or view `name` now.
    fn etag_of(&self, name: &str) -> Option<String> {
        let state = self.lock();
        let whole = state.current.as_ref()?;
        if name == self.name {
            Some(whole.etag.clone())
        } else {
            whole.views.get(name).map(|view| view.etag.clone())
        }
    }

    /// Holds `poll` while the client's entity tag is still the current one of its snapshot,
    /// at most its wait. Returns at once when there is no snapshot yet or the tag differs.
    pub(crate) async fn hold(&self, poll: &LongPoll) {
        // Subscribed before looking, so a publish between the look and the wait still wakes.
        let mut published = self.published.subscribe();
        let deadline = tokio::time::Instant::now() + poll.wait;
        loop {
            let current = self.etag_of(&poll.name);
            if !current.is_some_and(|etag| etag_matches(&poll.if_none_match, &etag)) {
                return;
            }
            match tokio::time::timeout_at(deadline, published.changed()).await {
                Ok(Ok(())) => {}
                // The wait is over, or the server is going away: answer with what there is.
                Ok(Err(_)) | Err(_) => return,
            }
        }
    }

    /// Waits until a snapshot is available, at most `timeout`; true when one is.
    pub(crate) fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.current.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .ready
                .wait_timeout(state, left)
                .map(|(state, _)| state)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        true
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;
    use super::super::metrics::render;
    use super::*;

    /// `name{labels} value` lines of the exposition, without comments.
    fn samples(state: &State) -> Vec<String> {
        render("default", state)
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    fn sample(state: &State, name: &str) -> String {
        let lines = samples(state);
        let line = lines
            .iter()
            .find(|line| line.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in {lines:#?}"));
        line.rsplit(' ').next().unwrap().to_owned()
    }

    #[test]
    fn stale_flag_and_metrics_follow_the_syncs() {
        let fixture = Fixture::new("state-metrics");
        let shared = Shared::new("default");
        let mut syncer = fixture.syncer();
        let mut sync = || {
            let report = syncer.run();
            shared.record(&report, syncer.current().cloned());
            report
        };

        // A failure before any success: nothing served, so not stale.
        std::fs::write(&fixture.rules, "{}").unwrap();
        sync();
        let state = shared.state();
        assert!(!state.stale && state.current.is_none());
        assert_eq!(
            sample(&state, "meshgate_cp_sync_failures_total{reason=\"rules\"}"),
            "1"
        );
        assert_eq!(
            sample(&state, "meshgate_cp_snapshot_version{snapshot=\"default\"}"),
            "0"
        );
        assert_eq!(
            sample(&state, "meshgate_cp_last_sync_success_timestamp_seconds"),
            "0.000"
        );
        assert!(!shared.wait_ready(Duration::from_millis(1)));

        std::fs::write(&fixture.rules, "[]").unwrap();
        let good = sync();
        assert!(shared.wait_ready(Duration::ZERO));
        let state = shared.state();
        let version = good.version.unwrap().to_string();
        for (name, value) in [
            ("meshgate_cp_sync_successes_total", "1"),
            ("meshgate_cp_serving_stale", "0"),
            (
                "meshgate_cp_snapshot_version{snapshot=\"default\"}",
                version.as_str(),
            ),
            ("meshgate_cp_snapshot_users{snapshot=\"default\"}", "2"),
            ("meshgate_cp_snapshot_groups{snapshot=\"default\"}", "2"),
            ("meshgate_cp_snapshot_owned{snapshot=\"default\"}", "1"),
            ("meshgate_cp_catalog_warnings", "0"),
        ] {
            assert_eq!(sample(&state, name), value, "{name}");
        }
        let bytes = state.current.as_ref().unwrap().bytes.len().to_string();
        assert_eq!(
            sample(&state, "meshgate_cp_snapshot_bytes{snapshot=\"default\"}"),
            bytes
        );
        let last: f64 = sample(&state, "meshgate_cp_last_sync_success_timestamp_seconds")
            .parse()
            .unwrap();
        assert!(last > 1.7e9, "{last}");

        // The catalog breaks: the old snapshot is served, stale.
        std::fs::write(fixture.catalog.join("org.yaml"), "kind: [").unwrap();
        sync();
        sync();
        let state = shared.state();
        assert!(state.stale);
        assert_eq!(sample(&state, "meshgate_cp_serving_stale"), "1");
        assert_eq!(
            sample(
                &state,
                "meshgate_cp_sync_failures_total{reason=\"catalog\"}"
            ),
            "2"
        );
        assert_eq!(
            sample(&state, "meshgate_cp_sync_failures_total{reason=\"token\"}"),
            "0"
        );
        assert_eq!(
            sample(&state, "meshgate_cp_snapshot_version{snapshot=\"default\"}"),
            version
        );

        // Repaired: fresh again, same version.
        fixture.write_org(super::super::fixture::ORG);
        sync();
        let state = shared.state();
        assert_eq!(sample(&state, "meshgate_cp_serving_stale"), "0");
        assert_eq!(sample(&state, "meshgate_cp_sync_successes_total"), "2");
        assert_eq!(
            sample(&state, "meshgate_cp_snapshot_version{snapshot=\"default\"}"),
            version
        );
    }

    #[test]
    fn every_metric_has_help_and_type() {
        let text = render("edge", &Shared::new("edge").state());
        let names: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .map(|line| line.split(' ').next().unwrap())
            .collect();
        assert_eq!(names.len(), 12);
        for name in names {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text
                .lines()
                .any(|line| line.starts_with(name) && !line.starts_with('#')));
        }
        assert!(text.contains("meshgate_cp_snapshot_version{snapshot=\"edge\"} 0\n"));
    }
}

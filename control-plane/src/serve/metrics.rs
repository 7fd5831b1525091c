//! `GET /metrics`: the sync counters and snapshot gauges in Prometheus' text format (0.0.4).
//!
//! | Metric | Type | Meaning |
//! |---|---|---|
//! | `meshgate_cp_sync_successes_total` | counter | syncs that produced or confirmed a snapshot |
//! | `meshgate_cp_sync_failures_total{reason}` | counter | failed syncs by `reason`: `catalog`, `token`, `rules`, `guard`, `snapshot` |
//! | `meshgate_cp_guard_refusals_total{guard}` | counter | catalog reads refused by `guard`: `empty`, `shrink`, `dangling` (after retries) |
//! | `meshgate_cp_last_sync_success_timestamp_seconds` | gauge | unix time of the last successful sync (0: none yet) |
//! | `meshgate_cp_last_sync_duration_seconds` | gauge | how long the last sync took, successful or not |
//! | `meshgate_cp_serving_stale` | gauge | 1 when the last sync failed and the last good snapshot is served |
//! | `meshgate_cp_catalog_warnings` | gauge | catalog warnings in the last successful sync |
//! | `meshgate_cp_snapshot_version{snapshot}` | gauge | version served (0: none yet) |
//! | `meshgate_cp_snapshot_users{snapshot}` | gauge | users in the served snapshot |
//! | `meshgate_cp_snapshot_groups{snapshot}` | gauge | groups in the served snapshot |
//! | `meshgate_cp_snapshot_owned{snapshot}` | gauge | owned resources in the served snapshot |
//! | `meshgate_cp_snapshot_bytes{snapshot}` | gauge | size of the served snapshot file |

use std::fmt::Write as _;

use super::state::State;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric; `name` is the snapshot name label.
pub(crate) fn render(name: &str, state: &State) -> String {
    let mut out = String::new();
    let mut metric = |metric: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{metric}{labels} {value}");
        }
    };
    let plain = |value: String| vec![(String::new(), value)];
    let labelled = |value: String| vec![(format!("{{snapshot=\"{name}\"}}"), value)];
    let current = state.current.as_deref();
    let count =
        |get: fn(&super::sync::Published) -> usize| labelled(current.map_or(0, get).to_string());

    metric(
        "meshgate_cp_sync_successes_total",
        "counter",
        "Syncs that produced or confirmed a snapshot.",
        &plain(state.successes.to_string()),
    );
    let failures: Vec<(String, String)> = state
        .failures
        .iter()
        .map(|(reason, count)| (format!("{{reason=\"{reason}\"}}"), count.to_string()))
        .collect();
    metric(
        "meshgate_cp_sync_failures_total",
        "counter",
        "Failed syncs by reason; the last good snapshot stays served.",
        &failures,
    );
    let refusals: Vec<(String, String)> = state
        .guard_refusals
        .iter()
        .map(|(guard, count)| (format!("{{guard=\"{guard}\"}}"), count.to_string()))
        .collect();
    metric(
        "meshgate_cp_guard_refusals_total",
        "counter",
        "Catalog reads not published because a guard refused them (after retries).",
        &refusals,
    );
    metric(
        "meshgate_cp_last_sync_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful sync, 0 before the first.",
        &plain(format!("{:.3}", state.last_success_unix.unwrap_or(0.0))),
    );
    metric(
        "meshgate_cp_last_sync_duration_seconds",
        "gauge",
        "Duration of the last sync, successful or not.",
        &plain(format!("{:.3}", state.last_duration.as_secs_f64())),
    );
    metric(
        "meshgate_cp_serving_stale",
        "gauge",
        "1 when the last sync failed and the last good snapshot is served.",
        &plain(u8::from(state.stale).to_string()),
    );
    metric(
        "meshgate_cp_catalog_warnings",
        "gauge",
        "Catalog warnings in the last successful sync.",
        &plain(state.warnings.to_string()),
    );
    metric(
        "meshgate_cp_snapshot_version",
        "gauge",
        "Version of the snapshot served, 0 when none is available yet.",
        &labelled(current.map_or(0, |c| c.version).to_string()),
    );
    metric(
        "meshgate_cp_snapshot_users",
        "gauge",
        "Users in the snapshot served.",
        &count(|c| c.users),
    );
    metric(
        "meshgate_cp_snapshot_groups",
        "gauge",
        "Groups in the snapshot served.",
        &count(|c| c.groups),
    );
    metric(
        "meshgate_cp_snapshot_owned",
        "gauge",
        "Owned resources in the snapshot served.",
        &count(|c| c.owned),
    );
    metric(
        "meshgate_cp_snapshot_bytes",
        "gauge",
        "Size of the snapshot file served, in bytes.",
        &count(|c| c.bytes.len()),
    );
    out
}

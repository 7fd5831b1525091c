//! The figures of one run, the table printed at the end, and the JSON written to `--out`.
//! A figure the run did not reach stays `null` and its row says so.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// "Memory flat over the reloads": Envoy's RSS after the last reload may exceed its RSS after
/// the first load by at most this much.
pub const FLAT_TOLERANCE_MIB: f64 = 16.0;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub command: String,
    /// What Envoy polled: `default` (the whole catalog) or `five` (a five-group view).
    pub snapshot: String,
    pub catalog: CatalogFigures,
    /// Process start to `/readyz` answering 200.
    pub cp_first_sync_ms: Option<u64>,
    pub cp_rss_after_first_sync_mib: Option<f64>,
    /// VmHWM at the end of the run (or where it stopped).
    pub cp_peak_rss_mib: Option<f64>,
    /// `duration_ms` of `POST /v1/sync` answers with status `unchanged`.
    pub unchanged_resync_ms: Vec<u64>,
    /// `duration_ms` of a `POST /v1/sync` that found a one-file change.
    pub full_rebuild_ms: Option<u64>,
    pub snapshot_bytes: Option<u64>,
    pub correctness: Option<Correctness>,
    /// First snapshot: control plane ready → Envoy serving its version (the correctness
    /// check runs in between, so this is an upper bound).
    pub first_load_ms: Option<u64>,
    pub envoy_rss_baseline_mib: Option<f64>,
    pub envoy_rss_first_load_mib: Option<f64>,
    /// (reloads done, Envoy RSS in MiB), every 10 reloads and at the last.
    pub envoy_rss_curve: Vec<(usize, f64)>,
    pub reloads_done: usize,
    /// Catalog change → every probe request denied, per change.
    pub change_to_denied_ms: Vec<u64>,
    /// A request allowed after a probe in which every request was denied.
    pub flip_flops: u64,
    /// Users the edge did not allow before their change although the catalog does.
    pub edge_precheck_failures: Vec<String>,
    /// Statuses other than 200 and 403 seen while probing, by status.
    pub unexpected_statuses: BTreeMap<u16, u64>,
    /// Bytes from the control plane to Envoy between a change and its enforcement.
    pub bytes_per_change: Vec<u64>,
    /// Why the run stopped before measuring everything; `None` when it measured everything.
    pub stopped_early: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CatalogFigures {
    pub users: usize,
    pub groups: usize,
    pub entities: usize,
    pub nesting: String,
    pub depth: usize,
    pub files: usize,
    pub yaml_bytes: u64,
    pub seed: u64,
    pub huge_group_members: usize,
    pub generate_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Correctness {
    pub users_checked: usize,
    pub owned_checked: usize,
    pub mismatches: BTreeMap<String, usize>,
    pub samples: Vec<String>,
}

impl Correctness {
    pub fn total(&self) -> usize {
        self.mismatches.values().sum()
    }
}

/// The `q` quantile (0..=1) of `values` by nearest rank; `None` when empty.
pub fn quantile(values: &[u64], q: f64) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len().saturating_sub(1)))
        .copied()
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct Row {
    figure: &'static str,
    measured: String,
    target: &'static str,
    met: Option<bool>,
}

impl Figures {
    fn rows(&self) -> Vec<Row> {
        let row = |figure, measured: Option<String>, target, met: Option<bool>| Row {
            figure,
            measured: measured.unwrap_or_else(|| "not reached".to_owned()),
            target,
            met,
        };
        let median_resync = quantile(&self.unchanged_resync_ms, 0.5);
        let p95 = quantile(&self.change_to_denied_ms, 0.95);
        let over_baseline = self
            .envoy_rss_first_load_mib
            .zip(self.envoy_rss_baseline_mib)
            .map(|(loaded, baseline)| loaded - baseline);
        let max_bytes = self.bytes_per_change.iter().max().copied();
        let growth = self
            .envoy_rss_curve
            .last()
            .zip(self.envoy_rss_first_load_mib)
            .map(|((_, last), first)| last - first);
        let mismatches = self.correctness.as_ref().map(Correctness::total);
        // After the first reloads the high-water mark is reached; what matters is no further
        // growth.
        let plateau = self
            .envoy_rss_curve
            .first()
            .zip(self.envoy_rss_curve.last())
            .filter(|(first, last)| last.0 > first.0)
            .map(|(first, last)| (first.0, last.1 - first.1));
        let view = self.snapshot == "five";
        let (whole_org, five_groups) = if view {
            (None, over_baseline)
        } else {
            (over_baseline, None)
        };
        vec![
            row(
                "snapshot correct for every user and owned entity",
                mismatches.map(|n| format!("{n} mismatches")),
                "0",
                mismatches.map(|n| n == 0),
            ),
            row(
                "control-plane peak RSS",
                self.cp_peak_rss_mib.map(|m| format!("{m:.0} MiB")),
                "<= 512 MiB",
                self.cp_peak_rss_mib.map(|m| m <= 512.0),
            ),
            row(
                "first sync (start to ready)",
                self.cp_first_sync_ms.map(|ms| format!("{ms} ms")),
                "-",
                None,
            ),
            row(
                "unchanged resync (median)",
                median_resync.map(|ms| format!("{ms} ms")),
                "<= 1000 ms",
                median_resync.map(|ms| ms <= 1000),
            ),
            row(
                "full rebuild after a one-file change",
                self.full_rebuild_ms.map(|ms| format!("{ms} ms")),
                "<= 5000 ms",
                self.full_rebuild_ms.map(|ms| ms <= 5000),
            ),
            row(
                "snapshot size",
                self.snapshot_bytes
                    .map(|b| format!("{b} B ({:.1} MiB)", b as f64 / 1_048_576.0)),
                "-",
                None,
            ),
            row(
                "catalog change -> denied on every worker, p95",
                p95.map(|ms| {
                    format!(
                        "{ms} ms (p50 {} ms, max {} ms, n={}, flip-flops {})",
                        quantile(&self.change_to_denied_ms, 0.5).unwrap_or(0),
                        self.change_to_denied_ms.iter().max().copied().unwrap_or(0),
                        self.change_to_denied_ms.len(),
                        self.flip_flops
                    )
                }),
                "<= 2000 ms",
                p95.map(|ms| ms <= 2000 && self.flip_flops == 0),
            ),
            row(
                "Envoy RSS over no-snapshot baseline, whole org",
                whole_org
                    .map(|m| format!("{m:.1} MiB"))
                    .or_else(|| view.then(|| "run without --snapshot five".to_owned())),
                "<= 64 MiB",
                whole_org.map(|m| m <= 64.0),
            ),
            row(
                "Envoy RSS over baseline, view naming 5 groups",
                five_groups
                    .map(|m| format!("{m:.1} MiB"))
                    .or_else(|| Some("run with --snapshot five".to_owned())),
                "<= 8 MiB",
                five_groups.map(|m| m <= 8.0),
            ),
            row(
                "bytes to the sidecar per one-user change (max)",
                max_bytes.map(|b| format!("{b} B")),
                "<= 4096 B",
                max_bytes.map(|b| b <= 4096),
            ),
            row(
                "Envoy RSS growth over the reloads",
                growth.map(|g| format!("{g:+.1} MiB after {} reloads", self.reloads_done)),
                "flat (<= +16 MiB)",
                growth.map(|g| g <= FLAT_TOLERANCE_MIB),
            ),
            row(
                "Envoy RSS growth after the first reloads",
                plateau.map(|(from, g)| {
                    format!("{g:+.1} MiB from reload {from} to {}", self.reloads_done)
                }),
                "flat (<= +16 MiB)",
                plateau.map(|(_, g)| g <= FLAT_TOLERANCE_MIB),
            ),
        ]
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::from("| figure | measured | target | met? |\n|---|---|---|---|\n");
        for row in self.rows() {
            let met = match row.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            };
            out.push_str(&format!(
                "| {} | {} | {} | {met} |\n",
                row.figure, row.measured, row.target
            ));
        }
        if !self.envoy_rss_curve.is_empty() {
            let curve: Vec<String> = self
                .envoy_rss_curve
                .iter()
                .map(|(n, m)| format!("{n}:{m:.0}"))
                .collect();
            out.push_str(&format!(
                "Envoy RSS (MiB) by reloads: {}\n",
                curve.join(" ")
            ));
        }
        if let Some(why) = &self.stopped_early {
            out.push_str(&format!("stopped early: {why}\n"));
        }
        out
    }

    pub fn write_json(&self, path: &Path) -> Result<(), std::io::Error> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let cases: &[(&[u64], f64, Option<u64>)] = &[
            (&[], 0.95, None),
            (&[7], 0.95, Some(7)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.95, Some(10)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5, Some(5)),
            (&[10, 1, 5], 0.5, Some(5)),
            (&[3, 3, 3], 0.0, Some(3)),
        ];
        for (values, q, expected) in cases {
            assert_eq!(quantile(values, *q), *expected, "{values:?} {q}");
        }
    }

    #[test]
    fn rows_say_what_was_not_reached() {
        let mut figures = Figures::default();
        let table = figures.table();
        assert!(table.contains("| control-plane peak RSS | not reached | <= 512 MiB | - |"));
        figures.cp_peak_rss_mib = Some(6758.0);
        figures.change_to_denied_ms = vec![900, 1200];
        figures.flip_flops = 1;
        let table = figures.table();
        assert!(table.contains("| control-plane peak RSS | 6758 MiB | <= 512 MiB | NO |"));
        // A flip-flop fails the latency target even when the times are within it.
        assert!(
            table.contains("flip-flops 1) | <= 2000 ms | NO |"),
            "{table}"
        );
    }
}

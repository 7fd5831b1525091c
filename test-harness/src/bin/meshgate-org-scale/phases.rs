//! The measurements, in the order a run takes them. Each phase records its figures as it goes,
//! so a run stopped by its deadline or memory limit still reports what it measured.

use std::path::Path;
use std::time::{Duration, Instant};

use meshgate_control_plane::snapshot::load_signing_key;
use meshgate_core::snapshot::{DecodeLimits, Snapshot};
use meshgate_test_harness::envoy::repo_root;
use meshgate_test_harness::orggen::{
    check_snapshot, CatalogFile, Org, Reference, GROUP_RULE_GROUPS,
};
use meshgate_test_harness::stack::DEMO_CP_KEY;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::report::{Correctness, Figures};
use crate::session::{Session, Stop};

/// Envoy settles (keys fetched, workers up) before its baseline is read.
const SETTLE: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(100);
/// Longest wait for one catalog change to reach the edge.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(180);
/// After the first probe in which every request is denied, probing goes on this long; an
/// allowed request in that window is a flip-flop and restarts the clock.
const CONFIRM: Duration = Duration::from_secs(2);
/// Unchanged resyncs timed.
const RESYNCS: usize = 3;
/// Attempts at catching a one-file change in a `POST /v1/sync` (a background resync may
/// pick the change up first).
const REBUILD_ATTEMPTS: usize = 3;
/// Candidates tried per change before giving up on finding one the edge allows.
const CANDIDATE_ATTEMPTS: usize = 3;

pub struct Phases<'a> {
    pub session: &'a mut Session,
    pub org: &'a mut Org,
    pub reference: &'a Reference,
    pub catalog: &'a Path,
    pub figures: &'a mut Figures,
    pub rng: StdRng,
    pub concurrency: u32,
    /// When the control plane first answered ready: the first load is timed from there.
    pub ready_at: Option<Instant>,
}

impl Phases<'_> {
    /// Every phase in order.
    pub fn run(&mut self, changes: usize, reloads: usize) -> Result<(), Stop> {
        self.baseline()?;
        self.first_sync()?;
        self.correctness()?;
        self.first_load()?;
        self.resyncs()?;
        self.rebuild()?;
        self.changes(changes)?;
        self.reloads(reloads)
    }

    fn baseline(&mut self) -> Result<(), Stop> {
        std::thread::sleep(SETTLE);
        self.figures.envoy_rss_baseline_mib = self.session.envoy_rss_mib();
        Ok(())
    }

    fn first_sync(&mut self) -> Result<(), Stop> {
        let started = Instant::now();
        // The five deepest groups: a team-sized view.
        let groups = self.org.group_count();
        let view_groups: Vec<String> = (groups.saturating_sub(5)..groups)
            .filter_map(|index| self.org.group_ref(index))
            .collect();
        self.session
            .start_control_plane(self.catalog, &view_groups)?;
        let timeout = self.session.time_left();
        let ready = self
            .session
            .wait_for("the first sync", timeout, POLL, |s| {
                s.cp_ready().then_some(())
            })?;
        if ready.is_none() {
            return Err(Stop::Failed("the control plane never became ready".into()));
        }
        self.ready_at = Some(Instant::now());
        self.figures.cp_first_sync_ms = Some(millis(started.elapsed()));
        self.figures.cp_rss_after_first_sync_mib = self.session.cp_mib("VmRSS");
        self.figures.cp_peak_rss_mib = self.session.cp_mib("VmHWM");
        Ok(())
    }

    fn correctness(&mut self) -> Result<(), Stop> {
        self.session.guard("the correctness check")?;
        let (bytes, _) = self.session.fetch_snapshot()?;
        self.figures.snapshot_bytes = Some(bytes.len() as u64);
        let key = load_signing_key(repo_root().join(DEMO_CP_KEY))
            .map_err(|e| Stop::failed("demo signing key", e))?;
        let limits = DecodeLimits {
            max_bytes: usize::MAX,
            max_text_bytes: usize::MAX,
            ..DecodeLimits::default()
        };
        let snapshot = Snapshot::decode(&bytes, &[key.trusted_key()], &limits)
            .map_err(|e| Stop::failed("decode the served snapshot", e))?;
        let report = check_snapshot(&snapshot, self.org, self.reference);
        self.figures.correctness = Some(Correctness {
            users_checked: report.users_checked,
            owned_checked: report.owned_checked,
            mismatches: report
                .mismatches
                .iter()
                .map(|(kind, n)| ((*kind).to_owned(), *n))
                .collect(),
            samples: report.samples.iter().map(ToString::to_string).collect(),
        });
        Ok(())
    }

    fn first_load(&mut self) -> Result<(), Stop> {
        let started = self.ready_at.unwrap_or_else(Instant::now);
        let workers = u64::from(self.concurrency);
        let timeout = CHANGE_TIMEOUT.min(self.session.time_left());
        // Workers take a snapshot when they serve requests (a VM that serves none keeps no
        // copy), so traffic flows while the first load is awaited.
        let token = self.session.token("first-load", "nobody@example.com")?;
        let loaded = self
            .session
            .wait_for("the first load", timeout, POLL, |s| {
                s.probe(&token, 2);
                (s.envoy_loaded() >= workers && s.envoy_version().is_some_and(|v| v > 0))
                    .then_some(())
            })?;
        if loaded.is_none() {
            return Err(Stop::Failed(format!(
                "Envoy did not load the first snapshot in {timeout:?}; log tail:\n{}",
                tail(&self.session.envoy.log())
            )));
        }
        self.figures.first_load_ms = Some(millis(started.elapsed()));
        std::thread::sleep(SETTLE);
        self.figures.envoy_rss_first_load_mib = self.session.envoy_rss_mib();
        Ok(())
    }

    fn resyncs(&mut self) -> Result<(), Stop> {
        for _ in 0..RESYNCS {
            self.session.guard("unchanged resyncs")?;
            let answer = self.session.post_sync()?;
            if answer.status == "unchanged" {
                self.figures.unchanged_resync_ms.push(answer.duration_ms);
            }
        }
        Ok(())
    }

    fn rebuild(&mut self) -> Result<(), Stop> {
        for _ in 0..REBUILD_ATTEMPTS {
            self.session.guard("the full rebuild")?;
            let (user, group) = self.outsider()?;
            let files = self
                .org
                .move_in(user, group)
                .map_err(|e| Stop::failed("change the catalog", e))?;
            self.write(&files)?;
            let answer = self.session.post_sync()?;
            if answer.status == "updated" {
                self.figures.full_rebuild_ms = Some(answer.duration_ms);
                return self.wait_for_version(answer.version, "the full rebuild");
            }
        }
        Ok(())
    }

    /// A user and a regular group they are not in.
    fn outsider(&mut self) -> Result<(usize, usize), Stop> {
        let users = self.org.user_count();
        let groups = self.org.group_count().saturating_sub(3).max(1);
        for _ in 0..100 {
            let (user, group) = (self.rng.gen_range(0..users), self.rng.gen_range(0..groups));
            if !self.org.direct_groups(user).contains(&group) {
                return Ok((user, group));
            }
        }
        Err(Stop::Failed("no user outside a group found".into()))
    }

    fn write(&mut self, files: &[CatalogFile]) -> Result<(), Stop> {
        self.org
            .rewrite_files(self.catalog, files)
            .map_err(|e| Stop::failed("rewrite catalog files", e))
    }

    /// Waits until Envoy enforces `version` (or anything newer).
    fn wait_for_version(&mut self, version: Option<u64>, phase: &'static str) -> Result<(), Stop> {
        let Some(version) = version else {
            return Ok(());
        };
        let timeout = CHANGE_TIMEOUT.min(self.session.time_left());
        self.session.wait_for(phase, timeout, POLL, |s| {
            s.envoy_version()
                .is_some_and(|v| v >= version)
                .then_some(())
        })?;
        Ok(())
    }

    /// Users the rule allows per the reference, in random order.
    fn candidates(&mut self) -> Vec<usize> {
        let users = self.org.user_count();
        let mut found = Vec::new();
        for _ in 0..users.min(20_000) {
            let user = self.rng.gen_range(0..users);
            let allowed = GROUP_RULE_GROUPS
                .iter()
                .any(|group| self.reference.user_in(self.org, user, group));
            if allowed && !found.contains(&user) {
                found.push(user);
                if found.len() >= 200 {
                    break;
                }
            }
        }
        found
    }

    fn changes(&mut self, changes: usize) -> Result<(), Stop> {
        let mut candidates = self.candidates().into_iter();
        let probes = 3 * self.concurrency as usize;
        for _ in 0..changes {
            let mut measured = false;
            for _ in 0..CANDIDATE_ATTEMPTS {
                let Some(user) = candidates.next() else {
                    return Err(Stop::Failed(
                        "ran out of users the group rule allows".into(),
                    ));
                };
                if self.change_one(user, probes)? {
                    measured = true;
                    break;
                }
            }
            if !measured {
                return Err(Stop::Failed(
                    "the edge denied every candidate before its change".into(),
                ));
            }
        }
        Ok(())
    }

    /// Takes `user` out of the groups that let the rule allow them and times the edge
    /// denying them on every probe; false when the edge did not allow them to begin with.
    fn change_one(&mut self, user: usize, probes: usize) -> Result<bool, Stop> {
        let (Some(user_ref), Some(email)) = (
            self.org.user_ref(user),
            self.org.user_email(user).map(str::to_owned),
        ) else {
            return Ok(false);
        };
        let token = self.session.token(&user_ref, &email)?;
        let allowed = self
            .session
            .wait_for("a change", Duration::from_secs(10), POLL, |s| {
                s.probe(&token, probes)
                    .iter()
                    .all(|status| *status == 200)
                    .then_some(())
            })?;
        if allowed.is_none() {
            self.figures.edge_precheck_failures.push(user_ref);
            return Ok(false);
        }
        let granting = self
            .org
            .memberships_granting(self.reference, user, &GROUP_RULE_GROUPS);
        let mut files = Vec::new();
        for group in granting {
            files.extend(
                self.org
                    .move_out(user, group)
                    .map_err(|e| Stop::failed("change the catalog", e))?,
            );
        }
        files.sort();
        files.dedup();
        let bytes_before = self.session.proxy.counts().to_client;
        self.write(&files)?;
        let changed = Instant::now();
        let mut enforced: Option<(Duration, Instant)> = None;
        loop {
            self.session.guard("a change")?;
            if changed.elapsed() > CHANGE_TIMEOUT {
                return Err(Stop::Failed(format!(
                    "`{user_ref}` still allowed {CHANGE_TIMEOUT:?} after the catalog change"
                )));
            }
            let statuses = self.session.probe(&token, probes);
            for status in statuses.iter().filter(|s| !matches!(**s, 200 | 403)) {
                *self.figures.unexpected_statuses.entry(*status).or_default() += 1;
            }
            let all_denied = statuses.iter().all(|s| *s == 403);
            let any_allowed = statuses.contains(&200);
            match enforced {
                None if all_denied => enforced = Some((changed.elapsed(), Instant::now())),
                Some(_) if any_allowed => {
                    self.figures.flip_flops += 1;
                    enforced = None;
                }
                Some((took, since)) if since.elapsed() >= CONFIRM => {
                    self.figures.change_to_denied_ms.push(millis(took));
                    let after = self.session.proxy.counts().to_client;
                    self.figures
                        .bytes_per_change
                        .push(after.saturating_sub(bytes_before));
                    return Ok(true);
                }
                _ => {}
            }
            std::thread::sleep(POLL);
        }
    }

    fn reloads(&mut self, reloads: usize) -> Result<(), Stop> {
        let (user, group) = self.outsider()?;
        for done in 1..=reloads {
            self.session.guard("the reloads")?;
            let before = self.session.envoy_version().unwrap_or(0);
            let files = if done % 2 == 1 {
                self.org.move_in(user, group)
            } else {
                self.org.move_out(user, group)
            }
            .map_err(|e| Stop::failed("change the catalog", e))?;
            self.write(&files)?;
            let timeout = CHANGE_TIMEOUT.min(self.session.time_left());
            let moved = self.session.wait_for("the reloads", timeout, POLL, |s| {
                s.envoy_version().is_some_and(|v| v > before).then_some(())
            })?;
            if moved.is_none() {
                return Err(Stop::Failed(format!(
                    "reload {done}: Envoy's snapshot version did not move in {timeout:?}"
                )));
            }
            self.figures.reloads_done = done;
            if done % 10 == 0 || done == reloads {
                // Let the other workers load from shared data (500 ms tick) before reading.
                std::thread::sleep(Duration::from_secs(1));
                if let Some(rss) = self.session.envoy_rss_mib() {
                    self.figures.envoy_rss_curve.push((done, rss));
                }
            }
        }
        Ok(())
    }
}

/// A seeded generator for the run's choices, separate from the catalog's.
pub fn choices(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ 0x5eed_0fc0_ffee)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines
        .get(lines.len().saturating_sub(30)..)
        .unwrap_or_default()
        .join("\n")
}

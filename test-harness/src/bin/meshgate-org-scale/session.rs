//! The processes of one run and how to talk to them: the mock issuer and tool stub (in
//! process), the release `meshgate serve` (a child process), a byte-counting proxy between it
//! and Envoy, and a real Envoy loading `dist/meshgate.wasm`. Everything is on loopback and is
//! stopped when the session is dropped, also when a phase fails.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use meshgate_control_plane::issuer::MintRequest;
use meshgate_test_harness::envoy::{repo_root, Envoy, EnvoyOptions};
use meshgate_test_harness::http_client;
use meshgate_test_harness::issuer_server::IssuerServer;
use meshgate_test_harness::ports::free_port;
use meshgate_test_harness::scale_probe::{process_kib, ByteCountingProxy, SupervisedProcess};
use meshgate_test_harness::stack::{
    demo_yaml, DEMO_AUDIENCE, DEMO_BACKSTAGE_PORT, DEMO_CONTROL_PLANE_PORT, DEMO_CP_KEY,
};
use meshgate_test_harness::upstream::UpstreamServer;
use meshgate_test_support::unix_now;

use crate::report::mib;

/// The filter's snapshot gauges and counters in Envoy's `/stats`.
pub const VERSION_STAT: &str = "wasmcustom.meshgate.snapshot.version";
pub const LOADED_STAT: &str = "wasmcustom.meshgate.snapshot.loaded";
/// The request the demo's `airflow-read` rule allows to `data-eng` and `data-analysts`.
pub const PROBE_HOST: &str = "airflow.internal";
pub const PROBE_PATH: &str = "/api/v1/dags";
/// Largest snapshot the run downloads for its correctness check.
const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

/// Why a run stopped before measuring everything.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    #[error("the {deadline:?} deadline passed during {phase}")]
    Deadline {
        deadline: Duration,
        phase: &'static str,
    },
    #[error("control-plane RSS reached {rss_mib:.0} MiB (limit {limit_mib} MiB) during {phase}; it was stopped")]
    ControlPlaneMemory {
        rss_mib: f64,
        limit_mib: u64,
        phase: &'static str,
    },
    #[error("the control plane exited during {phase}; log tail:\n{log_tail}")]
    ControlPlaneExited {
        phase: &'static str,
        log_tail: String,
    },
    #[error("{0}")]
    Failed(String),
}

impl Stop {
    pub fn failed(what: &str, error: impl std::fmt::Display) -> Stop {
        Stop::Failed(format!("{what}: {error}"))
    }

    /// Whether the run was cut short by a limit rather than by an error.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Stop::Deadline { .. } | Stop::ControlPlaneMemory { .. }
        )
    }
}

pub struct Session {
    pub envoy: Envoy,
    pub listen_port: u16,
    control_plane: Option<SupervisedProcess>,
    pub cp_port: u16,
    pub proxy: ByteCountingProxy,
    issuer: IssuerServer,
    _upstream: UpstreamServer,
    pub work_dir: PathBuf,
    started: Instant,
    deadline: Duration,
    max_cp_rss_mib: u64,
    meshgate: PathBuf,
    http: ureq::Agent,
}

/// The view the control plane always serves: five groups (`--snapshot five` polls it).
pub const VIEW_NAME: &str = "five";

impl Session {
    /// Starts the issuer, the tool stub, the proxy and Envoy (no control plane yet, so Envoy
    /// runs without a snapshot).
    pub fn start(
        work_dir: &Path,
        concurrency: u32,
        deadline: Duration,
        max_cp_rss_mib: u64,
        meshgate: &Path,
        snapshot_name: &str,
    ) -> Result<Session, Stop> {
        let started = Instant::now();
        for needed in [repo_root().join("dist/meshgate.wasm"), meshgate.to_owned()] {
            if !needed.is_file() {
                return Err(Stop::Failed(format!(
                    "`{}` is missing: run `./build.sh` (filter) and `cargo build --release -p meshgate-control-plane`",
                    needed.display()
                )));
            }
        }
        let issuer = IssuerServer::start("127.0.0.1:0", work_dir.join("issuer-keys.json"), None)
            .map_err(|e| Stop::failed("mock issuer", e))?;
        let upstream =
            UpstreamServer::start("127.0.0.1:0").map_err(|e| Stop::failed("tool stub", e))?;
        let cp_port = free_port().map_err(|e| Stop::failed("control-plane port", e))?;
        let proxy = ByteCountingProxy::start(cp_port).map_err(|e| Stop::failed("proxy", e))?;
        let (listen_port, admin_port, unused) = (
            free_port().map_err(|e| Stop::failed("listen port", e))?,
            free_port().map_err(|e| Stop::failed("admin port", e))?,
            free_port().map_err(|e| Stop::failed("backstage port", e))?,
        );
        let yaml = demo_yaml(listen_port, admin_port, issuer.port(), upstream.port())
            .map_err(|e| Stop::failed("Envoy config", e))?;
        let yaml = edit(
            yaml,
            &[
                (
                    format!("port_value: {DEMO_CONTROL_PLANE_PORT}"),
                    format!("port_value: {}", proxy.port()),
                ),
                (
                    format!("127.0.0.1:{DEMO_CONTROL_PLANE_PORT}"),
                    format!("127.0.0.1:{}", proxy.port()),
                ),
                // Nothing listens there: the demo's Backstage provider just has no keys.
                (DEMO_BACKSTAGE_PORT.to_string(), unused.to_string()),
                // The demo config already polls every second, as the issue's figures need.
                (
                    "/v1/snapshots/default".into(),
                    format!("/v1/snapshots/{snapshot_name}"),
                ),
            ],
        )?;
        let mut options = EnvoyOptions::new(yaml, admin_port);
        options.concurrency = concurrency;
        let envoy = Envoy::start(options).map_err(|e| Stop::failed("Envoy", e))?;
        let http = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(2))
            .build();
        Ok(Session {
            envoy,
            listen_port,
            control_plane: None,
            cp_port,
            proxy,
            issuer,
            _upstream: upstream,
            work_dir: work_dir.to_owned(),
            started,
            deadline,
            max_cp_rss_mib,
            meshgate: meshgate.to_owned(),
            http,
        })
    }

    /// Writes the control-plane config (the whole catalog as `default`, and a view `five`
    /// naming `view_groups`) and starts `meshgate serve` on it.
    pub fn start_control_plane(
        &mut self,
        catalog: &Path,
        view_groups: &[String],
    ) -> Result<(), Stop> {
        let config = self.work_dir.join("cp.yaml");
        let key = repo_root().join(DEMO_CP_KEY);
        let groups: Vec<String> = view_groups.iter().map(|g| json_string(g)).collect();
        let text = format!(
            "listen: 127.0.0.1:{}\ncatalog:\n  directory: {}\nsigning_key_file: {}\nresync_interval_s: 1\n\
             views:\n  - name: {VIEW_NAME}\n    groups: [{}]\n",
            self.cp_port,
            json_string(&catalog.display().to_string()),
            json_string(&key.display().to_string()),
            groups.join(", "),
        );
        std::fs::write(&config, text).map_err(|e| Stop::failed("control-plane config", e))?;
        let mut command = Command::new(&self.meshgate);
        command.arg("serve").arg("--config").arg(&config);
        let process = SupervisedProcess::spawn(command, &self.work_dir.join("meshgate-serve.log"))
            .map_err(|e| Stop::failed("meshgate serve", e))?;
        self.control_plane = Some(process);
        Ok(())
    }

    pub fn cp_pid(&self) -> Option<u32> {
        self.control_plane.as_ref().map(SupervisedProcess::pid)
    }

    /// Stops the control plane now (its figures are read first by the caller).
    pub fn stop_control_plane(&mut self) {
        if let Some(mut process) = self.control_plane.take() {
            process.stop();
        }
    }

    /// A control-plane memory figure (`VmRSS`, `VmHWM`) in MiB.
    pub fn cp_mib(&self, field: &str) -> Option<f64> {
        process_kib(self.cp_pid()?, field).ok().map(mib)
    }

    pub fn envoy_rss_mib(&self) -> Option<f64> {
        process_kib(self.envoy.pid(), "VmRSS").ok().map(mib)
    }

    /// Time left before the deadline.
    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_sub(self.started.elapsed())
    }

    /// Called in every wait loop: the deadline, the control plane's memory and liveness.
    pub fn guard(&mut self, phase: &'static str) -> Result<(), Stop> {
        if self.time_left().is_zero() {
            return Err(Stop::Deadline {
                deadline: self.deadline,
                phase,
            });
        }
        let limit_mib = self.max_cp_rss_mib;
        if let Some(process) = self.control_plane.as_mut() {
            if process.exited().is_some() {
                return Err(Stop::ControlPlaneExited {
                    phase,
                    log_tail: process.log_tail(),
                });
            }
            let rss_mib = process_kib(process.pid(), "VmRSS").map(mib).unwrap_or(0.0);
            if rss_mib > limit_mib as f64 {
                process.stop();
                return Err(Stop::ControlPlaneMemory {
                    rss_mib,
                    limit_mib,
                    phase,
                });
            }
        }
        Ok(())
    }

    /// Polls `check` every `every` until it yields a value, guarding each round; `None` when
    /// `timeout` passes first.
    pub fn wait_for<T>(
        &mut self,
        phase: &'static str,
        timeout: Duration,
        every: Duration,
        mut check: impl FnMut(&mut Session) -> Option<T>,
    ) -> Result<Option<T>, Stop> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            self.guard(phase)?;
            if let Some(value) = check(self) {
                return Ok(Some(value));
            }
            std::thread::sleep(every);
        }
        // A wait cut short by the deadline is the deadline's doing, not a failure.
        self.guard(phase)?;
        Ok(None)
    }

    fn cp_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.cp_port)
    }

    /// Whether `/readyz` answers 200.
    pub fn cp_ready(&self) -> bool {
        self.http
            .get(&self.cp_url("/readyz"))
            .timeout(Duration::from_secs(2))
            .call()
            .is_ok()
    }

    /// The served snapshot and its version header, fetched directly (not through the proxy).
    pub fn fetch_snapshot(&self) -> Result<(Vec<u8>, Option<u64>), Stop> {
        let response = self
            .http
            .get(&self.cp_url("/v1/snapshots/default"))
            .timeout(Duration::from_secs(120))
            .call()
            .map_err(|e| Stop::failed("GET snapshot", e))?;
        let version = response
            .header("x-meshgate-snapshot-version")
            .and_then(|v| v.parse().ok());
        let mut bytes = Vec::new();
        response
            .into_reader()
            .take(MAX_SNAPSHOT_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| Stop::failed("read snapshot", e))?;
        Ok((bytes, version))
    }

    /// `POST /v1/sync`: (status, duration_ms, version) from its JSON answer.
    pub fn post_sync(&self) -> Result<SyncAnswer, Stop> {
        let timeout = self.time_left().max(Duration::from_secs(1));
        let response = self
            .http
            .post(&self.cp_url("/v1/sync"))
            .timeout(timeout)
            .call()
            .map_err(|e| {
                if self.time_left().is_zero() {
                    Stop::Deadline {
                        deadline: self.deadline,
                        phase: "a POST /v1/sync",
                    }
                } else {
                    Stop::failed("POST /v1/sync", e)
                }
            })?;
        let body = response
            .into_string()
            .map_err(|e| Stop::failed("read /v1/sync answer", e))?;
        SyncAnswer::parse(&body)
            .ok_or_else(|| Stop::Failed(format!("POST /v1/sync answered something else: {body}")))
    }

    /// The snapshot version the filter enforces, from Envoy's `/stats`.
    pub fn envoy_version(&self) -> Option<u64> {
        self.envoy.counter(VERSION_STAT)
    }

    pub fn envoy_loaded(&self) -> u64 {
        self.envoy.counter(LOADED_STAT).unwrap_or(0)
    }

    /// A token for `email` from the mock issuer, with no group claims: the catalog decides.
    pub fn token(&self, subject: &str, email: &str) -> Result<String, Stop> {
        let mut request = MintRequest::new(format!("idp-{subject}"), unix_now());
        request.email = Some(email.to_owned());
        request.groups = Vec::new();
        request.audiences = vec![DEMO_AUDIENCE.to_owned()];
        request.ttl_s = 4 * 3600;
        self.issuer
            .keyset()
            .mint(&request)
            .map_err(|e| Stop::failed("mint a token", e))
    }

    /// The statuses of `count` probe requests, each on its own connection so they spread
    /// over Envoy's workers.
    pub fn probe(&self, token: &str, count: usize) -> Vec<u16> {
        let authorization = format!("Bearer {token}");
        (0..count)
            .map(|_| {
                http_client::send(
                    self.listen_port,
                    "GET",
                    PROBE_HOST,
                    PROBE_PATH,
                    &[("authorization", &authorization)],
                )
                .map_or(0, |response| response.status)
            })
            .collect()
    }
}

/// What `POST /v1/sync` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncAnswer {
    pub status: String,
    pub duration_ms: u64,
    pub version: Option<u64>,
}

impl SyncAnswer {
    /// `{"status": "...", "duration_ms": N, "version": N|null, ...}`; `None` for anything else.
    pub fn parse(body: &str) -> Option<SyncAnswer> {
        let value: serde_json::Value = serde_json::from_str(body).ok()?;
        Some(SyncAnswer {
            status: value.get("status")?.as_str()?.to_owned(),
            duration_ms: value.get("duration_ms")?.as_u64()?,
            version: value.get("version").and_then(serde_json::Value::as_u64),
        })
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// Applies text replacements, each of which must match.
fn edit(mut text: String, edits: &[(String, String)]) -> Result<String, Stop> {
    for (find, replace) in edits {
        if !text.contains(find.as_str()) {
            return Err(Stop::Failed(format!(
                "`{find}` not in envoy/meshgate-demo.yaml; the run's edit no longer applies"
            )));
        }
        text = text.replace(find.as_str(), replace);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_answers_are_read_strictly() {
        let good = r#"{"status":"unchanged","version":17,"serving_stale":false,"warnings":3,"duration_ms":812}"#;
        assert_eq!(
            SyncAnswer::parse(good),
            Some(SyncAnswer {
                status: "unchanged".into(),
                duration_ms: 812,
                version: Some(17)
            })
        );
        let failed = r#"{"status":"failed","version":null,"duration_ms":3,"reason":"catalog"}"#;
        assert_eq!(SyncAnswer::parse(failed).map(|a| a.version), Some(None));
        for (name, body) in [
            ("empty", ""),
            ("truncated", r#"{"status":"unchanged","duration_ms":8"#),
            ("no duration", r#"{"status":"unchanged"}"#),
            ("negative", r#"{"status":"updated","duration_ms":-1}"#),
            ("oversized", r#"{"status":"updated","duration_ms":1e400}"#),
            ("hostile type", r#"{"status":["updated"],"duration_ms":1}"#),
            ("not an object", "[1,2]"),
        ] {
            assert_eq!(SyncAnswer::parse(body), None, "{name}");
        }
        // A duplicated key: serde_json keeps the last, which is still a well-formed answer.
        let duplicated = r#"{"status":"updated","duration_ms":1,"duration_ms":2}"#;
        assert_eq!(
            SyncAnswer::parse(duplicated).map(|a| a.duration_ms),
            Some(2)
        );
    }

    #[test]
    fn edits_must_apply() {
        let edited = edit("a: 1\nb: 2\n".into(), &[("b: 2".into(), "b: 3".into())]).unwrap();
        assert_eq!(edited, "a: 1\nb: 3\n");
        assert!(edit("a: 1\n".into(), &[("c: 1".into(), "c: 2".into())]).is_err());
    }
}

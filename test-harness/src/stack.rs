//! The demo stack, for end-to-end tests: mock issuer, tool stubs, the control plane serving
//! a copy of the sample catalog, and a real Envoy loading `dist/meshgate.wasm` with the
//! shipped `envoy/meshgate-demo.yaml`, on free ports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use meshgate_control_plane::access::{AccessSettings, AuditSettings, AuthSettings, StoreSettings};
use meshgate_control_plane::issuer::MintRequest;
use meshgate_control_plane::serve::{
    stderr_log, CatalogSource, RunningServer, ServeConfig, ServeError, Server,
};
use meshgate_test_support::unix_now;

use crate::backstage::{BackstageError, BackstageServer};
use crate::envoy::{repo_root, Envoy, EnvoyError, EnvoyOptions};
use crate::http_client::{self, HttpError, Response};
use crate::issuer_server::IssuerServer;
use crate::ports::{free_port, HarnessError};
use crate::upstream::UpstreamServer;

/// Triggers a run of DAG `etl_daily` on the Airflow stub; the demo's rules allow it to the
/// DAG's owners (data-eng), so it is what access grants are tested with.
pub const TRIGGER_ETL: &str = "/api/v1/dags/etl_daily/dagRuns";

/// The ports written in `envoy/meshgate-demo.yaml`, rewritten for each test stack.
pub const DEMO_LISTEN_PORT: u16 = 10000;
pub const DEMO_ADMIN_PORT: u16 = 9901;
pub const DEMO_ISSUER_PORT: u16 = 18080;
pub const DEMO_UPSTREAM_PORT: u16 = 18081;
pub const DEMO_CONTROL_PLANE_PORT: u16 = 18090;
/// The fake Backstage (catalog API and auth backend) the demo's `backstage` provider trusts.
pub const DEMO_BACKSTAGE_PORT: u16 = 17007;
/// The bearer token the fake Backstage's catalog API wants (its auth routes want none).
pub const DEMO_BACKSTAGE_CATALOG_TOKEN: &str = "meshgate-demo-catalog";
/// The demo control plane's signing key, whose public half the demo config trusts.
pub const DEMO_CP_KEY: &str = "envoy/demo/cp-signing-key.demo.json";
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
    #[error("control plane: {0}")]
    ControlPlane(#[from] ServeError),
    #[error("fake Backstage: {0}")]
    Backstage(#[from] BackstageError),
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
    /// Don't start the control plane (no snapshot before the first load); `start` then
    /// doesn't wait for an allowed request.
    pub control_plane_down_at_start: bool,
    /// Give the fake Backstage a signing key before Envoy starts, so its first JWKS fetch
    /// loads keys (a real backend's JWKS is empty until its first sign-in).
    pub backstage_keys_at_start: bool,
    /// Run the control plane with the access API: the demo's access policy
    /// (`envoy/demo/access-policy.yaml`), a SQLite store and an audit file in the run
    /// directory, callers verified with the stack's own Envoy configuration.
    pub access: bool,
}

pub struct Stack {
    pub issuer: IssuerServer,
    /// The fake Backstage: its auth backend signs the user tokens the `backstage` provider
    /// accepts; it serves the sample catalog (the control plane reads `catalog_dir`).
    pub backstage: BackstageServer,
    pub upstream: UpstreamServer,
    pub envoy: Envoy,
    pub listen_port: u16,
    /// `None` while stopped.
    pub control_plane: Option<RunningServer>,
    pub control_plane_port: u16,
    /// The catalog the control plane reads: a copy of `test-harness/catalog`, free to edit.
    pub catalog_dir: PathBuf,
    /// The control plane's access API settings, when the stack runs it.
    pub access: Option<AccessSettings>,
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

/// The ports of the servers a test stack runs besides Envoy's own.
struct Ports {
    issuer: u16,
    upstream: u16,
    control_plane: u16,
    backstage: u16,
}

/// The demo config with every port replaced, the control plane's and Backstage's included.
fn stack_yaml(listen: u16, admin: u16, ports: &Ports) -> Result<String, StackError> {
    Ok(demo_yaml(listen, admin, ports.issuer, ports.upstream)?
        .replace(
            &DEMO_CONTROL_PLANE_PORT.to_string(),
            &ports.control_plane.to_string(),
        )
        .replace(
            &DEMO_BACKSTAGE_PORT.to_string(),
            &ports.backstage.to_string(),
        ))
}

/// Copies the sample catalog's YAML files into `dir`.
fn copy_catalog(dir: &Path) -> Result<(), StackError> {
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| StackError::Io {
            action,
            path,
            source,
        }
    };
    let from = repo_root().join("test-harness/catalog");
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    for entry in std::fs::read_dir(&from).map_err(io("read", &from))? {
        let path = entry.map_err(io("read", &from))?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, dir.join(name)).map_err(io("copy", &path))?;
            }
        }
    }
    Ok(())
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

/// The control plane on `port` (0: any), reading `catalog_dir` every second.
fn start_control_plane(
    catalog_dir: &Path,
    port: u16,
    signing_key_file: &Path,
    access: Option<&AccessSettings>,
) -> Result<RunningServer, StackError> {
    let mut config = ServeConfig::new(
        CatalogSource::Directory(catalog_dir.to_owned()),
        signing_key_file,
    );
    config.listen = SocketAddr::from(([127, 0, 0, 1], port));
    config.resync_interval = Duration::from_secs(1);
    config.access = access.cloned();
    let server = Server::start_with_log(config, stderr_log())?;
    server.wait_ready(Duration::from_secs(10));
    Ok(server)
}

/// The access API as the demo runs it, in `dir`: the stack's Envoy configuration (written
/// there) names the providers callers are verified with, and their key sets are fetched from
/// the stack's issuer and fake Backstage.
fn access_settings(
    dir: &Path,
    envoy_yaml: &str,
    issuer: &IssuerServer,
    backstage: &BackstageServer,
) -> Result<AccessSettings, StackError> {
    let filter_config = dir.join("envoy.yaml");
    std::fs::write(&filter_config, envoy_yaml).map_err(|source| StackError::Io {
        action: "write",
        path: filter_config.clone(),
        source,
    })?;
    Ok(AccessSettings {
        policy_file: repo_root().join("envoy/demo/access-policy.yaml"),
        store: StoreSettings::Sqlite {
            path: dir.join("access.db"),
        },
        audit: AuditSettings {
            stdout: false,
            file: Some(dir.join("audit.jsonl")),
        },
        auth: AuthSettings {
            filter_config,
            jwks_files: Default::default(),
            jwks_urls: [
                ("demo".to_owned(), format!("{}/jwks", issuer.url())),
                (
                    "backstage".to_owned(),
                    format!("{}/api/auth/.well-known/jwks.json", backstage.url()),
                ),
            ]
            .into(),
        },
        notify: None,
    })
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
        let backstage = BackstageServer::start_sample("127.0.0.1:0", DEMO_BACKSTAGE_CATALOG_TOKEN)?;
        if opts.backstage_keys_at_start {
            backstage.rotate_key();
        }
        let catalog_dir = dir.join("catalog");
        copy_catalog(&catalog_dir)?;
        let (listen, admin) = (free_port()?, free_port()?);
        let ports = Ports {
            issuer: issuer.port(),
            upstream: upstream.port(),
            control_plane: free_port()?,
            backstage: backstage.port(),
        };
        let yaml = apply_edits(stack_yaml(listen, admin, &ports)?, opts)?;
        let access = if opts.access {
            Some(access_settings(&dir, &yaml, &issuer, &backstage)?)
        } else {
            None
        };
        let control_plane_port = ports.control_plane;
        let control_plane = if opts.control_plane_down_at_start {
            None
        } else {
            Some(start_control_plane(
                &catalog_dir,
                control_plane_port,
                &repo_root().join(DEMO_CP_KEY),
                access.as_ref(),
            )?)
        };
        let envoy = Envoy::start(envoy_options(yaml, admin))?;
        let stack = Stack {
            issuer,
            backstage,
            upstream,
            envoy,
            listen_port: listen,
            control_plane,
            control_plane_port,
            catalog_dir,
            access,
        };
        if !opts.jwks_down_at_start && !opts.control_plane_down_at_start {
            stack.wait_for_keys(Duration::from_secs(15))?;
        }
        Ok(stack)
    }

    /// Stops the control plane (the filter keeps its last good snapshot).
    pub fn stop_control_plane(&mut self) {
        if let Some(mut server) = self.control_plane.take() {
            server.stop();
        }
    }

    /// (Re)starts the control plane on its port, signing with `signing_key_file`.
    pub fn start_control_plane(&mut self, signing_key_file: &Path) -> Result<(), StackError> {
        self.stop_control_plane();
        self.control_plane = Some(start_control_plane(
            &self.catalog_dir,
            self.control_plane_port,
            signing_key_file,
            self.access.as_ref(),
        )?);
        Ok(())
    }

    /// Asks the control plane to read the catalog now; the new version, if it changed.
    pub fn sync_catalog(&self) -> Option<u64> {
        let server = self.control_plane.as_ref()?;
        server.trigger_sync()?;
        server.current_version()
    }

    /// Starts Envoy with a configuration it must refuse; returns Envoy's log.
    pub fn start_expecting_refusal(opts: &StackOptions) -> Result<String, StackError> {
        let (listen, admin) = (free_port()?, free_port()?);
        let ports = Ports {
            issuer: free_port()?,
            upstream: free_port()?,
            control_plane: free_port()?,
            backstage: free_port()?,
        };
        let yaml = apply_edits(stack_yaml(listen, admin, &ports)?, opts)?;
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

    /// A token for catalog user `user` (`idp-user`, `user@example.com`) that lists no
    /// groups: what they may do comes from the catalog and their grants only.
    pub fn catalog_user_token(&self, user: &str) -> String {
        self.mint(|req| {
            req.sub = format!("idp-{user}");
            req.email = Some(format!("{user}@example.com"));
            req.groups = Vec::new();
        })
    }

    /// `POST` [`TRIGGER_ETL`] on `airflow.internal` as the holder of `token`: the status.
    pub fn trigger_etl(&self, token: &str) -> Result<u16, StackError> {
        let auth = format!("Bearer {token}");
        self.send(
            "POST",
            "airflow.internal",
            TRIGGER_ETL,
            &[("authorization", &auth)],
        )
        .map(|response| response.status)
    }

    /// The control plane's base URL, for [`crate::access_client::call`].
    pub fn control_plane_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.control_plane_port)
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

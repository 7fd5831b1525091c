//! The control-plane configuration: a YAML file (`meshgate serve --config cp.yaml`) read into
//! [`ServeConfig`], or a [`ServeConfig`] built in code. The file is read strictly (unknown
//! fields are errors) and every value is checked by [`ServeConfig::validate`], whose errors name
//! the field as it is written in the file.
//!
//! ```yaml
//! listen: 127.0.0.1:18090            # default
//! catalog:
//!   backstage:                        # or: directory: path/to/catalog-yaml
//!     base_url: https://backstage.example.com
//!     token_env: BACKSTAGE_TOKEN      # or token_file: /var/run/secrets/backstage-token
//!     kinds: [user, group, component, resource, system]   # default
//!     page_size: 500                  # default
//!     timeout_s: 30                   # default
//!     ca_file: /etc/meshgate/backstage-ca.pem   # optional; PEM CA bundle, https:// only
//!   ownership_annotations:            # optional; kinds not listed keep their default key
//!     airflow.dag: [meshgate.io/airflow-dag, airflow.apache.org/dag-id]
//! rules_file: rules.yaml              # optional
//! signing_key_file: snapshot-key.json # from `meshgate keygen`
//! snapshot_name: default              # default; served at /v1/snapshots/<name>
//! resync_interval_s: 30               # default
//! watch_interval_ms: 250              # default; directory catalogs only, 0 turns it off
//! guards:                             # every field optional
//!   max_shrink_fraction: 0.1
//!   max_dangling_fraction: 0.01
//!   retries: 2
//!   retry_backoff_ms: 500
//! delta_history: 4                    # default; versions a delta is served from, 0: none
//! views:                              # optional; each served at /v1/snapshots/<name>
//!   - name: airflow
//!     groups: [data-eng, group:default/analytics]
//!     kinds: [airflow.dag]
//!     from_rules: true                # also what the published rules name
//!     rules_file: airflow-rules.yaml  # also what these rules name (the sidecar's own)
//! access:                             # optional: the access-request API (docs/access.md)
//!   policy_file: access-policy.yaml   # YAML or JSON
//!   store:                            # default: sqlite next to this file
//!     sqlite: {path: meshgate-access.db}   # or: postgres: {url_env: MESHGATE_ACCESS_DB}
//!   audit: {stdout: true, file: audit.jsonl}
//!   auth:
//!     filter_config: filter.json      # the sidecar's plugin config: its providers verify callers
//!     jwks_files: {demo: jwks.json}   # keys of remote_jwks/backstage providers, from files
//!     jwks_urls: {oidc: http://idp/jwks.json}   # or fetched at start and on an unknown kid
//! ```
//!
//! Relative paths in a file are relative to the directory of that file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::delta::DEFAULT_DELTA_HISTORY;
use super::err::ServeConfigError;
use super::guard::{Fraction, GuardConfig};
use crate::catalog::rest::{DEFAULT_KINDS, DEFAULT_PAGE_SIZE, DEFAULT_TIMEOUT};
use crate::catalog::CaBundle;
use crate::catalog::OwnershipAnnotations;

/// `listen` when not given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:18090";
/// `snapshot_name` when not given.
pub const DEFAULT_SNAPSHOT_NAME: &str = "default";
/// `resync_interval_s` when not given.
pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(30);

/// `watch_interval_ms` when not given.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_millis(250);

const MAX_RESYNC_INTERVAL_S: u64 = 24 * 3600;
const WATCH_INTERVAL_MS: std::ops::RangeInclusive<u64> = 10..=60_000;
const MAX_GUARD_RETRIES: u32 = 10;
const MAX_RETRY_BACKOFF_MS: u64 = 60_000;
const MAX_PAGE_SIZE: usize = 10_000;
const MAX_TIMEOUT_S: u64 = 600;
const MAX_SNAPSHOT_NAME: usize = 64;
const MAX_DELTA_HISTORY: usize = 64;

/// What the snapshot server needs to run. Build it with [`ServeConfig::new`] and set fields, or
/// read a file with [`ServeConfig::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// Address and port the HTTP server listens on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Where users, groups and ownership come from.
    pub catalog: CatalogSource,
    /// Which annotation keys name which resource kind (`catalog.ownership_annotations`).
    pub ownership_annotations: OwnershipAnnotations,
    /// A YAML file holding a list of rules in the filter's rule language, published in the
    /// snapshot. Read and compiled at every sync.
    pub rules_file: Option<PathBuf>,
    /// The Ed25519 key file written by `meshgate keygen`. Read once, at start.
    pub signing_key_file: PathBuf,
    /// The snapshot is served at `/v1/snapshots/<snapshot_name>`.
    pub snapshot_name: String,
    /// Time between two syncs (a sync can also be triggered with `POST /v1/sync`).
    pub resync_interval: Duration,
    /// How often a directory catalog's file stamps are polled for changes (`None`: never, only
    /// every `resync_interval`). Polling, not inotify: inotify misses changes on many volume
    /// mounts (NFS, some CSI drivers, Kubernetes ConfigMap symlink swaps).
    pub watch_interval: Option<Duration>,
    /// When a catalog read is not published.
    pub guards: GuardConfig,
    /// How many earlier versions of each snapshot a delta is served from.
    pub delta_history: usize,
    /// Scoped snapshots served next to the whole one.
    pub views: Vec<ViewConfig>,
    /// The access-request API; `None`: its endpoints answer 404.
    pub access: Option<crate::access::AccessSettings>,
}

/// A scoped view of the catalog (`views[]`), served at `/v1/snapshots/<name>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewConfig {
    pub name: String,
    /// Groups as rules write them (`data-eng` or `group:default/data-eng`).
    pub groups: Vec<String>,
    /// Entity kinds whose ownership the view keeps (`airflow.dag`).
    pub kinds: Vec<String>,
    /// Also the groups and kinds the published rules name.
    pub from_rules: bool,
    /// Also the groups and kinds these rules name (YAML or JSON list, like `rules_file`).
    pub rules_file: Option<PathBuf>,
}

/// Where the catalog is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogSource {
    /// A running Backstage backend's catalog API.
    Backstage(BackstageCatalog),
    /// A directory of Backstage descriptor YAML files (`catalog-info.yaml` format).
    Directory(PathBuf),
}

/// A Backstage backend's catalog API (`GET /api/catalog/entities/by-query`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackstageCatalog {
    /// The backend's URL, the part before `/api/catalog`.
    pub base_url: String,
    /// Where the bearer token comes from; `None` sends no `Authorization` header.
    pub token: Option<CatalogToken>,
    /// Entity kinds read.
    pub kinds: Vec<String>,
    /// Entities per page.
    pub page_size: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// A private CA trusted next to the public roots for an `https://` URL (`ca_file`). Read
    /// and checked once, when the configuration is loaded.
    pub ca_bundle: Option<CaBundle>,
}

/// The catalog's bearer token (a Backstage static or service token). It is read at every
/// sync, so a rotated token file is picked up without a restart.
#[derive(Clone, PartialEq, Eq)]
pub enum CatalogToken {
    /// The value of this environment variable (`token_env`).
    Env(String),
    /// The trimmed contents of this file (`token_file`).
    File(PathBuf),
    /// This value; only in code (for tests), never in a file.
    Value(String),
}

impl std::fmt::Debug for CatalogToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogToken::Env(var) => f.debug_tuple("Env").field(var).finish(),
            CatalogToken::File(path) => f.debug_tuple("File").field(path).finish(),
            CatalogToken::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

impl BackstageCatalog {
    /// The catalog at `base_url` without a token, with the default kinds, page size and
    /// timeout.
    pub fn new(base_url: impl Into<String>) -> BackstageCatalog {
        BackstageCatalog {
            base_url: base_url.into(),
            token: None,
            kinds: DEFAULT_KINDS
                .iter()
                .map(|kind| (*kind).to_owned())
                .collect(),
            page_size: DEFAULT_PAGE_SIZE,
            timeout: DEFAULT_TIMEOUT,
            ca_bundle: None,
        }
    }
}

impl ServeConfig {
    /// A configuration with every default: listen on [`DEFAULT_LISTEN`], no rules, snapshot
    /// [`DEFAULT_SNAPSHOT_NAME`], resync every [`DEFAULT_RESYNC_INTERVAL`].
    pub fn new(catalog: CatalogSource, signing_key_file: impl Into<PathBuf>) -> ServeConfig {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 18090)),
            catalog,
            ownership_annotations: OwnershipAnnotations::default(),
            rules_file: None,
            signing_key_file: signing_key_file.into(),
            snapshot_name: DEFAULT_SNAPSHOT_NAME.to_owned(),
            resync_interval: DEFAULT_RESYNC_INTERVAL,
            watch_interval: Some(DEFAULT_WATCH_INTERVAL),
            guards: GuardConfig::default(),
            delta_history: DEFAULT_DELTA_HISTORY,
            views: Vec::new(),
            access: None,
        }
    }

    /// Reads and validates a configuration file; relative paths in it are resolved against
    /// the file's directory.
    pub fn load(path: impl AsRef<Path>) -> Result<ServeConfig, ServeConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ServeConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        ServeConfig::from_yaml(&text, base).map_err(|error| match error {
            ServeConfigError::Yaml { source } => ServeConfigError::Parse {
                path: path.to_owned(),
                source,
            },
            other => ServeConfigError::InFile {
                path: path.to_owned(),
                error: Box::new(other),
            },
        })
    }

    /// Reads and validates configuration YAML; relative paths are resolved against `base_dir`.
    pub fn from_yaml(text: &str, base_dir: &Path) -> Result<ServeConfig, ServeConfigError> {
        let file: ConfigFile =
            serde_norway::from_str(text).map_err(|source| ServeConfigError::Yaml { source })?;
        let config = file.resolve(base_dir)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value; the error names the field as written in a configuration file.
    pub fn validate(&self) -> Result<(), ServeConfigError> {
        let interval = self.resync_interval.as_secs();
        if self.resync_interval.is_zero() || interval > MAX_RESYNC_INTERVAL_S {
            return Err(ServeConfigError::invalid(
                "resync_interval_s",
                format!("must be 1 to {MAX_RESYNC_INTERVAL_S} seconds"),
            ));
        }
        if let Some(watch) = self.watch_interval {
            let millis = u64::try_from(watch.as_millis()).unwrap_or(u64::MAX);
            if !WATCH_INTERVAL_MS.contains(&millis) {
                return Err(ServeConfigError::invalid(
                    "watch_interval_ms",
                    format!(
                        "must be 0 (off) or {} to {} milliseconds",
                        WATCH_INTERVAL_MS.start(),
                        WATCH_INTERVAL_MS.end()
                    ),
                ));
            }
        }
        check_guards(&self.guards)?;
        check_snapshot_name("snapshot_name", &self.snapshot_name)?;
        if self.delta_history > MAX_DELTA_HISTORY {
            return Err(ServeConfigError::invalid(
                "delta_history",
                format!("must be 0 to {MAX_DELTA_HISTORY}"),
            ));
        }
        check_views(&self.snapshot_name, &self.views)?;
        if let Some(access) = &self.access {
            check_access(access)?;
        }
        if self.signing_key_file.as_os_str().is_empty() {
            return Err(ServeConfigError::invalid(
                "signing_key_file",
                "must not be empty",
            ));
        }
        if self
            .rules_file
            .as_ref()
            .is_some_and(|file| file.as_os_str().is_empty())
        {
            return Err(ServeConfigError::invalid("rules_file", "must not be empty"));
        }
        match &self.catalog {
            CatalogSource::Directory(dir) if dir.as_os_str().is_empty() => Err(
                ServeConfigError::invalid("catalog.directory", "must not be empty"),
            ),
            CatalogSource::Directory(_) => Ok(()),
            CatalogSource::Backstage(backstage) => check_backstage(backstage),
        }
    }
}

fn check_guards(guards: &GuardConfig) -> Result<(), ServeConfigError> {
    if guards.retries > MAX_GUARD_RETRIES {
        return Err(ServeConfigError::invalid(
            "guards.retries",
            format!("must be 0 to {MAX_GUARD_RETRIES}"),
        ));
    }
    let backoff = u64::try_from(guards.retry_backoff.as_millis()).unwrap_or(u64::MAX);
    if backoff > MAX_RETRY_BACKOFF_MS {
        return Err(ServeConfigError::invalid(
            "guards.retry_backoff_ms",
            format!("must be 0 to {MAX_RETRY_BACKOFF_MS} milliseconds"),
        ));
    }
    Ok(())
}

fn fraction(
    field: &str,
    value: Option<f64>,
    default: Fraction,
) -> Result<Fraction, ServeConfigError> {
    match value {
        None => Ok(default),
        Some(value) => Fraction::new(value).ok_or_else(|| {
            ServeConfigError::invalid(field, format!("`{value}` is not a fraction from 0 to 1"))
        }),
    }
}

fn check_views(main: &str, views: &[ViewConfig]) -> Result<(), ServeConfigError> {
    let mut names = std::collections::BTreeSet::from([main]);
    for (i, view) in views.iter().enumerate() {
        let field = |name: &str| format!("views[{i}].{name}");
        check_snapshot_name(&field("name"), &view.name)?;
        if !names.insert(&view.name) {
            return Err(ServeConfigError::invalid(
                field("name"),
                format!(
                    "`{}` is already served (snapshot_name or another view)",
                    view.name
                ),
            ));
        }
        if let Some(bad) = view
            .groups
            .iter()
            .find(|group| meshgate_core::groupref::GroupName::parse(group).is_none())
        {
            return Err(ServeConfigError::invalid(
                field("groups"),
                format!("`{bad}` is not a group name or group entity ref"),
            ));
        }
        if let Some(bad) = view.kinds.iter().find(|kind| kind.trim().is_empty()) {
            return Err(ServeConfigError::invalid(
                field("kinds"),
                format!("`{bad}` is not an entity kind"),
            ));
        }
        if view
            .rules_file
            .as_ref()
            .is_some_and(|file| file.as_os_str().is_empty())
        {
            return Err(ServeConfigError::invalid(
                field("rules_file"),
                "must not be empty",
            ));
        }
        if view.groups.is_empty()
            && view.kinds.is_empty()
            && !view.from_rules
            && view.rules_file.is_none()
        {
            return Err(ServeConfigError::invalid(
                format!("views[{i}]"),
                "names nothing: give `groups`, `kinds`, `from_rules: true` or `rules_file`",
            ));
        }
    }
    Ok(())
}

fn check_snapshot_name(field: &str, name: &str) -> Result<(), ServeConfigError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty()
        || name.len() > MAX_SNAPSHOT_NAME
        || !name.chars().all(allowed)
        || name.starts_with('.')
    {
        return Err(ServeConfigError::invalid(
            field,
            format!(
                "`{name}` must be 1 to {MAX_SNAPSHOT_NAME} letters, digits, `-`, `_` or `.`, not starting with `.`"
            ),
        ));
    }
    Ok(())
}

fn check_backstage(backstage: &BackstageCatalog) -> Result<(), ServeConfigError> {
    let url = backstage.base_url.as_str();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if !rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/')) {
        return Err(ServeConfigError::invalid(
            "catalog.backstage.base_url",
            format!("`{url}` is not an http:// or https:// URL"),
        ));
    }
    if url.contains(['?', '#']) || url.chars().any(char::is_whitespace) {
        return Err(ServeConfigError::invalid(
            "catalog.backstage.base_url",
            format!("`{url}` must be the backend's URL without query, fragment or spaces"),
        ));
    }
    match &backstage.token {
        Some(CatalogToken::Env(var)) if var.is_empty() || var.contains(['=', '\0']) => {
            return Err(ServeConfigError::invalid(
                "catalog.backstage.token_env",
                format!("`{var}` is not an environment variable name"),
            ));
        }
        Some(CatalogToken::File(path)) if path.as_os_str().is_empty() => {
            return Err(ServeConfigError::invalid(
                "catalog.backstage.token_file",
                "must not be empty",
            ));
        }
        Some(CatalogToken::Value(value)) if value.trim().is_empty() => {
            return Err(ServeConfigError::invalid(
                "catalog.backstage.token",
                "must not be empty",
            ));
        }
        _ => {}
    }
    if backstage.kinds.is_empty() {
        return Err(ServeConfigError::invalid(
            "catalog.backstage.kinds",
            "must list at least one kind",
        ));
    }
    for (position, kind) in backstage.kinds.iter().enumerate() {
        let usable = !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphanumeric());
        if !usable {
            return Err(ServeConfigError::invalid(
                format!("catalog.backstage.kinds[{position}]"),
                format!("`{kind}` is not an entity kind"),
            ));
        }
    }
    if backstage.page_size == 0 || backstage.page_size > MAX_PAGE_SIZE {
        return Err(ServeConfigError::invalid(
            "catalog.backstage.page_size",
            format!("must be 1 to {MAX_PAGE_SIZE}"),
        ));
    }
    let timeout = backstage.timeout.as_secs();
    if backstage.timeout.is_zero() || timeout > MAX_TIMEOUT_S {
        return Err(ServeConfigError::invalid(
            "catalog.backstage.timeout_s",
            format!("must be 1 to {MAX_TIMEOUT_S} seconds"),
        ));
    }
    if backstage.ca_bundle.is_some() && !url.starts_with("https://") {
        return Err(ServeConfigError::invalid(
            "catalog.backstage.ca_file",
            format!("is only used with an https:// `base_url`, not `{url}`"),
        ));
    }
    Ok(())
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<String>,
    catalog: CatalogFile,
    rules_file: Option<PathBuf>,
    signing_key_file: PathBuf,
    snapshot_name: Option<String>,
    resync_interval_s: Option<u64>,
    watch_interval_ms: Option<u64>,
    guards: Option<GuardsFile>,
    delta_history: Option<usize>,
    #[serde(default)]
    views: Vec<ViewFile>,
    access: Option<AccessFile>,
}

/// `access:` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessFile {
    policy_file: PathBuf,
    store: Option<AccessStoreFile>,
    #[serde(default)]
    audit: Option<AccessAuditFile>,
    auth: AccessAuthFile,
    #[serde(default)]
    notify: Option<AccessNotifyFile>,
}

/// `access.notify`: `{url, secret_env, link}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessNotifyFile {
    url: String,
    secret_env: String,
    link: Option<String>,
}

/// `{sqlite: {path}}` or `{postgres: {url_env}}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessStoreFile {
    sqlite: Option<SqliteFile>,
    postgres: Option<PostgresFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqliteFile {
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresFile {
    url_env: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AccessAuditFile {
    #[serde(default)]
    stdout: bool,
    file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessAuthFile {
    filter_config: PathBuf,
    #[serde(default)]
    jwks_files: BTreeMap<String, PathBuf>,
    #[serde(default)]
    jwks_urls: BTreeMap<String, String>,
}

/// The SQLite file when `access.store` names none.
pub const DEFAULT_ACCESS_DB: &str = "meshgate-access.db";

impl AccessFile {
    fn resolve(self, base: &Path) -> Result<crate::access::AccessSettings, ServeConfigError> {
        use crate::access::{AccessSettings, AuditSettings, AuthSettings, StoreSettings};
        let default_db = || base.join(DEFAULT_ACCESS_DB);
        let store = match self.store {
            None => StoreSettings::Sqlite { path: default_db() },
            Some(store) => match (store.sqlite, store.postgres) {
                (Some(sqlite), None) => StoreSettings::Sqlite {
                    path: sqlite
                        .path
                        .map_or_else(default_db, |path| relative_to(base, path)),
                },
                (None, Some(postgres)) => StoreSettings::Postgres {
                    url_env: postgres.url_env,
                },
                _ => {
                    return Err(ServeConfigError::invalid(
                        "access.store",
                        "give `sqlite` or `postgres`",
                    ))
                }
            },
        };
        let audit = self.audit.unwrap_or_default();
        Ok(AccessSettings {
            policy_file: relative_to(base, self.policy_file),
            store,
            audit: AuditSettings {
                stdout: audit.stdout,
                file: audit.file.map(|file| relative_to(base, file)),
            },
            auth: AuthSettings {
                filter_config: relative_to(base, self.auth.filter_config),
                jwks_files: self
                    .auth
                    .jwks_files
                    .into_iter()
                    .map(|(provider, file)| (provider, relative_to(base, file)))
                    .collect(),
                jwks_urls: self.auth.jwks_urls,
            },
            notify: self.notify.map(|notify| crate::access::NotifySettings {
                url: notify.url,
                secret_env: notify.secret_env,
                link: notify
                    .link
                    .unwrap_or_else(|| String::from(crate::access::notify::DEFAULT_LINK)),
            }),
        })
    }
}

fn check_access(access: &crate::access::AccessSettings) -> Result<(), ServeConfigError> {
    use crate::access::StoreSettings;
    let empty = |path: &Path| path.as_os_str().is_empty();
    if empty(&access.policy_file) {
        return Err(ServeConfigError::invalid(
            "access.policy_file",
            "must not be empty",
        ));
    }
    if empty(&access.auth.filter_config) {
        return Err(ServeConfigError::invalid(
            "access.auth.filter_config",
            "must not be empty",
        ));
    }
    match &access.store {
        StoreSettings::Sqlite { path } if empty(path) => {
            return Err(ServeConfigError::invalid(
                "access.store.sqlite.path",
                "must not be empty",
            ))
        }
        StoreSettings::Postgres { url_env }
            if url_env.is_empty() || url_env.contains(['=', '\0']) =>
        {
            return Err(ServeConfigError::invalid(
                "access.store.postgres.url_env",
                format!("`{url_env}` is not an environment variable name"),
            ))
        }
        _ => {}
    }
    if access.audit.file.as_deref().is_some_and(empty) {
        return Err(ServeConfigError::invalid(
            "access.audit.file",
            "must not be empty",
        ));
    }
    if let Some(notify) = &access.notify {
        if !(notify.url.starts_with("http://") || notify.url.starts_with("https://")) {
            return Err(ServeConfigError::invalid(
                "access.notify.url",
                format!("`{}` is not an http:// or https:// URL", notify.url),
            ));
        }
        if notify.secret_env.is_empty() || notify.secret_env.contains(['=', '\0']) {
            return Err(ServeConfigError::invalid(
                "access.notify.secret_env",
                format!(
                    "`{}` is not an environment variable name",
                    notify.secret_env
                ),
            ));
        }
        // A path in the Backstage app, never another site: the receiver links to it.
        if !notify.link.starts_with('/') || notify.link.starts_with("//") {
            return Err(ServeConfigError::invalid(
                "access.notify.link",
                format!("`{}` is not a path starting with one `/`", notify.link),
            ));
        }
    }
    for (provider, url) in &access.auth.jwks_urls {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ServeConfigError::invalid(
                format!("access.auth.jwks_urls.{provider}"),
                format!("`{url}` is not an http:// or https:// URL"),
            ));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewFile {
    name: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    from_rules: bool,
    rules_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GuardsFile {
    max_shrink_fraction: Option<f64>,
    max_dangling_fraction: Option<f64>,
    retries: Option<u32>,
    retry_backoff_ms: Option<u64>,
}

impl GuardsFile {
    fn resolve(self) -> Result<GuardConfig, ServeConfigError> {
        let defaults = GuardConfig::default();
        Ok(GuardConfig {
            max_shrink_fraction: fraction(
                "guards.max_shrink_fraction",
                self.max_shrink_fraction,
                defaults.max_shrink_fraction,
            )?,
            max_dangling_fraction: fraction(
                "guards.max_dangling_fraction",
                self.max_dangling_fraction,
                defaults.max_dangling_fraction,
            )?,
            retries: self.retries.unwrap_or(defaults.retries),
            retry_backoff: self
                .retry_backoff_ms
                .map_or(defaults.retry_backoff, Duration::from_millis),
        })
    }
}

/// `{backstage: {…}}` or `{directory: …}`, and what applies to either source.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    backstage: Option<BackstageFile>,
    directory: Option<PathBuf>,
    /// Resource kind → annotation keys; kinds not listed keep their defaults.
    ownership_annotations: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackstageFile {
    base_url: String,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    kinds: Option<Vec<String>>,
    page_size: Option<usize>,
    timeout_s: Option<u64>,
    ca_file: Option<PathBuf>,
}

impl ConfigFile {
    fn resolve(self, base: &Path) -> Result<ServeConfig, ServeConfigError> {
        let listen_text = self.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text.trim().parse().map_err(|_| {
            ServeConfigError::invalid(
                "listen",
                format!("`{listen_text}` is not an IP address and port, like `127.0.0.1:18090` or `[::]:18090`"),
            )
        })?;
        let ownership_annotations = match &self.catalog.ownership_annotations {
            None => OwnershipAnnotations::default(),
            Some(configured) => OwnershipAnnotations::new(configured).map_err(|error| {
                ServeConfigError::invalid(
                    format!("catalog.ownership_annotations.{}", error.field()),
                    error.to_string(),
                )
            })?,
        };
        let catalog = match (self.catalog.directory, self.catalog.backstage) {
            (Some(_), Some(_)) => {
                return Err(ServeConfigError::invalid(
                    "catalog",
                    "give `backstage` or `directory`, not both",
                ))
            }
            (None, None) => {
                return Err(ServeConfigError::invalid(
                    "catalog",
                    "give `backstage` or `directory`",
                ))
            }
            (Some(dir), None) => CatalogSource::Directory(relative_to(base, dir)),
            (None, Some(file)) => {
                let token = match (file.token_env, file.token_file) {
                    (Some(_), Some(_)) => {
                        return Err(ServeConfigError::invalid(
                            "catalog.backstage",
                            "give `token_env` or `token_file`, not both",
                        ))
                    }
                    (Some(var), None) => Some(CatalogToken::Env(var)),
                    (None, Some(path)) => Some(CatalogToken::File(relative_to(base, path))),
                    (None, None) => None,
                };
                let ca_bundle = match file.ca_file {
                    None => None,
                    Some(path) if path.as_os_str().is_empty() => {
                        return Err(ServeConfigError::invalid(
                            "catalog.backstage.ca_file",
                            "must not be empty",
                        ))
                    }
                    Some(path) => {
                        Some(CaBundle::read(relative_to(base, path)).map_err(|error| {
                            ServeConfigError::invalid(
                                "catalog.backstage.ca_file",
                                super::log::error_chain(&error),
                            )
                        })?)
                    }
                };
                let defaults = BackstageCatalog::new(file.base_url.trim());
                CatalogSource::Backstage(BackstageCatalog {
                    token,
                    kinds: file
                        .kinds
                        .map(|kinds| {
                            kinds
                                .iter()
                                .map(|kind| kind.trim().to_lowercase())
                                .collect()
                        })
                        .unwrap_or(defaults.kinds.clone()),
                    page_size: file.page_size.unwrap_or(defaults.page_size),
                    timeout: file.timeout_s.map_or(defaults.timeout, Duration::from_secs),
                    ca_bundle,
                    ..defaults
                })
            }
        };
        Ok(ServeConfig {
            listen,
            catalog,
            ownership_annotations,
            rules_file: self.rules_file.map(|file| relative_to(base, file)),
            signing_key_file: relative_to(base, self.signing_key_file),
            snapshot_name: self
                .snapshot_name
                .unwrap_or_else(|| DEFAULT_SNAPSHOT_NAME.to_owned()),
            resync_interval: self
                .resync_interval_s
                .map_or(DEFAULT_RESYNC_INTERVAL, Duration::from_secs),
            watch_interval: match self.watch_interval_ms {
                None => Some(DEFAULT_WATCH_INTERVAL),
                Some(0) => None,
                Some(millis) => Some(Duration::from_millis(millis)),
            },
            guards: self.guards.unwrap_or_default().resolve()?,
            delta_history: self.delta_history.unwrap_or(DEFAULT_DELTA_HISTORY),
            views: self
                .views
                .into_iter()
                .map(|view| ViewConfig {
                    name: view.name,
                    groups: view.groups,
                    kinds: view
                        .kinds
                        .iter()
                        .map(|kind| kind.trim().to_owned())
                        .collect(),
                    from_rules: view.from_rules,
                    rules_file: view.rules_file.map(|file| relative_to(base, file)),
                })
                .collect(),
            access: self.access.map(|access| access.resolve(base)).transpose()?,
        })
    }
}

/// `path` as written when absolute (or empty, which validation reports), else under `base`.
fn relative_to(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() || path.as_os_str().is_empty() {
        path
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "catalog: {directory: catalog}\nsigning_key_file: key.json\n";

    fn parse(yaml: &str) -> Result<ServeConfig, ServeConfigError> {
        ServeConfig::from_yaml(yaml, Path::new("/etc/meshgate"))
    }

    /// The message with its causes, as the CLI prints it.
    fn message(error: &ServeConfigError) -> String {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }

    #[test]
    fn defaults_and_relative_paths() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(
            config,
            ServeConfig {
                listen: "127.0.0.1:18090".parse().unwrap(),
                catalog: CatalogSource::Directory("/etc/meshgate/catalog".into()),
                ownership_annotations: OwnershipAnnotations::default(),
                rules_file: None,
                signing_key_file: "/etc/meshgate/key.json".into(),
                snapshot_name: "default".into(),
                resync_interval: Duration::from_secs(30),
                watch_interval: Some(Duration::from_millis(250)),
                guards: GuardConfig::default(),
                delta_history: 4,
                views: Vec::new(),
                access: None,
            }
        );
        assert_eq!(
            ServeConfig::new(
                CatalogSource::Directory("/etc/meshgate/catalog".into()),
                "/etc/meshgate/key.json"
            ),
            config
        );
    }

    #[test]
    fn every_field_read() {
        let config = parse(
            "listen: '[::1]:9000'\n\
             catalog:\n  backstage:\n    base_url: https://backstage.example.com/\n    token_file: /run/token\n    kinds: [User, group]\n    page_size: 50\n    timeout_s: 5\n\
             \x20 ownership_annotations:\n    airflow.dag: [airflow.apache.org/dag-id, meshgate.io/airflow-dag]\n    service.host: [example.com/host]\n\
             rules_file: rules/edge.yaml\nsigning_key_file: /keys/cp.json\nsnapshot_name: edge\nresync_interval_s: 120\n\
             watch_interval_ms: 0\n\
             guards: {max_shrink_fraction: 0.25, max_dangling_fraction: 0, retries: 0, retry_backoff_ms: 10}\n\
             delta_history: 0\n\
             views:\n  - {name: airflow, groups: [data-eng], kinds: [' airflow.dag'], from_rules: true, rules_file: airflow.yaml}\n  - {name: ci, from_rules: true}\n",
        )
        .unwrap();
        assert_eq!(
            config,
            ServeConfig {
                listen: "[::1]:9000".parse().unwrap(),
                catalog: CatalogSource::Backstage(BackstageCatalog {
                    base_url: "https://backstage.example.com/".into(),
                    token: Some(CatalogToken::File("/run/token".into())),
                    kinds: vec!["user".into(), "group".into()],
                    page_size: 50,
                    timeout: Duration::from_secs(5),
                    ca_bundle: None,
                }),
                ownership_annotations: OwnershipAnnotations::new(&BTreeMap::from([
                    (
                        "airflow.dag".to_owned(),
                        vec![
                            "airflow.apache.org/dag-id".to_owned(),
                            "meshgate.io/airflow-dag".to_owned()
                        ]
                    ),
                    (
                        "service.host".to_owned(),
                        vec!["example.com/host".to_owned()]
                    ),
                ]))
                .unwrap(),
                rules_file: Some("/etc/meshgate/rules/edge.yaml".into()),
                signing_key_file: "/keys/cp.json".into(),
                snapshot_name: "edge".into(),
                resync_interval: Duration::from_secs(120),
                watch_interval: None,
                guards: GuardConfig {
                    max_shrink_fraction: Fraction::from_millionths(250_000),
                    max_dangling_fraction: Fraction::from_millionths(0),
                    retries: 0,
                    retry_backoff: Duration::from_millis(10),
                },
                delta_history: 0,
                views: vec![
                    ViewConfig {
                        name: "airflow".into(),
                        groups: vec!["data-eng".into()],
                        kinds: vec!["airflow.dag".into()],
                        from_rules: true,
                        rules_file: Some("/etc/meshgate/airflow.yaml".into()),
                    },
                    ViewConfig {
                        name: "ci".into(),
                        from_rules: true,
                        ..ViewConfig::default()
                    },
                ],
                access: None,
            }
        );
        let config = parse(
            "catalog: {backstage: {base_url: 'http://127.0.0.1:7007', token_env: BACKSTAGE_TOKEN}}\nsigning_key_file: k\n",
        )
        .unwrap();
        let CatalogSource::Backstage(backstage) = config.catalog else {
            panic!("{config:?}")
        };
        assert_eq!(
            backstage.token,
            Some(CatalogToken::Env("BACKSTAGE_TOKEN".into()))
        );
        assert_eq!(backstage.kinds, DEFAULT_KINDS);
        assert_eq!(
            (backstage.page_size, backstage.timeout),
            (500, Duration::from_secs(30))
        );
    }

    #[test]
    fn errors_name_the_field() {
        let annotations = |mapping: &str| {
            format!("catalog:\n  directory: c\n  ownership_annotations: {mapping}\nsigning_key_file: k\n")
        };
        let backstage = |fields: &str| {
            format!("catalog:\n  backstage: {{base_url: 'http://b:7007', {fields}}}\nsigning_key_file: k\n")
        };
        let cases: Vec<(String, &str)> = vec![
            ("signing_key_file: k\n".into(), "missing field `catalog`"),
            (
                "catalog: {directory: c}\n".into(),
                "missing field `signing_key_file`",
            ),
            (format!("{MINIMAL}resync: 3\n"), "unknown field `resync`"),
            (
                format!("{MINIMAL}guards: {{max_shrink: 0.1}}\n"),
                "unknown field `max_shrink`",
            ),
            (
                format!("{MINIMAL}guards: {{max_shrink_fraction: 1.5}}\n"),
                "`guards.max_shrink_fraction`: `1.5` is not a fraction from 0 to 1",
            ),
            (
                format!("{MINIMAL}guards: {{max_dangling_fraction: -0.01}}\n"),
                "`guards.max_dangling_fraction`: `-0.01` is not a fraction",
            ),
            (
                format!("{MINIMAL}guards: {{max_dangling_fraction: lots}}\n"),
                "invalid type",
            ),
            (
                format!("{MINIMAL}guards: {{retries: 11}}\n"),
                "`guards.retries`: must be 0 to 10",
            ),
            (
                format!("{MINIMAL}guards: {{retry_backoff_ms: 60001}}\n"),
                "`guards.retry_backoff_ms`: must be 0 to 60000 milliseconds",
            ),
            (
                format!("{MINIMAL}watch_interval_ms: 5\n"),
                "`watch_interval_ms`: must be 0 (off) or 10 to 60000 milliseconds",
            ),
            (
                format!("{MINIMAL}listen: localhost\n"),
                "`listen`: `localhost` is not an IP address and port",
            ),
            (
                format!("{MINIMAL}resync_interval_s: 0\n"),
                "`resync_interval_s`: must be 1 to 86400 seconds",
            ),
            (
                format!("{MINIMAL}resync_interval_s: -5\n"),
                "resync_interval_s",
            ),
            (
                format!("{MINIMAL}snapshot_name: ../x\n"),
                "`snapshot_name`: `../x` must be",
            ),
            (
                format!("{MINIMAL}snapshot_name: ''\n"),
                "`snapshot_name`: `` must be",
            ),
            (
                format!("{MINIMAL}rules_file: ''\n"),
                "`rules_file`: must not be empty",
            ),
            (
                "catalog: {directory: ''}\nsigning_key_file: k\n".into(),
                "`catalog.directory`: must not be empty",
            ),
            (
                "catalog: {git: x}\nsigning_key_file: k\n".into(),
                "unknown field `git`",
            ),
            (
                "catalog: {directory: a, backstage: {base_url: 'http://b'}}\nsigning_key_file: k\n"
                    .into(),
                "`catalog`: give `backstage` or `directory`, not both",
            ),
            (
                "catalog: {}\nsigning_key_file: k\n".into(),
                "`catalog`: give `backstage` or `directory`",
            ),
            (
                "catalog: {ownership_annotations: {airflow.dag: [a.io/x]}}\nsigning_key_file: k\n"
                    .into(),
                "`catalog`: give `backstage` or `directory`",
            ),
            (
                annotations("{airflow_dag: [a.io/x]}"),
                "`catalog.ownership_annotations.airflow_dag`: `airflow_dag` is not a resource kind",
            ),
            (
                annotations("{airflow.dag: []}"),
                "`catalog.ownership_annotations.airflow.dag`: must list at least one annotation key",
            ),
            (
                annotations("{airflow.dag: [a.io/x, '']}"),
                "`catalog.ownership_annotations.airflow.dag[1]`: `` is not a Backstage annotation key ([prefix/]name): it is empty",
            ),
            (
                annotations("{airflow.dag: ['Acme.io/x']}"),
                "`catalog.ownership_annotations.airflow.dag[0]`: `Acme.io/x` is not a Backstage annotation key ([prefix/]name): the prefix",
            ),
            (
                annotations("{airflow.dag: ['a.io/x y']}"),
                "`catalog.ownership_annotations.airflow.dag[0]`: `a.io/x y` is not a Backstage annotation key ([prefix/]name): the name",
            ),
            (
                annotations("{airflow.dag: [a.io/x], service.host: [b.io/y, a.io/x]}"),
                "`catalog.ownership_annotations.service.host[1]`: `a.io/x` already names `airflow.dag`",
            ),
            (
                annotations("{service.host: [buildkite.com/pipeline-slug]}"),
                "`catalog.ownership_annotations.service.host[0]`: `buildkite.com/pipeline-slug` already names `buildkite.pipeline`",
            ),
            (
                annotations("{airflow.dag: a.io/x}"),
                "invalid type",
            ),
            (
                annotations("[a.io/x]"),
                "invalid type",
            ),
            (backstage("tokenenv: X"), "unknown field `tokenenv`"),
            (
                backstage("token_env: X, token_file: f"),
                "`catalog.backstage`: give `token_env` or `token_file`, not both",
            ),
            (
                backstage("token_env: 'A=B'"),
                "`catalog.backstage.token_env`: `A=B` is not",
            ),
            (
                backstage("page_size: 0"),
                "`catalog.backstage.page_size`: must be 1 to 10000",
            ),
            (
                backstage("timeout_s: 601"),
                "`catalog.backstage.timeout_s`: must be 1 to 600 seconds",
            ),
            (
                backstage("kinds: []"),
                "`catalog.backstage.kinds`: must list at least one kind",
            ),
            (
                backstage("kinds: [user, 'a b']"),
                "`catalog.backstage.kinds[1]`: `a b` is not an entity kind",
            ),
            (
                "catalog: {backstage: {base_url: 'backstage:7007'}}\nsigning_key_file: k\n".into(),
                "`catalog.backstage.base_url`: `backstage:7007` is not an http:// or https:// URL",
            ),
            (
                "catalog: {backstage: {base_url: 'http://b/?x=1'}}\nsigning_key_file: k\n".into(),
                "`catalog.backstage.base_url`: `http://b/?x=1` must be",
            ),
            ("[1, 2]".into(), "invalid type"),
            (
                format!("{MINIMAL}delta_history: 65\n"),
                "`delta_history`: must be 0 to 64",
            ),
            (
                format!("{MINIMAL}views: [{{name: v, group: [a]}}]\n"),
                "unknown field `group`",
            ),
            (
                format!("{MINIMAL}views: [{{groups: [a]}}]\n"),
                "missing field `name`",
            ),
            (
                format!("{MINIMAL}views: [{{name: v}}]\n"),
                "`views[0]`: names nothing",
            ),
            (
                format!("{MINIMAL}views: [{{name: default, groups: [a]}}]\n"),
                "`views[0].name`: `default` is already served",
            ),
            (
                format!("{MINIMAL}views: [{{name: v, groups: [a]}}, {{name: v, kinds: [k]}}]\n"),
                "`views[1].name`: `v` is already served",
            ),
            (
                format!("{MINIMAL}views: [{{name: 'a/b', groups: [a]}}]\n"),
                "`views[0].name`: `a/b` must be",
            ),
            (
                format!("{MINIMAL}views: [{{name: v, groups: ['user:default/alice']}}]\n"),
                "`views[0].groups`: `user:default/alice` is not a group",
            ),
            (
                format!("{MINIMAL}views: [{{name: v, kinds: ['']}}]\n"),
                "`views[0].kinds`: `` is not an entity kind",
            ),
        ];
        for (yaml, expected) in cases {
            let error = parse(&yaml).unwrap_err();
            let text = message(&error);
            assert!(
                text.contains(expected),
                "{yaml}\n→ {text}\nwanted: {expected}"
            );
        }
    }

    #[test]
    fn ca_file_is_read_at_load_and_refused_with_its_reason() {
        let dir = crate::issuer::test_keys::temp_dir("serve-config-ca");
        std::fs::write(
            dir.join("ca.pem"),
            crate::catalog::tls::test_ca_pem("meshgate config CA"),
        )
        .unwrap();
        std::fs::write(dir.join("empty.pem"), "").unwrap();
        std::fs::write(
            dir.join("key.pem"),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        std::fs::write(dir.join("cut.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
        std::fs::write(dir.join("text.pem"), "not a certificate\n").unwrap();
        let yaml = |url: &str, ca_file: &str| {
            format!("catalog:\n  backstage: {{base_url: '{url}', ca_file: '{ca_file}'}}\nsigning_key_file: k\n")
        };
        let config = ServeConfig::from_yaml(&yaml("https://b:7007", "ca.pem"), &dir).unwrap();
        let CatalogSource::Backstage(backstage) = config.catalog else {
            panic!("{config:?}")
        };
        let bundle = backstage.ca_bundle.unwrap();
        assert_eq!(
            (bundle.path(), bundle.certificates()),
            (dir.join("ca.pem").as_path(), 1)
        );
        let cases = [
            ("https://b", "missing.pem", "cannot read `"),
            ("https://b", "empty.pem", "empty.pem` is empty"),
            ("https://b", "key.pem", "block 1 of `"),
            ("https://b", "cut.pem", "has no `-----END` line"),
            ("https://b", "text.pem", "holds no PEM `CERTIFICATE` block"),
            ("https://b", "", "must not be empty"),
            (
                "http://b",
                "ca.pem",
                "is only used with an https:// `base_url`",
            ),
        ];
        for (url, ca_file, expected) in cases {
            let error = ServeConfig::from_yaml(&yaml(url, ca_file), &dir).unwrap_err();
            let text = message(&error);
            assert!(
                text.starts_with("`catalog.backstage.ca_file`: ") && text.contains(expected),
                "{ca_file}\n→ {text}\nwanted: {expected}"
            );
            assert!(!text.contains('\n'), "{text}");
        }
        let unknown = ServeConfig::from_yaml(
            "catalog: {backstage: {base_url: 'https://b', ca_files: x}}\nsigning_key_file: k\n",
            &dir,
        )
        .unwrap_err();
        assert!(message(&unknown).contains("unknown field `ca_files`"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn code_built_configs_are_validated_too() {
        let mut config = ServeConfig::new(CatalogSource::Directory("c".into()), "k");
        config.validate().unwrap();
        config.resync_interval = Duration::ZERO;
        assert!(message(&config.validate().unwrap_err()).contains("`resync_interval_s`"));
        let mut backstage = BackstageCatalog::new("http://127.0.0.1:1");
        backstage.token = Some(CatalogToken::Value(" ".into()));
        let config = ServeConfig::new(CatalogSource::Backstage(backstage.clone()), "k");
        assert!(message(&config.validate().unwrap_err()).contains("`catalog.backstage.token`"));
        backstage.token = Some(CatalogToken::Value("secret".into()));
        assert!(!format!("{backstage:?}").contains("secret"));
    }

    #[test]
    fn files_name_themselves() {
        let dir = crate::issuer::test_keys::temp_dir("serve-config");
        let path = dir.join("cp.yaml");
        std::fs::write(&path, format!("{MINIMAL}snapshot_name: 'a b'\n")).unwrap();
        let text = message(&ServeConfig::load(&path).unwrap_err());
        assert!(
            text.contains("cp.yaml") && text.contains("`snapshot_name`"),
            "{text}"
        );
        std::fs::write(&path, "catalog: [\n").unwrap();
        let text = message(&ServeConfig::load(&path).unwrap_err());
        assert!(text.contains("cp.yaml` is not valid"), "{text}");
        let config = {
            std::fs::write(&path, MINIMAL).unwrap();
            ServeConfig::load(&path).unwrap()
        };
        assert_eq!(
            config.catalog,
            CatalogSource::Directory(dir.join("catalog"))
        );
        let text = message(&ServeConfig::load(dir.join("missing.yaml")).unwrap_err());
        assert!(text.contains("cannot read control-plane config"), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_access_block_is_read_with_defaults_and_errors_name_the_field() {
        use crate::access::StoreSettings;
        let config = parse(&format!(
            "{MINIMAL}access:\n  policy_file: access.yaml\n  auth: {{filter_config: filter.json, jwks_files: {{demo: jwks.json}}}}\n"
        ))
        .unwrap();
        let access = config.access.unwrap();
        assert_eq!(access.policy_file, Path::new("/etc/meshgate/access.yaml"));
        assert_eq!(
            access.store,
            StoreSettings::Sqlite {
                path: "/etc/meshgate/meshgate-access.db".into()
            }
        );
        assert_eq!(
            access.auth.jwks_files.get("demo").unwrap(),
            Path::new("/etc/meshgate/jwks.json")
        );
        assert!(parse(MINIMAL).unwrap().access.is_none());
        let notify = parse(&format!(
            "{MINIMAL}access: {{policy_file: a, auth: {{filter_config: f}}, notify: {{url: 'http://backstage:7007/api/meshgate-access/events', secret_env: S}}}}\n"
        ))
        .unwrap();
        assert_eq!(
            notify.access.unwrap().notify,
            Some(crate::access::NotifySettings {
                url: "http://backstage:7007/api/meshgate-access/events".into(),
                secret_env: "S".into(),
                link: "/access-requests".into(),
            })
        );
        let postgres = parse(&format!(
            "{MINIMAL}access: {{policy_file: a, auth: {{filter_config: f}}, store: {{postgres: {{url_env: DB}}}}}}\n"
        ))
        .unwrap();
        assert_eq!(
            postgres.access.unwrap().store,
            StoreSettings::Postgres {
                url_env: "DB".into()
            }
        );
        let sqlite = parse(&format!(
            "{MINIMAL}access: {{policy_file: a, auth: {{filter_config: f}}, store: {{sqlite: {{path: x.db}}}}}}\n"
        ))
        .unwrap();
        assert_eq!(
            sqlite.access.unwrap().store,
            StoreSettings::Sqlite {
                path: "/etc/meshgate/x.db".into()
            }
        );
        let cases = [
            ("access: {policy_file: a, auth: {filter_config: f}, extra: 1}", "extra"),
            ("access: {policy_file: a, auth: {filter_config: f, jwks: {}}}", "jwks"),
            ("access: {policy_file: a, auth: {filter_config: f}, store: {mysql: {}}}", "mysql"),
            ("access: {policy_file: a, auth: {filter_config: f}, store: {}}", "access.store"),
            ("access: {auth: {filter_config: f}}", "policy_file"),
            ("access: {policy_file: '', auth: {filter_config: f}}", "access.policy_file"),
            (
                "access: {policy_file: a, auth: {filter_config: f}, store: {postgres: {url_env: ''}}}",
                "access.store.postgres.url_env",
            ),
            (
                "access: {policy_file: a, auth: {filter_config: f, jwks_urls: {x: 'ftp://a'}}}",
                "access.auth.jwks_urls.x",
            ),
            (
                "access: {policy_file: a, auth: {filter_config: f}, notify: {url: 'x', secret_env: S}}",
                "access.notify.url",
            ),
            (
                "access: {policy_file: a, auth: {filter_config: f}, notify: {url: 'http://b/e', secret_env: ''}}",
                "access.notify.secret_env",
            ),
            (
                "access: {policy_file: a, auth: {filter_config: f}, notify: {url: 'http://b/e', secret_env: S, link: '//evil.example'}}",
                "access.notify.link",
            ),
            (
                "access: {policy_file: a, auth: {filter_config: f}, notify: {url: 'http://b/e'}}",
                "secret_env",
            ),
            (
                "access: {policy_file: a, auth: {filter_config: f}, notify: {url: 'http://b/e', secret_env: S, retries: 3}}",
                "retries",
            ),
        ];
        for (yaml, field) in cases {
            let text = message(&parse(&format!("{MINIMAL}{yaml}\n")).unwrap_err());
            assert!(text.contains(field), "{yaml}: {text}");
        }
    }
}

//! The access-request API on the control plane (issue 16): callers authenticated by the
//! filter's own providers ([`auth`]), requests assessed and reviewed by core's access policy
//! over the current catalog snapshot ([`facts`]), kept in the durable store ([`crate::access_store`], SQLite or PostgreSQL),
//! every change audited, and the grants in force handed to the snapshot
//! ([`AccessService::active_grants`], with a notification when they change).
//!
//! - [`api`]: routes, status codes, bodies
//! - [`service`]: the operations
//! - [`err`]: why a call is refused, with its status and stable code

pub mod api;
pub mod auth;
pub mod err;
pub mod facts;
pub mod notices;
pub mod notify;
pub mod service;

pub use crate::access_store::AccessStore;
pub use api::{ApiRequest, MAX_BODY_BYTES, ROUTES};
pub use auth::{AuthSettings, Authenticator};
pub use err::ApiError;
pub use notify::{Notifier, NotifySettings};
pub use service::{system_clock, AccessService, AuditSettings, CatalogNow, Clock, CurrentSnapshot};

use std::path::PathBuf;

use meshgate_core::access::AccessPolicy;

/// `access:` in the control-plane configuration, paths resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessSettings {
    /// The access policy, YAML or JSON.
    pub policy_file: PathBuf,
    pub store: StoreSettings,
    pub audit: AuditSettings,
    pub auth: AuthSettings,
    /// `access.notify`: where access notifications go, if anywhere.
    pub notify: Option<NotifySettings>,
}

/// `access.store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    Sqlite {
        path: PathBuf,
    },
    /// The connection string is read from this environment variable.
    Postgres {
        url_env: String,
    },
}

/// Why the access API cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AccessSetupError {
    #[error("cannot read the access policy `{}`", .path.display())]
    ReadPolicy {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the access policy `{}` is not YAML or JSON", .path.display())]
    PolicyYaml {
        path: PathBuf,
        source: serde_norway::Error,
    },
    #[error("the access policy `{}`: {source}", .path.display())]
    Policy {
        path: PathBuf,
        source: meshgate_core::access::AccessPolicyError,
    },
    #[error("access.auth")]
    Auth {
        #[from]
        source: auth::AuthSetupError,
    },
    #[error("cannot open the access store: {detail}")]
    Store { detail: String },
    #[error("access.audit")]
    Audit {
        #[from]
        source: crate::audit::AuditError,
    },
    #[error("access.notify")]
    Notify {
        #[from]
        source: notify::NotifyError,
    },
}

impl AccessSetupError {
    /// The configuration field the error is about, as written in the file.
    pub fn field(&self) -> &'static str {
        match self {
            AccessSetupError::ReadPolicy { .. }
            | AccessSetupError::PolicyYaml { .. }
            | AccessSetupError::Policy { .. } => "access.policy_file",
            AccessSetupError::Auth { .. } => "access.auth",
            AccessSetupError::Store { .. } => "access.store",
            AccessSetupError::Audit { .. } => "access.audit",
            AccessSetupError::Notify { .. } => "access.notify",
        }
    }
}

/// Reads and compiles the access policy file (YAML or JSON, as the rules file).
pub fn load_policy(path: &std::path::Path) -> Result<AccessPolicy, AccessSetupError> {
    let text = std::fs::read_to_string(path).map_err(|source| AccessSetupError::ReadPolicy {
        path: path.to_owned(),
        source,
    })?;
    let value: serde_json::Value =
        serde_norway::from_str(&text).map_err(|source| AccessSetupError::PolicyYaml {
            path: path.to_owned(),
            source,
        })?;
    AccessPolicy::from_value(&value).map_err(|source| AccessSetupError::Policy {
        path: path.to_owned(),
        source,
    })
}

/// Opens the configured store (applying migrations). PostgreSQL's URL is read from its
/// environment variable now, so it never sits in a file.
pub fn open_store(
    settings: &StoreSettings,
) -> Result<std::sync::Arc<dyn AccessStore>, AccessSetupError> {
    let config = match settings {
        StoreSettings::Sqlite { path } => {
            crate::access_store::StoreConfig::Sqlite { path: path.clone() }
        }
        StoreSettings::Postgres { url_env } => crate::access_store::StoreConfig::Postgres {
            url: std::env::var(url_env).map_err(|_| AccessSetupError::Store {
                detail: format!("`access.store.postgres.url_env`: `{url_env}` is not set"),
            })?,
        },
    };
    crate::access_store::open(&config)
        .map(std::sync::Arc::from)
        .map_err(|e| AccessSetupError::Store {
            detail: e.to_string(),
        })
}

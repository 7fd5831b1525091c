//! Errors of the snapshot server: a configuration that cannot be used, a sync that failed (the
//! last good snapshot stays), and a server that could not start.

use std::path::PathBuf;

use super::guard::GuardRefusal;
use crate::catalog::CatalogError;
use crate::snapshot::{EncodeError, KeyFileError};

/// The control-plane configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ServeConfigError {
    #[error("cannot read control-plane config `{}`", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not YAML, or not the expected shape (unknown or missing field, wrong type); the cause
    /// names the field.
    #[error("control-plane config `{}` is not valid", .path.display())]
    Parse {
        path: PathBuf,
        source: serde_norway::Error,
    },
    /// [`ServeConfigError::Parse`] of text that is not from a file.
    #[error("control-plane config is not valid")]
    Yaml { source: serde_norway::Error },
    /// A field holds a value that cannot be used; `field` is its path in the YAML file
    /// (`catalog.backstage.page_size`).
    #[error("`{field}`: {reason}")]
    Invalid { field: String, reason: String },
    /// [`ServeConfigError::Invalid`] in a file (the message includes it: not a cause).
    #[error("control-plane config `{}`: {error}", .path.display())]
    InFile {
        path: PathBuf,
        error: Box<ServeConfigError>,
    },
}

impl ServeConfigError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ServeConfigError {
        ServeConfigError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The rules file cannot be published. It is read and compiled at every sync.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read rules file `{}`", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("rules file `{}` is not valid YAML", .path.display())]
    Yaml {
        path: PathBuf,
        source: serde_norway::Error,
    },
    #[error("rules file `{}` must hold a list of rules, like the filter config's `rules`", .path.display())]
    NotAList { path: PathBuf },
    /// The filter's own rule compiler refused it; the cause names the rule and field.
    #[error("rules file `{}` does not compile", .path.display())]
    Compile {
        path: PathBuf,
        source: meshgate_core::ConfigError,
    },
}

/// One sync failed; the server keeps serving its last good snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot read the catalog")]
    Catalog(#[source] CatalogError),
    #[error("environment variable `{var}` (`catalog.backstage.token_env`) is not set, empty or not UTF-8")]
    TokenEnv { var: String },
    #[error("cannot read the catalog token file `{}` (`catalog.backstage.token_file`)", .path.display())]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the catalog token file `{}` is empty", .path.display())]
    TokenEmpty { path: PathBuf },
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// A view's rules (published or its own `rules_file`) do not compile.
    #[error("rules of view `{view}` do not compile")]
    ViewRules {
        view: String,
        #[source]
        source: meshgate_core::config::ConfigError,
    },
    /// The read looked wrong (empty, shrunk, inconsistent) and was not published.
    #[error(transparent)]
    Guard(#[from] GuardRefusal),
    #[error("cannot encode the snapshot")]
    Encode(#[source] EncodeError),
    /// The snapshot just built does not decode with the signing key's public key. Never
    /// expected; checked so that nothing a filter would refuse is ever published.
    #[error("the snapshot just built does not decode")]
    SelfCheck(#[source] meshgate_core::snapshot::SnapshotError),
}

impl SyncError {
    /// The `reason` label of `meshgate_cp_sync_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            SyncError::Catalog(_) => "catalog",
            SyncError::TokenEnv { .. }
            | SyncError::TokenFile { .. }
            | SyncError::TokenEmpty { .. } => "token",
            SyncError::Rules(_) | SyncError::ViewRules { .. } => "rules",
            SyncError::Guard(_) => "guard",
            SyncError::Encode(_) | SyncError::SelfCheck(_) => "snapshot",
        }
    }

    /// Every `reason` label, so that each failure counter exists from the start.
    pub const REASONS: [&'static str; 5] = ["catalog", "token", "rules", "guard", "snapshot"];

    /// The guard that refused the read, for a [`SyncError::Guard`].
    pub fn guard(&self) -> Option<&'static str> {
        match self {
            SyncError::Guard(refusal) => Some(refusal.guard()),
            _ => None,
        }
    }
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ServeConfigError),
    #[error("cannot load the snapshot signing key (`signing_key_file`)")]
    Key(#[source] KeyFileError),
    #[error("cannot listen on `{addr}` (`listen`)")]
    Listen {
        addr: std::net::SocketAddr,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot start the `{name}` thread")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
}

//! Errors of the `meshgate` command line.

use std::path::PathBuf;

use crate::issuer::{KeySetError, MintError};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("unknown command `{command}`")]
    UnknownCommand { command: String },
    #[error("unknown option `{flag}`")]
    UnknownFlag { flag: String },
    #[error("option `{flag}` needs a value")]
    MissingValue { flag: String },
    #[error("option `{flag}` takes no value")]
    UnexpectedValue { flag: String },
    #[error("option `{flag}` is required")]
    MissingFlag { flag: &'static str },
    #[error("unexpected argument `{arg}`")]
    UnexpectedArgument { arg: String },
    #[error("option `{flag}` needs a whole number of seconds, got `{value}`")]
    InvalidNumber {
        flag: String,
        value: String,
        source: std::num::ParseIntError,
    },
    #[error("claim `{arg}` is not of the form NAME=VALUE")]
    InvalidClaim { arg: String },
    #[error("key file `{}` not found; start the demo first (`./build.sh demo`) or create it with `meshgate keys init`", .path.display())]
    KeysMissing { path: PathBuf },
    #[error(transparent)]
    Keys(#[from] KeySetError),
    #[error(transparent)]
    Mint(#[from] MintError),
    #[error("cannot write output")]
    Output { source: std::io::Error },
    #[error("{what}: {detail}")]
    Invalid { what: String, detail: String },
    #[error("cannot read `{path}`")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("`{path}`, {location}: {error}")]
    Config {
        path: String,
        location: String,
        // Boxed: a typed `ConfigError` would make every `Result<_, CliError>` large.
        error: Box<meshgate_core::ConfigError>,
    },
    #[error(transparent)]
    Validate(#[from] crate::validate::ValidateError),
    #[error(transparent)]
    ServeConfig(#[from] crate::serve::ServeConfigError),
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
    #[error("cannot load the snapshot signing key (`signing_key_file`)")]
    SigningKey(#[source] crate::snapshot::KeyFileError),
    #[error("no snapshot written to `{}`; the sync failed (see above)", .path.display())]
    SnapshotNotBuilt { path: PathBuf },
    #[error("cannot write snapshot file `{}`", .path.display())]
    WriteSnapshot {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the server stopped")]
    ServerStopped,
    #[error("Backstage sign-in at `{url}` failed: {detail}")]
    BackstageSignIn { url: String, detail: String },
    #[error("`{from}` is empty, not a snapshot")]
    EmptySnapshot { from: String },
    #[error("`{from}` is more than {max} bytes, the largest snapshot accepted")]
    SnapshotTooLarge { from: String, max: usize },
    #[error("`{from}`: {error}")]
    BadSnapshot {
        from: String,
        error: meshgate_core::snapshot::SnapshotError,
    },
    #[error("cannot fetch `{url}`: {detail}")]
    Fetch { url: String, detail: String },
    #[error("cannot read the audit log `{}`", .path.display())]
    AuditUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl CliError {
    /// 2 for a command line that cannot be understood, 1 for a command that failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::UnknownCommand { .. }
            | CliError::UnknownFlag { .. }
            | CliError::MissingValue { .. }
            | CliError::UnexpectedValue { .. }
            | CliError::MissingFlag { .. }
            | CliError::UnexpectedArgument { .. }
            | CliError::InvalidNumber { .. }
            | CliError::InvalidClaim { .. }
            | CliError::Invalid { .. }
            | CliError::EmptySnapshot { .. }
            | CliError::SnapshotTooLarge { .. }
            | CliError::BadSnapshot { .. }
            | CliError::AuditUnreadable { .. } => 2,
            CliError::KeysMissing { .. }
            | CliError::Keys(_)
            | CliError::Mint(_)
            | CliError::Output { .. }
            | CliError::Read { .. }
            | CliError::Config { .. }
            | CliError::Validate(_)
            | CliError::ServeConfig(_)
            | CliError::Serve(_)
            | CliError::SigningKey(_)
            | CliError::SnapshotNotBuilt { .. }
            | CliError::WriteSnapshot { .. }
            | CliError::ServerStopped
            | CliError::BackstageSignIn { .. }
            | CliError::Fetch { .. } => 1,
        }
    }

    /// Whether the command line itself is wrong, so the help follows the error. A snapshot
    /// that cannot be read also exits 2, but says all there is to say in one line.
    pub fn is_usage_error(&self) -> bool {
        self.exit_code() == 2
            && !matches!(
                self,
                CliError::EmptySnapshot { .. }
                    | CliError::SnapshotTooLarge { .. }
                    | CliError::BadSnapshot { .. }
                    | CliError::AuditUnreadable { .. }
            )
    }
}

//! The access audit log: one JSON line per event, hash-chained (docs/access.md, "Audit log").
//!
//! A line is built by [`render`] inside the store's transaction, which hands out `seq` and
//! `prev`, so replicas sharing one database share one chain. After the commit the lines go to
//! the configured [`AuditSink`]s (stdout, a file). [`verify`] checks a file of lines.
//!
//! The hash rule: `hash` is the SHA-256 (lowercase hex) of the line's bytes with the final
//! `,"hash":"<64 hex>"}` replaced by `}`; `prev` is the SHA-256 of the previous line's bytes
//! (without its newline), 64 zeros before the first event.

mod verify;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use verify::{verify, Broken, Problem, Verified};

/// The `schema` of every line; a change that breaks readers gets a new number.
pub const SCHEMA: &str = "meshgate.audit/1";
/// `prev` of the first event of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Requested,
    AutoApproved,
    Approved,
    Denied,
    Reviewed,
    Granted,
    Revoked,
    Expired,
    Cancelled,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Requested => "requested",
            EventKind::AutoApproved => "auto_approved",
            EventKind::Approved => "approved",
            EventKind::Denied => "denied",
            EventKind::Reviewed => "reviewed",
            EventKind::Granted => "granted",
            EventKind::Revoked => "revoked",
            EventKind::Expired => "expired",
            EventKind::Cancelled => "cancelled",
        }
    }
}

/// An event before the store numbers and chains it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditDraft {
    pub event: EventKind,
    /// When, unix milliseconds.
    pub at_ms: i64,
    /// `user:default/alice`, or `system` for what the control plane does by itself.
    pub actor: String,
    pub request_id: Option<String>,
    pub grant_id: Option<String>,
    /// The request's or grant's target (`access_store::Target` as JSON).
    pub target: Option<serde_json::Value>,
    /// Event-specific fields: the reason, the matching auto-approval condition, a comment.
    pub detail: serde_json::Value,
}

/// One committed line of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    pub seq: i64,
    /// The JSON line, without a newline.
    pub line: String,
    /// SHA-256 of `line`: the next line's `prev`.
    pub line_sha256: String,
}

/// The fields of a line in their fixed order; `hash` is appended by [`render`].
#[derive(Serialize)]
struct Unhashed<'a> {
    schema: &'static str,
    seq: i64,
    at: String,
    event: &'static str,
    actor: &'a str,
    request_id: Option<&'a str>,
    grant_id: Option<&'a str>,
    target: &'a serde_json::Value,
    detail: &'a serde_json::Value,
    prev: &'a str,
}

/// The line for `draft` as event `seq` after a line whose SHA-256 is `prev`.
pub fn render(seq: i64, prev: &str, draft: &AuditDraft) -> Result<AuditLine, serde_json::Error> {
    let body = serde_json::to_string(&Unhashed {
        schema: SCHEMA,
        seq,
        at: rfc3339_millis(draft.at_ms),
        event: draft.event.as_str(),
        actor: &draft.actor,
        request_id: draft.request_id.as_deref(),
        grant_id: draft.grant_id.as_deref(),
        target: draft.target.as_ref().unwrap_or(&serde_json::Value::Null),
        detail: &draft.detail,
        prev,
    })?;
    let hash = sha256_hex(body.as_bytes());
    // `body` is a JSON object: it ends with `}`.
    let open = body.strip_suffix('}').unwrap_or(&body);
    let line = format!("{open},\"hash\":\"{hash}\"}}");
    let line_sha256 = sha256_hex(line.as_bytes());
    Ok(AuditLine {
        seq,
        line,
        line_sha256,
    })
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        use std::fmt::Write as _;
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// `2024-05-01T12:00:00.123Z` for unix milliseconds (UTC, proleptic Gregorian).
pub fn rfc3339_millis(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let millis = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Where committed lines go besides the database (`audit:` in the control-plane config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Print each line on stdout.
    #[serde(default)]
    pub stdout: bool,
    /// Append each line to this file.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit file `{}`", .path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the audit file `{}`", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write audit lines to stdout")]
    Stdout { source: std::io::Error },
}

/// The sinks of [`AuditConfig`]. A file is opened for append and synced (`fsync`) once per
/// batch, a batch being the lines of one committed store transaction: the database already
/// holds every line durably, so the file's sync only bounds what a crash can cut from the file.
#[derive(Debug)]
pub struct AuditSink {
    stdout: bool,
    file: Option<(PathBuf, File)>,
}

impl AuditSink {
    pub fn open(config: &AuditConfig) -> Result<AuditSink, AuditError> {
        let file = match &config.file {
            Some(path) => Some((path.clone(), open_append(path)?)),
            None => None,
        };
        Ok(AuditSink {
            stdout: config.stdout,
            file,
        })
    }

    /// Writes one batch of committed lines, then syncs the file.
    pub fn write(&mut self, lines: &[AuditLine]) -> Result<(), AuditError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for line in lines {
            text.push_str(&line.line);
            text.push('\n');
        }
        if self.stdout {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|source| AuditError::Stdout { source })?;
        }
        if let Some((path, file)) = &mut self.file {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_data())
                .map_err(|source| AuditError::Write {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(rfc3339_millis(ms), text);
        }
    }

    #[test]
    fn the_hash_is_the_line_without_its_hash_field() {
        let draft = AuditDraft {
            event: EventKind::Requested,
            at_ms: 1_700_000_000_000,
            actor: "user:default/carol".into(),
            request_id: Some("r1".into()),
            grant_id: None,
            target: Some(serde_json::json!({"kind": "group", "group": "group:default/x"})),
            detail: serde_json::json!({"reason": "on call"}),
        };
        let line = render(1, GENESIS, &draft).unwrap();
        let value: serde_json::Value = serde_json::from_str(&line.line).unwrap();
        let hash = value["hash"].as_str().unwrap();
        let unhashed = line.line.replace(&format!(",\"hash\":\"{hash}\"}}"), "}");
        assert_eq!(sha256_hex(unhashed.as_bytes()), hash);
        assert!(line.line.starts_with(
            "{\"schema\":\"meshgate.audit/1\",\"seq\":1,\"at\":\"2023-11-14T22:13:20.000Z\",\
             \"event\":\"requested\",\"actor\":\"user:default/carol\""
        ));
        assert_eq!(line.line_sha256, sha256_hex(line.line.as_bytes()));
    }
}

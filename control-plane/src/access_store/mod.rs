//! The durable access store: requests, reviews, grants and the audit chain (issue 16).
//!
//! [`AccessStore`] is what the API uses. Its logic is written once ([`logic`]) as SQL over a
//! small transaction interface ([`sql::Tx`]) that each backend implements: [`SqliteStore`]
//! (the default, one file) and [`PostgresStore`] (shared by several control-plane replicas).
//! Schema migrations live in `control-plane/migrations/{sqlite,postgres}/NNN_name.sql`
//! ([`schema`]). Every state change and the audit lines it produces commit in one
//! transaction, so an event is never lost when the change commits.
//!
//! Times are unix milliseconds (UTC).

mod logic;
mod postgres;
pub mod schema;
mod sql;
mod sqlite;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditDraft, AuditLine};

pub use postgres::{PostgresStore, MAX_CONNECTIONS as POSTGRES_MAX_CONNECTIONS};
pub use sqlite::SqliteStore;

/// What is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// Membership of a catalog group, `group:default/data-eng`.
    Group { group: String },
    /// Ownership of a catalog entity that rules check with `when.owns`.
    Resource { resource_kind: String, id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Pending,
    Approved,
    Denied,
    Cancelled,
    Expired,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Cancelled => "cancelled",
            RequestState::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<RequestState> {
        [
            RequestState::Pending,
            RequestState::Approved,
            RequestState::Denied,
            RequestState::Cancelled,
            RequestState::Expired,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    /// Chosen by the caller (a UUID v4 or a ULID); unique.
    pub id: String,
    /// The requester's user ref, `user:default/carol`.
    pub requester: String,
    pub target: Target,
    /// The access policy entry the request is made under.
    pub entry: String,
    pub duration_s: i64,
    pub reason: String,
    pub state: RequestState,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    /// 1 when created, one more at each change.
    pub version: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Deny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub request_id: String,
    pub reviewer: String,
    pub verdict: Verdict,
    pub comment: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub request_id: String,
    /// The user the grant is for.
    pub user: String,
    pub target: Target,
    pub not_before: i64,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
}

/// A request with its reviews and its grant, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub request: AccessRequest,
    pub reviews: Vec<Review>,
    pub grant: Option<Grant>,
}

/// Which requests [`AccessStore::list`] returns, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListFilter {
    ByRequester {
        requester: String,
    },
    /// Pending requests, optionally only under these policy entries (what a reviewer may
    /// approve is the policy's business; it narrows by entry here).
    Pending {
        entries: Option<Vec<String>>,
    },
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("no access request or grant `{id}`")]
    NotFound { id: String },
    #[error("the request is already decided: {}", .state.as_str())]
    AlreadyDecided { state: RequestState },
    #[error("conflict: {what}")]
    Conflict { what: String },
    #[error("the access store is unavailable: {cause}")]
    Unavailable { cause: String },
    #[error("the access store holds bad data: {what}")]
    Corrupt { what: String },
    #[error(
        "the database schema is at migration {found}, newer than this binary knows \
         ({supported}); upgrade meshgate"
    )]
    SchemaTooNew { found: i64, supported: i64 },
}

/// The store the access API works on. Every method is one transaction: it commits entirely
/// (with its audit lines, which it returns for the sinks) or not at all.
pub trait AccessStore: Send + Sync {
    /// Records a new pending request (`request.state` is ignored: it starts pending).
    fn create_request(
        &self,
        request: &AccessRequest,
        audit: &[AuditDraft],
    ) -> Result<Vec<AuditLine>, StoreError>;

    fn get(&self, id: &str) -> Result<RequestRecord, StoreError>;

    fn list(&self, filter: &ListFilter) -> Result<Vec<AccessRequest>, StoreError>;

    /// Adds a review to a pending request and returns the request with all its reviews, so
    /// the caller can count approvals. A reviewer reviews a request once (`Conflict`).
    fn add_review(
        &self,
        review: &Review,
        audit: &[AuditDraft],
    ) -> Result<(RequestRecord, Vec<AuditLine>), StoreError>;

    /// Moves a pending request to `state` (approved, denied, expired) and records `grant`,
    /// once: a request that is no longer pending gives `AlreadyDecided`, and nothing changes.
    fn decide(
        &self,
        request_id: &str,
        state: RequestState,
        decided_at: i64,
        grant: Option<&Grant>,
        audit: &[AuditDraft],
    ) -> Result<Vec<AuditLine>, StoreError>;

    /// Cancels a pending request.
    fn cancel(
        &self,
        request_id: &str,
        at: i64,
        audit: &[AuditDraft],
    ) -> Result<Vec<AuditLine>, StoreError>;

    /// Ends a grant now; a grant already revoked gives `Conflict`.
    fn revoke_grant(
        &self,
        grant_id: &str,
        by: &str,
        at: i64,
        audit: &[AuditDraft],
    ) -> Result<(Grant, Vec<AuditLine>), StoreError>;

    /// Grants in force at `now`: started, not ended, not revoked.
    fn active_grants(&self, now: i64) -> Result<Vec<Grant>, StoreError>;

    /// Marks grants whose `not_after` has passed as expired, once each, with an `expired`
    /// audit line by `system`; returns them.
    fn expire(&self, now: i64) -> Result<(Vec<Grant>, Vec<AuditLine>), StoreError>;

    /// Audit lines with `seq > after`, in order, at most `limit`.
    fn audit_lines(&self, after: i64, limit: usize) -> Result<Vec<AuditLine>, StoreError>;
}

/// Which database, as `access.store` (`serve/config.rs`) names it once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    Sqlite {
        path: PathBuf,
    },
    /// A libpq connection string.
    Postgres {
        url: String,
    },
}

/// The clock, unix milliseconds (migrations record when they were applied).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Opens the configured store and applies any pending migrations.
pub fn open(config: &StoreConfig) -> Result<Box<dyn AccessStore>, StoreError> {
    Ok(match config {
        StoreConfig::Sqlite { path } => Box::new(SqliteStore::open(path)?),
        StoreConfig::Postgres { url } => Box::new(PostgresStore::open(url)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for state in [
            RequestState::Pending,
            RequestState::Approved,
            RequestState::Denied,
            RequestState::Cancelled,
            RequestState::Expired,
        ] {
            assert_eq!(RequestState::parse(state.as_str()), Some(state));
        }
        assert_eq!(RequestState::parse("granted"), None);
    }
}

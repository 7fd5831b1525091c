//! The store's operations, written once over [`Backend`]. Deciding a request is a conditional
//! `UPDATE … WHERE state = 'pending'`: of two concurrent deciders exactly one changes the row
//! (the other waits on the row lock, then finds it no longer pending), and only that one
//! inserts the grant, which `access_grants.request_id UNIQUE` backs.

use crate::audit::{self, AuditDraft, AuditLine, EventKind, GENESIS};

use super::sql::{Backend, Lock, Row, Tx, Val};
use super::{
    AccessRequest, AccessStore, Grant, ListFilter, RequestRecord, RequestState, Review, StoreError,
    Target, Verdict,
};

/// An [`AccessStore`] on a backend.
pub struct Store<B> {
    pub(super) backend: B,
}

const REQUEST_COLUMNS: &str = "id, requester, target, entry, duration_s, reason, state, \
                               created_at, decided_at, version";
const GRANT_COLUMNS: &str =
    "id, request_id, user_ref, target, not_before, not_after, revoked_at, revoked_by";

fn target_json(target: &Target) -> Result<String, StoreError> {
    serde_json::to_string(target).map_err(|error| StoreError::Corrupt {
        what: format!("cannot encode a target: {error}"),
    })
}

fn parse_target(text: &str) -> Result<Target, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt {
        what: format!("bad target `{text}`: {error}"),
    })
}

fn request_from(row: &Row) -> Result<AccessRequest, StoreError> {
    let state = row.text(6)?;
    Ok(AccessRequest {
        id: row.text(0)?,
        requester: row.text(1)?,
        target: parse_target(&row.text(2)?)?,
        entry: row.text(3)?,
        duration_s: row.int(4)?,
        reason: row.text(5)?,
        state: RequestState::parse(&state).ok_or_else(|| StoreError::Corrupt {
            what: format!("unknown request state `{state}`"),
        })?,
        created_at: row.int(7)?,
        decided_at: row.opt_int(8)?,
        version: row.int(9)?,
    })
}

fn grant_from(row: &Row) -> Result<Grant, StoreError> {
    Ok(Grant {
        id: row.text(0)?,
        request_id: row.text(1)?,
        user: row.text(2)?,
        target: parse_target(&row.text(3)?)?,
        not_before: row.int(4)?,
        not_after: row.int(5)?,
        revoked_at: row.opt_int(6)?,
        revoked_by: row.opt_text(7)?,
    })
}

fn review_from(row: &Row) -> Result<Review, StoreError> {
    let verdict = row.text(2)?;
    Ok(Review {
        request_id: row.text(0)?,
        reviewer: row.text(1)?,
        verdict: match verdict.as_str() {
            "approve" => Verdict::Approve,
            "deny" => Verdict::Deny,
            _ => {
                return Err(StoreError::Corrupt {
                    what: format!("unknown verdict `{verdict}`"),
                })
            }
        },
        comment: row.text(3)?,
        at: row.int(4)?,
    })
}

/// Appends `drafts` to the audit chain inside the caller's transaction.
fn append_audit(tx: &mut dyn Tx, drafts: &[AuditDraft]) -> Result<Vec<AuditLine>, StoreError> {
    if drafts.is_empty() {
        return Ok(Vec::new());
    }
    tx.lock(Lock::AuditChain)?;
    let head = tx.query(
        "SELECT seq, line_sha256 FROM audit_events ORDER BY seq DESC LIMIT 1",
        &[],
    )?;
    let (mut seq, mut prev) = match head.first() {
        Some(row) => (row.int(0)?, row.text(1)?),
        None => (0, GENESIS.to_owned()),
    };
    let mut lines = Vec::with_capacity(drafts.len());
    for draft in drafts {
        seq = seq.checked_add(1).ok_or_else(|| StoreError::Corrupt {
            what: "the audit sequence overflowed".into(),
        })?;
        let line = audit::render(seq, &prev, draft).map_err(|error| StoreError::Corrupt {
            what: format!("cannot encode an audit event: {error}"),
        })?;
        tx.execute(
            "INSERT INTO audit_events (seq, at, event, line, line_sha256) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                seq.into(),
                draft.at_ms.into(),
                draft.event.as_str().into(),
                line.line.as_str().into(),
                line.line_sha256.as_str().into(),
            ],
        )?;
        prev.clone_from(&line.line_sha256);
        lines.push(line);
    }
    Ok(lines)
}

fn load_request(tx: &mut dyn Tx, id: &str) -> Result<AccessRequest, StoreError> {
    let rows = tx.query(
        &format!("SELECT {REQUEST_COLUMNS} FROM access_requests WHERE id = $1"),
        &[id.into()],
    )?;
    match rows.first() {
        Some(row) => request_from(row),
        None => Err(StoreError::NotFound { id: id.to_owned() }),
    }
}

fn load_record(tx: &mut dyn Tx, id: &str) -> Result<RequestRecord, StoreError> {
    let request = load_request(tx, id)?;
    let reviews = tx
        .query(
            "SELECT request_id, reviewer, verdict, comment, at FROM access_reviews \
             WHERE request_id = $1 ORDER BY at, reviewer",
            &[id.into()],
        )?
        .iter()
        .map(review_from)
        .collect::<Result<_, _>>()?;
    let grant = tx
        .query(
            &format!("SELECT {GRANT_COLUMNS} FROM access_grants WHERE request_id = $1"),
            &[id.into()],
        )?
        .first()
        .map(grant_from)
        .transpose()?;
    Ok(RequestRecord {
        request,
        reviews,
        grant,
    })
}

/// Moves a pending request on (to `state`, or to itself for a review), or says why not.
fn touch_pending(
    tx: &mut dyn Tx,
    id: &str,
    state: RequestState,
    decided_at: Option<i64>,
) -> Result<(), StoreError> {
    let changed = tx.execute(
        "UPDATE access_requests SET state = $2, decided_at = $3, version = version + 1 \
         WHERE id = $1 AND state = 'pending'",
        &[id.into(), state.as_str().into(), decided_at.into()],
    )?;
    if changed == 1 {
        return Ok(());
    }
    let request = load_request(tx, id)?;
    Err(StoreError::AlreadyDecided {
        state: request.state,
    })
}

fn insert_grant(tx: &mut dyn Tx, grant: &Grant) -> Result<(), StoreError> {
    tx.execute(
        &format!(
            "INSERT INTO access_grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ),
        &[
            grant.id.as_str().into(),
            grant.request_id.as_str().into(),
            grant.user.as_str().into(),
            target_json(&grant.target)?.as_str().into(),
            grant.not_before.into(),
            grant.not_after.into(),
            grant.revoked_at.into(),
            grant.revoked_by.as_deref().into(),
        ],
    )?;
    Ok(())
}

fn load_grant(tx: &mut dyn Tx, id: &str) -> Result<Grant, StoreError> {
    let rows = tx.query(
        &format!("SELECT {GRANT_COLUMNS} FROM access_grants WHERE id = $1"),
        &[id.into()],
    )?;
    match rows.first() {
        Some(row) => grant_from(row),
        None => Err(StoreError::NotFound { id: id.to_owned() }),
    }
}

impl<B: Backend> AccessStore for Store<B> {
    fn create_request(
        &self,
        request: &AccessRequest,
        audit: &[AuditDraft],
    ) -> Result<Vec<AuditLine>, StoreError> {
        let target = target_json(&request.target)?;
        self.backend.transaction(&mut |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO access_requests ({REQUEST_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, NULL, 1)"
                ),
                &[
                    request.id.as_str().into(),
                    request.requester.as_str().into(),
                    target.as_str().into(),
                    request.entry.as_str().into(),
                    request.duration_s.into(),
                    request.reason.as_str().into(),
                    request.created_at.into(),
                ],
            )?;
            append_audit(tx, audit)
        })
    }

    fn get(&self, id: &str) -> Result<RequestRecord, StoreError> {
        self.backend.read(&mut |tx| load_record(tx, id))
    }

    fn list(&self, filter: &ListFilter) -> Result<Vec<AccessRequest>, StoreError> {
        let (condition, params): (&str, Vec<Val>) = match filter {
            ListFilter::ByRequester { requester } => {
                ("WHERE requester = $1", vec![requester.as_str().into()])
            }
            ListFilter::Pending { .. } => ("WHERE state = 'pending'", Vec::new()),
            ListFilter::All => ("", Vec::new()),
        };
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM access_requests {condition} ORDER BY created_at, id"
        );
        let rows = self.backend.read(&mut |tx| tx.query(&sql, &params))?;
        let mut requests = rows
            .iter()
            .map(request_from)
            .collect::<Result<Vec<_>, _>>()?;
        if let ListFilter::Pending {
            entries: Some(entries),
        } = filter
        {
            requests.retain(|request| entries.contains(&request.entry));
        }
        Ok(requests)
    }

    fn add_review(
        &self,
        review: &Review,
        audit: &[AuditDraft],
    ) -> Result<(RequestRecord, Vec<AuditLine>), StoreError> {
        self.backend.transaction(&mut |tx| {
            // Locks the row and checks it is pending; the state stays.
            touch_pending(tx, &review.request_id, RequestState::Pending, None)?;
            tx.execute(
                "INSERT INTO access_reviews (request_id, reviewer, verdict, comment, at) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    review.request_id.as_str().into(),
                    review.reviewer.as_str().into(),
                    review.verdict.as_str().into(),
                    review.comment.as_str().into(),
                    review.at.into(),
                ],
            )?;
            let lines = append_audit(tx, audit)?;
            Ok((load_record(tx, &review.request_id)?, lines))
        })
    }

    fn decide(
        &self,
        request_id: &str,
        state: RequestState,
        decided_at: i64,
        grant: Option<&Grant>,
        audit: &[AuditDraft],
    ) -> Result<Vec<AuditLine>, StoreError> {
        if state == RequestState::Pending {
            return Err(StoreError::Conflict {
                what: "a decision cannot leave a request pending".into(),
            });
        }
        if grant.is_some_and(|grant| grant.request_id != request_id) {
            return Err(StoreError::Conflict {
                what: format!("the grant is not for request `{request_id}`"),
            });
        }
        self.backend.transaction(&mut |tx| {
            touch_pending(tx, request_id, state, Some(decided_at))?;
            if let Some(grant) = grant {
                insert_grant(tx, grant)?;
            }
            append_audit(tx, audit)
        })
    }

    fn cancel(
        &self,
        request_id: &str,
        at: i64,
        audit: &[AuditDraft],
    ) -> Result<Vec<AuditLine>, StoreError> {
        self.backend.transaction(&mut |tx| {
            touch_pending(tx, request_id, RequestState::Cancelled, Some(at))?;
            append_audit(tx, audit)
        })
    }

    fn revoke_grant(
        &self,
        grant_id: &str,
        by: &str,
        at: i64,
        audit: &[AuditDraft],
    ) -> Result<(Grant, Vec<AuditLine>), StoreError> {
        self.backend.transaction(&mut |tx| {
            let changed = tx.execute(
                "UPDATE access_grants SET revoked_at = $2, revoked_by = $3 \
                 WHERE id = $1 AND revoked_at IS NULL",
                &[grant_id.into(), at.into(), by.into()],
            )?;
            let grant = load_grant(tx, grant_id)?;
            if changed != 1 {
                return Err(StoreError::Conflict {
                    what: format!("grant `{grant_id}` is already revoked"),
                });
            }
            Ok((grant, append_audit(tx, audit)?))
        })
    }

    fn active_grants(&self, now: i64) -> Result<Vec<Grant>, StoreError> {
        let rows = self.backend.read(&mut |tx| {
            tx.query(
                &format!(
                    "SELECT {GRANT_COLUMNS} FROM access_grants WHERE revoked_at IS NULL \
                     AND not_before <= $1 AND not_after > $1 ORDER BY not_after, id"
                ),
                &[now.into()],
            )
        })?;
        rows.iter().map(grant_from).collect()
    }

    fn expire(&self, now: i64) -> Result<(Vec<Grant>, Vec<AuditLine>), StoreError> {
        self.backend.transaction(&mut |tx| {
            let due = tx
                .query(
                    &format!(
                        "SELECT {GRANT_COLUMNS} FROM access_grants WHERE revoked_at IS NULL \
                         AND expired_at IS NULL AND not_after <= $1 ORDER BY not_after, id"
                    ),
                    &[now.into()],
                )?
                .iter()
                .map(grant_from)
                .collect::<Result<Vec<_>, _>>()?;
            let mut expired = Vec::new();
            let mut drafts = Vec::new();
            for grant in due {
                // Another replica may have expired it meanwhile: once each.
                let changed = tx.execute(
                    "UPDATE access_grants SET expired_at = $2 \
                     WHERE id = $1 AND expired_at IS NULL AND revoked_at IS NULL",
                    &[grant.id.as_str().into(), now.into()],
                )?;
                if changed != 1 {
                    continue;
                }
                drafts.push(AuditDraft {
                    event: EventKind::Expired,
                    at_ms: now,
                    actor: "system".into(),
                    request_id: Some(grant.request_id.clone()),
                    grant_id: Some(grant.id.clone()),
                    target: serde_json::to_value(&grant.target).ok(),
                    detail: serde_json::json!({
                        "user": grant.user,
                        "not_after": audit::rfc3339_millis(grant.not_after),
                    }),
                });
                expired.push(grant);
            }
            Ok((expired, append_audit(tx, &drafts)?))
        })
    }

    fn audit_lines(&self, after: i64, limit: usize) -> Result<Vec<AuditLine>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.backend.read(&mut |tx| {
            tx.query(
                "SELECT seq, line, line_sha256 FROM audit_events WHERE seq > $1 \
                 ORDER BY seq LIMIT $2",
                &[after.into(), limit.into()],
            )
        })?;
        rows.iter()
            .map(|row| {
                Ok(AuditLine {
                    seq: row.int(0)?,
                    line: row.text(1)?,
                    line_sha256: row.text(2)?,
                })
            })
            .collect()
    }
}

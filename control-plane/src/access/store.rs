//! The store the access API works on (`access_store`), and [`MemoryStore`], an in-memory
//! store with the same conditional updates for tests, with a switch that makes it "down".

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub use crate::access_store::{
    open, AccessRequest, AccessStore, Grant, ListFilter, RequestRecord, RequestState, Review,
    StoreError, Target, Verdict,
};
pub use crate::audit::{AuditDraft, AuditLine, EventKind};

/// An in-memory [`AccessStore`] with the same conditional updates as the durable ones, and a
/// switch that makes every call fail as an unreachable database does.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Memory>,
    down: AtomicBool,
}

#[derive(Debug)]
struct Memory {
    requests: BTreeMap<String, RequestRecord>,
    /// Grant id → request id.
    grants: BTreeMap<String, String>,
    seq: i64,
    prev: String,
    audit: Vec<AuditLine>,
}

impl Memory {
    fn lines(&mut self, audit: &[AuditDraft]) -> Result<Vec<AuditLine>, StoreError> {
        audit
            .iter()
            .map(|draft| {
                self.seq = self.seq.saturating_add(1);
                let line = crate::audit::render(self.seq, &self.prev, draft).map_err(|e| {
                    StoreError::Corrupt {
                        what: e.to_string(),
                    }
                })?;
                self.prev.clone_from(&line.line_sha256);
                self.audit.push(line.clone());
                Ok(line)
            })
            .collect()
    }

    fn record(&mut self, id: &str) -> Result<&mut RequestRecord, StoreError> {
        self.requests
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound { id: id.to_owned() })
    }
}

impl Default for Memory {
    fn default() -> Memory {
        Memory {
            requests: BTreeMap::new(),
            grants: BTreeMap::new(),
            seq: 0,
            prev: crate::audit::GENESIS.to_owned(),
            audit: Vec::new(),
        }
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Makes every call fail with [`StoreError::Unavailable`] (or work again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Memory>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable {
                cause: String::from("the database is down"),
            });
        }
        self.inner.lock().map_err(|_| StoreError::Unavailable {
            cause: String::from("a writer panicked"),
        })
    }
}

fn pending(record: &RequestRecord) -> Result<(), StoreError> {
    match record.request.state {
        RequestState::Pending => Ok(()),
        state => Err(StoreError::AlreadyDecided { state }),
    }
}

impl AccessStore for MemoryStore {
    fn create_request(
        &self,
        request: &AccessRequest,
        audit: &[AuditDraft],
    ) -> Result<Vec<AuditLine>, StoreError> {
        let mut memory = self.lock()?;
        if memory.requests.contains_key(&request.id) {
            return Err(StoreError::Conflict {
                what: format!("request `{}` exists", request.id),
            });
        }
        let mut request = request.clone();
        request.state = RequestState::Pending;
        request.version = 1;
        memory.requests.insert(
            request.id.clone(),
            RequestRecord {
                request,
                reviews: Vec::new(),
                grant: None,
            },
        );
        memory.lines(audit)
    }

    fn get(&self, id: &str) -> Result<RequestRecord, StoreError> {
        let mut memory = self.lock()?;
        memory.record(id).cloned()
    }

    fn list(&self, filter: &ListFilter) -> Result<Vec<AccessRequest>, StoreError> {
        let memory = self.lock()?;
        let mut found: Vec<AccessRequest> = memory
            .requests
            .values()
            .map(|record| &record.request)
            .filter(|request| match filter {
                ListFilter::ByRequester { requester } => request.requester == *requester,
                ListFilter::Pending { entries } => {
                    request.state == RequestState::Pending
                        && entries.as_ref().is_none_or(|e| e.contains(&request.entry))
                }
                ListFilter::All => true,
            })
            .cloned()
            .collect();
        found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(found)
    }

    fn add_review(
        &self,
        review: &Review,
        audit: &[AuditDraft],
    ) -> Result<(RequestRecord, Vec<AuditLine>), StoreError> {
        let mut memory = self.lock()?;
        let record = memory.record(&review.request_id)?;
        pending(record)?;
        if record.reviews.iter().any(|r| r.reviewer == review.reviewer) {
            return Err(StoreError::Conflict {
                what: format!("`{}` already reviewed", review.reviewer),
            });
        }
        record.reviews.push(review.clone());
        record.request.version = record.request.version.saturating_add(1);
        let record = record.clone();
        Ok((record, memory.lines(audit)?))
    }

    fn decide(
        &self,
        request_id: &str,
        state: RequestState,
        decided_at: i64,
        grant: Option<&Grant>,
        audit: &[AuditDraft],
    ) -> Result<Vec<AuditLine>, StoreError> {
        let mut memory = self.lock()?;
        let record = memory.record(request_id)?;
        pending(record)?;
        record.request.state = state;
        record.request.decided_at = Some(decided_at);
        record.request.version = record.request.version.saturating_add(1);
        record.grant = grant.cloned();
        if let Some(grant) = grant {
            memory
                .grants
                .insert(grant.id.clone(), request_id.to_owned());
        }
        memory.lines(audit)
    }

    fn cancel(
        &self,
        request_id: &str,
        at: i64,
        audit: &[AuditDraft],
    ) -> Result<Vec<AuditLine>, StoreError> {
        self.decide(request_id, RequestState::Cancelled, at, None, audit)
    }

    fn revoke_grant(
        &self,
        grant_id: &str,
        by: &str,
        at: i64,
        audit: &[AuditDraft],
    ) -> Result<(Grant, Vec<AuditLine>), StoreError> {
        let mut memory = self.lock()?;
        let not_found = || StoreError::NotFound {
            id: grant_id.to_owned(),
        };
        let request_id = memory.grants.get(grant_id).cloned().ok_or_else(not_found)?;
        let record = memory.record(&request_id)?;
        let grant = record.grant.as_mut().ok_or_else(not_found)?;
        if grant.revoked_at.is_some() {
            return Err(StoreError::Conflict {
                what: format!("grant `{grant_id}` is already revoked"),
            });
        }
        grant.revoked_at = Some(at);
        grant.revoked_by = Some(by.to_owned());
        let grant = grant.clone();
        Ok((grant, memory.lines(audit)?))
    }

    fn active_grants(&self, now: i64) -> Result<Vec<Grant>, StoreError> {
        let memory = self.lock()?;
        Ok(memory
            .requests
            .values()
            .filter_map(|record| record.grant.as_ref())
            .filter(|g| g.revoked_at.is_none() && g.not_before <= now && now < g.not_after)
            .cloned()
            .collect())
    }

    fn expire(&self, now: i64) -> Result<(Vec<Grant>, Vec<AuditLine>), StoreError> {
        let mut memory = self.lock()?;
        let mut expired = Vec::new();
        for record in memory.requests.values_mut() {
            let Some(grant) = &record.grant else { continue };
            if record.request.state == RequestState::Approved
                && grant.revoked_at.is_none()
                && grant.not_after <= now
            {
                record.request.state = RequestState::Expired;
                expired.push(grant.clone());
            }
        }
        let drafts: Vec<AuditDraft> = expired
            .iter()
            .map(|grant| AuditDraft {
                event: EventKind::Expired,
                at_ms: now,
                actor: String::from("system"),
                request_id: Some(grant.request_id.clone()),
                grant_id: Some(grant.id.clone()),
                target: serde_json::to_value(&grant.target).ok(),
                detail: serde_json::json!({}),
            })
            .collect();
        let lines = memory.lines(&drafts)?;
        Ok((expired, lines))
    }

    fn audit_lines(&self, after: i64, limit: usize) -> Result<Vec<AuditLine>, StoreError> {
        let memory = self.lock()?;
        Ok(memory
            .audit
            .iter()
            .filter(|line| line.seq > after)
            .take(limit)
            .cloned()
            .collect())
    }
}

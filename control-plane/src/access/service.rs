//! The access service: requests, reviews and grants over the store, each decision made by
//! core's access policy over the current catalog snapshot, each change audited.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use meshgate_core::access::{
    assess, format_duration, is_admin, may_revoke, parse_duration, review, AccessPolicy,
    AccessTarget, ApproverSpec, Assessment, GrantRef, PendingRequest, Refusal, RequestDraft,
    ReviewOutcome, ReviewVerdict, TargetSpec,
};
use meshgate_core::catalog::Catalog;
use meshgate_core::rules::RuleSet;
use meshgate_core::snapshot::{DecodeLimits, GrantTarget, Grants, Snapshot};
use meshgate_core::UnixTime;
use serde_json::{json, Value};

use super::auth::Authenticator;
use super::err::ApiError;
use super::facts::{SnapshotFacts, TestedAnnotations};
use crate::access_store::{
    AccessRequest, AccessStore, Grant, ListFilter, RequestRecord, RequestState, Review, StoreError,
    Target, Verdict,
};
use crate::audit::{AuditDraft, AuditLine, AuditSink, EventKind};
use crate::catalog::ResourceAnnotations;
use crate::serve::Published;
use crate::snapshot::TrustedKey;

/// The catalog snapshot served now, as the syncer published it.
pub type CurrentSnapshot = Arc<dyn Fn() -> Option<Arc<Published>> + Send + Sync>;
/// Unix milliseconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What a call decides over: the snapshot served when it came in, and the annotations
/// published with it.
pub struct CatalogNow {
    pub catalog: Arc<Catalog>,
    pub annotations: Arc<ResourceAnnotations>,
}

/// Where audit lines go besides the store: stdout and/or a file (`access.audit`).
pub type AuditSettings = crate::audit::AuditConfig;

pub struct AccessService {
    policy: AccessPolicy,
    /// The annotations the policy's conditions test (see `facts`).
    tested: TestedAnnotations,
    store: Arc<dyn AccessStore>,
    auth: Authenticator,
    current: CurrentSnapshot,
    trusted: TrustedKey,
    clock: Clock,
    /// The decoded snapshot, by ETag.
    decoded: Mutex<Option<(String, Arc<Catalog>)>>,
    listeners: Mutex<Vec<Sender<()>>>,
    audit: Mutex<AuditSink>,
    /// `access.notify`: approvers and requesters told of what concerns them.
    notifier: Option<super::Notifier>,
}

pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

impl AccessService {
    pub fn new(
        policy: AccessPolicy,
        store: Arc<dyn AccessStore>,
        auth: Authenticator,
        current: CurrentSnapshot,
        trusted: TrustedKey,
        audit: &AuditSettings,
        clock: Clock,
    ) -> Result<AccessService, crate::audit::AuditError> {
        let sink = AuditSink::open(audit)?;
        Ok(AccessService {
            tested: TestedAnnotations::of(&policy),
            policy,
            store,
            auth,
            current,
            trusted,
            clock,
            decoded: Mutex::new(None),
            listeners: Mutex::new(Vec::new()),
            audit: Mutex::new(sink),
            notifier: None,
        })
    }

    /// Each time grants change (approval, auto-approval, revocation, expiry) `()` is sent
    /// here; a listener that is gone is dropped.
    /// Sends access notifications through `notifier` (`access.notify`).
    pub fn with_notifier(mut self, notifier: Option<super::Notifier>) -> AccessService {
        self.notifier = notifier;
        self
    }

    fn notify(&self, notice: Option<super::notify::Notice>) {
        if let (Some(notifier), Some(notice)) = (&self.notifier, notice) {
            notifier.send(notice);
        }
    }

    pub fn subscribe(&self, listener: Sender<()>) {
        if let Ok(mut listeners) = self.listeners.lock() {
            listeners.push(listener);
        }
    }

    fn grants_changed(&self) {
        if let Ok(mut listeners) = self.listeners.lock() {
            listeners.retain(|listener| listener.send(()).is_ok());
        }
    }

    fn audit(&self, lines: &[AuditLine]) {
        // The store holds every line durably; the sinks are copies for collectors.
        if let Ok(mut out) = self.audit.lock() {
            let _ = out.write(lines);
        }
    }

    fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// The grants in force now, for the snapshot. The filter drops each at `not_after` by
    /// its own clock.
    pub fn active_grants(&self, now: UnixTime) -> Result<Grants, ApiError> {
        // The end of the second `now` names: a grant made earlier in that second is in force.
        self.active_grants_at(now.secs().saturating_mul(1000).saturating_add(999))
    }

    /// [`AccessService::active_grants`] at `now_ms` (Unix milliseconds): what the syncer
    /// publishes, so a grant ending within the current second is not dropped early.
    pub fn active_grants_at(&self, now_ms: i64) -> Result<Grants, ApiError> {
        let grants = self.store.active_grants(now_ms)?;
        Ok(Grants::new(
            grants
                .into_iter()
                .map(|grant| meshgate_core::snapshot::Grant {
                    id: grant.id,
                    user: grant.user,
                    target: match grant.target {
                        Target::Group { group } => GrantTarget::Group(group),
                        Target::Resource { resource_kind, id } => GrantTarget::Resource {
                            kind: resource_kind,
                            id,
                        },
                    },
                    // Milliseconds rounded up: a grant never ends early at the edge.
                    not_after: UnixTime::from_secs(grant.not_after.saturating_add(999) / 1000),
                })
                .collect(),
        ))
    }

    /// Marks grants past `not_after` expired, with their audit lines. Called every second.
    pub fn tick(&self) -> Result<usize, ApiError> {
        let (expired, lines) = self.store.expire(self.now_ms())?;
        self.audit(&lines);
        for grant in &expired {
            self.notify(super::notices::ended(grant, &lines));
        }
        if !expired.is_empty() {
            self.grants_changed();
        }
        Ok(expired.len())
    }

    /// The current catalog, decoded once per published version, with the annotations
    /// published with it (which may change while the version does not).
    fn catalog(&self) -> Result<CatalogNow, ApiError> {
        let published = (self.current)().ok_or(ApiError::NoCatalog)?;
        let annotations = Arc::clone(&published.annotations);
        let mut decoded = self.decoded.lock().map_err(|_| ApiError::Internal {
            detail: String::from("catalog cache lock poisoned"),
        })?;
        if let Some((etag, catalog)) = decoded.as_ref() {
            if *etag == published.etag {
                return Ok(CatalogNow {
                    catalog: Arc::clone(catalog),
                    annotations,
                });
            }
        }
        let snapshot = Snapshot::decode(
            &published.bytes,
            std::slice::from_ref(&self.trusted),
            &DecodeLimits::default(),
        )
        .map_err(|e| ApiError::Internal {
            detail: format!("the published snapshot does not decode: {e}"),
        })?;
        let catalog = Arc::new(Catalog {
            snapshot,
            rules: RuleSet::default(),
            grants: Grants::default(),
        });
        *decoded = Some((published.etag.clone(), Arc::clone(&catalog)));
        Ok(CatalogNow {
            catalog,
            annotations,
        })
    }

    /// The keys the policy's `unless_annotation` conditions test: what the syncer reads from
    /// the catalog for them.
    pub fn annotation_keys(&self) -> std::collections::BTreeSet<String> {
        self.tested.keys()
    }

    fn facts<'a>(&'a self, now: &'a CatalogNow) -> SnapshotFacts<'a> {
        SnapshotFacts {
            snapshot: &now.catalog.snapshot,
            annotations: &now.annotations,
            tested: &self.tested,
        }
    }

    /// The caller's user ref, and the catalog it was found in.
    pub fn caller(&self, authorization: Option<&str>) -> Result<(String, CatalogNow), ApiError> {
        let catalog = self.catalog()?;
        let now = UnixTime::from_secs(self.now_ms() / 1000);
        let user = self.auth.caller(authorization, &catalog.catalog, now)?;
        Ok((user, catalog))
    }

    /// `POST /v1/sync` needs an admin of the access policy.
    pub fn require_admin(&self, authorization: Option<&str>) -> Result<String, ApiError> {
        let (user, catalog) = self.caller(authorization)?;
        let facts = self.facts(&catalog);
        if is_admin(&self.policy, &user, &facts) {
            Ok(user)
        } else {
            Err(ApiError::AdminOnly)
        }
    }

    pub fn create(
        &self,
        caller: &str,
        catalog: &CatalogNow,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let body: CreateBody = parse_body(body)?;
        let target = body.target.into_target()?;
        let duration_s = parse_duration(&body.duration)
            .map_err(|e| ApiError::bad("duration", format!("`{}` {e}", body.duration)))?;
        let draft = RequestDraft {
            requester: caller.to_owned(),
            target,
            duration_s,
            reason: body.reason,
        };
        let facts = self.facts(catalog);
        let deciding = facts.deciding(&self.policy, &draft.target);
        let assessment = assess(&deciding, &draft, &facts)?;
        let draft = draft.normalized()?;
        let now = self.now_ms();
        let entry = match &assessment {
            Assessment::AutoApproved { entry, .. } | Assessment::Pending { entry, .. } => entry,
        };
        let request = AccessRequest {
            id: new_id("req"),
            requester: draft.requester.clone(),
            target: store_target(&draft.target),
            entry: entry.clone(),
            duration_s: i64::try_from(duration_s).unwrap_or(i64::MAX),
            reason: draft.reason.clone().unwrap_or_default(),
            state: RequestState::Pending,
            created_at: now,
            decided_at: None,
            version: 1,
        };
        let target_json = serde_json::to_value(&request.target).ok();
        let draft_event = |event, detail| AuditDraft {
            event,
            at_ms: now,
            actor: request.requester.clone(),
            request_id: Some(request.id.clone()),
            grant_id: None,
            target: target_json.clone(),
            detail,
        };
        let requested = draft_event(
            EventKind::Requested,
            json!({"entry": entry, "duration_s": duration_s, "reason": request.reason}),
        );
        let lines = self.store.create_request(&request, &[requested])?;
        self.audit(&lines);
        if let Assessment::Pending { approvers, .. } = &assessment {
            self.notify(super::notices::pending(&request, approvers, &lines));
        }
        let mut condition = None;
        if let Assessment::AutoApproved {
            condition: matched, ..
        } = &assessment
        {
            let grant = new_grant(&request, now);
            let mut approved = draft_event(
                EventKind::AutoApproved,
                json!({"entry": entry, "condition": matched}),
            );
            approved.actor = String::from("system");
            let mut granted =
                draft_event(EventKind::Granted, json!({"not_after_ms": grant.not_after}));
            granted.actor = String::from("system");
            granted.grant_id = Some(grant.id.clone());
            let lines = self.store.decide(
                &request.id,
                RequestState::Approved,
                now,
                Some(&grant),
                &[approved, granted],
            )?;
            self.audit(&lines);
            self.grants_changed();
            self.notify(super::notices::decided(&request, Some(&grant), &lines));
            condition = Some(matched.clone());
        }
        let record = self.store.get(&request.id)?;
        let mut body = request_json(&record);
        if let (Some(condition), Some(object)) = (condition, body.as_object_mut()) {
            object.insert(
                String::from("auto_approved"),
                json!({"condition": condition}),
            );
        }
        Ok(body)
    }

    pub fn list(&self, caller: &str, catalog: &CatalogNow, query: &str) -> Result<Value, ApiError> {
        let facts = self.facts(catalog);
        let flag = |name: &str| query_flag(query, name);
        let requests = if flag("mine")? {
            self.store.list(&ListFilter::ByRequester {
                requester: caller.to_owned(),
            })?
        } else if flag("pending_for_me")? {
            self.store
                .list(&ListFilter::Pending { entries: None })?
                .into_iter()
                .filter(|request| self.may_review(request, &[], caller, &facts).is_ok())
                .collect()
        } else if is_admin(&self.policy, caller, &facts) {
            self.store.list(&ListFilter::All)?
        } else {
            return Err(ApiError::AdminOnly);
        };
        let listed: Vec<Value> = requests.iter().map(request_summary).collect();
        Ok(json!({"requests": listed}))
    }

    /// Whether `reviewer` may review `request` now (core's `review`, nothing stored).
    fn may_review(
        &self,
        request: &AccessRequest,
        reviews: &[Review],
        reviewer: &str,
        facts: &SnapshotFacts<'_>,
    ) -> Result<ReviewOutcome, Refusal> {
        review(
            &self.policy,
            &pending_request(request, reviews),
            reviewer,
            facts,
            ReviewVerdict::Approve,
        )
    }

    pub fn get(&self, caller: &str, catalog: &CatalogNow, id: &str) -> Result<Value, ApiError> {
        let record = self.store.get(id)?;
        let facts = self.facts(catalog);
        let visible = record.request.requester == caller
            || is_admin(&self.policy, caller, &facts)
            || !matches!(
                self.may_review(&record.request, &[], caller, &facts),
                Err(Refusal::NotAnApprover { .. } | Refusal::InvalidUser { .. })
            );
        if !visible {
            // Not told apart from a request that does not exist.
            return Err(ApiError::NotFound {
                what: "request",
                id: id.to_owned(),
            });
        }
        Ok(request_json(&record))
    }

    pub fn review(
        &self,
        caller: &str,
        catalog: &CatalogNow,
        id: &str,
        verdict: ReviewVerdict,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let body: CommentBody = parse_body(body)?;
        let record = self.store.get(id)?;
        if record.request.state != RequestState::Pending {
            return Err(ApiError::AlreadyDecided {
                state: record.request.state.as_str(),
            });
        }
        let facts = self.facts(catalog);
        let pending = pending_request(&record.request, &record.reviews);
        let outcome = review(&self.policy, &pending, caller, &facts, verdict)?;
        let now = self.now_ms();
        let request = &record.request;
        let target_json = serde_json::to_value(&request.target).ok();
        let comment = body.comment.unwrap_or_default();
        let event = |event, detail| AuditDraft {
            event,
            at_ms: now,
            actor: caller.to_owned(),
            request_id: Some(request.id.clone()),
            grant_id: None,
            target: target_json.clone(),
            detail,
        };
        let store_verdict = match verdict {
            ReviewVerdict::Approve => Verdict::Approve,
            ReviewVerdict::Deny => Verdict::Deny,
        };
        let reviewed = event(
            EventKind::Reviewed,
            json!({"verdict": store_verdict.as_str(), "comment": comment}),
        );
        let (after, lines) = self
            .store
            .add_review(
                &Review {
                    request_id: request.id.clone(),
                    reviewer: caller.to_owned(),
                    verdict: store_verdict,
                    comment: comment.clone(),
                    at: now,
                },
                &[reviewed],
            )
            .map_err(|error| match error {
                StoreError::Conflict { .. } => ApiError::Refused(Refusal::AlreadyReviewed {
                    user: caller.to_owned(),
                }),
                other => other.into(),
            })?;
        self.audit(&lines);
        // Count again from what the store holds: another reviewer may have been first.
        let needed = self
            .policy
            .entry(&request.entry)
            .map_or(1, |entry| usize::from(entry.approvals));
        let approvals = after
            .reviews
            .iter()
            .filter(|r| r.verdict == Verdict::Approve && r.reviewer != request.requester)
            .count();
        let decided = match outcome {
            ReviewOutcome::Denied => Some((RequestState::Denied, None)),
            ReviewOutcome::Approved { .. } | ReviewOutcome::StillPending { .. }
                if approvals >= needed =>
            {
                Some((RequestState::Approved, Some(new_grant(request, now))))
            }
            _ => None,
        };
        if let Some((state, grant)) = decided {
            let mut drafts = vec![event(
                if state == RequestState::Denied {
                    EventKind::Denied
                } else {
                    EventKind::Approved
                },
                json!({"comment": comment, "approvals": approvals}),
            )];
            if let Some(grant) = &grant {
                let mut granted =
                    event(EventKind::Granted, json!({"not_after_ms": grant.not_after}));
                granted.grant_id = Some(grant.id.clone());
                drafts.push(granted);
            }
            let lines = self
                .store
                .decide(&request.id, state, now, grant.as_ref(), &drafts)?;
            self.audit(&lines);
            self.notify(super::notices::decided(request, grant.as_ref(), &lines));
            if grant.is_some() {
                self.grants_changed();
            }
        }
        Ok(request_json(&self.store.get(id)?))
    }

    pub fn cancel(&self, caller: &str, id: &str) -> Result<Value, ApiError> {
        let record = self.store.get(id)?;
        if record.request.requester != caller {
            return Err(ApiError::NotRequester);
        }
        let now = self.now_ms();
        let cancelled = AuditDraft {
            event: EventKind::Cancelled,
            at_ms: now,
            actor: caller.to_owned(),
            request_id: Some(id.to_owned()),
            grant_id: None,
            target: serde_json::to_value(&record.request.target).ok(),
            detail: json!({}),
        };
        let lines = self.store.cancel(id, now, &[cancelled])?;
        self.audit(&lines);
        Ok(request_json(&self.store.get(id)?))
    }

    pub fn grants(
        &self,
        caller: &str,
        catalog: &CatalogNow,
        query: &str,
    ) -> Result<Value, ApiError> {
        let facts = self.facts(catalog);
        let mine = query_flag(query, "mine")?;
        let all = self.store.active_grants(self.now_ms())?;
        let admin = is_admin(&self.policy, caller, &facts);
        let mut shown = Vec::new();
        for grant in all {
            let visible = if mine {
                grant.user == caller
            } else {
                admin || self.revoke_right(&grant, caller, &facts).is_ok()
            };
            if visible {
                shown.push(grant_json(&grant));
            }
        }
        Ok(json!({"grants": shown}))
    }

    fn revoke_right(
        &self,
        grant: &Grant,
        actor: &str,
        facts: &SnapshotFacts<'_>,
    ) -> Result<meshgate_core::access::RevokeRight, ApiError> {
        let entry = self.store.get(&grant.request_id)?.request.entry;
        Ok(may_revoke(
            &self.policy,
            &GrantRef {
                grantee: grant.user.clone(),
                target: core_target(&grant.target),
                entry,
            },
            actor,
            facts,
        )?)
    }

    pub fn revoke(
        &self,
        caller: &str,
        catalog: &CatalogNow,
        grant_id: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let body: CommentBody = parse_body(body)?;
        let facts = self.facts(catalog);
        let now = self.now_ms();
        let grant = self
            .store
            .active_grants(now)?
            .into_iter()
            .find(|grant| grant.id == grant_id)
            .ok_or_else(|| ApiError::NotFound {
                what: "active grant",
                id: grant_id.to_owned(),
            })?;
        let right = self.revoke_right(&grant, caller, &facts)?;
        let revoked = AuditDraft {
            event: EventKind::Revoked,
            at_ms: now,
            actor: caller.to_owned(),
            request_id: Some(grant.request_id.clone()),
            grant_id: Some(grant.id.clone()),
            target: serde_json::to_value(&grant.target).ok(),
            detail: json!({"comment": body.comment.unwrap_or_default(), "right": format!("{right:?}").to_lowercase()}),
        };
        let (grant, lines) = self
            .store
            .revoke_grant(grant_id, caller, now, &[revoked])
            .map_err(|error| match error {
                StoreError::Conflict { .. } => ApiError::AlreadyRevoked,
                other => other.into(),
            })?;
        self.audit(&lines);
        self.grants_changed();
        self.notify(super::notices::ended(&grant, &lines));
        Ok(grant_json(&grant))
    }

    /// The requestable entries, for a request form.
    pub fn policy_json(&self) -> Value {
        let entries: Vec<Value> = self
            .policy
            .requestable
            .iter()
            .map(|entry| {
                let target = match &entry.target {
                    TargetSpec::Group(group) => json!({"group": group.catalog_ref}),
                    TargetSpec::Resource { kind, id } => json!({"resource": {"kind": kind, "id": id}}),
                };
                let approvers = match &entry.approvers {
                    ApproverSpec::Owners => json!("owners"),
                    ApproverSpec::Groups(groups) => {
                        json!(groups.iter().map(|g| g.catalog_ref.clone()).collect::<Vec<_>>())
                    }
                };
                json!({
                    "name": entry.name,
                    "target": target,
                    "requesters": entry.requesters.as_ref().map(|groups| groups.iter().map(|g| g.catalog_ref.clone()).collect::<Vec<_>>()),
                    "max_duration": format_duration(entry.max_duration_s),
                    "max_duration_s": entry.max_duration_s,
                    "reason": if entry.reason_required { "required" } else { "optional" },
                    "approvals": entry.approvals,
                    "approvers": approvers,
                    "auto_approve": entry.auto_approve.iter().map(|rule| rule.name.clone()).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({"requestable": entries})
    }
}

/// `?name=1` (or `true`); absent is false.
fn query_flag(query: &str, name: &str) -> Result<bool, ApiError> {
    let mut found = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            found = match value {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => return Err(ApiError::bad(name, format!("`{value}` is not 1 or 0"))),
            };
        }
    }
    Ok(found)
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:032x}", rand::random::<u128>())
}

fn new_grant(request: &AccessRequest, now: i64) -> Grant {
    Grant {
        id: new_id("grt"),
        request_id: request.id.clone(),
        user: request.requester.clone(),
        target: request.target.clone(),
        not_before: now,
        not_after: now.saturating_add(request.duration_s.saturating_mul(1000)),
        revoked_at: None,
        revoked_by: None,
    }
}

fn pending_request(request: &AccessRequest, reviews: &[Review]) -> PendingRequest {
    PendingRequest {
        requester: request.requester.clone(),
        target: core_target(&request.target),
        entry: request.entry.clone(),
        approvals: reviews
            .iter()
            .filter(|r| r.verdict == Verdict::Approve)
            .map(|r| r.reviewer.clone())
            .collect(),
    }
}

fn store_target(target: &AccessTarget) -> Target {
    match target {
        AccessTarget::Group(group) => Target::Group {
            group: group.clone(),
        },
        AccessTarget::Resource { kind, id } => Target::Resource {
            resource_kind: kind.clone(),
            id: id.clone(),
        },
    }
}

fn core_target(target: &Target) -> AccessTarget {
    match target {
        Target::Group { group } => AccessTarget::Group(group.clone()),
        Target::Resource { resource_kind, id } => AccessTarget::Resource {
            kind: resource_kind.clone(),
            id: id.clone(),
        },
    }
}

/// A target as the API writes it: `{"group": …}` or `{"resource": {"kind", "id"}}`.
pub(crate) fn target_json(target: &Target) -> Value {
    match target {
        Target::Group { group } => json!({"group": group}),
        Target::Resource { resource_kind, id } => {
            json!({"resource": {"kind": resource_kind, "id": id}})
        }
    }
}

fn request_summary(request: &AccessRequest) -> Value {
    json!({
        "id": request.id,
        "requester": request.requester,
        "target": target_json(&request.target),
        "entry": request.entry,
        "duration": format_duration(u64::try_from(request.duration_s).unwrap_or(0)),
        "duration_s": request.duration_s,
        "reason": request.reason,
        "state": request.state.as_str(),
        "created_at_ms": request.created_at,
        "decided_at_ms": request.decided_at,
    })
}

fn request_json(record: &RequestRecord) -> Value {
    let mut body = request_summary(&record.request);
    if let Some(object) = body.as_object_mut() {
        object.insert(
            String::from("reviews"),
            record
                .reviews
                .iter()
                .map(|r| {
                    json!({"reviewer": r.reviewer, "verdict": r.verdict.as_str(),
                           "comment": r.comment, "at_ms": r.at})
                })
                .collect(),
        );
        object.insert(
            String::from("grant"),
            record.grant.as_ref().map_or(Value::Null, grant_json),
        );
    }
    body
}

fn grant_json(grant: &Grant) -> Value {
    json!({
        "id": grant.id,
        "request_id": grant.request_id,
        "user": grant.user,
        "target": target_json(&grant.target),
        "not_before_ms": grant.not_before,
        "not_after_ms": grant.not_after,
        "revoked_at_ms": grant.revoked_at,
        "revoked_by": grant.revoked_by,
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    target: TargetBody,
    duration: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetBody {
    #[serde(default)]
    resource: Option<ResourceBody>,
    #[serde(default)]
    group: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceBody {
    kind: String,
    id: String,
}

impl TargetBody {
    fn into_target(self) -> Result<AccessTarget, ApiError> {
        match (self.resource, self.group) {
            (Some(resource), None) => Ok(AccessTarget::Resource {
                kind: resource.kind,
                id: resource.id,
            }),
            (None, Some(group)) => Ok(AccessTarget::Group(group)),
            _ => Err(ApiError::bad(
                "target",
                "give exactly one of `resource` and `group`",
            )),
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    #[serde(default)]
    comment: Option<String>,
}

/// Fields that would name someone other than the caller: refused, never read.
const IDENTITY_FIELDS: [&str; 5] = [
    "requester",
    "user",
    "requested_by",
    "on_behalf_of",
    "reviewer",
];

fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &Value) -> Result<T, ApiError> {
    if body.is_null() {
        return Ok(T::default());
    }
    if let Some(object) = body.as_object() {
        if IDENTITY_FIELDS
            .iter()
            .any(|field| object.contains_key(*field))
        {
            return Err(ApiError::RequesterInBody);
        }
    }
    serde_json::from_value(body.clone()).map_err(|e| ApiError::bad("body", e.to_string()))
}

impl Default for CreateBody {
    fn default() -> CreateBody {
        CreateBody {
            target: TargetBody {
                resource: None,
                group: None,
            },
            duration: String::new(),
            reason: None,
        }
    }
}

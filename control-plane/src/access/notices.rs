//! What an access event says to whom: the approvers of a request that waits for them, and
//! the requester when it is decided, revoked or over. Pure: built from the stored request or
//! grant and the audit line the event wrote; [`super::notify`] delivers them.

use meshgate_core::access::{format_duration, Approvers};
use serde_json::Value;

use super::notify::{Notice, Severity};
use crate::access_store::{AccessRequest, Grant, Target};
use crate::audit::{rfc3339_millis, AuditLine};

/// `carol` for `user:default/carol`; other refs as they are.
fn short_name(entity_ref: &str) -> &str {
    entity_ref
        .strip_prefix("user:default/")
        .unwrap_or(entity_ref)
}

/// `airflow.dag etl_daily`, or `membership of group:default/data-eng`.
fn label(target: &Target) -> String {
    match target {
        Target::Resource { resource_kind, id } => format!("{resource_kind} {id}"),
        Target::Group { group } => format!("membership of {group}"),
    }
}

fn duration(seconds: i64) -> String {
    format_duration(u64::try_from(seconds).unwrap_or(0))
}

/// The lines recording `event`, in order: each line's seq and text, and the line parsed.
fn lines_of<'a>(
    lines: &'a [AuditLine],
    event: &'a str,
) -> impl Iterator<Item = (Written, Value)> + 'a {
    lines.iter().filter_map(move |line| {
        let value: Value = serde_json::from_str(&line.line).ok()?;
        (value.get("event").and_then(Value::as_str) == Some(event))
            .then(|| ((line.seq, line.line.clone()), value))
    })
}

/// The first of `lines` recording `event`.
fn line_of(lines: &[AuditLine], event: &str) -> Option<(Written, Value)> {
    lines_of(lines, event).next()
}

/// An audit line's seq and text.
type Written = (i64, String);

fn detail<'a>(line: &'a Value, key: &str) -> Option<&'a str> {
    line.pointer(&format!("/detail/{key}"))
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

fn actor(line: &Value) -> &str {
    short_name(
        line.get("actor")
            .and_then(Value::as_str)
            .unwrap_or("someone"),
    )
}

/// `by alice: "looks fine"` or `by alice`.
fn by_with_comment(line: &Value) -> String {
    match detail(line, "comment") {
        Some(comment) => format!("by {}: \"{comment}\"", actor(line)),
        None => format!("by {}", actor(line)),
    }
}

/// To the approvers: `request` waits for them (its `requested` line in `lines`).
pub fn pending(
    request: &AccessRequest,
    approvers: &Approvers,
    lines: &[AuditLine],
) -> Option<Notice> {
    let ((seq, written), _) = line_of(lines, "requested")?;
    let recipients = match approvers {
        Approvers::Owners { owners } => owners.clone(),
        Approvers::Groups { groups } => groups.clone(),
    };
    let reason = if request.reason.is_empty() {
        String::from("No reason given.")
    } else {
        format!("Reason: {}", request.reason)
    };
    Some(Notice {
        recipients,
        title: format!(
            "{} asks for {} for {}",
            short_name(&request.requester),
            label(&request.target),
            duration(request.duration_s)
        ),
        description: format!("{reason} Approve or deny it on the Access requests page."),
        severity: Severity::Normal,
        request_id: request.id.clone(),
        audit: written,
        seq,
    })
}

/// To the requester: `request` was approved (by the policy or by reviewers), with `grant`,
/// or denied. `lines` are the ones the decision wrote.
pub fn decided(
    request: &AccessRequest,
    grant: Option<&Grant>,
    lines: &[AuditLine],
) -> Option<Notice> {
    let what = label(&request.target);
    let ends = grant
        .map(|grant| format!(" It ends by itself at {}.", rfc3339_millis(grant.not_after)))
        .unwrap_or_default();
    let (seq, written, title, description, severity) =
        if let Some(((seq, written), audit)) = line_of(lines, "auto_approved") {
            let condition = detail(&audit, "condition")
                .unwrap_or("a condition")
                .to_owned();
            (
                seq,
                written,
                format!(
                    "Access granted: {what} for {}",
                    duration(request.duration_s)
                ),
                format!("Approved by the access policy ({condition}).{ends}"),
                Severity::Normal,
            )
        } else if let Some(((seq, written), audit)) = line_of(lines, "approved") {
            let description = format!("Approved {}.{ends}", by_with_comment(&audit));
            (
                seq,
                written,
                format!(
                    "Access approved: {what} for {}",
                    duration(request.duration_s)
                ),
                description,
                Severity::Normal,
            )
        } else {
            let ((seq, written), audit) = line_of(lines, "denied")?;
            let description = format!("Denied {}.", by_with_comment(&audit));
            (
                seq,
                written,
                format!("Access denied: {what}"),
                description,
                Severity::Normal,
            )
        };
    Some(Notice {
        recipients: vec![request.requester.clone()],
        title,
        description,
        severity,
        request_id: request.id.clone(),
        audit: written,
        seq,
    })
}

/// To the grantee: `grant` was revoked by someone else, or ran out (`revoked` or `expired`
/// in `lines`).
pub fn ended(grant: &Grant, lines: &[AuditLine]) -> Option<Notice> {
    let what = label(&grant.target);
    let mine = |(_, audit): &(Written, Value)| {
        audit.get("grant_id").and_then(Value::as_str) == Some(grant.id.as_str())
    };
    let revoked = lines_of(lines, "revoked").find(|found| mine(found));
    let (seq, written, title, description, severity) = if let Some(((seq, written), audit)) =
        revoked
    {
        if audit.get("actor").and_then(Value::as_str) == Some(grant.user.as_str()) {
            return None; // The grantee gave it up themselves.
        }
        let description = format!("Revoked {}.", by_with_comment(&audit));
        (
            seq,
            written,
            format!("Access revoked: {what}"),
            description,
            Severity::High,
        )
    } else {
        let ((seq, written), _) = lines_of(lines, "expired").find(|found| mine(found))?;
        (
            seq,
            written,
            format!("Access ended: {what}"),
            format!(
                "Your grant ended at {} as approved. Ask again on the entity's Access card if you still need it.",
                rfc3339_millis(grant.not_after)
            ),
            Severity::Low,
        )
    };
    Some(Notice {
        recipients: vec![grant.user.clone()],
        title,
        description,
        severity,
        request_id: grant.request_id.clone(),
        audit: written,
        seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_store::RequestState;
    use serde_json::json;

    fn request(reason: &str) -> AccessRequest {
        AccessRequest {
            id: String::from("req_1"),
            requester: String::from("user:default/carol"),
            target: Target::Resource {
                resource_kind: String::from("airflow.dag"),
                id: String::from("etl_daily"),
            },
            entry: String::from("airflow-dags"),
            duration_s: 900,
            reason: reason.to_owned(),
            state: RequestState::Pending,
            created_at: 0,
            decided_at: None,
            version: 1,
        }
    }

    fn grant() -> Grant {
        Grant {
            id: String::from("grt_1"),
            request_id: String::from("req_1"),
            user: String::from("user:default/carol"),
            target: request("").target,
            not_before: 0,
            not_after: 900_000,
            revoked_at: None,
            revoked_by: None,
        }
    }

    fn line(seq: i64, value: Value) -> AuditLine {
        AuditLine {
            seq,
            line: value.to_string(),
            line_sha256: String::new(),
        }
    }

    #[test]
    fn each_event_tells_the_right_people_in_plain_words() {
        let approvers = Approvers::Owners {
            owners: vec![String::from("group:default/data-eng")],
        };
        let requested = [line(
            1,
            json!({"event": "requested", "actor": "user:default/carol"}),
        )];
        let approved = [
            line(
                2,
                json!({"event": "reviewed", "actor": "user:default/alice"}),
            ),
            line(
                3,
                json!({"event": "approved", "actor": "user:default/alice", "detail": {"comment": "go ahead"}}),
            ),
            line(
                4,
                json!({"event": "granted", "actor": "user:default/alice"}),
            ),
        ];
        let auto = [line(
            5,
            json!({"event": "auto_approved", "actor": "system", "detail": {"condition": "near-owners"}}),
        )];
        let denied = [line(
            6,
            json!({"event": "denied", "actor": "user:default/alice", "detail": {"comment": ""}}),
        )];
        let revoked = [line(
            7,
            json!({"event": "revoked", "actor": "user:default/alice", "grant_id": "grt_1", "detail": {}}),
        )];
        let self_revoked = [line(
            8,
            json!({"event": "revoked", "actor": "user:default/carol", "grant_id": "grt_1"}),
        )];
        let expired = [
            line(
                9,
                json!({"event": "expired", "actor": "system", "grant_id": "grt_other"}),
            ),
            line(
                10,
                json!({"event": "expired", "actor": "system", "grant_id": "grt_1"}),
            ),
        ];
        type Expected<'a> = Option<(&'a str, &'a str, &'a str, i64)>;
        let cases: [(&str, Option<Notice>, Expected); 8] = [
            ("pending", pending(&request("rerun"), &approvers, &requested),
             Some(("group:default/data-eng", "carol asks for airflow.dag etl_daily for 15m", "Reason: rerun Approve", 1))),
            ("pending, no reason", pending(&request(""), &approvers, &requested),
             Some(("group:default/data-eng", "carol asks for", "No reason given.", 1))),
            ("approved", decided(&request(""), Some(&grant()), &approved),
             Some(("user:default/carol", "Access approved: airflow.dag etl_daily for 15m", "Approved by alice: \"go ahead\". It ends by itself at 1970-01-01T00:15:00.000Z.", 3))),
            ("auto-approved", decided(&request(""), Some(&grant()), &auto),
             Some(("user:default/carol", "Access granted: airflow.dag etl_daily for 15m", "Approved by the access policy (near-owners).", 5))),
            ("denied", decided(&request(""), None, &denied),
             Some(("user:default/carol", "Access denied: airflow.dag etl_daily", "Denied by alice.", 6))),
            ("revoked by an owner", ended(&grant(), &revoked),
             Some(("user:default/carol", "Access revoked: airflow.dag etl_daily", "Revoked by alice.", 7))),
            ("revoked by the grantee", ended(&grant(), &self_revoked), None),
            ("expired, among others", ended(&grant(), &expired),
             Some(("user:default/carol", "Access ended: airflow.dag etl_daily", "Your grant ended at 1970-01-01T00:15:00.000Z", 10))),
        ];
        for (case, notice, expected) in cases {
            match (notice, expected) {
                (None, None) => {}
                (Some(notice), Some((recipient, title, description, seq))) => {
                    assert_eq!(notice.recipients, [recipient], "{case}");
                    assert!(notice.title.starts_with(title), "{case}: {}", notice.title);
                    assert!(
                        notice.description.starts_with(description),
                        "{case}: {}",
                        notice.description
                    );
                    assert_eq!(notice.seq, seq, "{case}");
                    let lines = [
                        &requested[..],
                        &approved,
                        &auto,
                        &denied,
                        &revoked,
                        &expired,
                    ];
                    let written = lines.iter().flat_map(|l| l.iter()).find(|l| l.seq == seq);
                    assert_eq!(
                        Some(&notice.audit),
                        written.map(|l| &l.line),
                        "{case}: verbatim"
                    );
                }
                (notice, expected) => panic!("{case}: {notice:?} vs {expected:?}"),
            }
        }
    }

    #[test]
    fn no_line_for_the_event_means_no_notice() {
        let approvers = Approvers::Groups {
            groups: vec![String::from("group:default/ci-admins")],
        };
        assert_eq!(pending(&request(""), &approvers, &[]), None);
        assert_eq!(
            decided(&request(""), None, &[line(1, json!({"event": "reviewed"}))]),
            None
        );
        assert_eq!(ended(&grant(), &[line(1, json!("not an object"))]), None);
    }
}

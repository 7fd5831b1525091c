//! Access notifications (`access.notify`): each event someone should hear about (a request
//! waiting for its approvers; the requester's approval, denial, revocation or expiry) is
//! POSTed as signed JSON to a receiver, such as the Backstage backend plugin
//! `@meshgate/backstage-plugin-access-backend`, which hands it to Backstage's notifications.
//!
//! Delivery never holds up the API: notices go through a bounded queue to one worker thread,
//! which retries a receiver that is down or answers 5xx/408/429 with backoff, and gives up on
//! other 4xx answers at once. Both are logged; the audit log stays the record of what happened.
//!
//! Signature: `x-meshgate-signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with
//! `x-meshgate-timestamp` in unix seconds, as webhook senders commonly do: the receiver checks
//! the body is ours and recent. `x-meshgate-delivery` (the audit `seq`) lets it drop repeats.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::serve::LogSink;

/// The `schema` of every notification body.
pub const SCHEMA: &str = "meshgate.access.notification/v1";
/// Notices waiting for delivery at most; more are dropped (and counted) rather than queued
/// without bound while the receiver is down.
pub const QUEUE_CAPACITY: usize = 1024;
/// Bound on one delivery attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Waits between attempts; after the last, the notice is given up.
const BACKOFF: [Duration; 6] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// Where a notification links to when `access.notify.link` is not set: the Access requests
/// page as the plugin's README mounts it.
pub const DEFAULT_LINK: &str = "/access-requests";

/// `access.notify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    /// The receiver, `http://` or `https://`.
    pub url: String,
    /// The environment variable holding the shared secret, so it never sits in a file.
    pub secret_env: String,
    /// Where a notification links to in the Backstage app.
    pub link: String,
}

/// Why notifications cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("`access.notify.secret_env`: `{env}` is not set or empty")]
    NoSecret { env: String },
    #[error("cannot start the notification thread: {source}")]
    Spawn { source: std::io::Error },
}

/// Backstage's notification severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Normal,
    High,
}

/// One notification: who hears of it, what it says, and the audit line it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Catalog entity refs, users or groups.
    pub recipients: Vec<String>,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    /// The request it is about: a later notice of the same request replaces an earlier one.
    pub request_id: String,
    /// The audit line as written (a JSON object): sent verbatim, so its `hash` still checks.
    pub audit: String,
    /// The audit line's `seq`: the delivery id.
    pub seq: i64,
}

/// The body without `audit`, which is appended as written.
#[derive(Serialize)]
struct Body<'a> {
    schema: &'static str,
    recipients: &'a [String],
    notification: Payload<'a>,
}

#[derive(Serialize)]
struct Payload<'a> {
    title: &'a str,
    description: &'a str,
    severity: Severity,
    topic: &'static str,
    scope: String,
    link: &'a str,
}

/// The body sent for `notice`, compact JSON, the audit line last and byte for byte.
pub fn body(notice: &Notice, link: &str) -> String {
    let body = Body {
        schema: SCHEMA,
        recipients: &notice.recipients,
        notification: Payload {
            title: &notice.title,
            description: &notice.description,
            severity: notice.severity,
            topic: "meshgate-access",
            scope: format!("meshgate-access:{}", notice.request_id),
            link,
        },
    };
    let mut text = serde_json::to_string(&body).unwrap_or_default();
    if text.ends_with('}') {
        text.pop();
        text.push_str(",\"audit\":");
        text.push_str(&notice.audit);
        text.push('}');
    }
    text
}

/// `v1=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let mut out = String::from("v1=");
    for byte in mac.finalize().into_bytes() {
        use std::fmt::Write as _;
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Delivery counters, for the log and tests.
#[derive(Debug, Default)]
pub struct NotifyStats {
    pub delivered: AtomicU64,
    /// Given up after the last retry or on a 4xx answer.
    pub failed: AtomicU64,
    /// Not queued: the queue was full.
    pub dropped: AtomicU64,
}

/// The sending side; dropping it stops the worker after its current attempt.
pub struct Notifier {
    queue: SyncSender<Notice>,
    stop: Arc<AtomicBool>,
    stats: Arc<NotifyStats>,
    log: LogSink,
}

impl Notifier {
    /// Reads the secret from `settings.secret_env` and starts the delivery thread.
    pub fn start(settings: NotifySettings, log: LogSink) -> Result<Notifier, NotifyError> {
        let secret = std::env::var(&settings.secret_env)
            .ok()
            .filter(|secret| !secret.is_empty())
            .ok_or_else(|| NotifyError::NoSecret {
                env: settings.secret_env.clone(),
            })?;
        let (queue, pending) = sync_channel(QUEUE_CAPACITY);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(NotifyStats::default());
        let worker = Worker {
            settings,
            secret,
            stop: Arc::clone(&stop),
            stats: Arc::clone(&stats),
            log: Arc::clone(&log),
        };
        std::thread::Builder::new()
            .name(String::from("meshgate-access-notify"))
            .spawn(move || worker.run(&pending))
            .map_err(|source| NotifyError::Spawn { source })?;
        Ok(Notifier {
            queue,
            stop,
            stats,
            log,
        })
    }

    /// Queues `notice`; never blocks.
    pub fn send(&self, notice: Notice) {
        if notice.recipients.is_empty() {
            return;
        }
        match self.queue.try_send(notice) {
            Ok(()) => {}
            Err(TrySendError::Full(notice)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                (self.log)(&format!(
                    "access.notify: queue full ({QUEUE_CAPACITY}); dropped the notice of audit seq {}",
                    notice.seq
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn stats(&self) -> &NotifyStats {
        &self.stats
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

struct Worker {
    settings: NotifySettings,
    secret: String,
    stop: Arc<AtomicBool>,
    stats: Arc<NotifyStats>,
    log: LogSink,
}

/// How one attempt went.
enum Attempt {
    Delivered,
    /// Worth another try: no connection, a timeout, 5xx, 408, 429.
    Retry(String),
    /// The receiver refused the notice itself.
    Refused(String),
}

impl Worker {
    fn run(&self, pending: &Receiver<Notice>) {
        let agent = ureq::AgentBuilder::new().timeout(ATTEMPT_TIMEOUT).build();
        while let Ok(notice) = pending.recv() {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            self.deliver(&agent, &notice);
        }
    }

    fn deliver(&self, agent: &ureq::Agent, notice: &Notice) {
        let body = body(notice, &self.settings.link);
        let mut waits = BACKOFF.iter();
        loop {
            let why = match self.attempt(agent, notice.seq, &body) {
                Attempt::Delivered => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Attempt::Refused(why) => {
                    self.give_up(notice, &why);
                    return;
                }
                Attempt::Retry(why) => why,
            };
            let Some(wait) = waits.next() else {
                self.give_up(
                    notice,
                    &format!("{why}, after {} attempts", BACKOFF.len() + 1),
                );
                return;
            };
            let until = Instant::now() + *wait;
            while Instant::now() < until {
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50).min(*wait));
            }
        }
    }

    fn attempt(&self, agent: &ureq::Agent, seq: i64, body: &str) -> Attempt {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signed = signature(self.secret.as_bytes(), timestamp, body.as_bytes());
        let result = agent
            .post(&self.settings.url)
            .set("content-type", "application/json")
            .set("x-meshgate-timestamp", &timestamp.to_string())
            .set("x-meshgate-signature", &signed)
            .set("x-meshgate-delivery", &seq.to_string())
            .send_string(body);
        match result {
            Ok(_) => Attempt::Delivered,
            Err(ureq::Error::Status(status, _)) if matches!(status, 408 | 429 | 500..) => {
                Attempt::Retry(format!("HTTP {status}"))
            }
            Err(ureq::Error::Status(status, response)) => {
                let text: String = response
                    .into_string()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                Attempt::Refused(format!("HTTP {status} {text}"))
            }
            Err(error) => Attempt::Retry(error.to_string()),
        }
    }

    fn give_up(&self, notice: &Notice, why: &str) {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        (self.log)(&format!(
            "access.notify: gave up the notice of audit seq {} for {}: {why}",
            notice.seq,
            notice.recipients.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed vector computed outside Rust:
    /// `printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac Jefe`.
    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        let expected = "v1=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a";
        assert_eq!(signature(b"Jefe", 1_700_000_000, br#"{"a":1}"#), expected);
        for (secret, timestamp, body, what) in [
            (&b"Jefe"[..], 1_700_000_000, &br#"{"a":2}"#[..], "the body"),
            (
                &b"Jefe"[..],
                1_700_000_001,
                &br#"{"a":1}"#[..],
                "the timestamp",
            ),
            (
                &b"jefe"[..],
                1_700_000_000,
                &br#"{"a":1}"#[..],
                "the secret",
            ),
        ] {
            assert_ne!(
                signature(secret, timestamp, body),
                expected,
                "{what} is signed"
            );
        }
    }

    #[test]
    fn the_body_carries_recipients_payload_and_audit_line() {
        let notice = Notice {
            recipients: vec![String::from("group:default/data-eng")],
            title: String::from("t"),
            description: String::from("d"),
            severity: Severity::Normal,
            request_id: String::from("req_1"),
            audit: String::from(r#"{"seq":7,"event":"requested"}"#),
            seq: 7,
        };
        let body: serde_json::Value =
            serde_json::from_str(&body(&notice, "/access-requests")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "schema": SCHEMA,
                "recipients": ["group:default/data-eng"],
                "notification": {"title": "t", "description": "d", "severity": "normal",
                    "topic": "meshgate-access", "scope": "meshgate-access:req_1",
                    "link": "/access-requests"},
                "audit": {"seq": 7, "event": "requested"},
            })
        );
    }

    /// The receiver's fixed vector (backstage-plugin-backend/src/__fixtures__/signed-event.json,
    /// signed there with openssl): the sender builds the same body byte for byte from the same
    /// notice, audit line verbatim, and signs it to the same signature.
    #[test]
    fn the_backstage_receivers_signed_vector_is_what_we_send() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../backstage-plugin-backend/src/__fixtures__/signed-event.json");
        let vector: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let text = vector["body"].as_str().unwrap();
        let sent: serde_json::Value = serde_json::from_str(text).unwrap();
        let n = &sent["notification"];
        let field = |name: &str| n[name].as_str().unwrap().to_owned();
        let audit_at = text.find(r#","audit":"#).unwrap() + r#","audit":"#.len();
        let notice = Notice {
            recipients: vec![sent["recipients"][0].as_str().unwrap().to_owned()],
            title: field("title"),
            description: field("description"),
            severity: Severity::Normal,
            request_id: field("scope")
                .trim_start_matches("meshgate-access:")
                .to_owned(),
            audit: text[audit_at..text.len() - 1].to_owned(),
            seq: sent["audit"]["seq"].as_i64().unwrap(),
        };
        assert_eq!(body(&notice, &field("link")), text);
        assert_eq!(
            signature(
                vector["secret"].as_str().unwrap().as_bytes(),
                vector["timestamp"].as_u64().unwrap(),
                text.as_bytes()
            ),
            vector["signature"].as_str().unwrap()
        );
    }
}

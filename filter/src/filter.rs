//! Per-VM state and the request path: read attributes → `core` decides → apply.

use meshgate_core::authorize::{decide, Credential};
use meshgate_core::catalog::CatalogState;
use meshgate_core::decision::{AllowCode, Effect, ProviderId};
use meshgate_core::{
    headers, log as decision_log, DenyCode, KeyStore, Mode, Policy, Request, TokenCache, UnixTime,
    Verdict,
};

use crate::host::CallResponse;
use crate::host::{Host, LogLevel, Metric, MAX_RULE_METRICS};
use crate::jwks_refresh::{JwksRefresh, KeysAction};
use crate::reply;
use crate::signatures::{self, EnvoyVerifier, Verifier};
use crate::snapshot_sync::SnapshotSync;

/// A request paused until its provider's keys are refetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waiter {
    context_id: u32,
    provider: ProviderId,
    deadline_ms: i64,
}

/// Keys arriving while one request is handled (loaded from another worker) get it decided
/// again at most this many times.
const MAX_KEY_ARRIVALS: u32 = 2;

/// Filter-state key of the decision record (Envoy exposes it as `wasm.meshgate_decision`).
pub const DECISION_FILTER_STATE: &str = "meshgate_decision";

/// What one Wasm VM holds: the compiled policy and what it learns at run time.
#[derive(Debug)]
pub struct Filter {
    pub policy: Policy,
    pub keys: KeyStore,
    pub cache: TokenCache,
    pub jwks: JwksRefresh,
    /// The catalog snapshot poller, when the configuration has a `snapshot` section.
    pub snapshot: Option<SnapshotSync>,
    waiters: Vec<Waiter>,
    /// Sampling key for requests without `x-request-id`.
    unkeyed: std::cell::Cell<u64>,
    /// Who verifies RS*/ES256 signatures; set once from `signatures::detect` at VM start.
    pub verifier: Verifier,
    /// A failed `verify_signature` call was logged (later ones are only counted).
    foreign_failure_logged: bool,
    /// Decisions made: one per request, plus one per arrival of keys it lacked.
    decisions: u64,
}

/// FNV-1a: a cheap, stable hash of the request id for sampling (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What the host should do with the request after the filter ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// A local reply was sent; stop processing.
    Stop,
    /// Hold the request: the filter resumes or answers it later.
    Pause,
}

impl Filter {
    pub fn new(policy: Policy) -> Filter {
        Filter {
            keys: KeyStore::new(&policy),
            cache: TokenCache::new(policy.jwt_cache_size),
            jwks: JwksRefresh::new(&policy),
            snapshot: SnapshotSync::new(&policy),
            waiters: Vec::new(),
            unkeyed: std::cell::Cell::new(0),
            verifier: Verifier::default(),
            foreign_failure_logged: false,
            decisions: 0,
            policy,
        }
    }

    /// A new request's headers (`context_id` identifies it if it must wait).
    pub fn on_request_headers<H: Host>(&mut self, host: &mut H, context_id: u32) -> Next {
        self.handle(host, Some(context_id))
    }

    /// The root context's timer: load published keys, fetch what is due, settle waiters.
    pub fn on_tick<H: Host>(&mut self, host: &mut H) {
        self.jwks.tick(host, &mut self.keys);
        if let Some(snapshot) = &mut self.snapshot {
            snapshot.tick(host, &self.policy);
        }
        self.settle_waiters(host);
    }

    /// A callout answered, in whichever context dispatched it.
    pub fn on_http_call_response<H: Host>(
        &mut self,
        host: &mut H,
        token: u32,
        response: &CallResponse<'_>,
    ) {
        if let Some(snapshot) = &mut self.snapshot {
            if snapshot.on_response(host, &self.policy, token, response) {
                return;
            }
        }
        self.jwks
            .on_response(host, &mut self.keys, token, response.status, response.body);
        self.settle_waiters(host);
    }

    /// The request ended (client gone) while it may have been waiting.
    pub fn forget(&mut self, context_id: u32) {
        self.waiters.retain(|w| w.context_id != context_id);
    }

    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// How many times this VM called `decide`.
    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    /// Decides again every waiter whose provider settled or whose deadline passed. Each
    /// gets a final answer: decisions made here never wait again.
    fn settle_waiters<H: Host>(&mut self, host: &mut H) {
        let settled = self.jwks.take_settled();
        let now = host.now_millis();
        let (ready, still): (Vec<Waiter>, Vec<Waiter>) = self
            .waiters
            .drain(..)
            .partition(|w| settled.contains(&w.provider) || now >= w.deadline_ms);
        self.waiters = still;
        for waiter in ready {
            if let Err(e) = host.set_effective_context(waiter.context_id) {
                host.log(
                    LogLevel::Warn,
                    &format!("meshgate: waiting request is gone: {e}"),
                );
                continue;
            }
            if self.handle(host, None) == Next::Continue {
                if let Err(e) = host.resume_request() {
                    host.log(LogLevel::Warn, &format!("meshgate: {e}"));
                }
            }
        }
    }

    /// Decides and applies. With `context_id`, a token with an unknown `kid` may wait for
    /// a refetch; without, the decision is final.
    fn handle<H: Host>(&mut self, host: &mut H, context_id: Option<u32>) -> Next {
        let headers = match host.request_headers() {
            Ok(headers) => headers,
            Err(e) => {
                // Without headers there is nothing to decide on: fail closed.
                host.log(LogLevel::Error, &format!("meshgate: {e}"));
                return self.reply(host, DenyCode::TokenMissing);
            }
        };
        let pseudo = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map_or("", |(_, v)| v.as_str())
        };
        let authority = match pseudo(":authority") {
            "" => pseudo("host"),
            a => a,
        };
        let req = Request {
            method: pseudo(":method"),
            authority,
            path: pseudo(":path"),
            headers: &headers,
        };
        let started_us = host.now_micros();
        let now = UnixTime::from_secs(started_us / 1_000_000);
        // Every worker switches as soon as a new snapshot is published, not on its next tick.
        if let Some(snapshot) = &mut self.snapshot {
            snapshot.follow_published(host, &self.policy);
        }
        let mut verdict = self.decide(host, &req, now);
        // Keys the decision lacked (core names the provider): another worker may have
        // published them since this worker's last tick, or a refetch may bring them while
        // the request waits. The request is decided again only when keys arrive.
        let mut arrivals = 0;
        while let Some(wanted) = verdict.diagnostics.keys_wanted {
            // A denied request may wait; one let through by `failure_mode: open` goes on.
            let may_wait = context_id.filter(|_| !verdict.decision.is_allowed());
            let action = self
                .jwks
                .keys_wanted(host, &mut self.keys, wanted, may_wait.is_some());
            match (action, may_wait) {
                (KeysAction::Arrived, _) if arrivals < MAX_KEY_ARRIVALS => {
                    arrivals += 1;
                    verdict = self.decide(host, &req, now);
                }
                (KeysAction::Wait { deadline_ms }, Some(context_id)) => {
                    self.waiters.push(Waiter {
                        context_id,
                        provider: wanted.provider,
                        deadline_ms,
                    });
                    return Next::Pause;
                }
                (KeysAction::Arrived | KeysAction::Wait { .. } | KeysAction::Stand, _) => break,
            }
        }
        self.finish(host, &req, &headers, &verdict, started_us)
    }

    /// One decision, with this VM's verifier; counts who checked signatures.
    fn decide<H: Host>(&mut self, host: &mut H, req: &Request<'_>, now: UnixTime) -> Verdict {
        self.decisions = self.decisions.saturating_add(1);
        let catalog = catalog_state(self.snapshot.as_ref(), host.now_millis());
        let verdict = match self.verifier {
            Verifier::Rust => {
                let credential = Credential::token(&self.keys, &mut self.cache);
                decide(&self.policy, credential, catalog, req, now)
            }
            Verifier::Envoy => {
                let envoy = EnvoyVerifier::new(&*host);
                let credential = Credential::token_using(&self.keys, &mut self.cache, &envoy);
                let verdict = decide(&self.policy, credential, catalog, req, now);
                if let Some(e) = envoy.take_failure() {
                    if !self.foreign_failure_logged {
                        self.foreign_failure_logged = true;
                        host.log(
                            LogLevel::Warn,
                            &format!(
                                "meshgate: {e}; {} (further failures are only counted in \
                                 meshgate.verify.foreign_failed)",
                                if signatures::PORTABLE {
                                    "verified in Rust instead"
                                } else {
                                    "the token is refused: this build has no Rust RSA/ECDSA"
                                }
                            ),
                        );
                    }
                }
                verdict
            }
        };
        signatures::count(host, verdict.signature_checks);
        verdict
    }

    fn finish<H: Host>(
        &self,
        host: &mut H,
        req: &Request<'_>,
        headers: &[(String, String)],
        verdict: &Verdict,
        started_us: i64,
    ) -> Next {
        let decision = &verdict.decision;
        let request_id = headers
            .iter()
            .find(|(k, _)| k == "x-request-id")
            .map(|(_, v)| v.as_str());
        let log = self.policy.decision_log;
        let sample_key = match request_id {
            Some(id) => fnv1a(id.as_bytes()),
            None => {
                let n = self.unkeyed.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
                self.unkeyed.set(n);
                n
            }
        };
        // Letting a request through without keys is always worth a line, and so is every
        // request an access grant let through (the audit trail names the grant).
        let fail_open = decision.effect == Effect::Allow(AllowCode::FailOpen);
        let sampled =
            fail_open || decision.grant.is_some() || log.sampled(decision.is_allowed(), sample_key);
        // The record is built only when something reads it: it is the costliest part of
        // an allowed request's path.
        if sampled || log.filter_state {
            let latency_us = host.now_micros().saturating_sub(started_us);
            let now = started_us / 1_000_000;
            let record =
                decision_log::decision_record(decision, req, request_id, now, Some(latency_us));
            if sampled {
                let level = if fail_open {
                    LogLevel::Warn
                } else {
                    LogLevel::Info
                };
                host.log(level, &format!("meshgate decision {record}"));
            }
            if log.filter_state {
                if let Err(e) =
                    host.set_filter_state(DECISION_FILTER_STATE, record.to_string().as_bytes())
                {
                    host.log(LogLevel::Debug, &format!("meshgate: {e}"));
                }
            }
        }
        match verdict.cache_hit {
            Some(true) => host.increment(Metric::TokenCacheHit),
            Some(false) => host.increment(Metric::TokenCacheMiss),
            None => {}
        }
        if let Some(id) = &decision.rule_id {
            if self.policy.rules.len() <= MAX_RULE_METRICS {
                host.increment(Metric::Rule {
                    id: id.clone(),
                    allowed: decision.is_allowed(),
                });
            }
        }
        let code = match decision.effect {
            Effect::Allow(allow) => {
                host.increment(Metric::Allowed);
                if allow == AllowCode::FailOpen {
                    host.increment(Metric::FailOpen);
                }
                if decision.grant.is_some() {
                    host.increment(Metric::AllowedByGrant);
                }
                None
            }
            Effect::Deny(code) => {
                host.increment(Metric::Denied);
                host.increment(Metric::DeniedBy(code));
                Some(code)
            }
        };
        // Two meanings, two counters: what shadow rules would have changed, and what shadow
        // mode let through.
        match decision.shadow.as_ref().map(|s| s.effect) {
            Some(Effect::Deny(_)) => host.increment(Metric::ShadowRuleWouldDeny),
            Some(Effect::Allow(_)) => host.increment(Metric::ShadowRuleWouldAllow),
            None => {}
        }
        match (code, decision.mode) {
            (Some(code), Mode::Enforce) => self.reply(host, code),
            (Some(_), Mode::Shadow) => {
                host.increment(Metric::ShadowModeWouldDeny);
                self.apply_headers(host, headers, verdict)
            }
            (None, _) => self.apply_headers(host, headers, verdict),
        }
    }

    fn apply_headers<H: Host>(
        &self,
        host: &mut H,
        incoming: &[(String, String)],
        verdict: &Verdict,
    ) -> Next {
        let plan = headers::plan(&self.policy, verdict, incoming);
        let mut failed = None;
        for name in &plan.remove {
            if let Err(e) = host.remove_request_header(name) {
                failed = Some(e);
            }
        }
        for (name, value) in &plan.set {
            if let Err(e) = host.set_request_header(name, value) {
                failed = Some(e);
            }
        }
        match failed {
            None => Next::Continue,
            Some(e) => {
                // A spoofed identity header we could not remove must not reach the upstream.
                host.log(
                    LogLevel::Error,
                    &format!("meshgate: could not rewrite identity headers: {e}"),
                );
                self.reply(host, DenyCode::TokenInvalid)
            }
        }
    }

    fn reply<H: Host>(&self, host: &mut H, code: DenyCode) -> Next {
        let reply = reply::denial(code, &self.policy.realm);
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        if let Err(e) = host.send_local_reply(reply.status, &headers, &reply.body) {
            host.log(LogLevel::Error, &format!("meshgate: {e}"));
        }
        Next::Stop
    }
}

fn catalog_state(snapshot: Option<&SnapshotSync>, now_ms: i64) -> CatalogState<'_> {
    snapshot.map_or(CatalogState::NotConfigured, |s| s.state(now_ms))
}

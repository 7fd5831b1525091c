//! Per-VM state and the request path: read attributes → `core` decides → apply.

use meshgate_core::authorize::{decide, Request};
use meshgate_core::decision::Effect;
use meshgate_core::{headers, log as decision_log, KeyStore, Mode, Policy, TokenCache};

use crate::host::{Host, LogLevel, Metric};
use crate::jwks_refresh::JwksRefresh;
use crate::reply;

/// What one Wasm VM holds: the compiled policy and what it learns at run time.
#[derive(Debug)]
pub struct Filter {
    pub policy: Policy,
    pub keys: KeyStore,
    pub cache: TokenCache,
    pub jwks: JwksRefresh,
}

/// What the host should do with the request after the filter ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// A local reply was sent; stop processing.
    Stop,
}

impl Filter {
    pub fn new(policy: Policy) -> Filter {
        Filter {
            keys: KeyStore::new(&policy),
            cache: TokenCache::new(policy.jwt_cache_size),
            jwks: JwksRefresh::new(&policy),
            policy,
        }
    }

    pub fn on_request_headers<H: Host>(&mut self, host: &mut H) -> Next {
        let headers = match host.request_headers() {
            Ok(headers) => headers,
            Err(e) => {
                // Without headers there is nothing to decide on: fail closed.
                host.log(LogLevel::Error, &format!("meshgate: {e}"));
                return self.reply(host, meshgate_core::DenyCode::TokenMissing);
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
        let now = host.now_unix();
        let verdict = decide(&self.policy, &self.keys, &mut self.cache, &req, now);
        let decision = &verdict.decision;

        let record = decision_log::decision_record(
            decision,
            &req,
            self.policy.mode,
            headers
                .iter()
                .find(|(k, _)| k == "x-request-id")
                .map(|(_, v)| v.as_str()),
            now,
        );
        let level = if decision.is_allowed() {
            LogLevel::Debug
        } else {
            LogLevel::Info
        };
        host.log(level, &format!("meshgate decision {record}"));

        let code = match decision.effect {
            Effect::Allow(_) => {
                host.increment(Metric::Allowed);
                None
            }
            Effect::Deny(code) => {
                host.increment(Metric::Denied);
                host.increment(Metric::DeniedBy(code));
                Some(code)
            }
        };
        match (code, self.policy.mode) {
            (Some(code), Mode::Enforce) => self.reply(host, code),
            (Some(_), Mode::Shadow) => {
                host.increment(Metric::ShadowWouldDeny);
                self.apply_headers(host, &headers, &verdict)
            }
            (None, _) => self.apply_headers(host, &headers, &verdict),
        }
    }

    fn apply_headers<H: Host>(
        &self,
        host: &mut H,
        incoming: &[(String, String)],
        verdict: &meshgate_core::Verdict,
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
                host.increment(Metric::Denied);
                let reply =
                    reply::denial(meshgate_core::DenyCode::TokenInvalid, &self.policy.realm);
                send(host, &reply);
                Next::Stop
            }
        }
    }

    fn reply<H: Host>(&self, host: &mut H, code: meshgate_core::DenyCode) -> Next {
        send(host, &reply::denial(code, &self.policy.realm));
        Next::Stop
    }
}

fn send<H: Host>(host: &mut H, reply: &reply::LocalReply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    if let Err(e) = host.send_local_reply(reply.status, &headers, &reply.body) {
        host.log(LogLevel::Error, &format!("meshgate: {e}"));
    }
}

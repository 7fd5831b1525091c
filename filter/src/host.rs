//! Everything the filter needs from Envoy, behind one trait: the real implementation calls
//! proxy-wasm hostcalls (`wasm.rs`), the fake one records what happened (`fake.rs`).

use std::time::Duration;

use meshgate_core::DenyCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// Metrics meshgate exports through Envoy stats. Names are stable: dashboards use them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Metric {
    Allowed,
    Denied,
    DeniedBy(DenyCode),
    /// Requests in shadow mode (global `mode`, or a `mode_overrides` entry) that would
    /// have been denied: they went through. `meshgate.shadow.would_deny`, as always.
    ShadowModeWouldDeny,
    /// Shadow rules would have denied a request that was allowed (or denied it by another
    /// rule or code). `meshgate.shadow_rule.would_deny`; counted under
    /// `meshgate.shadow.would_deny` before, together with shadow mode.
    ShadowRuleWouldDeny,
    /// Shadow rules would have allowed a request that was denied (or allowed it by another
    /// rule). `meshgate.shadow_rule.would_allow`; `meshgate.shadow.would_allow` before.
    ShadowRuleWouldAllow,
    /// Requests let through because keys never loaded and `failure_mode` is open.
    FailOpen,
    /// Requests allowed only thanks to an access grant (the decision names it).
    AllowedByGrant,
    JwksFetchOk,
    JwksFetchFailed,
    /// Refetches triggered by a token with an unknown `kid`.
    JwksRefetchUnknownKid,
    /// Fetches answered with a key set without keys (`{"keys": []}`): an IdP with no signing
    /// key yet, such as Backstage before its first sign-in. Not a failure.
    JwksEmpty,
    /// Keys skipped when a key set loaded (too short, unsupported curve or `alg`, bad
    /// encoding), once per key set document.
    JwksKeySkipped,
    /// Gauge: seconds since the provider's current keys were fetched.
    JwksAgeSeconds(String),
    /// A token found in the verified-token cache, or not.
    TokenCacheHit,
    TokenCacheMiss,
    /// Catalog snapshots loaded, refused (bad signature, older, rules that don't compile),
    /// confirmed unchanged (304), and polls that failed.
    SnapshotLoaded,
    SnapshotRejected,
    SnapshotNotModified,
    SnapshotFetchFailed,
    /// Deltas (226 answers) applied, and refused (the whole snapshot is fetched instead).
    SnapshotDeltaApplied,
    SnapshotDeltaRejected,
    /// Gauges: the loaded snapshot's version, seconds since the control plane confirmed
    /// it, and the memory it takes in this worker.
    SnapshotVersion,
    SnapshotAgeSeconds,
    SnapshotMemoryBytes,
    /// Decisions per deciding rule: `meshgate.rule.<id>.allowed|denied`. Bounded: only
    /// configurations with at most `MAX_RULE_METRICS` rules get them.
    Rule {
        id: String,
        allowed: bool,
    },
    /// Signature checks answered by Envoy's `verify_signature` foreign function.
    VerifyForeign,
    /// Signature checks done in Rust (PS*, EdDSA, HS*, or every algorithm when the
    /// foreign function is absent, or after it failed).
    VerifyRust,
    /// `verify_signature` calls that failed; each request then verified in Rust.
    VerifyForeignFailed,
}

/// Above this many rules, per-rule counters are off (stat cardinality stays bounded).
pub const MAX_RULE_METRICS: usize = 256;

impl Metric {
    pub fn name(&self) -> String {
        match self {
            Metric::Allowed => String::from("meshgate.allowed"),
            Metric::Denied => String::from("meshgate.denied"),
            Metric::DeniedBy(code) => format!("meshgate.denied.{}", code.as_str()),
            Metric::ShadowModeWouldDeny => String::from("meshgate.shadow.would_deny"),
            Metric::ShadowRuleWouldDeny => String::from("meshgate.shadow_rule.would_deny"),
            Metric::ShadowRuleWouldAllow => String::from("meshgate.shadow_rule.would_allow"),
            Metric::FailOpen => String::from("meshgate.fail_open"),
            Metric::AllowedByGrant => String::from("meshgate.allowed_by_grant"),
            Metric::JwksFetchOk => String::from("meshgate.jwks.fetch_ok"),
            Metric::JwksFetchFailed => String::from("meshgate.jwks.fetch_failed"),
            Metric::JwksRefetchUnknownKid => String::from("meshgate.jwks.refetch_unknown_kid"),
            Metric::JwksEmpty => String::from("meshgate.jwks.empty"),
            Metric::JwksKeySkipped => String::from("meshgate.jwks.key_skipped"),
            Metric::JwksAgeSeconds(provider) => format!("meshgate.jwks.{provider}.age_s"),
            Metric::TokenCacheHit => String::from("meshgate.token_cache.hit"),
            Metric::TokenCacheMiss => String::from("meshgate.token_cache.miss"),
            Metric::SnapshotLoaded => String::from("meshgate.snapshot.loaded"),
            Metric::SnapshotRejected => String::from("meshgate.snapshot.rejected"),
            Metric::SnapshotNotModified => String::from("meshgate.snapshot.not_modified"),
            Metric::SnapshotFetchFailed => String::from("meshgate.snapshot.fetch_failed"),
            Metric::SnapshotDeltaApplied => String::from("meshgate.snapshot.delta_applied"),
            Metric::SnapshotDeltaRejected => String::from("meshgate.snapshot.delta_rejected"),
            Metric::SnapshotVersion => String::from("meshgate.snapshot.version"),
            Metric::SnapshotAgeSeconds => String::from("meshgate.snapshot.age_s"),
            Metric::SnapshotMemoryBytes => String::from("meshgate.snapshot.memory_bytes"),
            Metric::Rule { id, allowed } => format!(
                "meshgate.rule.{id}.{}",
                if *allowed { "allowed" } else { "denied" }
            ),
            Metric::VerifyForeign => String::from("meshgate.verify.foreign"),
            Metric::VerifyRust => String::from("meshgate.verify.rust"),
            Metric::VerifyForeignFailed => String::from("meshgate.verify.foreign_failed"),
        }
    }
}

/// A failed host call, with the operation that failed (for the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host call `{operation}` failed: {status}")]
pub struct HostError {
    pub operation: &'static str,
    pub status: HostStatus,
}

/// What a failed host call returned: proxy-wasm's `Status`, shown by its ABI name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostStatus {
    NotFound,
    BadArgument,
    SerializationFailure,
    ParseFailure,
    Empty,
    CasMismatch,
    InternalFailure,
    /// A status this build of the SDK names but meshgate does not (proxy-wasm's `Status`
    /// is non-exhaustive), or `Ok` returned as a failure: its ABI number.
    Other(u32),
}

impl std::fmt::Display for HostStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HostStatus::NotFound => "NotFound",
            HostStatus::BadArgument => "BadArgument",
            HostStatus::SerializationFailure => "SerializationFailure",
            HostStatus::ParseFailure => "ParseFailure",
            HostStatus::Empty => "Empty",
            HostStatus::CasMismatch => "CasMismatch",
            HostStatus::InternalFailure => "InternalFailure",
            HostStatus::Other(code) => return write!(f, "status {code}"),
        })
    }
}

/// An outgoing HTTP GET through an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout<'a> {
    pub cluster: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub timeout: Duration,
    /// Extra request headers (`if-none-match`).
    pub headers: &'a [(&'a str, &'a str)],
}

/// A callout's answer: status (none on timeout or connection failure), body and `etag`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallResponse<'a> {
    pub status: Option<u16>,
    pub body: Option<&'a [u8]>,
    pub etag: Option<&'a str>,
    /// The server held the poll as asked (`Preference-Applied: wait=…`), so the next one may
    /// leave at once.
    pub held: bool,
}

pub trait Host {
    /// Unix time in seconds.
    fn now_unix(&self) -> i64;
    /// Unix time in milliseconds (for scheduling).
    fn now_millis(&self) -> i64;
    /// Unix time in microseconds (for timing decisions).
    fn now_micros(&self) -> i64;
    fn log(&self, level: LogLevel, message: &str);
    fn increment(&mut self, metric: Metric);
    fn set_gauge(&mut self, metric: Metric, value: u64);

    /// All request headers, pseudo-headers (`:path`, ...) included, lowercase names.
    fn request_headers(&self) -> Result<Vec<(String, String)>, HostError>;
    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError>;
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    fn send_local_reply(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError>;

    /// Starts a GET; returns the token its response will carry.
    fn dispatch_get(&mut self, callout: &Callout<'_>) -> Result<u32, HostError>;
    /// Makes later request calls (headers, reply, resume) apply to this request; used
    /// to answer requests that waited for keys, from another context's callback.
    fn set_effective_context(&mut self, context_id: u32) -> Result<(), HostError>;
    /// Stores a value in the request's Envoy filter state (`wasm.<key>`), for access logs.
    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> Result<(), HostError>;
    /// Resumes a request paused while keys were refetched.
    fn resume_request(&mut self) -> Result<(), HostError>;

    /// Envoy shared data: one store for all worker VMs of this plugin's `vm_id`.
    /// Returns the value and its version for compare-and-swap.
    fn get_shared(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError>;
    /// Writes `value`; with `cas`, only if the version is unchanged. `Ok(false)` when
    /// another worker wrote first.
    fn set_shared(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, HostError>;

    /// Calls a host foreign function (`proxy_call_foreign_function`) with serialized
    /// arguments. `Ok(None)`: it succeeded with an empty answer. An unknown function is
    /// an error (`NotFound`).
    fn call_foreign_function(
        &self,
        name: &'static str,
        argument: &[u8],
    ) -> Result<Option<Vec<u8>>, HostError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log line names the status as proxy-wasm does (`Debug` of its `Status`).
    #[test]
    fn host_errors_name_the_status() {
        let cases = [
            (HostStatus::NotFound, "NotFound"),
            (HostStatus::BadArgument, "BadArgument"),
            (HostStatus::SerializationFailure, "SerializationFailure"),
            (HostStatus::ParseFailure, "ParseFailure"),
            (HostStatus::Empty, "Empty"),
            (HostStatus::CasMismatch, "CasMismatch"),
            (HostStatus::InternalFailure, "InternalFailure"),
            (HostStatus::Other(12), "status 12"),
        ];
        for (status, name) in cases {
            let error = HostError {
                operation: "set_shared_data",
                status,
            };
            assert_eq!(
                error.to_string(),
                format!("host call `set_shared_data` failed: {name}")
            );
        }
    }
}

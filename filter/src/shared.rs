//! Envoy shared data as the pollers use it (JWKS and catalog snapshot): versioned key names,
//! timestamps as 8 big-endian bytes, and a short lease so one worker fetches for all.

use crate::host::Host;

/// Version prefix of shared-data keys, so a future format can't be misread.
pub const SHARED_PREFIX: &str = "meshgate.v1";

/// `meshgate.v1.<kind>.<cluster>.<uri>`: keyed by cluster and URI, so two providers (or
/// filters) with the same source share one fetch.
pub fn shared_key(kind: &str, cluster: &str, uri: &str) -> String {
    format!("{SHARED_PREFIX}.{kind}.{cluster}.{uri}")
}

pub fn encode_millis(ms: i64) -> [u8; 8] {
    ms.to_be_bytes()
}

pub fn decode_millis(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// Takes a shared lease until `now + hold_ms` if nobody holds one. Lost races and host
/// errors count as "held": skipping a fetch is safe, fetching twice is only wasteful.
pub fn claim<H: Host>(host: &mut H, key: &str, now: i64, hold_ms: i64) -> bool {
    let Ok((value, cas)) = host.get_shared(key) else {
        return false;
    };
    if value
        .as_deref()
        .and_then(decode_millis)
        .is_some_and(|until| until > now)
    {
        return false;
    }
    let until = now.saturating_add(hold_ms);
    matches!(host.set_shared(key, &encode_millis(until), cas), Ok(true))
}

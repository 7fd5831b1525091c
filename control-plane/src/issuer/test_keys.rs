//! Test support: one generated key set per test binary, since RSA key generation is slow in
//! unoptimised builds, and scratch directories.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::KeySet;

pub(crate) const TEST_ISSUER: &str = "http://127.0.0.1:18080";

pub(crate) fn shared_keyset() -> KeySet {
    static SET: OnceLock<KeySet> = OnceLock::new();
    SET.get_or_init(|| KeySet::generate(TEST_ISSUER).unwrap())
        .clone()
}

pub(crate) fn temp_dir(label: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("meshgate-cp-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

//! Test fixtures: a small catalog directory, a rules file and a signing key in a scratch
//! directory, and a clock the test moves.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::SeedableRng as _;

use super::config::{CatalogSource, ServeConfig};
use super::log::LogSink;
use super::sync::{Clock, Syncer};
use crate::snapshot::{generate_signing_key, write_new_signing_key, SigningKey};

/// data-eng ⊃ analytics; alice in data-eng, bob in analytics; etl-daily (DAG `etl_daily`)
/// owned by data-eng.
pub(crate) const ORG: &str = "\
kind: Group
metadata: {name: data-eng}
spec: {type: team, children: []}
---
kind: Group
metadata: {name: analytics}
spec: {type: team, parent: data-eng, children: [], members: [bob]}
---
kind: User
metadata: {name: alice}
spec: {profile: {email: alice@example.com}, memberOf: [data-eng]}
---
kind: User
metadata: {name: bob}
spec: {profile: {email: bob@example.com}, memberOf: []}
---
kind: Component
metadata: {name: etl-daily, annotations: {meshgate.io/airflow-dag: etl_daily}}
spec: {type: pipeline, owner: data-eng}
";

pub(crate) const RULES: &str = "\
- id: dag-owners
  action: allow
  hosts: [airflow.internal]
  when: {groups_any: [group:default/data-eng]}
";

pub(crate) struct Fixture {
    pub dir: PathBuf,
    pub catalog: PathBuf,
    pub rules: PathBuf,
    pub key_file: PathBuf,
    pub key: SigningKey,
    /// Unix milliseconds returned by the clocks of [`Fixture::syncer`].
    pub now_ms: Arc<AtomicU64>,
    /// Lines logged by syncers made here.
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Fixture {
    pub(crate) fn new(label: &str) -> Fixture {
        let dir = crate::issuer::test_keys::temp_dir(label);
        let catalog = dir.join("catalog");
        std::fs::create_dir_all(&catalog).unwrap();
        std::fs::write(catalog.join("org.yaml"), ORG).unwrap();
        let rules = dir.join("rules.yaml");
        std::fs::write(&rules, RULES).unwrap();
        let key = generate_signing_key(Some("cp-test"), &mut StdRng::seed_from_u64(9)).unwrap();
        let key_file = dir.join("key.json");
        write_new_signing_key(&key, &key_file).unwrap();
        Fixture {
            dir,
            catalog,
            rules,
            key_file,
            key,
            now_ms: Arc::new(AtomicU64::new(1_700_000_000_000)),
            logs: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub(crate) fn config(&self) -> ServeConfig {
        let mut config = ServeConfig::new(
            CatalogSource::Directory(self.catalog.clone()),
            &self.key_file,
        );
        config.rules_file = Some(self.rules.clone());
        // Guard retries without the production backoff, so refused reads fail fast.
        config.guards.retry_backoff = std::time::Duration::from_millis(1);
        config
    }

    pub(crate) fn log(&self) -> LogSink {
        let logs = Arc::clone(&self.logs);
        Arc::new(move |line: &str| logs.lock().unwrap().push(line.to_owned()))
    }

    pub(crate) fn clock(&self) -> Clock {
        let now = Arc::clone(&self.now_ms);
        Box::new(move || now.load(Ordering::SeqCst))
    }

    pub(crate) fn set_now(&self, ms: u64) {
        self.now_ms.store(ms, Ordering::SeqCst);
    }

    pub(crate) fn syncer(&self) -> Syncer {
        self.syncer_for(&self.config())
    }

    /// A syncer for `config` (usually [`Fixture::config`] with changes), on the fixture's
    /// clock and log.
    pub(crate) fn syncer_for(&self, config: &ServeConfig) -> Syncer {
        Syncer::new(config, self.key.clone(), self.log()).with_clock(self.clock())
    }

    pub(crate) fn write_org(&self, text: &str) {
        std::fs::write(self.catalog.join("org.yaml"), text).unwrap();
    }

    pub(crate) fn logged(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

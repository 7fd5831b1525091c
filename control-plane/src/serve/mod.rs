//! `meshgate serve`: the snapshot server. It reads the Backstage catalog (REST API or a
//! directory of YAML files) every `resync_interval_s`, turns it into a signed snapshot and
//! serves it over HTTP with an ETag, keeping the last good snapshot when a sync fails.
//!
//! One job per module:
//! - [`config`]: the YAML configuration and its validation
//! - [`rules`]: the rules file, compiled with the filter's compiler
//! - [`sync`]: one sync, versions, the published snapshot
//! - `source`: the catalog read incrementally (directory stamps, API consistency check)
//! - [`guard`]: when a catalog read is not published
//! - `state`: the served snapshot and counters shared between threads
//! - `metrics`: Prometheus text
//! - [`http`]: endpoints as request → reply
//! - [`long_poll`]: polls held until a newer snapshot is published (`Prefer: wait`)
//! - [`server`]: threads, the hyper listener, start and stop
//! - [`log`]: log sinks
//!
//! In-process use (tests, the end-to-end harness):
//!
//! ```no_run
//! use meshgate_control_plane::serve::{CatalogSource, ServeConfig, Server};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = ServeConfig::new(CatalogSource::Directory("catalog".into()), "key.json");
//! config.listen = "127.0.0.1:0".parse()?;
//! let mut server = Server::start(config)?;
//! server.wait_ready(std::time::Duration::from_secs(10));
//! println!("{} version {:?}", server.snapshot_url(), server.current_version());
//! server.stop();
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod delta;
pub mod err;
#[cfg(test)]
pub(crate) mod fixture;
pub mod guard;
pub mod http;
pub mod log;
pub mod long_poll;
mod metrics;
pub mod rules;
pub mod server;
mod source;
mod state;
pub mod sync;
mod token;

pub use config::{BackstageCatalog, CatalogSource, CatalogToken, ServeConfig};
pub use err::{RulesError, ServeConfigError, ServeError, SyncError};
pub use guard::{CatalogCounts, Fraction, GuardConfig, GuardRefusal};
pub use log::{error_chain, no_log, stderr_log, LogSink};
pub use rules::load_rules;
pub use server::{RunningServer, Server};
pub use sync::{etag, next_version, Published, SyncReport, SyncStatus, Syncer};

//! The PostgreSQL backend, for several control-plane replicas sharing requests, grants and
//! one audit chain. One connection per store, made again after it breaks; connecting gives up
//! after [`CONNECT_TIMEOUT`], so a database that is down answers `Unavailable` promptly.
//! Writers of the audit chain and of migrations serialise on advisory transaction locks.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, NoTls};

use super::logic::Store;
use super::schema;
use super::sql::{Backend, Cell, Lock, Row, Tx, Val};
use super::StoreError;

/// How long connecting may take before the store reports the database unavailable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long sent data may stay unacknowledged before the connection counts as broken.
pub const UNACKED_TIMEOUT: Duration = Duration::from_secs(10);

/// The store on a PostgreSQL database.
pub type PostgresStore = Store<PostgresBackend>;

pub struct PostgresBackend {
    config: Config,
    client: Mutex<Option<Client>>,
}

impl Store<PostgresBackend> {
    /// Connects to `url` (a `postgresql://` URL or `key=value` string) and applies pending
    /// migrations.
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let mut config = Config::from_str(url).map_err(|error| StoreError::Unavailable {
            cause: format!("bad PostgreSQL URL: {error}"),
        })?;
        config.connect_timeout(CONNECT_TIMEOUT);
        // A peer that vanishes mid-query (no RST): give up once sent data stays unacknowledged.
        config.tcp_user_timeout(UNACKED_TIMEOUT);
        let store = Store {
            backend: PostgresBackend {
                config,
                client: Mutex::new(None),
            },
        };
        let now = crate::access_store::now_ms();
        store
            .backend
            .transaction(&mut |tx| schema::migrate(tx, schema::POSTGRES, now))?;
        Ok(store)
    }
}

fn map_error(error: &postgres::Error) -> StoreError {
    let Some(db) = error.as_db_error() else {
        // Connecting, I/O, a closed connection, a timeout.
        return StoreError::Unavailable {
            cause: error.to_string(),
        };
    };
    let code = db.code();
    if *code == SqlState::UNIQUE_VIOLATION
        || *code == SqlState::FOREIGN_KEY_VIOLATION
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
    {
        StoreError::Conflict {
            what: db.message().to_owned(),
        }
    } else if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
        StoreError::Corrupt {
            what: db.message().to_owned(),
        }
    } else {
        StoreError::Unavailable {
            cause: format!("{} ({})", db.message(), code.code()),
        }
    }
}

struct PostgresTx<'a, 'b> {
    tx: &'a mut postgres::Transaction<'b>,
}

fn boxed(params: &[Val]) -> Vec<Box<dyn ToSql + Sync>> {
    params
        .iter()
        .map(|value| -> Box<dyn ToSql + Sync> {
            match value {
                Val::Int(int) => Box::new(*int),
                Val::Text(text) => Box::new(text.clone()),
            }
        })
        .collect()
}

impl Tx for PostgresTx<'_, '_> {
    fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64, StoreError> {
        let owned = boxed(params);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(AsRef::as_ref).collect();
        self.tx
            .execute(sql, &refs)
            .map_err(|error| map_error(&error))
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, StoreError> {
        let owned = boxed(params);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(AsRef::as_ref).collect();
        let rows = self
            .tx
            .query(sql, &refs)
            .map_err(|error| map_error(&error))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|index| {
                        if let Ok(int) = row.try_get::<_, Option<i64>>(index) {
                            return Ok(int.map_or(Cell::Null, Cell::Int));
                        }
                        match row.try_get::<_, Option<String>>(index) {
                            Ok(text) => Ok(text.map_or(Cell::Null, Cell::Text)),
                            Err(error) => Err(StoreError::Corrupt {
                                what: format!("column {index}: {error}"),
                            }),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.tx
            .batch_execute(sql)
            .map_err(|error| map_error(&error))
    }

    fn lock(&mut self, lock: Lock) -> Result<(), StoreError> {
        self.tx
            .execute("SELECT pg_advisory_xact_lock($1)", &[&lock.key()])
            .map(drop)
            .map_err(|error| map_error(&error))
    }
}

impl Backend for PostgresBackend {
    fn transaction<R>(
        &self,
        body: &mut dyn FnMut(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut slot = self.client.lock().map_err(|_| StoreError::Unavailable {
            cause: "a thread panicked while using the database connection".into(),
        })?;
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = None;
            *slot = Some(
                self.config
                    .connect(NoTls)
                    .map_err(|error| map_error(&error))?,
            );
        }
        let Some(client) = slot.as_mut() else {
            return Err(StoreError::Unavailable {
                cause: "no connection".into(),
            });
        };
        let result = run(client, body);
        if client.is_closed() || matches!(result, Err(StoreError::Unavailable { .. })) {
            // Connect again next time.
            *slot = None;
        }
        result
    }
}

fn run<R>(
    client: &mut Client,
    body: &mut dyn FnMut(&mut dyn Tx) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    let mut tx = client.transaction().map_err(|error| map_error(&error))?;
    let result = body(&mut PostgresTx { tx: &mut tx })?;
    tx.commit().map_err(|error| map_error(&error))?;
    Ok(result)
}

//! The PostgreSQL backend, for several control-plane replicas sharing requests, grants and
//! one audit chain. A small pool of connections ([`MAX_CONNECTIONS`]), each made when first
//! needed and made again after it breaks; connecting gives up after [`CONNECT_TIMEOUT`], and a
//! caller waits at most [`CHECKOUT_TIMEOUT`] for a free connection, so a database that is down
//! or saturated answers `Unavailable` promptly. Writers of the audit chain and of migrations
//! serialise on advisory transaction locks.

use std::str::FromStr;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

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

/// Connections one store holds at most. The API's handler threads share them; one
/// connection behind a lock let a few clients take every turn while others starved.
pub const MAX_CONNECTIONS: usize = 8;

/// How long a transaction waits for a free connection before answering `Unavailable`.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// The store on a PostgreSQL database.
pub type PostgresStore = Store<PostgresBackend>;

pub struct PostgresBackend {
    config: Config,
    pool: Mutex<Pool>,
    /// Signalled whenever a connection is returned or given up.
    freed: Condvar,
}

/// Idle connections, and how many exist in all (idle or in use).
#[derive(Default)]
struct Pool {
    idle: Vec<Client>,
    open: usize,
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
                pool: Mutex::new(Pool::default()),
                freed: Condvar::new(),
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

impl PostgresBackend {
    /// An idle connection, or `None`: leave to make one, while fewer than [`MAX_CONNECTIONS`]
    /// exist; otherwise waits for one to be returned, up to [`CHECKOUT_TIMEOUT`].
    fn checkout(&self) -> Result<Option<Client>, StoreError> {
        let poisoned = || StoreError::Unavailable {
            cause: "a thread panicked while holding the connection pool".into(),
        };
        let deadline = Instant::now() + CHECKOUT_TIMEOUT;
        let mut pool = self.pool.lock().map_err(|_| poisoned())?;
        loop {
            while let Some(client) = pool.idle.pop() {
                if !client.is_closed() {
                    return Ok(Some(client));
                }
                pool.open = pool.open.saturating_sub(1);
            }
            if pool.open < MAX_CONNECTIONS {
                pool.open += 1;
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Unavailable {
                    cause: format!(
                        "all {MAX_CONNECTIONS} database connections stayed busy for {} s",
                        CHECKOUT_TIMEOUT.as_secs()
                    ),
                });
            }
            pool = self
                .freed
                .wait_timeout(pool, left)
                .map_err(|_| poisoned())?
                .0;
        }
    }

    /// Returns a connection that still works to the pool, or counts it gone.
    fn give_back(&self, client: Option<Client>) {
        if let Ok(mut pool) = self.pool.lock() {
            match client {
                Some(client) => pool.idle.push(client),
                None => pool.open = pool.open.saturating_sub(1),
            }
        }
        self.freed.notify_one();
    }
}

impl Backend for PostgresBackend {
    fn transaction<R>(
        &self,
        body: &mut dyn FnMut(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut client = match self.checkout()? {
            Some(client) => client,
            None => match self.config.connect(NoTls) {
                Ok(client) => client,
                Err(error) => {
                    self.give_back(None);
                    return Err(map_error(&error));
                }
            },
        };
        let result = run(&mut client, body);
        let broken = client.is_closed() || matches!(result, Err(StoreError::Unavailable { .. }));
        // A connection that failed is dropped: the next checkout connects again.
        self.give_back((!broken).then_some(client));
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

//! The SQLite backend: one file, nothing to run.
//!
//! WAL mode with `synchronous = FULL`: every commit syncs the WAL, so a request, grant or
//! audit event whose call returned survives a crash or power loss. (`NORMAL` with WAL keeps
//! the file consistent but may lose the last commits on power loss; access changes are rare,
//! human-paced writes, so the sync per commit costs nothing that matters.) Writers take the
//! lock at `BEGIN IMMEDIATE`, and wait up to [`BUSY_TIMEOUT`] for one another.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use super::logic::Store;
use super::schema;
use super::sql::{Backend, Cell, Lock, Row, Tx, Val};
use super::StoreError;

/// How long a writer waits for another connection's transaction.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The store on a SQLite file.
pub type SqliteStore = Store<SqliteBackend>;

pub struct SqliteBackend {
    connection: Mutex<Connection>,
}

impl Store<SqliteBackend> {
    /// Opens (or creates) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let connection = Connection::open(path).map_err(map_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(map_error)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            )
            .map_err(map_error)?;
        let store = Store {
            backend: SqliteBackend {
                connection: Mutex::new(connection),
            },
        };
        let now = crate::access_store::now_ms();
        store
            .backend
            .transaction(&mut |tx| schema::migrate(tx, schema::SQLITE, now))?;
        Ok(store)
    }
}

fn map_error(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict {
            what: error.to_string(),
        },
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
            what: error.to_string(),
        },
        _ => StoreError::Unavailable {
            cause: error.to_string(),
        },
    }
}

fn to_value(value: &Val) -> Value {
    match value {
        Val::Int(Some(int)) => Value::Integer(*int),
        Val::Text(Some(text)) => Value::Text(text.clone()),
        Val::Int(None) | Val::Text(None) => Value::Null,
    }
}

/// The store's SQL names parameters `$1`, `$2`…; SQLite would number `$N` by first
/// appearance, so they become `?N`, which SQLite binds to parameter N.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

struct SqliteTx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
}

impl Tx for SqliteTx<'_> {
    fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64, StoreError> {
        let changed = self
            .tx
            .execute(
                &numbered(sql),
                rusqlite::params_from_iter(params.iter().map(to_value)),
            )
            .map_err(map_error)?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, StoreError> {
        let mut statement = self.tx.prepare_cached(&numbered(sql)).map_err(map_error)?;
        let columns = statement.column_count();
        let mut rows = statement
            .query(rusqlite::params_from_iter(params.iter().map(to_value)))
            .map_err(map_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(map_error)? {
            let mut cells = Vec::with_capacity(columns);
            for index in 0..columns {
                cells.push(match row.get_ref(index).map_err(map_error)? {
                    ValueRef::Integer(int) => Cell::Int(int),
                    ValueRef::Text(text) => {
                        Cell::Text(String::from_utf8(text.to_vec()).map_err(|_| {
                            StoreError::Corrupt {
                                what: "text column is not UTF-8".into(),
                            }
                        })?)
                    }
                    ValueRef::Null => Cell::Null,
                    ValueRef::Real(_) | ValueRef::Blob(_) => {
                        return Err(StoreError::Corrupt {
                            what: format!("column {index} holds a real or a blob"),
                        })
                    }
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.tx.execute_batch(sql).map_err(map_error)
    }

    fn lock(&mut self, _: Lock) -> Result<(), StoreError> {
        // BEGIN IMMEDIATE holds the database's write lock already.
        Ok(())
    }
}

impl SqliteBackend {
    fn run<R>(
        &self,
        behavior: TransactionBehavior,
        body: &mut dyn FnMut(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut connection = self
            .connection
            .lock()
            .map_err(|_| StoreError::Unavailable {
                cause: "a thread panicked while using the database connection".into(),
            })?;
        let tx = connection
            .transaction_with_behavior(behavior)
            .map_err(map_error)?;
        let result = body(&mut SqliteTx { tx: &tx })?;
        tx.commit().map_err(map_error)?;
        Ok(result)
    }
}

impl Backend for SqliteBackend {
    /// `BEGIN IMMEDIATE`: the write lock is taken at the start, so two writers never both
    /// read a request as pending.
    fn transaction<R>(
        &self,
        body: &mut dyn FnMut(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.run(TransactionBehavior::Immediate, body)
    }

    /// `BEGIN DEFERRED`: in WAL mode, a snapshot that neither waits for nor blocks writers.
    fn read<R>(
        &self,
        body: &mut dyn FnMut(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.run(TransactionBehavior::Deferred, body)
    }
}

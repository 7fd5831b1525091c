//! The little each backend provides: transactions running parameterised SQL. The SQL of the
//! store ([`super::logic`]) is written once, with `$1`-style placeholders, which both SQLite
//! and PostgreSQL read.

use super::StoreError;

/// A parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Val {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Val {
    fn from(value: i64) -> Val {
        Val::Int(Some(value))
    }
}

impl From<&str> for Val {
    fn from(value: &str) -> Val {
        Val::Text(Some(value.to_owned()))
    }
}

impl From<Option<&str>> for Val {
    fn from(value: Option<&str>) -> Val {
        Val::Text(value.map(str::to_owned))
    }
}

impl From<Option<i64>> for Val {
    fn from(value: Option<i64>) -> Val {
        Val::Int(value)
    }
}

/// A column value read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cell {
    Int(i64),
    Text(String),
    Null,
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Row(pub Vec<Cell>);

impl Row {
    fn cell(&self, index: usize) -> Result<&Cell, StoreError> {
        self.0.get(index).ok_or_else(|| StoreError::Corrupt {
            what: format!("a row lacks column {index}"),
        })
    }

    pub fn int(&self, index: usize) -> Result<i64, StoreError> {
        self.opt_int(index)?.ok_or_else(|| StoreError::Corrupt {
            what: format!("column {index} is null"),
        })
    }

    pub fn opt_int(&self, index: usize) -> Result<Option<i64>, StoreError> {
        match self.cell(index)? {
            Cell::Int(value) => Ok(Some(*value)),
            Cell::Null => Ok(None),
            Cell::Text(_) => Err(StoreError::Corrupt {
                what: format!("column {index} is text, not a number"),
            }),
        }
    }

    pub fn text(&self, index: usize) -> Result<String, StoreError> {
        self.opt_text(index)?.ok_or_else(|| StoreError::Corrupt {
            what: format!("column {index} is null"),
        })
    }

    pub fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        match self.cell(index)? {
            Cell::Text(value) => Ok(Some(value.clone())),
            Cell::Null => Ok(None),
            Cell::Int(_) => Err(StoreError::Corrupt {
                what: format!("column {index} is a number, not text"),
            }),
        }
    }
}

/// Locks that serialise writers across connections (PostgreSQL advisory locks; SQLite's
/// `BEGIN IMMEDIATE` already serialises every writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    Migrations,
    AuditChain,
}

impl Lock {
    pub fn key(self) -> i64 {
        // Arbitrary constants, distinct, fixed forever ("mgmigr" / "mgaudt" in ASCII).
        match self {
            Lock::Migrations => 0x6d67_6d69_6772,
            Lock::AuditChain => 0x6d67_6175_6474,
        }
    }
}

/// An open transaction.
pub(super) trait Tx {
    /// Runs one statement; the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64, StoreError>;
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, StoreError>;
    /// Runs several statements without parameters (a migration file).
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
    /// Holds `lock` until the transaction ends.
    fn lock(&mut self, lock: Lock) -> Result<(), StoreError>;
}

/// A database the store runs transactions on.
pub(super) trait Backend: Send + Sync {
    /// Runs `body` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    fn transaction<R>(
        &self,
        body: &mut dyn FnMut(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError>;

    /// Runs `body`, which only reads, in one transaction that does not block writers.
    fn read<R>(
        &self,
        body: &mut dyn FnMut(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.transaction(body)
    }
}

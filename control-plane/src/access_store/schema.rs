//! Schema migrations: `control-plane/migrations/{sqlite,postgres}/NNN_name.sql`, built into the
//! binary, applied in order when a store opens, each recorded in `schema_migrations`, all in
//! one transaction. Applying them again changes nothing; a database that has a migration this
//! binary does not know is refused.

use super::sql::{Lock, Tx};
use super::StoreError;

/// One numbered migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    /// The file's name without number and extension.
    pub name: &'static str,
    pub sql: &'static str,
}

/// SQLite's migrations, in order (a test checks this list against the directory).
pub static SQLITE: &[Migration] = &[Migration {
    version: 1,
    name: "access",
    sql: include_str!("../../migrations/sqlite/001_access.sql"),
}];

/// PostgreSQL's migrations, in order.
pub static POSTGRES: &[Migration] = &[Migration {
    version: 1,
    name: "access",
    sql: include_str!("../../migrations/postgres/001_access.sql"),
}];

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/// Applies the migrations the database lacks; the versions applied.
pub(super) fn migrate(
    tx: &mut dyn Tx,
    migrations: &[Migration],
    now_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    tx.lock(Lock::Migrations)?;
    tx.batch(CREATE_TABLE)?;
    let rows = tx.query("SELECT MAX(version) FROM schema_migrations", &[])?;
    let found = match rows.first() {
        Some(row) => row.opt_int(0)?.unwrap_or(0),
        None => 0,
    };
    let supported = migrations.last().map_or(0, |last| last.version);
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    let mut applied = Vec::new();
    for migration in migrations.iter().filter(|m| m.version > found) {
        tx.batch(migration.sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[
                migration.version.into(),
                migration.name.into(),
                now_ms.into(),
            ],
        )?;
        applied.push(migration.version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lists above and the files in `migrations/` agree: numbered 1, 2, … without gaps,
    /// same names, same text.
    #[test]
    fn the_built_in_migrations_are_the_files_in_order() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for (dir, list) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .collect();
            files.sort();
            assert_eq!(files.len(), list.len(), "{dir}");
            for ((path, migration), number) in files.iter().zip(list).zip(1..) {
                let file = path.file_name().unwrap().to_str().unwrap();
                assert_eq!(file, format!("{number:03}_{}.sql", migration.name));
                assert_eq!(migration.version, number);
                assert_eq!(std::fs::read_to_string(path).unwrap(), migration.sql);
            }
        }
    }
}

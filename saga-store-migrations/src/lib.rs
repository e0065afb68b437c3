//! Schema of the coordinator's saga store, embedded for PostgreSQL and for SQLite. Both
//! folders describe the same tables; only the SQL dialect may differ.

use sqlx::migrate::Migrator;

/// Migrations for PostgreSQL.
pub static POSTGRES: Migrator = sqlx::migrate!("./postgres");

/// Migrations for SQLite, the embedded default.
pub static SQLITE: Migrator = sqlx::migrate!("./sqlite");

//! Database access through sqlx's `Any` driver, so that one binary runs on PostgreSQL in
//! production and on an SQLite file as the embedded default. Queries use `$1`-style
//! placeholders, which both drivers accept. Columns hold only types that both map to the
//! same Rust type: BIGINT (flags are 0 or 1), TEXT and JSON as TEXT.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Executor};

/// The database behind a pool, for the few statements that differ between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// A connection pool with its dialect.
#[derive(Debug, Clone)]
pub struct Database {
    pub pool: AnyPool,
    pub dialect: Dialect,
}

/// Errors while opening or migrating a database.
#[derive(Debug, thiserror::Error)]
pub enum OpenDatabaseError {
    #[error("invalid database URL {0:?}: use postgres://... or sqlite://FILE")]
    UnsupportedScheme(String),
    #[error("cannot create the folder of the SQLite file {path}: {source}")]
    CreateFolder {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Migrations for both dialects of one schema.
pub struct Migrations<'a> {
    pub postgres: &'a Migrator,
    pub sqlite: &'a Migrator,
}

impl Dialect {
    /// Returns the dialect a database URL names.
    pub fn of_url(url: &str) -> Result<Self, OpenDatabaseError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(OpenDatabaseError::UnsupportedScheme(redact_url(url)))
        }
    }
}

impl Database {
    /// Connects to the database at `url`, creating an SQLite file (and its folder) when it
    /// does not exist, and applies the migrations of its dialect.
    pub async fn open(url: &str, migrations: Migrations<'_>) -> Result<Self, OpenDatabaseError> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of_url(url)?;

        let url = match dialect {
            Dialect::Sqlite => prepare_sqlite_url(url)?,
            Dialect::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(OpenDatabaseError::Connect)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));

        // SQLite allows one writer at a time, and a transaction that starts reading and then
        // writes fails at once instead of waiting when another one writes. One connection
        // serialises all access, which is plenty for the single-machine default.
        let pool_options = match dialect {
            Dialect::Postgres => AnyPoolOptions::new().max_connections(16),
            Dialect::Sqlite => AnyPoolOptions::new()
                .max_connections(1)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                                  PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
                        )
                        .await?;
                        Ok(())
                    })
                }),
        };
        let pool = pool_options
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(OpenDatabaseError::Connect)?;

        let migrator = match dialect {
            Dialect::Postgres => migrations.postgres,
            Dialect::Sqlite => migrations.sqlite,
        };
        migrator.run(&pool).await?;

        Ok(Self { pool, dialect })
    }

    /// Checks that the database responds to a trivial query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

/// Adds `mode=rwc` so that SQLite creates a missing file, and creates the file's folder.
fn prepare_sqlite_url(url: &str) -> Result<String, OpenDatabaseError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if let Some(folder) = std::path::Path::new(path).parent() {
        if !folder.as_os_str().is_empty() && path != ":memory:" {
            std::fs::create_dir_all(folder).map_err(|source| OpenDatabaseError::CreateFolder {
                path: path.to_owned(),
                source,
            })?;
        }
    }
    if url.contains("mode=") {
        Ok(url.to_owned())
    } else if url.contains('?') {
        Ok(format!("{url}&mode=rwc"))
    } else {
        Ok(format!("{url}?mode=rwc"))
    }
}

/// Hides the password of a database URL so that it can go into an error message.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Returns true when an error means the database cannot be reached or does not accept
/// connections now, so the request changed nothing and may be retried. These are pool
/// timeouts, I/O errors, and PostgreSQL's connection exceptions (SQLSTATE class 08), "too
/// many connections" (53300), shutdowns (57P01 to 57P03) and "not accepting connections"
/// (55000).
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "53300" | "57P01" | "57P02" | "57P03" | "55000"
                )
        }),
        _ => false,
    }
}

/// Returns true when an error is a unique-constraint violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_password() {
        assert_eq!(
            redact_url("postgres://app:secret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn dialect_of_url_rejects_other_schemes() {
        assert_eq!(Dialect::of_url("sqlite://x.db").unwrap(), Dialect::Sqlite);
        assert_eq!(
            Dialect::of_url("postgresql://h/x").unwrap(),
            Dialect::Postgres
        );
        assert!(Dialect::of_url("mysql://h/x").is_err());
    }
}

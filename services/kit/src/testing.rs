//! Helpers for tests that run a service against a real database: a fresh PostgreSQL
//! database per test, and an app served on a free port of 127.0.0.1.

use std::net::SocketAddr;

use axum::Router;
use sqlx::{Connection, Executor};
use tokio::net::TcpListener;

/// Server of the test databases. `TEST_DATABASE_URL` overrides it.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Creates an empty PostgreSQL database named after `prefix` and a random suffix and
/// returns its URL. The database stays after the test so that a failure can be inspected.
pub async fn create_postgres_database(prefix: &str) -> anyhow::Result<String> {
    sqlx::any::install_default_drivers();
    let admin_url =
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());

    let mut admin = sqlx::AnyConnection::connect(&admin_url).await?;
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await?;
    admin.close().await?;

    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(base, _)| base);
    Ok(format!("{base}/{name}"))
}

/// A service running on a free port until the handle is dropped.
pub struct TestServer {
    pub address: SocketAddr,
    pub base_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `app` on 127.0.0.1 with a port the system picks.
pub async fn spawn(app: Router) -> anyhow::Result<TestServer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(TestServer {
        address,
        base_url: format!("http://{address}"),
        task,
    })
}

//! Wiring of `coordinator serve`: store, engine, sweeper and HTTP server.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kit::db::{redact_url, Database, Migrations};
use tokio::net::TcpListener;
use tokio::sync::watch;
use utoipa::OpenApi;

use crate::api::{self, ApiDoc, AppState};
use crate::engine::{Engine, Registry};
use crate::participant::ParticipantClient;
use crate::recovery;
use crate::settings::Settings;
use crate::store::SagaStore;

/// Opens the saga store and applies its migrations.
pub async fn open_store(database_url: &str) -> anyhow::Result<Database> {
    Database::open(
        database_url,
        Migrations {
            postgres: &saga_store_migrations::POSTGRES,
            sqlite: &saga_store_migrations::SQLITE,
        },
    )
    .await
    .with_context(|| format!("cannot open the saga store at {}", redact_url(database_url)))
}

/// Runs the coordinator until SIGTERM or Ctrl-C.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let shutdown = kit::server::shutdown_signal(settings.exit_with_parent);
    serve_until(settings, shutdown).await
}

/// Runs the coordinator until `shutdown` completes.
pub async fn serve_until(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    kit::server::metrics_handle();
    crate::metrics::describe();

    let db = open_store(&settings.database_url).await?;
    let replica_id = settings
        .engine
        .replica_id
        .clone()
        .unwrap_or_else(|| format!("coordinator-{}", uuid::Uuid::new_v4().simple()));
    let engine = Arc::new(Engine {
        store: SagaStore::new(db.clone()),
        client: ParticipantClient::new(settings.participants.clone(), &settings.engine),
        settings: settings.engine.clone(),
        replica_id: replica_id.clone(),
        registry: Registry::default(),
    });

    let (stop_sweeper, sweeper_stopped) = watch::channel(false);
    let sweeper = tokio::spawn(recovery::run_sweeper(Arc::clone(&engine), sweeper_stopped));

    let state = AppState {
        engine,
        default_wait: Duration::from_millis(settings.command_wait_ms),
    };
    let app = kit::server::app(
        "coordinator",
        api::router(state),
        db,
        ApiDoc::openapi(),
        settings.max_body_bytes,
    );
    let listener = TcpListener::bind(settings.bind_addr)
        .await
        .with_context(|| format!("cannot bind {}", settings.bind_addr))?;
    tracing::info!(address = %settings.bind_addr, replica_id, "coordinator listening");

    kit::server::serve(listener, app, shutdown).await?;
    let _ = stop_sweeper.send(true);
    let _ = sweeper.await;
    tracing::info!("coordinator stopped");
    Ok(())
}

//! The therapist service: therapists of the matching platform and the status step of the
//! coordinator's block-therapist and unblock-therapist sagas.

pub mod counters;
pub mod fields;
pub mod routes;
pub mod status;
pub mod store;
pub mod therapists;

use anyhow::Context;
use kit::db::{Database, Migrations};
use sqlx::migrate::Migrator;
use utoipa::OpenApi;

/// Port on 127.0.0.1 that the service binds when `BIND_ADDR` is not set.
pub const DEFAULT_PORT: u16 = 8082;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// Settings of the therapist service.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    #[command(flatten)]
    pub common: kit::config::ServiceSettings,
}

/// The OpenAPI document served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "Curavani therapist service"),
    paths(
        routes::create_therapist,
        routes::list_therapists,
        routes::get_therapist,
        routes::update_therapist,
        routes::delete_therapist,
    ),
    components(schemas(
        therapists::Therapist,
        therapists::TherapistStatus,
        therapists::CreateTherapist,
        therapists::UpdateTherapist,
        routes::TherapistDeleted,
        kit::error::Problem,
    ))
)]
pub struct ApiDoc;

/// Opens and migrates the database and returns the service's router.
pub async fn build_app(settings: &Settings) -> anyhow::Result<axum::Router> {
    let migrations = Migrations {
        postgres: &POSTGRES_MIGRATIONS,
        sqlite: &SQLITE_MIGRATIONS,
    };
    let db = Database::open(&settings.common.database_url, migrations)
        .await
        .context("cannot open the therapist database")?;
    kit::idempotency::ensure_table(&db)
        .await
        .context("cannot create the idempotency table")?;

    let api = routes::router(routes::AppState { db: db.clone() });
    let app = kit::server::app(
        "therapist",
        api,
        db,
        ApiDoc::openapi(),
        settings.common.max_body_bytes,
    );
    // The recorder exists once kit::server::app has run, so the descriptions reach it.
    counters::describe();
    Ok(app)
}

/// Serves the therapist API until SIGTERM, Ctrl-C or, when so configured, the parent's exit.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let app = build_app(&settings).await?;
    let address = settings.common.bind_addr_or(DEFAULT_PORT);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot bind {address}"))?;

    tracing::info!(bind.address = %address, "therapist service listening");
    kit::server::serve(
        listener,
        app,
        kit::server::shutdown_signal(settings.common.exit_with_parent),
    )
    .await
    .context("the HTTP server failed")?;
    tracing::info!("therapist service stopped");
    Ok(())
}

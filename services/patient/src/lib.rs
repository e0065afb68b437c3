//! The patient service: patients of the matching platform, their contact dates, and the
//! delete step of the coordinator's delete-patient saga.

pub mod fields;
pub mod patients;
pub mod routes;
pub mod store;

use anyhow::Context;
use kit::db::{Database, Migrations};
use sqlx::migrate::Migrator;
use utoipa::OpenApi;

/// Port on 127.0.0.1 that the service binds when `BIND_ADDR` is not set.
pub const DEFAULT_PORT: u16 = 8081;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// Settings of the patient service.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    #[command(flatten)]
    pub common: kit::config::ServiceSettings,
}

/// The OpenAPI document served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "Curavani patient service"),
    paths(
        routes::create_patient,
        routes::list_patients,
        routes::get_patient,
        routes::update_patient,
        routes::delete_patient,
        routes::record_last_contact,
    ),
    components(schemas(
        patients::Patient,
        patients::PatientStatus,
        patients::CreatePatient,
        patients::UpdatePatient,
        patients::LastContact,
        patients::LastContactRecorded,
        patients::PatientDeleted,
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
        .context("cannot open the patient database")?;
    kit::idempotency::ensure_table(&db)
        .await
        .context("cannot create the idempotency table")?;

    let api = routes::router(routes::AppState { db: db.clone() });
    Ok(kit::server::app(
        "patient",
        api,
        db,
        ApiDoc::openapi(),
        settings.common.max_body_bytes,
    ))
}

/// Serves the patient API until SIGTERM, Ctrl-C or, when so configured, the parent's exit.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let app = build_app(&settings).await?;
    let address = settings.common.bind_addr_or(DEFAULT_PORT);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot bind {address}"))?;

    tracing::info!(bind.address = %address, "patient service listening");
    kit::server::serve(
        listener,
        app,
        kit::server::shutdown_signal(settings.common.exit_with_parent),
    )
    .await
    .context("the HTTP server failed")?;
    tracing::info!("patient service stopped");
    Ok(())
}

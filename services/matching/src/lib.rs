//! The matching service: Platzsuchen (searches for a therapy place) with their excluded
//! therapists, Therapeutenanfragen (inquiries to therapists) and the cascades that the saga
//! coordinator calls when a patient is deleted or a therapist is blocked or unblocked.

use axum::routing::{delete, get, post};
use axum::Router;
use kit::config::ServiceSettings;
use kit::db::{Database, Migrations};
use sqlx::migrate::Migrator;
use utoipa::OpenApi;

pub mod anfragen;
pub mod cascade;
pub mod model;
pub mod platzsuchen;
pub mod telemetry;

/// Port of the service on 127.0.0.1 when `BIND_ADDR` is not set.
pub const DEFAULT_PORT: u16 = 8083;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// Settings of the matching service.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    #[command(flatten)]
    pub common: ServiceSettings,
}

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Database,
}

/// The OpenAPI document of the service.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Matching service",
        description = "Platzsuchen, Therapeutenanfragen, cascades"
    ),
    paths(
        platzsuchen::list_platzsuchen,
        platzsuchen::create_platzsuche,
        platzsuchen::get_platzsuche,
        platzsuchen::update_platzsuche,
        platzsuchen::delete_platzsuche,
        platzsuchen::create_ausschluss,
        platzsuchen::delete_ausschluss,
        anfragen::list_anfragen,
        anfragen::create_anfrage,
        anfragen::get_anfrage,
        anfragen::update_anfrage,
        anfragen::delete_anfrage,
        cascade::patient_deleted,
        cascade::patient_deleted_compensate,
        cascade::therapist_blocked,
        cascade::therapist_blocked_compensate,
        cascade::therapist_unblocked,
        cascade::therapist_unblocked_compensate,
    )
)]
pub struct ApiDoc;

/// Opens and migrates the database and returns the service's router with the operational
/// routes of `kit::server::app`.
pub async fn build_app(settings: &Settings) -> anyhow::Result<Router> {
    let migrations = Migrations {
        postgres: &POSTGRES_MIGRATIONS,
        sqlite: &SQLITE_MIGRATIONS,
    };
    let db = Database::open(&settings.common.database_url, migrations).await?;
    kit::idempotency::ensure_table(&db).await?;
    telemetry::describe_metrics();

    let state = AppState { db: db.clone() };
    Ok(kit::server::app(
        "matching",
        api_routes(state),
        db,
        ApiDoc::openapi(),
        settings.common.max_body_bytes,
    ))
}

/// Builds the routes of the matching API.
fn api_routes(state: AppState) -> Router {
    Router::new()
        .route(
            "/api/platzsuchen",
            get(platzsuchen::list_platzsuchen).post(platzsuchen::create_platzsuche),
        )
        .route(
            "/api/platzsuchen/{id}",
            get(platzsuchen::get_platzsuche)
                .patch(platzsuchen::update_platzsuche)
                .delete(platzsuchen::delete_platzsuche),
        )
        .route(
            "/api/platzsuchen/{id}/ausschluesse",
            post(platzsuchen::create_ausschluss),
        )
        .route(
            "/api/platzsuchen/{id}/ausschluesse/{therapist_id}",
            delete(platzsuchen::delete_ausschluss),
        )
        .route(
            "/api/therapeutenanfragen",
            get(anfragen::list_anfragen).post(anfragen::create_anfrage),
        )
        .route(
            "/api/therapeutenanfragen/{id}",
            get(anfragen::get_anfrage)
                .patch(anfragen::update_anfrage)
                .delete(anfragen::delete_anfrage),
        )
        .route(
            "/api/matching/cascade/patient-deleted",
            post(cascade::patient_deleted),
        )
        .route(
            "/api/matching/cascade/patient-deleted/compensate",
            post(cascade::patient_deleted_compensate),
        )
        .route(
            "/api/matching/cascade/therapist-blocked",
            post(cascade::therapist_blocked),
        )
        .route(
            "/api/matching/cascade/therapist-blocked/compensate",
            post(cascade::therapist_blocked_compensate),
        )
        .route(
            "/api/matching/cascade/therapist-unblocked",
            post(cascade::therapist_unblocked),
        )
        .route(
            "/api/matching/cascade/therapist-unblocked/compensate",
            post(cascade::therapist_unblocked_compensate),
        )
        .with_state(state)
}

/// Serves the service until SIGTERM, Ctrl-C or, with `exit_with_parent`, the end of
/// standard input.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let app = build_app(&settings).await?;
    let address = settings.common.bind_addr_or(DEFAULT_PORT);
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(bind.address = %listener.local_addr()?, "matching service listening");

    kit::server::serve(
        listener,
        app,
        kit::server::shutdown_signal(settings.common.exit_with_parent),
    )
    .await?;
    tracing::info!("matching service stopped");
    Ok(())
}

//! The coordinator's HTTP API under `/api/v1`: commands, saga status and retry.

mod commands;
mod error;
mod prefer;
mod sagas;
mod view;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use utoipa::OpenApi;

use crate::engine::Engine;

pub use error::CommandError;

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// How long a command waits for its saga's outcome unless `Prefer` sets another wait.
    pub default_wait: Duration,
}

/// The OpenAPI document of the coordinator.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Curavani saga coordinator",
        description = "Commands that change patients and therapists across services, \
                       run as sagas, and the status of every saga."
    ),
    paths(
        commands::delete_patient,
        commands::block_therapist,
        commands::unblock_therapist,
        commands::record_patient_contact,
        sagas::get_saga,
        sagas::list_sagas,
        sagas::retry_saga,
        sagas::list_definitions,
    ),
    components(schemas(
        commands::DeletePatientCommand,
        commands::BlockTherapistCommand,
        commands::UnblockTherapistCommand,
        commands::RecordPatientContactCommand,
        commands::ContactChannel,
        kit::error::Problem,
    ))
)]
pub struct ApiDoc;

/// Builds the API routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/api/v1/commands/delete-patient",
            post(commands::delete_patient),
        )
        .route(
            "/api/v1/commands/block-therapist",
            post(commands::block_therapist),
        )
        .route(
            "/api/v1/commands/unblock-therapist",
            post(commands::unblock_therapist),
        )
        .route(
            "/api/v1/commands/record-patient-contact",
            post(commands::record_patient_contact),
        )
        .route("/api/v1/sagas", get(sagas::list_sagas))
        .route("/api/v1/sagas/{id}", get(sagas::get_saga))
        .route("/api/v1/sagas/{id}/retry", post(sagas::retry_saga))
        .route("/api/v1/saga-definitions", get(sagas::list_definitions))
        .with_state(state)
}

//! HTTP handlers of `/api/patients`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, patch};
use axum::Router;
use kit::db::Database;
use kit::error::Problem;
use kit::extract::{Json, PathId, Query, SagaContext};
use kit::idempotency::{self, Answer, Operation};
use kit::pagination::{Page, PageParams};
use kit::ApiError;
use serde::Deserialize;
use serde_json::Value;

use crate::fields;
use crate::patients::{
    CreatePatient, LastContact, LastContactRecorded, Patient, PatientDeleted, PatientStatus,
    UpdatePatient,
};
use crate::store::{self, ContactUpdate};

/// The coordinator command that deletes a patient together with their searches.
const DELETE_COMMAND: &str = "POST /api/v1/commands/delete-patient";

/// State shared by the handlers.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
}

/// Returns the router of the patient API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/patients", get(list_patients).post(create_patient))
        .route(
            "/api/patients/{id}",
            get(get_patient)
                .patch(update_patient)
                .delete(delete_patient),
        )
        .route(
            "/api/patients/{id}/last-contact",
            patch(record_last_contact),
        )
        .with_state(state)
}

/// Query parameters of `GET /api/patients`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    /// Number of items per page, 1 to 500; 50 when absent.
    pub limit: Option<i64>,
    /// Return patients whose id is greater than this one.
    pub after: Option<i64>,
    /// Return only patients with this status.
    pub status: Option<String>,
}

/// Creates a patient.
#[utoipa::path(
    post,
    path = "/api/patients",
    request_body = CreatePatient,
    responses(
        (status = 201, description = "Patient created", body = Patient),
        (status = 400, description = "Invalid field", body = Problem),
        (status = 422, description = "Unacceptable value", body = Problem),
    ),
    tag = "patients"
)]
pub async fn create_patient(
    State(state): State<AppState>,
    Json(body): Json<CreatePatient>,
) -> Result<(StatusCode, axum::Json<Patient>), ApiError> {
    let fields = body.validate()?;

    let mut tx = state.db.pool.begin().await?;
    let patient = store::insert(&mut tx, &fields, &kit::clock::now_rfc3339()).await?;
    tx.commit().await?;

    tracing::info!(patient.id = patient.id, "patient created");
    Ok((StatusCode::CREATED, axum::Json(patient)))
}

/// Lists patients in id order, one page at a time.
#[utoipa::path(
    get,
    path = "/api/patients",
    params(ListParams),
    responses(
        (status = 200, description = "One page of patients", body = Page<Patient>),
        (status = 400, description = "Invalid query parameter", body = Problem),
    ),
    tag = "patients"
)]
pub async fn list_patients(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Page<Patient>>, ApiError> {
    let paging = PageParams {
        limit: params.limit,
        after: params.after,
    };
    let limit = paging.limit()?;
    let after = paging.after()?;
    let status = params
        .status
        .as_deref()
        .map(|text| PatientStatus::parse("status", text))
        .transpose()?;

    let mut conn = state.db.pool.acquire().await?;
    let rows = store::list(&mut conn, status, after, limit + 1).await?;

    Ok(axum::Json(Page::from_rows(rows, limit, |patient| {
        patient.id
    })))
}

/// Returns one patient.
#[utoipa::path(
    get,
    path = "/api/patients/{id}",
    params(("id" = i64, Path, description = "Patient id")),
    responses(
        (status = 200, description = "The patient", body = Patient),
        (status = 400, description = "Invalid id", body = Problem),
        (status = 404, description = "Unknown patient", body = Problem),
    ),
    tag = "patients"
)]
pub async fn get_patient(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<axum::Json<Patient>, ApiError> {
    let mut conn = state.db.pool.acquire().await?;
    let patient = store::find(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("patient", id))?;
    Ok(axum::Json(patient))
}

/// Changes any subset of a patient's writable fields.
#[utoipa::path(
    patch,
    path = "/api/patients/{id}",
    params(("id" = i64, Path, description = "Patient id")),
    request_body = UpdatePatient,
    responses(
        (status = 200, description = "The changed patient", body = Patient),
        (status = 400, description = "Invalid field", body = Problem),
        (status = 404, description = "Unknown patient", body = Problem),
        (status = 422, description = "Unacceptable value", body = Problem),
    ),
    tag = "patients"
)]
pub async fn update_patient(
    State(state): State<AppState>,
    PathId(id): PathId,
    Json(body): Json<UpdatePatient>,
) -> Result<axum::Json<Patient>, ApiError> {
    let mut tx = state.db.pool.begin().await?;
    let current = store::find_for_update(&mut tx, state.db.dialect, id)
        .await?
        .ok_or_else(|| ApiError::not_found("patient", id))?;

    let fields = body.apply_to(&current)?;
    let patient = store::update(&mut tx, id, &fields, &kit::clock::now_rfc3339())
        .await?
        .ok_or_else(|| ApiError::not_found("patient", id))?;
    tx.commit().await?;

    tracing::info!(patient.id = id, "patient updated");
    Ok(axum::Json(patient))
}

/// Deletes a patient. Only the coordinator's delete-patient saga may call it, after it has
/// cancelled the patient's searches, so a request without `X-Saga-Id` gets 409.
#[utoipa::path(
    delete,
    path = "/api/patients/{id}",
    params(
        ("id" = i64, Path, description = "Patient id"),
        ("X-Saga-Id" = String, Header, description = "Saga that deletes the patient"),
        ("Idempotency-Key" = Option<String>, Header, description = "Key of this call"),
    ),
    responses(
        (status = 200, description = "Patient deleted", body = PatientDeleted),
        (status = 404, description = "Unknown patient", body = Problem),
        (status = 409, description = "Called outside the delete-patient saga", body = Problem),
        (status = 422, description = "Idempotency-Key used for another request", body = Problem),
    ),
    tag = "patients"
)]
pub async fn delete_patient(
    State(state): State<AppState>,
    PathId(id): PathId,
    context: SagaContext,
) -> Result<Response, ApiError> {
    if context.saga_id.is_none() {
        return Err(ApiError::conflict(format!(
            "deleting patient {id} must cancel their searches first, so it needs a saga: use \
             {DELETE_COMMAND} on the coordinator"
        )));
    }

    let path = format!("/api/patients/{id}");
    let operation = Operation {
        method: "DELETE",
        path: &path,
        body: &Value::Null,
    };

    idempotency::run(&state.db, &context, operation, move |tx| {
        Box::pin(async move {
            if !store::delete(tx, id).await? {
                return Err(ApiError::not_found("patient", id));
            }

            tracing::info!(patient.id = id, "patient deleted");
            let deleted = PatientDeleted {
                patient_id: id,
                deleted: true,
            };
            Ok(Answer::ok(serde_json::to_value(deleted)?))
        })
    })
    .await
}

/// Records a contact with a patient: moves `letzter_kontakt` forward to `date`, never back.
#[utoipa::path(
    patch,
    path = "/api/patients/{id}/last-contact",
    params(
        ("id" = i64, Path, description = "Patient id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Key of this call"),
    ),
    request_body(content = Option<LastContact>, description = "Empty body means today"),
    responses(
        (status = 200, description = "Contact recorded", body = LastContactRecorded),
        (status = 400, description = "Unparsable date", body = Problem),
        (status = 404, description = "Unknown patient", body = Problem),
        (status = 413, description = "Body too large", body = Problem),
        (status = 422, description = "Idempotency-Key used for another request", body = Problem),
    ),
    tag = "patients"
)]
pub async fn record_last_contact(
    State(state): State<AppState>,
    PathId(id): PathId,
    context: SagaContext,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (request, document) = fields::optional_json_body::<LastContact>(body)?;
    let requested = fields::optional_date("date", request.date.as_deref())?;

    let path = format!("/api/patients/{id}/last-contact");
    let operation = Operation {
        method: "PATCH",
        path: &path,
        body: &document,
    };
    idempotency::run(&state.db, &context, operation, move |tx| {
        // An absent date becomes today when the work runs. A replay on a later day returns the
        // stored response instead.
        let date = requested.clone().unwrap_or_else(kit::clock::today);
        Box::pin(async move {
            let now = kit::clock::now_rfc3339();
            let (letzter_kontakt, changed) =
                match store::record_contact(tx, id, &date, &now).await? {
                    ContactUpdate::Moved(date) => (date, true),
                    ContactUpdate::Kept(date) => (date, false),
                    ContactUpdate::UnknownPatient => {
                        return Err(ApiError::not_found("patient", id));
                    }
                };

            tracing::info!(patient.id = id, changed, "last contact recorded");
            let recorded = LastContactRecorded {
                patient_id: id,
                letzter_kontakt,
                changed,
            };
            Ok(Answer::ok(serde_json::to_value(recorded)?))
        })
    })
    .await
}

//! The saga status API: one saga, a filtered list with cursor paging, a retry of a parked
//! saga, and the saga definitions.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kit::extract::Query;
use kit::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use super::error::CommandError;
use super::view::{saga_location, saga_view};
use super::AppState;
use crate::saga::{SagaStatus, SagaType, DEFINITIONS};
use crate::store::SagaFilter;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

/// Filters of the saga list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// running, compensating, completed, compensated, skipped or needs_attention.
    status: Option<String>,
    /// delete-patient, block-therapist, unblock-therapist or record-patient-contact.
    #[serde(rename = "type")]
    saga_type: Option<String>,
    patient_id: Option<i64>,
    therapist_id: Option<i64>,
    /// Sagas created at or after this RFC 3339 time.
    created_from: Option<String>,
    /// Sagas created before this RFC 3339 time.
    created_to: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 500; 50 when absent.
    limit: Option<i64>,
}

fn parse_saga_id(raw: &str) -> Result<String, CommandError> {
    uuid::Uuid::parse_str(raw)
        .map(|id| id.to_string())
        .map_err(|_| {
            ApiError::bad_request("id", format!("saga id must be a UUID, got {raw:?}")).into()
        })
}

/// Parses an RFC 3339 time and returns it in the store's text form.
fn parse_time(field: &str, raw: &Option<String>) -> Result<Option<String>, CommandError> {
    let Some(raw) = raw else {
        return Ok(None);
    };

    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|time| {
            Some(
                time.with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            )
        })
        .map_err(|_| {
            ApiError::bad_request(
                field,
                format!("{field} must be an RFC 3339 time, got {raw:?}"),
            )
            .into()
        })
}

#[utoipa::path(
    get, path = "/api/v1/sagas/{id}",
    params(("id" = String, Path, description = "Saga id (UUID)")),
    responses(
        (status = 200, description = "The saga with every step and its compensation"),
        (status = 404, description = "Unknown saga", body = kit::error::Problem),
    )
)]
pub async fn get_saga(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Response, CommandError> {
    let saga_id = parse_saga_id(&raw_id)?;
    let Some((saga, steps)) = state.engine.store.load(&saga_id).await? else {
        return Err(CommandError::SagaNotFound(saga_id));
    };
    Ok(axum::Json(saga_view(&saga, &steps)).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/sagas", params(ListParams),
    responses((status = 200, description = "Sagas, newest first, with `next_cursor`"))
)]
pub async fn list_sagas(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Response, CommandError> {
    // Validate the query parameters.
    if let Some(status) = &params.status {
        if SagaStatus::parse(status).is_none() {
            return Err(ApiError::bad_request(
                "status",
                format!(
                    "unknown status {status:?}; use running, compensating, completed, \
                     compensated, skipped or needs_attention"
                ),
            )
            .into());
        }
    }
    if let Some(saga_type) = &params.saga_type {
        if SagaType::parse(saga_type).is_none() {
            return Err(ApiError::bad_request(
                "type",
                format!(
                    "unknown type {saga_type:?}; use delete-patient, block-therapist, \
                     unblock-therapist or record-patient-contact"
                ),
            )
            .into());
        }
    }
    for (field, id) in [
        ("patient_id", params.patient_id),
        ("therapist_id", params.therapist_id),
    ] {
        if id.is_some_and(|id| id <= 0) {
            return Err(ApiError::bad_request(field, format!("{field} must be positive")).into());
        }
    }
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            format!("limit must be between 1 and {MAX_LIMIT}, got {limit}"),
        )
        .into());
    }
    let cursor = match &params.cursor {
        Some(cursor) => Some(parse_saga_id(cursor).map_err(|_| {
            CommandError::from(ApiError::bad_request("cursor", "cursor must be a saga id"))
        })?),
        None => None,
    };

    // Load one page of sagas.
    let filter = SagaFilter {
        status: params.status.clone(),
        saga_type: params.saga_type.clone(),
        patient_id: params.patient_id,
        therapist_id: params.therapist_id,
        created_from: parse_time("created_from", &params.created_from)?,
        created_to: parse_time("created_to", &params.created_to)?,
        cursor,
        limit,
    };
    let page = state.engine.store.list(&filter).await?;

    // List items leave out the steps, which only GET /api/v1/sagas/{id} shows.
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|saga| {
            let mut view = saga_view(saga, &[]);
            if let Value::Object(fields) = &mut view {
                fields.remove("steps");
            }
            view
        })
        .collect();
    Ok(axum::Json(json!({ "items": items, "next_cursor": page.next_cursor })).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/sagas/{id}/retry",
    params(("id" = String, Path, description = "Saga id (UUID)")),
    responses(
        (status = 202, description = "The saga is due now and runs again"),
        (status = 404, description = "Unknown saga", body = kit::error::Problem),
        (status = 409, description = "The saga is finished", body = kit::error::Problem),
    )
)]
pub async fn retry_saga(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Response, CommandError> {
    let saga_id = parse_saga_id(&raw_id)?;
    let Some((saga, _)) = state.engine.store.load(&saga_id).await? else {
        return Err(CommandError::SagaNotFound(saga_id));
    };
    if saga.status.is_finished() {
        return Err(CommandError::SagaFinished {
            id: saga_id,
            status: saga.status.as_str(),
        });
    }

    state.engine.store.make_due_now(&saga_id).await?;
    if let Some(claimed) = state.engine.claim(&saga_id).await? {
        state
            .engine
            .spawn(saga_id.clone(), claimed.from_expired_lease);
    }
    tracing::info!(saga.id = %saga_id, "retry requested by an operator");

    let Some((saga, steps)) = state.engine.store.load(&saga_id).await? else {
        return Err(CommandError::SagaNotFound(saga_id));
    };
    let mut response = (StatusCode::ACCEPTED, axum::Json(saga_view(&saga, &steps))).into_response();
    if let Ok(location) = HeaderValue::from_str(&saga_location(&saga_id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[utoipa::path(
    get, path = "/api/v1/saga-definitions",
    responses((status = 200, description = "Every saga type with its steps and compensations"))
)]
pub async fn list_definitions() -> impl IntoResponse {
    axum::Json(json!(DEFINITIONS))
}

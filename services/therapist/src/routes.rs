//! HTTP handlers of `/api/therapists`.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use kit::db::Database;
use kit::error::Problem;
use kit::extract::{Json, PathId, Query, SagaContext};
use kit::idempotency::{self, Answer, Operation, REPLAYED_HEADER};
use kit::pagination::{Page, PageParams};
use kit::ApiError;
use serde::Deserialize;
use serde_json::Value;

use crate::counters;
use crate::status::StatusChange;
use crate::store;
use crate::therapists::{CreateTherapist, Therapist, TherapistStatus, UpdateTherapist};

/// State shared by the handlers.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
}

/// Returns the router of the therapist API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/api/therapists",
            get(list_therapists).post(create_therapist),
        )
        .route(
            "/api/therapists/{id}",
            get(get_therapist)
                .patch(update_therapist)
                .delete(delete_therapist),
        )
        .with_state(state)
}

/// Query parameters of `GET /api/therapists`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    /// Number of items per page, 1 to 500; 50 when absent.
    pub limit: Option<i64>,
    /// Return therapists whose id is greater than this one.
    pub after: Option<i64>,
    /// Return only therapists with this status.
    pub status: Option<String>,
}

/// Response body of `DELETE /api/therapists/{id}`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TherapistDeleted {
    pub therapist_id: i64,
    pub deleted: bool,
}

/// Creates a therapist.
#[utoipa::path(
    post,
    path = "/api/therapists",
    request_body = CreateTherapist,
    responses(
        (status = 201, description = "Therapist created", body = Therapist),
        (status = 400, description = "Invalid field", body = Problem),
        (status = 409, description = "Status gesperrt requested", body = Problem),
        (status = 422, description = "Unacceptable value", body = Problem),
    ),
    tag = "therapists"
)]
pub async fn create_therapist(
    State(state): State<AppState>,
    Json(body): Json<CreateTherapist>,
) -> Result<(StatusCode, axum::Json<Therapist>), ApiError> {
    let fields = body.validate()?;

    let mut tx = state.db.pool.begin().await?;
    let therapist = store::insert(&mut tx, &fields, &kit::clock::now_rfc3339()).await?;
    tx.commit().await?;

    tracing::info!(therapist.id = therapist.id, "therapist created");
    Ok((StatusCode::CREATED, axum::Json(therapist)))
}

/// Lists therapists in id order, one page at a time.
#[utoipa::path(
    get,
    path = "/api/therapists",
    params(ListParams),
    responses(
        (status = 200, description = "One page of therapists", body = Page<Therapist>),
        (status = 400, description = "Invalid query parameter", body = Problem),
    ),
    tag = "therapists"
)]
pub async fn list_therapists(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Page<Therapist>>, ApiError> {
    let paging = PageParams {
        limit: params.limit,
        after: params.after,
    };
    let limit = paging.limit()?;
    let after = paging.after()?;
    let status = params
        .status
        .as_deref()
        .map(|text| TherapistStatus::parse("status", text))
        .transpose()?;

    let mut conn = state.db.pool.acquire().await?;
    let rows = store::list(&mut conn, status, after, limit + 1).await?;

    Ok(axum::Json(Page::from_rows(rows, limit, |therapist| {
        therapist.id
    })))
}

/// Returns one therapist.
#[utoipa::path(
    get,
    path = "/api/therapists/{id}",
    params(("id" = i64, Path, description = "Therapist id")),
    responses(
        (status = 200, description = "The therapist", body = Therapist),
        (status = 400, description = "Invalid id", body = Problem),
        (status = 404, description = "Unknown therapist", body = Problem),
    ),
    tag = "therapists"
)]
pub async fn get_therapist(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<axum::Json<Therapist>, ApiError> {
    let mut conn = state.db.pool.acquire().await?;
    let therapist = store::find(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("therapist", id))?;
    Ok(axum::Json(therapist))
}

/// Changes any subset of a therapist's writable fields. Blocking (`"status": "gesperrt"`
/// with `sperrgrund`) and leaving `gesperrt` need an `X-Saga-Id` header, because only the
/// coordinator's block-therapist and unblock-therapist sagas may do them.
#[utoipa::path(
    patch,
    path = "/api/therapists/{id}",
    params(
        ("id" = i64, Path, description = "Therapist id"),
        ("X-Saga-Id" = Option<String>, Header, description = "Saga that changes the status"),
        ("Idempotency-Key" = Option<String>, Header, description = "Key of this call"),
    ),
    request_body = UpdateTherapist,
    responses(
        (status = 200, description = "The changed therapist", body = Therapist),
        (status = 400, description = "Invalid field or missing sperrgrund", body = Problem),
        (status = 404, description = "Unknown therapist", body = Problem),
        (status = 409, description = "Block or unblock outside a saga", body = Problem),
        (
            status = 422,
            description = "Unacceptable value or reused Idempotency-Key",
            body = Problem
        ),
    ),
    tag = "therapists"
)]
pub async fn update_therapist(
    State(state): State<AppState>,
    PathId(id): PathId,
    context: SagaContext,
    Json(document): Json<Value>,
) -> Result<Response, ApiError> {
    let request: UpdateTherapist = kit::extract::parse_json(&serde_json::to_vec(&document)?)?;
    let in_saga = context.saga_id.is_some();
    let dialect = state.db.dialect;
    // When another request with the same key commits first, the work below is rolled back
    // and the stored response replayed. So the work only notes its status change, and the
    // change is counted once the response is known to be this request's own.
    let committed_change: Arc<Mutex<Option<TherapistStatus>>> = Arc::default();

    let path = format!("/api/therapists/{id}");
    let operation = Operation {
        method: "PATCH",
        path: &path,
        body: &document,
    };
    let work_change = Arc::clone(&committed_change);
    let response = idempotency::run(&state.db, &context, operation, move |tx| {
        let request = request.clone();
        let work_change = Arc::clone(&work_change);
        Box::pin(async move {
            let current = store::find_for_update(tx, dialect, id)
                .await?
                .ok_or_else(|| ApiError::not_found("therapist", id))?;
            let current_status = TherapistStatus::parse("status", &current.status)?;

            let change = StatusChange::plan(
                id,
                current_status,
                request.status,
                request.sperrgrund.as_deref(),
                in_saga,
            )?;
            let now = kit::clock::now_rfc3339();
            let fields = request.apply_to(&current, &change, &now)?;
            let therapist = store::update(tx, id, &fields, &now)
                .await?
                .ok_or_else(|| ApiError::not_found("therapist", id))?;

            *work_change.lock().unwrap_or_else(PoisonError::into_inner) = change.new_status();
            Ok(Answer::ok(serde_json::to_value(therapist)?))
        })
    })
    .await?;

    // A replay changed nothing, and a stored rejection (4xx) comes back as a response too.
    let replayed = response.headers().contains_key(REPLAYED_HEADER);
    if !response.status().is_success() || replayed {
        return Ok(response);
    }

    let new_status = committed_change
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match new_status {
        Some(to) => {
            counters::record_status_change(to);
            tracing::info!(
                therapist.id = id,
                status.to = to.as_str(),
                "therapist status changed"
            );
        }
        None => tracing::info!(therapist.id = id, "therapist updated"),
    }
    Ok(response)
}

/// Deletes a therapist.
#[utoipa::path(
    delete,
    path = "/api/therapists/{id}",
    params(
        ("id" = i64, Path, description = "Therapist id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Key of this call"),
    ),
    responses(
        (status = 200, description = "Therapist deleted", body = TherapistDeleted),
        (status = 400, description = "Invalid id", body = Problem),
        (status = 404, description = "Unknown therapist", body = Problem),
    ),
    tag = "therapists"
)]
pub async fn delete_therapist(
    State(state): State<AppState>,
    PathId(id): PathId,
    context: SagaContext,
) -> Result<Response, ApiError> {
    let path = format!("/api/therapists/{id}");
    let operation = Operation {
        method: "DELETE",
        path: &path,
        body: &Value::Null,
    };

    idempotency::run(&state.db, &context, operation, move |tx| {
        Box::pin(async move {
            if !store::delete(tx, id).await? {
                return Err(ApiError::not_found("therapist", id));
            }

            tracing::info!(therapist.id = id, "therapist deleted");
            let deleted = TherapistDeleted {
                therapist_id: id,
                deleted: true,
            };
            Ok(Answer::ok(serde_json::to_value(deleted)?))
        })
    })
    .await
}

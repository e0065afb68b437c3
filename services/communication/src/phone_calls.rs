//! Phone calls with patients and therapists. A call with a patient that becomes
//! `abgeschlossen` queues a contact report in the same transaction.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use kit::db::Dialect;
use kit::extract::{Json, PathId, Query, SagaContext};
use kit::idempotency::{self, Answer, Operation};
use kit::pagination::{Page, PageParams};
use kit::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::fields::{check_optional_id, check_parties, parse_timestamp};
use crate::outbox::{self, Channel};
use crate::AppState;

const COLUMNS: &str = "id, patient_id, therapist_id, geplant_fuer, dauer_minuten, status, \
                       abgeschlossen_am, notizen, created_at, updated_at";

/// Longest accepted call, in minutes.
const MAX_DURATION_MINUTES: i64 = 24 * 60;

/// State of a phone call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PhoneCallStatus {
    Geplant,
    Abgeschlossen,
    Fehlgeschlagen,
    Abgesagt,
}

impl PhoneCallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Geplant => "geplant",
            Self::Abgeschlossen => "abgeschlossen",
            Self::Fehlgeschlagen => "fehlgeschlagen",
            Self::Abgesagt => "abgesagt",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::Geplant,
            Self::Abgeschlossen,
            Self::Fehlgeschlagen,
            Self::Abgesagt,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// A phone call as the API returns it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PhoneCall {
    pub id: i64,
    pub patient_id: Option<i64>,
    pub therapist_id: Option<i64>,
    /// Planned start (RFC 3339, UTC).
    pub geplant_fuer: String,
    pub dauer_minuten: Option<i64>,
    pub status: PhoneCallStatus,
    /// When the call last became `abgeschlossen` (RFC 3339).
    pub abgeschlossen_am: Option<String>,
    pub notizen: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(sqlx::FromRow)]
struct PhoneCallRow {
    id: i64,
    patient_id: Option<i64>,
    therapist_id: Option<i64>,
    geplant_fuer: String,
    dauer_minuten: Option<i64>,
    status: String,
    abgeschlossen_am: Option<String>,
    notizen: Option<String>,
    created_at: String,
    updated_at: String,
}

impl TryFrom<PhoneCallRow> for PhoneCall {
    type Error = ApiError;

    fn try_from(row: PhoneCallRow) -> Result<Self, ApiError> {
        let status = PhoneCallStatus::parse(&row.status).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "phone call {} has the unknown status {:?}",
                row.id,
                row.status
            ))
        })?;

        Ok(Self {
            id: row.id,
            patient_id: row.patient_id,
            therapist_id: row.therapist_id,
            geplant_fuer: row.geplant_fuer,
            dauer_minuten: row.dauer_minuten,
            status,
            abgeschlossen_am: row.abgeschlossen_am,
            notizen: row.notizen,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Body of `POST /api/phone-calls`. At least one of `patient_id` and `therapist_id` is
/// required.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPhoneCall {
    pub patient_id: Option<i64>,
    pub therapist_id: Option<i64>,
    /// Planned start, RFC 3339 with an offset.
    pub geplant_fuer: String,
    /// Length in minutes, 0 to 1440.
    pub dauer_minuten: Option<i64>,
    /// `geplant` when absent.
    pub status: Option<PhoneCallStatus>,
    pub notizen: Option<String>,
}

/// Body of `PATCH /api/phone-calls/{id}`: the fields to change. A null value leaves the
/// field as it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneCallChanges {
    pub patient_id: Option<i64>,
    pub therapist_id: Option<i64>,
    pub geplant_fuer: Option<String>,
    pub dauer_minuten: Option<i64>,
    pub status: Option<PhoneCallStatus>,
    pub notizen: Option<String>,
}

/// Query parameters of the phone call list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PhoneCallListParams {
    /// Only calls with this patient.
    pub patient_id: Option<i64>,
    /// Only calls with this therapist.
    pub therapist_id: Option<i64>,
    /// Only calls with this status.
    pub status: Option<PhoneCallStatus>,
    /// Number of items per page, 1 to 500; 50 when absent.
    pub limit: Option<i64>,
    /// Return items whose id is greater than this one.
    pub after: Option<i64>,
}

fn check_duration(dauer_minuten: Option<i64>) -> Result<(), ApiError> {
    match dauer_minuten {
        Some(minutes) if !(0..=MAX_DURATION_MINUTES).contains(&minutes) => {
            Err(ApiError::unprocessable(
                "dauer_minuten",
                format!(
                    "dauer_minuten must be between 0 and {MAX_DURATION_MINUTES}, got {minutes}"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Creates a phone call. A call with a patient created as `abgeschlossen` is reported to
/// the coordinator.
#[utoipa::path(
    post,
    path = "/api/phone-calls",
    request_body = NewPhoneCall,
    responses(
        (status = 201, description = "The phone call was created", body = PhoneCall),
        (status = 400, description = "Invalid field", body = kit::error::Problem),
        (status = 422, description = "Unacceptable value", body = kit::error::Problem),
    ),
    tag = "phone-calls"
)]
pub async fn create_phone_call(
    State(state): State<AppState>,
    context: SagaContext,
    Json(request): Json<NewPhoneCall>,
) -> Result<Response, ApiError> {
    check_parties(request.patient_id, request.therapist_id)?;
    let geplant_fuer = parse_timestamp("geplant_fuer", &request.geplant_fuer)?;
    check_duration(request.dauer_minuten)?;
    let body = serde_json::to_value(&request)?;
    let added_report = Arc::new(AtomicBool::new(false));

    let operation = Operation {
        method: "POST",
        path: "/api/phone-calls",
        body: &body,
    };
    let response = idempotency::run(&state.db, &context, operation, |tx| {
        let request = NewPhoneCall {
            geplant_fuer: geplant_fuer.clone(),
            ..request.clone()
        };
        let added_report = added_report.clone();
        Box::pin(async move {
            let call = insert(tx, &request).await?;
            let added = queue_report(tx, None, &call).await?;
            added_report.store(added, Ordering::Relaxed);
            Ok(Answer::created(serde_json::to_value(call)?))
        })
    })
    .await?;

    state.report_added(added_report.load(Ordering::Relaxed));
    Ok(response)
}

/// Lists phone calls in id order.
#[utoipa::path(
    get,
    path = "/api/phone-calls",
    params(PhoneCallListParams),
    responses(
        (status = 200, description = "One page of phone calls", body = Page<PhoneCall>),
        (status = 400, description = "Invalid query parameter", body = kit::error::Problem),
    ),
    tag = "phone-calls"
)]
pub async fn list_phone_calls(
    State(state): State<AppState>,
    Query(params): Query<PhoneCallListParams>,
) -> Result<axum::Json<Page<PhoneCall>>, ApiError> {
    let paging = PageParams {
        limit: params.limit,
        after: params.after,
    };
    let limit = paging.limit()?;
    let after = paging.after()?;
    check_optional_id("patient_id", params.patient_id)?;
    check_optional_id("therapist_id", params.therapist_id)?;

    let rows: Vec<PhoneCallRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM phone_calls
         WHERE id > $1
           AND ($2 IS NULL OR patient_id = $2)
           AND ($3 IS NULL OR therapist_id = $3)
           AND ($4 IS NULL OR status = $4)
         ORDER BY id
         LIMIT $5"
    ))
    .bind(after)
    .bind(params.patient_id)
    .bind(params.therapist_id)
    .bind(params.status.map(PhoneCallStatus::as_str))
    .bind(limit + 1)
    .fetch_all(&state.db.pool)
    .await?;

    let calls = rows
        .into_iter()
        .map(PhoneCall::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(Page::from_rows(calls, limit, |call| call.id)))
}

/// Returns one phone call.
#[utoipa::path(
    get,
    path = "/api/phone-calls/{id}",
    params(("id" = i64, Path, description = "Id of the phone call")),
    responses(
        (status = 200, description = "The phone call", body = PhoneCall),
        (status = 400, description = "Invalid id", body = kit::error::Problem),
        (status = 404, description = "No phone call with this id", body = kit::error::Problem),
    ),
    tag = "phone-calls"
)]
pub async fn get_phone_call(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<axum::Json<PhoneCall>, ApiError> {
    let row: Option<PhoneCallRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM phone_calls WHERE id = $1"))
            .bind(id)
            .fetch_optional(&state.db.pool)
            .await?;

    let row = row.ok_or_else(|| ApiError::not_found("phone call", id))?;
    Ok(axum::Json(PhoneCall::try_from(row)?))
}

/// Changes a phone call. When a call with a patient becomes `abgeschlossen`, the contact is
/// reported to the coordinator once.
#[utoipa::path(
    patch,
    path = "/api/phone-calls/{id}",
    params(("id" = i64, Path, description = "Id of the phone call")),
    request_body = PhoneCallChanges,
    responses(
        (status = 200, description = "The changed phone call", body = PhoneCall),
        (status = 400, description = "Invalid field", body = kit::error::Problem),
        (status = 404, description = "No phone call with this id", body = kit::error::Problem),
        (status = 422, description = "Unacceptable value", body = kit::error::Problem),
    ),
    tag = "phone-calls"
)]
pub async fn update_phone_call(
    State(state): State<AppState>,
    PathId(id): PathId,
    context: SagaContext,
    Json(changes): Json<PhoneCallChanges>,
) -> Result<Response, ApiError> {
    check_optional_id("patient_id", changes.patient_id)?;
    check_optional_id("therapist_id", changes.therapist_id)?;
    let geplant_fuer = changes
        .geplant_fuer
        .as_deref()
        .map(|text| parse_timestamp("geplant_fuer", text))
        .transpose()?;
    check_duration(changes.dauer_minuten)?;
    let body = serde_json::to_value(&changes)?;
    let path = format!("/api/phone-calls/{id}");
    let dialect = state.db.dialect;
    let added_report = Arc::new(AtomicBool::new(false));

    let operation = Operation {
        method: "PATCH",
        path: &path,
        body: &body,
    };
    let response = idempotency::run(&state.db, &context, operation, |tx| {
        let changes = PhoneCallChanges {
            geplant_fuer: geplant_fuer.clone(),
            ..changes.clone()
        };
        let added_report = added_report.clone();
        Box::pin(async move {
            let current = lock(tx, dialect, id).await?;
            let updated = update(tx, &current, &changes).await?;
            let added = queue_report(tx, Some(&current), &updated).await?;
            added_report.store(added, Ordering::Relaxed);
            Ok(Answer::ok(serde_json::to_value(updated)?))
        })
    })
    .await?;

    state.report_added(added_report.load(Ordering::Relaxed));
    Ok(response)
}

/// Deletes a phone call. A contact report it caused stays in the outbox.
#[utoipa::path(
    delete,
    path = "/api/phone-calls/{id}",
    params(("id" = i64, Path, description = "Id of the phone call")),
    responses(
        (status = 200, description = "The phone call was deleted"),
        (status = 400, description = "Invalid id", body = kit::error::Problem),
        (status = 404, description = "No phone call with this id", body = kit::error::Problem),
    ),
    tag = "phone-calls"
)]
pub async fn delete_phone_call(
    State(state): State<AppState>,
    PathId(id): PathId,
    context: SagaContext,
) -> Result<Response, ApiError> {
    let path = format!("/api/phone-calls/{id}");
    let body = serde_json::Value::Null;
    let operation = Operation {
        method: "DELETE",
        path: &path,
        body: &body,
    };

    idempotency::run(&state.db, &context, operation, |tx| {
        Box::pin(async move {
            let deleted = sqlx::query("DELETE FROM phone_calls WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            if deleted.rows_affected() == 0 {
                return Err(ApiError::not_found("phone call", id));
            }
            tracing::info!(phone_call.id = id, "phone call deleted");
            Ok(Answer::ok(
                serde_json::json!({ "phone_call_id": id, "deleted": true }),
            ))
        })
    })
    .await
}

/// Inserts a call whose `geplant_fuer` is already in the stored form.
async fn insert(conn: &mut AnyConnection, request: &NewPhoneCall) -> Result<PhoneCall, ApiError> {
    let now = kit::clock::now_rfc3339();
    let status = request.status.unwrap_or(PhoneCallStatus::Geplant);
    let abgeschlossen_am = (status == PhoneCallStatus::Abgeschlossen).then(|| now.clone());

    let row: PhoneCallRow = sqlx::query_as(&format!(
        "INSERT INTO phone_calls (patient_id, therapist_id, geplant_fuer, dauer_minuten, status,
            abgeschlossen_am, notizen, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
         RETURNING {COLUMNS}"
    ))
    .bind(request.patient_id)
    .bind(request.therapist_id)
    .bind(&request.geplant_fuer)
    .bind(request.dauer_minuten)
    .bind(status.as_str())
    .bind(abgeschlossen_am)
    .bind(request.notizen.clone())
    .bind(&now)
    .fetch_one(&mut *conn)
    .await?;

    let call = PhoneCall::try_from(row)?;
    tracing::info!(
        phone_call.id = call.id,
        status = status.as_str(),
        "phone call created"
    );
    Ok(call)
}

/// Reads a call and, on PostgreSQL, locks its row until the transaction ends.
async fn lock(conn: &mut AnyConnection, dialect: Dialect, id: i64) -> Result<PhoneCall, ApiError> {
    let lock_clause = match dialect {
        Dialect::Postgres => " FOR UPDATE",
        Dialect::Sqlite => "",
    };
    let row: Option<PhoneCallRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM phone_calls WHERE id = $1{lock_clause}"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;

    let row = row.ok_or_else(|| ApiError::not_found("phone call", id))?;
    PhoneCall::try_from(row)
}

/// Applies `changes`, whose `geplant_fuer` is already in the stored form.
async fn update(
    conn: &mut AnyConnection,
    current: &PhoneCall,
    changes: &PhoneCallChanges,
) -> Result<PhoneCall, ApiError> {
    let now = kit::clock::now_rfc3339();
    let status = changes.status.unwrap_or(current.status);
    let abgeschlossen_am = if status == PhoneCallStatus::Abgeschlossen && current.status != status {
        Some(now.clone())
    } else {
        current.abgeschlossen_am.clone()
    };

    let row: PhoneCallRow = sqlx::query_as(&format!(
        "UPDATE phone_calls SET patient_id = $2, therapist_id = $3, geplant_fuer = $4,
            dauer_minuten = $5, status = $6, abgeschlossen_am = $7, notizen = $8,
            updated_at = $9
         WHERE id = $1
         RETURNING {COLUMNS}"
    ))
    .bind(current.id)
    .bind(changes.patient_id.or(current.patient_id))
    .bind(changes.therapist_id.or(current.therapist_id))
    .bind(
        changes
            .geplant_fuer
            .as_ref()
            .unwrap_or(&current.geplant_fuer),
    )
    .bind(changes.dauer_minuten.or(current.dauer_minuten))
    .bind(status.as_str())
    .bind(abgeschlossen_am)
    .bind(changes.notizen.clone().or_else(|| current.notizen.clone()))
    .bind(&now)
    .fetch_one(&mut *conn)
    .await?;

    let call = PhoneCall::try_from(row)?;
    tracing::info!(
        phone_call.id = call.id,
        status = status.as_str(),
        "phone call updated"
    );
    Ok(call)
}

/// Queues the contact report when the call with a patient became `abgeschlossen` and returns
/// true when it added one.
async fn queue_report(
    conn: &mut AnyConnection,
    before: Option<&PhoneCall>,
    after: &PhoneCall,
) -> Result<bool, ApiError> {
    let Some(patient_id) = after.patient_id else {
        return Ok(false);
    };
    let was_completed = before.is_some_and(|call| call.status == PhoneCallStatus::Abgeschlossen);
    if after.status != PhoneCallStatus::Abgeschlossen || was_completed {
        return Ok(false);
    }

    let source_id = format!("phone-call-{}-abgeschlossen", after.id);
    Ok(outbox::enqueue(conn, patient_id, Channel::PhoneCall, &source_id).await?)
}

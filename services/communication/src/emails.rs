//! Emails to patients and therapists. An email to a patient that becomes `Gesendet`, or whose
//! reply arrives, queues a contact report in the same transaction.

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

use crate::fields::{check_optional_id, check_parties, check_text, MAX_SUBJECT_CHARS};
use crate::outbox::{self, Channel};
use crate::AppState;

const COLUMNS: &str = "id, patient_id, therapist_id, betreff, inhalt, status, antwort_erhalten, \
                       gesendet_am, antwort_am, created_at, updated_at";

/// Delivery state of an email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EmailStatus {
    Entwurf,
    #[serde(rename = "In_Warteschlange")]
    InWarteschlange,
    Gesendet,
    Fehlgeschlagen,
}

impl EmailStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Entwurf => "Entwurf",
            Self::InWarteschlange => "In_Warteschlange",
            Self::Gesendet => "Gesendet",
            Self::Fehlgeschlagen => "Fehlgeschlagen",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::Entwurf,
            Self::InWarteschlange,
            Self::Gesendet,
            Self::Fehlgeschlagen,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// An email as the API returns it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Email {
    pub id: i64,
    pub patient_id: Option<i64>,
    pub therapist_id: Option<i64>,
    pub betreff: String,
    pub inhalt: String,
    pub status: EmailStatus,
    pub antwort_erhalten: bool,
    /// When the email last became `Gesendet` (RFC 3339).
    pub gesendet_am: Option<String>,
    /// When the reply was recorded (RFC 3339); empty while `antwort_erhalten` is false.
    pub antwort_am: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(sqlx::FromRow)]
struct EmailRow {
    id: i64,
    patient_id: Option<i64>,
    therapist_id: Option<i64>,
    betreff: String,
    inhalt: String,
    status: String,
    antwort_erhalten: i64,
    gesendet_am: Option<String>,
    antwort_am: Option<String>,
    created_at: String,
    updated_at: String,
}

impl TryFrom<EmailRow> for Email {
    type Error = ApiError;

    fn try_from(row: EmailRow) -> Result<Self, ApiError> {
        let status = EmailStatus::parse(&row.status).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "email {} has the unknown status {:?}",
                row.id,
                row.status
            ))
        })?;

        Ok(Self {
            id: row.id,
            patient_id: row.patient_id,
            therapist_id: row.therapist_id,
            betreff: row.betreff,
            inhalt: row.inhalt,
            status,
            antwort_erhalten: row.antwort_erhalten != 0,
            gesendet_am: row.gesendet_am,
            antwort_am: row.antwort_am,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Body of `POST /api/emails`. At least one of `patient_id` and `therapist_id` is required.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEmail {
    pub patient_id: Option<i64>,
    pub therapist_id: Option<i64>,
    pub betreff: String,
    pub inhalt: String,
    /// `Entwurf` when absent.
    pub status: Option<EmailStatus>,
    /// False when absent.
    pub antwort_erhalten: Option<bool>,
}

impl NewEmail {
    fn check(&self) -> Result<(), ApiError> {
        check_parties(self.patient_id, self.therapist_id)?;
        check_text("betreff", &self.betreff, Some(MAX_SUBJECT_CHARS))?;
        check_text("inhalt", &self.inhalt, None)
    }
}

/// Body of `PATCH /api/emails/{id}`: the fields to change. A null value leaves the field as
/// it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChanges {
    pub patient_id: Option<i64>,
    pub therapist_id: Option<i64>,
    pub betreff: Option<String>,
    pub inhalt: Option<String>,
    pub status: Option<EmailStatus>,
    pub antwort_erhalten: Option<bool>,
}

impl EmailChanges {
    fn check(&self) -> Result<(), ApiError> {
        check_optional_id("patient_id", self.patient_id)?;
        check_optional_id("therapist_id", self.therapist_id)?;
        if let Some(betreff) = &self.betreff {
            check_text("betreff", betreff, Some(MAX_SUBJECT_CHARS))?;
        }
        if let Some(inhalt) = &self.inhalt {
            check_text("inhalt", inhalt, None)?;
        }
        Ok(())
    }
}

/// Query parameters of the email list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EmailListParams {
    /// Only emails to or from this patient.
    pub patient_id: Option<i64>,
    /// Only emails to or from this therapist.
    pub therapist_id: Option<i64>,
    /// Only emails with this status.
    pub status: Option<EmailStatus>,
    /// Number of items per page, 1 to 500; 50 when absent.
    pub limit: Option<i64>,
    /// Return items whose id is greater than this one.
    pub after: Option<i64>,
}

/// Creates an email. When it is created as `Gesendet` or with `antwort_erhalten` for a
/// patient, the contact is reported to the coordinator.
#[utoipa::path(
    post,
    path = "/api/emails",
    request_body = NewEmail,
    responses(
        (status = 201, description = "The email was created", body = Email),
        (status = 400, description = "Invalid field", body = kit::error::Problem),
        (status = 422, description = "Unacceptable value", body = kit::error::Problem),
    ),
    tag = "emails"
)]
pub async fn create_email(
    State(state): State<AppState>,
    context: SagaContext,
    Json(request): Json<NewEmail>,
) -> Result<Response, ApiError> {
    request.check()?;
    let body = serde_json::to_value(&request)?;
    let added_report = Arc::new(AtomicBool::new(false));

    let operation = Operation {
        method: "POST",
        path: "/api/emails",
        body: &body,
    };
    let response = idempotency::run(&state.db, &context, operation, |tx| {
        let request = request.clone();
        let added_report = added_report.clone();
        Box::pin(async move {
            let email = insert(tx, &request).await?;
            let added = queue_reports(tx, None, &email).await?;
            added_report.store(added, Ordering::Relaxed);
            Ok(Answer::created(serde_json::to_value(email)?))
        })
    })
    .await?;

    state.report_added(added_report.load(Ordering::Relaxed));
    Ok(response)
}

/// Lists emails in id order.
#[utoipa::path(
    get,
    path = "/api/emails",
    params(EmailListParams),
    responses(
        (status = 200, description = "One page of emails", body = Page<Email>),
        (status = 400, description = "Invalid query parameter", body = kit::error::Problem),
    ),
    tag = "emails"
)]
pub async fn list_emails(
    State(state): State<AppState>,
    Query(params): Query<EmailListParams>,
) -> Result<axum::Json<Page<Email>>, ApiError> {
    let paging = PageParams {
        limit: params.limit,
        after: params.after,
    };
    let limit = paging.limit()?;
    let after = paging.after()?;
    check_optional_id("patient_id", params.patient_id)?;
    check_optional_id("therapist_id", params.therapist_id)?;

    let rows: Vec<EmailRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM emails
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
    .bind(params.status.map(EmailStatus::as_str))
    .bind(limit + 1)
    .fetch_all(&state.db.pool)
    .await?;

    let emails = rows
        .into_iter()
        .map(Email::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(Page::from_rows(emails, limit, |email| email.id)))
}

/// Returns one email.
#[utoipa::path(
    get,
    path = "/api/emails/{id}",
    params(("id" = i64, Path, description = "Id of the email")),
    responses(
        (status = 200, description = "The email", body = Email),
        (status = 400, description = "Invalid id", body = kit::error::Problem),
        (status = 404, description = "No email with this id", body = kit::error::Problem),
    ),
    tag = "emails"
)]
pub async fn get_email(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<axum::Json<Email>, ApiError> {
    let row: Option<EmailRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM emails WHERE id = $1"))
            .bind(id)
            .fetch_optional(&state.db.pool)
            .await?;

    let row = row.ok_or_else(|| ApiError::not_found("email", id))?;
    Ok(axum::Json(Email::try_from(row)?))
}

/// Changes an email. When it becomes `Gesendet` or gets `antwort_erhalten` for a patient,
/// the contact is reported to the coordinator; a repeat of either reports nothing new.
#[utoipa::path(
    patch,
    path = "/api/emails/{id}",
    params(("id" = i64, Path, description = "Id of the email")),
    request_body = EmailChanges,
    responses(
        (status = 200, description = "The changed email", body = Email),
        (status = 400, description = "Invalid field", body = kit::error::Problem),
        (status = 404, description = "No email with this id", body = kit::error::Problem),
        (status = 422, description = "Unacceptable value", body = kit::error::Problem),
    ),
    tag = "emails"
)]
pub async fn update_email(
    State(state): State<AppState>,
    PathId(id): PathId,
    context: SagaContext,
    Json(changes): Json<EmailChanges>,
) -> Result<Response, ApiError> {
    changes.check()?;
    let body = serde_json::to_value(&changes)?;
    let path = format!("/api/emails/{id}");
    let dialect = state.db.dialect;
    let added_report = Arc::new(AtomicBool::new(false));

    let operation = Operation {
        method: "PATCH",
        path: &path,
        body: &body,
    };
    let response = idempotency::run(&state.db, &context, operation, |tx| {
        let changes = changes.clone();
        let added_report = added_report.clone();
        Box::pin(async move {
            let current = lock(tx, dialect, id).await?;
            let updated = update(tx, &current, &changes).await?;
            let added = queue_reports(tx, Some(&current), &updated).await?;
            added_report.store(added, Ordering::Relaxed);
            Ok(Answer::ok(serde_json::to_value(updated)?))
        })
    })
    .await?;

    state.report_added(added_report.load(Ordering::Relaxed));
    Ok(response)
}

/// Deletes an email. Contact reports it caused stay in the outbox.
#[utoipa::path(
    delete,
    path = "/api/emails/{id}",
    params(("id" = i64, Path, description = "Id of the email")),
    responses(
        (status = 200, description = "The email was deleted"),
        (status = 400, description = "Invalid id", body = kit::error::Problem),
        (status = 404, description = "No email with this id", body = kit::error::Problem),
    ),
    tag = "emails"
)]
pub async fn delete_email(
    State(state): State<AppState>,
    PathId(id): PathId,
    context: SagaContext,
) -> Result<Response, ApiError> {
    let path = format!("/api/emails/{id}");
    let body = serde_json::Value::Null;
    let operation = Operation {
        method: "DELETE",
        path: &path,
        body: &body,
    };

    idempotency::run(&state.db, &context, operation, |tx| {
        Box::pin(async move {
            let deleted = sqlx::query("DELETE FROM emails WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            if deleted.rows_affected() == 0 {
                return Err(ApiError::not_found("email", id));
            }
            tracing::info!(email.id = id, "email deleted");
            Ok(Answer::ok(
                serde_json::json!({ "email_id": id, "deleted": true }),
            ))
        })
    })
    .await
}

async fn insert(conn: &mut AnyConnection, request: &NewEmail) -> Result<Email, ApiError> {
    let now = kit::clock::now_rfc3339();
    let status = request.status.unwrap_or(EmailStatus::Entwurf);
    let antwort_erhalten = request.antwort_erhalten.unwrap_or(false);
    let gesendet_am = (status == EmailStatus::Gesendet).then(|| now.clone());
    let antwort_am = antwort_erhalten.then(|| now.clone());

    let row: EmailRow = sqlx::query_as(&format!(
        "INSERT INTO emails (patient_id, therapist_id, betreff, inhalt, status,
            antwort_erhalten, gesendet_am, antwort_am, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
         RETURNING {COLUMNS}"
    ))
    .bind(request.patient_id)
    .bind(request.therapist_id)
    .bind(&request.betreff)
    .bind(&request.inhalt)
    .bind(status.as_str())
    .bind(i64::from(antwort_erhalten))
    .bind(gesendet_am)
    .bind(antwort_am)
    .bind(&now)
    .fetch_one(&mut *conn)
    .await?;

    let email = Email::try_from(row)?;
    tracing::info!(
        email.id = email.id,
        status = status.as_str(),
        "email created"
    );
    Ok(email)
}

/// Reads an email and, on PostgreSQL, locks its row until the transaction ends, so that
/// concurrent changes of one email apply one after the other.
async fn lock(conn: &mut AnyConnection, dialect: Dialect, id: i64) -> Result<Email, ApiError> {
    let lock_clause = match dialect {
        Dialect::Postgres => " FOR UPDATE",
        Dialect::Sqlite => "",
    };
    let row: Option<EmailRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM emails WHERE id = $1{lock_clause}"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;

    let row = row.ok_or_else(|| ApiError::not_found("email", id))?;
    Email::try_from(row)
}

async fn update(
    conn: &mut AnyConnection,
    current: &Email,
    changes: &EmailChanges,
) -> Result<Email, ApiError> {
    let now = kit::clock::now_rfc3339();
    let status = changes.status.unwrap_or(current.status);
    let antwort_erhalten = changes.antwort_erhalten.unwrap_or(current.antwort_erhalten);
    let gesendet_am = if status == EmailStatus::Gesendet && current.status != status {
        Some(now.clone())
    } else {
        current.gesendet_am.clone()
    };
    let antwort_am = match (current.antwort_erhalten, antwort_erhalten) {
        (false, true) => Some(now.clone()),
        (_, false) => None,
        (true, true) => current.antwort_am.clone(),
    };

    let row: EmailRow = sqlx::query_as(&format!(
        "UPDATE emails SET patient_id = $2, therapist_id = $3, betreff = $4, inhalt = $5,
            status = $6, antwort_erhalten = $7, gesendet_am = $8, antwort_am = $9,
            updated_at = $10
         WHERE id = $1
         RETURNING {COLUMNS}"
    ))
    .bind(current.id)
    .bind(changes.patient_id.or(current.patient_id))
    .bind(changes.therapist_id.or(current.therapist_id))
    .bind(changes.betreff.as_ref().unwrap_or(&current.betreff))
    .bind(changes.inhalt.as_ref().unwrap_or(&current.inhalt))
    .bind(status.as_str())
    .bind(i64::from(antwort_erhalten))
    .bind(gesendet_am)
    .bind(antwort_am)
    .bind(&now)
    .fetch_one(&mut *conn)
    .await?;

    let email = Email::try_from(row)?;
    tracing::info!(
        email.id = email.id,
        status = status.as_str(),
        "email updated"
    );
    Ok(email)
}

/// Queues the contact reports that the change from `before` (none on create) to `after`
/// causes and returns true when it added one.
async fn queue_reports(
    conn: &mut AnyConnection,
    before: Option<&Email>,
    after: &Email,
) -> Result<bool, ApiError> {
    let Some(patient_id) = after.patient_id else {
        return Ok(false);
    };
    let mut added = false;

    let was_sent = before.is_some_and(|email| email.status == EmailStatus::Gesendet);
    if after.status == EmailStatus::Gesendet && !was_sent {
        let source_id = format!("email-{}-gesendet", after.id);
        added |= outbox::enqueue(conn, patient_id, Channel::Email, &source_id).await?;
    }

    let was_answered = before.is_some_and(|email| email.antwort_erhalten);
    if after.antwort_erhalten && !was_answered {
        let source_id = format!("email-{}-antwort", after.id);
        added |= outbox::enqueue(conn, patient_id, Channel::Email, &source_id).await?;
    }

    Ok(added)
}

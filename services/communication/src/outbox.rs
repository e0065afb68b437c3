//! The outbox of patient contact reports: rows that a change adds in its own transaction and
//! that the deliverer sends to the coordinator, plus the operator's view of them.

use axum::extract::State;
use kit::extract::Query;
use kit::pagination::{Page, PageParams};
use kit::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::AppState;

/// The way a patient was contacted, as the coordinator's `channel` field names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    PhoneCall,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::PhoneCall => "phone_call",
        }
    }
}

/// Delivery state of a report: waiting, accepted by the coordinator, or rejected with a 4xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    Pending,
    Delivered,
    Rejected,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Rejected => "rejected",
        }
    }
}

/// One stored contact report.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OutboxEntry {
    pub id: i64,
    pub patient_id: i64,
    /// Day of the contact, `YYYY-MM-DD` in UTC.
    pub contact_date: String,
    /// `email` or `phone_call`.
    pub channel: String,
    /// Name of the event, also sent as the `Idempotency-Key`, such as `email-12-gesendet`.
    pub source_id: String,
    /// `pending`, `delivered` or `rejected`.
    pub state: String,
    /// Number of delivery attempts so far.
    pub attempts: i64,
    /// Earliest time of the next attempt while the report is pending (RFC 3339).
    pub next_attempt_at: String,
    /// The last failure: the coordinator's status and response body, or the transport error.
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

/// Adds a report for `source_id` unless one exists, inside the caller's transaction, and
/// returns true when it added one.
pub async fn enqueue(
    conn: &mut AnyConnection,
    patient_id: i64,
    channel: Channel,
    source_id: &str,
) -> Result<bool, sqlx::Error> {
    let now = kit::clock::now_rfc3339();
    let result = sqlx::query(
        "INSERT INTO contact_outbox
            (patient_id, contact_date, channel, source_id, state, attempts, next_attempt_at,
             created_at)
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)
         ON CONFLICT (source_id) DO NOTHING",
    )
    .bind(patient_id)
    .bind(kit::clock::today())
    .bind(channel.as_str())
    .bind(source_id)
    .bind(&now)
    .execute(&mut *conn)
    .await?;

    let added = result.rows_affected() == 1;
    if added {
        tracing::debug!(
            patient.id = patient_id,
            source.id = source_id,
            "contact report queued"
        );
    }
    Ok(added)
}

/// Query parameters of the outbox list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxListParams {
    /// Only reports in this state.
    pub state: Option<OutboxState>,
    /// Number of items per page, 1 to 500; 50 when absent.
    pub limit: Option<i64>,
    /// Return items whose id is greater than this one.
    pub after: Option<i64>,
}

/// Lists the contact reports in id order, optionally only those in one state.
#[utoipa::path(
    get,
    path = "/api/contact-outbox",
    params(OutboxListParams),
    responses(
        (status = 200, description = "One page of reports", body = Page<OutboxEntry>),
        (status = 400, description = "Invalid query parameter", body = kit::error::Problem),
    ),
    tag = "contact-outbox"
)]
pub async fn list_contact_outbox(
    State(state): State<AppState>,
    Query(params): Query<OutboxListParams>,
) -> Result<axum::Json<Page<OutboxEntry>>, ApiError> {
    let paging = PageParams {
        limit: params.limit,
        after: params.after,
    };
    let limit = paging.limit()?;
    let after = paging.after()?;

    let rows: Vec<OutboxEntry> = sqlx::query_as(
        "SELECT id, patient_id, contact_date, channel, source_id, state, attempts,
                next_attempt_at, last_error, created_at, delivered_at
         FROM contact_outbox
         WHERE id > $1 AND ($2 IS NULL OR state = $2)
         ORDER BY id
         LIMIT $3",
    )
    .bind(after)
    .bind(params.state.map(OutboxState::as_str))
    .bind(limit + 1)
    .fetch_all(&state.db.pool)
    .await?;

    Ok(axum::Json(Page::from_rows(rows, limit, |row| row.id)))
}

//! The idempotency contract of every endpoint the coordinator calls.
//!
//! A request with an `Idempotency-Key` runs its work and stores its response in one
//! transaction. A repeat with the same key and request gets the stored response and changes
//! nothing, while the same key with another request gets 422. A compensating call can cancel a
//! forward key that has not arrived yet, and the forward call is then refused with 409.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Any, AnyConnection, Row, Transaction};

use crate::clock::now_rfc3339;
use crate::db::{is_unique_violation, Database};
use crate::error::ApiError;
use crate::extract::SagaContext;

/// Header set on a response that repeats a stored one.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

const STATE_COMPLETED: &str = "completed";
const STATE_CANCELLED: &str = "cancelled";

/// How many times a request whose key another request stored concurrently re-reads it.
const MAX_CONFLICT_ROUNDS: usize = 3;

/// A JSON response body with its status, as handlers return it and the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
        }
    }

    pub fn created(body: Value) -> Self {
        Self {
            status: StatusCode::CREATED,
            body,
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// The request that a key is bound to: method, path and body.
#[derive(Debug, Clone)]
pub struct Operation<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a Value,
}

impl Operation<'_> {
    /// Returns a SHA-256 over the method, path and canonical JSON body. serde_json sorts
    /// object keys, so the same document in another key order has the same fingerprint.
    fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.method.as_bytes());
        hasher.update(b" ");
        hasher.update(self.path.as_bytes());
        hasher.update(b"\n");
        hasher.update(self.body.to_string().as_bytes());
        format!("{:x}", hasher.finalize())
    }
}

/// State of a forward key in the store when its compensation arrives.
#[derive(Debug, Clone, PartialEq)]
pub enum ForwardCall {
    /// The forward call never arrived; it is now cancelled and will be refused with 409.
    NeverArrived,
    /// The forward call got a response with this status.
    Answered(StatusCode),
}

/// Creates the table of stored responses when it does not exist. The same statement works on
/// PostgreSQL and SQLite.
pub async fn ensure_table(db: &Database) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS idempotency_records (
            idempotency_key TEXT PRIMARY KEY,
            request_hash TEXT NOT NULL,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            saga_id TEXT,
            saga_step TEXT,
            state TEXT NOT NULL,
            status_code BIGINT NOT NULL,
            response_body TEXT NOT NULL,
            created_at TEXT NOT NULL
        )",
    )
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Runs `work` in a transaction under the contract above and returns the response to send.
///
/// Without a key the work simply runs. A client error (4xx) from `work` rolls its changes
/// back and is stored as the key's response. A server error is not stored, so a retry with
/// the same key runs the work again.
pub async fn run<F>(
    db: &Database,
    context: &SagaContext,
    operation: Operation<'_>,
    work: F,
) -> Result<Response, ApiError>
where
    F: for<'t> Fn(&'t mut Transaction<'static, Any>) -> BoxFuture<'t, Result<Answer, ApiError>>,
{
    let Some(key) = context.idempotency_key.as_deref() else {
        let mut tx = db.pool.begin().await?;
        let answer = work(&mut tx).await?;
        tx.commit().await?;
        return Ok(answer.into_response());
    };
    let fingerprint = operation.fingerprint();

    for _ in 0..MAX_CONFLICT_ROUNDS {
        let mut tx = db.pool.begin().await?;
        if let Some(stored) = stored_answer(&mut tx, key, &fingerprint, &operation).await? {
            return Ok(replayed(stored));
        }

        let answer = match work(&mut tx).await {
            Ok(answer) => answer,
            Err(error) if error.status().is_client_error() => {
                tx.rollback().await?;
                let answer = Answer {
                    status: error.status(),
                    body: serde_json::to_value(error.problem())?,
                };
                let mut tx = db.pool.begin().await?;
                match insert(&mut tx, key, &fingerprint, &operation, context, &answer).await {
                    Ok(()) => {
                        tx.commit().await?;
                        return Ok(error.into_response());
                    }
                    Err(error) if is_unique_violation(&error) => continue,
                    Err(error) => return Err(error.into()),
                }
            }
            Err(error) => return Err(error),
        };

        match insert(&mut tx, key, &fingerprint, &operation, context, &answer).await {
            Ok(()) => {
                tx.commit().await?;
                return Ok(answer.into_response());
            }
            // Another request with this key committed first, so its response is returned.
            Err(error) if is_unique_violation(&error) => {
                tx.rollback().await?;
                continue;
            }
            Err(error) => return Err(error.into()),
        }
    }

    Err(ApiError::conflict(format!(
        "requests with Idempotency-Key {key:?} keep colliding; retry with the same key"
    )))
}

/// Marks a forward key as compensated, inside the compensation's transaction, and returns
/// what the store held for it before.
pub async fn cancel_forward(
    tx: &mut Transaction<'static, Any>,
    forward_key: &str,
    context: &SagaContext,
) -> Result<ForwardCall, ApiError> {
    let now = now_rfc3339();
    // ON CONFLICT waits for a concurrent forward call with this key and then leaves its
    // record alone, so the select below reads whichever of the two came first.
    sqlx::query(
        "INSERT INTO idempotency_records (idempotency_key, request_hash, method, path, saga_id,
            saga_step, state, status_code, response_body, created_at)
         VALUES ($1, '', '', '', $2, $3, $4, 409, '{}', $5)
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(forward_key)
    .bind(context.saga_id.clone())
    .bind(context.step.clone())
    .bind(STATE_CANCELLED)
    .bind(&now)
    .execute(&mut **tx)
    .await?;

    let row = sqlx::query(
        "SELECT state, status_code FROM idempotency_records WHERE idempotency_key = $1",
    )
    .bind(forward_key)
    .fetch_one(&mut **tx)
    .await?;
    let state: String = row.try_get("state")?;
    let status: i64 = row.try_get("status_code")?;

    if state == STATE_CANCELLED {
        Ok(ForwardCall::NeverArrived)
    } else {
        let status = u16::try_from(status)
            .ok()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or(StatusCode::OK);
        Ok(ForwardCall::Answered(status))
    }
}

/// Returns the method and path of the request stored under `key`, or `None` when no
/// request was stored or the key was cancelled by a compensation.
pub async fn stored_operation(
    conn: &mut AnyConnection,
    key: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT method, path, state FROM idempotency_records WHERE idempotency_key = $1",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };

    let state: String = row.try_get("state")?;
    if state == STATE_CANCELLED {
        return Ok(None);
    }
    Ok(Some((row.try_get("method")?, row.try_get("path")?)))
}

async fn stored_answer(
    conn: &mut AnyConnection,
    key: &str,
    fingerprint: &str,
    operation: &Operation<'_>,
) -> Result<Option<Answer>, ApiError> {
    let row = sqlx::query(
        "SELECT request_hash, state, status_code, response_body, method, path
         FROM idempotency_records WHERE idempotency_key = $1",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };

    let state: String = row.try_get("state")?;
    if state == STATE_CANCELLED {
        return Err(ApiError::conflict(format!(
            "the call with Idempotency-Key {key:?} was compensated before it arrived, so it \
             is refused and changes nothing"
        )));
    }
    let stored_hash: String = row.try_get("request_hash")?;
    if stored_hash != fingerprint {
        let method: String = row.try_get("method")?;
        let path: String = row.try_get("path")?;
        return Err(ApiError::Unprocessable {
            field: Some("Idempotency-Key".to_owned()),
            detail: format!(
                "Idempotency-Key {key:?} was already used for another request ({method} {path} \
                 with a different body than this {} {}); use a new key",
                operation.method, operation.path
            ),
        });
    }

    let status: i64 = row.try_get("status_code")?;
    let body: String = row.try_get("response_body")?;
    let status = u16::try_from(status)
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::OK);
    Ok(Some(Answer {
        status,
        body: serde_json::from_str(&body)?,
    }))
}

async fn insert(
    tx: &mut Transaction<'static, Any>,
    key: &str,
    fingerprint: &str,
    operation: &Operation<'_>,
    context: &SagaContext,
    answer: &Answer,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO idempotency_records (idempotency_key, request_hash, method, path, saga_id,
            saga_step, state, status_code, response_body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(key)
    .bind(fingerprint)
    .bind(operation.method)
    .bind(operation.path)
    .bind(context.saga_id.clone())
    .bind(context.step.clone())
    .bind(STATE_COMPLETED)
    .bind(i64::from(answer.status.as_u16()))
    .bind(answer.body.to_string())
    .bind(now_rfc3339())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn replayed(answer: Answer) -> Response {
    let is_problem = answer.status.is_client_error();
    let mut response = answer.into_response();
    if is_problem {
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
    }
    response.headers_mut().insert(
        HeaderName::from_static(REPLAYED_HEADER),
        HeaderValue::from_static("true"),
    );
    response
}

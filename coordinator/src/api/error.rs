//! The coordinator API's errors and their one mapping to HTTP problem responses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::saga::SagaType;
use crate::store::{InsertSagaError, StoreError};

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u64 = 30;

/// Errors of command and saga endpoints.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad input, with the field at fault.
    #[error(transparent)]
    Invalid(#[from] kit::ApiError),
    #[error("{entity} {id} not found")]
    EntityNotFound { entity: &'static str, id: i64 },
    #[error(
        "another saga is running on {entity_lock}: {holder_id} ({holder_type}); wait for it \
         to finish, see /api/v1/sagas/{holder_id}"
    )]
    EntityLocked {
        entity_lock: String,
        holder_id: String,
        holder_type: String,
    },
    #[error("{detail}")]
    StateConflict { detail: String },
    #[error(
        "Idempotency-Key {key:?} was already used for a different command or body; use a new \
         key"
    )]
    KeyReused { key: String },
    /// A participant did not respond to the existence check, so nothing was started.
    #[error("{}", precheck_unavailable_message(*.saga_type))]
    ParticipantUnavailable { saga_type: SagaType },
    /// A source event already reported with other values.
    #[error(
        "source_id {source_id:?} was already reported for another patient, date or channel; \
         each event needs its own source_id"
    )]
    SourceReused { source_id: String },
    #[error("the saga store is unavailable; nothing was started, retry later")]
    StoreUnavailable(#[source] sqlx::Error),
    #[error("saga {0} not found")]
    SagaNotFound(String),
    #[error("saga {id} is {status} and cannot be retried")]
    SagaFinished { id: String, status: &'static str },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Returns the user-facing message for when a participant is unavailable and nothing was
/// changed.
pub fn unavailable_message(saga_type: SagaType) -> &'static str {
    match saga_type {
        SagaType::DeletePatient => {
            "Cannot delete patient at this time. The matching service is temporarily \
             unavailable. Please try again in a few minutes."
        }
        SagaType::BlockTherapist | SagaType::UnblockTherapist => {
            "Cannot update therapist status. Related services are temporarily unavailable. \
             Please try again later."
        }
        SagaType::RecordPatientContact => {
            "Warning: Failed to update patient contact information. Manual sync may be \
             required."
        }
    }
}

/// Returns the message for when the service that owns the entity does not respond to the
/// existence check.
fn precheck_unavailable_message(saga_type: SagaType) -> &'static str {
    match saga_type {
        SagaType::DeletePatient => {
            "Cannot delete patient at this time. The patient service is temporarily \
             unavailable. Please try again in a few minutes."
        }
        other => unavailable_message(other),
    }
}

impl CommandError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(error) => error.status(),
            Self::EntityNotFound { .. } | Self::SagaNotFound(_) => StatusCode::NOT_FOUND,
            Self::EntityLocked { .. } | Self::StateConflict { .. } | Self::SagaFinished { .. } => {
                StatusCode::CONFLICT
            }
            Self::KeyReused { .. } | Self::SourceReused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::ParticipantUnavailable { .. } | Self::StoreUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(error) => error.into(),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<sqlx::Error> for CommandError {
    fn from(error: sqlx::Error) -> Self {
        if kit::db::is_unavailable(&error) {
            Self::StoreUnavailable(error)
        } else {
            Self::Internal(error.into())
        }
    }
}

impl From<InsertSagaError> for CommandError {
    fn from(error: InsertSagaError) -> Self {
        match error {
            InsertSagaError::EntityLocked {
                entity_lock,
                holder_id,
                holder_type,
            } => Self::EntityLocked {
                entity_lock,
                holder_id,
                holder_type,
            },
            InsertSagaError::DuplicateKey | InsertSagaError::LockReleased => Self::Internal(
                anyhow::anyhow!("saga insert kept colliding without a saga to attach to"),
            ),
            InsertSagaError::Store(error) => error.into(),
        }
    }
}

/// Builds a problem response with extra members.
pub fn problem(status: StatusCode, detail: &str, extra: Value) -> Response {
    let mut body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });

    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }

    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );

    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }

    response
}

impl IntoResponse for CommandError {
    fn into_response(self) -> Response {
        let error = match self {
            Self::Invalid(error) => return error.into_response(),
            other => other,
        };

        let status = error.status();
        match &error {
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "command failed");
                return problem(
                    status,
                    "An internal error occurred. It has been logged.",
                    json!({}),
                );
            }
            Self::StoreUnavailable(cause) => {
                tracing::warn!(error = %cause, "saga store unavailable");
            }
            _ => {}
        }

        let extra = match &error {
            Self::EntityLocked {
                holder_id,
                entity_lock,
                ..
            } => json!({ "saga_id": holder_id, "entity_lock": entity_lock }),
            Self::KeyReused { .. } => json!({ "field": "Idempotency-Key" }),
            Self::SourceReused { .. } => json!({ "field": "source_id" }),
            _ => json!({}),
        };

        problem(status, &error.to_string(), extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_status() {
        let cases = [
            (
                CommandError::EntityNotFound {
                    entity: "patient",
                    id: 1,
                },
                StatusCode::NOT_FOUND,
            ),
            (
                CommandError::EntityLocked {
                    entity_lock: "patient:1".into(),
                    holder_id: "s".into(),
                    holder_type: "delete-patient".into(),
                },
                StatusCode::CONFLICT,
            ),
            (
                CommandError::KeyReused { key: "k".into() },
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                CommandError::ParticipantUnavailable {
                    saga_type: SagaType::DeletePatient,
                },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                CommandError::StoreUnavailable(sqlx::Error::PoolTimedOut),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                CommandError::SagaNotFound("x".into()),
                StatusCode::NOT_FOUND,
            ),
        ];

        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error:?}");
        }
    }

    #[test]
    fn unavailable_message_is_the_user_facing_text() {
        let error = CommandError::ParticipantUnavailable {
            saga_type: SagaType::DeletePatient,
        };

        assert!(error
            .to_string()
            .starts_with("Cannot delete patient at this time."));
        assert!(unavailable_message(SagaType::DeletePatient).contains("matching service"));
    }
}

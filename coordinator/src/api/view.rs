//! The JSON form of a saga in the status API, and the response a command gets for the
//! state its saga reached.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use super::error::{problem, unavailable_message};
use super::prefer::AppliedPreference;
use crate::saga::{definition, SagaStatus};
use crate::store::{SagaRecord, StepRecord};

fn millis_to_rfc3339(millis: Option<i64>) -> Option<String> {
    millis
        .and_then(|millis| Utc.timestamp_millis_opt(millis).single())
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Returns the status API's view of a saga with its steps.
pub fn saga_view(saga: &SagaRecord, steps: &[StepRecord]) -> Value {
    let definition = definition(saga.saga_type);
    let steps: Vec<Value> = steps
        .iter()
        .map(|step| {
            let has_compensation = definition
                .steps
                .get(step.index)
                .is_some_and(|step| step.compensation.is_some());
            json!({
                "index": step.index,
                "name": step.name,
                "participant": step.participant,
                "pivot": step.index == definition.pivot,
                "status": step.status,
                "attempts": step.attempts,
                "possibly_applied": step.possibly_applied,
                "started_at": step.started_at,
                "finished_at": step.finished_at,
                "duration_ms": step.duration_ms,
                "last_status_code": step.last_status_code,
                "last_answer": step.last_answer,
                "last_error": step.last_error,
                "compensation": if has_compensation {
                    json!({
                        "status": step.compensation_status,
                        "attempts": step.compensation_attempts,
                        "started_at": step.compensation_started_at,
                        "finished_at": step.compensation_finished_at,
                        "status_code": step.compensation_status_code,
                        "answer": step.compensation_answer,
                        "error": step.compensation_error,
                    })
                } else {
                    Value::Null
                },
            })
        })
        .collect();

    json!({
        "id": saga.id,
        "type": saga.saga_type,
        "status": saga.status,
        "entity": { "type": saga.entity, "id": saga.entity_id },
        "lock": saga.entity_lock,
        "payload": saga.payload,
        "current_step": saga.current_step,
        "failed_rounds": saga.failed_rounds,
        "outcome_reason": saga.outcome_reason,
        "failure_kind": saga.failure_kind,
        "next_attempt_at": millis_to_rfc3339(saga.next_attempt_at),
        "lease": saga.lease_owner.as_ref().map(|owner| json!({
            "owner": owner,
            "expires_at": millis_to_rfc3339(saga.lease_expires_at),
        })),
        "trace_id": saga.trace_id,
        "created_at": saga.created_at,
        "updated_at": saga.updated_at,
        "finished_at": saga.finished_at,
        "steps": steps,
    })
}

/// Returns the URL path of a saga in the status API.
pub fn saga_location(saga_id: &str) -> String {
    format!("/api/v1/sagas/{saga_id}")
}

/// Maps the state a saga reached to the command's response: 200 when completed or skipped,
/// 202 while running or waiting for an operator, 503 when rolled back because a
/// participant was unavailable, 404 or 409 when a participant refused.
pub fn command_response(
    saga: &SagaRecord,
    steps: &[StepRecord],
    applied: Option<AppliedPreference>,
) -> Response {
    let view = saga_view(saga, steps);

    let mut response = match saga.status {
        // The communication service's contact reports are always accepted with 202.
        SagaStatus::Completed | SagaStatus::Skipped
            if saga.saga_type == crate::saga::SagaType::RecordPatientContact =>
        {
            accepted(saga, view)
        }
        SagaStatus::Completed | SagaStatus::Skipped => {
            (StatusCode::OK, axum::Json(view)).into_response()
        }
        SagaStatus::Running | SagaStatus::Compensating | SagaStatus::NeedsAttention => {
            accepted(saga, view)
        }
        SagaStatus::Compensated => match saga.failure_kind.as_deref() {
            Some("unavailable") => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                unavailable_message(saga.saga_type),
                json!({ "saga_id": saga.id, "saga": view }),
            ),
            _ => {
                let refused_status = steps
                    .iter()
                    .filter(|step| step.status == crate::saga::StepStatus::Failed)
                    .find_map(|step| step.last_status_code);
                let status = if refused_status == Some(404) {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::CONFLICT
                };
                let detail = saga
                    .outcome_reason
                    .clone()
                    .unwrap_or_else(|| "a participant refused the command".to_owned());
                problem(status, &detail, json!({ "saga_id": saga.id, "saga": view }))
            }
        },
    };

    if let Some(applied) = applied {
        if let Ok(value) = HeaderValue::from_str(&applied.header_value()) {
            response.headers_mut().insert("preference-applied", value);
        }
    }

    response
}

fn accepted(saga: &SagaRecord, view: Value) -> Response {
    let mut response = (StatusCode::ACCEPTED, axum::Json(view)).into_response();
    if let Ok(location) = HeaderValue::from_str(&saga_location(&saga.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

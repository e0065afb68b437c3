//! `POST /api/v1/commands/...`: validate a command, check that its entity exists, commit
//! its saga, start it in its own task and wait for the outcome up to a deadline.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use kit::clock::{now_rfc3339, parse_date};
use kit::extract::{Json, SagaContext};
use kit::ApiError;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use utoipa::ToSchema;

use super::error::CommandError;
use super::prefer::{self, WaitPreference};
use super::view::command_response;
use super::AppState;
use crate::engine::{Engine, SagaSnapshot};
use crate::participant::{Call, Outcome};
use crate::saga::{definition, Participant, Phase, SagaStatus, SagaType};
use crate::store::{initial_steps, now_ms, InsertSagaError, SagaRecord, StepRecord};

const MAX_REASON_LEN: usize = 500;
const MAX_SOURCE_ID_LEN: usize = 200;

/// Inserts tried when the entity's lock or a key is released while a saga is inserted.
const MAX_INSERT_ATTEMPTS: u32 = 3;

/// Deletes a patient after cancelling their searches.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeletePatientCommand {
    pub patient_id: i64,
    /// Reason for the deletion, noted on the cancelled searches.
    pub reason: Option<String>,
}

/// Blocks a therapist (gesperrt) after cancelling their unsent inquiries.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockTherapistCommand {
    pub therapist_id: i64,
    /// The sperrgrund.
    pub reason: String,
}

/// Sets a gesperrt therapist aktiv again and lifts the exclusions the block added.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnblockTherapistCommand {
    pub therapist_id: i64,
}

/// Channel through which the patient was contacted.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactChannel {
    Email,
    PhoneCall,
}

/// Moves a patient's letzter_kontakt forward after an email or phone call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordPatientContactCommand {
    pub patient_id: i64,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub channel: ContactChannel,
    /// The event reported, such as `email-12-gesendet`. The same event reported twice
    /// updates once.
    pub source_id: String,
}

/// A validated command, ready to become a saga.
struct Command {
    saga_type: SagaType,
    entity_id: i64,
    payload: Value,
    dedupe_key: Option<String>,
}

fn positive_id(field: &str, id: i64) -> Result<i64, CommandError> {
    if id > 0 {
        Ok(id)
    } else {
        Err(ApiError::unprocessable(
            field,
            format!("{field} must be a positive integer, got {id}"),
        )
        .into())
    }
}

fn bounded_text(field: &str, text: &str, max: usize) -> Result<String, CommandError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::unprocessable(field, format!("{field} must not be empty")).into());
    }
    if text.chars().count() > max {
        return Err(ApiError::unprocessable(
            field,
            format!("{field} must be at most {max} characters"),
        )
        .into());
    }
    Ok(text.to_owned())
}

#[utoipa::path(
    post, path = "/api/v1/commands/delete-patient", request_body = DeletePatientCommand,
    params(("Idempotency-Key" = Option<String>, Header), ("Prefer" = Option<String>, Header)),
    responses(
        (status = 200, description = "Saga completed: searches cancelled, patient deleted"),
        (status = 202, description = "Saga still running or waiting for an operator"),
        (status = 404, description = "Unknown patient", body = kit::error::Problem),
        (
            status = 409,
            description = "Another saga runs on this patient",
            body = kit::error::Problem
        ),
        (
            status = 503,
            description = "A participant was unavailable; rolled back",
            body = kit::error::Problem
        ),
    )
)]
pub async fn delete_patient(
    State(state): State<AppState>,
    context: SagaContext,
    headers: HeaderMap,
    Json(command): Json<DeletePatientCommand>,
) -> Result<Response, CommandError> {
    let patient_id = positive_id("patient_id", command.patient_id)?;
    let reason = match command.reason.as_deref() {
        Some(reason) => Some(bounded_text("reason", reason, MAX_REASON_LEN)?),
        None => None,
    };

    let command = Command {
        saga_type: SagaType::DeletePatient,
        entity_id: patient_id,
        payload: json!({ "patient_id": patient_id, "reason": reason }),
        dedupe_key: None,
    };

    let preference = prefer::parse(&headers, state.default_wait);
    submit(&state, &context, &headers, command, preference).await
}

#[utoipa::path(
    post, path = "/api/v1/commands/block-therapist", request_body = BlockTherapistCommand,
    params(("Idempotency-Key" = Option<String>, Header), ("Prefer" = Option<String>, Header)),
    responses(
        (status = 200, description = "Saga completed: inquiries cancelled, therapist gesperrt"),
        (status = 202, description = "Saga still running or waiting for an operator"),
        (status = 404, description = "Unknown therapist", body = kit::error::Problem),
        (
            status = 409,
            description = "Already gesperrt, or another saga runs on this therapist",
            body = kit::error::Problem
        ),
        (
            status = 503,
            description = "A participant was unavailable; rolled back",
            body = kit::error::Problem
        ),
    )
)]
pub async fn block_therapist(
    State(state): State<AppState>,
    context: SagaContext,
    headers: HeaderMap,
    Json(command): Json<BlockTherapistCommand>,
) -> Result<Response, CommandError> {
    let therapist_id = positive_id("therapist_id", command.therapist_id)?;
    let reason = bounded_text("reason", &command.reason, MAX_REASON_LEN)?;

    let command = Command {
        saga_type: SagaType::BlockTherapist,
        entity_id: therapist_id,
        payload: json!({ "therapist_id": therapist_id, "reason": reason }),
        dedupe_key: None,
    };

    let preference = prefer::parse(&headers, state.default_wait);
    submit(&state, &context, &headers, command, preference).await
}

#[utoipa::path(
    post, path = "/api/v1/commands/unblock-therapist", request_body = UnblockTherapistCommand,
    params(("Idempotency-Key" = Option<String>, Header), ("Prefer" = Option<String>, Header)),
    responses(
        (status = 200, description = "Saga completed: exclusions lifted, therapist aktiv"),
        (status = 202, description = "Saga still running or waiting for an operator"),
        (status = 404, description = "Unknown therapist", body = kit::error::Problem),
        (
            status = 409,
            description = "Not gesperrt, or another saga runs on this therapist",
            body = kit::error::Problem
        ),
        (
            status = 503,
            description = "A participant was unavailable; rolled back",
            body = kit::error::Problem
        ),
    )
)]
pub async fn unblock_therapist(
    State(state): State<AppState>,
    context: SagaContext,
    headers: HeaderMap,
    Json(command): Json<UnblockTherapistCommand>,
) -> Result<Response, CommandError> {
    let therapist_id = positive_id("therapist_id", command.therapist_id)?;

    let command = Command {
        saga_type: SagaType::UnblockTherapist,
        entity_id: therapist_id,
        payload: json!({ "therapist_id": therapist_id }),
        dedupe_key: None,
    };

    let preference = prefer::parse(&headers, state.default_wait);
    submit(&state, &context, &headers, command, preference).await
}

#[utoipa::path(
    post, path = "/api/v1/commands/record-patient-contact",
    request_body = RecordPatientContactCommand,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 202, description = "Accepted; delivered to the patient service durably"),
        (status = 400, description = "Invalid body", body = kit::error::Problem),
    )
)]
pub async fn record_patient_contact(
    State(state): State<AppState>,
    context: SagaContext,
    headers: HeaderMap,
    Json(command): Json<RecordPatientContactCommand>,
) -> Result<Response, CommandError> {
    let patient_id = positive_id("patient_id", command.patient_id)?;
    if parse_date(&command.date).is_none() {
        return Err(ApiError::bad_request(
            "date",
            format!(
                "date must be a date in YYYY-MM-DD form, got {:?}",
                command.date
            ),
        )
        .into());
    }
    let source_id = bounded_text("source_id", &command.source_id, MAX_SOURCE_ID_LEN)?;
    let channel = match command.channel {
        ContactChannel::Email => "email",
        ContactChannel::PhoneCall => "phone_call",
    };
    let command = Command {
        saga_type: SagaType::RecordPatientContact,
        entity_id: patient_id,
        payload: json!({
            "patient_id": patient_id,
            "date": command.date,
            "channel": channel,
            "source_id": source_id,
        }),
        dedupe_key: Some(format!("{channel}:{source_id}")),
    };

    // The caller gets 202 at once; the saga delivers the update in the background.
    let preference = WaitPreference {
        wait: Duration::ZERO,
        applied: None,
    };
    submit(&state, &context, &headers, command, preference).await
}

/// Attaches to the saga of a repeated command, or checks the entity, commits a new saga,
/// starts it and waits for its outcome.
async fn submit(
    state: &AppState,
    context: &SagaContext,
    headers: &HeaderMap,
    command: Command,
    preference: WaitPreference,
) -> Result<Response, CommandError> {
    let request_hash = fingerprint(command.saga_type, &command.payload);
    let idempotency_key = context.idempotency_key.as_deref();

    if let Some(response) =
        attach_to_existing(state, idempotency_key, &command, &request_hash, preference).await?
    {
        return Ok(response);
    }
    if let Err(error) = check_entity(state, &command).await {
        // A concurrent request with the same key may have finished in the meantime, for
        // example deleting the patient this check looked for: its saga is the answer.
        let attached =
            attach_to_existing(state, idempotency_key, &command, &request_hash, preference).await?;
        return attached.ok_or(error);
    }

    let saga = new_saga(
        state,
        &command,
        idempotency_key,
        request_hash.clone(),
        headers,
    );
    let steps = initial_steps(&saga.id, definition(command.saga_type), &saga.created_at);
    let mut attempts_left = MAX_INSERT_ATTEMPTS;
    let receiver = loop {
        attempts_left -= 1;
        match insert_and_start(&state.engine, &saga, &steps).await? {
            Ok(receiver) => break receiver,
            // A concurrent request with the same key or source event committed first.
            Err(InsertSagaError::DuplicateKey) => {
                let attached =
                    attach_to_existing(state, idempotency_key, &command, &request_hash, preference)
                        .await?;
                if let Some(response) = attached {
                    return Ok(response);
                }
            }
            // The saga that held the entity just finished, so the entity may be gone now.
            Err(InsertSagaError::LockReleased) => check_entity(state, &command).await?,
            Err(error) => return Err(error.into()),
        }
        if attempts_left == 0 {
            return Err(InsertSagaError::LockReleased.into());
        }
    };
    tracing::info!(
        saga.id = %saga.id,
        saga.type = command.saga_type.as_str(),
        entity_id = command.entity_id,
        "saga started"
    );

    respond_when_settled(state, &saga.id, receiver, preference).await
}

/// Commits a new saga and starts its task, inside a task of its own. A caller that
/// disconnects cancels the request's future. Without the separate task, that could happen
/// after the commit and before the start, and the saga would then wait for the sweeper.
async fn insert_and_start(
    engine: &Arc<Engine>,
    saga: &SagaRecord,
    steps: &[StepRecord],
) -> Result<Result<Option<watch::Receiver<SagaSnapshot>>, InsertSagaError>, CommandError> {
    let engine = Arc::clone(engine);
    let saga = saga.clone();
    let steps = steps.to_vec();
    let task = tokio::spawn(async move {
        engine.store.insert(&saga, &steps).await?;
        Ok(engine.spawn(saga.id.clone(), false))
    });
    task.await
        .map_err(|error| CommandError::Internal(anyhow::anyhow!("saga start task failed: {error}")))
}

/// Returns the response for an existing saga with the same idempotency key or source event.
async fn attach_to_existing(
    state: &AppState,
    idempotency_key: Option<&str>,
    command: &Command,
    request_hash: &str,
    preference: WaitPreference,
) -> Result<Option<Response>, CommandError> {
    if idempotency_key.is_none() && command.dedupe_key.is_none() {
        return Ok(None);
    }
    let Some(saga_id) = state
        .engine
        .store
        .find_by_key(idempotency_key, command.dedupe_key.as_deref())
        .await?
    else {
        return Ok(None);
    };
    let Some((saga, _)) = state.engine.store.load(&saga_id).await? else {
        return Ok(None);
    };

    let same_key = idempotency_key.is_some() && saga.idempotency_key.as_deref() == idempotency_key;
    if saga.request_hash != request_hash {
        if same_key {
            return Err(CommandError::KeyReused {
                key: idempotency_key.unwrap_or_default().to_owned(),
            });
        }
        return Err(CommandError::SourceReused {
            source_id: command.payload["source_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        });
    }
    let receiver = state.engine.registry.subscribe(&saga_id);
    respond_when_settled(state, &saga_id, receiver, preference)
        .await
        .map(Some)
}

/// Rejects an unknown patient or therapist with 404, and a therapist already in the
/// requested state with 409, before anything starts.
async fn check_entity(state: &AppState, command: &Command) -> Result<(), CommandError> {
    let (participant, entity, path) = match command.saga_type {
        SagaType::DeletePatient => (
            Participant::Patient,
            "patient",
            format!("/api/patients/{}", command.entity_id),
        ),
        SagaType::BlockTherapist | SagaType::UnblockTherapist => (
            Participant::Therapist,
            "therapist",
            format!("/api/therapists/{}", command.entity_id),
        ),
        SagaType::RecordPatientContact => return Ok(()),
    };
    let report = state
        .engine
        .client
        .send(Call {
            participant,
            endpoint: if entity == "patient" {
                "/api/patients/{patient_id}"
            } else {
                "/api/therapists/{therapist_id}"
            },
            method: "GET",
            path,
            body: None,
            idempotency_key: None,
            saga_id: None,
            step: None,
            traceparent: None,
        })
        .await;

    match report.outcome {
        Outcome::Answered { status, body } if status.is_success() => {
            check_therapist_status(command, &body)
        }
        Outcome::Answered { status, .. } if status == StatusCode::NOT_FOUND => {
            Err(CommandError::EntityNotFound {
                entity,
                id: command.entity_id,
            })
        }
        Outcome::Answered { status, .. } => Err(CommandError::Internal(anyhow::anyhow!(
            "{entity} service responded to the existence check with {status}"
        ))),
        Outcome::NoAnswer { error, .. } => {
            tracing::warn!(participant = participant.as_str(), error = %error,
                "existence check not answered; nothing started");
            Err(CommandError::ParticipantUnavailable {
                saga_type: command.saga_type,
            })
        }
    }
}

fn check_therapist_status(command: &Command, therapist: &Value) -> Result<(), CommandError> {
    let status = therapist
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("");

    match command.saga_type {
        SagaType::BlockTherapist if status == "gesperrt" => Err(CommandError::StateConflict {
            detail: format!("therapist {} is already gesperrt", command.entity_id),
        }),
        SagaType::UnblockTherapist if status != "gesperrt" => Err(CommandError::StateConflict {
            detail: format!(
                "therapist {} is not gesperrt (status {status:?}), so there is nothing to unblock",
                command.entity_id
            ),
        }),
        _ => Ok(()),
    }
}

fn new_saga(
    state: &AppState,
    command: &Command,
    idempotency_key: Option<&str>,
    request_hash: String,
    headers: &HeaderMap,
) -> SagaRecord {
    let definition = definition(command.saga_type);
    let now = now_rfc3339();
    let now_millis = now_ms();
    let lease_ms = i64::try_from(state.engine.settings.lease_duration_ms).unwrap_or(i64::MAX);

    SagaRecord {
        id: uuid::Uuid::now_v7().to_string(),
        saga_type: command.saga_type,
        status: SagaStatus::Running,
        phase: Phase::Forward,
        entity: definition.entity,
        entity_id: command.entity_id,
        entity_lock: definition
            .locks_entity
            .then(|| format!("{}:{}", definition.entity.as_str(), command.entity_id)),
        payload: command.payload.clone(),
        idempotency_key: idempotency_key.map(str::to_owned),
        dedupe_key: command.dedupe_key.clone(),
        request_hash,
        current_step: 0,
        failed_rounds: 0,
        outcome_reason: None,
        failure_kind: None,
        next_attempt_at: Some(now_millis),
        lease_owner: Some(state.engine.replica_id.clone()),
        lease_expires_at: Some(now_millis.saturating_add(lease_ms)),
        trace_id: trace_id_from(headers),
        created_at: now.clone(),
        updated_at: now,
        finished_at: None,
    }
}

/// Returns the trace id of an incoming `traceparent`, or a new one.
fn trace_id_from(headers: &HeaderMap) -> String {
    headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split('-').nth(1))
        .filter(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| format!("{:032x}", uuid::Uuid::new_v4().as_u128()))
}

/// Returns a SHA-256 of the saga type and the canonical payload.
fn fingerprint(saga_type: SagaType, payload: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(saga_type.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(payload.to_string().as_bytes());
    format!("{:x}", hasher.finalize())
}

/// Waits until the saga settles or the deadline passes, then returns the response for
/// the state it reached. The state published by the saga's task is used when it is there,
/// so a command that completes in time costs no read of the store.
async fn respond_when_settled(
    state: &AppState,
    saga_id: &str,
    receiver: Option<watch::Receiver<SagaSnapshot>>,
    preference: WaitPreference,
) -> Result<Response, CommandError> {
    let published = if preference.wait > Duration::ZERO {
        wait_until_settled(state, saga_id, receiver, preference.wait).await
    } else {
        None
    };
    if let Some(records) = published {
        let (saga, steps) = records.as_ref();
        return Ok(command_response(saga, steps, preference.applied).into_response());
    }

    let Some((saga, steps)) = state.engine.store.load(saga_id).await? else {
        return Err(CommandError::SagaNotFound(saga_id.to_owned()));
    };
    Ok(command_response(&saga, &steps, preference.applied).into_response())
}

fn is_settled(status: SagaStatus) -> bool {
    status.is_finished() || status == SagaStatus::NeedsAttention
}

/// Waits for the saga to settle and returns the records its task published, if any.
async fn wait_until_settled(
    state: &AppState,
    saga_id: &str,
    receiver: Option<watch::Receiver<SagaSnapshot>>,
    wait: Duration,
) -> Option<Arc<(SagaRecord, Vec<StepRecord>)>> {
    let deadline = tokio::time::Instant::now() + wait;

    if let Some(mut receiver) = receiver {
        let settled = tokio::time::timeout_at(
            deadline,
            receiver.wait_for(|snapshot| is_settled(snapshot.status)),
        )
        .await;
        return match settled {
            Ok(Ok(snapshot)) => snapshot.records.clone(),
            _ => None,
        };
    }

    // Another replica drives the saga: poll the store until the deadline.
    loop {
        match state.engine.store.load(saga_id).await {
            Ok(Some((saga, _))) if is_settled(saga.status) => return None,
            Ok(_) => {}
            Err(_) => return None,
        }
        if tokio::time::Instant::now() + Duration::from_millis(100) > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
